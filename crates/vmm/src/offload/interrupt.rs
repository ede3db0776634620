//! Interrupting a request that waits on the host, for a signal to its
//! guest thread ([`Opcode::Interrupt`]).
//!
//! The kernel names the request by its place in a ring (queue, position),
//! which is never reused while the request is unanswered. Wherever the
//! request is, it ends with EINTR:
//! - not read from its ring yet: noted, and it ends as it is read;
//! - queued for a worker: taken off the queue and answered;
//! - running on a worker: the worker thread gets [`signal_number`], whose
//!   handler does nothing and is installed without SA_RESTART, so the
//!   blocking host call returns EINTR. The signal may land just before the
//!   worker enters that call, so it is sent again every millisecond until
//!   the request is answered; always under the lock the worker takes to
//!   say it has answered, so no later request of that worker is hit;
//! - served already, or inline: nothing to do.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use atoll_abi::linux::errno::EINTR;
use atoll_abi::queue::DEPTH;

use super::Offload;

/// A request's place: (queue, ring position).
pub(super) type Position = (usize, u32);

/// How often, and how many times, a worker is signalled until its
/// request is answered: a host call that ignores EINTR isn't waited for
/// forever.
const RESEND_EVERY: Duration = Duration::from_millis(1);
const MOST_SENDS: u32 = 2_000;

/// The signal that interrupts a worker's host call.
pub fn signal_number() -> i32 {
    vmm_sys_util::signal::SIGRTMIN() + 2
}

extern "C" fn interrupt_host_call(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the handler (no SA_RESTART: the host call returns EINTR).
pub(super) fn install_handler() {
    let _ = vmm_sys_util::signal::register_signal_handler(signal_number(), interrupt_host_call);
}

/// A request a worker is running.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Running {
    thread: u64,
    /// Tells this request from a later one at the same position.
    serial: u64,
}

#[derive(Default)]
pub(super) struct Interrupts {
    running: HashMap<Position, Running>,
    /// Interrupted before the server read them.
    early: HashSet<Position>,
    serials: u64,
}

impl Offload {
    /// Serves an Interrupt request for the request at `position`.
    pub(super) fn interrupt(self: &Arc<Self>, (queue, at): Position) {
        let Some(consumed) = self.consumed.get(queue) else {
            return;
        };
        let unread = at.wrapping_sub(consumed.load(Ordering::SeqCst)) < DEPTH;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = jobs.iter().position(|job| job.position == (queue, at)) {
            let job = jobs.remove(index);
            drop(jobs);
            if let Some(job) = job {
                self.complete(queue, job.request.tag, -EINTR);
            }
            return;
        }
        let mut interrupts = self.interrupts.lock().unwrap_or_else(|e| e.into_inner());
        drop(jobs);
        if let Some(&running) = interrupts.running.get(&(queue, at)) {
            drop(interrupts);
            self.signal_until_answered((queue, at), running);
        } else if unread {
            interrupts.early.insert((queue, at));
        }
    }

    /// Signals the worker running the request at `position` now and, from
    /// a thread of its own, again every [`RESEND_EVERY`] until it has
    /// answered; each time under the lock [`worker_finished`] takes.
    ///
    /// [`worker_finished`]: Self::worker_finished
    fn signal_until_answered(self: &Arc<Self>, position: Position, running: Running) {
        let signal_if_running = move |offload: &Offload| {
            let interrupts = offload.interrupts.lock().unwrap_or_else(|e| e.into_inner());
            let still = interrupts.running.get(&position) == Some(&running);
            if still {
                crate::host::signal_thread(running.thread, signal_number());
            }
            still
        };
        if !signal_if_running(self) {
            return;
        }
        let offload = Arc::clone(self);
        let resend = move || {
            for _ in 0..MOST_SENDS {
                std::thread::sleep(RESEND_EVERY);
                if !signal_if_running(&offload) {
                    return;
                }
            }
        };
        // Without a thread, the one signal sent has to do.
        let _ = std::thread::Builder::new()
            .name("atoll-interrupt".into())
            .spawn(resend);
    }

    /// Whether the request just read at `position` was interrupted before.
    pub(super) fn interrupted_early(&self, position: Position) -> bool {
        let mut interrupts = self.interrupts.lock().unwrap_or_else(|e| e.into_inner());
        !interrupts.early.is_empty() && interrupts.early.remove(&position)
    }

    /// A worker starts the request at `position` (the jobs lock held, so an
    /// interrupt finds it queued or running, never neither).
    pub(super) fn worker_started(&self, position: Position) {
        let mut interrupts = self.interrupts.lock().unwrap_or_else(|e| e.into_inner());
        interrupts.serials += 1;
        let running = Running {
            thread: crate::host::current_thread_id(),
            serial: interrupts.serials,
        };
        interrupts.running.insert(position, running);
    }

    /// The worker has answered the request at `position`: no signal meant
    /// for it is sent from now on.
    pub(super) fn worker_finished(&self, position: Position) {
        self.interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .remove(&position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::AbiPlainData;
    use crate::offload::pool::tests::{request, with_pipe};
    use atoll_abi::queue::{completion_offset, offset, Completion, Opcode};
    use vm_memory::{Bytes, GuestAddress};

    const QUEUE: u64 = 0x10000;

    fn completions(offload: &Offload) -> u32 {
        offload
            .ram
            .memory()
            .load(
                GuestAddress(QUEUE + offset::CQ_TAIL as u64),
                Ordering::SeqCst,
            )
            .unwrap()
    }

    fn completion(offload: &Offload, index: u32) -> (u64, i64) {
        let AbiPlainData(completion) = offload
            .ram
            .memory()
            .read_obj::<AbiPlainData<Completion>>(GuestAddress(
                QUEUE + completion_offset(index) as u64,
            ))
            .unwrap();
        (completion.tag, completion.result)
    }

    fn wait_for_completions(offload: &Offload, count: u32) {
        let started = std::time::Instant::now();
        while completions(offload) < count {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the interrupted read never ended"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_read_waiting_on_a_worker_ends_with_eintr() {
        let (offload, [read, _write]) = with_pipe(0);
        let mut waits = request(Opcode::Read, read, 8);
        waits.tag = 4;
        offload.consumed[0].store(8, Ordering::SeqCst);
        assert!(offload.hand_to_worker((0, 7), Opcode::Read, waits));
        // Interrupted whether the worker has begun the read yet or not.
        std::thread::sleep(Duration::from_millis(20));
        offload.interrupt((0, 7));
        wait_for_completions(&offload, 1);
        assert_eq!(completion(&offload, 0), (4, -EINTR));
        assert!(offload.interrupts.lock().unwrap().running.is_empty());
    }

    #[test]
    fn a_request_interrupted_before_it_is_read_ends_as_it_is_read() {
        let (offload, _) = with_pipe(0);
        // Position 3 is not read yet (the server is at 2): noted.
        offload.consumed[0].store(2, Ordering::SeqCst);
        offload.interrupt((0, 3));
        assert!(offload.interrupted_early((0, 3)));
        assert!(!offload.interrupted_early((0, 3)), "once");
        // One long answered is left alone.
        offload.interrupt((0, 1));
        assert!(!offload.interrupted_early((0, 1)));
        assert_eq!(completions(&offload), 0);
    }
}
