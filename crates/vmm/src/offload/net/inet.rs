//! IPv4 and IPv6 socket addresses as the policy sees them, and the isle's
//! own sockets on its published ports.
//!
//! Without `--net` an isle may reach a published port on loopback only
//! where it serves that port itself: a host process listening there (the
//! reason the port was free for the host side of `-p` to be taken, or
//! not) is out of its reach. The isle's sockets are looked at as they are
//! when the call is made, so a socket closed, or bound to another address
//! or family, serves nothing.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use atoll_abi::linux::errno::EADDRINUSE;

use crate::host::check;
use crate::sandbox::Files;

/// The address family (AF_UNSPEC for an empty address: an unnamed peer
/// comes back from the host with length 0).
pub fn family(address: &[u8]) -> u16 {
    u16::from_le_bytes([
        address.first().copied().unwrap_or(0),
        address.get(1).copied().unwrap_or(0),
    ])
}

pub fn port(address: &[u8]) -> Option<u16> {
    match i32::from(family(address)) {
        libc::AF_INET | libc::AF_INET6 if address.len() >= 4 => {
            Some(u16::from_be_bytes([address[2], address[3]]))
        }
        _ => None,
    }
}

pub fn set_port(address: &mut [u8], port: u16) {
    address[2..4].copy_from_slice(&port.to_be_bytes());
}

/// An IP address, IPv4-mapped IPv6 ones (::ffff:a.b.c.d) as the IPv4
/// addresses they carry, as the host's stack treats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
const V6_LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V4_LOOPBACK: [u8; 4] = [127, 0, 0, 1];

/// Where the address bytes of a sockaddr_in / sockaddr_in6 start.
const V4_AT: usize = 4;
const V6_AT: usize = 8;

impl Ip {
    /// The IP address of a sockaddr, if it is an IPv4 or IPv6 one.
    pub fn of(address: &[u8]) -> Option<Ip> {
        match i32::from(family(address)) {
            libc::AF_INET => address
                .get(V4_AT..V4_AT + 4)
                .map(|bytes| Ip::V4(bytes.try_into().unwrap_or_default())),
            libc::AF_INET6 => {
                let bytes: [u8; 16] = address.get(V6_AT..V6_AT + 16)?.try_into().ok()?;
                if bytes[..12] == V4_MAPPED {
                    Some(Ip::V4(bytes[12..].try_into().unwrap_or_default()))
                } else {
                    Some(Ip::V6(bytes))
                }
            }
            _ => None,
        }
    }

    pub fn is_loopback(self) -> bool {
        match self {
            Ip::V4(bytes) => bytes[0] == 127,
            Ip::V6(bytes) => bytes == V6_LOOPBACK,
        }
    }

    pub fn is_unspecified(self) -> bool {
        match self {
            Ip::V4(bytes) => bytes == [0; 4],
            Ip::V6(bytes) => bytes == [0; 16],
        }
    }
}

/// A destination of 0.0.0.0 or :: made the loopback address, which Linux
/// takes it for when the socket has no address of its own; with one, Linux
/// would take that address instead, a way off loopback the policy closes.
pub fn unspecified_as_loopback(address: &mut [u8]) {
    match Ip::of(address) {
        Some(ip @ Ip::V4(_)) if ip.is_unspecified() => {
            let at = if i32::from(family(address)) == libc::AF_INET {
                V4_AT
            } else {
                V6_AT + 12
            };
            address[at..at + 4].copy_from_slice(&V4_LOOPBACK);
        }
        Some(ip @ Ip::V6(_)) if ip.is_unspecified() => {
            address[V6_AT..V6_AT + 16].copy_from_slice(&V6_LOOPBACK);
        }
        _ => {}
    }
}

/// An int socket option's value, or the errno.
pub fn int_option(fd: RawFd, level: i32, name: i32) -> Result<i32, i64> {
    let mut value = 0i32;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into our int.
    let done =
        unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) };
    check(done.into()).map(|_| value)
}

/// Sets an int socket option; a failure shows in what the socket does next.
fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) {
    // SAFETY: setsockopt reads one int from ours.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
}

/// The host's name for the socket (its bound address), or the errno.
pub fn local_address(fd: RawFd) -> Result<Vec<u8>, i64> {
    let mut address = vec![0u8; 128];
    let mut len = address.len() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into our buffer.
    let done = unsafe { libc::getsockname(fd, address.as_mut_ptr().cast(), &mut len) };
    check(done.into())?;
    address.truncate(len as usize);
    Ok(address)
}

