//! POSIX signals, as Linux delivers them: dispositions per process, masks
//! and pending sets per thread (and one shared by the process), handlers
//! run on the program's stack in Linux's frame, rt_sigreturn back.
//!
//! A signal is acted on when its thread next leaves the kernel: at the end
//! of a syscall, after rt_sigreturn, or at a preemption upcall. Sending
//! one to a thread blocked in the kernel (futex, sleep, sigsuspend) wakes
//! it; the call then ends with EINTR or is restarted, as Linux decides.
//! `state` holds the bookkeeping, `frame` the stack frame.

pub mod frame;
pub mod state;
pub mod timers;

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use atoll_abi::boot::PreemptFrame;
use spin::{Mutex, MutexGuard};

use crate::arch::x86_64::cpu;
use crate::arch::x86_64::entry::{self, SyscallFrame};
use crate::sched::{self, MAX_THREADS};
use crate::trace::{self, LineBuffer};
use state::{AltStack, Signals, SIGPIPE, SIGSEGV, SI_USER, SS_AUTODISARM};
pub use state::{Delivery, Info, Next, Sent, Target};

static SIGNALS: Mutex<Signals> = Mutex::new(Signals::NEW);

/// Per thread: it has a signal to act on. Read without the lock on every
/// syscall's way out; written under it.
static WORK: [AtomicBool; MAX_THREADS] = [const { AtomicBool::new(false) }; MAX_THREADS];

/// What execve carries over: the calling thread's mask, and the signals
/// the program ignores.
pub fn exec_state() -> atoll_abi::boot::ExecSignals {
    let signals = SIGNALS.lock();
    let ignored = (1..=state::SIGNAL_COUNT as u32)
        .filter(|&signal| signals.action(signal).handler == state::SIG_IGN)
        .fold(0u64, |set, signal| set | 1 << (signal - 1));
    atoll_abi::boot::ExecSignals {
        blocked: signals.threads[sched::current()].mask,
        ignored,
    }
}

/// At boot: what the program before an execve left (nothing at first).
pub fn init(boot: &atoll_abi::boot::BootInfo) {
    let mut signals = SIGNALS.lock();
    signals.threads[0].mask = boot.signals.blocked & !state::UNBLOCKABLE;
    for signal in 1..=state::SIGNAL_COUNT as u32 {
        let bit = 1u64 << (signal - 1);
        if boot.signals.ignored & bit & !state::UNBLOCKABLE != 0 {
            signals.actions[signal as usize - 1].handler = state::SIG_IGN;
        }
    }
    refresh_all(&signals);
}

/// In a forked child: dispositions, the forking thread's mask and
/// alternate stack carry over; nothing is pending and no timer runs, as
/// fork(2) says. Thread `slot` is the child's only thread.
pub fn reset_after_fork(slot: usize) {
    let mut signals = SIGNALS.lock();
    let kept = signals.threads[slot];
    signals.shared = state::Pending::EMPTY;
    signals.threads = [state::ThreadSignals::NEW; MAX_THREADS];
    signals.threads[slot].mask = kept.mask;
    signals.threads[slot].alt_stack = kept.alt_stack;
    for work in &WORK {
        work.store(false, Ordering::Relaxed);
    }
    drop(signals);
    timers::reset_after_fork();
}

/// The signal state, locked; `refresh_*` after changing it.
pub fn lock() -> MutexGuard<'static, Signals> {
    SIGNALS.lock()
}

/// Recomputes `slot`'s work flag after its mask, waits or pending changed.
pub fn refresh_thread(signals: &Signals, slot: usize) {
    WORK[slot].store(signals.has_work(slot), Ordering::SeqCst);
}

/// Recomputes every thread's work flag after the shared set changed.
pub fn refresh_all(signals: &Signals) {
    for (slot, work) in WORK.iter().enumerate() {
        work.store(signals.has_work(slot), Ordering::SeqCst);
    }
}

/// Whether thread `slot` has a signal to act on (or to end a wait for).
pub fn has_work(slot: usize) -> bool {
    slot < MAX_THREADS && WORK[slot].load(Ordering::SeqCst)
}

