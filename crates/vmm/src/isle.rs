//! One isle, from ELF bytes to exit status: plan, load, boot, serve.

use std::path::PathBuf;
use std::sync::Arc;

use atoll_abi::boot::{
    BootInfo, ClockInfo, CpuArea, ExceptionFrame, FixedStr, ProgramInfo, BOOT_MAGIC, BOOT_VERSION,
};
use atoll_abi::layout::{align_down, align_up, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, PAGE_SIZE};
use atoll_abi::linux::auxv::*;
use atoll_abi::linux::signal::*;
use atoll_abi::mmio;
use vm_memory::{Bytes, GuestAddress};

use crate::files::{Files, FilesError, MountSpec};
use crate::host;
use crate::loader::{self, LoadError, Program};
use crate::memory::{GuestRam, MemoryError};
use crate::net::NetPolicy;
use crate::offload::Offload;
use crate::preempt::Preemption;
use crate::rewrite;
use crate::setup::{self, Layout, SetupError, StackSpec};
use crate::vcpu::{self, KvmError, VcpuEvent, VcpuStart};
use crate::vdso;

pub use crate::host::monotonic_ns;

/// How long an isle runs before the rest of its memory is populated.
const POPULATE_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// What to run and how.
pub struct IsleConfig<'a> {
    pub kvm_device: PathBuf,
    /// The kernel ELF (embedded in the atoll binary).
    pub kernel_image: &'a [u8],
    /// The program ELF.
    pub program_image: &'a [u8],
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// What /proc/self/exe resolves to.
    pub exe_path: Vec<u8>,
    /// Guest RAM in bytes.
    pub memory_size: u64,
    /// `atoll_abi::boot::flags`.
    pub flags: u64,
    /// Number of vCPUs.
    pub cpu_count: u64,
    /// Host core each vCPU thread is pinned to (none: not pinned).
    pub vcpu_cores: Vec<usize>,
    /// Host core for the offload service thread (none: not pinned).
    pub service_core: Option<usize>,
    /// What of the host's files the isle sees.
    pub mounts: Vec<MountSpec>,
    /// The isle's initial working directory (a guest path).
    pub cwd: String,
    /// What the isle may do on the network.
    pub net: NetPolicy,
    /// Rewrite the program's syscall sites into calls (see `rewrite`).
    pub rewrite: bool,
    /// Where to publish live figures for `atoll top` (a small JSON file,
    /// rewritten twice a second), if anywhere.
    pub stats_path: Option<PathBuf>,
    /// The NUMA node the isle's cores are on: its memory is bound there.
    pub numa_node: Option<u32>,
}

