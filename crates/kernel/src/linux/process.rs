//! Process identity and lifetime: exit, ids, TLS, limits, uname.

use core::sync::atomic::{AtomicBool, Ordering};

use atoll_abi::linux::errno::{EFAULT, EINVAL, EOPNOTSUPP, EPERM, ESRCH};
use atoll_abi::xstate;
use spin::Mutex;

use atoll_abi::queue::Opcode;

use super::io::host_result;
use super::SysResult;
use crate::arch::x86_64::entry::SyscallFrame;
use crate::arch::x86_64::{cpu, user};
use crate::{boot_info, offload};

pub fn exit_group(status: u64) -> SysResult {
    crate::exit_isle(status as u8)
}

const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WAIT_THREAD_FLAGS: u64 = 0x2000_0000 | 0x4000_0000 | 0x8000_0000; // __WNOTHREAD, __WALL, __WCLONE

/// What a forked child resumes: written by the parent just before it asks
/// the host to fork, so the child's copy of memory holds it.
#[derive(Clone, Copy)]
struct ForkRecord {
    slot: usize,
    frame: SyscallFrame,
    fs_base: u64,
    flags: u64,
    child_tid: u64,
}

static FORK_RECORD: Mutex<Option<ForkRecord>> = Mutex::new(None);
/// One fork at a time (the record is the child's only word).
static FORKING: AtomicBool = AtomicBool::new(false);

/// fork, vfork and clone without CLONE_THREAD: the host forks the isle's
/// process (its memory is copied on write by the host kernel) and the
/// child's isle resumes this thread in [`resume_forked_child`]. A vfork
/// child gets its own copy too, so its parent goes on at once.
pub fn fork(frame: &SyscallFrame, flags: u64, child_tid: u64) -> SysResult {
    if flags & CLONE_PARENT_SETTID != 0 {
        user::read::<u32>(frame.rdx)?;
    }
    while FORKING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        crate::sched::yield_now();
    }
    let me = crate::sched::current();
    let child_frame = SyscallFrame {
        rax: 0,
        user_rsp: if frame.rsi != 0 && flags != 0 {
            frame.rsi
        } else {
            frame.user_rsp
        },
        ..*frame
    };
    let fs_base = if flags & CLONE_SETTLS != 0 {
        frame.r8
    } else {
        cpu::fs_base()
    };
    *FORK_RECORD.lock() = Some(ForkRecord {
        slot: me,
        frame: child_frame,
        fs_base,
        flags,
        child_tid,
    });
    crate::sched::save_extended_state_of_current();
    let result = host_result(offload::call_parked(Opcode::Fork, [0; 6]));
    *FORK_RECORD.lock() = None;
    FORKING.store(false, Ordering::Release);
    let pid = result?;
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = user::write(frame.rdx, pid as u32);
    }
    Ok(pid)
}

/// The forked child's kernel, before its CPUs run: only the thread that
/// forked goes on, as the child's first thread (its tid the child's pid).
pub fn resume_forked_child(boot: &atoll_abi::boot::BootInfo) {
    let Some(record) = FORK_RECORD.lock().take() else {
        panic!("a forked child's memory holds no fork record");
    };
    FORKING.store(false, Ordering::Relaxed);
    let tid = boot.identity.pid;
    if record.flags & CLONE_CHILD_SETTID != 0 {
        let _ = user::write(record.child_tid, tid);
    }
    let clear_child_tid = match record.flags & CLONE_CHILD_CLEARTID {
        0 => 0,
        _ => record.child_tid,
    };
    offload::reset_after_fork();
    // fork(2): the child's parent-death signal is cleared (the host's too).
    CONTROL.lock().parent_death_signal = 0;
    crate::signals::reset_after_fork(record.slot);
    crate::sched::resume_after_fork(
        record.slot,
        &record.frame,
        record.fs_base,
        tid,
        clear_child_tid,
    );
}

/// waitid(idtype, id, infop, options, rusage): the host waits; its
/// siginfo is written to `infop` by the host (checked here first).
pub fn waitid(idtype: u64, id: u64, infop: u64, options: u64, rusage: u64) -> SysResult {
    if infop != 0 {
        user::read::<u8>(infop)?;
        user::read::<u8>(infop.saturating_add(127))?;
    }
    if rusage != 0 {
        user::read::<[u64; 18]>(rusage)?;
    }
    let mut usage = Rusage::default();
    host_result(offload::call(
        Opcode::WaitId,
        [
            idtype,
            id,
            options & !WAIT_THREAD_FLAGS,
            infop,
            usage.host_address(),
            0,
        ],
    ))?;
    if rusage != 0 {
        user::write(rusage, usage)?;
    }
    Ok(0)
}

