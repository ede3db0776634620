//! The host side of the offload queue: a server thread that polls every
//! vCPU's submission ring and performs the requests on the guest's buffers
//! in place. Everything read from guest memory is untrusted: indices are
//! checked against the server's own, addresses and lengths against RAM, fds
//! against the isle's table.
//!
//! - this file: the server loop, completions, and parking (the server's and
//!   the vCPUs').
//! - [`pool`]: the worker pool that waits out blocking calls.
//! - [`dispatch`]: the one function matching a request's opcode to its
//!   handler, by family:
//!   - [`io`]: read/write, vectored, poll, fstat, terminal ioctls, lseek,
//!     splice/sendfile/copy_file_range, getrandom;
//!   - [`fs`]: files and paths (onto the isle's `Files`);
//!   - [`events`]: epoll, eventfd, timerfd;
//!   - [`net`]: sockets under the network policy;
//!   - [`file_mapping`]: MAP_SHARED file mappings.

pub mod code;
mod dispatch;
mod events;
mod exec;
pub mod file_mapping;
mod fs;
mod futex;
mod interrupt;
mod io;
pub mod net;
mod pool;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use atoll_abi::linux::errno::{EAGAIN, EINTR, EINVAL, ENOSYS};
use atoll_abi::queue::{
    completion_offset, offset, request_offset, Completion, Opcode, Request, DEPTH, HOST_PARKED,
    HOST_POLLING,
};
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::guest::AbiPlainData;
use crate::sandbox::Files;
use dispatch::handle;
use net::NetPolicy;
use pool::Serving;

pub(crate) use interrupt::signal_number as interrupt_signal;

/// Poll this long without work before parking the server thread.
const IDLE_BEFORE_PARK: Duration = Duration::from_micros(50);
/// A parked thread re-checks its rings at least this often, in case a
/// wake-up was lost to a guest that broke the protocol.
const PARKED_RECHECK: Duration = Duration::from_millis(100);

