//! The isle's own /proc and /sys files, as far as programs read them, made
//! when they are opened from what the monitor knows of the isle: its
//! argv, identity, CPUs, memory, mounts and fds. Never the host's: an isle
//! on one core says one CPU, whatever the machine has.
//!
//! Each opens as a sealed, read-only memfd holding the text, so read,
//! pread, lseek and fstat behave as on any file. `/proc/self/fd/N` reads as
//! a link to the guest path the fd was opened with.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use atoll_abi::boot::Identity;
use atoll_abi::linux::errno::{EACCES, EINVAL, EISDIR, ELOOP, ENOENT};
use rustix::fs::OFlags;

use super::errno;
use super::fdtable::State;
use super::mounts::Files;

/// What /proc shows of the isle's other processes, and of this one's
/// monitor as the host sees it: the process module's to tell (the sandbox
/// knows only this isle).
pub trait ProcessView: Send + Sync {
    /// The isle's other processes, as /proc lists them.
    fn others(&self) -> Vec<u32>;
    /// Another process of the isle's (None for any other pid).
    fn other(&self, pid: u32) -> Option<OtherProcess>;
    /// The host's /proc/PID/stat line of this process's monitor.
    fn own_stat(&self) -> Option<String>;
}

/// Another process of the isle's, as its /proc/PID shows it.
pub struct OtherProcess {
    /// Its arguments, a NUL after each.
    pub arguments: Vec<u8>,
    /// Its program's guest path.
    pub program: Vec<u8>,
    /// The host's /proc/PID/stat line of its monitor.
    pub host_stat: String,
}

/// What the monitor knows of the isle that its /proc shows.
#[derive(Clone, Default)]
pub struct IsleFacts {
    pub identity: Identity,
    pub argv: Vec<Vec<u8>>,
    /// The host CPUs the vCPUs run on, in vCPU order.
    pub host_cpus: Vec<usize>,
    /// The isle's memory limit.
    pub memory_bytes: u64,
    /// The program's guest path, where /proc/self/exe leads.
    pub exe_path: String,
    /// The isle's other processes (none: this is its only one).
    pub processes: Option<Arc<dyn ProcessView>>,
}

/// What a synthetic path is.
enum Entry {
    File(Vec<u8>),
    /// `/proc/self/fd/N`: a link to what fd N was opened as.
    FdLink {
        fd: i32,
        target: String,
    },
    /// `/proc/self/exe`: a link to the program (followed when resolving).
    ExeLink(String),
    /// A directory: its entries' names and d_types.
    Dir(Vec<(String, u8)>),
}

/// The entries of the directory `path` (as `entry` names paths: "self/",
/// "self/fd/", "" for /proc itself), if it is one.
fn directory(files: &Files, state: &State, path: &str) -> Option<Vec<(String, u8)>> {
    fn files_named(names: &'static [&'static str]) -> impl Iterator<Item = (String, u8)> {
        names.iter().map(|name| (name.to_string(), libc::DT_REG))
    }
    let entries: Vec<(String, u8)> = match path.trim_end_matches('/') {
        "" => files_named(&["cpuinfo", "meminfo", "stat", "mounts"])
            .chain([
                ("self".into(), libc::DT_LNK),
                ("thread-self".into(), libc::DT_LNK),
                (files.facts().identity.pid.to_string(), libc::DT_DIR),
            ])
            .chain(
                files
                    .facts()
                    .processes
                    .as_ref()
                    .map(|processes| processes.others())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|pid| (pid.to_string(), libc::DT_DIR)),
            )
            .collect(),
        "self" => files_named(&["cmdline", "comm", "stat", "status", "mounts", "maps"])
            .chain([("exe".into(), libc::DT_LNK), ("fd".into(), libc::DT_DIR)])
            .collect(),
        "self/fd" => state
            .fds
            .keys()
            .map(|fd| (fd.to_string(), libc::DT_LNK))
            .collect(),
        _ => return None,
    };
    Some(entries)
}

/// The directories of /sys the isle has, and what each holds.
fn sys_directory(absolute: &str) -> Option<Vec<(String, u8)>> {
    let (names, kind): (&[&str], u8) = match absolute {
        "/sys" => (&["devices"], libc::DT_DIR),
        "/sys/devices" => (&["system"], libc::DT_DIR),
        "/sys/devices/system" => (&["cpu"], libc::DT_DIR),
        "/sys/devices/system/cpu" => (&["online", "possible", "present"], libc::DT_REG),
        _ => return None,
    };
    Some(names.iter().map(|name| (name.to_string(), kind)).collect())
}

