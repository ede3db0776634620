//! Offloaded sockets under an explicit network policy.
//!
//! Without flags an isle has no network: it may make sockets and socket
//! pairs, but binding a port needs `-p PORT[:GUESTPORT]` (the isle binds
//! GUESTPORT, the host binds PORT) and connecting or sending anywhere needs
//! `--net`, except to the isle's own published ports on loopback where the
//! isle itself serves them ([`inet`]). Listening needs a published port
//! too. Only TCP, UDP and Unix sockets are made, and only common options
//! set on them ([`allowed`]). Unix socket names are confined like files
//! ([`unix`]); data moves by [`messages`].

mod allowed;
mod inet;
mod messages;
mod unix;

use std::num::NonZeroU32;
use std::os::fd::{AsFd, BorrowedFd};

use atoll_abi::linux::errno::{EACCES, EAFNOSUPPORT, EFAULT, EINVAL, ENETUNREACH, EOPNOTSUPP};
use atoll_abi::queue::{Opcode, Request};
use rustix::net::{AddressFamily, Protocol, SocketFlags, SocketType};
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::host::net::{self, errno};
use crate::offload::fs::read_guest;
use crate::sandbox::Files;
use inet::{family, port, set_port, Ip};
pub(super) use messages::{message, receive_from, send_to};
use unix::HostAddress;

/// What connecting to a port nobody listens on gives.
const ECONNREFUSED: i64 = libc::ECONNREFUSED as i64;

/// What the isle may do on the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// (host port, guest port) pairs the isle may listen on.
    pub published: Vec<(u16, u16)>,
    /// Whether it may connect out.
    pub outbound: bool,
}

impl NetPolicy {
    fn host_port(&self, guest: u16) -> Option<u16> {
        self.published
            .iter()
            .find(|(_, g)| *g == guest)
            .map(|(h, _)| *h)
    }

    fn guest_port(&self, host: u16) -> Option<u16> {
        self.published
            .iter()
            .find(|(h, _)| *h == host)
            .map(|(_, g)| *g)
    }
}

/// Largest socket address or option a request may carry.
const MAX_ADDRESS: usize = atoll_abi::linux::SOCKADDR_STORAGE_SIZE as usize;
const MAX_OPTION: usize = 512;

fn write_guest(ram: &GuestRam, address: u64, bytes: &[u8]) -> Result<(), i64> {
    ram.memory()
        .write_slice(bytes, GuestAddress(address))
        .map_err(|_| EFAULT)
}

/// Reads a guest sockaddr, applies the policy for binding it (`socket`
/// None) or for `socket` reaching it, and makes it the host's.
fn checked_address(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    address: u64,
    len: u64,
    socket: Option<BorrowedFd<'_>>,
) -> Result<HostAddress, i64> {
    if len < 2 || len as usize > MAX_ADDRESS {
        return Err(EINVAL);
    }
    let mut bytes = read_guest(ram, address, len as usize)?;
    if i32::from(family(&bytes)) == libc::AF_UNIX {
        return unix::host_address(files, &bytes, socket.is_none());
    }
    let Some(guest_port) = port(&bytes) else {
        return Err(EAFNOSUPPORT);
    };
    let Some(socket) = socket else {
        match policy.host_port(guest_port) {
            Some(host) => set_port(&mut bytes, host),
            None if guest_port == 0 && policy.outbound => {}
            None => return Err(EACCES),
        }
        return Ok(HostAddress::plain(bytes));
    };
    inet::unspecified_as_loopback(&mut bytes);
    let loopback = Ip::of(&bytes).filter(|ip| ip.is_loopback());
    let mut keep_open = None;
    match (loopback, policy.host_port(guest_port)) {
        (Some(destination), Some(host)) => {
            set_port(&mut bytes, host);
            if !policy.outbound {
                // A host process may listen there: only the isle's own
                // server is the isle's to reach.
                let server = inet::own_server(files, socket, destination, host)?;
                keep_open = Some(server.ok_or(ECONNREFUSED)?);
                inet::bind_datagrams_to_loopback(socket, destination)?;
            }
        }
        _ if policy.outbound => {}
        _ => return Err(ENETUNREACH),
    }
    let mut address = HostAddress::plain(bytes);
    address._keep_open = keep_open;
    Ok(address)
}

