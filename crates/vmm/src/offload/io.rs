//! The I/O handlers: read and write (plain and vectored), poll, fstat,
//! terminal ioctls, lseek, splice/sendfile/copy_file_range and getrandom,
//! on the isle's host fds and straight from or into the guest's pages.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use atoll_abi::linux::errno::{EFAULT, EINVAL, ENOTTY};
use atoll_abi::linux::{ioctl as tty, IOVEC_SIZE, IOV_MAX, POLLFD_SIZE, STAT_SIZE};
use atoll_abi::queue::{transfer, Opcode, Request};
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::sandbox::Files;

fn errno_result(value: isize) -> i64 {
    if value < 0 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        value as i64
    }
}

pub(super) fn read_write(
    ram: &GuestRam,
    files: &Files,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, address, len, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    let buffer = ram.io_buffer(address, len)?;
    // SAFETY: `buffer..buffer+len` lies inside guest RAM, which stays mapped;
    // the kernel only reads or writes those bytes, whatever the guest does.
    let done = unsafe {
        if op == Opcode::Read {
            libc::read(fd, buffer.cast(), len as usize)
        } else {
            libc::write(fd, buffer.cast(), len as usize)
        }
    };
    Ok(errno_result(done))
}

pub(super) fn vectored(
    ram: &GuestRam,
    files: &Files,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, iov_address, count, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
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
    let mut iovecs = Vec::with_capacity(count as usize);
    for chunk in raw.chunks_exact(IOVEC_SIZE as usize) {
        let base = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
        if len == 0 {
            continue;
        }
        let pointer = ram.io_buffer(base, len)?;
        iovecs.push(libc::iovec {
            iov_base: pointer.cast(),
            iov_len: len as usize,
        });
    }
    // Unknown RWF_ flags are the host kernel's to refuse; wider ones are ours.
    let offset = request.args[3] as i64;
    let flags = i32::try_from(request.args[4]).map_err(|_| atoll_abi::linux::errno::EOPNOTSUPP)?;
    // SAFETY: every iovec was checked to lie inside guest RAM; offset -1
    // means the file position, as in preadv2(2).
    let done = unsafe {
        if op == Opcode::ReadVectored {
            libc::preadv2(fd, iovecs.as_ptr(), iovecs.len() as i32, offset, flags)
        } else {
            libc::pwritev2(fd, iovecs.as_ptr(), iovecs.len() as i32, offset, flags)
        }
    };
    Ok(errno_result(done))
}

pub(super) fn terminal_ioctl(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, command, address, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    let size = match command {
        tty::TCGETS => tty::TERMIOS_SIZE,
        tty::TIOCGWINSZ => tty::WINSIZE_SIZE,
        _ => return Err(ENOTTY),
    };
    let mut answer = [0u8; 64];
    // SAFETY: both requests write at most 60 bytes (glibc's termios is the
    // largest) into our 64-byte buffer.
    let done = unsafe { libc::ioctl(fd, command as libc::Ioctl, answer.as_mut_ptr()) };
    if done < 0 {
        return Ok(errno_result(done as isize));
    }
    ram.memory()
        .write_slice(&answer[..size as usize], GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(i64::from(done))
}

pub(super) fn fstat(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, address, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat fills the struct we own.
    let done = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if done < 0 {
        return Ok(errno_result(done as isize));
    }
    // SAFETY: zeroed, then written only by fstat, so every byte is
    // initialized (libc types `__pad0` as maybe-uninit, but it was zeroed);
    // libc::stat on x86_64 Linux is the kernel's struct stat, STAT_SIZE bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts(stat.as_ptr().cast::<u8>(), STAT_SIZE as usize) };
    ram.memory()
        .write_slice(bytes, GuestAddress(address))
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
                        let raw = fd.as_raw_fd();
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
    // SAFETY: `fds` is our own array of `count` pollfds.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    if ready < 0 {
        return Ok(errno_result(ready as isize));
    }
    let mut total = i64::from(ready);
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

pub(super) fn lseek(files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, offset, whence, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    // SAFETY: lseek has no memory effects.
    let position = unsafe { libc::lseek(fd, offset as i64, whence as i32) };
    Ok(errno_result(position as isize))
}

pub(super) fn getrandom(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [address, len, flags, ..] = request.args;
    let buffer = ram.io_buffer(address, len)?;
    // SAFETY: the buffer lies inside guest RAM (checked above).
    let done = unsafe { libc::getrandom(buffer.cast(), len as usize, flags as u32) };
    Ok(errno_result(done))
}

/// Reads the optional 64-bit offset at guest address `address` (0: none).
fn read_offset(ram: &GuestRam, address: u64) -> Result<Option<i64>, i64> {
    if address == 0 {
        return Ok(None);
    }
    ram.memory()
        .read_obj(GuestAddress(address))
        .map(Some)
        .map_err(|_| EFAULT)
}

fn write_offset(ram: &GuestRam, address: u64, offset: Option<i64>) -> Result<(), i64> {
    match offset {
        Some(value) if address != 0 => ram
            .memory()
            .write_obj(value, GuestAddress(address))
            .map_err(|_| EFAULT),
        _ => Ok(()),
    }
}

fn offset_pointer(offset: &mut Option<i64>) -> *mut i64 {
    offset
        .as_mut()
        .map_or(std::ptr::null_mut(), |value| value as *mut i64)
}

/// splice, sendfile and copy_file_range between the isle's host fds: the
/// data never passes through guest memory.
pub(super) fn transfer(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [kind, fd_in, off_in_address, fd_out, off_out_address, len] = request.args;
    let (held_in, held_out) = (files.host_fd(fd_in)?, files.host_fd(fd_out)?);
    let (fd_in, fd_out) = (held_in.as_raw_fd(), held_out.as_raw_fd());
    let mut off_in = read_offset(ram, off_in_address)?;
    let mut off_out = read_offset(ram, off_out_address)?;
    let len = len as usize;
    // SAFETY: the offset pointers are null or point at our locals; the fds
    // are the isle's own; the kernel moves data between them only.
    let done = unsafe {
        match kind {
            transfer::SPLICE => libc::splice(
                fd_in,
                offset_pointer(&mut off_in),
                fd_out,
                offset_pointer(&mut off_out),
                len,
                request.flags,
            ),
            transfer::SENDFILE => libc::sendfile(fd_out, fd_in, offset_pointer(&mut off_in), len),
            transfer::COPY_FILE_RANGE => libc::copy_file_range(
                fd_in,
                offset_pointer(&mut off_in),
                fd_out,
                offset_pointer(&mut off_out),
                len,
                request.flags,
            ),
            _ => return Err(EINVAL),
        }
    };
    let result = errno_result(done);
    write_offset(ram, off_in_address, off_in)?;
    write_offset(ram, off_out_address, off_out)?;
    Ok(result)
}

/// Whether a poll request has something ready at once (it then runs inline).
pub(super) fn poll_ready_now(ram: &GuestRam, files: &Files, request: &Request) -> bool {
    let mut now = *request;
    now.args[2] = 0;
    poll(ram, files, &now).is_ok_and(|ready| ready != 0)
}
