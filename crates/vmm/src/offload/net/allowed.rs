//! Which sockets an isle may make and which options it may set on them.
//!
//! The monitor may hold privileges the isle must not borrow: raw and
//! packet sockets would let it sniff and forge traffic, options like
//! SO_MARK, SO_BINDTODEVICE or IP_TRANSPARENT would steer its packets past
//! the host's rules, joining a multicast group would take traffic in. Only what ordinary programs use is let through; the
//! rest is refused with the errno Linux gives an unprivileged user, or
//! ENOPROTOOPT where that user could set it but no ordinary program needs
//! it.

use super::NetPolicy;

const EPERM: i64 = libc::EPERM as i64;
const EACCES: i64 = libc::EACCES as i64;
const EINVAL: i64 = libc::EINVAL as i64;
const ENOPROTOOPT: i64 = libc::ENOPROTOOPT as i64;
const EPROTONOSUPPORT: i64 = libc::EPROTONOSUPPORT as i64;
const ESOCKTNOSUPPORT: i64 = libc::ESOCKTNOSUPPORT as i64;

/// The bits of a socket type that are its kind; the rest are flags.
const SOCK_TYPE_MASK: i32 = 0xf;
/// The obsolete packet socket kind (libc deprecates its name).
const SOCK_PACKET: i32 = 10;
/// One past the largest kind Linux knows.
const SOCK_MAX: i32 = SOCK_PACKET + 1;
/// One past the largest IP protocol number Linux takes.
const IPPROTO_MAX: i32 = 263;

/// The socket kind of a socket()/socketpair() type once its flags are
/// checked, as Linux checks them.
fn kind(kind_and_flags: i32) -> Result<i32, i64> {
    let flags = kind_and_flags & !SOCK_TYPE_MASK;
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let kind = kind_and_flags & SOCK_TYPE_MASK;
    if kind >= SOCK_MAX {
        return Err(EINVAL);
    }
    Ok(kind)
}

/// Whether an isle may make a socket of `domain` (AF_INET, AF_INET6 or
/// AF_UNIX), type `kind_and_flags` and `protocol`: TCP and UDP, and Unix
/// stream, datagram and seqpacket sockets.
pub fn socket(domain: i32, kind_and_flags: i32, protocol: i32) -> Result<(), i64> {
    let kind = kind(kind_and_flags)?;
    if domain == libc::AF_UNIX {
        if protocol != 0 && protocol != libc::AF_UNIX {
            return Err(EPROTONOSUPPORT);
        }
        return match kind {
            libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_SEQPACKET => Ok(()),
            _ => Err(ESOCKTNOSUPPORT),
        };
    }
    // Linux makes (AF_INET, SOCK_PACKET) a packet socket: CAP_NET_RAW.
    if domain == libc::AF_INET && kind == SOCK_PACKET {
        return Err(EPERM);
    }
    if !(0..IPPROTO_MAX).contains(&protocol) {
        return Err(EINVAL);
    }
    let ping = if domain == libc::AF_INET {
        libc::IPPROTO_ICMP
    } else {
        libc::IPPROTO_ICMPV6
    };
    match (kind, protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Ok(()),
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Ok(()),
        // Raw sockets need CAP_NET_RAW.
        (libc::SOCK_RAW, _) => Err(EPERM),
        // Ping sockets need a group in net.ipv4.ping_group_range, which
        // by default holds none.
        (libc::SOCK_DGRAM, protocol) if protocol == ping => Err(EACCES),
        (libc::SOCK_STREAM | libc::SOCK_DGRAM, _) => Err(EPROTONOSUPPORT),
        _ => Err(ESOCKTNOSUPPORT),
    }
}

/// Whether an isle may make a pair of Unix sockets like this.
pub fn socketpair(kind_and_flags: i32, protocol: i32) -> Result<(), i64> {
    socket(libc::AF_UNIX, kind_and_flags, protocol)
}

/// Options not every libc names.
const SO_RCVTIMEO_NEW: i32 = 66;
const SO_SNDTIMEO_NEW: i32 = 67;
const SO_BINDTOIFINDEX: i32 = 62;
const IP_MULTICAST_ALL: i32 = 49;
const MCAST_JOIN_GROUP: i32 = 42;
const MCAST_LEAVE_SOURCE_GROUP: i32 = 47;
const TCP_FASTOPEN_CONNECT: i32 = 30;
const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_REPAIR_OPTIONS: i32 = 22;
const TCP_REPAIR_WINDOW: i32 = 29;
const IPV6_TRANSPARENT: i32 = 75;

/// Highest SO_PRIORITY an unprivileged user may set.
const MAX_PRIORITY: i32 = 6;

/// What may become of a setsockopt.
enum Verdict {
    Allowed,
    /// Reaches the network beyond the isle: only with `--net`.
    WithNet,
    /// Needs CAP_NET_ADMIN or CAP_NET_RAW on Linux.
    Privileged,
    /// Linux takes it only with a value in range (SO_PRIORITY).
    Priority,
    /// A server's option: only where the isle may serve.
    WithPublished,
    Unknown,
}

