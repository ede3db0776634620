//! Timers that send signals: alarm(2) and setitimer(2)'s three, and POSIX
//! timers (timer_create(2)).
//!
//! No guest interrupts: every armed timer has a CLOCK_MONOTONIC deadline.
//! The earliest goes to the monitor with the scheduler's hints, so an idle
//! CPU parks only until then and the ticker interrupts a CPU running
//! program code once it has passed; whoever enters the kernel after that
//! fires what expired ([`fire_expired`]).
//!
//! CPU-time timers (ITIMER_VIRTUAL, ITIMER_PROF, and the CPU-time clocks)
//! run on the clock the CPU-time clocks read: the program has its cores
//! to itself, so it counts from boot.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::linux::errno::{EAGAIN, EINVAL};
use spin::Mutex;

use super::state::{Info, SI_KERNEL, SI_TIMER};
use super::Target;

/// POSIX timers a process may have (Linux allows thousands; programs use
/// a handful, glibc one per SIGEV_THREAD timer).
pub const MAX_TIMERS: usize = 64;

/// setitimer's timers, by its `which`: ITIMER_REAL (SIGALRM),
/// ITIMER_VIRTUAL (SIGVTALRM), ITIMER_PROF (SIGPROF).
pub const ITIMER_REAL: usize = 0;
pub const ITIMER_PROF: usize = 2;
const SIGALRM: u32 = 14;
const SIGVTALRM: u32 = 26;
const SIGPROF: u32 = 27;

/// Whom an expiry tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// SIGEV_NONE: nobody; the timer is only read.
    Nobody,
    /// SIGEV_SIGNAL: the process.
    Process,
    /// SIGEV_THREAD_ID: the thread with this tid (the process once it is
    /// gone).
    Thread(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timer {
    in_use: bool,
    notify: Notify,
    signal: u32,
    /// si_value (POSIX timers).
    value: u64,
    /// CLOCK_MONOTONIC ns of the next expiry (0: disarmed).
    expires: u64,
    /// Reload interval in ns (0: one-shot).
    interval: u64,
}

const UNUSED: Timer = Timer {
    in_use: false,
    notify: Notify::Nobody,
    signal: 0,
    value: 0,
    expires: 0,
    interval: 0,
};

/// A timer: one of setitimer's, or a POSIX timer by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Interval(usize),
    Posix(u32),
}

/// What an expiry sends: to `target`, unless a signal of the same POSIX
/// timer is still pending (then its overrun grows instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    pub notify: Notify,
    pub info: Info,
    pub posix: bool,
}

/// At most this many expiries are handled per look; the rest are found
/// by the next one (they are due already).
const FIRED_PER_LOOK: usize = 8;

pub struct Timers {
    interval: [Timer; 3],
    posix: [Timer; MAX_TIMERS],
}

impl Timers {
    pub const NEW: Timers = Timers {
        interval: [
            Timer {
                in_use: true,
                notify: Notify::Process,
                signal: SIGALRM,
                ..UNUSED
            },
            Timer {
                in_use: true,
                notify: Notify::Process,
                signal: SIGVTALRM,
                ..UNUSED
            },
            Timer {
                in_use: true,
                notify: Notify::Process,
                signal: SIGPROF,
                ..UNUSED
            },
        ],
        posix: [UNUSED; MAX_TIMERS],
    };

    fn timer(&mut self, which: Which) -> Result<&mut Timer, i64> {
        let timer = match which {
            Which::Interval(index) => self.interval.get_mut(index),
            Which::Posix(id) => self.posix.get_mut(id as usize),
        };
        timer.filter(|timer| timer.in_use).ok_or(EINVAL)
    }

    /// timer_create: the lowest free id, disarmed. `value` defaults to the
    /// id, as Linux's does when no sigevent is given.
    pub fn create(&mut self, notify: Notify, signal: u32, value: Option<u64>) -> Result<u32, i64> {
        let id = self
            .posix
            .iter()
            .position(|timer| !timer.in_use)
            .ok_or(EAGAIN)?;
        self.posix[id] = Timer {
            in_use: true,
            notify,
            signal,
            value: value.unwrap_or(id as u64),
            ..UNUSED
        };
        Ok(id as u32)
    }

    pub fn delete(&mut self, id: u32) -> Result<(), i64> {
        *self.timer(Which::Posix(id))? = UNUSED;
        Ok(())
    }

