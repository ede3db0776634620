//! The QEMU backend: the same kernel and queues under QEMU's TCG, where the
//! kernel takes its hardware-KVM paths (LSTAR at CPL 0, `sysretq`,
//! exceptions from ring 3 into ring 0). Programs give the same output and
//! status as under our KVM monitor; without /dev/kvm atoll falls back to
//! QEMU by itself. (GDB on both backends: tests/gdb.rs.)
//!
//! The selection: the foundation programs (args, stdin, stdout, exit
//! statuses, faults), the offload programs (files, fds, Unix sockets) and
//! the thread programs on one and two vCPUs. Not here: programs that
//! measure speed, and CPU-bound threads that rely on preemption (QEMU
//! isles have none).

mod common;

use std::process::Output;

use common::*;

fn qemu_installed() -> bool {
    require(qemu_system()).is_some()
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
    if !qemu_installed() || !require_kvm() {
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
        // The same on two vCPUs (this host has one core for isles: shared).
        let mut two = case(flavor, "threads", &[], b"");
        two.0 += " on 2 vCPUs";
        two.1
            .splice(0..0, ["-c", "2", "--overcommit"].map(String::from));
        cases.push(two);
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
    let output = run_on("qemu", &["-c", "9", "--overcommit", &hello], b"");
    assert_one_line_error(&output, 125, &["at most 8 vCPUs", "-c 8"]);
}
