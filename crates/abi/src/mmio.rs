//! Doorbells: the only ways an isle exits to its monitor.
//!
//! Each is one 8-byte MMIO write to `MMIO_BASE + offset`. A write from ring 3
//! costs about 18 µs on kvm-pvm, so none is on a hot path: the queues are polled.

/// Value: the exit status. The isle is done.
pub const EXIT: u64 = 0x00;
/// Value: the CPU index. The panic message is in that CPU's [`crate::boot::CpuArea`].
pub const PANIC: u64 = 0x08;
/// Written by the ring-0 exception landing pads. Value: guest address of the
/// [`crate::boot::ExceptionFrame`] on the exception stack.
pub const FAULT: u64 = 0x10;
/// Value: the CPU index. The host offload server is parked: wake it.
pub const WAKE_HOST: u64 = 0x18;
/// Value: the CPU index. Nothing to do until a completion arrives on this
/// CPU's queue, another CPU kicks it, or the deadline in the CPU's area
/// passes: park this vCPU's host thread.
pub const PARK: u64 = 0x20;
/// Value: a CPU index. Wake that vCPU if it is parked (it has work now).
pub const KICK: u64 = 0x28;
/// Value: a CPU index. The thread running there has a signal to act on
/// (its CPU area's `signal_upcall` is set): interrupt that vCPU now if it
/// runs program code, rather than at the ticker's next look.
pub const SIGNAL: u64 = 0x30;
/// Value: a signal number. The program was killed by it (its default
/// action): the isle is done, and its process ends as killed by it.
pub const KILLED: u64 = 0x38;
/// The program was replaced (execve): the host accepted the new one
/// ([`crate::queue::Opcode::Exec`]), and this isle is done.
pub const EXEC: u64 = 0x40;
/// Size of the doorbell page.
pub const SIZE: u64 = 0x1000;

/// In %eax at the kernel's `int3` that asks the ring-0 pad for a TLB flush
/// (the one thing the kernel needs ring 0 for). A monitor that takes
/// breakpoints itself (a debugger attached) does the flush in its place.
pub const TLB_FLUSH_MAGIC: u32 = 0x7f1c_5a5e;
