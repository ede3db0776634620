//! Linux x86_64 syscall numbers, names and argument counts (for tracing and warnings).
//!
//! Numbers follow `arch/x86/entry/syscalls/syscall_64.tbl` (the 64-bit ABI
//! only; x32 entries at 512 and above are not included). Argument counts
//! follow the kernel's `SYSCALL_DEFINEn` signatures as recorded by strace's
//! `syscallent` tables. Numbers 335..=423 are reserved on x86_64 to keep the
//! newer, architecture-independent numbers in sync and have no entry.

/// One syscall's name and how many arguments it takes (0..=6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallInfo {
    /// The syscall's name as in the Linux `__NR_` constants (without the prefix).
    pub name: &'static str,
    /// Number of arguments the syscall takes (0..=6).
    pub arg_count: u8,
}

/// Highest syscall number known to this table.
pub const MAX_SYSCALL: usize = 462;

/// The name Linux gives a syscall whose constant is `constant`: the
/// same letters in lower case (`EXIT_GROUP` is `exit_group`).
const fn lower_case<const N: usize>(constant: &str) -> [u8; N] {
    let upper = constant.as_bytes();
    let mut lower = [0u8; N];
    let mut at = 0;
    while at < N {
        lower[at] = upper[at].to_ascii_lowercase();
        at += 1;
    }
    lower
}

/// One row per syscall: `CONSTANT = number, argument count;`. It makes
/// both [`nr`], the numbers as constants, and [`SYSCALLS`], the table
/// indexed by number (a number given twice fails the build).
macro_rules! syscall_table {
    ($($constant:ident = $number:literal, $arg_count:literal;)*) => {
        /// Syscall numbers as constants, named like the Linux `__NR_` names
        /// in UPPER_CASE without the prefix (e.g. `__NR_exit_group` is
        /// [`nr::EXIT_GROUP`]).
        pub mod nr {
            $(pub const $constant: u64 = $number;)*
        }

        /// Indexed by syscall number; None for numbers Linux does not assign.
        pub static SYSCALLS: [Option<SyscallInfo>; MAX_SYSCALL + 1] = {
            let mut table = [None; MAX_SYSCALL + 1];
            $({
                assert!(table[$number].is_none(), "a syscall number given twice");
                const NAME: [u8; stringify!($constant).len()] = lower_case(stringify!($constant));
                let name = match core::str::from_utf8(&NAME) {
                    Ok(name) => name,
                    Err(_) => panic!("syscall names are ASCII"),
                };
                table[$number] = Some(SyscallInfo { name, arg_count: $arg_count });
            })*
            table
        };
    };
}

