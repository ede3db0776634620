//! The offload queue: how an isle asks its host to do I/O.
//!
//! Each vCPU owns one [`QueuePair`] in its [`crate::boot::CpuArea`]: a
//! submission ring the guest fills and a completion ring the host fills, both
//! single-producer/single-consumer, in guest memory.
//!
//! Protocol:
//! 1. The guest writes `sq[sq_tail % DEPTH]`, then publishes `sq_tail + 1`
//!    with a release store.
//! 2. The host polls `sq_tail`. For each new request it validates every
//!    guest address, length and fd, performs the operation on the guest's
//!    buffers in place (zero copy), writes `cq[cq_tail % DEPTH]` with the
//!    request's `tag` and a Linux-style result (`>= 0`, or `-errno`), then
//!    publishes `cq_tail + 1` and `sq_head + 1`.
//! 3. The guest polls `cq_tail`, consumes completions and advances `cq_head`.
//!
//! When the host has been idle for a while it sets `host_state` to
//! [`HOST_PARKED`] and sleeps. After publishing a request the guest issues a
//! full fence, reads `host_state`, and if parked rings
//! [`crate::mmio::WAKE_HOST`]. The host re-checks the ring after announcing
//! that it parks, so no request is ever missed (both sides fence: Dekker).
//!
//! The host never trusts anything here: indices are checked against its own
//! copies and `DEPTH`, addresses and lengths against guest RAM.

use core::sync::atomic::AtomicU32;

/// Entries per ring (a power of two).
pub const DEPTH: u32 = 64;

/// The host server is polling.
pub const HOST_POLLING: u32 = 0;
/// The host server sleeps until woken through the doorbell.
pub const HOST_PARKED: u32 = 1;

