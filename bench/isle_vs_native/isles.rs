//! Issue 6: isles side by side under the resource manager: start-up with
//! many tracked, AIM7-style throughput, memory given back.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atoll_testprogs::{program, Flavor};

use super::measure::{median, row, strip_ansi, ATOLL};

/// Issue 6's table: isles side by side under the resource manager.
pub fn isles_section() {
    println!("\n| isles side by side | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    let registry = std::env::temp_dir().join(format!("atoll-bench-isles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&registry);
    std::fs::create_dir_all(&registry).expect("registry");
    // atoll refuses a registry others could write.
    std::fs::set_permissions(
        &registry,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("registry mode");
    let hello = program(Flavor::Musl, "hello");
    let me = std::process::id();
    let my_start: u64 = {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        stat[stat.rfind(')').expect("stat") + 1..]
            .split_whitespace()
            .nth(19)
            .and_then(|ticks| ticks.parse().ok())
            .expect("start time")
    };
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot id")
        .trim()
        .to_string();
    let mut startups = Vec::new();
    for tracked in [0usize, 10, 50] {
        // Live isles as the registry sees them (this process stands in for
        // their atoll processes), sharing cores so each run still fits.
        let isles: Vec<serde_json::Value> = (0..tracked)
            .map(|index| {
                serde_json::json!({
                    "id": index + 1, "name": null, "pid": me, "start_ticks": my_start,
                    "boot_id": boot_id, "cpus": [1], "reserved": [], "node": 0,
                    "memory": 1 << 20, "shared": true, "command": "tracked",
                    "started": 0, "log": null, "ended": null
                })
            })
            .collect();
        let state = serde_json::json!({ "next_id": tracked + 1, "isles": isles });
        std::fs::write(registry.join("isles.json"), state.to_string()).expect("state");
        let mut entering = Vec::new();
        let mut detach_ms = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let output = Command::new(ATOLL)
                .args(["run", "-d", "--overcommit"])
                .arg(&hello)
                .env("ATOLL_RUNTIME_DIR", &registry)
                .env("ATOLL_LOG", "atoll_vmm=debug")
                .output()
                .expect("atoll run -d");
            detach_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            let id = String::from_utf8_lossy(&output.stdout)
                .trim()
                .trim_start_matches("isle ")
                .to_string();
            // The detached atoll's log has the monitor's phases.
            let logs = loop {
                let logs = Command::new(ATOLL)
                    .args(["logs", &id])
                    .env("ATOLL_RUNTIME_DIR", &registry)
                    .output()
                    .expect("atoll logs");
                let text = strip_ansi(&String::from_utf8_lossy(&logs.stdout));
                if text.contains("Hello") || !logs.status.success() {
                    break text;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            if let Some(line) = logs.lines().find(|line| line.contains("entering the isle")) {
                if let Some(ms) = line
                    .split("elapsed=")
                    .nth(1)
                    .and_then(|rest| rest.split("ms").next())
                    .and_then(|ms| ms.parse::<f64>().ok())
                {
                    entering.push(ms);
                }
            }
            let _ = Command::new(ATOLL)
                .args(["stop", &id])
                .env("ATOLL_RUNTIME_DIR", &registry)
                .output();
        }
        let (detach, enter) = (median(detach_ms), median(entering));
        startups.push(enter);
        println!(
            "| `atoll run -d hello` with {tracked} isles tracked: to the isle's first instruction / until the id is printed | {enter:.2} ms / {detach:.2} ms | - | - | flat |"
        );
    }
    println!(
        "| first instruction, 50 isles tracked over none | {:.2}x | - | - | flat (1x) |",
        startups[2] / startups[0]
    );
    let _ = std::fs::remove_dir_all(&registry);

    // AIM7-style: k single-core isles against k native processes at once.
    let compute = program(Flavor::Glibc, "compute");
    for k in [1usize, 2] {
        let together = |isles: bool| -> f64 {
            let children: Vec<std::process::Child> = (0..k)
                .map(|_| {
                    let mut command = if isles {
                        let mut command = Command::new(ATOLL);
                        command.args(["run", "--overcommit"]).arg(&compute);
                        command
                    } else {
                        Command::new(&compute)
                    };
                    command
                        .args(["1", "2000"])
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("compute starts")
                })
                .collect();
            children
                .into_iter()
                .map(|child| {
                    let output = child.wait_with_output().expect("compute runs");
                    String::from_utf8_lossy(&output.stdout)
                        .lines()
                        .find_map(|line| line.strip_prefix("jobs_per_minute="))
                        .and_then(|value| value.trim().parse::<f64>().ok())
                        .expect("jobs_per_minute")
                })
                .sum()
        };
        let isle_jobs = median((0..3).map(|_| together(true)).collect());
        let native_jobs = median((0..3).map(|_| together(false)).collect());
        row(
            &format!(
                "AIM7-style compute, {k} single-core isle(s) vs {k} process(es), jobs per minute"
            ),
            isle_jobs,
            native_jobs,
            "",
            "at least 1.0x",
        );
    }

    // Memory goes back: MemAvailable before, during a 2 GiB isle (its heap
    // populated in the background) and after it ends.
    let before = mem_available_mib();
    let sleeper = program(Flavor::Musl, "sleeper");
    let mut child = Command::new(ATOLL)
        .args(["run", "--overcommit", "-m", "2G"])
        .arg(&sleeper)
        .arg("3")
        .stdout(Stdio::null())
        .spawn()
        .expect("sleeper isle");
    std::thread::sleep(Duration::from_millis(2500));
    let during = mem_available_mib();
    child.wait().expect("sleeper ends");
    std::thread::sleep(Duration::from_millis(300));
    let after = mem_available_mib();
    println!(
        "| host MemAvailable with a 2 GiB isle: before / during / after, MiB | {before:.0} / {during:.0} / {after:.0} ({:.0} MiB held, {:.0} MiB not back) | - | - | all back |",
        before - during,
        (before - after).max(0.0)
    );
}

fn mem_available_mib() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: f64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .expect("MemAvailable");
    kib / 1024.0
}
