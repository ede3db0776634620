//! The event fds: epoll, eventfd and timerfd, made on the host and held in
//! the isle's fd table like any other.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd};

use atoll_abi::linux::errno::{EFAULT, EINVAL, ENOSYS};
use atoll_abi::queue::{Opcode, Request};

use super::fs::{read_guest, write_guest};
use crate::guest::memory::GuestRam;
use crate::host::check;
use crate::sandbox::Files;

const ZERO_TIMESPEC: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};
const ZERO_ITIMERSPEC: libc::itimerspec = libc::itimerspec {
    it_interval: ZERO_TIMESPEC,
    it_value: ZERO_TIMESPEC,
};

/// Whether `op` is one of [`handle`]'s.
pub(super) fn handles(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::EpollCreate
            | Opcode::EpollCtl
            | Opcode::EpollWait
            | Opcode::EventFd
            | Opcode::TimerFdCreate
            | Opcode::TimerFdSetTime
            | Opcode::TimerFdGetTime
    )
}

/// The event-fd opcodes; anything else is ENOSYS.
pub(super) fn handle(
    ram: &GuestRam,
    files: &Files,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let a = request.args;
    match op {
        Opcode::EpollCreate => {
            let flags = a[0] as i32;
            if flags & !libc::EPOLL_CLOEXEC != 0 {
                return Err(EINVAL);
            }
            // SAFETY: makes a new fd, checked below.
            let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) } as libc::c_long)?;
            adopt(files, fd)
        }
        Opcode::EpollCtl => {
            let target_held = files.host_fd(a[2])?;
            let target = target_held.as_raw_fd();
            let mut event = libc::epoll_event { events: 0, u64: 0 };
            if a[1] as i32 != libc::EPOLL_CTL_DEL {
                let bytes = read_guest(ram, a[3], 12)?;
                event.events = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default());
                event.u64 = u64::from_le_bytes(bytes[4..].try_into().unwrap_or_default());
            }
            files.with_fd(a[0], |epoll| {
                // SAFETY: epoll_ctl on isle-owned fds with our own event.
                check(
                    unsafe { libc::epoll_ctl(epoll, a[1] as i32, target, &mut event) }
                        as libc::c_long,
                )
            })?
        }
        Opcode::EpollWait => {
            let max = a[2] as i32;
            if max <= 0 || max > 1024 {
                return Err(EINVAL);
            }
            // struct epoll_event is packed: 12 bytes on x86_64, as in guest memory.
            let buffer = ram.host_range(a[1], max as u64 * 12).ok_or(EFAULT)?;
            let epoll_held = files.host_fd(a[0])?;
            let epoll = epoll_held.as_raw_fd();
            // SAFETY: writes at most `max` events inside guest RAM (checked).
            check(
                unsafe { libc::epoll_wait(epoll, buffer.cast(), max, a[3] as i64 as i32) }
                    as libc::c_long,
            )
        }
        Opcode::EventFd => {
            let flags = a[1] as i32;
            if flags & !(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE) != 0 {
                return Err(EINVAL);
            }
            // SAFETY: makes a new fd, checked below.
            let fd = check(
                unsafe { libc::eventfd(a[0] as u32, flags | libc::EFD_CLOEXEC) } as libc::c_long,
            )?;
            adopt(files, fd)
        }
        Opcode::TimerFdCreate => {
            let flags = a[1] as i32;
            if flags & !(libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) != 0 {
                return Err(EINVAL);
            }
            // The isle's CLOCK_MONOTONIC is the host's, so host timers agree.
            // SAFETY: makes a new fd, checked below.
            let fd = check(
                unsafe { libc::timerfd_create(a[0] as i32, flags | libc::TFD_CLOEXEC) }
                    as libc::c_long,
            )?;
            adopt(files, fd)
        }
        Opcode::TimerFdSetTime => {
            let words: Vec<i64> = read_guest(ram, a[2], 32)?
                .chunks_exact(8)
                .map(|chunk| i64::from_le_bytes(chunk.try_into().unwrap_or_default()))
                .collect();
            let new = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: words[0],
                    tv_nsec: words[1],
                },
                it_value: libc::timespec {
                    tv_sec: words[2],
                    tv_nsec: words[3],
                },
            };
            let mut old = ZERO_ITIMERSPEC;
            files.with_fd(a[0], |fd| {
                // SAFETY: reads our `new`, writes our `old`.
                check(
                    unsafe { libc::timerfd_settime(fd, a[1] as i32, &new, &mut old) }
                        as libc::c_long,
                )
            })??;
            if a[3] != 0 {
                write_guest(ram, a[3], &itimerspec_bytes(&old))?;
            }
            Ok(0)
        }
        Opcode::TimerFdGetTime => {
            let mut current = ZERO_ITIMERSPEC;
            files.with_fd(a[0], |fd| {
                // SAFETY: writes our `current`.
                check(unsafe { libc::timerfd_gettime(fd, &mut current) } as libc::c_long)
            })??;
            write_guest(ram, a[1], &itimerspec_bytes(&current))?;
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

fn adopt(files: &Files, fd: i64) -> Result<i64, i64> {
    // SAFETY: a fresh fd the host just made for the isle.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    files.adopt(owned)
}

fn itimerspec_bytes(spec: &libc::itimerspec) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    let words = [
        spec.it_interval.tv_sec,
        spec.it_interval.tv_nsec,
        spec.it_value.tv_sec,
        spec.it_value.tv_nsec,
    ];
    for (index, word) in words.iter().enumerate() {
        bytes[index * 8..index * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    bytes
}
