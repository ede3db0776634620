//! Sockets in isles: TCP and UDP between threads of one isle, a host client
//! against an isle's HTTP server, and the network policy.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_and_udp_echo_between_threads_like_natively() {
    let program = program(Flavor::Rust, "netecho");
    let guest = 19080;
    let native = {
        let _slot = isle_slot();
        std::process::Command::new(&program)
            .arg(guest.to_string())
            .output()
            .unwrap()
    };
    assert!(native.status.success(), "natively: {}", stderr(&native));
    for cores in [&["-c", "1"][..], &["-c", "2", "--overcommit"][..]] {
        let host = free_port();
        let mut args = vec!["run".to_string()];
        args.extend(cores.iter().map(|s| s.to_string()));
        for offset in 0..3 {
            args.push("-p".into());
            args.push(format!("{}:{}", host + offset, guest + offset));
        }
        args.push(program.to_str().unwrap().into());
        args.push(guest.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&args);
        assert_eq!(status(&output), 0, "{cores:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), stdout(&native), "{cores:?}");
    }
}

#[test]
fn listening_needs_a_published_port() {
    let output = run_program(Flavor::Rust, "netecho", &["19180"]);
    assert_ne!(status(&output), 0);
    assert!(
        stderr(&output).contains("Permission denied"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn connecting_out_needs_net() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let greeter = std::thread::spawn(move || {
        // Only the run with --net reaches us.
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"hello from the host\n").unwrap();
    });
    let refused = run_program(Flavor::Rust, "connect", &[&port.to_string()]);
    assert_eq!(status(&refused), 2);
    assert!(
        stderr(&refused).contains("unreachable"),
        "{}",
        stderr(&refused)
    );
    let path = program(Flavor::Rust, "connect");
    let allowed = run(&["run", "--net", path.to_str().unwrap(), &port.to_string()]);
    assert_eq!(status(&allowed), 0, "{}", stderr(&allowed));
    assert_eq!(stdout(&allowed), "got: hello from the host\n");
    greeter.join().unwrap();
}

fn http_get(port: u16, path: &str) -> String {
    for _ in 0..200 {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            return response;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the isle's server never listened on {port}");
}

/// `path` from the server on host port `port`: with curl where there is
/// one (as a user would), else by hand.
fn fetch(port: u16, path: &str) -> String {
    if !std::path::Path::new("/usr/bin/curl").exists() {
        return http_get(port, path);
    }
    let output = std::process::Command::new("/usr/bin/curl")
        .args([
            "-s",
            "--retry",
            "20",
            "--retry-connrefused",
            "--retry-delay",
            "0",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Go's net/http under `-p`, on two CPUs: its netpoller, timers, GC and
/// goroutines answer curl, then it shuts down cleanly.
#[test]
fn a_go_http_server_in_an_isle_answers_curl() {
    let host = free_port();
    let path = program(Flavor::Go, "httpd");
    let _slot = isle_slot();
    let server = atoll()
        .args(["run", "-c", "2", "--overcommit", "-p"])
        .arg(format!("{host}:8080"))
        .args([path.to_str().unwrap(), "8080", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for index in 0..5 {
        let body = fetch(host, &format!("/go{index}"));
        assert_eq!(
            body,
            format!("hello from Go in an isle: request {index} for /go{index} (64 blocks)\n")
        );
    }
    let output = server.wait_with_output().unwrap();
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "serving on 8080\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn a_host_client_talks_to_an_http_server_in_an_isle() {
    let host = free_port();
    let path = program(Flavor::Rust, "httpd");
    let _slot = isle_slot();
    let server = atoll()
        .args([
            "run",
            "-p",
            &format!("{host}:8080"),
            path.to_str().unwrap(),
            "8080",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for index in 0..3 {
        let body = fetch(host, &format!("/page{index}"));
        assert!(
            body.contains(&format!(
                "hello from an isle: request {index} for /page{index}"
            )),
            "{body}"
        );
    }
    let output = server.wait_with_output().unwrap();
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "serving on 8080\n");
}

#[test]
fn an_epoll_loop_and_poll_and_select_behave_as_natively() {
    assert_c_program_matches_native("evloop");
}

#[test]
fn named_and_abstract_unix_sockets_and_fd_passing_behave_as_natively() {
    assert_c_program_matches_native("unixsock");
}

/// A scratch directory holding `mnt` (to be mounted) and what lies outside it.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("atoll-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mnt")).unwrap();
    dir
}

#[test]
fn unix_socket_names_stay_inside_the_mounts() {
    use std::os::unix::net::UnixListener;
    let dir = scratch("unix-confined");
    let mnt = dir.join("mnt");
    let outside = dir.join("outside.sock");
    let inside = mnt.join("inside.sock");
    let outside_listener = UnixListener::bind(&outside).unwrap();
    let inside_listener = UnixListener::bind(&inside).unwrap();
    std::os::unix::fs::symlink(&outside, mnt.join("absolute")).unwrap();
    std::os::unix::fs::symlink("../outside.sock", mnt.join("relative")).unwrap();
    let greeter = std::thread::spawn(move || {
        let (mut stream, _) = inside_listener.accept().unwrap();
        stream.write_all(b"hello from the host\n").unwrap();
    });
    let mount = format!("{}:/data", mnt.display());
    let outside_name = outside.to_str().unwrap().to_string();
    let program = program(Flavor::Rust, "unixconnect");
    let output = run(&[
        "run",
        "-v",
        &mount,
        program.to_str().unwrap(),
        "/data/inside.sock",
        "/data/absolute",
        "/data/relative",
        "/data/../outside.sock",
        &outside_name,
        "/proc/self/fd/3",
    ]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "/data/inside.sock: got hello from the host");
    for line in &lines[1..] {
        assert!(line.contains(": refused (NotFound)"), "{line}");
    }
    assert_eq!(lines.len(), 6, "{lines:?}");
    greeter.join().unwrap();
    // Nothing reached the socket outside the mount.
    outside_listener.set_nonblocking(true).unwrap();
    assert!(outside_listener.accept().is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_host_client_reaches_a_unix_socket_an_isle_bound_in_a_mount() {
    use std::os::unix::net::UnixStream;
    let dir = scratch("unix-serve");
    let socket = dir.join("mnt").join("isle.sock");
    let mount = format!("{}:/data", dir.join("mnt").display());
    let program = program(Flavor::Rust, "unixconnect");
    let _slot = isle_slot();
    let server = atoll()
        .args(["run", "-v", &mount, program.to_str().unwrap()])
        .args(["--serve", "/data/isle.sock"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = (0..400)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(25));
            UnixStream::connect(&socket).ok()
        })
        .expect("the isle never bound its socket");
    let mut line = String::new();
    std::io::BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "hello from the isle\n");
    stream.write_all(b"hello from the host\n").unwrap();
    let output = server.wait_with_output().unwrap();
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "served: hello from the host\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port free for TCP and UDP on both 127.0.0.1 and ::1.
fn free_port_everywhere() -> u16 {
    loop {
        let port = free_port();
        let free = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("::1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok();
        if free {
            return port;
        }
    }
}

/// A host server's socket on `address` port `port` that shares the port
/// with its user's (SO_REUSEADDR and SO_REUSEPORT): listening if a stream.
fn shared_socket(address: &str, port: u16, kind: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let address: std::net::IpAddr = address.parse().unwrap();
    let socket_address = std::net::SocketAddr::new(address, port);
    let family = if address.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket makes a new fd, which we own from here on.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is the socket just made.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let one: i32 = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: an int option from our own int.
        let done = unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, option, (&one as *const i32).cast(), 4)
        };
        assert_eq!(done, 0);
    }
    let (storage, len) = sockaddr(&socket_address);
    // SAFETY: bind reads `len` bytes of `storage`, which holds that many.
    let bound = unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if kind == libc::SOCK_STREAM {
        // SAFETY: listen on our socket.
        assert_eq!(unsafe { libc::listen(fd, 8) }, 0);
    }
    Ok(socket)
}

/// The host's servers for `no_way_out_of_the_network_sandbox`, on four
/// ports free everywhere: P (TCP and UDP, both families, sharing their
/// port), Q (TCP, published as guest port G) and S (::1 only; the isle
/// serves 127.0.0.1 itself). Other tests take ports meanwhile, so a set
/// that can't all be bound is given up for another.
struct HostServers {
    ports: [u16; 4],
    tcp: [TcpListener; 5],
    udp: [std::net::UdpSocket; 3],
}

impl HostServers {
    fn start() -> Self {
        let mut last = None;
        for _ in 0..20 {
            match Self::try_start() {
                Ok(servers) => return servers,
                Err(error) => last = Some(error),
            }
        }
        panic!("no four ports could be bound for the host's servers: {last:?}");
    }

    fn try_start() -> std::io::Result<Self> {
        use std::net::UdpSocket;
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 4 {
            let port = free_port_everywhere();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let [p, q, s, _] = ports[..] else {
            unreachable!()
        };
        Ok(Self {
            ports: [ports[0], ports[1], ports[2], ports[3]],
            tcp: [
                TcpListener::from(shared_socket("127.0.0.1", p, libc::SOCK_STREAM)?),
                TcpListener::from(shared_socket("::1", p, libc::SOCK_STREAM)?),
                TcpListener::bind(("127.0.0.1", q))?,
                TcpListener::bind(("::1", q))?,
                TcpListener::bind(("::1", s))?,
            ],
            udp: [
                UdpSocket::from(shared_socket("127.0.0.1", p, libc::SOCK_DGRAM)?),
                UdpSocket::from(shared_socket("::1", p, libc::SOCK_DGRAM)?),
                UdpSocket::bind(("::1", s))?,
            ],
        })
    }
}

/// `address` as a C socket address.
fn sockaddr(address: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all zeros is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match address {
        std::net::SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// What `net_escapes` must be told, attempt by attempt: every way out
/// refused, and what ordinary programs do (the lines saying "open") let
/// through. The list is exact, so an attempt that starts to succeed, or a
/// new one, fails the test.
fn escapes_expected() -> String {
    let mut lines = vec![
        "raw_tcp_v4: refused EPERM",
        "raw_icmp_v4: refused EPERM",
        "raw_nonblock_v4: refused EPERM",
        "raw_tcp_v6: refused EPERM",
        "raw_icmpv6_v6: refused EPERM",
        "packet_v4: refused EPERM",
        "packet_v6: refused EINVAL",
        "packet_family: refused EAFNOSUPPORT",
        "netlink: refused EAFNOSUPPORT",
        "ping_v4: refused EACCES",
        "ping_v6: refused EACCES",
        "seqpacket_v4: refused ESOCKTNOSUPPORT",
        "sctp_v6: refused EPROTONOSUPPORT",
        "udplite_v4: refused EPROTONOSUPPORT",
        "bad_type_v4: refused EINVAL",
        "unix_raw: refused ESOCKTNOSUPPORT",
        "socketpair_unix_raw: refused ESOCKTNOSUPPORT",
        "socketpair_unix_rdm: refused ESOCKTNOSUPPORT",
        "socketpair_inet: refused EOPNOTSUPP",
        "tcp_v4: open",
        "udp_v6: open",
        "socketpair_unix_seqpacket: open",
        "so_mark_v4: refused EPERM",
        "so_mark_v6: refused EPERM",
        "so_bindtodevice_v4: refused EPERM",
        "so_bindtodevice_v6: refused EPERM",
        "so_rcvbufforce_v4: refused EPERM",
        "so_priority_7_v4: refused EPERM",
        "ip_transparent_v4: refused EPERM",
        "ipv6_transparent_v6: refused EPERM",
        "ip_hdrincl_v4: refused ENOPROTOOPT",
        "ip_freebind_v4: refused ENOPROTOOPT",
        "tcp_repair_v4: refused EPERM",
        "tcp_fastopen_connect_v6: refused EPERM",
        "ip_add_membership_v4: refused EPERM",
        "ipv6_add_membership_v6: refused EPERM",
        "so_attach_filter_v4: refused ENOPROTOOPT",
        "so_reuseaddr_v4: open",
        "tcp_nodelay_v6: open",
        "so_rcvtimeo_v4: open",
        "so_priority_6_v4: open",
        "ipv6_v6only_v6: open",
        "tcp_fastopen_v4: open",
        "ip_multicast_loop_v4: open",
        "ipv6_multicast_hops_v6: open",
        "so_broadcast_v4: open",
        "listen_unbound_v4: refused EACCES, port 0",
        "listen_unbound_v6: refused EACCES, port 0",
        "bind_ephemeral_v4: refused EACCES",
        "bind_ephemeral_v6: refused EACCES",
        "bind_unpublished_v4: refused EACCES",
        "bind_unpublished_v6: refused EACCES",
        "listen_unix: open",
        "reuseport_tcp_v4 p: refused EADDRINUSE",
        "reuseport_tcp_v6 p: refused EADDRINUSE",
        "reuseport_udp_v4 p: refused EADDRINUSE",
        "reuseaddr_udp_v6 p: refused EADDRINUSE",
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    let to_host_servers = [
        "connect_v4",
        "connect_v6",
        "connect_mapped",
        "connect_any_v4",
        "connect_any_v6",
        "connect_mapped_any",
        "connect_127_0_0_2",
        "fastopen_v4",
        "fastopen_v6",
        "fastopen_sendmsg_mapped",
        "udp_sendto_v4",
        "udp_sendto_v6",
        "udp_sendmsg_mapped",
        "udp_sendmmsg_any_v4",
        "udp_connect_v6",
    ];
    let off_loopback = ["udp_broadcast_v4", "udp_multicast_v4", "udp_multicast_v6"];
    for label in ["p", "q"] {
        for attempt in to_host_servers {
            lines.push(format!("{attempt} {label}: refused ECONNREFUSED"));
        }
        for attempt in off_loopback {
            lines.push(format!("{attempt} {label}: refused ENETUNREACH"));
        }
    }
    for line in [
        "own_bind: open",
        "own_listen: open",
        "own_udp_bind: open",
        "connect_v4 s: open",
        "connect_mapped s: open",
        "connect_any_v4 s: open",
        "connect_v6 s: refused ECONNREFUSED",
        "udp_sendto_v4 s: open",
        "udp_sendto_v6 s: refused ECONNREFUSED",
        "udp_autobind_v4 s: bound to 127.0.0.1",
        "udp_autobind_mapped s: bound to ::ffff:127.0.0.1",
        "connect_after_close_v4 s: refused ECONNREFUSED",
        "udp_sendto_after_close_v4 s: refused ECONNREFUSED",
        "own_reuseport_first: open",
        "own_reuseport_second: open",
    ] {
        lines.push(line.to_string());
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

#[test]
fn no_way_out_of_the_network_sandbox() {
    let HostServers { ports, tcp, udp } = HostServers::start();
    let [p, q, s, g] = ports;
    // As root on this machine's backend, and as nobody under QEMU.
    let nobody = AsNobody::new("net-escapes");
    let runs = Flavor::C
        .iter()
        .map(|flavor| (*flavor, false))
        .chain(nobody.iter().map(|_| (Flavor::Musl, true)));
    for (flavor, as_nobody) in runs {
        let path = program(flavor, "net_escapes");
        let published = [
            "-p".to_string(),
            p.to_string(),
            "-p".to_string(),
            format!("{q}:{g}"),
            "-p".to_string(),
            s.to_string(),
        ];
        let probe_args = [p.to_string(), g.to_string(), s.to_string()];
        let output = match &nobody {
            Some(nobody) if as_nobody => {
                let _slot = isle_slot();
                nobody
                    .atoll()
                    .arg("run")
                    .args(&published)
                    .arg(nobody.copy(&path))
                    .args(&probe_args)
                    .output()
                    .unwrap()
            }
            _ => {
                let mut args: Vec<&str> = vec!["run"];
                args.extend(published.iter().map(String::as_str));
                args.push(path.to_str().unwrap());
                args.extend(probe_args.iter().map(String::as_str));
                run(&args)
            }
        };
        let flavor = if as_nobody {
            format!("{flavor} as nobody")
        } else {
            flavor.to_string()
        };
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        let expected = escapes_expected();
        let got = stdout(&output);
        let differing: Vec<_> = got
            .lines()
            .zip(expected.lines())
            .filter(|(got, expected)| got != expected)
            .collect();
        assert!(
            differing.is_empty(),
            "{flavor}: (got, expected) {differing:#?}"
        );
        assert_eq!(got, expected, "{flavor}");
    }
    // Nothing reached the host's servers.
    for listener in &tcp {
        listener.set_nonblocking(true).unwrap();
        let accepted = listener.accept();
        assert!(accepted.is_err(), "{:?} reached", listener.local_addr());
    }
    for socket in &udp {
        socket.set_nonblocking(true).unwrap();
        let mut buffer = [0u8; 16];
        let received = socket.recv_from(&mut buffer);
        assert!(received.is_err(), "{:?} reached", socket.local_addr());
    }
}
