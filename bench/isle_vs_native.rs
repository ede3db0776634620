//! Isle against native, in one run: `cargo bench -p atoll-cli`.
//!
//! Prints a table of isle/native ratios plus where an isle's start-up time
//! goes. Targets are reported next to the figures, never asserted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atoll_testprogs::{program, Flavor};

const ATOLL: &str = env!("CARGO_BIN_EXE_atoll");
const RUNS: usize = 200;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Median wall time of `command`, in ms, over RUNS runs after a warm-up.
fn wall_ms(mut make: impl FnMut() -> Command) -> f64 {
    for _ in 0..10 {
        make().stdout(Stdio::null()).status().expect("runs");
    }
    median_wall_ms(RUNS, make)
}

/// Median wall time of `runs` runs of `make()`'s command, in ms.
fn median_wall_ms(runs: usize, mut make: impl FnMut() -> Command) -> f64 {
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

fn isle(program: &Path) -> Command {
    let mut command = Command::new(ATOLL);
    command.arg("run").arg(program);
    command
}

/// Runs `command` and returns the number after `key=` in its output.
fn figure(mut command: Command, key: &str, from_stderr: bool) -> f64 {
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

fn median_figure(make: impl Fn() -> Command, key: &str, from_stderr: bool) -> f64 {
    median((0..5).map(|_| figure(make(), key, from_stderr)).collect())
}

/// RSS of the atoll process beyond the guest RAM it holds, and the guest
/// RAM resident, in MiB, while an isle is alive (its program blocks reading
/// stdin) and after its reserves have been populated in the background.
fn vmm_overhead_mib(memory: &str) -> (f64, f64) {
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

fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('\u{1b}') {
        plain.push_str(&rest[..start]);
        rest = rest[start..].split_once('m').map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    plain
}

fn value_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A process that creates a KVM VM with one vCPU and runs one instruction:
/// the floor for any KVM-based isle start.
fn bare_vm_process() {
    use kvm_bindings::kvm_userspace_memory_region;
    let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
    let vm = kvm.create_vm().expect("VM");
    let size = 0x1000;
    // SAFETY: an anonymous private mapping we own for the process's life.
    let memory = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(memory, libc::MAP_FAILED);
    // SAFETY: writes the `hlt` opcode into the page we just mapped.
    unsafe { *(memory as *mut u8) = 0xf4 };
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0x1000,
        memory_size: size as u64,
        userspace_addr: memory as u64,
    };
    // SAFETY: the mapping outlives the VM (the process exits right after).
    unsafe { vm.set_user_memory_region(region) }.expect("memory slot");
    let mut vcpu = vm.create_vcpu(0).expect("vCPU");
    let mut sregs = vcpu.get_sregs().expect("sregs");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).expect("sregs");
    let regs = kvm_bindings::kvm_regs {
        rip: 0x1000,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).expect("regs");
    let exit = format!("{:?}", vcpu.run().expect("run"));
    assert!(exit.contains("Hlt"), "bare VM stopped with {exit}");
}

/// Start-up phases of one isle, from the monitor's debug log.
fn startup_phases(hello: &Path) -> Vec<(String, f64)> {
    let output = isle(hello)
        .env("ATOLL_LOG", "atoll_vmm=debug")
        .output()
        .expect("runs");
    let log = String::from_utf8_lossy(&output.stderr);
    log.lines()
        .filter_map(|line| {
            let line = strip_ansi(line);
            let message = line.split("atoll_vmm::isle: ").nth(1)?;
            let (what, rest) = message.split_once(" elapsed=")?;
            let elapsed = rest.split_whitespace().next()?;
            let ms = if let Some(us) = elapsed.strip_suffix("µs") {
                us.parse::<f64>().ok()? / 1000.0
            } else {
                elapsed.strip_suffix("ms")?.parse::<f64>().ok()?
            };
            Some((what.to_string(), ms))
        })
        .collect()
}

fn main() {
    if std::env::args().any(|arg| arg == "--bare-vm") {
        bare_vm_process();
        return;
    }
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    // `cargo bench -p atoll-cli --bench isle_vs_native -- --rewriting`
    // (or --isles): just that table.
    if std::env::args().any(|arg| arg == "--rewriting") {
        rewrite_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--isles") {
        isles_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--images") {
        images_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--qemu") {
        qemu_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--memory") {
        memory_section();
        return;
    }
    let hello = program(Flavor::Musl, "hello");
    let kvm = Path::new("/dev/kvm").exists();
    println!(
        "atoll bench: isle vs native, one run ({RUNS} runs per wall-time median), isles on {}\n",
        if kvm {
            "atoll's KVM monitor"
        } else {
            "QEMU's TCG (this machine has no /dev/kvm)"
        }
    );

    let isle_hello = wall_ms(|| isle(&hello));
    let native_hello = wall_ms(|| Command::new(&hello));
    let bare_vm = kvm.then(|| {
        wall_ms(|| {
            let mut command = Command::new(std::env::current_exe().expect("own path"));
            command.arg("--bare-vm");
            command
        })
    });

    let getpid = program(Flavor::Glibc, "getpid_loop");
    let isle_getpid = median_figure(|| isle(&getpid), "getpid_cycles", false);
    let native_getpid = median_figure(|| Command::new(&getpid), "getpid_cycles", false);

    let write_loop = program(Flavor::Glibc, "write_loop");
    let sink = std::env::temp_dir().join("atoll-bench-write-sink");
    let to_file = |mut command: Command| {
        command.stdout(std::fs::File::create(&sink).expect("sink file"));
        command
    };
    let isle_write = median_figure(|| to_file(isle(&write_loop)), "write_cycles", true);
    let native_write = median_figure(|| to_file(Command::new(&write_loop)), "write_cycles", true);
    let _ = std::fs::remove_file(&sink);

    let touch = program(Flavor::Glibc, "touch");
    let isle_touch = |delay_ms: &str| {
        let touch = touch.clone();
        let delay_ms = delay_ms.to_string();
        median_figure(
            move || {
                let mut command = Command::new(ATOLL);
                command
                    .args(["run", "-m", "256M"])
                    .arg(&touch)
                    .args(["64", &delay_ms]);
                command
            },
            "touch_cycles",
            false,
        )
    };
    let touch_now = isle_touch("0");
    let touch_later = isle_touch("300");
    let native_touch = median_figure(
        || {
            let mut command = Command::new(&touch);
            command.arg("64");
            command
        },
        "touch_cycles",
        false,
    );

    let (overhead_64, guest_64) = vmm_overhead_mib("64M");
    let (overhead_1g, guest_1g) = vmm_overhead_mib("1024M");

    println!("| what | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| `atoll run hello` wall time (median) | {isle_hello:.2} ms | {native_hello:.2} ms | {:.1}x | at most 5x |",
        isle_hello / native_hello
    );
    match bare_vm {
        Some(bare_vm) => println!(
            "| bare KVM VM process, one instruction (the floor) | {bare_vm:.2} ms | {native_hello:.2} ms | {:.1}x | report |",
            bare_vm / native_hello
        ),
        None => println!("| bare KVM VM process (the floor) | no /dev/kvm | - | - | report |"),
    }
    println!(
        "| getpid, cycles per call | {isle_getpid:.0} | {native_getpid:.0} | {:.1}x | report |",
        isle_getpid / native_getpid
    );
    println!(
        "| write(1, buf, 1) to a file, cycles per call | {isle_write:.0} | {native_write:.0} | {:.1}x | at most 2x |",
        isle_write / native_write
    );
    println!(
        "| first touch of fresh mmap memory, cycles per 4 KiB page, at once | {touch_now:.0} | {native_touch:.0} | {:.2}x | report |",
        touch_now / native_touch
    );
    println!(
        "| the same after 300 ms (reserves populated in the background) | {touch_later:.0} | {native_touch:.0} | {:.2}x | report |",
        touch_later / native_touch
    );
    println!(
        "| VMM RSS beyond guest RAM, 64M isle | {overhead_64:.1} MiB (guest {guest_64:.0} MiB resident) | - | - | at most 10 MiB |"
    );
    println!(
        "| VMM RSS beyond guest RAM, 1G isle | {overhead_1g:.1} MiB (guest {guest_1g:.0} MiB resident) | - | - | at most 10 MiB |"
    );

    threads_section();
    memory_section();
    offload_section();
    rewrite_section();
    isles_section();
    images_section();

    println!("\nwhere one `atoll run hello` spends its time (monitor log, ms since atoll's main):");
    let mut previous = 0.0;
    for (what, at) in startup_phases(&hello) {
        println!("  {at:>7.3}  (+{:>6.3})  {what}", at - previous);
        previous = at;
    }
}

/// `atoll run [flags] PROGRAM args` as a command.
fn isle_with(flags: &[&str], program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(ATOLL);
    command.arg("run").args(flags).arg(program).args(args);
    command
}

/// PROGRAM args natively, on host core `core` if taskset is there.
fn native_on(core: Option<usize>, program: &Path, args: &[&str]) -> Command {
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

fn row(what: &str, isle: f64, native: f64, unit: &str, target: &str) {
    println!(
        "| {what} | {isle:.0} {unit} | {native:.0} {unit} | {:.2}x | {target} |",
        isle / native
    );
}

/// Issue 3's table: threads, scheduling and memory.
fn threads_section() {
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

/// A row for `touch 256` (256 MiB mapped after `delay_ms`, one write per
/// page) in an isle with `flags` against natively on the last core.
fn first_touch_row(what: &str, touch: &Path, flags: &[&str], delay_ms: &str) {
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
fn memory_section() {
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

/// Issue 4's table: files and sockets through the offload queue.
fn offload_section() {
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
    if !Path::new("/usr/bin/wrk").exists() {
        println!("| HTTP requests per second under wrk | - | - | - | wrk not installed |");
        return;
    }
    let httpd = program(Flavor::Rust, "httpd");
    let measure = |mut server: std::process::Child, port: u16| -> f64 {
        std::thread::sleep(Duration::from_millis(300));
        let output = Command::new("/usr/bin/wrk")
            .args(["-t1", "-c1", "-d3s", &format!("http://127.0.0.1:{port}/")])
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
    let native = Command::new(&httpd)
        .args(["29600", count])
        .stdout(Stdio::null())
        .spawn()
        .expect("native server");
    let native_rps = measure(native, 29600);
    let isle = Command::new(ATOLL)
        .args(["run", "-p", "29601:8080"])
        .arg(&httpd)
        .args(["8080", count])
        .stdout(Stdio::null())
        .spawn()
        .expect("isle server");
    let isle_rps = measure(isle, 29601);
    row(
        "HTTP requests per second under wrk (1 connection)",
        isle_rps,
        native_rps,
        "",
        "at least 0.9x",
    );
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

/// Issue 5's table: syscalls through rewritten sites.
fn rewrite_section() {
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

/// Issue 6's table: isles side by side under the resource manager.
fn isles_section() {
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

/// Issue 7's table: images.
fn images_section() {
    println!("\n| images | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    let work = std::env::temp_dir().join(format!("atoll-bench-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("scratch");
    let atoll = |dir: &Path, args: &[&str]| {
        let output = Command::new(ATOLL)
            .args(args)
            .current_dir(dir)
            .env("ATOLL_HOME", work.join("store"))
            .output()
            .expect("atoll runs");
        assert!(
            output.status.success(),
            "atoll {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    atoll(&work, &["init", "hello", "--lang", "c"]);
    atoll(&work.join("hello"), &["build"]);
    let listed = atoll(&work, &["images", "-o", "json"]);
    let images: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let size = images[0]["size"].as_u64().expect("size");
    println!(
        "| size of the hello image (C): config, kernel and program | {:.0} KiB | - | - | at most 1 MiB |",
        size as f64 / 1024.0
    );
    let program = work.join("hello/hello");
    let by_path = wall_ms(|| {
        let mut command = Command::new(ATOLL);
        command.arg("run").arg(&program);
        command
    });
    let by_image = wall_ms(|| {
        let mut command = Command::new(ATOLL);
        command
            .args(["run", "hello:0.1.0"])
            .env("ATOLL_HOME", work.join("store"));
        command
    });
    println!(
        "| `atoll run hello:0.1.0` from the store vs `atoll run ./hello`, wall time | {by_image:.2} ms | {by_path:.2} ms | {:.2}x | at most 1.1x |",
        by_image / by_path
    );
    transfers(&work, &atoll);
    let _ = std::fs::remove_dir_all(&work);
}

/// Push and pull of an image with a 100 MiB files layer through a real
/// registry on loopback, against curl moving the same blob.
fn transfers(work: &Path, atoll: &dyn Fn(&Path, &[&str]) -> std::process::Output) {
    const REGISTRY: &str = "/usr/bin/docker-registry";
    if !Path::new(REGISTRY).exists() || Command::new("curl").arg("--version").output().is_err() {
        println!(
            "| push and pull of a 100 MiB layer | skipped: needs docker-registry and curl | | | |"
        );
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let registry_dir = work.join("registry");
    std::fs::create_dir_all(&registry_dir).expect("scratch");
    let config = registry_dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            registry_dir.join("data").display()
        ),
    )
    .expect("config");
    let mut registry = Command::new(REGISTRY)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = format!("localhost:{port}");
    // A project whose image carries 100 MiB of incompressible data.
    let project = work.join("big");
    std::fs::create_dir_all(project.join("data")).expect("scratch");
    let mut data = vec![0u8; 100 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(project.join("data/blob.bin"), &data).expect("data");
    std::fs::copy(work.join("hello/hello"), project.join("hello")).expect("program");
    std::fs::write(
        project.join("atoll.toml"),
        "[app]\nname = \"big\"\nversion = \"1\"\n[build]\ncommand = \"true\"\nfiles = [\"data:/data\"]\n[run]\nprogram = \"hello\"\n",
    )
    .expect("manifest");
    atoll(&project, &["build", "-q"]);
    let inspected = atoll(work, &["inspect", "big:1"]);
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).expect("json");
    let layer = inspected["manifest"]["layers"]
        .as_array()
        .and_then(|layers| {
            layers
                .iter()
                .find(|layer| layer["mediaType"] == "application/vnd.atoll.files.v1.tar")
        })
        .expect("a files layer")
        .clone();
    let digest = layer["digest"].as_str().expect("digest").to_string();
    let blob = work
        .join("store/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let seconds = |command: &mut Command| {
        let start = Instant::now();
        let output = command.output().expect("runs");
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (start.elapsed().as_secs_f64(), output)
    };
    let (mut atoll_push, mut curl_push, mut atoll_pull, mut curl_pull) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        // A new repository each round, so that nothing is there yet.
        let remote = format!("{address}/bench/atoll-{round}:1");
        atoll(work, &["tag", "big:1", &remote]);
        atoll_push.push(
            seconds(
                Command::new(ATOLL)
                    .args(["push", "-q", &remote])
                    .env("ATOLL_HOME", work.join("store")),
            )
            .0,
        );
        // curl: POST for an upload session, then one PUT of the blob.
        let start = Instant::now();
        let (_, session) = seconds(Command::new("curl").args([
            "-sS",
            "-X",
            "POST",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("http://{address}/v2/bench/curl-{round}/blobs/uploads/"),
        ]));
        let headers = String::from_utf8_lossy(&session.stdout).into_owned();
        let location = headers
            .lines()
            .find_map(|line| {
                line.strip_prefix("Location: ")
                    .or_else(|| line.strip_prefix("location: "))
            })
            .expect("an upload location")
            .trim()
            .to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        seconds(Command::new("curl").args([
            "-sS",
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            &blob.to_string_lossy(),
            &format!("{location}{separator}digest={digest}"),
        ]));
        curl_push.push(start.elapsed().as_secs_f64());

        // Pull into an empty store, against curl fetching the blob to disk.
        let fresh = work.join(format!("pulled-{round}"));
        atoll_pull.push(
            seconds(
                Command::new(ATOLL)
                    .args(["pull", "-q", &remote])
                    .env("ATOLL_HOME", &fresh),
            )
            .0,
        );
        let _ = std::fs::remove_dir_all(&fresh);
        let target = work.join("curl-blob");
        curl_pull.push(
            seconds(Command::new("curl").args([
                "-sS",
                "-f",
                "-o",
                &target.to_string_lossy(),
                &format!("http://{address}/v2/bench/atoll-{round}/blobs/{digest}"),
            ]))
            .0,
        );
        let _ = std::fs::remove_file(&target);
    }
    let _ = registry.kill();
    let _ = registry.wait();
    let (push, curl_up) = (median(atoll_push) * 1000.0, median(curl_push) * 1000.0);
    let (pull, curl_down) = (median(atoll_pull) * 1000.0, median(curl_pull) * 1000.0);
    println!(
        "| push of an image with a 100 MiB layer vs curl uploading that blob, wall time | {push:.0} ms | {curl_up:.0} ms | {:.2}x | at most 1.2x |",
        push / curl_up
    );
    println!(
        "| pull of it into an empty store vs curl downloading that blob, wall time | {pull:.0} ms | {curl_down:.0} ms | {:.2}x | at most 1.2x |",
        pull / curl_down
    );
}

/// The QEMU backend (TCG) against our KVM monitor and native: wall time of
/// hello, and the getpid and write figures under full x86 semantics (the
/// syscall entry at CPL 0, `sysretq`).
fn qemu_section() {
    let installed = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("qemu-system-x86_64").is_file())
    });
    if !installed {
        println!("| QEMU backend | skipped: no qemu-system-x86_64 | | | |");
        return;
    }
    let on = |backend: &'static str, program: &Path, args: &'static [&'static str]| {
        let program = program.to_path_buf();
        move || isle_with(&["--backend", backend], &program, args)
    };
    println!("\n| QEMU backend (TCG) | QEMU | KVM | native | QEMU/KVM | QEMU/native |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let hello = program(Flavor::Musl, "hello");
    let qemu_hello = wall_ms(on("qemu", &hello, &[]));
    let kvm_hello = wall_ms(on("kvm", &hello, &[]));
    let native_hello = wall_ms(|| Command::new(&hello));
    println!(
        "| `atoll run hello`, wall time, ms | {qemu_hello:.1} | {kvm_hello:.2} | {native_hello:.2} | {:.1}x | {:.0}x |",
        qemu_hello / kvm_hello,
        qemu_hello / native_hello
    );
    let getpid = program(Flavor::Glibc, "getpid_loop");
    for (label, flags) in [
        ("getpid, rewritten sites, cycles per call", &[][..]),
        (
            "getpid, every call trapping (--no-rewrite), cycles per call",
            &["--no-rewrite"][..],
        ),
    ] {
        let figure_on = |backend: &str| {
            let mut all = vec!["--backend", backend];
            all.extend_from_slice(flags);
            let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
            let getpid = getpid.clone();
            median_figure(
                move || {
                    let flags: Vec<&str> = all.iter().map(String::as_str).collect();
                    isle_with(&flags, &getpid, &[])
                },
                "getpid_cycles",
                false,
            )
        };
        let (qemu, kvm) = (figure_on("qemu"), figure_on("kvm"));
        let native = median_figure(|| Command::new(&getpid), "getpid_cycles", false);
        println!(
            "| {label} | {qemu:.0} | {kvm:.0} | {native:.0} | {:.2}x | {:.2}x |",
            qemu / kvm,
            qemu / native
        );
    }
    let write_loop = program(Flavor::Glibc, "write_loop");
    let sink = std::env::temp_dir().join("atoll-bench-qemu-write-sink");
    let to_file = |mut command: Command| {
        command.stdout(std::fs::File::create(&sink).expect("sink file"));
        command
    };
    let write_on = |backend: &'static str| {
        median_figure(
            || to_file(isle_with(&["--backend", backend], &write_loop, &[])),
            "write_cycles",
            true,
        )
    };
    let (qemu_write, kvm_write) = (write_on("qemu"), write_on("kvm"));
    let native_write = median_figure(|| to_file(Command::new(&write_loop)), "write_cycles", true);
    let _ = std::fs::remove_file(&sink);
    println!(
        "| 1-byte write to a file, cycles per call | {qemu_write:.0} | {kvm_write:.0} | {native_write:.0} | {:.2}x | {:.2}x |",
        qemu_write / kvm_write,
        qemu_write / native_write
    );
}
