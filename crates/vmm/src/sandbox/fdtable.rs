//! The isle's fd table: guest fds index host fds the isle opened itself, so
//! a guest can't name any other host fd.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, MutexGuard};

use atoll_abi::linux::errno::{EACCES, EBADF, EINVAL, EMFILE, EPERM, EROFS};
use rustix::fs::OFlags;
use rustix::pipe::PipeFlags;

use super::mounts::Files;
use super::path_ops::with_umask;
use super::{done, errno};

/// Most fds an isle can have open: the hard RLIMIT_NOFILE it is given.
pub const MAX_FDS: i32 = 4096;

/// The soft RLIMIT_NOFILE an isle starts with, as Linux's default.
pub const DEFAULT_FD_LIMIT: i32 = 1024;

pub(super) struct OpenFile {
    /// Shared so a call in flight on a worker keeps the host fd open (and
    /// its number unreused) even if the guest closes it meanwhile.
    pub(super) fd: Arc<OwnedFd>,
    /// The guest path it was opened by, for *at() calls relative to it.
    pub(super) guest_path: Option<String>,
    pub(super) close_on_exec: bool,
    /// Opened from a read-only mount: no attribute changes through it.
    pub(super) read_only: bool,
    /// Opened from a mount whose files may get any owner and set-id bits.
    pub(super) keep_owners: bool,
    /// Not a file of the isle's mounts but one of the host's, given for use
    /// (atoll's stdio, a device such as /dev/null): its owner, mode and
    /// times stay the host's.
    pub(super) host_owned: bool,
    /// A Unix socket's guest addresses (local, peer) as the isle named
    /// them; the host knows them by names of its own.
    pub(super) socket_names: Option<Arc<SocketNames>>,
    /// What kind of file it is (whether calls on it may wait), once asked.
    pub(super) kind: Option<FileKind>,
}

/// What a host fd is, as far as waiting on it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file: calls on it never wait on anyone.
    Regular,
    /// A pipe or FIFO: a write of at most PIPE_BUF bytes goes in whole or
    /// not at all.
    Pipe,
    /// Anything else: a socket, a terminal, a device, a directory.
    Other,
}

impl FileKind {
    fn of(fd: &OwnedFd) -> Self {
        match rustix::fs::fstat(fd).map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode)) {
            Ok(rustix::fs::FileType::RegularFile) => Self::Regular,
            Ok(rustix::fs::FileType::Fifo) => Self::Pipe,
            _ => Self::Other,
        }
    }
}

/// The guest `sockaddr_un`s a Unix socket was bound or connected to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketNames {
    pub local: Option<Vec<u8>>,
    pub peer: Option<Vec<u8>>,
}

pub(super) struct State {
    pub(super) fds: BTreeMap<i32, OpenFile>,
    pub(super) cwd: String,
    pub(super) umask: u32,
    /// The isle's soft RLIMIT_NOFILE (at most [`MAX_FDS`]).
    pub(super) fd_limit: i32,
}

pub(super) fn fstat(fd: impl AsFd) -> Result<rustix::fs::Stat, i64> {
    rustix::fs::fstat(fd).map_err(errno)
}

impl Files {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// execve: the fds marked close-on-exec are closed.
    pub fn close_on_exec(&self) {
        self.lock().fds.retain(|_, file| !file.close_on_exec);
    }

    /// Held while the process forks, so no other thread holds them then.
    pub fn hold_for_fork(&self) -> (impl Drop + '_, impl Drop + '_) {
        (self.lock(), self.named.hold_for_fork())
    }

    /// The host fd behind guest fd `fd`, borrowed while `state` is held.
    pub(super) fn borrow_fd(state: &State, fd: i64) -> Result<BorrowedFd<'_>, i64> {
        i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .map(|file| file.fd.as_fd())
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
        let flags = rustix::fs::fcntl_getfl(&file.fd).map_err(errno)?.bits() as i32;
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

    /// Runs `f` with the host fd behind guest fd `fd`, without holding the
    /// table's lock: `f` may block (a lock wait) while other calls go on.
    pub fn with_fd<R>(&self, fd: u64, f: impl FnOnce(RawFd) -> R) -> Result<R, i64> {
        let held = self.host_fd(fd)?;
        Ok(f(held.as_raw_fd()))
    }

    pub(super) fn insert(state: &mut State, file: OpenFile, lowest: i32) -> Result<i32, i64> {
        let mut fd = lowest.max(0);
        while state.fds.contains_key(&fd) {
            fd += 1;
        }
        if fd >= state.fd_limit {
            return Err(EMFILE);
        }
        state.fds.insert(fd, file);
        Ok(fd)
    }

