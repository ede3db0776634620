//! Timers that send signals: alarm, getitimer/setitimer, and the POSIX
//! timer_* calls (Linux's itimer.c and posix-timers.c). The timers
//! themselves are `signals::timers`.

use atoll_abi::linux::errno::{EINVAL, EOPNOTSUPP};

use super::time::{
    ns_timespec, timespec_ns, CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE,
    CLOCK_MONOTONIC_RAW, CLOCK_PROCESS_CPUTIME_ID, CLOCK_REALTIME, CLOCK_REALTIME_COARSE,
    CLOCK_THREAD_CPUTIME_ID, NS_PER_SEC, TIMER_ABSTIME,
};
use super::SysResult;
use crate::arch::x86_64::user;
use crate::signals::timers::{self, Notify, Which, ITIMER_PROF, ITIMER_REAL};
use crate::{sched, time};

const NS_PER_USEC: u64 = 1_000;
const CLOCK_REALTIME_ALARM: u64 = 8;
const CLOCK_BOOTTIME_ALARM: u64 = 9;
const CLOCK_TAI: u64 = 11;

const SIGEV_SIGNAL: u32 = 0;
const SIGEV_NONE: u32 = 1;
const SIGEV_THREAD_ID: u32 = 4;
const SIGALRM: u32 = 14;

/// A `struct timeval` in ns; EINVAL as Linux's timeval_valid.
fn timeval_ns([seconds, microseconds]: [i64; 2]) -> Result<u64, i64> {
    if seconds < 0 || !(0..1_000_000).contains(&microseconds) {
        return Err(EINVAL);
    }
    Ok((seconds as u64)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(microseconds as u64 * NS_PER_USEC))
}

/// ns as a `struct timeval`, rounded up to whole microseconds so that an
/// armed timer never reads as 0.
fn ns_timeval(ns: u64) -> [u64; 2] {
    let microseconds = ns.div_ceil(NS_PER_USEC);
    [microseconds / 1_000_000, microseconds % 1_000_000]
}

fn interval_timer(which: u64) -> Result<Which, i64> {
    match which as usize {
        index @ ITIMER_REAL..=ITIMER_PROF => Ok(Which::Interval(index)),
        _ => Err(EINVAL),
    }
}

/// A relative time from now as a CLOCK_MONOTONIC deadline (0 stays 0:
/// disarmed).
fn deadline_in(ns: u64) -> u64 {
    match ns {
        0 => 0,
        ns => time::monotonic_ns().saturating_add(ns),
    }
}

pub fn getitimer(which: u64, current: u64) -> SysResult {
    let which = interval_timer(which)?;
    let (left, interval) = timers::with(|timers| timers.get(which, time::monotonic_ns()))?;
    let [interval_s, interval_us] = ns_timeval(interval);
    let [left_s, left_us] = ns_timeval(left);
    user::write(current, [interval_s, interval_us, left_s, left_us])?;
    Ok(0)
}

/// setitimer(2); a NULL new value disarms, as Linux allows.
pub fn setitimer(which: u64, new: u64, old: u64) -> SysResult {
    let which = interval_timer(which)?;
    let (interval, value) = if new == 0 {
        (0, 0)
    } else {
        let [interval_s, interval_us, value_s, value_us]: [i64; 4] = user::read(new)?;
        (
            timeval_ns([interval_s, interval_us])?,
            timeval_ns([value_s, value_us])?,
        )
    };
    let (old_left, old_interval) = timers::with(|timers| {
        timers.set(which, deadline_in(value), interval, time::monotonic_ns())
    })?;
    if old != 0 {
        let [interval_s, interval_us] = ns_timeval(old_interval);
        let [left_s, left_us] = ns_timeval(old_left);
        user::write(old, [interval_s, interval_us, left_s, left_us])?;
    }
    Ok(0)
}

/// alarm(2): ITIMER_REAL in whole seconds; the seconds that were left,
/// rounded to the nearest (and never 0 for a timer still armed).
pub fn alarm(seconds: u64) -> SysResult {
    let seconds = u64::from(seconds as u32);
    let (left, _) = timers::with(|timers| {
        timers.set(
            Which::Interval(ITIMER_REAL),
            deadline_in(seconds * NS_PER_SEC),
            0,
            time::monotonic_ns(),
        )
    })?;
    let [whole, microseconds] = ns_timeval(left);
    Ok(
        if (whole == 0 && microseconds != 0) || microseconds >= 500_000 {
            whole + 1
        } else {
            whole
        },
    )
}

