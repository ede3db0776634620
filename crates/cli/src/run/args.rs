//! `atoll run`'s flags, and the checks of what they say that need no
//! isle: memory sizes, ports, the environment.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use atoll_abi::layout::{align_up, LARGE_PAGE_SIZE, MAX_RAM_SIZE, MIN_RAM_SIZE};
use atoll_vmm::MountSpec;
use clap::Args;

use super::source::ImageToRun;
use crate::error::CliError;
use crate::size::{format_size, parse_size, SizeError};

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
    pub(super) memory: Option<u64>,
    /// Set an environment variable (KEY alone copies it from atoll's environment); repeatable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub(super) env: Vec<OsString>,
    /// vCPUs, each pinned to a host core of its own [default: 1]
    #[arg(short = 'c', long = "cores", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(super) cores: Option<u64>,
    /// Allow more vCPUs than free host cores: they share cores
    #[arg(long)]
    pub(super) overcommit: bool,
    /// Run on exactly these host CPUs, one vCPU each (e.g. 2-5,8)
    #[arg(long, value_name = "LIST", conflicts_with = "cores")]
    pub(super) cpus: Option<String>,
    /// Take preset partition K of the host config (its cores and memory)
    #[arg(short = 'i', long = "index", value_name = "K", conflicts_with_all = ["cores", "cpus", "memory"])]
    pub(super) index: Option<usize>,
    /// CPUs Linux keeps, overriding the host config (e.g. 0 or 0,36)
    #[arg(long, value_name = "LIST")]
    pub(super) host_cores: Option<String>,
    /// Wait until the cores and memory asked for are free, instead of failing
    #[arg(long)]
    pub(super) wait: bool,
    /// A name for the isle, usable with `atoll stop` and `atoll logs`
    #[arg(long, value_name = "NAME")]
    pub(super) name: Option<String>,
    /// Run detached: print the isle's id and return; its output goes to `atoll logs ID`
    #[arg(short = 'd', long)]
    pub(super) detach: bool,
    /// Show host directory HOST at GUEST in the isle; repeatable. OPTIONS, comma-separated: ro (read-only), owners (let the isle chown its files to anyone and make set-id programs). Default: the current directory at its own path
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:OPTIONS]")]
    pub(super) volumes: Vec<String>,
    /// The isle's `/`: host directory DIR (a Debian tree made by mmdebstrap, say), read-only unless `:rw`; PROGRAM, its interpreter and libraries are found inside it. Instead of the host's system directories and the current directory
    #[arg(long, value_name = "DIR[:rw]")]
    pub(super) rootfs: Option<String>,
    /// The isle's working directory [default: the image's, else the current directory (a host program), else /]
    #[arg(short = 'w', long, value_name = "DIR")]
    pub(super) workdir: Option<String>,
    /// Run as USER[:GROUP], names (from the isle's /etc/passwd and /etc/group) or numbers [default: the image's user, else atoll's]
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub(super) user: Option<String>,
    /// A container image: run PROGRAM instead of its Entrypoint (its Cmd is dropped unless arguments follow the image)
    #[arg(long, value_name = "PROGRAM")]
    pub(super) entrypoint: Option<String>,
    /// Most the isle's /tmp and /dev/shm hold together, e.g. 256M; past it writes get ENOSPC [default: the memory limit]
    #[arg(long, value_name = "SIZE", value_parser = parse_tmp_size)]
    pub(super) tmp_size: Option<u64>,
    /// Let the isle listen on host port PORT, as GUESTPORT inside (default: the same); repeatable
    #[arg(short = 'p', long = "publish", value_name = "PORT[:GUESTPORT]", value_parser = parse_port)]
    pub(super) publish: Vec<(u16, u16)>,
    /// Let the isle connect out to the network
    #[arg(long)]
    pub(super) net: bool,
    /// Print every syscall, strace-style, on stderr
    #[arg(long)]
    pub(super) trace: bool,
    /// Print per-syscall counts on stderr at exit
    #[arg(long)]
    pub(super) syscall_summary: bool,
    /// Leave the program's syscall instructions as they are (every call
    /// traps), for programs that read or checksum their own code
    #[arg(long, env = "ATOLL_NO_REWRITE", value_parser = clap::builder::FalseyValueParser::new())]
    pub(super) no_rewrite: bool,
    /// What runs the isle: kvm (our monitor), qemu (TCG: slower, full x86
    /// semantics), or auto (kvm, else qemu with a note)
    #[arg(long, value_name = "BACKEND", env = "ATOLL_BACKEND", default_value = "auto", value_parser = ["auto", "kvm", "qemu"])]
    pub(super) backend: String,
    /// Wait for GDB on this loopback port before the first instruction
    /// (QEMU backend): gdb PROGRAM -ex 'target remote :PORT'
    #[arg(long, value_name = "PORT")]
    pub(super) gdb: Option<u16>,
    /// The KVM device to use
    #[arg(
        long,
        value_name = "PATH",
        env = "ATOLL_KVM_DEVICE",
        default_value = "/dev/kvm"
    )]
    pub(super) kvm_device: PathBuf,
    /// Make the isle kernel panic at boot (tests the crash report)
    #[arg(long, hide = true)]
    pub(super) debug_panic: bool,
    /// What an image or a .isle file supplies (not a flag)
    #[arg(skip)]
    pub(super) image: Option<ImageToRun>,
    /// The root filesystem an image supplies (not a flag)
    #[arg(skip)]
    pub(super) root: Option<MountSpec>,
    /// Files layers and a project's `[build] files`, mounted read-only (not a flag)
    #[arg(skip)]
    pub(super) files: Vec<MountSpec>,
    /// The program to run, then its arguments
    #[arg(
        value_name = "PROGRAM [ARGS]...",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(super) command: Vec<OsString>,
}

