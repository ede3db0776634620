//! `atoll run`: boot an isle, run a program, exit with its status.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use atoll_abi::boot::flags;
use atoll_abi::layout::{align_up, LARGE_PAGE_SIZE, MAX_RAM_SIZE, MIN_RAM_SIZE};
use atoll_vmm::{IsleConfig, IsleError, MountSpec, NetPolicy, Outcome};
use clap::Args;

use crate::size::{format_size, parse_size};

/// Exit status when atoll itself fails (as docker run does).
const STATUS_ATOLL_FAILED: i32 = 125;
/// Exit status for a program that can't be executed (as a shell does).
const STATUS_NOT_EXECUTABLE: i32 = 126;
/// Exit status for a program that doesn't exist (as a shell does).
const STATUS_NOT_FOUND: i32 = 127;
/// Exit status for bad command-line use (as clap does).
const STATUS_USAGE: i32 = 2;

/// The environment an isle starts with, before `-e`: minimal and the same everywhere.
const DEFAULT_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/"),
];

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll run ./hello world                 # a static Linux program\n  atoll run -c 4 -m 1G ./solver input.dat # 4 cores of its own, 1 GiB\n  atoll run -v $PWD/data:/data:ro -p 8080 ./server\n  atoll run .                             # the project in this directory\n  atoll run hello:0.1.0                   # an image of the local store\n  atoll run localhost:5000/me/hello:0.1   # pulled first if need be\n  atoll run hello.isle                    # a packed image\n  atoll run -d --name web ./server && atoll logs web"
)]
pub struct RunArgs {
    /// Memory limit, e.g. 64M or 2G: past it allocations get ENOMEM [default: what the host has available]
    #[arg(short = 'm', long = "memory", value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Set an environment variable (KEY alone copies it from atoll's environment); repeatable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<OsString>,
    /// vCPUs, each pinned to a host core of its own [default: 1]
    #[arg(short = 'c', long = "cores", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    cores: Option<u64>,
    /// Allow more vCPUs than free host cores: they share cores
    #[arg(long)]
    overcommit: bool,
    /// Run on exactly these host CPUs, one vCPU each (e.g. 2-5,8)
    #[arg(long, value_name = "LIST", conflicts_with = "cores")]
    cpus: Option<String>,
    /// Take preset partition K of the host config (its cores and memory)
    #[arg(short = 'i', long = "index", value_name = "K", conflicts_with_all = ["cores", "cpus", "memory"])]
    index: Option<usize>,
    /// CPUs Linux keeps, overriding the host config (e.g. 0 or 0,36)
    #[arg(long, value_name = "LIST")]
    host_cores: Option<String>,
    /// Wait until the cores and memory asked for are free, instead of failing
    #[arg(long)]
    wait: bool,
    /// A name for the isle, usable with `atoll stop` and `atoll logs`
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Run detached: print the isle's id and return; its output goes to `atoll logs ID`
    #[arg(short = 'd', long)]
    detach: bool,
    /// Show host directory HOST at GUEST in the isle; repeatable. OPTIONS, comma-separated: ro (read-only), owners (let the isle chown its files to anyone and make set-id programs). Default: the current directory at its own path
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:OPTIONS]")]
    volumes: Vec<String>,
    /// Most the isle's /tmp and /dev/shm hold together, e.g. 256M; past it writes get ENOSPC [default: the memory limit]
    #[arg(long, value_name = "SIZE", value_parser = parse_tmp_size)]
    tmp_size: Option<u64>,
    /// Let the isle listen on host port PORT, as GUESTPORT inside (default: the same); repeatable
    #[arg(short = 'p', long = "publish", value_name = "PORT[:GUESTPORT]", value_parser = parse_port)]
    publish: Vec<(u16, u16)>,
    /// Let the isle connect out to the network
    #[arg(long)]
    net: bool,
    /// Print every syscall, strace-style, on stderr
    #[arg(long)]
    trace: bool,
    /// Print per-syscall counts on stderr at exit
    #[arg(long)]
    syscall_summary: bool,
    /// Leave the program's syscall instructions as they are (every call
    /// traps), for programs that read or checksum their own code
    #[arg(long, env = "ATOLL_NO_REWRITE", value_parser = clap::builder::FalseyValueParser::new())]
    no_rewrite: bool,
    /// What runs the isle: kvm (our monitor), qemu (TCG: slower, full x86
    /// semantics), or auto (kvm, else qemu with a note)
    #[arg(long, value_name = "BACKEND", env = "ATOLL_BACKEND", default_value = "auto", value_parser = ["auto", "kvm", "qemu"])]
    backend: String,
    /// Wait for GDB on this loopback port before the first instruction
    /// (QEMU backend): gdb PROGRAM -ex 'target remote :PORT'
    #[arg(long, value_name = "PORT")]
    gdb: Option<u16>,
    /// The KVM device to use
    #[arg(
        long,
        value_name = "PATH",
        env = "ATOLL_KVM_DEVICE",
        default_value = "/dev/kvm"
    )]
    kvm_device: PathBuf,
    /// Make the isle kernel panic at boot (tests the crash report)
    #[arg(long, hide = true)]
    debug_panic: bool,
    /// What an image or a .isle file supplies (not a flag)
    #[arg(skip)]
    image: Option<ImageToRun>,
    /// Files layers and a project's `[build] files`, mounted read-only (not a flag)
    #[arg(skip)]
    files: Vec<MountSpec>,
    /// The program to run, then its arguments
    #[arg(
        value_name = "PROGRAM [ARGS]...",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// The kernel and program an image (or a `.isle` file) runs.