/// Whether the socket may listen: an IP socket only on a published port
/// (else listen would bind an ephemeral port on every address), a Unix
/// socket on whatever name it was allowed.
fn may_listen(policy: &NetPolicy, socket: BorrowedFd<'_>) -> Result<(), i64> {
    let local = inet::local_address(socket)?;
    match i32::from(family(&local)) {
        libc::AF_UNIX => Ok(()),
        _ => match port(&local) {
            Some(host) if host != 0 && policy.guest_port(host).is_some() => Ok(()),
            _ => Err(EACCES),
        },
    }
}

/// Writes a host sockaddr back to the guest, with published ports shown as
/// the isle knows them, honouring the guest's length.
fn return_address(
    ram: &GuestRam,
    policy: &NetPolicy,
    mut bytes: Vec<u8>,
    host_len: usize,
    address: u64,
    len_pointer: u64,
) -> Result<(), i64> {
    if address == 0 || len_pointer == 0 {
        return Ok(());
    }
    bytes.truncate(host_len);
    if i32::from(family(&bytes)) == libc::AF_UNIX {
        bytes = unix::guest_address(&bytes);
    }
    show_address(ram, policy, bytes, address, len_pointer)
}

/// Writes a guest-view sockaddr out, as much as the guest's length allows,
/// and its full length.
fn show_address(
    ram: &GuestRam,
    policy: &NetPolicy,
    mut bytes: Vec<u8>,
    address: u64,
    len_pointer: u64,
) -> Result<(), i64> {
    if let Some(host) = port(&bytes) {
        if let Some(guest) = policy.guest_port(host) {
            set_port(&mut bytes, guest);
        }
    }
    let room: u32 = ram
        .memory()
        .read_obj(GuestAddress(len_pointer))
        .map_err(|_| EFAULT)?;
    let shown = (room as usize).min(bytes.len()).min(MAX_ADDRESS);
    write_guest(ram, address, &bytes[..shown])?;
    write_guest(ram, len_pointer, &(bytes.len() as u32).to_le_bytes())
}

/// A socket type and protocol as the guest gave them, as rustix takes them.
fn kind_and_protocol(kind: i32, protocol: i32) -> (SocketType, Option<Protocol>) {
    (
        SocketType::from_raw(kind as u32),
        NonZeroU32::new(protocol as u32).map(Protocol::from_raw),
    )
}

/// socket(domain, type, protocol): TCP, UDP and Unix sockets only.
pub(super) fn socket(files: &Files, request: &Request) -> Result<i64, i64> {
    let [domain, kind, protocol, ..] = request.args;
    let (domain, kind, protocol) = (domain as i32, kind as i32, protocol as i32);
    let close_on_exec = kind & libc::SOCK_CLOEXEC != 0;
    if ![libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].contains(&domain) {
        return Err(EAFNOSUPPORT);
    }
    allowed::socket(domain, kind, protocol)?;
    let (kind, protocol) = kind_and_protocol(kind, protocol);
    let family = AddressFamily::from_raw(domain as u16);
    let made = rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, protocol);
    files.adopt(made.map_err(errno)?, close_on_exec)
}

/// socketpair(domain, type, protocol, fds): Unix sockets only.
pub(super) fn socket_pair(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [domain, kind, protocol, fds, ..] = request.args;
    let (kind, protocol) = (kind as i32, protocol as i32);
    let close_on_exec = kind & libc::SOCK_CLOEXEC != 0;
    match domain as i32 {
        libc::AF_UNIX => {}
        // As Linux answers: TCP and UDP make no pairs.
        libc::AF_INET | libc::AF_INET6 => return Err(EOPNOTSUPP),
        _ => return Err(EAFNOSUPPORT),
    }
    allowed::socketpair(kind, protocol)?;
    ram.slice(fds, 8)?;
    let (kind, protocol) = kind_and_protocol(kind, protocol);
    let (first, second) =
        rustix::net::socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, protocol)
            .map_err(errno)?;
    let first = files.adopt(first, close_on_exec)?;
    let second = files.adopt(second, close_on_exec)?;
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&(first as i32).to_le_bytes());
    bytes[4..].copy_from_slice(&(second as i32).to_le_bytes());
    write_guest(ram, fds, &bytes)?;
    Ok(0)
}

