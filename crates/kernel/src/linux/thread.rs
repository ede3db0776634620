//! Threads: clone, exit, tids and per-thread registrations.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use atoll_abi::linux::errno::EINVAL;

use super::SysResult;
use crate::arch::x86_64::entry::SyscallFrame;
use crate::arch::x86_64::{cpu, user};
use crate::sched;
use crate::trace::{self, LineBuffer};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const SUPPORTED: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID
    | 0xff; // the exit signal: irrelevant for threads
const USER_ADDRESS_END: u64 = 0x0000_8000_0000_0000;

/// What a new process's clone may ask (besides its exit signal).
const PROCESS_FLAGS: u64 = CLONE_VM
    | CLONE_VFORK
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_SETTLS;
const CLONE_VFORK: u64 = 0x4000;

static FORK_WARNED: AtomicBool = AtomicBool::new(false);

/// Says once which clone flags of a new process the isle can't give.
fn warn_unsupported_process(flags: u64) {
    if !FORK_WARNED.swap(true, Ordering::Relaxed) {
        let mut line = LineBuffer::<128>::new();
        let _ = writeln!(
            line,
            "atoll: unsupported: a new process with clone flags {:#x}",
            flags & !(PROCESS_FLAGS | 0xff)
        );
        trace::log(line.as_bytes());
    }
}

/// clone(flags, stack, parent_tid, child_tid, tls) for threads.
pub fn clone(frame: &SyscallFrame) -> SysResult {
    let (flags, stack, parent_tid, child_tid, tls) =
        (frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8);
    let thread = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
    if flags & CLONE_THREAD == 0 {
        // A new process: fork, or vfork and posix_spawn's CLONE_VM |
        // CLONE_VFORK, whose child runs on its own copy of memory here.
        if flags & !(PROCESS_FLAGS | 0xff) != 0 {
            warn_unsupported_process(flags);
            return Err(EINVAL);
        }
        return super::process::fork(frame, flags, child_tid);
    }
    if flags & thread != thread {
        return Err(EINVAL);
    }
    if flags & !SUPPORTED != 0 || (flags & CLONE_SETTLS != 0 && tls >= USER_ADDRESS_END) {
        return Err(EINVAL);
    }
    let child_frame = SyscallFrame {
        rax: 0,
        user_rsp: if stack != 0 { stack } else { frame.user_rsp },
        ..*frame
    };
    let fs_base = if flags & CLONE_SETTLS != 0 {
        tls
    } else {
        cpu::fs_base()
    };
    let clear_child_tid = if flags & CLONE_CHILD_CLEARTID != 0 {
        child_tid
    } else {
        0
    };
    // Check the tid pointers before the child exists.
    if flags & CLONE_PARENT_SETTID != 0 {
        user::read::<u32>(parent_tid)?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        user::read::<u32>(child_tid)?;
    }
    let (_, tid) = sched::spawn_with(&child_frame, fs_base, clear_child_tid, |tid| {
        if flags & CLONE_PARENT_SETTID != 0 {
            let _ = user::write(parent_tid, tid);
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            let _ = user::write(child_tid, tid);
        }
    })?;
    Ok(u64::from(tid))
}

/// exit(2): ends the calling thread only.
pub fn exit(status: u64) -> SysResult {
    sched::exit_current(status as u8)
}

pub fn gettid() -> SysResult {
    Ok(u64::from(sched::lock().threads[sched::current()].tid))
}

pub fn set_tid_address(address: u64) -> SysResult {
    let mut scheduler = sched::lock();
    let me = sched::current();
    scheduler.threads[me].clear_child_tid = address;
    Ok(u64::from(scheduler.threads[me].tid))
}

pub fn set_robust_list(head: u64, len: u64) -> SysResult {
    // sizeof(struct robust_list_head)
    if len != 24 {
        return Err(EINVAL);
    }
    let mut scheduler = sched::lock();
    let me = sched::current();
    scheduler.threads[me].robust_list = head;
    scheduler.threads[me].robust_list_len = len;
    Ok(0)
}

/// Records the thread's FS base so it follows the thread across CPUs.
pub fn set_fs_base(address: u64) {
    cpu::set_fs_base(address);
    let mut scheduler = sched::lock();
    let me = sched::current();
    scheduler.threads[me].fs_base = address;
}
