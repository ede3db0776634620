//! The isles running on this host, kept under the runtime directory
//! (`$ATOLL_RUNTIME_DIR`, else /run/atoll for root, else
//! `$XDG_RUNTIME_DIR/atoll`, else /tmp/atoll-UID) in `isles.json`, changed
//! only under an exclusive flock on `lock`, so concurrent `atoll` commands
//! never hand one core out twice.
//!
//! A record whose atoll process is gone (its pid dead or reused, or the
//! host rebooted since) is stale: the next command that takes the lock
//! drops it, which gives its cores and memory back.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One running isle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u32,
    #[serde(default)]
    pub name: Option<String>,
    /// The atoll process serving it.
    pub pid: u32,
    /// That process's start time (clock ticks after boot), against pid reuse.
    pub start_ticks: u64,
    /// The host boot it started in.
    pub boot_id: String,
    /// One CPU per vCPU.
    pub cpus: Vec<u32>,
    /// CPUs kept from other isles.
    pub reserved: Vec<u32>,
    pub node: Option<u32>,
    pub memory: u64,
    pub shared: bool,
    pub command: String,
    /// Seconds since the epoch.
    pub started: u64,
    /// Where a detached isle's output goes.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// Set once a detached isle has ended (kept so its log can be read);
    /// it then holds no cores or memory.
    #[serde(default)]
    pub ended: Option<Ended>,
}

/// How and when a detached isle ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Its exit status, or None if its atoll process died without one.
    pub status: Option<i32>,
    /// Seconds since the epoch.
    pub at: u64,
}

/// Ended isles kept for their logs; older ones go, logs and all.
const MAX_ENDED: usize = 100;

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Record {
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }

    /// Marks it ended: it keeps its log, gives back its cores and memory.
    pub fn end(&mut self, status: Option<i32>) {
        self.ended = Some(Ended { status, at: now() });
        self.reserved.clear();
        self.memory = 0;
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub next_id: u32,
    pub isles: Vec<Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the runtime directory {path}: {source} (set ATOLL_RUNTIME_DIR to a writable one)")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The runtime directory in use.
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATOLL_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let uid = effective_uid();
    if uid == 0 {
        return PathBuf::from("/run/atoll");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => Path::new(&dir).join("atoll"),
        None => PathBuf::from(format!("/tmp/atoll-{uid}")),
    }
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() }
}

/// The host's boot id: a new one after every reboot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

