//! Issue 4: files and sockets through the offload queue, and HTTP under wrk.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use atoll_testprogs::{program, Flavor};

use super::measure::{isle_with, median_figure, native_on, row, strip_ansi, value_after, ATOLL};

/// Issue 4's table: files and sockets through the offload queue.
pub fn offload_section() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last_core = cores.checked_sub(1);
    println!("\n| offload | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    let dir = std::env::temp_dir().join(format!("atoll-bench-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let in_dir = |mut command: Command| {
        command.current_dir(&dir);
        command
    };

    let write_loop = program(Flavor::Glibc, "write_loop");
    let sink = dir.join("sink");
    let to_sink = |mut command: Command| {
        command.stdout(std::fs::File::create(&sink).expect("sink"));
        command
    };
    row(
        "1-byte write to a file, cycles per call",
        median_figure(
            || to_sink(isle_with(&[], &write_loop, &[])),
            "write_cycles",
            true,
        ),
        median_figure(
            || to_sink(native_on(last_core, &write_loop, &[])),
            "write_cycles",
            true,
        ),
        "",
        "at most 1.5x",
    );

    let data = dir.join("data");
    let file = std::fs::File::create(&data).expect("data file");
    file.set_len(1 << 30).expect("1 GiB file");
    drop(file);
    let readfile = program(Flavor::Glibc, "readfile");
    let native_read = median_figure(
        || in_dir(native_on(last_core, &readfile, &["data"])),
        "read_mb_per_s",
        false,
    );
    let isle_read = median_figure(
        || in_dir(isle_with(&[], &readfile, &["data"])),
        "read_mb_per_s",
        false,
    );
    row(
        "64 KiB reads of a 1 GiB file, MB/s",
        isle_read,
        native_read,
        "",
        "at least 0.9x",
    );
    let _ = std::fs::remove_file(&data);

    let fileops = program(Flavor::Glibc, "fileops");
    row(
        "create + fstat + close + unlink of small files, per second",
        median_figure(
            || in_dir(isle_with(&[], &fileops, &["2000"])),
            "fileops_per_s",
            false,
        ),
        median_figure(
            || in_dir(native_on(last_core, &fileops, &["2000"])),
            "fileops_per_s",
            false,
        ),
        "",
        "at least 0.7x",
    );

    let tcprtt = program(Flavor::Glibc, "tcprtt");
    let guest_port = "19500";
    let publish = ["-p", "29500:19500"];
    row(
        "TCP echo round trip on loopback, two threads, cycles",
        median_figure(
            || isle_with(&publish, &tcprtt, &[guest_port, "2000"]),
            "tcp_rtt_cycles",
            false,
        ),
        median_figure(
            || native_on(None, &tcprtt, &["29501", "2000"]),
            "tcp_rtt_cycles",
            false,
        ),
        "",
        "at most 1.5x",
    );

    // VM exits per offloaded call under load: 100,000 one-byte writes.
    let output = to_sink(isle_with(&[], &write_loop, &["100000"]))
        .env("ATOLL_LOG", "atoll_vmm=debug")
        .output()
        .expect("runs");
    let log = strip_ansi(&String::from_utf8_lossy(&output.stderr));
    let exits = log
        .lines()
        .find(|line| line.contains("vCPU done"))
        .and_then(|line| value_after(line, "exits="));
    println!(
        "| VM exits during 100,000 offloaded writes | {} | - | {} per call | 0 |",
        exits.map_or("?".to_string(), |n| n.to_string()),
        exits.map_or("?".to_string(), |n| format!("{:.5}", n as f64 / 100_000.0))
    );

    http_row();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Requests per second of the same small HTTP server, in an isle and
/// natively, under wrk (when installed).
fn http_row() {
    http_rps_row(
        "HTTP requests per second under wrk (1 connection)",
        &program(Flavor::Rust, "httpd"),
        "/",
        &[],
        (29600, 29601),
    );
}

/// Requests per second for `path` of `httpd` (arguments: PORT N),
/// natively on host port `ports.0` and in an isle (with `isle_flags`)
/// published on `ports.1`, under wrk with one connection (when wrk is
/// installed).
pub fn http_rps_row(what: &str, httpd: &Path, path: &str, isle_flags: &[&str], ports: (u16, u16)) {
    if !Path::new("/usr/bin/wrk").exists() {
        println!("| {what} | - | - | - | wrk not installed |");
        return;
    }
    let measure = |mut server: std::process::Child, port: u16| -> f64 {
        std::thread::sleep(Duration::from_millis(300));
        let output = Command::new("/usr/bin/wrk")
            .args([
                "-t1",
                "-c1",
                "-d3s",
                &format!("http://127.0.0.1:{port}{path}"),
            ])
            .output()
            .expect("wrk runs");
        let _ = server.kill();
        let _ = server.wait();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.lines()
            .find_map(|line| line.strip_prefix("Requests/sec:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    let count = "100000000";
    let native = Command::new(httpd)
        .args([&ports.0.to_string(), count])
        .stdout(Stdio::null())
        .spawn()
        .expect("native server");
    let native_rps = measure(native, ports.0);
    let isle = Command::new(ATOLL)
        .arg("run")
        .args(isle_flags)
        .arg("-p")
        .arg(format!("{}:8080", ports.1))
        .arg(httpd)
        .args(["8080", count])
        .stdout(Stdio::null())
        .spawn()
        .expect("isle server");
    let isle_rps = measure(isle, ports.1);
    row(what, isle_rps, native_rps, "", "at least 0.9x");
}
