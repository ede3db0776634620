//! Real multi-threaded programs (pthreads with musl and glibc, Rust std)
//! in isles of one and two vCPUs: they must print exactly what they print
//! natively, exit as natively, and keep stderr empty.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One vCPU, then two sharing whatever cores there are (CI has two).
const ONE_CORE: &[&str] = &["-c", "1"];
const TWO_CORES: &[&str] = &["-c", "2", "--overcommit"];

/// Far longer than any of these programs takes, natively or in an isle.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `command` to completion, or kills it after `DEADLINE` and panics
/// naming `what`: a deadlocked isle must fail the test, not hang it.
fn output_within_deadline(mut command: Command, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!(
                "{what}: still running after {DEADLINE:?}, killed\nstdout:\n{out}\nstderr:\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The program run directly on the host.
fn native(flavor: Flavor, name: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program(flavor, name));
    command.args(args);
    // Not an isle, but it should not share its cores with one either.
    let _slot = isle_slot();
    output_within_deadline(command, &format!("{flavor} {name} natively"))
}

/// `atoll run OPTIONS PROGRAM ARGS`.
fn isle(flavor: Flavor, name: &str, options: &[&str], args: &[&str]) -> Output {
    let mut command = atoll();
    command
        .arg("run")
        .args(options)
        .arg(program(flavor, name))
        .args(args);
    let _slot = isle_slot();
    output_within_deadline(
        command,
        &format!("{flavor} {name} in an isle with {}", options.join(" ")),
    )
}

/// Runs `name` natively, then in an isle with `cores`: same stdout, both
/// exit 0, the isle stays quiet.
fn assert_same_as_native(flavor: Flavor, name: &str, cores: &[&str], args: &[&str]) {
    let what = [&[flavor.label(), name], args].concat().join(" ");
    let native = native(flavor, name, args);
    assert!(
        native.status.success(),
        "{what} natively: {:?}\n{}",
        native.status,
        stderr(&native)
    );
    let isle = isle(flavor, name, cores, args);
    let cores = cores.join(" ");
    assert_eq!(
        status(&isle),
        0,
        "{what} with {cores}: stdout:\n{}\nstderr:\n{}",
        stdout(&isle),
        stderr(&isle)
    );
    assert_eq!(stdout(&isle), stdout(&native), "{what} with {cores}");
    assert_eq!(stderr(&isle), "", "{what} with {cores}");
}

#[test]
fn musl_pthreads_on_one_core() {
    assert_same_as_native(Flavor::Musl, "threads", ONE_CORE, &[]);
}

#[test]
fn musl_pthreads_on_two_cores() {
    assert_same_as_native(Flavor::Musl, "threads", TWO_CORES, &[]);
}

#[test]
fn glibc_pthreads_on_one_core() {
    assert_same_as_native(Flavor::Glibc, "threads", ONE_CORE, &[]);
}

#[test]
fn glibc_pthreads_on_two_cores() {
    assert_same_as_native(Flavor::Glibc, "threads", TWO_CORES, &[]);
}

#[test]
fn rust_std_threads_on_one_core() {
    assert_same_as_native(Flavor::Rust, "threads", ONE_CORE, &[]);
}

#[test]
fn rust_std_threads_on_two_cores() {
    assert_same_as_native(Flavor::Rust, "threads", TWO_CORES, &[]);
}

/// 64 threads fight over one mutex for 10^6 increments, then 100,000 items
/// go through a condvar queue, 20 times in a row alternating one and two vCPUs.
///
/// `memory` must hold every thread's stack: the isle maps all the memory it
/// hands out (no overcommit), and glibc gives each thread a stack as large
/// as RLIMIT_STACK (the main stack, up to 8 MiB); musl gives 128 KiB.
fn stress_twenty_times(flavor: Flavor, memory: &str) {
    let native = native(flavor, "stress", &[]);
    assert!(
        native.status.success(),
        "{flavor} stress natively: {native:?}"
    );
    let expected = stdout(&native);
    assert!(
        expected.contains("counter 1000000 of 1000000, overlaps 0"),
        "{expected}"
    );
    for run in 0..20 {
        let cores = if run % 2 == 0 { ONE_CORE } else { TWO_CORES };
        let args = [&["-m", memory], cores].concat();
        let isle = isle(flavor, "stress", &args, &[]);
        let what = format!("{flavor} stress run {run} with {}", args.join(" "));
        assert_eq!(
            status(&isle),
            0,
            "{what}: stdout:\n{}\nstderr:\n{}",
            stdout(&isle),
            stderr(&isle)
        );
        assert_eq!(stdout(&isle), expected, "{what}");
        assert_eq!(stderr(&isle), "", "{what}");
    }
}

#[test]
fn musl_stress_twenty_times() {
    stress_twenty_times(Flavor::Musl, "64M");
}

#[test]
fn glibc_stress_twenty_times() {
    // 64 glibc stacks of 8 MiB plus up to 8 malloc arenas of 64 MiB per
    // core, all PROT_NONE reservations on Linux but real memory in an isle.
    stress_twenty_times(Flavor::Glibc, "2G");
}

/// A write just below a thread's stack lands in its guard page: SIGSEGV,
/// natively and in an isle alike.
fn guard_page_is_enforced(flavor: Flavor, cores: &[&str]) {
    let expected = "guard size nonzero: yes\ntouching guard\n";
    let native = native(flavor, "guard", &[]);
    assert_eq!(
        native.status.signal(),
        Some(libc::SIGSEGV),
        "{flavor} guard natively: {native:?}"
    );
    assert_eq!(stdout(&native), expected, "{flavor} guard natively");
    let isle = isle(flavor, "guard", cores, &[]);
    let what = format!("{flavor} guard with {}", cores.join(" "));
    assert!(
        !stdout(&isle).contains("wrote to the guard page"),
        "{what}: the write below the thread's stack went through (exit {:?}): \
         the guard page is not enforced\nstdout:\n{}stderr:\n{}",
        isle.status.code(),
        stdout(&isle),
        stderr(&isle)
    );
    assert_one_line_error(&isle, 139, &["SIGSEGV"]);
    assert_eq!(stdout(&isle), expected, "{what}");
}

#[test]
fn musl_thread_stack_guard_page_faults_on_one_core() {
    guard_page_is_enforced(Flavor::Musl, ONE_CORE);
}

#[test]
fn musl_thread_stack_guard_page_faults_on_two_cores() {
    guard_page_is_enforced(Flavor::Musl, TWO_CORES);
}

#[test]
fn glibc_thread_stack_guard_page_faults_on_one_core() {
    guard_page_is_enforced(Flavor::Glibc, ONE_CORE);
}

#[test]
fn glibc_thread_stack_guard_page_faults_on_two_cores() {
    guard_page_is_enforced(Flavor::Glibc, TWO_CORES);
}

/// Vector (and, where offered, AVX-512 and AMX tile) registers stay each
/// thread's own across switches: the save area is sized from the XCR0 the
/// CPU really runs with. The isle checks what its CPUID offers, never more
/// than a native run: under KVM the host's vector sets (kvm-pvm's CPUID
/// hides AMX, though the host has it), under QEMU's TCG AVX, no AVX-512.
fn xstate_kept_across_switches(flavor: Flavor, cores: &[&str]) {
    let native = native(flavor, "xstate_threads", &[]);
    assert!(native.status.success(), "natively: {}", stdout(&native));
    let isle = isle(flavor, "xstate_threads", cores, &[]);
    assert_eq!(
        status(&isle),
        0,
        "{flavor} with {cores:?}: {}{}",
        stdout(&isle),
        stderr(&isle)
    );
    assert_eq!(stderr(&isle), "", "{flavor} with {cores:?}");
    let checked = |output: &Output| -> Vec<String> {
        let line = stdout(output);
        let sets = line
            .trim_end()
            .strip_prefix("kept across switches by 4 threads:")
            .unwrap_or_else(|| panic!("unexpected output: {line}"))
            .to_owned();
        sets.split_whitespace().map(str::to_owned).collect()
    };
    let in_isle = checked(&isle);
    let natively = checked(&native);
    assert!(
        in_isle.iter().all(|set| natively.contains(set)),
        "{in_isle:?} vs {natively:?}"
    );
    let vector_sets = |sets: &[String]| -> Vec<String> {
        sets.iter().filter(|set| *set != "amx").cloned().collect()
    };
    if machine_backend() == "kvm" {
        assert_eq!(
            vector_sets(&in_isle),
            vector_sets(&natively),
            "{flavor} with {cores:?}"
        );
    } else {
        // QEMU 7.2's TCG models AVX and AVX2 (`-cpu max`).
        assert!(in_isle.contains(&"avx".to_owned()), "{in_isle:?}");
    }
}

#[test]
fn musl_xstate_kept_across_switches_on_one_core() {
    xstate_kept_across_switches(Flavor::Musl, ONE_CORE);
}

#[test]
fn musl_xstate_kept_across_switches_on_two_cores() {
    xstate_kept_across_switches(Flavor::Musl, TWO_CORES);
}

#[test]
fn glibc_xstate_kept_across_switches_on_one_core() {
    xstate_kept_across_switches(Flavor::Glibc, ONE_CORE);
}

#[test]
fn glibc_xstate_kept_across_switches_on_two_cores() {
    xstate_kept_across_switches(Flavor::Glibc, TWO_CORES);
}