    /// Gives the isle a host fd (a socket the host made for it), close-on-
    /// exec as the isle asked; returns its guest fd.
    pub fn adopt(&self, fd: OwnedFd, close_on_exec: bool) -> Result<i64, i64> {
        let mut state = self.lock();
        Self::insert(
            &mut state,
            OpenFile {
                fd: Arc::new(fd),
                guest_path: None,
                close_on_exec,
                read_only: false,
                keep_owners: false,
                host_owned: false,
                socket_names: None,
                kind: None,
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
            host_owned: false,
            socket_names: None,
            kind: None,
        };
        Self::insert(&mut state, file, 0).map(i64::from)
    }

    /// The host fd behind guest fd `fd`, as [`Self::host_fd`], and what kind
    /// of file it is (fstat'ed once per fd), under one lock: the offload
    /// server asks both on every I/O call.
    pub fn host_fd_and_kind(&self, fd: u64) -> Result<(Arc<OwnedFd>, FileKind), i64> {
        let mut state = self.lock();
        let file = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get_mut(&fd))
            .ok_or(EBADF)?;
        let kind = *file.kind.get_or_insert_with(|| FileKind::of(&file.fd));
        Ok((Arc::clone(&file.fd), kind))
    }

    /// Whether guest fd `fd` is a regular file, which never makes a call wait.
    pub fn is_regular_file(&self, fd: u64) -> bool {
        self.host_fd_and_kind(fd)
            .is_ok_and(|(_, kind)| kind == FileKind::Regular)
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
                    host_owned: true,
                    socket_names: None,
                    kind: None,
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

    /// The isle set its RLIMIT_NOFILE: fds already open stay open.
    pub fn set_fd_limit(&self, limit: u64) -> i64 {
        self.lock().fd_limit = limit.min(MAX_FDS as u64) as i32;
        0
    }

    /// dup (new < 0: lowest free fd at or above -new - 1) or dup3.
    pub fn dup(&self, old: i64, new: i64, flags: i32) -> Result<i64, i64> {
        let mut state = self.lock();
        let host = Self::borrow_fd(&state, old)?;
        if new >= 0 && new == old {
            return if flags == i32::MIN {
                Ok(new)
            } else {
                Err(EINVAL)
            };
        }
        if new >= i64::from(state.fd_limit) {
            return Err(EBADF);
        }
        let fd = rustix::io::fcntl_dupfd_cloexec(host, 3).map_err(errno)?;
        let original = state.fds.get(&(old as i32));
        let guest_path = original.and_then(|file| file.guest_path.clone());
        let read_only = original.is_some_and(|file| file.read_only);
        let keep_owners = original.is_some_and(|file| file.keep_owners);
        let host_owned = original.is_some_and(|file| file.host_owned);
        let socket_names = original.and_then(|file| file.socket_names.clone());
        let file = OpenFile {
            fd: Arc::new(fd),
            guest_path,
            close_on_exec: flags & libc::O_CLOEXEC != 0 && flags != i32::MIN,
            read_only,
            keep_owners,
            host_owned,
            socket_names,
            kind: None,
        };
        if new >= 0 {
            state.fds.insert(new as i32, file);
            Ok(new)
        } else {
            Self::insert(&mut state, file, (-new - 1) as i32).map(i64::from)
        }
    }

    pub fn fcntl(&self, fd: i64, command: i32, argument: u64) -> Result<i64, i64> {
        match command {
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                let flags = if command == libc::F_DUPFD_CLOEXEC {
                    libc::O_CLOEXEC
                } else {
                    0
                };
                if argument >= self.lock().fd_limit as u64 {
                    return Err(EINVAL);
                }
                self.dup(fd, -(argument as i64) - 1, flags)
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
            // The int argument is the low 32 bits, as fcntl(2) takes it.
            libc::F_GETFL | libc::F_SETFL | libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ => {
                let state = self.lock();
                let host = Self::borrow_fd(&state, fd)?;
                let argument = argument as libc::c_int;
                match command {
                    libc::F_GETFL => rustix::fs::fcntl_getfl(host)
                        .map(|flags| i64::from(flags.bits()))
                        .map_err(errno),
                    libc::F_SETFL => done(rustix::fs::fcntl_setfl(
                        host,
                        OFlags::from_bits_retain(argument as u32),
                    )),
                    libc::F_GETPIPE_SZ => rustix::pipe::fcntl_getpipe_size(host)
                        .map(|size| size as i64)
                        .map_err(errno),
                    _ => crate::host::files::set_pipe_size(host, argument),
                }
            }
            _ => Err(EINVAL),
        }
    }

    /// pipe2: returns the two new guest fds.
    pub fn pipe(&self, flags: i32) -> Result<[i32; 2], i64> {
        if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) != 0 {
            return Err(EINVAL);
        }
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::from_bits_retain(
            (flags | libc::O_CLOEXEC) as u32,
        ))
        .map_err(errno)?;
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
                host_owned: false,
                socket_names: None,
                kind: Some(FileKind::Pipe),
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
                host_owned: false,
                socket_names: None,
                kind: Some(FileKind::Pipe),
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
    /// (EROFS) and the host's own (EPERM), for attribute changes through an fd.
    pub(super) fn writable_fd(state: &State, fd: i64) -> Result<BorrowedFd<'_>, i64> {
        Self::file_writable(state, fd).map(|file| file.fd.as_fd())
    }

    /// [`Self::writable_fd`]'s file.
    pub(super) fn file_writable(state: &State, fd: i64) -> Result<&OpenFile, i64> {
        let file = i32::try_from(fd)
            .ok()
            .and_then(|fd| state.fds.get(&fd))
            .ok_or(EBADF)?;
        if file.read_only {
            return Err(EROFS);
        }
        if file.host_owned {
            return Err(EPERM);
        }
        Ok(file)
    }
}
