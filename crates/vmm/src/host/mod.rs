//! The monitor's raw host calls, as small safe wrappers, by family: `fs`
//! (stat, statfs, directory reads, locks), `files` (what rustix lacks for
//! the sandbox's path calls), `io` (vectored and polled I/O on guest
//! memory), `positioned_io`, `net` (sockets and their messages), `alloc`
//! (the process's allocator), `confine` (the sandbox test's probes), `tmpfs`
//! (the isle's private /tmp), `process` (fork, waitpid, a child's end); and,
//! here, host facts the isle reports: identity, uname, clocks, random bytes.
#![allow(unsafe_code)]

pub mod alloc;
#[cfg(test)]
pub(crate) mod confine;
pub(crate) mod files;
pub(crate) mod fs;
pub(crate) mod io;
pub(crate) mod net;
pub(crate) mod positioned_io;
pub(crate) mod process;
mod tmpfs;

pub use tmpfs::detached_tmpfs;

use atoll_abi::boot::{FixedStr, Identity, Utsname};

/// The atoll process's ids; the isle reports them as its own.
pub fn identity() -> Identity {
    let mut groups = [0u32; atoll_abi::boot::MAX_GROUPS];
    // SAFETY: getgroups writes at most `groups.len()` entries into the
    // array; it fails (-1, EINVAL) if there are more, which leaves none.
    let group_count =
        unsafe { libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()) }.max(0);
    // SAFETY: these calls have no preconditions and cannot fail.
    unsafe {
        Identity {
            pid: libc::getpid() as u32,
            ppid: libc::getppid() as u32,
            uid: libc::getuid(),
            gid: libc::getgid(),
            euid: libc::geteuid(),
            egid: libc::getegid(),
            pgid: libc::getpgrp() as u32,
            sid: libc::getsid(0) as u32,
            group_count: group_count as u32,
            groups,
        }
    }
}

fn field(chars: &[libc::c_char]) -> FixedStr<65> {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    FixedStr::new(&bytes)
}

/// The host's uname, so programs that check the kernel version see a real one.
pub fn uname() -> Utsname {
    let mut name = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the struct we own; on failure it stays zeroed.
    let name = unsafe {
        libc::uname(name.as_mut_ptr());
        name.assume_init()
    };
    Utsname {
        sysname: FixedStr::new(b"Linux"),
        nodename: field(&name.nodename),
        release: field(&name.release),
        version: field(&name.version),
        machine: FixedStr::new(b"x86_64"),
        domainname: field(&name.domainname),
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut spec) };
    spec.tv_sec as u64 * 1_000_000_000 + spec.tv_nsec as u64
}

/// Host CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Host CLOCK_REALTIME in ns.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// The host's time stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects and is allowed in user mode.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// This host's XCR0: the extended-state components Linux enabled. Zero on
/// a CPU without XSAVE (isles need it; the kernel then refuses to boot).
pub fn xcr0() -> u64 {
    if !std::arch::is_x86_feature_detected!("xsave") {
        return 0;
    }
    // SAFETY: xgetbv(0) only reads XCR0, and the CPU has XSAVE with the OS
    // having enabled it (the feature check above includes OSXSAVE).
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

/// Whether ring 3 here may use `rdfsbase`/`wrfsbase`: the CPU has
/// FSGSBASE and Linux enabled it (AT_HWCAP2's HWCAP2_FSGSBASE).
pub fn fsgsbase() -> bool {
    const HWCAP2_FSGSBASE: u64 = 1 << 1;
    // SAFETY: getauxval only reads this process's auxiliary vector.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    hwcap2 & HWCAP2_FSGSBASE != 0
}

/// Bytes from the host's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: writes within our buffer.
        let done = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if done > 0 {
            filled += done as usize;
        }
    }
    bytes
}

/// Ignore SIGPIPE so a closed pipe shows up as EPIPE, which the isle turns
/// into the program's own SIGPIPE.
/// What errno `errno` (positive or negated) means, as strerror says it.
pub fn errno_text(errno: i64) -> String {
    let error = std::io::Error::from_raw_os_error(errno.unsigned_abs() as i32);
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN has no memory-safety conditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Caps the size of any file this process writes (RLIMIT_FSIZE): a write
/// or fallocate past it fails with EFBIG instead of filling the disk.
pub fn limit_file_size(bytes: u64) -> std::io::Result<()> {
    // SAFETY: SIG_IGN for SIGXFSZ (so going past the cap is an error, not
    // death), and setrlimit reads a valid struct; neither touches memory
    // we own.
    let status = unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::setrlimit(
            libc::RLIMIT_FSIZE,
            &libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            },
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raises this process's soft RLIMIT_NOFILE as far as its hard one allows
/// (to at most `wanted`): every fd an isle opens is one of ours.
pub fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Blocks `signals` in the calling thread, and so in every thread it
/// starts afterwards, and hands each one that arrives to `handler` on a
/// thread of its own. Call it before starting other threads.
pub fn handle_signals(signals: &[i32], handler: impl Fn(i32) + Send + 'static) {
    // SAFETY: a zeroed sigset_t is valid storage for sigemptyset, which
    // initializes it; sigaddset and pthread_sigmask only read and write it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let spawned = std::thread::Builder::new()
        .name("atoll-signals".into())
        .spawn(move || loop {
            let mut signal = 0;
            // SAFETY: sigwait reads the set we own and writes one int.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                handler(signal);
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "no signal thread: signals act on atoll itself");
    }
}

/// Measures the host TSC frequency against CLOCK_MONOTONIC (fallback when
/// KVM can't report the guest's).
pub fn measure_tsc_khz() -> u64 {
    let start_ns = monotonic_ns();
    let start_tsc = rdtsc();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let ticks = rdtsc() - start_tsc;
    let ns = monotonic_ns() - start_ns;
    ticks * 1_000_000 / ns.max(1)
}

/// Pins the calling thread to host core `core`. Failure (a core outside
/// the process's cpuset) only loses the pinning, not correctness.
pub fn pin_current_thread(core: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays inside it for any
    // core below CPU_SETSIZE (checked); sched_setaffinity reads it only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if core < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                tracing::debug!("could not pin a thread to core {core}");
            }
        }
    }
}

