//! The I/O handlers: read and write (plain and vectored), poll, fstat,
//! terminal ioctls, lseek, splice/sendfile/copy_file_range and getrandom,
//! on the isle's host fds and straight from or into the guest's pages.

use std::os::fd::{AsFd, BorrowedFd};

use atoll_abi::linux::errno::{EFAULT, EINVAL, EIO, ENOTTY, EOPNOTSUPP};
use atoll_abi::linux::{ioctl as tty, IOVEC_SIZE, IOV_MAX, POLLFD_SIZE};
use atoll_abi::queue::{transfer, Opcode, Request, TERMINAL_BACKGROUND};
use vm_memory::{Bytes, GuestAddress, ReadVolatile, VolatileMemoryError, WriteVolatile};

use super::errno;
use crate::guest::memory::GuestRam;
use crate::host;
use crate::sandbox::Files;

/// A failed read or write of guest memory on a host fd, as an errno.
fn volatile_errno(error: VolatileMemoryError) -> i64 {
    match error {
        VolatileMemoryError::IOError(error) => error.raw_os_error().map_or(EIO, i64::from),
        _ => EFAULT,
    }
}

pub(super) fn read_write(
    ram: &GuestRam,
    files: &Files,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let held = files.host_fd(request.args[0])?;
    read_write_on(ram, held.as_fd(), op, request)
}

/// read(2) or write(2) of the request's guest buffer on `fd`, its host fd.
pub(super) fn read_write_on(
    ram: &GuestRam,
    mut fd: BorrowedFd<'_>,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [_, address, len, ..] = request.args;
    let mut buffer = ram.slice(address, len)?;
    if op == Opcode::Read {
        let done = fd.read_volatile(&mut buffer);
        done.map(|done| done as i64)
            .map_err(|error| read_error(fd, volatile_errno(error)))
    } else {
        let done = fd.write_volatile(&buffer);
        done.map(|done| done as i64).map_err(volatile_errno)
    }
}

/// write(2) of the request's guest buffer on `fd`, its host fd, only if
/// it can go ahead without waiting (RWF_NOWAIT): EAGAIN if it would wait,
/// EOPNOTSUPP if the host can't tell for this file.
pub(super) fn write_without_waiting(
    ram: &GuestRam,
    fd: BorrowedFd<'_>,
    request: &Request,
) -> Result<i64, i64> {
    let [_, address, len, ..] = request.args;
    let buffer = ram.slice(address, len)?;
    let at_file_position = -1;
    let direction = host::io::Direction::Write;
    host::io::vectored_at(fd, direction, &[buffer], at_file_position, libc::RWF_NOWAIT)
        .map(|done| done as i64)
}

pub(super) fn vectored(
    ram: &GuestRam,
    files: &Files,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, iov_address, count, ..] = request.args;
    let held = files.host_fd(fd)?;
    if count > IOV_MAX {
        return Err(EINVAL);
    }
    let mut raw = vec![0u8; (count * IOVEC_SIZE) as usize];
    // No iovecs: Linux reads none, wherever the array would be.
    if count > 0 {
        ram.memory()
            .read_slice(&mut raw, GuestAddress(iov_address))
            .map_err(|_| EFAULT)?;
    }
    let mut buffers = Vec::with_capacity(count as usize);
    for chunk in raw.chunks_exact(IOVEC_SIZE as usize) {
        let base = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
        if len == 0 {
            continue;
        }
        buffers.push(ram.slice(base, len)?);
    }
    // Unknown RWF_ flags are the host kernel's to refuse; wider ones are
    // ours. Offset -1 means the file position, as in preadv2(2).
    let offset = request.args[3] as i64;
    let flags = i32::try_from(request.args[4]).map_err(|_| EOPNOTSUPP)?;
    let direction = if op == Opcode::ReadVectored {
        host::io::Direction::Read
    } else {
        host::io::Direction::Write
    };
    let done = host::io::vectored_at(held.as_fd(), direction, &buffers, offset, flags);
    match direction {
        host::io::Direction::Read => done.map_err(|error| read_error(held.as_fd(), error)),
        host::io::Direction::Write => done,
    }
    .map(|done| done as i64)
}

