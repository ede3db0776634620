//! Issue 18: processes. fork + exit + wait, fork + exec of a static
//! `true`, posix_spawn of it (each from a C program timing its own loop),
//! and a shell loop running external commands.

use std::path::Path;
use std::process::Command;

use atoll_testprogs::{program, Flavor};

use super::measure::{median_figure, median_wall_ms, ATOLL};

const BUSYBOX: &str = "/bin/busybox";
/// External commands the shell loop runs.
const COMMANDS: u32 = 100;

pub fn processes_section() {
    println!("\n| processes | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    if !Path::new(BUSYBOX).exists() {
        println!("| (busybox missing: apt-get install busybox-static) | - | - | - | - |");
        return;
    }
    let forkloop = program(Flavor::Musl, "forkloop");
    for (mode, count, what) in [
        ("fork", "30", "fork + exit + wait"),
        ("forkexec", "20", "fork + exec of a static true + wait"),
        ("spawn", "20", "posix_spawn of a static true + wait"),
    ] {
        let isle = median_figure(
            || {
                let mut command = Command::new(ATOLL);
                command.arg("run").arg(&forkloop).args([mode, count]);
                command
            },
            "per_op_us",
            false,
        );
        let native = median_figure(
            || {
                let mut command = Command::new(&forkloop);
                command.args([mode, count]);
                command
            },
            "per_op_us",
            false,
        );
        println!(
            "| {what}, µs each | {isle:.0} | {native:.0} | {:.1}x | report |",
            isle / native
        );
    }
    let script =
        format!("i=0; while [ $i -lt {COMMANDS} ]; do /bin/busybox true; i=$((i+1)); done");
    let isle = median_wall_ms(3, || {
        let mut command = Command::new(ATOLL);
        command.args(["run", BUSYBOX, "sh", "-c", &script]);
        command
    });
    let native = median_wall_ms(3, || {
        let mut command = Command::new(BUSYBOX);
        command.args(["sh", "-c", &script]);
        command
    });
    println!(
        "| a shell loop of {COMMANDS} external commands, ms (median of 3) | {isle:.0} | {native:.0} | {:.1}x | report |",
        isle / native
    );
}
