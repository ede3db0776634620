//! The QEMU backend: the same kernel and queues under QEMU's TCG, where the
//! kernel takes its hardware-KVM paths (LSTAR at CPL 0, `sysretq`,
//! exceptions from ring 3 into ring 0). Programs give the same output and
//! status as under our KVM monitor; without /dev/kvm atoll falls back to
//! QEMU by itself; `--gdb` serves QEMU's GDB stub.
//!
//! The selection: the foundation programs (args, stdin, stdout, exit
//! statuses, faults), the offload programs (files, fds, Unix sockets) and
//! the thread programs on one core. Not here: programs that need several
//! vCPUs (the QEMU backend runs one) or that measure speed.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::*;

fn qemu_installed() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("qemu-system-x86_64").is_file())
    });
    if !found {
        eprintln!("skipped: no qemu-system-x86_64 (apt-get install qemu-system-x86)");
    }
    found
}

/// `atoll run --backend BACKEND ARGS` with `stdin`, one isle at a time.
fn run_on(backend: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec!["run", "--backend", backend];
    all.extend_from_slice(args);
    run_with_input(&all, stdin)
}

fn path_of(flavor: Flavor, name: &str) -> String {
    program(flavor, name).to_string_lossy().into_owned()
}

#[test]
fn programs_behave_the_same_under_qemu_as_under_kvm() {
    if !qemu_installed() {
        return;
    }
    let scratch = std::env::temp_dir().join(format!("atoll-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let text_file = scratch.join("input.txt");
    std::fs::write(&text_file, "line one\nline two\n").unwrap();
    let text = text_file.to_string_lossy().into_owned();
    let stdin: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut cases: Vec<(String, Vec<String>, Vec<u8>)> = Vec::new();
    let case = |flavor: Flavor, name: &str, args: &[&str], input: &[u8]| {
        let mut argv = vec![path_of(flavor, name)];
        argv.extend(args.iter().map(|arg| arg.to_string()));
        (format!("{flavor} {name} {args:?}"), argv, input.to_vec())
    };
    for &flavor in Flavor::ALL {
        cases.push(case(flavor, "hello", &["big", "world"], b""));
        cases.push(case(flavor, "exitcode", &["7"], b""));
        cases.push(case(flavor, "cat", &[], &stdin));
        cases.push(case(flavor, "segfault", &[], b""));
        cases.push(case(flavor, "threads", &[], b""));
    }
    for &flavor in Flavor::C {
        for name in ["futex", "mmap_edges", "fdcalls", "unixsock", "abort"] {
            cases.push(case(flavor, name, &[], b""));
        }
        cases.push(case(flavor, "readfile", &[&text], b""));
    }
    cases.push(case(Flavor::Rust, "fsops", &[], b""));
    for (label, argv, input) in cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let kvm = run_on("kvm", &argv, &input);
        let qemu = run_on("qemu", &argv, &input);
        assert_eq!(
            status(&qemu),
            status(&kvm),
            "{label}: status differs; under QEMU: {}",
            stderr(&qemu)
        );
        assert!(
            qemu.stdout == kvm.stdout,
            "{label}: stdout differs:\nQEMU: {}\nKVM: {}",
            stdout(&qemu),
            stdout(&kvm)
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn under_qemu_syscalls_enter_at_cpl_0_and_return_by_sysretq() {
    if !qemu_installed() {
        return;
    }
    // Every call traps (no rewriting), so each goes through LSTAR.
    let hello = path_of(Flavor::Musl, "hello");
    let output = run_on(
        "qemu",
        &["--no-rewrite", "--syscall-summary", &hello, "cpl"],
        b"",
    );
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "Hello, cpl\n");
    let summary = stderr(&output);
    let line = summary
        .lines()
        .find(|line| line.starts_with("atoll: trapped calls entered at CPL 0"))
        .unwrap_or_else(|| panic!("no CPL line in: {summary}"));
    let counts: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect();
    // "CPL 0 ...: N, at CPL 3: M" reads as [0, N, 3, M].
    assert_eq!(counts.len(), 4, "{line}");
    assert!(counts[1] > 0, "no call entered at CPL 0: {line}");
    assert_eq!(counts[3], 0, "a call entered at CPL 3 under QEMU: {line}");
}

#[test]
fn under_qemu_faults_from_ring_3_reach_the_ring_0_pads() {
    if !qemu_installed() {
        return;
    }
    let segfault = path_of(Flavor::Musl, "segfault");
    let output = run_on("qemu", &[&segfault], b"");
    assert_eq!(status(&output), 139, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("program killed by SIGSEGV: page fault"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn without_kvm_atoll_falls_back_to_qemu_and_says_so_once() {
    if !qemu_installed() {
        return;
    }
    let hello = path_of(Flavor::Glibc, "hello");
    let output = run_on(
        "auto",
        &["--kvm-device", "/nonexistent/kvm", &hello, "fallback"],
        b"",
    );
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "Hello, fallback\n");
    let said = stderr(&output);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("atoll: /nonexistent/kvm is missing: running on QEMU"),
        "{said}"
    );
}

#[test]
fn more_cores_than_qemu_runs_is_a_clear_error() {
    if !qemu_installed() {
        return;
    }
    let hello = path_of(Flavor::Musl, "hello");
    let output = run_on("qemu", &["-c", "2", "--overcommit", &hello], b"");
    assert_one_line_error(&output, 125, &["one vCPU", "-c 1"]);
}

/// Runs gdbtarget under `--gdb`, attaches `gdb -batch` with `commands`
/// (after connecting and loading the kernel's symbols as atoll says to),
/// and returns what gdb printed and how the isle ended.
fn gdb_session(commands: &[&str]) -> (String, Output) {
    let target = program(Flavor::Musl, "gdbtarget");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _slot = isle_slot();
    let mut isle = atoll()
        .args(["run", "--gdb", &port.to_string()])
        .arg(&target)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atoll starts");
    // atoll's first line says how to attach, kernel symbols included.
    let mut hint = String::new();
    let mut stderr_pipe = std::io::BufReader::new(isle.stderr.take().expect("piped"));
    std::io::BufRead::read_line(&mut stderr_pipe, &mut hint).expect("atoll's hint");
    let kernel = hint
        .split("add-symbol-file ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no kernel symbols in: {hint}"))
        .to_string();
    wait_for_port(port);
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", &format!("add-symbol-file {kernel}")]);
    for command in commands {
        gdb.args(["-ex", command]);
    }
    let session = gdb.arg(&target).output().expect("gdb runs");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut rest);
    let mut output = isle.wait_with_output().expect("atoll ends");
    output.stderr = rest.into_bytes();
    (
        String::from_utf8_lossy(&session.stdout).into_owned(),
        output,
    )
}

fn have_gdb() -> bool {
    let found = Command::new("gdb").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: no gdb (apt-get install gdb)");
    }
    found
}

#[test]
fn a_gdb_session_breaks_in_the_program_and_reads_a_variable() {
    if !qemu_installed() || !have_gdb() {
        return;
    }
    let (said, output) = gdb_session(&["break report", "continue", "print answer", "bt", "detach"]);
    assert!(said.contains("Breakpoint 1, report"), "gdb said: {said}");
    assert!(said.contains("$1 = 42"), "gdb said: {said}");
    assert!(said.contains("in main"), "no main in the backtrace: {said}");
    // Detached, the program runs on to its end.
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "answer 42\n");
}

#[test]
fn a_gdb_session_breaks_in_the_kernel_with_its_symbols() {
    if !qemu_installed() || !have_gdb() {
        return;
    }
    let (said, output) = gdb_session(&[
        "rbreak ^atoll_kernel::linux::syscall_dispatch",
        "continue",
        "bt 2",
        "delete",
        "detach",
    ]);
    assert!(
        said.contains("#0  0xffffffff")
            && said.contains("in atoll_kernel::linux::syscall_dispatch"),
        "gdb said: {said}"
    );
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "answer 42\n");
}

/// Waits until something listens on 127.0.0.1:`port`, without connecting
/// (a connection that comes and goes would count as a GDB session).
fn wait_for_port(port: u16) {
    let listening = format!("0100007F:{port:04X} 00000000:0000 0A");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if table.contains(&listening) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "QEMU never listened for GDB on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
