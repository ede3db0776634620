//! Syscall-site rewriting: what it must leave alone, threads racing through
//! the same rewritten wrappers, `--no-rewrite`, and how many of real
//! programs' calls it covers. (Every other isle test runs both with
//! rewriting and, in CI, again with ATOLL_NO_REWRITE=1.)

mod common;

use std::process::Output;

use common::*;

/// The figures of the `--syscall-summary` line that ends with `name`.
fn summary_figures(output: &Output, name: &str) -> (String, Vec<u64>) {
    let summary = stderr(output);
    let line = summary
        .lines()
        .find(|line| line.trim_end().ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("no {name} line in:\n{summary}"));
    let numbers = line
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    (line.to_string(), numbers)
}

/// (calls, rewritten) from the total line of a `--syscall-summary`.
fn totals(output: &Output) -> (u64, u64) {
    let (line, numbers) = summary_figures(output, " total");
    match numbers[..] {
        [calls, rewritten, trapped] => {
            assert_eq!(calls, rewritten + trapped, "{line}");
            (calls, rewritten)
        }
        _ => panic!("{line}"),
    }
}

#[test]
fn bytes_that_only_look_like_syscalls_are_left_alone() {
    assert_c_program_matches_native("syscall_bytes");
}

#[test]
fn a_site_no_pattern_fits_keeps_trapping_and_is_listed() {
    let path = program(Flavor::Musl, "syscall_bytes");
    let output = run(&["run", "--syscall-summary", path.to_str().unwrap()]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("a syscall no pattern fits: ok"));
    let summary = stderr(&output);
    if summary_says_not_rewritten(&summary) {
        return;
    }
    let trapping: Vec<&str> = summary
        .lines()
        .filter(|line| line.starts_with("atoll: trapping site 0x"))
        .collect();
    assert_eq!(trapping.len(), 1, "{summary}");
    let address = trapping[0]
        .trim_start_matches("atoll: trapping site ")
        .split(':')
        .next()
        .unwrap();
    assert!(
        summary.contains(&format!(
            "left trapping: syscall at {address} (no pattern fits)"
        )),
        "{summary}"
    );
}

#[test]
fn eight_threads_race_through_the_same_wrappers_on_two_cores() {
    for flavor in [Flavor::Glibc, Flavor::Musl] {
        for round in 0..10 {
            let output = run_program_with(
                flavor,
                "syscall_stress",
                &["-c", "2", "--overcommit", "--syscall-summary"],
            );
            assert_eq!(
                status(&output),
                0,
                "{flavor} round {round}: {}",
                stderr(&output)
            );
            assert!(stdout(&output).ends_with("ok\n"), "{}", stdout(&output));
            let (calls, rewritten) = totals(&output);
            if no_rewrite_asked() {
                assert_eq!(rewritten, 0);
            } else {
                assert!(
                    rewritten * 100 >= calls * 99,
                    "{flavor}: {rewritten} of {calls}"
                );
            }
        }
    }
}

#[test]
fn no_rewrite_makes_every_call_trap_with_the_same_output() {
    let path = program(Flavor::Glibc, "syscall_bytes");
    let path = path.to_str().unwrap();
    let rewritten = run(&["run", "--syscall-summary", path]);
    let trapping = run(&["run", "--no-rewrite", "--syscall-summary", path]);
    assert_eq!(status(&trapping), 0, "{}", stderr(&trapping));
    assert_eq!(stdout(&trapping), stdout(&rewritten));
    let (calls, through_sites) = totals(&trapping);
    assert!(calls > 0);
    assert_eq!(through_sites, 0);
}

/// Share of dynamic syscalls that went through rewritten sites, printed
/// for the record (the bench reports it too).
fn coverage(label: &str, output: &Output) -> f64 {
    assert_eq!(status(output), 0, "{label}: {}", stderr(output));
    let (calls, rewritten) = totals(output);
    let share = rewritten as f64 / calls as f64;
    eprintln!(
        "rewriting coverage, {label}: {rewritten} of {calls} calls ({:.1}%)",
        share * 100.0
    );
    share
}

/// At least 99% of the calls go through rewritten sites; none do when
/// ATOLL_NO_REWRITE is set (CI runs every test again that way).
fn assert_covered(label: &str, output: &Output) {
    let share = coverage(label, output);
    if no_rewrite_asked() {
        assert_eq!(
            totals(output).1,
            0,
            "{label}: rewritten under ATOLL_NO_REWRITE"
        );
    } else {
        assert!(share >= 0.99, "{label}: {:.1}%", share * 100.0);
    }
}

#[test]
fn rewriting_covers_the_calls_of_real_programs() {
    let glibc = run_program_with(Flavor::Glibc, "fileops", &["--syscall-summary"]);
    assert_covered("glibc static (fileops)", &glibc);
    let rust = run_program_with(Flavor::Rust, "threads", &["--syscall-summary"]);
    assert_covered("Rust std (threads)", &rust);
}

#[test]
fn rewriting_covers_the_calls_of_busybox() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    for applet in [
        &["ls", "-l", "/"][..],
        &["seq", "1000"],
        &["sha256sum", "Cargo.toml"],
    ] {
        let mut args = vec!["run", "--syscall-summary", busybox];
        args.extend_from_slice(applet);
        let output = run(&args);
        assert_covered(&format!("busybox {}", applet[0]), &output);
    }
}

/// A handler's return goes through the C library's signal trampoline
/// (`__restore_rt`: `mov $15,%rax; syscall`), whose .eh_frame entry starts
/// one byte before its code, as signal trampolines' do. Its rt_sigreturn
/// is rewritten like any call: a raise and its handler trap nowhere.
#[test]
fn a_handlers_return_through_the_signal_trampoline_is_rewritten() {
    if no_rewrite_asked() {
        return;
    }
    for &flavor in Flavor::C {
        let path = program(flavor, "signals");
        let output = run(&[
            "run",
            "--syscall-summary",
            path.to_str().unwrap(),
            "raise_runs_the_handler",
        ]);
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        let (line, numbers) = summary_figures(&output, "rt_sigreturn");
        assert!(
            matches!(numbers[..], [calls, _, rewritten, 0] if calls == 2 && rewritten == 2),
            "{flavor}: {line}"
        );
    }
}