struct ImageToRun {
    /// None: the built-in kernel.
    kernel: Option<Vec<u8>>,
    program: Vec<u8>,
    /// What the isle's /proc/self/exe names.
    exe_path: PathBuf,
}

impl std::fmt::Debug for ImageToRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageToRun")
            .field("kernel", &self.kernel.as_ref().map(Vec::len))
            .field("program", &self.program.len())
            .field("exe_path", &self.exe_path)
            .finish()
    }
}

pub(crate) fn fail(status: i32, message: impl std::fmt::Display) -> i32 {
    eprintln!("atoll: {message}");
    status
}

/// Finds PROGRAM as a shell would: a path if it has a slash, else in PATH
/// (or, friendlier than a shell, in the current directory).
fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .or_else(|| program.is_file().then(|| program.to_path_buf()))
}

fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

fn check_memory(requested: u64) -> Result<u64, String> {
    // As the user likely wrote it: 7M, 1.5G, or a byte count.
    let shown = if requested.is_multiple_of(1 << 10) {
        format_size(requested)
    } else {
        requested.to_string()
    };
    // The bounds hold for the size asked for, before it is rounded up to
    // whole large pages (which could wrap, or lift 7M to 8M).
    if requested < MIN_RAM_SIZE {
        return Err(format!(
            "-m {shown} is too small: an isle needs at least {}",
            format_size(MIN_RAM_SIZE)
        ));
    }
    if requested > MAX_RAM_SIZE {
        return Err(format!(
            "-m {shown} is too large: an isle can have at most {}",
            format_size(MAX_RAM_SIZE)
        ));
    }
    let size = align_up(requested, LARGE_PAGE_SIZE);
    if let Some(available) = available_memory() {
        if size > available {
            return Err(format!(
                "-m {} is more than this host has available ({})",
                format_size(requested),
                format_size(available)
            ));
        }
    }
    Ok(size)
}

/// `atoll run -d`: the same command again as a child in its own process
/// group with its output in a log; prints the isle's id once it has one.
fn detach() -> i32 {
    let log_path = match crate::isles::new_log_path() {
        Ok(path) => path,
        Err(message) => return fail(STATUS_ATOLL_FAILED, message),
    };
    let log = match atoll_manager::state::private_file(&log_path, true) {
        Ok(file) => file,
        Err(error) => {
            return fail(
                STATUS_ATOLL_FAILED,
                format!("{}: {error}", log_path.display()),
            )
        }
    };
    let spawned = std::env::current_exe().and_then(|exe| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(crate::isles::LOG_ENV, &log_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            return fail(
                STATUS_ATOLL_FAILED,
                format!("cannot start the isle: {error}"),
            )
        }
    };
    match crate::isles::wait_for_registration(&mut child) {
        Some(id) => {
            println!("isle {id}");
            0
        }
        None => {
            // It ended before it had an isle: show why.
            let output = std::fs::read(&log_path).unwrap_or_default();
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &output);
            let _ = std::fs::remove_file(&log_path);
            child
                .wait()
                .ok()
                .and_then(|status| status.code())
                .unwrap_or(STATUS_ATOLL_FAILED)
        }
    }
}

/// Parses `PORT[:GUESTPORT]`.
fn parse_port(text: &str) -> Result<(u16, u16), String> {
    let invalid = || format!("invalid port '{text}': use PORT or PORT:GUESTPORT, each 1-65535");
    let number = |part: &str| {
        part.parse::<u16>()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(invalid)
    };
    match text.split_once(':') {
        Some((host, guest)) => Ok((number(host)?, number(guest)?)),
        None => number(text).map(|port| (port, port)),
    }
}

/// Parses `--tmp-size`: a size, not 0 (which to tmpfs means unbounded).
fn parse_tmp_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("the private /tmp needs room: give at least 4K".to_string()),
        size => Ok(size),
    }
}

/// A private /tmp and /dev/shm (and the skeleton root) for one isle: on a
/// tmpfs of its own, bounded, mounted nowhere (see
/// [`atoll_vmm::host::detached_tmpfs`]), which goes with atoll however it
/// ends. Where atoll can't make one (not root), a directory of mode 0700
/// in /dev/shm, unbounded, removed when atoll exits (or by the next atoll
/// command after a kill -9).
struct PrivateTmp {
    /// Where it is: /proc/self/fd/N for the tmpfs.
    path: PathBuf,
    /// The tmpfs, if it is one.
    mount: Option<std::os::fd::OwnedFd>,
}

