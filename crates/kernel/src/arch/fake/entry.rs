//! The syscall frame's fields the scheduler fills in, and no entry code.

/// What a new thread returns to user mode with (a subset of the real
/// frame's registers: those the scheduler sets, and the result it leaves).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyscallFrame {
    pub cpl: u64,
    pub rax: u64,
    pub rcx: u64,
    pub r11: u64,
    pub user_rsp: u64,
}

/// The simulated page tables have no TLB.
pub fn flush_tlb() {}
