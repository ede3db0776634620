//! Boots real isles running real programs (musl, glibc, Rust std and Go
//! builds) and checks they behave as they do on Linux.

mod common;

use common::*;

fn expected_bigout(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + i / 251) & 0xff) as u8)
        .collect()
}

#[test]
fn hello_gets_its_args_and_only_the_environment_it_was_given() {
    for &flavor in Flavor::ALL {
        let path = program(flavor, "hello");
        let _slot = isle_slot();
        let output = atoll()
            .env("LEAKED_FROM_HOST", "yes")
            .env("PASSED_BY_NAME", "from host")
            .args(["run", "-e", "GREETING=hi there", "-e", "PASSED_BY_NAME"])
            .args([
                "-e",
                "SHOW_ENV=GREETING,HOME,PATH,PASSED_BY_NAME,LEAKED_FROM_HOST",
            ])
            .arg(&path)
            .args(["big", "world", "-m", "--flag"])
            .output()
            .expect("atoll runs");
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        assert_eq!(
            stdout(&output),
            "Hello, big world -m --flag\nGREETING=hi there\nHOME=/\n\
             PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
             PASSED_BY_NAME=from host\nLEAKED_FROM_HOST unset\n",
            "{flavor}"
        );
        assert_eq!(stderr(&output), "", "{flavor}: atoll must be quiet");
    }
}

#[test]
fn ten_mib_of_stdin_comes_back_byte_identical() {
    let input: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for &flavor in Flavor::ALL {
        let path = program(flavor, "cat");
        let output = run_with_input(&["run", path.to_str().unwrap()], &input);
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        assert_eq!(output.stdout.len(), input.len(), "{flavor}");
        assert!(
            output.stdout == input,
            "{flavor}: stdout differs from stdin"
        );
        assert_eq!(
            stderr(&output),
            "",
            "{flavor}: splice and friends are served, quietly"
        );
    }
}

#[test]
fn one_mib_of_stdout_is_byte_identical() {
    let expected = expected_bigout(1 << 20);
    for &flavor in Flavor::ALL {
        let output = run_program(flavor, "bigout", &[]);
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        assert!(
            output.stdout == expected,
            "{flavor}: {} bytes, pattern differs",
            output.stdout.len()
        );
    }
}

#[test]
fn stdout_redirected_to_a_file_is_byte_identical() {
    let dir = std::env::temp_dir().join(format!("atoll-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out");
    let path = program(Flavor::Musl, "bigout");
    let _slot = isle_slot();
    let status = atoll()
        .args(["run", path.to_str().unwrap(), "300000"])
        .stdout(std::fs::File::create(&file).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&file).unwrap(), expected_bigout(300_000));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exit_statuses_pass_through() {
    for &flavor in Flavor::ALL {
        for code in ["0", "3", "255"] {
            let output = run_program(flavor, "exitcode", &[code]);
            assert_eq!(
                status(&output).to_string(),
                code,
                "{flavor}: {}",
                stderr(&output)
            );
            assert_eq!(stderr(&output), "", "{flavor}");
        }
    }
}

#[test]
fn a_null_dereference_gives_139_and_names_the_fault() {
    for &flavor in Flavor::ALL {
        let output = run_program(flavor, "segfault", &[]);
        assert_eq!(stdout(&output), "about to fault\n", "{flavor}");
        assert_one_line_error(
            &output,
            139,
            &["SIGSEGV", "page fault at address 0x0", "read", "rip 0x"],
        );
    }
}

#[test]
fn an_unknown_syscall_gets_enosys_and_one_warning() {
    for &flavor in Flavor::C {
        let output = run_program(flavor, "enosys", &[]);
        assert_eq!(status(&output), 0, "{flavor}");
        assert_eq!(stdout(&output), "result=-1 errno=38\n", "{flavor}");
        assert_eq!(
            stderr(&output),
            "atoll: unsupported syscall mount_setattr (442)\n",
            "{flavor}"
        );
    }
}

fn host_clock(clock: libc::clockid_t) -> i128 {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut spec) }, 0);
    i128::from(spec.tv_sec) * 1_000_000_000 + i128::from(spec.tv_nsec)
}

