//! What the monitor hands the kernel at boot.
//!
//! The monitor writes one [`BootInfo`] into the system area and starts the
//! boot vCPU in ring 3 at the kernel entry with `rdi` pointing at it and the GS
//! base pointing at that CPU's [`CpuArea`]. All addresses are guest addresses.

use crate::queue::QueuePair;

/// "ATOLLBOO": identifies a [`BootInfo`].
pub const BOOT_MAGIC: u64 = 0x4f4f_424c_4c4f_5441;
/// Bumped on every incompatible change of the structures in this crate.
pub const BOOT_VERSION: u32 = 6;

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
    /// Process group and session.
    pub pgid: u32,
    pub sid: u32,
    /// Supplementary groups: the first `group_count` of `groups`.
    pub group_count: u32,
    pub groups: [u32; MAX_GROUPS],
}

/// Most supplementary groups the isle reports (Linux allows 65,536;
/// users have a handful).
pub const MAX_GROUPS: usize = 31;

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
    /// Guest RAM is `0..ram_size`: address space, backed by the host only
    /// where the kernel asks (see `queue::Opcode::Memory`).
    pub ram_size: u64,
    /// Most heap memory the program may have backed at once (`-m`): past
    /// it brk, mmap and mprotect fail with ENOMEM.
    pub memory_limit: u64,
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
    /// The PML4 (CR3). Identity-mapped like all RAM: the kernel edits the
    /// tables to enforce mprotect (see `crate::layout`).
    pub page_table_root: u64,
    /// Zeroed pages the kernel may use as page tables when it splits a
    /// 2 MiB mapping (for PROT_NONE guard pages).
    pub spare_page_tables: u64,
    pub spare_page_table_count: u64,
    /// The memory map ([`crate::regions::RegionTable`]), in the system area.
    pub regions: u64,
    /// 0 at the first boot. A forked child's kernel starts on its parent's
    /// memory with the parent's generation + 1, and resumes the thread
    /// that forked (see the kernel's `sched::resume_after_fork`).
    pub generation: u64,
    /// What execve carries over from the program before: its blocked
    /// signals, and the signals it ignored (bit n - 1 for signal n).
    pub signals: ExecSignals,
    pub program: ProgramInfo,
    pub clock: ClockInfo,
    pub identity: Identity,
    pub uname: Utsname,
    /// The program's path, as /proc/self/exe reports it.
    pub exe_path: FixedStr<256>,
    /// Makes the size a multiple of 8 so the struct has no padding bytes.
    pub reserved: [u8; 2],
}

/// The signal state execve(2) keeps: the mask, and SIG_IGN dispositions
/// (handled signals go back to their defaults).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecSignals {
    pub blocked: u64,
    pub ignored: u64,
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
    /// The last final doorbell rung on this CPU (EXIT, PANIC or FAULT), or
    /// [`NO_DOORBELL`]: for a monitor whose doorbell writes don't exit
    /// (QEMU), which polls this instead.
    pub last_doorbell: u64,
    /// The value written with `last_doorbell`.
    pub last_doorbell_value: u64,
    /// %rax when the CPU took its last exception (the fault pads need the
    /// register): a debugger resumes the program with it.
    pub fault_rax: u64,
    /// CR2 at the last exception, left by the fault pad where the doorbell
    /// doesn't exit (QEMU), since that monitor can't read the register.
    pub fault_cr2: u64,
    /// Nonzero when a fault in program code goes to the kernel instead of
    /// the monitor (the program has a handler for a fault's signal): the
    /// ring-0 pad then saves what follows and enters the kernel's fault
    /// entry in ring 3.
    pub fault_upcall: u64,
    /// The program's registers at that fault.
    pub fault_frame: PreemptFrame,
    pub fault_vector: u64,
    pub fault_error_code: u64,
    /// The kernel's panic message, for [`crate::mmio::PANIC`].
    pub panic_message: [u8; 1024],
    /// The program's registers at a preemption, saved by the monitor.
    pub preempt_frame: PreemptFrame,
    /// Scheduler hints for the monitor, kept in CPU 0's area: threads
    /// waiting for a CPU, and the earliest timed wait (CLOCK_MONOTONIC ns, 0: none).
    pub runnable_waiting: u64,
    pub next_deadline_ns: u64,
    /// Nonzero when a signal waits for the thread running on this CPU: the
    /// monitor interrupts the CPU once it is in program code (a thread
    /// spinning there would otherwise see the signal only at its next
    /// syscall). The monitor clears it when it interrupts.
    pub signal_upcall: u64,
    /// Signals sent to atoll for the program (Ctrl-C's SIGINT, `atoll
    /// stop`'s SIGTERM), kept in CPU 0's area: the monitor sets byte N-1
    /// for signal N, then bumps `host_signals_raised`; the kernel clears
    /// the bytes as it takes them.
    pub host_signals: [u8; 64],
    pub host_signals_raised: u64,
    /// This CPU's offload queue pair.
    pub queue: QueuePair,
}

