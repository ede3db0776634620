//! The scheduler: one core, one thread.
//!
//! Threads live in a fixed table under one lock. A new or woken thread goes
//! to the shared run queue, where an idle CPU (spinning, or parked in the
//! monitor and kicked) picks it up. A thread gives up its CPU only inside
//! the kernel: when it blocks (futex, sleep, offloaded I/O), yields, exits,
//! or is preempted by the monitor's upcall (see `preempt`). Each CPU also
//! has an idle context on its boot stack that polls, then parks its vCPU.
//!
//! Switching out: the lock is released before the switch; a thread stays
//! `ON_CPU` until the CPU that ran it has left its stack, and no other CPU
//! switches to it before then.

pub mod futex;

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use atoll_abi::boot::BootInfo;
use atoll_abi::layout::{align_up, MAX_CPUS, PAGE_SIZE};
use atoll_abi::linux::errno::EAGAIN;
use atoll_abi::{mmio, xstate};
use spin::{Mutex, MutexGuard};

use crate::arch::x86_64::entry::SyscallFrame;
use crate::arch::x86_64::{cpu, switch, user};
use crate::{mm, offload, time};

/// Most threads an isle can have at once.
pub const MAX_THREADS: usize = 256;
/// Thread slots, then one idle context per CPU.
pub const CONTEXTS: usize = MAX_THREADS + MAX_CPUS;
/// Each thread's kernel stack (syscalls run on it, and it holds a blocked
/// thread's kernel frames).
const KERNEL_STACK_SIZE: u64 = 32 << 10;
/// How long an idle CPU polls before parking its vCPU.
const IDLE_SPIN_NS: u64 = 50_000;
/// Sleeps shorter than this spin instead of blocking.
const SPIN_SLEEP_NS: u64 = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Free,
    Runnable,
    Running,
    Blocked,
    /// Exited; its kernel stack is freed once no CPU runs on it.
    Dead,
}

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    None,
    Futex {
        key: u64,
        bitset: u32,
    },
    Sleep,
    Io,
    /// sigsuspend, pause, sigtimedwait: until a signal is to be acted on.
    Signal,
}

impl Wait {
    /// Whether a signal ends the wait (offloaded I/O runs to completion).
    fn interruptible(self) -> bool {
        matches!(self, Wait::Futex { .. } | Wait::Sleep | Wait::Signal)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Thread {
    pub tid: u32,
    pub state: State,
    pub wait: Wait,
    /// CLOCK_MONOTONIC ns at which a blocked thread times out (0: never).
    pub deadline: u64,
    /// What the blocking call returns once woken.
    pub wake_result: i64,
    pub stack_base: u64,
    pub stack_top: u64,
    pub xsave_area: u64,
    pub fs_base: u64,
    pub clear_child_tid: u64,
    pub robust_list: u64,
    pub robust_list_len: u64,
    /// CPUs it may run on (bit per CPU).
    pub affinity: u64,
    /// When it started waiting: futex wakes go first come, first served.
    pub wait_seq: u64,
}

const FREE_THREAD: Thread = Thread {
    tid: 0,
    state: State::Free,
    wait: Wait::None,
    deadline: 0,
    wake_result: 0,
    stack_base: 0,
    stack_top: 0,
    xsave_area: 0,
    fs_base: 0,
    clear_child_tid: 0,
    robust_list: 0,
    robust_list_len: 0,
    affinity: u64::MAX,
    wait_seq: 0,
};

pub struct Scheduler {
    pub threads: [Thread; MAX_THREADS],
    queue: [u16; MAX_THREADS],
    queue_head: usize,
    queue_len: usize,
    next_tid: u32,
    /// Threads that exist (not Free, not Dead).
    live: usize,
    wait_seq: u64,
}

static SCHED: Mutex<Scheduler> = Mutex::new(Scheduler::EMPTY);

static SAVED_RSP: [AtomicU64; CONTEXTS] = [const { AtomicU64::new(0) }; CONTEXTS];
static ON_CPU: [AtomicBool; CONTEXTS] = [const { AtomicBool::new(false) }; CONTEXTS];
static CURRENT: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(usize::MAX) }; MAX_CPUS];
static PREVIOUS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(usize::MAX) }; MAX_CPUS];
/// Run queue length, readable without the lock.
static QUEUED: AtomicUsize = AtomicUsize::new(0);
/// Per CPU: BUSY, SPINNING (idle, polling) or PARKED (idle, in the monitor).
static CPU_STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(BUSY) }; MAX_CPUS];
const BUSY: u8 = 0;
const SPINNING: u8 = 1;
const PARKED: u8 = 2;
static CPU_COUNT: AtomicUsize = AtomicUsize::new(1);
/// Earliest timed wait (0: none); the scheduler lock orders its updates.
static NEXT_DEADLINE: AtomicU64 = AtomicU64::new(0);