/// A `-p` (or `[run] publish`) that isn't `PORT[:GUESTPORT]`: the text as given.
#[derive(Debug, thiserror::Error)]
#[error("invalid port '{0}': use PORT or PORT:GUESTPORT, each 1-65535")]
pub(super) struct InvalidPort(String);

/// Parses `PORT[:GUESTPORT]`.
pub(super) fn parse_port(text: &str) -> Result<(u16, u16), InvalidPort> {
    let invalid = || InvalidPort(text.to_string());
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

#[derive(Debug, thiserror::Error)]
enum TmpSizeError {
    #[error(transparent)]
    Size(#[from] SizeError),
    /// 0, which to tmpfs means unbounded.
    #[error("the private /tmp needs room: give at least 4K")]
    Zero,
}

/// Parses `--tmp-size`: a size, not 0.
fn parse_tmp_size(text: &str) -> Result<u64, TmpSizeError> {
    match parse_size(text)? {
        0 => Err(TmpSizeError::Zero),
        size => Ok(size),
    }
}

fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

pub(super) fn check_memory(requested: u64) -> Result<u64, CliError> {
    // As the user likely wrote it: 7M, 1.5G, or a byte count.
    let shown = if requested.is_multiple_of(1 << 10) {
        format_size(requested)
    } else {
        requested.to_string()
    };
    // The bounds hold for the size asked for, before it is rounded up to
    // whole large pages (which could wrap, or lift 7M to 8M).
    if requested < MIN_RAM_SIZE {
        return Err(CliError::usage(format!(
            "-m {shown} is too small: an isle needs at least {}",
            format_size(MIN_RAM_SIZE)
        )));
    }
    if requested > MAX_RAM_SIZE {
        return Err(CliError::usage(format!(
            "-m {shown} is too large: an isle can have at most {}",
            format_size(MAX_RAM_SIZE)
        )));
    }
    let size = align_up(requested, LARGE_PAGE_SIZE);
    if let Some(available) = available_memory() {
        if size > available {
            return Err(CliError::usage(format!(
                "-m {} is more than this host has available ({})",
                format_size(requested),
                format_size(available)
            )));
        }
    }
    Ok(size)
}

/// The memory limit when neither -m nor the manifest says: what the host
/// has available, as for a native process.
pub(super) fn default_memory_limit() -> u64 {
    let available = available_memory().unwrap_or(MAX_RAM_SIZE);
    (available & !(LARGE_PAGE_SIZE - 1)).clamp(MIN_RAM_SIZE, MAX_RAM_SIZE / 2)
}

pub(super) fn environment(requested: &[OsString]) -> Result<Vec<Vec<u8>>, CliError> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = DEFAULT_ENV
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect();
    for item in requested {
        let bytes = item.as_bytes();
        let (key, value) = match bytes.iter().position(|&b| b == b'=') {
            Some(0) => {
                return Err(CliError::usage(format!(
                    "invalid -e '{}': an empty variable name: use KEY=VALUE",
                    item.to_string_lossy()
                )))
            }
            Some(split) => (bytes[..split].to_vec(), bytes[split + 1..].to_vec()),
            None if bytes.is_empty() => {
                return Err(CliError::usage(
                    "invalid -e '': an empty variable name: use KEY=VALUE, or KEY to copy it",
                ))
            }
            None => match std::env::var_os(item) {
                Some(value) => (bytes.to_vec(), value.into_vec()),
                None => continue,
            },
        };
        if key.is_empty() || key.contains(&0) || value.contains(&0) {
            return Err(CliError::usage(format!(
                "invalid -e '{}': use KEY=VALUE",
                item.to_string_lossy()
            )));
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
