//! futex(2): argument decoding; the wait queues are in `sched::futex`.
//! A shared futex (no FUTEX_PRIVATE_FLAG) in memory the host shows from a
//! file, which other processes may map, is the host's own: it waits and
//! wakes there, keyed on the shared page as Linux keys it.

use atoll_abi::linux::errno::{EINTR, EINVAL, ENOSYS, ETIMEDOUT};
use atoll_abi::queue::{shared_futex, Opcode};

use super::time::read_timespec;
use super::{SysResult, ERESTARTSYS, ERESTART_RESTARTBLOCK};
use crate::arch::x86_64::user;
use crate::sched::futex as queues;
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

fn check_word(address: u64) -> Result<(), i64> {
    if !address.is_multiple_of(4) {
        return Err(EINVAL);
    }
    user::read::<u32>(address).map(|_| ())
}

/// A count argument: Linux takes it as a signed int, negative means none.
fn count(value: u64) -> usize {
    (value as i32).max(0) as usize
}

fn result(value: i64) -> SysResult {
    if value < 0 {
        Err(-value)
    } else {
        Ok(value as u64)
    }
}

/// A wait a signal interrupted is restarted as Linux restarts it: an
/// untimed one under SA_RESTART (or when no handler ran), a timed one only
/// when no handler ran.
fn restartable(result: i64, deadline: u64) -> i64 {
    if result != -EINTR {
        result
    } else if deadline == 0 {
        -ERESTARTSYS
    } else {
        -ERESTART_RESTARTBLOCK
    }
}

/// FUTEX_WAIT_BITSET's absolute timeout as a deadline on the monotonic
/// clock (0: none).
fn bitset_deadline(op: u64, timeout: u64) -> Result<u64, i64> {
    if timeout == 0 {
        return Ok(0);
    }
    let absolute = read_timespec(timeout)?;
    let now = if op & FUTEX_CLOCK_REALTIME != 0 {
        time::realtime_ns()
    } else {
        time::monotonic_ns()
    };
    Ok(time::monotonic_ns()
        .saturating_add(absolute.saturating_sub(now))
        .max(1))
}

/// A shared futex the host waits on or wakes (see the module's note):
/// FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE, FUTEX_WAKE_BITSET. The
/// requeue and wake-op calls, which pshared mutexes and condition
/// variables no longer make, are ENOSYS there.
fn host_futex(uaddr: u64, op: u64, value: u64, timeout: u64, value3: u64) -> Option<SysResult> {
    let command = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let outcome = (|| {
        check_word(uaddr)?;
        let bitset = match command {
            FUTEX_WAIT | FUTEX_WAKE => u64::from(u32::MAX),
            FUTEX_WAIT_BITSET | FUTEX_WAKE_BITSET if value3 as u32 != 0 => value3 & 0xffff_ffff,
            FUTEX_WAIT_BITSET | FUTEX_WAKE_BITSET => return Err(EINVAL),
            _ => return Err(ENOSYS),
        };
        if matches!(command, FUTEX_WAKE | FUTEX_WAKE_BITSET) {
            let args = [uaddr, shared_futex::WAKE, count(value) as u64, 0, bitset, 0];
            return result(offload::call(Opcode::SharedFutex, args));
        }
        let deadline = match command {
            FUTEX_WAIT if timeout != 0 => {
                time::monotonic_ns().saturating_add(read_timespec(timeout)?)
            }
            FUTEX_WAIT => 0,
            _ => bitset_deadline(op, timeout)?,
        };
        let left = match deadline {
            0 => 0,
            deadline => match deadline.checked_sub(time::monotonic_ns()) {
                Some(left) if left > 0 => left,
                _ => return Err(ETIMEDOUT),
            },
        };
        let args = [
            uaddr,
            shared_futex::WAIT,
            value & 0xffff_ffff,
            left,
            bitset,
            0,
        ];
        result(restartable(
            offload::call(Opcode::SharedFutex, args),
            deadline,
        ))
    })();
    Some(outcome)
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
    if op & FUTEX_PRIVATE_FLAG == 0 && super::memory::shared_with_processes(uaddr) {
        return host_futex(uaddr, op, value, timeout, value3);
    }
    let outcome = (|| match command {
        FUTEX_WAIT => {
            check_word(uaddr)?;
            let deadline = if timeout == 0 {
                0
            } else {
                time::monotonic_ns().saturating_add(read_timespec(timeout)?)
            };
            result(restartable(
                queues::wait(uaddr, value as u32, u32::MAX, deadline),
                deadline,
            ))
        }
        FUTEX_WAIT_BITSET => {
            check_word(uaddr)?;
            if value3 as u32 == 0 {
                return Err(EINVAL);
            }
            let deadline = bitset_deadline(op, timeout)?;
            result(restartable(
                queues::wait(uaddr, value as u32, value3 as u32, deadline),
                deadline,
            ))
        }
        FUTEX_WAKE => {
            check_word(uaddr)?;
            Ok(queues::wake(uaddr, u32::MAX, count(value)) as u64)
        }
        FUTEX_WAKE_BITSET => {
            check_word(uaddr)?;
            if value3 as u32 == 0 {
                return Err(EINVAL);
            }
            Ok(queues::wake(uaddr, value3 as u32, count(value)) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            check_word(uaddr)?;
            check_word(uaddr2)?;
            let expected = (command == FUTEX_CMP_REQUEUE).then_some(value3 as u32);
            // The requeue count travels in the timeout argument.
            queues::requeue(uaddr, count(value), uaddr2, count(timeout), expected).map(|n| n as u64)
        }
        FUTEX_WAKE_OP => {
            check_word(uaddr)?;
            check_word(uaddr2)?;
            queues::wake_op(uaddr, count(value), uaddr2, count(timeout), value3 as u32)
                .map(|n| n as u64)
        }
        _ => Err(ENOSYS),
    })();
    match outcome {
        // Priority-inheritance futexes are not served.
        Err(ENOSYS) => None,
        other => Some(other),
    }
}
