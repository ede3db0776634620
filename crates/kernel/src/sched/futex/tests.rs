//! Futex queue bookkeeping on a scheduler driven directly.

use super::super::{Thread, FREE_THREAD};
use super::*;

const KEY: u64 = 0x1000;
const TARGET: u64 = 0x2000;

/// A scheduler whose thread n waits as `waits[n]` says: (key, bitset,
/// wait_seq), a lower wait_seq having waited longer.
fn waiting(waits: &[(u64, u32, u64)]) -> Box<Scheduler> {
    let mut sched = Box::new(Scheduler::EMPTY);
    for (slot, &(key, bitset, seq)) in waits.iter().enumerate() {
        sched.threads[slot] = Thread {
            tid: 100 + slot as u32,
            state: State::Blocked,
            wait: Wait::Futex { key, bitset },
            wait_seq: seq,
            ..FREE_THREAD
        };
    }
    sched
}

fn runnable(sched: &Scheduler) -> Vec<usize> {
    (0..MAX_THREADS)
        .filter(|&slot| sched.threads[slot].state == State::Runnable)
        .collect()
}

#[test]
fn wake_takes_the_longest_waiting_matching_threads() {
    let mut sched = waiting(&[
        (KEY, u32::MAX, 5),
        (KEY, u32::MAX, 3),
        (KEY, 0b10, 1),
        (TARGET, u32::MAX, 0),
        (KEY, 0b01, 4),
    ]);
    assert_eq!(wake_locked(&mut sched, KEY, 0b01, 2), 2);
    // Slot 2 waited longest but its bitset doesn't meet 0b01; slot 3 waits elsewhere.
    assert_eq!(runnable(&sched), [1, 4]);
    assert_eq!(sched.pick(0), Some(1), "woken oldest first");
    assert_eq!(sched.pick(0), Some(4));
    assert_eq!(wake_locked(&mut sched, KEY, u32::MAX, 10), 2);
    assert_eq!(runnable(&sched), [0, 1, 2, 4]);
    assert_eq!(wake_locked(&mut sched, KEY, u32::MAX, 10), 0, "none left");
}

#[test]
fn requeue_wakes_some_and_moves_others_keeping_their_bitsets() {
    let mut sched = waiting(&[
        (KEY, u32::MAX, 1),
        (KEY, 0b100, 2),
        (KEY, u32::MAX, 3),
        (KEY, u32::MAX, 4),
        (TARGET, u32::MAX, 0),
    ]);
    assert_eq!(requeue_locked(&mut sched, KEY, 1, TARGET, 2), (1, 2));
    assert_eq!(runnable(&sched), [0]);
    assert_eq!(
        sched.threads[1].wait,
        Wait::Futex {
            key: TARGET,
            bitset: 0b100
        }
    );
    assert_eq!(
        sched.threads[2].wait,
        Wait::Futex {
            key: TARGET,
            bitset: u32::MAX
        }
    );
    assert_eq!(
        sched.threads[3].wait,
        Wait::Futex {
            key: KEY,
            bitset: u32::MAX
        },
        "past the requeue count"
    );
    // The moved threads now wake with the target's waiters, oldest first.
    assert_eq!(wake_locked(&mut sched, TARGET, u32::MAX, 2), 2);
    assert_eq!(runnable(&sched), [0, 1, 4]);
}
