//! Dynamically linked programs: the C test programs built against musl's
//! and glibc's shared libraries, dlopen, the dynamic loader run as the
//! program, and Debian's own binaries (python3, perl, lua, gawk, sqlite3,
//! coreutils, grep, sed, tar, gzip), each compared with a native run, on
//! the host's system directories the isle sees read-only.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// The C programs compared, in both dynamic flavors.
const C_PROGRAMS: [&str; 10] = [
    "hello",
    "signals",
    "timers",
    "signalfd",
    "fdcalls",
    "io_edges",
    "evloop",
    "unixsock",
    "syscall_bytes",
    "threads",
];

/// How many syscall sites `--syscall-summary` says were rewritten in code
/// mapped as the program ran (None where rewriting is off).
fn mapped_sites_rewritten(output: &Output) -> Option<u64> {
    assert_eq!(status(output), 0, "{}", stderr(output));
    let summary = stderr(output);
    if summary_says_not_rewritten(&summary) {
        return None;
    }
    let line = summary
        .lines()
        .find(|line| line.contains("syscall sites in mapped libraries:"))
        .unwrap_or_else(|| panic!("no mapped-library line in:\n{summary}"));
    let rewritten = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" rewritten"))
        .and_then(|number| number.parse().ok());
    Some(rewritten.unwrap_or_else(|| panic!("{line}")))
}

/// Asserts the isle ran `program args` as natively: the same status, the
/// same output, the same error output.
fn assert_same(dir: &Path, program: &str, args: &[&str]) {
    let (native, isle) = both(dir, program, args);
    let what = format!("{program} {args:?}");
    assert_eq!(
        isle.status.code(),
        native.status.code(),
        "{what}: {}",
        stderr(&isle)
    );
    assert_eq!(stdout(&isle), stdout(&native), "{what}");
    assert_eq!(stderr(&isle), stderr(&native), "{what}");
}

#[test]
fn dynamically_linked_c_programs_run_as_natively() {
    for &flavor in Flavor::DYNAMIC {
        for name in C_PROGRAMS {
            let path = program(flavor, name);
            let dir = std::env::current_dir().unwrap();
            let (native, isle) = both(&dir, path.to_str().unwrap(), &[]);
            assert!(
                native.status.success(),
                "{flavor} {name} natively: {}",
                stderr(&native)
            );
            assert_eq!(status(&isle), 0, "{flavor} {name}: {}", stderr(&isle));
            assert_eq!(stdout(&isle), stdout(&native), "{flavor} {name}");
            assert_eq!(stderr(&isle), "", "{flavor} {name}");
        }
    }
}

#[test]
fn dlopen_maps_a_library_whose_code_runs_rewritten() {
    let dlprobe = program(Flavor::GlibcDynamic, "dlprobe");
    let dlprobe = dlprobe.to_str().unwrap();
    let dir = std::env::current_dir().unwrap();
    assert_same(&dir, dlprobe, &["libm.so.6", "cos", "0.25"]);
    assert_same(&dir, dlprobe, &["libm.so.6", "no_such_function"]);
    let output = run(&["run", "--syscall-summary", dlprobe, "libm.so.6", "cos"]);
    assert!(stdout(&output).contains("cos(0.5) = 0.877582561890"));
    // libc's and libm's sites, found as ld.so and dlopen mapped them.
    let Some(rewritten) = mapped_sites_rewritten(&output) else {
        return;
    };
    assert!(rewritten > 100, "{}", stderr(&output));
}