/// Whether `absolute` (a normalized guest path) is one of the synthetic
/// trees, which no mount can shadow.
pub(super) fn is_synthetic(absolute: &str) -> bool {
    let under = |root: &str| {
        absolute == root
            || absolute
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    under("/proc") || under("/sys")
}

/// `/proc/PID/...`, `/proc/self/...` and `/proc/thread-self/...` of the
/// isle's own process, as `self/...`.
fn own_process(rest: &str, pid: u32) -> Option<String> {
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let own = first == "self" || first == "thread-self" || first == pid.to_string();
    own.then(|| format!("self/{tail}"))
}

/// A program's name as Linux keeps it: `argv0`'s last part, 15 bytes.
fn comm_of(argv0: &[u8]) -> String {
    let base = argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0);
    String::from_utf8_lossy(&base[..base.len().min(15)]).into_owned()
}

/// A /proc/PID/stat line with `comm` for the name the host gives in
/// parentheses (the monitor's).
fn with_comm(stat: &str, comm: &str) -> Option<String> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    Some(format!("{}({comm}){}", &stat[..open], &stat[close + 1..]))
}

/// A CPU list as /sys writes one: "0", "0-3".
fn cpu_list(count: usize) -> String {
    match count {
        0 | 1 => "0\n".into(),
        count => format!("0-{}\n", count - 1),
    }
}

/// What the host tells of itself, read (or opened) before the monitor is
/// confined, when it can still reach its own /proc.
#[derive(Default)]
pub(super) struct HostSources {
    cpuinfo: String,
    boot_time: String,
    /// The monitor's own /proc/self/status and stat, re-read from offset
    /// 0 each time (procfs makes them anew); a forked child opens its own.
    own: std::sync::RwLock<OwnSources>,
    /// An empty directory, already removed: what the isle's /proc and /sys
    /// directories open as (their entries are listed by the monitor).
    empty_directory: Option<OwnedFd>,
    /// A symlink, already removed (O_PATH): what lstat and statx see of
    /// the isle's /proc links (readlink asks the monitor for the target).
    link: Option<OwnedFd>,
}

/// The monitor process's own /proc files, opened while it can reach them.
#[derive(Default)]
struct OwnSources {
    status: Option<std::fs::File>,
    stat: Option<std::fs::File>,
}

impl OwnSources {
    fn open() -> Self {
        Self {
            status: std::fs::File::open("/proc/self/status").ok(),
            stat: std::fs::File::open("/proc/self/stat").ok(),
        }
    }
}

impl HostSources {
    fn read() -> Self {
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|line| line.strip_prefix("btime "))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "0".into());
        Self {
            cpuinfo: std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
            boot_time,
            own: std::sync::RwLock::new(OwnSources::open()),
            empty_directory: removed_directory(),
            link: removed_symlink(),
        }
    }

    /// A symlink fd of the isle's /proc links, for lstat.
    pub(super) fn link(&self) -> Result<OwnedFd, i64> {
        let link = self.link.as_ref().ok_or(ENOENT)?;
        rustix::io::fcntl_dupfd_cloexec(link, 3).map_err(errno)
    }

    /// What the confinement must let the monitor open: the empty directory.
    pub(super) fn reachable(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.empty_directory.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    /// A directory fd of its own (its own position) for a synthetic directory.
    fn empty_directory(&self) -> Result<OwnedFd, i64> {
        let directory = self.empty_directory.as_ref().ok_or(ENOENT)?;
        rustix::fs::openat(
            directory,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(errno)
    }
}

/// A name of the monitor's own in the host's temporary directory.
fn scratch_name(what: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    std::env::temp_dir().join(format!("atoll-{what}-{}-{nanos}", std::process::id()))
}

/// A fresh symlink opened (O_PATH) and then removed.
fn removed_symlink() -> Option<OwnedFd> {
    let path = scratch_name("proc-link");
    std::os::unix::fs::symlink("/", &path).ok()?;
    let opened = rustix::fs::open(
        &path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let _ = std::fs::remove_file(&path);
    opened.ok()
}

/// A fresh directory opened and then removed, mode 0555.
fn removed_directory() -> Option<OwnedFd> {
    let path = scratch_name("proc-dir");
    std::fs::create_dir(&path).ok()?;
    let opened = rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o555));
    let _ = std::fs::remove_dir(&path);
    opened.ok()
}

