//! Socket calls on raw socket addresses and on guest memory.
//!
//! rustix takes and gives socket addresses only as typed values, which
//! would re-encode what the guest wrote (and refuse what Linux takes), and
//! buffers only as `&[u8]`. These take a sockaddr as its bytes, exactly as
//! the guest gave it or the host kernel writes it, guest memory as volatile
//! slices, and give the fds a message brings as owned fds.

use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};
use vm_memory::VolatileSlice;

use super::check;

/// A rustix error as the errno a syscall result carries.
pub(crate) fn errno(error: rustix::io::Errno) -> i64 {
    i64::from(error.raw_os_error())
}

/// A length as a socklen_t, capped: the kernel then uses less of the buffer.
fn socklen(len: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(len).unwrap_or(libc::socklen_t::MAX)
}

/// An address to hand the kernel: its bytes, or null for none.
fn address_argument(address: &[u8]) -> (*const libc::sockaddr, libc::socklen_t) {
    if address.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (address.as_ptr().cast(), socklen(address.len()))
    }
}

/// A room for the kernel to write an address into: its pointer and its
/// length, which the kernel replaces with the address's full length.
fn address_room(address: &mut [u8]) -> (*mut libc::sockaddr, libc::socklen_t) {
    (address.as_mut_ptr().cast(), socklen(address.len()))
}

/// bind(2) to the sockaddr `address`.
pub(crate) fn bind(socket: BorrowedFd<'_>, address: &[u8]) -> Result<(), i64> {
    let (pointer, len) = address_argument(address);
    // SAFETY: the kernel reads at most `len` bytes of `address`.
    check(unsafe { libc::bind(socket.as_raw_fd(), pointer, len) }.into()).map(drop)
}

/// connect(2) to the sockaddr `address`.
pub(crate) fn connect(socket: BorrowedFd<'_>, address: &[u8]) -> Result<(), i64> {
    let (pointer, len) = address_argument(address);
    // SAFETY: the kernel reads at most `len` bytes of `address`.
    check(unsafe { libc::connect(socket.as_raw_fd(), pointer, len) }.into()).map(drop)
}

/// accept4(2) with `flags`: the new connection, and the peer's full address
/// length (its bytes in `address`, cut to its length).
pub(crate) fn accept(
    socket: BorrowedFd<'_>,
    address: &mut [u8],
    flags: i32,
) -> Result<(OwnedFd, usize), i64> {
    let (pointer, mut len) = address_room(address);
    // SAFETY: the kernel writes at most `len` bytes into `address`.
    let fd = check(unsafe { libc::accept4(socket.as_raw_fd(), pointer, &mut len, flags) }.into())?;
    // SAFETY: accept4 just made this fd, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok((fd, len as usize))
}

/// getsockname(2): the socket's full address length, its bytes in `address`
/// (cut to its length).
pub(crate) fn local_name(socket: BorrowedFd<'_>, address: &mut [u8]) -> Result<usize, i64> {
    let (pointer, mut len) = address_room(address);
    // SAFETY: the kernel writes at most `len` bytes into `address`.
    check(unsafe { libc::getsockname(socket.as_raw_fd(), pointer, &mut len) }.into())?;
    Ok(len as usize)
}

/// getpeername(2), as [`local_name`] for the peer.
pub(crate) fn peer_name(socket: BorrowedFd<'_>, address: &mut [u8]) -> Result<usize, i64> {
    let (pointer, mut len) = address_room(address);
    // SAFETY: the kernel writes at most `len` bytes into `address`.
    check(unsafe { libc::getpeername(socket.as_raw_fd(), pointer, &mut len) }.into())?;
    Ok(len as usize)
}

/// getsockopt(2) of any option: the length the kernel gives, its value in
/// `value` (cut to its length).
pub(crate) fn get_option(
    socket: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: &mut [u8],
) -> Result<usize, i64> {
    let (pointer, mut len) = (value.as_mut_ptr().cast(), socklen(value.len()));
    // SAFETY: the kernel writes at most `len` bytes into `value`.
    let done = unsafe { libc::getsockopt(socket.as_raw_fd(), level, name, pointer, &mut len) };
    check(done.into())?;
    Ok(len as usize)
}

/// setsockopt(2) of any option to the bytes `value`.
pub(crate) fn set_option(
    socket: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: &[u8],
) -> Result<(), i64> {
    let (pointer, len) = (value.as_ptr().cast(), socklen(value.len()));
    // SAFETY: the kernel reads at most `len` bytes of `value`.
    let done = unsafe { libc::setsockopt(socket.as_raw_fd(), level, name, pointer, len) };
    check(done.into()).map(drop)
}

/// shutdown(2) with any `how`: Linux, not this wrapper, judges it (after
/// the fd), as rustix's enum would have to.
pub(crate) fn shutdown(socket: BorrowedFd<'_>, how: i32) -> Result<(), i64> {
    // SAFETY: shutdown takes no memory.
    check(unsafe { libc::shutdown(socket.as_raw_fd(), how) }.into()).map(drop)
}