/// execve and execveat: the host checks the program and keeps it with its
/// arguments (reading them from the program's memory) and what the
/// signals carry over; then this isle ends and the process's next one
/// runs the new program. Only a failure returns.
pub fn execveat(dirfd: u64, path: u64, argv: u64, envp: u64, flags: u64) -> SysResult {
    let signals = crate::signals::exec_state();
    let state = crate::mm::guest_physical(&signals as *const _ as u64);
    host_result(offload::call(
        Opcode::Exec,
        [dirfd, path, argv, envp, flags, state],
    ))?;
    crate::exit_isle_replaced()
}

/// wait4(pid, wstatus, options, rusage): the host waits for a child of the
/// isle's process (pid > 0, -1 any; process groups are the host's too).
pub fn wait4(pid: u64, wstatus: u64, options: u64, rusage: u64) -> SysResult {
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WAIT_THREAD_FLAGS) != 0 {
        return Err(EINVAL);
    }
    if wstatus != 0 {
        user::read::<u32>(wstatus)?;
    }
    if rusage != 0 {
        user::read::<[u64; 18]>(rusage)?;
    }
    let mut usage = Rusage::default();
    let done = host_result(offload::call(
        Opcode::Wait,
        [
            pid,
            options & (WNOHANG | WUNTRACED | WCONTINUED),
            usage.host_address(),
            0,
            0,
            0,
        ],
    ))?;
    let (child, status) = (done >> 32, done as u32);
    if child != 0 {
        if wstatus != 0 {
            user::write(wstatus, status)?;
        }
        if rusage != 0 {
            user::write(rusage, usage)?;
        }
    }
    Ok(child)
}

fn identity() -> &'static atoll_abi::boot::Identity {
    &boot_info().identity
}

pub fn getpid() -> SysResult {
    Ok(u64::from(identity().pid))
}

pub fn getpgrp() -> SysResult {
    group(atoll_abi::queue::group::GETPGID, 0, 0)
}

/// getpgid, setpgid, getsid, setsid: the host's, for this process or a
/// child (the monitor is the process).
pub fn group(what: u64, pid: u64, pgid: u64) -> SysResult {
    if (pid as i64 as i32) < 0 || (pgid as i64 as i32) < 0 {
        return Err(EINVAL);
    }
    host_result(offload::call(Opcode::Group, [what, pid, pgid, 0, 0, 0]))
}

/// getgroups(size, list): the atoll process's supplementary groups.
pub fn getgroups(size: u64, list: u64) -> SysResult {
    let me = identity();
    let count = (me.group_count as usize).min(me.groups.len());
    let size = size as i32;
    if size < 0 {
        return Err(EINVAL);
    }
    if size == 0 {
        return Ok(count as u64);
    }
    if (size as usize) < count {
        return Err(EINVAL);
    }
    for (index, group) in me.groups[..count].iter().enumerate() {
        user::write(list + 4 * index as u64, *group)?;
    }
    Ok(count as u64)
}