/// Whether `candidate` is where a socket of `kind` reaching `destination`
/// (loopback) on host port `port` arrives: a listening stream socket or a
/// bound datagram socket of that port, on the destination's address or a
/// wildcard covering it.
fn serves(candidate: RawFd, kind: i32, destination: Ip, port: u16) -> bool {
    if int_option(candidate, libc::SOL_SOCKET, libc::SO_TYPE) != Ok(kind) {
        return false;
    }
    if kind == libc::SOCK_STREAM
        && int_option(candidate, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) != Ok(1)
    {
        return false;
    }
    let Ok(local) = local_address(candidate) else {
        return false;
    };
    if self::port(&local) != Some(port) {
        return false;
    }
    let Some(bound) = Ip::of(&local) else {
        return false;
    };
    match (bound, destination) {
        _ if bound == destination => true,
        // 0.0.0.0, or ::ffff:0.0.0.0 on an IPv6 socket: every IPv4 address.
        (Ip::V4(bytes), Ip::V4(_)) => bytes == [0; 4],
        // :: takes IPv4 too unless the socket is IPv6-only.
        (Ip::V6(bytes), _) if bytes == [0; 16] => {
            matches!(destination, Ip::V6(_))
                || int_option(candidate, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Ok(0)
        }
        _ => false,
    }
}

/// Binds an unbound datagram socket to a port of loopback, the kind of
/// loopback `destination` is. Sending would bind it to a port on every
/// address instead, where other hosts' datagrams reach it: a way in for an
/// isle that may not listen.
pub fn bind_datagrams_to_loopback(socket: RawFd, destination: Ip) -> Result<(), i64> {
    if int_option(socket, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_DGRAM {
        return Ok(());
    }
    let local = local_address(socket)?;
    if port(&local) != Some(0) {
        return Ok(());
    }
    let mut address = local;
    match (i32::from(family(&address)), destination) {
        (libc::AF_INET, _) => address[V4_AT..V4_AT + 4].copy_from_slice(&V4_LOOPBACK),
        (_, Ip::V4(_)) => {
            address[V6_AT..V6_AT + 12].copy_from_slice(&V4_MAPPED);
            address[V6_AT + 12..V6_AT + 16].copy_from_slice(&V4_LOOPBACK);
        }
        (_, Ip::V6(_)) => address[V6_AT..V6_AT + 16].copy_from_slice(&V6_LOOPBACK),
    }
    // SAFETY: the address is our own buffer of its length.
    let done = unsafe {
        libc::bind(
            socket,
            address.as_ptr().cast(),
            address.len() as libc::socklen_t,
        )
    };
    check(done.into()).map(|_| ())
}

/// The isle's own socket that a `socket` reaching `destination` (a
/// loopback address) on host port `port` would arrive at, held open so it
/// stays there while the caller's call goes on.
pub fn own_server(
    files: &Files,
    socket: RawFd,
    destination: Ip,
    port: u16,
) -> Result<Option<Arc<OwnedFd>>, i64> {
    let kind = int_option(socket, libc::SOL_SOCKET, libc::SO_TYPE)?;
    Ok(files
        .all_host_fds()
        .into_iter()
        .find(|candidate| serves(candidate.as_raw_fd(), kind, destination, port)))
}

/// Refuses (EADDRINUSE) a bind of `socket` to host `address` that would
/// share the port with a socket outside the isle. With SO_REUSEPORT (and,
/// for datagrams, SO_REUSEADDR) a bind joins whoever holds the port as the
/// same user, and atoll's user is often the host servers' too: the isle
/// would take a share of a host server's traffic on a published port. The
/// isle may share a port with its own sockets only.
pub fn may_share_port(files: &Files, socket: RawFd, address: &[u8]) -> Result<(), i64> {
    let Some(port) = port(address).filter(|&port| port != 0) else {
        return Ok(());
    };
    let kind = int_option(socket, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let shares = int_option(socket, libc::SOL_SOCKET, libc::SO_REUSEPORT)? != 0
        || (kind == libc::SOCK_DGRAM
            && int_option(socket, libc::SOL_SOCKET, libc::SO_REUSEADDR)? != 0);
    if !shares {
        return Ok(());
    }
    let own_holds_it = files.all_host_fds().iter().any(|own| {
        own.as_raw_fd() != socket
            && int_option(own.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TYPE) == Ok(kind)
            && local_address(own.as_raw_fd()).is_ok_and(|local| self::port(&local) == Some(port))
    });
    if own_holds_it {
        return Ok(());
    }
    // A socket that shares nothing binds wherever nobody holds the port.
    // SAFETY: socket makes a new fd, owned below.
    let probe = unsafe { libc::socket(i32::from(family(address)), kind | libc::SOCK_CLOEXEC, 0) };
    let Ok(probe) = check(probe.into()) else {
        return Ok(());
    };
    // SAFETY: probe is the socket just made, ours alone.
    let probe = unsafe { OwnedFd::from_raw_fd(probe as RawFd) };
    if kind == libc::SOCK_STREAM {
        // TIME_WAIT connections hold no port a server could share.
        set_int_option(probe.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    }
    if let Ok(v6_only) = int_option(socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) {
        set_int_option(
            probe.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            v6_only,
        );
    }
    // SAFETY: the address is the caller's buffer of its length.
    let bound = unsafe {
        libc::bind(
            probe.as_raw_fd(),
            address.as_ptr().cast(),
            address.len() as libc::socklen_t,
        )
    };
    match check(bound.into()) {
        Err(EADDRINUSE) => Err(EADDRINUSE),
        // Anything else is the real bind's to report.
        _ => Ok(()),
    }
}
