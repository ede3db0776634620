//! Host I/O calls rustix can't make safely or exactly: vectored reads and
//! writes of guest memory with RWF_ flags, getrandom into guest memory,
//! poll over the isle's pollfds, and the terminal ioctls (rustix asks
//! TCGETS2 for TCGETS, which the serving threads' seccomp filter refuses).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use vm_memory::VolatileSlice;

use super::check;

/// Which way a vectored call moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// preadv2(2): from the file into guest buffers.
    Read,
    /// pwritev2(2): from guest buffers into the file.
    Write,
}

/// preadv2(2) or pwritev2(2) on guest buffers. `offset` -1 is the file
/// position; `flags` are RWF_ flags, for the host kernel to check.
pub fn vectored_at(
    fd: BorrowedFd<'_>,
    direction: Direction,
    buffers: &[VolatileSlice<'_>],
    offset: i64,
    flags: i32,
) -> Result<usize, i64> {
    let call = match direction {
        Direction::Read => libc::preadv2,
        Direction::Write => libc::pwritev2,
    };
    let guards: Vec<_> = buffers.iter().map(VolatileSlice::ptr_guard_mut).collect();
    let iovecs: Vec<libc::iovec> = guards
        .iter()
        .zip(buffers)
        .map(|(guard, buffer)| libc::iovec {
            iov_base: guard.as_ptr().cast(),
            iov_len: buffer.len(),
        })
        .collect();
    let count = i32::try_from(iovecs.len()).map_err(|_| i64::from(libc::EINVAL))?;
    // SAFETY: `call` is preadv2 or pwritev2, and each iovec is one volatile
    // slice's pointer and length, which vm-memory guarantees valid for
    // reads and writes for the slice's lifetime (the guards keep them so
    // until the call returns): the kernel touches only those bytes.
    let done = unsafe { call(fd.as_raw_fd(), iovecs.as_ptr(), count, offset, flags) };
    check(done as libc::c_long).map(|done| done as usize)
}

/// getrandom(2) into a guest buffer.
pub fn getrandom(buffer: &VolatileSlice<'_>, flags: u32) -> Result<usize, i64> {
    let guard = buffer.ptr_guard_mut();
    // SAFETY: the slice's pointer is valid for writes of its length while
    // the guard lives; the kernel writes at most that many bytes.
    let done = unsafe { libc::getrandom(guard.as_ptr().cast(), buffer.len(), flags) };
    check(done as libc::c_long).map(|done| done as usize)
}

/// poll(2) on `fds` for at most `timeout_ms` (negative: no limit). The
/// entries are raw fd numbers: poll only reports on them (-1 is skipped,
/// one not open is POLLNVAL), and their events are passed on unchecked.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, i64> {
    // SAFETY: the kernel reads and writes `fds.len()` pollfds of our slice.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check(ready.into()).map(|ready| ready as usize)
}

/// A terminal ioctl whose argument points at one struct (a termios, a
/// winsize, a pid): `argument` holds its bytes, given and answered.
pub fn terminal_ioctl(fd: BorrowedFd<'_>, request: u64, argument: &mut [u8]) -> Result<(), i64> {
    // Room for any struct these may touch (glibc's termios, 60 bytes, is
    // the largest), though the kernel's own are shorter.
    let mut buffer = [0u8; 64];
    let len = argument.len().min(buffer.len());
    buffer[..len].copy_from_slice(&argument[..len]);
    // SAFETY: each request the caller passes reads or writes at most one
    // struct of at most 64 bytes at the pointer, our buffer.
    let done = unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::Ioctl, buffer.as_mut_ptr()) };
    check(done.into())?;
    argument[..len].copy_from_slice(&buffer[..len]);
    Ok(())
}

/// Whether `fd` is this process's controlling terminal and the process
/// is not in its foreground group: Linux would send it SIGTTIN or SIGTTOU
/// for touching the terminal.
pub fn in_background_of(fd: BorrowedFd<'_>) -> bool {
    let mut sid = [0u8; 4];
    let mut foreground = [0u8; 4];
    // TIOCGSID and TIOCGPGRP answer only for the controlling terminal.
    if terminal_ioctl(fd, libc::TIOCGSID, &mut sid).is_err()
        || terminal_ioctl(fd, libc::TIOCGPGRP, &mut foreground).is_err()
    {
        return false;
    }
    // SAFETY: getsid and getpgid have no preconditions.
    let (own_session, own_group) = unsafe { (libc::getsid(0), libc::getpgid(0)) };
    i32::from_ne_bytes(sid) == own_session && i32::from_ne_bytes(foreground) != own_group
}
