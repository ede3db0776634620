//! The Linux syscall table: numbers from `atoll_abi::syscalls::nr`, one file
//! per family. Handlers return `Ok(value)` or `Err(errno)`.

mod credentials;
mod events;
mod fs;
mod futex;
mod io;
mod memory;
mod net;
mod process;
mod random;
mod sched;
mod signal;
mod signalfd;
mod thread;
mod time;
mod timer;
mod xattr;

use atoll_abi::linux::errno::{EINTR, ENOSYS};
use atoll_abi::syscalls::nr;

use crate::arch::x86_64::entry::SyscallFrame;
use crate::signals::state::SA_RESTART;
use crate::signals::{self, Next, Resume};
use crate::trace;

pub use process::resume_forked_child;
pub use signalfd::signal_queued as signalfd_queued;

/// What a handler returns: the syscall's value, or a positive errno.
pub type SysResult = Result<u64, i64>;

/// Linux's internal "interrupted, maybe restart" results. A call that a
/// signal interrupts returns one; the way out turns it into EINTR or a
/// restart, and the program never sees it.
/// Restart unless a handler without SA_RESTART runs.
pub const ERESTARTSYS: i64 = 512;
/// Restart unless a handler runs (sigsuspend, pause).
pub const ERESTARTNOHAND: i64 = 514;
/// Restart (with what is left) unless a handler runs.
pub const ERESTART_RESTARTBLOCK: i64 = 516;

fn is_restart(result: i64) -> bool {
    matches!(
        -result,
        ERESTARTSYS | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
    )
}

/// Called by the syscall entry with the program's registers.
pub extern "C" fn syscall_dispatch(frame: &mut SyscallFrame) {
    let number = frame.rax;
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let rewritten = frame.rewritten != 0;
    if !rewritten && trace::counting() {
        // rcx points just past the `syscall` that trapped.
        trace::count_trap_site(frame.rcx.wrapping_sub(2), frame.cpl);
    }
    if matches!(number, nr::EXIT | nr::EXIT_GROUP | nr::RT_SIGRETURN) {
        // These don't return: count and trace them now, as strace does.
        trace::count(number, 0, rewritten);
        if trace::tracing() {
            trace::trace_exit(number, &args);
        }
        if number == nr::RT_SIGRETURN {
            signals::sigreturn(frame);
        }
    }
    let mut result = call(number, &args, frame);
    // Signals to act on are acted on now, on the way out.
    signals::take_from_host();
    let me = crate::sched::current();
    while signals::has_work(me) || is_restart(result) {
        match signals::next_for_current() {
            Next::Terminate(signal) => signals::terminate(signal),
            // Stopped and continued: the call restarts, or returns.
            Next::Stop(signal) => signals::stop(signal),
            Next::Handle(delivery) => {
                let restart = match -result {
                    ERESTARTSYS => delivery.action.flags & SA_RESTART != 0,
                    _ => false,
                };
                let resume = if restart {
                    Resume::Restart
                } else if is_restart(result) {
                    Resume::Return(-EINTR)
                } else {
                    Resume::Return(result)
                };
                signals::enter_handler_from_syscall(frame, &delivery, resume);
                trace::count(number, result, rewritten);
                return;
            }
            // Nothing to act on after all (it was ignored, or another
            // thread took it): an interrupted call carries on.
            Next::Nothing if is_restart(result) => result = call(number, &args, frame),
            Next::Nothing => break,
        }
    }
    trace::count(number, result, rewritten);
    if trace::tracing() {
        trace::trace_call(number, &args, result);
    }
    frame.rax = result as u64;
}

/// Performs one syscall; its result as the program would see it, or one
/// of the restart codes above. An offloaded call a signal interrupted
/// comes back as ERESTARTSYS; the waits that SA_RESTART never restarts
/// (signal(7)) end with EINTR when a handler runs.
fn call(number: u64, args: &[u64; 6], frame: &SyscallFrame) -> i64 {
    let result = perform(number, args, frame);
    let never_restarted = matches!(
        number,
        nr::POLL
            | nr::PPOLL
            | nr::SELECT
            | nr::PSELECT6
            | nr::EPOLL_WAIT
            | nr::EPOLL_PWAIT
            | nr::EPOLL_PWAIT2
    );
    if never_restarted && result == -ERESTARTSYS {
        -ERESTARTNOHAND
    } else {
        result
    }
}

