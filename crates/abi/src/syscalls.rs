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

/// Shorthand used to keep the table below compact.
const fn s(name: &'static str, arg_count: u8) -> Option<SyscallInfo> {
    Some(SyscallInfo { name, arg_count })
}

/// Indexed by syscall number; None for numbers Linux does not assign.
pub static SYSCALLS: [Option<SyscallInfo>; MAX_SYSCALL + 1] = [
    /* 0 */ s("read", 3),
    /* 1 */ s("write", 3),
    /* 2 */ s("open", 3),
    /* 3 */ s("close", 1),
    /* 4 */ s("stat", 2),
    /* 5 */ s("fstat", 2),
    /* 6 */ s("lstat", 2),
    /* 7 */ s("poll", 3),
    /* 8 */ s("lseek", 3),
    /* 9 */ s("mmap", 6),
    /* 10 */ s("mprotect", 3),
    /* 11 */ s("munmap", 2),
    /* 12 */ s("brk", 1),
    /* 13 */ s("rt_sigaction", 4),
    /* 14 */ s("rt_sigprocmask", 4),
    /* 15 */ s("rt_sigreturn", 0),
    /* 16 */ s("ioctl", 3),
    /* 17 */ s("pread64", 4),
    /* 18 */ s("pwrite64", 4),
    /* 19 */ s("readv", 3),
    /* 20 */ s("writev", 3),
    /* 21 */ s("access", 2),
    /* 22 */ s("pipe", 1),
    /* 23 */ s("select", 5),
    /* 24 */ s("sched_yield", 0),
    /* 25 */ s("mremap", 5),
    /* 26 */ s("msync", 3),
    /* 27 */ s("mincore", 3),
    /* 28 */ s("madvise", 3),
    /* 29 */ s("shmget", 3),
    /* 30 */ s("shmat", 3),
    /* 31 */ s("shmctl", 3),
    /* 32 */ s("dup", 1),
    /* 33 */ s("dup2", 2),
    /* 34 */ s("pause", 0),
    /* 35 */ s("nanosleep", 2),
    /* 36 */ s("getitimer", 2),
    /* 37 */ s("alarm", 1),
    /* 38 */ s("setitimer", 3),
    /* 39 */ s("getpid", 0),
    /* 40 */ s("sendfile", 4),
    /* 41 */ s("socket", 3),
    /* 42 */ s("connect", 3),
    /* 43 */ s("accept", 3),
    /* 44 */ s("sendto", 6),
    /* 45 */ s("recvfrom", 6),
    /* 46 */ s("sendmsg", 3),
    /* 47 */ s("recvmsg", 3),
    /* 48 */ s("shutdown", 2),
    /* 49 */ s("bind", 3),
    /* 50 */ s("listen", 2),
    /* 51 */ s("getsockname", 3),
    /* 52 */ s("getpeername", 3),
    /* 53 */ s("socketpair", 4),
    /* 54 */ s("setsockopt", 5),
    /* 55 */ s("getsockopt", 5),
    /* 56 */ s("clone", 5),
    /* 57 */ s("fork", 0),
    /* 58 */ s("vfork", 0),
    /* 59 */ s("execve", 3),
    /* 60 */ s("exit", 1),
    /* 61 */ s("wait4", 4),
    /* 62 */ s("kill", 2),
    /* 63 */ s("uname", 1),
    /* 64 */ s("semget", 3),
    /* 65 */ s("semop", 3),
    /* 66 */ s("semctl", 4),
    /* 67 */ s("shmdt", 1),
    /* 68 */ s("msgget", 2),
    /* 69 */ s("msgsnd", 4),
    /* 70 */ s("msgrcv", 5),
    /* 71 */ s("msgctl", 3),
    /* 72 */ s("fcntl", 3),
    /* 73 */ s("flock", 2),
    /* 74 */ s("fsync", 1),
    /* 75 */ s("fdatasync", 1),
    /* 76 */ s("truncate", 2),
    /* 77 */ s("ftruncate", 2),
    /* 78 */ s("getdents", 3),
    /* 79 */ s("getcwd", 2),
    /* 80 */ s("chdir", 1),
    /* 81 */ s("fchdir", 1),
    /* 82 */ s("rename", 2),
    /* 83 */ s("mkdir", 2),
    /* 84 */ s("rmdir", 1),
    /* 85 */ s("creat", 2),
    /* 86 */ s("link", 2),
    /* 87 */ s("unlink", 1),
    /* 88 */ s("symlink", 2),
    /* 89 */ s("readlink", 3),
    /* 90 */ s("chmod", 2),
    /* 91 */ s("fchmod", 2),
    /* 92 */ s("chown", 3),
    /* 93 */ s("fchown", 3),
    /* 94 */ s("lchown", 3),
    /* 95 */ s("umask", 1),
    /* 96 */ s("gettimeofday", 2),
    /* 97 */ s("getrlimit", 2),
    /* 98 */ s("getrusage", 2),
    /* 99 */ s("sysinfo", 1),
    /* 100 */ s("times", 1),
    /* 101 */ s("ptrace", 4),
    /* 102 */ s("getuid", 0),
    /* 103 */ s("syslog", 3),
    /* 104 */ s("getgid", 0),
    /* 105 */ s("setuid", 1),
    /* 106 */ s("setgid", 1),
    /* 107 */ s("geteuid", 0),
    /* 108 */ s("getegid", 0),
    /* 109 */ s("setpgid", 2),
    /* 110 */ s("getppid", 0),
    /* 111 */ s("getpgrp", 0),
    /* 112 */ s("setsid", 0),
    /* 113 */ s("setreuid", 2),
    /* 114 */ s("setregid", 2),
    /* 115 */ s("getgroups", 2),
    /* 116 */ s("setgroups", 2),
    /* 117 */ s("setresuid", 3),
    /* 118 */ s("getresuid", 3),
    /* 119 */ s("setresgid", 3),
    /* 120 */ s("getresgid", 3),
    /* 121 */ s("getpgid", 1),
    /* 122 */ s("setfsuid", 1),
    /* 123 */ s("setfsgid", 1),
    /* 124 */ s("getsid", 1),
    /* 125 */ s("capget", 2),
    /* 126 */ s("capset", 2),
    /* 127 */ s("rt_sigpending", 2),
    /* 128 */ s("rt_sigtimedwait", 4),
    /* 129 */ s("rt_sigqueueinfo", 3),
    /* 130 */ s("rt_sigsuspend", 2),
    /* 131 */ s("sigaltstack", 2),
    /* 132 */ s("utime", 2),
    /* 133 */ s("mknod", 3),
    /* 134 */ s("uselib", 1),
    /* 135 */ s("personality", 1),
    /* 136 */ s("ustat", 2),
    /* 137 */ s("statfs", 2),
    /* 138 */ s("fstatfs", 2),
    /* 139 */ s("sysfs", 3),
    /* 140 */ s("getpriority", 2),
    /* 141 */ s("setpriority", 3),
    /* 142 */ s("sched_setparam", 2),
    /* 143 */ s("sched_getparam", 2),
    /* 144 */ s("sched_setscheduler", 3),
    /* 145 */ s("sched_getscheduler", 1),
    /* 146 */ s("sched_get_priority_max", 1),
    /* 147 */ s("sched_get_priority_min", 1),
    /* 148 */ s("sched_rr_get_interval", 2),
    /* 149 */ s("mlock", 2),
    /* 150 */ s("munlock", 2),
    /* 151 */ s("mlockall", 1),
    /* 152 */ s("munlockall", 0),
    /* 153 */ s("vhangup", 0),
    /* 154 */ s("modify_ldt", 3),
    /* 155 */ s("pivot_root", 2),
    /* 156 */ s("_sysctl", 1),
    /* 157 */ s("prctl", 5),
    /* 158 */ s("arch_prctl", 2),
    /* 159 */ s("adjtimex", 1),
    /* 160 */ s("setrlimit", 2),
    /* 161 */ s("chroot", 1),
    /* 162 */ s("sync", 0),
    /* 163 */ s("acct", 1),
    /* 164 */ s("settimeofday", 2),
    /* 165 */ s("mount", 5),
    /* 166 */ s("umount2", 2),
    /* 167 */ s("swapon", 2),
    /* 168 */ s("swapoff", 1),
    /* 169 */ s("reboot", 4),
    /* 170 */ s("sethostname", 2),
    /* 171 */ s("setdomainname", 2),
    /* 172 */ s("iopl", 1),
    /* 173 */ s("ioperm", 3),
    /* 174 */ s("create_module", 2),
    /* 175 */ s("init_module", 3),
    /* 176 */ s("delete_module", 2),
    /* 177 */ s("get_kernel_syms", 1),
    /* 178 */ s("query_module", 5),
    /* 179 */ s("quotactl", 4),
    /* 180 */ s("nfsservctl", 3),
    /* 181 */ s("getpmsg", 5),
    /* 182 */ s("putpmsg", 5),
    /* 183 */ s("afs_syscall", 5),
    /* 184 */ s("tuxcall", 3),
    /* 185 */ s("security", 3),
    /* 186 */ s("gettid", 0),
    /* 187 */ s("readahead", 3),
    /* 188 */ s("setxattr", 5),
    /* 189 */ s("lsetxattr", 5),
    /* 190 */ s("fsetxattr", 5),
    /* 191 */ s("getxattr", 4),
    /* 192 */ s("lgetxattr", 4),
    /* 193 */ s("fgetxattr", 4),
    /* 194 */ s("listxattr", 3),
    /* 195 */ s("llistxattr", 3),
    /* 196 */ s("flistxattr", 3),
    /* 197 */ s("removexattr", 2),
    /* 198 */ s("lremovexattr", 2),
    /* 199 */ s("fremovexattr", 2),
    /* 200 */ s("tkill", 2),
    /* 201 */ s("time", 1),
    /* 202 */ s("futex", 6),
    /* 203 */ s("sched_setaffinity", 3),
    /* 204 */ s("sched_getaffinity", 3),
    /* 205 */ s("set_thread_area", 1),
    /* 206 */ s("io_setup", 2),
    /* 207 */ s("io_destroy", 1),
    /* 208 */ s("io_getevents", 5),
    /* 209 */ s("io_submit", 3),
    /* 210 */ s("io_cancel", 3),
    /* 211 */ s("get_thread_area", 1),
    /* 212 */ s("lookup_dcookie", 3),
    /* 213 */ s("epoll_create", 1),
    /* 214 */ s("epoll_ctl_old", 4),
    /* 215 */ s("epoll_wait_old", 4),
    /* 216 */ s("remap_file_pages", 5),
    /* 217 */ s("getdents64", 3),
    /* 218 */ s("set_tid_address", 1),
    /* 219 */ s("restart_syscall", 0),
    /* 220 */ s("semtimedop", 4),
    /* 221 */ s("fadvise64", 4),
    /* 222 */ s("timer_create", 3),
    /* 223 */ s("timer_settime", 4),
    /* 224 */ s("timer_gettime", 2),
    /* 225 */ s("timer_getoverrun", 1),
    /* 226 */ s("timer_delete", 1),
    /* 227 */ s("clock_settime", 2),
    /* 228 */ s("clock_gettime", 2),
    /* 229 */ s("clock_getres", 2),
    /* 230 */ s("clock_nanosleep", 4),
    /* 231 */ s("exit_group", 1),
    /* 232 */ s("epoll_wait", 4),
    /* 233 */ s("epoll_ctl", 4),
    /* 234 */ s("tgkill", 3),
    /* 235 */ s("utimes", 2),
    /* 236 */ s("vserver", 5),
    /* 237 */ s("mbind", 6),
    /* 238 */ s("set_mempolicy", 3),
    /* 239 */ s("get_mempolicy", 5),
    /* 240 */ s("mq_open", 4),
    /* 241 */ s("mq_unlink", 1),
    /* 242 */ s("mq_timedsend", 5),
    /* 243 */ s("mq_timedreceive", 5),
    /* 244 */ s("mq_notify", 2),
    /* 245 */ s("mq_getsetattr", 3),
    /* 246 */ s("kexec_load", 4),
    /* 247 */ s("waitid", 5),
    /* 248 */ s("add_key", 5),
    /* 249 */ s("request_key", 4),
    /* 250 */ s("keyctl", 5),
    /* 251 */ s("ioprio_set", 3),
    /* 252 */ s("ioprio_get", 2),
    /* 253 */ s("inotify_init", 0),
    /* 254 */ s("inotify_add_watch", 3),
    /* 255 */ s("inotify_rm_watch", 2),
    /* 256 */ s("migrate_pages", 4),
    /* 257 */ s("openat", 4),
    /* 258 */ s("mkdirat", 3),
    /* 259 */ s("mknodat", 4),
    /* 260 */ s("fchownat", 5),
    /* 261 */ s("futimesat", 3),
    /* 262 */ s("newfstatat", 4),
    /* 263 */ s("unlinkat", 3),
    /* 264 */ s("renameat", 4),
    /* 265 */ s("linkat", 5),
    /* 266 */ s("symlinkat", 3),
    /* 267 */ s("readlinkat", 4),
    /* 268 */ s("fchmodat", 3),
    /* 269 */ s("faccessat", 3),
    /* 270 */ s("pselect6", 6),
    /* 271 */ s("ppoll", 5),
    /* 272 */ s("unshare", 1),
    /* 273 */ s("set_robust_list", 2),
    /* 274 */ s("get_robust_list", 3),
    /* 275 */ s("splice", 6),
    /* 276 */ s("tee", 4),
    /* 277 */ s("sync_file_range", 4),
    /* 278 */ s("vmsplice", 4),
    /* 279 */ s("move_pages", 6),
    /* 280 */ s("utimensat", 4),
    /* 281 */ s("epoll_pwait", 6),
    /* 282 */ s("signalfd", 3),
    /* 283 */ s("timerfd_create", 2),
    /* 284 */ s("eventfd", 1),
    /* 285 */ s("fallocate", 4),
    /* 286 */ s("timerfd_settime", 4),
    /* 287 */ s("timerfd_gettime", 2),
    /* 288 */ s("accept4", 4),
    /* 289 */ s("signalfd4", 4),
    /* 290 */ s("eventfd2", 2),
    /* 291 */ s("epoll_create1", 1),
    /* 292 */ s("dup3", 3),
    /* 293 */ s("pipe2", 2),
    /* 294 */ s("inotify_init1", 1),
    /* 295 */ s("preadv", 4),
    /* 296 */ s("pwritev", 4),
    /* 297 */ s("rt_tgsigqueueinfo", 4),
    /* 298 */ s("perf_event_open", 5),
    /* 299 */ s("recvmmsg", 5),
    /* 300 */ s("fanotify_init", 2),
    /* 301 */ s("fanotify_mark", 5),
    /* 302 */ s("prlimit64", 4),
    /* 303 */ s("name_to_handle_at", 5),
    /* 304 */ s("open_by_handle_at", 3),
    /* 305 */ s("clock_adjtime", 2),
    /* 306 */ s("syncfs", 1),
    /* 307 */ s("sendmmsg", 4),
    /* 308 */ s("setns", 2),
    /* 309 */ s("getcpu", 3),
    /* 310 */ s("process_vm_readv", 6),
    /* 311 */ s("process_vm_writev", 6),
    /* 312 */ s("kcmp", 5),
    /* 313 */ s("finit_module", 3),
    /* 314 */ s("sched_setattr", 3),
    /* 315 */ s("sched_getattr", 4),
    /* 316 */ s("renameat2", 5),
    /* 317 */ s("seccomp", 3),
    /* 318 */ s("getrandom", 3),
    /* 319 */ s("memfd_create", 2),
    /* 320 */ s("kexec_file_load", 5),
    /* 321 */ s("bpf", 3),
    /* 322 */ s("execveat", 5),
    /* 323 */ s("userfaultfd", 1),
    /* 324 */ s("membarrier", 3),
    /* 325 */ s("mlock2", 3),
    /* 326 */ s("copy_file_range", 6),
    /* 327 */ s("preadv2", 6),
    /* 328 */ s("pwritev2", 6),
    /* 329 */ s("pkey_mprotect", 4),
    /* 330 */ s("pkey_alloc", 2),
    /* 331 */ s("pkey_free", 1),
    /* 332 */ s("statx", 5),
    /* 333 */ s("io_pgetevents", 6),
    /* 334 */ s("rseq", 4),
    // 335..=423: unassigned on x86_64.
    /* 335 */ None,
    /* 336 */ None,
    /* 337 */ None,
    /* 338 */ None,
    /* 339 */ None,
    /* 340 */ None,
    /* 341 */ None,
    /* 342 */ None,
    /* 343 */ None,
    /* 344 */ None,
    /* 345 */ None,
    /* 346 */ None,
    /* 347 */ None,
    /* 348 */ None,
    /* 349 */ None,
    /* 350 */ None,
    /* 351 */ None,
    /* 352 */ None,
    /* 353 */ None,
    /* 354 */ None,
    /* 355 */ None,
    /* 356 */ None,
    /* 357 */ None,
    /* 358 */ None,
    /* 359 */ None,
    /* 360 */ None,
    /* 361 */ None,
    /* 362 */ None,
    /* 363 */ None,
    /* 364 */ None,
    /* 365 */ None,
    /* 366 */ None,
    /* 367 */ None,
    /* 368 */ None,
    /* 369 */ None,
    /* 370 */ None,
    /* 371 */ None,
    /* 372 */ None,
    /* 373 */ None,
    /* 374 */ None,
    /* 375 */ None,
    /* 376 */ None,
    /* 377 */ None,
    /* 378 */ None,
    /* 379 */ None,
    /* 380 */ None,
    /* 381 */ None,
    /* 382 */ None,
    /* 383 */ None,
    /* 384 */ None,
    /* 385 */ None,
    /* 386 */ None,
    /* 387 */ None,
    /* 388 */ None,
    /* 389 */ None,
    /* 390 */ None,
    /* 391 */ None,
    /* 392 */ None,
    /* 393 */ None,
    /* 394 */ None,
    /* 395 */ None,
    /* 396 */ None,
    /* 397 */ None,
    /* 398 */ None,
    /* 399 */ None,
    /* 400 */ None,
    /* 401 */ None,
    /* 402 */ None,
    /* 403 */ None,
    /* 404 */ None,
    /* 405 */ None,
    /* 406 */ None,
    /* 407 */ None,
    /* 408 */ None,
    /* 409 */ None,
    /* 410 */ None,
    /* 411 */ None,
    /* 412 */ None,
    /* 413 */ None,
    /* 414 */ None,
    /* 415 */ None,
    /* 416 */ None,
    /* 417 */ None,
    /* 418 */ None,
    /* 419 */ None,
    /* 420 */ None,
    /* 421 */ None,
    /* 422 */ None,
    /* 423 */ None,
    /* 424 */ s("pidfd_send_signal", 4),
    /* 425 */ s("io_uring_setup", 2),
    /* 426 */ s("io_uring_enter", 6),
    /* 427 */ s("io_uring_register", 4),
    /* 428 */ s("open_tree", 3),
    /* 429 */ s("move_mount", 5),
    /* 430 */ s("fsopen", 2),
    /* 431 */ s("fsconfig", 5),
    /* 432 */ s("fsmount", 3),
    /* 433 */ s("fspick", 3),
    /* 434 */ s("pidfd_open", 2),
    /* 435 */ s("clone3", 2),
    /* 436 */ s("close_range", 3),
    /* 437 */ s("openat2", 4),
    /* 438 */ s("pidfd_getfd", 3),
    /* 439 */ s("faccessat2", 4),
    /* 440 */ s("process_madvise", 5),
    /* 441 */ s("epoll_pwait2", 6),
    /* 442 */ s("mount_setattr", 5),
    /* 443 */ s("quotactl_fd", 4),
    /* 444 */ s("landlock_create_ruleset", 3),
    /* 445 */ s("landlock_add_rule", 4),
    /* 446 */ s("landlock_restrict_self", 2),
    /* 447 */ s("memfd_secret", 1),
    /* 448 */ s("process_mrelease", 2),
    /* 449 */ s("futex_waitv", 5),
    /* 450 */ s("set_mempolicy_home_node", 4),
    /* 451 */ s("cachestat", 4),
    /* 452 */ s("fchmodat2", 4),
    /* 453 */ s("map_shadow_stack", 3),
    /* 454 */ s("futex_wake", 4),
    /* 455 */ s("futex_wait", 6),
    /* 456 */ s("futex_requeue", 4),
    /* 457 */ s("statmount", 4),
    /* 458 */ s("listmount", 4),
    /* 459 */ s("lsm_get_self_attr", 4),
    /* 460 */ s("lsm_set_self_attr", 4),
    /* 461 */ s("lsm_list_modules", 3),
    /* 462 */ s("mseal", 3),
];

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