fn verdict(level: i32, name: i32) -> Verdict {
    use Verdict::*;
    match (level, name) {
        (
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR
            | libc::SO_REUSEPORT
            | libc::SO_KEEPALIVE
            | libc::SO_RCVBUF
            | libc::SO_SNDBUF
            | libc::SO_RCVTIMEO
            | libc::SO_SNDTIMEO
            | SO_RCVTIMEO_NEW
            | SO_SNDTIMEO_NEW
            | libc::SO_LINGER
            | libc::SO_OOBINLINE
            | libc::SO_PASSCRED
            | libc::SO_RCVLOWAT
            | libc::SO_SNDLOWAT
            // Go sets it on every UDP socket; a broadcast address is
            // unreachable without --net all the same (the destination
            // policy is not on loopback).
            | libc::SO_BROADCAST,
        ) => Allowed,
        (libc::SOL_SOCKET, libc::SO_PRIORITY) => Priority,
        (
            libc::SOL_SOCKET,
            libc::SO_MARK
            | libc::SO_BINDTODEVICE
            | SO_BINDTOIFINDEX
            | libc::SO_RCVBUFFORCE
            | libc::SO_SNDBUFFORCE,
        ) => Privileged,
        (
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY
            | libc::TCP_KEEPIDLE
            | libc::TCP_KEEPINTVL
            | libc::TCP_KEEPCNT
            | libc::TCP_CORK
            | libc::TCP_QUICKACK
            | libc::TCP_DEFER_ACCEPT
            | libc::TCP_USER_TIMEOUT
            | libc::TCP_NOTSENT_LOWAT,
        ) => Allowed,
        (libc::IPPROTO_TCP, libc::TCP_FASTOPEN) => WithPublished,
        // Without --net the isle connects only to itself: no use for it.
        (libc::IPPROTO_TCP, TCP_FASTOPEN_CONNECT) => WithNet,
        (
            libc::IPPROTO_TCP,
            TCP_REPAIR | TCP_REPAIR_QUEUE | TCP_QUEUE_SEQ | TCP_REPAIR_OPTIONS | TCP_REPAIR_WINDOW,
        ) => Privileged,
        (libc::IPPROTO_IP, libc::IP_TOS | libc::IP_TTL | libc::IP_RECVERR | libc::IP_PKTINFO) => {
            Allowed
        }
        // How to send to groups, which without --net are unreachable all
        // the same (the JDK sets these on every UDP socket).
        (
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF | libc::IP_MULTICAST_TTL | libc::IP_MULTICAST_LOOP | IP_MULTICAST_ALL,
        ) => Allowed,
        // Joining a group takes traffic in and tells the network so.
        (
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP
            | libc::IP_DROP_MEMBERSHIP
            | libc::IP_UNBLOCK_SOURCE
            | libc::IP_BLOCK_SOURCE
            | libc::IP_ADD_SOURCE_MEMBERSHIP
            | libc::IP_DROP_SOURCE_MEMBERSHIP
            | MCAST_JOIN_GROUP..=MCAST_LEAVE_SOURCE_GROUP,
        ) => WithNet,
        (libc::IPPROTO_IP, libc::IP_TRANSPARENT) => Privileged,
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY
            | libc::IPV6_TCLASS
            | libc::IPV6_UNICAST_HOPS
            | libc::IPV6_RECVERR
            | libc::IPV6_RECVPKTINFO,
        ) => Allowed,
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_IF | libc::IPV6_MULTICAST_HOPS | libc::IPV6_MULTICAST_LOOP,
        ) => Allowed,
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_ADD_MEMBERSHIP
            | libc::IPV6_DROP_MEMBERSHIP
            | MCAST_JOIN_GROUP..=MCAST_LEAVE_SOURCE_GROUP,
        ) => WithNet,
        (libc::IPPROTO_IPV6, IPV6_TRANSPARENT) => Privileged,
        _ => Unknown,
    }
}