fn field(text: &str, name: &str) -> i128 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn clocks_advance_and_agree_with_the_host() {
    const TOLERANCE_NS: i128 = 50_000_000;
    for &flavor in Flavor::ALL {
        let real_before = host_clock(libc::CLOCK_REALTIME);
        let mono_before = host_clock(libc::CLOCK_MONOTONIC);
        let output = run_program(flavor, "clock", &[]);
        let real_after = host_clock(libc::CLOCK_REALTIME);
        let mono_after = host_clock(libc::CLOCK_MONOTONIC);
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        let text = stdout(&output);
        let realtime = field(&text, "realtime_ns");
        assert!(
            realtime >= real_before - TOLERANCE_NS && realtime <= real_after + TOLERANCE_NS,
            "{flavor}: realtime {realtime} outside [{real_before}, {real_after}] ± 50 ms"
        );
        if flavor != Flavor::Rust {
            let monotonic = field(&text, "monotonic_ns");
            assert!(
                monotonic >= mono_before - TOLERANCE_NS && monotonic <= mono_after + TOLERANCE_NS,
                "{flavor}: monotonic {monotonic} outside [{mono_before}, {mono_after}] ± 50 ms"
            );
            let microseconds = field(&text, "gettimeofday_us");
            assert!(
                (microseconds * 1000 - realtime).abs() < TOLERANCE_NS,
                "{flavor}: gettimeofday disagrees"
            );
        }
        let slept = field(&text, "slept_ns");
        assert!(
            (100_000_000..100_000_000 + TOLERANCE_NS).contains(&slept),
            "{flavor}: a 100 ms sleep took {slept} ns"
        );
    }
}

#[test]
fn clocks_are_read_through_the_vdso_without_a_syscall() {
    for flavor in [Flavor::Musl, Flavor::Glibc] {
        let output = run_program_with(flavor, "clock", &["--syscall-summary"]);
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        let summary = stderr(&output);
        for call in [" clock_gettime", " gettimeofday"] {
            assert!(
                !summary.lines().any(|line| line.ends_with(call)),
                "{flavor} made a{call} syscall:\n{summary}"
            );
        }
        // The sleep still enters the kernel.
        assert!(summary.contains("nanosleep"), "{flavor}: {summary}");
    }
}

#[test]
fn two_hundred_mib_allocations_are_touched_and_freed() {
    let cases: &[(Flavor, &str)] = &[
        (Flavor::Musl, "brk"),
        (Flavor::Musl, "mmap"),
        (Flavor::Musl, "malloc"),
        (Flavor::Glibc, "brk"),
        (Flavor::Glibc, "mmap"),
        (Flavor::Glibc, "malloc"),
        (Flavor::Rust, "vec"),
    ];
    for &(flavor, mode) in cases {
        let path = program(flavor, "alloc");
        let output = run(&["run", "-m", "256M", path.to_str().unwrap(), mode, "200"]);
        assert_eq!(status(&output), 0, "{flavor} {mode}: {}", stderr(&output));
        assert_eq!(
            stdout(&output),
            format!("alloc {mode} 200 MiB ok\n"),
            "{flavor}"
        );
    }
}

#[test]
fn allocations_beyond_the_isle_fail_cleanly() {
    let path = program(Flavor::Musl, "alloc");
    let output = run(&["run", "-m", "64M", path.to_str().unwrap(), "mmap", "200"]);
    assert_eq!(status(&output), 1, "{}", stderr(&output));
    assert!(stdout(&output).contains("errno=12"), "{}", stdout(&output));
}

#[test]
fn trace_prints_each_syscall_strace_style() {
    let output = run_program(Flavor::Musl, "exitcode", &["0"]);
    assert_eq!(status(&output), 0);
    let path = program(Flavor::Musl, "hello");
    let output = run(&["run", "--trace", path.to_str().unwrap()]);
    assert_eq!(status(&output), 0);
    assert_eq!(stdout(&output), "Hello, world\n");
    let trace = stderr(&output);
    assert!(trace.contains("arch_prctl(0x1002, 0x"), "{trace}");
    assert!(
        trace
            .lines()
            .any(|line| line.starts_with("writev(1, 0x") && line.ends_with(") = 13")),
        "{trace}"
    );
    assert!(
        trace
            .lines()
            .any(|line| line.starts_with("ioctl(1, 0x5413, 0x") && line.ends_with("= -1 ENOTTY")),
        "{trace}"
    );
    assert!(trace.contains("exit_group(0)"), "{trace}");
}

