//! File descriptor I/O. Only stdin, stdout and stderr exist so far; they are
//! the atoll process's own, reached through the offload queue.

use atoll_abi::linux::errno::{EBADF, EFAULT, EINVAL, EIO, ENOTTY, EPIPE};
use atoll_abi::linux::{ioctl as tty, IOVEC_SIZE, IOV_MAX, POLLFD_SIZE, STAT_SIZE};
use atoll_abi::queue::{transfer, Opcode};

use super::SysResult;
use crate::arch::x86_64::user;
use crate::offload;
use crate::signals::state::{SIGTTIN, SIGTTOU};

/// Linux caps one read or write at this many bytes.
const MAX_RW_COUNT: u64 = 0x7fff_f000;
const AT_EMPTY_PATH: u64 = 0x1000;

/// An fd argument: the host checks it against the isle's table; here only
/// its form (a non-negative int) is checked.
fn fd_arg(fd: u64) -> Result<u64, i64> {
    let fd = fd as i32;
    if fd < 0 {
        Err(EBADF)
    } else {
        Ok(fd as u64)
    }
}

/// Turns a host result into a syscall result.
pub fn host_result(result: i64) -> SysResult {
    if result < 0 {
        Err(-result)
    } else {
        Ok(result as u64)
    }
}

/// The highest address a zero-length buffer may start at on Linux, whose
/// access_ok then checks only that it is a user address.
const USER_POINTER_MAX: u64 = 0x7fff_ffff_f000;

