//! The isles on this host: getting cores and memory for one from the
//! resource manager (and giving them back), and `atoll ps`, `stop` and
//! `logs`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atoll_manager::policy::{self, Grant, Holding, HostConfig, Refusal, Request};
use atoll_manager::state::{self, Record};
use atoll_manager::topology::{format_list, Topology};
use clap::Args;

use crate::error::CliError;

/// Set in a detached isle's atoll process: where its output goes.
pub const LOG_ENV: &str = "ATOLL_ISLE_LOG";

/// The machine as isles may use it: /sys, cut to the CPUs atoll may run on.
fn topology() -> Result<Topology, CliError> {
    let mut topology = Topology::from_sys(Path::new("/sys")).map_err(CliError::failed)?;
    let allowed = atoll_vmm::host::allowed_cores();
    topology
        .cpus
        .retain(|cpu| allowed.contains(&(cpu.id as usize)));
    if topology.cpus.is_empty() {
        return Err(CliError::failed(
            "no CPU of /sys is in atoll's affinity mask",
        ));
    }
    Ok(topology)
}

fn holding(record: &Record) -> Holding {
    Holding {
        label: format!("isle {} ({})", record.id, record.command),
        cpus: record.cpus.clone(),
        reserved: record.reserved.clone(),
        node: record.node,
        memory: record.memory,
    }
}