/// Sends the signals the monitor passed on from the host (Ctrl-C, `atoll
/// stop`) to the process, as a kill(2) from outside the isle.
pub fn take_from_host() {
    let mut pending = cpu::take_host_signals();
    while pending != 0 {
        let signal = pending.trailing_zeros() + 1;
        pending &= pending - 1;
        let info = Info {
            signal,
            code: SI_USER,
            ..Info::default()
        };
        // Whoever sent it knows why the program ends: no report (a shell
        // says nothing of a Ctrl-C either).
        if let Sent::Terminate(signal) = queue(Target::Process, info) {
            crate::end_isle_killed(signal);
        }
    }
}

/// Sends `info` to a thread or to the process, and wakes whoever must see
/// it. A fatal default action ends the isle here.
pub fn send(target: Target, info: Info) {
    if let Sent::Terminate(signal) = queue(target, info) {
        terminate(signal);
    }
}

/// [`send`], but a fatal default action is the caller's to carry out.
fn queue(target: Target, info: Info) -> Sent {
    // An idle CPU's context when the sender is the host.
    let me = sched::current_context();
    let live = sched::live_threads();
    let sent = {
        let mut signals = lock();
        let sent = signals.send(target, info, live.iter(), me);
        match target {
            Target::Thread(slot) => refresh_thread(&signals, slot),
            Target::Process => refresh_all(&signals),
        }
        sent
    };
    if let Sent::Queued(receiver) = sent {
        // Pending now: a signalfd waiting for it becomes readable.
        #[cfg(not(test))]
        crate::linux::signalfd_queued(info.signal);
        if let Some(slot) = receiver.filter(|&slot| slot != me) {
            sched::interrupt(slot);
        }
    }
    sent
}

/// Exception vectors whose faults in program code become signals a
/// handler may catch: #DE, #UD, #GP, #PF, #AC, #XM. Debug traps (#DB, #BP)
/// stay the monitor's, for its debugger.
pub const FAULT_UPCALL_VECTORS: u32 =
    (1 << 0) | (1 << 6) | (1 << 13) | (1 << 14) | (1 << 17) | (1 << 19);

/// Routes faults to the kernel exactly while one has a handler.
pub fn publish_fault_handlers(signals: &Signals) {
    crate::arch::x86_64::cpu::set_fault_upcall(signals.fault_handled());
}

/// The signal, si_code and si_addr Linux gives for exception `vector`.
fn fault_info(vector: u64, error_code: u64, cr2: u64, context: &PreemptFrame) -> Info {
    const SIGFPE: u32 = state::SIGFPE;
    let (signal, code, address) = match vector {
        0 => (SIGFPE, 1, context.rip),        // FPE_INTDIV
        6 => (state::SIGILL, 2, context.rip), // ILL_ILLOPN
        14 => {
            // SEGV_ACCERR where something is mapped but may not be touched
            // so, SEGV_MAPERR where nothing is.
            let mapped = error_code & 1 != 0 || crate::mm::is_mapped(cr2 & !0xfff, 1);
            (SIGSEGV, if mapped { 2 } else { 1 }, cr2)
        }
        17 => (state::SIGBUS, 1, context.rip), // BUS_ADRALN
        19 => (SIGFPE, simd_fault_code(), context.rip),
        _ => (SIGSEGV, state::SI_KERNEL, 0),
    };
    Info {
        signal,
        code,
        address_or_value: address,
        ..Info::default()
    }
}

/// FPE_* for an SSE exception, from the unmasked flags MXCSR holds.
fn simd_fault_code() -> i32 {
    let mxcsr = crate::arch::x86_64::switch::mxcsr();
    let raised = mxcsr & !(mxcsr >> 7) & 0x3f;
    match raised {
        r if r & 0x01 != 0 => 7, // FPE_FLTINV
        r if r & 0x04 != 0 => 3, // FPE_FLTDIV
        r if r & 0x08 != 0 => 4, // FPE_FLTOVF
        r if r & 0x12 != 0 => 5, // FPE_FLTUND
        r if r & 0x20 != 0 => 6, // FPE_FLTRES
        _ => 0,
    }
}