syscall_table! {
    READ = 0, 3;
    WRITE = 1, 3;
    OPEN = 2, 3;
    CLOSE = 3, 1;
    STAT = 4, 2;
    FSTAT = 5, 2;
    LSTAT = 6, 2;
    POLL = 7, 3;
    LSEEK = 8, 3;
    MMAP = 9, 6;
    MPROTECT = 10, 3;
    MUNMAP = 11, 2;
    BRK = 12, 1;
    RT_SIGACTION = 13, 4;
    RT_SIGPROCMASK = 14, 4;
    RT_SIGRETURN = 15, 0;
    IOCTL = 16, 3;
    PREAD64 = 17, 4;
    PWRITE64 = 18, 4;
    READV = 19, 3;
    WRITEV = 20, 3;
    ACCESS = 21, 2;
    PIPE = 22, 1;
    SELECT = 23, 5;
    SCHED_YIELD = 24, 0;
    MREMAP = 25, 5;
    MSYNC = 26, 3;
    MINCORE = 27, 3;
    MADVISE = 28, 3;
    SHMGET = 29, 3;
    SHMAT = 30, 3;
    SHMCTL = 31, 3;
    DUP = 32, 1;
    DUP2 = 33, 2;
    PAUSE = 34, 0;
    NANOSLEEP = 35, 2;
    GETITIMER = 36, 2;
    ALARM = 37, 1;
    SETITIMER = 38, 3;
    GETPID = 39, 0;
    SENDFILE = 40, 4;
    SOCKET = 41, 3;
    CONNECT = 42, 3;
    ACCEPT = 43, 3;
    SENDTO = 44, 6;
    RECVFROM = 45, 6;
    SENDMSG = 46, 3;
    RECVMSG = 47, 3;
    SHUTDOWN = 48, 2;
    BIND = 49, 3;
    LISTEN = 50, 2;
    GETSOCKNAME = 51, 3;
    GETPEERNAME = 52, 3;
    SOCKETPAIR = 53, 4;
    SETSOCKOPT = 54, 5;
    GETSOCKOPT = 55, 5;
    CLONE = 56, 5;
    FORK = 57, 0;
    VFORK = 58, 0;
    EXECVE = 59, 3;
    EXIT = 60, 1;
    WAIT4 = 61, 4;
    KILL = 62, 2;
    UNAME = 63, 1;
    SEMGET = 64, 3;
    SEMOP = 65, 3;
    SEMCTL = 66, 4;
    SHMDT = 67, 1;
    MSGGET = 68, 2;
    MSGSND = 69, 4;
    MSGRCV = 70, 5;
    MSGCTL = 71, 3;
    FCNTL = 72, 3;
    FLOCK = 73, 2;
    FSYNC = 74, 1;
    FDATASYNC = 75, 1;
    TRUNCATE = 76, 2;
    FTRUNCATE = 77, 2;
    GETDENTS = 78, 3;
    GETCWD = 79, 2;
    CHDIR = 80, 1;
    FCHDIR = 81, 1;
    RENAME = 82, 2;
    MKDIR = 83, 2;
    RMDIR = 84, 1;
    CREAT = 85, 2;
    LINK = 86, 2;
    UNLINK = 87, 1;
    SYMLINK = 88, 2;
    READLINK = 89, 3;
    CHMOD = 90, 2;
    FCHMOD = 91, 2;
    CHOWN = 92, 3;
    FCHOWN = 93, 3;
    LCHOWN = 94, 3;
    UMASK = 95, 1;
    GETTIMEOFDAY = 96, 2;
    GETRLIMIT = 97, 2;
    GETRUSAGE = 98, 2;
    SYSINFO = 99, 1;
    TIMES = 100, 1;
    PTRACE = 101, 4;
    GETUID = 102, 0;
    SYSLOG = 103, 3;
    GETGID = 104, 0;
    SETUID = 105, 1;
    SETGID = 106, 1;
    GETEUID = 107, 0;
    GETEGID = 108, 0;
    SETPGID = 109, 2;
    GETPPID = 110, 0;
    GETPGRP = 111, 0;
    SETSID = 112, 0;
    SETREUID = 113, 2;
    SETREGID = 114, 2;
    GETGROUPS = 115, 2;
    SETGROUPS = 116, 2;
    SETRESUID = 117, 3;
    GETRESUID = 118, 3;
    SETRESGID = 119, 3;
    GETRESGID = 120, 3;
    GETPGID = 121, 1;
    SETFSUID = 122, 1;
    SETFSGID = 123, 1;
    GETSID = 124, 1;
    CAPGET = 125, 2;
    CAPSET = 126, 2;
    RT_SIGPENDING = 127, 2;
    RT_SIGTIMEDWAIT = 128, 4;
    RT_SIGQUEUEINFO = 129, 3;
    RT_SIGSUSPEND = 130, 2;
    SIGALTSTACK = 131, 2;
    UTIME = 132, 2;
    MKNOD = 133, 3;
    USELIB = 134, 1;
    PERSONALITY = 135, 1;
    USTAT = 136, 2;
    STATFS = 137, 2;
    FSTATFS = 138, 2;
    SYSFS = 139, 3;
    GETPRIORITY = 140, 2;
    SETPRIORITY = 141, 3;
    SCHED_SETPARAM = 142, 2;
    SCHED_GETPARAM = 143, 2;
    SCHED_SETSCHEDULER = 144, 3;
    SCHED_GETSCHEDULER = 145, 1;
    SCHED_GET_PRIORITY_MAX = 146, 1;
    SCHED_GET_PRIORITY_MIN = 147, 1;
    SCHED_RR_GET_INTERVAL = 148, 2;
    MLOCK = 149, 2;
    MUNLOCK = 150, 2;
    MLOCKALL = 151, 1;
    MUNLOCKALL = 152, 0;
    VHANGUP = 153, 0;
    MODIFY_LDT = 154, 3;
    PIVOT_ROOT = 155, 2;
    _SYSCTL = 156, 1;
    PRCTL = 157, 5;
    ARCH_PRCTL = 158, 2;
    ADJTIMEX = 159, 1;
    SETRLIMIT = 160, 2;
    CHROOT = 161, 1;
    SYNC = 162, 0;
    ACCT = 163, 1;
    SETTIMEOFDAY = 164, 2;
    MOUNT = 165, 5;
    UMOUNT2 = 166, 2;
    SWAPON = 167, 2;
    SWAPOFF = 168, 1;
    REBOOT = 169, 4;
    SETHOSTNAME = 170, 2;
    SETDOMAINNAME = 171, 2;
    IOPL = 172, 1;
    IOPERM = 173, 3;
    CREATE_MODULE = 174, 2;
    INIT_MODULE = 175, 3;
    DELETE_MODULE = 176, 2;
    GET_KERNEL_SYMS = 177, 1;
    QUERY_MODULE = 178, 5;
    QUOTACTL = 179, 4;
    NFSSERVCTL = 180, 3;
    GETPMSG = 181, 5;
    PUTPMSG = 182, 5;
    AFS_SYSCALL = 183, 5;
    TUXCALL = 184, 3;
    SECURITY = 185, 3;
    GETTID = 186, 0;
    READAHEAD = 187, 3;
    SETXATTR = 188, 5;
    LSETXATTR = 189, 5;
    FSETXATTR = 190, 5;
    GETXATTR = 191, 4;
    LGETXATTR = 192, 4;
    FGETXATTR = 193, 4;
    LISTXATTR = 194, 3;
    LLISTXATTR = 195, 3;
    FLISTXATTR = 196, 3;
    REMOVEXATTR = 197, 2;
    LREMOVEXATTR = 198, 2;
    FREMOVEXATTR = 199, 2;
    TKILL = 200, 2;
    TIME = 201, 1;
    FUTEX = 202, 6;
    SCHED_SETAFFINITY = 203, 3;
    SCHED_GETAFFINITY = 204, 3;
    SET_THREAD_AREA = 205, 1;
    IO_SETUP = 206, 2;
    IO_DESTROY = 207, 1;
    IO_GETEVENTS = 208, 5;
    IO_SUBMIT = 209, 3;
    IO_CANCEL = 210, 3;
    GET_THREAD_AREA = 211, 1;
    LOOKUP_DCOOKIE = 212, 3;
    EPOLL_CREATE = 213, 1;
    EPOLL_CTL_OLD = 214, 4;
    EPOLL_WAIT_OLD = 215, 4;
    REMAP_FILE_PAGES = 216, 5;
    GETDENTS64 = 217, 3;
    SET_TID_ADDRESS = 218, 1;
    RESTART_SYSCALL = 219, 0;
    SEMTIMEDOP = 220, 4;
    FADVISE64 = 221, 4;
    TIMER_CREATE = 222, 3;
    TIMER_SETTIME = 223, 4;
    TIMER_GETTIME = 224, 2;
    TIMER_GETOVERRUN = 225, 1;
    TIMER_DELETE = 226, 1;
    CLOCK_SETTIME = 227, 2;
    CLOCK_GETTIME = 228, 2;
    CLOCK_GETRES = 229, 2;
    CLOCK_NANOSLEEP = 230, 4;
    EXIT_GROUP = 231, 1;
    EPOLL_WAIT = 232, 4;
    EPOLL_CTL = 233, 4;
    TGKILL = 234, 3;
    UTIMES = 235, 2;
    VSERVER = 236, 5;
    MBIND = 237, 6;
    SET_MEMPOLICY = 238, 3;
    GET_MEMPOLICY = 239, 5;
    MQ_OPEN = 240, 4;
    MQ_UNLINK = 241, 1;
    MQ_TIMEDSEND = 242, 5;
    MQ_TIMEDRECEIVE = 243, 5;
    MQ_NOTIFY = 244, 2;
    MQ_GETSETATTR = 245, 3;
    KEXEC_LOAD = 246, 4;
    WAITID = 247, 5;
    ADD_KEY = 248, 5;
    REQUEST_KEY = 249, 4;
    KEYCTL = 250, 5;
    IOPRIO_SET = 251, 3;
    IOPRIO_GET = 252, 2;
    INOTIFY_INIT = 253, 0;
    INOTIFY_ADD_WATCH = 254, 3;
    INOTIFY_RM_WATCH = 255, 2;
    MIGRATE_PAGES = 256, 4;
    OPENAT = 257, 4;
    MKDIRAT = 258, 3;
    MKNODAT = 259, 4;
    FCHOWNAT = 260, 5;
    FUTIMESAT = 261, 3;
    NEWFSTATAT = 262, 4;
    UNLINKAT = 263, 3;
    RENAMEAT = 264, 4;
    LINKAT = 265, 5;
    SYMLINKAT = 266, 3;
    READLINKAT = 267, 4;
    FCHMODAT = 268, 3;
    FACCESSAT = 269, 3;
    PSELECT6 = 270, 6;
    PPOLL = 271, 5;
    UNSHARE = 272, 1;
    SET_ROBUST_LIST = 273, 2;
    GET_ROBUST_LIST = 274, 3;
    SPLICE = 275, 6;
    TEE = 276, 4;
    SYNC_FILE_RANGE = 277, 4;
    VMSPLICE = 278, 4;
    MOVE_PAGES = 279, 6;
    UTIMENSAT = 280, 4;
    EPOLL_PWAIT = 281, 6;
    SIGNALFD = 282, 3;
    TIMERFD_CREATE = 283, 2;
    EVENTFD = 284, 1;
    FALLOCATE = 285, 4;
    TIMERFD_SETTIME = 286, 4;
    TIMERFD_GETTIME = 287, 2;
    ACCEPT4 = 288, 4;
    SIGNALFD4 = 289, 4;
    EVENTFD2 = 290, 2;
    EPOLL_CREATE1 = 291, 1;
    DUP3 = 292, 3;
    PIPE2 = 293, 2;
    INOTIFY_INIT1 = 294, 1;
    PREADV = 295, 4;
    PWRITEV = 296, 4;
    RT_TGSIGQUEUEINFO = 297, 4;
    PERF_EVENT_OPEN = 298, 5;
    RECVMMSG = 299, 5;
    FANOTIFY_INIT = 300, 2;
    FANOTIFY_MARK = 301, 5;
    PRLIMIT64 = 302, 4;
    NAME_TO_HANDLE_AT = 303, 5;
    OPEN_BY_HANDLE_AT = 304, 3;
    CLOCK_ADJTIME = 305, 2;
    SYNCFS = 306, 1;
    SENDMMSG = 307, 4;
    SETNS = 308, 2;
    GETCPU = 309, 3;
    PROCESS_VM_READV = 310, 6;
    PROCESS_VM_WRITEV = 311, 6;
    KCMP = 312, 5;
    FINIT_MODULE = 313, 3;
    SCHED_SETATTR = 314, 3;
    SCHED_GETATTR = 315, 4;
    RENAMEAT2 = 316, 5;
    SECCOMP = 317, 3;
    GETRANDOM = 318, 3;
    MEMFD_CREATE = 319, 2;
    KEXEC_FILE_LOAD = 320, 5;
    BPF = 321, 3;
    EXECVEAT = 322, 5;
    USERFAULTFD = 323, 1;
    MEMBARRIER = 324, 3;
    MLOCK2 = 325, 3;
    COPY_FILE_RANGE = 326, 6;
    PREADV2 = 327, 6;
    PWRITEV2 = 328, 6;
    PKEY_MPROTECT = 329, 4;
    PKEY_ALLOC = 330, 2;
    PKEY_FREE = 331, 1;
    STATX = 332, 5;
    IO_PGETEVENTS = 333, 6;
    RSEQ = 334, 4;
    PIDFD_SEND_SIGNAL = 424, 4;
    IO_URING_SETUP = 425, 2;
    IO_URING_ENTER = 426, 6;
    IO_URING_REGISTER = 427, 4;
    OPEN_TREE = 428, 3;
    MOVE_MOUNT = 429, 5;
    FSOPEN = 430, 2;
    FSCONFIG = 431, 5;
    FSMOUNT = 432, 3;
    FSPICK = 433, 3;
    PIDFD_OPEN = 434, 2;
    CLONE3 = 435, 2;
    CLOSE_RANGE = 436, 3;
    OPENAT2 = 437, 4;
    PIDFD_GETFD = 438, 3;
    FACCESSAT2 = 439, 4;
    PROCESS_MADVISE = 440, 5;
    EPOLL_PWAIT2 = 441, 6;
    MOUNT_SETATTR = 442, 5;
    QUOTACTL_FD = 443, 4;
    LANDLOCK_CREATE_RULESET = 444, 3;
    LANDLOCK_ADD_RULE = 445, 4;
    LANDLOCK_RESTRICT_SELF = 446, 2;
    MEMFD_SECRET = 447, 1;
    PROCESS_MRELEASE = 448, 2;
    FUTEX_WAITV = 449, 5;
    SET_MEMPOLICY_HOME_NODE = 450, 4;
    CACHESTAT = 451, 4;
    FCHMODAT2 = 452, 4;
    MAP_SHADOW_STACK = 453, 3;
    FUTEX_WAKE = 454, 4;
    FUTEX_WAIT = 455, 6;
    FUTEX_REQUEUE = 456, 4;
    STATMOUNT = 457, 4;
    LISTMOUNT = 458, 4;
    LSM_GET_SELF_ATTR = 459, 4;
    LSM_SET_SELF_ATTR = 460, 4;
    LSM_LIST_MODULES = 461, 3;
    MSEAL = 462, 3;
}

