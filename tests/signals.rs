//! Signals delivered to handlers as Linux delivers them: each case of
//! `programs/c/signals.c` prints what its handler saw, natively and in an
//! isle, for musl and glibc, on this machine's backend and under QEMU's
//! TCG (where the kernel's syscall entry runs at CPL 0, as on hardware KVM).

mod common;

use common::*;

#[test]
fn handlers_masks_stacks_and_waits_behave_as_natively() {
    assert_c_program_matches_native("signals");
}

/// alarm, setitimer and timer_create, each case of `programs/c/timers.c`
/// compared with a native run: signals on time, with the siginfo, the
/// overruns and the thread Linux gives.
#[test]
fn timers_send_their_signals_as_natively() {
    assert_c_program_matches_native("timers");
}

/// A Rust std program's handlers, through the C library it links: raise,
/// pthread_kill to a std thread, setitimer while computing.
#[test]
fn a_rust_programs_handlers_run_as_natively() {
    let path = program(Flavor::Rust, "signals");
    let native = {
        let _slot = isle_slot();
        std::process::Command::new(&path).output().unwrap()
    };
    assert!(native.status.success(), "natively: {}", stderr(&native));
    let isle = run(&["run", path.to_str().unwrap()]);
    assert_eq!(status(&isle), 0, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native));
}

/// signalfd, `programs/c/signalfd.c` against a native run: blocked
/// signals read with their siginfo, blocking and not, through a dup, and
/// the fd's readiness as poll and epoll see it.
#[test]
fn signalfd_reads_signals_as_natively() {
    assert_c_program_matches_native("signalfd");
}

#[test]
fn handlers_behave_as_natively_under_qemu() {
    if require(qemu_system()).is_none() {
        return;
    }
    for &flavor in Flavor::C {
        let native = {
            let _slot = isle_slot();
            std::process::Command::new(program(flavor, "signals"))
                .output()
                .unwrap()
        };
        let _slot = isle_slot();
        let isle = atoll()
            .env("ATOLL_BACKEND", "qemu")
            .arg("run")
            .arg(program(flavor, "signals"))
            .output()
            .unwrap();
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
    }
}

/// A thread spinning in program code on a CPU of its own never enters the
/// kernel: the monitor interrupts its CPU to deliver the signal.
#[test]
fn a_signal_reaches_a_thread_spinning_on_another_cpu() {
    let case = "a_spinning_thread_is_interrupted";
    for &flavor in Flavor::C {
        let output = run(&[
            "run",
            "-c",
            "2",
            "--overcommit",
            program(flavor, "signals").to_str().unwrap(),
            case,
        ]);
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        assert_eq!(
            stdout(&output),
            "spinning thread: stopped by its handler=1\n",
            "{flavor}"
        );
    }
}

/// Waits until a thread of process `pid` sleeps reading a pipe.
fn wait_until_a_thread_reads_a_pipe(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reading = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("wchan"))
                    .is_ok_and(|wchan| wchan.contains("pipe_read"))
            });
        if reading {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never blocked reading its stdin"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Starts `name ARGS` (in an isle or natively), waits for its "ready"
/// and until it blocks reading its stdin, sends `signals` to the process;
/// what it printed after, and its end.
fn signalled(
    flavor: Flavor,
    name: &str,
    args: &[&str],
    in_isle: bool,
    signals: &[i32],
) -> (String, std::process::Output) {
    use std::io::BufRead;
    let _slot = isle_slot();
    let probe = program(flavor, name);
    let mut command = if in_isle {
        let mut command = atoll();
        command.arg("run").arg(&probe);
        command
    } else {
        std::process::Command::new(&probe)
    };
    // Its stdin: a pipe kept open and never written, to block in.
    let mut child = command
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n", "{flavor}");
    if flavor != Flavor::Go {
        // Sent once it blocks reading stdin (natively, or on the atoll
        // worker serving the read), so the read is what the signal ends.
        wait_until_a_thread_reads_a_pipe(child.id());
    }
    for &signal in signals {
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    (rest, child.wait_with_output().unwrap())
}

/// Ctrl-C and `atoll stop` signal atoll: the program gets the signal, as
/// a native one gets it from the shell; its handler runs, or with none the
/// default action ends it.
#[test]
fn signals_sent_to_atoll_reach_the_program() {
    use std::os::unix::process::ExitStatusExt;
    let signalled = |flavor: Flavor, in_isle: bool, signals: &[i32]| {
        signalled(
            flavor,
            "signals",
            &["waits_for_sigint_from_outside"],
            in_isle,
            signals,
        )
    };
    for &flavor in Flavor::C {
        // A resize (SIGWINCH, ignored by default) goes by; Ctrl-C ends the
        // read.
        let native = signalled(flavor, false, &[libc::SIGWINCH, libc::SIGINT]);
        assert_eq!(
            native.0, "SIGINT from outside: si_code 0, read -1 Interrupted system call\n",
            "{flavor} natively"
        );
        let isle = signalled(flavor, true, &[libc::SIGWINCH, libc::SIGINT]);
        assert_eq!(isle.0, native.0, "{flavor}: {}", stderr(&isle.1));
        assert_eq!(status(&isle.1), 0, "{flavor}: {}", stderr(&isle.1));

        // No handler for SIGTERM, SIGQUIT or SIGUSR1: natively the process
        // dies of it; atoll exits as a shell reports that, quietly
        // (whoever sent it knows).
        for signal in [libc::SIGTERM, libc::SIGQUIT, libc::SIGUSR1] {
            let native = signalled(flavor, false, &[signal]);
            assert_eq!(native.1.status.signal(), Some(signal), "{flavor}");
            let isle = signalled(flavor, true, &[signal]);
            assert_eq!(
                status(&isle.1),
                128 + signal,
                "{flavor}: {}",
                stderr(&isle.1)
            );
            assert_eq!(stderr(&isle.1), "", "{flavor}");
        }
    }
}

/// Go's os/signal.Notify catches the Ctrl-C sent to atoll while a
/// goroutine computes, as natively.
#[test]
fn a_go_program_catches_ctrl_c_sent_to_atoll() {
    let native = signalled(Flavor::Go, "notify", &[], false, &[libc::SIGINT]);
    assert_eq!(native.0, "caught interrupt\n", "natively");
    let isle = signalled(Flavor::Go, "notify", &[], true, &[libc::SIGINT]);
    assert_eq!(isle.0, native.0, "{}", stderr(&isle.1));
    assert_eq!(status(&isle.1), 0, "{}", stderr(&isle.1));
}

#[test]
fn a_signal_without_a_handler_ends_the_isle_as_linux_would() {
    // SIGTERM sent to a created thread: no handler, so the whole program
    // ends with 128 + 15, whichever thread it was sent to.
    for &flavor in Flavor::C {
        let output = run_program(flavor, "signals", &["default_action_of_sigterm"]);
        assert_one_line_error(&output, 143, &["killed by SIGTERM"]);
    }
}
