//! The isle's view of files: mounts, path resolution confined to them, and
//! the table of the isle's fds.
//!
//! The isle sees only what is mounted (`-v HOST:GUEST[:ro]`). A guest path
//! is made absolute (against the isle's cwd or a directory fd's path),
//! matched to the mount with the longest prefix, and the rest is resolved
//! by the host kernel with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV) from that mount's root: `..`, absolute symlinks,
//! symlinks pointing out and /proc magic links can't reach anything outside.
//! Operations on a name (mkdir, unlink, rename...) resolve its parent that
//! way and act on the last component only. Guest fds index a table of host
//! fds the isle opened itself; a guest can't name any other host fd.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use atoll_abi::linux::errno::{
    EACCES, EADDRINUSE, EBADF, EEXIST, EINVAL, ELOOP, EMFILE, ENOENT, ENOTDIR, EPERM, ERANGE,
    EROFS, EXDEV,
};

/// Most fds an isle can have open (its RLIMIT_NOFILE).
pub const MAX_FDS: i32 = 1024;
const AT_FDCWD: i32 = -100;
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
/// open(2) flags a guest may pass.
const OPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_CLOEXEC
    | libc::O_SYNC
    | libc::O_PATH
    | libc::O_NOATIME
    | libc::O_LARGEFILE
    | libc::O_DIRECT
    | 0o100000 // O_LARGEFILE as musl passes it (the libc crate says 0)
    | O_TMPFILE;
/// __O_TMPFILE (O_TMPFILE without its O_DIRECTORY).
const O_TMPFILE: i32 = 0o20000000;

/// Devices every isle has, as on Linux: the host's own, opened by name.
pub const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

fn device(absolute: &str) -> Option<CString> {
    DEVICES
        .contains(&absolute)
        .then(|| CString::new(absolute).unwrap_or_default())
}

/// One `-v HOST:GUEST[:OPTIONS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
    /// Let the isle give its files any owner and set-id bits (`:owners`).
    /// Without it, as rootless podman, files can only belong to the user
    /// atoll runs as and never become setuid or setgid programs.
    pub keep_owners: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot use {} for a mount: {source}", .host.display())]
    Open {
        host: PathBuf,
        source: std::io::Error,
    },
    #[error("mount point '{0}' must be an absolute path")]
    RelativeGuest(String),
}

struct Mount {
    /// Normalized absolute guest path ("/" or "/a/b").
    guest: String,
    root: OwnedFd,
    read_only: bool,
    keep_owners: bool,
}

struct OpenFile {
    /// Shared so a call in flight on a worker keeps the host fd open (and
    /// its number unreused) even if the guest closes it meanwhile.
    fd: Arc<OwnedFd>,
    /// The guest path it was opened by, for *at() calls relative to it.
    guest_path: Option<String>,
    close_on_exec: bool,
    /// Opened from a read-only mount: no attribute changes through it.
    read_only: bool,
    /// Opened from a mount whose files may get any owner and set-id bits.
    keep_owners: bool,
    /// A Unix socket's guest addresses (local, peer) as the isle named
    /// them; the host knows them by names of its own.
    socket_names: Option<Arc<SocketNames>>,
    /// Whether it is a regular file (which never blocks), once asked.
    regular: Option<bool>,
}

/// The guest `sockaddr_un`s a Unix socket was bound or connected to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketNames {
    pub local: Option<Vec<u8>>,
    pub peer: Option<Vec<u8>>,
}

struct State {
    fds: BTreeMap<i32, OpenFile>,
    cwd: String,
    umask: u32,
}

/// A path resolved to a mount: its index and the path inside it.
struct Resolved {
    mount: usize,
    inside: String,
    absolute: String,
}

pub struct Files {
    mounts: Vec<Mount>,
    state: Mutex<State>,
    /// Guest paths of directories only this isle can see.
    private_dirs: Vec<String>,
}

