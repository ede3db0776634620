//! Memory like Linux's (issue 13): without -m a program gets what a native
//! process could, reservations are address space, protections hold, -m is
//! a limit, and memory goes back to the host.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::*;

fn native(flavor: Flavor, name: &str, args: &[&str]) -> Output {
    let _slot = isle_slot();
    Command::new(program(flavor, name))
        .args(args)
        .output()
        .expect("runs natively")
}

/// Same status and stdout as natively, nothing from atoll on stderr.
fn assert_like_native(flavor: Flavor, name: &str, flags: &[&str], args: &[&str]) {
    let native = native(flavor, name, args);
    let path = program(flavor, name);
    let mut all = vec!["run"];
    all.extend_from_slice(flags);
    all.push(path.to_str().expect("utf-8 path"));
    all.extend_from_slice(args);
    let isle = run(&all);
    let what = format!("{flavor} {name} {}", args.join(" "));
    assert_eq!(
        isle.status.code(),
        native.status.code().or(Some(139)),
        "{what}: {}",
        stderr(&isle)
    );
    assert_eq!(stdout(&isle), stdout(&native), "{what}");
    // A program's own fault is reported; a kernel fault would be a bug.
    assert!(
        !stderr(&isle).contains("kernel"),
        "{what}: {}",
        stderr(&isle)
    );
}

#[test]
fn big_allocations_succeed_without_a_memory_flag() {
    let alloc = program(Flavor::Glibc, "alloc");
    for size in ["64", "1024"] {
        let output = run(&["run", alloc.to_str().unwrap(), "malloc", size]);
        assert_eq!(status(&output), 0, "{size} MiB: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("alloc malloc {size} MiB ok\n"));
    }
}

#[test]
fn past_the_limit_malloc_returns_null_and_the_isle_exits_normally() {
    for flavor in [Flavor::Musl, Flavor::Glibc] {
        let alloc = program(flavor, "alloc");
        let output = run(&["run", "-m", "64M", alloc.to_str().unwrap(), "malloc", "200"]);
        assert_eq!(status(&output), 1, "{flavor}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("malloc: errno=12"),
            "{flavor}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn sixty_four_glibc_threads_with_default_stacks_are_created_and_joined() {
    let native = native(Flavor::Glibc, "many_threads", &["64"]);
    assert_eq!(stdout(&native), "created 64 joined 64\n");
    let output = run_program(Flavor::Glibc, "many_threads", &["64"]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), stdout(&native));
}

#[test]
fn a_multi_gib_reservation_is_made_usable_and_read_only_is_enforced() {
    // QEMU's microvm keeps RAM below 3 GiB, so its isles have 2 GiB.
    let gib = if machine_backend() == "kvm" { "4" } else { "1" };
    for flavor in [Flavor::Musl, Flavor::Glibc] {
        assert_like_native(flavor, "reserve", &[], &[gib]);
        assert_like_native(flavor, "reserve", &["-m", "64M"], &[gib]);
    }
}

/// Resident memory of process `pid` and its children (QEMU maps guest
/// RAM too), in MiB.
fn resident_mib(pid: u32) -> u64 {
    let rss = |pid: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    (rss(&pid.to_string()) + children.split_whitespace().map(rss).sum::<u64>()) >> 10
}

/// [`resident_mib`] once it holds still (the host populates memory ahead
/// of the isle on a thread of its own, which may still be at it): two
/// samples 100 ms apart within 8 MiB, or the last after 5 s.
fn settled_resident_mib(pid: u32) -> u64 {
    let mut last = resident_mib(pid);
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = resident_mib(pid);
        if now.abs_diff(last) <= 8 {
            return now;
        }
        last = now;
    }
    last
}

#[test]
fn unmapped_and_discarded_memory_goes_back_to_the_host() {
    let _slot = isle_slot();
    let mut child = atoll()
        .args(["run"])
        .arg(program(Flavor::Musl, "give_back"))
        .arg("512")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atoll starts");
    let pid = child.id();
    let mut input = child.stdin.take().expect("piped");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next = |expected: &str| {
        let line = lines.next().expect("a line").expect("utf-8");
        assert_eq!(line, expected);
        let resident = settled_resident_mib(pid);
        input.write_all(b"\n").expect("the isle reads");
        resident
    };
    let touched = next("touched");
    let unmapped = next("unmapped");
    let touched_again = next("touched");
    let discarded = next("discarded");
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    for (what, before, after) in [
        ("munmap", touched, unmapped),
        ("MADV_DONTNEED", touched_again, discarded),
    ] {
        assert!(
            before >= 512 && after + 400 <= before,
            "{what}: {before} MiB resident before, {after} MiB after"
        );
    }
}
