//! Operations on a name (stat, mkdir, unlink, rename, link, chmod...): each
//! resolves its parent inside a mount and acts on the last component only;
//! without `:owners`, files never get other owners or set-id bits.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use atoll_abi::linux::errno::{
    EACCES, EBADF, EEXIST, EINVAL, ELOOP, ENOENT, ENOTDIR, EPERM, ERANGE, EXDEV,
};
use rustix::fs::{AtFlags, Mode, RenameFlags, Timespec, Timestamps, CWD, UTIME_NOW};
use rustix::process::{Gid, Uid};

use super::fdtable::{fstat, State};
use super::mounts::{device, Files};
use super::resolve::{c_string, Resolved, Target, AT_FDCWD};
use super::{done, errno};
use crate::host::files::{access_fd, fstatfs, own_fs_struct};

/// The user and group atoll runs as: without `:owners`, the only ids an
/// isle may give a file.
pub(super) fn monitor_ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

/// A stat from rustix in the C library's struct the caller lent (which
/// has the same fields: the kernel's `struct stat`).
fn copy_stat(from: &rustix::fs::Stat, to: &mut libc::stat) {
    to.st_dev = from.st_dev;
    to.st_ino = from.st_ino;
    to.st_nlink = from.st_nlink;
    to.st_mode = from.st_mode;
    to.st_uid = from.st_uid;
    to.st_gid = from.st_gid;
    to.st_rdev = from.st_rdev;
    to.st_size = from.st_size;
    to.st_blksize = from.st_blksize;
    to.st_blocks = from.st_blocks;
    to.st_atime = from.st_atime;
    to.st_atime_nsec = from.st_atime_nsec as i64;
    to.st_mtime = from.st_mtime;
    to.st_mtime_nsec = from.st_mtime_nsec as i64;
    to.st_ctime = from.st_ctime;
    to.st_ctime_nsec = from.st_ctime_nsec as i64;
}

/// A chown id as rustix takes it: -1 (u32::MAX) leaves it unchanged.
fn chown_id(id: u32) -> Option<u32> {
    (id != u32::MAX).then_some(id)
}

/// A guest timespec as rustix takes it.
fn timespec(time: &libc::timespec) -> Timespec {
    Timespec {
        tv_sec: time.tv_sec,
        tv_nsec: time.tv_nsec,
    }
}

