//! The kernel's own messages: unsupported-syscall warnings, `--trace` lines
//! and the `--syscall-summary` table, all written to the host's stderr.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::boot::flags;
use atoll_abi::queue::Opcode;
use atoll_abi::syscalls::{syscall_info, syscall_name, MAX_SYSCALL};

use crate::offload;

/// A fixed-size line buffer; text beyond its capacity is dropped.
pub struct LineBuffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> LineBuffer<N> {
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> Write for LineBuffer<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = N - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes `line` to the host's stderr.
pub fn log(line: &[u8]) {
    let address = crate::mm::guest_physical(line.as_ptr() as u64);
    offload::call(Opcode::Log, [address, line.len() as u64, 0, 0, 0, 0]);
}

const TABLE_SIZE: usize = MAX_SYSCALL + 1;
static CALLS: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];
static ERRORS: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];
/// Calls that came through rewritten sites (the rest trapped).
static REWRITTEN: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];
/// Sites that trapped: their addresses and counts, first come first kept.
const TRAP_SITES: usize = 64;
static TRAP_SITE_ADDRESS: [AtomicU64; TRAP_SITES] = [const { AtomicU64::new(0) }; TRAP_SITES];
static TRAP_SITE_CALLS: [AtomicU64; TRAP_SITES] = [const { AtomicU64::new(0) }; TRAP_SITES];
/// Trapped calls from sites beyond the first TRAP_SITES.
static OTHER_TRAP_SITES: AtomicU64 = AtomicU64::new(0);
static UNSUPPORTED: [AtomicU64; TABLE_SIZE.div_ceil(64)] =
    [const { AtomicU64::new(0) }; TABLE_SIZE.div_ceil(64)];
/// Trapped calls by the privilege level the LSTAR entry ran at: 3 on
/// kvm-pvm, 0 on hardware KVM and under QEMU.
static TRAPPED_AT_CPL: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Calls with numbers outside the table.
static OUT_OF_TABLE: AtomicU64 = AtomicU64::new(0);