/// A host call's error (through rustix) as the errno the guest gets.
fn errno(error: rustix::io::Errno) -> i64 {
    i64::from(error.raw_os_error())
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum OffloadError {
    #[error("the isle broke the queue protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Confinement(String),
    /// The isle was replaced (execve): its successor serves its files.
    #[error("the isle was replaced")]
    Replaced,
}

/// A flag plus condition variable, for parking and waking a thread.
#[derive(Default)]
struct Parker {
    signalled: Mutex<bool>,
    condvar: Condvar,
}

impl Parker {
    fn wake(&self) {
        *self.signalled.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.condvar.notify_all();
    }

    /// Waits until woken, `ready()` holds, or `timeout` passes.
    fn wait(&self, timeout: Duration, ready: impl Fn() -> bool) {
        let mut signalled = self.signalled.lock().unwrap_or_else(|e| e.into_inner());
        if !*signalled && !ready() {
            signalled = self
                .condvar
                .wait_timeout(signalled, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *signalled = false;
    }
}

/// A vCPU's parking spot.
#[derive(Default)]
struct VcpuPark {
    parker: Parker,
    waiting: AtomicBool,
    kicked: AtomicBool,
}

/// Host-side state of one queue pair.
pub(crate) struct QueueState {
    /// Which vCPU's queue.
    pub(crate) index: usize,
    pub(crate) base: u64,
    pub(crate) sq_head: u32,
}

/// Shared between the server thread and the vCPU threads.
pub struct Offload {
    ram: Arc<GuestRam>,
    queues: Vec<u64>,
    server: Parker,
    /// The isle's mounts and fds.
    files: Arc<Files>,
    /// What the isle may do on the network.
    net: NetPolicy,
    /// Completion tails, one per queue: the server and workers both post.
    cq_tails: Vec<Mutex<u32>>,
    /// The worker pool for blocking calls: its jobs, and how many workers
    /// exist and wait idle.
    jobs: Mutex<std::collections::VecDeque<pool::Job>>,
    job_ready: Condvar,
    workers: std::sync::atomic::AtomicUsize,
    idle_workers: std::sync::atomic::AtomicUsize,
    vcpus: Vec<VcpuPark>,
    /// How far the server has read each submission ring.
    consumed: Vec<std::sync::atomic::AtomicU32>,
    /// Requests a signal interrupts (see `interrupt`).
    interrupts: Mutex<interrupt::Interrupts>,
    failure: Mutex<Option<OffloadError>>,
    /// Answer EAGAIN instead of waiting (the fuzz target, which must
    /// never hang on a pipe nobody writes).
    refuse_blocking: bool,
    /// Requests completed, for `atoll top`.
    completed: std::sync::atomic::AtomicU64,
    /// How long the parked server sleeps before it looks again, in ns.
    park_recheck_ns: std::sync::atomic::AtomicU64,
    /// Ranges to populate ahead of use, served in order by one thread
    /// (started at the first): populating zeroes host pages, milliseconds
    /// per 2 MiB here, and nobody waits for it.
    populator: Mutex<Option<std::sync::mpsc::Sender<(u64, u64)>>>,
}

impl Offload {
    /// `queues`: guest addresses of each vCPU's QueuePair.
    pub fn new(
        ram: Arc<GuestRam>,
        queues: Vec<u64>,
        files: Arc<Files>,
        net: NetPolicy,
    ) -> Arc<Self> {
        let vcpus = queues.iter().map(|_| VcpuPark::default()).collect();
        let cq_tails = queues.iter().map(|_| Mutex::new(0)).collect();
        let consumed = queues.iter().map(|_| Default::default()).collect();
        interrupt::install_handler();
        Arc::new(Self {
            ram,
            files,
            net,
            cq_tails,
            jobs: Mutex::new(std::collections::VecDeque::new()),
            job_ready: Condvar::new(),
            workers: std::sync::atomic::AtomicUsize::new(0),
            idle_workers: std::sync::atomic::AtomicUsize::new(0),
            queues,
            server: Parker::default(),
            vcpus,
            consumed,
            interrupts: Mutex::default(),
            failure: Mutex::new(None),
            refuse_blocking: false,
            completed: std::sync::atomic::AtomicU64::new(0),
            park_recheck_ns: std::sync::atomic::AtomicU64::new(PARKED_RECHECK.as_nanos() as u64),
            populator: Mutex::new(None),
        })
    }

    /// A MEMORY POPULATE request: checked now, served by the populating
    /// thread (which waits until the isle has run POPULATE_DELAY).
    fn populate_later(&self, address: u64, len: u64) -> i64 {
        if self.ram.checked_pages(address, len).is_none() {
            return -EINVAL;
        }
        let mut populator = self.populator.lock().unwrap_or_else(|e| e.into_inner());
        if populator.is_none() {
            let (sender, ranges) = std::sync::mpsc::channel::<(u64, u64)>();
            let ram = Arc::clone(&self.ram);
            let spawned = std::thread::Builder::new()
                .name("atoll-populate".into())
                .spawn(move || {
                    for (address, len) in ranges {
                        // Failing only costs speed: the guest faults pages in.
                        let _ =
                            ram.populate_ahead(address, len, crate::guest::memory::POPULATE_DELAY);
                    }
                });
            if spawned.is_err() {
                return 0;
            }
            *populator = Some(sender);
        }
        if let Some(sender) = populator.as_ref() {
            let _ = sender.send((address, len));
        }
        0
    }

    /// For a backend whose WAKE_HOST doorbell never arrives (QEMU): the
    /// parked server looks at the rings again this often on its own.
    pub fn set_park_recheck(&self, every: Duration) {
        self.park_recheck_ns
            .store(every.as_nanos() as u64, Ordering::Relaxed);
    }

    #[cfg(feature = "fuzzing")]
    pub(crate) fn files(&self) -> &Files {
        &self.files
    }

    /// An offload that never waits: what would block fails with EAGAIN.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn never_blocking(
        ram: Arc<GuestRam>,
        queue: u64,
        files: Files,
        net: NetPolicy,
    ) -> Arc<Self> {
        let mut offload = Self::new(ram, vec![queue], Arc::new(files), net);
        if let Some(offload) = Arc::get_mut(&mut offload) {
            offload.refuse_blocking = true;
        }
        offload
    }

    /// Requests served so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Starts the server thread, confined before it serves anything (the
    /// threads it starts inherit that).
    pub fn spawn(
        self: &Arc<Self>,
        core: Option<usize>,
        confinement: crate::sandbox::Confinement,
    ) -> std::thread::JoinHandle<()> {
        let offload = Arc::clone(self);
        std::thread::Builder::new()
            .name("atoll-offload".into())
            .spawn(move || {
                if let Some(core) = core {
                    crate::host::pin_current_thread(core);
                }
                if let Err(error) = confinement.apply() {
                    offload.fail(OffloadError::Confinement(error.to_string()));
                    return;
                }
                offload.serve()
            })
            .expect("spawning a thread only fails when the host is out of resources")
    }

    /// The WAKE_HOST doorbell.
    pub fn wake_server(&self) {
        self.server.wake();
    }

    /// The PARK doorbell of vCPU `cpu`: returns when its queue has a
    /// completion, or when CLOCK_MONOTONIC passes `deadline_ns` (if non-zero).
    pub fn park_vcpu(&self, cpu: usize, deadline_ns: u64) {
        let (Some(&queue), Some(park)) = (self.queues.get(cpu), self.vcpus.get(cpu)) else {
            return;
        };
        let ready = || {
            let completion = self.load(queue + offset::CQ_TAIL as u64)
                != self.load(queue + offset::CQ_HEAD as u64);
            completion || park.kicked.load(Ordering::SeqCst) || self.failure().is_some()
        };
        loop {
            if ready() {
                park.kicked.store(false, Ordering::SeqCst);
                return;
            }
            let now = crate::isle::monotonic_ns();
            let timeout = if deadline_ns == 0 {
                PARKED_RECHECK
            } else if now >= deadline_ns {
                return;
            } else {
                Duration::from_nanos(deadline_ns - now).min(PARKED_RECHECK)
            };
            park.waiting.store(true, Ordering::SeqCst);
            park.parker.wait(timeout, ready);
            park.waiting.store(false, Ordering::SeqCst);
        }
    }

    /// Waits (at most `patience`) until every vCPU is parked in the host:
    /// then the guest's kernel runs nowhere and holds none of its locks,
    /// as a fork must find it. False if one kept running.
    pub(crate) fn wait_until_parked(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        loop {
            if self
                .vcpus
                .iter()
                .all(|park| park.waiting.load(Ordering::SeqCst))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// The KICK doorbell: vCPU `cpu` has work; wake it if it is parked.
    pub fn kick_vcpu(&self, cpu: usize) {
        if let Some(park) = self.vcpus.get(cpu) {
            park.kicked.store(true, Ordering::SeqCst);
            park.parker.wake();
        }
    }

    /// Stops serving this isle: the program in it was replaced. The server
    /// and the idle workers end; a worker blocked in a host call ends
    /// with it.
    pub fn stop(&self) {
        self.fail(OffloadError::Replaced);
        self.job_ready.notify_all();
        // The populating thread ends with its queue, and lets go of RAM.
        *self.populator.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Why the server stopped, if it did.
    pub fn failure(&self) -> Option<OffloadError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops serving the isle (the first failure is the one reported) and
    /// wakes its parked vCPUs so they see it.
    fn fail(&self, error: OffloadError) {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(error);
        for park in &self.vcpus {
            park.parker.wake();
        }
    }

    /// SeqCst: the park handshakes order these loads after a store.
    fn load(&self, address: u64) -> u32 {
        self.ram
            .memory()
            .load(GuestAddress(address), Ordering::SeqCst)
            .unwrap_or(0)
    }

    fn store(&self, address: u64, value: u32) {
        let _ = self
            .ram
            .memory()
            .store(value, GuestAddress(address), Ordering::SeqCst);
    }

    fn serve(self: &Arc<Self>) {
        let mut states: Vec<QueueState> = self
            .queues
            .iter()
            .enumerate()
            .map(|(index, &base)| QueueState {
                index,
                base,
                sq_head: 0,
            })
            .collect();
        // Reading the clock costs more than polling a ring: look at it only
        // every so many idle spins.
        let mut idle_since: Option<Instant> = None;
        let mut idle_spins: u32 = 0;
        loop {
            let mut worked = false;
            for state in &mut states {
                match self.drain(state) {
                    Ok(done) => worked |= done,
                    Err(error) => {
                        self.fail(error);
                        return;
                    }
                }
            }
            if self.failure().is_some() {
                return;
            }
            if worked {
                idle_since = None;
                idle_spins = 0;
                continue;
            }
            idle_spins = idle_spins.wrapping_add(1);
            if !idle_spins.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            match idle_since {
                None => {
                    idle_since = Some(Instant::now());
                    continue;
                }
                Some(since) if since.elapsed() < IDLE_BEFORE_PARK => continue,
                Some(_) => {}
            }
            // Announce the park, then look once more (the guest fences between
            // publishing a request and reading host_state).
            for state in &states {
                self.store(state.base + offset::HOST_STATE as u64, HOST_PARKED);
            }
            std::sync::atomic::fence(Ordering::SeqCst);
            let pending = || {
                states
                    .iter()
                    .any(|s| self.load(s.base + offset::SQ_TAIL as u64) != s.sq_head)
            };
            tracing::trace!(at = crate::host::monotonic_ns(), "parking");
            let recheck = Duration::from_nanos(self.park_recheck_ns.load(Ordering::Relaxed));
            self.server.wait(recheck, pending);
            tracing::trace!(at = crate::host::monotonic_ns(), "unparked");
            for state in &states {
                self.store(state.base + offset::HOST_STATE as u64, HOST_POLLING);
            }
            idle_since = None;
        }
    }

    /// Posts a completion on queue `queue`, waiting while its ring is full
    /// (only a guest that stopped reaping keeps it full, and then only its
    /// own isle waits).
    fn complete(&self, queue: usize, tag: u64, result: i64) {
        debug_assert!(result >= -4095, "completion {result} is no errno");
        let (Some(&base), Some(tail)) = (self.queues.get(queue), self.cq_tails.get(queue)) else {
            return;
        };
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let head = self.load(base + offset::CQ_HEAD as u64);
            let used = tail.wrapping_sub(head);
            if used > DEPTH {
                // The guest reaped what was never posted: a broken ring.
                self.fail(OffloadError::Protocol(format!(
                    "completion head {head} is ahead of tail {}",
                    *tail
                )));
            }
            if used < DEPTH || self.failure().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        if self.failure().is_some() {
            return;
        }
        let completion = base + completion_offset(*tail) as u64;
        let _ = self.ram.memory().write_obj(
            AbiPlainData(Completion { tag, result }),
            GuestAddress(completion),
        );
        *tail = tail.wrapping_add(1);
        self.store(base + offset::CQ_TAIL as u64, *tail);
        self.completed.fetch_add(1, Ordering::Relaxed);
        drop(tail);
        if let Some(park) = self.vcpus.get(queue) {
            if park.waiting.load(Ordering::SeqCst) {
                park.parker.wake();
            }
        }
    }

    /// Serves every pending request of one queue; returns whether there were any.
    pub(crate) fn drain(self: &Arc<Self>, state: &mut QueueState) -> Result<bool, OffloadError> {
        let tail = self.load(state.base + offset::SQ_TAIL as u64);
        let pending = tail.wrapping_sub(state.sq_head);
        if pending == 0 {
            return Ok(false);
        }
        if pending > DEPTH {
            return Err(OffloadError::Protocol(format!(
                "submission tail {tail} is {pending} entries ahead of head {}",
                state.sq_head
            )));
        }
        tracing::trace!(pending, at = crate::host::monotonic_ns(), "serving");
        for _ in 0..pending {
            let position = (state.index, state.sq_head);
            let request = self.read_request(state.base + request_offset(state.sq_head) as u64);
            state.sq_head = state.sq_head.wrapping_add(1);
            self.store(state.base + offset::SQ_HEAD as u64, state.sq_head);
            if let Some(consumed) = self.consumed.get(state.index) {
                consumed.store(state.sq_head, Ordering::SeqCst);
            }
            // The opcode is decoded once; where the request is served is
            // decided once, from it.
            let Ok(op) = Opcode::try_from(request.opcode) else {
                self.complete(state.index, request.tag, -ENOSYS);
                continue;
            };
            if op == Opcode::Interrupt {
                let target = (request.args[0] as usize, request.args[1] as u32);
                self.interrupt(target);
                self.complete(state.index, request.tag, 0);
                continue;
            }
            let result = match self.serving(op, &request) {
                Serving::Served(result) => result,
                // Interrupted by a signal before it began: it doesn't.
                Serving::Worker if self.interrupted_early(position) => -EINTR,
                // Blocking calls block only the calling guest thread: a
                // pool worker waits for this one while the server goes on
                // (a full pool leaves it to the server).
                Serving::Worker if self.refuse_blocking => -EAGAIN,
                Serving::Worker if self.hand_to_worker(position, op, request) => continue,
                Serving::Worker | Serving::Inline => {
                    handle(&self.ram, &self.files, &self.net, op, &request)
                }
            };
            self.complete(state.index, request.tag, result);
        }
        Ok(true)
    }

    /// The request at `address`, as the guest left it (a NOP where the
    /// ring lies outside guest RAM: the tail check above stops the isle).
    fn read_request(&self, address: u64) -> Request {
        self.ram
            .memory()
            .read_obj::<AbiPlainData<Request>>(GuestAddress(address))
            .map(|AbiPlainData(request)| request)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No mounts; stdio is /dev/null, so random requests can't touch the
    /// test process's own.
    pub(super) fn stdio_only() -> Files {
        let files = Files::new(&[], "/").unwrap();
        files.stdio_to_dev_null();
        files
    }

    #[test]
    fn a_runaway_submission_tail_is_a_protocol_error() {
        let ram = Arc::new(GuestRam::new(2 << 20).unwrap());
        let offload = Offload::new(
            Arc::clone(&ram),
            vec![0x10000],
            Arc::new(stdio_only()),
            NetPolicy::default(),
        );
        ram.memory()
            .store(
                DEPTH + 5,
                GuestAddress(0x10000 + offset::SQ_TAIL as u64),
                Ordering::SeqCst,
            )
            .unwrap();
        let mut state = QueueState {
            index: 0,
            base: 0x10000,
            sq_head: 0,
        };
        assert!(matches!(
            offload.drain(&mut state),
            Err(OffloadError::Protocol(_))
        ));
    }

    /// `ram_size` bytes of guest RAM with one queue, at the address returned.
    fn one_queue(ram_size: u64) -> (Arc<GuestRam>, Arc<Offload>, u64) {
        let ram = Arc::new(GuestRam::new(ram_size).unwrap());
        let queue = 0x10000;
        let offload = Offload::new(
            Arc::clone(&ram),
            vec![queue],
            Arc::new(stdio_only()),
            NetPolicy::default(),
        );
        (ram, offload, queue)
    }

    #[test]
    fn an_unknown_opcode_is_enosys() {
        let (ram, offload, queue) = one_queue(2 << 20);
        let unknown = Request {
            opcode: 999,
            flags: 0,
            tag: 42,
            args: [0; 6],
        };
        let memory = ram.memory();
        memory
            .write_obj(
                AbiPlainData(unknown),
                GuestAddress(queue + request_offset(0) as u64),
            )
            .unwrap();
        memory
            .store(
                1u32,
                GuestAddress(queue + offset::SQ_TAIL as u64),
                Ordering::SeqCst,
            )
            .unwrap();
        let mut state = QueueState {
            index: 0,
            base: queue,
            sq_head: 0,
        };
        assert_eq!(offload.drain(&mut state), Ok(true));
        let AbiPlainData(completion) = memory
            .read_obj::<AbiPlainData<Completion>>(GuestAddress(queue + completion_offset(0) as u64))
            .unwrap();
        assert_eq!((completion.tag, completion.result), (42, -ENOSYS));
    }

    /// Found by the fuzz target: a request that wrote over the completion
    /// head left the server waiting for room forever. A head ahead of the
    /// tail now stops the isle.
    #[test]
    fn a_completion_head_ahead_of_the_tail_is_a_protocol_error() {
        let (ram, offload, queue) = one_queue(4 << 20);
        ram.memory()
            .store(
                500u32,
                GuestAddress(queue + offset::CQ_HEAD as u64),
                Ordering::SeqCst,
            )
            .unwrap();
        offload.complete(0, 7, 0);
        assert!(matches!(offload.failure(), Some(OffloadError::Protocol(_))));
        let tail: u32 = ram
            .memory()
            .load(
                GuestAddress(queue + offset::CQ_TAIL as u64),
                Ordering::SeqCst,
            )
            .unwrap();
        assert_eq!(tail, 0, "nothing is posted to a broken ring");
    }

    /// Random ring contents and indices against the server: it must never
    /// panic or touch memory outside the isle, and must stop the isle on a
    /// broken ring rather than serve garbage.
    #[test]
    fn random_rings_never_crash_the_server() {
        let ram = Arc::new(GuestRam::new(4 << 20).unwrap());
        // Each isle stopped for a broken ring is replaced by a fresh one on
        // a fresh queue (the old one's workers may still post to theirs).
        let base = Arc::new(std::sync::atomic::AtomicU64::new(0x10000));
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // The guest reaps completions on its own, as a real one does.
        let done = Arc::new(AtomicBool::new(false));
        let reaper = {
            let (ram, done, base) = (Arc::clone(&ram), Arc::clone(&done), Arc::clone(&base));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let queue = base.load(Ordering::SeqCst);
                    let memory = ram.memory();
                    let tail: u32 = memory
                        .load(
                            GuestAddress(queue + offset::CQ_TAIL as u64),
                            Ordering::SeqCst,
                        )
                        .unwrap();
                    memory
                        .store(
                            tail,
                            GuestAddress(queue + offset::CQ_HEAD as u64),
                            Ordering::SeqCst,
                        )
                        .unwrap();
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        };
        let (mut protocol_errors, mut served) = (0, 0);
        let mut queue = base.load(Ordering::SeqCst);
        let mut offload = Offload::new(
            Arc::clone(&ram),
            vec![queue],
            Arc::new(stdio_only()),
            NetPolicy::default(),
        );
        let mut state = QueueState {
            index: 0,
            base: queue,
            sq_head: 0,
        };
        for _ in 0..3000 {
            // A handful of requests with random opcodes and arguments; fds
            // stay clear of the test's own stdio.
            let count = next() % 8;
            for index in 0..count {
                let index = state.sq_head.wrapping_add(index as u32);
                let mut words = [0u64; 8];
                for word in &mut words {
                    *word = next();
                }
                let number = (next() % 64) as u32;
                let op = if Opcode::try_from(number) == Ok(Opcode::Log) {
                    Opcode::Nop.as_u32()
                } else {
                    number
                };
                words[0] = u64::from(op);
                words[2] = 3 + next() % 8;
                if next() % 2 == 0 {
                    words[3] = next() % (4 << 20);
                }
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                ram.memory()
                    .write_slice(&bytes, GuestAddress(queue + request_offset(index) as u64))
                    .unwrap();
            }
            let tail = if next() % 50 == 0 {
                next() as u32
            } else {
                state.sq_head.wrapping_add(count as u32)
            };
            ram.memory()
                .store(
                    tail,
                    GuestAddress(queue + offset::SQ_TAIL as u64),
                    Ordering::SeqCst,
                )
                .unwrap();
            match offload.drain(&mut state) {
                Ok(_) => served += 1,
                Err(OffloadError::Protocol(_)) => {
                    protocol_errors += 1;
                    queue = 0x10000 + (protocol_errors % 400) * 0x2000;
                    for field in [
                        offset::SQ_TAIL,
                        offset::SQ_HEAD,
                        offset::CQ_TAIL,
                        offset::CQ_HEAD,
                    ] {
                        ram.memory()
                            .store(0u32, GuestAddress(queue + field as u64), Ordering::SeqCst)
                            .unwrap();
                    }
                    base.store(queue, Ordering::SeqCst);
                    offload = Offload::new(
                        Arc::clone(&ram),
                        vec![queue],
                        Arc::new(stdio_only()),
                        NetPolicy::default(),
                    );
                    state = QueueState {
                        index: 0,
                        base: queue,
                        sq_head: 0,
                    };
                }
                Err(other) => panic!("draining fails only on the protocol: {other}"),
            }
            // Random bytes anywhere below the queues (rings get random tails above).
            let address = next() % 0xf000;
            ram.memory()
                .write_obj(next(), GuestAddress(address))
                .unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reaper.join().unwrap();
        assert!(served > 1000, "served {served}");
        assert!(protocol_errors > 0, "broken rings must be caught");
    }
}