/// A process's start time in clock ticks after boot (field 22 of
/// /proc/PID/stat), or None if there is no such process or it is a zombie
/// (dead, not yet reaped by its parent).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: skip past the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Sends `signal` to process `pid` (errors ignored: it may be gone).
#[allow(unsafe_code)]
pub fn signal(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid > 0 {
        // SAFETY: kill has no memory effects; pid is a positive process id.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Whether the atoll process behind `record` still runs.
pub fn alive(record: &Record, current_boot: &str) -> bool {
    record.boot_id == current_boot && start_ticks(record.pid) == Some(record.start_ticks)
}

/// The state, locked: changes are saved with [`Locked::save`], and the
/// lock goes when this does.
pub struct Locked {
    _lock: File,
    path: PathBuf,
    pub state: State,
}

/// Takes the lock and reads the state, dropping stale records (returned).
pub fn lock() -> Result<(Locked, Vec<Record>), StateError> {
    lock_in(&runtime_dir())
}

pub fn lock_in(dir: &Path) -> Result<(Locked, Vec<Record>), StateError> {
    std::fs::create_dir_all(dir).map_err(|source| StateError::Directory {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock_path = dir.join("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StateError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    flock(&lock).map_err(|source| StateError::Lock {
        path: lock_path,
        source,
    })?;
    let path = dir.join("isles.json");
    // A state file nobody can read (a crash mid-write can't leave one: it
    // is replaced by rename) starts over empty.
    let mut state: State = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let current_boot = boot_id();
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for mut record in state.isles.drain(..) {
        if !record.running() || alive(&record, &current_boot) {
            kept.push(record);
        } else if record.log.is_some() {
            // A detached isle whose atoll died: keep its log readable.
            stale.push(record.clone());
            record.end(None);
            kept.push(record);
        } else {
            stale.push(record);
        }
    }
    // Only the newest ended isles are kept.
    let ended = kept.iter().filter(|record| !record.running()).count();
    let pruned = ended > MAX_ENDED;
    if pruned {
        let mut oldest: Vec<(u64, u32)> = kept
            .iter()
            .filter_map(|record| record.ended.as_ref().map(|ended| (ended.at, record.id)))
            .collect();
        oldest.sort_unstable();
        let dropped: Vec<u32> = oldest[..ended - MAX_ENDED]
            .iter()
            .map(|(_, id)| *id)
            .collect();
        kept.retain(|record| {
            let drop = dropped.contains(&record.id);
            if drop {
                if let Some(log) = &record.log {
                    let _ = std::fs::remove_file(log);
                }
            }
            !drop
        });
    }
    state.isles = kept;
    let mut locked = Locked {
        _lock: lock,
        path,
        state,
    };
    if !stale.is_empty() || pruned {
        locked.save()?;
    }
    Ok((locked, stale))
}

#[allow(unsafe_code)]
fn flock(file: &File) -> std::io::Result<()> {
    // SAFETY: flock on an fd we own; no memory is involved.
    let done = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Locked {
    /// The isles still running.
    pub fn running(&self) -> impl Iterator<Item = &Record> {
        self.state.isles.iter().filter(|record| record.running())
    }

    /// Writes the state (to a temporary file, then renamed over).
    pub fn save(&mut self) -> Result<(), StateError> {
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(
                &serde_json::to_vec_pretty(&self.state).map_err(std::io::Error::other)?,
            )?;
            // No fsync: a crash of atoll can't tear a renamed file, and
            // after a host crash the state is stale anyway (another boot).
            std::fs::rename(&temporary, &self.path)
        };
        write().map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// A new isle id.
    pub fn next_id(&mut self) -> u32 {
        let used: Vec<u32> = self.state.isles.iter().map(|record| record.id).collect();
        let mut id = self.state.next_id.max(1);
        while used.contains(&id) {
            id += 1;
        }
        self.state.next_id = id + 1;
        id
    }

    /// The isle an `atoll stop/logs` argument names: an id or a name.
    pub fn find(&self, which: &str) -> Option<&Record> {
        self.state
            .isles
            .iter()
            .find(|record| record.id.to_string() == which || record.name.as_deref() == Some(which))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atoll-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn record(id: u32, pid: u32, start_ticks: u64) -> Record {
        Record {
            id,
            name: None,
            pid,
            start_ticks,
            boot_id: boot_id(),
            cpus: vec![1],
            reserved: vec![1],
            node: Some(0),
            memory: 1 << 30,
            shared: false,
            command: "./prog".into(),
            started: 0,
            log: None,
            ended: None,
        }
    }

    #[test]
    fn records_of_dead_or_reused_processes_are_dropped() {
        let dir = scratch("stale");
        let me = std::process::id();
        let mine = start_ticks(me).unwrap();
        {
            let (mut locked, stale) = lock_in(&dir).unwrap();
            assert!(stale.is_empty());
            let first = locked.next_id();
            let second = locked.next_id();
            let third = locked.next_id();
            locked.state.isles.push(record(first, me, mine));
            // The same pid started at another time: reused.
            locked.state.isles.push(record(second, me, mine + 1));
            // From another boot.
            let mut old = record(third, me, mine);
            old.boot_id = "another boot".into();
            locked.state.isles.push(old);
            locked.save().unwrap();
        }
        let (locked, stale) = lock_in(&dir).unwrap();
        assert_eq!(locked.state.isles.len(), 1);
        assert_eq!(stale.len(), 2);
        assert!(locked.find("1").is_some());
        assert!(locked.find("2").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dead_detached_isle_stays_listed_as_ended_without_its_cores() {
        let dir = scratch("ended");
        {
            let (mut locked, _) = lock_in(&dir).unwrap();
            let id = locked.next_id();
            let mut detached = record(id, std::process::id(), 0);
            detached.log = Some(dir.join("log"));
            locked.state.isles.push(detached);
            locked.save().unwrap();
        }
        let (locked, stale) = lock_in(&dir).unwrap();
        assert_eq!(stale.len(), 1);
        let kept = &locked.state.isles[0];
        assert_eq!(kept.ended.as_ref().map(|ended| ended.status), Some(None));
        assert!(kept.reserved.is_empty());
        assert_eq!(locked.running().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_state_file_starts_over() {
        let dir = scratch("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("isles.json"), b"{not json").unwrap();
        let (locked, _) = lock_in(&dir).unwrap();
        assert!(locked.state.isles.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