pub fn getppid() -> SysResult {
    Ok(u64::from(identity().ppid))
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const ARCH_SET_CPUID: u64 = 0x1012;
const ARCH_GET_XCOMP_SUPP: u64 = 0x1021;
const ARCH_GET_XCOMP_PERM: u64 = 0x1022;
const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
/// XSAVE component numbers stop below this (the mask is 64 bits).
const XFEATURE_COUNT: u64 = 64;
/// First address past the user half of the address space.
const USER_ADDRESS_END: u64 = 0x0000_8000_0000_0000;

pub fn arch_prctl(code: u64, address: u64) -> SysResult {
    match code {
        ARCH_SET_FS => {
            if address >= USER_ADDRESS_END {
                return Err(EPERM);
            }
            super::thread::set_fs_base(address);
            Ok(0)
        }
        ARCH_GET_FS => user::write(address, cpu::fs_base()).map(|()| 0),
        // GS holds the kernel's per-CPU pointer in an isle.
        ARCH_SET_GS => Err(EPERM),
        ARCH_GET_GS => user::write(address, 0u64).map(|()| 0),
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(EINVAL),
        ARCH_GET_XCOMP_SUPP => {
            user::write(address, crate::sched::xstate_layout().components).map(|()| 0)
        }
        ARCH_GET_XCOMP_PERM => user::write(address, crate::sched::permitted_xstate()).map(|()| 0),
        // `address` is a component number here: the highest one the
        // facility needs (18 for AMX, which also needs 17).
        ARCH_REQ_XCOMP_PERM => {
            if address >= XFEATURE_COUNT {
                return Err(EINVAL);
            }
            let requested = (1u64 << address)
                | if address == xstate::XFEATURE_TILE_DATA {
                    xstate::TILE_CONFIG
                } else {
                    0
                };
            if crate::sched::permit_dynamic_xstate(requested) {
                Ok(0)
            } else {
                Err(EOPNOTSUPP)
            }
        }
        _ => Err(EINVAL),
    }
}

const RLIMIT_COUNT: usize = 16;
const RLIMIT_STACK: usize = 3;
const RLIMIT_CORE: usize = 4;
const RLIMIT_NOFILE: usize = 7;
const RLIM_INFINITY: u64 = u64::MAX;

/// (soft, hard) per resource; `None` until first used.
static LIMITS: Mutex<Option<[[u64; 2]; RLIMIT_COUNT]>> = Mutex::new(None);

fn default_limits() -> [[u64; 2]; RLIMIT_COUNT] {
    let mut limits = [[RLIM_INFINITY; 2]; RLIMIT_COUNT];
    let boot = boot_info();
    limits[RLIMIT_STACK] = [
        boot.program.stack_top - boot.program.stack_bottom,
        RLIM_INFINITY,
    ];
    limits[RLIMIT_CORE] = [0, RLIM_INFINITY];
    limits[RLIMIT_NOFILE] = [1024, 4096];
    limits
}

pub fn prlimit64(pid: u64, resource: u64, new: u64, old: u64) -> SysResult {
    if pid != 0 && pid != u64::from(identity().pid) {
        return Err(ESRCH);
    }
    let resource = resource as usize;
    if resource >= RLIMIT_COUNT {
        return Err(EINVAL);
    }
    let mut guard = LIMITS.lock();
    let limits = guard.get_or_insert_with(default_limits);
    let requested: Option<[u64; 2]> = if new != 0 {
        Some(user::read(new)?)
    } else {
        None
    };
    if old != 0 {
        user::write(old, limits[resource])?;
    }
    if let Some([soft, hard]) = requested {
        if soft > hard {
            return Err(EINVAL);
        }
        if hard > limits[resource][1] {
            return Err(EPERM);
        }
        if resource == RLIMIT_NOFILE {
            // The host numbers fds: it enforces the limit.
            host_result(offload::call(Opcode::FdLimit, [soft, 0, 0, 0, 0, 0]))?;
        }
        limits[resource] = [soft, hard];
    }
    Ok(0)
}

const RUSAGE_SELF: i64 = 0;
const RUSAGE_CHILDREN: i64 = -1;
const RUSAGE_THREAD: i64 = 1;
/// USER_HZ: times() counts in these.
const CLOCK_TICKS_PER_SEC: u64 = 100;

/// struct rusage: two timevals, then fourteen longs.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Rusage {
    user_time: [u64; 2],
    system_time: [u64; 2],
    counts: [u64; 14],
}

impl Rusage {
    /// Where the host writes this one (this kernel stack, inside guest
    /// RAM); taking it `mut` says the host will.
    fn host_address(&mut self) -> u64 {
        crate::mm::guest_physical(self as *mut Rusage as u64)
    }
}

/// The host's struct rusage of this process (RUSAGE_SELF: the isle's
/// process is the host's) or of its children waited for.
fn host_rusage(who: i64) -> Result<Rusage, i64> {
    let mut usage = Rusage::default();
    host_result(offload::call(
        Opcode::Usage,
        [who as u64, usage.host_address(), 0, 0, 0, 0],
    ))?;
    Ok(usage)
}

fn timeval_microseconds(timeval: [u64; 2]) -> u64 {
    timeval[0] * 1_000_000 + timeval[1]
}

/// getrusage: RUSAGE_THREAD is the calling thread's own core time (it
/// runs alone on its core), with the process's counts.
pub fn getrusage(who: u64, address: u64) -> SysResult {
    // An int: the upper half of the register is not the caller's.
    let who = i64::from(who as u32 as i32);
    let mut usage = match who {
        RUSAGE_SELF | RUSAGE_CHILDREN | RUSAGE_THREAD => host_rusage(if who == RUSAGE_THREAD {
            RUSAGE_SELF
        } else {
            who
        })?,
        _ => return Err(EINVAL),
    };
    if who == RUSAGE_THREAD {
        let ns = crate::time::boottime_ns();
        usage.user_time = [ns / 1_000_000_000, ns % 1_000_000_000 / 1000];
        usage.system_time = [0; 2];
    }
    user::write(address, usage)?;
    Ok(0)
}

