//! The signal bookkeeping itself, free of any machine: dispositions, the
//! per-thread masks and pending sets, the process's shared pending set,
//! and the choice of what to do next. Unit-tested on the host.

use super::timers::MAX_TIMERS;
use crate::sched::MAX_THREADS;

pub const SIGNAL_COUNT: usize = 64;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGPIPE: u32 = 13;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
pub const SIGSYS: u32 = 31;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SA_SIGINFO: u64 = 0x4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
pub const SS_AUTODISARM: u32 = 1 << 31;

/// si_code values (siginfo.h).
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TIMER: i32 = -2;
pub const SI_TKILL: i32 = -6;

/// KILL and STOP can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);
/// Raised by the instruction the thread runs: delivered before others.
const SYNCHRONOUS: u64 =
    bit(SIGSEGV) | bit(SIGBUS) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGFPE) | bit(SIGSYS);
/// The signals whose default action stops the process.
const STOPPING: u64 = bit(SIGSTOP) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU);

/// Instances a thread (or the process) keeps the details of while they
/// wait; beyond that a standard signal stays pending with its details lost.
const QUEUE: usize = 8;

pub const fn bit(signal: u32) -> u64 {
    1 << (signal - 1)
}

pub fn valid(signal: u64) -> bool {
    (1..=SIGNAL_COUNT as u64).contains(&signal)
}

/// The kernel's `struct sigaction` on x86_64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Action {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// What a signal does with no handler (signal(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    /// Terminate and dump core (the isle reports it as a termination).
    Core,
    Ignore,
    /// Stop the process (the host stops it, until a SIGCONT).
    Stop,
    /// Continue a stopped process: the host's SIGCONT did that already,
    /// so in the isle it is ignored.
    Continue,
}

pub fn default_action(signal: u32) -> DefaultAction {
    match signal {
        3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31 => DefaultAction::Core,
        17 | 23 | 28 => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        19..=22 => DefaultAction::Stop,
        _ => DefaultAction::Terminate,
    }
}

/// What a signal carries to its handler (the fields of siginfo_t atoll
/// fills in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub signal: u32,
    pub code: i32,
    pub errno: i32,
    pub pid: u32,
    pub uid: u32,
    /// si_addr for faults; si_value for queued signals and timers.
    pub address_or_value: u64,
    /// Timers: si_timerid and si_overrun.
    pub timer_id: u32,
    pub overrun: u32,
}

/// `stack_t`, as sigaltstack(2) takes and gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub flags: u32,
    pub size: u64,
}

impl AltStack {
    pub const DISABLED: AltStack = AltStack {
        sp: 0,
        flags: SS_DISABLE,
        size: 0,
    };

    /// Whether `sp` is on this stack (as Linux's on_sig_stack).
    pub fn contains(&self, sp: u64) -> bool {
        self.size != 0 && sp > self.sp && sp - self.sp <= self.size
    }

    /// ss_flags as sigaltstack(2) reports them for a thread at `sp`.
    pub fn reported_flags(&self, sp: u64) -> u32 {
        let autodisarm = self.flags & SS_AUTODISARM;
        if self.size == 0 {
            SS_DISABLE | autodisarm
        } else if self.contains(sp) {
            SS_ONSTACK | autodisarm
        } else {
            autodisarm
        }
    }
}

/// Signals waiting for delivery, with the details of up to QUEUE of them.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub set: u64,
    queue: [Info; QUEUE],
    len: usize,
}

impl Pending {
    pub const EMPTY: Pending = Pending {
        set: 0,
        queue: [Info {
            signal: 0,
            code: 0,
            errno: 0,
            pid: 0,
            uid: 0,
            address_or_value: 0,
            timer_id: 0,
            overrun: 0,
        }; QUEUE],
        len: 0,
    };

