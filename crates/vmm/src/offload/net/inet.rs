//! IPv4 and IPv6 socket addresses as the policy sees them, and the isle's
//! own sockets on its published ports.
//!
//! Without `--net` an isle may reach a published port on loopback only
//! where it serves that port itself: a host process listening there (the
//! reason the port was free for the host side of `-p` to be taken, or
//! not) is out of its reach. The isle's sockets are looked at as they are
//! when the call is made, so a socket closed, or bound to another address
//! or family, serves nothing.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use atoll_abi::linux::errno::EADDRINUSE;
use rustix::net::sockopt;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::host::net::{self, errno};
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

/// The host's name for the socket (its bound address), or the errno.
pub fn local_address(fd: BorrowedFd<'_>) -> Result<Vec<u8>, i64> {
    let mut address = vec![0u8; 128];
    let len = net::local_name(fd, &mut address)?;
    address.truncate(len);
    Ok(address)
}

/// Whether `candidate` is where a socket of `kind` reaching `destination`
/// (loopback) on host port `port` arrives: a listening stream socket or a
/// bound datagram socket of that port, on the destination's address or a
/// wildcard covering it.
fn serves(candidate: BorrowedFd<'_>, kind: SocketType, destination: Ip, port: u16) -> bool {
    if sockopt::socket_type(candidate) != Ok(kind) {
        return false;
    }
    if kind == SocketType::STREAM && sockopt::socket_acceptconn(candidate) != Ok(true) {
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
            matches!(destination, Ip::V6(_)) || sockopt::ipv6_v6only(candidate) == Ok(false)
        }
        _ => false,
    }
}

/// Binds an unbound datagram socket to a port of loopback, the kind of
/// loopback `destination` is. Sending would bind it to a port on every
/// address instead, where other hosts' datagrams reach it: a way in for an
/// isle that may not listen.
pub fn bind_datagrams_to_loopback(socket: BorrowedFd<'_>, destination: Ip) -> Result<(), i64> {
    if sockopt::socket_type(socket).map_err(errno)? != SocketType::DGRAM {
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
    net::bind(socket, &address)
}

/// The isle's own socket that a `socket` reaching `destination` (a
/// loopback address) on host port `port` would arrive at, held open so it
/// stays there while the caller's call goes on.
pub fn own_server(
    files: &Files,
    socket: BorrowedFd<'_>,
    destination: Ip,
    port: u16,
) -> Result<Option<Arc<OwnedFd>>, i64> {
    let kind = sockopt::socket_type(socket).map_err(errno)?;
    Ok(files
        .all_host_fds()
        .into_iter()
        .find(|candidate| serves(candidate.as_fd(), kind, destination, port)))
}

/// Refuses (EADDRINUSE) a bind of `socket` to host `address` that would
/// share the port with a socket outside the isle. With SO_REUSEPORT (and,
/// for datagrams, SO_REUSEADDR) a bind joins whoever holds the port as the
/// same user, and atoll's user is often the host servers' too: the isle
/// would take a share of a host server's traffic on a published port. The
/// isle may share a port with its own sockets only.
pub fn may_share_port(files: &Files, socket: BorrowedFd<'_>, address: &[u8]) -> Result<(), i64> {
    let Some(port) = port(address).filter(|&port| port != 0) else {
        return Ok(());
    };
    let kind = sockopt::socket_type(socket).map_err(errno)?;
    let shares = sockopt::socket_reuseport(socket).map_err(errno)?
        || (kind == SocketType::DGRAM && sockopt::socket_reuseaddr(socket).map_err(errno)?);
    if !shares {
        return Ok(());
    }
    let own_holds_it = files.all_host_fds().iter().any(|own| {
        own.as_raw_fd() != socket.as_raw_fd()
            && sockopt::socket_type(own) == Ok(kind)
            && local_address(own.as_fd()).is_ok_and(|local| self::port(&local) == Some(port))
    });
    if own_holds_it {
        return Ok(());
    }
    // A socket that shares nothing binds wherever nobody holds the port.
    let domain = AddressFamily::from_raw(family(address));
    let Ok(probe) = rustix::net::socket_with(domain, kind, SocketFlags::CLOEXEC, None) else {
        return Ok(());
    };
    // A failure to set either shows in what the probe's bind says.
    if kind == SocketType::STREAM {
        // TIME_WAIT connections hold no port a server could share.
        let _ = sockopt::set_socket_reuseaddr(&probe, true);
    }
    if let Ok(v6_only) = sockopt::ipv6_v6only(socket) {
        let _ = sockopt::set_ipv6_v6only(&probe, v6_only);
    }
    match net::bind(probe.as_fd(), address) {
        Err(EADDRINUSE) => Err(EADDRINUSE),
        // Anything else is the real bind's to report.
        _ => Ok(()),
    }
}
