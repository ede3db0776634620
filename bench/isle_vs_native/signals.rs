//! Issue 16: what a signal costs, isle against native, and a Go server
//! (whose runtime lives on signals) under wrk.

use atoll_testprogs::{program, Flavor};

use super::measure::{isle_with, median_figure, native_on, row};
use super::offload::http_rps_row;

/// The signals table.
pub fn signals_section() {
    let probe = program(Flavor::Glibc, "signal_bench");
    let two = ["-c", "2", "--overcommit"];
    println!("\n| signals | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    for (what, key) in [
        ("raise -> handler -> return, cycles", "raise_cycles"),
        (
            "pthread_kill to a thread spinning on another core, until its handler runs, cycles",
            "pthread_kill_cycles",
        ),
        (
            "setitimer every 10 ms while computing: handler lateness past due, cycles",
            "timer_cycles",
        ),
    ] {
        row(
            what,
            median_figure(|| isle_with(&two, &probe, &[]), key, false),
            median_figure(|| native_on(None, &probe, &[]), key, false),
            "",
            "report",
        );
    }
    // One core: on a two-core machine a second polling vCPU would take the
    // core wrk and the offload server need.
    http_rps_row(
        "Go net/http requests per second under wrk (1 connection)",
        &program(Flavor::Go, "httpd"),
        "/plain",
        &[],
        (29610, 29611),
    );
}
