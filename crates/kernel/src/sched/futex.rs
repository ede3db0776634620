//! Futex wait queues: blocked threads keyed by the futex's address (one
//! address space, so private and shared futexes are the same).

use atoll_abi::linux::errno::EAGAIN;

use super::{block, kick_idle_cpu, lock, Scheduler, State, Wait, MAX_THREADS};
use crate::arch::x86_64::user;

/// Waits on `uaddr` while it holds `expected`; 0 when woken, -errno otherwise.
pub fn wait(uaddr: u64, expected: u32, bitset: u32, deadline: u64) -> i64 {
    let sched = lock();
    match user::read::<u32>(uaddr) {
        Err(errno) => -errno,
        Ok(value) if value != expected => -EAGAIN,
        Ok(_) => block(sched, Wait::Futex { key: uaddr, bitset }, deadline),
    }
}

/// Wakes up to `count` waiters on `key` whose bitset meets `bitset`, oldest first.
fn wake_locked(sched: &mut Scheduler, key: u64, bitset: u32, count: usize) -> usize {
    let mut woken = 0;
    while woken < count {
        let oldest = (0..MAX_THREADS)
            .filter(|&slot| {
                let thread = &sched.threads[slot];
                thread.state == State::Blocked
                    && matches!(thread.wait, Wait::Futex { key: k, bitset: b } if k == key && b & bitset != 0)
            })
            .min_by_key(|&slot| sched.threads[slot].wait_seq);
        match oldest {
            Some(slot) => {
                sched.wake(slot, 0);
                woken += 1;
            }
            None => break,
        }
    }
    woken
}

/// FUTEX_WAKE(_BITSET): returns how many were woken.
pub fn wake(key: u64, bitset: u32, count: usize) -> usize {
    let mut sched = lock();
    let woken = wake_locked(&mut sched, key, bitset, count);
    drop(sched);
    if woken > 0 {
        kick_idle_cpu();
    }
    woken
}

/// FUTEX_(CMP_)REQUEUE: wakes `count` waiters on `key`, moves up to
/// `requeue` more to `target`. With `expected`, first checks `*key`.
pub fn requeue(
    key: u64,
    count: usize,
    target: u64,
    requeue: usize,
    expected: Option<u32>,
) -> Result<usize, i64> {
    let mut sched = lock();
    if let Some(expected) = expected {
        if user::read::<u32>(key)? != expected {
            return Err(EAGAIN);
        }
    }
    let (woken, moved) = requeue_locked(&mut sched, key, count, target, requeue);
    drop(sched);
    if woken > 0 {
        kick_idle_cpu();
    }
    Ok(woken + moved)
}

/// Wakes `count` waiters on `key` and moves up to `requeue` more to
/// `target`; returns (woken, moved).
fn requeue_locked(
    sched: &mut Scheduler,
    key: u64,
    count: usize,
    target: u64,
    requeue: usize,
) -> (usize, usize) {
    let woken = wake_locked(sched, key, u32::MAX, count);
    let mut moved = 0;
    for slot in 0..MAX_THREADS {
        if moved >= requeue {
            break;
        }
        let thread = &mut sched.threads[slot];
        if thread.state != State::Blocked {
            continue;
        }
        if let Wait::Futex { key: k, bitset } = thread.wait {
            if k == key {
                thread.wait = Wait::Futex {
                    key: target,
                    bitset,
                };
                moved += 1;
            }
        }
    }
    (woken, moved)
}

/// FUTEX_WAKE_OP: atomically updates `*target` per `encoded`, wakes `count`
/// on `key`, and `count2` on `target` if the old value passes the comparison.
pub fn wake_op(
    key: u64,
    count: usize,
    target: u64,
    count2: usize,
    encoded: u32,
) -> Result<usize, i64> {
    let mut sched = lock();
    let old: u32 = user::read(target)?;
    let op = (encoded >> 28) & 0xf;
    let compare = (encoded >> 24) & 0xf;
    let mut argument = (encoded >> 12) & 0xfff;
    let compare_argument = encoded & 0xfff;
    if op & 8 != 0 {
        argument = 1u32.checked_shl(argument).unwrap_or(0);
    }
    let new = match op & 7 {
        0 => argument,
        1 => old.wrapping_add(argument),
        2 => old | argument,
        3 => old & !argument,
        4 => old ^ argument,
        _ => return Err(atoll_abi::linux::errno::ENOSYS),
    };
    user::write(target, new)?;
    let mut woken = wake_locked(&mut sched, key, u32::MAX, count);
    let passes = match compare {
        0 => old == compare_argument,
        1 => old != compare_argument,
        2 => (old as i32) < compare_argument as i32,
        3 => (old as i32) <= compare_argument as i32,
        4 => (old as i32) > compare_argument as i32,
        5 => (old as i32) >= compare_argument as i32,
        _ => return Err(atoll_abi::linux::errno::ENOSYS),
    };
    if passes {
        woken += wake_locked(&mut sched, target, u32::MAX, count2);
    }
    drop(sched);
    if woken > 0 {
        kick_idle_cpu();
    }
    Ok(woken)
}

const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Linux walks at most this many robust-list entries.
const ROBUST_LIST_LIMIT: usize = 2048;

/// Marks the robust futexes a dying thread holds as owner-died and wakes a
/// waiter of each, as Linux does.
pub fn exit_robust_list(head: u64, tid: u32) {
    if head == 0 {
        return;
    }
    // struct robust_list_head { next, futex_offset, list_op_pending }
    let Ok([first, offset, pending]) = user::read::<[u64; 3]>(head) else {
        return;
    };
    let offset = offset as i64;
    let handle = |entry: u64| {
        let address = (entry as i64).wrapping_add(offset) as u64;
        if let Ok(value) = user::read::<u32>(address) {
            if value & FUTEX_TID_MASK == tid {
                let new = (value & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
                if user::write(address, new).is_ok() && value & FUTEX_WAITERS != 0 {
                    wake(address, u32::MAX, 1);
                }
            }
        }
    };
    let mut entry = first;
    for _ in 0..ROBUST_LIST_LIMIT {
        if entry == head || entry == 0 {
            break;
        }
        let Ok(next) = user::read::<u64>(entry) else {
            break;
        };
        if entry != pending {
            handle(entry);
        }
        entry = next;
    }
    if pending != 0 {
        handle(pending);
    }
}

#[cfg(test)]
mod tests;
