//! Isles side by side under the resource manager: detached isles with `ps`,
//! `logs` and `stop`; busy cores refused, shared or waited for; cores
//! given back after kill -9; 20 concurrent runs. Each test keeps its own
//! registry (ATOLL_RUNTIME_DIR), so tests don't see each other's isles.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Registry {
    dir: PathBuf,
}

impl Registry {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("atoll-isles-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self { dir }
    }

    fn atoll(&self) -> Command {
        let mut command = atoll();
        command.env("ATOLL_RUNTIME_DIR", &self.dir);
        command
    }

    fn output(&self, args: &[&str]) -> Output {
        self.atoll()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("atoll runs")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.atoll()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("atoll starts")
    }

    /// `atoll ps -o json` (with -a: ended isles too).
    fn isles(&self, all: bool) -> Vec<serde_json::Value> {
        let mut args = vec!["ps", "-o", "json"];
        if all {
            args.push("-a");
        }
        let output = self.output(&args);
        assert_eq!(status(&output), 0, "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).expect("ps -o json is JSON")
    }

    /// Waits until `ready` holds for the listed isles.
    fn wait_for(&self, all: bool, ready: impl Fn(&[serde_json::Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(&self.isles(all)) {
            assert!(Instant::now() < deadline, "{:?}", self.isles(all));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.output(&["stop", "--all", "-t", "1"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(flavor: Flavor, name: &str) -> String {
    program(flavor, name).to_str().expect("utf-8").to_string()
}

#[test]
fn detached_isles_are_listed_logged_and_stopped() {
    let _slot = isle_slot();
    let registry = Registry::new("detached");
    let sleeper = path(Flavor::Musl, "sleeper");
    let started = registry.output(&["run", "-d", "--name", "napper", &sleeper, "30", "napper"]);
    assert_eq!(status(&started), 0, "{}", stderr(&started));
    let id = stdout(&started)
        .strip_prefix("isle ")
        .and_then(|rest| rest.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{}", stdout(&started)));
    let isles = registry.isles(false);
    assert_eq!(isles.len(), 1, "{isles:?}");
    assert_eq!(isles[0]["id"], id);
    assert_eq!(isles[0]["name"], "napper");
    assert!(isles[0]["command"]
        .as_str()
        .unwrap()
        .contains("sleeper 30 napper"));
    assert!(!isles[0]["cpus"].as_array().unwrap().is_empty());
    let table = stdout(&registry.output(&["ps"]));
    assert!(table.starts_with("ID  NAME"), "{table}");
    assert!(
        table.contains("napper") && table.contains("running"),
        "{table}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = registry.output(&["logs", "napper"]);
        assert_eq!(status(&logs), 0, "{}", stderr(&logs));
        if stdout(&logs) == "started napper\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", stdout(&logs));
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = registry.output(&["stop", "napper", "-t", "2"]);
    assert_eq!(stdout(&stopped), format!("stopped isle {id}\n"));
    assert!(registry.isles(false).is_empty());
    // Stopped, it is listed as ended by SIGTERM (128 + 15), its log kept.
    let listed = registry.isles(true);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["ended"]["status"], 143, "{listed:?}");
    assert_eq!(
        stdout(&registry.output(&["logs", "napper"])),
        "started napper\n"
    );
    let forgotten = registry.output(&["stop", "napper"]);
    assert_eq!(stdout(&forgotten), format!("removed ended isle {id}\n"));

    // One that ends by itself stays listed as ended, with its log.
    let quick = registry.output(&["run", "-d", &sleeper, "0", "quick"]);
    assert_eq!(status(&quick), 0, "{}", stderr(&quick));
    registry.wait_for(true, |isles| {
        isles.iter().any(|isle| isle["ended"]["status"] == 0)
    });
    let ended = registry
        .isles(true)
        .into_iter()
        .find(|isle| isle["ended"]["status"] == 0);
    let ended_id = ended.unwrap()["id"].to_string();
    let logs = registry.output(&["logs", &ended_id]);
    assert_eq!(stdout(&logs), "started quick\ndone quick\n");
    assert!(
        registry.isles(false).is_empty(),
        "an ended isle isn't running"
    );
    let removed = registry.output(&["stop", &ended_id]);
    assert_eq!(stdout(&removed), format!("removed ended isle {ended_id}\n"));
    assert!(registry.isles(true).is_empty());
    let unknown = registry.output(&["logs", "nobody"]);
    assert_one_line_error(&unknown, 2, &["nobody", "atoll ps"]);
}

#[test]
fn a_busy_core_is_refused_naming_its_holder_unless_shared_or_waited_for() {
    let _slot = isle_slot();
    let registry = Registry::new("busy");
    let holder = registry.spawn(&["run", &path(Flavor::Musl, "sleeper"), "2", "holder"]);
    registry.wait_for(false, |isles| isles.len() == 1);
    let hello = path(Flavor::Musl, "hello");

    let refused = registry.output(&["run", &hello]);
    assert_one_line_error(
        &refused,
        125,
        &["holds", "sleeper 2 holder", "--overcommit", "--wait"],
    );

    // Two isles at once, sharing the isle core: both right.
    let shared = registry.output(&["run", "--overcommit", &hello]);
    assert_eq!(status(&shared), 0, "{}", stderr(&shared));
    assert_eq!(stdout(&shared), "Hello, world\n");

    let waited = registry.output(&["run", "--wait", &hello]);
    assert_eq!(status(&waited), 0, "{}", stderr(&waited));
    assert_eq!(stdout(&waited), "Hello, world\n");
    assert!(
        stderr(&waited).starts_with("atoll: waiting: "),
        "{}",
        stderr(&waited)
    );
    let holder = holder.wait_with_output().unwrap();
    assert_eq!(status(&holder), 0, "{}", stderr(&holder));
    assert_eq!(stdout(&holder), "started holder\ndone holder\n");

    let linux = registry.output(&["run", "--cpus", "0", &hello]);
    assert_one_line_error(&linux, 2, &["CPU 0 belongs to Linux"]);
    let missing = registry.output(&["run", "--cpus", "4000", &hello]);
    assert_one_line_error(&missing, 2, &["CPU 4000 doesn't exist"]);
    let garbled = registry.output(&["run", "--cpus", "1-", &hello]);
    assert_one_line_error(&garbled, 2, &["--cpus 1-", "2-5,8"]);
}

#[test]
fn kill_9_of_an_atoll_process_gives_its_cores_back() {
    let _slot = isle_slot();
    let registry = Registry::new("reclaim");
    let mut victim = registry.spawn(&["run", &path(Flavor::Musl, "sleeper"), "30"]);
    registry.wait_for(false, |isles| isles.len() == 1);
    // SAFETY: a signal to our own child process.
    let killed = unsafe { libc::kill(victim.id() as i32, libc::SIGKILL) };
    assert_eq!(killed, 0);
    let pid = victim.id();
    victim.wait().unwrap();
    assert!(
        registry.isles(true).is_empty(),
        "{:?}",
        registry.isles(true)
    );
    // Its private /tmp went with it.
    let prefix = format!("atoll-tmp-{pid}-");
    for base in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(&prefix), "{name} left behind");
        }
    }
    let next = registry.output(&["run", &path(Flavor::Musl, "hello")]);
    assert_eq!(status(&next), 0, "{}", stderr(&next));
}

/// kill -9 of the top atoll process of a tree of isle processes (a shell,
/// its background jobs, a nested shell and its child) ends every one of
/// them, and leaves no registration behind.
#[test]
fn kill_9_of_the_top_process_ends_its_whole_tree() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let _slot = isle_slot();
    let registry = Registry::new("tree");
    let script = "sleep 60 & sh -c 'sleep 60; true' & wait";
    let mut top = registry.spawn(&["run", &busybox.to_string_lossy(), "sh", "-c", script]);
    let deadline = Instant::now() + Duration::from_secs(20);
    // sh's two children, the inner sh's sleep.
    let mut tree = live_descendants(top.id());
    while tree.len() < 3 {
        assert!(Instant::now() < deadline, "the tree never grew: {tree:?}");
        std::thread::sleep(Duration::from_millis(20));
        tree = live_descendants(top.id());
    }
    registry.wait_for(false, |isles| isles.len() == 1);
    // SAFETY: a signal to our own child process.
    let killed = unsafe { libc::kill(top.id() as i32, libc::SIGKILL) };
    assert_eq!(killed, 0);
    top.wait().unwrap();
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !matches!(
                stat[stat.rfind(')').unwrap() + 2..].chars().next(),
                Some('Z' | 'X')
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tree.iter().any(alive) {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            tree.iter().filter(|pid| alive(pid)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        registry.isles(true).is_empty(),
        "{:?}",
        registry.isles(true)
    );
}

/// `atoll ps --tree` lists an isle's processes below it: a shell's two
/// background jobs, each a process of its own named after its program;
/// `atoll top` counts all three.
#[test]
fn ps_tree_shows_an_isles_processes() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let _slot = isle_slot();
    let registry = Registry::new("tree-ps");
    let mut top = registry.spawn(&[
        "run",
        &busybox.to_string_lossy(),
        "sh",
        "-c",
        "sleep 60 & sleep 60 & wait",
    ]);
    registry.wait_for(false, |isles| isles.len() == 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let processes = loop {
        let output = registry.output(&["ps", "--tree", "-o", "json"]);
        assert_eq!(status(&output), 0, "{}", stderr(&output));
        let isles: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        let processes = isles[0]["processes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if processes.len() >= 2 {
            break processes;
        }
        assert!(Instant::now() < deadline, "{isles:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(processes.len(), 2, "{processes:?}");
    for process in &processes {
        assert_eq!(process["ppid"], top.id(), "{processes:?}");
        assert_eq!(process["name"], "busybox", "{processes:?}");
    }
    let table = registry.output(&["ps", "--tree"]);
    for process in &processes {
        let line = format!("└─ {} busybox", process["pid"]);
        assert!(stdout(&table).contains(&line), "{}", stdout(&table));
    }
    // atoll top counts the whole tree: the shell and its two jobs.
    let shown = registry.output(&["top", "-n", "1", "-d", "0.3"]);
    let text = stdout(&shown);
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let column = header.iter().position(|&name| name == "PROCS");
    assert_eq!(column.and_then(|at| row.get(at)), Some(&"3"), "{text}");
    let _ = top.kill();
    let _ = top.wait();
}

#[test]
fn twenty_concurrent_runs_all_finish_and_leave_the_registry_empty() {
    let _slot = isle_slot();
    let registry = Registry::new("race");
    let hello = path(Flavor::Glibc, "hello");
    let children: Vec<Child> = (0..20)
        .map(|index| {
            let mode = if index % 2 == 0 {
                "--overcommit"
            } else {
                "--wait"
            };
            registry.spawn(&["run", mode, &hello])
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(status(&output), 0, "{}", stderr(&output));
        assert_eq!(stdout(&output), "Hello, world\n");
    }
    assert!(registry.isles(true).is_empty());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.dir.join("isles.json")).unwrap()).unwrap();
    assert!(state["next_id"].as_u64().unwrap() > 20, "{state}");
}

#[test]
fn a_preset_partition_of_the_host_config_sets_cores_and_memory() {
    let _slot = isle_slot();
    let registry = Registry::new("preset");
    // The registry's directory, which atoll refuses unless it is private.
    std::fs::create_dir_all(&registry.dir).unwrap();
    std::fs::set_permissions(
        &registry.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let config = registry.dir.join("host.toml");
    std::fs::write(
        &config,
        "host_cpus = \"0\"\n[[partition]]\ncpus = \"1\"\nmemory = \"96M\"\n",
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        registry
            .atoll()
            .env("ATOLL_HOST_CONFIG", &config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let sleeper = path(Flavor::Musl, "sleeper");
    let started = with_config(&["run", "-d", "-i", "0", &sleeper, "30"]);
    assert_eq!(status(&started), 0, "{}", stderr(&started));
    let isles = registry.isles(false);
    assert_eq!(isles[0]["cpus"], serde_json::json!([1]));
    assert_eq!(isles[0]["memory"], 96 << 20);
    let missing = with_config(&["run", "-i", "3", &sleeper]);
    assert_one_line_error(&missing, 2, &["-i 3", "1 partition(s)"]);
    let both = with_config(&["run", "-i", "0", "-c", "1", &sleeper]);
    assert_eq!(status(&both), 2, "{}", stderr(&both));
    std::fs::write(&config, "host_cpus = 7\n").unwrap();
    let broken = with_config(&["run", &sleeper]);
    assert_one_line_error(&broken, 2, &["host.toml", "line 1", "expected a string"]);
}

#[test]
fn top_shows_each_running_isle_with_live_figures() {
    let _slot = isle_slot();
    let registry = Registry::new("top");
    let started = registry.output(&[
        "run",
        "-d",
        "--name",
        "watched",
        &path(Flavor::Musl, "sleeper"),
        "30",
    ]);
    assert_eq!(status(&started), 0, "{}", stderr(&started));
    // Measure the sleeping isle, not its start-up: boot and the memory
    // populated ahead of use take a core for a moment.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let top = registry.output(&["top", "-n", "1", "-d", "0.3"]);
    assert_eq!(status(&top), 0, "{}", stderr(&top));
    let text = stdout(&top);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("CALLS/S"),
        "{text}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[1], "watched", "{text}");
    // A sleeping isle parks its vCPU: well under one core busy.
    let cpu: f64 = row[3].parse().unwrap_or_else(|_| panic!("{text}"));
    assert!(cpu < 90.0, "{text}");
    let bad = registry.output(&["top", "-d", "0"]);
    assert_one_line_error(&bad, 2, &["-d 0"]);
}

#[test]
fn sigterm_and_ctrl_c_clean_up_at_once_and_exit_as_the_signal_would() {
    let _slot = isle_slot();
    let registry = Registry::new("sigterm");
    for (signal, status_expected) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let child = registry.spawn(&["run", &path(Flavor::Musl, "sleeper"), "30"]);
        registry.wait_for(false, |isles| isles.len() == 1);
        let pid = child.id();
        // SAFETY: a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(status_expected),
            "{}",
            stderr(&output)
        );
        // Gone from the registry by itself, no reclaim needed: read the
        // file directly rather than through a command that would reclaim.
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(registry.dir.join("isles.json")).unwrap())
                .unwrap();
        assert_eq!(state["isles"], serde_json::json!([]), "{state}");
        let prefix = format!("atoll-tmp-{pid}-");
        for entry in std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(&prefix), "{name} left behind");
        }
    }
}