/// Entered from the fault pad (see `FAULT_UPCALL_VECTORS`) with the
/// program's registers: its handler runs, or the monitor hears of the
/// fault as if the kernel had not been asked.
pub extern "C" fn faulted(frame: &mut PreemptFrame) {
    let (context, vector, error_code, cr2) = crate::arch::x86_64::cpu::fault_report();
    *frame = context;
    let info = fault_info(vector, error_code, cr2, frame);
    let me = sched::current();
    let next = {
        let mut signals = lock();
        let next = signals.fault(me, info);
        refresh_thread(&signals, me);
        next
    };
    match next {
        Next::Handle(delivery) => enter_handler(frame, &delivery),
        _ => report_fault_to_monitor(frame, vector, error_code),
    }
}

/// The monitor's FAULT report of a program fault, as the pad gives it.
fn report_fault_to_monitor(context: &PreemptFrame, vector: u64, error_code: u64) -> ! {
    use atoll_abi::layout::selector;
    let report = atoll_abi::boot::ExceptionFrame {
        vector,
        error_code,
        rip: context.rip,
        cs: u64::from(selector::USER_CODE),
        rflags: context.rflags,
        rsp: context.rsp,
        ss: u64::from(selector::USER_DATA),
    };
    // On this thread's kernel stack, which is guest RAM mapped one to one:
    // its address is the one the monitor reads.
    let address = &report as *const atoll_abi::boot::ExceptionFrame as u64;
    loop {
        crate::arch::x86_64::cpu::doorbell(atoll_abi::mmio::FAULT, address);
    }
}

/// The next signal the running thread acts on.
pub fn next_for_current() -> Next {
    let me = sched::current();
    let mut signals = lock();
    let next = signals.next(me);
    refresh_thread(&signals, me);
    next
}

/// A thread was created by `creator`.
pub fn thread_created(slot: usize, creator: usize) {
    let mut signals = lock();
    signals.thread_created(slot, creator);
    refresh_thread(&signals, slot);
}

/// Ends the isle as `signal`'s default action does.
pub fn terminate(signal: u32) -> ! {
    // A shell reports a SIGPIPE death silently; so does atoll. A forked
    // child's death is its parent's to report, as natively.
    if signal != SIGPIPE && crate::boot_info().generation == 0 {
        let mut line = LineBuffer::<128>::new();
        let _ = writeln!(line, "atoll: program killed by {}", name(signal));
        trace::log(line.as_bytes());
    }
    crate::end_isle_killed(signal)
}

/// A stop signal's default action: the host stops this process, and this
/// returns once it is continued.
pub fn stop(signal: u32) {
    let _ = crate::offload::call(
        atoll_abi::queue::Opcode::Stop,
        [u64::from(signal), 0, 0, 0, 0, 0],
    );
}

/// Whether the running thread blocks or ignores `signal`.
pub fn blocked_or_ignored(signal: u32) -> bool {
    lock().blocks_or_ignores(sched::current(), signal)
}

/// After the host sent `signal` to this process's group: waits (a
/// moment at most) for the monitor to pass it on, so it is acted on
/// before the call that raised it goes on, as Linux's own would be.
pub fn await_own_signal() {
    let me = sched::current();
    let deadline = crate::time::monotonic_ns() + 100_000_000;
    while !has_work(me) && crate::time::monotonic_ns() < deadline {
        take_from_host();
        core::hint::spin_loop();
    }
}

/// The running thread's extended-state save area and what it holds.
fn extended_state() -> frame::ExtendedState {
    let (mask, size, area) = sched::extended_state_of_current();
    frame::ExtendedState { mask, size, area }
}

/// Turns `context` into the entry of `delivery`'s handler, its frame
/// pushed; a stack that can't take the frame gets SIGSEGV, which ends the
/// isle (as Linux's force_sigsegv does).
pub fn enter_handler(context: &mut PreemptFrame, delivery: &Delivery) {
    let fpu = extended_state();
    match frame::push(context, delivery, &fpu) {
        Ok(entered_alt_stack) => {
            if entered_alt_stack && delivery.alt_stack.flags & SS_AUTODISARM != 0 {
                lock().threads[sched::current()].alt_stack = AltStack::DISABLED;
            }
            if frame::reset_extended_state(&fpu).is_err() {
                terminate(SIGSEGV);
            }
        }
        Err(_) => terminate(SIGSEGV),
    }
}

