//! The monitor confines the threads that act on the isle's requests once
//! setup is done, as uhyve (Landlock) and Firecracker (seccomp) confine
//! theirs: the offload server, and through it its pool workers and the
//! populating thread, which inherit both. A bug in a handler, driven by an
//! untrusted guest, then reaches only what the isle was given.
//!
//! - Landlock: files only beneath the mounts (read-only ones for reading)
//!   and the device files every isle has; TCP bind only to published
//!   ports and, without `--net`, TCP connect only to them. Kernels without
//!   Landlock (or with an older ABI) get what they support.
//! - seccomp: the calls the handlers make, and nothing else, which fails
//!   with EPERM: no new process (clone only with CLONE_THREAD, clone3
//!   ENOSYS so threads fall back to clone; a fork is done by a thread of
//!   its own, unconfined), no program (execve), no
//!   mounts, namespaces, ptrace, signals to others (to its own threads,
//!   only the one that interrupts a host call), or new privileges.
//!
//! Both are prepared before boot, where an error can still be reported,
//! and applied on the server thread before it serves its first request.
//!
//! Beneath them, the isle's view of files ([`Files`]) confines every path
//! and fd it names itself:
//!
//! - `mounts`: the mounts and devices an isle sees, and `Files` itself;
//! - `resolve`: guest paths resolved inside a mount, never outside;
//! - `path_ops`: the operations on a name (stat, mkdir, rename, chmod...);
//! - `fdtable`: the table of the isle's fds;
//! - `procfs` and `maps`: the isle's own /proc and /sys.

mod fdtable;
mod maps;
mod mounts;
mod path_ops;
mod procfs;
mod resolve;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};

use landlock::{
    Access, AccessFs, AccessNet, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::offload::net::NetPolicy;

pub use fdtable::{FileKind, SocketNames, MAX_FDS};
pub use mounts::{Files, FilesError, MountSpec, DEVICES};
pub use procfs::{IsleFacts, OtherProcess, ProcessView};
pub use resolve::normalize;

/// A rustix error as the errno the isle is answered with.
fn errno(error: rustix::io::Errno) -> i64 {
    i64::from(error.raw_os_error())
}

/// A rustix call's outcome as a syscall's: 0, or the errno.
fn done(result: rustix::io::Result<()>) -> Result<i64, i64> {
    result.map(|()| 0).map_err(errno)
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot confine the monitor (Landlock): {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("cannot confine the monitor (seccomp): {0}")]
    Seccomp(String),
}

/// The newest Landlock ABI these rules use; older kernels get less.
const LANDLOCK_ABI: ABI = ABI::V5;

/// What the serving threads will be confined to.
pub struct Confinement {
    landlock: RulesetCreated,
    seccomp: [BpfProgram; 2],
}

/// One directory tree the isle may reach, and whether only for reading.
pub struct Reachable<'a> {
    pub root: BorrowedFd<'a>,
    pub read_only: bool,
}

impl Confinement {
    /// Rules for an isle with `trees` mounted, `devices` openable, and the
    /// network `policy`.
    pub fn prepare<'a>(
        trees: impl IntoIterator<Item = Reachable<'a>>,
        devices: &[&str],
        policy: &NetPolicy,
    ) -> Result<Self, SandboxError> {
        Ok(Self {
            landlock: landlock_rules(trees, devices, policy)?,
            seccomp: seccomp_filters()?,
        })
    }

    /// Confines the calling thread, and every thread it starts later.
    pub fn apply(self) -> Result<(), SandboxError> {
        let status = self.landlock.restrict_self()?;
        tracing::debug!(landlock = ?status.ruleset, "serving threads confined by Landlock");
        for filter in &self.seccomp {
            seccompiler::apply_filter(filter).map_err(seccomp_error)?;
        }
        Ok(())
    }
}

fn landlock_rules<'a>(
    trees: impl IntoIterator<Item = Reachable<'a>>,
    devices: &[&str],
    policy: &NetPolicy,
) -> Result<RulesetCreated, SandboxError> {
    let everything = AccessFs::from_all(LANDLOCK_ABI);
    // Nothing in an isle runs host programs or makes device nodes.
    let writable = everything & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock);
    let readable = AccessFs::ReadFile | AccessFs::ReadDir;
    let network = if policy.outbound {
        AccessNet::BindTcp.into()
    } else {
        AccessNet::BindTcp | AccessNet::ConnectTcp
    };
    let mut rules = Ruleset::default()
        .handle_access(everything)?
        .handle_access(network)?
        .create()?;
    for tree in trees {
        let access = if tree.read_only { readable } else { writable };
        rules = rules.add_rule(PathBeneath::new(tree.root.as_fd(), access))?;
    }
    for device in devices {
        // A device the host lacks is one the isle can't open either.
        if let Ok(file) = PathFd::new(device) {
            rules = rules.add_rule(PathBeneath::new(
                file,
                AccessFs::ReadFile | AccessFs::WriteFile,
            ))?;
        }
    }
    for &(host_port, _) in &policy.published {
        rules = rules.add_rule(NetPort::new(host_port, network))?;
    }
    if policy.outbound {
        // bind(0) before connecting: the net policy allows it with --net.
        rules = rules.add_rule(NetPort::new(0, AccessNet::BindTcp))?;
    }
    Ok(rules)
}