/// The terminal ioctls on the isle's terminal, the host's: its settings,
/// size, foreground group and session. A background process changing
/// its terminal while SIGTTOU acts on it (the kernel says, in the fourth
/// argument) gets TERMINAL_BACKGROUND, for its kernel to send SIGTTOU; the
/// foreground goes only to a group of the isle's.
pub(super) fn terminal_ioctl(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, command, address, sigttou_acts, ..] = request.args;
    let held = files.host_fd(fd)?;
    let (size, answers) = match command {
        tty::TCGETS => (tty::TERMIOS_SIZE, true),
        tty::TCSETS | tty::TCSETSW | tty::TCSETSF => (tty::TERMIOS_SIZE, false),
        tty::TIOCGWINSZ => (tty::WINSIZE_SIZE, true),
        tty::TIOCSWINSZ => (tty::WINSIZE_SIZE, false),
        tty::TIOCGPGRP | tty::TIOCGSID => (4, true),
        tty::TIOCSPGRP => (4, false),
        _ => return Err(ENOTTY),
    };
    let mut argument = vec![0u8; size as usize];
    ram.memory()
        .read_slice(&mut argument, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    // A caller that blocks or ignores SIGTTOU goes ahead, as on Linux.
    let checked = tty::checks_foreground(command) && sigttou_acts != 0;
    if checked && host::io::in_background_of(held.as_fd()) {
        if crate::process::group_orphaned() {
            // Linux's answer to an orphaned group; TIOCSPGRP says ENOTTY.
            return Err(if command == tty::TIOCSPGRP {
                ENOTTY
            } else {
                EIO
            });
        }
        return Err(TERMINAL_BACKGROUND);
    }
    if command == tty::TIOCSPGRP {
        let pgid = i32::from_ne_bytes(argument[..4].try_into().unwrap_or_default());
        crate::process::may_take_terminal(pgid)?;
    }
    host::io::terminal_ioctl(held.as_fd(), command, &mut argument)?;
    if answers {
        ram.memory()
            .write_slice(&argument, GuestAddress(address))
            .map_err(|_| EFAULT)?;
    }
    Ok(0)
}

/// A read's error: EIO from the terminal of a background process (the
/// host refuses it, since SIGTTIN is blocked to be passed on) becomes
/// TERMINAL_BACKGROUND, for the kernel to send SIGTTIN, unless the group
/// is orphaned (Linux's EIO).
pub(super) fn read_error(fd: BorrowedFd<'_>, error: i64) -> i64 {
    let background = error == EIO && host::io::in_background_of(fd);
    if background && !crate::process::group_orphaned() {
        TERMINAL_BACKGROUND
    } else {
        error
    }
}

pub(super) fn fstat(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, address, ..] = request.args;
    let held = files.host_fd(fd)?;
    let stat = host::fs::fstat(held.as_fd())?;
    ram.memory()
        .write_slice(&host::fs::stat_bytes(&stat), GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(0)
}