/// Shares the run queue length and the earliest deadline, of a timed
/// wait or a timer, with the monitor.
pub fn publish_hints() {
    cpu::publish_sched_hints(QUEUED.load(Ordering::Relaxed) as u64, next_deadline());
}

/// The earliest of the earliest timed wait and the earliest timer (0: none).
fn next_deadline() -> u64 {
    let waits = NEXT_DEADLINE.load(Ordering::Relaxed);
    match crate::signals::timers::next_expiry() {
        0 => waits,
        timer if waits == 0 => timer,
        timer => timer.min(waits),
    }
}
/// Each thread's save area, sized at boot from the XCR0 in force.
static XSTATE: spin::Once<xstate::Layout> = spin::Once::new();
/// What `xsave`/`xrstor` move at a switch: the layout's components, the
/// dynamic ones (AMX tile data) only once the program asked for them with
/// `arch_prctl(ARCH_REQ_XCOMP_PERM)`. Process-wide, as on Linux, and never
/// taken back.
static XSAVE_MASK: AtomicU64 = AtomicU64::new(0);

pub fn idle_context(cpu: usize) -> usize {
    MAX_THREADS + cpu
}

pub fn cpu_index() -> usize {
    cpu::cpu_index()
}

pub fn cpu_count() -> usize {
    CPU_COUNT.load(Ordering::Relaxed)
}

/// The context running on this CPU: a thread slot, or this CPU's idle context.
pub fn current_context() -> usize {
    CURRENT[cpu_index()].load(Ordering::Relaxed)
}

/// The running thread's slot (syscalls only come from threads).
pub fn current() -> usize {
    let context = current_context();
    debug_assert!(context < MAX_THREADS);
    context
}

pub fn lock() -> MutexGuard<'static, Scheduler> {
    SCHED.lock()
}

impl Scheduler {
    /// No threads, nothing queued.
    const EMPTY: Scheduler = Scheduler {
        threads: [FREE_THREAD; MAX_THREADS],
        queue: [0; MAX_THREADS],
        queue_head: 0,
        queue_len: 0,
        next_tid: 0,
        live: 0,
        wait_seq: 0,
    };

    fn enqueue(&mut self, slot: usize) {
        let tail = (self.queue_head + self.queue_len) % MAX_THREADS;
        self.queue[tail] = slot as u16;
        self.queue_len += 1;
        QUEUED.store(self.queue_len, Ordering::SeqCst);
        publish_hints();
    }

    /// Takes the first runnable thread allowed on `cpu`.
    fn pick(&mut self, cpu: usize) -> Option<usize> {
        for offset in 0..self.queue_len {
            let position = (self.queue_head + offset) % MAX_THREADS;
            let slot = usize::from(self.queue[position]);
            if self.threads[slot].affinity & (1 << cpu) == 0 {
                continue;
            }
            // Close the gap: shift the earlier entries up by one.
            for back in (0..offset).rev() {
                let from = (self.queue_head + back) % MAX_THREADS;
                let to = (self.queue_head + back + 1) % MAX_THREADS;
                self.queue[to] = self.queue[from];
            }
            self.queue_head = (self.queue_head + 1) % MAX_THREADS;
            self.queue_len -= 1;
            QUEUED.store(self.queue_len, Ordering::SeqCst);
            publish_hints();
            return Some(slot);
        }
        None
    }

    /// Makes a blocked thread runnable with `result` as its call's return.
    pub fn wake(&mut self, slot: usize, result: i64) -> bool {
        let thread = &mut self.threads[slot];
        if thread.state != State::Blocked {
            return false;
        }
        thread.state = State::Runnable;
        thread.wait = Wait::None;
        thread.deadline = 0;
        thread.wake_result = result;
        self.enqueue(slot);
        true
    }

