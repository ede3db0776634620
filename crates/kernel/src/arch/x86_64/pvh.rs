//! The entry for a monitor that starts CPUs outside long mode: QEMU's PVH
//! boot enters `atoll_pvh_entry` on the boot CPU in 32-bit protected mode
//! with paging off, at its physical address, with `ebx` pointing at a
//! start-info block and no stack. It starts the other CPUs (INIT and SIPI
//! to `atoll_ap_trampoline`, which the monitor copies below 1 MiB; they
//! come up in real mode and reach 32-bit mode there), and every CPU then
//! loads its own `LongModeStart` from the array at `atoll_long_mode_start`:
//! the page tables, descriptor tables, control registers and syscall MSRs
//! the KVM monitor sets directly. It enters the kernel in ring 3 as that
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

    // The other CPUs: INIT, then SIPI twice, to all but this one, through
    // the local APIC at its reset address (paging is off).
    cmpl $0, {start_others}(%esi)
    je 4f
    mov $0xfee00300, %edi
    movl $0x000c4500, (%edi)
    call 5f
    movl $(0x000c4600 | ({trampoline} >> 12)), (%edi)
    call 5f
    movl $(0x000c4600 | ({trampoline} >> 12)), (%edi)
    call 5f
    jmp 4f
    // Waits until the APIC has sent the IPI.
5:
    pause
    testl $0x1000, (%edi)
    jnz 5b
    ret
4:

    // Every CPU from here, with %esi at its own LongModeStart.
    .global atoll_pvh_long_mode
atoll_pvh_long_mode:
    lea {scratch_end}(%esi), %esp
    // Where this code runs, for the jump into 64-bit code below.
    call 6f
6:
    pop %ebx

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
    lea (2f - 6b)(%ebx), %eax
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
    // XCR0: the components wanted that the CPU offers (CPUID 0xD.0).
    mov $0xd, %eax
    xor %ecx, %ecx
    cpuid
    and {xcr0}(%rsi), %eax
    and ({xcr0} + 4)(%rsi), %edx
    xor %ecx, %ecx
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
    // the boot clock onto it (the other CPUs find it acknowledged).
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
    .space {size} * {max_cpus}

    // The other CPUs start here in real mode, at CS:IP = trampoline >> 4 : 0,
    // from the copy the monitor puts at the trampoline address.
    .p2align 4
    .code16
    .global atoll_ap_trampoline
atoll_ap_trampoline:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl ap_gdtr - atoll_ap_trampoline
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, ${trampoline} + (ap_protected - atoll_ap_trampoline)
    .code32
ap_protected:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    // Take a number (1, 2, ...): this CPU's LongModeStart.
    mov $1, %eax
    lock xadd %eax, {trampoline} + (atoll_ap_ticket - atoll_ap_trampoline)
    inc %eax
    imul ${size}, %eax, %eax
    add {trampoline} + (atoll_ap_starts - atoll_ap_trampoline), %eax
    mov %eax, %esi
    jmp *{trampoline} + (atoll_ap_long_mode - atoll_ap_trampoline)
    .p2align 3
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
ap_gdtr:
    .word 23
    .long {trampoline} + (ap_gdt - atoll_ap_trampoline)
    .p2align 2
    .global atoll_ap_ticket
atoll_ap_ticket:
    .long 0
    .global atoll_ap_starts
atoll_ap_starts:
    .long 0
    .global atoll_ap_long_mode
atoll_ap_long_mode:
    .long 0
    .global atoll_ap_trampoline_end
atoll_ap_trampoline_end:
    .code64
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
    max_cpus = const at::MAX_CPUS,
    start_others = const at::START_OTHERS,
    scratch_end = const at::SCRATCH_END,
    trampoline = const atoll_abi::boot::AP_TRAMPOLINE,
    kernel_code = const selector::KERNEL_CODE,
    user_data = const selector::USER_DATA,
    user_code = const selector::USER_CODE,
    options(att_syntax)
);
