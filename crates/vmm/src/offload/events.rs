//! The event fds: epoll, eventfd and timerfd, made on the host (through
//! rustix) and held in the isle's fd table like any other.

use std::os::fd::OwnedFd;

use atoll_abi::linux::errno::{EINVAL, ENOSYS};
use atoll_abi::queue::{Opcode, Request};
use rustix::event::epoll;
use rustix::time::{Itimerspec, Timespec};

use super::errno;
use super::fs::{read_guest, write_guest};
use crate::guest::memory::GuestRam;
use crate::sandbox::Files;

/// struct epoll_event is packed: 12 bytes on x86_64, in guest memory too.
const EPOLL_EVENT_SIZE: u64 = 12;

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
            let close_on_exec = flags & libc::EPOLL_CLOEXEC != 0;
            adopt(
                files,
                epoll::create(epoll::CreateFlags::CLOEXEC),
                close_on_exec,
            )
        }
        Opcode::EpollCtl => {
            let target = files.host_fd(a[2])?;
            let operation = a[1] as i32;
            let mut event = (epoll::EventFlags::empty(), epoll::EventData::new_u64(0));
            if operation != libc::EPOLL_CTL_DEL {
                let bytes = read_guest(ram, a[3], EPOLL_EVENT_SIZE as usize)?;
                let events = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default());
                let data = u64::from_le_bytes(bytes[4..].try_into().unwrap_or_default());
                event = (
                    epoll::EventFlags::from_bits_retain(events),
                    epoll::EventData::new_u64(data),
                );
            }
            let (flags, data) = event;
            let epoll_fd = files.host_fd(a[0])?;
            let done = match operation {
                libc::EPOLL_CTL_ADD => epoll::add(&*epoll_fd, &*target, data, flags),
                libc::EPOLL_CTL_MOD => epoll::modify(&*epoll_fd, &*target, data, flags),
                libc::EPOLL_CTL_DEL => epoll::delete(&*epoll_fd, &*target),
                _ => return Err(EINVAL),
            };
            done.map(|()| 0).map_err(errno)
        }
        Opcode::EpollWait => {
            let max = a[2] as i32;
            if max <= 0 || max > 1024 {
                return Err(EINVAL);
            }
            // Check the destination before waiting.
            ram.slice(a[1], max as u64 * EPOLL_EVENT_SIZE)?;
            let epoll_fd = files.host_fd(a[0])?;
            let timeout = timeout_from_ms(a[3] as i64 as i32);
            let mut events: Vec<epoll::Event> = Vec::with_capacity(max as usize);
            let spare = rustix::buffer::spare_capacity(&mut events);
            epoll::wait(&*epoll_fd, spare, timeout.as_ref()).map_err(errno)?;
            let bytes: Vec<u8> = events
                .iter()
                .flat_map(|event| {
                    let (flags, data) = (event.flags, event.data);
                    let mut bytes = [0u8; EPOLL_EVENT_SIZE as usize];
                    bytes[..4].copy_from_slice(&flags.bits().to_le_bytes());
                    bytes[4..].copy_from_slice(&data.u64().to_le_bytes());
                    bytes
                })
                .collect();
            write_guest(ram, a[1], &bytes)?;
            Ok(events.len() as i64)
        }
        Opcode::EventFd => {
            let flags = a[1] as i32;
            if flags & !(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE) != 0 {
                return Err(EINVAL);
            }
            let close_on_exec = flags & libc::EFD_CLOEXEC != 0;
            let flags =
                rustix::event::EventfdFlags::from_bits_retain((flags | libc::EFD_CLOEXEC) as u32);
            adopt(
                files,
                rustix::event::eventfd(a[0] as u32, flags),
                close_on_exec,
            )
        }
        Opcode::TimerFdCreate => {
            use rustix::time::TimerfdClockId;
            let flags = a[1] as i32;
            if flags & !(libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) != 0 {
                return Err(EINVAL);
            }
            // The isle's CLOCK_MONOTONIC is the host's, so host timers agree.
            let clock = match a[0] as i32 {
                libc::CLOCK_REALTIME => TimerfdClockId::Realtime,
                libc::CLOCK_MONOTONIC => TimerfdClockId::Monotonic,
                libc::CLOCK_BOOTTIME => TimerfdClockId::Boottime,
                libc::CLOCK_REALTIME_ALARM => TimerfdClockId::RealtimeAlarm,
                libc::CLOCK_BOOTTIME_ALARM => TimerfdClockId::BoottimeAlarm,
                _ => return Err(EINVAL),
            };
            let close_on_exec = flags & libc::TFD_CLOEXEC != 0;
            let flags =
                rustix::time::TimerfdFlags::from_bits_retain((flags | libc::TFD_CLOEXEC) as u32);
            adopt(
                files,
                rustix::time::timerfd_create(clock, flags),
                close_on_exec,
            )
        }
        Opcode::TimerFdSetTime => {
            let words: Vec<i64> = read_guest(ram, a[2], 32)?
                .chunks_exact(8)
                .map(|chunk| i64::from_le_bytes(chunk.try_into().unwrap_or_default()))
                .collect();
            let new = Itimerspec {
                it_interval: Timespec {
                    tv_sec: words[0],
                    tv_nsec: words[1],
                },
                it_value: Timespec {
                    tv_sec: words[2],
                    tv_nsec: words[3],
                },
            };
            let timer = files.host_fd(a[0])?;
            let flags = rustix::time::TimerfdTimerFlags::from_bits_retain(a[1] as u32);
            let old = rustix::time::timerfd_settime(&*timer, flags, &new).map_err(errno)?;
            if a[3] != 0 {
                write_guest(ram, a[3], &itimerspec_bytes(&old))?;
            }
            Ok(0)
        }
        Opcode::TimerFdGetTime => {
            let timer = files.host_fd(a[0])?;
            let current = rustix::time::timerfd_gettime(&*timer).map_err(errno)?;
            write_guest(ram, a[1], &itimerspec_bytes(&current))?;
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

/// A poll-style timeout in ms (negative: none) as the Timespec rustix takes.
fn timeout_from_ms(ms: i32) -> Option<Timespec> {
    (ms >= 0).then(|| Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    })
}

fn adopt(
    files: &Files,
    made: rustix::io::Result<OwnedFd>,
    close_on_exec: bool,
) -> Result<i64, i64> {
    files.adopt(made.map_err(errno)?, close_on_exec)
}

fn itimerspec_bytes(spec: &Itimerspec) -> [u8; 32] {
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
