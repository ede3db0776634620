//! signalfd(2): signals read from an fd.
//!
//! Signals are the kernel's, fds the host's, so a signalfd is both: the
//! kernel keeps its mask, and in the isle's fd table (the host's) it is an
//! eventfd that stands for its readiness, so poll, select and epoll see it
//! like any fd. The eventfd is readable exactly while it is "armed": the
//! kernel writes it when a signal of the mask becomes pending and drains it
//! when a read finds none left. read, close and dup of the fd go through
//! here; everything else is the eventfd's.

use core::sync::atomic::{AtomicUsize, Ordering};

use atoll_abi::linux::errno::{EAGAIN, EINVAL, EMFILE};
use atoll_abi::queue::Opcode;
use spin::Mutex;

use super::io::host_result;
use super::{SysResult, ERESTARTSYS};
use crate::arch::x86_64::user;
use crate::offload;
use crate::sched;
use crate::signals;
use crate::signals::state::{bit, Info, UNBLOCKABLE};

const SFD_CLOEXEC: u64 = 0o2000000;
const SFD_NONBLOCK: u64 = 0o4000;
const O_NONBLOCK: u64 = 0o4000;
/// `struct signalfd_siginfo`.
const SIGINFO_SIZE: usize = 128;
/// Signalfds an isle may have open at once.
const MAX_SIGNALFDS: usize = 32;

#[derive(Clone, Copy)]
struct SignalFd {
    fd: u64,
    mask: u64,
    /// Its eventfd was written since it was last drained.
    armed: bool,
}

static TABLE: Mutex<[Option<SignalFd>; MAX_SIGNALFDS]> = Mutex::new([None; MAX_SIGNALFDS]);
/// How many exist: reads and closes of other fds look no further than it.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// What arming writes into an eventfd.
static ONE: u64 = 1;

fn none_exist() -> bool {
    COUNT.load(Ordering::Relaxed) == 0
}

fn recount(table: &[Option<SignalFd>; MAX_SIGNALFDS]) {
    COUNT.store(table.iter().flatten().count(), Ordering::Relaxed);
}

/// Signals pending anywhere in the process (any thread's or shared).
fn pending_anywhere() -> u64 {
    let state = signals::lock();
    state
        .threads
        .iter()
        .fold(state.shared.set, |set, thread| set | thread.pending.set)
}

/// Writes 1 into the eventfd of `fd` (without waiting: callers may hold
/// locks).
fn arm(fd: u64) {
    let one = crate::mm::guest_physical(&raw const ONE as u64);
    offload::send(Opcode::Write, [fd, one, 8, 0, 0, 0]);
}

/// Empties the eventfd of `fd` (armed, so the read doesn't wait).
fn drain(fd: u64) {
    let mut counter = 0u64;
    let into = crate::mm::guest_physical(&raw mut counter as u64);
    offload::call(Opcode::Read, [fd, into, 8, 0, 0, 0]);
}

/// A signal became pending: arms every signalfd that waits for it.
pub fn signal_queued(signal: u32) {
    if none_exist() {
        return;
    }
    let mut table = TABLE.lock();
    for entry in table.iter_mut().flatten() {
        if entry.mask & bit(signal) != 0 && !entry.armed {
            entry.armed = true;
            arm(entry.fd);
        }
    }
}

/// Arms `fd`'s eventfd if a signal of its mask is pending, else drains it:
/// after a read or a new mask.
fn settle(fd: u64) {
    let pending = pending_anywhere();
    let change = {
        let mut table = TABLE.lock();
        let Some(entry) = table.iter_mut().flatten().find(|entry| entry.fd == fd) else {
            return;
        };
        let wanted = entry.mask & pending != 0;
        let change = (wanted != entry.armed).then_some(wanted);
        entry.armed = wanted;
        change
    };
    match change {
        Some(true) => arm(fd),
        Some(false) => {
            drain(fd);
            // A signal queued while it drained may have had its own arm
            // drained with it: arm again for it.
            if mask_of(fd).is_some_and(|mask| mask & pending_anywhere() != 0) {
                rearm(fd);
            }
        }
        None => {}
    }
}

fn rearm(fd: u64) {
    let mut table = TABLE.lock();
    if let Some(entry) = table.iter_mut().flatten().find(|entry| entry.fd == fd) {
        entry.armed = true;
        arm(fd);
    }
}

fn mask_of(fd: u64) -> Option<u64> {
    if none_exist() {
        return None;
    }
    TABLE
        .lock()
        .iter()
        .flatten()
        .find(|entry| entry.fd == fd)
        .map(|entry| entry.mask)
}

pub fn signalfd(fd: u64, mask: u64, size: u64) -> SysResult {
    signalfd4(fd, mask, size, 0)
}