/// sendto(2) of guest memory `buffer` to the sockaddr `address` (none if
/// empty): the bytes sent.
pub(crate) fn send_to(
    socket: BorrowedFd<'_>,
    buffer: &VolatileSlice<'_>,
    flags: i32,
    address: &[u8],
) -> Result<usize, i64> {
    let (pointer, len) = address_argument(address);
    let guard = buffer.ptr_guard();
    // SAFETY: the kernel reads at most `buffer.len()` bytes of guest memory,
    // mapped while `buffer` lives, and `len` bytes of `address`.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            guard.as_ptr().cast(),
            buffer.len(),
            flags,
            pointer,
            len,
        )
    };
    check(sent as libc::c_long).map(|sent| sent as usize)
}

/// recvfrom(2) into guest memory `buffer`: the bytes received and the
/// sender's full address length (its bytes in `address`, cut to its length).
pub(crate) fn receive_from(
    socket: BorrowedFd<'_>,
    buffer: &VolatileSlice<'_>,
    flags: i32,
    address: &mut [u8],
) -> Result<(usize, usize), i64> {
    let (pointer, mut len) = address_room(address);
    let guard = buffer.ptr_guard_mut();
    // SAFETY: the kernel writes at most `buffer.len()` bytes of guest memory,
    // mapped while `buffer` lives (volatile: nothing of ours refers to it),
    // and at most `len` bytes into `address`.
    let received = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            guard.as_ptr().cast(),
            buffer.len(),
            flags,
            pointer,
            &mut len,
        )
    };
    let received = check(received as libc::c_long)?;
    Ok((received as usize, len as usize))
}

/// The kernel's iovec for `len` bytes at `base`.
fn iovec(base: *const u8, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: base.cast_mut().cast(),
        iov_len: len,
    }
}

/// The header of a message of `iovecs`, named `name`, with `control` data
/// (each none if its length is 0).
fn message_header(
    iovecs: &mut [libc::iovec],
    name: *mut libc::c_void,
    name_len: usize,
    control: *mut libc::c_void,
    control_len: usize,
) -> libc::msghdr {
    // SAFETY: msghdr is plain data, all zeroes a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iovecs.as_mut_ptr();
    header.msg_iovlen = iovecs.len();
    if name_len != 0 {
        header.msg_name = name;
        header.msg_namelen = socklen(name_len);
    }
    if control_len != 0 {
        header.msg_control = control;
        header.msg_controllen = control_len;
    }
    header
}

/// sendmsg(2) of guest memory `buffers`, to the sockaddr `name` (none if
/// empty), with `control` data (none if empty): the bytes sent. Fds in the
/// control data must stay open through the call (the caller holds them).
pub(crate) fn send_message(
    socket: BorrowedFd<'_>,
    name: &[u8],
    buffers: &[VolatileSlice<'_>],
    control: &[u8],
    flags: i32,
) -> Result<usize, i64> {
    let guards: Vec<PtrGuard> = buffers.iter().map(VolatileSlice::ptr_guard).collect();
    let mut iovecs: Vec<_> = guards
        .iter()
        .map(|guard| iovec(guard.as_ptr(), guard.len()))
        .collect();
    let header = message_header(
        &mut iovecs,
        name.as_ptr().cast_mut().cast(),
        name.len(),
        control.as_ptr().cast_mut().cast(),
        control.len(),
    );
    // SAFETY: the kernel only reads through the header: guest memory the
    // iovecs cover (mapped while `buffers` live), the name and the control
    // data, each of the length the header gives.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &header, flags) };
    check(sent as libc::c_long).map(|sent| sent as usize)
}

/// What [`receive_message`] got.
pub(crate) struct Received {
    /// Bytes received.
    pub len: usize,
    /// The sender's full address length.
    pub name_len: usize,
    /// Bytes of control data the kernel wrote.
    pub control_len: usize,
    /// The message's flags (MSG_TRUNC, MSG_CTRUNC, ...).
    pub flags: i32,
    /// The fds SCM_RIGHTS brought, now ours, each with the offset in the
    /// control data of the slot that holds its number.
    pub fds: Vec<(usize, OwnedFd)>,
}

/// recvmsg(2) into guest memory `buffers`, the sender's address into `name`
/// and control data into `control` (none if empty).
pub(crate) fn receive_message(
    socket: BorrowedFd<'_>,
    name: &mut [u8],
    buffers: &[VolatileSlice<'_>],
    control: &mut [u8],
    flags: i32,
) -> Result<Received, i64> {
    let guards: Vec<PtrGuardMut> = buffers.iter().map(VolatileSlice::ptr_guard_mut).collect();
    let mut iovecs: Vec<_> = guards
        .iter()
        .map(|guard| iovec(guard.as_ptr(), guard.len()))
        .collect();
    let mut header = message_header(
        &mut iovecs,
        name.as_mut_ptr().cast(),
        name.len(),
        control.as_mut_ptr().cast(),
        control.len(),
    );
    // SAFETY: the kernel writes through the header only: guest memory the
    // iovecs cover (mapped while `buffers` live; volatile, nothing of ours
    // refers to it), the name and the control data, at most the lengths
    // the header gives.
    let received = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut header, flags) };
    let len = check(received as libc::c_long)? as usize;
    let control_len = header.msg_controllen.min(control.len());
    let mut fds = Vec::new();
    // What the kernel writes is well formed: nothing is left unparsed.
    for message in control_messages(&control[..control_len]).unwrap_or_default() {
        if message.level != libc::SOL_SOCKET || message.kind != libc::SCM_RIGHTS {
            continue;
        }
        let slots = message.data.start..message.data.start + message.data.len() / 4 * 4;
        for at in slots.step_by(4) {
            let raw = i32::from_le_bytes(control[at..at + 4].try_into().unwrap_or_default());
            // SAFETY: the kernel wrote this SCM_RIGHTS message into our own
            // buffer just now, naming only fds it installed for this call;
            // nothing else owns them.
            fds.push((at, unsafe { OwnedFd::from_raw_fd(raw) }));
        }
    }
    Ok(Received {
        len,
        name_len: header.msg_namelen as usize,
        control_len,
        flags: header.msg_flags,
        fds,
    })
}