/// The whole of a procfs file opened earlier, as it reads now.
fn reread(file: &Option<std::fs::File>) -> String {
    let Some(file) = file else {
        return String::new();
    };
    let mut bytes = vec![0u8; 8192];
    let len = std::os::unix::fs::FileExt::read_at(file, &mut bytes, 0).unwrap_or(0);
    bytes.truncate(len);
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Files {
    /// The program's path if `absolute` is its /proc/PID/exe.
    pub(crate) fn own_exe(&self, absolute: &str) -> Option<String> {
        let rest = absolute.strip_prefix("/proc/")?;
        let facts = self.facts();
        let path = own_process(rest, facts.identity.pid)?;
        (path == "self/exe" && !facts.exe_path.is_empty()).then(|| facts.exe_path.clone())
    }

    /// What the isle's /proc shows now (an execve changes it).
    pub(crate) fn facts(&self) -> Arc<IsleFacts> {
        Arc::clone(&self.facts.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// What the isle's /proc and /sys show; call before the monitor is
    /// confined (the host's own /proc is read or opened here).
    pub fn set_isle_facts(&self, facts: IsleFacts) {
        *self.facts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(facts);
    }

    /// Reads (or opens) what the host tells of itself; call before the
    /// monitor is confined, when it can still reach its own /proc.
    pub fn read_host_sources(&mut self) {
        self.host = HostSources::read();
    }

    /// In a forked child, before it is confined: its /proc/self files are
    /// its own, not the ones its parent opened.
    pub fn reopen_own_sources(&self) {
        *self.host.own.write().unwrap_or_else(|e| e.into_inner()) = OwnSources::open();
    }

    /// The monitor's own /proc/self/status, as it reads now.
    fn monitor_status(&self) -> String {
        reread(
            &self
                .host
                .own
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .status,
        )
    }

    /// The monitor's own /proc/self/stat, as it reads now.
    fn monitor_stat(&self) -> String {
        reread(&self.host.own.read().unwrap_or_else(|e| e.into_inner()).stat)
    }

    fn entry(&self, state: &State, absolute: &str) -> Result<Entry, i64> {
        let facts = self.facts();
        let cpus = facts.host_cpus.len().max(1);
        if let Some(entries) = sys_directory(absolute) {
            return Ok(Entry::Dir(entries));
        }
        if absolute == "/proc" {
            return Ok(Entry::Dir(directory(self, state, "").unwrap_or_default()));
        }
        if let Some(name) = absolute.strip_prefix("/sys/devices/system/cpu/") {
            return match name {
                "online" | "possible" | "present" => Ok(Entry::File(cpu_list(cpus).into_bytes())),
                _ => Err(ENOENT),
            };
        }
        let rest = absolute.strip_prefix("/proc/").ok_or(ENOENT)?;
        let path = own_process(rest, facts.identity.pid).unwrap_or_else(|| rest.to_string());
        if let Some(entries) = directory(self, state, &path) {
            return Ok(Entry::Dir(entries));
        }
        let (first, tail) = path.split_once('/').unwrap_or((&path, ""));
        if let Ok(pid) = first.parse::<u32>() {
            return self.other_process_entry(pid, tail);
        }
        let text = match path.as_str() {
            "cpuinfo" => self.cpuinfo(),
            "meminfo" => self.meminfo(),
            "stat" => self.stat(),
            "mounts" | "self/mounts" => self.mounts_text(),
            "self/cmdline" => {
                let mut bytes = Vec::new();
                for arg in &facts.argv {
                    bytes.extend_from_slice(arg);
                    bytes.push(0);
                }
                return Ok(Entry::File(bytes));
            }
            "self/status" => self.status(state),
            "self/stat" => {
                let processes = facts.processes.as_ref().ok_or(ENOENT)?;
                let host = processes.own_stat().ok_or(ENOENT)?;
                with_comm(&host, &self.comm()).ok_or(ENOENT)?
            }
            "self/comm" => format!("{}\n", self.comm()),
            "self/maps" => self.maps_text(),
            "self/exe" => return self.own_exe(absolute).map(Entry::ExeLink).ok_or(ENOENT),
            other => {
                if let Some(fd) = other.strip_prefix("self/fd/") {
                    let fd: i32 = fd.parse().map_err(|_| ENOENT)?;
                    let target = self.fd_link(state, fd)?;
                    return Ok(Entry::FdLink { fd, target });
                }
                return Err(ENOENT);
            }
        };
        Ok(Entry::File(text.into_bytes()))
    }

    /// The program's name as Linux keeps it: argv[0]'s last part, 15 bytes.
    fn comm(&self) -> String {
        let facts = self.facts();
        comm_of(facts.argv.first().map(Vec::as_slice).unwrap_or(b""))
    }

    /// `/proc/PID/...` of another process of the isle's (ENOENT for any
    /// pid not of its tree): what it runs, from the process table, and its
    /// state, parent, group and times, from the host's view of its monitor.
    fn other_process_entry(&self, pid: u32, tail: &str) -> Result<Entry, i64> {
        let facts = self.facts();
        let processes = facts.processes.as_ref().ok_or(ENOENT)?;
        let OtherProcess {
            arguments,
            program,
            host_stat,
        } = processes.other(pid).ok_or(ENOENT)?;
        let argv0 = arguments.split(|&b| b == 0).next().unwrap_or(b"");
        let comm = comm_of(argv0);
        let text = match tail.trim_end_matches('/') {
            "" => {
                let files = ["cmdline", "comm", "stat", "status"]
                    .iter()
                    .map(|name| (name.to_string(), libc::DT_REG));
                return Ok(Entry::Dir(
                    files.chain([("exe".into(), libc::DT_LNK)]).collect(),
                ));
            }
            "cmdline" => return Ok(Entry::File(arguments)),
            "exe" => {
                return Ok(Entry::ExeLink(
                    String::from_utf8_lossy(&program).into_owned(),
                ))
            }
            "comm" => format!("{comm}\n"),
            "stat" => with_comm(&host_stat, &comm).ok_or(ENOENT)?,
            "status" => self.other_status(pid, &comm, &host_stat),
            _ => return Err(ENOENT),
        };
        Ok(Entry::File(text.into_bytes()))
    }

    /// /proc/PID/status of another process of the isle's: its own name,
    /// state, parent and threads (the host's), the isle's credentials.
    fn other_status(&self, pid: u32, comm: &str, host_stat: &str) -> String {
        let facts = self.facts();
        let id = &facts.identity;
        let fields: Vec<&str> = host_stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |index: usize| fields.get(index).copied().unwrap_or("0");
        let state = match field(0) {
            "R" => "R (running)",
            "S" => "S (sleeping)",
            "D" => "D (disk sleep)",
            "T" => "T (stopped)",
            "t" => "t (tracing stop)",
            "Z" => "Z (zombie)",
            "X" => "X (dead)",
            "I" => "I (idle)",
            _ => "S (sleeping)",
        };
        format!(
            "Name:\t{comm}\nState:\t{state}\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{}\n\
             Uid:\t{uid}\t{euid}\t{euid}\t{euid}\nGid:\t{gid}\t{egid}\t{egid}\t{egid}\n\
             Threads:\t{}\n",
            field(1),
            field(17),
            uid = id.uid,
            euid = id.euid,
            gid = id.gid,
            egid = id.egid,
        )
    }

    pub(super) fn fd_link(&self, state: &State, number: i32) -> Result<String, i64> {
        let file = state.fds.get(&number).ok_or(ENOENT)?;
        if let Some(path) = &file.guest_path {
            return Ok(path.clone());
        }
        // Pipes, sockets, terminals: what Linux says of the host's. A host
        // file given as stdio keeps its host path to itself.
        let host = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&*file.fd)
        );
        let target = std::fs::read_link(host).map_err(|_| ENOENT)?;
        let target = target.to_string_lossy();
        let shown = ["pipe:", "socket:", "anon_inode:", "/dev/"]
            .iter()
            .any(|prefix| target.starts_with(prefix));
        Ok(match shown {
            true => target.into_owned(),
            false => format!("anon_inode:[host file {number}]"),
        })
    }

    /// The host's description of the first vCPU's core, once per vCPU,
    /// numbered as the isle numbers them.
    fn cpuinfo(&self) -> String {
        let blocks: Vec<&str> = self
            .host
            .cpuinfo
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .collect();
        let facts = self.facts();
        let cpus = facts.host_cpus.len().max(1);
        let mut text = String::new();
        for vcpu in 0..cpus {
            let host_cpu = facts.host_cpus.get(vcpu).copied().unwrap_or(0);
            let Some(block) = blocks.get(host_cpu).or(blocks.first()) else {
                break;
            };
            for line in block.lines() {
                let key = line.split(':').next().unwrap_or("").trim();
                let line = match key {
                    "processor" | "core id" | "apicid" | "initial apicid" => {
                        format!("{}: {vcpu}", line.split(':').next().unwrap_or(key))
                    }
                    "physical id" => format!("{}: 0", line.split(':').next().unwrap_or(key)),
                    "siblings" | "cpu cores" => {
                        format!("{}: {cpus}", line.split(':').next().unwrap_or(key))
                    }
                    _ => line.to_string(),
                };
                text.push_str(&line);
                text.push('\n');
            }
            text.push('\n');
        }
        text
    }

    /// The isle's memory: its limit is all it has; what the monitor holds
    /// of it resident is what is used.
    fn meminfo(&self) -> String {
        let total_kib = self.facts().memory_bytes / 1024;
        let resident_kib = self
            .monitor_status()
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0u64)
            .min(total_kib);
        let free_kib = total_kib - resident_kib;
        let mut text = String::new();
        for (key, kib) in [
            ("MemTotal", total_kib),
            ("MemFree", free_kib),
            ("MemAvailable", free_kib),
            ("Buffers", 0),
            ("Cached", 0),
            ("SwapCached", 0),
            ("SwapTotal", 0),
            ("SwapFree", 0),
            ("Shmem", 0),
        ] {
            text.push_str(&format!("{:<16}{kib:>8} kB\n", format!("{key}:")));
        }
        text
    }

    /// /proc/stat: the isle's CPUs, with the monitor's CPU time (which is
    /// the isle's: its vCPUs are its threads) shared among them.
    fn stat(&self) -> String {
        let cpus = self.facts().host_cpus.len().max(1) as u64;
        // The monitor's user and system time in clock ticks (fields 14 and
        // 15 of its own stat, after the parenthesized name).
        let own = self.monitor_stat();
        let fields: Vec<u64> = own
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        let (user, system) = (
            fields.get(11).copied().unwrap_or(0),
            fields.get(12).copied().unwrap_or(0),
        );
        let line = |name: &str, user: u64, system: u64| {
            format!("{name} {user} 0 {system} 0 0 0 0 0 0 0\n")
        };
        let mut text = line("cpu ", user, system);
        for cpu in 0..cpus {
            text.push_str(&line(&format!("cpu{cpu}"), user / cpus, system / cpus));
        }
        text.push_str(&format!(
            "intr 0\nctxt 0\nbtime {}\nprocesses 1\nprocs_running {cpus}\nprocs_blocked 0\n",
            self.host.boot_time.trim()
        ));
        text
    }

    /// The isle's mounts, as /proc/mounts lists them.
    fn mounts_text(&self) -> String {
        let mut text = String::from("proc /proc proc ro,nosuid,nodev,noexec 0 0\n");
        text.push_str("sysfs /sys sysfs ro,nosuid,nodev,noexec 0 0\n");
        let mut mounts: Vec<_> = self.mounts.iter().collect();
        mounts.sort_by(|a, b| a.guest.cmp(&b.guest));
        for mount in mounts {
            let kind = if self.private_dirs.contains(&mount.guest) {
                "tmpfs"
            } else {
                "atoll"
            };
            let options = if mount.read_only { "ro" } else { "rw" };
            let escaped = mount
                .guest
                .replace('\\', "\\134")
                .replace(' ', "\\040")
                .replace('\t', "\\011")
                .replace('\n', "\\012");
            text.push_str(&format!("{kind} {escaped} {kind} {options} 0 0\n"));
        }
        text
    }

    fn status(&self, state: &State) -> String {
        let facts = self.facts();
        let id = &facts.identity;
        let cpus = facts.host_cpus.len().max(1);
        let groups: Vec<String> = id.groups[..(id.group_count as usize).min(id.groups.len())]
            .iter()
            .map(u32::to_string)
            .collect();
        format!(
            "Name:\t{}\nUmask:\t{:04o}\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\n\
             PPid:\t{}\nTracerPid:\t0\nUid:\t{uid}\t{euid}\t{euid}\t{euid}\n\
             Gid:\t{gid}\t{egid}\t{egid}\t{egid}\nFDSize:\t{}\nGroups:\t{}\n\
             VmSize:\t{:>8} kB\nCpus_allowed_list:\t{}\n",
            self.comm(),
            state.umask,
            id.ppid,
            state
                .fds
                .keys()
                .next_back()
                .map_or(64, |&last| (last + 1).max(64)),
            groups.join(" "),
            facts.memory_bytes / 1024,
            cpu_list(cpus).trim_end(),
            pid = id.pid,
            uid = id.uid,
            euid = id.euid,
            gid = id.gid,
            egid = id.egid,
        )
    }

    /// The isle's /proc or /sys file at `absolute`, opened for reading;
    /// `/proc/self/fd/N` opens what fd N is (unless `follow` is off).
    pub(super) fn open_synthetic(
        &self,
        state: &State,
        absolute: &str,
        flags: i32,
        follow: bool,
    ) -> Result<OwnedFd, i64> {
        match self.entry(state, absolute)? {
            Entry::File(bytes) => {
                if flags & libc::O_ACCMODE != libc::O_RDONLY
                    || flags & (libc::O_CREAT | libc::O_TRUNC) != 0
                {
                    return Err(EACCES);
                }
                sealed_memfd(&bytes)
            }
            Entry::Dir(_) => {
                if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_CREAT != 0 {
                    return Err(EISDIR);
                }
                self.host.empty_directory()
            }
            Entry::FdLink { .. } | Entry::ExeLink(_) if !follow => Err(ELOOP),
            // Followed before it gets here (see `expand_symlinks`).
            Entry::ExeLink(_) => Err(ELOOP),
            Entry::FdLink { fd, .. } => {
                let file = state.fds.get(&fd).ok_or(ENOENT)?;
                rustix::io::fcntl_dupfd_cloexec(&*file.fd, 3).map_err(errno)
            }
        }
    }

    /// The target of the isle's /proc symlink at `absolute` (EINVAL for
    /// a file, as readlink says of anything not a link).
    pub(super) fn synthetic_link(&self, state: &State, absolute: &str) -> Result<String, i64> {
        match self.entry(state, absolute)? {
            Entry::FdLink { target, .. } | Entry::ExeLink(target) => Ok(target),
            Entry::File(_) | Entry::Dir(_) => Err(EINVAL),
        }
    }

    /// getdents64 of guest fd `fd` if it is one of the isle's /proc or
    /// /sys directories: its entries now, from the fd's position (which
    /// lseek and rewinddir move, as on any directory). None for any other fd.
    pub fn synthetic_entries(&self, fd: u64, room: usize) -> Result<Option<Vec<u8>>, i64> {
        let state = self.lock();
        let Some(file) = i32::try_from(fd).ok().and_then(|fd| state.fds.get(&fd)) else {
            return Ok(None);
        };
        let Some(absolute) = file.guest_path.as_deref().filter(|path| is_synthetic(path)) else {
            return Ok(None);
        };
        let Ok(Entry::Dir(entries)) = self.entry(&state, absolute) else {
            return Ok(None);
        };
        let position =
            rustix::fs::seek(&*file.fd, rustix::fs::SeekFrom::Current(0)).map_err(errno)?;
        let all = [
            (".".to_string(), libc::DT_DIR),
            ("..".to_string(), libc::DT_DIR),
        ]
        .into_iter()
        .chain(entries);
        let mut bytes = Vec::new();
        let mut next = position;
        for (index, (name, kind)) in all.enumerate().skip(position as usize) {
            let record = dirent64(absolute, &name, kind, index as i64 + 1);
            if bytes.len() + record.len() > room {
                if bytes.is_empty() {
                    return Err(EINVAL);
                }
                break;
            }
            bytes.extend_from_slice(&record);
            next = index as u64 + 1;
        }
        rustix::fs::seek(&*file.fd, rustix::fs::SeekFrom::Start(next)).map_err(errno)?;
        Ok(Some(bytes))
    }
}

