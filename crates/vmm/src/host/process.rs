//! The host calls behind the isle's processes: fork, waitpid and the way
//! a forked child's monitor ends.

/// The calling thread's errno, or `fallback` where there is none.
fn last_errno(fallback: i32) -> i64 {
    i64::from(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(fallback),
    )
}

/// What `fork` returned to this process.
pub enum Forked {
    Parent { child: u32 },
    Child,
}

/// fork(2) of the whole atoll process. Only the calling thread goes on in
/// the child; the caller holds every lock the child will take.
pub fn fork() -> Result<Forked, i64> {
    // SAFETY: fork has no memory-safety preconditions; the child runs only
    // the calling thread, whose callers hold the locks it goes on to use.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno(libc::EAGAIN)),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent {
            child: child as u32,
        }),
    }
}

/// struct rusage, as its bytes.
pub type Rusage = [u8; std::mem::size_of::<libc::rusage>()];

/// wait4(pid, options): the child's pid (0 under WNOHANG with none done),
/// its wait status and the resources it used.
pub fn wait4(pid: i32, options: i32) -> Result<(u32, i32, Rusage), i64> {
    let mut status = 0;
    let mut usage = [0u8; std::mem::size_of::<libc::rusage>()];
    // SAFETY: wait4 writes one int into `status` and one struct rusage
    // into `usage`, which is exactly that big; both are ours.
    let done = unsafe { libc::wait4(pid, &mut status, options, usage.as_mut_ptr().cast()) };
    match done {
        -1 => Err(last_errno(libc::ECHILD)),
        child => Ok((child as u32, status, usage)),
    }
}

/// getrusage(who): RUSAGE_SELF (this process, the isle's) or
/// RUSAGE_CHILDREN (its children waited for).
pub fn rusage(who: i32) -> Result<Rusage, i64> {
    let mut usage = [0u8; std::mem::size_of::<libc::rusage>()];
    // SAFETY: getrusage writes one struct rusage into `usage`, that big.
    match unsafe { libc::getrusage(who, usage.as_mut_ptr().cast()) } {
        0 => Ok(usage),
        _ => Err(last_errno(libc::EINVAL)),
    }
}

/// waitid(idtype, id, options): the siginfo it fills (zeroed if no child
/// was ready under WNOHANG), as its 128 bytes, and the resources the
/// child used.
pub fn waitid(idtype: u32, id: u32, options: i32) -> Result<([u8; 128], Rusage), i64> {
    let mut info = [0u8; 128];
    let mut usage = [0u8; std::mem::size_of::<libc::rusage>()];
    // SAFETY: waitid writes one siginfo_t (128 bytes) into `info` and one
    // struct rusage into `usage`, each that big, for the kernel's
    // byte-wise copy.
    let done = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            idtype,
            id,
            info.as_mut_ptr(),
            options,
            usage.as_mut_ptr(),
        )
    };
    match done {
        -1 => Err(last_errno(libc::ECHILD)),
        _ => Ok((info, usage)),
    }
}

/// getpgid, setpgid, getsid or setsid (`atoll_abi::queue::group`).
pub fn group(what: u64, pid: u32, pgid: u32) -> Result<i64, i64> {
    use atoll_abi::queue::group::{GETPGID, GETSID, SETPGID, SETSID};
    let (pid, pgid) = (pid as libc::pid_t, pgid as libc::pid_t);
    // SAFETY: these calls have no memory-safety preconditions.
    let done = unsafe {
        match what {
            GETPGID => libc::getpgid(pid),
            SETPGID => libc::setpgid(pid, pgid),
            GETSID => libc::getsid(pid),
            SETSID => libc::setsid(),
            _ => return Err(i64::from(libc::EINVAL)),
        }
    };
    match done {
        -1 => Err(last_errno(libc::EPERM)),
        done => Ok(i64::from(done)),
    }
}

/// prctl(PR_SET_PDEATHSIG, signal): `signal` for this process when the
/// thread that forked it ends (0: none).
pub fn set_parent_death_signal(signal: u64) -> Result<i64, i64> {
    let signal = libc::c_ulong::try_from(signal).map_err(|_| i64::from(libc::EINVAL))?;
    // SAFETY: PR_SET_PDEATHSIG takes a number and touches no memory.
    match unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal) } {
        0 => Ok(0),
        _ => Err(last_errno(libc::EINVAL)),
    }
}

