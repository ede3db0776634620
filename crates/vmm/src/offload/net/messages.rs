//! Data over sockets: sendto and recvfrom on one guest buffer, sendmsg and
//! recvmsg over the guest's `struct msghdr`, its iovecs used in place and
//! its control data copied, with fds passed (SCM_RIGHTS) translated
//! between guest and host.

use std::os::fd::{AsFd, BorrowedFd};

use atoll_abi::linux::errno::{EINVAL, ENOBUFS};
use atoll_abi::queue::{Opcode, Request};
use vm_memory::VolatileSlice;

use super::unix::{self, HostAddress};
use super::{checked_address, return_address, write_guest, NetPolicy, MAX_ADDRESS};
use crate::guest::memory::GuestRam;
use crate::host::net;
use crate::offload::fs::read_guest;
use crate::sandbox::Files;

/// Most iovecs one message may carry (Linux's UIO_MAXIOV).
const MAX_IOVECS: u64 = 1024;

/// sendto(fd, buffer, len, flags, address, address len): to the address
/// if one is given, where the policy lets the socket reach it.
pub(in crate::offload) fn send_to(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, buffer, len, flags, address, address_len] = request.args;
    let socket = files.host_fd(fd)?;
    let buffer = ram.slice(buffer, len)?;
    let destination = if address == 0 {
        HostAddress::plain(Vec::new())
    } else {
        checked_address(
            ram,
            files,
            policy,
            address,
            address_len,
            Some(socket.as_fd()),
        )?
    };
    let flags = flags as i32 | libc::MSG_NOSIGNAL;
    let sent = net::send_to(socket.as_fd(), &buffer, flags, &destination.bytes)?;
    Ok(sent as i64)
}

/// recvfrom(fd, buffer, len, flags, address, len pointer).
pub(in crate::offload) fn receive_from(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, buffer, len, flags, address, len_pointer] = request.args;
    let socket = files.host_fd(fd)?;
    let buffer = ram.slice(buffer, len)?;
    let mut sender = vec![0u8; MAX_ADDRESS];
    let (received, sender_len) =
        net::receive_from(socket.as_fd(), &buffer, flags as i32, &mut sender)?;
    if address != 0 && sender_len > 0 {
        return_address(ram, policy, sender, sender_len, address, len_pointer)?;
    }
    Ok(received as i64)
}

/// The fields of a guest `struct msghdr` at `at`.
struct MessageHeader {
    at: u64,
    name: u64,
    name_len: u64,
    iov: u64,
    iov_len: u64,
    control: u64,
    control_len: u64,
}

/// Where a `struct msghdr`'s fields the host writes back lie.
const NAME_LEN_AT: u64 = 8;
const CONTROL_LEN_AT: u64 = 40;
const FLAGS_AT: u64 = 48;

impl MessageHeader {
    fn read(ram: &GuestRam, at: u64) -> Result<Self, i64> {
        let bytes = read_guest(ram, at, 56)?;
        let word = |offset: usize| {
            u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap_or_default())
        };
        let name_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
        Ok(Self {
            at,
            name: word(0),
            name_len: u64::from(name_len),
            iov: word(16),
            iov_len: word(24),
            control: word(32),
            control_len: word(40),
        })
    }
}

/// The guest memory of `count` guest iovecs at `iov`, empty ones left out.
fn guest_buffers(ram: &GuestRam, iov: u64, count: u64) -> Result<Vec<VolatileSlice<'_>>, i64> {
    if count > MAX_IOVECS {
        return Err(EINVAL);
    }
    let raw = read_guest(ram, iov, (count * 16) as usize)?;
    let mut buffers = Vec::with_capacity(count as usize);
    for chunk in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
        if len != 0 {
            buffers.push(ram.slice(base, len)?);
        }
    }
    Ok(buffers)
}

/// sendmsg(fd, header, flags) or recvmsg(fd, header, flags), as `op` says.
pub(in crate::offload) fn message(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, header, flags, ..] = request.args;
    let socket = files.host_fd(fd)?;
    let header = MessageHeader::read(ram, header)?;
    let buffers = guest_buffers(ram, header.iov, header.iov_len)?;
    let flags = flags as i32;
    if op == Opcode::SendMsg {
        send_message(ram, files, policy, socket.as_fd(), &header, &buffers, flags)
    } else {
        receive_message(ram, files, policy, socket.as_fd(), &header, &buffers, flags)
    }
}

fn send_message(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    socket: BorrowedFd<'_>,
    header: &MessageHeader,
    buffers: &[VolatileSlice<'_>],
    flags: i32,
) -> Result<i64, i64> {
    let name = if header.name != 0 {
        checked_address(
            ram,
            files,
            policy,
            header.name,
            header.name_len,
            Some(socket),
        )?
    } else {
        HostAddress::plain(Vec::new())
    };
    // `_held` keeps the fds the control data names open through the send.
    let (control, _held) = if header.control_len == 0 {
        (Vec::new(), Vec::new())
    } else if header.control_len as usize > unix::MAX_CONTROL {
        return Err(ENOBUFS);
    } else {
        let control = read_guest(ram, header.control, header.control_len as usize)?;
        unix::outgoing_control(files, control)?
    };
    let flags = flags | libc::MSG_NOSIGNAL;
    let sent = net::send_message(socket, &name.bytes, buffers, &control, flags)?;
    Ok(sent as i64)
}

fn receive_message(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    socket: BorrowedFd<'_>,
    header: &MessageHeader,
    buffers: &[VolatileSlice<'_>],
    flags: i32,
) -> Result<i64, i64> {
    let mut sender = vec![0u8; MAX_ADDRESS];
    let mut control = unix::control_buffer(header.control_len);
    // Received fds are the monitor's until the isle's table holds them.
    let host_flags = flags | libc::MSG_CMSG_CLOEXEC;
    let mut received =
        net::receive_message(socket, &mut sender, buffers, &mut control, host_flags)?;
    control.truncate(received.control_len);
    let close_on_exec = flags & libc::MSG_CMSG_CLOEXEC != 0;
    unix::incoming_control(
        files,
        &mut control,
        received.fds,
        close_on_exec,
        &mut received.flags,
    );
    if header.name != 0 {
        let len_pointer = header.at + NAME_LEN_AT;
        return_address(
            ram,
            policy,
            sender,
            received.name_len,
            header.name,
            len_pointer,
        )?;
    }
    write_guest(ram, header.control, &control)?;
    let control_len = (control.len() as u64).to_le_bytes();
    write_guest(ram, header.at + CONTROL_LEN_AT, &control_len)?;
    write_guest(ram, header.at + FLAGS_AT, &received.flags.to_le_bytes())?;
    Ok(received.len as i64)
}
