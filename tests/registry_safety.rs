//! The registry of isles can't be turned against its owner: it lives in a
//! directory of theirs (mode 0700, files 0600), a record can make atoll
//! neither signal a process it didn't start nor delete a file outside the
//! registry, a garbled one is an error rather than a fresh start, and no
//! stats file outlives its isle.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// A fresh registry directory for test `name` (made by atoll, or by `make`).
fn registry_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atoll-safety-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn make_private(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// `atoll ARGS` on the registry in `dir`.
fn atoll_in(dir: &Path, args: &[&str]) -> Output {
    atoll()
        .args(args)
        .env("ATOLL_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("atoll runs")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Field 22 of /proc/PID/stat: when the process started.
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn planted(id: u32, pid: u32, start_ticks: u64, log: Option<&Path>) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "pid": pid,
        "start_ticks": start_ticks,
        "boot_id": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim(),
        "cpus": [1],
        "reserved": [1],
        "node": 0,
        "memory": 0,
        "shared": false,
        "command": "planted",
        "started": 0,
        "log": log,
    })
}

#[test]
fn planted_records_neither_signal_a_foreign_process_nor_delete_a_foreign_file() {
    let dir = registry_dir("planted");
    make_private(&dir);
    let outside =
        std::env::temp_dir().join(format!("atoll-safety-precious-{}", std::process::id()));
    std::fs::write(&outside, b"precious").unwrap();
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = sleeper.id();
    let ticks = start_ticks(pid);
    let sneaky = dir.join("logs/../../").join(outside.file_name().unwrap());
    let plant = || {
        let mut ended = planted(3, pid, ticks + 1, Some(&outside));
        ended["ended"] = serde_json::json!({"status": 0, "at": 0});
        let isles = vec![
            // Its pid, started at another time: not the process it names.
            planted(1, pid, ticks + 1, None),
            planted(2, pid, ticks + 1, Some(&outside)),
            ended,
            // The right start time, but a log outside the registry.
            planted(4, pid, ticks, Some(&sneaky)),
        ];
        let state = serde_json::json!({"next_id": 5, "isles": isles});
        std::fs::write(dir.join("isles.json"), state.to_string()).unwrap();
    };
    let unharmed = |after: &str, sleeper: &mut std::process::Child| {
        assert!(
            matches!(sleeper.try_wait(), Ok(None)),
            "{after} signalled the sleep"
        );
        assert_eq!(
            std::fs::read(&outside).ok().as_deref(),
            Some(&b"precious"[..]),
            "{after} deleted {}",
            outside.display()
        );
    };
    plant();
    let listed = atoll_in(&dir, &["ps", "-a", "-o", "json"]);
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    let isles: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(isles.is_empty(), "{isles:?}");
    assert!(
        stderr(&listed).contains("is outside") && stderr(&listed).contains("the file left alone"),
        "{}",
        stderr(&listed)
    );
    unharmed("ps", &mut sleeper);
    plant();
    let stopped = atoll_in(&dir, &["stop", "--all", "-t", "1"]);
    assert_eq!(status(&stopped), 0, "{}", stderr(&stopped));
    unharmed("stop --all", &mut sleeper);
    for id in ["2", "3", "4"] {
        plant();
        let stopped = atoll_in(&dir, &["stop", id, "-t", "1"]);
        assert_eq!(status(&stopped), 2, "{}", stderr(&stopped));
        unharmed(&format!("stop {id}"), &mut sleeper);
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let _ = std::fs::remove_file(&outside);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_garbled_registry_is_an_error_naming_it() {
    let dir = registry_dir("garbled");
    make_private(&dir);
    let state = dir.join("isles.json");
    std::fs::write(&state, b"{\"next_id\": 3, \"isles\": [{\"id\": ").unwrap();
    let hello = program(Flavor::Musl, "hello");
    for args in [vec!["ps"], vec!["run", hello.to_str().unwrap()]] {
        let output = atoll_in(&dir, &args);
        assert_one_line_error(
            &output,
            125,
            &[
                &format!("{} is corrupt", state.display()),
                "remove it if no isles are running",
            ],
        );
    }
    // Left as it was, for the user to look at.
    assert_eq!(
        std::fs::read(&state).unwrap(),
        b"{\"next_id\": 3, \"isles\": [{\"id\": "
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_registry_is_private_even_under_umask_0() {
    let _slot = isle_slot();
    let dir = registry_dir("modes");
    let atoll_umask_0 = |args: &[&str]| {
        let mut command = atoll();
        command
            .args(args)
            .env("ATOLL_RUNTIME_DIR", &dir)
            .stdin(Stdio::null());
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0);
                Ok(())
            })
        };
        command.output().expect("atoll runs")
    };
    let sleeper = program(Flavor::Musl, "sleeper");
    let started = atoll_umask_0(&["run", "-d", sleeper.to_str().unwrap(), "30", "private"]);
    assert_eq!(status(&started), 0, "{}", stderr(&started));
    let id = stdout(&started)
        .trim()
        .trim_start_matches("isle ")
        .to_string();
    let stats = dir.join("stats").join(format!("{id}.json"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !stats.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {}",
            stats.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for private_dir in [dir.clone(), dir.join("stats"), dir.join("logs")] {
        assert_eq!(mode(&private_dir), 0o700, "{}", private_dir.display());
    }
    let logs: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    for file in [
        dir.join("isles.json"),
        dir.join("lock"),
        stats,
        logs[0].clone(),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    let stopped = atoll_umask_0(&["stop", "--all", "-t", "2"]);
    assert_eq!(status(&stopped), 0, "{}", stderr(&stopped));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_stats_file_outlives_its_isle() {
    let _slot = isle_slot();
    let dir = registry_dir("stats");
    let hello = program(Flavor::Musl, "hello");
    // Busy host cores delay the stats writer, as a loaded machine does:
    // that is when it used to write the file again after it was removed.
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let busy = std::sync::Arc::clone(&busy);
            std::thread::spawn(move || {
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for run in 0..30 {
        let output = atoll_in(&dir, &["run", hello.to_str().unwrap()]);
        assert_eq!(status(&output), 0, "run {run}: {}", stderr(&output));
        let left: Vec<_> = std::fs::read_dir(dir.join("stats"))
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "run {run} left {left:?}");
    }
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().unwrap();
    }
    // Stopped by SIGTERM (as `atoll stop` does) at points spread over the
    // writer's half-second cycle: release runs on the signal thread then.
    let sleeper = program(Flavor::Musl, "sleeper");
    for run in 0..10u64 {
        let mut child = atoll()
            .args(["run", sleeper.to_str().unwrap(), "30"])
            .env("ATOLL_RUNTIME_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read_dir(dir.join("stats"))
            .map_or(true, |mut entries| entries.next().is_none())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "run {run}: no stats file"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(run * 50));
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.join("stats"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(left.is_empty(), "stopped run {run} left {left:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default registry directory of a user with no XDG_RUNTIME_DIR, made
/// by root before that user runs atoll, in three bad ways: each is refused
/// with what to do. Runs as root (as in CI), dropping to uids no one uses,
/// so as not to meet the /tmp/atoll-UID of a real user.
#[test]
fn a_runtime_directory_someone_else_prepared_is_refused() {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let needs = tool("/usr/bin/setpriv", "util-linux").and_then(|setpriv| {
        root.then_some(setpriv)
            .ok_or_else(|| "it must run as root, to prepare another user's directory".to_string())
    });
    let Some(setpriv) = require(needs) else {
        return;
    };
    // A copy of atoll any user can run, wherever the build tree is.
    let copies = std::env::temp_dir().join(format!("atoll-safety-bin-{}", std::process::id()));
    std::fs::create_dir_all(&copies).unwrap();
    std::fs::set_permissions(&copies, std::fs::Permissions::from_mode(0o755)).unwrap();
    let atoll = copies.join("atoll");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_atoll")), &atoll);
    let ps_as = |uid: u32| {
        Command::new(&setpriv)
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .env_remove("ATOLL_RUNTIME_DIR")
            .env_remove("XDG_RUNTIME_DIR")
            .arg(&atoll)
            .arg("ps")
            .current_dir(&copies)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let default_dir = |uid: u32| {
        let dir = PathBuf::from(format!("/tmp/atoll-{uid}"));
        let _ = std::fs::remove_file(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        dir
    };

    let owned_by_root = default_dir(61234);
    make_private(&owned_by_root);
    assert_one_line_error(
        &ps_as(61234),
        125,
        &[
            "/tmp/atoll-61234 belongs to uid 0, not to you (uid 61234)",
            "set ATOLL_RUNTIME_DIR",
        ],
    );

    let linked = default_dir(61235);
    let target = copies.join("target");
    make_private(&target);
    std::os::unix::fs::chown(&target, Some(61235), Some(61235)).unwrap();
    std::os::unix::fs::symlink(&target, &linked).unwrap();
    assert_one_line_error(
        &ps_as(61235),
        125,
        &["/tmp/atoll-61235 is a symbolic link", "remove it"],
    );

    let open = default_dir(61236);
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&open, Some(61236), Some(61236)).unwrap();
    assert_one_line_error(
        &ps_as(61236),
        125,
        &[
            "/tmp/atoll-61236 is open to other users (mode 0755)",
            "chmod 700 /tmp/atoll-61236",
        ],
    );

    // None there: atoll makes its own, private.
    let fresh = default_dir(61237);
    let listed = ps_as(61237);
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    assert_eq!(mode(&fresh), 0o700);

    for dir in [owned_by_root, open, fresh] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(linked);
    let _ = std::fs::remove_dir_all(&copies);
}

/// Files planted in the registry (by its owner's mistake, or a program of
/// theirs gone wrong) are never followed: a symlink in place of
/// isles.json, the lock, the stats or logs directory or a stats file
/// leaves its target as it was, and a registry file someone opened up to
/// everyone is made 0600 again when atoll next writes it.
#[test]
fn planted_links_and_open_modes_in_the_registry_are_not_followed_or_kept() {
    let _slot = isle_slot();
    let hello = program(Flavor::Musl, "hello");
    let sleeper = program(Flavor::Musl, "sleeper");
    let target = std::env::temp_dir().join(format!("atoll-safety-target-{}", std::process::id()));
    let intact = |after: &str| {
        assert_eq!(
            std::fs::read(&target).ok().as_deref(),
            Some(&b"precious"[..]),
            "{after}: {} was written through a link",
            target.display()
        );
        assert_eq!(mode(&target), 0o644, "{after}: its mode changed");
    };
    let fresh = |name: &str| {
        std::fs::write(&target, b"precious").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dir = registry_dir(name);
        make_private(&dir);
        dir
    };

    // Where atoll reads or locks, the link is an error that names it.
    for link in ["isles.json", "lock"] {
        let dir = fresh("link");
        std::os::unix::fs::symlink(&target, dir.join(link)).unwrap();
        for args in [vec!["ps"], vec!["run", hello.to_str().unwrap()]] {
            let output = atoll_in(&dir, &args);
            assert_eq!(
                status(&output),
                125,
                "{link}, {args:?}: {}",
                stderr(&output)
            );
            assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
            assert!(
                stderr(&output).contains(&format!("{link} is a symbolic link")),
                "{link}, {args:?}: the error doesn't say what is wrong: {}",
                stderr(&output)
            );
            intact(&format!("{link}, {args:?}"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // The stats and logs directories: a link is refused, as for the
    // registry's own directory.
    for subdir in ["stats", "logs"] {
        let dir = fresh("subdir");
        let elsewhere = registry_dir("elsewhere");
        make_private(&elsewhere);
        std::os::unix::fs::symlink(&elsewhere, dir.join(subdir)).unwrap();
        let output = atoll_in(&dir, &["run", "-d", sleeper.to_str().unwrap(), "1"]);
        let _ = atoll_in(&dir, &["stop", "--all", "-t", "1"]);
        let left: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
        assert!(
            left.is_empty(),
            "{subdir} as a link: atoll wrote {left:?} through it; stderr {}",
            stderr(&output)
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&elsewhere);
    }

    // The stats file of the next isle, planted as a link to the target:
    // the isle runs, the target is not written.
    let dir = fresh("stats-link");
    std::fs::write(dir.join("isles.json"), br#"{"next_id": 7, "isles": []}"#).unwrap();
    let stats = dir.join("stats");
    make_private(&stats);
    std::os::unix::fs::symlink(&target, stats.join("7.json")).unwrap();
    let output = atoll_in(&dir, &["run", sleeper.to_str().unwrap(), "1"]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    intact("a stats file planted as a link");
    let _ = std::fs::remove_dir_all(&dir);

    // A registry file left open to everyone is 0600 once atoll writes it.
    let dir = fresh("open-modes");
    for file in ["isles.json", "lock"] {
        let path = dir.join(file);
        std::fs::write(
            &path,
            if file == "lock" {
                &b""[..]
            } else {
                br#"{"next_id": 1, "isles": []}"#
            },
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let output = atoll_in(&dir, &["run", hello.to_str().unwrap()]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    for file in ["isles.json", "lock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&target);
}
