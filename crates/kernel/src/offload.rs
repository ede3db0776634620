//! Client side of the offload queue (see `atoll_abi::queue` for the protocol).
//!
//! A request goes into the submitting CPU's ring, tagged with the
//! submitter's context. Whoever runs on any CPU reaps completions and hands
//! each result to its submitter. The submitter polls for a short while;
//! then, if another thread wants the CPU, it blocks and gives it away, else
//! it parks the vCPU until the host completes the request.

use core::sync::atomic::{fence, AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use atoll_abi::layout::MAX_CPUS;
use atoll_abi::mmio;
use atoll_abi::queue::{slot, Opcode, QueuePair, Request, DEPTH, HOST_PARKED};

use crate::arch::x86_64::cpu;
use crate::boot_info;
use crate::sched::{self, Wait, CONTEXTS, MAX_THREADS};
use crate::time;

/// Poll this long before giving the CPU to another thread.
const SPIN_BEFORE_BLOCK_NS: u64 = 20_000;
/// Poll this long before parking the vCPU when no other thread wants it.
const SPIN_BEFORE_PARK_NS: u64 = 1_000_000;

static RESULT: [AtomicI64; CONTEXTS] = [const { AtomicI64::new(0) }; CONTEXTS];
static DONE: [AtomicBool; CONTEXTS] = [const { AtomicBool::new(false) }; CONTEXTS];
/// The CPU a context has parked while it waits for its completion (or
/// NO_CPU): whoever reaps that completion on another CPU must kick it.
static PARKED_ON: [AtomicUsize; CONTEXTS] = [const { AtomicUsize::new(NO_CPU) }; CONTEXTS];
const NO_CPU: usize = usize::MAX;

/// Where a context's request waiting on the host sits, while a signal may
/// interrupt it: `(cpu + 1) << 32 | ring position`; 0 when none (or once
/// the interrupt is sent).
static INTERRUPTIBLE_AT: [AtomicU64; CONTEXTS] = [const { AtomicU64::new(0) }; CONTEXTS];

/// One reaper per completion ring at a time.
static REAPING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn queue_of(cpu: usize) -> &'static QueuePair {
    cpu::queue_of(boot_info(), cpu)
}

/// Performs `op` on the host; returns its result (`>= 0` or `-errno`).
pub fn call(op: Opcode, args: [u64; 6]) -> i64 {
    call_with_flags(op, 0, args)
}

/// [`call`] with `Request::flags` set.
pub fn call_with_flags(op: Opcode, flags: u32, args: [u64; 6]) -> i64 {
    wait_for(op, flags, args, true)
}

/// [`call`] for a caller holding a lock another thread on this CPU may
/// want: it never gives the CPU away (it parks the vCPU instead).
pub fn call_without_yielding(op: Opcode, args: [u64; 6]) -> i64 {
    wait_for(op, 0, args, false)
}

/// [`call`] with the vCPU parked in the host until the result is in, doing
/// nothing else meanwhile: the host may act on a quiet kernel (fork copies
/// its memory, which then holds no lock taken halfway).
pub fn call_parked(op: Opcode, args: [u64; 6]) -> i64 {
    let cpu = sched::cpu_index();
    let me = sched::current_context();
    DONE[me].store(false, Ordering::Relaxed);
    submit(Request {
        opcode: op.as_u32(),
        flags: 0,
        tag: me as u64,
        args,
    });
    loop {
        poll_completions();
        if DONE[me].load(Ordering::Acquire) {
            return RESULT[me].load(Ordering::Relaxed);
        }
        let _parked = sched::park_busy_cpu();
        PARKED_ON[me].store(cpu, Ordering::SeqCst);
        if !DONE[me].load(Ordering::SeqCst) && !completions_pending() {
            cpu::set_park_deadline(0);
            cpu::doorbell(mmio::PARK, cpu as u64);
        }
        PARKED_ON[me].store(NO_CPU, Ordering::SeqCst);
    }
}

/// Tag of a request nobody waits for (above every context).
const UNWAITED: u64 = u64::MAX;

/// Sends `op` and returns at once; its result is dropped.
pub fn send(op: Opcode, args: [u64; 6]) {
    let _ = submit(Request {
        opcode: op.as_u32(),
        flags: 0,
        tag: UNWAITED,
        args,
    });
}

/// Puts `request` into this CPU's ring and wakes the host if it sleeps;
/// returns (cpu, ring position).
fn submit(request: Request) -> (usize, u32) {
    let cpu = sched::cpu_index();
    let queue = queue_of(cpu);
    // Only this CPU produces into its ring, so the tail is ours to move.
    let tail = queue.sq_tail.value.load(Ordering::Relaxed);
    while tail.wrapping_sub(queue.sq_head.value.load(Ordering::Acquire)) >= DEPTH {
        poll_completions();
        cpu::pause();
    }
    cpu::write_request(cpu, slot(tail), request);
    queue
        .sq_tail
        .value
        .store(tail.wrapping_add(1), Ordering::Release);
    fence(Ordering::SeqCst);
    if queue.host_state.value.load(Ordering::SeqCst) == HOST_PARKED {
        cpu::doorbell(mmio::WAKE_HOST, cpu as u64);
    }
    (cpu, tail)
}

/// A signal for thread `slot`: if it waits for the host, the host ends
/// that wait (EINTR, which the wait turns into a restart code). Once per
/// wait.
pub fn interrupt_host_wait(slot: usize) {
    let Some(at) = INTERRUPTIBLE_AT.get(slot) else {
        return;
    };
    let at = at.swap(0, Ordering::SeqCst);
    if at != 0 {
        let (cpu, position) = ((at >> 32) - 1, at & u64::from(u32::MAX));
        send(Opcode::Interrupt, [cpu, position, 0, 0, 0, 0]);
    }
}

