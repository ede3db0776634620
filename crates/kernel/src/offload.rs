//! Client side of the offload queue (see `atoll_abi::queue` for the protocol).
//!
//! Requests are synchronous for now: post, then poll for the completion. The
//! host polls too, so the hot path has no VM exit. Only when the host server
//! has parked does the guest ring its doorbell, and only after polling for a
//! while does the guest park its own vCPU.

use core::sync::atomic::{fence, Ordering};

use atoll_abi::mmio;
use atoll_abi::queue::{slot, Request, HOST_PARKED};

use crate::arch::x86_64::cpu;
use crate::time;

/// How long to poll for a completion before parking the vCPU.
const SPIN_BEFORE_PARK_NS: u64 = 1_000_000;

/// Performs `opcode` on the host; returns its result (`>= 0` or `-errno`).
pub fn call(opcode: u32, args: [u64; 6]) -> i64 {
    call_with_flags(opcode, 0, args)
}

/// [`call`] with `Request::flags` set.
pub fn call_with_flags(opcode: u32, flags: u32, args: [u64; 6]) -> i64 {
    let area = cpu::cpu_area();
    let queue = &area.queue;
    let tail = queue.sq_tail.value.load(Ordering::Relaxed);
    cpu::write_request(
        slot(tail),
        Request {
            opcode,
            flags,
            tag: u64::from(tail),
            args,
        },
    );
    queue
        .sq_tail
        .value
        .store(tail.wrapping_add(1), Ordering::Release);
    fence(Ordering::SeqCst);
    if queue.host_state.value.load(Ordering::SeqCst) == HOST_PARKED {
        cpu::doorbell(mmio::WAKE_HOST, area.cpu_index);
    }

    let head = queue.cq_head.value.load(Ordering::Relaxed);
    let mut spin_started = 0;
    let mut spins: u32 = 0;
    while queue.cq_tail.value.load(Ordering::Acquire) == head {
        cpu::pause();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(256) {
            let now = time::monotonic_ns();
            if spin_started == 0 {
                spin_started = now;
            } else if now - spin_started > SPIN_BEFORE_PARK_NS {
                cpu::set_park_deadline(0);
                cpu::doorbell(mmio::PARK, area.cpu_index);
                spin_started = 0;
            }
        }
    }
    let completion = cpu::read_completion(slot(head));
    queue
        .cq_head
        .value
        .store(head.wrapping_add(1), Ordering::Release);
    completion.result
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns`, parking the vCPU on
/// the host for all but the last stretch.
pub fn sleep_until(deadline_ns: u64) {
    let area = cpu::cpu_area();
    loop {
        let now = time::monotonic_ns();
        if now >= deadline_ns {
            return;
        }
        if deadline_ns - now > SPIN_BEFORE_PARK_NS {
            cpu::set_park_deadline(deadline_ns);
            cpu::doorbell(mmio::PARK, area.cpu_index);
        } else {
            cpu::pause();
        }
    }
}