/// The host cores this process may run on, lowest first.
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the set we own; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&core| libc::CPU_ISSET(core, &set))
            .collect()
    }
}

/// This thread's pthread id, for [`signal_thread`].
pub fn current_thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// Sends `signal` to the thread `thread` of this process (from
/// [`current_thread_id`]; the thread must still exist).
pub fn signal_thread(thread: u64, signal: i32) {
    // SAFETY: callers pass ids of threads that live as long as the process.
    unsafe { libc::pthread_kill(thread as libc::pthread_t, signal) };
}

fn errno() -> i64 {
    i64::from(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// A libc return value as a syscall result (-1 → the errno).
pub(crate) fn check(result: libc::c_long) -> Result<i64, i64> {
    if result < 0 {
        Err(errno())
    } else {
        Ok(result)
    }
}

/// A live host process, as /proc/PID/stat has it.
pub struct HostProcess {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// Its comm (an isle process's monitor goes by its program's name).
    pub name: String,
}

/// The host's live processes (zombies have ended: whoever reaps one holds
/// nothing of an isle's), from /proc.
pub fn live_processes() -> Vec<HostProcess> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next();
        let mut number = || rest.next().and_then(|field| field.parse().ok());
        if let (Some(state), Some(ppid), Some(pgrp), Some(session)) =
            (state, number(), number(), number())
        {
            if state != "Z" && state != "X" {
                let name = stat[open + 1..close].to_string();
                live.push(HostProcess {
                    pid,
                    ppid,
                    pgrp,
                    session,
                    name,
                });
            }
        }
    }
    live
}

/// Whether process group `pgrp` of `session` is orphaned among `live`:
/// none of its members has a parent in another group of the same session
/// (Linux's will_become_orphaned_pgrp; init's children don't count).
pub fn group_orphaned(live: &[HostProcess], pgrp: u32, session: u32) -> bool {
    !live
        .iter()
        .filter(|p| p.pgrp == pgrp && p.ppid != 1)
        .any(|member| {
            live.iter()
                .find(|parent| parent.pid == member.ppid)
                .is_some_and(|parent| parent.pgrp != pgrp && parent.session == session)
        })
}

/// Whether this process's own group is orphaned.
pub fn own_group_orphaned() -> bool {
    // SAFETY: getpgrp and getsid have no preconditions.
    let (pgrp, session) = unsafe { (libc::getpgrp() as u32, libc::getsid(0) as u32) };
    group_orphaned(&live_processes(), pgrp, session)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_group_is_orphaned_when_no_member_has_a_parent_elsewhere_in_its_session() {
        let process = |pid, ppid, pgrp, session| super::HostProcess {
            pid,
            ppid,
            pgrp,
            session,
            name: String::new(),
        };
        // A shell (10, its own group) and a job of two (20, 21) in its session.
        let mut live = vec![
            process(10, 5, 10, 10),
            process(20, 10, 20, 10),
            process(21, 10, 20, 10),
            process(5, 1, 5, 5),
        ];
        assert!(!super::group_orphaned(&live, 20, 10));
        // The shell's parent is in another session: its own group is orphaned.
        assert!(super::group_orphaned(&live, 10, 10));
        // The shell gone, the job was handed to init: orphaned.
        live.remove(0);
        live[0].ppid = 1;
        live[1].ppid = 1;
        assert!(super::group_orphaned(&live, 20, 10));
    }

    #[test]
    fn a_detached_tmpfs_is_bounded_and_private() {
        let mount = match super::detached_tmpfs(1 << 20) {
            Ok(mount) => mount,
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("SKIPPED: making a tmpfs needs CAP_SYS_ADMIN");
                return;
            }
            Err(error) => panic!("{error}"),
        };
        let root = std::path::PathBuf::from(format!("/proc/self/fd/{}", mount.as_raw_fd()));
        let mode = std::fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
        let mut file = std::fs::File::create(root.join("big")).unwrap();
        let chunk = vec![7u8; 64 << 10];
        let full = (0..64).find_map(|_| file.write_all(&chunk).err());
        assert_eq!(
            full.and_then(|error| error.raw_os_error()),
            Some(libc::ENOSPC),
            "2 MiB don't fit in 1 MiB"
        );
    }
}