/// The calls the handlers (and the Rust runtime under them) make.
const ALLOWED: &[libc::c_long] = &[
    // The isle's child processes (their monitors): waited for.
    libc::SYS_wait4,
    libc::SYS_waitid,
    // The resources this process (the isle's) and its children used.
    libc::SYS_getrusage,
    // Their process groups and sessions (the handler checks whose).
    libc::SYS_getpgid,
    libc::SYS_setpgid,
    libc::SYS_getsid,
    libc::SYS_setsid,
    // Files.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fstatfs,
    libc::SYS_statfs,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_unlinkat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_syncfs,
    libc::SYS_flock,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_copy_file_range,
    libc::SYS_sendfile,
    libc::SYS_splice,
    libc::SYS_memfd_create,
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    // Their older forms, which the C library still makes for some calls.
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_readlink,
    libc::SYS_mkdir,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_link,
    libc::SYS_symlink,
    libc::SYS_truncate,
    libc::SYS_utimes,
    libc::SYS_getdents,
    libc::SYS_pipe,
    libc::SYS_dup2,
    libc::SYS_eventfd,
    libc::SYS_epoll_create,
    libc::SYS_fadvise64,
    // Sockets.
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_bind,
    libc::SYS_connect,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    // Memory: guest RAM, file mappings, the allocator, thread stacks.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_msync,
    libc::SYS_mbind,
    libc::SYS_brk,
    // Threads and time.
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // What the isle is told about its host.
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getgroups,
    libc::SYS_uname,
    libc::SYS_getrandom,
    libc::SYS_getrlimit,
    libc::SYS_prlimit64,
    libc::SYS_umask,
    libc::SYS_getcwd,
];

/// ioctl requests the handlers make: a terminal's settings, size,
/// foreground group and session, and attaching guest RAM to the VM.
const ALLOWED_IOCTLS: &[u64] = &[
    libc::TCGETS,
    libc::TCSETS,
    libc::TCSETSW,
    libc::TCSETSF,
    libc::TIOCGWINSZ,
    libc::TIOCSWINSZ,
    libc::TIOCGPGRP,
    libc::TIOCSPGRP,
    libc::TIOCGSID,
    libc::FIONREAD,
    libc::FIONBIO,
    KVM_SET_USER_MEMORY_REGION,
];
/// `_IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)`.
const KVM_SET_USER_MEMORY_REGION: u64 = 0x4020_ae46;

/// prctl options: naming a thread (the Rust runtime does), and
/// no_new_privs, which can only narrow.
const ALLOWED_PRCTLS: &[u64] = &[
    libc::PR_SET_NAME as u64,
    // The isle's process's own parent-death signal.
    libc::PR_SET_PDEATHSIG as u64,
    libc::PR_GET_NAME as u64,
    libc::PR_SET_NO_NEW_PRIVS as u64,
];
/// seccomp(SECCOMP_SET_MODE_FILTER): adding a filter, which can only
/// narrow what is allowed (the second one goes in after the first).
const SECCOMP_SET_MODE_FILTER: u64 = 1;

fn seccomp_error(error: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp(error.to_string())
}