    /// Adds one instance: a standard signal already pending is merged into
    /// it, as on Linux; a real-time one queues while there is room.
    pub fn add(&mut self, info: Info) {
        let signal_bit = bit(info.signal);
        let real_time = info.signal >= 32;
        if self.set & signal_bit != 0 && !real_time {
            return;
        }
        self.set |= signal_bit;
        if self.len < QUEUE {
            self.queue[self.len] = info;
            self.len += 1;
        }
    }

    /// Takes the oldest instance of `signal` (which is pending).
    pub fn take(&mut self, signal: u32) -> Info {
        let found = self.queue[..self.len]
            .iter()
            .position(|info| info.signal == signal);
        let info = match found {
            Some(index) => {
                let info = self.queue[index];
                self.queue.copy_within(index + 1..self.len, index);
                self.len -= 1;
                info
            }
            None => Info {
                signal,
                code: SI_KERNEL,
                ..Info::default()
            },
        };
        let more = self.queue[..self.len].iter().any(|i| i.signal == signal);
        if !more {
            self.set &= !bit(signal);
        }
        info
    }

    /// Adds `count` to the overrun of POSIX timer `timer_id`'s queued
    /// signal; false when none is queued here.
    pub fn add_timer_overrun(&mut self, timer_id: u32, count: u32) -> bool {
        let queued = self.queue[..self.len]
            .iter_mut()
            .find(|info| info.code == SI_TIMER && info.timer_id == timer_id);
        match queued {
            Some(info) => {
                info.overrun = info.overrun.saturating_add(count).min(i32::MAX as u32);
                true
            }
            None => false,
        }
    }

    /// Forgets every instance of `signal` (it became ignored).
    pub fn discard(&mut self, signal: u32) {
        while self.set & bit(signal) != 0 {
            self.take(signal);
        }
    }
}

/// One thread's share of the signal state.
#[derive(Clone, Copy, Debug)]
pub struct ThreadSignals {
    pub mask: u64,
    pub pending: Pending,
    pub alt_stack: AltStack,
    /// The mask to restore once a handler returns, when a call (sigsuspend)
    /// replaced it only for its duration.
    pub saved_mask: Option<u64>,
    /// Signals sigtimedwait waits for, blocked or not.
    pub waiting_for: u64,
}

impl ThreadSignals {
    pub const NEW: ThreadSignals = ThreadSignals {
        mask: 0,
        pending: Pending::EMPTY,
        alt_stack: AltStack::DISABLED,
        saved_mask: None,
        waiting_for: 0,
    };
}

/// A signal to deliver to a handler now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub info: Info,
    pub action: Action,
    /// The mask the handler's return restores.
    pub mask_to_restore: u64,
    pub alt_stack: AltStack,
}

/// What taking the next signal comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Nothing,
    Handle(Delivery),
    /// Its default action ends the isle.
    Terminate(u32),
    /// Its default action stops the process.
    Stop(u32),
}

/// Where a signal is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Thread(usize),
    Process,
}

/// What sending a signal comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Ignored: nothing happens.
    Discarded,
    /// Pending; this thread should be woken to see it (if it waits).
    Queued(Option<usize>),
    /// Not blocked and its default action is fatal: the isle ends now.
    Terminate(u32),
}

pub struct Signals {
    pub actions: [Action; SIGNAL_COUNT],
    pub shared: Pending,
    pub threads: [ThreadSignals; MAX_THREADS],
    /// Per POSIX timer: the overrun its last delivered signal carried
    /// (timer_getoverrun).
    pub delivered_overrun: [u32; MAX_TIMERS],
}

impl Signals {
    pub const NEW: Signals = Signals {
        actions: [Action {
            handler: SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        }; SIGNAL_COUNT],
        shared: Pending::EMPTY,
        threads: [ThreadSignals::NEW; MAX_THREADS],
        delivered_overrun: [0; MAX_TIMERS],
    };

    pub fn action(&self, signal: u32) -> Action {
        self.actions[signal as usize - 1]
    }

