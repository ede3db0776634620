//! One isle, from ELF bytes to exit status: plan, load, boot, serve.

use std::path::PathBuf;
use std::sync::Arc;

use atoll_abi::boot::{
    vdso_data, BootInfo, ClockInfo, CpuArea, ExceptionFrame, FixedStr, ProgramInfo, BOOT_MAGIC,
    BOOT_VERSION,
};
use atoll_abi::layout::{align_down, align_up, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, PAGE_SIZE};
use atoll_abi::linux::auxv::*;
use atoll_abi::linux::signal::*;
use atoll_abi::mmio;
use vm_memory::{Bytes, GuestAddress};

use crate::backend::kvm::vcpu::KvmError;
use crate::backend::{self, BackendChoice, BootPlan, ClockSlots, Running};
use crate::guest::memory::{GuestRam, MemoryError};
use crate::guest::regions;
use crate::guest::setup::{self, Layout, SetupError, StackSpec};
use crate::host;
use crate::image::loader::{self, LoadError, Program};
use crate::image::rewrite;
use crate::image::vdso;
use crate::offload::net::NetPolicy;
use crate::offload::Offload;
use crate::sandbox::{Files, FilesError, MountSpec, DEVICES};

pub use crate::host::monotonic_ns;

/// What to run and how.
pub struct IsleConfig<'a> {
    /// What runs the vCPUs.
    pub backend: BackendChoice,
    /// The kernel ELF (embedded in the atoll binary).
    pub kernel_image: &'a [u8],
    /// The program ELF (kept: /proc/self/exe may run it again).
    pub program_image: Arc<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// What /proc/self/exe resolves to.
    pub exe_path: Vec<u8>,
    /// Guest RAM in bytes: address space, backed only where used.
    pub memory_size: u64,
    /// Most heap memory the program may use (`-m`), at most `memory_size`.
    pub memory_limit: u64,
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
    /// Guest paths the isle can't open or list, though a mount holds them
    /// (the host's secrets in its /etc).
    pub hidden_paths: Vec<String>,
    /// Guest paths of mounts nothing but this isle can see (its private
    /// /tmp and /dev/shm).
    pub private_dirs: Vec<String>,
    /// The isle's initial working directory (a guest path).
    pub cwd: String,
    /// The uid and gid the program runs as (an image's User, `-u`); none:
    /// atoll's own.
    pub user: Option<(u32, u32)>,
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
    /// The program was replaced by execve: [`run`] boots the next isle and
    /// never returns this.
    Exec,
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
    Qemu(#[from] crate::backend::qemu::QemuError),
    #[error("{0}")]
    Gdb(String),
    #[error("{0}")]
    Files(#[from] FilesError),
    #[error("{0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

/// Parses the program only: lets callers report bad input before any KVM work.
pub fn check_program(image: &[u8]) -> Result<Program, LoadError> {
    loader::parse_program(image)
}

/// How much of a program [`check_program_start`] wants: its ELF header,
/// or a script's first line.
pub const PROGRAM_START_SIZE: usize = 128;

/// Checks the first [`PROGRAM_START_SIZE`] bytes of a program (all of it
/// if it is shorter): an x86_64 ELF, not a script or other file. Lets a
/// caller refuse a file before reading it whole.
pub fn check_program_start(start: &[u8]) -> Result<(), LoadError> {
    loader::parse_header(start).map(|_| ())
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

/// Reads and parses the interpreter `name` a program asks for, through the
/// isle's files, to be loaded on the first 2 MiB boundary above `above`.
fn load_interpreter(
    files: &Files,
    name: &str,
    above: u64,
) -> Result<(Vec<u8>, Program), LoadError> {
    let bytes = files
        .read_file(name, MAX_INTERPRETER_SIZE)
        .map_err(|errno| LoadError::MissingInterpreter {
            name: name.to_string(),
            reason: host::errno_text(errno),
        })?;
    let base = align_up(above, LARGE_PAGE_SIZE);
    let parsed =
        loader::parse_interpreter(&bytes, base).map_err(|error| LoadError::BadInterpreter {
            name: name.to_string(),
            reason: error.to_string(),
        })?;
    Ok((bytes, parsed))
}

/// The largest interpreter read: ld.so is a few hundred KiB.
const MAX_INTERPRETER_SIZE: u64 = 64 << 20;

/// The thread writing this process's stats file, while it runs.
struct StatsPublisher {
    /// Dropped to stop it.
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// One isle per atoll process: its stats publisher, if it has one.
static STATS_PUBLISHER: std::sync::Mutex<Option<StatsPublisher>> = std::sync::Mutex::new(None);

/// Writes the isle's offload figures to `path` twice a second, replacing
/// the file whole (write, then rename) so readers never see half of one.
/// The file is private (0600): it sits in atoll's registry.
fn publish_stats(offload: Arc<Offload>, path: PathBuf) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("atoll-stats".into())
        .spawn(move || {
            let temporary = path.with_extension("tmp");
            loop {
                let text = format!("{{\"offload_calls\": {}}}\n", offload.completed());
                if write_private(&temporary, text.as_bytes())
                    .and_then(|()| std::fs::rename(&temporary, &path))
                    .is_err()
                {
                    return;
                }
                match stopped.recv_timeout(std::time::Duration::from_millis(500)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => return,
                }
            }
        });
    match spawned {
        Ok(thread) => {
            *STATS_PUBLISHER
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                Some(StatsPublisher { stop, thread })
        }
        Err(error) => tracing::debug!(%error, "no stats thread"),
    }
}

/// Stops the stats publisher and waits for it: after this it writes no
/// more, so the stats file can be removed for good. Idempotent.
pub fn stop_publishing_stats() {
    let publisher = STATS_PUBLISHER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(StatsPublisher { stop, thread }) = publisher {
        drop(stop);
        let _ = thread.join();
    }
}

/// In a forked child: the parent's publisher is not this process's (its
/// thread didn't survive the fork), so it is forgotten, not stopped.
pub(crate) fn forget_stats_publisher() {
    let publisher = STATS_PUBLISHER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    std::mem::forget(publisher);
}

/// Writes `bytes` to `path` as a file only its owner may read or write,
/// whatever the umask; never through a symlink.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
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

/// The rest of `--syscall-summary`'s rewriting report: the code mapped
/// from files (libraries) as the program ran.
fn report_mapped_rewriting(census: &rewrite::Census) {
    if census.proved == 0 {
        return;
    }
    eprintln!(
        "atoll: syscall sites in mapped libraries: {} found by decoding, {} rewritten, {} left trapping",
        census.proved,
        census.rewritten,
        census.unfit.len()
    );
}

/// How every isle of this process runs, whatever program: the
/// [`IsleConfig`] but its program and files, owned, so that a forked
/// child's monitor keeps it.
#[derive(Clone)]
pub(crate) struct Settings {
    pub backend: BackendChoice,
    pub kernel_image: Arc<[u8]>,
    pub memory_size: u64,
    pub memory_limit: u64,
    pub flags: u64,
    pub cpu_count: u64,
    pub vcpu_cores: Vec<usize>,
    pub service_core: Option<usize>,
    pub user: Option<(u32, u32)>,
    pub net: NetPolicy,
    pub rewrite: bool,
    pub stats_path: Option<PathBuf>,
    pub numa_node: Option<u32>,
}

impl Settings {
    fn of(config: &IsleConfig) -> Self {
        Self {
            backend: config.backend.clone(),
            kernel_image: Arc::from(config.kernel_image),
            memory_size: config.memory_size,
            memory_limit: config.memory_limit,
            flags: config.flags,
            cpu_count: config.cpu_count,
            vcpu_cores: config.vcpu_cores.clone(),
            service_core: config.service_core,
            user: config.user,
            net: config.net.clone(),
            rewrite: config.rewrite,
            stats_path: config.stats_path.clone(),
            numa_node: config.numa_node,
        }
    }
}

/// The program an isle runs: the one atoll was given, then each one an
/// execve put in its place.
pub(crate) struct ProgramRun {
    image: Arc<Vec<u8>>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    exe_path: Vec<u8>,
    signals: atoll_abi::boot::ExecSignals,
}

impl ProgramRun {
    /// The program an execve accepted.
    pub(crate) fn replacing(next: crate::process::Replacement) -> Self {
        Self {
            image: Arc::new(next.image),
            argv: next.argv,
            envp: next.envp,
            exe_path: next.exe_path,
            signals: next.signals,
        }
    }
}

/// Boots an isle and runs the program to completion; an execve ends that
/// isle and boots the next in the same process, on the same files (but
/// the fds marked close-on-exec).
pub fn run(config: IsleConfig) -> Result<Outcome, IsleError> {
    // The isle's fds are the monitor's: room for all it may open, and ours.
    host::raise_open_file_limit(crate::sandbox::MAX_FDS as u64 + 256);
    let mut files = Files::new(&config.mounts, &config.cwd)?;
    files.set_private_dirs(&config.private_dirs);
    files.set_hidden(&config.hidden_paths);
    files.read_host_sources();
    let files = Arc::new(files);
    let program = ProgramRun {
        image: Arc::clone(&config.program_image),
        argv: config.argv.clone(),
        envp: config.envp.clone(),
        exe_path: config.exe_path.clone(),
        signals: Default::default(),
    };
    run_replacing(&Settings::of(&config), &files, program)
}

/// Runs `program`, then whatever each execve replaces it with, until one
/// ends.
pub(crate) fn run_replacing(
    settings: &Settings,
    files: &Arc<Files>,
    mut program: ProgramRun,
) -> Result<Outcome, IsleError> {
    loop {
        match boot(settings, files, &program)? {
            Outcome::Exec => {
                let Some(next) = crate::process::take_replacement() else {
                    return Ok(Outcome::Crashed("execve with no program to run".into()));
                };
                files.close_on_exec();
                program = ProgramRun::replacing(next);
            }
            outcome => return Ok(outcome),
        }
    }
}

/// One isle: `program` booted and run until it ends or is replaced.
fn boot(config: &Settings, files: &Arc<Files>, run: &ProgramRun) -> Result<Outcome, IsleError> {
    let started = std::time::Instant::now();
    crate::process::name_after(&run.exe_path);
    let program = loader::parse_program(&run.image)?;
    let kernel = Arc::new(loader::parse_kernel(&config.kernel_image).map_err(IsleError::Kernel)?);
    let cpu_count = config
        .cpu_count
        .clamp(1, atoll_abi::layout::MAX_CPUS as u64);
    let layout = Layout::plan(config.memory_size, cpu_count, kernel.span)?;
    // A dynamic program starts in its interpreter, read from the isle's own
    // files (a --rootfs has its own) and loaded above the program.
    let interpreter = match &program.interpreter {
        Some(name) => Some(load_interpreter(files, name, program.image_end)?),
        None => None,
    };
    let images: Vec<(&[u8], &Program)> = std::iter::once((&run.image[..], &program))
        .chain(
            interpreter
                .as_ref()
                .map(|(bytes, parsed)| (&bytes[..], parsed)),
        )
        .collect();
    let mut plan = rewrite::Plan::default();
    if config.rewrite {
        for (bytes, parsed) in &images {
            plan.merge(rewrite::analyze_cached(bytes).biased(parsed.bias));
        }
    }
    let images_end = images.iter().map(|(_, parsed)| parsed.image_end).max();
    // The stubs go right after the images, within reach of a rel32 jump.
    let stub_area = align_up(images_end.unwrap_or(program.image_end), PAGE_SIZE);
    // Then the vDSO (its size doesn't depend on the clock it carries).
    let vdso_base = align_up(stub_area + rewrite::stub_area_size(&plan), PAGE_SIZE);
    let vdso_size = vdso::image(&kernel.vdso, &ClockInfo::default()).len() as u64;
    let heap_start = align_up(vdso_base + vdso_size, PAGE_SIZE);
    layout.check_program(program.image_start, heap_start)?;
    let mut backend = backend::open(&config.backend, cpu_count, config.memory_size)?;
    tracing::debug!(elapsed = ?started.elapsed(), backend = backend.name(), "program parsed, backend open");

    // Boot needs the program image, the top of the stack, the kernel and the
    // system area: the monitor's own writes below fault those huge pages in.
    // The rest is populated in the background once the program runs.
    let ram = Arc::new(backend.guest_ram(config.memory_size)?);
    if let Some(node) = config.numa_node {
        let bound = ram.bind_to_node(node);
        tracing::debug!(node, bound, "guest memory bound to the isle's node");
    }
    let huge_start = align_up(heap_start, LARGE_PAGE_SIZE);
    let huge_end = align_down(layout.stack_bottom, LARGE_PAGE_SIZE);
    ram.advise_huge_pages(huge_start, huge_end.saturating_sub(huge_start));

    for (bytes, parsed) in &images {
        copy_segments(&ram, bytes, &parsed.segments, |address| address)?;
    }
    copy_segments(&ram, &config.kernel_image, &kernel.segments, |address| {
        layout.kernel_physical(address)
    })?;
    // The monitor copied the images itself: every site is as analyzed.
    crate::offload::code::write_rewrites(&ram, &plan, stub_area, kernel.rewritten_entry, |_, _| {
        true
    })
    .map_err(|_| SetupError::Memory("the syscall stubs lie outside guest RAM".into()))?;
    if config.rewrite {
        crate::offload::code::enable(kernel.rewritten_entry);
    }
    tracing::debug!(census = ?plan.census, "syscall sites rewritten");
    setup::write_page_tables(ram.memory(), &layout, heap_start)?;
    setup::write_descriptor_tables(ram.memory(), &layout, kernel.exception_vectors)?;
    for cpu in 0..cpu_count {
        setup::write_cpu_area(ram.memory(), &layout, cpu)?;
    }

    tracing::debug!(elapsed = ?started.elapsed(), "guest memory written");
    let cpu = backend.prepare(&BootPlan {
        ram: &ram,
        layout: &layout,
        heap: heap_start..layout.heap_end,
        kernel: &kernel,
        cpu_count,
    })?;
    let mut identity = host::identity();
    if let Some((uid, gid)) = config.user {
        (identity.uid, identity.euid, identity.gid, identity.egid) = (uid, uid, gid, gid);
        identity.group_count = 0;
    }
    crate::process::table::set_own(&run.argv, &run.exe_path);
    crate::process::keep_program(Arc::clone(&run.image));
    files.set_isle_facts(crate::sandbox::IsleFacts {
        identity,
        argv: run.argv.clone(),
        host_cpus: match config.vcpu_cores.len() as u64 {
            count if count == cpu_count => config.vcpu_cores.clone(),
            _ => (0..cpu_count as usize).collect(),
        },
        memory_bytes: config.memory_limit,
        exe_path: String::from_utf8_lossy(&run.exe_path).into_owned(),
        processes: Some(Arc::new(crate::process::IsleProcesses)),
    });
    let auxv = vec![
        (AT_PHDR, program.phdr_address),
        (AT_PHENT, program.phdr_entry_size),
        (AT_PHNUM, program.phdr_count),
        (AT_PAGESZ, PAGE_SIZE),
        (
            AT_BASE,
            interpreter
                .as_ref()
                .map_or(0, |(_, parsed)| parsed.image_start),
        ),
        (AT_FLAGS, 0),
        (AT_ENTRY, program.entry),
        (AT_UID, u64::from(identity.uid)),
        (AT_EUID, u64::from(identity.euid)),
        (AT_GID, u64::from(identity.gid)),
        (AT_EGID, u64::from(identity.egid)),
        (AT_SECURE, 0),
        (AT_HWCAP, cpu.hwcap),
        // No HWCAP2_FSGSBASE: GS holds the kernel's per-CPU pointer, so
        // programs must not be invited to move it (FS is theirs via arch_prctl).
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_SYSINFO_EHDR, vdso_base),
    ];
    let execfn = run.argv.first().cloned().unwrap_or_default();
    let stack_pointer = setup::write_initial_stack(
        ram.memory(),
        &layout,
        &StackSpec {
            argv: &run.argv,
            envp: &run.envp,
            execfn: &execfn,
            random: host::random_bytes(),
            auxv,
        },
    )?;

    tracing::debug!(elapsed = ?started.elapsed(), "vCPUs ready");
    ram.memory()
        .write_slice(
            &vdso::image(&kernel.vdso, &cpu.clock),
            GuestAddress(vdso_base),
        )
        .map_err(|error| SetupError::Memory(error.to_string()))?;
    let boot_info = BootInfo {
        magic: BOOT_MAGIC,
        version: BOOT_VERSION,
        cpu_count: cpu_count as u32,
        flags: config.flags,
        ram_size: config.memory_size,
        memory_limit: config.memory_limit.min(config.memory_size),
        heap_start,
        heap_end: layout.heap_end,
        kernel_phys_start: layout.kernel_phys_start,
        kernel_phys_end: layout.kernel_phys_end,
        system_start: layout.system_start,
        system_end: config.memory_size,
        cpu_areas: layout.cpu_areas,
        cpu_area_stride: layout.cpu_area_stride,
        page_table_root: layout.cr3(),
        spare_page_tables: layout.spare_page_tables,
        spare_page_table_count: setup::SPARE_PAGE_TABLES,
        regions: layout.regions,
        generation: 0,
        signals: run.signals,
        program: ProgramInfo {
            image_start: program.image_start,
            image_end: program.image_end,
            entry: interpreter
                .as_ref()
                .map_or(program.entry, |(_, parsed)| parsed.entry),
            stack_pointer,
            stack_bottom: layout.stack_bottom,
            stack_top: layout.stack_top,
        },
        clock: cpu.clock,
        identity,
        uname: host::uname(),
        exe_path: FixedStr::new(&run.exe_path),
        reserved: [0; 2],
    };
    setup::write_boot_info(ram.memory(), &layout, &boot_info)?;
    let program_name = files.name_loaded_image(&String::from_utf8_lossy(&run.exe_path));
    let mut loaded_images = vec![(&program, program_name)];
    if let (Some(name), Some((_, parsed))) = (&program.interpreter, &interpreter) {
        loaded_images.push((parsed, files.name_loaded_image(name)));
    }
    let loaded = regions::Loaded {
        images: loaded_images,
        stubs: stub_area..vdso_base,
        vdso: vdso_base..heap_start,
    };
    regions::write(
        ram.memory(),
        layout.regions,
        &regions::loaded(&layout, &loaded),
    )?;
    files.set_region_table(Arc::clone(&ram), layout.regions);
    // Files can show only in the heap, where mmap places them.
    ram.file_mappings().set_window(heap_start, layout.heap_end);

    // Start serving just before the vCPUs run: the first request then finds
    // the server polling, and it doesn't compete with the setup above.
    let queues = (0..cpu_count)
        .map(|cpu| layout.cpu_area(cpu) + std::mem::offset_of!(CpuArea, queue) as u64)
        .collect();
    let confinement =
        crate::sandbox::Confinement::prepare(files.reachable(), &DEVICES, &config.net)?;
    let offload = Offload::new(
        Arc::clone(&ram),
        queues,
        Arc::clone(files),
        config.net.clone(),
    );
    backend.configure_offload(&offload);
    offload.spawn(config.service_core, confinement);
    if let Some(path) = config.stats_path.clone() {
        publish_stats(Arc::clone(&offload), path);
    }
    tracing::debug!(
        elapsed = ?started.elapsed(),
        host_base = ram.host_base(),
        size = ram.size(),
        "entering the isle"
    );
    let clock_in_boot_info = layout.boot_info + std::mem::offset_of!(BootInfo, clock) as u64;
    let clock_in_vdso = vdso_base + vdso::clock_offset(&kernel.vdso) as u64;
    let clock_slots = vec![
        ClockSlots {
            tsc_at_boot: clock_in_boot_info + std::mem::offset_of!(ClockInfo, tsc_at_boot) as u64,
            monotonic_ns: clock_in_boot_info + std::mem::offset_of!(ClockInfo, monotonic_ns) as u64,
            realtime_ns: clock_in_boot_info + std::mem::offset_of!(ClockInfo, realtime_ns) as u64,
        },
        ClockSlots {
            tsc_at_boot: clock_in_vdso + vdso_data::TSC_AT_BOOT as u64,
            monotonic_ns: clock_in_vdso + vdso_data::MONOTONIC_NS as u64,
            realtime_ns: clock_in_vdso + vdso_data::REALTIME_NS as u64,
        },
    ];
    crate::process::start_forker(
        crate::process::Resume {
            backend: match &config.backend {
                // A child isn't debugged: it runs on.
                BackendChoice::Kvm { device, .. } => BackendChoice::Kvm {
                    device: device.clone(),
                    gdb: None,
                },
                other => other.clone(),
            },
            cpu_count,
            layout: layout.clone(),
            heap: heap_start..layout.heap_end,
            kernel: Arc::clone(&kernel),
            ram: Arc::clone(&ram),
            files: Arc::clone(files),
            net: config.net.clone(),
            vcpu_cores: config.vcpu_cores.clone(),
            service_core: config.service_core,
            clock_slots: clock_slots.clone(),
            exe_path: run.exe_path.clone(),
            settings: Arc::new(Settings {
                // A child's monitor publishes no figures of its own yet.
                stats_path: None,
                ..config.clone()
            }),
        },
        Arc::downgrade(&offload),
    );
    crate::program_signals::start(
        Arc::clone(&ram),
        (0..cpu_count).map(|cpu| layout.cpu_area(cpu)).collect(),
        Arc::clone(&offload),
    );
    let outcome = backend.run(Running {
        clock_slots,
        ram,
        layout,
        offload: Arc::clone(&offload),
        preempt_entry: kernel.preempt_entry,
        exception_vectors: kernel.exception_vectors,
        vcpu_cores: config.vcpu_cores.clone(),
        service_core: config.service_core,
        started,
    });
    crate::program_signals::stop();
    stop_publishing_stats();
    if outcome == Outcome::Exec {
        // Its successor serves the isle's files from here on.
        offload.stop();
        return Ok(outcome);
    }
    if config.flags & atoll_abi::boot::flags::SYSCALL_SUMMARY != 0 {
        report_rewriting(config.rewrite, &plan.census);
        if config.rewrite {
            report_mapped_rewriting(&crate::offload::code::census());
        }
    }
    Ok(outcome)
}

/// How an isle ended, from a final doorbell rung on CPU `cpu` (`cr2`: the
/// faulting address of a page fault, where the backend knows it).
pub(crate) fn doorbell_outcome(
    ram: &GuestRam,
    layout: &Layout,
    cpu: u64,
    offset: u64,
    value: u64,
    cr2: Option<u64>,
) -> Outcome {
    match offset {
        mmio::EXIT => Outcome::Exited(value as u8),
        mmio::EXEC => Outcome::Exec,
        // The kernel said so itself (a default action), where it reports it.
        mmio::KILLED => Outcome::Killed {
            signal: value as u32 & 0x7f,
            report: String::new(),
        },
        mmio::PANIC => {
            Outcome::Crashed(format!("kernel panic: {}", panic_message(ram, layout, cpu)))
        }
        mmio::FAULT => fault_outcome(ram, cr2, value),
        offset => Outcome::Crashed(format!("unknown doorbell {offset:#x} rung with {value:#x}")),
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

pub(crate) fn read_frame(ram: &GuestRam, address: u64) -> Option<ExceptionFrame> {
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
fn fault_outcome(ram: &GuestRam, cr2: Option<u64>, frame_address: u64) -> Outcome {
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
            let address = cr2.map_or_else(|| "unknown".to_string(), |cr2| format!("{cr2:#x}"));
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
                format!("page fault at address {address} ({access}, {cause})"),
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