pub(super) fn poll(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [address, count, timeout, ..] = request.args;
    if count > 1024 {
        return Err(EINVAL);
    }
    let mut raw = vec![0u8; (count * POLLFD_SIZE) as usize];
    ram.memory()
        .read_slice(&mut raw, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    let mut invalid = 0;
    // Held open until the poll returns, whatever the guest closes meanwhile.
    let mut held = Vec::new();
    let mut fds: Vec<libc::pollfd> = raw
        .chunks_exact(POLLFD_SIZE as usize)
        .map(|chunk| {
            let guest_fd = i32::from_le_bytes(chunk[..4].try_into().unwrap_or_default());
            let events = i16::from_le_bytes(chunk[4..6].try_into().unwrap_or_default());
            let fd = if guest_fd < 0 {
                -1
            } else {
                match files.host_fd(guest_fd as u64) {
                    Ok(fd) => {
                        let raw = std::os::fd::AsRawFd::as_raw_fd(&*fd);
                        held.push(fd);
                        raw
                    }
                    Err(_) => {
                        invalid += 1;
                        -1
                    }
                }
            };
            libc::pollfd {
                fd,
                events,
                revents: 0,
            }
        })
        .collect();
    // Invalid fds answer POLLNVAL at once, as Linux does: don't block then.
    let timeout = if invalid > 0 {
        0
    } else {
        timeout as i64 as i32
    };
    let ready = host::io::poll(&mut fds, timeout)?;
    let mut total = ready as i64;
    for (chunk, host) in raw.chunks_exact_mut(POLLFD_SIZE as usize).zip(&fds) {
        let guest_fd = i32::from_le_bytes(chunk[..4].try_into().unwrap_or_default());
        let revents = if guest_fd >= 0 && host.fd < 0 {
            total += 1;
            libc::POLLNVAL
        } else {
            host.revents
        };
        chunk[6..8].copy_from_slice(&revents.to_le_bytes());
    }
    ram.memory()
        .write_slice(&raw, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(total)
}

/// A poll request answered without waiting: what is ready at once.
pub(super) fn poll_now(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let mut now = *request;
    now.args[2] = 0;
    poll(ram, files, &now)
}

pub(super) fn lseek(files: &Files, request: &Request) -> Result<i64, i64> {
    use rustix::fs::SeekFrom;
    let [fd, offset, whence, ..] = request.args;
    let held = files.host_fd(fd)?;
    let position = match whence as i32 {
        libc::SEEK_SET => SeekFrom::Start(offset),
        libc::SEEK_CUR => SeekFrom::Current(offset as i64),
        libc::SEEK_END => SeekFrom::End(offset as i64),
        libc::SEEK_DATA => SeekFrom::Data(offset),
        libc::SEEK_HOLE => SeekFrom::Hole(offset),
        _ => return Err(EINVAL),
    };
    rustix::fs::seek(&*held, position)
        .map(|position| position as i64)
        .map_err(errno)
}

pub(super) fn getrandom(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [address, len, flags, ..] = request.args;
    let buffer = ram.slice(address, len)?;
    host::io::getrandom(&buffer, flags as u32).map(|done| done as i64)
}

/// Reads the optional 64-bit offset at guest address `address` (0: none).
fn read_offset(ram: &GuestRam, address: u64) -> Result<Option<u64>, i64> {
    if address == 0 {
        return Ok(None);
    }
    ram.memory()
        .read_obj(GuestAddress(address))
        .map(Some)
        .map_err(|_| EFAULT)
}

fn write_offset(ram: &GuestRam, address: u64, offset: Option<u64>) -> Result<(), i64> {
    match offset {
        Some(value) if address != 0 => ram
            .memory()
            .write_obj(value, GuestAddress(address))
            .map_err(|_| EFAULT),
        _ => Ok(()),
    }
}

/// splice, sendfile and copy_file_range between the isle's host fds: the
/// data never passes through guest memory. Offsets are the kernel's
/// loff_t bits either way (a negative one stays the host kernel's to refuse).
pub(super) fn transfer(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [kind, fd_in, off_in_address, fd_out, off_out_address, len] = request.args;
    let (held_in, held_out) = (files.host_fd(fd_in)?, files.host_fd(fd_out)?);
    let mut off_in = read_offset(ram, off_in_address)?;
    let mut off_out = read_offset(ram, off_out_address)?;
    let len = len as usize;
    let done = match kind {
        transfer::SPLICE => rustix::pipe::splice(
            &*held_in,
            off_in.as_mut(),
            &*held_out,
            off_out.as_mut(),
            len,
            rustix::pipe::SpliceFlags::from_bits_retain(request.flags),
        ),
        transfer::SENDFILE => rustix::fs::sendfile(&*held_out, &*held_in, off_in.as_mut(), len),
        // copy_file_range takes no flags yet: Linux refuses any.
        transfer::COPY_FILE_RANGE if request.flags != 0 => return Err(EINVAL),
        transfer::COPY_FILE_RANGE => rustix::fs::copy_file_range(
            &*held_in,
            off_in.as_mut(),
            &*held_out,
            off_out.as_mut(),
            len,
        ),
        _ => return Err(EINVAL),
    };
    let result = done.map(|done| done as i64).map_err(errno);
    write_offset(ram, off_in_address, off_in)?;
    write_offset(ram, off_out_address, off_out)?;
    result
}