    fn ignored(&self, signal: u32) -> bool {
        let action = self.action(signal);
        action.handler == SIG_IGN
            || (action.handler == SIG_DFL
                && matches!(
                    default_action(signal),
                    DefaultAction::Ignore | DefaultAction::Continue
                ))
    }

    /// Whether `slot` blocks or ignores `signal` (Linux's is_ignored, which
    /// decides whether a background process touching its terminal is sent
    /// SIGTTIN or SIGTTOU or just refused).
    pub fn blocks_or_ignores(&self, slot: usize, signal: u32) -> bool {
        self.threads[slot].mask & bit(signal) != 0 || self.action(signal).handler == SIG_IGN
    }

    /// A SIGCONT cancels the stops pending, a stop the SIGCONT pending, as
    /// Linux's prepare_signal does.
    fn cancel_opposite(&mut self, signal: u32) {
        let cancelled = if signal == SIGCONT {
            STOPPING
        } else if STOPPING & bit(signal) != 0 {
            bit(SIGCONT)
        } else {
            return;
        };
        let mut remaining = cancelled;
        while remaining != 0 {
            let pending = remaining.trailing_zeros() + 1;
            remaining &= remaining - 1;
            self.shared.discard(pending);
            for thread in self.threads.iter_mut() {
                thread.pending.discard(pending);
            }
        }
    }

    fn fatal_by_default(&self, signal: u32) -> bool {
        signal == SIGKILL
            || (self.action(signal).handler == SIG_DFL
                && matches!(
                    default_action(signal),
                    DefaultAction::Terminate | DefaultAction::Core
                ))
    }

    /// Whether `slot` would act on `signal` now: not blocked, or waited for.
    fn wants(&self, slot: usize, signal: u32) -> bool {
        let thread = &self.threads[slot];
        thread.mask & bit(signal) == 0 || thread.waiting_for & bit(signal) != 0
    }

    /// Sends `info` to `target`; `live` lists the threads that exist (for a
    /// process-wide signal, the first of them that doesn't block it gets it;
    /// `preferred`, the sender, goes first).
    pub fn send(
        &mut self,
        target: Target,
        info: Info,
        live: impl Iterator<Item = usize> + Clone,
        preferred: usize,
    ) -> Sent {
        let signal = info.signal;
        self.cancel_opposite(signal);
        let receiver = match target {
            Target::Thread(slot) => Some(slot),
            Target::Process => core::iter::once(preferred)
                .chain(live.clone())
                .find(|&slot| live.clone().any(|l| l == slot) && self.wants(slot, signal)),
        };
        // Blocked by the receiver's mask: a thread in sigwait for it still
        // blocks it (Linux's real_blocked), so the wait takes it, however
        // fatal or ignored its disposition.
        let blocked = match receiver {
            Some(slot) => self.threads[slot].mask & bit(signal) != 0,
            None => true,
        };
        if signal == SIGKILL || (!blocked && self.fatal_by_default(signal)) {
            return Sent::Terminate(signal);
        }
        if !blocked && self.ignored(signal) {
            return Sent::Discarded;
        }
        match target {
            Target::Thread(slot) => self.threads[slot].pending.add(info),
            Target::Process => self.shared.add(info),
        }
        Sent::Queued(receiver)
    }

    /// Whether `slot` has a signal to act on: unblocked, or waited for.
    pub fn has_work(&self, slot: usize) -> bool {
        let thread = &self.threads[slot];
        let pending = thread.pending.set | self.shared.set;
        pending & (!thread.mask | thread.waiting_for) != 0
    }