/// Counts one call of `nr` that returned `result`.
pub fn count(nr: u64, result: i64, rewritten: bool) {
    match CALLS.get(nr as usize) {
        // Counting costs shared-cache-line atomics: only when asked for.
        Some(_) if !counting() => {}
        Some(calls) => {
            calls.fetch_add(1, Ordering::Relaxed);
            if rewritten {
                REWRITTEN[nr as usize].fetch_add(1, Ordering::Relaxed);
            }
            if result < 0 && result > -4096 {
                ERRORS[nr as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            OUT_OF_TABLE.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts a call that trapped at the `syscall` instruction at `site`,
/// whose entry ran at privilege level `cpl`.
pub fn count_trap_site(site: u64, cpl: u64) {
    TRAPPED_AT_CPL[(cpl & 3) as usize].fetch_add(1, Ordering::Relaxed);
    let start = (site as usize ^ (site >> 12) as usize) % TRAP_SITES;
    for probe in 0..TRAP_SITES {
        let index = (start + probe) % TRAP_SITES;
        let slot = &TRAP_SITE_ADDRESS[index];
        let owner = match slot.compare_exchange(0, site, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => site,
            Err(current) => current,
        };
        if owner == site {
            TRAP_SITE_CALLS[index].fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    OTHER_TRAP_SITES.fetch_add(1, Ordering::Relaxed);
}

/// Warns, once per number, that the program called a syscall we don't serve.
pub fn warn_unsupported(nr: u64) {
    let first_time = match UNSUPPORTED.get(nr as usize / 64) {
        Some(word) => {
            let bit = 1u64 << (nr % 64);
            word.fetch_or(bit, Ordering::Relaxed) & bit == 0
        }
        None => OUT_OF_TABLE.load(Ordering::Relaxed) == 0,
    };
    if first_time {
        let mut line = LineBuffer::<128>::new();
        let _ = writeln!(
            line,
            "atoll: unsupported syscall {} ({nr})",
            syscall_name(nr).unwrap_or("unknown")
        );
        log(line.as_bytes());
    }
}

fn is_unsupported(nr: usize) -> bool {
    UNSUPPORTED[nr / 64].load(Ordering::Relaxed) & (1 << (nr % 64)) != 0
}

/// Logs one syscall strace-style: `name(arg, ...) = result`.
pub fn trace_call(nr: u64, args: &[u64; 6], result: i64) {
    let mut line = format_call(nr, args);
    if result < 0 && result > -4096 {
        let _ = writeln!(line, ") = -1 {}", errno_name(-result));
    } else if returns_address(nr) {
        let _ = writeln!(line, ") = {result:#x}");
    } else {
        let _ = writeln!(line, ") = {result}");
    }
    log(line.as_bytes());
}

/// Logs a call that never returns (exit, exit_group).
pub fn trace_exit(nr: u64, args: &[u64; 6]) {
    let mut line = format_call(nr, args);
    let _ = writeln!(line, ") = ?");
    log(line.as_bytes());
}

fn returns_address(nr: u64) -> bool {
    use atoll_abi::syscalls::nr;
    matches!(nr, nr::MMAP | nr::BRK | nr::MREMAP)
}

/// `name(arg, arg, ...` without the closing parenthesis.
fn format_call(nr: u64, args: &[u64; 6]) -> LineBuffer<256> {
    let mut line = LineBuffer::<256>::new();
    let (name, arg_count) = match syscall_info(nr) {
        Some(info) => (info.name, usize::from(info.arg_count)),
        None => ("syscall", 6),
    };
    let _ = write!(line, "{name}(");
    if syscall_info(nr).is_none() {
        let _ = write!(line, "{nr}, ");
    }
    for (index, arg) in args.iter().take(arg_count).enumerate() {
        let separator = if index == 0 { "" } else { ", " };
        if *arg < 4096 {
            let _ = write!(line, "{separator}{arg}");
        } else {
            let _ = write!(line, "{separator}{arg:#x}");
        }
    }
    line
}

/// Whether --trace is on.
/// Whether calls are counted, for `--syscall-summary`.
pub fn counting() -> bool {
    crate::has_flag(flags::SYSCALL_SUMMARY)
}

pub fn tracing() -> bool {
    crate::has_flag(flags::TRACE)
}

/// Prints the per-syscall counts if --syscall-summary asked for them.
pub fn print_summary_if_asked() {
    if !crate::has_flag(flags::SYSCALL_SUMMARY) {
        return;
    }
    let mut line = LineBuffer::<128>::new();
    let _ = writeln!(
        line,
        "atoll: syscall summary\n{:>10} {:>8} {:>10} {:>8}  syscall",
        "calls", "errors", "rewritten", "trapped"
    );
    log(line.as_bytes());
    let mut total = 0;
    for nr in 0..TABLE_SIZE {
        let calls = CALLS[nr].load(Ordering::Relaxed);
        if calls == 0 {
            continue;
        }
        total += calls;
        let mut line = LineBuffer::<128>::new();
        let errors = ERRORS[nr].load(Ordering::Relaxed);
        let name = syscall_name(nr as u64).unwrap_or("unknown");
        let mark = if is_unsupported(nr) {
            "  (unsupported)"
        } else {
            ""
        };
        let rewritten = REWRITTEN[nr].load(Ordering::Relaxed);
        let trapped = calls - rewritten;
        let _ = writeln!(
            line,
            "{calls:>10} {errors:>8} {rewritten:>10} {trapped:>8}  {name}{mark}"
        );
        log(line.as_bytes());
    }
    let out_of_table = OUT_OF_TABLE.load(Ordering::Relaxed);
    let mut line = LineBuffer::<128>::new();
    if out_of_table > 0 {
        let _ = writeln!(
            line,
            "{out_of_table:>10} {out_of_table:>8}  unknown numbers  (unsupported)"
        );
    }
    let rewritten: u64 = REWRITTEN.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    let _ = writeln!(
        line,
        "{:>10} {:>8} {:>10} {:>8}  total",
        total + out_of_table,
        "",
        rewritten,
        total + out_of_table - rewritten
    );
    log(line.as_bytes());
    let (ring0, ring3) = (
        TRAPPED_AT_CPL[0].load(Ordering::Relaxed),
        TRAPPED_AT_CPL[3].load(Ordering::Relaxed),
    );
    if ring0 + ring3 > 0 {
        let mut line = LineBuffer::<128>::new();
        let _ = writeln!(
            line,
            "atoll: trapped calls entered at CPL 0 (back by sysretq): {ring0}, at CPL 3: {ring3}"
        );
        log(line.as_bytes());
    }
    print_trap_sites();
}

/// The sites that trapped, busiest first (at most 20 of them).
fn print_trap_sites() {
    let mut sites: [(u64, u64); TRAP_SITES] = [(0, 0); TRAP_SITES];
    for (index, site) in sites.iter_mut().enumerate() {
        *site = (
            TRAP_SITE_CALLS[index].load(Ordering::Relaxed),
            TRAP_SITE_ADDRESS[index].load(Ordering::Relaxed),
        );
    }
    sites.sort_unstable_by(|a, b| b.cmp(a));
    for &(calls, address) in sites.iter().take(20).filter(|(calls, _)| *calls > 0) {
        let mut line = LineBuffer::<128>::new();
        let _ = writeln!(line, "atoll: trapping site {address:#x}: {calls} calls");
        log(line.as_bytes());
    }
    let others = OTHER_TRAP_SITES.load(Ordering::Relaxed);
    if others > 0 {
        let mut line = LineBuffer::<128>::new();
        let _ = writeln!(line, "atoll: trapping sites beyond these: {others} calls");
        log(line.as_bytes());
    }
}

/// Linux's errno names, from 1 (asm-generic/errno-base.h and errno.h;
/// 41 and 58 are unused).
const ERRNO_NAMES: [&str; 133] = [
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "E?",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "E?",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

/// Symbolic name of an errno value, as strace prints it.
pub fn errno_name(errno: i64) -> &'static str {
    usize::try_from(errno)
        .ok()
        .and_then(|errno| ERRNO_NAMES.get(errno.checked_sub(1)?))
        .copied()
        .unwrap_or("E?")
}

#[cfg(test)]
mod tests {
    use super::errno_name;
    use atoll_abi::linux::errno::*;

    #[test]
    fn errno_names_are_linuxs() {
        for (errno, name) in [
            (EPERM, "EPERM"),
            (EROFS, "EROFS"),
            (ELOOP, "ELOOP"),
            (EOVERFLOW, "EOVERFLOW"),
            (EOPNOTSUPP, "EOPNOTSUPP"),
            (EAFNOSUPPORT, "EAFNOSUPPORT"),
            (ENETUNREACH, "ENETUNREACH"),
            (ENOBUFS, "ENOBUFS"),
            (ETIMEDOUT, "ETIMEDOUT"),
            (133, "EHWPOISON"),
        ] {
            assert_eq!(errno_name(errno), name);
        }
        for unknown in [0, 41, 58, 134, -1] {
            assert_eq!(errno_name(unknown), "E?");
        }
    }
}