    /// Arms `which` to expire at `expires` (0 disarms) and then every
    /// `interval` ns; returns what it was set to, as [`get`](Self::get).
    pub fn set(
        &mut self,
        which: Which,
        expires: u64,
        interval: u64,
        now: u64,
    ) -> Result<(u64, u64), i64> {
        let old = self.get(which, now)?;
        let timer = self.timer(which)?;
        timer.expires = expires;
        timer.interval = if expires == 0 { 0 } else { interval };
        Ok(old)
    }

    /// The time left until `which` expires (0: disarmed; at least 1 ns
    /// while armed) and its interval.
    pub fn get(&mut self, which: Which, now: u64) -> Result<(u64, u64), i64> {
        let timer = self.timer(which)?;
        let left = match timer.expires {
            0 => 0,
            expires => expires.saturating_sub(now).max(1),
        };
        Ok((left, timer.interval))
    }

    /// The earliest expiry of an armed timer (0: none).
    pub fn next_expiry(&self) -> u64 {
        self.interval
            .iter()
            .chain(self.posix.iter())
            .filter(|timer| timer.in_use && timer.expires != 0)
            .map(|timer| timer.expires)
            .min()
            .unwrap_or(0)
    }

    /// Timers due at `now`: each reloads (or disarms), and says what it
    /// sends; expiries it missed are its overrun, as on Linux.
    pub fn expire(&mut self, now: u64) -> ([Option<Fired>; FIRED_PER_LOOK], usize) {
        let mut fired = [None; FIRED_PER_LOOK];
        let mut count = 0;
        let timers = self
            .interval
            .iter_mut()
            .enumerate()
            .map(|(index, timer)| (Which::Interval(index), timer))
            .chain(
                self.posix
                    .iter_mut()
                    .enumerate()
                    .map(|(id, timer)| (Which::Posix(id as u32), timer)),
            );
        for (which, timer) in timers {
            if count == FIRED_PER_LOOK {
                break;
            }
            if !timer.in_use || timer.expires == 0 || timer.expires > now {
                continue;
            }
            let missed = match timer.interval {
                0 => {
                    timer.expires = 0;
                    0
                }
                interval => {
                    let missed = (now - timer.expires) / interval;
                    timer.expires = timer
                        .expires
                        .saturating_add(interval.saturating_mul(missed + 1));
                    missed
                }
            };
            if timer.notify == Notify::Nobody {
                continue;
            }
            let info = match which {
                Which::Interval(_) => Info {
                    signal: timer.signal,
                    code: SI_KERNEL,
                    ..Info::default()
                },
                Which::Posix(id) => Info {
                    signal: timer.signal,
                    code: SI_TIMER,
                    timer_id: id,
                    overrun: u32::try_from(missed).unwrap_or(i32::MAX as u32),
                    address_or_value: timer.value,
                    ..Info::default()
                },
            };
            fired[count] = Some(Fired {
                notify: timer.notify,
                info,
                posix: matches!(which, Which::Posix(_)),
            });
            count += 1;
        }
        (fired, count)
    }
}

static TIMERS: Mutex<Timers> = Mutex::new(Timers::NEW);
/// [`Timers::next_expiry`], for lock-free looks (0: none armed).
static NEXT_EXPIRY: AtomicU64 = AtomicU64::new(0);

/// A forked child has no timers (fork(2): neither interval nor POSIX ones).
pub fn reset_after_fork() {
    *TIMERS.lock() = Timers::NEW;
    NEXT_EXPIRY.store(0, Ordering::Relaxed);
}

/// The earliest armed timer's expiry, CLOCK_MONOTONIC ns (0: none).
pub fn next_expiry() -> u64 {
    NEXT_EXPIRY.load(Ordering::Relaxed)
}

/// Runs `change` on the timers, then republishes the earliest expiry.
pub fn with<T>(change: impl FnOnce(&mut Timers) -> T) -> T {
    let mut timers = TIMERS.lock();
    let result = change(&mut timers);
    NEXT_EXPIRY.store(timers.next_expiry(), Ordering::Relaxed);
    drop(timers);
    crate::sched::publish_hints();
    result
}

