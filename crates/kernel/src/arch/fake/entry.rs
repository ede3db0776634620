//! The syscall frame, and no entry code.

pub use super::super::syscall_frame::SyscallFrame;

/// The simulated page tables have no TLB.
pub fn flush_tlb() {}

/// There is no program to return to in a host test.
pub fn return_to_program(_context: &atoll_abi::boot::PreemptFrame) -> ! {
    panic!("host tests never leave the kernel")
}