/// Syscall numbers as constants, named like the Linux `__NR_` names in
/// UPPER_CASE without the prefix (e.g. `__NR_exit_group` is [`nr::EXIT_GROUP`]).
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const STAT: u64 = 4;
    pub const FSTAT: u64 = 5;
    pub const LSTAT: u64 = 6;
    pub const POLL: u64 = 7;
    pub const LSEEK: u64 = 8;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const ACCESS: u64 = 21;
    pub const PIPE: u64 = 22;
    pub const SELECT: u64 = 23;
    pub const SCHED_YIELD: u64 = 24;
    pub const MREMAP: u64 = 25;
    pub const MSYNC: u64 = 26;
    pub const MINCORE: u64 = 27;
    pub const MADVISE: u64 = 28;
    pub const SHMGET: u64 = 29;
    pub const SHMAT: u64 = 30;
    pub const SHMCTL: u64 = 31;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const PAUSE: u64 = 34;
    pub const NANOSLEEP: u64 = 35;
    pub const GETITIMER: u64 = 36;
    pub const ALARM: u64 = 37;
    pub const SETITIMER: u64 = 38;
    pub const GETPID: u64 = 39;
    pub const SENDFILE: u64 = 40;
    pub const SOCKET: u64 = 41;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const SHUTDOWN: u64 = 48;
    pub const BIND: u64 = 49;
    pub const LISTEN: u64 = 50;
    pub const GETSOCKNAME: u64 = 51;
    pub const GETPEERNAME: u64 = 52;
    pub const SOCKETPAIR: u64 = 53;
    pub const SETSOCKOPT: u64 = 54;
    pub const GETSOCKOPT: u64 = 55;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const VFORK: u64 = 58;
    pub const EXECVE: u64 = 59;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const SEMGET: u64 = 64;
    pub const SEMOP: u64 = 65;
    pub const SEMCTL: u64 = 66;
    pub const SHMDT: u64 = 67;
    pub const MSGGET: u64 = 68;
    pub const MSGSND: u64 = 69;
    pub const MSGRCV: u64 = 70;
    pub const MSGCTL: u64 = 71;
    pub const FCNTL: u64 = 72;
    pub const FLOCK: u64 = 73;
    pub const FSYNC: u64 = 74;
    pub const FDATASYNC: u64 = 75;
    pub const TRUNCATE: u64 = 76;
    pub const FTRUNCATE: u64 = 77;
    pub const GETDENTS: u64 = 78;
    pub const GETCWD: u64 = 79;
    pub const CHDIR: u64 = 80;
    pub const FCHDIR: u64 = 81;
    pub const RENAME: u64 = 82;
    pub const MKDIR: u64 = 83;
    pub const RMDIR: u64 = 84;
    pub const CREAT: u64 = 85;
    pub const LINK: u64 = 86;
    pub const UNLINK: u64 = 87;
    pub const SYMLINK: u64 = 88;
    pub const READLINK: u64 = 89;
    pub const CHMOD: u64 = 90;
    pub const FCHMOD: u64 = 91;
    pub const CHOWN: u64 = 92;
    pub const FCHOWN: u64 = 93;
    pub const LCHOWN: u64 = 94;
    pub const UMASK: u64 = 95;
    pub const GETTIMEOFDAY: u64 = 96;
    pub const GETRLIMIT: u64 = 97;
    pub const GETRUSAGE: u64 = 98;
    pub const SYSINFO: u64 = 99;
    pub const TIMES: u64 = 100;
    pub const PTRACE: u64 = 101;
    pub const GETUID: u64 = 102;
    pub const SYSLOG: u64 = 103;
    pub const GETGID: u64 = 104;
    pub const SETUID: u64 = 105;
    pub const SETGID: u64 = 106;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const SETPGID: u64 = 109;
    pub const GETPPID: u64 = 110;
    pub const GETPGRP: u64 = 111;
    pub const SETSID: u64 = 112;
    pub const SETREUID: u64 = 113;
    pub const SETREGID: u64 = 114;
    pub const GETGROUPS: u64 = 115;
    pub const SETGROUPS: u64 = 116;
    pub const SETRESUID: u64 = 117;
    pub const GETRESUID: u64 = 118;
    pub const SETRESGID: u64 = 119;
    pub const GETRESGID: u64 = 120;
    pub const GETPGID: u64 = 121;
    pub const SETFSUID: u64 = 122;
    pub const SETFSGID: u64 = 123;
    pub const GETSID: u64 = 124;
    pub const CAPGET: u64 = 125;
    pub const CAPSET: u64 = 126;
    pub const RT_SIGPENDING: u64 = 127;
    pub const RT_SIGTIMEDWAIT: u64 = 128;
    pub const RT_SIGQUEUEINFO: u64 = 129;
    pub const RT_SIGSUSPEND: u64 = 130;
    pub const SIGALTSTACK: u64 = 131;
    pub const UTIME: u64 = 132;
    pub const MKNOD: u64 = 133;
    pub const USELIB: u64 = 134;
    pub const PERSONALITY: u64 = 135;
    pub const USTAT: u64 = 136;
    pub const STATFS: u64 = 137;
    pub const FSTATFS: u64 = 138;
    pub const SYSFS: u64 = 139;
    pub const GETPRIORITY: u64 = 140;
    pub const SETPRIORITY: u64 = 141;
    pub const SCHED_SETPARAM: u64 = 142;
    pub const SCHED_GETPARAM: u64 = 143;
    pub const SCHED_SETSCHEDULER: u64 = 144;
    pub const SCHED_GETSCHEDULER: u64 = 145;
    pub const SCHED_GET_PRIORITY_MAX: u64 = 146;
    pub const SCHED_GET_PRIORITY_MIN: u64 = 147;
    pub const SCHED_RR_GET_INTERVAL: u64 = 148;
    pub const MLOCK: u64 = 149;
    pub const MUNLOCK: u64 = 150;
    pub const MLOCKALL: u64 = 151;
    pub const MUNLOCKALL: u64 = 152;
    pub const VHANGUP: u64 = 153;
    pub const MODIFY_LDT: u64 = 154;
    pub const PIVOT_ROOT: u64 = 155;
    pub const _SYSCTL: u64 = 156;
    pub const PRCTL: u64 = 157;
    pub const ARCH_PRCTL: u64 = 158;
    pub const ADJTIMEX: u64 = 159;
    pub const SETRLIMIT: u64 = 160;
    pub const CHROOT: u64 = 161;
    pub const SYNC: u64 = 162;
    pub const ACCT: u64 = 163;
    pub const SETTIMEOFDAY: u64 = 164;
    pub const MOUNT: u64 = 165;
    pub const UMOUNT2: u64 = 166;
    pub const SWAPON: u64 = 167;
    pub const SWAPOFF: u64 = 168;
    pub const REBOOT: u64 = 169;
    pub const SETHOSTNAME: u64 = 170;
    pub const SETDOMAINNAME: u64 = 171;
    pub const IOPL: u64 = 172;
    pub const IOPERM: u64 = 173;
    pub const CREATE_MODULE: u64 = 174;
    pub const INIT_MODULE: u64 = 175;
    pub const DELETE_MODULE: u64 = 176;
    pub const GET_KERNEL_SYMS: u64 = 177;
    pub const QUERY_MODULE: u64 = 178;
    pub const QUOTACTL: u64 = 179;
    pub const NFSSERVCTL: u64 = 180;
    pub const GETPMSG: u64 = 181;
    pub const PUTPMSG: u64 = 182;
    pub const AFS_SYSCALL: u64 = 183;
    pub const TUXCALL: u64 = 184;
    pub const SECURITY: u64 = 185;
    pub const GETTID: u64 = 186;
    pub const READAHEAD: u64 = 187;
    pub const SETXATTR: u64 = 188;
    pub const LSETXATTR: u64 = 189;
    pub const FSETXATTR: u64 = 190;
    pub const GETXATTR: u64 = 191;
    pub const LGETXATTR: u64 = 192;
    pub const FGETXATTR: u64 = 193;
    pub const LISTXATTR: u64 = 194;
    pub const LLISTXATTR: u64 = 195;
    pub const FLISTXATTR: u64 = 196;
    pub const REMOVEXATTR: u64 = 197;
    pub const LREMOVEXATTR: u64 = 198;
    pub const FREMOVEXATTR: u64 = 199;
    pub const TKILL: u64 = 200;
    pub const TIME: u64 = 201;
    pub const FUTEX: u64 = 202;
    pub const SCHED_SETAFFINITY: u64 = 203;
    pub const SCHED_GETAFFINITY: u64 = 204;
    pub const SET_THREAD_AREA: u64 = 205;
    pub const IO_SETUP: u64 = 206;
    pub const IO_DESTROY: u64 = 207;
    pub const IO_GETEVENTS: u64 = 208;
    pub const IO_SUBMIT: u64 = 209;
    pub const IO_CANCEL: u64 = 210;
    pub const GET_THREAD_AREA: u64 = 211;
    pub const LOOKUP_DCOOKIE: u64 = 212;
    pub const EPOLL_CREATE: u64 = 213;
    pub const EPOLL_CTL_OLD: u64 = 214;
    pub const EPOLL_WAIT_OLD: u64 = 215;
    pub const REMAP_FILE_PAGES: u64 = 216;
    pub const GETDENTS64: u64 = 217;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const RESTART_SYSCALL: u64 = 219;
    pub const SEMTIMEDOP: u64 = 220;
    pub const FADVISE64: u64 = 221;
    pub const TIMER_CREATE: u64 = 222;
    pub const TIMER_SETTIME: u64 = 223;
    pub const TIMER_GETTIME: u64 = 224;
    pub const TIMER_GETOVERRUN: u64 = 225;
    pub const TIMER_DELETE: u64 = 226;
    pub const CLOCK_SETTIME: u64 = 227;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const CLOCK_GETRES: u64 = 229;
    pub const CLOCK_NANOSLEEP: u64 = 230;
    pub const EXIT_GROUP: u64 = 231;
    pub const EPOLL_WAIT: u64 = 232;
    pub const EPOLL_CTL: u64 = 233;
    pub const TGKILL: u64 = 234;
    pub const UTIMES: u64 = 235;
    pub const VSERVER: u64 = 236;
    pub const MBIND: u64 = 237;
    pub const SET_MEMPOLICY: u64 = 238;
    pub const GET_MEMPOLICY: u64 = 239;
    pub const MQ_OPEN: u64 = 240;
    pub const MQ_UNLINK: u64 = 241;
    pub const MQ_TIMEDSEND: u64 = 242;
    pub const MQ_TIMEDRECEIVE: u64 = 243;
    pub const MQ_NOTIFY: u64 = 244;
    pub const MQ_GETSETATTR: u64 = 245;
    pub const KEXEC_LOAD: u64 = 246;
    pub const WAITID: u64 = 247;
    pub const ADD_KEY: u64 = 248;
    pub const REQUEST_KEY: u64 = 249;
    pub const KEYCTL: u64 = 250;
    pub const IOPRIO_SET: u64 = 251;
    pub const IOPRIO_GET: u64 = 252;
    pub const INOTIFY_INIT: u64 = 253;
    pub const INOTIFY_ADD_WATCH: u64 = 254;
    pub const INOTIFY_RM_WATCH: u64 = 255;
    pub const MIGRATE_PAGES: u64 = 256;
    pub const OPENAT: u64 = 257;
    pub const MKDIRAT: u64 = 258;
    pub const MKNODAT: u64 = 259;
    pub const FCHOWNAT: u64 = 260;
    pub const FUTIMESAT: u64 = 261;
    pub const NEWFSTATAT: u64 = 262;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const LINKAT: u64 = 265;
    pub const SYMLINKAT: u64 = 266;
    pub const READLINKAT: u64 = 267;
    pub const FCHMODAT: u64 = 268;
    pub const FACCESSAT: u64 = 269;
    pub const PSELECT6: u64 = 270;
    pub const PPOLL: u64 = 271;
    pub const UNSHARE: u64 = 272;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const GET_ROBUST_LIST: u64 = 274;
    pub const SPLICE: u64 = 275;
    pub const TEE: u64 = 276;
    pub const SYNC_FILE_RANGE: u64 = 277;
    pub const VMSPLICE: u64 = 278;
    pub const MOVE_PAGES: u64 = 279;
    pub const UTIMENSAT: u64 = 280;
    pub const EPOLL_PWAIT: u64 = 281;
    pub const SIGNALFD: u64 = 282;
    pub const TIMERFD_CREATE: u64 = 283;
    pub const EVENTFD: u64 = 284;
    pub const FALLOCATE: u64 = 285;
    pub const TIMERFD_SETTIME: u64 = 286;
    pub const TIMERFD_GETTIME: u64 = 287;
    pub const ACCEPT4: u64 = 288;
    pub const SIGNALFD4: u64 = 289;
    pub const EVENTFD2: u64 = 290;
    pub const EPOLL_CREATE1: u64 = 291;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const INOTIFY_INIT1: u64 = 294;
    pub const PREADV: u64 = 295;
    pub const PWRITEV: u64 = 296;
    pub const RT_TGSIGQUEUEINFO: u64 = 297;
    pub const PERF_EVENT_OPEN: u64 = 298;
    pub const RECVMMSG: u64 = 299;
    pub const FANOTIFY_INIT: u64 = 300;
    pub const FANOTIFY_MARK: u64 = 301;
    pub const PRLIMIT64: u64 = 302;
    pub const NAME_TO_HANDLE_AT: u64 = 303;
    pub const OPEN_BY_HANDLE_AT: u64 = 304;
    pub const CLOCK_ADJTIME: u64 = 305;
    pub const SYNCFS: u64 = 306;
    pub const SENDMMSG: u64 = 307;
    pub const SETNS: u64 = 308;
    pub const GETCPU: u64 = 309;
    pub const PROCESS_VM_READV: u64 = 310;
    pub const PROCESS_VM_WRITEV: u64 = 311;
    pub const KCMP: u64 = 312;
    pub const FINIT_MODULE: u64 = 313;
    pub const SCHED_SETATTR: u64 = 314;
    pub const SCHED_GETATTR: u64 = 315;
    pub const RENAMEAT2: u64 = 316;
    pub const SECCOMP: u64 = 317;
    pub const GETRANDOM: u64 = 318;
    pub const MEMFD_CREATE: u64 = 319;
    pub const KEXEC_FILE_LOAD: u64 = 320;
    pub const BPF: u64 = 321;
    pub const EXECVEAT: u64 = 322;
    pub const USERFAULTFD: u64 = 323;
    pub const MEMBARRIER: u64 = 324;
    pub const MLOCK2: u64 = 325;
    pub const COPY_FILE_RANGE: u64 = 326;
    pub const PREADV2: u64 = 327;
    pub const PWRITEV2: u64 = 328;
    pub const PKEY_MPROTECT: u64 = 329;
    pub const PKEY_ALLOC: u64 = 330;
    pub const PKEY_FREE: u64 = 331;
    pub const STATX: u64 = 332;
    pub const IO_PGETEVENTS: u64 = 333;
    pub const RSEQ: u64 = 334;
    pub const PIDFD_SEND_SIGNAL: u64 = 424;
    pub const IO_URING_SETUP: u64 = 425;
    pub const IO_URING_ENTER: u64 = 426;
    pub const IO_URING_REGISTER: u64 = 427;
    pub const OPEN_TREE: u64 = 428;
    pub const MOVE_MOUNT: u64 = 429;
    pub const FSOPEN: u64 = 430;
    pub const FSCONFIG: u64 = 431;
    pub const FSMOUNT: u64 = 432;
    pub const FSPICK: u64 = 433;
    pub const PIDFD_OPEN: u64 = 434;
    pub const CLONE3: u64 = 435;
    pub const CLOSE_RANGE: u64 = 436;
    pub const OPENAT2: u64 = 437;
    pub const PIDFD_GETFD: u64 = 438;
    pub const FACCESSAT2: u64 = 439;
    pub const PROCESS_MADVISE: u64 = 440;
    pub const EPOLL_PWAIT2: u64 = 441;
    pub const MOUNT_SETATTR: u64 = 442;
    pub const QUOTACTL_FD: u64 = 443;
    pub const LANDLOCK_CREATE_RULESET: u64 = 444;
    pub const LANDLOCK_ADD_RULE: u64 = 445;
    pub const LANDLOCK_RESTRICT_SELF: u64 = 446;
    pub const MEMFD_SECRET: u64 = 447;
    pub const PROCESS_MRELEASE: u64 = 448;
    pub const FUTEX_WAITV: u64 = 449;
    pub const SET_MEMPOLICY_HOME_NODE: u64 = 450;
    pub const CACHESTAT: u64 = 451;
    pub const FCHMODAT2: u64 = 452;
    pub const MAP_SHADOW_STACK: u64 = 453;
    pub const FUTEX_WAKE: u64 = 454;
    pub const FUTEX_WAIT: u64 = 455;
    pub const FUTEX_REQUEUE: u64 = 456;
    pub const STATMOUNT: u64 = 457;
    pub const LISTMOUNT: u64 = 458;
    pub const LSM_GET_SELF_ATTR: u64 = 459;
    pub const LSM_SET_SELF_ATTR: u64 = 460;
    pub const LSM_LIST_MODULES: u64 = 461;
    pub const MSEAL: u64 = 462;
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
    fn nr_constants_map_back() {
        let consts: &[(u64, &str)] = &[
            (nr::READ, "read"),
            (nr::WRITE, "write"),
            (nr::OPEN, "open"),
            (nr::CLOSE, "close"),
            (nr::STAT, "stat"),
            (nr::FSTAT, "fstat"),
            (nr::LSTAT, "lstat"),
            (nr::POLL, "poll"),
            (nr::LSEEK, "lseek"),
            (nr::MMAP, "mmap"),
            (nr::MPROTECT, "mprotect"),
            (nr::MUNMAP, "munmap"),
            (nr::BRK, "brk"),
            (nr::RT_SIGACTION, "rt_sigaction"),
            (nr::RT_SIGPROCMASK, "rt_sigprocmask"),
            (nr::RT_SIGRETURN, "rt_sigreturn"),
            (nr::IOCTL, "ioctl"),
            (nr::PREAD64, "pread64"),
            (nr::PWRITE64, "pwrite64"),
            (nr::READV, "readv"),
            (nr::WRITEV, "writev"),
            (nr::ACCESS, "access"),
            (nr::PIPE, "pipe"),
            (nr::SELECT, "select"),
            (nr::SCHED_YIELD, "sched_yield"),
            (nr::MREMAP, "mremap"),
            (nr::MSYNC, "msync"),
            (nr::MINCORE, "mincore"),
            (nr::MADVISE, "madvise"),
            (nr::SHMGET, "shmget"),
            (nr::SHMAT, "shmat"),
            (nr::SHMCTL, "shmctl"),
            (nr::DUP, "dup"),
            (nr::DUP2, "dup2"),
            (nr::PAUSE, "pause"),
            (nr::NANOSLEEP, "nanosleep"),
            (nr::GETITIMER, "getitimer"),
            (nr::ALARM, "alarm"),
            (nr::SETITIMER, "setitimer"),
            (nr::GETPID, "getpid"),
            (nr::SENDFILE, "sendfile"),
            (nr::SOCKET, "socket"),
            (nr::CONNECT, "connect"),
            (nr::ACCEPT, "accept"),
            (nr::SENDTO, "sendto"),
            (nr::RECVFROM, "recvfrom"),
            (nr::SENDMSG, "sendmsg"),
            (nr::RECVMSG, "recvmsg"),
            (nr::SHUTDOWN, "shutdown"),
            (nr::BIND, "bind"),
            (nr::LISTEN, "listen"),
            (nr::GETSOCKNAME, "getsockname"),
            (nr::GETPEERNAME, "getpeername"),
            (nr::SOCKETPAIR, "socketpair"),
            (nr::SETSOCKOPT, "setsockopt"),
            (nr::GETSOCKOPT, "getsockopt"),
            (nr::CLONE, "clone"),
            (nr::FORK, "fork"),
            (nr::VFORK, "vfork"),
            (nr::EXECVE, "execve"),
            (nr::EXIT, "exit"),
            (nr::WAIT4, "wait4"),
            (nr::KILL, "kill"),
            (nr::UNAME, "uname"),
            (nr::SEMGET, "semget"),
            (nr::SEMOP, "semop"),
            (nr::SEMCTL, "semctl"),
            (nr::SHMDT, "shmdt"),
            (nr::MSGGET, "msgget"),
            (nr::MSGSND, "msgsnd"),
            (nr::MSGRCV, "msgrcv"),
            (nr::MSGCTL, "msgctl"),
            (nr::FCNTL, "fcntl"),
            (nr::FLOCK, "flock"),
            (nr::FSYNC, "fsync"),
            (nr::FDATASYNC, "fdatasync"),
            (nr::TRUNCATE, "truncate"),
            (nr::FTRUNCATE, "ftruncate"),
            (nr::GETDENTS, "getdents"),
            (nr::GETCWD, "getcwd"),
            (nr::CHDIR, "chdir"),
            (nr::FCHDIR, "fchdir"),
            (nr::RENAME, "rename"),
            (nr::MKDIR, "mkdir"),
            (nr::RMDIR, "rmdir"),
            (nr::CREAT, "creat"),
            (nr::LINK, "link"),
            (nr::UNLINK, "unlink"),
            (nr::SYMLINK, "symlink"),
            (nr::READLINK, "readlink"),
            (nr::CHMOD, "chmod"),
            (nr::FCHMOD, "fchmod"),
            (nr::CHOWN, "chown"),
            (nr::FCHOWN, "fchown"),
            (nr::LCHOWN, "lchown"),
            (nr::UMASK, "umask"),
            (nr::GETTIMEOFDAY, "gettimeofday"),
            (nr::GETRLIMIT, "getrlimit"),
            (nr::GETRUSAGE, "getrusage"),
            (nr::SYSINFO, "sysinfo"),
            (nr::TIMES, "times"),
            (nr::PTRACE, "ptrace"),
            (nr::GETUID, "getuid"),
            (nr::SYSLOG, "syslog"),
            (nr::GETGID, "getgid"),
            (nr::SETUID, "setuid"),
            (nr::SETGID, "setgid"),
            (nr::GETEUID, "geteuid"),
            (nr::GETEGID, "getegid"),
            (nr::SETPGID, "setpgid"),
            (nr::GETPPID, "getppid"),
            (nr::GETPGRP, "getpgrp"),
            (nr::SETSID, "setsid"),
            (nr::SETREUID, "setreuid"),
            (nr::SETREGID, "setregid"),
            (nr::GETGROUPS, "getgroups"),
            (nr::SETGROUPS, "setgroups"),
            (nr::SETRESUID, "setresuid"),
            (nr::GETRESUID, "getresuid"),
            (nr::SETRESGID, "setresgid"),
            (nr::GETRESGID, "getresgid"),
            (nr::GETPGID, "getpgid"),
            (nr::SETFSUID, "setfsuid"),
            (nr::SETFSGID, "setfsgid"),
            (nr::GETSID, "getsid"),
            (nr::CAPGET, "capget"),
            (nr::CAPSET, "capset"),
            (nr::RT_SIGPENDING, "rt_sigpending"),
            (nr::RT_SIGTIMEDWAIT, "rt_sigtimedwait"),
            (nr::RT_SIGQUEUEINFO, "rt_sigqueueinfo"),
            (nr::RT_SIGSUSPEND, "rt_sigsuspend"),
            (nr::SIGALTSTACK, "sigaltstack"),
            (nr::UTIME, "utime"),
            (nr::MKNOD, "mknod"),
            (nr::USELIB, "uselib"),
            (nr::PERSONALITY, "personality"),
            (nr::USTAT, "ustat"),
            (nr::STATFS, "statfs"),
            (nr::FSTATFS, "fstatfs"),
            (nr::SYSFS, "sysfs"),
            (nr::GETPRIORITY, "getpriority"),
            (nr::SETPRIORITY, "setpriority"),
            (nr::SCHED_SETPARAM, "sched_setparam"),
            (nr::SCHED_GETPARAM, "sched_getparam"),
            (nr::SCHED_SETSCHEDULER, "sched_setscheduler"),
            (nr::SCHED_GETSCHEDULER, "sched_getscheduler"),
            (nr::SCHED_GET_PRIORITY_MAX, "sched_get_priority_max"),
            (nr::SCHED_GET_PRIORITY_MIN, "sched_get_priority_min"),
            (nr::SCHED_RR_GET_INTERVAL, "sched_rr_get_interval"),
            (nr::MLOCK, "mlock"),
            (nr::MUNLOCK, "munlock"),
            (nr::MLOCKALL, "mlockall"),
            (nr::MUNLOCKALL, "munlockall"),
            (nr::VHANGUP, "vhangup"),
            (nr::MODIFY_LDT, "modify_ldt"),
            (nr::PIVOT_ROOT, "pivot_root"),
            (nr::_SYSCTL, "_sysctl"),
            (nr::PRCTL, "prctl"),
            (nr::ARCH_PRCTL, "arch_prctl"),
            (nr::ADJTIMEX, "adjtimex"),
            (nr::SETRLIMIT, "setrlimit"),
            (nr::CHROOT, "chroot"),
            (nr::SYNC, "sync"),
            (nr::ACCT, "acct"),
            (nr::SETTIMEOFDAY, "settimeofday"),
            (nr::MOUNT, "mount"),
            (nr::UMOUNT2, "umount2"),
            (nr::SWAPON, "swapon"),
            (nr::SWAPOFF, "swapoff"),
            (nr::REBOOT, "reboot"),
            (nr::SETHOSTNAME, "sethostname"),
            (nr::SETDOMAINNAME, "setdomainname"),
            (nr::IOPL, "iopl"),
            (nr::IOPERM, "ioperm"),
            (nr::CREATE_MODULE, "create_module"),
            (nr::INIT_MODULE, "init_module"),
            (nr::DELETE_MODULE, "delete_module"),
            (nr::GET_KERNEL_SYMS, "get_kernel_syms"),
            (nr::QUERY_MODULE, "query_module"),
            (nr::QUOTACTL, "quotactl"),
            (nr::NFSSERVCTL, "nfsservctl"),
            (nr::GETPMSG, "getpmsg"),
            (nr::PUTPMSG, "putpmsg"),
            (nr::AFS_SYSCALL, "afs_syscall"),
            (nr::TUXCALL, "tuxcall"),
            (nr::SECURITY, "security"),
            (nr::GETTID, "gettid"),
            (nr::READAHEAD, "readahead"),
            (nr::SETXATTR, "setxattr"),
            (nr::LSETXATTR, "lsetxattr"),
            (nr::FSETXATTR, "fsetxattr"),
            (nr::GETXATTR, "getxattr"),
            (nr::LGETXATTR, "lgetxattr"),
            (nr::FGETXATTR, "fgetxattr"),
            (nr::LISTXATTR, "listxattr"),
            (nr::LLISTXATTR, "llistxattr"),
            (nr::FLISTXATTR, "flistxattr"),
            (nr::REMOVEXATTR, "removexattr"),
            (nr::LREMOVEXATTR, "lremovexattr"),
            (nr::FREMOVEXATTR, "fremovexattr"),
            (nr::TKILL, "tkill"),
            (nr::TIME, "time"),
            (nr::FUTEX, "futex"),
            (nr::SCHED_SETAFFINITY, "sched_setaffinity"),
            (nr::SCHED_GETAFFINITY, "sched_getaffinity"),
            (nr::SET_THREAD_AREA, "set_thread_area"),
            (nr::IO_SETUP, "io_setup"),
            (nr::IO_DESTROY, "io_destroy"),
            (nr::IO_GETEVENTS, "io_getevents"),
            (nr::IO_SUBMIT, "io_submit"),
            (nr::IO_CANCEL, "io_cancel"),
            (nr::GET_THREAD_AREA, "get_thread_area"),
            (nr::LOOKUP_DCOOKIE, "lookup_dcookie"),
            (nr::EPOLL_CREATE, "epoll_create"),
            (nr::EPOLL_CTL_OLD, "epoll_ctl_old"),
            (nr::EPOLL_WAIT_OLD, "epoll_wait_old"),
            (nr::REMAP_FILE_PAGES, "remap_file_pages"),
            (nr::GETDENTS64, "getdents64"),
            (nr::SET_TID_ADDRESS, "set_tid_address"),
            (nr::RESTART_SYSCALL, "restart_syscall"),
            (nr::SEMTIMEDOP, "semtimedop"),
            (nr::FADVISE64, "fadvise64"),
            (nr::TIMER_CREATE, "timer_create"),
            (nr::TIMER_SETTIME, "timer_settime"),
            (nr::TIMER_GETTIME, "timer_gettime"),
            (nr::TIMER_GETOVERRUN, "timer_getoverrun"),
            (nr::TIMER_DELETE, "timer_delete"),
            (nr::CLOCK_SETTIME, "clock_settime"),
            (nr::CLOCK_GETTIME, "clock_gettime"),
            (nr::CLOCK_GETRES, "clock_getres"),
            (nr::CLOCK_NANOSLEEP, "clock_nanosleep"),
            (nr::EXIT_GROUP, "exit_group"),
            (nr::EPOLL_WAIT, "epoll_wait"),
            (nr::EPOLL_CTL, "epoll_ctl"),
            (nr::TGKILL, "tgkill"),
            (nr::UTIMES, "utimes"),
            (nr::VSERVER, "vserver"),
            (nr::MBIND, "mbind"),
            (nr::SET_MEMPOLICY, "set_mempolicy"),
            (nr::GET_MEMPOLICY, "get_mempolicy"),
            (nr::MQ_OPEN, "mq_open"),
            (nr::MQ_UNLINK, "mq_unlink"),
            (nr::MQ_TIMEDSEND, "mq_timedsend"),
            (nr::MQ_TIMEDRECEIVE, "mq_timedreceive"),
            (nr::MQ_NOTIFY, "mq_notify"),
            (nr::MQ_GETSETATTR, "mq_getsetattr"),
            (nr::KEXEC_LOAD, "kexec_load"),
            (nr::WAITID, "waitid"),
            (nr::ADD_KEY, "add_key"),
            (nr::REQUEST_KEY, "request_key"),
            (nr::KEYCTL, "keyctl"),
            (nr::IOPRIO_SET, "ioprio_set"),
            (nr::IOPRIO_GET, "ioprio_get"),
            (nr::INOTIFY_INIT, "inotify_init"),
            (nr::INOTIFY_ADD_WATCH, "inotify_add_watch"),
            (nr::INOTIFY_RM_WATCH, "inotify_rm_watch"),
            (nr::MIGRATE_PAGES, "migrate_pages"),
            (nr::OPENAT, "openat"),
            (nr::MKDIRAT, "mkdirat"),
            (nr::MKNODAT, "mknodat"),
            (nr::FCHOWNAT, "fchownat"),
            (nr::FUTIMESAT, "futimesat"),
            (nr::NEWFSTATAT, "newfstatat"),
            (nr::UNLINKAT, "unlinkat"),
            (nr::RENAMEAT, "renameat"),
            (nr::LINKAT, "linkat"),
            (nr::SYMLINKAT, "symlinkat"),
            (nr::READLINKAT, "readlinkat"),
            (nr::FCHMODAT, "fchmodat"),
            (nr::FACCESSAT, "faccessat"),
            (nr::PSELECT6, "pselect6"),
            (nr::PPOLL, "ppoll"),
            (nr::UNSHARE, "unshare"),
            (nr::SET_ROBUST_LIST, "set_robust_list"),
            (nr::GET_ROBUST_LIST, "get_robust_list"),
            (nr::SPLICE, "splice"),
            (nr::TEE, "tee"),
            (nr::SYNC_FILE_RANGE, "sync_file_range"),
            (nr::VMSPLICE, "vmsplice"),
            (nr::MOVE_PAGES, "move_pages"),
            (nr::UTIMENSAT, "utimensat"),
            (nr::EPOLL_PWAIT, "epoll_pwait"),
            (nr::SIGNALFD, "signalfd"),
            (nr::TIMERFD_CREATE, "timerfd_create"),
            (nr::EVENTFD, "eventfd"),
            (nr::FALLOCATE, "fallocate"),
            (nr::TIMERFD_SETTIME, "timerfd_settime"),
            (nr::TIMERFD_GETTIME, "timerfd_gettime"),
            (nr::ACCEPT4, "accept4"),
            (nr::SIGNALFD4, "signalfd4"),
            (nr::EVENTFD2, "eventfd2"),
            (nr::EPOLL_CREATE1, "epoll_create1"),
            (nr::DUP3, "dup3"),
            (nr::PIPE2, "pipe2"),
            (nr::INOTIFY_INIT1, "inotify_init1"),
            (nr::PREADV, "preadv"),
            (nr::PWRITEV, "pwritev"),
            (nr::RT_TGSIGQUEUEINFO, "rt_tgsigqueueinfo"),
            (nr::PERF_EVENT_OPEN, "perf_event_open"),
            (nr::RECVMMSG, "recvmmsg"),
            (nr::FANOTIFY_INIT, "fanotify_init"),
            (nr::FANOTIFY_MARK, "fanotify_mark"),
            (nr::PRLIMIT64, "prlimit64"),
            (nr::NAME_TO_HANDLE_AT, "name_to_handle_at"),
            (nr::OPEN_BY_HANDLE_AT, "open_by_handle_at"),
            (nr::CLOCK_ADJTIME, "clock_adjtime"),
            (nr::SYNCFS, "syncfs"),
            (nr::SENDMMSG, "sendmmsg"),
            (nr::SETNS, "setns"),
            (nr::GETCPU, "getcpu"),
            (nr::PROCESS_VM_READV, "process_vm_readv"),
            (nr::PROCESS_VM_WRITEV, "process_vm_writev"),
            (nr::KCMP, "kcmp"),
            (nr::FINIT_MODULE, "finit_module"),
            (nr::SCHED_SETATTR, "sched_setattr"),
            (nr::SCHED_GETATTR, "sched_getattr"),
            (nr::RENAMEAT2, "renameat2"),
            (nr::SECCOMP, "seccomp"),
            (nr::GETRANDOM, "getrandom"),
            (nr::MEMFD_CREATE, "memfd_create"),
            (nr::KEXEC_FILE_LOAD, "kexec_file_load"),
            (nr::BPF, "bpf"),
            (nr::EXECVEAT, "execveat"),
            (nr::USERFAULTFD, "userfaultfd"),
            (nr::MEMBARRIER, "membarrier"),
            (nr::MLOCK2, "mlock2"),
            (nr::COPY_FILE_RANGE, "copy_file_range"),
            (nr::PREADV2, "preadv2"),
            (nr::PWRITEV2, "pwritev2"),
            (nr::PKEY_MPROTECT, "pkey_mprotect"),
            (nr::PKEY_ALLOC, "pkey_alloc"),
            (nr::PKEY_FREE, "pkey_free"),
            (nr::STATX, "statx"),
            (nr::IO_PGETEVENTS, "io_pgetevents"),
            (nr::RSEQ, "rseq"),
            (nr::PIDFD_SEND_SIGNAL, "pidfd_send_signal"),
            (nr::IO_URING_SETUP, "io_uring_setup"),
            (nr::IO_URING_ENTER, "io_uring_enter"),
            (nr::IO_URING_REGISTER, "io_uring_register"),
            (nr::OPEN_TREE, "open_tree"),
            (nr::MOVE_MOUNT, "move_mount"),
            (nr::FSOPEN, "fsopen"),
            (nr::FSCONFIG, "fsconfig"),
            (nr::FSMOUNT, "fsmount"),
            (nr::FSPICK, "fspick"),
            (nr::PIDFD_OPEN, "pidfd_open"),
            (nr::CLONE3, "clone3"),
            (nr::CLOSE_RANGE, "close_range"),
            (nr::OPENAT2, "openat2"),
            (nr::PIDFD_GETFD, "pidfd_getfd"),
            (nr::FACCESSAT2, "faccessat2"),
            (nr::PROCESS_MADVISE, "process_madvise"),
            (nr::EPOLL_PWAIT2, "epoll_pwait2"),
            (nr::MOUNT_SETATTR, "mount_setattr"),
            (nr::QUOTACTL_FD, "quotactl_fd"),
            (nr::LANDLOCK_CREATE_RULESET, "landlock_create_ruleset"),
            (nr::LANDLOCK_ADD_RULE, "landlock_add_rule"),
            (nr::LANDLOCK_RESTRICT_SELF, "landlock_restrict_self"),
            (nr::MEMFD_SECRET, "memfd_secret"),
            (nr::PROCESS_MRELEASE, "process_mrelease"),
            (nr::FUTEX_WAITV, "futex_waitv"),
            (nr::SET_MEMPOLICY_HOME_NODE, "set_mempolicy_home_node"),
            (nr::CACHESTAT, "cachestat"),
            (nr::FCHMODAT2, "fchmodat2"),
            (nr::MAP_SHADOW_STACK, "map_shadow_stack"),
            (nr::FUTEX_WAKE, "futex_wake"),
            (nr::FUTEX_WAIT, "futex_wait"),
            (nr::FUTEX_REQUEUE, "futex_requeue"),
            (nr::STATMOUNT, "statmount"),
            (nr::LISTMOUNT, "listmount"),
            (nr::LSM_GET_SELF_ATTR, "lsm_get_self_attr"),
            (nr::LSM_SET_SELF_ATTR, "lsm_set_self_attr"),
            (nr::LSM_LIST_MODULES, "lsm_list_modules"),
            (nr::MSEAL, "mseal"),
        ];
        assert_eq!(consts.len(), SYSCALLS.iter().flatten().count());
        for &(nr, name) in consts {
            assert_eq!(syscall_name(nr), Some(name), "nr constant {nr}");
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
