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

#[test]
fn a_signal_without_a_handler_ends_the_isle_as_linux_would() {
    // SIGTERM sent to a created thread: no handler, so the whole program
    // ends with 128 + 15, whichever thread it was sent to.
    for &flavor in Flavor::C {
        let output = run_program(flavor, "signals", &["default_action_of_sigterm"]);
        assert_one_line_error(&output, 143, &["killed by SIGTERM"]);
    }
}