#[test]
fn syscall_summary_counts_calls_and_marks_unsupported_ones() {
    let path = program(Flavor::Glibc, "enosys");
    let output = run(&["run", "--syscall-summary", path.to_str().unwrap()]);
    assert_eq!(status(&output), 0);
    let summary = stderr(&output);
    assert!(summary.contains("atoll: syscall summary"), "{summary}");
    let row = |name: &str| {
        summary
            .lines()
            .find(|line| line.ends_with(name))
            .map(str::to_string)
    };
    let enosys = row("mount_setattr  (unsupported)").unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(
        enosys.split_whitespace().take(2).collect::<Vec<_>>(),
        ["1", "1"],
        "{enosys}"
    );
    assert!(
        row(" write").is_some() || row(" writev").is_some(),
        "{summary}"
    );
    // calls = rewritten + trapped, on every row and in the total.
    let total = row("  total").unwrap_or_else(|| panic!("{summary}"));
    for line in [&enosys, &total] {
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|field| field.parse().ok())
            .collect();
        let (calls, rewritten, trapped) = match numbers[..] {
            [calls, _, rewritten, trapped] | [calls, rewritten, trapped] => {
                (calls, rewritten, trapped)
            }
            _ => panic!("{line}"),
        };
        assert_eq!(calls, rewritten + trapped, "{line}");
    }
}

#[test]
fn a_pipeline_through_the_isle_works() {
    let numbers: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    let path = program(Flavor::Glibc, "cat");
    let output = run_with_input(&["run", path.to_str().unwrap()], numbers.as_bytes());
    assert_eq!(status(&output), 0);
    assert_eq!(stdout(&output), numbers);
}

#[test]
fn abort_dies_of_sigabrt() {
    for &flavor in Flavor::C {
        let output = run_program(flavor, "abort", &[]);
        assert_eq!(stdout(&output), "aborting\n", "{flavor}");
        assert_one_line_error(&output, 134, &["killed by SIGABRT"]);
    }
}

/// Runs `command` under a pseudo-terminal of 33 rows and 101 columns.
fn under_a_terminal(command: &str) -> String {
    let output = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 33 cols 101; {command}"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    String::from_utf8_lossy(&output.stdout).replace('\r', "")
}

#[test]
fn terminal_queries_are_answered_as_the_host_terminal_would() {
    for &flavor in Flavor::C {
        let tty = program(flavor, "tty");
        let native = under_a_terminal(tty.to_str().unwrap());
        assert_eq!(
            native, "isatty=1 tcgetattr=0 winsize=0 rows=33 cols=101\n",
            "{flavor} natively"
        );
        let _slot = isle_slot();
        let isle = under_a_terminal(&format!(
            "ATOLL_BACKEND={} ATOLL_HOST_CONFIG={} {} run {}",
            machine_backend(),
            common::NO_HOST_CONFIG,
            env!("CARGO_BIN_EXE_atoll"),
            tty.display()
        ));
        assert_eq!(isle, native, "{flavor}");
        // And through a pipe, neither is a terminal.
        drop(_slot);
        let output = run_program(flavor, "tty", &[]);
        assert_eq!(
            stdout(&output),
            "isatty=0 tcgetattr=-1 winsize=-1 rows=-1 cols=-1\n",
            "{flavor}"
        );
    }
}