    pub fn thread_by_tid(&self, tid: u32) -> Option<usize> {
        self.threads
            .iter()
            .position(|t| t.tid == tid && !matches!(t.state, State::Free | State::Dead))
    }

    /// Wakes blocked threads whose deadline has passed; returns the earliest
    /// deadline still pending (0: none).
    fn wake_expired(&mut self, now: u64) -> u64 {
        let mut earliest = 0;
        for slot in 0..MAX_THREADS {
            let thread = self.threads[slot];
            if thread.state != State::Blocked || thread.deadline == 0 {
                continue;
            }
            if thread.deadline <= now {
                let result = if thread.wait == Wait::Sleep {
                    0
                } else {
                    -atoll_abi::linux::errno::ETIMEDOUT
                };
                self.wake(slot, result);
            } else if earliest == 0 || thread.deadline < earliest {
                earliest = thread.deadline;
            }
        }
        NEXT_DEADLINE.store(earliest, Ordering::Relaxed);
        publish_hints();
        earliest
    }

    /// Frees the kernel stacks of exited threads no CPU runs on any more.
    fn reap(&mut self) {
        for (slot, thread) in self.threads.iter_mut().enumerate() {
            if thread.state == State::Dead && !ON_CPU[slot].load(Ordering::Acquire) {
                free_stack(thread.stack_base);
                *thread = FREE_THREAD;
            }
        }
    }
}

/// The save area's layout; the kernel sizes it in `init`, before any thread.
pub fn xstate_layout() -> xstate::Layout {
    *XSTATE.get().expect("the xsave layout is set up at boot")
}

fn xsave_size() -> u64 {
    xstate_layout().size
}

/// What `xsave`/`xrstor` move at a switch.
fn xsave_mask() -> u64 {
    XSAVE_MASK.load(Ordering::Acquire)
}

/// Lets the program use the dynamic components in `requested`
/// (ARCH_REQ_XCOMP_PERM); false when the CPU doesn't offer them all.
pub fn permit_dynamic_xstate(requested: u64) -> bool {
    let layout = xstate_layout();
    if layout.components & requested != requested {
        return false;
    }
    if requested & xstate::DYNAMIC != 0 {
        XSAVE_MASK.store(layout.save_mask(true), Ordering::Release);
    }
    true
}

/// The components the program has permission for (ARCH_GET_XCOMP_PERM).
pub fn permitted_xstate() -> u64 {
    xsave_mask()
}

/// Sizes the save area from the XCR0 really in force and CPUID leaf 0xD;
/// a CPU whose state can't be saved safely stops the isle here, before any
/// thread could overrun its area.
fn size_extended_state() {
    let xcr0 = switch::xcr0();
    match xstate::layout(xcr0, cpu::cpuid) {
        Ok(layout) => {
            XSTATE.call_once(|| layout);
            XSAVE_MASK.store(layout.save_mask(false), Ordering::Release);
        }
        // The monitor refuses such a CPU before boot; this is the backstop
        // for an XCR0 it didn't predict.
        Err(error) => panic!("this CPU's extended state can't be saved (XCR0 {xcr0:#x}): {error}"),
    }
}

/// Kernel stacks of exited threads, kept for the next threads: a new
/// mapping would have to be zeroed, a kernel stack doesn't.
static SPARE_STACKS: Mutex<([u64; SPARE_STACK_COUNT], usize)> =
    Mutex::new(([0; SPARE_STACK_COUNT], 0));
const SPARE_STACK_COUNT: usize = 64;

fn stack_allocation_size() -> u64 {
    KERNEL_STACK_SIZE + align_up(xsave_size(), PAGE_SIZE)
}

/// Allocates a kernel stack with the xsave area above it.
fn allocate_stack() -> Result<(u64, u64, u64), i64> {
    let spare = {
        let mut spares = SPARE_STACKS.lock();
        let (stacks, count) = &mut *spares;
        (*count > 0).then(|| {
            *count -= 1;
            stacks[*count]
        })
    };
    let base = match spare {
        Some(base) => base,
        None => mm::map_anonymous(
            0,
            stack_allocation_size(),
            mm::Placement::Anywhere,
            mm::Access::ReadWrite,
        )?,
    };
    let top = base + KERNEL_STACK_SIZE;
    Ok((base, top, top))
}

