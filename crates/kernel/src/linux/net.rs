//! Sockets, offloaded to the host under the isle's network policy (see the
//! monitor's `net` module).

use atoll_abi::linux::errno::EINVAL;
use atoll_abi::linux::SOCKADDR_STORAGE_SIZE;
use atoll_abi::queue::Opcode;

use super::io::{check_buffer, host_result};
use super::SysResult;
use crate::arch::x86_64::user;
use crate::offload;

fn call(op: Opcode, args: [u64; 6]) -> SysResult {
    host_result(offload::call(op, args))
}

fn fd_arg(fd: u64) -> Result<u64, i64> {
    if (fd as i32) < 0 {
        Err(atoll_abi::linux::errno::EBADF)
    } else {
        Ok(fd)
    }
}

/// An optional (address, length pointer) pair the host fills in.
fn address_out(address: u64, len_pointer: u64) -> Result<(), i64> {
    if address == 0 {
        return Ok(());
    }
    let room: u32 = user::read(len_pointer)?;
    check_buffer(address, u64::from(room).min(SOCKADDR_STORAGE_SIZE))
}

pub fn socket(domain: u64, kind: u64, protocol: u64) -> SysResult {
    call(Opcode::Socket, [domain, kind, protocol, 0, 0, 0])
}

pub fn socketpair(domain: u64, kind: u64, protocol: u64, pair: u64) -> SysResult {
    check_buffer(pair, 8)?;
    call(Opcode::SocketPair, [domain, kind, protocol, pair, 0, 0])
}

pub fn bind(fd: u64, address: u64, len: u64) -> SysResult {
    if len > SOCKADDR_STORAGE_SIZE {
        return Err(EINVAL);
    }
    check_buffer(address, len)?;
    call(Opcode::Bind, [fd_arg(fd)?, address, len, 0, 0, 0])
}

pub fn connect(fd: u64, address: u64, len: u64) -> SysResult {
    if len > SOCKADDR_STORAGE_SIZE {
        return Err(EINVAL);
    }
    check_buffer(address, len)?;
    call(Opcode::Connect, [fd_arg(fd)?, address, len, 0, 0, 0])
}

pub fn listen(fd: u64, backlog: u64) -> SysResult {
    call(Opcode::Listen, [fd_arg(fd)?, backlog, 0, 0, 0, 0])
}

pub fn accept4(fd: u64, address: u64, len_pointer: u64, flags: u64) -> SysResult {
    address_out(address, len_pointer)?;
    call(
        Opcode::Accept,
        [fd_arg(fd)?, address, len_pointer, flags, 0, 0],
    )
}

pub fn getsockname(fd: u64, address: u64, len_pointer: u64) -> SysResult {
    address_out(address, len_pointer)?;
    call(
        Opcode::GetSockName,
        [fd_arg(fd)?, address, len_pointer, 0, 0, 0],
    )
}

pub fn getpeername(fd: u64, address: u64, len_pointer: u64) -> SysResult {
    address_out(address, len_pointer)?;
    call(
        Opcode::GetPeerName,
        [fd_arg(fd)?, address, len_pointer, 0, 0, 0],
    )
}

pub fn setsockopt(fd: u64, level: u64, name: u64, value: u64, len: u64) -> SysResult {
    check_buffer(value, len.min(512))?;
    call(
        Opcode::SetSockOpt,
        [fd_arg(fd)?, level, name, value, len, 0],
    )
}

pub fn getsockopt(fd: u64, level: u64, name: u64, value: u64, len_pointer: u64) -> SysResult {
    let room: u32 = user::read(len_pointer)?;
    check_buffer(value, u64::from(room).min(512))?;
    call(
        Opcode::GetSockOpt,
        [fd_arg(fd)?, level, name, value, len_pointer, 0],
    )
}

pub fn shutdown(fd: u64, how: u64) -> SysResult {
    call(Opcode::Shutdown, [fd_arg(fd)?, how, 0, 0, 0, 0])
}

pub fn sendto(
    fd: u64,
    data: u64,
    len: u64,
    flags: u64,
    address: u64,
    address_len: u64,
) -> SysResult {
    check_buffer(data, len)?;
    if address != 0 {
        check_buffer(address, address_len.min(SOCKADDR_STORAGE_SIZE))?;
    }
    call(
        Opcode::SendTo,
        [fd_arg(fd)?, data, len, flags, address, address_len],
    )
}

pub fn recvfrom(
    fd: u64,
    data: u64,
    len: u64,
    flags: u64,
    address: u64,
    len_pointer: u64,
) -> SysResult {
    check_buffer(data, len)?;
    if address != 0 {
        address_out(address, len_pointer)?;
    }
    call(
        Opcode::RecvFrom,
        [fd_arg(fd)?, data, len, flags, address, len_pointer],
    )
}

/// Checks a `struct msghdr` (56 bytes) and the name and iovec buffers it
/// points at.
fn check_message(header: u64) -> Result<(), i64> {
    check_buffer(header, 56)?;
    let name: u64 = user::read(header)?;
    let name_len: u32 = user::read(header + 8)?;
    if name != 0 {
        check_buffer(name, u64::from(name_len))?;
    }
    let control: u64 = user::read(header + 32)?;
    let control_len: u64 = user::read(header + 40)?;
    if control_len != 0 {
        check_buffer(control, control_len)?;
    }
    let iov: u64 = user::read(header + 16)?;
    let count: u64 = user::read(header + 24)?;
    super::io::check_iovecs(iov, count)
}

pub fn sendmsg(fd: u64, header: u64, flags: u64) -> SysResult {
    check_message(header)?;
    call(Opcode::SendMsg, [fd_arg(fd)?, header, flags, 0, 0, 0])
}

pub fn recvmsg(fd: u64, header: u64, flags: u64) -> SysResult {
    check_message(header)?;
    call(Opcode::RecvMsg, [fd_arg(fd)?, header, flags, 0, 0, 0])
}

/// sendmmsg/recvmmsg: one sendmsg/recvmsg per `struct mmsghdr` (64 bytes,
/// the count at offset 56), stopping at the first error after a success.
pub fn multiple(send: bool, fd: u64, vector: u64, count: u64, flags: u64) -> SysResult {
    let count = count.min(1024);
    let mut done = 0;
    while done < count {
        let entry = vector + done * 64;
        let result = if send {
            sendmsg(fd, entry, flags)
        } else {
            recvmsg(fd, entry, flags)
        };
        match result {
            Ok(bytes) => user::write(entry + 56, bytes as u32)?,
            Err(errno) if done == 0 => return Err(errno),
            Err(_) => break,
        }
        done += 1;
    }
    Ok(done)
}
