//! Host I/O calls rustix can't make safely or exactly: vectored reads and
//! writes of guest memory with RWF_ flags, getrandom into guest memory,
//! poll over the isle's pollfds, and TCGETS (rustix asks TCGETS2, which
//! the serving threads' seccomp filter refuses).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use atoll_abi::linux::ioctl::TERMIOS_SIZE;
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

/// The terminal's settings (TCGETS): the kernel's `struct termios`.
pub fn terminal_settings(fd: BorrowedFd<'_>) -> Result<[u8; TERMIOS_SIZE as usize], i64> {
    // Room for any termios the kernel may write (glibc's, 60 bytes, is the
    // largest), though TCGETS writes the kernel's 36.
    let mut answer = [0u8; 64];
    // SAFETY: TCGETS writes one struct termios into our 64-byte buffer.
    let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS, answer.as_mut_ptr()) };
    check(done.into())?;
    let mut settings = [0u8; TERMIOS_SIZE as usize];
    settings.copy_from_slice(&answer[..TERMIOS_SIZE as usize]);
    Ok(settings)
}
