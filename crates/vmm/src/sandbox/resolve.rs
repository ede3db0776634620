//! Path resolution confined to the mounts. A guest path is made absolute
//! (against the isle's cwd or a directory fd's path), matched to the mount
//! with the longest prefix, and the rest is resolved by the host kernel
//! with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
//! from that mount's root: `..`, absolute symlinks, symlinks pointing out
//! and /proc magic links can't reach anything outside.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use atoll_abi::linux::errno::{EADDRINUSE, EBADF, EEXIST, EINVAL, ELOOP, ENOENT, ENOTDIR, EROFS};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::errno;
use super::fdtable::{OpenFile, State};
use super::mounts::{device, Files};
use super::path_ops::{with_umask, without_set_id};
use super::procfs::is_synthetic;

pub(super) use atoll_abi::linux::AT_FDCWD_INT as AT_FDCWD;

/// How every guest path is resolved beneath its mount's root.
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

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

/// A path resolved to a mount: its index and the path inside it.
pub(super) struct Resolved {
    pub(super) mount: usize,
    pub(super) inside: String,
    pub(super) absolute: String,
}

/// Where a guest path leads: into a mount, or to a /proc or /sys file.
pub(super) enum Target {
    Mount(Resolved),
    Synthetic(String),
}

pub(super) fn c_string(text: &str) -> Result<CString, i64> {
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

impl Files {
    /// Resolves `path` (relative to `dirfd`'s guest path or the cwd) to a
    /// mount and the path inside it. Symlinks met on the way are followed
    /// in the isle's namespace (the host kernel, confined to the mount,
    /// would take them relative to the mount); a final one only if
    /// `follow_last`.
    pub(super) fn resolve_follow(
        &self,
        state: &State,
        dirfd: i64,
        path: &str,
        follow_last: bool,
    ) -> Result<Resolved, i64> {
        match self.target(state, dirfd, path, follow_last)? {
            Target::Mount(resolved) => Ok(resolved),
            // Only reads reach /proc and /sys (see `target`).
            Target::Synthetic(_) => Err(ENOENT),
        }
    }

    /// [`Self::resolve_follow`], or the isle's /proc or /sys path that
    /// `path` names (no mount shadows those).
    pub(super) fn target(
        &self,
        state: &State,
        dirfd: i64,
        path: &str,
        follow_last: bool,
    ) -> Result<Target, i64> {
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
        if is_synthetic(&absolute) {
            return Ok(Target::Synthetic(absolute));
        }
        let (mount, inside) = self.locate(&absolute)?;
        // Keep a trailing slash: it means "must be a directory".
        let inside = if path.ends_with('/') && inside != "." {
            format!("{inside}/")
        } else {
            inside
        };
        Ok(Target::Mount(Resolved {
            mount,
            inside,
            absolute,
        }))
    }

    /// [`Self::resolve_follow`] without following a final symlink.
    pub(super) fn resolve(&self, state: &State, dirfd: i64, path: &str) -> Result<Resolved, i64> {
        self.resolve_follow(state, dirfd, path, false)
    }

    /// Rewrites `absolute` until no symlink lies on it (see
    /// [`Self::resolve_follow`]); ELOOP after 40 rewrites, as Linux.
    pub(super) fn expand_symlinks(
        &self,
        mut absolute: String,
        follow_last: bool,
    ) -> Result<String, i64> {
        'rewrite: for _ in 0..40 {
            // A link into /proc (Debian's /etc/mtab) ends there, unless
            // it is /proc/self/exe, which leads back to the program.
            if is_synthetic(&absolute) {
                match self.own_exe(&absolute) {
                    Some(exe) if follow_last => {
                        absolute = normalize(&exe);
                        continue 'rewrite;
                    }
                    _ => return Ok(absolute),
                }
            }
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
                RESOLVE | ResolveFlags::NO_SYMLINKS,
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
                // Fails (EINVAL/ENOENT) unless the fd is a symlink.
                let len = rustix::fs::readlinkat_raw(&fd, c"", &mut target[..]).unwrap_or(0);
                if len == 0 {
                    continue;
                }
                target.truncate(len);
                let target = String::from_utf8(target).map_err(|_| EINVAL)?;
                let rest = parts[index + 1..].join("/");
                // A relative one is taken from its directory in the isle's
                // namespace too: its `..` may leave the mount (/lib ->
                // usr/lib in a root that only holds the mount point).
                let from = if target.starts_with('/') {
                    String::new()
                } else {
                    let mount_guest = &self.mounts[mount].guest;
                    format!("{mount_guest}/{}", parts[..index].join("/"))
                };
                absolute = normalize(&format!("{from}/{target}/{rest}"));
                continue 'rewrite;
            }
            return Ok(absolute);
        }
        Err(ELOOP)
    }

    pub(super) fn open_inside(
        &self,
        resolved: &Resolved,
        flags: i32,
        mode: u32,
    ) -> Result<OwnedFd, i64> {
        self.open_with_mode(resolved, flags, mode, RESOLVE)
    }

    fn open_with(
        &self,
        resolved: &Resolved,
        flags: i32,
        resolve: ResolveFlags,
    ) -> Result<OwnedFd, i64> {
        self.open_with_mode(resolved, flags, 0, resolve)
    }

    fn open_with_mode(
        &self,
        resolved: &Resolved,
        flags: i32,
        mode: u32,
        resolve: ResolveFlags,
    ) -> Result<OwnedFd, i64> {
        // openat2 refuses a mode unless the call may create a file.
        let mode = if flags & (libc::O_CREAT | O_TMPFILE) != 0 {
            Mode::from_bits_retain(mode)
        } else {
            Mode::empty()
        };
        let path = c_string(&resolved.inside)?;
        rustix::fs::openat2(
            &self.mounts[resolved.mount].root,
            path,
            OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32),
            mode,
            resolve,
        )
        .map_err(errno)
    }

    /// The parent directory (opened as O_PATH) and the last component.
    pub(super) fn parent_of(&self, resolved: &Resolved) -> Result<(OwnedFd, CString), i64> {
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

    pub(super) fn writable(&self, resolved: &Resolved) -> Result<(), i64> {
        if self.mounts[resolved.mount].read_only {
            Err(EROFS)
        } else {
            Ok(())
        }
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
        let follow = flags & libc::O_NOFOLLOW == 0;
        let resolved = match self.target(&state, dirfd, path, follow)? {
            Target::Mount(resolved) => resolved,
            Target::Synthetic(absolute) => {
                let fd = self.open_synthetic(&state, &absolute, flags, follow)?;
                let file = OpenFile {
                    fd: Arc::new(fd),
                    guest_path: Some(absolute),
                    close_on_exec: flags & libc::O_CLOEXEC != 0,
                    read_only: true,
                    keep_owners: false,
                    host_owned: false,
                    socket_names: None,
                    kind: None,
                };
                return Self::insert(&mut state, file, 0).map(i64::from);
            }
        };
        if let Some(name) = device(&resolved.absolute) {
            let flags =
                flags & (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND) | libc::O_CLOEXEC;
            let fd = rustix::fs::open(name, OFlags::from_bits_retain(flags as u32), Mode::empty())
                .map_err(errno)?;
            let file = OpenFile {
                fd: Arc::new(fd),
                guest_path: Some(resolved.absolute),
                close_on_exec: false,
                read_only: false,
                keep_owners: false,
                host_owned: true,
                socket_names: None,
                kind: None,
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
            host_owned: false,
            socket_names: None,
            kind: None,
        };
        Self::insert(&mut state, file, 0).map(i64::from)
    }

    /// A file for the last component of a path, as O_PATH (for statx and
    /// statfs, which then act on it with AT_EMPTY_PATH). A /proc/self/fd
    /// link followed leads to its fd's file only if `through_fd_links`:
    /// a socket's name never reaches another fd that way.
    pub fn open_path(
        &self,
        dirfd: i64,
        path: &str,
        follow: bool,
        through_fd_links: bool,
    ) -> Result<OwnedFd, i64> {
        let state = self.lock();
        let resolved = match self.target(&state, dirfd, path, follow)? {
            Target::Mount(resolved) => resolved,
            Target::Synthetic(absolute) => {
                let follow_link = follow && through_fd_links;
                return match self.open_synthetic(&state, &absolute, libc::O_RDONLY, follow_link) {
                    // A link itself, for statx without following.
                    Err(ELOOP) if !follow => self.host.link(),
                    Err(ELOOP) => Err(ENOENT),
                    opened => opened,
                };
            }
        };
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        self.open_inside(&resolved, libc::O_PATH | nofollow, 0)
    }

    /// The program at `path` (relative to `dirfd`) for execve, with its
    /// guest path (symlinks followed): a regular file with an execute bit
    /// (EACCES otherwise, as for a directory), at most `limit` bytes.
    pub fn executable(&self, dirfd: i64, path: &str, limit: u64) -> Result<(Vec<u8>, String), i64> {
        self.executable_following(dirfd, path, true, limit)
    }

    /// [`Self::executable`], a final symlink followed only if `follow`
    /// (else ELOOP, as execveat's AT_SYMLINK_NOFOLLOW).
    pub fn executable_following(
        &self,
        dirfd: i64,
        path: &str,
        follow: bool,
        limit: u64,
    ) -> Result<(Vec<u8>, String), i64> {
        let (file, metadata, absolute) = self.open_for_reading(dirfd, path, follow)?;
        check_executable(&metadata)?;
        let bytes = read_whole(file, &metadata, limit, libc::ENOMEM)?;
        Ok((bytes, absolute))
    }

    /// The program open as guest fd `fd` (fexecve: execveat(fd, "", ...,
    /// AT_EMPTY_PATH)), checked as [`Self::executable`] checks one; read
    /// without moving the fd's offset. Its path is the one it was opened
    /// by, else /dev/fd/N, as Linux names it.
    pub fn executable_fd(&self, fd: i64, limit: u64) -> Result<(Vec<u8>, String), i64> {
        let (held, path) = {
            let state = self.lock();
            let file = i32::try_from(fd)
                .ok()
                .and_then(|fd| state.fds.get(&fd))
                .ok_or(EBADF)?;
            let held = rustix::io::fcntl_dupfd_cloexec(&*file.fd, 3).map_err(errno)?;
            (held, file.guest_path.clone())
        };
        let file = std::fs::File::from(held);
        let metadata = file.metadata().map_err(io_errno)?;
        if !metadata.is_file() {
            return Err(i64::from(libc::EACCES));
        }
        check_executable(&metadata)?;
        if metadata.len() > limit {
            return Err(i64::from(libc::ENOMEM));
        }
        let mut bytes = vec![0u8; metadata.len() as usize];
        let mut done = 0;
        while done < bytes.len() {
            match std::os::unix::fs::FileExt::read_at(&file, &mut bytes[done..], done as u64) {
                Ok(0) => break,
                Ok(read) => done += read,
                Err(error) => return Err(io_errno(error)),
            }
        }
        bytes.truncate(done);
        Ok((bytes, path.unwrap_or_else(|| format!("/dev/fd/{fd}"))))
    }

    /// The whole of the regular file at absolute guest path `path`, as the
    /// isle would read it (symlinks followed in its namespace), if it is at
    /// most `limit` bytes: how the monitor reads a program's interpreter.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, i64> {
        let (file, metadata, _) = self.open_for_reading(i64::from(AT_FDCWD), path, true)?;
        read_whole(file, &metadata, limit, libc::EFBIG)
    }

    /// The regular file at `path` (relative to `dirfd`, symlinks followed,
    /// the last one only if `follow`: ELOOP else) opened for reading, its
    /// metadata and its guest path; EACCES for anything else.
    fn open_for_reading(
        &self,
        dirfd: i64,
        path: &str,
        follow: bool,
    ) -> Result<(std::fs::File, std::fs::Metadata, String), i64> {
        let (fd, absolute) = {
            let state = self.lock();
            let resolved = self.resolve_follow(&state, dirfd, path, follow)?;
            let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
            // O_NONBLOCK: a FIFO there doesn't wait for a writer (it is
            // refused below).
            let fd =
                self.open_inside(&resolved, libc::O_RDONLY | libc::O_NONBLOCK | nofollow, 0)?;
            (fd, resolved.absolute)
        };
        let file = std::fs::File::from(fd);
        let metadata = file.metadata().map_err(io_errno)?;
        if !metadata.is_file() {
            return Err(i64::from(libc::EACCES));
        }
        Ok((file, metadata, absolute))
    }
}

/// An I/O error as the errno the isle is answered with.
fn io_errno(error: std::io::Error) -> i64 {
    i64::from(error.raw_os_error().unwrap_or(libc::EIO))
}

/// All of `file`, `too_big` if it holds more than `limit` bytes.
/// EACCES unless some execute bit is set.
fn check_executable(metadata: &std::fs::Metadata) -> Result<(), i64> {
    match std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o111 {
        0 => Err(i64::from(libc::EACCES)),
        _ => Ok(()),
    }
}

fn read_whole(
    file: std::fs::File,
    metadata: &std::fs::Metadata,
    limit: u64,
    too_big: i32,
) -> Result<Vec<u8>, i64> {
    use std::io::Read;
    if metadata.len() > limit {
        return Err(i64::from(too_big));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit).read_to_end(&mut bytes).map_err(io_errno)?;
    Ok(bytes)
}
