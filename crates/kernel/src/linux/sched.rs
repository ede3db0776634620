//! Scheduling calls: affinity within the isle's cores, yield, getcpu.

use atoll_abi::linux::errno::{EINVAL, ESRCH};

use super::SysResult;
use crate::arch::x86_64::user;
use crate::{boot_info, sched};

fn isle_cpus() -> u64 {
    let cpus = boot_info().cpu_count.clamp(1, 64);
    if cpus == 64 {
        u64::MAX
    } else {
        (1u64 << cpus) - 1
    }
}

/// The thread slot `pid` names (0: the caller).
fn target(scheduler: &sched::Scheduler, pid: u64) -> Result<usize, i64> {
    if pid == 0 {
        return Ok(sched::current());
    }
    scheduler.thread_by_tid(pid as u32).ok_or(ESRCH)
}

pub fn sched_getaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    // The kernel's cpumask is one word here; Linux wants room for it.
    if len < 8 || !len.is_multiple_of(8) {
        return Err(EINVAL);
    }
    let bits = {
        let scheduler = sched::lock();
        scheduler.threads[target(&scheduler, pid)?].affinity & isle_cpus()
    };
    user::write(mask, bits)?;
    Ok(8)
}

pub fn sched_setaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    if len < 8 {
        return Err(EINVAL);
    }
    let requested: u64 = user::read(mask)?;
    let allowed = requested & isle_cpus();
    if allowed == 0 {
        return Err(EINVAL);
    }
    let mut scheduler = sched::lock();
    let slot = target(&scheduler, pid)?;
    scheduler.threads[slot].affinity = allowed;
    let must_move = slot == sched::current() && allowed & (1 << sched::cpu_index()) == 0;
    drop(scheduler);
    if must_move {
        sched::migrate();
    }
    Ok(0)
}

pub fn sched_yield() -> SysResult {
    sched::yield_now();
    Ok(0)
}

pub fn getcpu(cpu: u64, node: u64) -> SysResult {
    if cpu != 0 {
        user::write(cpu, sched::cpu_index() as u32)?;
    }
    if node != 0 {
        user::write(node, 0u32)?;
    }
    Ok(0)
}
