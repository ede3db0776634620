//! Entry points: boot, the syscall (LSTAR) entry, and the jump into the program.
//!
//! The kernel runs in ring 3 beside the program. On kvm-pvm `syscall` reaches
//! LSTAR still at CPL 3, where `sysretq` faults, so the entry returns with
//! `popfq` and `jmp *%rcx`. On hardware KVM it lands at CPL 0 and returns with
//! `sysretq`. The entry reads CPL from %cs to pick the way back.
//!
//! Linux programs keep live data in the 128-byte red zone below %rsp, so the
//! entry switches to the per-CPU kernel stack (found through GS) before it
//! pushes anything.

use atoll_abi::boot::{CPU_AREA_KERNEL_STACK_TOP, CPU_AREA_USER_RSP};

pub use super::super::syscall_frame::SyscallFrame;

const _: () = assert!(core::mem::size_of::<SyscallFrame>().is_multiple_of(16));

/// In %rax at an `int3` that asks the ring-0 pad for a TLB flush.
const FLUSH_MAGIC: u32 = atoll_abi::mmio::TLB_FLUSH_MAGIC;

/// Flushes this CPU's TLB: one trip to ring 0 through the breakpoint pad
/// (an exception, tens of µs on kvm-pvm), so callers batch their changes.
pub fn flush_tlb() {
    // SAFETY: the breakpoint pad sees the magic and a kernel rip, reloads
    // CR3 and returns; only rax is clobbered.
    unsafe {
        core::arch::asm!(
            "int3",
            inout("eax") FLUSH_MAGIC => _,
            options(nostack)
        )
    }
}

/// Byte offset of `user_rsp` in [`SyscallFrame`], for the assembly.
const FRAME_USER_RSP: usize = core::mem::offset_of!(SyscallFrame, user_rsp);

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    // rdi = &BootInfo, rsp = kernel stack top, GS base = CpuArea (set by the monitor).
    cld
    xor %ebp, %ebp
    call {kernel_main}
    ud2

    .text
    // Builds a SyscallFrame on the kernel stack (the program's rsp is in
    // the CPU area, its flags in r11, its return address in rcx) and
    // dispatches the call; `rewritten` says which entry came.
    .macro dispatch_syscall rewritten
    incq %gs:{epoch}
    push %r15
    push %r14
    push %r13
    push %r12
    push %rbp
    push %rbx
    push $\rewritten
    push %gs:{user_rsp}
    push %r11
    push %rcx
    push %r9
    push %r8
    push %r10
    push %rdx
    push %rsi
    push %rdi
    push %rax
    mov %cs, %ecx
    and $3, %ecx
    push %rcx
    cld
    mov %rsp, %rdi
    call {dispatch}
    .endm

    .global atoll_syscall_entry
    .p2align 4
atoll_syscall_entry:
    mov %rsp, %gs:{user_rsp}
    mov %gs:{kernel_stack}, %rsp
    dispatch_syscall 0

    // Returns to the program with the SyscallFrame at %rsp. Also where new
    // threads first return to user mode. The way back depends on the CPL
    // we run at now, which after a thread switch may differ from the entry's.
    .global atoll_syscall_return
atoll_syscall_return:
    // The per-CPU slot may hold another thread's rsp: reload ours.
    mov {frame_user_rsp}(%rsp), %rcx
    mov %rcx, %gs:{user_rsp}
    incq %gs:{epoch}
    mov {frame_rbx}(%rsp), %rbx
    mov {frame_rbp}(%rsp), %rbp
    mov {frame_r12}(%rsp), %r12
    mov {frame_r13}(%rsp), %r13
    mov {frame_r14}(%rsp), %r14
    mov {frame_r15}(%rsp), %r15
    add $8, %rsp
    pop %rax
    pop %rdi
    pop %rsi
    pop %rdx
    pop %r10
    pop %r8
    pop %r9
    pop %rcx
    mov %cs, %r11
    test $3, %r11
    jz 1f
    // CPL 3: restore the program's flags, then its stack, then jump back.
    mov (%rsp), %r11
    popfq
    mov %gs:{user_rsp}, %rsp
    jmp *%rcx
