//! What the monitor hands the kernel at boot.
//!
//! The monitor writes one [`BootInfo`] into the system area and starts the
//! boot vCPU in ring 3 at the kernel entry with `rdi` pointing at it and the GS
//! base pointing at that CPU's [`CpuArea`]. All addresses are guest addresses.

use crate::queue::QueuePair;

/// "ATOLLBOO": identifies a [`BootInfo`].
pub const BOOT_MAGIC: u64 = 0x4f4f_424c_4c4f_5441;
/// Bumped on every incompatible change of the structures in this crate.
pub const BOOT_VERSION: u32 = 3;

/// Boot flags.
pub mod flags {
    /// Log every syscall, strace-style.
    pub const TRACE: u64 = 1 << 0;
    /// Print per-syscall counts at exit.
    pub const SYSCALL_SUMMARY: u64 = 1 << 1;
    /// Panic right after boot: tests the panic report end to end.
    pub const DEBUG_PANIC: u64 = 1 << 2;
}

/// A NUL-padded string of at most `N - 1` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    pub bytes: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    pub const EMPTY: Self = Self { bytes: [0; N] };

    /// Copies `text`, truncated so a terminating NUL always fits.
    pub fn new(text: &[u8]) -> Self {
        let mut bytes = [0; N];
        let len = text.len().min(N - 1);
        bytes[..len].copy_from_slice(&text[..len]);
        Self { bytes }
    }

    /// The bytes before the first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.bytes.iter().position(|&b| b == 0).unwrap_or(N);
        &self.bytes[..len]
    }
}

/// Linux `struct utsname` fields, 65 bytes each as the syscall returns them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Utsname {
    pub sysname: FixedStr<65>,
    pub nodename: FixedStr<65>,
    pub release: FixedStr<65>,
    pub version: FixedStr<65>,
    pub machine: FixedStr<65>,
    pub domainname: FixedStr<65>,
}

/// Process identity the isle reports (the atoll process's own).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Identity {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
}

/// Where the loaded program's pieces are.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ProgramInfo {
    /// Lowest and end address of the loaded segments.
    pub image_start: u64,
    pub image_end: u64,
    /// Entry point (already relocated for static-pie).
    pub entry: u64,
    /// Initial stack pointer: argc, argv, envp and auxv are there.
    pub stack_pointer: u64,
    /// The main stack's extent.
    pub stack_bottom: u64,
    pub stack_top: u64,
}

/// Clock calibration taken by the monitor just before the first instruction.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ClockInfo {
    /// Guest TSC frequency in kHz (from KVM_GET_TSC_KHZ).
    pub tsc_khz: u64,
    /// Guest TSC value at the instant the two clocks below were read.
    pub tsc_at_boot: u64,
    /// Host CLOCK_REALTIME at that instant, in ns since the epoch.
    pub realtime_ns: u64,
    /// Host CLOCK_MONOTONIC at that instant, in ns.
    pub monotonic_ns: u64,
}

impl ClockInfo {
    /// Nanoseconds per TSC tick as 32.32 fixed point: the one conversion
    /// the kernel and the vDSO both use.
    pub fn ns_per_tick_q32(&self) -> u64 {
        ((1_000_000u128 << 32) / u128::from(self.tsc_khz.max(1))) as u64
    }
}

/// Layout of the calibration at the start of the vDSO's code (see the
/// kernel's `arch::x86_64::vdso`): u64s at these offsets.
pub mod vdso_data {
    pub const TSC_AT_BOOT: usize = 0;
    pub const NS_PER_TICK_Q32: usize = 8;
    pub const MONOTONIC_NS: usize = 16;
    pub const REALTIME_NS: usize = 24;
    pub const SIZE: usize = 32;
}

/// The boot-info block.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BootInfo {
    pub magic: u64,
    pub version: u32,
    pub cpu_count: u32,
    pub flags: u64,
    /// Guest RAM is `0..ram_size`.
    pub ram_size: u64,
    /// Free memory for brk (growing up) and mmap (growing down).
    pub heap_start: u64,
    pub heap_end: u64,
    /// Physical extent of the kernel image (mapped at KERNEL_VIRT_BASE).
    pub kernel_phys_start: u64,
    pub kernel_phys_end: u64,
    /// The system area: boot info, descriptor tables, page tables, CPU areas.
    pub system_start: u64,
    pub system_end: u64,
    /// `cpu_count` [`CpuArea`]s, `cpu_area_stride` bytes apart.
    pub cpu_areas: u64,
    pub cpu_area_stride: u64,
    /// Bytes xsave needs for the features enabled in XCR0 (CPUID 0xD).
    pub xsave_size: u64,
    /// The PML4 (CR3). Identity-mapped like all RAM: the kernel edits the
    /// tables to enforce mprotect (see `crate::layout`).
    pub page_table_root: u64,
    /// Zeroed pages the kernel may use as page tables when it splits a
    /// 2 MiB mapping (for PROT_NONE guard pages).
    pub spare_page_tables: u64,
    pub spare_page_table_count: u64,
    pub program: ProgramInfo,
    pub clock: ClockInfo,
    pub identity: Identity,
    pub uname: Utsname,
    /// The program's path, as /proc/self/exe reports it.
    pub exe_path: FixedStr<256>,
    /// Makes the size a multiple of 8 so the struct has no padding bytes.
    pub reserved: [u8; 2],
}