/// One `struct linux_dirent64`: inode, next offset, record length, type,
/// the name with its NUL, padded to 8 bytes. The inode is made up from
/// the path, never 0 (which readdir skips).
fn dirent64(directory: &str, name: &str, kind: u8, next: i64) -> Vec<u8> {
    let inode = format!("{directory}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
        })
        | 1;
    let length = (19 + name.len() + 1).next_multiple_of(8);
    let mut record = Vec::with_capacity(length);
    record.extend_from_slice(&inode.to_ne_bytes());
    record.extend_from_slice(&next.to_ne_bytes());
    record.extend_from_slice(&(length as u16).to_ne_bytes());
    record.push(kind);
    record.extend_from_slice(name.as_bytes());
    record.resize(length, 0);
    record
}

/// `bytes` in a memfd sealed against any change, at offset 0, mode 0444.
fn sealed_memfd(bytes: &[u8]) -> Result<OwnedFd, i64> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        c"atoll-proc",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(errno)?;
    let mut written = 0;
    while written < bytes.len() {
        written += rustix::io::write(&fd, &bytes[written..]).map_err(errno)?;
    }
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_bits_retain(0o444)).map_err(errno)?;
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )
    .map_err(errno)?;
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0)).map_err(errno)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isle_files(cpus: usize) -> Files {
        let mut files = Files::new(&[], "/").unwrap();
        files.read_host_sources();
        files.set_isle_facts(IsleFacts {
            identity: Identity {
                pid: 4242,
                ppid: 1,
                uid: 1000,
                euid: 1000,
                gid: 100,
                egid: 100,
                ..Default::default()
            },
            argv: vec![
                b"/usr/bin/python3".to_vec(),
                b"-c".to_vec(),
                b"pass".to_vec(),
            ],
            host_cpus: (2..2 + cpus).collect(),
            memory_bytes: 512 << 20,
            exe_path: "/usr/bin/python3".into(),
            processes: Some(Arc::new(OneChild)),
        });
        files
    }

    /// The isle's process 4242 and its forked child 4300, stopped, which
    /// runs `sleep 30` (its monitor is named atoll on the host).
    struct OneChild;

    impl ProcessView for OneChild {
        fn others(&self) -> Vec<u32> {
            vec![4300]
        }
        fn other(&self, pid: u32) -> Option<OtherProcess> {
            (pid == 4300).then(|| OtherProcess {
                arguments: b"/bin/sleep\x0030\x00".to_vec(),
                program: b"/usr/bin/sleep".to_vec(),
                host_stat: "4300 (atoll) T 4242 4300 4242 34816 4300 0 0 0 0 0 7 3 0 0 20 0 9 0\n"
                    .into(),
            })
        }
        fn own_stat(&self) -> Option<String> {
            Some("4242 (atoll) R 1 4242 4242 0 -1 0 0 0 0 0 5 2 0 0 20 0 9 0\n".into())
        }
    }

    #[test]
    fn another_process_of_the_isle_shows_what_it_runs_and_the_hosts_state() {
        let files = isle_files(1);
        assert_eq!(
            read(&files, "/proc/4300/cmdline").unwrap(),
            "/bin/sleep\x0030\x00"
        );
        assert_eq!(read(&files, "/proc/4300/comm").unwrap(), "sleep\n");
        assert_eq!(
            read(&files, "/proc/4300/stat").unwrap(),
            "4300 (sleep) T 4242 4300 4242 34816 4300 0 0 0 0 0 7 3 0 0 20 0 9 0\n"
        );
        let status = read(&files, "/proc/4300/status").unwrap();
        assert!(
            status.starts_with(
                "Name:\tsleep\nState:\tT (stopped)\nTgid:\t4300\nPid:\t4300\nPPid:\t4242\n"
            ),
            "{status}"
        );
        let state = files.lock();
        assert_eq!(
            files.synthetic_link(&state, "/proc/4300/exe").unwrap(),
            "/usr/bin/sleep"
        );
        drop(state);
        // Its own stat carries its own name; a pid of the host's has nothing.
        assert!(read(&files, "/proc/self/stat")
            .unwrap()
            .starts_with("4242 (python3) R 1 "));
        assert_eq!(read(&files, "/proc/1/status"), Err(ENOENT));
        assert_eq!(read(&files, "/proc/4300/environ"), Err(ENOENT));
        let at_cwd = i64::from(libc::AT_FDCWD);
        let proc = files.open(at_cwd, "/proc", libc::O_RDONLY, 0).unwrap() as u64;
        let listed = names(&files.synthetic_entries(proc, 4096).unwrap().unwrap());
        assert!(listed.contains(&"4300".to_string()), "{listed:?}");
        let child = files.open(at_cwd, "/proc/4300", libc::O_RDONLY, 0).unwrap() as u64;
        let listed = names(&files.synthetic_entries(child, 4096).unwrap().unwrap());
        assert!(listed.contains(&"cmdline".to_string()), "{listed:?}");
    }

    fn read(files: &Files, path: &str) -> Result<String, i64> {
        let state = files.lock();
        let fd = files.open_synthetic(&state, path, libc::O_RDONLY, true)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text).unwrap();
        Ok(text)
    }

    #[test]
    fn the_isle_shows_its_own_cpus_memory_and_process() {
        let files = isle_files(1);
        assert_eq!(
            read(&files, "/sys/devices/system/cpu/online").unwrap(),
            "0\n"
        );
        assert_eq!(
            read(&files, "/proc/self/cmdline").unwrap(),
            "/usr/bin/python3\0-c\0pass\0"
        );
        assert_eq!(
            read(&files, "/proc/4242/cmdline").unwrap(),
            read(&files, "/proc/self/cmdline").unwrap()
        );
        let status = read(&files, "/proc/self/status").unwrap();
        assert!(status.starts_with("Name:\tpython3\n"), "{status}");
        assert!(
            status.contains("\nPid:\t4242\n") && status.contains("\nUid:\t1000\t1000"),
            "{status}"
        );
        let meminfo = read(&files, "/proc/meminfo").unwrap();
        assert!(
            meminfo.starts_with("MemTotal:         524288 kB\n"),
            "{meminfo}"
        );
        let cpuinfo = read(&files, "/proc/cpuinfo").unwrap();
        assert_eq!(cpuinfo.matches("processor").count(), 1, "{cpuinfo}");
        let stat = read(&files, "/proc/stat").unwrap();
        assert!(
            stat.contains("\ncpu0 ") && !stat.contains("\ncpu1 "),
            "{stat}"
        );
        assert_eq!(isle_files(4).facts().host_cpus.len(), 4);
        assert_eq!(
            read(&isle_files(4), "/sys/devices/system/cpu/possible").unwrap(),
            "0-3\n"
        );
        assert_eq!(
            read(&isle_files(4), "/proc/cpuinfo")
                .unwrap()
                .matches("processor")
                .count(),
            4
        );
    }

    /// The names in a getdents64 answer.
    fn names(entries: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        let mut at = 0;
        while at < entries.len() {
            let length = u16::from_ne_bytes([entries[at + 16], entries[at + 17]]) as usize;
            let name = &entries[at + 19..at + length];
            let end = name.iter().position(|&b| b == 0).unwrap();
            names.push(String::from_utf8(name[..end].to_vec()).unwrap());
            at += length;
        }
        names
    }

    #[test]
    fn directories_list_what_the_isle_has_and_links_stat_as_links() {
        let files = isle_files(1);
        let at_cwd = i64::from(libc::AT_FDCWD);
        let fd = files.open(
            at_cwd,
            "/proc/self/fd",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        );
        let fd = fd.unwrap() as u64;
        let listed = names(&files.synthetic_entries(fd, 4096).unwrap().unwrap());
        assert_eq!(listed[..2], [".", ".."]);
        assert!(["0", "1", "2", &fd.to_string()]
            .iter()
            .all(|n| listed.contains(&n.to_string())));
        // Read to the end, then from the start again after a rewind.
        assert_eq!(files.synthetic_entries(fd, 4096).unwrap(), Some(Vec::new()));
        let state = files.lock();
        let host = Files::borrow_fd(&state, fd as i64).unwrap();
        rustix::fs::seek(host, rustix::fs::SeekFrom::Start(0)).unwrap();
        drop(state);
        // A buffer with room for one entry gets one at a time.
        let one = files.synthetic_entries(fd, 24).unwrap().unwrap();
        assert_eq!(names(&one), ["."]);
        assert_eq!(files.synthetic_entries(fd, 8), Err(EINVAL));
        let own = files.open(at_cwd, "/proc/4242", libc::O_RDONLY, 0).unwrap() as u64;
        let listed = names(&files.synthetic_entries(own, 4096).unwrap().unwrap());
        assert!(listed.contains(&"maps".to_string()) && listed.contains(&"exe".to_string()));
        let sys = files
            .open(at_cwd, "/sys/devices/system/cpu", libc::O_RDONLY, 0)
            .unwrap();
        let listed = names(&files.synthetic_entries(sys as u64, 4096).unwrap().unwrap());
        assert_eq!(listed[2..], ["online", "possible", "present"]);
        // Not a directory of ours: not answered here.
        let meminfo = files
            .open(at_cwd, "/proc/meminfo", libc::O_RDONLY, 0)
            .unwrap();
        assert_eq!(files.synthetic_entries(meminfo as u64, 4096), Ok(None));
        assert_eq!(
            files.open(at_cwd, "/proc/self", libc::O_WRONLY, 0),
            Err(EISDIR)
        );
        let mut stat = crate::host::fs::zeroed_stat();
        let nofollow = libc::AT_SYMLINK_NOFOLLOW;
        files
            .stat_at(at_cwd, "/proc/self/fd/0", nofollow, &mut stat)
            .unwrap();
        assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFLNK);
        files
            .stat_at(at_cwd, "/proc/self/exe", nofollow, &mut stat)
            .unwrap();
        assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFLNK);
        files.stat_at(at_cwd, "/proc/self", 0, &mut stat).unwrap();
        assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFDIR);
        let state = files.lock();
        assert_eq!(
            files.synthetic_link(&state, "/proc/self/exe").unwrap(),
            "/usr/bin/python3"
        );
    }

    #[test]
    fn other_paths_and_writes_are_refused_as_linux_does() {
        let files = isle_files(1);
        assert_eq!(read(&files, "/proc/1/cmdline").unwrap_err(), ENOENT);
        assert_eq!(read(&files, "/proc/kcore").unwrap_err(), ENOENT);
        assert_eq!(read(&files, "/sys/kernel/mm").unwrap_err(), ENOENT);
        let state = files.lock();
        let write = files.open_synthetic(&state, "/proc/meminfo", libc::O_WRONLY, true);
        assert_eq!(write.unwrap_err(), EACCES);
        assert!(!is_synthetic("/procfs/x") && is_synthetic("/proc") && is_synthetic("/sys/x"));
        assert!(files.synthetic_link(&state, "/proc/self/fd/1").is_ok());
        assert_eq!(
            files
                .synthetic_link(&state, "/proc/self/fd/99")
                .unwrap_err(),
            ENOENT
        );
        assert_eq!(
            files.synthetic_link(&state, "/proc/cpuinfo").unwrap_err(),
            EINVAL
        );
        drop(state);
        // Through the isle's own calls: a path, a stat, a readlink.
        let fd = files.open(
            i64::from(libc::AT_FDCWD),
            "/proc/self/status",
            libc::O_RDONLY,
            0,
        );
        assert!(fd.is_ok_and(|fd| fd >= 3));
        let mut stat = crate::host::fs::zeroed_stat();
        assert_eq!(
            files.stat_at(i64::from(libc::AT_FDCWD), "/proc/meminfo", 0, &mut stat),
            Ok(0)
        );
        assert_eq!(stat.st_mode & libc::S_IFMT, libc::S_IFREG);
        let mut buffer = [0u8; 64];
        assert!(files
            .readlink(i64::from(libc::AT_FDCWD), "/proc/self/fd/0", &mut buffer)
            .is_ok());
        assert_eq!(
            files.open(i64::from(libc::AT_FDCWD), "/proc/cpuinfo", libc::O_RDWR, 0),
            Err(EACCES)
        );
    }
}
