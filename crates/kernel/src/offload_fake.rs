//! The host tests' offload queue: every request is recorded for the test
//! to inspect, and answered at once with the result the test chose.

use std::cell::{Cell, RefCell};

use atoll_abi::queue::Opcode;

thread_local! {
    static REQUESTS: RefCell<Vec<(Opcode, [u64; 6])>> = const { RefCell::new(Vec::new()) };
    static RESULT: Cell<i64> = const { Cell::new(0) };
}

/// Takes the requests made so far on this thread, oldest first.
pub fn take_requests() -> Vec<(Opcode, [u64; 6])> {
    REQUESTS.take()
}

/// What the host answers from now on (0, or -errno to simulate a failure).
pub fn answer_with(result: i64) {
    RESULT.set(result);
}

pub fn call(op: Opcode, args: [u64; 6]) -> i64 {
    REQUESTS.with_borrow_mut(|requests| requests.push((op, args)));
    RESULT.get()
}

pub fn call_with_flags(op: Opcode, _flags: u32, args: [u64; 6]) -> i64 {
    call(op, args)
}

pub fn call_without_yielding(op: Opcode, args: [u64; 6]) -> i64 {
    call(op, args)
}

pub fn send(op: Opcode, args: [u64; 6]) {
    call(op, args);
}

/// Completions arrive with their requests, so none is ever pending.
pub fn poll_completions() {}

pub fn completions_pending() -> bool {
    false
}

/// Requests are answered as they are made: none waits to be interrupted.
pub fn interrupt_host_wait(_slot: usize) {}
