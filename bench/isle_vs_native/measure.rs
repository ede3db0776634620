//! How the benchmark measures: commands for an isle and for the native
//! run, medians of wall times and of the figures the programs print, one
//! table row, and numbers read out of the monitor's log.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

pub const ATOLL: &str = env!("CARGO_BIN_EXE_atoll");
pub const RUNS: usize = 200;

pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Median wall time of `command`, in ms, over RUNS runs after a warm-up.
pub fn wall_ms(mut make: impl FnMut() -> Command) -> f64 {
    for _ in 0..10 {
        make().stdout(Stdio::null()).status().expect("runs");
    }
    median_wall_ms(RUNS, make)
}

/// Median wall time of `runs` runs of `make()`'s command, in ms.
pub fn median_wall_ms(runs: usize, mut make: impl FnMut() -> Command) -> f64 {
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let status = make()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("runs");
            assert!(status.success(), "benchmark command failed");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(samples)
}

pub fn isle(program: &Path) -> Command {
    let mut command = Command::new(ATOLL);
    command.arg("run").arg(program);
    command
}

/// `atoll run [flags] PROGRAM args` as a command.
pub fn isle_with(flags: &[&str], program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(ATOLL);
    command.arg("run").args(flags).arg(program).args(args);
    command
}

/// PROGRAM args natively, on host core `core` if taskset is there.
pub fn native_on(core: Option<usize>, program: &Path, args: &[&str]) -> Command {
    match core {
        Some(core) if Path::new("/usr/bin/taskset").exists() => {
            let mut command = Command::new("/usr/bin/taskset");
            command
                .arg("-c")
                .arg(core.to_string())
                .arg(program)
                .args(args);
            command
        }
        _ => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}

/// Runs `command` and returns the number after `key=` in its output.
pub fn figure(mut command: Command, key: &str, from_stderr: bool) -> f64 {
    let output = command.output().expect("runs");
    let text = String::from_utf8_lossy(if from_stderr {
        &output.stderr
    } else {
        &output.stdout
    })
    .into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {text:?}"))
        .trim()
        .parse()
        .expect("a number")
}

pub fn median_figure(make: impl Fn() -> Command, key: &str, from_stderr: bool) -> f64 {
    median((0..5).map(|_| figure(make(), key, from_stderr)).collect())
}

pub fn row(what: &str, isle: f64, native: f64, unit: &str, target: &str) {
    println!(
        "| {what} | {isle:.0} {unit} | {native:.0} {unit} | {:.2}x | {target} |",
        isle / native
    );
}

pub fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('\u{1b}') {
        plain.push_str(&rest[..start]);
        rest = rest[start..].split_once('m').map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    plain
}

pub fn value_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