/// bind(fd, address, len) or connect(fd, address, len), as `op` says.
pub(super) fn bind_or_connect(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, address, len, ..] = request.args;
    let bind = op == Opcode::Bind;
    let socket = files.host_fd(fd)?;
    let reaching = (!bind).then_some(socket.as_fd());
    let address = checked_address(ram, files, policy, address, len, reaching)?;
    if bind {
        inet::may_share_port(files, socket.as_fd(), &address.bytes)?;
        // A path name makes a socket file, with the isle's umask.
        files.with_isle_umask(|| net::bind(socket.as_fd(), &address.bytes))?;
    } else {
        net::connect(socket.as_fd(), &address.bytes)?;
    }
    if let Some(name) = &address.guest_name {
        // The host knows this socket by another name: keep the guest's.
        if bind {
            unix::remember(files, fd, Some(name), None);
        } else {
            unix::remember(files, fd, None, Some(name));
        }
    }
    Ok(0)
}

/// listen(fd, backlog), where the policy lets the socket serve.
pub(super) fn listen(files: &Files, policy: &NetPolicy, request: &Request) -> Result<i64, i64> {
    let [fd, backlog, ..] = request.args;
    let socket = files.host_fd(fd)?;
    may_listen(policy, socket.as_fd())?;
    rustix::net::listen(&socket, backlog as i32).map_err(errno)?;
    Ok(0)
}

/// accept4(fd, address, len pointer, flags).
pub(super) fn accept(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, address, len_pointer, flags, ..] = request.args;
    let socket = files.host_fd(fd)?;
    let mut peer = vec![0u8; MAX_ADDRESS];
    let close_on_exec = flags as i32 & libc::SOCK_CLOEXEC != 0;
    let flags = (flags as i32 & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) | libc::SOCK_CLOEXEC;
    let (connection, peer_len) = net::accept(socket.as_fd(), &mut peer, flags)?;
    let guest = files.adopt(connection, close_on_exec)?;
    if let Some(local) = files.socket_names(fd)?.local {
        unix::remember(files, guest as u64, Some(&local), None);
    }
    return_address(ram, policy, peer, peer_len, address, len_pointer)?;
    Ok(guest)
}

/// getsockname or getpeername(fd, address, len pointer), as `op` says: the
/// name the guest gave where the host's would differ.
pub(super) fn socket_name(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, address, len_pointer, ..] = request.args;
    let socket = files.host_fd(fd)?;
    let local = op == Opcode::GetSockName;
    let mut name = vec![0u8; MAX_ADDRESS];
    let len = if local {
        net::local_name(socket.as_fd(), &mut name)?
    } else {
        net::peer_name(socket.as_fd(), &mut name)?
    };
    if address == 0 || len_pointer == 0 {
        return Err(EFAULT);
    }
    let names = files.socket_names(fd)?;
    let known = if local { names.local } else { names.peer };
    match known {
        Some(guest) => show_address(ram, policy, guest, address, len_pointer)?,
        None => return_address(ram, policy, name, len, address, len_pointer)?,
    }
    Ok(0)
}

/// setsockopt(fd, level, name, value, len), of the options [`allowed`].
pub(super) fn set_option(
    ram: &GuestRam,
    files: &Files,
    policy: &NetPolicy,
    request: &Request,
) -> Result<i64, i64> {
    let [fd, level, name, value, len, ..] = request.args;
    let (level, name) = (level as i32, name as i32);
    let socket = files.host_fd(fd)?;
    if len as usize > MAX_OPTION {
        return Err(EINVAL);
    }
    let value = read_guest(ram, value, len as usize)?;
    allowed::setsockopt(policy, level, name, &value)?;
    net::set_option(socket.as_fd(), level, name, &value)?;
    Ok(0)
}

