//! Signals. Dispositions, the mask and the alternate stack are recorded
//! faithfully; delivery of handlers is not implemented yet, so a signal the
//! program sends itself acts as its default action (or is ignored).

use core::fmt::Write;

use atoll_abi::linux::errno::{EINVAL, ENOMEM, ESRCH};
use spin::Mutex;

use super::SysResult;
use crate::arch::x86_64::user;
use crate::boot_info;
use crate::trace::{self, LineBuffer};

const SIGNAL_COUNT: usize = 64;
const SIGKILL: u64 = 9;
const SIGSTOP: u64 = 19;
pub(super) const SIGPIPE: u64 = 13;
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
const MINSIGSTKSZ: u64 = 2048;
const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// The kernel's `struct sigaction` on x86_64.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct SigAction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// `stack_t`.
#[derive(Clone, Copy)]
#[repr(C)]
struct SignalStack {
    sp: u64,
    flags: u32,
    _pad: u32,
    size: u64,
}

struct SignalState {
    actions: [SigAction; SIGNAL_COUNT],
    mask: u64,
    /// Raised while blocked; acted on when unblocked.
    pending: u64,
    alt_stack: SignalStack,
}

static STATE: Mutex<SignalState> = Mutex::new(SignalState {
    actions: [SigAction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    }; SIGNAL_COUNT],
    mask: 0,
    pending: 0,
    alt_stack: SignalStack {
        sp: 0,
        flags: SS_DISABLE,
        _pad: 0,
        size: 0,
    },
});

fn valid_signal(signal: u64) -> bool {
    (1..=SIGNAL_COUNT as u64).contains(&signal)
}

pub fn rt_sigaction(signal: u64, new: u64, old: u64, sigset_size: u64) -> SysResult {
    if sigset_size != 8 || !valid_signal(signal) {
        return Err(EINVAL);
    }
    let index = signal as usize - 1;
    let requested: Option<SigAction> = if new != 0 {
        let [handler, flags, restorer, mask] = user::read::<[u64; 4]>(new)?;
        Some(SigAction {
            handler,
            flags,
            restorer,
            mask,
        })
    } else {
        None
    };
    if requested.is_some() && (signal == SIGKILL || signal == SIGSTOP) {
        return Err(EINVAL);
    }
    let mut state = STATE.lock();
    if old != 0 {
        user::write(old, state.actions[index])?;
    }
    if let Some(mut action) = requested {
        action.mask &= !UNBLOCKABLE;
        state.actions[index] = action;
    }
    Ok(0)
}

pub fn rt_sigprocmask(how: u64, set: u64, old: u64, sigset_size: u64) -> SysResult {
    if sigset_size != 8 {
        return Err(EINVAL);
    }
    let requested: Option<u64> = if set != 0 {
        Some(user::read(set)?)
    } else {
        None
    };
    let mut state = STATE.lock();
    let new_mask = match (requested, how) {
        (None, _) => state.mask,
        (Some(set), SIG_BLOCK) => state.mask | set,
        (Some(set), SIG_UNBLOCK) => state.mask & !set,
        (Some(set), SIG_SETMASK) => set,
        (Some(_), _) => return Err(EINVAL),
    } & !UNBLOCKABLE;
    if old != 0 {
        user::write(old, state.mask)?;
    }
    state.mask = new_mask;
    // Signals raised while blocked take effect once unblocked.
    let deliverable = state.pending & !state.mask;
    if deliverable != 0 {
        let signal = u64::from(deliverable.trailing_zeros()) + 1;
        state.pending &= !(1 << (signal - 1));
        drop(state);
        act(signal);
    }
    Ok(0)
}

pub fn sigaltstack(new: u64, old: u64) -> SysResult {
    let requested: Option<SignalStack> = if new != 0 {
        // stack_t is { void *ss_sp; int ss_flags; size_t ss_size; }.
        let [sp, flags, size] = user::read::<[u64; 3]>(new)?;
        Some(SignalStack {
            sp,
            flags: flags as u32,
            _pad: 0,
            size,
        })
    } else {
        None
    };
    let mut state = STATE.lock();
    if old != 0 {
        user::write(old, state.alt_stack)?;
    }
    if let Some(stack) = requested {
        if stack.flags & !(SS_DISABLE | SS_ONSTACK | (1 << 31)) != 0 {
            return Err(EINVAL);
        }
        if stack.flags & SS_DISABLE != 0 {
            state.alt_stack = SignalStack {
                sp: 0,
                flags: SS_DISABLE,
                _pad: 0,
                size: 0,
            };
        } else {
            if stack.size < MINSIGSTKSZ {
                return Err(ENOMEM);
            }
            state.alt_stack = SignalStack { flags: 0, ..stack };
        }
    }
    Ok(0)
}

fn signal_name(signal: u64) -> &'static str {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get(signal as usize - 1).copied().unwrap_or("SIGRT")
}

/// Whether a signal's default action leaves the process running.
fn ignored_by_default(signal: u64) -> bool {
    // SIGCHLD, SIGCONT, SIGURG, SIGWINCH; SIGSTOP-like stops are treated as
    // ignored because nothing could continue an isle.
    matches!(signal, 17 | 18 | 23 | 28 | 19 | 20 | 21 | 22)
}

/// The program sent itself `signal`.
pub(super) fn raise(signal: u64) -> SysResult {
    if signal == 0 {
        return Ok(0);
    }
    if !valid_signal(signal) {
        return Err(EINVAL);
    }
    let mut state = STATE.lock();
    let bit = 1 << (signal - 1);
    if state.mask & bit != 0 {
        state.pending |= bit;
        return Ok(0);
    }
    drop(state);
    act(signal);
    Ok(0)
}

/// Takes `signal`'s action now: nothing when it is ignored, else the end
/// of the isle (handlers can't run yet, so they count as the default).
fn act(signal: u64) {
    let action = STATE.lock().actions[signal as usize - 1];
    if action.handler == SIG_IGN || (action.handler == SIG_DFL && ignored_by_default(signal)) {
        return;
    }
    // A shell reports a SIGPIPE death silently; so does atoll.
    if signal != SIGPIPE || action.handler != SIG_DFL {
        let mut line = LineBuffer::<128>::new();
        let _ = write!(line, "atoll: program killed by {}", signal_name(signal));
        if action.handler != SIG_DFL {
            let _ = write!(
                line,
                " (its handler was not run: isles don't deliver signals yet)"
            );
        }
        let _ = writeln!(line);
        trace::log(line.as_bytes());
    }
    crate::exit_isle(128 + signal as u8)
}

fn is_self(pid: u64) -> bool {
    let pid = pid as i64 as i32;
    pid == 0 || pid as u32 == boot_info().identity.pid
}

pub fn kill(pid: u64, signal: u64) -> SysResult {
    if signal > SIGNAL_COUNT as u64 {
        return Err(EINVAL);
    }
    if !is_self(pid) {
        // The isle sees no other process (nor group) to signal.
        return Err(ESRCH);
    }
    raise(signal)
}

pub fn tkill(tid: u64, signal: u64) -> SysResult {
    if tid as u32 != boot_info().identity.pid {
        return Err(if (tid as i64 as i32) <= 0 {
            EINVAL
        } else {
            ESRCH
        });
    }
    raise(signal)
}

pub fn tgkill(tgid: u64, tid: u64, signal: u64) -> SysResult {
    if tgid as u32 != boot_info().identity.pid {
        return Err(if (tgid as i64 as i32) <= 0 {
            EINVAL
        } else {
            ESRCH
        });
    }
    tkill(tid, signal)
}