fn free_stack(base: u64) {
    let mut spares = SPARE_STACKS.lock();
    let (stacks, count) = &mut *spares;
    if *count < SPARE_STACK_COUNT {
        stacks[*count] = base;
        *count += 1;
    } else {
        drop(spares);
        let _ = mm::unmap(base, stack_allocation_size());
    }
}

/// Sets up scheduling on the boot CPU and makes the program's main thread.
pub fn init(boot: &BootInfo) {
    CPU_COUNT.store(
        (boot.cpu_count as usize).clamp(1, MAX_CPUS),
        Ordering::Relaxed,
    );
    size_extended_state();
    let (stack_base, stack_top, xsave_area) =
        allocate_stack().expect("memory for the main thread's kernel stack");
    let frame = SyscallFrame {
        cpl: switch::current_cpl(),
        rcx: boot.program.entry,
        r11: 0x202,
        user_rsp: boot.program.stack_pointer,
        ..SyscallFrame::default()
    };
    // A fresh program starts with x87/SSE in their initial state. xrstor
    // loads MXCSR (and the x87 control word) from the area whatever the
    // header says, so they need their reset values, not zeros.
    let _ = user::fill(xsave_area, xsave_size(), 0);
    let _ = user::write(xsave_area, 0x037f_u16);
    let _ = user::write(xsave_area + 24, 0x1f80_u32);
    SAVED_RSP[0].store(
        switch::prepare_new_thread(stack_top, &frame),
        Ordering::Relaxed,
    );
    let mut sched = SCHED.lock();
    sched.threads[0] = Thread {
        tid: boot.identity.pid,
        state: State::Runnable,
        stack_base,
        stack_top,
        xsave_area,
        ..FREE_THREAD
    };
    sched.next_tid = boot.identity.pid + 1;
    sched.live = 1;
    sched.enqueue(0);
}

/// Saves the calling thread's x87/SSE/AVX state to its area (where a
/// forked child's copy of it is restored from).
pub fn save_extended_state_of_current() {
    let area = SCHED.lock().threads[current()].xsave_area;
    switch::save_extended_state(area, xsave_mask());
}

/// In a forked child, before any CPU runs: of the parent's threads only
/// `slot` goes on, as thread `tid`, returning to the program with `frame`
/// (fork's 0 in rax) and its extended state as saved in its area. The
/// others' kernel stacks are freed; their program stacks stay mapped, as
/// in a Linux child.
pub fn resume_after_fork(
    slot: usize,
    frame: &SyscallFrame,
    fs_base: u64,
    tid: u32,
    clear_child_tid: u64,
) {
    let mut sched = SCHED.lock();
    for (other, thread) in sched.threads.iter_mut().enumerate() {
        if other != slot && thread.state != State::Free {
            free_stack(thread.stack_base);
            *thread = FREE_THREAD;
        }
    }
    let thread = &mut sched.threads[slot];
    *thread = Thread {
        tid,
        state: State::Runnable,
        stack_base: thread.stack_base,
        stack_top: thread.stack_top,
        xsave_area: thread.xsave_area,
        fs_base,
        clear_child_tid,
        affinity: thread.affinity,
        ..FREE_THREAD
    };
    let stack_top = thread.stack_top;
    for on_cpu in &ON_CPU {
        on_cpu.store(false, Ordering::Relaxed);
    }
    for cpu in 0..MAX_CPUS {
        CURRENT[cpu].store(usize::MAX, Ordering::Relaxed);
        PREVIOUS[cpu].store(usize::MAX, Ordering::Relaxed);
        CPU_STATE[cpu].store(BUSY, Ordering::Relaxed);
    }
    SAVED_RSP[slot].store(
        switch::prepare_new_thread(stack_top, frame),
        Ordering::Relaxed,
    );
    NEXT_DEADLINE.store(0, Ordering::Relaxed);
    sched.queue_head = 0;
    sched.queue_len = 0;
    sched.next_tid = tid + 1;
    sched.live = 1;
    sched.enqueue(slot);
}