/// In a forked child: lets go of the parent's VM, which its children would
/// otherwise keep alive. The parent's vCPUs' shared run areas are unmapped,
/// and /dev/null is put in place of every KVM fd inherited (the VM, its
/// vCPUs, /dev/kvm). The numbers stay taken: the parent's objects that own
/// them are in the child's memory too, and any that is dropped closes its
/// number, never another file's.
pub fn release_inherited_vm() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    for line in maps
        .lines()
        .filter(|line| line.contains("anon_inode:kvm-vcpu"))
    {
        let range = line.split_whitespace().next().and_then(|range| {
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            Some((
                start,
                usize::from_str_radix(end, 16).ok()?.checked_sub(start)?,
            ))
        });
        if let Some((start, len)) = range {
            // SAFETY: the parent's vCPU run areas: only the parent's vCPU
            // threads used them, and a forked child has none of those.
            unsafe { libc::munmap(start as *mut libc::c_void, len) };
        }
    }
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let inherited: Vec<i32> = entries
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let target = target.to_string_lossy();
            let kvm = target.starts_with("anon_inode:kvm-") || target == "/dev/kvm";
            kvm.then_some(fd)
        })
        .collect();
    for fd in inherited {
        // SAFETY: dup2 onto a number this process holds: that fd is closed
        // and the number now names /dev/null; nothing reads memory.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
    }
}

/// prctl(PR_SET_NAME): the calling thread's name (the process's, on its
/// first thread), cut to the 15 bytes Linux keeps.
pub fn set_thread_name(name: &[u8]) {
    let mut bytes = [0u8; 16];
    let len = name.iter().take(15).take_while(|&&b| b != 0).count();
    bytes[..len].copy_from_slice(&name[..len]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes; `bytes` is 16 and ends in a NUL.
    unsafe { libc::prctl(libc::PR_SET_NAME, bytes.as_ptr()) };
}

/// Stops this process as `signal`, a stop signal taking its default
/// action, would: its parent's wait sees it stopped by that signal. Returns
/// once it is continued, or at once if the host discards the stop (an
/// orphaned group's SIGTSTP, SIGTTIN or SIGTTOU).
pub fn stop_as(signal: i32) -> Result<i64, i64> {
    if ![libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signal) {
        return Err(i64::from(libc::EINVAL));
    }
    // SAFETY: a zeroed sigset_t is valid storage for sigemptyset; tgkill
    // and pthread_sigmask read and write only the sets we own.
    unsafe {
        let mut only = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut only);
        libc::sigaddset(&mut only, signal);
        // Pending on this thread alone (every thread blocks it, to pass it
        // on), then unblocked here: its default action stops the process
        // as the unblocking call returns.
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), signal);
        let mut before = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &only, &mut before);
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
    }
    Ok(0)
}

/// killpg(pgid, signal).
pub fn kill_group(pgid: u32, signal: i32) -> Result<i64, i64> {
    // SAFETY: killpg has no memory-safety preconditions.
    match unsafe { libc::killpg(pgid as libc::pid_t, signal) } {
        0 => Ok(0),
        _ => Err(last_errno(libc::ESRCH)),
    }
}

/// Whether process `pid` exists (kill(pid, 0): EPERM says it does).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks; no memory is touched.
    unsafe {
        libc::kill(pid, 0) == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// kill(pid, signal).
pub fn kill(pid: u32, signal: i32) -> Result<i64, i64> {
    // SAFETY: kill has no memory-safety preconditions.
    match unsafe { libc::kill(pid as libc::pid_t, signal) } {
        0 => Ok(0),
        _ => Err(last_errno(libc::ESRCH)),
    }
}

/// Ends this process as one killed by `signal`, so its parent's wait sees
/// WIFSIGNALED; with `status` if the signal doesn't end it.
pub fn die_of(signal: i32, status: i32) -> ! {
    // SAFETY: resetting a disposition, unblocking and raising have no
    // memory-safety preconditions; _exit never returns.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
        libc::_exit(status)
    }
}

/// Ends this process at once with `status`: a forked child's monitor must
/// not run its parent's exit path (which owns the isle's /tmp, say).
pub fn exit_now(status: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(status) }
}
