//! Linux ABI constants both sides need.

/// errno values (x86_64).
pub mod errno {
    pub const EPERM: i64 = 1;
    pub const ENOENT: i64 = 2;
    pub const ESRCH: i64 = 3;
    pub const EINTR: i64 = 4;
    pub const EIO: i64 = 5;
    pub const EBADF: i64 = 9;
    pub const ECHILD: i64 = 10;
    pub const EAGAIN: i64 = 11;
    pub const ENOMEM: i64 = 12;
    pub const EFAULT: i64 = 14;
    pub const EEXIST: i64 = 17;
    pub const ENOTDIR: i64 = 20;
    pub const EISDIR: i64 = 21;
    pub const EINVAL: i64 = 22;
    pub const ENOTTY: i64 = 25;
    pub const ESPIPE: i64 = 29;
    pub const EPIPE: i64 = 32;
    pub const ERANGE: i64 = 34;
    pub const ENAMETOOLONG: i64 = 36;
    pub const ENOSYS: i64 = 38;
    pub const ENODEV: i64 = 19;
    pub const EOPNOTSUPP: i64 = 95;
    pub const EAFNOSUPPORT: i64 = 97;
    pub const EADDRINUSE: i64 = 98;
    pub const ENOBUFS: i64 = 105;
    pub const ENETUNREACH: i64 = 101;
    pub const EROFS: i64 = 30;
    pub const EXDEV: i64 = 18;
    pub const EACCES: i64 = 13;
    pub const EMFILE: i64 = 24;
    pub const ELOOP: i64 = 40;
    pub const ETIMEDOUT: i64 = 110;
    pub const EOVERFLOW: i64 = 75;
}

/// Terminal ioctls served on a terminal fd.
pub mod ioctl {
    pub const TCGETS: u64 = 0x5401;
    pub const TCSETS: u64 = 0x5402;
    pub const TCSETSW: u64 = 0x5403;
    pub const TCSETSF: u64 = 0x5404;
    pub const TIOCGPGRP: u64 = 0x540f;
    pub const TIOCSPGRP: u64 = 0x5410;
    pub const TIOCGWINSZ: u64 = 0x5413;
    pub const TIOCSWINSZ: u64 = 0x5414;
    pub const TIOCGSID: u64 = 0x5429;
    /// Whether `request` changes the terminal so that a background process
    /// asking is sent SIGTTOU (Linux's tty_check_change).
    pub const fn checks_foreground(request: u64) -> bool {
        matches!(request, TCSETS | TCSETSW | TCSETSF | TIOCSPGRP)
    }
    /// sizeof(struct termios) as the kernel copies it for TCGETS.
    pub const TERMIOS_SIZE: u64 = 36;
    /// sizeof(struct winsize).
    pub const WINSIZE_SIZE: u64 = 8;
}

/// fcntl commands, and the size of `struct flock` the lock commands take.
pub mod fcntl {
    pub const F_DUPFD: u64 = 0;
    pub const F_GETFD: u64 = 1;
    pub const F_SETFD: u64 = 2;
    pub const F_GETFL: u64 = 3;
    pub const F_SETFL: u64 = 4;
    pub const F_GETLK: u64 = 5;
    pub const F_SETLK: u64 = 6;
    pub const F_SETLKW: u64 = 7;
    pub const F_OFD_GETLK: u64 = 36;
    pub const F_OFD_SETLK: u64 = 37;
    pub const F_OFD_SETLKW: u64 = 38;
    pub const F_DUPFD_CLOEXEC: u64 = 1030;
    pub const F_SETPIPE_SZ: u64 = 1031;
    pub const F_GETPIPE_SZ: u64 = 1032;
    /// type, whence (2 bytes each), padding, start, len (8 each), pid, padding.
    pub const FLOCK_SIZE: u64 = 32;

    /// The record-lock commands, whose argument points at a `struct flock`.
    pub fn is_record_lock(command: u64) -> bool {
        matches!(
            command,
            F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW
        )
    }

    /// The lock commands that wait for a conflicting lock to go.
    pub fn waits(command: u64) -> bool {
        matches!(command, F_SETLKW | F_OFD_SETLKW)
    }
}

/// close_range flags.
pub const CLOSE_RANGE_UNSHARE: u64 = 2;
pub const CLOSE_RANGE_CLOEXEC: u64 = 4;

/// Longest path a request may carry (Linux's PATH_MAX).
pub const PATH_MAX: u64 = 4096;
/// AT_FDCWD, the int Linux takes as a directory fd.
pub const AT_FDCWD_INT: i32 = -100;
/// AT_FDCWD as a 64-bit argument.
pub const AT_FDCWD: u64 = AT_FDCWD_INT as i64 as u64;
/// sizeof(struct sockaddr_storage): the largest socket address a request
/// carries.
pub const SOCKADDR_STORAGE_SIZE: u64 = 128;

/// sizeof(struct stat) on x86_64.
pub const STAT_SIZE: u64 = 144;
/// Most iovecs one readv/writev takes.
pub const IOV_MAX: u64 = 1024;
/// sizeof(struct iovec).
pub const IOVEC_SIZE: u64 = 16;
/// sizeof(struct pollfd).
pub const POLLFD_SIZE: u64 = 8;

/// Auxiliary vector keys.
pub mod auxv {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_PLATFORM: u64 = 15;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_HWCAP2: u64 = 26;
    pub const AT_EXECFN: u64 = 31;
    pub const AT_SYSINFO_EHDR: u64 = 33;
    pub const AT_MINSIGSTKSZ: u64 = 51;
}

/// Signal numbers used for fault reports and exit statuses.
pub mod signal {
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGBUS: u32 = 7;
    pub const SIGFPE: u32 = 8;
    pub const SIGSEGV: u32 = 11;
    pub const SIGPIPE: u32 = 13;
}
