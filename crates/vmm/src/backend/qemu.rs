//! QEMU as a backend: full x86 semantics in software (TCG), for hosts
//! without a usable /dev/kvm and to run the kernel's hardware-KVM paths
//! (LSTAR at CPL 0 and `sysretq`, exceptions into ring 0) where our KVM is
//! kvm-pvm.
//!
//! - **Memory.** Guest RAM is a memfd that atoll maps and QEMU inherits and
//!   maps again (`memory-backend-file` on `/proc/self/fd/N`, `share=on`), so atoll
//!   writes the whole boot image (kernel, program, page tables, boot info)
//!   before QEMU starts, and the offload server serves the rings in it by
//!   polling, exactly as with KVM. QEMU gets 16 MiB more than the isle:
//!   its firmware keeps its tables at the top of RAM.
//! - **Boot.** A `microvm` machine boots a tiny ELF whose PVH note points
//!   at the kernel's `atoll_pvh_entry` (already in RAM); that code loads
//!   the `LongModeStart` atoll leaves in the kernel image and enters the
//!   kernel in ring 3, as the KVM monitor starts a vCPU.
//! - **Doorbells.** MMIO writes to the doorbell page reach nothing in QEMU,
//!   so parking turns into polling, and the final doorbells (exit, panic,
//!   fault) are read from each CPU's area, where the kernel also leaves
//!   them.
//! - **Several vCPUs.** The boot CPU's entry starts the others (INIT and
//!   SIPI) at a real-mode trampoline atoll copies below 1 MiB; each loads
//!   its own `LongModeStart`.
//! - **Limits.** At most 8 vCPUs and 2 GiB, no preemption of a thread that
//!   never enters the kernel.
#![allow(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atoll_abi::boot::{
    long_mode_start, ClockInfo, LongModeStart, AP_TRAMPOLINE, CPU_AREA_FAULT_CR2,
    CPU_AREA_LAST_DOORBELL, CPU_AREA_LAST_DOORBELL_VALUE, NO_DOORBELL,
};
use atoll_abi::layout::selector;
use vm_memory::{Bytes, GuestAddress};

use super::{Backend, BootPlan, GuestCpu, Running};
use crate::guest::memory::GuestRam;
use crate::guest::AbiPlainData;
use crate::host;
use crate::isle::{doorbell_outcome, IsleError, Outcome};
use crate::offload::Offload;

/// Room above the isle's RAM for QEMU's firmware tables.
const FIRMWARE_ROOM: u64 = 16 << 20;
/// The most RAM a QEMU isle can have: microvm keeps RAM below 3 GiB in
/// one piece at guest-physical 0, and the PVH entry needs page tables
/// below 4 GiB.
pub const MAX_MEMORY: u64 = 2 << 30;
/// How often atoll looks at the final doorbells and at QEMU.
const POLL: Duration = Duration::from_micros(200);
/// The XCR0 components wanted under QEMU: x87, SSE, AVX and AVX-512; the
/// PVH entry keeps those the emulated CPU offers (TCG has AVX, not AVX-512).
const XCR0_WANTED: u64 = atoll_abi::xstate::X87
    | atoll_abi::xstate::SSE
    | atoll_abi::xstate::AVX
    | atoll_abi::xstate::AVX512;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QemuOptions {
    /// Serve GDB (QEMU's own stub) before the first instruction.
    pub gdb: Option<super::GdbOptions>,
    /// The QEMU binary (default: qemu-system-x86_64 in PATH).
    pub binary: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("QEMU isn't installed (no qemu-system-x86_64 in PATH): install it (apt-get install qemu-system-x86)")]
    Missing,
    #[error("the QEMU backend runs at most 8 vCPUs: use -c 8 or fewer, or KVM for more")]
    Cores,
    #[error("the QEMU backend runs isles of at most 2 GiB: use -m 2G or less")]
    Memory,
    #[error("cannot start QEMU: {0}")]
    Start(std::io::Error),
    #[error("cannot prepare the QEMU boot: {0}")]
    Boot(String),
}

pub struct QemuBackend {
    options: QemuOptions,
    binary: PathBuf,
    memory_size: u64,
    cpu_count: u64,
    ram_file: Option<std::fs::File>,
    boot_elf: Option<PathBuf>,
    /// Guest-physical address of the kernel's `LongModeStart`.
    long_mode_start: u64,
}

