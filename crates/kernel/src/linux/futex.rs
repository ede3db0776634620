//! futex(2): argument decoding; the wait queues are in `sched::futex`.

use atoll_abi::linux::errno::{EINTR, EINVAL, ENOSYS};

use super::time::read_timespec;
use super::{SysResult, ERESTARTSYS, ERESTART_RESTARTBLOCK};
use crate::arch::x86_64::user;
use crate::sched::futex as queues;
use crate::time;

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

pub fn futex(
    uaddr: u64,
    op: u64,
    value: u64,
    timeout: u64,
    uaddr2: u64,
    value3: u64,
) -> Option<SysResult> {
    let command = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
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
            let deadline = if timeout == 0 {
                0
            } else {
                let absolute = read_timespec(timeout)?;
                let now = if op & FUTEX_CLOCK_REALTIME != 0 {
                    time::realtime_ns()
                } else {
                    time::monotonic_ns()
                };
                time::monotonic_ns()
                    .saturating_add(absolute.saturating_sub(now))
                    .max(1)
            };
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