fn perform(number: u64, args: &[u64; 6], frame: &SyscallFrame) -> i64 {
    let outcome = match number {
        nr::CLONE => Some(thread::clone(frame)),
        nr::FORK | nr::VFORK => Some(process::fork(frame, 0, 0)),
        _ => dispatch(number, args),
    };
    match outcome {
        Some(Ok(value)) => value as i64,
        Some(Err(errno)) => -errno,
        None => {
            trace::warn_unsupported(number);
            -ENOSYS
        }
    }
}

/// Routes one syscall; `None` when we don't implement it.
fn dispatch(number: u64, a: &[u64; 6]) -> Option<SysResult> {
    let result = match number {
        nr::READ => io::read(a[0], a[1], a[2]),
        nr::WRITE => io::write(a[0], a[1], a[2]),
        nr::READV => io::readv(a[0], a[1], a[2]),
        nr::WRITEV => io::writev(a[0], a[1], a[2]),
        nr::CLOSE => io::close(a[0]),
        nr::IOCTL => io::ioctl(a[0], a[1], a[2]),
        nr::FSTAT => io::fstat(a[0], a[1]),
        nr::NEWFSTATAT => io::newfstatat(a[0], a[1], a[2], a[3]),
        nr::POLL => io::poll(a[0], a[1], a[2]),
        nr::PPOLL => io::ppoll(a[0], a[1], a[2], a[3], a[4]),
        nr::LSEEK => io::lseek(a[0], a[1], a[2]),
        nr::SPLICE => io::splice(a[0], a[1], a[2], a[3], a[4], a[5]),
        nr::SENDFILE => io::sendfile(a[0], a[1], a[2], a[3]),
        nr::COPY_FILE_RANGE => io::copy_file_range(a[0], a[1], a[2], a[3], a[4], a[5]),

        nr::BRK => memory::brk(a[0]),
        nr::MMAP => memory::mmap(a[0], a[1], a[2], a[3], a[4], a[5]),
        nr::MUNMAP => memory::munmap(a[0], a[1]),
        nr::MREMAP => memory::mremap(a[0], a[1], a[2], a[3], a[4]),
        nr::MPROTECT => memory::mprotect(a[0], a[1], a[2]),
        nr::MADVISE => memory::madvise(a[0], a[1], a[2]),
        nr::MSYNC => memory::msync(a[0], a[1], a[2]),
        nr::MINCORE => memory::mincore(a[0], a[1], a[2]),

        nr::EXIT_GROUP => process::exit_group(a[0]),
        nr::EXIT => thread::exit(a[0]),
        nr::GETPID => process::getpid(),
        nr::GETTID => thread::gettid(),
        nr::GETPPID => process::getppid(),
        nr::WAIT4 => process::wait4(a[0], a[1], a[2], a[3]),
        nr::EXECVE => process::execveat(atoll_abi::linux::AT_FDCWD, a[0], a[1], a[2], 0),
        nr::EXECVEAT => process::execveat(a[0], a[1], a[2], a[3], a[4]),
        nr::GETPGRP => process::getpgrp(),
        nr::GETPGID => process::group(atoll_abi::queue::group::GETPGID, a[0], 0),
        nr::GETSID => process::group(atoll_abi::queue::group::GETSID, a[0], 0),
        nr::SETPGID => process::group(atoll_abi::queue::group::SETPGID, a[0], a[1]),
        nr::SETSID => process::group(atoll_abi::queue::group::SETSID, 0, 0),
        nr::GETGROUPS => process::getgroups(a[0], a[1]),
        nr::GETUID => credentials::getuid(),
        nr::GETEUID => credentials::geteuid(),
        nr::GETGID => credentials::getgid(),
        nr::GETEGID => credentials::getegid(),
        nr::SETUID => credentials::set_id(a[0], false),
        nr::SETGID => credentials::set_id(a[0], true),
        nr::SETREUID => credentials::set_real_effective(a[0], a[1], false),
        nr::SETREGID => credentials::set_real_effective(a[0], a[1], true),
        nr::SETRESUID => credentials::set_real_effective_saved(a[0], a[1], a[2], false),
        nr::SETRESGID => credentials::set_real_effective_saved(a[0], a[1], a[2], true),
        nr::GETRESUID => credentials::get_real_effective_saved(a[0], a[1], a[2], false),
        nr::GETRESGID => credentials::get_real_effective_saved(a[0], a[1], a[2], true),
        nr::SET_TID_ADDRESS => thread::set_tid_address(a[0]),
        nr::SET_ROBUST_LIST => thread::set_robust_list(a[0], a[1]),
        nr::ARCH_PRCTL => process::arch_prctl(a[0], a[1]),
        nr::PRLIMIT64 => process::prlimit64(a[0], a[1], a[2], a[3]),
        nr::GETRLIMIT => process::prlimit64(0, a[0], 0, a[1]),
        nr::SETRLIMIT => process::prlimit64(0, a[0], a[1], 0),
        nr::UNAME => process::uname(a[0]),
        nr::SYSINFO => process::sysinfo(a[0]),
        nr::PRCTL => process::prctl(a[0], a[1], a[2], a[3], a[4]),
        // Deliberately absent, silently: libc falls back without them
        // (musl's dynamic loader does membarrier with signals to each thread).
        nr::RSEQ | nr::CLONE3 | nr::MEMBARRIER => Err(ENOSYS),
        // An isle has no child processes to wait for.
        nr::WAITID => process::waitid(a[0], a[1], a[2], a[3], a[4]),
        nr::GETRUSAGE => process::getrusage(a[0], a[1]),
        nr::TIMES => process::times(a[0]),

        nr::CLOCK_GETTIME => time::clock_gettime(a[0], a[1]),
        nr::CLOCK_GETRES => time::clock_getres(a[0], a[1]),
        nr::GETTIMEOFDAY => time::gettimeofday(a[0], a[1]),
        nr::TIME => time::time(a[0]),
        nr::NANOSLEEP => time::nanosleep(a[0], a[1]),
        nr::CLOCK_NANOSLEEP => time::clock_nanosleep(a[0], a[1], a[2], a[3]),

        nr::ALARM => timer::alarm(a[0]),
        nr::GETITIMER => timer::getitimer(a[0], a[1]),
        nr::SETITIMER => timer::setitimer(a[0], a[1], a[2]),
        nr::TIMER_CREATE => timer::timer_create(a[0], a[1], a[2]),
        nr::TIMER_SETTIME => timer::timer_settime(a[0], a[1], a[2], a[3]),
        nr::TIMER_GETTIME => timer::timer_gettime(a[0], a[1]),
        nr::TIMER_GETOVERRUN => timer::timer_getoverrun(a[0]),
        nr::TIMER_DELETE => timer::timer_delete(a[0]),

        nr::RT_SIGACTION => signal::rt_sigaction(a[0], a[1], a[2], a[3]),
        nr::RT_SIGPROCMASK => signal::rt_sigprocmask(a[0], a[1], a[2], a[3]),
        nr::SIGALTSTACK => signal::sigaltstack(a[0], a[1]),
        nr::KILL => signal::kill(a[0], a[1]),
        nr::TKILL => signal::tkill(a[0], a[1]),
        nr::TGKILL => signal::tgkill(a[0], a[1], a[2]),
        nr::RT_SIGPENDING => signal::rt_sigpending(a[0], a[1]),
        nr::RT_SIGSUSPEND => signal::rt_sigsuspend(a[0], a[1]),
        nr::PAUSE => signal::pause(),
        nr::RT_SIGTIMEDWAIT => signal::rt_sigtimedwait(a[0], a[1], a[2], a[3]),
        nr::RT_SIGQUEUEINFO => signal::rt_sigqueueinfo_process(a[0], a[1], a[2]),
        nr::RT_TGSIGQUEUEINFO => signal::rt_tgsigqueueinfo(a[0], a[1], a[2], a[3]),
        nr::SIGNALFD => signalfd::signalfd(a[0], a[1], a[2]),
        nr::SIGNALFD4 => signalfd::signalfd4(a[0], a[1], a[2], a[3]),

        nr::FUTEX => return futex::futex(a[0], a[1], a[2], a[3], a[4], a[5]),
        nr::SCHED_GETAFFINITY => sched::sched_getaffinity(a[0], a[1], a[2]),
        nr::SCHED_YIELD => sched::sched_yield(),
        nr::SCHED_SETAFFINITY => sched::sched_setaffinity(a[0], a[1], a[2]),
        nr::GETCPU => sched::getcpu(a[0], a[1]),

        nr::GETRANDOM => random::getrandom(a[0], a[1], a[2]),

        nr::EPOLL_CREATE => events::epoll_create(a[0]),
        nr::EPOLL_CREATE1 => events::epoll_create1(a[0]),
        nr::EPOLL_CTL => events::epoll_ctl(a[0], a[1], a[2], a[3]),
        nr::EPOLL_WAIT => events::epoll_wait(a[0], a[1], a[2], a[3]),
        nr::EPOLL_PWAIT => {
            signal::with_temporary_mask(a[4], a[5], || events::epoll_wait(a[0], a[1], a[2], a[3]))
        }
        nr::EPOLL_PWAIT2 => {
            signal::with_temporary_mask(a[4], a[5], || events::epoll_pwait2(a[0], a[1], a[2], a[3]))
        }
        nr::EVENTFD => events::eventfd2(a[0], 0),
        nr::EVENTFD2 => events::eventfd2(a[0], a[1]),
        nr::TIMERFD_CREATE => events::timerfd_create(a[0], a[1]),
        nr::TIMERFD_SETTIME => events::timerfd_settime(a[0], a[1], a[2], a[3]),
        nr::TIMERFD_GETTIME => events::timerfd_gettime(a[0], a[1]),
        nr::SELECT => events::select(a[0], a[1], a[2], a[3], a[4]),
        nr::PSELECT6 => events::pselect6(a[0], a[1], a[2], a[3], a[4], a[5]),

        nr::SOCKET => net::socket(a[0], a[1], a[2]),
        nr::SOCKETPAIR => net::socketpair(a[0], a[1], a[2], a[3]),
        nr::BIND => net::bind(a[0], a[1], a[2]),
        nr::CONNECT => net::connect(a[0], a[1], a[2]),
        nr::LISTEN => net::listen(a[0], a[1]),
        nr::ACCEPT => net::accept4(a[0], a[1], a[2], 0),
        nr::ACCEPT4 => net::accept4(a[0], a[1], a[2], a[3]),
        nr::GETSOCKNAME => net::getsockname(a[0], a[1], a[2]),
        nr::GETPEERNAME => net::getpeername(a[0], a[1], a[2]),
        nr::SETSOCKOPT => net::setsockopt(a[0], a[1], a[2], a[3], a[4]),
        nr::GETSOCKOPT => net::getsockopt(a[0], a[1], a[2], a[3], a[4]),
        nr::SHUTDOWN => net::shutdown(a[0], a[1]),
        nr::SENDTO => net::sendto(a[0], a[1], a[2], a[3], a[4], a[5]),
        nr::RECVFROM => net::recvfrom(a[0], a[1], a[2], a[3], a[4], a[5]),
        nr::SENDMSG => net::sendmsg(a[0], a[1], a[2]),
        nr::RECVMSG => net::recvmsg(a[0], a[1], a[2]),
        nr::SENDMMSG => net::multiple(true, a[0], a[1], a[2], a[3]),
        nr::RECVMMSG => net::multiple(false, a[0], a[1], a[2], a[3]),

        nr::READLINK => fs::readlink(a[0], a[1], a[2]),
        nr::READLINKAT => fs::readlinkat(a[0], a[1], a[2], a[3]),
        nr::OPEN => fs::open(a[0], a[1], a[2]),
        nr::CREAT => fs::creat(a[0], a[1]),
        nr::OPENAT => fs::openat(a[0], a[1], a[2], a[3]),
        nr::STAT => fs::stat(a[0], a[1]),
        nr::LSTAT => fs::lstat(a[0], a[1]),
        nr::ACCESS => fs::access(a[0], a[1]),
        nr::FACCESSAT => fs::faccessat2(a[0], a[1], a[2], 0),
        nr::FACCESSAT2 => fs::faccessat2(a[0], a[1], a[2], a[3]),
        nr::MKDIR => fs::mkdirat(atoll_abi::linux::AT_FDCWD, a[0], a[1]),
        nr::MKDIRAT => fs::mkdirat(a[0], a[1], a[2]),
        nr::MKNOD => fs::mknodat(atoll_abi::linux::AT_FDCWD, a[0], a[1], a[2]),
        nr::MKNODAT => fs::mknodat(a[0], a[1], a[2], a[3]),
        nr::RMDIR => fs::rmdir(a[0]),
        nr::UNLINK => fs::unlinkat(atoll_abi::linux::AT_FDCWD, a[0], 0),
        nr::UNLINKAT => fs::unlinkat(a[0], a[1], a[2]),
        nr::RENAME => fs::renameat2(
            atoll_abi::linux::AT_FDCWD,
            a[0],
            atoll_abi::linux::AT_FDCWD,
            a[1],
            0,
        ),
        nr::RENAMEAT => fs::renameat2(a[0], a[1], a[2], a[3], 0),
        nr::RENAMEAT2 => fs::renameat2(a[0], a[1], a[2], a[3], a[4]),
        nr::LINK => fs::linkat(
            atoll_abi::linux::AT_FDCWD,
            a[0],
            atoll_abi::linux::AT_FDCWD,
            a[1],
            0,
        ),
        nr::LINKAT => fs::linkat(a[0], a[1], a[2], a[3], a[4]),
        nr::SYMLINK => fs::symlinkat(a[0], atoll_abi::linux::AT_FDCWD, a[1]),
        nr::SYMLINKAT => fs::symlinkat(a[0], a[1], a[2]),
        nr::CHDIR => fs::chdir(a[0]),
        nr::FCHDIR => fs::fchdir(a[0]),
        nr::GETCWD => fs::getcwd(a[0], a[1]),
        nr::UMASK => fs::umask(a[0]),
        nr::CHMOD => fs::chmod(a[0], a[1]),
        nr::FCHMOD => fs::fchmod(a[0], a[1]),
        nr::FCHMODAT => fs::fchmodat(a[0], a[1], a[2]),
        nr::UTIMENSAT => fs::utimensat(a[0], a[1], a[2], a[3]),
        nr::STATFS => fs::statfs(a[0], a[1]),
        nr::FSTATFS => fs::fstatfs(a[0], a[1]),
        nr::TRUNCATE => fs::truncate(a[0], a[1]),
        nr::STATX => fs::statx(a[0], a[1], a[2], a[3], a[4]),
        nr::FLOCK => fs::flock(a[0], a[1]),
        nr::FALLOCATE => fs::fallocate(a[0], a[1], a[2], a[3]),
        nr::CHOWN => fs::fchownat(atoll_abi::linux::AT_FDCWD, a[0], a[1], a[2], 0),
        nr::LCHOWN => fs::fchownat(atoll_abi::linux::AT_FDCWD, a[0], a[1], a[2], 0x100),
        nr::FCHOWN => fs::fchown(a[0], a[1], a[2]),
        nr::FCHOWNAT => fs::fchownat(a[0], a[1], a[2], a[3], a[4]),
        nr::SYNC => fs::sync(),
        nr::GETDENTS64 => io::getdents64(a[0], a[1], a[2]),
        nr::PREAD64 => io::pread64(a[0], a[1], a[2], a[3]),
        nr::PREADV => io::preadv(a[0], a[1], a[2], a[3]),
        nr::PWRITEV => io::pwritev(a[0], a[1], a[2], a[3]),
        nr::PREADV2 => io::preadv2(a[0], a[1], a[2], a[3], a[5]),
        nr::PWRITEV2 => io::pwritev2(a[0], a[1], a[2], a[3], a[5]),
        nr::CLOSE_RANGE => io::close_range(a[0], a[1], a[2]),
        nr::PWRITE64 => io::pwrite64(a[0], a[1], a[2], a[3]),
        nr::DUP => io::dup(a[0]),
        nr::DUP2 => io::dup2(a[0], a[1]),
        nr::DUP3 => io::dup3(a[0], a[1], a[2]),
        nr::FCNTL => io::fcntl(a[0], a[1], a[2]),
        nr::PIPE => io::pipe2(a[0], 0),
        nr::PIPE2 => io::pipe2(a[0], a[1]),
        nr::FSYNC => io::fsync(a[0], false),
        nr::FDATASYNC => io::fsync(a[0], true),
        nr::FTRUNCATE => io::ftruncate(a[0], a[1]),
        nr::FADVISE64 => io::fadvise64(a[0], a[3]),

        nr::GETXATTR | nr::LGETXATTR | nr::FGETXATTR => {
            xattr::getxattr(xattr_file(number, a[0]), a[1])
        }
        nr::LISTXATTR | nr::LLISTXATTR | nr::FLISTXATTR => {
            xattr::listxattr(xattr_file(number, a[0]))
        }
        nr::SETXATTR
        | nr::LSETXATTR
        | nr::FSETXATTR
        | nr::REMOVEXATTR
        | nr::LREMOVEXATTR
        | nr::FREMOVEXATTR => xattr::setxattr(xattr_file(number, a[0]), a[1]),
        _ => return None,
    };
    Some(result)
}

/// The file an xattr call names: its first argument, a path (followed or
/// not, as the call's l- prefix says) or an fd (the f- calls).
fn xattr_file(number: u64, first: u64) -> xattr::File {
    match number {
        nr::FGETXATTR | nr::FLISTXATTR | nr::FSETXATTR | nr::FREMOVEXATTR => xattr::File::Fd(first),
        nr::LGETXATTR | nr::LLISTXATTR | nr::LSETXATTR | nr::LREMOVEXATTR => xattr::File::Path {
            path: first,
            follow: false,
        },
        _ => xattr::File::Path {
            path: first,
            follow: true,
        },
    }
}