/// How the isle ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited with this status.
    Exited(u8),
    /// The program died of a fault, as if by `signal`.
    Killed { signal: u32, report: String },
    /// The isle itself failed: kernel panic, triple fault, KVM error.
    Crashed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IsleError {
    #[error("{0}")]
    Program(#[from] LoadError),
    #[error("the built-in kernel is broken: {0}")]
    Kernel(LoadError),
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Memory(#[from] MemoryError),
    #[error("{0}")]
    Kvm(#[from] KvmError),
    #[error("{0}")]
    Files(#[from] FilesError),
}

/// Parses the program only: lets callers report bad input before any KVM work.
pub fn check_program(image: &[u8]) -> Result<Program, LoadError> {
    loader::parse_program(image)
}

fn copy_segments(
    ram: &GuestRam,
    image: &[u8],
    segments: &[loader::Segment],
    to_physical: impl Fn(u64) -> u64,
) -> Result<(), SetupError> {
    for segment in segments {
        let bytes = &image
            [segment.file_offset as usize..(segment.file_offset + segment.file_size) as usize];
        ram.memory()
            .write_slice(bytes, GuestAddress(to_physical(segment.address)))
            .map_err(|error| SetupError::Memory(error.to_string()))?;
    }
    Ok(())
}

/// Writes the stubs of `plan` at `area` and patches its sites, in guest
/// memory, before any vCPU exists.
fn rewrite_sites(
    ram: &GuestRam,
    plan: &rewrite::Plan,
    area: u64,
    entry: u64,
) -> Result<(), SetupError> {
    let code = |address: u64, len: usize| {
        let mut bytes = vec![0u8; len];
        ram.memory()
            .read_slice(&mut bytes, GuestAddress(address))
            .ok()
            .map(|()| bytes)
    };
    let (stubs, patches) = rewrite::build(plan, area, entry, code);
    let write = |bytes: &[u8], address: u64| {
        ram.memory()
            .write_slice(bytes, GuestAddress(address))
            .map_err(|error| SetupError::Memory(error.to_string()))
    };
    write(&stubs, area)?;
    for (address, bytes) in patches {
        write(&bytes, address)?;
    }
    Ok(())
}

/// Writes the isle's offload figures to `path` twice a second, replacing
/// the file whole (write, then rename) so readers never see half of one.
fn publish_stats(offload: Arc<Offload>, path: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("atoll-stats".into())
        .spawn(move || {
            let temporary = path.with_extension("tmp");
            loop {
                let text = format!("{{\"offload_calls\": {}}}\n", offload.completed());
                if std::fs::write(&temporary, text)
                    .and_then(|()| std::fs::rename(&temporary, &path))
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "no stats thread");
    }
}

/// The monitor's part of `--syscall-summary`: what load-time rewriting did.
fn report_rewriting(enabled: bool, census: &rewrite::Census) {
    if !enabled {
        eprintln!("atoll: syscall sites: not rewritten (--no-rewrite)");
        return;
    }
    eprintln!(
        "atoll: syscall sites: {} found by decoding, {} rewritten, {} left trapping{}",
        census.proved,
        census.rewritten,
        census.unfit.len(),
        if census.undecodable_functions > 0 {
            format!(
                " ({} functions could not be decoded)",
                census.undecodable_functions
            )
        } else {
            String::new()
        }
    );
    for address in census.unfit.iter().take(20) {
        eprintln!("atoll:   left trapping: syscall at {address:#x} (no pattern fits)");
    }
    if census.unfit.len() > 20 {
        eprintln!("atoll:   ... and {} more", census.unfit.len() - 20);
    }
}

/// Boots an isle and runs the program to completion.
pub fn run(config: IsleConfig) -> Result<Outcome, IsleError> {
    let started = std::time::Instant::now();
    let program = loader::parse_program(config.program_image)?;
    let kernel = loader::parse_kernel(config.kernel_image).map_err(IsleError::Kernel)?;
    let cpu_count = config
        .cpu_count
        .clamp(1, atoll_abi::layout::MAX_CPUS as u64);
    let layout = Layout::plan(config.memory_size, cpu_count, kernel.span)?;
    let plan = if config.rewrite {
        rewrite::analyze_cached(config.program_image).biased(program.bias)
    } else {
        rewrite::Plan::default()
    };
    // The stubs go right after the image, within reach of a rel32 jump.
    let stub_area = align_up(program.image_end, PAGE_SIZE);
    // Then the vDSO (its size doesn't depend on the clock it carries).
    let vdso_base = align_up(stub_area + rewrite::stub_area_size(&plan), PAGE_SIZE);
    let vdso_size = vdso::image(&kernel.vdso, &ClockInfo::default()).len() as u64;
    let heap_start = align_up(vdso_base + vdso_size, PAGE_SIZE);
    layout.check_program(program.image_start, heap_start)?;
    let files = Files::new(&config.mounts, &config.cwd)?;
    let kvm = vcpu::open_kvm(&config.kvm_device)?;
    tracing::debug!(elapsed = ?started.elapsed(), "program parsed, KVM open");

    // Boot needs the program image, the top of the stack, the kernel and the
    // system area: the monitor's own writes below fault those huge pages in.
    // The rest is populated in the background once the program runs.
    let ram = Arc::new(GuestRam::new(config.memory_size)?);
    if let Some(node) = config.numa_node {
        let bound = ram.bind_to_node(node);
        tracing::debug!(node, bound, "guest memory bound to the isle's node");
    }
    let huge_start = align_up(heap_start, LARGE_PAGE_SIZE);
    let huge_end = align_down(layout.stack_bottom, LARGE_PAGE_SIZE);
    ram.advise_huge_pages(huge_start, huge_end.saturating_sub(huge_start));

    copy_segments(&ram, config.program_image, &program.segments, |address| {
        address
    })?;
    copy_segments(&ram, config.kernel_image, &kernel.segments, |address| {
        layout.kernel_physical(address)
    })?;
    rewrite_sites(&ram, &plan, stub_area, kernel.rewritten_entry)?;
    tracing::debug!(census = ?plan.census, "syscall sites rewritten");
    setup::write_page_tables(ram.memory(), &layout)?;
    setup::write_descriptor_tables(ram.memory(), &layout, kernel.exception_vectors)?;
    for cpu in 0..cpu_count {
        setup::write_cpu_area(ram.memory(), &layout, cpu)?;
    }

    tracing::debug!(elapsed = ?started.elapsed(), "guest memory written");
    let vm = vcpu::create_vm(&kvm, &ram)?;
    let cpuid = vcpu::guest_cpuid(&kvm)?;
    let identity = host::identity();
    let auxv = vec![
        (AT_PHDR, program.phdr_address),
        (AT_PHENT, program.phdr_entry_size),
        (AT_PHNUM, program.phdr_count),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, program.entry),
        (AT_UID, u64::from(identity.uid)),
        (AT_EUID, u64::from(identity.euid)),
        (AT_GID, u64::from(identity.gid)),
        (AT_EGID, u64::from(identity.egid)),
        (AT_SECURE, 0),
        (AT_HWCAP, vcpu::hwcap(&cpuid)),
        // No HWCAP2_FSGSBASE: GS holds the kernel's per-CPU pointer, so
        // programs must not be invited to move it (FS is theirs via arch_prctl).
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_SYSINFO_EHDR, vdso_base),
    ];
    let execfn = config.argv.first().cloned().unwrap_or_default();
    let stack_pointer = setup::write_initial_stack(
        ram.memory(),
        &layout,
        &StackSpec {
            argv: &config.argv,
            envp: &config.envp,
            execfn: &execfn,
            random: host::random_bytes(),
            auxv,
        },
    )?;

    let mut vcpus = Vec::with_capacity(cpu_count as usize);
    for index in 0..cpu_count {
        vcpus.push(vcpu::create_vcpu(
            &vm,
            &vcpu::cpuid_for(&cpuid, index),
            &layout,
            &VcpuStart {
                index,
                entry: kernel.entry,
                stack_top: layout.kernel_stack_top(index),
                boot_info: layout.boot_info,
                syscall_entry: kernel.syscall_entry,
            },
        )?);
    }

    tracing::debug!(elapsed = ?started.elapsed(), "vCPUs created");
    let clock = clock_info(&vcpus[0]);
    ram.memory()
        .write_slice(&vdso::image(&kernel.vdso, &clock), GuestAddress(vdso_base))
        .map_err(|error| SetupError::Memory(error.to_string()))?;
    let boot_info = BootInfo {
        magic: BOOT_MAGIC,
        version: BOOT_VERSION,
        cpu_count: cpu_count as u32,
        flags: config.flags,
        ram_size: config.memory_size,
        heap_start,
        heap_end: layout.heap_end,
        kernel_phys_start: layout.kernel_phys_start,
        kernel_phys_end: layout.kernel_phys_end,
        system_start: layout.system_start,
        system_end: config.memory_size,
        cpu_areas: layout.cpu_areas,
        cpu_area_stride: layout.cpu_area_stride,
        xsave_size: vcpu::xsave_size(&cpuid),
        page_table_root: layout.cr3(),
        spare_page_tables: layout.spare_page_tables,
        spare_page_table_count: setup::SPARE_PAGE_TABLES,
        program: ProgramInfo {
            image_start: program.image_start,
            image_end: program.image_end,
            entry: program.entry,
            stack_pointer,
            stack_bottom: layout.stack_bottom,
            stack_top: layout.stack_top,
        },
        clock,
        identity,
        uname: host::uname(),
        exe_path: FixedStr::new(&config.exe_path),
        reserved: [0; 2],
    };
    setup::write_boot_info(ram.memory(), &layout, &boot_info)?;

    ram.populate_in_background(
        POPULATE_DELAY,
        vec![(heap_start, layout.stack_top - heap_start)],
    );

    // Start serving just before the vCPUs run: the first request then finds
    // the server polling, and it doesn't compete with the setup above.
    let queues = (0..cpu_count)
        .map(|cpu| layout.cpu_area(cpu) + std::mem::offset_of!(CpuArea, queue) as u64)
        .collect();
    let offload = Offload::new(Arc::clone(&ram), queues, files, config.net.clone());
    offload.spawn(config.service_core);
    if let Some(path) = config.stats_path.clone() {
        publish_stats(Arc::clone(&offload), path);
    }
    tracing::debug!(
        elapsed = ?started.elapsed(),
        host_base = ram.host_base(),
        size = ram.size(),
        "entering the isle"
    );
    let preemption = Preemption::new(cpu_count as usize);
    preemption.spawn_ticker(Arc::clone(&ram), layout.clone(), config.service_core);
    let shared = Arc::new(Shared {
        ram,
        layout,
        offload,
        preemption,
        preempt_entry: kernel.preempt_entry,
        started,
    });
    let (outcomes, outcome) = std::sync::mpsc::channel();
    for (index, vcpu) in vcpus.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let outcomes = outcomes.clone();
        let core = config.vcpu_cores.get(index).copied();
        std::thread::Builder::new()
            .name(format!("atoll-vcpu{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    host::pin_current_thread(core);
                }
                shared.preemption.register_current_thread(index);
                let outcome = run_vcpu(&shared, vcpu, index);
                let _ = outcomes.send(outcome);
            })
            .expect("spawning a thread only fails when the host is out of resources");
    }
    let outcome = outcome
        .recv()
        .unwrap_or_else(|_| Outcome::Crashed("every vCPU thread died".into()));
    if config.flags & atoll_abi::boot::flags::SYSCALL_SUMMARY != 0 {
        report_rewriting(config.rewrite, &plan.census);
    }
    // The process exits next. Closing the VM here would unmap its state,
    // which waits for any populate still in flight.
    std::mem::forget(vm);
    Ok(outcome)
}

/// What every vCPU thread shares.
struct Shared {
    ram: Arc<GuestRam>,
    layout: Layout,
    offload: Arc<Offload>,
    preemption: Arc<Preemption>,
    preempt_entry: u64,
    started: std::time::Instant,
}

/// Runs vCPU `index` until the isle ends; returns how it ended.
fn run_vcpu(shared: &Shared, mut vcpu: kvm_ioctls::VcpuFd, index: usize) -> Outcome {
    let Shared {
        ram,
        layout,
        offload,
        preemption,
        preempt_entry,
        started,
    } = shared;
    let (mut exits, mut preemptions) = (0u64, 0u64);
    loop {
        exits += 1;
        let event = match vcpu::run(&mut vcpu) {
            Ok(event) => event,
            Err(error) => return Outcome::Crashed(error.to_string()),
        };
        tracing::debug!(elapsed = ?started.elapsed(), cpu = index, ?event, "vCPU exit");
        let outcome = match event {
            VcpuEvent::Interrupted => {
                if preemption.preempt_if_requested(&vcpu, index, ram, layout, *preempt_entry) {
                    preemptions += 1;
                }
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::EXIT,
                value,
            } => Outcome::Exited(value as u8),
            VcpuEvent::Doorbell {
                offset: mmio::WAKE_HOST,
                ..
            } => {
                offload.wake_server();
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::KICK,
                value,
            } => {
                offload.kick_vcpu(value as usize);
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::PARK, ..
            } => {
                // The vCPU's own index, not what the guest wrote.
                let area = layout.cpu_area(index as u64);
                let deadline = ram
                    .memory()
                    .read_obj::<u64>(GuestAddress(
                        area + std::mem::offset_of!(CpuArea, park_deadline_ns) as u64,
                    ))
                    .unwrap_or(0);
                offload.park_vcpu(index, deadline);
                match offload.failure() {
                    Some(failure) => Outcome::Crashed(failure.to_string()),
                    None => continue,
                }
            }
            VcpuEvent::Doorbell {
                offset: mmio::PANIC,
                ..
            } => Outcome::Crashed(format!(
                "kernel panic: {}",
                panic_message(ram, layout, index as u64)
            )),
            VcpuEvent::Doorbell {
                offset: mmio::FAULT,
                value,
            } => fault_outcome(ram, &vcpu, value),
            VcpuEvent::Doorbell { offset, value } => {
                Outcome::Crashed(format!("unknown doorbell {offset:#x} rung with {value:#x}"))
            }
            VcpuEvent::Shutdown => {
                Outcome::Crashed(format!("triple fault (rip {:#x})", vcpu::rip(&vcpu)))
            }
            VcpuEvent::InternalError => Outcome::Crashed(format!(
                "KVM could not emulate the instruction at rip {:#x}",
                vcpu::rip(&vcpu)
            )),
            VcpuEvent::Unexpected(what) => {
                Outcome::Crashed(format!("{what} (rip {:#x})", vcpu::rip(&vcpu)))
            }
        };
        tracing::debug!(cpu = index, exits, preemptions, "vCPU done");
        // Closing the vCPU would unmap its run area, which waits for any
        // populate in flight; the process is about to exit anyway.
        std::mem::forget(vcpu);
        return outcome;
    }
}

/// Samples the guest TSC and the host clocks together.
fn clock_info(vcpu: &kvm_ioctls::VcpuFd) -> ClockInfo {
    let tsc_khz = vcpu::tsc_khz(vcpu).unwrap_or_else(host::measure_tsc_khz);
    let before = host::monotonic_ns();
    let tsc_at_boot = vcpu::guest_tsc(vcpu).unwrap_or_else(host::rdtsc);
    let after = host::monotonic_ns();
    ClockInfo {
        tsc_khz,
        tsc_at_boot,
        realtime_ns: host::realtime_ns() - (host::monotonic_ns() - (before + after) / 2),
        monotonic_ns: (before + after) / 2,
    }
}

fn panic_message(ram: &GuestRam, layout: &Layout, cpu: u64) -> String {
    let area = layout.cpu_area(cpu);
    let len = ram
        .memory()
        .read_obj::<u64>(GuestAddress(
            area + std::mem::offset_of!(CpuArea, panic_len) as u64,
        ))
        .unwrap_or(0)
        .min(1024);
    let mut message = vec![0u8; len as usize];
    let _ = ram.memory().read_slice(
        &mut message,
        GuestAddress(area + std::mem::offset_of!(CpuArea, panic_message) as u64),
    );
    String::from_utf8_lossy(&message).replace('\n', " ")
}

fn read_frame(ram: &GuestRam, address: u64) -> Option<ExceptionFrame> {
    let mut words = [0u64; 7];
    for (index, word) in words.iter_mut().enumerate() {
        *word = ram
            .memory()
            .read_obj(GuestAddress(address.checked_add(index as u64 * 8)?))
            .ok()?;
    }
    let [vector, error_code, rip, cs, rflags, rsp, ss] = words;
    Some(ExceptionFrame {
        vector,
        error_code,
        rip,
        cs,
        rflags,
        rsp,
        ss,
    })
}

/// Turns an exception report into the signal Linux would have sent.
fn fault_outcome(ram: &GuestRam, vcpu: &kvm_ioctls::VcpuFd, frame_address: u64) -> Outcome {
    let Some(frame) = read_frame(ram, frame_address) else {
        return Outcome::Crashed(format!(
            "exception report with a bad frame address {frame_address:#x}"
        ));
    };
    let (signal, name, description) = match frame.vector {
        0 => (SIGFPE, "SIGFPE", "divide error".to_string()),
        1 | 3 => (SIGTRAP, "SIGTRAP", "breakpoint".to_string()),
        6 => (SIGILL, "SIGILL", "invalid opcode".to_string()),
        12 | 17 => (SIGBUS, "SIGBUS", "bus error".to_string()),
        16 | 19 => (SIGFPE, "SIGFPE", "floating-point exception".to_string()),
        13 => (SIGSEGV, "SIGSEGV", "general protection fault".to_string()),
        14 => {
            let address = vcpu::cr2(vcpu);
            let access = if frame.error_code & 0x10 != 0 {
                "instruction fetch"
            } else if frame.error_code & 0x2 != 0 {
                "write"
            } else {
                "read"
            };
            let cause = if frame.error_code & 0x1 != 0 {
                "protection violation"
            } else {
                "page not mapped"
            };
            (
                SIGSEGV,
                "SIGSEGV",
                format!("page fault at address {address:#x} ({access}, {cause})"),
            )
        }
        vector => (SIGSEGV, "SIGSEGV", format!("CPU exception {vector}")),
    };
    let in_kernel = frame.rip >= KERNEL_VIRT_BASE || frame.cs & 3 == 0;
    if in_kernel || frame.vector == 8 {
        return Outcome::Crashed(format!("kernel fault: {description}, rip {:#x}", frame.rip));
    }
    Outcome::Killed {
        signal,
        report: format!(
            "program killed by {name}: {description}, rip {:#x}",
            frame.rip
        ),
    }
}