#[test]
fn the_dynamic_loader_runs_as_the_program_too() {
    // The loader opens the program itself, so it must be in the isle: run
    // where it is (the cwd is mounted).
    let hello = program(Flavor::GlibcDynamic, "hello");
    let dir = hello.parent().unwrap();
    let loader = "/lib64/ld-linux-x86-64.so.2";
    assert_same(dir, loader, &["./hello"]);
    assert_same(
        dir,
        loader,
        &["--library-path", "/usr/lib/x86_64-linux-gnu", "./hello"],
    );
    // Addresses differ (natively too, run to run): the rest must not.
    let (native, isle) = both(dir, loader, &["--list", "./hello"]);
    let without_addresses = |output: &Output| {
        stdout(output)
            .lines()
            .map(|line| line.split(" (0x").next().unwrap_or(line).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(status(&isle), 0, "{}", stderr(&isle));
    assert_eq!(without_addresses(&isle), without_addresses(&native));
    // And musl's, which is its libc too.
    let musl_hello = program(Flavor::MuslDynamic, "hello");
    assert_same(
        musl_hello.parent().unwrap(),
        "/lib/ld-musl-x86_64.so.1",
        &["./hello"],
    );
}

#[test]
fn debian_binaries_run_as_natively() {
    let tools = [
        ("/usr/bin/python3", "python3"),
        ("/usr/bin/perl", "perl"),
        ("/usr/bin/lua5.4", "lua5.4"),
        ("/usr/bin/gawk", "gawk"),
        ("/usr/bin/sqlite3", "sqlite3"),
    ];
    for (path, package) in tools {
        if require(tool(path, package)).is_none() {
            return;
        }
    }
    let scratch = Scratch::new("debian");
    let dir = &scratch.0;
    std::fs::write(dir.join("fruit.txt"), "banana\napple\ncherry\napple pie\n").unwrap();
    std::fs::write(dir.join("numbers.txt"), "3\n10\n2\n").unwrap();
    let python = "import json, hashlib, sqlite3, threading, os
db = sqlite3.connect(':memory:')
db.execute('create table t (x integer)')
db.executemany('insert into t values (?)', [(n,) for n in range(1000)])
print(db.execute('select count(*), sum(x) from t').fetchone())
print(json.dumps({'fruit': sorted(open('fruit.txt').read().split())}))
print(hashlib.sha256(b'atoll').hexdigest(), hashlib.md5(b'atoll').hexdigest())
results = []
threads = [threading.Thread(target=lambda n=n: results.append(sum(range(n * 1000)))) for n in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(sorted(results), os.path.exists('/usr/lib/python3'))";
    let cases: [(&str, &[&str]); 18] = [
        ("/usr/bin/python3", &["-c", python]),
        ("/usr/bin/python3", &["-c", "import sys; sys.exit(3)"]),
        (
            "/usr/bin/perl",
            &[
                "-MPOSIX",
                "-e",
                "print join(',', sort qw(b a c)), ' ', floor(2.5), qq(\\n)",
            ],
        ),
        (
            "/usr/bin/lua5.4",
            &[
                "-e",
                "print(string.format('%d %s', 6 * 7, os.date('!%Y-%m-%d', 86400)))",
            ],
        ),
        (
            "/usr/bin/gawk",
            &["{ n[$1]++ } END { print n[\"apple\"], NR }", "fruit.txt"],
        ),
        (
            "/usr/bin/gawk",
            &["BEGIN { printf \"%.3f\\n\", atan2(0, -1) }"],
        ),
        (
            "/usr/bin/sqlite3",
            &[
                ":memory:",
                "create table t(x); insert into t values (1), (2), (40); select sum(x) from t;",
            ],
        ),
        (
            "/usr/bin/ls",
            &["-l", "fruit.txt", "/etc/passwd", "/usr/bin/python3"],
        ),
        ("/usr/bin/sort", &["-n", "numbers.txt"]),
        ("/usr/bin/sort", &["fruit.txt"]),
        ("/usr/bin/sha256sum", &["fruit.txt", "/etc/os-release"]),
        ("/usr/bin/date", &["-d", "@1700000000"]),
        ("/usr/bin/grep", &["-n", "apple", "fruit.txt"]),
        ("/usr/bin/grep", &["-c", "durian", "fruit.txt"]),
        ("/usr/bin/sed", &["-e", "s/apple/APPLE/g", "fruit.txt"]),
        (
            "/usr/bin/tar",
            &["cf", "fruit.tar", "fruit.txt", "numbers.txt"],
        ),
        ("/usr/bin/tar", &["tf", "fruit.tar"]),
        ("/usr/bin/gzip", &["-9", "-c", "-n", "fruit.txt"]),
    ];
    for (program, args) in cases {
        assert_same(dir, program, args);
    }
}

#[test]
fn python_s_calls_go_through_rewritten_sites() {
    if require(tool("/usr/bin/python3", "python3")).is_none() {
        return;
    }
    let output = run(&[
        "run",
        "--syscall-summary",
        "/usr/bin/python3",
        "-c",
        "import os, json\nfor _ in range(200): os.stat('/usr')",
    ]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    let summary = stderr(&output);
    let total = summary
        .lines()
        .find(|line| line.trim_end().ends_with(" total"))
        .unwrap_or_else(|| panic!("no total in:\n{summary}"));
    let numbers: Vec<u64> = total
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    let [calls, rewritten, trapped] = numbers[..] else {
        panic!("{total}");
    };
    assert_eq!(calls, rewritten + trapped, "{total}");
    assert!(calls > 200, "{total}");
    if no_rewrite_asked() {
        assert_eq!(rewritten, 0, "{total}");
    } else {
        assert!(trapped * 20 < calls, "more than 5% trapped: {total}");
    }
}

#[test]
fn the_host_shows_its_system_directories_and_hides_the_rest() {
    let dir = std::env::current_dir().unwrap();
    // Credentials are hidden even where a mount holds them.
    let output = run(&["run", "/usr/bin/cat", "/etc/shadow"]);
    assert_ne!(status(&output), 0);
    assert!(
        stderr(&output).contains("No such file or directory"),
        "{}",
        stderr(&output)
    );
    let output = run(&["run", "/usr/bin/ls", "/etc"]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).lines().any(|name| name == "passwd"));
    // Only system directories (and the cwd's path, /tmp, /dev) at the root.
    let output = run(&["run", "/usr/bin/ls", "/"]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    let top = dir
        .components()
        .nth(1)
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap()
        .to_string();
    for name in stdout(&output).lines() {
        assert!(
            ["bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "tmp", "usr"]
                .contains(&name)
                || name == top,
            "{name} shown at the isle's root: {}",
            stdout(&output)
        );
    }
    for hidden in ["/root", "/home", "/var", "/proc/1/environ"] {
        let output = run(&["run", "/usr/bin/ls", hidden]);
        assert_eq!(
            status(&output),
            2,
            "{hidden} is visible: {}",
            stdout(&output)
        );
    }
    // And what is shown is read-only.
    let output = run(&["run", "/usr/bin/touch", "/usr/atoll-was-here"]);
    assert!(
        stderr(&output).contains("Read-only file system"),
        "{}",
        stderr(&output)
    );
}

/// What programs read of /proc and /sys tells the isle's truth: its one
/// CPU (where Linux shows the machine's), its memory limit, its argv, its
/// ids, its fds and its mounts.
#[test]
fn proc_and_sys_show_the_isle_not_the_host() {
    for (path, package) in [
        ("/usr/bin/python3", "python3"),
        ("/usr/bin/nproc", "coreutils"),
    ] {
        if require(tool(path, package)).is_none() {
            return;
        }
    }
    let scratch = Scratch::new("proc");
    let dir = scratch.0.to_str().unwrap();
    std::fs::write(scratch.0.join("data.txt"), "x").unwrap();
    let machine = std::thread::available_parallelism().unwrap().get();
    let native = Command::new("/usr/bin/nproc").output().unwrap();
    assert_eq!(stdout(&native), format!("{machine}\n"));
    let nproc = run(&["run", "/usr/bin/nproc"]);
    assert_eq!(status(&nproc), 0, "{}", stderr(&nproc));
    assert_eq!(stdout(&nproc), "1\n");
    let grep = run(&["run", "/usr/bin/grep", "-c", "^processor", "/proc/cpuinfo"]);
    assert_eq!(stdout(&grep), "1\n", "{}", stderr(&grep));

    let script = "import os, sys
f = open('data.txt')
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())
mem = open('/proc/meminfo').read().splitlines()[0].split()
mounts = [line.split()[1] for line in open('/proc/mounts')]
print(os.cpu_count(), open('/sys/devices/system/cpu/online').read().strip())
print(open('/proc/self/cmdline').read().split('\\0') == sys.orig_argv + [''])
print(os.readlink('/proc/self/fd/%d' % f.fileno()) == os.path.abspath('data.txt'))
print(status['Pid'].strip() == str(os.getpid()), status['Uid'].split()[0] == str(os.getuid()))
print(mem[0], mem[1], '/usr' in mounts, os.getcwd() in mounts)";
    let output = {
        let _slot = isle_slot();
        atoll()
            .args(["run", "-m", "1G", "/usr/bin/python3", "-c", script])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "1 0\nTrue\nTrue\nTrue True\nMemTotal: 1048576 True True\n"
    );
}

/// A program's own memory map and fds as /proc shows them, static or
/// dynamic: its stack, code, libc, heap, a file mapped and reprotected,
/// what pthread_getattr_np takes from the map, /proc/self/fd/ and
/// /proc/self listed, and its own code copied from its file and made
/// executable by mprotect, which is rewritten like code mmap maps.
#[test]
fn programs_read_their_own_memory_map_and_fds_as_natively() {
    let scratch = Scratch::new("maps");
    for flavor in Flavor::C.iter().chain(Flavor::DYNAMIC) {
        // In the cwd, so the isle sees the file the map names.
        let copy = scratch.0.join(format!("mapsprobe-{flavor}"));
        std::fs::copy(program(*flavor, "mapsprobe"), &copy).unwrap();
        let copy = copy.to_str().unwrap();
        let (native, isle) = both(&scratch.0, copy, &[]);
        assert!(native.status.success(), "{flavor}: {}", stdout(&native));
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
        assert!(stdout(&isle).contains("copied code's getpid: same\n"));
    }
    // The static program maps no library: the only code planned as it
    // was mapped is the copy mprotect made executable.
    let output = {
        let _slot = isle_slot();
        atoll()
            .args(["run", "--syscall-summary", "./mapsprobe-musl"])
            .current_dir(&scratch.0)
            .output()
            .unwrap()
    };
    if let Some(rewritten) = mapped_sites_rewritten(&output) {
        assert!(rewritten > 0, "{}", stderr(&output));
    }
}