/// Declares [`Opcode`] and its decoding from one list of `Variant = number`
/// rows, so each opcode is written once.
macro_rules! opcodes {
    ($($(#[$doc:meta])* $variant:ident = $number:literal,)*) => {
        /// Operations. Arguments are listed as `args[0], args[1], ...`. The
        /// ring carries the number ([`Request::opcode`]); the host decodes it
        /// with [`Opcode::try_from`] and answers ENOSYS to unknown ones.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Opcode {
            $($(#[$doc])* $variant = $number,)*
        }

        impl TryFrom<u32> for Opcode {
            /// The unknown number.
            type Error = u32;

            fn try_from(number: u32) -> Result<Self, u32> {
                match number {
                    $($number => Ok(Self::$variant),)*
                    unknown => Err(unknown),
                }
            }
        }
    };
}

opcodes! {
    /// Does nothing; completes with 0.
    Nop = 0,
    /// read(fd, buf, len).
    Read = 1,
    /// write(fd, buf, len).
    Write = 2,
    /// ioctl(fd, request, arg_buf) for the terminal requests in
    /// [`crate::linux::ioctl`]; the result struct is written to arg_buf.
    Ioctl = 3,
    /// fstat(fd, statbuf): writes a Linux x86_64 `struct stat`.
    Fstat = 4,
    /// poll(pollfds, nfds, timeout_ms) over host-side fds.
    Poll = 5,
    /// lseek(fd, offset, whence).
    Lseek = 6,
    /// getrandom(buf, len, flags).
    GetRandom = 7,
    /// Write buf[..len] to the host's stderr: the kernel's own messages
    /// (warnings, --trace lines, the syscall summary).
    Log = 8,
    /// preadv2(fd, iov, iovcnt, offset, flags): iov is an array of Linux
    /// `struct iovec`; offset -1 uses (and moves) the file position.
    ReadVectored = 9,
    /// pwritev2(fd, iov, iovcnt, offset, flags), as [`Opcode::ReadVectored`].
    WriteVectored = 10,
    /// Host-to-host copy between two fds, no guest buffer:
    /// (kind, fd_in, off_in, fd_out, off_out, len), flags in `Request::flags`.
    /// `off_*` are guest addresses of 64-bit offsets, or 0. See [`transfer`].
    Transfer = 11,
    /// openat(dirfd, path, flags, mode): path is a NUL-terminated guest
    /// string, resolved inside the isle's mounts. Returns the new fd.
    OpenAt = 12,
    /// close(fd).
    Close = 13,
    /// newfstatat(dirfd, path, statbuf, flags).
    StatAt = 14,
    /// getdents64(fd, buf, len).
    GetDents = 15,
    /// mkdirat(dirfd, path, mode).
    MkdirAt = 16,
    /// unlinkat(dirfd, path, flags).
    UnlinkAt = 17,
    /// renameat2(olddirfd, oldpath, newdirfd, newpath, flags).
    RenameAt = 18,
    /// readlinkat(dirfd, path, buf, size).
    ReadlinkAt = 19,
    /// symlinkat(target, newdirfd, linkpath).
    SymlinkAt = 20,
    /// faccessat2(dirfd, path, mode, flags).
    AccessAt = 21,
    /// chdir(path), or fchdir(fd) when path is 0.
    Chdir = 22,
    /// getcwd(buf, size).
    GetCwd = 23,
    /// dup3(oldfd, newfd, flags); newfd < 0: the lowest free fd ≥ -newfd - 1.
    Dup = 24,
    /// fcntl(fd, cmd, arg) for F_DUPFD(_CLOEXEC), F_GETFD, F_SETFD, F_GETFL,
    /// F_SETFL, F_GETPIPE_SZ, F_SETPIPE_SZ, and the record locks (F_GETLK,
    /// F_SETLK, F_SETLKW and their F_OFD_ forms), whose arg is the guest
    /// address of a Linux `struct flock`.
    Fcntl = 25,
    /// ftruncate(fd, length).
    Ftruncate = 26,
    /// fsync(fd) or, with args[1] = 1, fdatasync(fd); with args[1] = 2,
    /// sync(2), which syncs the filesystems of the isle's mounts only.
    Fsync = 27,
    /// pipe2(fds, flags): writes two guest fds (int[2]).
    Pipe = 28,
    /// pread64(fd, buf, len, offset).
    Pread = 29,
    /// pwrite64(fd, buf, len, offset).
    Pwrite = 30,
    /// umask(mask): returns the previous mask.
    Umask = 31,
    /// fchmodat(dirfd, path, mode) or, with path 0, fchmod(dirfd, mode).
    Chmod = 32,
    /// utimensat(dirfd, path, times, flags).
    UtimensAt = 33,
    /// statfs(path, buf) or, with path 0, fstatfs(args[2] fd, buf).
    StatFs = 34,
    /// linkat(olddirfd, oldpath, newdirfd, newpath, flags).
    LinkAt = 35,
    /// socket(domain, type, protocol).
    Socket = 36,
    /// socketpair(domain, type, protocol, sv): writes two guest fds.
    SocketPair = 37,
    /// bind(fd, addr, len), under the isle's network policy.
    Bind = 38,
    /// listen(fd, backlog).
    Listen = 39,
    /// accept4(fd, addr, len_ptr, flags).
    Accept = 40,
    /// connect(fd, addr, len), under the isle's network policy.
    Connect = 41,
    /// getsockname(fd, addr, len_ptr).
    GetSockName = 42,
    /// getpeername(fd, addr, len_ptr).
    GetPeerName = 43,
    /// setsockopt(fd, level, name, value, len).
    SetSockOpt = 44,
    /// getsockopt(fd, level, name, value, len_ptr).
    GetSockOpt = 45,
    /// shutdown(fd, how).
    Shutdown = 46,
    /// sendto(fd, buf, len, flags, addr, addr_len).
    SendTo = 47,
    /// recvfrom(fd, buf, len, flags, addr, len_ptr).
    RecvFrom = 48,
    /// epoll_create1(flags).
    EpollCreate = 49,
    /// epoll_ctl(epfd, op, fd, event): the event's data is the guest's own.
    EpollCtl = 50,
    /// epoll_wait(epfd, events, max, timeout_ms).
    EpollWait = 51,
    /// eventfd2(initial, flags).
    EventFd = 52,
    /// timerfd_create(clock, flags).
    TimerFdCreate = 53,
    /// timerfd_settime(fd, flags, new, old).
    TimerFdSetTime = 54,
    /// timerfd_gettime(fd, current).
    TimerFdGetTime = 55,
    /// statx(dirfd, path, flags, mask, buf).
    Statx = 56,
    /// flock(fd, operation).
    Flock = 57,
    /// fallocate(fd, mode, offset, len).
    Fallocate = 58,
    /// fchownat(dirfd, path, owner, group, flags); path 0: fchown(dirfd).
    Chown = 59,
    /// sendmsg(fd, msghdr, flags): no control data.
    SendMsg = 60,
    /// recvmsg(fd, msghdr, flags): no control data is returned.
    RecvMsg = 61,
    /// close_range(first, last, flags): CLOSE_RANGE_CLOEXEC marks instead.
    CloseRange = 62,
    /// Shares a file's pages into guest RAM: (fd, address, len, prot,
    /// offset). The page-aligned `[address, address + len)` of the heap
    /// then shows the file from `offset` on, as mmap(MAP_SHARED) would.
    /// Returns the file's name in the memory map (`regions::Region::name`)
    /// shifted left by one, with bit 0 set when the mapping may be made
    /// writable (the fd was opened for reading and writing on a writable
    /// mount). ENODEV where
    /// the backend can't (QEMU) or the fd is no regular file.
    MapFile = 63,
    /// Puts private zeroed memory back over `[address, address + len)`
    /// (munmap of a [`Opcode::MapFile`] range): (address, len).
    UnmapFile = 64,
    /// msync(address, len, flags) over [`Opcode::MapFile`] ranges.
    Msync = 65,
    /// mremap of a [`Opcode::MapFile`] range: (old, old_len, new, new_len). The
    /// file shows at `[new, new + new_len)` from where `old` showed it;
    /// `[old, old + old_len)` outside the new range gets private memory.
    RemapFile = 66,
    /// memory(kind, address, len): a [`memory`] request on guest RAM.
    Memory = 67,
    /// Interrupts the request at ring position `args[1]` of queue
    /// `args[0]` for a signal: if it waits on the host, it ends at once
    /// with EINTR (one not yet begun doesn't begin). Sent unwaited.
    Interrupt = 68,
    /// Rewrites the syscall sites of code just read from a file into guest
    /// memory (mmap PROT_EXEC, or mprotect to it): (name, address, len,
    /// offset, area, area_len), `name` as [`Opcode::MapPrivateFile`] gave
    /// it. Sites whose bytes no longer are the file's stay trapping. With `area` 0 it returns the bytes of stubs needed (0:
    /// none); then it writes them at `area` and patches the sites.
    RewriteMapped = 69,
    /// The isle's RLIMIT_NOFILE soft limit changed: (limit). New fds are
    /// numbered below it (EMFILE otherwise), dup2 and F_DUPFD at or above
    /// it fail.
    FdLimit = 70,
    /// mknodat(dirfd, path, mode): regular files, FIFOs and socket files.
    MknodAt = 71,
    /// mmap(MAP_PRIVATE) of a file: reads it into guest memory, (fd,
    /// address, len, offset), zeros past its end; returns the file's name
    /// in the memory map (`regions::Region::name`, 0: none). ENODEV for
    /// what can't be mapped (a directory, a pipe).
    MapPrivateFile = 72,
    /// fork: the host forks the isle's process; the child's isle resumes
    /// the calling thread (its kernel on the memory copied, generation + 1).
    /// Returns the child's pid.
    Fork = 73,
    /// wait4(pid, options, rusage address): the host waits for a child of
    /// the isle's process; returns `pid << 32 | wait status` (pid 0 with
    /// WNOHANG and none done), and writes the child's struct rusage where
    /// asked (0: not).
    Wait = 74,
    /// execve(at): (dirfd, path, argv, envp, flags, the guest address of
    /// the caller's `boot::ExecSignals`). The host checks the program and
    /// keeps it, its arguments and the signal state; 0 then, and the
    /// kernel rings [`crate::mmio::EXEC`]: the isle is replaced by one
    /// running the new program, in the same process, with the same fds
    /// (but those marked close-on-exec).
    Exec = 75,
    /// kill(pid, signal) of another of the isle's processes: a child of
    /// this one (ESRCH for any other).
    Kill = 76,
    /// waitid(idtype, id, options, siginfo address, rusage address): as
    /// [`Opcode::Wait`], with the child's siginfo (128 bytes) and struct
    /// rusage written where asked (0: not).
    WaitId = 77,
    /// Process groups and sessions: (what, pid, pgid) with `what` one of
    /// [`group`]'s; pid 0 or this process, or one of its children.
    Group = 78,
    /// getrusage(who, address): the host's struct rusage of the isle's
    /// process (RUSAGE_SELF) or of its children waited for
    /// (RUSAGE_CHILDREN), written at the address.
    Usage = 79,
    /// mmap(MAP_SHARED | MAP_ANONYMOUS) over guest (address, len): the
    /// host shows a new memfd's pages there, which the process's forks
    /// share. ENODEV where it can't (QEMU).
    MapSharedMemory = 80,
    /// A futex in memory the host shows from a file (which other
    /// processes may share): (address, [`shared_futex`] kind, value, ns
    /// left before the wait times out (0: never), bitset). A wait returns
    /// 0, EAGAIN, ETIMEDOUT or EINTR; a wake, how many it woke.
    SharedFutex = 81,
    /// prctl(PR_SET_PDEATHSIG, signal): the host's, for the isle's process
    /// (0: none).
    ParentDeathSignal = 82,
    /// A stop signal's default action (signal): the host stops the isle's
    /// process as that signal would, and answers once it is continued (at
    /// once if its process group is orphaned, whose stops Linux discards).
    Stop = 83,
}

/// The answer a terminal call of a background process gets instead of
/// running (read, or an ioctl that changes the terminal, asked with the
/// caller's SIGTTIN/SIGTTOU acting): the kernel sends the signal to its
/// process group and restarts the call, as Linux's tty_check_change does.
/// Never a program's errno.
pub const TERMINAL_BACKGROUND: i64 = 600;

/// [`Opcode::SharedFutex`]'s kinds.
pub mod shared_futex {
    /// Wait while the word holds the value (FUTEX_WAIT_BITSET).
    pub const WAIT: u64 = 0;
    /// Wake up to value waiters (FUTEX_WAKE_BITSET).
    pub const WAKE: u64 = 1;
}

/// [`Opcode::Group`]'s `what`.
pub mod group {
    pub const GETPGID: u64 = 0;
    pub const SETPGID: u64 = 1;
    pub const GETSID: u64 = 2;
    pub const SETSID: u64 = 3;
}

impl Opcode {
    /// The number the ring carries.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

impl From<Opcode> for u32 {
    fn from(op: Opcode) -> u32 {
        op.as_u32()
    }
}

/// Kinds of [`Opcode::Memory`]; address and len are page-aligned.
pub mod memory {
    /// Back the range with host memory now (MADV_POPULATE_WRITE), contents
    /// unchanged. Sent ahead of use, completion ignored.
    pub const POPULATE: u64 = 0;
    /// Give the range back to the host: it reads as zeros afterwards
    /// (MADV_DONTNEED, or MADV_REMOVE for a memfd).
    pub const RELEASE: u64 = 1;
    /// Make the range reachable by the vCPUs before the kernel first maps
    /// it. KVM keeps metadata in proportion to a memory slot's size (on
    /// shadow paging, 8 bytes per 4 KiB page, zeroed at registration), so
    /// the KVM monitor registers the address space a
    /// [`RAM_SLOT_SIZE`](crate::layout::RAM_SLOT_SIZE) slot at a time, as it
    /// is first handed out. Synchronous: usable once it completes.
    pub const ATTACH: u64 = 2;
}

/// Kinds of [`Opcode::Transfer`].
pub mod transfer {
    /// splice(2).
    pub const SPLICE: u64 = 0;
    /// sendfile(2): only `off_in` is used.
    pub const SENDFILE: u64 = 1;
    /// copy_file_range(2).
    pub const COPY_FILE_RANGE: u64 = 2;
}

/// One request: 64 bytes, one cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub opcode: u32,
    pub flags: u32,
    /// Echoed in the completion.
    pub tag: u64,
    pub args: [u64; 6],
}

/// One completion.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    pub tag: u64,
    /// `>= 0` on success, `-errno` on failure.
    pub result: i64,
}

/// A ring index alone on its cache line, so producer and consumer don't
/// false-share.
#[repr(C, align(64))]
#[derive(Default)]
pub struct RingIndex {
    pub value: AtomicU32,
}

/// One vCPU's submission and completion rings.
#[repr(C)]
pub struct QueuePair {
    /// Written by the guest.
    pub sq_tail: RingIndex,
    /// Written by the host.
    pub sq_head: RingIndex,
    /// Written by the host.
    pub cq_tail: RingIndex,
    /// Written by the guest.
    pub cq_head: RingIndex,
    /// [`HOST_POLLING`] or [`HOST_PARKED`], written by the host.
    pub host_state: RingIndex,
    pub sq: [Request; DEPTH as usize],
    pub cq: [Completion; DEPTH as usize],
}

/// Byte offsets inside [`QueuePair`], for the host's address arithmetic.
pub mod offset {
    use super::*;
    use core::mem::offset_of;

    pub const SQ_TAIL: usize = offset_of!(QueuePair, sq_tail);
    pub const SQ_HEAD: usize = offset_of!(QueuePair, sq_head);
    pub const CQ_TAIL: usize = offset_of!(QueuePair, cq_tail);
    pub const CQ_HEAD: usize = offset_of!(QueuePair, cq_head);
    pub const HOST_STATE: usize = offset_of!(QueuePair, host_state);
    pub const SQ: usize = offset_of!(QueuePair, sq);
    pub const CQ: usize = offset_of!(QueuePair, cq);
}

/// Ring slot for a free-running index.
pub const fn slot(index: u32) -> usize {
    (index & (DEPTH - 1)) as usize
}

/// Where, in a [`QueuePair`], the request at free-running index `index` is.
pub const fn request_offset(index: u32) -> usize {
    offset::SQ + slot(index) * core::mem::size_of::<Request>()
}

/// Where, in a [`QueuePair`], the completion at free-running index `index` is.
pub const fn completion_offset(index: u32) -> usize {
    offset::CQ + slot(index) * core::mem::size_of::<Completion>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn entries_have_the_documented_sizes() {
        assert_eq!(size_of::<Request>(), 64);
        assert_eq!(size_of::<Completion>(), 16);
        assert!(DEPTH.is_power_of_two());
    }

    #[test]
    fn indices_sit_on_separate_cache_lines() {
        let offsets = [
            offset::SQ_TAIL,
            offset::SQ_HEAD,
            offset::CQ_TAIL,
            offset::CQ_HEAD,
            offset::HOST_STATE,
        ];
        for pair in offsets.windows(2) {
            assert_eq!(pair[1] - pair[0], 64);
        }
        assert_eq!(offset::SQ % 64, 0);
        assert_eq!(offset::CQ, offset::SQ + 64 * DEPTH as usize);
    }

    #[test]
    fn opcodes_decode_to_their_own_number_and_unknown_ones_are_refused() {
        let mut known = 0;
        for number in 0..=u16::MAX as u32 {
            match Opcode::try_from(number) {
                Ok(op) => {
                    assert_eq!(u32::from(op), number);
                    known += 1;
                }
                Err(unknown) => assert_eq!(unknown, number),
            }
        }
        assert_eq!(known, Opcode::Stop.as_u32() + 1, "numbers stay dense");
        assert_eq!(Opcode::try_from(u32::MAX), Err(u32::MAX));
    }

    #[test]
    fn slots_wrap_around() {
        assert_eq!(slot(0), 0);
        assert_eq!(slot(DEPTH), 0);
        assert_eq!(slot(u32::MAX), DEPTH as usize - 1);
    }
}
