//! Scheduling: the program's thread owns its core.

use atoll_abi::linux::errno::{EINVAL, ESRCH};

use super::SysResult;
use crate::arch::x86_64::user;
use crate::boot_info;

pub fn sched_getaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    if pid != 0 && pid != u64::from(boot_info().identity.pid) {
        return Err(ESRCH);
    }
    // The kernel's cpumask is one word here; Linux wants room for it.
    if len < 8 || !len.is_multiple_of(8) {
        return Err(EINVAL);
    }
    let cpus = boot_info().cpu_count.clamp(1, 64);
    let bits = if cpus == 64 {
        u64::MAX
    } else {
        (1u64 << cpus) - 1
    };
    user::write(mask, bits)?;
    Ok(8)
}

pub fn sched_yield() -> SysResult {
    Ok(0)
}