fn wait_for(op: Opcode, flags: u32, args: [u64; 6], may_yield: bool) -> i64 {
    let cpu = sched::cpu_index();
    let me = sched::current_context();
    DONE[me].store(false, Ordering::Relaxed);
    let (ring, position) = submit(Request {
        opcode: op.as_u32(),
        flags,
        tag: me as u64,
        args,
    });
    // A program's call may be interrupted by a signal; the kernel's own,
    // which hold locks, may not.
    let interruptible = may_yield && me < MAX_THREADS;
    if interruptible {
        let at = ((ring as u64 + 1) << 32) | u64::from(position);
        INTERRUPTIBLE_AT[me].store(at, Ordering::SeqCst);
        // A signal that came while the request went in.
        if crate::signals::has_work(me) {
            interrupt_host_wait(me);
        }
    }

    let started = time::monotonic_ns();
    let mut spins: u32 = 0;
    loop {
        poll_completions();
        if DONE[me].load(Ordering::Acquire) {
            let result = RESULT[me].load(Ordering::Relaxed);
            let interrupted = interruptible && INTERRUPTIBLE_AT[me].swap(0, Ordering::SeqCst) == 0;
            // Ended for a signal: the way out decides, per the handler's
            // SA_RESTART, between EINTR and doing it again.
            return if interrupted && result == -atoll_abi::linux::errno::EINTR {
                -crate::linux::ERESTARTSYS
            } else {
                result
            };
        }
        cpu::pause();
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            continue;
        }
        // A signal from the host that ends the isle can't wait for a call
        // that may never complete (a read of a terminal, say); only a
        // caller holding no lock may send it (sending takes locks).
        if may_yield {
            crate::signals::take_from_host();
        }
        // A signal this thread took itself (from the host, say): no one
        // else asks the host to end the wait.
        if interruptible && crate::signals::has_work(me) {
            interrupt_host_wait(me);
        }
        let waited = time::monotonic_ns() - started;
        // Give the core away if a thread wants it now or a sleeper will.
        if may_yield
            && me < MAX_THREADS
            && waited > SPIN_BEFORE_BLOCK_NS
            && (sched::others_waiting() || sched::timers_pending())
        {
            let scheduler = sched::lock();
            if !DONE[me].load(Ordering::Acquire) {
                sched::block(scheduler, Wait::Io, 0);
            }
        } else if waited > SPIN_BEFORE_PARK_NS {
            let _parked = sched::park_busy_cpu();
            // Another CPU may reap our completion: it kicks us if it sees
            // this (both sides order their store before their load).
            PARKED_ON[me].store(cpu, Ordering::SeqCst);
            if !DONE[me].load(Ordering::SeqCst)
                && !completions_pending()
                && !sched::others_waiting()
            {
                cpu::set_park_deadline(0);
                cpu::doorbell(mmio::PARK, cpu as u64);
            }
            PARKED_ON[me].store(NO_CPU, Ordering::SeqCst);
        }
    }
}

/// Reaps every CPU's completions and hands the results to their submitters.
pub fn poll_completions() {
    for (cpu, reaping) in REAPING.iter().enumerate().take(sched::cpu_count()) {
        let queue = queue_of(cpu);
        let head = queue.cq_head.value.load(Ordering::Relaxed);
        if queue.cq_tail.value.load(Ordering::Acquire) == head {
            continue;
        }
        if reaping.swap(true, Ordering::Acquire) {
            continue;
        }
        let mut head = queue.cq_head.value.load(Ordering::Relaxed);
        let tail = queue.cq_tail.value.load(Ordering::Acquire);
        while head != tail {
            let completion = cpu::read_completion(cpu, slot(head));
            head = head.wrapping_add(1);
            let tag = completion.tag as usize;
            if tag >= CONTEXTS {
                continue;
            }
            RESULT[tag].store(completion.result, Ordering::Relaxed);
            DONE[tag].store(true, Ordering::SeqCst);
            let parked = PARKED_ON[tag].load(Ordering::SeqCst);
            if parked != NO_CPU && parked != sched::cpu_index() {
                cpu::doorbell(mmio::KICK, parked as u64);
            }
            if tag < MAX_THREADS {
                let scheduler = sched::lock();
                let blocked_on_io = scheduler.threads[tag].state == sched::State::Blocked
                    && scheduler.threads[tag].wait == Wait::Io;
                if blocked_on_io {
                    sched::wake_and_kick(scheduler, tag, 0);
                }
            }
        }
        queue.cq_head.value.store(head, Ordering::Release);
        reaping.store(false, Ordering::Release);
    }
}

/// In a forked child: no request is in flight (the monitor cleared the
/// rings; the parent's requests are the parent's).
pub fn reset_after_fork() {
    for context in 0..CONTEXTS {
        DONE[context].store(false, Ordering::Relaxed);
        PARKED_ON[context].store(NO_CPU, Ordering::Relaxed);
        INTERRUPTIBLE_AT[context].store(0, Ordering::Relaxed);
    }
    for reaping in &REAPING {
        reaping.store(false, Ordering::Relaxed);
    }
}

/// Whether any completion waits to be reaped.
pub fn completions_pending() -> bool {
    (0..sched::cpu_count()).any(|cpu| {
        let queue = queue_of(cpu);
        queue.cq_tail.value.load(Ordering::Acquire) != queue.cq_head.value.load(Ordering::Relaxed)
    })
}