pub fn signalfd4(fd: u64, mask: u64, size: u64, flags: u64) -> SysResult {
    if size != 8 || flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let mask = user::read::<u64>(mask)? & !UNBLOCKABLE;
    if fd as i32 != -1 {
        let mut table = TABLE.lock();
        let entry = table
            .iter_mut()
            .flatten()
            .find(|entry| entry.fd == fd)
            .ok_or(EINVAL)?;
        entry.mask = mask;
        drop(table);
        settle(fd);
        return Ok(fd);
    }
    let fd = host_result(offload::call(Opcode::EventFd, [0, flags, 0, 0, 0, 0]))?;
    let mut table = TABLE.lock();
    let Some(free) = table.iter_mut().find(|entry| entry.is_none()) else {
        drop(table);
        offload::call(Opcode::Close, [fd, 0, 0, 0, 0, 0]);
        return Err(EMFILE);
    };
    *free = Some(SignalFd {
        fd,
        mask,
        armed: false,
    });
    recount(&table);
    drop(table);
    settle(fd);
    Ok(fd)
}

/// `struct signalfd_siginfo` for `info`.
fn signalfd_siginfo(info: &Info) -> [u8; SIGINFO_SIZE] {
    let mut bytes = [0u8; SIGINFO_SIZE];
    let mut put = |at: usize, value: &[u8]| bytes[at..at + value.len()].copy_from_slice(value);
    put(0, &info.signal.to_le_bytes());
    put(4, &info.errno.to_le_bytes());
    put(8, &info.code.to_le_bytes());
    put(12, &info.pid.to_le_bytes());
    put(16, &info.uid.to_le_bytes());
    put(24, &info.timer_id.to_le_bytes());
    put(32, &info.overrun.to_le_bytes());
    // What siginfo's union holds, where signalfd_siginfo keeps it: a
    // fault's address (kernel codes are positive), or a queued signal's or
    // timer's value.
    if info.code > 0 {
        put(72, &info.address_or_value.to_le_bytes());
    } else {
        put(44, &(info.address_or_value as u32).to_le_bytes());
        put(48, &info.address_or_value.to_le_bytes());
    }
    bytes
}

/// read(2) of `fd`, if it is a signalfd: as many pending signals of its
/// mask as `len` holds, the calling thread's first; none pending, it
/// waits (EAGAIN if O_NONBLOCK).
pub fn read(fd: u64, buffer: u64, len: u64) -> Option<SysResult> {
    let mask = mask_of(fd)?;
    Some(read_signals(fd, mask, buffer, len))
}

fn read_signals(fd: u64, mask: u64, buffer: u64, len: u64) -> SysResult {
    let room = (len / SIGINFO_SIZE as u64) as usize;
    if room == 0 {
        return Err(EINVAL);
    }
    super::io::check_buffer(buffer, (room * SIGINFO_SIZE) as u64)?;
    let me = sched::current();
    loop {
        let mut taken = 0;
        while taken < room {
            let info = {
                let mut state = signals::lock();
                let info = state.take_from(me, mask);
                state.threads[me].waiting_for = 0;
                signals::refresh_thread(&state, me);
                info
            };
            let Some(info) = info else {
                break;
            };
            user::write(
                buffer + (taken * SIGINFO_SIZE) as u64,
                signalfd_siginfo(&info),
            )?;
            taken += 1;
        }
        if taken > 0 {
            settle(fd);
            return Ok((taken * SIGINFO_SIZE) as u64);
        }
        settle(fd);
        let status = host_result(offload::call(
            Opcode::Fcntl,
            [fd, atoll_abi::linux::fcntl::F_GETFL, 0, 0, 0, 0],
        ))?;
        if status & O_NONBLOCK != 0 {
            return Err(EAGAIN);
        }
        // Wait as sigtimedwait does: a signal of the mask ends the wait,
        // any other one to act on interrupts the read.
        let interrupted = {
            let mut state = signals::lock();
            let thread = &state.threads[me];
            let other = (thread.pending.set | state.shared.set) & !thread.mask & !mask != 0;
            let ours = (thread.pending.set | state.shared.set) & mask != 0;
            if !other && !ours {
                state.threads[me].waiting_for = mask;
                signals::refresh_thread(&state, me);
            }
            other
        };
        if interrupted {
            return Err(ERESTARTSYS);
        }
        sched::block(sched::lock(), sched::Wait::Signal, 0);
    }
}

/// `fd` was closed.
pub fn closed(fd: u64) {
    closed_range(fd, fd);
}

/// `first..=last` were closed.
pub fn closed_range(first: u64, last: u64) {
    if none_exist() {
        return;
    }
    let mut table = TABLE.lock();
    for entry in table.iter_mut() {
        if entry.is_some_and(|entry| (first..=last).contains(&entry.fd)) {
            *entry = None;
        }
    }
    recount(&table);
}

/// `new` is now a copy of `old` (dup, dup2, dup3, F_DUPFD): a signalfd if
/// `old` is one, and no longer whatever `new` was.
pub fn duplicated(old: u64, new: u64) {
    if none_exist() || old == new {
        return;
    }
    let mut table = TABLE.lock();
    for entry in table.iter_mut() {
        if entry.is_some_and(|entry| entry.fd == new) {
            *entry = None;
        }
    }
    let copy = table
        .iter()
        .flatten()
        .find(|entry| entry.fd == old)
        .map(|entry| SignalFd { fd: new, ..*entry });
    if let (Some(copy), Some(free)) = (copy, table.iter_mut().find(|entry| entry.is_none())) {
        *free = Some(copy);
    }
    recount(&table);
}