/// A buffer of `len` bytes at `address`: in guest RAM, or of no bytes at
/// any user address, which Linux never touches.
pub(super) fn check_buffer(address: u64, len: u64) -> Result<(), i64> {
    let usable = if len == 0 {
        address <= USER_POINTER_MAX
    } else {
        user::range_ok(address, len)
    };
    if usable {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

pub fn read(fd: u64, buffer: u64, len: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    if let Some(result) = super::signalfd::read(fd, buffer, len) {
        return result;
    }
    let len = len.min(MAX_RW_COUNT);
    check_buffer(buffer, len)?;
    terminal_read(offload::call(Opcode::Read, [fd, buffer, len, 0, 0, 0]))
}

/// A read's result; a background process reading its terminal is sent
/// SIGTTIN and reads again once that has acted, or gets EIO if it blocks
/// or ignores SIGTTIN (Linux's tty_check_change).
fn terminal_read(result: i64) -> SysResult {
    if result != -atoll_abi::queue::TERMINAL_BACKGROUND {
        return host_result(result);
    }
    if crate::signals::blocked_or_ignored(SIGTTIN) {
        return Err(EIO);
    }
    from_background(SIGTTIN)
}

/// `signal` to the caller's process group, and the call restarted once it
/// has acted (the process stopped and was continued, say).
fn from_background(signal: u32) -> SysResult {
    super::signal::kill(0, u64::from(signal))?;
    crate::signals::await_own_signal();
    Err(super::ERESTARTSYS)
}

/// A write to a pipe nobody reads raises SIGPIPE, as on Linux; EPIPE
/// reaches the program only if it survives that.
fn write_result(result: i64) -> SysResult {
    if result == -EPIPE {
        super::signal::raise(u64::from(super::signal::SIGPIPE))?;
    }
    host_result(result)
}

pub fn write(fd: u64, buffer: u64, len: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    let len = len.min(MAX_RW_COUNT);
    check_buffer(buffer, len)?;
    write_result(offload::call(Opcode::Write, [fd, buffer, len, 0, 0, 0]))
}

/// Checks an iovec array and every buffer it names: the host can only tell
/// guest RAM from the rest, not the program's memory from the kernel's.
pub(super) fn check_iovecs(iov: u64, count: u64) -> Result<(), i64> {
    if count > IOV_MAX {
        return Err(EINVAL);
    }
    check_buffer(iov, count * IOVEC_SIZE)?;
    for index in 0..count {
        let entry = iov + index * IOVEC_SIZE;
        let base: u64 = user::read(entry)?;
        let len: u64 = user::read(entry + 8)?;
        if (len as i64) < 0 {
            return Err(EINVAL);
        }
        check_buffer(base, len)?;
    }
    Ok(())
}

/// The file position, for the offset of READV and WRITEV.
const AT_FILE_POSITION: u64 = u64::MAX;

pub fn readv(fd: u64, iov: u64, count: u64) -> SysResult {
    preadv2(fd, iov, count, AT_FILE_POSITION, 0)
}

pub fn writev(fd: u64, iov: u64, count: u64) -> SysResult {
    pwritev2(fd, iov, count, AT_FILE_POSITION, 0)
}

/// preadv: a negative offset is EINVAL (only preadv2 takes -1).
pub fn preadv(fd: u64, iov: u64, count: u64, offset: u64) -> SysResult {
    vectored(
        Opcode::ReadVectored,
        fd,
        iov,
        count,
        nonnegative(offset)?,
        0,
    )
}

pub fn pwritev(fd: u64, iov: u64, count: u64, offset: u64) -> SysResult {
    vectored(
        Opcode::WriteVectored,
        fd,
        iov,
        count,
        nonnegative(offset)?,
        0,
    )
}

/// The offset is the whole of pos_l on x86_64; the host checks the RWF_ flags.
pub fn preadv2(fd: u64, iov: u64, count: u64, offset: u64, flags: u64) -> SysResult {
    vectored(Opcode::ReadVectored, fd, iov, count, offset, flags)
}

pub fn pwritev2(fd: u64, iov: u64, count: u64, offset: u64, flags: u64) -> SysResult {
    vectored(Opcode::WriteVectored, fd, iov, count, offset, flags)
}

fn nonnegative(offset: u64) -> Result<u64, i64> {
    if (offset as i64) < 0 {
        Err(EINVAL)
    } else {
        Ok(offset)
    }
}

/// READV or WRITEV at `offset`, or at the file position for -1.
fn vectored(op: Opcode, fd: u64, iov: u64, count: u64, offset: u64, flags: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    if (offset as i64) < -1 {
        return Err(EINVAL);
    }
    check_iovecs(iov, count)?;
    let result = offload::call(op, [fd, iov, count, offset, flags, 0]);
    if op == Opcode::WriteVectored {
        write_result(result)
    } else {
        terminal_read(result)
    }
}

pub fn close(fd: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    let closed = host_result(offload::call(Opcode::Close, [fd, 0, 0, 0, 0, 0]))?;
    super::signalfd::closed(fd);
    Ok(closed)
}

/// A dup's result: `new` is a copy of `old` now.
fn duplicated(old: u64, result: SysResult) -> SysResult {
    let new = result?;
    super::signalfd::duplicated(old, new);
    Ok(new)
}

/// The terminal ioctls, the host's on its terminal. One that changes the
/// terminal, asked by a background process that lets SIGTTOU act, sends
/// SIGTTOU to its group instead and is asked again once it has acted.
pub fn ioctl(fd: u64, request: u64, argument: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    let size = match request {
        tty::TCGETS | tty::TCSETS | tty::TCSETSW | tty::TCSETSF => tty::TERMIOS_SIZE,
        tty::TIOCGWINSZ | tty::TIOCSWINSZ => tty::WINSIZE_SIZE,
        tty::TIOCGPGRP | tty::TIOCSPGRP | tty::TIOCGSID => 4,
        _ => return Err(ENOTTY),
    };
    check_buffer(argument, size)?;
    let sigttou_acts =
        tty::checks_foreground(request) && !crate::signals::blocked_or_ignored(SIGTTOU);
    let result = offload::call(
        Opcode::Ioctl,
        [fd, request, argument, u64::from(sigttou_acts), 0, 0],
    );
    if result == -atoll_abi::queue::TERMINAL_BACKGROUND {
        return from_background(SIGTTOU);
    }
    host_result(result)
}

pub fn fstat(fd: u64, statbuf: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    check_buffer(statbuf, STAT_SIZE)?;
    host_result(offload::call(Opcode::Fstat, [fd, statbuf, 0, 0, 0, 0]))
}

pub fn newfstatat(dirfd: u64, path: u64, statbuf: u64, flags: u64) -> SysResult {
    let mut name = [0u8; 8];
    let empty = match user::read_cstr(path, &mut name) {
        Ok(bytes) => bytes.is_empty(),
        Err(EFAULT) => return Err(EFAULT),
        Err(_) => false,
    };
    if empty && flags & AT_EMPTY_PATH != 0 && dirfd as i32 != atoll_abi::linux::AT_FDCWD_INT {
        return fstat(dirfd, statbuf);
    }
    check_buffer(statbuf, STAT_SIZE)?;
    host_result(offload::call(
        Opcode::StatAt,
        [dirfd, path, statbuf, flags, 0, 0],
    ))
}

pub fn poll(fds: u64, count: u64, timeout_ms: u64) -> SysResult {
    if count > 1024 {
        return Err(EINVAL);
    }
    check_buffer(fds, count * POLLFD_SIZE)?;
    host_result(offload::call(
        Opcode::Poll,
        [fds, count, timeout_ms as i32 as i64 as u64, 0, 0, 0],
    ))
}

pub fn ppoll(fds: u64, count: u64, timeout: u64, sigmask: u64, sigsetsize: u64) -> SysResult {
    let timeout_ms: i64 = if timeout == 0 {
        -1
    } else {
        let spec: [i64; 2] = user::read(timeout)?;
        if spec[0] < 0 || !(0..1_000_000_000).contains(&spec[1]) {
            return Err(EINVAL);
        }
        spec[0]
            .saturating_mul(1000)
            .saturating_add((spec[1] + 999_999) / 1_000_000)
            .min(i32::MAX as i64)
    };
    super::signal::with_temporary_mask(sigmask, sigsetsize, || poll(fds, count, timeout_ms as u64))
}

pub fn lseek(fd: u64, offset: u64, whence: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    host_result(offload::call(Opcode::Lseek, [fd, offset, whence, 0, 0, 0]))
}

fn check_offset(address: u64) -> Result<(), i64> {
    check_buffer(address, if address == 0 { 0 } else { 8 })
}

fn transfer(
    kind: u64,
    flags: u64,
    fd_in: u64,
    off_in: u64,
    fd_out: u64,
    off_out: u64,
    len: u64,
) -> SysResult {
    let (fd_in, fd_out) = (fd_arg(fd_in)?, fd_arg(fd_out)?);
    check_offset(off_in)?;
    check_offset(off_out)?;
    let len = len.min(MAX_RW_COUNT);
    write_result(offload::call_with_flags(
        Opcode::Transfer,
        flags as u32,
        [kind, fd_in, off_in, fd_out, off_out, len],
    ))
}

pub fn splice(
    fd_in: u64,
    off_in: u64,
    fd_out: u64,
    off_out: u64,
    len: u64,
    flags: u64,
) -> SysResult {
    transfer(transfer::SPLICE, flags, fd_in, off_in, fd_out, off_out, len)
}

pub fn sendfile(fd_out: u64, fd_in: u64, offset: u64, count: u64) -> SysResult {
    transfer(transfer::SENDFILE, 0, fd_in, offset, fd_out, 0, count)
}

pub fn copy_file_range(
    fd_in: u64,
    off_in: u64,
    fd_out: u64,
    off_out: u64,
    len: u64,
    flags: u64,
) -> SysResult {
    transfer(
        transfer::COPY_FILE_RANGE,
        flags,
        fd_in,
        off_in,
        fd_out,
        off_out,
        len,
    )
}

pub fn pread64(fd: u64, buffer: u64, len: u64, offset: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    let len = len.min(MAX_RW_COUNT);
    check_buffer(buffer, len)?;
    host_result(offload::call(
        Opcode::Pread,
        [fd, buffer, len, offset, 0, 0],
    ))
}

pub fn pwrite64(fd: u64, buffer: u64, len: u64, offset: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    let len = len.min(MAX_RW_COUNT);
    check_buffer(buffer, len)?;
    write_result(offload::call(
        Opcode::Pwrite,
        [fd, buffer, len, offset, 0, 0],
    ))
}

pub fn dup(fd: u64) -> SysResult {
    let fd = fd_arg(fd)?;
    duplicated(
        fd,
        host_result(offload::call(Opcode::Dup, [fd, u64::MAX, 0, 0, 0, 0])),
    )
}

pub fn dup2(old: u64, new: u64) -> SysResult {
    // dup2 of an fd onto itself just checks it (i32::MIN tells the host so).
    let flags = if old == new { i32::MIN as u64 } else { 0 };
    duplicated(
        old,
        host_result(offload::call(
            Opcode::Dup,
            [fd_arg(old)?, fd_arg(new)?, flags, 0, 0, 0],
        )),
    )
}

pub fn dup3(old: u64, new: u64, flags: u64) -> SysResult {
    if flags & !(O_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    duplicated(
        old,
        host_result(offload::call(
            Opcode::Dup,
            [fd_arg(old)?, fd_arg(new)?, flags, 0, 0, 0],
        )),
    )
}

const O_CLOEXEC: u64 = 0o2000000;

pub fn fcntl(fd: u64, command: u64, argument: u64) -> SysResult {
    use atoll_abi::linux::fcntl::*;
    let fd = fd_arg(fd)?;
    match command {
        F_DUPFD | F_DUPFD_CLOEXEC => duplicated(
            fd,
            host_result(offload::call(
                Opcode::Fcntl,
                [fd, command, argument, 0, 0, 0],
            )),
        ),
        F_GETFD | F_SETFD | F_GETFL | F_SETFL | F_GETPIPE_SZ | F_SETPIPE_SZ => host_result(
            offload::call(Opcode::Fcntl, [fd, command, argument, 0, 0, 0]),
        ),
        command if is_record_lock(command) => {
            check_buffer(argument, FLOCK_SIZE)?;
            host_result(offload::call(
                Opcode::Fcntl,
                [fd, command, argument, 0, 0, 0],
            ))
        }
        _ => Err(EINVAL),
    }
}

pub fn close_range(first: u64, last: u64, flags: u64) -> SysResult {
    use atoll_abi::linux::{CLOSE_RANGE_CLOEXEC, CLOSE_RANGE_UNSHARE};
    let (first, last) = (first as u32, last as u32);
    if flags & !(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE) != 0 || first > last {
        return Err(EINVAL);
    }
    // The isle has one fd table, so UNSHARE has nothing to unshare.
    if flags & CLOSE_RANGE_CLOEXEC == 0 {
        super::signalfd::closed_range(u64::from(first), u64::from(last));
    }
    host_result(offload::call(
        Opcode::CloseRange,
        [
            u64::from(first),
            u64::from(last),
            flags & CLOSE_RANGE_CLOEXEC,
            0,
            0,
            0,
        ],
    ))
}

pub fn pipe2(fds: u64, flags: u64) -> SysResult {
    check_buffer(fds, 8)?;
    host_result(offload::call(Opcode::Pipe, [fds, flags, 0, 0, 0, 0]))
}

pub fn fsync(fd: u64, data_only: bool) -> SysResult {
    host_result(offload::call(
        Opcode::Fsync,
        [fd_arg(fd)?, u64::from(data_only), 0, 0, 0, 0],
    ))
}

pub fn ftruncate(fd: u64, length: u64) -> SysResult {
    if (length as i64) < 0 {
        return Err(EINVAL);
    }
    host_result(offload::call(
        Opcode::Ftruncate,
        [fd_arg(fd)?, length, 0, 0, 0, 0],
    ))
}

pub fn getdents64(fd: u64, buffer: u64, len: u64) -> SysResult {
    let len = len.min(MAX_RW_COUNT);
    check_buffer(buffer, len)?;
    host_result(offload::call(
        Opcode::GetDents,
        [fd_arg(fd)?, buffer, len, 0, 0, 0],
    ))
}

/// posix_fadvise: advice only, which the isle takes and lets go (the host
/// reads ahead as it sees fit); the fd and the advice are checked as Linux
/// checks them.
pub fn fadvise64(fd: u64, advice: u64) -> SysResult {
    const POSIX_FADV_NOREUSE: u64 = 5;
    const F_GETFD: u64 = 1;
    fcntl(fd, F_GETFD, 0)?;
    if advice > POSIX_FADV_NOREUSE {
        return Err(atoll_abi::linux::errno::EINVAL);
    }
    Ok(0)
}