/// Sends what the timers due at `now` send. Cheap when none is: one load.
/// Takes the signal and scheduler locks, so the caller holds neither.
pub fn fire_expired(now: u64) {
    let next = next_expiry();
    if next == 0 || next > now {
        return;
    }
    let (fired, count) = with(|timers| timers.expire(now));
    for fired in fired.iter().take(count).flatten() {
        let target = match fired.notify {
            Notify::Thread(tid) => crate::sched::lock()
                .thread_by_tid(tid)
                .map_or(Target::Process, Target::Thread),
            _ => Target::Process,
        };
        // One signal per POSIX timer is pending at a time: a later expiry
        // counts as an overrun of the one still queued.
        let merged = fired.posix
            && super::lock().add_timer_overrun(fired.info.timer_id, fired.info.overrun + 1);
        if !merged {
            super::send(target, fired.info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_one_shot_fires_once_and_disarms() {
        let mut timers = Timers::NEW;
        timers
            .set(Which::Interval(ITIMER_REAL), 10 * MS, 0, 0)
            .unwrap();
        assert_eq!(timers.next_expiry(), 10 * MS);
        assert_eq!(timers.expire(9 * MS).1, 0);
        let (fired, count) = timers.expire(10 * MS);
        assert_eq!(count, 1);
        let fired = fired[0].unwrap();
        assert_eq!(fired.info.signal, SIGALRM);
        assert_eq!(fired.info.code, SI_KERNEL);
        assert_eq!(fired.notify, Notify::Process);
        assert_eq!(timers.next_expiry(), 0);
        assert_eq!(
            timers.get(Which::Interval(ITIMER_REAL), 11 * MS),
            Ok((0, 0))
        );
    }

    #[test]
    fn an_interval_timer_reloads_and_counts_what_it_missed() {
        let mut timers = Timers::NEW;
        let id = timers.create(Notify::Process, 34, Some(7)).unwrap();
        timers.set(Which::Posix(id), 10 * MS, 5 * MS, 0).unwrap();
        // Looked at late: 10, 15 and 20 ms passed; 25 is next.
        let (fired, count) = timers.expire(22 * MS);
        assert_eq!(count, 1);
        let info = fired[0].unwrap().info;
        assert_eq!(
            (
                info.code,
                info.timer_id,
                info.overrun,
                info.address_or_value
            ),
            (SI_TIMER, id, 2, 7)
        );
        assert_eq!(timers.next_expiry(), 25 * MS);
        assert_eq!(timers.get(Which::Posix(id), 22 * MS), Ok((3 * MS, 5 * MS)));
    }

    #[test]
    fn setting_returns_the_old_setting_and_zero_disarms() {
        let mut timers = Timers::NEW;
        let which = Which::Interval(ITIMER_PROF);
        assert_eq!(timers.set(which, 50 * MS, 20 * MS, 0), Ok((0, 0)));
        assert_eq!(
            timers.set(which, 0, 20 * MS, 10 * MS),
            Ok((40 * MS, 20 * MS))
        );
        assert_eq!(
            timers.get(which, 10 * MS),
            Ok((0, 0)),
            "disarmed, no interval"
        );
        // An armed timer whose time has come but not been fired yet still
        // reads as armed.
        timers.set(which, 5 * MS, 0, 0).unwrap();
        assert_eq!(timers.get(which, 6 * MS), Ok((1, 0)));
    }

    #[test]
    fn posix_timer_ids_are_the_lowest_free_and_bad_ids_are_einval() {
        let mut timers = Timers::NEW;
        assert_eq!(timers.create(Notify::Process, 14, None), Ok(0));
        assert_eq!(timers.create(Notify::Thread(5), 34, None), Ok(1));
        timers.delete(0).unwrap();
        assert_eq!(timers.delete(0), Err(EINVAL));
        assert_eq!(timers.get(Which::Posix(0), 0), Err(EINVAL));
        assert_eq!(timers.get(Which::Posix(MAX_TIMERS as u32), 0), Err(EINVAL));
        assert_eq!(timers.create(Notify::Nobody, 0, None), Ok(0));
        for _ in 2..MAX_TIMERS {
            timers.create(Notify::Process, 14, None).unwrap();
        }
        assert_eq!(timers.create(Notify::Process, 14, None), Err(EAGAIN));
    }

    #[test]
    fn a_sigev_none_timer_expires_without_a_signal() {
        let mut timers = Timers::NEW;
        let id = timers.create(Notify::Nobody, 0, None).unwrap();
        timers.set(Which::Posix(id), MS, MS, 0).unwrap();
        assert_eq!(timers.expire(MS).1, 0);
        assert_eq!(timers.get(Which::Posix(id), MS), Ok((MS, MS)));
    }

    #[test]
    fn the_default_value_is_the_timer_id() {
        let mut timers = Timers::NEW;
        timers.create(Notify::Process, 14, None).unwrap();
        let id = timers.create(Notify::Process, 14, None).unwrap();
        timers.set(Which::Posix(id), MS, 0, 0).unwrap();
        let (fired, _) = timers.expire(MS);
        assert_eq!(fired[0].unwrap().info.address_or_value, 1);
    }
}