1:
    // CPL 0: sysretq restores rip from rcx and rflags from r11.
    pop %r11
    mov %gs:{user_rsp}, %rsp
    sysretq

    // A rewritten syscall site (see the monitor's `rewrite`) jumps here
    // from its stub instead of trapping: rcx = the address after its
    // `syscall`, every other register as the program left it, and the
    // flags still the program's. So: save rsp and switch stacks before
    // anything touches the program's stack (red zone), take the flags into
    // r11 as `syscall` does, and build the same frame as the LSTAR entry.
    // Runs at CPL 3 on kvm-pvm and on hardware KVM alike.
    .global atoll_rewritten_entry
    .p2align 4
atoll_rewritten_entry:
    mov %rsp, %gs:{user_rsp}
    mov %gs:{kernel_stack}, %rsp
    pushfq
    pop %r11
    dispatch_syscall 1
    jmp atoll_syscall_return

    // The monitor stopped this CPU in program code, saved the program's
    // registers in the CPU area and sent it here, on the running thread's
    // (empty) kernel stack.
    .global atoll_preempt_entry
    .p2align 4
atoll_preempt_entry:
    incq %gs:{epoch}
    sub $144, %rsp
    cld
    mov %rsp, %rdi
    call {preempted}
    mov %rsp, %rdi
    jmp atoll_full_return

    // The ring-0 pad sent a fault of program code here, its registers in
    // this CPU's area, on the running thread's (empty) kernel stack.
    .global atoll_fault_entry
    .p2align 4
atoll_fault_entry:
    incq %gs:{epoch}
    sub $144, %rsp
    cld
    mov %rsp, %rdi
    call {faulted}
    mov %rsp, %rdi
    jmp atoll_full_return

    // Returns to the program with every register from the PreemptFrame at
    // %rdi, without touching its stack (the red zone stays intact).
    .global atoll_full_return
atoll_full_return:
    incq %gs:{epoch}
    mov 120(%rdi), %rax
    mov %rax, %gs:{resume_rip}
    mov 136(%rdi), %rax
    mov %rax, %gs:{user_rsp}
    mov %cs, %rax
    test $3, %rax
    jz 2f
    push 128(%rdi)
    call 3f
    popfq
    mov %gs:{user_rsp}, %rsp
    jmp *%gs:{resume_rip}
2:
    // CPL 0 (hardware KVM, after a switch from a syscall): iretq to ring 3.
    push ${user_data}
    push %gs:{user_rsp}
    push 128(%rdi)
    push ${user_code}
    push %gs:{resume_rip}
    call 3f
    iretq
3:
    // Loads the general registers from the frame at %rdi, %rdi last; the
    // return address sits on the kernel stack, above nothing of the program.
    mov 0(%rdi), %rax
    mov 8(%rdi), %rbx
    mov 16(%rdi), %rcx
    mov 24(%rdi), %rdx
    mov 32(%rdi), %rsi
    mov 48(%rdi), %rbp
    mov 56(%rdi), %r8
    mov 64(%rdi), %r9
    mov 72(%rdi), %r10
    mov 80(%rdi), %r11
    mov 88(%rdi), %r12
    mov 96(%rdi), %r13
    mov 104(%rdi), %r14
    mov 112(%rdi), %r15
    mov 40(%rdi), %rdi
    ret

    // Ring-0 exception landing pads, 16 bytes apart, entered on IST 1. Each
    // pushes a dummy error code where the CPU pushes none, then its vector,
    // and hands the frame's address to the monitor through the FAULT
    // doorbell. Integer-only: kvm-pvm emulates ring 0 and can't do SSE.
    .p2align 4
    .global atoll_exception_vectors
