//! Readiness: epoll, eventfd, timerfd (host objects in the isle's fd
//! table), and select on top of poll.

use atoll_abi::linux::errno::{EFAULT, EINVAL, ENOMEM};
use atoll_abi::queue::Opcode;

use super::io::host_result;
use super::time::read_timespec;
use super::SysResult;
use crate::arch::x86_64::user;
use crate::offload;

fn call(op: Opcode, args: [u64; 6]) -> SysResult {
    host_result(offload::call(op, args))
}

pub fn epoll_create1(flags: u64) -> SysResult {
    call(Opcode::EpollCreate, [flags, 0, 0, 0, 0, 0])
}

pub fn epoll_create(size: u64) -> SysResult {
    if size as i32 <= 0 {
        return Err(EINVAL);
    }
    epoll_create1(0)
}

pub fn epoll_ctl(epfd: u64, op: u64, fd: u64, event: u64) -> SysResult {
    const EPOLL_CTL_DEL: u64 = 2;
    if op != EPOLL_CTL_DEL && !user::range_ok(event, 12) {
        return Err(EFAULT);
    }
    call(Opcode::EpollCtl, [epfd, op, fd, event, 0, 0])
}

pub fn epoll_wait(epfd: u64, events: u64, max: u64, timeout_ms: u64) -> SysResult {
    let max = max as i32;
    if max <= 0 {
        return Err(EINVAL);
    }
    if !user::range_ok(events, max as u64 * 12) {
        return Err(EFAULT);
    }
    call(
        Opcode::EpollWait,
        [
            epfd,
            events,
            max.min(1024) as u64,
            timeout_ms as i32 as i64 as u64,
            0,
            0,
        ],
    )
}

pub fn epoll_pwait2(epfd: u64, events: u64, max: u64, timeout: u64) -> SysResult {
    let timeout_ms = if timeout == 0 {
        -1
    } else {
        (read_timespec(timeout)?.div_ceil(1_000_000)).min(i32::MAX as u64) as i64
    };
    epoll_wait(epfd, events, max, timeout_ms as u64)
}

pub fn eventfd2(initial: u64, flags: u64) -> SysResult {
    call(Opcode::EventFd, [initial, flags, 0, 0, 0, 0])
}

pub fn timerfd_create(clock: u64, flags: u64) -> SysResult {
    call(Opcode::TimerFdCreate, [clock, flags, 0, 0, 0, 0])
}

pub fn timerfd_settime(fd: u64, flags: u64, new: u64, old: u64) -> SysResult {
    if !user::range_ok(new, 32) || (old != 0 && !user::range_ok(old, 32)) {
        return Err(EFAULT);
    }
    call(Opcode::TimerFdSetTime, [fd, flags, new, old, 0, 0])
}

pub fn timerfd_gettime(fd: u64, current: u64) -> SysResult {
    if !user::range_ok(current, 32) {
        return Err(EFAULT);
    }
    call(Opcode::TimerFdGetTime, [fd, current, 0, 0, 0, 0])
}

const POLLIN: u16 = 0x001;
const POLLPRI: u16 = 0x002;
const POLLOUT: u16 = 0x004;
const POLLERR: u16 = 0x008;
const POLLHUP: u16 = 0x010;
const POLLNVAL: u16 = 0x020;
/// Most fds one select may watch here (it builds a poll list on its stack).
const SELECT_MAX: usize = 256;