/// Offsets of `CpuArea` fields used from assembly.
pub const CPU_AREA_USER_RSP: usize = 0;
pub const CPU_AREA_KERNEL_STACK_TOP: usize = 8;
pub const CPU_AREA_USER_EPOCH: usize = 48;
pub const CPU_AREA_RESUME_RIP: usize = 56;
pub const CPU_AREA_LAST_DOORBELL: usize = 64;
pub const CPU_AREA_LAST_DOORBELL_VALUE: usize = 72;
pub const CPU_AREA_FAULT_RAX: usize = 80;
pub const CPU_AREA_FAULT_CR2: usize = 88;
/// `last_doorbell` before any final doorbell.
pub const NO_DOORBELL: u64 = u64::MAX;

/// What a vCPU that starts outside long mode (QEMU's PVH entry: 32-bit
/// protected mode, paging off) loads to reach the state the KVM monitor
/// sets directly. The monitor writes it at the kernel's
/// `atoll_long_mode_start`; the kernel's `atoll_pvh_entry` reads it.
/// Offsets are fixed for the assembly.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LongModeStart {
    /// GDT pseudo-descriptor: limit in bits 0-15, base from bit 16 (a
    /// 32-bit `lgdt` reads 6 bytes, a 64-bit one 10).
    pub gdt: [u64; 2],
    /// IDT pseudo-descriptor, the same way.
    pub idt: [u64; 2],
    /// Must be below 4 GiB (loaded before long mode).
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// The XCR0 components wanted; the entry keeps those the CPU offers.
    pub xcr0: u64,
    pub star: u64,
    pub lstar: u64,
    pub syscall_mask: u64,
    /// GS base, and KERNEL_GS_BASE: the CPU's area.
    pub gs_base: u64,
    pub tss_selector: u64,
    /// Ring-3 entry: rip, rsp and rdi.
    pub entry: u64,
    pub stack_top: u64,
    pub boot_info: u64,
    /// Clock handshake (QEMU's TSC starts at 0, not at the host's): the
    /// entry writes its TSC here (never 0), then waits for `tsc_ack`, which
    /// the monitor sets once it has moved the boot clock onto this TSC.
    pub guest_tsc: u64,
    pub tsc_ack: u64,
    /// On the boot CPU: how many other CPUs to start (INIT and SIPI to the
    /// real-mode trampoline at [`AP_TRAMPOLINE`]); 0 on the others.
    pub start_others: u64,
    /// Scratch stack for the far return into 64-bit code.
    pub scratch: [u64; 3],
}

/// Where the monitor puts the other CPUs' real-mode start (a 4 KiB page
/// below 1 MiB, in the unmapped NULL guard: no isle uses it).
pub const AP_TRAMPOLINE: u64 = 0x9000;

/// Offsets of `LongModeStart` fields used from assembly.
pub mod long_mode_start {
    pub const GDT: usize = 0;
    pub const IDT: usize = 16;
    pub const CR3: usize = 32;
    pub const CR4: usize = 40;
    pub const EFER: usize = 48;
    pub const XCR0: usize = 56;
    pub const STAR: usize = 64;
    pub const LSTAR: usize = 72;
    pub const SYSCALL_MASK: usize = 80;
    pub const GS_BASE: usize = 88;
    pub const TSS_SELECTOR: usize = 96;
    pub const ENTRY: usize = 104;
    pub const STACK_TOP: usize = 112;
    pub const BOOT_INFO: usize = 120;
    pub const GUEST_TSC: usize = 128;
    pub const TSC_ACK: usize = 136;
    pub const START_OTHERS: usize = 144;
    pub const SCRATCH_END: usize = 176;
    pub const SIZE: usize = 176;
    /// How many CPUs the kernel keeps room for.
    pub const MAX_CPUS: usize = 8;
}