/// Every CPU's life after boot: run threads, poll, park.
pub fn run_cpu() -> ! {
    let cpu = cpu_index();
    let idle = idle_context(cpu);
    CURRENT[cpu].store(idle, Ordering::Relaxed);
    ON_CPU[idle].store(true, Ordering::Relaxed);
    let mut spin_started = 0;
    loop {
        offload::poll_completions();
        crate::signals::take_from_host();
        let now = time::monotonic_ns();
        crate::signals::timers::fire_expired(now);
        let mut sched = SCHED.lock();
        sched.wake_expired(now);
        let earliest = next_deadline();
        sched.reap();
        if let Some(next) = sched.pick(cpu) {
            CPU_STATE[cpu].store(BUSY, Ordering::SeqCst);
            switch_to(sched, cpu, idle, next);
            spin_started = 0;
            continue;
        }
        drop(sched);
        if spin_started == 0 {
            spin_started = now;
            CPU_STATE[cpu].store(SPINNING, Ordering::SeqCst);
        }
        if now - spin_started < IDLE_SPIN_NS {
            cpu::pause();
            continue;
        }
        // Park, unless work arrived after we last looked (wakers check
        // CPU_STATE after queueing: both sides fence).
        CPU_STATE[cpu].store(PARKED, Ordering::SeqCst);
        if QUEUED.load(Ordering::SeqCst) == 0 && !offload::completions_pending() {
            cpu::set_park_deadline(earliest);
            cpu::doorbell(mmio::PARK, cpu as u64);
        }
        CPU_STATE[cpu].store(SPINNING, Ordering::SeqCst);
        spin_started = 0;
    }
}

/// Wakes a parked CPU if no CPU is already looking for work.
pub fn kick_idle_cpu() {
    let count = cpu_count();
    if (0..count).any(|cpu| CPU_STATE[cpu].load(Ordering::SeqCst) == SPINNING) {
        return;
    }
    let me = cpu_index();
    if let Some(cpu) =
        (0..count).find(|&cpu| cpu != me && CPU_STATE[cpu].load(Ordering::SeqCst) == PARKED)
    {
        cpu::doorbell(mmio::KICK, cpu as u64);
    }
}

/// Switches this CPU from `prev` to `next`, releasing `sched` first.
fn switch_to(sched: MutexGuard<Scheduler>, cpu: usize, prev: usize, next: usize) {
    drop(sched);
    // The previous CPU may still be leaving `next`'s stack.
    while ON_CPU[next].load(Ordering::Acquire) {
        cpu::pause();
    }
    ON_CPU[next].store(true, Ordering::Relaxed);
    PREVIOUS[cpu].store(prev, Ordering::Relaxed);
    CURRENT[cpu].store(next, Ordering::Relaxed);
    if prev < MAX_THREADS {
        let area = SCHED.lock().threads[prev].xsave_area;
        switch::save_extended_state(area, xsave_mask());
    }
    switch::switch(&SAVED_RSP[prev], SAVED_RSP[next].load(Ordering::Relaxed));
    after_switch();
}

/// Runs on the new context right after a switch (also a new thread's first code).
pub extern "C" fn after_switch() {
    let cpu = cpu_index();
    let previous = PREVIOUS[cpu].load(Ordering::Relaxed);
    ON_CPU[previous].store(false, Ordering::Release);
    let current = CURRENT[cpu].load(Ordering::Relaxed);
    if current < MAX_THREADS {
        // Page tables may have changed while this CPU ran something else.
        mm::sync_tlb();
        let thread = {
            let mut sched = SCHED.lock();
            sched.threads[current].state = State::Running;
            sched.threads[current]
        };
        switch::restore_extended_state(thread.xsave_area, xsave_mask());
        cpu::set_fs_base(thread.fs_base);
        switch::set_kernel_stack_top(thread.stack_top);
    }
}

/// Gives the CPU away: the current thread's state has been set by the
/// caller (Blocked, Runnable or Dead) while holding `sched`. Returns when
/// the thread runs again.
fn reschedule(mut sched: MutexGuard<Scheduler>) {
    let cpu = cpu_index();
    let me = current();
    let next = sched.pick(cpu).unwrap_or(idle_context(cpu));
    if next == me {
        sched.threads[me].state = State::Running;
        return;
    }
    switch_to(sched, cpu, me, next);
}