atoll_exception_vectors:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .p2align 4
    .if (\vector == 3)
    jmp atoll_breakpoint
    .elseif (\vector == 8) || (\vector == 10) || (\vector == 11) || (\vector == 12) || (\vector == 13) || (\vector == 14) || (\vector == 17) || (\vector == 21) || (\vector == 29) || (\vector == 30)
    .else
    push $0
    .endif
    push $\vector
    jmp atoll_exception_common
    .endr

    // int3 from the kernel with the flush magic in %rax: reload CR3 (a TLB
    // flush, which ring 3 can't do) and return. Any other int3 is a
    // breakpoint in the program.
atoll_breakpoint:
    cmpq $0, (%rsp)
    jge 1f
    cmp ${flush_magic}, %rax
    jne 1f
    mov %cr3, %rax
    mov %rax, %cr3
    iretq
1:
    push $0
    push $3
    jmp atoll_exception_common

atoll_exception_common:
    // The doorbell needs %rax: keep the program's for a debugger. CR2 goes
    // to this CPU's area (GS points there in every ring) for a monitor
    // that can't read the register (QEMU).
    mov %rax, %gs:{fault_rax}
    mov %cr2, %rax
    mov %rax, %gs:{fault_cr2}
    // A fault of program code whose signal has a handler goes to the
    // kernel (in ring 3, on the thread's kernel stack) with the program's
    // registers; everything else is the monitor's. The frame: vector 0,
    // error code 8, rip 16, cs 24, rflags 32, rsp 40, ss 48.
    cmpq $0, %gs:{fault_upcall}
    je 5f
    testb $3, 24(%rsp)
    jz 5f
    movabs ${kernel_base}, %rax
    cmp %rax, 16(%rsp)
    jae 5f
    mov %rbx, %gs:{ff_rbx}
    mov (%rsp), %rax
    mov ${upcall_vectors}, %ebx
    bt %rax, %rbx
    jnc 4f
    mov %rax, %gs:{fault_vector}
    mov 8(%rsp), %rax
    mov %rax, %gs:{fault_error_code}
    mov 16(%rsp), %rax
    mov %rax, %gs:{ff_rip}
    mov 32(%rsp), %rax
    mov %rax, %gs:{ff_rflags}
    mov 40(%rsp), %rax
    mov %rax, %gs:{ff_rsp}
    mov %gs:{fault_rax}, %rax
    mov %rax, %gs:{ff_rax}
    mov %rcx, %gs:{ff_rcx}
    mov %rdx, %gs:{ff_rdx}
    mov %rsi, %gs:{ff_rsi}
    mov %rdi, %gs:{ff_rdi}
    mov %rbp, %gs:{ff_rbp}
    mov %r8, %gs:{ff_r8}
    mov %r9, %gs:{ff_r9}
    mov %r10, %gs:{ff_r10}
    mov %r11, %gs:{ff_r11}
    mov %r12, %gs:{ff_r12}
    mov %r13, %gs:{ff_r13}
    mov %r14, %gs:{ff_r14}
    mov %r15, %gs:{ff_r15}
    push ${user_data}
    push %gs:{kernel_stack}
    push $0x202
    push ${user_code}
    lea atoll_fault_entry(%rip), %rax
    push %rax
    iretq
4:
    mov %gs:{ff_rbx}, %rbx
5:
    movabs ${fault_doorbell}, %rax
    mov %rsp, (%rax)
    // Only reached where the doorbell didn't exit (QEMU): leave the report
    // for the monitor to poll.
    mov %rsp, %gs:{last_doorbell_value}
    movq ${fault}, %gs:{last_doorbell}
2:
    pause
    jmp 2b