/// Where QEMU logs exceptions and resets: `ATOLL_QEMU_LOG`, else a file
/// of this process's that is removed when QEMU has ended.
fn qemu_log_path() -> (PathBuf, bool) {
    match std::env::var_os("ATOLL_QEMU_LOG") {
        Some(path) => (PathBuf::from(path), true),
        None => (
            std::env::temp_dir().join(format!("atoll-qemu-{}.log", std::process::id())),
            false,
        ),
    }
}

/// What QEMU's log says about an end no doorbell explains: a triple
/// fault, with the rip of the last exception taken before it.
fn crash_report(log: &str) -> Option<String> {
    if !log.contains("Triple fault") {
        return None;
    }
    let rip = log
        .lines()
        .rev()
        .filter(|line| line.contains(" v=") && line.contains(" IP="))
        .find_map(|line| {
            let address = line.split(" IP=").nth(1)?.split_whitespace().next()?;
            u64::from_str_radix(address.split(':').nth(1)?, 16).ok()
        });
    Some(match rip {
        Some(rip) => format!("triple fault (rip {rip:#x})"),
        None => "triple fault".to_string(),
    })
}

/// qemu-system-x86_64 in PATH.
fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("qemu-system-x86_64"))
        .find(|candidate| candidate.is_file())
}

/// Whether this host can run the QEMU backend.
pub fn available() -> bool {
    find_qemu().is_some()
}

impl QemuBackend {
    pub fn open(options: QemuOptions, cpu_count: u64, memory_size: u64) -> Result<Self, IsleError> {
        let binary = options
            .binary
            .clone()
            .or_else(find_qemu)
            .ok_or(QemuError::Missing)?;
        if cpu_count as usize > long_mode_start::MAX_CPUS {
            return Err(QemuError::Cores.into());
        }
        if memory_size > MAX_MEMORY {
            return Err(QemuError::Memory.into());
        }
        Ok(Self {
            options,
            binary,
            memory_size,
            cpu_count,
            ram_file: None,
            boot_elf: None,
            long_mode_start: 0,
        })
    }

    fn log_path(&self) -> PathBuf {
        qemu_log_path().0
    }

    fn command(&self, ram_fd: i32, boot_elf: &Path, cores: Vec<usize>) -> Command {
        let total = self.memory_size + FIRMWARE_ROOM;
        let mut command = Command::new(&self.binary);
        command
            .args([
                "-machine",
                "microvm,memory-backend=ram,rtc=off,pit=off,pic=off,isa-serial=off",
            ])
            .args(["-accel", "tcg", "-cpu", "max", "-smp"])
            .arg(self.cpu_count.to_string())
            .arg("-m")
            .arg(format!("{}M", total >> 20))
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=ram,size={total},mem-path=/proc/self/fd/{ram_fd},share=on"
            ))
            .arg("-kernel")
            .arg(boot_elf)
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", "none", "-monitor", "none", "-parallel", "none"])
            // A triple fault ends QEMU instead of booting the isle again;
            // its log of exceptions and resets says where (`crash_report`).
            .arg("-no-reboot")
            .args(["-d", "int,cpu_reset,guest_errors", "-D"])
            .arg(self.log_path());
        if let Some(gdb) = &self.options.gdb {
            command
                .arg("-gdb")
                .arg(format!("tcp:127.0.0.1:{}", gdb.port))
                .arg("-S");
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: in the child before exec, fcntl lets QEMU inherit the RAM
        // memfd (its mem-path is /proc/self/fd/N), prctl sets its
        // parent-death signal (QEMU then dies with atoll, however atoll
        // ends) and sched_setaffinity pins it to the isle's core; none
        // touches memory shared with the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                if libc::fcntl(ram_fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if !cores.is_empty() {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    for &core in &cores {
                        libc::CPU_SET(core, &mut set);
                    }
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                }
                Ok(())
            });
        }
        command
    }
}

