//! pread and pwrite between a file and guest memory.
//!
//! vm-memory's `ReadVolatile`/`WriteVolatile` use the file position and
//! retry EINTR; rustix's pread and pwrite take `&[u8]`, which guest memory
//! never is. These take guest memory as a volatile slice, an explicit file
//! offset, and give one call's result as it is (EINTR included).

use std::os::fd::{AsRawFd, BorrowedFd};

use vm_memory::VolatileSlice;

use super::check;

/// One pread(2) of `file` at `offset` into `into`: the bytes read (0 at
/// the file's end), or the errno.
pub(crate) fn pread(
    file: BorrowedFd<'_>,
    into: &VolatileSlice<'_>,
    offset: u64,
) -> Result<usize, i64> {
    let guard = into.ptr_guard_mut();
    // SAFETY: the kernel writes at most `into.len()` bytes at the slice's
    // start, all inside the slice, which stays mapped while `guard` lives.
    // Guest memory is only ever reached volatile or by the host kernel, so
    // no Rust reference sees these bytes change.
    let read = unsafe {
        libc::pread(
            file.as_raw_fd(),
            guard.as_ptr().cast(),
            into.len(),
            offset as libc::off_t,
        )
    };
    check(read as libc::c_long).map(|read| read as usize)
}

/// One pwrite(2) of `from` to `file` at `offset`: the bytes written, or
/// the errno.
pub(crate) fn pwrite(
    file: BorrowedFd<'_>,
    from: &VolatileSlice<'_>,
    offset: u64,
) -> Result<usize, i64> {
    let guard = from.ptr_guard();
    // SAFETY: the kernel reads at most `from.len()` bytes at the slice's
    // start, all inside the slice, which stays mapped while `guard` lives.
    let written = unsafe {
        libc::pwrite(
            file.as_raw_fd(),
            guard.as_ptr().cast(),
            from.len(),
            offset as libc::off_t,
        )
    };
    check(written as libc::c_long).map(|written| written as usize)
}