/// getsockopt(fd, level, name, value, len pointer).
pub(super) fn get_option(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, level, name, value, len_pointer, ..] = request.args;
    let socket = files.host_fd(fd)?;
    let room: u32 = ram
        .memory()
        .read_obj(GuestAddress(len_pointer))
        .map_err(|_| EFAULT)?;
    let mut bytes = vec![0u8; (room as usize).min(MAX_OPTION)];
    let len = net::get_option(socket.as_fd(), level as i32, name as i32, &mut bytes)?;
    write_guest(ram, value, &bytes[..len.min(bytes.len())])?;
    write_guest(ram, len_pointer, &(len as u32).to_le_bytes())?;
    Ok(0)
}

/// shutdown(fd, how).
pub(super) fn shutdown(files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, how, ..] = request.args;
    net::shutdown(files.host_fd(fd)?.as_fd(), how as i32)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_abi::linux::errno::ENOENT;

    const RAM: u64 = 2 << 20;

    fn request(op: Opcode, args: [u64; 6]) -> Request {
        Request {
            opcode: op.as_u32(),
            flags: 0,
            tag: 0,
            args,
        }
    }

    /// As the server sends it: decoded once, then through the one dispatch.
    fn serve(
        ram: &GuestRam,
        files: &Files,
        policy: &NetPolicy,
        request: &Request,
    ) -> Option<Result<i64, i64>> {
        let op = Opcode::try_from(request.opcode).expect("tests send known opcodes");
        Some(
            match crate::offload::dispatch::handle(ram, files, policy, op, request) {
                errno if errno < 0 => Err(-errno),
                value => Ok(value),
            },
        )
    }

    fn inet(port: u16, loopback: bool) -> [u8; 16] {
        let mut address = [0u8; 16];
        address[..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
        address[2..4].copy_from_slice(&port.to_be_bytes());
        if loopback {
            address[4] = 127;
            address[7] = 1;
        }
        address
    }

    /// A port published and outbound connects allowed.
    fn open_policy() -> NetPolicy {
        NetPolicy {
            published: vec![(18099, 8080)],
            outbound: true,
        }
    }

    fn socket(ram: &GuestRam, files: &Files, policy: &NetPolicy) -> u64 {
        socket_of(ram, files, policy, libc::AF_INET, libc::SOCK_STREAM)
    }

    fn socket_of(ram: &GuestRam, files: &Files, policy: &NetPolicy, domain: i32, kind: i32) -> u64 {
        let made = serve(
            ram,
            files,
            policy,
            &request(Opcode::Socket, [domain as u64, kind as u64, 0, 0, 0, 0]),
        );
        made.unwrap().unwrap() as u64
    }

    fn inet6(port: u16, address: [u8; 16]) -> [u8; 28] {
        let mut bytes = [0u8; 28];
        bytes[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_le_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[8..24].copy_from_slice(&address);
        bytes
    }

    fn mapped(v4: [u8; 4]) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[10..12].copy_from_slice(&[0xff, 0xff]);
        bytes[12..].copy_from_slice(&v4);
        bytes
    }

    const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    /// `op` (BIND, CONNECT or SENDTO of one byte) on `fd` with `address`.
    fn call(
        ram: &GuestRam,
        files: &Files,
        policy: &NetPolicy,
        op: Opcode,
        fd: u64,
        address: &[u8],
    ) -> Result<i64, i64> {
        ram.memory()
            .write_slice(address, GuestAddress(0x1000))
            .unwrap();
        let len = address.len() as u64;
        let args = if op == Opcode::SendTo {
            [fd, 0x3000, 1, 0, 0x1000, len]
        } else {
            [fd, 0x1000, len, 0, 0, 0]
        };
        serve(ram, files, policy, &request(op, args)).unwrap()
    }

    fn listen(ram: &GuestRam, files: &Files, policy: &NetPolicy, fd: u64) -> Result<i64, i64> {
        serve(
            ram,
            files,
            policy,
            &request(Opcode::Listen, [fd, 8, 0, 0, 0, 0]),
        )
        .unwrap()
    }

    fn free_port() -> u16 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        // Free for UDP too, on both families, or try another.
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("::1", port)).is_ok()
        {
            port
        } else {
            free_port()
        }
    }

    #[test]
    fn listening_needs_a_bind_to_a_published_port() {
        let ram = GuestRam::new(RAM).unwrap();
        let files = Files::new(&[], "/").unwrap();
        let host = free_port();
        let policy = NetPolicy {
            published: vec![(host, 8080)],
            outbound: true,
        };
        for domain in [libc::AF_INET, libc::AF_INET6] {
            // Unbound, listen would take an ephemeral port on every address.
            let unbound = socket_of(&ram, &files, &policy, domain, libc::SOCK_STREAM);
            assert_eq!(listen(&ram, &files, &policy, unbound), Err(EACCES));
            // Bound to port 0 (allowed with --net), the same.
            let ephemeral = socket_of(&ram, &files, &policy, domain, libc::SOCK_STREAM);
            let any = if domain == libc::AF_INET {
                inet(0, true).to_vec()
            } else {
                inet6(0, LOOPBACK6).to_vec()
            };
            assert_eq!(
                call(&ram, &files, &policy, Opcode::Bind, ephemeral, &any),
                Ok(0)
            );
            assert_eq!(listen(&ram, &files, &policy, ephemeral), Err(EACCES));
        }
        let published = socket(&ram, &files, &policy);
        assert_eq!(
            call(
                &ram,
                &files,
                &policy,
                Opcode::Bind,
                published,
                &inet(8080, true)
            ),
            Ok(0)
        );
        assert_eq!(listen(&ram, &files, &policy, published), Ok(0));
        let unix_socket = socket_of(&ram, &files, &policy, libc::AF_UNIX, libc::SOCK_STREAM);
        let name = [&(libc::AF_UNIX as u16).to_le_bytes()[..], b"\0listener"].concat();
        assert_eq!(
            call(&ram, &files, &policy, Opcode::Bind, unix_socket, &name),
            Ok(0)
        );
        assert_eq!(listen(&ram, &files, &policy, unix_socket), Ok(0));
    }

    #[test]
    fn a_published_port_on_loopback_reaches_only_the_isles_own_server() {
        let ram = GuestRam::new(RAM).unwrap();
        let files = Files::new(&[], "/").unwrap();
        // A host server on `taken` (both families); the isle serves `own`
        // on 127.0.0.1 only, and a host server has [::1] of it.
        let taken = free_port();
        let own = free_port();
        let _host_servers = (
            std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap(),
            std::net::TcpListener::bind(("::1", taken)).unwrap(),
            std::net::UdpSocket::bind(("127.0.0.1", taken)).unwrap(),
            std::net::TcpListener::bind(("::1", own)).unwrap(),
        );
        let closed = NetPolicy {
            published: vec![(taken, 8080), (own, 8081)],
            outbound: false,
        };
        let server = socket(&ram, &files, &closed);
        assert_eq!(
            call(
                &ram,
                &files,
                &closed,
                Opcode::Bind,
                server,
                &inet(8081, true)
            ),
            Ok(0)
        );
        let v4 = |port| inet(port, true).to_vec();
        let any4 = |port| inet(port, false).to_vec();
        let v6 = |port| inet6(port, LOOPBACK6).to_vec();
        let any6 = |port| inet6(port, [0; 16]).to_vec();
        let mapped4 = |port| inet6(port, mapped([127, 0, 0, 1])).to_vec();
        let mapped_any = |port| inet6(port, mapped([0; 4])).to_vec();
        let refused: [(i32, Vec<u8>); 8] = [
            (libc::AF_INET, v4(8080)),
            (libc::AF_INET, any4(8080)),
            (libc::AF_INET6, v6(8080)),
            (libc::AF_INET6, any6(8080)),
            (libc::AF_INET6, mapped4(8080)),
            (libc::AF_INET6, mapped_any(8080)),
            // Bound, but not yet listening.
            (libc::AF_INET, v4(8081)),
            (libc::AF_INET6, v6(8081)),
        ];
        for (domain, address) in &refused {
            let client = socket_of(&ram, &files, &closed, *domain, libc::SOCK_STREAM);
            let connect = call(&ram, &files, &closed, Opcode::Connect, client, address);
            assert_eq!(connect, Err(ECONNREFUSED), "{address:?}");
            // TCP Fast Open carries the destination in sendto.
            let fastopen = request(
                Opcode::SendTo,
                [
                    client,
                    0x3000,
                    1,
                    libc::MSG_FASTOPEN as u64,
                    0x1000,
                    address.len() as u64,
                ],
            );
            assert_eq!(
                serve(&ram, &files, &closed, &fastopen),
                Some(Err(ECONNREFUSED))
            );
        }
        let datagrams = socket_of(&ram, &files, &closed, libc::AF_INET, libc::SOCK_DGRAM);
        assert_eq!(
            call(&ram, &files, &closed, Opcode::SendTo, datagrams, &v4(8080)),
            Err(ECONNREFUSED)
        );
        assert_eq!(listen(&ram, &files, &closed, server), Ok(0));
        // The isle's own server takes IPv4, mapped or not, and 0.0.0.0.
        for (domain, address) in [
            (libc::AF_INET, v4(8081)),
            (libc::AF_INET, any4(8081)),
            (libc::AF_INET6, mapped4(8081)),
        ] {
            let client = socket_of(&ram, &files, &closed, domain, libc::SOCK_STREAM);
            assert_eq!(
                call(&ram, &files, &closed, Opcode::Connect, client, &address),
                Ok(0),
                "{address:?}"
            );
        }
        // Not [::1], where the host serves; nor UDP, which it doesn't.
        let client = socket_of(&ram, &files, &closed, libc::AF_INET6, libc::SOCK_STREAM);
        assert_eq!(
            call(&ram, &files, &closed, Opcode::Connect, client, &v6(8081)),
            Err(ECONNREFUSED)
        );
        assert_eq!(
            call(&ram, &files, &closed, Opcode::SendTo, datagrams, &v4(8081)),
            Err(ECONNREFUSED)
        );
        // Closed, the server serves no more.
        let close = files.close(server as i64);
        assert_eq!(close, Ok(0));
        let client = socket(&ram, &files, &closed);
        assert_eq!(
            call(&ram, &files, &closed, Opcode::Connect, client, &v4(8081)),
            Err(ECONNREFUSED)
        );
        // With --net the host's servers are for the isle to reach.
        let open = NetPolicy {
            outbound: true,
            ..closed
        };
        let client = socket(&ram, &files, &open);
        assert_eq!(
            call(&ram, &files, &open, Opcode::Connect, client, &v4(8080)),
            Ok(0)
        );
    }

    #[test]
    fn raw_sockets_and_privileged_options_are_refused() {
        let ram = GuestRam::new(RAM).unwrap();
        let files = Files::new(&[], "/").unwrap();
        let open = open_policy();
        let raw = request(
            Opcode::Socket,
            [
                libc::AF_INET as u64,
                libc::SOCK_RAW as u64,
                libc::IPPROTO_TCP as u64,
                0,
                0,
                0,
            ],
        );
        assert_eq!(
            serve(&ram, &files, &open, &raw),
            Some(Err(libc::EPERM as i64))
        );
        let fd = socket(&ram, &files, &open);
        ram.memory().write_obj(1i32, GuestAddress(0x1000)).unwrap();
        let mark = request(
            Opcode::SetSockOpt,
            [
                fd,
                libc::SOL_SOCKET as u64,
                libc::SO_MARK as u64,
                0x1000,
                4,
                0,
            ],
        );
        assert_eq!(
            serve(&ram, &files, &open, &mark),
            Some(Err(libc::EPERM as i64))
        );
        let nodelay = request(
            Opcode::SetSockOpt,
            [
                fd,
                libc::IPPROTO_TCP as u64,
                libc::TCP_NODELAY as u64,
                0x1000,
                4,
                0,
            ],
        );
        assert_eq!(serve(&ram, &files, &open, &nodelay), Some(Ok(0)));
    }

    #[test]
    fn an_address_of_length_zero_goes_back_as_length_zero() {
        // recvfrom on a stream socket, or a peer without a name: the host
        // says length 0 (the fuzzer found this one panicking the monitor).
        let ram = GuestRam::new(RAM).unwrap();
        let (address, len_pointer) = (0x1000u64, 0x2000u64);
        ram.memory()
            .write_obj(16u32, GuestAddress(len_pointer))
            .unwrap();
        let policy = NetPolicy::default();
        return_address(&ram, &policy, vec![0; 16], 0, address, len_pointer).unwrap();
        let shown: u32 = ram.memory().read_obj(GuestAddress(len_pointer)).unwrap();
        assert_eq!(shown, 0);
    }

    #[test]
    fn binding_needs_a_published_port_and_connecting_needs_net() {
        let ram = GuestRam::new(RAM).unwrap();
        let files = Files::new(&[], "/").unwrap();
        let closed = NetPolicy::default();
        let fd = socket(&ram, &files, &closed);
        ram.memory()
            .write_slice(&inet(8080, false), GuestAddress(0x1000))
            .unwrap();
        let bind = request(Opcode::Bind, [fd, 0x1000, 16, 0, 0, 0]);
        assert_eq!(serve(&ram, &files, &closed, &bind), Some(Err(EACCES)));
        ram.memory()
            .write_slice(&inet(9, true), GuestAddress(0x1000))
            .unwrap();
        let connect = request(Opcode::Connect, [fd, 0x1000, 16, 0, 0, 0]);
        assert_eq!(
            serve(&ram, &files, &closed, &connect),
            Some(Err(ENETUNREACH))
        );
    }

    #[test]
    fn bad_addresses_lengths_and_families_are_refused() {
        let ram = GuestRam::new(RAM).unwrap();
        let files = Files::new(&[], "/").unwrap();
        let open = open_policy();
        let fd = socket(&ram, &files, &open);
        let cases = [
            (request(Opcode::Bind, [fd, RAM - 4, 16, 0, 0, 0]), EFAULT),
            (
                request(Opcode::Bind, [fd, 0x1000, 1 << 20, 0, 0, 0]),
                EINVAL,
            ),
            (request(Opcode::Bind, [fd, 0x1000, 1, 0, 0, 0]), EINVAL),
            (request(Opcode::SendTo, [fd, RAM - 1, 64, 0, 0, 0]), EFAULT),
            (
                request(Opcode::RecvFrom, [fd, u64::MAX - 8, 64, 0, 0, 0]),
                EFAULT,
            ),
            (
                request(Opcode::SetSockOpt, [fd, 1, 2, 0x1000, 1 << 16, 0]),
                EINVAL,
            ),
            (request(Opcode::Socket, [99, 1, 0, 0, 0, 0]), EAFNOSUPPORT),
            (
                request(
                    Opcode::SocketPair,
                    [libc::AF_INET as u64, 1, 0, 0x1000, 0, 0],
                ),
                EOPNOTSUPP,
            ),
            (
                request(Opcode::Listen, [777, 1, 0, 0, 0, 0]),
                atoll_abi::linux::errno::EBADF,
            ),
        ];
        for (request, errno) in cases {
            assert_eq!(
                serve(&ram, &files, &open, &request),
                Some(Err(errno)),
                "{request:?}"
            );
        }
        // Unix names outside every mount (there are none here).
        let unix_socket = serve(
            &ram,
            &files,
            &open,
            &request(Opcode::Socket, [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]),
        );
        let unix_socket = unix_socket.unwrap().unwrap() as u64;
        for (path, errno) in [(&b"/x.sock"[..], ENOENT), (b"/nowhere/x.sock", ENOENT)] {
            let mut name = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
            name.extend_from_slice(path);
            ram.memory()
                .write_slice(&name, GuestAddress(0x1000))
                .unwrap();
            let len = name.len() as u64;
            let bind = request(Opcode::Bind, [unix_socket, 0x1000, len, 0, 0, 0]);
            assert_eq!(serve(&ram, &files, &open, &bind), Some(Err(errno)));
        }
    }
}