/// A minimal 32-bit ELF for QEMU's `-kernel`: one byte loaded out of the
/// way and a Xen PVH note naming `entry` (a physical address below 4 GiB).
pub fn pvh_boot_elf(entry: u32, scratch: u32) -> Vec<u8> {
    const EHDR: usize = 52;
    const PHDR: usize = 32;
    let note_offset = EHDR + 2 * PHDR;
    // namesz, descsz, type (XEN_ELFNOTE_PHYS32_ENTRY), "Xen\0", entry.
    let mut note = Vec::new();
    note.extend(4u32.to_le_bytes());
    note.extend(4u32.to_le_bytes());
    note.extend(18u32.to_le_bytes());
    note.extend(b"Xen\0");
    note.extend(entry.to_le_bytes());
    let load_offset = note_offset + note.len();
    let mut elf = Vec::new();
    elf.extend(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(3u16.to_le_bytes()); // EM_386
    elf.extend(1u32.to_le_bytes());
    elf.extend(entry.to_le_bytes());
    elf.extend((EHDR as u32).to_le_bytes()); // e_phoff
    elf.extend(0u32.to_le_bytes()); // e_shoff
    elf.extend(0u32.to_le_bytes()); // e_flags
    elf.extend((EHDR as u16).to_le_bytes());
    elf.extend((PHDR as u16).to_le_bytes());
    elf.extend(2u16.to_le_bytes()); // e_phnum
    elf.extend([0u8; 6]); // no sections
    let phdr = |kind: u32, offset: usize, address: u32, size: usize, flags: u32| {
        let mut header = Vec::new();
        for field in [
            kind,
            offset as u32,
            address,
            address,
            size as u32,
            size as u32,
            flags,
            4,
        ] {
            header.extend(field.to_le_bytes());
        }
        header
    };
    elf.extend(phdr(1, load_offset, scratch, 1, 5)); // PT_LOAD, r-x
    elf.extend(phdr(4, note_offset, 0, note.len(), 4)); // PT_NOTE
    elf.extend(note);
    elf.push(0xf4); // hlt: never run
    elf
}

/// This host's CPUID leaf 1 EDX: AT_HWCAP (QEMU's `max` CPU offers these
/// base features).
fn host_hwcap() -> u64 {
    u64::from(std::arch::x86_64::__cpuid(1).edx)
}

impl Backend for QemuBackend {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn guest_ram(&mut self, size: u64) -> Result<GuestRam, IsleError> {
        let (ram, file) = GuestRam::new_shared(size, FIRMWARE_ROOM)?;
        self.ram_file = Some(file);
        Ok(ram)
    }

    fn prepare(&mut self, boot: &BootPlan) -> Result<GuestCpu, IsleError> {
        let layout = boot.layout;
        let kernel = boot.kernel;
        let physical = |virtual_address: u64| layout.kernel_physical(virtual_address);
        let cr3 = layout.cr3();
        let entry = physical(kernel.pvh_entry);
        if cr3 >= 1 << 32 || entry >= 1 << 32 {
            return Err(QemuError::Memory.into());
        }
        let gdt_limit = (selector::gdt_entries(layout.cpu_count) * 8 - 1) as u16;
        self.long_mode_start = physical(kernel.long_mode_start);
        let memory = boot.ram.memory();
        for cpu in 0..boot.cpu_count {
            let start = LongModeStart {
                gdt: LongModeStart::descriptor_pointer(layout.gdt, gdt_limit),
                idt: LongModeStart::descriptor_pointer(layout.idt, 32 * 16 - 1),
                cr3,
                cr4: crate::backend::kvm::vcpu::GUEST_CR4,
                efer: crate::backend::kvm::vcpu::GUEST_EFER,
                xcr0: XCR0_WANTED,
                star: crate::backend::kvm::vcpu::guest_star(),
                lstar: kernel.syscall_entry,
                syscall_mask: crate::backend::kvm::vcpu::SYSCALL_FLAG_MASK,
                gs_base: layout.cpu_area(cpu),
                tss_selector: u64::from(selector::tss(cpu)),
                entry: kernel.entry,
                stack_top: layout.kernel_stack_top(cpu),
                boot_info: layout.boot_info,
                guest_tsc: 0,
                // Only the boot CPU waits for the clock handshake.
                tsc_ack: u64::from(cpu != 0),
                start_others: if cpu == 0 { boot.cpu_count - 1 } else { 0 },
                scratch: [0; 3],
            };
            let at = self.long_mode_start + cpu * long_mode_start::SIZE as u64;
            memory
                .write_obj(AbiPlainData(start), GuestAddress(at))
                .map_err(|error| QemuError::Boot(error.to_string()))?;
        }
        if boot.cpu_count > 1 {
            // The other CPUs' real-mode start, below 1 MiB, told where the
            // LongModeStart array and the 32-bit entry are.
            let (begin, end) = kernel.ap_trampoline;
            let mut code = vec![0u8; (end - begin) as usize];
            let slot = |symbol: u64| AP_TRAMPOLINE + (symbol - begin);
            memory
                .read_slice(&mut code, GuestAddress(physical(begin)))
                .and_then(|()| memory.write_slice(&code, GuestAddress(AP_TRAMPOLINE)))
                .and_then(|()| {
                    memory.write_obj(
                        self.long_mode_start as u32,
                        GuestAddress(slot(kernel.ap_starts)),
                    )
                })
                .and_then(|()| {
                    memory.write_obj(
                        physical(kernel.pvh_long_mode) as u32,
                        GuestAddress(slot(kernel.ap_long_mode)),
                    )
                })
                .map_err(|error| QemuError::Boot(error.to_string()))?;
        }
        // The ELF's one loaded byte goes in the NULL guard: unused memory.
        let elf = pvh_boot_elf(entry as u32, 0x8000);
        let path = std::env::temp_dir().join(format!("atoll-pvh-{}.elf", std::process::id()));
        std::fs::write(&path, elf).map_err(|error| QemuError::Boot(error.to_string()))?;
        self.boot_elf = Some(path);
        // TCG's TSC ticks at the host's rate but from QEMU's start: these
        // are set again by the clock handshake (`sync_clock`).
        let before = host::monotonic_ns();
        let tsc_at_boot = host::rdtsc();
        let after = host::monotonic_ns();
        Ok(GuestCpu {
            hwcap: host_hwcap(),
            clock: ClockInfo {
                tsc_khz: host::measure_tsc_khz(),
                tsc_at_boot,
                realtime_ns: host::realtime_ns() - (host::monotonic_ns() - (before + after) / 2),
                monotonic_ns: (before + after) / 2,
            },
        })
    }

    fn configure_offload(&self, offload: &Arc<Offload>) {
        // WAKE_HOST never arrives: a parked server looks again on its own.
        offload.set_park_recheck(POLL);
    }

    fn run(self: Box<Self>, isle: Running) -> Outcome {
        use std::os::fd::AsRawFd;
        let (Some(ram_file), Some(boot_elf)) = (&self.ram_file, &self.boot_elf) else {
            return Outcome::Crashed("the QEMU backend ran before it was prepared".into());
        };
        let spawned = self
            .command(ram_file.as_raw_fd(), boot_elf, isle.vcpu_cores.clone())
            .spawn();
        let mut qemu = match spawned {
            Ok(child) => child,
            Err(error) => return Outcome::Crashed(QemuError::Start(error).to_string()),
        };
        if let Some(gdb) = &self.options.gdb {
            eprintln!("{}", gdb.hint());
        }
        let stderr = qemu.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        let outcome = match sync_clock(&mut qemu, &isle, self.long_mode_start) {
            Ok(()) => watch(&mut qemu, &isle),
            Err(()) => None,
        };
        let _ = qemu.kill();
        let status = qemu.wait();
        let _ = std::fs::remove_file(boot_elf);
        let (log_path, log_kept) = qemu_log_path();
        // Read only when no doorbell explains the end.
        let log = match outcome {
            Some(_) => String::new(),
            None => std::fs::read_to_string(&log_path).unwrap_or_default(),
        };
        if !log_kept {
            let _ = std::fs::remove_file(&log_path);
        }
        if let Some(outcome) = outcome {
            return outcome;
        }
        if let Some(report) = crash_report(&log) {
            return Outcome::Crashed(report);
        }
        let said = stderr
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        let said = said.lines().last().unwrap_or("").trim().to_string();
        Outcome::Crashed(format!(
            "QEMU stopped ({}){}",
            status.map_or_else(|error| error.to_string(), |status| status.to_string()),
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ))
    }
}

/// The clock handshake with the PVH entry: QEMU's TSC counts from when
/// it started, so once the entry publishes its TSC, the guest's clocks are
/// calibrated again: that TSC value, and the host clocks read at once.
/// Err: QEMU ended first.
fn sync_clock(qemu: &mut Child, isle: &Running, start: u64) -> Result<(), ()> {
    use atoll_abi::boot::long_mode_start as at;
    let memory = isle.ram.memory();
    let spin_until = std::time::Instant::now() + Duration::from_secs(2);
    let guest_tsc = loop {
        let published: u64 = memory
            .read_obj(GuestAddress(start + at::GUEST_TSC as u64))
            .unwrap_or(0);
        if published != 0 {
            break published;
        }
        if matches!(qemu.try_wait(), Ok(Some(_)) | Err(_)) {
            return Err(());
        }
        // Spinning keeps the offset to about a microsecond; after a while
        // (a slow boot, or GDB holding the CPU) sleeping will do.
        if std::time::Instant::now() < spin_until {
            for _ in 0..1000 {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    };
    let monotonic_ns = host::monotonic_ns();
    let realtime_ns = host::realtime_ns();
    for slots in &isle.clock_slots {
        let _ = memory.write_obj(guest_tsc, GuestAddress(slots.tsc_at_boot));
        let _ = memory.write_obj(monotonic_ns, GuestAddress(slots.monotonic_ns));
        let _ = memory.write_obj(realtime_ns, GuestAddress(slots.realtime_ns));
    }
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    let _ = memory.write_obj(1u64, GuestAddress(start + at::TSC_ACK as u64));
    Ok(())
}

/// Polls the final doorbells until one is rung, the offload server fails,
/// or QEMU ends (None).
fn watch(qemu: &mut Child, isle: &Running) -> Option<Outcome> {
    let cpus = isle.layout.cpu_count;
    loop {
        for cpu in 0..cpus {
            let area = isle.layout.cpu_area(cpu);
            let offset: u64 = isle
                .ram
                .memory()
                .read_obj(GuestAddress(area + CPU_AREA_LAST_DOORBELL as u64))
                .unwrap_or(NO_DOORBELL);
            if offset != NO_DOORBELL {
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                let value: u64 = isle
                    .ram
                    .memory()
                    .read_obj(GuestAddress(area + CPU_AREA_LAST_DOORBELL_VALUE as u64))
                    .unwrap_or(0);
                let cr2: Option<u64> = isle
                    .ram
                    .memory()
                    .read_obj(GuestAddress(area + CPU_AREA_FAULT_CR2 as u64))
                    .ok();
                return Some(doorbell_outcome(
                    &isle.ram,
                    &isle.layout,
                    cpu,
                    offset,
                    value,
                    cr2,
                ));
            }
        }
        if let Some(failure) = isle.offload.failure() {
            return Some(Outcome::Crashed(failure.to_string()));
        }
        if matches!(qemu.try_wait(), Ok(Some(_)) | Err(_)) {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triple_fault_is_found_in_the_log_with_the_last_exception_rip() {
        let log = "CPU Reset (CPU 0)\n\
            check_exception old: 0xffffffff new 0xd\n\
             1: v=0e e=0002 i=0 cpl=3 IP=0033:00000000004010ad pc=00000000004010ad SP=002b:0000000003ffff00\n\
            check_exception old: 0xe new 0xd\n\
            Triple fault\n";
        assert_eq!(
            crash_report(log).as_deref(),
            Some("triple fault (rip 0x4010ad)")
        );
        assert_eq!(crash_report("CPU Reset (CPU 0)\n"), None);
    }

    #[test]
    fn the_boot_elf_carries_a_pvh_note_with_the_entry() {
        let elf = pvh_boot_elf(0x7fe0_1000, 0x8000);
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 1, "ELF32");
        let note = elf.windows(4).position(|w| w == b"Xen\0").unwrap();
        assert_eq!(
            u32::from_le_bytes(elf[note - 4..note].try_into().unwrap()),
            18
        );
        assert_eq!(
            u32::from_le_bytes(elf[note + 4..note + 8].try_into().unwrap()),
            0x7fe0_1000
        );
    }
}