fn errno() -> i64 {
    i64::from(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// A libc return value as a syscall result (-1 → the errno).
pub(crate) fn check(result: libc::c_long) -> Result<i64, i64> {
    if result < 0 {
        Err(errno())
    } else {
        Ok(result)
    }
}

fn c_string(text: &str) -> Result<CString, i64> {
    CString::new(text).map_err(|_| EINVAL)
}

/// Lexically normalizes an absolute path: no ".", "..", or empty components.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The user and group atoll runs as: without `:owners`, the only ids an
/// isle may give a file.
fn monitor_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid only read the caller's credentials.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// What an isle may set of `mode` on a file of type `file_type` (S_IFMT
/// bits) without `:owners`: never S_ISUID, so the host never holds a
/// setuid program an isle made, and S_ISGID on directories only, where it
/// just makes new entries take the directory's group (which the isle
/// could give them anyway), as shared group directories want.
fn without_set_id(mode: u32, file_type: u32) -> u32 {
    let mode = mode & 0o7777 & !libc::S_ISUID;
    if file_type == libc::S_IFDIR {
        mode
    } else {
        mode & !libc::S_ISGID
    }
}

/// Whether an isle may chown a file now owned by `current` (uid, gid) to
/// `owner` and `group` without `:owners`: each must be -1 (unchanged),
/// atoll's own id, or the file's id now (changing nothing), as for an
/// unprivileged owner on Linux.
fn chown_permitted(owner: u32, group: u32, current: (u32, u32)) -> bool {
    let (uid, gid) = monitor_ids();
    let unchanged = u32::MAX;
    [unchanged, uid, current.0].contains(&owner) && [unchanged, gid, current.1].contains(&group)
}

fn fstat(fd: RawFd) -> Result<libc::stat, i64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat into our buffer.
    check(unsafe { libc::fstat(fd, stat.as_mut_ptr()) }.into())?;
    // SAFETY: zeroed, then filled by fstat.
    Ok(unsafe { stat.assume_init() })
}

thread_local! {
    /// Whether this thread has an fs_struct (root, cwd, umask) of its own.
    static OWN_UMASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `create` (a call making a file, directory or socket) under the
/// isle's umask `mask`, so the host kernel gives the new file exactly the
/// mode Linux would (default ACLs included). The umask belongs to an
/// fs_struct, which a thread can make its own (unshare(CLONE_FS)): setting
/// it there races with no other thread, and atoll's own files keep
/// atoll's umask.
fn with_umask<R>(mask: u32, create: impl FnOnce() -> Result<R, i64>) -> Result<R, i64> {
    if !OWN_UMASK.get() {
        // SAFETY: unshare(CLONE_FS) only gives this thread a copy of its fs_struct.
        check(unsafe { libc::unshare(libc::CLONE_FS) }.into())?;
        OWN_UMASK.set(true);
    }
    // SAFETY: umask has no memory effects; this thread's fs_struct is its own.
    let previous = unsafe { libc::umask(mask) };
    let result = create();
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    result
}

impl Files {
    /// The mounts' host directories: every path the isle names resolves
    /// beneath one of them.
    pub fn reachable(&self) -> impl Iterator<Item = crate::sandbox::Reachable<'_>> {
        self.mounts.iter().map(|mount| crate::sandbox::Reachable {
            root: mount.root.as_fd(),
            read_only: mount.read_only,
        })
    }

    /// Opens the mounts and gives the isle fds 0, 1 and 2 (duplicates of
    /// atoll's own, so the isle closing them leaves atoll's alone).
    pub fn new(specs: &[MountSpec], cwd: &str) -> Result<Self, FilesError> {
        let mut mounts = Vec::new();
        for spec in specs {
            if !spec.guest.starts_with('/') {
                return Err(FilesError::RelativeGuest(spec.guest.clone()));
            }
            let host = CString::new(spec.host.as_os_str().as_encoded_bytes()).map_err(|_| {
                FilesError::Open {
                    host: spec.host.clone(),
                    source: std::io::Error::from_raw_os_error(libc::EINVAL),
                }
            })?;
            // SAFETY: opens a path we own as a string; the fd is checked.
            let fd = unsafe {
                libc::open(
                    host.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(FilesError::Open {
                    host: spec.host.clone(),
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: a fresh fd we own.
            let root = unsafe { OwnedFd::from_raw_fd(fd) };
            mounts.push(Mount {
                guest: normalize(&spec.guest),
                root,
                read_only: spec.read_only,
                keep_owners: spec.keep_owners,
            });
        }
        let mut fds = BTreeMap::new();
        for stdio in 0..3 {
            // SAFETY: duplicates one of atoll's stdio fds, if it is open.
            let fd = unsafe { libc::fcntl(stdio, libc::F_DUPFD_CLOEXEC, 3) };
            if fd >= 0 {
                // SAFETY: a fresh fd we own.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                fds.insert(
                    stdio,
                    OpenFile {
                        fd: Arc::new(fd),
                        guest_path: None,
                        close_on_exec: false,
                        read_only: false,
                        keep_owners: false,
                        socket_names: None,
                        regular: None,
                    },
                );
            }
        }
        Ok(Self {
            private_dirs: Vec::new(),
            mounts,
            state: Mutex::new(State {
                fds,
                cwd: normalize(cwd),
                umask: 0o022,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The host fd behind guest fd `fd`, valid while `state` is held.
    fn raw(state: &State, fd: i64) -> Result<RawFd, i64> {
        i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .map(|file| file.fd.as_raw_fd())
            .ok_or(EBADF)
    }

    /// The host fd behind guest fd `fd`, held open for as long as the
    /// caller keeps it, whatever the guest closes meanwhile.
    pub fn host_fd(&self, fd: u64) -> Result<Arc<OwnedFd>, i64> {
        i32::try_from(fd)
            .ok()
            .and_then(|fd| self.lock().fds.get(&fd).map(|file| file.fd.clone()))
            .ok_or(EBADF)
    }

    /// The host fd behind guest fd `fd` for mmap(MAP_SHARED), and whether
    /// the mapping may be writable. As on Linux the fd must be open for
    /// reading (else EACCES; O_PATH: EBADF), and for a writable mapping
    /// for writing too; files of read-only mounts never are.
    pub fn mappable_fd(&self, fd: u64) -> Result<(Arc<OwnedFd>, bool), i64> {
        let state = self.lock();
        let file = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .ok_or(EBADF)?;
        // SAFETY: F_GETFL on an isle-owned fd has no memory effects.
        let flags = check(unsafe { libc::fcntl(file.fd.as_raw_fd(), libc::F_GETFL) }.into())?;
        let flags = flags as i32;
        if flags & libc::O_PATH != 0 {
            return Err(EBADF);
        }
        let writable = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => false,
            libc::O_RDWR => !file.read_only,
            _ => return Err(EACCES),
        };
        Ok((Arc::clone(&file.fd), writable))
    }

    /// Names the directories (guest paths) only this isle can see.
    pub fn set_private_dirs(&mut self, dirs: &[String]) {
        self.private_dirs = dirs.iter().map(|dir| normalize(dir)).collect();
    }

    /// Whether guest fd `fd` was opened under a directory only this isle
    /// can see (so no one else can open the file).
    pub fn in_private_dir(&self, fd: u64) -> bool {
        let state = self.lock();
        let path = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .and_then(|file| file.guest_path.clone());
        // The mount that shows the file must be the private one itself
        // (a mount inside /tmp, say, is not).
        path.and_then(|path| self.locate(&path).ok())
            .is_some_and(|(mount, _)| self.private_dirs.contains(&self.mounts[mount].guest))
    }

    /// Runs `f` with the host fd behind guest fd `fd`, without holding the
    /// table's lock: `f` may block (a lock wait) while other calls go on.
    pub fn with_fd<R>(&self, fd: u64, f: impl FnOnce(RawFd) -> R) -> Result<R, i64> {
        let held = self.host_fd(fd)?;
        Ok(f(held.as_raw_fd()))
    }

    /// Resolves `path` (relative to `dirfd`'s guest path or the cwd) to a
    /// mount and the path inside it. Absolute symlinks met on the way are
    /// followed in the isle's namespace (the host kernel, confined to the
    /// mount, would take them relative to the mount); a final one only if
    /// `follow_last`.
    fn resolve_follow(
        &self,
        state: &State,
        dirfd: i64,
        path: &str,
        follow_last: bool,
    ) -> Result<Resolved, i64> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        let joined = if path.starts_with('/') {
            path.to_string()
        } else {
            let base = if dirfd as i32 == AT_FDCWD {
                state.cwd.clone()
            } else {
                let file = i32::try_from(dirfd)
                    .ok()
                    .and_then(|fd| state.fds.get(&fd))
                    .ok_or(EBADF)?;
                file.guest_path.clone().ok_or(ENOTDIR)?
            };
            format!("{base}/{path}")
        };
        let absolute = self.expand_symlinks(normalize(&joined), follow_last)?;
        let (mount, inside) = self.locate(&absolute)?;
        // Keep a trailing slash: it means "must be a directory".
        let inside = if path.ends_with('/') && inside != "." {
            format!("{inside}/")
        } else {
            inside
        };
        Ok(Resolved {
            mount,
            inside,
            absolute,
        })
    }

    /// [`Self::resolve_follow`] without following a final symlink.
    fn resolve(&self, state: &State, dirfd: i64, path: &str) -> Result<Resolved, i64> {
        self.resolve_follow(state, dirfd, path, false)
    }

    /// The mount showing a normalized absolute guest path, and the path inside it.
    fn locate(&self, absolute: &str) -> Result<(usize, String), i64> {
        let mount = self
            .mounts
            .iter()
            .enumerate()
            .filter(|(_, mount)| {
                mount.guest == "/"
                    || absolute == mount.guest
                    || absolute.starts_with(&format!("{}/", mount.guest))
            })
            .max_by_key(|(_, mount)| mount.guest.len())
            .map(|(index, _)| index)
            .ok_or(ENOENT)?;
        let rest = absolute[self.mounts[mount].guest.len()..].trim_start_matches('/');
        Ok((
            mount,
            if rest.is_empty() {
                ".".to_string()
            } else {
                rest.to_string()
            },
        ))
    }

    /// Rewrites `absolute` until no absolute symlink lies on it (see
    /// [`Self::resolve_follow`]); ELOOP after 40 rewrites, as Linux.
    fn expand_symlinks(&self, mut absolute: String, follow_last: bool) -> Result<String, i64> {
        'rewrite: for _ in 0..40 {
            let (mount, inside) = self.locate(&absolute)?;
            if inside == "." {
                return Ok(absolute);
            }
            // Fast path: no symlink at all on the way.
            let nofollow = if follow_last { 0 } else { libc::O_NOFOLLOW };
            let whole = Resolved {
                mount,
                inside: inside.clone(),
                absolute: String::new(),
            };
            match self.open_with(
                &whole,
                libc::O_PATH | nofollow,
                RESOLVE | RESOLVE_NO_SYMLINKS,
            ) {
                Err(ELOOP) => {}
                _ => return Ok(absolute),
            }
            let parts: Vec<&str> = inside.split('/').filter(|part| !part.is_empty()).collect();
            for index in 0..parts.len() {
                if index + 1 == parts.len() && !follow_last {
                    return Ok(absolute);
                }
                let prefix = Resolved {
                    mount,
                    inside: parts[..=index].join("/"),
                    absolute: String::new(),
                };
                let Ok(fd) = self.open_inside(&prefix, libc::O_PATH | libc::O_NOFOLLOW, 0) else {
                    return Ok(absolute);
                };
                let mut target = vec![0u8; 4096];
                let empty = c_string("")?;
                // SAFETY: readlinkat on our O_PATH fd writes at most 4096 bytes; it
                // fails (EINVAL/ENOENT) unless the fd is a symlink.
                let len = unsafe {
                    libc::readlinkat(
                        fd.as_raw_fd(),
                        empty.as_ptr(),
                        target.as_mut_ptr().cast(),
                        4096,
                    )
                };
                if len <= 0 || target[0] != b'/' {
                    // Not a symlink, or a relative one: the host follows
                    // those inside the mount.
                    continue;
                }
                target.truncate(len as usize);
                let target = String::from_utf8(target).map_err(|_| EINVAL)?;
                let rest = parts[index + 1..].join("/");
                absolute = normalize(&format!("{target}/{rest}"));
                continue 'rewrite;
            }
            return Ok(absolute);
        }
        Err(ELOOP)
    }

    fn open_inside(&self, resolved: &Resolved, flags: i32, mode: u32) -> Result<OwnedFd, i64> {
        self.open_with_mode(resolved, flags, mode, RESOLVE)
    }

    fn open_with(&self, resolved: &Resolved, flags: i32, resolve: u64) -> Result<OwnedFd, i64> {
        self.open_with_mode(resolved, flags, 0, resolve)
    }

    fn open_with_mode(
        &self,
        resolved: &Resolved,
        flags: i32,
        mode: u32,
        resolve: u64,
    ) -> Result<OwnedFd, i64> {
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u32 as u64,
            mode: if flags & (libc::O_CREAT | O_TMPFILE) != 0 {
                u64::from(mode)
            } else {
                0
            },
            resolve,
        };
        let path = c_string(&resolved.inside)?;
        let root = self.mounts[resolved.mount].root.as_raw_fd();
        // SAFETY: openat2 reads `how` and `path`, both ours and alive.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let fd = check(fd)?;
        // SAFETY: a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// The parent directory (opened as O_PATH) and the last component.
    fn parent_of(&self, resolved: &Resolved) -> Result<(OwnedFd, CString), i64> {
        let inside = resolved.inside.trim_end_matches('/');
        let (parent, name) = match inside.rfind('/') {
            Some(split) => (&inside[..split], &inside[split + 1..]),
            None => (".", inside),
        };
        if name.is_empty() || name == "." || name == ".." {
            // The mount root itself, or a path ending in "." or "..".
            return Err(EEXIST);
        }
        let parent = Resolved {
            mount: resolved.mount,
            inside: parent.to_string(),
            absolute: String::new(),
        };
        let fd = self.open_inside(&parent, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok((fd, c_string(name)?))
    }

    fn writable(&self, resolved: &Resolved) -> Result<(), i64> {
        if self.mounts[resolved.mount].read_only {
            Err(EROFS)
        } else {
            Ok(())
        }
    }

    fn insert(state: &mut State, file: OpenFile, lowest: i32) -> Result<i32, i64> {
        let mut fd = lowest.max(0);
        while state.fds.contains_key(&fd) {
            fd += 1;
        }
        if fd >= MAX_FDS {
            return Err(EMFILE);
        }
        state.fds.insert(fd, file);
        Ok(fd)
    }

    /// Gives the isle a host fd (a socket the host made for it); returns its guest fd.
    pub fn adopt(&self, fd: OwnedFd) -> Result<i64, i64> {
        let mut state = self.lock();
        Self::insert(
            &mut state,
            OpenFile {
                fd: Arc::new(fd),
                guest_path: None,
                close_on_exec: false,
                read_only: false,
                keep_owners: false,
                socket_names: None,
                regular: None,
            },
            0,
        )
        .map(i64::from)
    }

    /// Gives the isle an fd that arrived over a Unix socket (SCM_RIGHTS).
    /// Which mount it came from can't be known, so no attribute changes
    /// go through it (a file of a read-only mount must stay unchanged).
    pub fn adopt_received(&self, fd: OwnedFd, close_on_exec: bool) -> Result<i64, i64> {
        let mut state = self.lock();
        let file = OpenFile {
            fd: Arc::new(fd),
            guest_path: None,
            close_on_exec,
            read_only: true,
            keep_owners: false,
            socket_names: None,
            regular: None,
        };
        Self::insert(&mut state, file, 0).map(i64::from)
    }

    /// Whether guest fd `fd` is a regular file, which never makes a call
    /// wait; fstat'ed once per fd, as the offload server asks on every I/O.
    pub fn is_regular_file(&self, fd: u64) -> bool {
        let mut state = self.lock();
        let Some(file) = i32::try_from(fd).ok().and_then(|fd| state.fds.get_mut(&fd)) else {
            return false;
        };
        if let Some(regular) = file.regular {
            return regular;
        }
        let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: fstat into our buffer.
        let done = unsafe { libc::fstat(file.fd.as_raw_fd(), stat.as_mut_ptr()) };
        // SAFETY: zeroed, then filled by fstat if it succeeded.
        let regular =
            done == 0 && unsafe { stat.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFREG;
        file.regular = Some(regular);
        regular
    }

    /// The guest names a Unix socket was given by bind or connect.
    pub fn socket_names(&self, fd: u64) -> Result<SocketNames, i64> {
        let state = self.lock();
        let file = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .ok_or(EBADF)?;
        Ok(file.socket_names.as_deref().cloned().unwrap_or_default())
    }

    /// Records the guest names of a Unix socket (see [`Self::socket_names`]).
    pub fn set_socket_names(&self, fd: u64, names: SocketNames) -> Result<(), i64> {
        let mut state = self.lock();
        let file = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get_mut(&fd))
            .ok_or(EBADF)?;
        file.socket_names = Some(Arc::new(names));
        Ok(())
    }

    /// The host fds behind every open guest fd, held open for as long as
    /// the caller keeps them (the network policy looks for the isle's own
    /// sockets among them).
    pub fn all_host_fds(&self) -> Vec<Arc<OwnedFd>> {
        self.lock()
            .fds
            .values()
            .map(|file| Arc::clone(&file.fd))
            .collect()
    }

    /// Where binding a Unix socket to `path` makes its file: the parent
    /// directory (O_PATH, confined) and the new name, on a writable mount.
    pub fn socket_bind_target(&self, path: &str) -> Result<(OwnedFd, CString), i64> {
        let state = self.lock();
        let resolved = self.resolve(&state, i64::from(AT_FDCWD), path)?;
        self.writable(&resolved)?;
        self.parent_of(&resolved)
            .map_err(|errno| if errno == EEXIST { EADDRINUSE } else { errno })
    }

    pub fn open(&self, dirfd: i64, path: &str, flags: i32, mode: u32) -> Result<i64, i64> {
        if flags & !OPEN_FLAGS != 0 {
            return Err(EINVAL);
        }
        // As open(2) says, O_PATH ignores other flags; openat2 would refuse
        // them (musl passes O_LARGEFILE, say).
        let flags = if flags & libc::O_PATH != 0 {
            flags & (libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        } else {
            flags
        };
        let mut state = self.lock();
        let resolved = self.resolve_follow(&state, dirfd, path, flags & libc::O_NOFOLLOW == 0)?;
        if let Some(name) = device(&resolved.absolute) {
            let flags =
                flags & (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND) | libc::O_CLOEXEC;
            // SAFETY: opens one of the fixed device names.
            let fd = check(unsafe { libc::open(name.as_ptr(), flags) } as libc::c_long)?;
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
            let file = OpenFile {
                fd: Arc::new(fd),
                guest_path: Some(resolved.absolute),
                close_on_exec: false,
                read_only: false,
                keep_owners: false,
                socket_names: None,
                regular: None,
            };
            return Self::insert(&mut state, file, 0).map(i64::from);
        }
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY
            || flags & (libc::O_CREAT | libc::O_TRUNC) != 0;
        if writes && flags & libc::O_PATH == 0 {
            self.writable(&resolved)?;
        }
        let fd = if flags & (libc::O_CREAT | O_TMPFILE) != 0 {
            let mode = if self.mounts[resolved.mount].keep_owners {
                mode & 0o7777
            } else {
                without_set_id(mode, libc::S_IFREG)
            };
            with_umask(state.umask, || self.open_inside(&resolved, flags, mode))?
        } else {
            self.open_inside(&resolved, flags, 0)?
        };
        let file = OpenFile {
            fd: Arc::new(fd),
            guest_path: Some(resolved.absolute),
            close_on_exec: flags & libc::O_CLOEXEC != 0,
            read_only: self.mounts[resolved.mount].read_only,
            keep_owners: self.mounts[resolved.mount].keep_owners,
            socket_names: None,
            regular: None,
        };
        Self::insert(&mut state, file, 0).map(i64::from)
    }

    /// A file for the last component of a path, as O_PATH (for statx and
    /// chown, which then act on it with AT_EMPTY_PATH).
    pub fn open_path(
        &self,
        dirfd: i64,
        path: &str,
        follow: bool,
        for_write: bool,
    ) -> Result<OwnedFd, i64> {
        let state = self.lock();
        let resolved = self.resolve_follow(&state, dirfd, path, follow)?;
        if for_write {
            self.writable(&resolved)?;
        }
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        self.open_inside(&resolved, libc::O_PATH | nofollow, 0)
    }

    pub fn close(&self, fd: i64) -> Result<i64, i64> {
        let mut state = self.lock();
        let fd = i32::try_from(fd).map_err(|_| EBADF)?;
        state.fds.remove(&fd).map(|_| 0).ok_or(EBADF)
    }

    /// Points guest fds 0-2 at /dev/null, so tests that throw random
    /// requests at the server can't write to, truncate or read the test
    /// process's own stdio.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn stdio_to_dev_null(&self) {
        let mut state = self.lock();
        for stdio in 0..3 {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .expect("/dev/null opens");
            state.fds.insert(
                stdio,
                OpenFile {
                    fd: Arc::new(OwnedFd::from(null)),
                    guest_path: None,
                    close_on_exec: false,
                    read_only: false,
                    keep_owners: false,
                    socket_names: None,
                    regular: None,
                },
            );
        }
    }

    /// close_range: closes (or, with `cloexec`, marks) the guest fds from
    /// `first` to `last`; fds not open are skipped, as in Linux.
    pub fn close_range(&self, first: u64, last: u64, cloexec: bool) -> Result<i64, i64> {
        let (Ok(first), last) = (
            i32::try_from(first),
            i32::try_from(last).unwrap_or(i32::MAX),
        ) else {
            return Ok(0);
        };
        if first > last {
            return Err(EINVAL);
        }
        let mut state = self.lock();
        if cloexec {
            for (_, file) in state.fds.range_mut(first..=last) {
                file.close_on_exec = true;
            }
        } else {
            let closing: Vec<i32> = state.fds.range(first..=last).map(|(&fd, _)| fd).collect();
            for fd in closing {
                state.fds.remove(&fd);
            }
        }
        Ok(0)
    }

    /// stat by path, fd (AT_EMPTY_PATH) or without following a final symlink.
    pub fn stat_at(
        &self,
        dirfd: i64,
        path: &str,
        flags: i32,
        out: &mut libc::stat,
    ) -> Result<i64, i64> {
        let state = self.lock();
        let target = if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            if dirfd as i32 == AT_FDCWD {
                let resolved = self.resolve(&state, dirfd, ".")?;
                Some(self.open_inside(&resolved, libc::O_PATH, 0)?)
            } else {
                None
            }
        } else {
            let resolved =
                self.resolve_follow(&state, dirfd, path, flags & libc::AT_SYMLINK_NOFOLLOW == 0)?;
            if let Some(name) = device(&resolved.absolute) {
                // SAFETY: stat of one of the fixed device names into the struct we were lent.
                return check(unsafe { libc::stat(name.as_ptr(), out) } as libc::c_long);
            }
            let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
                libc::O_NOFOLLOW
            } else {
                0
            };
            Some(self.open_inside(&resolved, libc::O_PATH | nofollow, 0)?)
        };
        let raw = match &target {
            Some(fd) => fd.as_raw_fd(),
            None => Self::raw(&state, dirfd)?,
        };
        // SAFETY: fstat writes the struct we were lent.
        check(unsafe { libc::fstat(raw, out) } as libc::c_long)
    }

    pub fn mkdir(&self, dirfd: i64, path: &str, mode: u32) -> Result<i64, i64> {
        let state = self.lock();
        let resolved = self.resolve(&state, dirfd, path)?;
        // Like Linux, an existing name is EEXIST even on a read-only mount.
        let (parent, name) = self.parent_of(&resolved)?;
        let mut existing = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: fstatat on our parent fd and name, into our buffer.
        let exists = unsafe {
            libc::fstatat(
                parent.as_raw_fd(),
                name.as_ptr(),
                existing.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } == 0;
        if exists {
            return Err(EEXIST);
        }
        self.writable(&resolved)?;
        // Set-id bits in mkdir's mode mean nothing on Linux (a new
        // directory takes S_ISGID from its parent).
        with_umask(state.umask, || {
            // SAFETY: mkdirat on our parent fd and name.
            check(
                unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode & 0o1777) }
                    as libc::c_long,
            )
        })
    }

    pub fn unlink(&self, dirfd: i64, path: &str, flags: i32) -> Result<i64, i64> {
        if flags & !libc::AT_REMOVEDIR != 0 {
            return Err(EINVAL);
        }
        let state = self.lock();
        let resolved = self.resolve(&state, dirfd, path)?;
        self.writable(&resolved)?;
        let (parent, name) =
            self.parent_of(&resolved)
                .map_err(|e| if e == EEXIST { libc::EBUSY as i64 } else { e })?;
        // SAFETY: unlinkat on our parent fd and name.
        check(unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), flags) } as libc::c_long)
    }

    pub fn rename(
        &self,
        old_dirfd: i64,
        old: &str,
        new_dirfd: i64,
        new: &str,
        flags: u32,
    ) -> Result<i64, i64> {
        let state = self.lock();
        let from = self.resolve(&state, old_dirfd, old)?;
        let to = self.resolve(&state, new_dirfd, new)?;
        if from.mount != to.mount {
            return Err(EXDEV);
        }
        self.writable(&from)?;
        let busy = |e: i64| if e == EEXIST { libc::EBUSY as i64 } else { e };
        let (from_parent, from_name) = self.parent_of(&from).map_err(busy)?;
        let (to_parent, to_name) = self.parent_of(&to).map_err(busy)?;
        // SAFETY: renameat2 on our parent fds and names.
        check(unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                from_parent.as_raw_fd(),
                from_name.as_ptr(),
                to_parent.as_raw_fd(),
                to_name.as_ptr(),
                flags,
            )
        })
    }

    /// linkat. With AT_SYMLINK_FOLLOW a final symlink of `old` is followed
    /// (inside the mount, as every name); with AT_EMPTY_PATH and an empty
    /// `old`, guest fd `old_dirfd`'s file is linked (an O_TMPFILE, say).
    pub fn link(
        &self,
        old_dirfd: i64,
        old: &str,
        new_dirfd: i64,
        new: &str,
        flags: i32,
    ) -> Result<i64, i64> {
        if flags & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(EINVAL);
        }
        let state = self.lock();
        let by_fd = old.is_empty() && flags & libc::AT_EMPTY_PATH != 0;
        let follow = flags & libc::AT_SYMLINK_FOLLOW != 0;
        enum Source {
            /// The file itself, held.
            Held(Arc<OwnedFd>),
            /// A name, linked as it is (a symlink itself).
            Name(Resolved),
        }
        let (from_mount, source) = if by_fd {
            let file = i32::try_from(old_dirfd)
                .ok()
                .and_then(|fd| state.fds.get(&fd))
                .ok_or(EBADF)?;
            let path = file.guest_path.as_deref().ok_or(ENOENT)?;
            (self.locate(path)?.0, Source::Held(Arc::clone(&file.fd)))
        } else {
            let from = self.resolve_follow(&state, old_dirfd, old, follow)?;
            if follow {
                let source = Arc::new(self.open_inside(&from, libc::O_PATH, 0)?);
                (from.mount, Source::Held(source))
            } else {
                (from.mount, Source::Name(from))
            }
        };
        let to = self.resolve(&state, new_dirfd, new)?;
        if from_mount != to.mount {
            return Err(EXDEV);
        }
        self.writable(&to)?;
        let (to_parent, to_name) = self.parent_of(&to)?;
        let from = match source {
            Source::Name(from) => from,
            Source::Held(source) => {
                let name = Self::fd_path(&source)?;
                // SAFETY: linkat of the file we hold, by its fd's name (the
                // magic link is followed, to that file).
                return check(unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        name.as_ptr(),
                        to_parent.as_raw_fd(),
                        to_name.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                } as libc::c_long);
            }
        };
        let (from_parent, from_name) = self.parent_of(&from)?;
        // SAFETY: linkat on our parent fds and names (never following symlinks).
        check(unsafe {
            libc::linkat(
                from_parent.as_raw_fd(),
                from_name.as_ptr(),
                to_parent.as_raw_fd(),
                to_name.as_ptr(),
                0,
            )
        } as libc::c_long)
    }

    pub fn symlink(&self, target: &str, new_dirfd: i64, path: &str) -> Result<i64, i64> {
        let state = self.lock();
        let resolved = self.resolve(&state, new_dirfd, path)?;
        self.writable(&resolved)?;
        let (parent, name) = self.parent_of(&resolved)?;
        // The target is stored as is: it is only ever resolved inside a mount.
        let target = c_string(target)?;
        // SAFETY: symlinkat with our strings and parent fd.
        check(
            unsafe { libc::symlinkat(target.as_ptr(), parent.as_raw_fd(), name.as_ptr()) }
                as libc::c_long,
        )
    }

    pub fn readlink(&self, dirfd: i64, path: &str, buffer: &mut [u8]) -> Result<i64, i64> {
        let state = self.lock();
        let resolved = self.resolve(&state, dirfd, path)?;
        let (parent, name) = self.parent_of(&resolved).map_err(|_| EINVAL)?;
        // SAFETY: readlinkat writes at most buffer.len() bytes into it.
        check(unsafe {
            libc::readlinkat(
                parent.as_raw_fd(),
                name.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        } as libc::c_long)
    }

    pub fn access(&self, dirfd: i64, path: &str, mode: i32, flags: i32) -> Result<i64, i64> {
        let state = self.lock();
        let resolved =
            self.resolve_follow(&state, dirfd, path, flags & libc::AT_SYMLINK_NOFOLLOW == 0)?;
        let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
            libc::O_NOFOLLOW
        } else {
            0
        };
        let fd = self.open_inside(&resolved, libc::O_PATH | nofollow, 0)?;
        if mode & libc::W_OK != 0 {
            self.writable(&resolved)?;
        }
        let empty = c_string("")?;
        // SAFETY: faccessat2 on our O_PATH fd with an empty path.
        check(unsafe {
            libc::syscall(
                libc::SYS_faccessat2,
                fd.as_raw_fd(),
                empty.as_ptr(),
                mode,
                libc::AT_EMPTY_PATH | (flags & libc::AT_EACCESS),
            )
        })
    }

    /// chdir(path), or fchdir(fd) when `path` is None.
    pub fn chdir(&self, path: Option<&str>, fd: i64) -> Result<i64, i64> {
        let mut state = self.lock();
        let absolute = match path {
            Some(path) => {
                let resolved = self.resolve_follow(&state, i64::from(AT_FDCWD), path, true)?;
                self.open_inside(&resolved, libc::O_PATH | libc::O_DIRECTORY, 0)?;
                resolved.absolute
            }
            None => {
                let file = i32::try_from(fd)
                    .ok()
                    .and_then(|fd| state.fds.get(&fd))
                    .ok_or(EBADF)?;
                let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
                // SAFETY: `file.fd` is an open descriptor this table owns, and
                // fstat writes at most one `libc::stat` into our buffer.
                let rc = unsafe { libc::fstat(file.fd.as_raw_fd(), stat.as_mut_ptr()) };
                check(rc as libc::c_long)?;
                // SAFETY: zeroed, then filled by fstat.
                let stat = unsafe { stat.assume_init() };
                if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(ENOTDIR);
                }
                file.guest_path.clone().ok_or(ENOTDIR)?
            }
        };
        state.cwd = absolute;
        Ok(0)
    }

    /// The cwd with its NUL, or ERANGE if it doesn't fit in `size` bytes.
    pub fn getcwd(&self, size: u64) -> Result<Vec<u8>, i64> {
        let mut cwd = self.lock().cwd.clone().into_bytes();
        cwd.push(0);
        if cwd.len() as u64 > size {
            return Err(ERANGE);
        }
        Ok(cwd)
    }

    /// dup (new < 0: lowest free fd at or above -new - 1) or dup3.
    pub fn dup(&self, old: i64, new: i64, flags: i32) -> Result<i64, i64> {
        let mut state = self.lock();
        let raw = Self::raw(&state, old)?;
        if new >= 0 && new == old {
            return if flags == i32::MIN {
                Ok(new)
            } else {
                Err(EINVAL)
            };
        }
        if new >= i64::from(MAX_FDS) {
            return Err(EBADF);
        }
        // SAFETY: duplicates a host fd the isle owns.
        let copy = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 3) };
        let copy = check(copy as libc::c_long)?;
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(copy as RawFd) };
        let original = state.fds.get(&(old as i32));
        let guest_path = original.and_then(|file| file.guest_path.clone());
        let read_only = original.is_some_and(|file| file.read_only);
        let keep_owners = original.is_some_and(|file| file.keep_owners);
        let socket_names = original.and_then(|file| file.socket_names.clone());
        let file = OpenFile {
            fd: Arc::new(fd),
            guest_path,
            close_on_exec: flags & libc::O_CLOEXEC != 0 && flags != i32::MIN,
            read_only,
            keep_owners,
            socket_names,
            regular: None,
        };
        if new >= 0 {
            state.fds.insert(new as i32, file);
            Ok(new)
        } else {
            Self::insert(&mut state, file, (-new - 1) as i32).map(i64::from)
        }
    }

    /// sync(2) for the isle: syncfs on each filesystem its mounts are on,
    /// so it flushes its own files without making the whole host write
    /// back. Returns how many filesystems it synced; like sync(2), it
    /// can't fail (a mount root it can't open as a directory is skipped).
    pub fn sync_mounts(&self) -> usize {
        let mut synced = Vec::new();
        for mount in &self.mounts {
            let Ok(stat) = fstat(mount.root.as_raw_fd()) else {
                continue;
            };
            if synced.contains(&stat.st_dev) {
                continue;
            }
            // syncfs refuses O_PATH fds, which the roots are.
            // SAFETY: opens "." beneath a mount root we own; the fd is checked.
            let dir = unsafe {
                libc::openat(
                    mount.root.as_raw_fd(),
                    c".".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if dir < 0 {
                continue;
            }
            // SAFETY: a fresh fd we own.
            let dir = unsafe { OwnedFd::from_raw_fd(dir) };
            // SAFETY: syncfs on our own directory fd; sync(2) ignores errors too.
            unsafe { libc::syncfs(dir.as_raw_fd()) };
            synced.push(stat.st_dev);
        }
        synced.len()
    }

    pub fn fcntl(&self, fd: i64, command: i32, argument: u64) -> Result<i64, i64> {
        match command {
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                let flags = if command == libc::F_DUPFD_CLOEXEC {
                    libc::O_CLOEXEC
                } else {
                    0
                };
                let lowest = argument.min(MAX_FDS as u64) as i64;
                self.dup(fd, -lowest - 1, flags)
            }
            libc::F_GETFD => {
                let state = self.lock();
                let file = i32::try_from(fd)
                    .ok()
                    .and_then(|fd| state.fds.get(&fd))
                    .ok_or(EBADF)?;
                Ok(i64::from(file.close_on_exec))
            }
            libc::F_SETFD => {
                let mut state = self.lock();
                let file = i32::try_from(fd)
                    .ok()
                    .and_then(|fd| state.fds.get_mut(&fd))
                    .ok_or(EBADF)?;
                file.close_on_exec = argument & 1 != 0;
                Ok(0)
            }
            // Pipes are host pipes: the host kernel sizes them (rounding to
            // a power-of-two page count, capping unprivileged users at
            // pipe-max-size) and refuses other files with EBADF.
            libc::F_GETFL | libc::F_SETFL | libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ => {
                let state = self.lock();
                let raw = Self::raw(&state, fd)?;
                // SAFETY: a command taking an integer argument on an isle-owned fd.
                check(unsafe { libc::fcntl(raw, command, argument as libc::c_int) } as libc::c_long)
            }
            _ => Err(EINVAL),
        }
    }

    /// pipe2: returns the two new guest fds.
    pub fn pipe(&self, flags: i32) -> Result<[i32; 2], i64> {
        if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) != 0 {
            return Err(EINVAL);
        }
        let mut raw = [0; 2];
        // SAFETY: pipe2 writes two fds into our array.
        check(unsafe { libc::pipe2(raw.as_mut_ptr(), flags | libc::O_CLOEXEC) } as libc::c_long)?;
        // SAFETY: two fresh fds we own.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(raw[0]), OwnedFd::from_raw_fd(raw[1])) };
        let mut state = self.lock();
        let cloexec = flags & libc::O_CLOEXEC != 0;
        let read = Self::insert(
            &mut state,
            OpenFile {
                fd: Arc::new(read),
                guest_path: None,
                close_on_exec: cloexec,
                read_only: false,
                keep_owners: false,
                socket_names: None,
                regular: None,
            },
            0,
        )?;
        let write = match Self::insert(
            &mut state,
            OpenFile {
                fd: Arc::new(write),
                guest_path: None,
                close_on_exec: cloexec,
                read_only: false,
                keep_owners: false,
                socket_names: None,
                regular: None,
            },
            0,
        ) {
            Ok(fd) => fd,
            Err(errno) => {
                state.fds.remove(&read);
                return Err(errno);
            }
        };
        Ok([read, write])
    }

    /// Runs `create` (a bind that makes a socket file) under the isle's umask.
    pub fn with_isle_umask<R>(&self, create: impl FnOnce() -> Result<R, i64>) -> Result<R, i64> {
        let mask = self.lock().umask;
        with_umask(mask, create)
    }

    pub fn umask(&self, mask: u32) -> i64 {
        let mut state = self.lock();
        let previous = state.umask;
        state.umask = mask & 0o777;
        i64::from(previous)
    }

    /// The host fd behind guest fd `fd`, refusing files of read-only mounts
    /// (for attribute changes through an fd).
    fn raw_writable(state: &State, fd: i64) -> Result<RawFd, i64> {
        Self::file_writable(state, fd).map(|file| file.fd.as_raw_fd())
    }

    /// [`Self::raw_writable`]'s file.
    fn file_writable(state: &State, fd: i64) -> Result<&OpenFile, i64> {
        let file = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .ok_or(EBADF)?;
        if file.read_only {
            return Err(EROFS);
        }
        Ok(file)
    }

    /// The file an attribute change acts on: guest fd `dirfd` itself when
    /// `path` is None, else the target of `path` (see
    /// [`Self::target_for_change`]); and whether its mount keeps owners.
    fn changed_file(
        &self,
        state: &State,
        dirfd: i64,
        path: Option<&str>,
        follow: bool,
    ) -> Result<(Arc<OwnedFd>, bool), i64> {
        match path {
            None => {
                let file = Self::file_writable(state, dirfd)?;
                Ok((Arc::clone(&file.fd), file.keep_owners))
            }
            Some(path) => {
                let (fd, keep_owners) = self.target_for_change(state, dirfd, path, follow)?;
                Ok((Arc::new(fd), keep_owners))
            }
        }
    }

    /// Opens the final target of a path (O_PATH, confined) for an attribute
    /// change, on a writable mount; and whether that mount keeps owners.
    fn target_for_change(
        &self,
        state: &State,
        dirfd: i64,
        path: &str,
        follow: bool,
    ) -> Result<(OwnedFd, bool), i64> {
        let resolved = self.resolve_follow(state, dirfd, path, follow)?;
        self.writable(&resolved)?;
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        let fd = self.open_inside(&resolved, libc::O_PATH | nofollow, 0)?;
        Ok((fd, self.mounts[resolved.mount].keep_owners))
    }

    /// The host's own name for an fd it holds, to act on exactly that file.
    fn fd_path(fd: &OwnedFd) -> Result<CString, i64> {
        c_string(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    /// fchmodat(dirfd, path, mode), or fchmod(dirfd) when `path` is None;
    /// set-id bits only as [`without_set_id`] allows, but on `:owners` mounts.
    pub fn chmod(&self, dirfd: i64, path: Option<&str>, mode: u32) -> Result<i64, i64> {
        let state = self.lock();
        // The target is resolved inside the mount first: a symlink
        // pointing out of it can't be followed to the host.
        let (target, keep_owners) = self.changed_file(&state, dirfd, path, true)?;
        let mode = if keep_owners {
            mode & 0o7777
        } else {
            without_set_id(mode, fstat(target.as_raw_fd())?.st_mode & libc::S_IFMT)
        };
        if path.is_none() {
            // SAFETY: fchmod on an isle-owned fd (EBADF for O_PATH, as on Linux).
            return check(unsafe { libc::fchmod(target.as_raw_fd(), mode) } as libc::c_long);
        }
        let name = Self::fd_path(&target)?;
        // SAFETY: chmod of the file we opened (O_PATH), by its fd's name.
        check(unsafe { libc::chmod(name.as_ptr(), mode) } as libc::c_long)
    }

    /// fchownat(dirfd, path, owner, group, flags), or fchown(dirfd) when
    /// `path` is None. Without `:owners` only to the ids
    /// [`chown_permitted`] allows, else EPERM.
    pub fn chown(
        &self,
        dirfd: i64,
        path: Option<&str>,
        owner: u32,
        group: u32,
        flags: i32,
    ) -> Result<i64, i64> {
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(EINVAL);
        }
        let fchown = path.is_none();
        let path = path.filter(|path| !path.is_empty() || flags & libc::AT_EMPTY_PATH == 0);
        let state = self.lock();
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let (target, keep_owners) = self.changed_file(&state, dirfd, path, follow)?;
        if !keep_owners {
            let stat = fstat(target.as_raw_fd())?;
            if !chown_permitted(owner, group, (stat.st_uid, stat.st_gid)) {
                return Err(EPERM);
            }
        }
        if fchown {
            // SAFETY: fchown on an isle-owned fd (EBADF for O_PATH, as on Linux).
            return check(unsafe { libc::fchown(target.as_raw_fd(), owner, group) } as libc::c_long);
        }
        let empty = c_string("")?;
        // SAFETY: fchownat on a file we hold, with an empty path.
        check(unsafe {
            libc::fchownat(
                target.as_raw_fd(),
                empty.as_ptr(),
                owner,
                group,
                libc::AT_EMPTY_PATH,
            )
        } as libc::c_long)
    }

    /// utimensat(dirfd, path, times, flags); None path: futimens(dirfd).
    pub fn utimens(
        &self,
        dirfd: i64,
        path: Option<&str>,
        times: Option<[libc::timespec; 2]>,
        flags: i32,
    ) -> Result<i64, i64> {
        let state = self.lock();
        let times_pointer = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        match path {
            None => {
                let raw = Self::raw_writable(&state, dirfd)?;
                // SAFETY: futimens reads two timespecs or none.
                check(unsafe { libc::futimens(raw, times_pointer) } as libc::c_long)
            }
            Some(path) => {
                let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
                let (target, _) = self.target_for_change(&state, dirfd, path, follow)?;
                let name = Self::fd_path(&target)?;
                // SAFETY: utimensat of the file we just opened, by its fd's
                // name (a symlink opened with O_NOFOLLOW is changed itself).
                check(
                    unsafe { libc::utimensat(libc::AT_FDCWD, name.as_ptr(), times_pointer, 0) }
                        as libc::c_long,
                )
            }
        }
    }

    /// statfs(path) or, with None, fstatfs(fd).
    pub fn statfs(&self, path: Option<&str>, fd: i64, out: &mut libc::statfs) -> Result<i64, i64> {
        let state = self.lock();
        let opened;
        let raw = match path {
            Some(path) => {
                let resolved = self.resolve_follow(&state, i64::from(AT_FDCWD), path, true)?;
                opened = self.open_inside(&resolved, libc::O_PATH, 0)?;
                opened.as_raw_fd()
            }
            None => Self::raw(&state, fd)?,
        };
        // SAFETY: fstatfs writes the struct we were lent.
        check(unsafe { libc::fstatfs(raw, out) } as libc::c_long)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "atoll-files-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inside/sub")).unwrap();
        std::fs::write(dir.join("inside/file"), b"hello").unwrap();
        std::fs::write(dir.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("inside/abs")).unwrap();
        std::os::unix::fs::symlink("../secret", dir.join("inside/up")).unwrap();
        dir
    }

    fn files(dir: &std::path::Path, read_only: bool) -> Files {
        mounted(dir, read_only, false)
    }

    fn mounted(dir: &std::path::Path, read_only: bool, keep_owners: bool) -> Files {
        let spec = MountSpec {
            host: dir.join("inside"),
            guest: "/data".into(),
            read_only,
            keep_owners,
        };
        Files::new(&[spec], "/data").unwrap()
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(normalize("/a/./b//c/"), "/a/b/c");
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(normalize("/a/b/../../.."), "/");
    }

    #[test]
    fn files_inside_a_mount_open() {
        let dir = scratch();
        let files = files(&dir, false);
        let fd = files
            .open(i64::from(AT_FDCWD), "file", libc::O_RDONLY, 0)
            .unwrap();
        assert!(fd >= 3);
        let fd2 = files
            .open(i64::from(AT_FDCWD), "/data/sub/../file", libc::O_RDONLY, 0)
            .unwrap();
        assert_eq!(fd2, fd + 1);
        files.close(fd).unwrap();
        assert_eq!(
            files
                .open(i64::from(AT_FDCWD), "file", libc::O_RDONLY, 0)
                .unwrap(),
            fd,
            "lowest free fd"
        );
    }

    #[test]
    fn escapes_are_refused() {
        let dir = scratch();
        let files = files(&dir, false);
        let cwd = i64::from(AT_FDCWD);
        // Lexically outside every mount.
        assert_eq!(files.open(cwd, "../secret", libc::O_RDONLY, 0), Err(ENOENT));
        assert_eq!(
            files.open(cwd, "/etc/passwd", libc::O_RDONLY, 0),
            Err(ENOENT)
        );
        // Symlinks resolve inside the mount root, so they can't leave it.
        assert_eq!(files.open(cwd, "abs", libc::O_RDONLY, 0), Err(ENOENT));
        assert_eq!(files.open(cwd, "up", libc::O_RDONLY, 0), Err(ENOENT));
        assert_eq!(
            files.open(cwd, "/proc/self/root/etc/passwd", libc::O_RDONLY, 0),
            Err(ENOENT)
        );
        assert_eq!(files.close(1234), Err(EBADF));
        assert_eq!(files.dup(777, -1, 0), Err(EBADF));
    }

    /// Found by the fuzz target: a reversed range panicked the monitor.
    #[test]
    fn a_reversed_close_range_is_refused() {
        let files = Files::new(&[], "/").unwrap();
        assert_eq!(files.close_range(9, 3, false), Err(EINVAL));
        assert_eq!(files.close_range(9, 3, true), Err(EINVAL));
        assert_eq!(files.close_range(3, u64::MAX, false), Ok(0));
    }

    #[test]
    fn read_only_mounts_refuse_writes() {
        let dir = scratch();
        let files = files(&dir, true);
        let cwd = i64::from(AT_FDCWD);
        assert_eq!(files.open(cwd, "file", libc::O_WRONLY, 0), Err(EROFS));
        assert_eq!(
            files.open(cwd, "new", libc::O_CREAT | libc::O_RDWR, 0o644),
            Err(EROFS)
        );
        assert_eq!(files.mkdir(cwd, "dir", 0o755), Err(EROFS));
        assert_eq!(files.unlink(cwd, "file", 0), Err(EROFS));
        assert_eq!(files.rename(cwd, "file", cwd, "moved", 0), Err(EROFS));
        assert!(files.open(cwd, "file", libc::O_RDONLY, 0).is_ok());
    }

    fn mode_of(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn files_never_get_other_owners_or_set_id_bits() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch();
        let files = files(&dir, false);
        let cwd = i64::from(AT_FDCWD);
        let (uid, gid) = monitor_ids();
        let other = uid.wrapping_add(1234);
        assert_eq!(
            files.chown(cwd, Some("file"), other, u32::MAX, 0),
            Err(EPERM)
        );
        assert_eq!(
            files.chown(cwd, Some("file"), u32::MAX, other, 0),
            Err(EPERM)
        );
        assert_eq!(files.chown(cwd, Some("file"), uid, gid, 0), Ok(0));
        assert_eq!(files.chown(cwd, Some("file"), u32::MAX, u32::MAX, 0), Ok(0));
        let fd = files.open(cwd, "file", libc::O_RDONLY, 0).unwrap();
        assert_eq!(files.chown(fd, None, other, other, 0), Err(EPERM));
        assert_eq!(
            files.chown(fd, Some(""), other, other, libc::AT_EMPTY_PATH),
            Err(EPERM)
        );
        let meta = std::fs::metadata(dir.join("inside/file")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));

        assert_eq!(files.chmod(cwd, Some("file"), 0o6755), Ok(0));
        assert_eq!(mode_of(&dir.join("inside/file")), 0o755);
        assert_eq!(files.chmod(fd, None, 0o4711), Ok(0));
        assert_eq!(mode_of(&dir.join("inside/file")), 0o711);
        files.umask(0);
        let created = files
            .open(cwd, "made", libc::O_CREAT | libc::O_WRONLY, 0o6777)
            .unwrap();
        assert!(created >= 3);
        assert_eq!(mode_of(&dir.join("inside/made")), 0o777);
        // A directory keeps S_ISGID (its new entries take its group).
        assert_eq!(files.chmod(cwd, Some("sub"), 0o7755), Ok(0));
        assert_eq!(mode_of(&dir.join("inside/sub")), 0o3755);

        // `:owners` lets them through.
        let files = mounted(&dir, false, true);
        assert_eq!(files.chmod(cwd, Some("file"), 0o4755), Ok(0));
        assert_eq!(mode_of(&dir.join("inside/file")), 0o4755);
        if uid == 0 {
            assert_eq!(files.chown(cwd, Some("file"), other, other, 0), Ok(0));
            let meta = std::fs::metadata(dir.join("inside/file")).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (other, other));
        }
    }

    /// This thread's umask, as /proc shows it (reading it with umask(2)
    /// would set it).
    fn thread_umask() -> String {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let line = status.lines().find(|line| line.starts_with("Umask:"));
        line.unwrap().to_string()
    }

    #[test]
    fn new_files_get_exactly_the_isles_umask() {
        let before = thread_umask();
        let dir = scratch();
        let files = files(&dir, false);
        let cwd = i64::from(AT_FDCWD);
        for (mask, file, directory) in [
            (0, 0o666, 0o777),
            (0o022, 0o644, 0o755),
            (0o077, 0o600, 0o700),
        ] {
            files.umask(mask);
            let name = format!("file-{mask:o}");
            files
                .open(cwd, &name, libc::O_CREAT | libc::O_WRONLY, 0o666)
                .unwrap();
            assert_eq!(
                mode_of(&dir.join("inside").join(&name)),
                file,
                "umask {mask:o}"
            );
            let name = format!("dir-{mask:o}");
            files.mkdir(cwd, &name, 0o777).unwrap();
            assert_eq!(
                mode_of(&dir.join("inside").join(&name)),
                directory,
                "umask {mask:o}"
            );
        }
        assert_eq!(thread_umask(), before, "atoll's own umask is left alone");
    }

    #[test]
    fn o_path_ignores_other_flags_and_linkat_follows_when_told() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch();
        let files = files(&dir, false);
        let cwd = i64::from(AT_FDCWD);
        // musl's O_LARGEFILE, which openat2 refuses with O_PATH.
        let fd = files.open(cwd, "file", libc::O_PATH | 0o100000, 0);
        assert!(fd.is_ok(), "{fd:?}");
        std::os::unix::fs::symlink("file", dir.join("inside/relative")).unwrap();
        assert_eq!(
            files.link(cwd, "relative", cwd, "hard", libc::AT_SYMLINK_FOLLOW),
            Ok(0)
        );
        let target = std::fs::metadata(dir.join("inside/file")).unwrap();
        let hard = std::fs::symlink_metadata(dir.join("inside/hard")).unwrap();
        assert_eq!(hard.ino(), target.ino(), "links the symlink's target");
        assert_eq!(files.link(cwd, "relative", cwd, "soft", 0), Ok(0));
        assert!(std::fs::symlink_metadata(dir.join("inside/soft"))
            .unwrap()
            .file_type()
            .is_symlink());
        // Following stays inside the mount.
        assert_eq!(
            files.link(cwd, "up", cwd, "escaped", libc::AT_SYMLINK_FOLLOW),
            Err(ENOENT)
        );
        assert_eq!(files.link(cwd, "file", cwd, "x", 0x8000), Err(EINVAL));
    }
}
