//! No context switches: the tests drive the scheduler's queues directly.

use core::sync::atomic::AtomicU64;

use super::entry::SyscallFrame;

pub fn switch(_save_rsp: &AtomicU64, _next_rsp: u64) {
    panic!("a host test switched contexts");
}

pub fn prepare_new_thread(stack_top: u64, _frame: &SyscallFrame) -> u64 {
    stack_top
}

pub fn save_extended_state(_area: u64, _mask: u64) {}

pub fn restore_extended_state(_area: u64, _mask: u64) {}

/// x87 and SSE only.
pub fn xcr0() -> u64 {
    0b11
}

pub fn current_cpl() -> u64 {
    3
}

pub fn set_kernel_stack_top(_top: u64) {}

/// MXCSR's reset value: nothing raised, everything masked.
pub fn mxcsr() -> u32 {
    0x1f80
}
