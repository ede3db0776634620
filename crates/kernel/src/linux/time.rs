//! Clocks and sleeping, served in the guest from the TSC.

use atoll_abi::linux::errno::{EFAULT, EINVAL};

use super::SysResult;
use crate::arch::x86_64::user;
use crate::{sched, time};

pub(super) const CLOCK_REALTIME: u64 = 0;
pub(super) const CLOCK_MONOTONIC: u64 = 1;
pub(super) const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
pub(super) const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
pub(super) const CLOCK_MONOTONIC_RAW: u64 = 4;
pub(super) const CLOCK_REALTIME_COARSE: u64 = 5;
pub(super) const CLOCK_MONOTONIC_COARSE: u64 = 6;
pub(super) const CLOCK_BOOTTIME: u64 = 7;
pub(super) const TIMER_ABSTIME: u64 = 1;
pub(super) const NS_PER_SEC: u64 = 1_000_000_000;

fn now(clock: u64) -> Result<u64, i64> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Ok(time::realtime_ns()),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            Ok(time::monotonic_ns())
        }
        // The program has had its core to itself since boot.
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => Ok(time::boottime_ns()),
        _ => Err(EINVAL),
    }
}

/// ns as a `struct timespec`.
pub(super) fn ns_timespec(ns: u64) -> [u64; 2] {
    [ns / NS_PER_SEC, ns % NS_PER_SEC]
}

/// A `struct timespec` in ns; EINVAL if negative or not normalised.
pub(super) fn timespec_ns([seconds, nanoseconds]: [i64; 2]) -> Result<u64, i64> {
    if seconds < 0 || !(0..NS_PER_SEC as i64).contains(&nanoseconds) {
        return Err(EINVAL);
    }
    Ok((seconds as u64)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(nanoseconds as u64))
}

fn write_timespec(address: u64, ns: u64) -> Result<(), i64> {
    user::write(address, ns_timespec(ns))
}

pub(super) fn read_timespec(address: u64) -> Result<u64, i64> {
    timespec_ns(user::read(address)?)
}

pub fn clock_gettime(clock: u64, timespec: u64) -> SysResult {
    let ns = now(clock)?;
    write_timespec(timespec, ns)?;
    Ok(0)
}

pub fn clock_getres(clock: u64, timespec: u64) -> SysResult {
    now(clock)?;
    if timespec != 0 {
        write_timespec(timespec, 1)?;
    }
    Ok(0)
}

pub fn gettimeofday(timeval: u64, _timezone: u64) -> SysResult {
    if timeval != 0 {
        let ns = time::realtime_ns();
        user::write(timeval, [ns / NS_PER_SEC, ns % NS_PER_SEC / 1000])?;
    }
    Ok(0)
}

pub fn time(address: u64) -> SysResult {
    let seconds = time::realtime_ns() / NS_PER_SEC;
    if address != 0 {
        user::write(address, seconds).map_err(|_| EFAULT)?;
    }
    Ok(seconds)
}

pub fn nanosleep(request: u64, remaining: u64) -> SysResult {
    let duration = read_timespec(request)?;
    sleep_for(duration, remaining)
}

/// Sleeps `duration` ns; a signal to act on ends it early with EINTR and
/// the time left written to `remaining` (if given), as on Linux.
fn sleep_for(duration: u64, remaining: u64) -> SysResult {
    let deadline = time::monotonic_ns().saturating_add(duration);
    match sched::sleep_until(deadline) {
        Ok(()) => Ok(0),
        Err(errno) => {
            if remaining != 0 {
                write_timespec(remaining, deadline.saturating_sub(time::monotonic_ns()))?;
            }
            Err(errno)
        }
    }
}

pub fn clock_nanosleep(clock: u64, flags: u64, request: u64, remaining: u64) -> SysResult {
    let clock_now = now(clock)?;
    let requested = read_timespec(request)?;
    if flags & TIMER_ABSTIME != 0 {
        // An absolute sleep has nothing left to report.
        sleep_for(requested.saturating_sub(clock_now), 0)
    } else {
        sleep_for(requested, remaining)
    }
}