/// Blocks the current thread until woken or `deadline` (0: none); returns
/// what the waker (or the timeout) says the call returns.
pub fn block(mut sched: MutexGuard<Scheduler>, wait: Wait, deadline: u64) -> i64 {
    let me = current();
    // A signal sent before we hold the lock was flagged before its sender
    // took the lock to wake us: it ends the wait at once.
    if wait.interruptible() && crate::signals::has_work(me) {
        return -atoll_abi::linux::errno::EINTR;
    }
    sched.wait_seq += 1;
    let seq = sched.wait_seq;
    let thread = &mut sched.threads[me];
    thread.state = State::Blocked;
    thread.wait = wait;
    thread.deadline = deadline;
    thread.wait_seq = seq;
    let next = NEXT_DEADLINE.load(Ordering::Relaxed);
    if deadline != 0 && (next == 0 || deadline < next) {
        NEXT_DEADLINE.store(deadline, Ordering::Relaxed);
        publish_hints();
    }
    reschedule(sched);
    SCHED.lock().threads[me].wake_result
}

/// Makes thread `slot` see a signal sent to it: an interruptible wait ends
/// (the blocking call returns EINTR, which the call may turn into a
/// restart); a thread running on another CPU is interrupted there once it
/// runs program code (in the kernel it sees the signal on its way out).
pub fn interrupt(slot: usize) {
    let sched = SCHED.lock();
    let thread = &sched.threads[slot];
    if thread.state == State::Blocked && thread.wait.interruptible() {
        wake_and_kick(sched, slot, -atoll_abi::linux::errno::EINTR);
        return;
    }
    if thread.state == State::Running {
        let me = cpu_index();
        if let Some(cpu) =
            (0..cpu_count()).find(|&cpu| cpu != me && CURRENT[cpu].load(Ordering::SeqCst) == slot)
        {
            cpu::request_signal_upcall(cpu);
            // Now, not at the ticker's next look (up to a tick away): the
            // sender pays one exit.
            cpu::doorbell(mmio::SIGNAL, cpu as u64);
        }
    }
    drop(sched);
    // Waiting for the host (blocked, or polling on its CPU): the host ends
    // the wait, unless the signal is one the thread blocks.
    if crate::signals::has_work(slot) {
        offload::interrupt_host_wait(slot);
    }
}

/// The threads that exist, as a set of slots.
pub fn live_threads() -> ThreadSet {
    let sched = SCHED.lock();
    let mut set = ThreadSet([0; MAX_THREADS / 64]);
    for (slot, thread) in sched.threads.iter().enumerate() {
        if !matches!(thread.state, State::Free | State::Dead) {
            set.0[slot / 64] |= 1 << (slot % 64);
        }
    }
    set
}

/// A set of thread slots.
#[derive(Clone, Copy)]
pub struct ThreadSet([u64; MAX_THREADS / 64]);

impl ThreadSet {
    pub fn iter(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        (0..MAX_THREADS).filter(|&slot| self.0[slot / 64] & (1 << (slot % 64)) != 0)
    }
}

/// The running thread's extended state: what xsave moves, its size in
/// the standard format, and the thread's own save area.
pub fn extended_state_of_current() -> (u64, u64, u64) {
    let mask = xsave_mask();
    let size = xstate_layout().save_size(mask & xstate::DYNAMIC != 0);
    let area = SCHED.lock().threads[current()].xsave_area;
    (mask, size, area)
}

/// Moves the current thread to a CPU its affinity allows.
pub fn migrate() {
    let mut sched = SCHED.lock();
    let me = current();
    sched.threads[me].state = State::Runnable;
    sched.enqueue(me);
    reschedule(sched);
    kick_idle_cpu();
}

/// Entered from the preemption upcall with the program's registers; gives
/// the CPU to a waiting thread, and runs expired timers.
pub extern "C" fn preempted(frame: &mut atoll_abi::boot::PreemptFrame) {
    *frame = cpu::preempt_frame();
    offload::poll_completions();
    crate::signals::timers::fire_expired(time::monotonic_ns());
    let mut sched = SCHED.lock();
    sched.wake_expired(time::monotonic_ns());
    if sched.queue_len != 0 {
        let me = current();
        sched.threads[me].state = State::Runnable;
        sched.enqueue(me);
        reschedule(sched);
    } else {
        drop(sched);
    }
    crate::signals::take_from_host();
    crate::signals::deliver_before_return(frame);
}

