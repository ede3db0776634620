//! The isle's mounts (`-v HOST:GUEST[:ro]`), the devices every isle has,
//! and [`Files`], the isle's view of files, made from them.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atoll_abi::linux::errno::ENOENT;
use rustix::fs::{Mode, OFlags};

use super::fdtable::{fstat, OpenFile, State};
use super::resolve::normalize;

/// Devices every isle has, as on Linux: the host's own, opened by name.
pub const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// The host device `absolute` names, if it is one of [`DEVICES`].
pub(super) fn device(absolute: &str) -> Option<&'static str> {
    DEVICES.iter().copied().find(|&name| name == absolute)
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

pub(super) struct Mount {
    /// Normalized absolute guest path ("/" or "/a/b").
    pub(super) guest: String,
    pub(super) root: OwnedFd,
    pub(super) read_only: bool,
    pub(super) keep_owners: bool,
}

pub struct Files {
    pub(super) mounts: Vec<Mount>,
    pub(super) state: Mutex<State>,
    /// Guest paths of directories only this isle can see.
    pub(super) private_dirs: Vec<String>,
    /// Guest paths the isle can't reach, though a mount holds them.
    pub(super) hidden: Vec<String>,
    /// What the isle's /proc and /sys show.
    pub(super) facts: std::sync::RwLock<Arc<super::procfs::IsleFacts>>,
    pub(super) host: super::procfs::HostSources,
    /// The files the isle's memory shows, for /proc/self/maps.
    pub(super) named: super::maps::NamedFiles,
}

impl Files {
    /// The mounts' host directories: every path the isle names resolves
    /// beneath one of them.
    pub fn reachable(&self) -> impl Iterator<Item = crate::sandbox::Reachable<'_>> {
        let mounts = self.mounts.iter().map(|mount| crate::sandbox::Reachable {
            root: mount.root.as_fd(),
            read_only: mount.read_only,
        });
        // And the empty directory /proc's directories open as.
        let proc_directory = self.host.reachable().map(|root| crate::sandbox::Reachable {
            root,
            read_only: true,
        });
        mounts.chain(proc_directory)
    }

    /// Opens the mounts and gives the isle fds 0, 1 and 2 (duplicates of
    /// atoll's own, so the isle closing them leaves atoll's alone).
    pub fn new(specs: &[MountSpec], cwd: &str) -> Result<Self, FilesError> {
        let mut mounts = Vec::new();
        for spec in specs {
            if !spec.guest.starts_with('/') {
                return Err(FilesError::RelativeGuest(spec.guest.clone()));
            }
            // A path with a NUL in it is EINVAL.
            let root = rustix::fs::open(
                &spec.host,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| FilesError::Open {
                host: spec.host.clone(),
                source: errno.into(),
            })?;
            mounts.push(Mount {
                guest: normalize(&spec.guest),
                root,
                read_only: spec.read_only,
                keep_owners: spec.keep_owners,
            });
        }
        let mut fds = BTreeMap::new();
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        for (stdio, own) in (0..).zip([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()]) {
            // Skipped if atoll's own is closed (EBADF).
            if let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(own, 3) {
                fds.insert(
                    stdio,
                    OpenFile {
                        fd: Arc::new(fd),
                        guest_path: None,
                        close_on_exec: false,
                        read_only: false,
                        keep_owners: false,
                        host_owned: true,
                        socket_names: None,
                        kind: None,
                    },
                );
            }
        }
        Ok(Self {
            private_dirs: Vec::new(),
            hidden: Vec::new(),
            facts: Default::default(),
            host: Default::default(),
            named: Default::default(),
            mounts,
            state: Mutex::new(State {
                fds,
                cwd: normalize(cwd),
                umask: 0o022,
                fd_limit: super::fdtable::DEFAULT_FD_LIMIT,
            }),
        })
    }

    /// Names the directories (guest paths) only this isle can see.
    pub fn set_private_dirs(&mut self, dirs: &[String]) {
        self.private_dirs = dirs.iter().map(|dir| normalize(dir)).collect();
    }

    /// Hides guest paths (and what is below them): opening, stat or
    /// listing them finds nothing, as if the mount didn't hold them.
    pub fn set_hidden(&mut self, paths: &[String]) {
        self.hidden = paths.iter().map(|path| normalize(path)).collect();
    }

    /// Whether the normalized absolute guest path is hidden.
    pub(super) fn is_hidden(&self, absolute: &str) -> bool {
        self.hidden.iter().any(|hidden| {
            absolute == hidden
                || absolute
                    .strip_prefix(hidden.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
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

    /// The mount showing a normalized absolute guest path, and the path inside it.
    pub(super) fn locate(&self, absolute: &str) -> Result<(usize, String), i64> {
        if self.is_hidden(absolute) {
            return Err(ENOENT);
        }
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

    /// sync(2) for the isle: syncfs on each filesystem its mounts are on,
    /// so it flushes its own files without making the whole host write
    /// back. Returns how many filesystems it synced; like sync(2), it
    /// can't fail (a mount root it can't open as a directory is skipped).
    pub fn sync_mounts(&self) -> usize {
        let mut synced = Vec::new();
        for mount in &self.mounts {
            let Ok(stat) = fstat(&mount.root) else {
                continue;
            };
            if synced.contains(&stat.st_dev) {
                continue;
            }
            // syncfs refuses O_PATH fds, which the roots are.
            let Ok(dir) = rustix::fs::openat(
                &mount.root,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            // sync(2) ignores errors too.
            let _ = rustix::fs::syncfs(&dir);
            synced.push(stat.st_dev);
        }
        synced.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::path_ops::monitor_ids;
    use crate::sandbox::resolve::AT_FDCWD;
    use atoll_abi::linux::errno::{EBADF, EINVAL, EPERM, EROFS};

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