/// The size of a control message's header (`struct cmsghdr`).
pub(crate) const CONTROL_HEADER: usize = 16;

/// A control message's level and type, and where its data lies.
pub(crate) struct ControlMessage {
    pub level: i32,
    pub kind: i32,
    pub data: Range<usize>,
}

/// Control messages are 8-aligned.
pub(crate) fn control_align(len: usize) -> usize {
    (len + 7) & !7
}

/// The control messages in `control`; EINVAL if a header lies about its
/// length.
pub(crate) fn control_messages(control: &[u8]) -> Result<Vec<ControlMessage>, i64> {
    let mut found = Vec::new();
    let mut offset = 0;
    while offset + CONTROL_HEADER <= control.len() {
        let header = &control[offset..offset + CONTROL_HEADER];
        let len = u64::from_le_bytes(header[..8].try_into().unwrap_or_default()) as usize;
        let level = i32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
        let kind = i32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
        if len < CONTROL_HEADER || len > control.len() - offset {
            return Err(i64::from(libc::EINVAL));
        }
        found.push(ControlMessage {
            level,
            kind,
            data: offset + CONTROL_HEADER..offset + len,
        });
        offset += control_align(len);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::memory::GuestRam;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    use std::os::fd::AsFd;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn a_message_carries_guest_memory_and_an_fd_that_arrives_owned() {
        let ram = GuestRam::new(1 << 20).unwrap();
        let (sender, receiver) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        ram.memory()
            .write_slice(b"hello", GuestAddress(0x100))
            .unwrap();
        let passed = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
        let mut control = ((CONTROL_HEADER + 4) as u64).to_le_bytes().to_vec();
        control.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
        control.extend_from_slice(&libc::SCM_RIGHTS.to_le_bytes());
        control.extend_from_slice(&passed.as_raw_fd().to_le_bytes());
        let out = [ram.slice(0x100, 2).unwrap(), ram.slice(0x102, 3).unwrap()];
        let sent = send_message(sender.as_fd(), &[], &out, &control, 0).unwrap();
        assert_eq!(sent, 5);

        let into = [ram.slice(0x200, 16).unwrap()];
        let mut name = [0u8; 128];
        let mut room = [0u8; 64];
        let flags = libc::MSG_CMSG_CLOEXEC;
        let received = receive_message(receiver.as_fd(), &mut name, &into, &mut room, flags);
        let received = received.unwrap();
        assert_eq!(received.len, 5);
        let mut bytes = [0u8; 5];
        ram.memory()
            .read_slice(&mut bytes, GuestAddress(0x200))
            .unwrap();
        assert_eq!(&bytes, b"hello");
        assert_eq!(received.fds.len(), 1);
        let (slot, fd) = &received.fds[0];
        assert_eq!(*slot, CONTROL_HEADER);
        let number = i32::from_le_bytes(room[*slot..*slot + 4].try_into().unwrap());
        assert_eq!(number, fd.as_raw_fd());
        assert_ne!(number, passed.as_raw_fd(), "a new fd, not the one sent");
        assert!(rustix::fs::fstat(fd).is_ok());
    }

    #[test]
    fn a_control_header_that_lies_about_its_length_is_refused() {
        let mut control = 64u64.to_le_bytes().to_vec();
        control.resize(CONTROL_HEADER, 0);
        assert_eq!(
            control_messages(&control).err(),
            Some(i64::from(libc::EINVAL))
        );
        control[0] = 8;
        assert_eq!(
            control_messages(&control).err(),
            Some(i64::from(libc::EINVAL))
        );
        control[0] = CONTROL_HEADER as u8;
        let found = control_messages(&control).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].data.is_empty());
    }
}