/// What an isle may set of `mode` on a file of type `file_type` (S_IFMT
/// bits) without `:owners`: never S_ISUID, so the host never holds a
/// setuid program an isle made, and S_ISGID on directories only, where it
/// just makes new entries take the directory's group (which the isle
/// could give them anyway), as shared group directories want.
pub(super) fn without_set_id(mode: u32, file_type: u32) -> u32 {
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
pub(super) fn with_umask<R>(mask: u32, create: impl FnOnce() -> Result<R, i64>) -> Result<R, i64> {
    if !OWN_UMASK.get() {
        own_fs_struct()?;
        OWN_UMASK.set(true);
    }
    let previous = rustix::process::umask(Mode::from_bits_retain(mask));
    let result = create();
    rustix::process::umask(previous);
    result
}

impl Files {
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
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            let resolved = match self.target(&state, dirfd, path, follow)? {
                Target::Mount(resolved) => resolved,
                Target::Synthetic(absolute) => {
                    let fd = match self.open_synthetic(&state, &absolute, libc::O_RDONLY, follow) {
                        // A link itself (lstat).
                        Err(ELOOP) => self.host.link()?,
                        opened => opened?,
                    };
                    copy_stat(&fstat(&fd)?, out);
                    return Ok(0);
                }
            };
            if let Some(name) = device(&resolved.absolute) {
                copy_stat(&rustix::fs::stat(name).map_err(errno)?, out);
                return Ok(0);
            }
            let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
                libc::O_NOFOLLOW
            } else {
                0
            };
            Some(self.open_inside(&resolved, libc::O_PATH | nofollow, 0)?)
        };
        let host = match &target {
            Some(fd) => fd.as_fd(),
            None => Self::borrow_fd(&state, dirfd)?,
        };
        copy_stat(&fstat(host)?, out);
        Ok(0)
    }

    /// Where a new name goes: its parent (O_PATH) and last component, on a
    /// writable mount. Like Linux, an existing name is EEXIST even on a
    /// read-only mount.
    fn new_name(
        &self,
        state: &State,
        dirfd: i64,
        path: &str,
    ) -> Result<(Resolved, OwnedFd, CString), i64> {
        let resolved = self.resolve(state, dirfd, path)?;
        let (parent, name) = self.parent_of(&resolved)?;
        if rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(EEXIST);
        }
        self.writable(&resolved)?;
        Ok((resolved, parent, name))
    }

    pub fn mkdir(&self, dirfd: i64, path: &str, mode: u32) -> Result<i64, i64> {
        let state = self.lock();
        let (_, parent, name) = self.new_name(&state, dirfd, path)?;
        // Set-id bits in mkdir's mode mean nothing on Linux (a new
        // directory takes S_ISGID from its parent).
        with_umask(state.umask, || {
            done(rustix::fs::mkdirat(
                &parent,
                &name,
                Mode::from_bits_retain(mode & 0o1777),
            ))
        })
    }

    /// mknodat for what an unprivileged process may make: regular files,
    /// FIFOs and socket files (devices are EPERM, as without CAP_MKNOD).
    pub fn mknod(&self, dirfd: i64, path: &str, mode: u32) -> Result<i64, i64> {
        let kind = match mode & libc::S_IFMT {
            0 => libc::S_IFREG,
            libc::S_IFCHR | libc::S_IFBLK => return Err(EPERM),
            kind @ (libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK) => kind,
            _ => return Err(EINVAL),
        };
        let state = self.lock();
        let (resolved, parent, name) = self.new_name(&state, dirfd, path)?;
        let permissions = if self.mounts[resolved.mount].keep_owners {
            mode & 0o7777
        } else {
            without_set_id(mode & 0o7777, kind)
        };
        with_umask(state.umask, || {
            done(rustix::fs::mknodat(
                &parent,
                &name,
                rustix::fs::FileType::from_raw_mode(kind),
                Mode::from_bits_retain(permissions),
                0,
            ))
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
        done(rustix::fs::unlinkat(
            &parent,
            &name,
            AtFlags::from_bits_retain(flags as u32),
        ))
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
        done(rustix::fs::renameat_with(
            &from_parent,
            &from_name,
            &to_parent,
            &to_name,
            RenameFlags::from_bits_retain(flags),
        ))
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
                // The file we hold, by its fd's name (the magic link is
                // followed, to that file).
                let name = Self::fd_path(&source)?;
                return done(rustix::fs::linkat(
                    CWD,
                    &name,
                    &to_parent,
                    &to_name,
                    AtFlags::SYMLINK_FOLLOW,
                ));
            }
        };
        let (from_parent, from_name) = self.parent_of(&from)?;
        // Never following symlinks.
        done(rustix::fs::linkat(
            &from_parent,
            &from_name,
            &to_parent,
            &to_name,
            AtFlags::empty(),
        ))
    }

    pub fn symlink(&self, target: &str, new_dirfd: i64, path: &str) -> Result<i64, i64> {
        let state = self.lock();
        let resolved = self.resolve(&state, new_dirfd, path)?;
        self.writable(&resolved)?;
        let (parent, name) = self.parent_of(&resolved)?;
        // The target is stored as is: it is only ever resolved inside a mount.
        let target = c_string(target)?;
        done(rustix::fs::symlinkat(&target, &parent, &name))
    }

    pub fn readlink(&self, dirfd: i64, path: &str, buffer: &mut [u8]) -> Result<i64, i64> {
        let state = self.lock();
        let resolved = match self.target(&state, dirfd, path, false)? {
            Target::Mount(resolved) => resolved,
            Target::Synthetic(absolute) => {
                let target = self.synthetic_link(&state, &absolute)?;
                let len = target.len().min(buffer.len());
                buffer[..len].copy_from_slice(&target.as_bytes()[..len]);
                return Ok(len as i64);
            }
        };
        let (parent, name) = self.parent_of(&resolved).map_err(|_| EINVAL)?;
        rustix::fs::readlinkat_raw(&parent, &name, buffer)
            .map(|len| len as i64)
            .map_err(errno)
    }

    pub fn access(&self, dirfd: i64, path: &str, mode: i32, flags: i32) -> Result<i64, i64> {
        let state = self.lock();
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let resolved = match self.target(&state, dirfd, path, follow)? {
            Target::Mount(resolved) => resolved,
            Target::Synthetic(absolute) => {
                // Readable by all, writable and executable by none. A link
                // not followed is there if it names something.
                match self.open_synthetic(&state, &absolute, libc::O_RDONLY, follow) {
                    Err(ELOOP) if !follow => {}
                    opened => drop(opened?),
                }
                return match mode & (libc::W_OK | libc::X_OK) {
                    0 => Ok(0),
                    _ => Err(EACCES),
                };
            }
        };
        let nofollow = if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
            libc::O_NOFOLLOW
        } else {
            0
        };
        let fd = self.open_inside(&resolved, libc::O_PATH | nofollow, 0)?;
        if mode & libc::W_OK != 0 {
            self.writable(&resolved)?;
        }
        access_fd(fd.as_fd(), mode, flags & libc::AT_EACCESS)
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
                let stat = fstat(&file.fd)?;
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
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        // The lookup's errors (ENOENT, ENOTDIR) come before EROFS, as Linux's.
        let fd = self.open_inside(&resolved, libc::O_PATH | nofollow, 0)?;
        self.writable(&resolved)?;
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
            without_set_id(mode, fstat(&target)?.st_mode & libc::S_IFMT)
        };
        let mode = Mode::from_bits_retain(mode);
        if path.is_none() {
            // EBADF for O_PATH, as on Linux.
            return done(rustix::fs::fchmod(&target, mode));
        }
        // The file we opened (O_PATH), by its fd's name.
        let name = Self::fd_path(&target)?;
        done(rustix::fs::chmod(&name, mode))
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
            let stat = fstat(&target)?;
            if !chown_permitted(owner, group, (stat.st_uid, stat.st_gid)) {
                return Err(EPERM);
            }
        }
        let owner = chown_id(owner).map(Uid::from_raw);
        let group = chown_id(group).map(Gid::from_raw);
        if fchown {
            // EBADF for O_PATH, as on Linux.
            return done(rustix::fs::fchown(&target, owner, group));
        }
        // The file we hold itself.
        done(rustix::fs::chownat(
            &target,
            c"",
            owner,
            group,
            AtFlags::EMPTY_PATH,
        ))
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
        // No times means now, which Linux takes both UTIME_NOW to mean too.
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        };
        let times = times.map_or(
            Timestamps {
                last_access: now,
                last_modification: now,
            },
            |[access, modification]| Timestamps {
                last_access: timespec(&access),
                last_modification: timespec(&modification),
            },
        );
        match path {
            None => done(rustix::fs::futimens(
                Self::writable_fd(&state, dirfd)?,
                &times,
            )),
            Some(path) => {
                let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
                let (target, _) = self.target_for_change(&state, dirfd, path, follow)?;
                // The file we just opened, by its fd's name (a symlink
                // opened with O_NOFOLLOW is changed itself).
                let name = Self::fd_path(&target)?;
                done(rustix::fs::utimensat(CWD, &name, &times, AtFlags::empty()))
            }
        }
    }

    /// statfs(path) or, with None, fstatfs(fd).
    pub fn statfs(&self, path: Option<&str>, fd: i64, out: &mut libc::statfs) -> Result<i64, i64> {
        let state = self.lock();
        let opened;
        let host = match path {
            Some(path) => {
                let resolved = self.resolve_follow(&state, i64::from(AT_FDCWD), path, true)?;
                opened = self.open_inside(&resolved, libc::O_PATH, 0)?;
                opened.as_fd()
            }
            None => Self::borrow_fd(&state, fd)?,
        };
        fstatfs(host, out)
    }
}