/// Runs `name` natively and in an isle; both must print the same.
fn assert_same_as_native(flavor: Flavor, name: &str) {
    let native = std::process::Command::new(program(flavor, name))
        .output()
        .expect("runs natively");
    assert!(
        native.status.success(),
        "{flavor} {name} natively: {}",
        stderr(&native)
    );
    let isle = run_program(flavor, name, &[]);
    assert_eq!(status(&isle), 0, "{flavor} {name}: {}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native), "{flavor} {name}");
    assert_eq!(stderr(&isle), "", "{flavor} {name}");
}

#[test]
fn futexes_behave_as_with_one_thread_on_linux() {
    for &flavor in Flavor::C {
        assert_same_as_native(flavor, "futex");
    }
}

#[test]
fn memory_syscalls_fail_at_their_edges_as_linux_does() {
    for &flavor in Flavor::C {
        assert_same_as_native(flavor, "mmap_edges");
    }
}

/// Runs Go program `name` with `args` natively and in an isle, both with
/// only `env` (and what atoll adds: HOME, PATH); asserts both succeed, the
/// same stdout and a quiet atoll, and returns that stdout.
fn assert_go_matches_native(name: &str, args: &[&str], env: &[&str]) -> String {
    let path = program(Flavor::Go, name);
    let native = {
        let _slot = isle_slot();
        let mut native = std::process::Command::new(&path);
        native.env_clear().args(args);
        for pair in env {
            let (key, value) = pair.split_once('=').expect("KEY=VALUE");
            native.env(key, value);
        }
        native.output().expect("runs natively")
    };
    assert!(
        native.status.success(),
        "{name} natively: {}",
        stderr(&native)
    );
    let mut isle_args = vec!["run"];
    for pair in env {
        isle_args.extend(["-e", pair]);
    }
    isle_args.push(path.to_str().expect("utf-8 path"));
    isle_args.extend(args);
    let isle = run(&isle_args);
    assert_eq!(status(&isle), 0, "{name}: {}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native), "{name}");
    assert_eq!(stderr(&isle), "", "{name}: atoll must be quiet");
    stdout(&isle)
}

#[test]
fn go_hello_prints_as_natively() {
    // Go's runtime makes its own syscalls: threads whose registers carry
    // the new thread's arguments, futexes, epoll, rlimits, and the vDSO's
    // clock_gettime at symbol version LINUX_2.6.
    let env = ["GREETING=hi there", "SHOW_ENV=GREETING,NOT_SET"];
    assert_eq!(
        assert_go_matches_native("hello", &["big", "world"], &env),
        "Hello, big world\nGREETING=hi there\nNOT_SET unset\n"
    );
}

#[test]
fn go_preemption_notification_and_nil_panics_work_as_natively() {
    assert_go_matches_native("signals", &[], &[]);
}

#[test]
fn a_closed_pipe_raises_sigpipe_as_natively() {
    use std::io::Read;
    for &flavor in Flavor::ALL {
        let _slot = isle_slot();
        let mut child = atoll()
            .args([
                "run",
                program(flavor, "bigout").to_str().unwrap(),
                "100000000",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 10];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            first.to_vec(),
            (0..10u8).map(|i| i.wrapping_mul(131)).collect::<Vec<_>>()
        );
        if flavor == Flavor::Rust {
            // Rust's runtime ignores SIGPIPE, so the write fails instead, as natively.
            assert_eq!(status(&output), 1, "{flavor}: {}", stderr(&output));
            assert!(
                stderr(&output).contains("Broken pipe"),
                "{flavor}: {}",
                stderr(&output)
            );
        } else {
            assert_eq!(status(&output), 141, "{flavor}: {}", stderr(&output));
            assert_eq!(
                stderr(&output),
                "",
                "{flavor}: a SIGPIPE death is silent, as in a shell"
            );
        }
    }
}

#[test]
fn proc_self_exe_and_uname_match_the_host() {
    for &flavor in Flavor::C {
        let path = program(flavor, "selfexe");
        let native = std::process::Command::new(&path).output().unwrap();
        let isle = run_program(flavor, "selfexe", &[]);
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
        let canonical = std::fs::canonicalize(&path).unwrap();
        assert!(
            stdout(&isle).starts_with(&format!("exe={}\n", canonical.display())),
            "{flavor}"
        );
    }
}

#[test]
fn syscalls_and_clocks_cost_no_vm_exit() {
    // 100,000 getpid calls and, in glibc's start-up, a dozen more syscalls:
    // the monitor must see only the final exit, plus for each of the few
    // offloaded calls (readlink, newfstatat, write) at most a wake-up
    // doorbell (the server had gone to sleep) and a park (a busy host took
    // over a millisecond to answer). The getpids add none. (Exits are
    // counted by atoll's KVM monitor; QEMU's doorbells don't exit.)
    if !require_kvm() {
        return;
    }
    let path = program(Flavor::Glibc, "getpid_loop");
    let _slot = isle_slot();
    let output = atoll()
        .env("ATOLL_LOG", "atoll_vmm=debug")
        .args(["run", path.to_str().unwrap(), "100000"])
        .output()
        .unwrap();
    assert_eq!(status(&output), 0);
    let exits = stderr(&output)
        .lines()
        .filter(|line| line.contains("vCPU exit"))
        .count();
    assert!(
        (1..=10).contains(&exits),
        "{exits} VM exits:\n{}",
        stderr(&output)
    );
}

#[test]
fn static_busybox_runs_its_applets() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let output = run(&["run", busybox, "echo", "Hello", "from", "an", "isle"]);
    assert_eq!(
        (status(&output), stdout(&output)),
        (0, "Hello from an isle\n".to_string()),
        "{}",
        stderr(&output)
    );

    let numbers: String = (1..=50_000).map(|n| format!("{n}\n")).collect();
    let output = run_with_input(&["run", busybox, "wc", "-l"], numbers.as_bytes());
    assert_eq!(stdout(&output).trim(), "50000", "{}", stderr(&output));

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let isle = run_with_input(&["run", busybox, "sha256sum"], &data);
    let mut native = std::process::Command::new(busybox)
        .arg("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut native.stdin.take().unwrap(), &data).unwrap();
    let native = native.wait_with_output().unwrap();
    assert_eq!(stdout(&isle), stdout(&native));

    let isle = run(&["run", busybox, "uname", "-srm"]);
    let native = std::process::Command::new(busybox)
        .args(["uname", "-srm"])
        .output()
        .unwrap();
    assert_eq!(stdout(&isle), stdout(&native));
    assert_eq!(stderr(&isle), "", "busybox must run without warnings");
}

#[test]
fn cpu_faults_give_the_signal_linux_gives() {
    let cases = [
        (
            "null",
            "SIGSEGV: page fault at address 0x0 (read, page not mapped)",
        ),
        (
            "write",
            "SIGSEGV: page fault at address 0x10 (write, page not mapped)",
        ),
        (
            "exec",
            "SIGSEGV: page fault at address 0x20 (instruction fetch, page not mapped), rip 0x20",
        ),
        ("ud2", "SIGILL: invalid opcode"),
        ("div0", "SIGFPE: divide error"),
        ("noncanonical", "SIGSEGV: general protection fault"),
        ("int3", "SIGTRAP: breakpoint"),
    ];
    for &flavor in Flavor::C {
        let path = program(flavor, "fault");
        for (kind, message) in cases {
            let native = std::process::Command::new(&path)
                .arg(kind)
                .output()
                .unwrap();
            let native_signal = std::os::unix::process::ExitStatusExt::signal(&native.status)
                .unwrap_or_else(|| panic!("{flavor} {kind} natively: {:?}", native.status));
            let output = run_program(flavor, "fault", &[kind]);
            assert_eq!(stdout(&output), "faulting\n", "{flavor} {kind}");
            assert_one_line_error(&output, 128 + native_signal, &[message, "rip 0x"]);
        }
    }
}

#[test]
fn file_to_file_copies_through_the_isle_are_byte_identical() {
    // Rust's io::copy uses copy_file_range between files, splice with pipes.
    let dir = std::env::temp_dir().join(format!("atoll-copy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(dir.join("in"), &input).unwrap();
    for &flavor in Flavor::ALL {
        let out = dir.join(format!("out-{flavor}"));
        let _slot = isle_slot();
        let output = atoll()
            .args(["run", program(flavor, "cat").to_str().unwrap()])
            .stdin(std::fs::File::open(dir.join("in")).unwrap())
            .stdout(std::fs::File::create(&out).unwrap())
            .output()
            .unwrap();
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        assert_eq!(stderr(&output), "", "{flavor}");
        assert!(
            std::fs::read(&out).unwrap() == input,
            "{flavor}: copy differs"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