/// sched_yield: let a waiting thread have this CPU.
pub fn yield_now() {
    if QUEUED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut sched = SCHED.lock();
    let me = current();
    sched.threads[me].state = State::Runnable;
    sched.enqueue(me);
    reschedule(sched);
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline`, giving the CPU away;
/// Err(EINTR) when a signal is to be acted on first.
pub fn sleep_until(deadline: u64) -> Result<(), i64> {
    let me = current();
    loop {
        if crate::signals::has_work(me) {
            return Err(atoll_abi::linux::errno::EINTR);
        }
        let now = time::monotonic_ns();
        if now >= deadline {
            return Ok(());
        }
        if deadline - now < SPIN_SLEEP_NS {
            cpu::pause();
            continue;
        }
        block(SCHED.lock(), Wait::Sleep, deadline);
    }
}

/// Makes a thread runnable and finds it a CPU.
pub fn wake_and_kick(mut sched: MutexGuard<Scheduler>, slot: usize, result: i64) {
    let woken = sched.wake(slot, result);
    drop(sched);
    if woken {
        kick_idle_cpu();
    }
}

/// Creates a thread that returns to user mode with `frame`; `before_start`
/// runs with the new tid before the thread can run (for CLONE_*_SETTID).
pub fn spawn_with(
    frame: &SyscallFrame,
    fs_base: u64,
    clear_child_tid: u64,
    before_start: impl FnOnce(u32),
) -> Result<(usize, u32), i64> {
    let (stack_base, stack_top, xsave_area) = allocate_stack()?;
    // The child starts with the parent's x87/SSE/AVX state.
    switch::save_extended_state(xsave_area, xsave_mask());
    let saved_rsp = switch::prepare_new_thread(stack_top, frame);
    let mut sched = SCHED.lock();
    sched.reap();
    let Some(slot) = sched.threads.iter().position(|t| t.state == State::Free) else {
        drop(sched);
        free_stack(stack_base);
        return Err(EAGAIN);
    };
    let tid = sched.next_tid;
    sched.next_tid += 1;
    let parent = sched.threads[current()];
    sched.threads[slot] = Thread {
        tid,
        state: State::Runnable,
        stack_base,
        stack_top,
        xsave_area,
        fs_base,
        clear_child_tid,
        affinity: parent.affinity,
        ..FREE_THREAD
    };
    SAVED_RSP[slot].store(saved_rsp, Ordering::Relaxed);
    crate::signals::thread_created(slot, current());
    before_start(tid);
    sched.live += 1;
    sched.enqueue(slot);
    drop(sched);
    kick_idle_cpu();
    Ok((slot, tid))
}

/// Threads alive in the isle.
pub fn thread_count() -> usize {
    SCHED.lock().live
}

/// Whether another thread waits for a CPU.
pub fn others_waiting() -> bool {
    QUEUED.load(Ordering::SeqCst) > 0
}

/// Whether a thread sleeps until a deadline (possibly one just passed):
/// its wakeup needs a CPU that runs the scheduler.
pub fn timers_pending() -> bool {
    next_deadline() != 0
}

/// Marks this CPU as parked while a thread on it waits in the monitor, so
/// that wakers kick it; returns a guard that marks it busy again.
pub fn park_busy_cpu() -> ParkedCpu {
    let cpu = cpu_index();
    CPU_STATE[cpu].store(PARKED, Ordering::SeqCst);
    ParkedCpu { cpu }
}

pub struct ParkedCpu {
    cpu: usize,
}

impl Drop for ParkedCpu {
    fn drop(&mut self) {
        CPU_STATE[self.cpu].store(BUSY, Ordering::SeqCst);
    }
}

/// Ends the current thread. The last one ends the isle with `status`.
pub fn exit_current(status: u8) -> ! {
    let me = current();
    let thread = SCHED.lock().threads[me];
    futex::exit_robust_list(thread.robust_list, thread.tid);
    if thread.clear_child_tid != 0 && user::write(thread.clear_child_tid, 0u32).is_ok() {
        futex::wake(thread.clear_child_tid, u32::MAX, 1);
    }
    let mut sched = SCHED.lock();
    sched.live -= 1;
    if sched.live == 0 {
        drop(sched);
        crate::exit_isle(status);
    }
    sched.threads[me].state = State::Dead;
    reschedule(sched);
    unreachable!("a dead thread was scheduled again");
}

#[cfg(test)]
mod tests;