/// times: the process's and its waited-for children's times in clock
/// ticks, as getrusage has them; returns the ticks since the isle booted.
pub fn times(address: u64) -> SysResult {
    if address != 0 {
        let own = host_rusage(RUSAGE_SELF)?;
        let children = host_rusage(RUSAGE_CHILDREN)?;
        let ticks = |timeval| timeval_microseconds(timeval) / (1_000_000 / CLOCK_TICKS_PER_SEC);
        user::write(
            address,
            [
                ticks(own.user_time),
                ticks(own.system_time),
                ticks(children.user_time),
                ticks(children.system_time),
            ],
        )?;
    }
    Ok(crate::time::boottime_ns() / (1_000_000_000 / CLOCK_TICKS_PER_SEC))
}

pub fn uname(buffer: u64) -> SysResult {
    let uname = boot_info().uname;
    let fields = [
        uname.sysname.bytes,
        uname.nodename.bytes,
        uname.release.bytes,
        uname.version.bytes,
        uname.machine.bytes,
        uname.domainname.bytes,
    ];
    for (index, field) in fields.iter().enumerate() {
        user::copy_to(buffer + index as u64 * 65, field).map_err(|_| EFAULT)?;
    }
    Ok(0)
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;
/// Linux's TASK_COMM_LEN.
const COMM_LEN: usize = 16;

struct ProcessControl {
    /// The thread name; empty until set (then reported from the exe path).
    name: [u8; COMM_LEN],
    parent_death_signal: u64,
    dumpable: u64,
    no_new_privs: u64,
}

static CONTROL: Mutex<ProcessControl> = Mutex::new(ProcessControl {
    name: [0; COMM_LEN],
    parent_death_signal: 0,
    dumpable: 1,
    no_new_privs: 0,
});

/// The exe's file name, truncated as Linux truncates comm.
fn default_name() -> [u8; COMM_LEN] {
    let path = boot_info().exe_path.as_bytes();
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let mut name = [0u8; COMM_LEN];
    let len = base.len().min(COMM_LEN - 1);
    name[..len].copy_from_slice(&base[..len]);
    name
}

pub fn prctl(option: u64, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> SysResult {
    let mut control = CONTROL.lock();
    match option {
        PR_SET_NAME => {
            let mut name = [0u8; COMM_LEN];
            for (index, slot) in name.iter_mut().take(COMM_LEN - 1).enumerate() {
                let byte: u8 = user::read(arg2 + index as u64)?;
                if byte == 0 {
                    break;
                }
                *slot = byte;
            }
            control.name = name;
            Ok(0)
        }
        PR_GET_NAME => {
            let name = if control.name[0] == 0 {
                default_name()
            } else {
                control.name
            };
            user::copy_to(arg2, &name)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG => {
            if arg2 > 64 {
                return Err(EINVAL);
            }
            // The host sends it: the parent is a host process.
            host_result(offload::call(
                Opcode::ParentDeathSignal,
                [arg2, 0, 0, 0, 0, 0],
            ))?;
            control.parent_death_signal = arg2;
            Ok(0)
        }
        PR_GET_PDEATHSIG => user::write(arg2, control.parent_death_signal as i32).map(|()| 0),
        PR_GET_DUMPABLE => Ok(control.dumpable),
        PR_SET_DUMPABLE => {
            if arg2 > 1 {
                return Err(EINVAL);
            }
            control.dumpable = arg2;
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS => {
            if arg2 != 1 || arg3 != 0 || arg4 != 0 || arg5 != 0 {
                return Err(EINVAL);
            }
            control.no_new_privs = 1;
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => Ok(control.no_new_privs),
        _ => Err(EINVAL),
    }
}

/// sysinfo(2): the isle's own memory, uptime and thread count.
pub fn sysinfo(buffer: u64) -> SysResult {
    let boot = boot_info();
    let mut info = [0u8; 112];
    let uptime = crate::time::boottime_ns() / 1_000_000_000;
    info[0..8].copy_from_slice(&uptime.to_le_bytes());
    info[32..40].copy_from_slice(&boot.memory_limit.to_le_bytes());
    info[40..48].copy_from_slice(&crate::mm::free_bytes().to_le_bytes());
    let threads = crate::sched::thread_count() as u16;
    info[80..82].copy_from_slice(&threads.to_le_bytes());
    info[104..108].copy_from_slice(&1u32.to_le_bytes());
    user::copy_to(buffer, &info)?;
    Ok(0)
}