/// Looks up the name and argument count of syscall `nr`.
///
/// Returns `None` for numbers Linux does not assign on x86_64 (including
/// anything above [`MAX_SYSCALL`]).
#[inline]
pub fn syscall_info(nr: u64) -> Option<SyscallInfo> {
    let idx = usize::try_from(nr).ok()?;
    SYSCALLS.get(idx).copied().flatten()
}

/// Looks up the name of syscall `nr`, e.g. `Some("read")` for 0.
#[inline]
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    syscall_info(nr).map(|info| info.name)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn table_length() {
        assert_eq!(SYSCALLS.len(), MAX_SYSCALL + 1);
        assert!(SYSCALLS[MAX_SYSCALL].is_some());
    }

    #[test]
    fn known_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "read"),
            (1, "write"),
            (39, "getpid"),
            (60, "exit"),
            (231, "exit_group"),
            (257, "openat"),
            (262, "newfstatat"),
            (302, "prlimit64"),
            (318, "getrandom"),
            (334, "rseq"),
            (435, "clone3"),
            (441, "epoll_pwait2"),
            (462, "mseal"),
        ];
        for &(nr, name) in cases {
            assert_eq!(syscall_name(nr), Some(name), "syscall {nr}");
        }
    }

    #[test]
    fn known_arg_counts() {
        let cases: &[(&str, u8)] = &[
            ("read", 3),
            ("write", 3),
            ("open", 3),
            ("close", 1),
            ("mmap", 6),
            ("rt_sigaction", 4),
            ("rt_sigprocmask", 4),
            ("clone", 5),
            ("futex", 6),
            ("exit_group", 1),
            ("getpid", 0),
            ("arch_prctl", 2),
            ("set_tid_address", 1),
            ("set_robust_list", 2),
            ("prlimit64", 4),
            ("getrandom", 3),
            ("rseq", 4),
            ("clone3", 2),
            ("newfstatat", 4),
            ("statx", 5),
            ("ioctl", 3),
            ("poll", 3),
            ("ppoll", 5),
            ("epoll_pwait2", 6),
            ("clock_nanosleep", 4),
            ("mremap", 5),
            ("readlink", 3),
            ("uname", 1),
        ];
        for &(name, count) in cases {
            let info = SYSCALLS
                .iter()
                .flatten()
                .find(|info| info.name == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(info.arg_count, count, "{name}");
        }
    }

    #[test]
    fn unassigned_numbers() {
        assert_eq!(syscall_info(335), None);
        assert_eq!(syscall_info(400), None);
        assert_eq!(syscall_info(423), None);
        assert_eq!(syscall_name(400), None);
        assert_eq!(syscall_info(MAX_SYSCALL as u64 + 1), None);
        assert_eq!(syscall_info(10_000), None);
        assert_eq!(syscall_name(10_000), None);
        assert_eq!(syscall_info(u64::MAX), None);
    }

    #[test]
    fn table_sanity() {
        let mut count = 0;
        for (i, entry) in SYSCALLS.iter().enumerate() {
            if let Some(info) = entry {
                count += 1;
                assert!(info.arg_count <= 6, "{}", info.name);
                assert!(!info.name.is_empty(), "syscall {i}");
                // Names are unique.
                let dup = SYSCALLS[i + 1..]
                    .iter()
                    .flatten()
                    .any(|o| o.name == info.name);
                assert!(!dup, "duplicate name {}", info.name);
            }
        }
        // 0..=334 and 424..=462.
        assert_eq!(count, 335 + 39);
        for nr in 335..424 {
            assert!(syscall_info(nr).is_none(), "{nr} should be unassigned");
        }
    }

    #[test]
    fn matches_system_unistd_64_h() {
        let path = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                std::eprintln!("skipping: cannot read {path}: {err}");
                return;
            }
        };
        let mut checked = 0usize;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("#define") {
                continue;
            }
            let (Some(macro_name), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(name) = macro_name.strip_prefix("__NR_") else {
                continue;
            };
            let Ok(number) = value.parse::<u64>() else {
                continue;
            };
            assert_eq!(
                syscall_name(number),
                Some(name),
                "{path}: __NR_{name} = {number} does not match the table"
            );
            checked += 1;
        }
        assert!(checked > 300, "only {checked} syscalls found in {path}");
    }
}