/// A rule that argument `index` equals one of `values`.
fn one_of(index: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SandboxError> {
    values
        .iter()
        .map(|&value| {
            SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
                .and_then(|condition| SeccompRule::new(vec![condition]))
                .map_err(seccomp_error)
        })
        .collect()
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let arch = std::env::consts::ARCH.try_into().map_err(seccomp_error)?;
    SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(TryInto::try_into)
        .map_err(seccomp_error)
}

/// The allowlist, then a filter that answers clone3 with ENOSYS. clone3's
/// flags sit behind a pointer no filter can read, so it can't be let
/// through for threads only; ENOSYS makes the C library start threads with
/// clone instead. Of two filters' answers of the same kind the kernel
/// takes the one installed last, so clone3 gets ENOSYS, not EPERM.
fn seccomp_filters() -> Result<[BpfProgram; 2], SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|&call| (call, Vec::new())).collect();
    rules.insert(libc::SYS_ioctl, one_of(1, ALLOWED_IOCTLS)?);
    rules.insert(libc::SYS_prctl, one_of(0, ALLOWED_PRCTLS)?);
    rules.insert(libc::SYS_seccomp, one_of(0, &[SECCOMP_SET_MODE_FILTER])?);
    // A thread's own fs_struct, for the isle's umask per call (files).
    rules.insert(libc::SYS_unshare, one_of(0, &[libc::CLONE_FS as u64])?);
    // Threads, never processes.
    let thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        libc::CLONE_THREAD as u64,
    )
    .map_err(seccomp_error)?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![thread]).map_err(seccomp_error)?],
    );
    // Signals only to this process's own threads, only the one that
    // interrupts a worker's host call (pthread_kill is tgkill).
    let equals = |index: u8, value: u64| {
        SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
            .map_err(seccomp_error)
    };
    let own_process = equals(0, u64::from(std::process::id()))?;
    let interrupt = equals(2, crate::offload::interrupt_signal() as u64)?;
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![own_process, interrupt]).map_err(seccomp_error)?],
    );
    let allowlist = compile(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )?;
    let no_clone3 = compile(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    Ok([allowlist, no_clone3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::confine::{
        clone3_errno, clone_process_errno, execve_errno, mount_errno, signal_own_thread_errno,
        tiocsti_errno,
    };
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::OwnedFd;

    fn open_dir(path: &std::path::Path) -> OwnedFd {
        std::fs::File::open(path).unwrap().into()
    }

    fn errno_of<T>(result: rustix::io::Result<T>) -> i32 {
        result.err().map_or(0, rustix::io::Errno::raw_os_error)
    }

    /// What one confined thread may and may not do, as errnos (0: done).
    fn attempts(
        writable: &std::path::Path,
        read_only: &std::path::Path,
    ) -> Vec<(&'static str, i32)> {
        let mut seen = Vec::new();
        let open = |path: &std::path::Path, flags: OFlags| {
            errno_of(rustix::fs::open(
                path,
                flags | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ))
        };
        seen.push((
            "read inside a mount",
            open(&writable.join("present"), OFlags::RDONLY),
        ));
        seen.push((
            "create inside a mount",
            open(&writable.join("new"), OFlags::WRONLY | OFlags::CREATE),
        ));
        seen.push((
            "create inside a read-only mount",
            open(&read_only.join("new"), OFlags::WRONLY | OFlags::CREATE),
        ));
        seen.push((
            "read a read-only mount",
            open(&read_only.join("present"), OFlags::RDONLY),
        ));
        seen.push((
            "read outside the mounts",
            open(std::path::Path::new("/etc/hostname"), OFlags::RDONLY),
        ));
        seen.push((
            "open /dev/null",
            open(std::path::Path::new("/dev/null"), OFlags::RDWR),
        ));
        seen.push(("execve", execve_errno(c"/nonexistent/program")));
        seen.push(("clone a process", clone_process_errno()));
        seen.push(("clone3", clone3_errno()));
        seen.push((
            "signal another process",
            errno_of(rustix::process::test_kill_process(
                rustix::process::Pid::INIT,
            )),
        ));
        seen.push((
            "signal its own thread with another signal",
            signal_own_thread_errno(),
        ));
        seen.push(("mount", mount_errno(c"/nonexistent/mount")));
        seen.push(("ioctl TIOCSTI", tiocsti_errno()));
        let unpublished = std::net::TcpStream::connect(("127.0.0.1", 9));
        seen.push((
            "connect to an unpublished port",
            unpublished
                .err()
                .and_then(|error| error.raw_os_error())
                .unwrap_or(0),
        ));
        // A thread started now is confined too.
        let inherited = std::thread::spawn(|| execve_errno(c"/nonexistent/program"))
            .join()
            .unwrap();
        seen.push(("execve from a thread started later", inherited));
        seen
    }

    #[test]
    fn a_confined_thread_reaches_its_mounts_and_nothing_else() {
        let base = std::env::temp_dir().join(format!("atoll-sandbox-{}", std::process::id()));
        let writable = base.join("rw");
        let read_only = base.join("ro");
        for dir in [&writable, &read_only] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("present"), b"x").unwrap();
        }
        let (rw, ro) = (open_dir(&writable), open_dir(&read_only));
        let confinement = Confinement::prepare(
            [
                Reachable {
                    root: rw.as_fd(),
                    read_only: false,
                },
                Reachable {
                    root: ro.as_fd(),
                    read_only: true,
                },
            ],
            &crate::sandbox::DEVICES,
            &NetPolicy::default(),
        )
        .unwrap();
        let (w, r) = (writable.clone(), read_only.clone());
        let seen = std::thread::spawn(move || {
            confinement.apply().unwrap();
            attempts(&w, &r)
        })
        .join()
        .unwrap();
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(
            seen,
            vec![
                ("read inside a mount", 0),
                ("create inside a mount", 0),
                ("create inside a read-only mount", libc::EACCES),
                ("read a read-only mount", 0),
                ("read outside the mounts", libc::EACCES),
                ("open /dev/null", 0),
                ("execve", libc::EPERM),
                ("clone a process", libc::EPERM),
                ("clone3", libc::ENOSYS),
                ("signal another process", libc::EPERM),
                ("signal its own thread with another signal", libc::EPERM),
                ("mount", libc::EPERM),
                ("ioctl TIOCSTI", libc::EPERM),
                ("connect to an unpublished port", libc::EACCES),
                ("execve from a thread started later", libc::EPERM),
            ]
        );
    }
}