/// Whether the isle may set option `name` of `level` to `value`, or the
/// errno it is refused with.
pub fn setsockopt(policy: &NetPolicy, level: i32, name: i32, value: &[u8]) -> Result<(), i64> {
    match verdict(level, name) {
        Verdict::Allowed => Ok(()),
        Verdict::WithNet if policy.outbound => Ok(()),
        Verdict::WithPublished if !policy.published.is_empty() => Ok(()),
        Verdict::WithNet | Verdict::WithPublished | Verdict::Privileged => Err(EPERM),
        Verdict::Priority => {
            let value: [u8; 4] = value
                .get(..4)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or(EINVAL)?;
            if (0..=MAX_PRIORITY).contains(&i32::from_le_bytes(value)) {
                Ok(())
            } else {
                Err(EPERM)
            }
        }
        Verdict::Unknown => Err(ENOPROTOOPT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_udp_and_unix_sockets_are_made_with_linuxs_errnos_for_the_rest() {
        let nonblocking = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let packet_protocol = i32::from((libc::ETH_P_ALL as u16).to_be());
        let cases = [
            (libc::AF_INET, libc::SOCK_STREAM, 0, Ok(())),
            (libc::AF_INET, nonblocking, libc::IPPROTO_TCP, Ok(())),
            (libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP, Ok(())),
            (libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, Ok(())),
            (libc::AF_UNIX, libc::SOCK_DGRAM, libc::AF_UNIX, Ok(())),
            (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP, Err(EPERM)),
            (
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                libc::IPPROTO_UDP,
                Err(EPERM),
            ),
            (libc::AF_INET, SOCK_PACKET, packet_protocol, Err(EPERM)),
            (libc::AF_INET6, SOCK_PACKET, packet_protocol, Err(EINVAL)),
            (libc::AF_INET6, SOCK_PACKET, 0, Err(ESOCKTNOSUPPORT)),
            (
                libc::AF_INET,
                libc::SOCK_DGRAM,
                libc::IPPROTO_ICMP,
                Err(EACCES),
            ),
            (
                libc::AF_INET6,
                libc::SOCK_DGRAM,
                libc::IPPROTO_ICMPV6,
                Err(EACCES),
            ),
            (
                libc::AF_INET6,
                libc::SOCK_DGRAM,
                libc::IPPROTO_ICMP,
                Err(EPROTONOSUPPORT),
            ),
            (
                libc::AF_INET,
                libc::SOCK_STREAM,
                libc::IPPROTO_UDP,
                Err(EPROTONOSUPPORT),
            ),
            (libc::AF_INET, libc::SOCK_SEQPACKET, 0, Err(ESOCKTNOSUPPORT)),
            (libc::AF_INET, 11, 0, Err(EINVAL)),
            (libc::AF_INET, libc::SOCK_STREAM | 0x100, 0, Err(EINVAL)),
            (libc::AF_INET, -1, 0, Err(EINVAL)),
            (libc::AF_INET, libc::SOCK_STREAM, -1, Err(EINVAL)),
            (libc::AF_UNIX, libc::SOCK_RAW, 0, Err(ESOCKTNOSUPPORT)),
            (libc::AF_UNIX, libc::SOCK_RDM, 0, Err(ESOCKTNOSUPPORT)),
            (libc::AF_UNIX, libc::SOCK_STREAM, 2, Err(EPROTONOSUPPORT)),
        ];
        for (domain, kind, protocol, expected) in cases {
            assert_eq!(
                socket(domain, kind, protocol),
                expected,
                "{domain} {kind:#x} {protocol}"
            );
        }
        assert_eq!(socketpair(libc::SOCK_RAW, 0), Err(ESOCKTNOSUPPORT));
        assert_eq!(
            socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
            Ok(())
        );
    }

    #[test]
    fn options_that_widen_the_sandbox_are_refused() {
        let closed = NetPolicy::default();
        let open = NetPolicy {
            published: vec![(18080, 8080)],
            outbound: true,
        };
        let one = 1i32.to_le_bytes();
        let refused = [
            (libc::SOL_SOCKET, libc::SO_MARK, EPERM),
            (libc::SOL_SOCKET, libc::SO_BINDTODEVICE, EPERM),
            (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, EPERM),
            (libc::IPPROTO_IP, libc::IP_TRANSPARENT, EPERM),
            (libc::IPPROTO_IPV6, IPV6_TRANSPARENT, EPERM),
            (libc::IPPROTO_TCP, TCP_REPAIR, EPERM),
            (libc::IPPROTO_IP, libc::IP_HDRINCL, ENOPROTOOPT),
            (libc::IPPROTO_IP, libc::IP_FREEBIND, ENOPROTOOPT),
            (libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, ENOPROTOOPT),
            (libc::SOL_SOCKET, libc::SO_DEBUG, ENOPROTOOPT),
        ];
        for (level, name, errno) in refused {
            for policy in [&closed, &open] {
                assert_eq!(
                    setsockopt(policy, level, name, &one),
                    Err(errno),
                    "{level} {name}"
                );
            }
        }
        let everywhere = [
            (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (libc::IPPROTO_IP, libc::IP_TOS),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            (libc::SOL_SOCKET, libc::SO_BROADCAST),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS),
        ];
        for (level, name) in everywhere {
            assert_eq!(setsockopt(&closed, level, name, &one), Ok(()));
        }
        let only_with_flags = [
            (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP),
            (libc::IPPROTO_IP, MCAST_JOIN_GROUP),
            (libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP),
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN),
            (libc::IPPROTO_TCP, TCP_FASTOPEN_CONNECT),
        ];
        for (level, name) in only_with_flags {
            assert_eq!(setsockopt(&closed, level, name, &one), Err(EPERM));
            assert_eq!(setsockopt(&open, level, name, &one), Ok(()));
        }
        let priority = |value: i32| {
            setsockopt(
                &open,
                libc::SOL_SOCKET,
                libc::SO_PRIORITY,
                &value.to_le_bytes(),
            )
        };
        assert_eq!(priority(6), Ok(()));
        assert_eq!(priority(7), Err(EPERM));
        assert_eq!(priority(-1), Err(EPERM));
        assert_eq!(
            setsockopt(&open, libc::SOL_SOCKET, libc::SO_PRIORITY, &[0]),
            Err(EINVAL)
        );
    }
}
