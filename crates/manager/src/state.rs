//! The isles running on this host, kept under the runtime directory
//! (`$ATOLL_RUNTIME_DIR`, else /run/atoll for root, else
//! `$XDG_RUNTIME_DIR/atoll`, else /tmp/atoll-UID) in `isles.json`, changed
//! only under an exclusive flock on `lock`, so concurrent `atoll` commands
//! never hand one core out twice.
//!
//! The registry decides which processes atoll signals and which files it
//! deletes, so only its owner may write it: the directory must be the
//! caller's own (not a symlink, mode 0700), every file in it is made 0600
//! whatever the umask, and a record naming a path outside it is dropped.
//!
//! A record whose atoll process is gone (its pid dead or reused, or the
//! host rebooted since) is stale: the next command that takes the lock
//! drops it, which gives its cores and memory back.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

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

/// What a user who can't use the registry directory should do.
const USE_YOUR_OWN: &str = "set ATOLL_RUNTIME_DIR to a directory of your own";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the runtime directory {path}: {source} ({USE_YOUR_OWN})")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} belongs to uid {owner}, not to you (uid {uid}): atoll keeps its registry only in a directory of yours; remove it, or {USE_YOUR_OWN}")]
    NotOwned { path: PathBuf, owner: u32, uid: u32 },
    #[error("{path} is a symbolic link: atoll keeps its registry only in a real directory; remove it, or {USE_YOUR_OWN}")]
    Symlink { path: PathBuf },
    #[error("{path} is a symbolic link: atoll follows none in its registry; remove it if no isles are running")]
    LinkedFile { path: PathBuf },
    #[error("{path} is not a directory: remove it, or {USE_YOUR_OWN}")]
    NotDirectory { path: PathBuf },
    #[error("{path} is open to other users (mode {mode:04o}), who could then make atoll signal or delete what they like: run `chmod 700 {path}`, or {USE_YOUR_OWN}")]
    OpenToOthers { path: PathBuf, mode: u32 },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({reason}): remove it if no isles are running")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The runtime directory in use (absolute, so that the paths recorded in
/// it compare equal from any working directory).
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATOLL_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        return match std::env::current_dir() {
            Ok(cwd) if dir.is_relative() => cwd.join(dir),
            _ => dir,
        };
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