/// Where private /tmps go: on tmpfs when there is one (creating and removing
/// these costs ~0.2 ms there against ~1.4 ms on this disk, on every run).
fn private_tmp_base() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes the private /tmps atoll process `pid` left behind (it was
/// killed before it could).
pub(crate) fn remove_private_tmps(pid: u32) {
    let prefix = format!("atoll-tmp-{pid}-");
    let Ok(entries) = std::fs::read_dir(private_tmp_base()) else {
        return;
    };
    let uid = atoll_manager::state::effective_uid();
    for entry in entries.flatten() {
        // Only ours: /dev/shm is everyone's.
        let ours = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|meta| meta.is_dir() && std::os::unix::fs::MetadataExt::uid(&meta) == uid);
        if ours && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl PrivateTmp {
    /// One holding at most `size` bytes (when it is a tmpfs).
    fn create(size: u64) -> std::io::Result<Self> {
        let tmp = match atoll_vmm::host::detached_tmpfs(size) {
            Ok(mount) => {
                use std::os::fd::AsRawFd;
                Self {
                    path: PathBuf::from(format!("/proc/self/fd/{}", mount.as_raw_fd())),
                    mount: Some(mount),
                }
            }
            Err(_) => Self {
                path: Self::create_directory()?,
                mount: None,
            },
        };
        for private in ["tmp", "shm"] {
            let dir = tmp.path.join(private);
            std::fs::create_dir(&dir)?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))?;
        }
        Ok(tmp)
    }

    /// A fresh directory of mode 0700 in [`private_tmp_base`].
    fn create_directory() -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        let base = private_tmp_base();
        for attempt in 0..100u32 {
            let path = base.join(format!("atoll-tmp-{}-{attempt}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(path),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(std::io::Error::other("no free name for a private /tmp"))
    }

    /// The directory to remove when atoll exits (a tmpfs goes by itself).
    fn directory(&self) -> Option<&Path> {
        self.mount.is_none().then_some(self.path.as_path())
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        if let Some(directory) = self.directory() {
            let _ = std::fs::remove_dir_all(directory);
        }
    }
}

/// Parses `HOST:GUEST[:OPTIONS]`, OPTIONS a comma-separated list of `ro`
/// or `rw` and `owners`; unknown or repeated options are refused.
fn parse_volume(text: &str) -> Result<MountSpec, String> {
    let invalid = || {
        format!(
            "invalid -v '{text}': use HOST:GUEST[:OPTIONS], with GUEST an absolute path \
             and OPTIONS among ro, rw, owners (comma-separated)"
        )
    };
    let mut parts = text.split(':');
    let (Some(host), Some(guest), options, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if host.is_empty() || !guest.starts_with('/') {
        return Err(invalid());
    }
    let mut seen: Vec<&str> = Vec::new();
    for option in options
        .map(|options| options.split(','))
        .into_iter()
        .flatten()
    {
        if !["ro", "rw", "owners"].contains(&option) {
            return Err(format!(
                "invalid -v '{text}': unknown option '{option}' (use ro, rw or owners)"
            ));
        }
        if seen.contains(&option) {
            return Err(format!(
                "invalid -v '{text}': option '{option}' given twice"
            ));
        }
        if seen.contains(&"ro") && option == "rw" || seen.contains(&"rw") && option == "ro" {
            return Err(format!(
                "invalid -v '{text}': ro and rw contradict each other"
            ));
        }
        seen.push(option);
    }
    let host =
        std::fs::canonicalize(host).map_err(|error| format!("-v {text}: {host}: {error}"))?;
    if !host.is_dir() {
        return Err(format!("-v {text}: {} is not a directory", host.display()));
    }
    Ok(MountSpec {
        host,
        guest: atoll_vmm::sandbox::normalize(guest),
        read_only: seen.contains(&"ro"),
        keep_owners: seen.contains(&"owners"),
    })
}

/// The isle's mounts (the current directory by default, plus a private
/// /tmp and /dev/shm unless they are mounted) and its working directory.
fn mounts(
    volumes: &[String],
    files: &[MountSpec],
    tmp: &PrivateTmp,
) -> Result<(Vec<MountSpec>, String), String> {
    let host_cwd = std::env::current_dir()
        .map_err(|error| format!("cannot read the current directory: {error}"))?;
    let mut mounts = if volumes.is_empty() {
        vec![MountSpec {
            host: host_cwd.clone(),
            guest: host_cwd.to_string_lossy().into_owned(),
            read_only: false,
            keep_owners: false,
        }]
    } else {
        let parsed = volumes
            .iter()
            .map(|volume| parse_volume(volume))
            .collect::<Result<Vec<_>, _>>()?;
        // Two at one guest path: one would silently hide the other.
        for (later, mount) in parsed.iter().enumerate() {
            if let Some(earlier) = parsed[..later]
                .iter()
                .position(|other| other.guest == mount.guest)
            {
                return Err(format!(
                    "-v {} and -v {} both mount at {}: give each guest path once",
                    volumes[earlier], volumes[later], mount.guest
                ));
            }
        }
        parsed
    };
    mounts.extend(files.iter().cloned());
    // /dev/shm is where shm_open and sem_open make their files.
    for (private, guest) in [("tmp", "/tmp"), ("shm", "/dev/shm")] {
        if !mounts.iter().any(|mount| mount.guest == guest) {
            mounts.push(MountSpec {
                host: tmp.path.join(private),
                guest: guest.into(),
                read_only: false,
                keep_owners: false,
            });
        }
    }
    // Start where the user is, if a mount shows that directory: at its
    // path inside the isle. Otherwise at the root.
    let cwd = mounts
        .iter()
        .filter_map(|mount| {
            let rest = host_cwd.strip_prefix(&mount.host).ok()?;
            let guest = std::path::Path::new(&mount.guest).join(rest);
            Some((
                mount.host.as_os_str().len(),
                guest.to_string_lossy().into_owned(),
            ))
        })
        .max_by_key(|(depth, _)| *depth)
        .map_or_else(|| "/".to_string(), |(_, guest)| guest);
    // A read-only root holding just the mount points (and /dev), so that
    // `/`, `..` above a mount and `mkdir -p` of absolute paths behave.
    let root = tmp.path.join("root");
    for mount in &mounts {
        let _ = std::fs::create_dir_all(root.join(mount.guest.trim_start_matches('/')));
    }
    let _ = std::fs::create_dir_all(root.join("dev"));
    if !mounts.iter().any(|mount| mount.guest == "/") {
        mounts.push(MountSpec {
            host: root,
            guest: "/".into(),
            read_only: true,
            keep_owners: false,
        });
    }
    Ok((mounts, cwd))
}

fn environment(requested: &[OsString]) -> Result<Vec<Vec<u8>>, String> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = DEFAULT_ENV
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect();
    for item in requested {
        let bytes = item.as_bytes();
        let (key, value) = match bytes.iter().position(|&b| b == b'=') {
            Some(0) => {
                return Err(format!(
                    "invalid -e '{}': an empty variable name: use KEY=VALUE",
                    item.to_string_lossy()
                ))
            }
            Some(split) => (bytes[..split].to_vec(), bytes[split + 1..].to_vec()),
            None if bytes.is_empty() => {
                return Err(
                    "invalid -e '': an empty variable name: use KEY=VALUE, or KEY to copy it"
                        .to_string(),
                )
            }
            None => match std::env::var_os(item) {
                Some(value) => (bytes.to_vec(), value.into_vec()),
                None => continue,
            },
        };
        if key.is_empty() || key.contains(&0) || value.contains(&0) {
            return Err(format!(
                "invalid -e '{}': use KEY=VALUE",
                item.to_string_lossy()
            ));
        }
        env.retain(|(existing, _)| *existing != key);
        env.push((key, value));
    }
    Ok(env
        .into_iter()
        .map(|(mut key, value)| {
            key.push(b'=');
            key.extend(value);
            key
        })
        .collect())
}

/// What a terminating signal must clean up: the private /tmp and the
/// isle's registration.
static CLEANUP: std::sync::Mutex<(Option<PathBuf>, Option<u32>)> =
    std::sync::Mutex::new((None, None));

/// SIGTERM (`atoll stop`), SIGINT (Ctrl-C) or SIGHUP: clean up, then exit
/// with the status the signal would have given.
fn on_termination(signal: i32) {
    let (tmp, isle) = std::mem::take(&mut *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(tmp) = tmp {
        let _ = std::fs::remove_dir_all(tmp);
    }
    if let Some(id) = isle {
        crate::isles::release(id, Some(128 + signal));
    }
    std::process::exit(128 + signal);
}

/// Address space a KVM isle has beyond its limit, for reservations
/// (mmap(PROT_NONE): Go's arenas, Java's and V8's heaps). Reservations cost
/// no memory and the heap's page tables are written as it is used, but KVM
/// keeps per-page metadata for a memory slot's whole size (with shadow
/// paging, as on kvm-pvm: about 2.5 MiB per GiB), so it is not unbounded.
const KVM_RESERVATION_ROOM: u64 = 16 << 30;

/// The memory limit when neither -m nor the manifest says: what the host
/// has available, as for a native process.
fn default_memory_limit() -> u64 {
    let available = available_memory().unwrap_or(MAX_RAM_SIZE);
    (available & !(LARGE_PAGE_SIZE - 1)).clamp(MIN_RAM_SIZE, MAX_RAM_SIZE / 2)
}

/// Guest RAM for an isle limited to `limit` bytes: QEMU's most under QEMU
/// (which refuses a larger limit with its own message), else the limit
/// plus [`KVM_RESERVATION_ROOM`].
fn address_space(backend: &atoll_vmm::BackendChoice, limit: u64) -> u64 {
    match backend {
        atoll_vmm::BackendChoice::Qemu(_) => limit.max(atoll_vmm::backend::qemu::MAX_MEMORY),
        atoll_vmm::BackendChoice::Kvm { .. } => {
            (align_up(limit, 1 << 30) + KVM_RESERVATION_ROOM).min(MAX_RAM_SIZE)
        }
    }
}

/// `atoll run DIR`: the project's manifest fills in what the flags don't
/// say (flags win; arguments after DIR replace the manifest's args).
/// Also `atoll run NAME[:TAG]` (an image of the local store, pulled first
/// when it names a registry) and `atoll run FILE.isle`: run from verified
/// blobs, with the image's kernel, files and settings.
fn apply_manifest(mut args: RunArgs) -> Result<RunArgs, String> {
    let target = PathBuf::from(&args.command[0]);
    if crate::manifest::is_project(&target) {
        let manifest = crate::manifest::load(&target)?;
        let program = manifest.program(&target);
        if !program.is_file() {
            return Err(format!(
                "{} isn't built yet: run `atoll build {}`",
                program.display(),
                target.display()
            ));
        }
        if let Some(reference) = &manifest.kernel.image {
            let bytes = std::fs::read(&program)
                .map_err(|error| format!("{}: {error}", program.display()))?;
            args.image = Some(ImageToRun {
                kernel: Some(crate::images::pinned_kernel(reference)?),
                program: bytes,
                exe_path: std::fs::canonicalize(&program).unwrap_or_else(|_| program.clone()),
            });
        }
        for (host, guest) in manifest.files(&target) {
            let host = std::fs::canonicalize(&host)
                .map_err(|error| format!("[build] files: {}: {error}", host.display()))?;
            args.files.push(MountSpec {
                host,
                guest,
                read_only: true,
                keep_owners: false,
            });
        }
        return apply_settings(args, &manifest.run, program.into_os_string(), Some(&target));
    }
    if target.is_file() && crate::pack::is_pack(&target) {
        let packed = crate::pack::read(&target)?;
        let layers = crate::store::layers(&packed.manifest)?;
        let config = packed.config()?;
        for (layer, guest) in &layers.files {
            let host = crate::rootfs::unpacked(&layer.digest, packed.blob(layer)?)?;
            args.files.push(MountSpec {
                host,
                guest: atoll_vmm::sandbox::normalize(guest),
                read_only: true,
                keep_owners: false,
            });
        }
        let kernel = packed.blob(layers.kernel)?;
        args.image = Some(ImageToRun {
            kernel: (kernel != crate::KERNEL_IMAGE).then(|| kernel.to_vec()),
            program: packed.blob(layers.program)?.to_vec(),
            exe_path: std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone()),
        });
        return apply_settings(args, &config.run, argv0(&config), None);
    }
    let reference = args.command[0].to_string_lossy().into_owned();
    let remote = crate::registry::looks_remote(&reference);
    // A path, or no store yet: not an image (and no store made for it).
    if target.exists() || (!remote && reference.contains('/')) {
        return Ok(args);
    }
    if !remote && !crate::store::Store::root_dir().is_dir() {
        return Ok(args);
    }
    let store = crate::store::Store::open()?;
    let descriptor = match store.resolve(&reference)? {
        Some((_, descriptor)) => descriptor,
        // REGISTRY/NAME:TAG not here yet: pulled first.
        None if remote => {
            crate::registry::pull_image(&reference, true)?;
            store
                .resolve(&reference)?
                .ok_or_else(|| format!("{reference}: pulled, but not in the store"))?
                .1
        }
        None => return Ok(args),
    };
    let image = store.manifest(&descriptor)?;
    let config = store.config(&image)?;
    let layers = crate::store::layers(&image)?;
    for (layer, guest) in &layers.files {
        let host = crate::rootfs::unpacked(&layer.digest, &store.get(layer)?)?;
        args.files.push(MountSpec {
            host,
            guest: atoll_vmm::sandbox::normalize(guest),
            read_only: true,
            keep_owners: false,
        });
    }
    let kernel = if layers.kernel.digest == crate::KERNEL_DIGEST {
        None
    } else {
        Some(store.get(layers.kernel)?)
    };
    args.image = Some(ImageToRun {
        kernel,
        program: store.get(layers.program)?,
        exe_path: store.path_of(layers.program)?,
    });
    apply_settings(args, &config.run, argv0(&config), None)
}

/// An image's program sees its own file name as argv[0], as it would
/// natively (busybox picks its applet by it).
fn argv0(config: &crate::store::Config) -> OsString {
    config
        .run
        .program
        .as_deref()
        .and_then(|program| Path::new(program).file_name())
        .map_or_else(|| OsString::from(&config.name), OsString::from)
}

/// Fills in what the flags don't say from an app's run settings.
fn apply_settings(
    mut args: RunArgs,
    run: &crate::manifest::Run,
    argv0: OsString,
    project: Option<&Path>,
) -> Result<RunArgs, String> {
    let mut command = vec![argv0];
    if args.command.len() > 1 {
        command.extend(args.command.drain(1..));
    } else {
        command.extend(run.args.iter().map(OsString::from));
    }
    args.command = command;
    let mut env: Vec<OsString> = run
        .env
        .iter()
        .map(|(key, value)| OsString::from(format!("{key}={value}")))
        .collect();
    env.append(&mut args.env);
    args.env = env;
    args.cores = args.cores.or(run.cores);
    if args.memory.is_none() {
        if let Some(memory) = &run.memory {
            args.memory =
                Some(parse_size(memory).map_err(|message| format!("[run] memory: {message}"))?);
        }
    }
    // Host paths in a manifest are relative to its project (an image's,
    // to the current directory).
    let base = project.unwrap_or(Path::new("."));
    let mut volumes: Vec<String> = run
        .volumes
        .iter()
        .map(|volume| match volume.starts_with('/') {
            true => volume.clone(),
            false => base.join(volume).to_string_lossy().into_owned(),
        })
        .collect();
    volumes.append(&mut args.volumes);
    args.volumes = volumes;
    for port in &run.publish {
        args.publish
            .push(parse_port(port).map_err(|message| format!("[run] publish: {message}"))?);
    }
    args.net |= run.net;
    Ok(args)
}

/// The kernel ELF as a file for GDB's `add-symbol-file` (named by its
/// digest, so it is written once per kernel).
fn kernel_symbols_file(kernel: &[u8]) -> Option<PathBuf> {
    let digest = crate::store::sha256(kernel);
    let path = std::env::temp_dir().join(format!(
        "atoll-kernel-{}.elf",
        &digest.trim_start_matches("sha256:")[..16]
    ));
    if !path.is_file() {
        std::fs::write(&path, kernel).ok()?;
    }
    Some(path)
}

/// The backend `--backend` names; `auto` is KVM where the device exists,
/// else QEMU, said in one line.
fn choose_backend(
    name: &str,
    kvm_device: &Path,
    gdb: Option<u16>,
) -> Result<atoll_vmm::BackendChoice, String> {
    let gdb = gdb.map(|port| atoll_vmm::GdbOptions {
        port,
        ..Default::default()
    });
    let qemu = || {
        atoll_vmm::BackendChoice::Qemu(atoll_vmm::QemuOptions {
            gdb: gdb.clone(),
            ..Default::default()
        })
    };
    let kvm = || atoll_vmm::BackendChoice::Kvm {
        device: kvm_device.to_path_buf(),
        gdb: gdb.clone(),
    };
    match name {
        "qemu" => Ok(qemu()),
        "kvm" => Ok(kvm()),
        _ if !kvm_device.exists() && atoll_vmm::backend::qemu::available() => {
            eprintln!(
                "atoll: {} is missing: running on QEMU (TCG) instead, which is slower",
                kvm_device.display()
            );
            Ok(qemu())
        }
        _ => Ok(kvm()),
    }
}

/// The largest program atoll reads: far past any real static binary, and
/// a bound on what a mistaken PROGRAM (a disk image, say) makes it read.
const MAX_PROGRAM_SIZE: u64 = 1 << 30;

/// What a shell would say of a program it can't open: status and reason.
fn open_refusal(error: &std::io::Error) -> (i32, String) {
    match error.kind() {
        std::io::ErrorKind::NotFound => (STATUS_NOT_FOUND, "no such file".to_string()),
        std::io::ErrorKind::PermissionDenied => {
            (STATUS_NOT_EXECUTABLE, "permission denied".to_string())
        }
        _ => (STATUS_NOT_EXECUTABLE, error.to_string()),
    }
}

/// Refuses anything but a regular file: a FIFO would block the read, a
/// device (/dev/zero) never end it.
fn check_regular_file(metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        return Err("is a directory: give a program file".to_string());
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(format!(
        "is not a regular file ({what}): give a program file"
    ))
}

/// The program at PATH (found as a shell would) and its canonical path;
/// else the exit status and message a shell would give. It must be a
/// regular file of at most [`MAX_PROGRAM_SIZE`] that starts as an x86_64
/// ELF; all that is checked before the file is read whole.
fn read_program(program: &Path) -> Result<(Vec<u8>, PathBuf), (i32, String)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = program.display();
    let Some(path) = resolve_program(program) else {
        return Err((
            STATUS_NOT_FOUND,
            format!("{shown}: no such file (nor in PATH)"),
        ));
    };
    let refused = |(status, reason): (i32, String)| (status, format!("{shown}: {reason}"));
    let not_executable = |reason: String| refused((STATUS_NOT_EXECUTABLE, reason));
    // Looked at before it is opened: opening a device can have effects.
    let metadata = std::fs::metadata(&path).map_err(|error| refused(open_refusal(&error)))?;
    check_regular_file(&metadata).map_err(not_executable)?;
    // O_NONBLOCK: should it have become a FIFO since, opening it doesn't
    // wait for a writer; fstat then tells.
    let mut file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .map_err(|error| refused(open_refusal(&error)))?;
    let metadata = file
        .metadata()
        .map_err(|error| not_executable(error.to_string()))?;
    check_regular_file(&metadata).map_err(not_executable)?;
    let read_error = |error: std::io::Error| not_executable(format!("cannot read it: {error}"));
    let mut image = Vec::new();
    (&mut file)
        .take(atoll_vmm::isle::PROGRAM_START_SIZE as u64)
        .read_to_end(&mut image)
        .map_err(read_error)?;
    atoll_vmm::isle::check_program_start(&image)
        .map_err(|error| not_executable(error.to_string()))?;
    let too_large = |size: u64| {
        not_executable(format!(
            "is {}, more than the {} atoll takes as a program",
            format_size(size),
            format_size(MAX_PROGRAM_SIZE)
        ))
    };
    if metadata.len() > MAX_PROGRAM_SIZE {
        return Err(too_large(metadata.len()));
    }
    // One byte past the limit tells a file that grew since fstat.
    (&mut file)
        .take(MAX_PROGRAM_SIZE + 1 - image.len() as u64)
        .read_to_end(&mut image)
        .map_err(read_error)?;
    if image.len() as u64 > MAX_PROGRAM_SIZE {
        return Err(too_large(image.len() as u64));
    }
    Ok((image, std::fs::canonicalize(&path).unwrap_or(path)))
}

pub fn run(args: RunArgs) -> i32 {
    atoll_vmm::host::handle_termination(on_termination);
    let mut args = match apply_manifest(args) {
        Ok(applied) => applied,
        Err(message) => return fail(STATUS_USAGE, message),
    };
    let program_arg = PathBuf::from(&args.command[0]);
    let config_path = atoll_manager::config::path();
    let (mut host_config, partitions) = match atoll_manager::config::load(&config_path) {
        Ok(loaded) => loaded,
        Err(error) => return fail(STATUS_USAGE, error),
    };
    if let Some(list) = &args.host_cores {
        match atoll_manager::topology::parse_list(list).filter(|cpus| !cpus.is_empty()) {
            Some(cpus) => host_config.host_cpus = Some(cpus),
            None => {
                return fail(
                    STATUS_USAGE,
                    format!("--host-cores {list}: use a CPU list such as 0 or 0,36"),
                )
            }
        }
    }
    let partition = match args.index {
        Some(index) => match partitions.get(index) {
            Some(partition) => Some(partition.clone()),
            None => {
                return fail(
                    STATUS_USAGE,
                    format!(
                        "-i {index}: {} has {} partition(s); add [[partition]] entries to it",
                        config_path.display(),
                        partitions.len()
                    ),
                )
            }
        },
        None => None,
    };
    let memory_arg = match partition.as_ref().and_then(|p| p.memory.as_deref()) {
        Some(text) => match parse_size(text) {
            Ok(size) => Some(size),
            Err(message) => {
                return fail(
                    STATUS_USAGE,
                    format!("{}: partition memory: {message}", config_path.display()),
                )
            }
        },
        None => args.memory,
    };
    let memory_limit = match memory_arg.map(check_memory) {
        Some(Ok(size)) => size,
        Some(Err(message)) => return fail(STATUS_USAGE, message),
        None => default_memory_limit(),
    };
    // Without -m the isle holds no memory in the registry, so it blocks no
    // other isle; it may still use what the host has, as a process may.
    let memory_held = memory_arg.map_or(0, |_| memory_limit);
    if args.detach && std::env::var_os(crate::isles::LOG_ENV).is_none() {
        return detach();
    }
    // The program and the environment are checked before anything is
    // claimed: a bad one holds no core, however it fails.
    let envp = match environment(&args.env) {
        Ok(env) => env,
        Err(message) => return fail(STATUS_USAGE, message),
    };
    let shown = program_arg.display();
    let image_to_run = args.image.take();
    let (kernel_image, image, exe_path) = match image_to_run {
        Some(image) => (image.kernel, image.program, image.exe_path),
        None => match read_program(&program_arg) {
            Ok((image, path)) => (None, image, path),
            Err((status, message)) => return fail(status, message),
        },
    };
    if let Err(error) = atoll_vmm::isle::check_program(&image) {
        return fail(STATUS_NOT_EXECUTABLE, format!("{shown}: {error}"));
    }
    let (cores, cpus) = match &partition {
        Some(partition) => (
            u64::from(partition.cores.unwrap_or(1)),
            partition.cpus.clone(),
        ),
        None => (args.cores.unwrap_or(1), args.cpus.clone()),
    };
    let request = match crate::isles::request(cores, cpus.as_deref(), memory_held, args.overcommit)
    {
        Ok(request) => request,
        Err(message) => return fail(STATUS_USAGE, message),
    };
    let command_text = args
        .command
        .iter()
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let registration = match crate::isles::Registration::claim(
        &host_config,
        &request,
        args.name.clone(),
        command_text,
        memory_held,
        args.wait,
    ) {
        Ok(registration) => registration,
        Err(crate::isles::Refused::Usage(message)) => return fail(STATUS_USAGE, message),
        Err(crate::isles::Refused::Busy(message)) => return fail(STATUS_ATOLL_FAILED, message),
        Err(crate::isles::Refused::State(message)) => return fail(STATUS_ATOLL_FAILED, message),
    };
    let vcpu_cores: Vec<usize> = registration
        .grant
        .cpus
        .iter()
        .map(|&cpu| cpu as usize)
        .collect();
    let service_core = registration.grant.service_cpu.map(|cpu| cpu as usize);
    let tmp = match PrivateTmp::create(args.tmp_size.unwrap_or(memory_limit)) {
        Ok(tmp) => tmp,
        Err(error) => {
            return fail(
                STATUS_ATOLL_FAILED,
                format!("cannot create a private /tmp: {error}"),
            )
        }
    };
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = (
        tmp.directory().map(Path::to_path_buf),
        Some(registration.id),
    );
    let (mounts, cwd) = match mounts(&args.volumes, &args.files, &tmp) {
        Ok(mounts) => mounts,
        Err(message) => return fail(STATUS_USAGE, message),
    };
    let private_dirs = mounts
        .iter()
        .filter(|mount| mount.host.starts_with(&tmp.path) && !mount.read_only)
        .map(|mount| mount.guest.clone())
        .collect();
    let exe_path = exe_path.into_os_string().into_vec();

    let mut boot_flags = 0;
    if args.trace {
        boot_flags |= flags::TRACE;
    }
    if args.syscall_summary {
        boot_flags |= flags::SYSCALL_SUMMARY;
    }
    if args.debug_panic {
        boot_flags |= flags::DEBUG_PANIC;
    }
    atoll_vmm::host::ignore_sigpipe();
    let mut backend = match choose_backend(&args.backend, &args.kvm_device, args.gdb) {
        Ok(backend) => backend,
        Err(message) => return fail(STATUS_USAGE, message),
    };
    let gdb = match &mut backend {
        atoll_vmm::BackendChoice::Qemu(options) => options.gdb.as_mut(),
        atoll_vmm::BackendChoice::Kvm { gdb, .. } => gdb.as_mut(),
    };
    if let Some(gdb) = gdb {
        let kernel = kernel_image.as_deref().unwrap_or(crate::KERNEL_IMAGE);
        gdb.program_symbols = Some(PathBuf::from(OsString::from_vec(exe_path.clone())));
        gdb.kernel_symbols = kernel_symbols_file(kernel);
    }
    let mut memory_limit = memory_limit;
    if memory_arg.is_none() && matches!(backend, atoll_vmm::BackendChoice::Qemu(_)) {
        memory_limit = memory_limit.min(atoll_vmm::backend::qemu::MAX_MEMORY);
    }
    let memory_size = address_space(&backend, memory_limit);
    let config = IsleConfig {
        backend,
        kernel_image: kernel_image.as_deref().unwrap_or(crate::KERNEL_IMAGE),
        program_image: &image,
        argv: args.command.into_iter().map(OsString::into_vec).collect(),
        envp,
        exe_path,
        memory_size,
        memory_limit,
        flags: boot_flags,
        cpu_count: vcpu_cores.len() as u64,
        vcpu_cores,
        service_core,
        private_dirs,
        mounts,
        cwd,
        net: NetPolicy {
            published: args.publish,
            outbound: args.net,
        },
        rewrite: !args.no_rewrite,
        stats_path: crate::isles::stats_path(registration.id),
        numa_node: registration.grant.node,
    };
    let outcome = atoll_vmm::run(config);
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = (None, None);
    drop(tmp);
    let mut registration = registration;
    let status = match outcome {
        Ok(Outcome::Exited(status)) => i32::from(status),
        Ok(Outcome::Killed { signal, report }) => fail(128 + signal as i32, report),
        Ok(Outcome::Crashed(report)) => {
            fail(STATUS_ATOLL_FAILED, format!("isle crashed: {report}"))
        }
        Err(IsleError::Program(error)) => fail(STATUS_NOT_EXECUTABLE, format!("{shown}: {error}")),
        Err(IsleError::Setup(error)) => fail(STATUS_ATOLL_FAILED, format!("{shown}: {error}")),
        Err(error) => fail(STATUS_ATOLL_FAILED, error),
    };
    registration.finish(status);
    status
}