    /// Takes the next unblocked signal for `slot` and decides its fate:
    /// ignored ones are dropped on the way, a handler's mask and
    /// SA_RESETHAND applied.
    pub fn next(&mut self, slot: usize) -> Next {
        loop {
            let thread = &self.threads[slot];
            let unblocked = (thread.pending.set | self.shared.set) & !thread.mask;
            if unblocked == 0 {
                return Next::Nothing;
            }
            let choose = if unblocked & SYNCHRONOUS != 0 {
                unblocked & SYNCHRONOUS
            } else {
                unblocked
            };
            let signal = choose.trailing_zeros() + 1;
            let info = if self.threads[slot].pending.set & bit(signal) != 0 {
                self.threads[slot].pending.take(signal)
            } else {
                self.shared.take(signal)
            };
            self.note_delivery(&info);
            let action = self.action(signal);
            if self.ignored(signal) {
                continue;
            }
            if action.handler == SIG_DFL {
                if default_action(signal) == DefaultAction::Stop {
                    return Next::Stop(signal);
                }
                return Next::Terminate(signal);
            }
            let thread = &mut self.threads[slot];
            let mask_to_restore = thread.saved_mask.take().unwrap_or(thread.mask);
            let mut blocked = action.mask;
            if action.flags & SA_NODEFER == 0 {
                blocked |= bit(signal);
            }
            thread.mask = (thread.mask | blocked) & !UNBLOCKABLE;
            let alt_stack = thread.alt_stack;
            if action.flags & SA_RESETHAND != 0 {
                self.actions[signal as usize - 1] = Action {
                    handler: SIG_DFL,
                    flags: action.flags & !SA_SIGINFO,
                    ..action
                };
            }
            return Next::Handle(Delivery {
                info,
                action,
                mask_to_restore,
                alt_stack,
            });
        }
    }

    /// A fault of `slot`'s own instruction: its handler runs now, or, when
    /// it is blocked or has none, the isle ends (Linux's force_sig_fault).
    pub fn fault(&mut self, slot: usize, info: Info) -> Next {
        let signal = info.signal;
        let handler = self.action(signal).handler;
        if self.threads[slot].mask & bit(signal) != 0 || handler == SIG_DFL || handler == SIG_IGN {
            return Next::Terminate(signal);
        }
        self.threads[slot].pending.add(info);
        self.next(slot)
    }

    /// Whether a fault's signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE) has a
    /// handler: faults then go to the kernel rather than the monitor.
    pub fn fault_handled(&self) -> bool {
        [SIGSEGV, SIGBUS, SIGILL, SIGFPE]
            .iter()
            .any(|&signal| !matches!(self.action(signal).handler, SIG_DFL | SIG_IGN))
    }

    /// Takes a pending signal of `set` for `slot` (sigtimedwait, signalfd).
    pub fn take_from(&mut self, slot: usize, set: u64) -> Option<Info> {
        let thread = &mut self.threads[slot];
        let own = thread.pending.set & set;
        let shared = self.shared.set & set;
        let info = if own != 0 {
            thread.pending.take(own.trailing_zeros() + 1)
        } else if shared != 0 {
            self.shared.take(shared.trailing_zeros() + 1)
        } else {
            return None;
        };
        self.note_delivery(&info);
        Some(info)
    }

    /// A POSIX timer's signal leaves the pending sets: its overrun is
    /// what timer_getoverrun reports from now on.
    fn note_delivery(&mut self, info: &Info) {
        if info.code == SI_TIMER {
            if let Some(overrun) = self.delivered_overrun.get_mut(info.timer_id as usize) {
                *overrun = info.overrun;
            }
        }
    }

    /// Adds `count` to the overrun of POSIX timer `timer_id`'s signal if
    /// one is still pending anywhere; false when none is.
    pub fn add_timer_overrun(&mut self, timer_id: u32, count: u32) -> bool {
        self.shared.add_timer_overrun(timer_id, count)
            || self
                .threads
                .iter_mut()
                .any(|thread| thread.pending.add_timer_overrun(timer_id, count))
    }

    /// Installs `action` for `signal`; a signal that becomes ignored is
    /// dropped from every pending set, as POSIX requires.
    pub fn set_action(&mut self, signal: u32, mut action: Action) {
        action.mask &= !UNBLOCKABLE;
        self.actions[signal as usize - 1] = action;
        if self.ignored(signal) {
            self.shared.discard(signal);
            for thread in self.threads.iter_mut() {
                thread.pending.discard(signal);
            }
        }
    }

