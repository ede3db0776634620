//! Shared futexes: the kernel passes waits and wakes on memory the host
//! shows from a file (MAP_SHARED, anonymous or not) here, and they are the
//! host's futex calls on that memory. The host keys a shared futex on the
//! file's page, so a wake in one of the isle's processes reaches a waiter
//! in another, whose guest RAM maps the same page (a fork keeps it).
//!
//! A wait runs on a pool worker: a signal for its guest thread interrupts
//! it as any host wait (EINTR). The host only checks that the word lies in
//! guest RAM, aligned: a futex on any other memory of this process's own
//! is harmless, and the kernel sends only the shared ones.

use std::num::NonZeroU32;
use std::sync::atomic::AtomicU32;

use atoll_abi::linux::errno::{EFAULT, EINVAL};
use atoll_abi::queue::{shared_futex, Request};
use rustix::thread::futex;
use rustix::time::{clock_gettime, ClockId, Timespec};
use vm_memory::VolatileMemory;

use crate::guest::memory::GuestRam;

/// SHARED_FUTEX(address, kind, value, ns left, bitset).
pub fn handle(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [address, kind, value, left_ns, bitset, _] = request.args;
    if !address.is_multiple_of(4) {
        return Err(EINVAL);
    }
    let bitset = u32::try_from(bitset)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or(EINVAL)?;
    let value = u32::try_from(value).map_err(|_| EINVAL)?;
    let slice = ram.slice(address, 4)?;
    let word = slice.get_atomic_ref::<AtomicU32>(0).map_err(|_| EFAULT)?;
    let errno = |error: rustix::io::Errno| i64::from(error.raw_os_error());
    match kind {
        shared_futex::WAIT => {
            let deadline = (left_ns != 0).then(|| deadline_after(left_ns));
            futex::wait_bitset(
                word,
                futex::Flags::empty(),
                value,
                deadline.as_ref(),
                bitset,
            )
            .map(|()| 0)
            .map_err(errno)
        }
        shared_futex::WAKE => futex::wake_bitset(
            word,
            futex::Flags::empty(),
            value.min(i32::MAX as u32),
            bitset,
        )
        .map(|woken| woken as i64)
        .map_err(errno),
        _ => Err(EINVAL),
    }
}

/// The host's monotonic time `ns` from now (FUTEX_WAIT_BITSET's timeout
/// is absolute).
fn deadline_after(ns: u64) -> Timespec {
    let now = clock_gettime(ClockId::Monotonic);
    let total =
        (now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128).saturating_add(u128::from(ns));
    Timespec {
        tv_sec: (total / 1_000_000_000).min(i64::MAX as u128) as i64,
        tv_nsec: (total % 1_000_000_000) as i64,
    }
}