impl LongModeStart {
    /// A pseudo-descriptor for `lgdt`/`lidt`.
    pub const fn descriptor_pointer(base: u64, limit: u16) -> [u64; 2] {
        [(base << 16) | limit as u64, base >> 48]
    }
}

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
        assert_eq!(offset_of!(CpuArea, last_doorbell), CPU_AREA_LAST_DOORBELL);
        assert_eq!(
            offset_of!(CpuArea, last_doorbell_value),
            CPU_AREA_LAST_DOORBELL_VALUE
        );
        assert_eq!(offset_of!(CpuArea, fault_rax), CPU_AREA_FAULT_RAX);
        assert_eq!(offset_of!(CpuArea, fault_cr2), CPU_AREA_FAULT_CR2);
        assert_eq!(size_of::<PreemptFrame>(), 18 * 8);
        assert_eq!(align_of::<CpuArea>(), 4096);
        assert_eq!(size_of::<CpuArea>() % 4096, 0);
    }

    #[test]
    fn long_mode_start_matches_the_assembly_offsets() {
        use long_mode_start as at;
        assert_eq!(offset_of!(LongModeStart, gdt), at::GDT);
        assert_eq!(offset_of!(LongModeStart, idt), at::IDT);
        assert_eq!(offset_of!(LongModeStart, cr3), at::CR3);
        assert_eq!(offset_of!(LongModeStart, cr4), at::CR4);
        assert_eq!(offset_of!(LongModeStart, efer), at::EFER);
        assert_eq!(offset_of!(LongModeStart, xcr0), at::XCR0);
        assert_eq!(offset_of!(LongModeStart, star), at::STAR);
        assert_eq!(offset_of!(LongModeStart, lstar), at::LSTAR);
        assert_eq!(offset_of!(LongModeStart, syscall_mask), at::SYSCALL_MASK);
        assert_eq!(offset_of!(LongModeStart, gs_base), at::GS_BASE);
        assert_eq!(offset_of!(LongModeStart, tss_selector), at::TSS_SELECTOR);
        assert_eq!(offset_of!(LongModeStart, entry), at::ENTRY);
        assert_eq!(offset_of!(LongModeStart, stack_top), at::STACK_TOP);
        assert_eq!(offset_of!(LongModeStart, boot_info), at::BOOT_INFO);
        assert_eq!(offset_of!(LongModeStart, guest_tsc), at::GUEST_TSC);
        assert_eq!(offset_of!(LongModeStart, tsc_ack), at::TSC_ACK);
        assert_eq!(offset_of!(LongModeStart, start_others), at::START_OTHERS);
        assert_eq!(
            offset_of!(LongModeStart, scratch) + size_of::<[u64; 3]>(),
            at::SCRATCH_END
        );
        assert_eq!(size_of::<LongModeStart>(), at::SIZE);
    }

    #[test]
    fn descriptor_pointers_put_the_limit_first_then_the_base() {
        let pointer = LongModeStart::descriptor_pointer(0x1234_5678_9abc_def0, 0x2f);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&pointer[0].to_le_bytes());
        bytes[8..].copy_from_slice(&pointer[1].to_le_bytes());
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), 0x2f);
        let base = u64::from_le_bytes(bytes[2..10].try_into().unwrap());
        assert_eq!(base, 0x1234_5678_9abc_def0);
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
            20 * 8 + size_of::<ProgramInfo>() + size_of::<ClockInfo>() + size_of::<Identity>();
        let strings = 6 * 65 + 256 + 2;
        assert_eq!(size_of::<BootInfo>(), fields + strings);
        assert_eq!(size_of::<BootInfo>() % 8, 0);
    }

    #[test]
    fn exception_frame_is_seven_words() {
        assert_eq!(size_of::<ExceptionFrame>(), 56);
    }
}
