//! Thread switching: kernel stacks, callee-saved registers, the extended
//! (x87/SSE/AVX) state, and the first return of a new thread to user mode.
//!
//! A thread is switched only inside the kernel (at a syscall, a preemption
//! upcall or in the idle loop), on its own kernel stack, so the program's
//! general registers are already saved in the frame there; only the
//! callee-saved ones of the kernel's own code, and the extended state the
//! kernel never touches (it is soft-float) but the next thread will, move.

use core::sync::atomic::AtomicU64;

use atoll_abi::boot::CPU_AREA_KERNEL_STACK_TOP;

use super::entry::SyscallFrame;

core::arch::global_asm!(
    r#"
    .text
    .global atoll_switch
    .p2align 4
atoll_switch:
    // rdi = where to save this context's rsp, rsi = the next context's rsp.
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdi)
    mov %rsi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    .global atoll_thread_start
    .p2align 4
atoll_thread_start:
    // A new thread's first run: %rsp points at its SyscallFrame, whose
    // callee-saved registers the return leaves to us.
    call {after_switch}
    mov {rbx}(%rsp), %rbx
    mov {rbp}(%rsp), %rbp
    mov {r12}(%rsp), %r12
    mov {r13}(%rsp), %r13
    mov {r14}(%rsp), %r14
    mov {r15}(%rsp), %r15
    jmp atoll_syscall_return
"#,
    after_switch = sym crate::sched::after_switch,
    rbx = const core::mem::offset_of!(SyscallFrame, rbx),
    rbp = const core::mem::offset_of!(SyscallFrame, rbp),
    r12 = const core::mem::offset_of!(SyscallFrame, r12),
    r13 = const core::mem::offset_of!(SyscallFrame, r13),
    r14 = const core::mem::offset_of!(SyscallFrame, r14),
    r15 = const core::mem::offset_of!(SyscallFrame, r15),
    options(att_syntax)
);

extern "C" {
    fn atoll_switch(save_rsp: *mut u64, next_rsp: u64);
    fn atoll_thread_start();
}

/// Callee-saved registers pushed by `atoll_switch`.
const SWITCH_WORDS: u64 = 6;

/// Switches from the running context, whose rsp goes to `save_rsp`, to the
/// one whose saved rsp is `next_rsp`. Returns when something switches back.
pub fn switch(save_rsp: &AtomicU64, next_rsp: u64) {
    // SAFETY: `next_rsp` was saved by a previous switch or built by
    // `prepare_new_thread`, so the stack there holds six callee-saved words
    // and a return address into kernel code; `save_rsp` outlives the switch.
    unsafe { atoll_switch(save_rsp.as_ptr(), next_rsp) }
}

/// Builds a new thread's kernel stack so that switching to it returns to
/// user mode with `frame`'s registers. Returns the rsp to switch to.
pub fn prepare_new_thread(stack_top: u64, frame: &SyscallFrame) -> u64 {
    let frame_size = core::mem::size_of::<SyscallFrame>() as u64;
    let frame_address = (stack_top - frame_size) & !15;
    let return_address = frame_address - 8;
    let saved_rsp = return_address - SWITCH_WORDS * 8;
    // SAFETY: the stack is fresh memory of this thread's own (at least a
    // page below `stack_top`), mapped and not yet in use by anyone.
    unsafe {
        core::ptr::write(frame_address as *mut SyscallFrame, *frame);
        core::ptr::write(
            return_address as *mut u64,
            atoll_thread_start as *const () as u64,
        );
        core::ptr::write_bytes(saved_rsp as *mut u64, 0, SWITCH_WORDS as usize);
    }
    saved_rsp
}

/// Saves the extended-state components in `mask` to `area` (64-byte
/// aligned, sized for every component of `mask`).
pub fn save_extended_state(area: u64, mask: u64) {
    // SAFETY: `area` is this thread's xsave buffer, large enough for the
    // components in `mask` (the caller sized it from CPUID 0xD for them);
    // xsave is native in ring 3.
    unsafe {
        core::arch::asm!(
            "xsave64 [{area}]",
            area = in(reg) area,
            in("eax") mask as u32,
            in("edx") (mask >> 32) as u32,
            options(nostack, preserves_flags)
        )
    }
}

/// Restores the extended-state components in `mask` from `area`.
pub fn restore_extended_state(area: u64, mask: u64) {
    // SAFETY: `area` holds a state saved by xsave with the same or a
    // smaller mask (or all zeros: every component in its initial state),
    // 64-byte aligned and sized for `mask`.
    unsafe {
        core::arch::asm!(
            "xrstor64 [{area}]",
            area = in(reg) area,
            in("eax") mask as u32,
            in("edx") (mask >> 32) as u32,
            options(nostack, preserves_flags)
        )
    }
}

/// The XCR0 in force: which state components the CPU really manages for
/// ring 3 (on kvm-pvm the host's, whatever the monitor asked for).
pub fn xcr0() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: xgetbv(0) only reads XCR0; CR4.OSXSAVE is set by the monitor,
    // so it is allowed at any privilege level.
    unsafe {
        core::arch::asm!(
            "xgetbv",
            in("ecx") 0u32,
            out("eax") low,
            out("edx") high,
            options(nomem, nostack, preserves_flags)
        )
    };
    u64::from(low) | (u64::from(high) << 32)
}

/// The privilege level we run at (3 on kvm-pvm; 0 in a syscall on hardware KVM).
pub fn current_cpl() -> u64 {
    let cs: u64;
    // SAFETY: reads the CS selector.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    cs & 3
}

/// Points this CPU's syscall entry at the running thread's kernel stack.
pub fn set_kernel_stack_top(top: u64) {
    // SAFETY: writes this CPU's own CpuArea slot, read only by this CPU's
    // syscall entry.
    unsafe {
        core::arch::asm!(
            "mov gs:[{offset}], {top}",
            offset = const CPU_AREA_KERNEL_STACK_TOP,
            top = in(reg) top,
            options(nostack, preserves_flags)
        )
    }
}
