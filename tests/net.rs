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
    let use_curl = std::path::Path::new("/usr/bin/curl").exists();
    for index in 0..3 {
        let body = if use_curl {
            let output = std::process::Command::new("/usr/bin/curl")
                .args([
                    "-s",
                    "--retry",
                    "20",
                    "--retry-connrefused",
                    "--retry-delay",
                    "0",
                ])
                .arg(format!("http://127.0.0.1:{host}/page{index}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        } else {
            http_get(host, &format!("/page{index}"))
        };
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