/// How a clock's time maps onto CLOCK_MONOTONIC for a timer: the offset
/// to add to an absolute time of the clock.
fn timer_clock(clock: u64) -> Result<i128, i64> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
            Ok(i128::from(time::monotonic_ns()) - i128::from(time::realtime_ns()))
        }
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => Ok(0),
        // The CPU-time clocks read time since boot (see time.rs).
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            Ok(i128::from(time::monotonic_ns()) - i128::from(time::boottime_ns()))
        }
        // Linux has no timers on these.
        CLOCK_MONOTONIC_RAW | CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE => Err(EOPNOTSUPP),
        _ => Err(EINVAL),
    }
}

/// The clock each POSIX timer was made on, for TIMER_ABSTIME.
static CLOCKS: spin::Mutex<[u64; timers::MAX_TIMERS]> = spin::Mutex::new([0; timers::MAX_TIMERS]);

pub fn timer_create(clock: u64, event: u64, id_out: u64) -> SysResult {
    timer_clock(clock)?;
    let (notify, signal, value) = if event == 0 {
        (Notify::Process, SIGALRM, None)
    } else {
        let [value, signal_and_notify, thread]: [u64; 3] = user::read(event)?;
        let signal = signal_and_notify as u32;
        let notify = match (signal_and_notify >> 32) as u32 {
            SIGEV_NONE => Notify::Nobody,
            SIGEV_SIGNAL => Notify::Process,
            SIGEV_THREAD_ID => {
                let tid = thread as u32;
                sched::lock().thread_by_tid(tid).ok_or(EINVAL)?;
                Notify::Thread(tid)
            }
            _ => return Err(EINVAL),
        };
        if notify != Notify::Nobody && !(1..=64).contains(&signal) {
            return Err(EINVAL);
        }
        (notify, signal, Some(value))
    };
    let id = timers::with(|timers| timers.create(notify, signal, value))?;
    // The id is the program's only once it is written.
    if let Err(error) = user::write(id_out, id) {
        timers::with(|timers| timers.delete(id))?;
        return Err(error);
    }
    CLOCKS.lock()[id as usize] = clock;
    Ok(0)
}

fn posix_timer(id: u64) -> Result<Which, i64> {
    u32::try_from(id).map(Which::Posix).map_err(|_| EINVAL)
}

fn write_itimerspec(address: u64, (left, interval): (u64, u64)) -> Result<(), i64> {
    let [interval_s, interval_ns] = ns_timespec(interval);
    let [left_s, left_ns] = ns_timespec(left);
    user::write(address, [interval_s, interval_ns, left_s, left_ns])
}

pub fn timer_settime(id: u64, flags: u64, new: u64, old: u64) -> SysResult {
    let which = posix_timer(id)?;
    let [interval_s, interval_ns, value_s, value_ns]: [i64; 4] = user::read(new)?;
    let interval = timespec_ns([interval_s, interval_ns])?;
    let value = timespec_ns([value_s, value_ns])?;
    let now = time::monotonic_ns();
    let expires = if value == 0 {
        0
    } else if flags & TIMER_ABSTIME != 0 {
        let clock = CLOCKS.lock().get(id as usize).copied().ok_or(EINVAL)?;
        let monotonic = i128::from(value) + timer_clock(clock)?;
        // A time already past expires at once.
        u64::try_from(monotonic).unwrap_or(0).clamp(1, u64::MAX)
    } else {
        now.saturating_add(value)
    };
    let previous = timers::with(|timers| timers.set(which, expires, interval, now))?;
    if old != 0 {
        write_itimerspec(old, previous)?;
    }
    Ok(0)
}

pub fn timer_gettime(id: u64, current: u64) -> SysResult {
    let which = posix_timer(id)?;
    let setting = timers::with(|timers| timers.get(which, time::monotonic_ns()))?;
    write_itimerspec(current, setting)?;
    Ok(0)
}

pub fn timer_getoverrun(id: u64) -> SysResult {
    let which = posix_timer(id)?;
    timers::with(|timers| timers.get(which, 0))?;
    let overrun = crate::signals::lock().delivered_overrun[id as usize];
    Ok(u64::from(overrun))
}

pub fn timer_delete(id: u64) -> SysResult {
    let id = u32::try_from(id).map_err(|_| EINVAL)?;
    timers::with(|timers| timers.delete(id))?;
    crate::signals::lock().delivered_overrun[id as usize] = 0;
    Ok(0)
}
