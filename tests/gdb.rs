//! `atoll run --gdb PORT`: a real gdb in batch mode against each backend's
//! stub (QEMU's own; ours for KVM), on the gdbtarget program: a breakpoint
//! in the program, a variable read, steps, the backtrace, a breakpoint in
//! the kernel with the symbols atoll writes out.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::*;

/// gdb, and QEMU for its backend.
fn ready(backend: &str) -> bool {
    let qemu = if backend == "qemu" {
        qemu_system().map(drop)
    } else {
        Ok(())
    };
    require(tool("gdb", "gdb").and(qemu)).is_some()
}

/// Runs gdbtarget under `--gdb`, attaches `gdb -batch` with `commands`
/// (after connecting and loading the kernel's symbols as atoll says to),
/// and returns what gdb printed and how the isle ended.
fn gdb_session(backend: &str, commands: &[&str]) -> (String, Output) {
    let target = program(Flavor::Musl, "gdbtarget");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _slot = isle_slot();
    let mut isle = atoll()
        .args(["run", "--backend", backend, "--gdb", &port.to_string()])
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
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&session.stdout),
        String::from_utf8_lossy(&session.stderr)
    );
    (said, output)
}

fn breaks_in_the_program_and_reads_a_variable(backend: &str) {
    if !ready(backend) {
        return;
    }
    let (said, output) = gdb_session(
        backend,
        &[
            "break report",
            "continue",
            "print answer",
            "bt",
            "stepi",
            "info registers rip",
            "detach",
        ],
    );
    assert!(
        said.contains("Breakpoint 1, report"),
        "{backend}: gdb said: {said}"
    );
    assert!(said.contains("$1 = 42"), "{backend}: gdb said: {said}");
    assert!(
        said.contains("in main"),
        "{backend}: no main in the backtrace: {said}"
    );
    // One instruction on, still in report (not in a fault pad).
    assert!(
        said.contains("<report+"),
        "{backend}: stepi went astray: {said}"
    );
    // Detached, the program runs on to its end.
    assert_eq!(status(&output), 0, "{backend}: {}", stderr(&output));
    assert_eq!(stdout(&output), "answer 42\n");
}

fn breaks_in_the_kernel_with_its_symbols(backend: &str) {
    if !ready(backend) {
        return;
    }
    let (said, output) = gdb_session(
        backend,
        &[
            "rbreak ^atoll_kernel::linux::syscall_dispatch",
            "continue",
            "bt 1",
            "delete",
            "continue",
        ],
    );
    assert!(
        said.contains("#0  0xffffffff")
            && said.contains("in atoll_kernel::linux::syscall_dispatch"),
        "{backend}: gdb said: {said}"
    );
    // Our stub reports the exit; QEMU's connection just closes when atoll
    // ends QEMU.
    let ended = if backend == "kvm" {
        "exited normally"
    } else {
        "Remote connection closed"
    };
    assert!(said.contains(ended), "{backend}: gdb said: {said}");
    assert_eq!(status(&output), 0, "{backend}: {}", stderr(&output));
    assert_eq!(stdout(&output), "answer 42\n");
}

#[test]
fn kvm_a_breakpoint_in_the_program_a_variable_and_a_step() {
    if require_kvm() {
        breaks_in_the_program_and_reads_a_variable("kvm");
    }
}

#[test]
fn kvm_a_breakpoint_in_the_kernel() {
    if require_kvm() {
        breaks_in_the_kernel_with_its_symbols("kvm");
    }
}

#[test]
fn qemu_a_breakpoint_in_the_program_a_variable_and_a_step() {
    breaks_in_the_program_and_reads_a_variable("qemu");
}

#[test]
fn qemu_a_breakpoint_in_the_kernel() {
    breaks_in_the_kernel_with_its_symbols("qemu");
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