/// Makes sure `dir` is a directory only we can use: created mode 0700 if
/// missing (its parents as usual), else it must be ours, no symlink, and
/// closed to group and others. One we just made is fixed up with chmod
/// (the umask can't widen it, but a racing creator could have made it).
pub fn private_dir(dir: &Path) -> Result<(), StateError> {
    let directory_error = |source| StateError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    let mut created = false;
    if std::fs::symlink_metadata(dir).is_err() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(directory_error)?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => created = true,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(directory_error(error)),
        }
    }
    // O_NOFOLLOW: the checks below are of the directory itself, never of
    // what a symlink planted in its place points at.
    let opened = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir);
    let directory = match opened {
        Ok(directory) => directory,
        Err(error) => {
            // Why not (with O_DIRECTORY a symlink fails as ENOTDIR, and
            // another user's 0700 directory as EACCES): lstat tells.
            let uid = effective_uid();
            return Err(match std::fs::symlink_metadata(dir) {
                Ok(meta) if meta.is_symlink() => StateError::Symlink {
                    path: dir.to_path_buf(),
                },
                Ok(meta) if meta.uid() != uid => StateError::NotOwned {
                    path: dir.to_path_buf(),
                    owner: meta.uid(),
                    uid,
                },
                Ok(meta) if !meta.is_dir() => StateError::NotDirectory {
                    path: dir.to_path_buf(),
                },
                _ => directory_error(error),
            });
        }
    };
    let metadata = directory.metadata().map_err(directory_error)?;
    let uid = effective_uid();
    if metadata.uid() != uid {
        return Err(StateError::NotOwned {
            path: dir.to_path_buf(),
            owner: metadata.uid(),
            uid,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 && !created {
        return Err(StateError::OpenToOthers {
            path: dir.to_path_buf(),
            mode,
        });
    }
    if mode != 0o700 && created {
        directory
            .set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(directory_error)?;
    }
    Ok(())
}

/// Opens (creating) a file of the registry, mode 0600 whatever the umask
/// or the mode it had; never through a symlink. `truncate` empties it.
pub fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// A subdirectory of the runtime directory (`logs`, `stats`), both private.
pub fn private_subdir(name: &str) -> Result<PathBuf, StateError> {
    let runtime = runtime_dir();
    private_dir(&runtime)?;
    let dir = runtime.join(name);
    private_dir(&dir)?;
    Ok(dir)
}

/// Whether `path` is a log of the registry in `dir`: a plain file name
/// right under `dir/logs` (no `..`, no other directory).
pub fn is_log_path(dir: &Path, path: &Path) -> bool {
    path.parent() == Some(dir.join("logs").as_path())
        && matches!(path.components().next_back(), Some(Component::Normal(_)))
}

/// The uid atoll runs as, which must own the registry.
#[allow(unsafe_code)]
pub fn effective_uid() -> u32 {
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

/// The effective uid of process `pid` (the second figure of the Uid line
/// of /proc/PID/status), if there is such a process.
fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether the atoll process behind `record` still runs: the same pid,
/// started at the recorded time in this boot, and running as us. A pid
/// reused by another process is not it.
pub fn alive(record: &Record, current_boot: &str) -> bool {
    record.boot_id == current_boot
        && start_ticks(record.pid) == Some(record.start_ticks)
        && process_uid(record.pid) == Some(effective_uid())
}

/// Sends `signal` to the atoll process behind `record` if it still runs
/// (see [`alive`]); returns whether it was sent. The process is pinned with
/// a pidfd before it is checked, so the signal can't reach a process that
/// took the pid over in between.
#[allow(unsafe_code)]
pub fn signal_isle(record: &Record, signal: i32, current_boot: &str) -> bool {
    let Ok(pid) = libc::pid_t::try_from(record.pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: pidfd_open takes a pid and flags and only returns an fd.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return false;
        }
        // A kernel before 5.3: check, then kill (a narrow race remains).
        if !alive(record, current_boot) {
            return false;
        }
        // SAFETY: kill has no memory effects; pid is a positive process id.
        return unsafe { libc::kill(pid, signal) } == 0;
    }
    // SAFETY: pidfd_open returned a new fd, owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    if !alive(record, current_boot) {
        return false;
    }
    // SAFETY: the fd is a live pidfd; a null siginfo means "as kill does".
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sent == 0
}

/// The state, locked: changes are saved with [`Locked::save`], and the
/// lock goes when this does.
pub struct Locked {
    _lock: File,
    dir: PathBuf,
    path: PathBuf,
    pub state: State,
}

/// Takes the lock and reads the state, dropping stale records (returned).
pub fn lock() -> Result<(Locked, Vec<Record>), StateError> {
    lock_in(&runtime_dir())
}

pub fn lock_in(dir: &Path) -> Result<(Locked, Vec<Record>), StateError> {
    private_dir(dir)?;
    let lock_path = dir.join("lock");
    let lock = private_file(&lock_path, false).map_err(|source| {
        file_error(&lock_path, source, |path, source| StateError::Lock {
            path,
            source,
        })
    })?;
    flock(&lock).map_err(|source| StateError::Lock {
        path: lock_path,
        source,
    })?;
    let path = dir.join("isles.json");
    let mut state = read_state(&path)?;
    // Only records naming paths of this registry are believed: atoll
    // deletes a record's log, which must not be any file at all.
    let (mut valid, foreign): (Vec<Record>, Vec<Record>) = std::mem::take(&mut state.isles)
        .into_iter()
        .partition(|record| record.log.as_ref().is_none_or(|log| is_log_path(dir, log)));
    for record in &foreign {
        eprintln!(
            "atoll: warning: {}: isle {}'s log {} is outside {}: its record is dropped, the file left alone",
            path.display(),
            record.id,
            record.log.as_deref().unwrap_or(Path::new("")).display(),
            dir.join("logs").display()
        );
    }
    let current_boot = boot_id();
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for mut record in valid.drain(..) {
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
                    remove_log(dir, log);
                }
            }
            !drop
        });
    }
    state.isles = kept;
    let mut locked = Locked {
        _lock: lock,
        dir: dir.to_path_buf(),
        path,
        state,
    };
    if !stale.is_empty() || pruned || !foreign.is_empty() {
        locked.save()?;
    }
    Ok((locked, stale))
}

