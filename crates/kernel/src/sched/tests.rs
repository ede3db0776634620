//! The run queue and wakeups, driven directly (no context switches).

use super::*;
use atoll_abi::linux::errno::ETIMEDOUT;

/// A scheduler whose first `count` slots hold runnable threads, none queued.
fn scheduler(count: usize) -> Box<Scheduler> {
    let mut sched = Box::new(Scheduler::EMPTY);
    for (slot, thread) in sched.threads.iter_mut().take(count).enumerate() {
        *thread = Thread {
            tid: 100 + slot as u32,
            state: State::Runnable,
            ..FREE_THREAD
        };
    }
    sched
}

fn block_on(sched: &mut Scheduler, slot: usize, wait: Wait, deadline: u64) {
    let thread = &mut sched.threads[slot];
    thread.state = State::Blocked;
    thread.wait = wait;
    thread.deadline = deadline;
}

#[test]
fn the_run_queue_is_first_in_first_out_and_round_robin() {
    let mut sched = scheduler(3);
    for slot in 0..3 {
        sched.enqueue(slot);
    }
    let mut order = Vec::new();
    // Each picked thread is preempted and queued again, enough times for
    // the ring to wrap around its end.
    for _ in 0..MAX_THREADS + 7 {
        let slot = sched.pick(0).unwrap();
        order.push(slot);
        sched.enqueue(slot);
    }
    let expected: Vec<usize> = (0..MAX_THREADS + 7).map(|turn| turn % 3).collect();
    assert_eq!(order, expected);
    assert_eq!(sched.queue_len, 3);
}

#[test]
fn pick_passes_over_threads_pinned_to_other_cpus_keeping_their_place() {
    let mut sched = scheduler(4);
    sched.threads[1].affinity = 1 << 1;
    sched.threads[2].affinity = 1 << 1;
    for slot in [1, 2, 3] {
        sched.enqueue(slot);
    }
    assert_eq!(sched.pick(0), Some(3));
    sched.enqueue(0);
    // The threads passed over are still first in line for CPU 1, in order.
    assert_eq!(sched.pick(1), Some(1));
    assert_eq!(sched.pick(1), Some(2));
    assert_eq!(sched.pick(1), Some(0), "an unpinned thread runs anywhere");
    assert_eq!(sched.pick(0), None);
}

#[test]
fn wake_makes_only_blocked_threads_runnable() {
    let mut sched = scheduler(2);
    block_on(&mut sched, 0, Wait::Sleep, 500);
    assert!(sched.wake(0, 7));
    let woken = sched.threads[0];
    assert_eq!(woken.state, State::Runnable);
    assert_eq!(woken.wait, Wait::None);
    assert_eq!(woken.deadline, 0);
    assert_eq!(woken.wake_result, 7);
    assert_eq!(sched.pick(0), Some(0));

    assert!(!sched.wake(0, 8), "already runnable");
    assert!(!sched.wake(1, 8), "never blocked");
    assert_eq!(sched.pick(0), None, "nothing was queued twice");
}

#[test]
fn expired_waits_time_out_and_the_next_deadline_is_reported() {
    let mut sched = scheduler(4);
    let futex = Wait::Futex {
        key: 0x1000,
        bitset: u32::MAX,
    };
    block_on(&mut sched, 0, Wait::Sleep, 100);
    block_on(&mut sched, 1, futex, 150);
    block_on(&mut sched, 2, futex, 300);
    block_on(&mut sched, 3, futex, 0);
    assert_eq!(sched.wake_expired(200), 300);
    assert_eq!(sched.threads[0].wake_result, 0, "a sleep just ends");
    assert_eq!(sched.threads[1].wake_result, -ETIMEDOUT);
    assert_eq!(sched.threads[2].state, State::Blocked);
    assert_eq!(
        sched.threads[3].state,
        State::Blocked,
        "no deadline: waits on"
    );
    assert_eq!(sched.pick(0), Some(0));
    assert_eq!(sched.pick(0), Some(1));
    assert_eq!(sched.pick(0), None);
}
