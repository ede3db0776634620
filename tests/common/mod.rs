//! Shared helpers for the tests that boot isles.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

pub use atoll_testprogs::{program, Flavor};

/// Every isle pins a core and polls: on a 2-core machine, one at a time.
static ISLE_SLOT: Mutex<()> = Mutex::new(());

/// Holds the right to boot an isle until dropped.
pub fn isle_slot() -> MutexGuard<'static, ()> {
    ISLE_SLOT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The backend this machine runs isles on: atoll's KVM monitor where there
/// is a KVM device, else QEMU's TCG (as `--backend auto` chooses).
pub fn machine_backend() -> &'static str {
    if std::path::Path::new("/dev/kvm").exists() {
        "kvm"
    } else {
        "qemu"
    }
}

/// `atoll` with a clean, predictable environment, on this machine's
/// backend named outright (so `auto` doesn't announce its choice).
pub fn atoll() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_atoll"));
    command
        .env_remove("ATOLL_LOG")
        .env_remove("ATOLL_KVM_DEVICE")
        .env("ATOLL_BACKEND", machine_backend());
    command
}

/// Runs `atoll ARGS` with `stdin` piped in; waits for it.
pub fn run_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let _slot = isle_slot();
    let mut child = atoll()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atoll starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may exit without reading everything: that's its right.
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("atoll runs");
    writer.join().expect("stdin writer finishes");
    output
}

/// Runs `atoll ARGS` with empty stdin.
pub fn run(args: &[&str]) -> Output {
    run_with_input(args, b"")
}

/// `atoll run PROGRAM ARGS` for a test program.
pub fn run_program(flavor: Flavor, name: &str, args: &[&str]) -> Output {
    let path = program(flavor, name);
    let mut all = vec!["run", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run(&all)
}

/// `atoll run FLAGS PROGRAM` for a test program.
pub fn run_program_with(flavor: Flavor, name: &str, flags: &[&str]) -> Output {
    let path = program(flavor, name);
    let mut all = vec!["run"];
    all.extend_from_slice(flags);
    all.push(path.to_str().expect("utf-8 path"));
    run(&all)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status, or a panic naming what happened instead.
pub fn status(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("atoll was killed: {:?}\n{}", output.status, stderr(output)))
}

/// Asserts a failure with `code` and exactly one stderr line containing every `needle`.
pub fn assert_one_line_error(output: &Output, code: i32, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(status(output), code, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(err.starts_with("atoll: "), "{err}");
}

/// Runs C test program `name` natively and in an isle, in every C flavor,
/// and asserts the same status 0, the same stdout and a quiet stderr.
pub fn assert_c_program_matches_native(name: &str) {
    for &flavor in Flavor::C {
        let native = {
            let _slot = isle_slot();
            Command::new(program(flavor, name)).output().unwrap()
        };
        assert!(
            native.status.success(),
            "{flavor} natively: {}",
            stderr(&native)
        );
        let isle = run_program(flavor, name, &[]);
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
        assert_eq!(stderr(&isle), "", "{flavor}");
    }
}