/// The registry in `path`: empty if there is none yet; an error naming
/// it if it can't be read or parsed (a crash mid-write can't garble it, as
/// it is replaced by rename, so someone else did: starting over would
/// forget live isles and hand their cores out again).
fn read_state(path: &Path) -> Result<State, StateError> {
    let read = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .and_then(|mut file| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes).map(|_| bytes)
        });
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(source) => {
            return Err(file_error(path, source, |path, source| StateError::Read {
                path,
                source,
            }))
        }
    };
    serde_json::from_slice(&bytes).map_err(|error| StateError::Corrupt {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// `other`, unless opening `path` failed because it is a symbolic link
/// (O_NOFOLLOW's ELOOP).
fn file_error(
    path: &Path,
    source: std::io::Error,
    other: impl FnOnce(PathBuf, std::io::Error) -> StateError,
) -> StateError {
    if source.raw_os_error() == Some(libc::ELOOP) {
        StateError::LinkedFile {
            path: path.to_path_buf(),
        }
    } else {
        other(path.to_path_buf(), source)
    }
}

/// Deletes log `path` of the registry in `dir`, and nothing else.
pub fn remove_log(dir: &Path, path: &Path) {
    if is_log_path(dir, path) {
        let _ = std::fs::remove_file(path);
    }
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
    /// The registry's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The isles still running.
    pub fn running(&self) -> impl Iterator<Item = &Record> {
        self.state.isles.iter().filter(|record| record.running())
    }

    /// Writes the state (to a temporary file, then renamed over).
    pub fn save(&mut self) -> Result<(), StateError> {
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = private_file(&temporary, true)?;
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
            detached.log = Some(dir.join("logs/1.log"));
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
    fn a_damaged_state_file_is_an_error_naming_it() {
        let dir = scratch("damaged");
        drop(lock_in(&dir).unwrap());
        std::fs::write(dir.join("isles.json"), b"{not json").unwrap();
        let error = lock_in(&dir).err().expect("a garbled registry is refused");
        let message = error.to_string();
        assert!(
            message.contains(&dir.join("isles.json").display().to_string())
                && message.contains("is corrupt")
                && message.contains("remove it if no isles are running")
                && !message.contains('\n'),
            "{message}"
        );
        // Nothing was reset behind the user's back.
        assert_eq!(std::fs::read(dir.join("isles.json")).unwrap(), b"{not json");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_registry_is_private_whatever_the_umask() {
        let dir = scratch("private");
        #[allow(unsafe_code)]
        // SAFETY: umask only swaps the process's mask.
        let before = unsafe { libc::umask(0) };
        let made = lock_in(&dir).map(|(mut locked, _)| locked.save());
        #[allow(unsafe_code)]
        // SAFETY: as above, putting the mask back.
        unsafe {
            libc::umask(before)
        };
        made.unwrap().unwrap();
        let mode = |name: &str| std::fs::symlink_metadata(dir.join(name)).unwrap().mode() & 0o777;
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("lock"), 0o600);
        assert_eq!(mode("isles.json"), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_open_or_linked_directory_is_refused() {
        let dir = scratch("open");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let message = lock_in(&dir).err().unwrap().to_string();
        assert!(
            message.contains("is open to other users (mode 0777)")
                && message.contains(&format!("chmod 700 {}", dir.display())),
            "{message}"
        );
        let link = scratch("link");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let message = lock_in(&link).err().unwrap().to_string();
        assert!(message.contains("is a symbolic link"), "{message}");
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_naming_files_outside_the_registry_are_dropped_not_deleted() {
        let dir = scratch("foreign");
        let outside =
            std::env::temp_dir().join(format!("atoll-state-outside-{}", std::process::id()));
        std::fs::write(&outside, b"precious").unwrap();
        {
            let (mut locked, _) = lock_in(&dir).unwrap();
            for _ in 0..MAX_ENDED + 2 {
                let id = locked.next_id();
                let mut planted = record(id, std::process::id(), 0);
                planted.log = Some(outside.clone());
                planted.end(Some(0));
                locked.state.isles.push(planted);
            }
            locked.save().unwrap();
        }
        let (locked, _) = lock_in(&dir).unwrap();
        assert!(locked.state.isles.is_empty());
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert!(is_log_path(&dir, &dir.join("logs/1-2.log")));
        assert!(!is_log_path(&dir, &dir.join("logs/../isles.json")));
        assert!(!is_log_path(&dir, &dir.join("logs/sub/x.log")));
        let _ = std::fs::remove_file(&outside);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reused_pid_is_never_signalled() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let ticks = start_ticks(pid).unwrap();
        let boot = boot_id();
        let reused = record(1, pid, ticks + 1);
        assert!(!alive(&reused, &boot));
        assert!(!signal_isle(&reused, libc::SIGKILL, &boot));
        assert!(matches!(sleeper.try_wait(), Ok(None)));
        let genuine = record(2, pid, ticks);
        assert!(alive(&genuine, &boot));
        assert!(signal_isle(&genuine, libc::SIGKILL, &boot));
        sleeper.wait().unwrap();
    }
}