    /// A new thread: the creator's mask, nothing pending, no alternate
    /// stack (clone(2) with CLONE_VM clears it).
    pub fn thread_created(&mut self, slot: usize, creator: usize) {
        self.threads[slot] = ThreadSignals {
            mask: self.threads[creator].mask,
            ..ThreadSignals::NEW
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGINT: u32 = 2;
    const SIGUSR1: u32 = 10;
    const SIGUSR2: u32 = 12;
    const SIGCHLD: u32 = 17;
    const SIGRTMIN: u32 = 34;

    fn from(signal: u32, pid: u32) -> Info {
        Info {
            signal,
            code: SI_USER,
            pid,
            ..Info::default()
        }
    }

    fn handled(signals: &mut Signals, signal: u32, flags: u64, mask: u64) {
        signals.set_action(
            signal,
            Action {
                handler: 0x1000,
                flags,
                restorer: 0x2000,
                mask,
            },
        );
    }

    fn threads(slots: &[usize]) -> impl Iterator<Item = usize> + Clone + '_ {
        slots.iter().copied()
    }

    fn boxed() -> Box<Signals> {
        Box::new(Signals::NEW)
    }

    #[test]
    fn a_blocked_signal_waits_and_its_handler_blocks_it_while_it_runs() {
        let mut signals = boxed();
        handled(&mut signals, SIGUSR1, 0, bit(SIGUSR2));
        signals.threads[0].mask = bit(SIGUSR1);
        let sent = signals.send(Target::Thread(0), from(SIGUSR1, 7), threads(&[0]), 0);
        assert_eq!(sent, Sent::Queued(Some(0)));
        assert!(!signals.has_work(0));
        assert_eq!(signals.next(0), Next::Nothing);
        signals.threads[0].mask = 0;
        assert!(signals.has_work(0));
        let Next::Handle(delivery) = signals.next(0) else {
            panic!("the handler runs");
        };
        assert_eq!(delivery.info.pid, 7);
        assert_eq!(delivery.mask_to_restore, 0);
        assert_eq!(signals.threads[0].mask, bit(SIGUSR1) | bit(SIGUSR2));
        assert!(!signals.has_work(0));
    }

    #[test]
    fn sa_nodefer_and_sa_resethand_do_as_linux() {
        let mut signals = boxed();
        handled(&mut signals, SIGUSR1, SA_NODEFER | SA_RESETHAND, 0);
        signals.send(Target::Thread(0), from(SIGUSR1, 1), threads(&[0]), 0);
        assert!(matches!(signals.next(0), Next::Handle(_)));
        assert_eq!(signals.threads[0].mask, 0);
        assert_eq!(signals.action(SIGUSR1).handler, SIG_DFL);
        // The next one takes the default action: the isle ends.
        let sent = signals.send(Target::Thread(0), from(SIGUSR1, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Terminate(SIGUSR1));
    }

    #[test]
    fn stop_signals_stop_and_sigcont_cancels_them_as_linux() {
        let mut signals = boxed();
        // SIGCONT's default is no action in the isle: the host continued it.
        let sent = signals.send(Target::Process, from(SIGCONT, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Discarded);
        for stop in [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU] {
            let sent = signals.send(Target::Process, from(stop, 1), threads(&[0]), 0);
            assert_eq!(sent, Sent::Queued(Some(0)));
            assert_eq!(signals.next(0), Next::Stop(stop));
        }
        // A SIGCONT sent while a stop waits blocked cancels it.
        signals.threads[0].mask = bit(SIGTSTP) | bit(SIGCONT);
        signals.send(Target::Process, from(SIGTSTP, 1), threads(&[0]), 0);
        signals.send(Target::Process, from(SIGCONT, 1), threads(&[0]), 0);
        assert_eq!(signals.shared.set, bit(SIGCONT));
        // And a stop cancels a pending SIGCONT.
        signals.send(Target::Process, from(SIGTTIN, 1), threads(&[0]), 0);
        assert_eq!(signals.shared.set, bit(SIGTTIN));
        // A handler or SIG_IGN is the program's choice, as for any signal.
        assert!(signals.blocks_or_ignores(0, SIGTSTP));
        assert!(!signals.blocks_or_ignores(0, SIGTTIN));
        handled(&mut signals, SIGTTIN, 0, 0);
        assert!(matches!(signals.next(0), Next::Handle(_)));
        signals.set_action(
            SIGTTOU,
            Action {
                handler: SIG_IGN,
                ..Action::default()
            },
        );
        assert!(signals.blocks_or_ignores(0, SIGTTOU));
        let sent = signals.send(Target::Process, from(SIGTTOU, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Discarded);
    }

    #[test]
    fn ignored_signals_vanish_and_fatal_ones_end_the_isle_unless_blocked() {
        let mut signals = boxed();
        let sent = signals.send(Target::Thread(0), from(SIGCHLD, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Discarded);
        let sent = signals.send(Target::Thread(0), from(SIGINT, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Terminate(SIGINT));
        signals.threads[0].mask = bit(SIGINT);
        let sent = signals.send(Target::Thread(0), from(SIGINT, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Queued(Some(0)));
        // Ignoring it drops the pending one, as POSIX says.
        signals.set_action(
            SIGINT,
            Action {
                handler: SIG_IGN,
                ..Action::default()
            },
        );
        assert_eq!(signals.threads[0].pending.set, 0);
        // SIGKILL ends it even when "blocked".
        signals.threads[0].mask = u64::MAX;
        let sent = signals.send(Target::Thread(0), from(SIGKILL, 1), threads(&[0]), 0);
        assert_eq!(sent, Sent::Terminate(SIGKILL));
    }

    #[test]
    fn a_process_signal_goes_to_a_thread_that_does_not_block_it() {
        let mut signals = boxed();
        handled(&mut signals, SIGUSR1, 0, 0);
        signals.threads[0].mask = bit(SIGUSR1);
        signals.threads[3].mask = 0;
        let sent = signals.send(Target::Process, from(SIGUSR1, 1), threads(&[0, 3]), 0);
        assert_eq!(sent, Sent::Queued(Some(3)));
        assert!(!signals.has_work(0));
        assert!(signals.has_work(3));
        assert!(matches!(signals.next(3), Next::Handle(_)));
        assert_eq!(signals.shared.set, 0);
        // Blocked everywhere: it waits for whoever unblocks it first.
        signals.threads[3].mask = bit(SIGUSR1);
        let sent = signals.send(Target::Process, from(SIGUSR1, 1), threads(&[0, 3]), 0);
        assert_eq!(sent, Sent::Queued(None));
        signals.threads[0].mask = 0;
        assert!(signals.has_work(0));
    }

    #[test]
    fn standard_signals_merge_real_time_ones_queue_and_faults_go_first() {
        let mut signals = boxed();
        handled(&mut signals, SIGUSR1, 0, 0);
        handled(&mut signals, SIGRTMIN, 0, 0);
        handled(&mut signals, SIGSEGV, 0, 0);
        signals.threads[0].mask = u64::MAX;
        for pid in 1..=3 {
            signals.send(Target::Thread(0), from(SIGUSR1, pid), threads(&[0]), 0);
            signals.send(Target::Thread(0), from(SIGRTMIN, pid), threads(&[0]), 0);
        }
        signals.send(Target::Thread(0), from(SIGSEGV, 9), threads(&[0]), 0);
        signals.threads[0].mask = 0;
        let mut order = Vec::new();
        while let Next::Handle(delivery) = signals.next(0) {
            order.push((delivery.info.signal, delivery.info.pid));
            signals.threads[0].mask = 0;
        }
        assert_eq!(
            order,
            [
                (SIGSEGV, 9),
                (SIGUSR1, 1),
                (SIGRTMIN, 1),
                (SIGRTMIN, 2),
                (SIGRTMIN, 3)
            ]
        );
    }

    #[test]
    fn a_fault_runs_its_handler_unless_blocked_or_unhandled() {
        let mut signals = boxed();
        let fault = Info {
            signal: SIGSEGV,
            code: 1,
            address_or_value: 0x10,
            ..Info::default()
        };
        assert!(!signals.fault_handled());
        assert_eq!(signals.fault(0, fault), Next::Terminate(SIGSEGV));
        handled(&mut signals, SIGSEGV, 0, 0);
        assert!(signals.fault_handled());
        let Next::Handle(delivery) = signals.fault(0, fault) else {
            panic!("the handler runs");
        };
        assert_eq!(delivery.info.address_or_value, 0x10);
        // Faulting again inside the handler, SIGSEGV blocked: the end.
        assert_eq!(signals.fault(0, fault), Next::Terminate(SIGSEGV));
    }

    #[test]
    fn sigtimedwait_takes_blocked_signals_it_waits_for() {
        let mut signals = boxed();
        signals.threads[1].mask = bit(SIGUSR2);
        signals.send(Target::Process, from(SIGUSR2, 5), threads(&[1]), 1);
        assert!(!signals.has_work(1));
        signals.threads[1].waiting_for = bit(SIGUSR2);
        assert!(signals.has_work(1));
        let taken = signals.take_from(1, bit(SIGUSR2)).expect("pending");
        assert_eq!((taken.signal, taken.pid), (SIGUSR2, 5));
        assert_eq!(signals.take_from(1, bit(SIGUSR2)), None);
    }

    #[test]
    fn a_fatal_signal_a_thread_waits_for_in_sigwait_is_taken_not_fatal() {
        const SIGTIMER: u32 = 32;
        let mut signals = boxed();
        signals.threads[1].mask = !UNBLOCKABLE;
        signals.threads[1].waiting_for = bit(SIGTIMER);
        let sent = signals.send(Target::Thread(1), from(SIGTIMER, 5), threads(&[0, 1]), 0);
        assert_eq!(sent, Sent::Queued(Some(1)));
        assert_eq!(
            signals.take_from(1, bit(SIGTIMER)).map(|info| info.signal),
            Some(SIGTIMER)
        );
        // Sent to the process, it goes to that thread too, not to one that
        // would die of it.
        signals.threads[0].mask = bit(SIGTIMER);
        let sent = signals.send(Target::Process, from(SIGTIMER, 5), threads(&[0, 1]), 0);
        assert_eq!(sent, Sent::Queued(Some(1)));
    }

    #[test]
    fn a_new_thread_gets_its_creators_mask_and_nothing_else() {
        let mut signals = boxed();
        signals.threads[0].mask = bit(SIGINT);
        signals.threads[0].alt_stack = AltStack {
            sp: 0x1000,
            flags: 0,
            size: 0x4000,
        };
        signals.threads[5].pending.add(from(SIGUSR1, 1));
        signals.thread_created(5, 0);
        assert_eq!(signals.threads[5].mask, bit(SIGINT));
        assert_eq!(signals.threads[5].pending.set, 0);
        assert_eq!(signals.threads[5].alt_stack, AltStack::DISABLED);
    }

    #[test]
    fn the_alternate_stack_reports_where_the_thread_is() {
        let stack = AltStack {
            sp: 0x1000,
            flags: SS_AUTODISARM,
            size: 0x1000,
        };
        assert_eq!(stack.reported_flags(0x1800), SS_ONSTACK | SS_AUTODISARM);
        assert_eq!(stack.reported_flags(0x2001), SS_AUTODISARM);
        assert_eq!(AltStack::DISABLED.reported_flags(0x1800), SS_DISABLE);
    }
}
