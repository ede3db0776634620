//! Issue 13: memory backed on demand, first touches, and the monitor's own
//! footprint beyond guest RAM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use atoll_testprogs::{program, Flavor};

use super::measure::{
    isle, isle_with, median_figure, median_wall_ms, native_on, row, strip_ansi, value_after,
    wall_ms, ATOLL,
};

/// RSS of the atoll process beyond the guest RAM it holds, and the guest
/// RAM resident, in MiB, while an isle is alive (its program blocks reading
/// stdin) and after its reserves have been populated in the background.
pub fn vmm_overhead_mib(memory: &str) -> (f64, f64) {
    let mut child = Command::new(ATOLL)
        .args(["run", "-m", memory])
        .arg(program(Flavor::Musl, "cat"))
        .env("ATOLL_LOG", "atoll_vmm=debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atoll starts");
    let mut log = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let (base, size) = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut log, &mut line).expect("log") == 0 {
            panic!("atoll exited before entering the isle");
        }
        let plain = strip_ansi(&line);
        if let (Some(base), Some(size)) = (
            value_after(&plain, "host_base="),
            value_after(&plain, "size="),
        ) {
            break (base, size);
        }
    };
    std::thread::sleep(Duration::from_millis(1500));
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.id())).expect("smaps");
    drop(child.stdin.take());
    child.wait().expect("atoll exits");
    let (mut total_kib, mut guest_kib) = (0.0, 0.0);
    let mut in_guest = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, _)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let start = u64::from_str_radix(start, 16).unwrap_or(0);
            in_guest = (base..base + size).contains(&start);
        } else if first == "Rss:" {
            let kib: f64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            total_kib += kib;
            if in_guest {
                guest_kib += kib;
            }
        }
    }
    ((total_kib - guest_kib) / 1024.0, guest_kib / 1024.0)
}

/// A row for `touch 256` (256 MiB mapped after `delay_ms`, one write per
/// page) in an isle with `flags` against natively on the last core.
pub fn first_touch_row(what: &str, touch: &Path, flags: &[&str], delay_ms: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    row(
        what,
        median_figure(
            || isle_with(flags, touch, &["256", delay_ms]),
            "touch_cycles",
            false,
        ),
        median_figure(
            || native_on(cores.checked_sub(1), touch, &["256"]),
            "touch_cycles",
            false,
        ),
        "",
        "at most 0.05x",
    );
}

/// Issue 13's table: memory without -m, backed on demand
/// (`cargo bench -p atoll-cli --bench isle_vs_native -- --memory`).
pub fn memory_section() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last_core = cores.checked_sub(1);
    println!("\n| memory (no -m) | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    let hello = program(Flavor::Musl, "hello");
    row(
        "`atoll run hello` wall time (median), ms",
        wall_ms(|| isle(&hello)),
        wall_ms(|| Command::new(&hello)),
        "",
        "no slower than before",
    );
    let touch = program(Flavor::Glibc, "touch");
    first_touch_row(
        "first write to each page of a fresh 256 MiB mapping after 300 ms, cycles per page",
        &touch,
        &[],
        "300",
    );
    let alloc = program(Flavor::Glibc, "alloc");
    row(
        "malloc 1 GiB, touch every page, free, twice: wall time, ms",
        median_wall_ms(3, || isle_with(&[], &alloc, &["malloc", "1024"])),
        median_wall_ms(3, || native_on(last_core, &alloc, &["malloc", "1024"])),
        "",
        "report",
    );
    let many_threads = program(Flavor::Glibc, "many_threads");
    row(
        "64 glibc threads (8 MiB stacks) created and joined, ms",
        median_figure(
            || isle_with(&[], &many_threads, &["64"]),
            "threads_ms",
            true,
        ),
        median_figure(
            || native_on(last_core, &many_threads, &["64"]),
            "threads_ms",
            true,
        ),
        "",
        "report",
    );
}
