//! The registers the syscall entry saves, shared with the host tests' fake
//! arch so the kernel's logic builds and reads frames the same way there.

/// Registers saved by the syscall entry, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SyscallFrame {
    /// Privilege level the entry ran at (3 on kvm-pvm, 0 on hardware KVM).
    pub cpl: u64,
    /// Syscall number on entry, result on return.
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    /// The program's return address.
    pub rcx: u64,
    /// The program's rflags.
    pub r11: u64,
    /// The program's stack pointer.
    pub user_rsp: u64,
    /// 1 when the call came through a rewritten site, 0 when it trapped.
    pub rewritten: u64,
    /// The program's callee-saved registers: saved so that a signal frame
    /// holds every register, and restored so that a new thread starts with
    /// its parent's (as Linux's clone does).
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}
