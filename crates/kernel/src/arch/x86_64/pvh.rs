//! The entry for a monitor that starts the boot CPU outside long mode:
//! QEMU's PVH boot enters `atoll_pvh_entry` in 32-bit protected mode with
//! paging off, at its physical address, with `ebx` pointing at a start-info
//! block and no stack. The code loads what the monitor left in
//! `atoll_long_mode_start` (an `atoll_abi::boot::LongModeStart`): the same
//! page tables, descriptor tables, control registers and syscall MSRs the
//! KVM monitor sets directly, and enters the kernel in ring 3 as that
//! monitor does. Under KVM none of this runs.

use atoll_abi::boot::long_mode_start as at;
use atoll_abi::layout::selector;

core::arch::global_asm!(
    r#"
    .pushsection .text.pvh, "ax"
    .code32
    .p2align 4
    .global atoll_pvh_entry
atoll_pvh_entry:
    cli
    cld
    // No stack is given: borrow the start-info block for the two words
    // that call/pop need, to learn where this code runs.
    lea 16(%ebx), %esp
    call 1f
1:
    pop %esi
    add $(atoll_long_mode_start - 1b), %esi

    // PAE and the isle's page tables, then long mode on, then paging.
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov {cr3}(%esi), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    mov {efer}(%esi), %eax
    xor %edx, %edx
    wrmsr
    lgdt {gdt}(%esi)
    mov %cr0, %eax
    and $0x9ffffff3, %eax      // caches on (CD, NW off); no EM, no TS
    or $0x80010033, %eax       // PG, WP, NE, ET, MP, PE
    mov %eax, %cr0
    // A far return into the 64-bit kernel code segment.
    lea (2f - atoll_long_mode_start)(%esi), %eax
    push ${kernel_code}
    push %eax
    lret

    .code64
2:
    mov %esi, %esi
    lgdt {gdt}(%rsi)
    lidt {idt}(%rsi)
    mov ${user_data}, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov {tss}(%rsi), %eax
    ltr %ax
    mov {cr4}(%rsi), %rax
    mov %rax, %cr4
    xor %ecx, %ecx
    mov {xcr0}(%rsi), %eax
    mov ({xcr0} + 4)(%rsi), %edx
    xsetbv
    // After the segment loads: loading %gs resets its base.
    mov $0xc0000081, %ecx
    mov {star}(%rsi), %eax
    mov ({star} + 4)(%rsi), %edx
    wrmsr
    mov $0xc0000082, %ecx
    mov {lstar}(%rsi), %eax
    mov ({lstar} + 4)(%rsi), %edx
    wrmsr
    mov $0xc0000084, %ecx
    mov {syscall_mask}(%rsi), %eax
    mov ({syscall_mask} + 4)(%rsi), %edx
    wrmsr
    mov $0xc0000101, %ecx
    mov {gs_base}(%rsi), %eax
    mov ({gs_base} + 4)(%rsi), %edx
    wrmsr
    mov $0xc0000102, %ecx
    wrmsr
    fninit

    // The clock handshake: publish this TSC, wait for the monitor to move
    // the boot clock onto it.
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    or $1, %rax
    mov %rax, {guest_tsc}(%rsi)
3:
    pause
    cmpq $0, {tsc_ack}(%rsi)
    je 3b

    // Ring 3 at the kernel entry, interrupts off, as the KVM monitor
    // starts a vCPU.
    mov {stack_top}(%rsi), %rsp
    mov {boot_info}(%rsi), %rdi
    push ${user_data}
    push {stack_top}(%rsi)
    push $2
    push ${user_code}
    push {entry}(%rsi)
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %ebp, %ebp
    iretq

    .p2align 4
    .global atoll_long_mode_start
atoll_long_mode_start:
    .space {size}
    .popsection
"#,
    gdt = const at::GDT,
    idt = const at::IDT,
    cr3 = const at::CR3,
    cr4 = const at::CR4,
    efer = const at::EFER,
    xcr0 = const at::XCR0,
    star = const at::STAR,
    lstar = const at::LSTAR,
    syscall_mask = const at::SYSCALL_MASK,
    gs_base = const at::GS_BASE,
    tss = const at::TSS_SELECTOR,
    entry = const at::ENTRY,
    stack_top = const at::STACK_TOP,
    boot_info = const at::BOOT_INFO,
    guest_tsc = const at::GUEST_TSC,
    tsc_ack = const at::TSC_ACK,
    size = const at::SIZE,
    kernel_code = const selector::KERNEL_CODE,
    user_data = const selector::USER_DATA,
    user_code = const selector::USER_CODE,
    options(att_syntax)
);