/// How a syscall interrupted by a handler carries on once it returns.
pub enum Resume {
    /// The program sees `result`.
    Return(i64),
    /// The call is made again, as Linux restarts it.
    Restart,
}

/// Runs `delivery`'s handler on the way out of the syscall in `frame`.
pub fn enter_handler_from_syscall(frame: &mut SyscallFrame, delivery: &Delivery, resume: Resume) {
    let (rax, rip) = match resume {
        Resume::Return(result) => (result as u64, frame.rcx),
        // Back to the `syscall` instruction with the call's number, as
        // Linux restarts; rewritten sites keep theirs (it then traps once).
        Resume::Restart => (frame.rax, frame.rcx.wrapping_sub(2)),
    };
    let mut context = PreemptFrame {
        rax,
        rbx: frame.rbx,
        rcx: frame.rcx,
        rdx: frame.rdx,
        rsi: frame.rsi,
        rdi: frame.rdi,
        rbp: frame.rbp,
        r8: frame.r8,
        r9: frame.r9,
        r10: frame.r10,
        r11: frame.r11,
        r12: frame.r12,
        r13: frame.r13,
        r14: frame.r14,
        r15: frame.r15,
        rip,
        rflags: frame.r11,
        rsp: frame.user_rsp,
    };
    enter_handler(&mut context, delivery);
    frame.rcx = context.rip;
    frame.r11 = context.rflags;
    frame.user_rsp = context.rsp;
    frame.rdi = context.rdi;
    frame.rsi = context.rsi;
    frame.rdx = context.rdx;
    frame.rax = context.rax;
}

/// Acts on the running thread's signals before it returns to `context`
/// (a preemption upcall, or rt_sigreturn): a handler's entry replaces it.
pub fn deliver_before_return(context: &mut PreemptFrame) {
    while has_work(sched::current()) {
        match next_for_current() {
            Next::Nothing => return,
            Next::Terminate(signal) => terminate(signal),
            Next::Stop(signal) => stop(signal),
            Next::Handle(delivery) => return enter_handler(context, &delivery),
        }
    }
}

/// rt_sigreturn: back to where the handler interrupted, with the registers,
/// mask, alternate stack and extended state its frame holds now.
pub fn sigreturn(syscall: &SyscallFrame) -> ! {
    let me = sched::current();
    let fpu = extended_state();
    // The handler's `ret` popped the restorer's address off the frame.
    let frame_address = syscall.user_rsp.wrapping_sub(8);
    let Ok(restored) = frame::pop(frame_address, syscall.r11, &fpu) else {
        terminate(SIGSEGV);
    };
    {
        let mut signals = lock();
        let thread = &mut signals.threads[me];
        thread.mask = restored.mask & !state::UNBLOCKABLE;
        // As Linux's restore_altstack: not while running on the stack
        // (sigaltstack's EPERM), and invalid settings change nothing.
        if !thread.alt_stack.contains(syscall.user_rsp) {
            if let Ok(stack) = linux_alt_stack(restored.alt_stack) {
                thread.alt_stack = stack;
            }
        }
        refresh_thread(&signals, me);
    }
    let mut context = restored.context;
    deliver_before_return(&mut context);
    entry::return_to_program(&context)
}

/// Smallest alternate stack sigaltstack(2) takes.
pub const MINSIGSTKSZ: u64 = 2048;

/// The alternate stack `requested` sets, or the errno sigaltstack gives.
pub fn linux_alt_stack(requested: AltStack) -> Result<AltStack, i64> {
    use atoll_abi::linux::errno::{EINVAL, ENOMEM};
    let mode = requested.flags & !SS_AUTODISARM;
    if mode != 0 && mode != state::SS_DISABLE && mode != state::SS_ONSTACK {
        return Err(EINVAL);
    }
    if mode == state::SS_DISABLE {
        return Ok(AltStack::DISABLED);
    }
    if requested.size < MINSIGSTKSZ {
        return Err(ENOMEM);
    }
    Ok(AltStack {
        flags: requested.flags & SS_AUTODISARM,
        ..requested
    })
}

pub fn name(signal: u32) -> &'static str {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES
        .get((signal as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("SIGRT")
}