/// The registry, locked, after cleaning up behind isles whose atoll died
/// without doing so (kill -9): their private /tmp and their stats file.
fn locked_state() -> Result<(state::Locked, Vec<Record>), state::StateError> {
    let (locked, stale) = state::lock()?;
    for record in &stale {
        // A pid now reused names another process's private /tmps.
        if !Path::new(&format!("/proc/{}", record.pid)).exists() {
            crate::run::tmp::remove_private_tmps(record.pid);
        }
        if let Some(path) = stats_path(record.id) {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok((locked, stale))
}

/// An isle's claim on its cores and memory, recorded under the runtime
/// directory until this is dropped.
pub struct Registration {
    pub id: u32,
    pub grant: Grant,
    /// The exit status, once known (see [`Registration::finish`]).
    status: Option<i32>,
}

impl Registration {
    /// Asks the resource manager for `request`; with `wait`, polls until it
    /// can be had. Refused: a usage error for bad input, else a failure
    /// (others hold it, or the state can't be read or written).
    pub fn claim(
        config: &HostConfig,
        request: &Request,
        name: Option<String>,
        command: String,
        memory: u64,
        wait: bool,
    ) -> Result<Self, CliError> {
        let topology = topology()?;
        let mut announced = false;
        loop {
            let (mut locked, _stale) = locked_state().map_err(CliError::failed)?;
            if let Some(name) = &name {
                if locked
                    .running()
                    .any(|record| record.name.as_ref() == Some(name))
                {
                    return Err(CliError::usage(format!(
                        "--name {name}: an isle of that name is running; stop it or pick another"
                    )));
                }
            }
            let held: Vec<Holding> = locked.running().map(holding).collect();
            match policy::allocate(&topology, config, &held, request) {
                Ok(grant) => {
                    let id = locked.next_id();
                    let pid = std::process::id();
                    // An ended isle's name passes to the new one.
                    for record in &mut locked.state.isles {
                        if record.name.is_some() && record.name == name {
                            record.name = None;
                        }
                    }
                    locked.state.isles.push(Record {
                        id,
                        name,
                        pid,
                        start_ticks: state::start_ticks(pid).unwrap_or(0),
                        boot_id: state::boot_id(),
                        cpus: grant.cpus.clone(),
                        reserved: grant.reserved.clone(),
                        node: grant.node,
                        memory,
                        shared: grant.shared,
                        command,
                        started: SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |since| since.as_secs()),
                        // Only a log of this registry: atoll deletes it later.
                        log: std::env::var_os(LOG_ENV)
                            .map(PathBuf::from)
                            .filter(|log| state::is_log_path(locked.dir(), log)),
                        ended: None,
                    });
                    locked.save().map_err(CliError::failed)?;
                    return Ok(Self {
                        id,
                        grant,
                        status: None,
                    });
                }
                Err(Refusal::Invalid(message)) => return Err(CliError::usage(message)),
                Err(Refusal::Busy(message)) if !wait => return Err(CliError::failed(message)),
                Err(Refusal::Busy(message)) => {
                    if !announced {
                        eprintln!("atoll: waiting: {message}");
                        announced = true;
                    }
                }
            }
            drop(locked);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Registration {
    /// Records how the isle ended (for a detached one, `atoll ps -a`).
    pub fn finish(&mut self, status: i32) {
        self.status = Some(status);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        release(self.id, self.status);
    }
}

/// Gives isle `id`'s cores and memory back: its record goes, or, for a
/// detached isle, stays as ended (with `status`) so its log can be read.
pub fn release(id: u32, status: Option<i32>) {
    // Its writer stops first, or it could write the file again after.
    atoll_vmm::isle::stop_publishing_stats();
    if let Some(path) = stats_path(id) {
        let _ = std::fs::remove_file(path.with_extension("tmp"));
        let _ = std::fs::remove_file(path);
    }
    if let Ok((mut locked, _)) = locked_state() {
        let pid = std::process::id();
        let mine = |record: &Record| record.id == id && record.pid == pid;
        if let Some(record) = locked.state.isles.iter_mut().find(|record| mine(record)) {
            if record.log.is_some() {
                record.end(status);
            } else {
                locked.state.isles.retain(|record| !mine(record));
            }
        }
        let _ = locked.save();
    }
}

/// Live isles, stale ones dropped on the way.
fn live_isles() -> Result<Vec<Record>, CliError> {
    let (locked, _) = locked_state().map_err(CliError::failed)?;
    Ok(locked.state.isles.clone())
}

/// The memory an isle holds in the registry: none ("-") without -m.
fn held_memory_text(bytes: u64) -> String {
    if bytes == 0 {
        "-".to_string()
    } else {
        memory_text(bytes)
    }
}

fn memory_text(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1}G", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{}M", bytes >> 20)
    }
}

fn uptime_text(started: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let seconds = now.saturating_sub(started);
    match seconds {
        0..=99 => format!("{seconds}s"),
        100..=5999 => format!("{}m", seconds / 60),
        _ => format!("{}h", seconds / 3600),
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  atoll ps\n  atoll ps --tree\n  atoll ps -a -o json")]
pub struct PsArgs {
    /// Also list detached isles that have ended
    #[arg(short = 'a', long)]
    all: bool,
    /// Also list each isle's processes (its program's forks), as a tree
    #[arg(short = 't', long)]
    tree: bool,
    /// Output format: table (default) or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// `atoll ps`: the isles running on this host.
pub fn ps(args: PsArgs) -> Result<i32, CliError> {
    let isles: Vec<Record> = live_isles()?
        .into_iter()
        .filter(|isle| args.all || isle.running())
        .collect();
    if args.output == "json" {
        let mut listed = serde_json::to_value(&isles).map_err(CliError::failed)?;
        if let (true, Some(listed)) = (args.tree, listed.as_array_mut()) {
            for (entry, isle) in listed.iter_mut().zip(&isles) {
                let processes: Vec<serde_json::Value> = process_tree(isle.pid)
                    .into_iter()
                    .map(|process| {
                        serde_json::json!({
                            "pid": process.pid,
                            "ppid": process.ppid,
                            "name": process.name,
                        })
                    })
                    .collect();
                entry["processes"] = processes.into();
            }
        }
        let text = serde_json::to_string_pretty(&listed).map_err(CliError::failed)?;
        println!("{text}");
        return Ok(0);
    }
    let rows: Vec<[String; 9]> = isles
        .iter()
        .map(|isle| {
            [
                isle.id.to_string(),
                isle.name.clone().unwrap_or_else(|| "-".into()),
                isle.pid.to_string(),
                format!(
                    "{}{}",
                    format_list(&isle.cpus),
                    if isle.shared { " (shared)" } else { "" }
                ),
                isle.node.map_or("-".into(), |node| node.to_string()),
                held_memory_text(isle.memory),
                uptime_text(isle.started),
                match &isle.ended {
                    None => "running".into(),
                    Some(state::Ended {
                        status: Some(status),
                        ..
                    }) => format!("exited {status}"),
                    Some(_) => "killed".into(),
                },
                isle.command.clone(),
            ]
        })
        .collect();
    let header = [
        "ID", "NAME", "PID", "CORES", "NODE", "MEMORY", "UPTIME", "STATUS", "COMMAND",
    ];
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                text += cell;
            } else {
                text += &format!("{cell:<width$}  ", width = widths[index]);
            }
        }
        println!("{}", text.trim_end());
    };
    line(header.to_vec());
    for (row, isle) in rows.iter().zip(&isles) {
        line(row.iter().map(String::as_str).collect());
        if args.tree && isle.running() {
            for process in process_tree(isle.pid) {
                let indent = "   ".repeat(process.depth);
                println!("  {indent}└─ {} {}", process.pid, process.name);
            }
        }
    }
    Ok(0)
}

/// One of an isle's processes below its atoll process.
struct TreeProcess {
    pid: u32,
    ppid: u32,
    /// Its program's name (a forked monitor goes by it).
    name: String,
    /// 0 for a child of the atoll process.
    depth: usize,
}

/// The live processes below `root`, depth first, from /proc: an isle's
/// processes are host processes, its forks' monitors.
fn process_tree(root: u32) -> Vec<TreeProcess> {
    let mut children = std::collections::HashMap::<u32, Vec<(u32, String)>>::new();
    for process in atoll_vmm::host::live_processes() {
        children
            .entry(process.ppid)
            .or_default()
            .push((process.pid, process.name));
    }
    fn visit(
        parent: u32,
        depth: usize,
        children: &mut std::collections::HashMap<u32, Vec<(u32, String)>>,
        tree: &mut Vec<TreeProcess>,
    ) {
        let mut mine = children.remove(&parent).unwrap_or_default();
        mine.sort();
        for (pid, name) in mine {
            tree.push(TreeProcess {
                pid,
                ppid: parent,
                name,
                depth,
            });
            visit(pid, depth + 1, children, tree);
        }
    }
    let mut tree = Vec::new();
    visit(root, 0, &mut children, &mut tree);
    tree
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  atoll stop web\n  atoll stop 3 4 --timeout 2")]
pub struct StopArgs {
    /// Isles to stop, by id or name
    #[arg(value_name = "ID|NAME", required_unless_present = "all")]
    isles: Vec<String>,
    /// Stop every isle
    #[arg(long, conflicts_with = "isles")]
    all: bool,
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
}

/// `atoll stop`: SIGTERM to each isle's atoll process, SIGKILL after the
/// timeout; their cores and memory come back either way. An ended
/// detached isle is forgotten, log and all.
pub fn stop(args: StopArgs) -> Result<i32, CliError> {
    let isles = live_isles()?;
    let chosen: Vec<&Record> = if args.all {
        isles.iter().filter(|isle| isle.running()).collect()
    } else {
        let mut chosen = Vec::new();
        for which in &args.isles {
            match isles
                .iter()
                .find(|isle| isle.id.to_string() == *which || isle.name.as_deref() == Some(which))
            {
                Some(isle) => chosen.push(isle),
                None => return Err(no_such_isle(which)),
            }
        }
        chosen
    };
    let (ended, chosen): (Vec<&Record>, Vec<&Record>) =
        chosen.into_iter().partition(|isle| !isle.running());
    if !ended.is_empty() {
        let (mut locked, _) = locked_state().map_err(CliError::failed)?;
        locked
            .state
            .isles
            .retain(|record| !ended.iter().any(|isle| isle.id == record.id));
        locked.save().map_err(CliError::failed)?;
        let dir = state::runtime_dir();
        for isle in &ended {
            if let Some(log) = &isle.log {
                state::remove_log(&dir, log);
            }
            println!("removed ended isle {}", isle.id);
        }
    }
    let boot = state::boot_id();
    for isle in &chosen {
        state::signal_isle(isle, libc::SIGTERM, &boot);
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while chosen.iter().any(|isle| state::alive(isle, &boot)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for isle in &chosen {
        state::signal_isle(isle, libc::SIGKILL, &boot);
    }
    while chosen.iter().any(|isle| state::alive(isle, &boot)) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Taking the lock drops the records of the processes now gone.
    live_isles()?;
    for isle in chosen {
        println!("stopped isle {}", isle.id);
    }
    Ok(0)
}

fn no_such_isle(which: &str) -> CliError {
    CliError::usage(format!(
        "no running isle is called {which} (see `atoll ps`)"
    ))
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  atoll logs web\n  atoll logs -f 3")]
pub struct LogsArgs {
    /// The isle, by id or name
    #[arg(value_name = "ID|NAME")]
    isle: String,
    /// Keep printing what it writes until it exits
    #[arg(short = 'f', long)]
    follow: bool,
}

/// `atoll logs`: what a detached isle wrote.
pub fn logs(args: LogsArgs) -> Result<i32, CliError> {
    let isles = live_isles()?;
    let Some(isle) = isles
        .iter()
        .find(|isle| isle.id.to_string() == args.isle || isle.name.as_deref() == Some(&args.isle))
    else {
        return Err(no_such_isle(&args.isle));
    };
    let Some(path) = &isle.log else {
        return Err(CliError::usage(format!(
            "isle {} writes to its terminal, not a log (only `atoll run -d` isles have logs)",
            isle.id
        )));
    };
    let mut file = std::fs::File::open(path)
        .map_err(|error| CliError::failed(format!("{}: {error}", path.display())))?;
    let boot = state::boot_id();
    let mut stdout = std::io::stdout();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let read = file.read(&mut buffer).unwrap_or(0);
        if read > 0 {
            let _ = stdout.write_all(&buffer[..read]);
            continue;
        }
        if !args.follow || !isle.running() || !state::alive(isle, &boot) {
            let _ = stdout.flush();
            return Ok(0);
        }
        let _ = stdout.flush();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where a detached isle's output goes: a new file under the runtime
/// directory.
pub fn new_log_path() -> Result<PathBuf, CliError> {
    let dir = state::private_subdir("logs").map_err(CliError::failed)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    Ok(dir.join(format!("{stamp}-{}.log", std::process::id())))
}

/// Waits until the atoll process `pid` has registered its isle; returns
/// its id, or None if the process ended first.
pub fn wait_for_registration(child: &mut std::process::Child) -> Option<u32> {
    let pid = child.id();
    loop {
        if let Ok((locked, _)) = locked_state() {
            if let Some(record) = locked.state.isles.iter().find(|record| record.pid == pid) {
                return Some(record.id);
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How `-c`, `--cpus` and `-m` become a request.
pub fn request(
    cores: u64,
    cpus: Option<&str>,
    memory: u64,
    overcommit: bool,
) -> Result<Request, CliError> {
    let want = match cpus {
        Some(list) => policy::Want::Cpus(
            atoll_manager::topology::parse_list(list)
                .filter(|ids| !ids.is_empty())
                .ok_or_else(|| {
                    CliError::usage(format!("--cpus {list}: use a CPU list such as 2-5,8"))
                })?,
        ),
        None => policy::Want::Cores(cores as u32),
    };
    Ok(Request {
        want,
        memory,
        overcommit,
    })
}

/// Where isle `id`'s live figures go (see `atoll top`).
pub fn stats_path(id: u32) -> Option<PathBuf> {
    let dir = state::private_subdir("stats").ok()?;
    Some(dir.join(format!("{id}.json")))
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll top")]
pub struct TopArgs {
    /// Refresh this many times, then exit (default: until interrupted)
    #[arg(short = 'n', long, value_name = "N")]
    iterations: Option<u64>,
    /// Seconds between refreshes
    #[arg(short = 'd', long, value_name = "SECONDS", default_value_t = 1.0)]
    delay: f64,
}

/// One isle's counters at one instant, over all its processes.
#[derive(Clone, Copy)]
struct Sample {
    /// CPU time of its processes' monitors (their vCPU and offload
    /// threads), in clock ticks of 1/100 s (Linux's USER_HZ).
    cpu_ticks: u64,
    offload_calls: u64,
    /// Its processes: the atoll process and the forks below it.
    processes: usize,
    /// Their memory, each shared page counted once (the sum of PSS).
    memory_bytes: u64,
    at: Instant,
}

/// The CPU ticks (user and system) of host process `pid`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn sample(isle: &Record) -> Option<Sample> {
    let processes: Vec<u32> = std::iter::once(isle.pid)
        .chain(
            process_tree(isle.pid)
                .into_iter()
                .map(|process| process.pid),
        )
        .collect();
    let cpu_ticks = cpu_ticks(isle.pid)?
        + processes[1..]
            .iter()
            .filter_map(|&pid| cpu_ticks(pid))
            .sum::<u64>();
    // Offload calls are the top process's: a fork's monitor doesn't write
    // the isle's figures.
    let offload_calls = stats_path(isle.id)
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|value| value["offload_calls"].as_u64())
        .unwrap_or(0);
    Some(Sample {
        cpu_ticks,
        offload_calls,
        processes: processes.len(),
        memory_bytes: processes.iter().map(|&pid| proportional_bytes(pid)).sum(),
        at: Instant::now(),
    })
}

/// Host process `pid`'s share of memory: its PSS (pages it shares with
/// its forks count in part), else its RSS.
fn proportional_bytes(pid: u32) -> u64 {
    let field = |path: String, name: &str| {
        std::fs::read_to_string(path).ok().and_then(|text| {
            let line = text.lines().find(|line| line.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
    };
    field(format!("/proc/{pid}/smaps_rollup"), "Pss:")
        .or_else(|| field(format!("/proc/{pid}/status"), "VmRSS:"))
        .map_or(0, |kib| kib << 10)
}

/// `atoll top`: per isle, the cores its processes keep busy (vCPUs poll,
/// so a running isle shows one core per busy vCPU), offload calls per
/// second, its processes and their memory.
pub fn top(args: TopArgs) -> Result<i32, CliError> {
    use std::io::IsTerminal;
    if !(args.delay.is_finite() && args.delay > 0.0) {
        return Err(CliError::usage(format!(
            "-d {}: give a positive number of seconds",
            args.delay
        )));
    }
    let delay = Duration::from_secs_f64(args.delay);
    let clear = std::io::stdout().is_terminal();
    let mut previous: std::collections::HashMap<(u32, u32), Sample> = Default::default();
    let mut shown = 0;
    loop {
        let isles = live_isles()?
            .into_iter()
            .filter(Record::running)
            .collect::<Vec<_>>();
        let samples: Vec<Option<Sample>> = isles.iter().map(sample).collect();
        if shown > 0 || args.iterations == Some(0) {
            let mut text = String::new();
            if clear {
                text += "\x1b[H\x1b[2J";
            }
            text += &format!(
                "{:<4} {:<10} {:<10} {:>6} {:>10} {:>5} {:>8} {:>8}  COMMAND\n",
                "ID", "NAME", "CORES", "CPU%", "CALLS/S", "PROCS", "RSS", "MEMORY"
            );
            for (isle, now) in isles.iter().zip(&samples) {
                let key = (isle.id, isle.pid);
                let (cpu, calls) = match (now, previous.get(&key)) {
                    (Some(now), Some(before)) => {
                        let seconds = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
                        (
                            format!(
                                "{:.0}",
                                (now.cpu_ticks.saturating_sub(before.cpu_ticks)) as f64 / seconds
                            ),
                            format!(
                                "{:.0}",
                                (now.offload_calls.saturating_sub(before.offload_calls)) as f64
                                    / seconds
                            ),
                        )
                    }
                    _ => ("-".into(), "-".into()),
                };
                text += &format!(
                    "{:<4} {:<10} {:<10} {:>6} {:>10} {:>5} {:>8} {:>8}  {}\n",
                    isle.id,
                    isle.name.as_deref().unwrap_or("-"),
                    format_list(&isle.cpus),
                    cpu,
                    calls,
                    now.map_or("-".into(), |now| now.processes.to_string()),
                    now.map_or("-".into(), |now| memory_text(now.memory_bytes)),
                    held_memory_text(isle.memory),
                    isle.command
                );
            }
            let mut stdout = std::io::stdout();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return Ok(0);
            }
        }
        previous = isles
            .iter()
            .zip(samples)
            .filter_map(|(isle, sample)| Some(((isle.id, isle.pid), sample?)))
            .collect();
        if args
            .iterations
            .is_some_and(|iterations| shown >= iterations)
        {
            return Ok(0);
        }
        shown += 1;
        std::thread::sleep(delay);
    }
}
