//! futex for a single-threaded isle: there is never another thread to wake
//! or to wake us, so waits either fail (value changed), time out, or last
//! forever, exactly as they would on Linux with one thread.

use atoll_abi::linux::errno::{EAGAIN, EINVAL, ENOSYS, ETIMEDOUT};

use super::time::read_timespec;
use super::SysResult;
use crate::arch::x86_64::user;
use crate::{offload, time};

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

fn read_word(address: u64) -> Result<u32, i64> {
    if !address.is_multiple_of(4) {
        return Err(EINVAL);
    }
    user::read(address)
}

/// Waits with nobody to wake us: until the deadline, or forever.
fn wait_alone(deadline_ns: Option<u64>) -> SysResult {
    offload::sleep_until(deadline_ns.unwrap_or(u64::MAX));
    Err(ETIMEDOUT)
}

/// FUTEX_WAKE_OP's operation on `*uaddr2`.
fn wake_op(uaddr2: u64, encoded: u64) -> SysResult {
    let old = read_word(uaddr2)?;
    let op = (encoded >> 28) & 0xf;
    let mut argument = ((encoded >> 12) & 0xfff) as u32;
    if op & 8 != 0 {
        argument = 1u32.checked_shl(argument).unwrap_or(0);
    }
    let new = match op & 7 {
        0 => argument,
        1 => old.wrapping_add(argument),
        2 => old | argument,
        3 => old & !argument,
        4 => old ^ argument,
        _ => return Err(ENOSYS),
    };
    user::write(uaddr2, new)?;
    Ok(0)
}

pub fn futex(
    uaddr: u64,
    op: u64,
    value: u64,
    timeout: u64,
    uaddr2: u64,
    value3: u64,
) -> Option<SysResult> {
    let command = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let result = match command {
        FUTEX_WAIT => (|| {
            if read_word(uaddr)? != value as u32 {
                return Err(EAGAIN);
            }
            let deadline = if timeout == 0 {
                None
            } else {
                Some(time::monotonic_ns().saturating_add(read_timespec(timeout)?))
            };
            wait_alone(deadline)
        })(),
        FUTEX_WAIT_BITSET => (|| {
            if value3 as u32 == 0 {
                return Err(EINVAL);
            }
            if read_word(uaddr)? != value as u32 {
                return Err(EAGAIN);
            }
            let deadline = if timeout == 0 {
                None
            } else {
                let absolute = read_timespec(timeout)?;
                let now = if op & FUTEX_CLOCK_REALTIME != 0 {
                    time::realtime_ns()
                } else {
                    time::monotonic_ns()
                };
                Some(time::monotonic_ns().saturating_add(absolute.saturating_sub(now)))
            };
            wait_alone(deadline)
        })(),
        FUTEX_WAKE => read_word(uaddr).map(|_| 0),
        FUTEX_WAKE_BITSET => {
            if value3 as u32 == 0 {
                Err(EINVAL)
            } else {
                read_word(uaddr).map(|_| 0)
            }
        }
        FUTEX_REQUEUE => read_word(uaddr).map(|_| 0),
        FUTEX_CMP_REQUEUE => read_word(uaddr).and_then(|word| {
            if word == value3 as u32 {
                Ok(0)
            } else {
                Err(EAGAIN)
            }
        }),
        FUTEX_WAKE_OP => read_word(uaddr).and_then(|_| wake_op(uaddr2, value3)),
        // Priority-inheritance and requeue-PI futexes come with threads.
        _ => return None,
    };
    Some(result)
}