"#,
    flush_magic = const FLUSH_MAGIC,
    fault_doorbell = const atoll_abi::layout::MMIO_BASE + atoll_abi::mmio::FAULT,
    fault = const atoll_abi::mmio::FAULT,
    last_doorbell = const atoll_abi::boot::CPU_AREA_LAST_DOORBELL,
    last_doorbell_value = const atoll_abi::boot::CPU_AREA_LAST_DOORBELL_VALUE,
    fault_rax = const atoll_abi::boot::CPU_AREA_FAULT_RAX,
    fault_cr2 = const atoll_abi::boot::CPU_AREA_FAULT_CR2,
    kernel_main = sym crate::kernel_main,
    dispatch = sym crate::linux::syscall_dispatch,
    user_rsp = const CPU_AREA_USER_RSP,
    epoch = const atoll_abi::boot::CPU_AREA_USER_EPOCH,
    resume_rip = const atoll_abi::boot::CPU_AREA_RESUME_RIP,
    user_data = const atoll_abi::layout::selector::USER_DATA,
    user_code = const atoll_abi::layout::selector::USER_CODE,
    preempted = sym crate::sched::preempted,
    faulted = sym crate::signals::faulted,
    kernel_base = const atoll_abi::layout::KERNEL_VIRT_BASE,
    upcall_vectors = const crate::signals::FAULT_UPCALL_VECTORS,
    fault_upcall = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_upcall),
    fault_vector = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_vector),
    fault_error_code = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_error_code),
    ff_rax = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rax),
    ff_rbx = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rbx),
    ff_rcx = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rcx),
    ff_rdx = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rdx),
    ff_rsi = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rsi),
    ff_rdi = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rdi),
    ff_rbp = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rbp),
    ff_r8 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r8),
    ff_r9 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r9),
    ff_r10 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r10),
    ff_r11 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r11),
    ff_r12 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r12),
    ff_r13 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r13),
    ff_r14 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r14),
    ff_r15 = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, r15),
    ff_rip = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rip),
    ff_rflags = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rflags),
    ff_rsp = const core::mem::offset_of!(atoll_abi::boot::CpuArea, fault_frame) + core::mem::offset_of!(atoll_abi::boot::PreemptFrame, rsp),

    frame_user_rsp = const FRAME_USER_RSP,
    frame_rbx = const core::mem::offset_of!(SyscallFrame, rbx),
    frame_rbp = const core::mem::offset_of!(SyscallFrame, rbp),
    frame_r12 = const core::mem::offset_of!(SyscallFrame, r12),
    frame_r13 = const core::mem::offset_of!(SyscallFrame, r13),
    frame_r14 = const core::mem::offset_of!(SyscallFrame, r14),
    frame_r15 = const core::mem::offset_of!(SyscallFrame, r15),
    kernel_stack = const CPU_AREA_KERNEL_STACK_TOP,
    options(att_syntax)
);

/// Returns to the program with every register from `context`, leaving the
/// kernel stack behind (the next entry starts it afresh from the top).
pub fn return_to_program(context: &atoll_abi::boot::PreemptFrame) -> ! {
    // SAFETY: `atoll_full_return` loads every register from the frame at
    // %rdi and jumps to the program; it pushes only below the current rsp,
    // so the frame (in our caller's stack frame or above) stays intact
    // until read. Nothing on this kernel stack is needed afterwards: no
    // lock is held and the next entry begins at the stack's top.
    unsafe {
        core::arch::asm!(
            "jmp atoll_full_return",
            in("rdi") context as *const atoll_abi::boot::PreemptFrame,
            options(noreturn)
        )
    }
}

extern "C" {
    fn atoll_syscall_entry();
    fn atoll_rewritten_entry();
    fn atoll_exception_vectors();
    fn atoll_preempt_entry();
}

/// Address of the syscall entry, as the monitor must program LSTAR. The
/// monitor reads it from the ELF symbol; this keeps the symbol alive.
#[used]
static SYSCALL_ENTRY: unsafe extern "C" fn() = atoll_syscall_entry;
/// Same for the entry of rewritten syscall sites.
#[used]
static REWRITTEN_ENTRY: unsafe extern "C" fn() = atoll_rewritten_entry;
/// Same for the preemption upcall entry.
#[used]
static PREEMPT_ENTRY: unsafe extern "C" fn() = atoll_preempt_entry;
/// Same for the exception landing pads the IDT points at.
#[used]
static EXCEPTION_VECTORS: unsafe extern "C" fn() = atoll_exception_vectors;
