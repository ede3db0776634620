//! Signal syscalls: dispositions, masks, the alternate stack, sending,
//! waiting. Delivery itself is in `crate::signals`.

use atoll_abi::linux::errno::{EAGAIN, EINTR, EINVAL, EPERM, ESRCH};

use super::time::read_timespec;
use super::{SysResult, ERESTARTNOHAND};
use crate::arch::x86_64::{cpu, user};
use crate::signals::state::{
    valid, Action, AltStack, Info, SIGKILL, SIGSTOP, SI_TKILL, SI_USER, UNBLOCKABLE,
};
use crate::signals::{self, Target};
use crate::{boot_info, sched, time};

pub(super) use crate::signals::state::SIGPIPE;

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
const SIGSET_SIZE: u64 = 8;

pub fn rt_sigaction(signal: u64, new: u64, old: u64, sigset_size: u64) -> SysResult {
    if sigset_size != SIGSET_SIZE || !valid(signal) {
        return Err(EINVAL);
    }
    let signal = signal as u32;
    let requested = if new != 0 {
        let [handler, flags, restorer, mask] = user::read::<[u64; 4]>(new)?;
        Some(Action {
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
    let mut state = signals::lock();
    if old != 0 {
        let action = state.action(signal);
        user::write(
            old,
            [action.handler, action.flags, action.restorer, action.mask],
        )?;
    }
    if let Some(action) = requested {
        state.set_action(signal, action);
        signals::refresh_all(&state);
        signals::publish_fault_handlers(&state);
    }
    Ok(0)
}

pub fn rt_sigprocmask(how: u64, set: u64, old: u64, sigset_size: u64) -> SysResult {
    if sigset_size != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let requested: Option<u64> = if set != 0 {
        Some(user::read(set)?)
    } else {
        None
    };
    let me = sched::current();
    let mut state = signals::lock();
    let mask = state.threads[me].mask;
    let new_mask = match (requested, how) {
        (None, _) => mask,
        (Some(set), SIG_BLOCK) => mask | set,
        (Some(set), SIG_UNBLOCK) => mask & !set,
        (Some(set), SIG_SETMASK) => set,
        (Some(_), _) => return Err(EINVAL),
    } & !UNBLOCKABLE;
    if old != 0 {
        user::write(old, mask)?;
    }
    state.threads[me].mask = new_mask;
    // Signals it unblocks are delivered on this call's way out.
    signals::refresh_thread(&state, me);
    Ok(0)
}

pub fn rt_sigpending(set: u64, sigset_size: u64) -> SysResult {
    if sigset_size > SIGSET_SIZE {
        return Err(EINVAL);
    }
    let me = sched::current();
    let pending = {
        let state = signals::lock();
        let thread = &state.threads[me];
        (thread.pending.set | state.shared.set) & thread.mask
    };
    user::write(set, pending)?;
    Ok(0)
}

pub fn sigaltstack(new: u64, old: u64) -> SysResult {
    let requested: Option<AltStack> = if new != 0 {
        // stack_t is { void *ss_sp; int ss_flags; size_t ss_size; }.
        let [sp, flags, size] = user::read::<[u64; 3]>(new)?;
        Some(AltStack {
            sp,
            flags: flags as u32,
            size,
        })
    } else {
        None
    };
    let me = sched::current();
    let sp = cpu::user_stack_pointer();
    let mut state = signals::lock();
    let current = state.threads[me].alt_stack;
    if old != 0 {
        user::write(
            old,
            [
                current.sp,
                u64::from(current.reported_flags(sp)),
                current.size,
            ],
        )?;
    }
    if let Some(stack) = requested {
        if current.contains(sp) {
            return Err(EPERM);
        }
        state.threads[me].alt_stack = signals::linux_alt_stack(stack)?;
    }
    Ok(0)
}

/// The details a signal sent by this program carries.
fn sent_by_us(signal: u32, code: i32) -> Info {
    let identity = boot_info().identity;
    Info {
        signal,
        code,
        pid: identity.pid,
        uid: identity.uid,
        ..Info::default()
    }
}

/// Sends `signal` (0: only checks) as `kill`/`tgkill` do.
fn send(target: Target, signal: u64, code: i32) -> SysResult {
    if signal == 0 {
        return Ok(0);
    }
    if !valid(signal) {
        return Err(EINVAL);
    }
    signals::send(target, sent_by_us(signal as u32, code));
    Ok(0)
}

/// The program sent itself `signal` (SIGPIPE from a write, for instance).
pub(super) fn raise(signal: u64) -> SysResult {
    send(Target::Thread(sched::current()), signal, SI_USER)
}

fn is_self(pid: u64) -> bool {
    let pid = pid as i64 as i32;
    pid == 0 || pid == -1 || pid as u32 == boot_info().identity.pid
}

pub fn kill(pid: u64, signal: u64) -> SysResult {
    if signal > 64 {
        return Err(EINVAL);
    }
    let pid = pid as i64 as i32;
    if pid as u32 == boot_info().identity.pid {
        return send(Target::Process, signal, SI_USER);
    }
    // Another process of the isle's (a child), a group one of them leads,
    // or (-1) every other process of the isle: the host sends it, each
    // monitor passes it on (this one's too).
    let sent = super::io::host_result(crate::offload::call(
        atoll_abi::queue::Opcode::Kill,
        [pid as i64 as u64, signal, 0, 0, 0, 0],
    ));
    match sent {
        // The group atoll was started in holds processes not the isle's:
        // only this one is signalled.
        Err(ESRCH) if pid == 0 => send(Target::Process, signal, SI_USER),
        sent => sent.map(|_| 0),
    }
}

/// The thread slot of `tid`, checked as tkill/tgkill check it.
fn thread_of(tid: u64) -> Result<usize, i64> {
    if (tid as i64 as i32) <= 0 {
        return Err(EINVAL);
    }
    sched::lock().thread_by_tid(tid as u32).ok_or(ESRCH)
}

pub fn tkill(tid: u64, signal: u64) -> SysResult {
    let slot = thread_of(tid)?;
    if signal > 64 {
        return Err(EINVAL);
    }
    send(Target::Thread(slot), signal, SI_TKILL)
}

pub fn tgkill(tgid: u64, tid: u64, signal: u64) -> SysResult {
    if (tgid as i64 as i32) <= 0 {
        return Err(EINVAL);
    }
    if tgid as u32 != boot_info().identity.pid {
        return Err(ESRCH);
    }
    tkill(tid, signal)
}

/// rt_sigqueueinfo / rt_tgsigqueueinfo: a signal with a value. A program
/// may only claim SI_QUEUE-like (negative) codes, as on Linux.
pub fn rt_sigqueueinfo(target: Target, signal: u64, info: u64) -> SysResult {
    if !valid(signal) {
        return Err(EINVAL);
    }
    let [_signo_errno, code, _pid_uid, value] = user::read::<[u64; 4]>(info)?;
    let code = code as u32 as i32;
    if code >= 0 || code == SI_TKILL {
        return Err(EPERM);
    }
    let mut details = sent_by_us(signal as u32, code);
    details.address_or_value = value;
    signals::send(target, details);
    Ok(0)
}

pub fn rt_sigqueueinfo_process(pid: u64, signal: u64, info: u64) -> SysResult {
    if !is_self(pid) {
        return Err(ESRCH);
    }
    rt_sigqueueinfo(Target::Process, signal, info)
}

pub fn rt_tgsigqueueinfo(tgid: u64, tid: u64, signal: u64, info: u64) -> SysResult {
    if tgid as u32 != boot_info().identity.pid {
        return Err(ESRCH);
    }
    rt_sigqueueinfo(Target::Thread(thread_of(tid)?), signal, info)
}

/// Thread `me`'s mask is `mask` for a call's duration; the one it had is
/// kept for after (a handler's return, or the call's end).
fn set_temporary_mask(me: usize, mask: u64) {
    let mut state = signals::lock();
    let thread = &mut state.threads[me];
    if thread.saved_mask.is_none() {
        thread.saved_mask = Some(thread.mask);
    }
    thread.mask = mask & !UNBLOCKABLE;
    signals::refresh_thread(&state, me);
}

/// Runs `call` with the thread's mask replaced by the one at `mask`
/// (ppoll's, pselect6's, epoll_pwait's): a signal that mask lets through ends the call
/// (at once if one is already pending) and its handler runs with it, the
/// mask from before restored after, as sigsuspend's. No mask: as is.
pub(super) fn with_temporary_mask(
    mask: u64,
    sigset_size: u64,
    call: impl FnOnce() -> SysResult,
) -> SysResult {
    if mask == 0 {
        return call();
    }
    if sigset_size != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let mask: u64 = user::read(mask)?;
    let me = sched::current();
    set_temporary_mask(me, mask);
    let result = match signals::has_work(me) {
        true => Err(EINTR),
        false => call(),
    };
    // No signal to deliver on the way out: the mask is the old one again.
    if !signals::has_work(me) {
        let mut state = signals::lock();
        let thread = &mut state.threads[me];
        if let Some(old) = thread.saved_mask.take() {
            thread.mask = old;
        }
        signals::refresh_thread(&state, me);
    }
    result
}

/// Waits until a signal is to be acted on; its handler's frame then gets
/// the mask from before the call. Restarted when the signal was ignored.
fn wait_for_signal(temporary_mask: Option<u64>) -> SysResult {
    let me = sched::current();
    if let Some(mask) = temporary_mask {
        set_temporary_mask(me, mask);
    }
    while !signals::has_work(me) {
        sched::block(sched::lock(), sched::Wait::Signal, 0);
    }
    Err(ERESTARTNOHAND)
}

pub fn pause() -> SysResult {
    wait_for_signal(None)
}

pub fn rt_sigsuspend(mask: u64, sigset_size: u64) -> SysResult {
    if sigset_size != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let mask: u64 = user::read(mask)?;
    wait_for_signal(Some(mask))
}

pub fn rt_sigtimedwait(set: u64, info: u64, timeout: u64, sigset_size: u64) -> SysResult {
    if sigset_size != SIGSET_SIZE {
        return Err(EINVAL);
    }
    let wanted = user::read::<u64>(set)? & !UNBLOCKABLE;
    let deadline = if timeout != 0 {
        Some(time::monotonic_ns().saturating_add(read_timespec(timeout)?))
    } else {
        None
    };
    let me = sched::current();
    loop {
        let taken = {
            let mut state = signals::lock();
            let taken = state.take_from(me, wanted);
            state.threads[me].waiting_for = if taken.is_some() { 0 } else { wanted };
            signals::refresh_thread(&state, me);
            taken
        };
        if let Some(taken) = taken {
            if info != 0 {
                user::write(info, crate::signals::frame::siginfo(&taken))?;
            }
            return Ok(u64::from(taken.signal));
        }
        let now = time::monotonic_ns();
        let interrupted = {
            let state = signals::lock();
            let thread = &state.threads[me];
            (thread.pending.set | state.shared.set) & !thread.mask & !wanted != 0
        };
        let timed_out = deadline.is_some_and(|deadline| now >= deadline);
        if interrupted || timed_out {
            let mut state = signals::lock();
            state.threads[me].waiting_for = 0;
            signals::refresh_thread(&state, me);
            return Err(if interrupted { EINTR } else { EAGAIN });
        }
        sched::block(sched::lock(), sched::Wait::Signal, deadline.unwrap_or(0));
    }
}