/// select and pselect6: the fd sets become a poll list, and back.
pub fn pselect(nfds: u64, read: u64, write: u64, except: u64, timeout_ms: i64) -> SysResult {
    if nfds > 1024 {
        return Err(EINVAL);
    }
    let words = (nfds as usize).div_ceil(64);
    let load = |address: u64| -> Result<[u64; 16], i64> {
        let mut set = [0u64; 16];
        if address != 0 {
            for (index, word) in set.iter_mut().enumerate().take(words) {
                *word = user::read(address + index as u64 * 8)?;
            }
        }
        Ok(set)
    };
    let (readable, writable, exceptional) = (load(read)?, load(write)?, load(except)?);
    let mut list = [(0i32, 0u16, 0u16); SELECT_MAX];
    let mut count = 0;
    for fd in 0..nfds as usize {
        let bit = |set: &[u64; 16]| set[fd / 64] & (1 << (fd % 64)) != 0;
        let mut events = 0;
        if bit(&readable) {
            events |= POLLIN;
        }
        if bit(&writable) {
            events |= POLLOUT;
        }
        if bit(&exceptional) {
            events |= POLLPRI;
        }
        if events != 0 {
            if count == SELECT_MAX {
                return Err(ENOMEM);
            }
            list[count] = (fd as i32, events, 0);
            count += 1;
        }
    }
    // The poll list lives on this kernel stack, inside guest RAM.
    let mut raw = [0u8; SELECT_MAX * 8];
    for (index, (fd, events, _)) in list[..count].iter().enumerate() {
        raw[index * 8..index * 8 + 4].copy_from_slice(&fd.to_le_bytes());
        raw[index * 8 + 4..index * 8 + 6].copy_from_slice(&events.to_le_bytes());
    }
    let address = crate::mm::guest_physical(raw.as_ptr() as u64);
    let ready = call(
        Opcode::Poll,
        [address, count as u64, timeout_ms as u64, 0, 0, 0],
    )?;
    let mut out = [[0u64; 16]; 3];
    let mut total = 0;
    for index in 0..count {
        let fd = list[index].0 as usize;
        let revents = u16::from_le_bytes([raw[index * 8 + 6], raw[index * 8 + 7]]);
        if revents & POLLNVAL != 0 {
            return Err(atoll_abi::linux::errno::EBADF);
        }
        let hits = [
            list[index].1 & POLLIN != 0 && revents & (POLLIN | POLLHUP | POLLERR) != 0,
            list[index].1 & POLLOUT != 0 && revents & (POLLOUT | POLLERR) != 0,
            list[index].1 & POLLPRI != 0 && revents & POLLPRI != 0,
        ];
        for (set, hit) in hits.iter().enumerate() {
            if *hit {
                out[set][fd / 64] |= 1 << (fd % 64);
                total += 1;
            }
        }
    }
    let _ = ready;
    for (set, address) in [read, write, except].iter().enumerate() {
        if *address != 0 {
            for (index, word) in out[set].iter().enumerate().take(words) {
                user::write(address + index as u64 * 8, *word)?;
            }
        }
    }
    Ok(total)
}

pub fn select(nfds: u64, read: u64, write: u64, except: u64, timeout: u64) -> SysResult {
    let timeout_ms = if timeout == 0 {
        -1
    } else {
        let [seconds, microseconds]: [i64; 2] = user::read(timeout)?;
        if seconds < 0 || !(0..1_000_000).contains(&microseconds) {
            return Err(EINVAL);
        }
        (seconds
            .saturating_mul(1000)
            .saturating_add((microseconds + 999) / 1000))
        .min(i32::MAX as i64)
    };
    pselect(nfds, read, write, except, timeout_ms)
}

/// pselect6: `mask` points at { sigset pointer, its size }, as the kernel
/// takes it (0: no mask).
pub fn pselect6(
    nfds: u64,
    read: u64,
    write: u64,
    except: u64,
    timeout: u64,
    mask: u64,
) -> SysResult {
    let timeout_ms = if timeout == 0 {
        -1
    } else {
        (read_timespec(timeout)?.div_ceil(1_000_000)).min(i32::MAX as u64) as i64
    };
    let [set, size] = match mask {
        0 => [0, 0],
        mask => crate::arch::x86_64::user::read::<[u64; 2]>(mask)?,
    };
    super::signal::with_temporary_mask(set, size, || pselect(nfds, read, write, except, timeout_ms))
}
