//! Issue 3: threads, scheduling, compute scaling and OS noise.

use atoll_testprogs::{program, Flavor};

use super::measure::{isle_with, median_figure, native_on, row, strip_ansi, value_after};
use super::memory::first_touch_row;

/// Issue 3's table: threads, scheduling and memory.
pub fn threads_section() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last_core = cores.checked_sub(1);
    let two = ["-c", "2", "--overcommit"];
    println!("\n| threads | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");

    let program_path = |name: &str| program(Flavor::Glibc, name);
    let yield_loop = program_path("yield_loop");
    row(
        "sched_yield, cycles per call",
        median_figure(|| isle_with(&[], &yield_loop, &[]), "yield_cycles", false),
        median_figure(
            || native_on(last_core, &yield_loop, &[]),
            "yield_cycles",
            false,
        ),
        "",
        "at most 0.1x",
    );
    let pingpong = program_path("pingpong");
    row(
        "futex ping-pong, two threads on two cores, cycles per round trip",
        median_figure(|| isle_with(&two, &pingpong, &[]), "pingpong_cycles", false),
        median_figure(|| native_on(None, &pingpong, &[]), "pingpong_cycles", false),
        "",
        "at most 1x",
    );
    let wakeup = program_path("wakeup");
    for (label, gap) in [("polling", "0"), ("parked", "1000")] {
        row(
            &format!("futex wake-up latency, target CPU {label}, cycles"),
            median_figure(
                || isle_with(&two, &wakeup, &[gap, "100"]),
                "wakeup_cycles",
                false,
            ),
            median_figure(
                || native_on(None, &wakeup, &[gap, "100"]),
                "wakeup_cycles",
                false,
            ),
            "",
            "report",
        );
    }
    for flavor in [Flavor::Glibc, Flavor::Musl] {
        let spawn = program(flavor, "spawn_join");
        row(
            &format!("thread spawn plus join ({flavor}), cycles"),
            median_figure(|| isle_with(&[], &spawn, &[]), "spawn_cycles", false),
            median_figure(|| native_on(last_core, &spawn, &[]), "spawn_cycles", false),
            "",
            "at most 1x",
        );
    }
    let touch = program_path("touch");
    first_touch_row(
        "first write to each page of a fresh 256 MiB mapping, cycles per page",
        &touch,
        &["-m", "512M"],
        "600",
    );
    let compute = program_path("compute");
    let isle_one = median_figure(
        || isle_with(&[], &compute, &["1", "2000"]),
        "jobs_per_minute",
        false,
    );
    let native_one = median_figure(
        || native_on(last_core, &compute, &["1", "2000"]),
        "jobs_per_minute",
        false,
    );
    let isle_two = median_figure(
        || isle_with(&two, &compute, &["2", "2000"]),
        "jobs_per_minute",
        false,
    );
    let native_two = median_figure(
        || native_on(None, &compute, &["2", "2000"]),
        "jobs_per_minute",
        false,
    );
    row(
        "compute jobs per minute, 1 core",
        isle_one,
        native_one,
        "",
        "at least 1.0x",
    );
    row(
        "compute jobs per minute, 2 cores",
        isle_two,
        native_two,
        "",
        "at least 1.0x",
    );
    println!(
        "| compute scaling, 2 cores over 1 | {:.2}x | {:.2}x | - | isle at least 1.9x |",
        isle_two / isle_one,
        native_two / native_one
    );

    // OS noise: both pinned to the same host core (the isle's vCPU goes to the last core).
    let noise = program_path("noise");
    let isle_noise = isle_with(&[], &noise, &["10000"])
        .env("ATOLL_LOG", "atoll_vmm=debug")
        .output()
        .expect("runs");
    let native_noise = native_on(last_core, &noise, &["10000"])
        .output()
        .expect("runs");
    let isle_text = String::from_utf8_lossy(&isle_noise.stdout).into_owned();
    let native_text = String::from_utf8_lossy(&native_noise.stdout).into_owned();
    let log = strip_ansi(&String::from_utf8_lossy(&isle_noise.stderr));
    let upcalls = log
        .lines()
        .find(|line| line.contains("vCPU done"))
        .and_then(|line| value_after(line, "preemptions="));
    let pick = |text: &str, key: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    for key in ["noisy_gaps", "mean_noisy_gap_cycles", "max_gap_cycles"] {
        row(
            &format!("OS noise over 10 s: {key}"),
            pick(&isle_text, key),
            pick(&native_text, key),
            "",
            "report",
        );
    }
    println!(
        "| OS noise: fraction of time lost to gaps > 1000 cycles | {:.6} | {:.6} | - | report |",
        pick(&isle_text, "noise_fraction"),
        pick(&native_text, "noise_fraction")
    );
    println!(
        "| interrupts the guest kernel took during the noise run | 0 (no interrupt vectors; {} preemption upcalls) | - | - | zero |",
        upcalls.map_or("?".to_string(), |n| n.to_string())
    );
    println!("\nnoise histogram (gaps above 1000 cycles, by power of two), isle | native:");
    for bucket in 10..40 {
        let key = format!("gap_2^{bucket}");
        let (isle, native) = (pick(&isle_text, &key), pick(&native_text, &key));
        if !isle.is_nan() || !native.is_nan() {
            println!(
                "  2^{bucket:<2} cycles: {:>8} | {:>8}",
                if isle.is_nan() { 0.0 } else { isle },
                if native.is_nan() { 0.0 } else { native }
            );
        }
    }
}