/// Per-CPU area, addressed through the GS base by the syscall entry.
///
/// The first fields are read by assembly at fixed offsets (see the constants
/// below); keep them in place.
#[repr(C, align(4096))]
pub struct CpuArea {
    /// Scratch slot: the program's rsp while a syscall runs.
    pub user_rsp: u64,
    /// Top of this CPU's kernel stack.
    pub kernel_stack_top: u64,
    /// Guest address of this area (GS-relative code can't take `&`).
    pub self_addr: u64,
    pub cpu_index: u64,
    /// For [`crate::mmio::PARK`]: wake no later than this host CLOCK_MONOTONIC
    /// time in ns (0: only on a completion).
    pub park_deadline_ns: u64,
    /// Length of the message in `panic_message`.
    pub panic_len: u64,
    /// Odd while this CPU runs program code, even while it runs the kernel:
    /// bumped at every crossing. The monitor preempts only a CPU that stayed
    /// in program code for a whole tick.
    pub user_epoch: u64,
    /// Scratch: where a full register restore jumps to.
    pub resume_rip: u64,
    /// The kernel's panic message, for [`crate::mmio::PANIC`].
    pub panic_message: [u8; 1024],
    /// The program's registers at a preemption, saved by the monitor.
    pub preempt_frame: PreemptFrame,
    /// Scheduler hints for the monitor, kept in CPU 0's area: threads
    /// waiting for a CPU, and the earliest timed wait (CLOCK_MONOTONIC ns, 0: none).
    pub runnable_waiting: u64,
    pub next_deadline_ns: u64,
    /// This CPU's offload queue pair.
    pub queue: QueuePair,
}

/// Offsets of `CpuArea` fields used from assembly.
pub const CPU_AREA_USER_RSP: usize = 0;
pub const CPU_AREA_KERNEL_STACK_TOP: usize = 8;
pub const CPU_AREA_USER_EPOCH: usize = 48;
pub const CPU_AREA_RESUME_RIP: usize = 56;

/// All of a program's general registers, for preemption.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreemptFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub rsp: u64,
}

/// What an exception landing pad leaves on its stack, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExceptionFrame {
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors that push none.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn cpu_area_fields_match_the_assembly_offsets() {
        assert_eq!(offset_of!(CpuArea, user_rsp), CPU_AREA_USER_RSP);
        assert_eq!(
            offset_of!(CpuArea, kernel_stack_top),
            CPU_AREA_KERNEL_STACK_TOP
        );
        assert_eq!(offset_of!(CpuArea, user_epoch), CPU_AREA_USER_EPOCH);
        assert_eq!(offset_of!(CpuArea, resume_rip), CPU_AREA_RESUME_RIP);
        assert_eq!(size_of::<PreemptFrame>(), 18 * 8);
        assert_eq!(align_of::<CpuArea>(), 4096);
        assert_eq!(size_of::<CpuArea>() % 4096, 0);
    }

    #[test]
    fn fixed_str_truncates_and_terminates() {
        let s = FixedStr::<4>::new(b"abcdef");
        assert_eq!(s.as_bytes(), b"abc");
        assert_eq!(FixedStr::<8>::new(b"hi").as_bytes(), b"hi");
    }

    #[test]
    fn boot_info_has_no_padding() {
        let fields =
            16 * 8 + size_of::<ProgramInfo>() + size_of::<ClockInfo>() + size_of::<Identity>();
        let strings = 6 * 65 + 256 + 2;
        assert_eq!(size_of::<BootInfo>(), fields + strings);
        assert_eq!(size_of::<BootInfo>() % 8, 0);
    }

    #[test]
    fn exception_frame_is_seven_words() {
        assert_eq!(size_of::<ExceptionFrame>(), 56);
    }
}
