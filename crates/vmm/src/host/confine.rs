//! Calls a thread confined by the sandbox must be refused, for its tests:
//! each makes one raw call and returns the errno it got (0: the call went
//! through). Each is made so that, let through, it fails on its own or
//! does next to nothing (TIOCSTI pushes one byte into stdin's terminal).

use std::ffi::CStr;

fn errno_of(result: libc::c_long) -> i32 {
    if result < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// execve(program) with no arguments or environment. Run it only on a
/// program that doesn't exist: where execve is allowed it then fails
/// with ENOENT instead of replacing this process.
pub(crate) fn execve_errno(program: &CStr) -> i32 {
    let argv = [program.as_ptr(), std::ptr::null()];
    // SAFETY: argv and envp (argv's tail, empty) are NULL-terminated
    // arrays of NUL-terminated strings we own; if the call returns it
    // touched nothing of ours.
    errno_of(unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), argv[1..].as_ptr()) }.into())
}

/// clone(CLONE_SIGHAND): a new process, refused by the sandbox. Without
/// CLONE_VM the kernel refuses it too (EINVAL) where it is allowed, so no
/// process is ever made.
pub(crate) fn clone_process_errno() -> i32 {
    // SAFETY: the flag combination is invalid, so the kernel makes no
    // child, and reads no memory (all pointers are null).
    errno_of(unsafe { libc::syscall(libc::SYS_clone, libc::CLONE_SIGHAND, 0, 0, 0, 0) })
}

/// clone3 with no arguments: EINVAL where allowed.
pub(crate) fn clone3_errno() -> i32 {
    // SAFETY: a null argument of size 0 is refused before anything is made.
    errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) })
}

/// Mounts a tmpfs on `target`; pass one that doesn't exist (ENOENT where
/// mounting is allowed).
pub(crate) fn mount_errno(target: &CStr) -> i32 {
    // SAFETY: mount reads our NUL-terminated strings and no data.
    errno_of(
        unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        }
        .into(),
    )
}

/// ioctl(0, TIOCSTI, "x"): pushing input into stdin's terminal.
pub(crate) fn tiocsti_errno() -> i32 {
    // SAFETY: TIOCSTI reads one byte, which we own.
    errno_of(unsafe { libc::ioctl(0, libc::TIOCSTI, c"x".as_ptr()) }.into())
}

/// tgkill(own pid, own tid, 0): signal 0 only checks the thread exists,
/// so let through it does nothing. The sandbox lets the monitor's threads
/// send each other just the one signal that interrupts a host call.
pub(crate) fn signal_own_thread_errno() -> i32 {
    // SAFETY: signal 0 is delivered to no one; the ids are our own.
    errno_of(unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), 0) })
}
