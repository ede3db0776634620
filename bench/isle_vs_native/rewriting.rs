//! Issue 5: syscalls through rewritten sites against trapping, and how
//! many of busybox's calls go through them.

use std::path::Path;
use std::process::Command;

use atoll_testprogs::{program, Flavor};

use super::measure::{isle_with, median_figure, native_on, row, ATOLL};

/// Issue 5's table: syscalls through rewritten sites.
pub fn rewrite_section() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last_core = cores.checked_sub(1);
    println!("\n| syscall rewriting | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    let getpid = program(Flavor::Glibc, "getpid_loop");
    let native_getpid = median_figure(
        || native_on(last_core, &getpid, &[]),
        "getpid_cycles",
        false,
    );
    let rewritten_getpid = median_figure(|| isle_with(&[], &getpid, &[]), "getpid_cycles", false);
    let trapping_getpid = median_figure(
        || isle_with(&["--no-rewrite"], &getpid, &[]),
        "getpid_cycles",
        false,
    );
    row(
        "getpid, cycles per call",
        rewritten_getpid,
        native_getpid,
        "",
        "at most 0.1x",
    );
    row(
        "getpid with --no-rewrite (every call traps), cycles per call",
        trapping_getpid,
        native_getpid,
        "",
        "report",
    );
    let clock = program(Flavor::Glibc, "clock_loop");
    row(
        "clock_gettime(CLOCK_MONOTONIC) through glibc, cycles per call",
        median_figure(
            || isle_with(&[], &clock, &[]),
            "clock_gettime_cycles",
            false,
        ),
        median_figure(
            || native_on(last_core, &clock, &[]),
            "clock_gettime_cycles",
            false,
        ),
        "",
        "at most 0.5x",
    );

    // The foundation's write benchmark, rewritten against trapping.
    let write_loop = program(Flavor::Glibc, "write_loop");
    let sink =
        std::env::temp_dir().join(format!("atoll-bench-rewrite-sink-{}", std::process::id()));
    let to_sink = |mut command: Command| {
        command.stdout(std::fs::File::create(&sink).expect("sink"));
        command
    };
    let rewritten_write = median_figure(
        || to_sink(isle_with(&[], &write_loop, &[])),
        "write_cycles",
        true,
    );
    let trapping_write = median_figure(
        || to_sink(isle_with(&["--no-rewrite"], &write_loop, &[])),
        "write_cycles",
        true,
    );
    let native_write = median_figure(
        || to_sink(native_on(last_core, &write_loop, &[])),
        "write_cycles",
        true,
    );
    println!(
        "| write(1, buf, 1) to a file, cycles per call: rewritten / --no-rewrite / native | {rewritten_write:.0} / {trapping_write:.0} | {native_write:.0} | {:.2}x; {:.1}x better than trapping | at least 3x better than before |",
        rewritten_write / native_write,
        trapping_write / rewritten_write
    );
    let _ = std::fs::remove_file(&sink);

    // Busybox applets as the file tests run them, on a scratch directory.
    let busybox = "/bin/busybox";
    if !Path::new(busybox).exists() {
        println!("| busybox coverage | skipped: no /bin/busybox | - | - | at least 99% |");
        return;
    }
    let dir = std::env::temp_dir().join(format!("atoll-bench-busybox-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).expect("scratch directory");
    let text: String = (1..=2000)
        .map(|n| format!("line {} of {}\n", n * 7919 % 2000, n))
        .collect();
    std::fs::write(dir.join("a.txt"), &text).expect("text file");
    std::fs::write(dir.join("sub/b.txt"), &text[..1000]).expect("text file");
    let applets: &[&[&str]] = &[
        &["cat", "a.txt"],
        &["head", "-n", "5", "a.txt"],
        &["tail", "-n", "5", "a.txt"],
        &["wc", "a.txt"],
        &["sort", "a.txt"],
        &["uniq", "a.txt"],
        &["cut", "-d", " ", "-f", "2", "a.txt"],
        &["tr", "a-z", "A-Z"],
        &["grep", "-c", "of 1", "a.txt"],
        &["sed", "s/line/LINE/", "a.txt"],
        &["awk", "{ n += $2 } END { print n }", "a.txt"],
        &["find", "."],
        &["ls", "-l"],
        &["du", "-a"],
        &["stat", "a.txt"],
        &["cp", "a.txt", "c.txt"],
        &["mv", "c.txt", "d.txt"],
        &["rm", "d.txt"],
        &["mkdir", "-p", "e/f"],
        &["ln", "-sf", "a.txt", "link"],
        &["touch", "a.txt"],
        &["chmod", "644", "a.txt"],
        &["md5sum", "a.txt"],
        &["sha256sum", "a.txt"],
        &["od", "-c", "sub/b.txt"],
        &["xxd", "sub/b.txt"],
        &["dd", "if=a.txt", "of=g.txt", "bs=512"],
        &["gzip", "-k", "-f", "a.txt"],
        &["gunzip", "-c", "a.txt.gz"],
        &["tar", "cf", "h.tar", "sub"],
        &["seq", "1000"],
        &["printf", "%s %d\\n", "x", "7"],
        &["expr", "6", "*", "7"],
    ];
    let (mut calls, mut rewritten) = (0, 0);
    for applet in applets {
        let output = Command::new(ATOLL)
            .args(["run", "--syscall-summary", busybox])
            .args(*applet)
            .current_dir(&dir)
            .stdin(std::fs::File::open(dir.join("a.txt")).expect("stdin"))
            .output()
            .expect("runs");
        let (these, through_sites) = summary_totals(&String::from_utf8_lossy(&output.stderr));
        calls += these;
        rewritten += through_sites;
    }
    println!(
        "| share of dynamic syscalls through rewritten sites, {} busybox applets | {rewritten} of {calls} ({:.2}%) | - | - | at least 99% |",
        applets.len(),
        rewritten as f64 * 100.0 / calls as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// (calls, rewritten) from the total line of a `--syscall-summary`.
fn summary_totals(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|line| line.trim_end().ends_with("  total"))
        .unwrap_or_else(|| panic!("no summary total in {stderr}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}
