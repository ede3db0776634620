//! The raw calls behind the isle's view of files (`sandbox/`) that rustix
//! lacks or would make differently: each is the one syscall it was.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::check;

/// Gives the calling thread an fs_struct (root, cwd, umask) of its own, so
/// its umask changes race with no other thread. rustix only offers
/// unshare as `unsafe` for CLONE_FILES' sake; CLONE_FS alone leaves the
/// fd table shared, and every fd valid on every thread.
pub(crate) fn own_fs_struct() -> Result<(), i64> {
    // SAFETY: unshare(CLONE_FS) only copies this thread's root, cwd and
    // umask; no memory or fd is affected.
    check(unsafe { libc::unshare(libc::CLONE_FS) }.into()).map(drop)
}

/// faccessat2(fd, "", mode, AT_EMPTY_PATH | flags): access(2) for the file
/// `fd` itself (an O_PATH fd, a symlink's included). rustix refuses
/// AT_EMPTY_PATH here; `flags` is AT_EACCESS or 0.
pub(crate) fn access_fd(fd: BorrowedFd<'_>, mode: i32, flags: i32) -> Result<i64, i64> {
    // SAFETY: faccessat2 reads the NUL-terminated empty path; the fd is
    // borrowed, so open for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH | flags,
        )
    })
}

/// fstatfs into the struct the caller lends (rustix's own struct can't
/// fill a `libc::statfs`: its f_fsid can only be written whole).
pub(crate) fn fstatfs(fd: BorrowedFd<'_>, out: &mut libc::statfs) -> Result<i64, i64> {
    // SAFETY: fstatfs writes one `struct statfs` into `out`, which is one.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), out) }.into())
}

/// fcntl(fd, F_SETPIPE_SZ, size) with the int as given: the host kernel
/// judges every value, a negative one too (rustix answers those EPERM
/// itself, where Linux may say EINVAL).
pub(crate) fn set_pipe_size(fd: BorrowedFd<'_>, size: libc::c_int) -> Result<i64, i64> {
    // SAFETY: F_SETPIPE_SZ takes an int; no memory is involved.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) }.into())
}
