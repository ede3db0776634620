//! The host side of the offload queue: a server thread that polls every
//! vCPU's submission ring and performs the requests on the guest's buffers
//! in place. Everything read from guest memory is untrusted: indices are
//! checked against the server's own, addresses and lengths against RAM, fds
//! against the isle's table (only stdio for now).
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use atoll_abi::linux::errno::{EAGAIN, EFAULT, EINVAL, ENOTTY};
use atoll_abi::linux::{ioctl as tty, IOVEC_SIZE, IOV_MAX, POLLFD_SIZE, STAT_SIZE};
use atoll_abi::queue::{
    memory, offset, opcode, slot, transfer, Request, DEPTH, HOST_PARKED, HOST_POLLING,
};
use vm_memory::{Bytes, GuestAddress};

use crate::files::Files;
use crate::guest::memory::GuestRam;
use crate::net::NetPolicy;

/// Poll this long without work before parking the server thread.
const IDLE_BEFORE_PARK: Duration = Duration::from_micros(50);
/// A parked thread re-checks its rings at least this often, in case a
/// wake-up was lost to a guest that broke the protocol.
const PARKED_RECHECK: Duration = Duration::from_millis(100);
/// Most blocking calls waited on at once; beyond, they run on the server.
const MAX_WORKERS: usize = 256;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum OffloadError {
    #[error("the isle broke the queue protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Confinement(String),
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
    files: Files,
    /// What the isle may do on the network.
    net: NetPolicy,
    /// Completion tails, one per queue: the server and workers both post.
    cq_tails: Vec<Mutex<u32>>,
    /// The worker pool for blocking calls: its jobs, and how many workers
    /// exist and wait idle.
    jobs: Mutex<std::collections::VecDeque<(usize, Request)>>,
    job_ready: Condvar,
    workers: std::sync::atomic::AtomicUsize,
    idle_workers: std::sync::atomic::AtomicUsize,
    vcpus: Vec<VcpuPark>,
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
    pub fn new(ram: Arc<GuestRam>, queues: Vec<u64>, files: Files, net: NetPolicy) -> Arc<Self> {
        let vcpus = queues.iter().map(|_| VcpuPark::default()).collect();
        let cq_tails = queues.iter().map(|_| Mutex::new(0)).collect();
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
        let mut offload = Self::new(ram, vec![queue], files, net);
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

    /// The KICK doorbell: vCPU `cpu` has work; wake it if it is parked.
    pub fn kick_vcpu(&self, cpu: usize) {
        if let Some(park) = self.vcpus.get(cpu) {
            park.kicked.store(true, Ordering::SeqCst);
            park.parker.wake();
        }
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

    /// Serves every pending request of one queue; returns whether there were any.
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
        let completion = base + offset::CQ as u64 + slot(*tail) as u64 * 16;
        let memory = self.ram.memory();
        let _ = memory.write_obj(tag, GuestAddress(completion));
        let _ = memory.write_obj(result, GuestAddress(completion + 8));
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

    /// Queues a blocking request for a pool worker, starting one if none is
    /// idle. False when the pool is at its limit (the server runs it).
    fn hand_to_worker(self: &Arc<Self>, queue: usize, request: Request) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if self.idle_workers.load(Ordering::SeqCst) == 0 {
            if self.workers.load(Ordering::SeqCst) >= MAX_WORKERS {
                return false;
            }
            let offload = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name("atoll-io".into())
                .spawn(move || offload.work());
            if started.is_err() {
                return false;
            }
            self.workers.fetch_add(1, Ordering::SeqCst);
        }
        jobs.push_back((queue, request));
        drop(jobs);
        self.job_ready.notify_one();
        true
    }

    /// A pool worker: runs blocking requests one at a time, forever.
    fn work(self: Arc<Self>) {
        loop {
            let (queue, request) = {
                let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = jobs.pop_front() {
                        break job;
                    }
                    self.idle_workers.fetch_add(1, Ordering::SeqCst);
                    jobs = self.job_ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                    self.idle_workers.fetch_sub(1, Ordering::SeqCst);
                }
            };
            let result = handle(&self.ram, &self.files, &self.net, &request);
            self.complete(queue, request.tag, result);
        }
    }

    /// Whether a request would wait on something outside the isle's
    /// control (a pipe, a terminal, a socket, a timed poll).
    fn would_block(&self, request: &Request) -> bool {
        let a = request.args;
        let (events, small) = match request.opcode {
            opcode::READ | opcode::READV | opcode::ACCEPT | opcode::RECVFROM | opcode::RECVMSG => {
                (libc::POLLIN, true)
            }
            // A pipe or socket with room takes PIPE_BUF bytes at once; a
            // larger write may wait for its reader.
            opcode::WRITE | opcode::SENDTO => (libc::POLLOUT, a[2] <= libc::PIPE_BUF as u64),
            opcode::WRITEV | opcode::SENDMSG => (libc::POLLOUT, false),
            opcode::CONNECT => return true,
            opcode::TRANSFER => {
                return !(self.is_regular_file(a[1]) && self.is_regular_file(a[3]));
            }
            // A lock without LOCK_NB waits for its holder.
            opcode::FLOCK => return a[1] & libc::LOCK_NB as u64 == 0,
            opcode::FCNTL => return atoll_abi::linux::fcntl::waits(a[1]),
            opcode::EPOLL_WAIT if a[3] == 0 => return false,
            opcode::EPOLL_WAIT => (libc::POLLIN, true),
            opcode::POLL => return a[2] != 0 && !poll_ready_now(&self.ram, &self.files, request),
            // Other file operations finish on their own (opening a FIFO is
            // the exception, and still runs on the server).
            _ => return false,
        };
        // Regular files never wait on anyone.
        if self.is_regular_file(a[0]) {
            return false;
        }
        let Ok(held) = self.files.host_fd(a[0]) else {
            return false;
        };
        let fd = held.as_raw_fd();
        let mut probe = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: polls one fd the isle owns, without waiting.
        let ready = unsafe { libc::poll(&mut probe, 1, 0) };
        ready == 0 || !small
    }

    fn is_regular_file(&self, fd: u64) -> bool {
        self.files.is_regular_file(fd)
    }

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
            let request =
                self.read_request(state.base + offset::SQ as u64 + slot(state.sq_head) as u64 * 64);
            state.sq_head = state.sq_head.wrapping_add(1);
            self.store(state.base + offset::SQ_HEAD as u64, state.sq_head);
            if request.opcode == opcode::MEMORY && request.args[0] == memory::POPULATE {
                let result = self.populate_later(request.args[1], request.args[2]);
                self.complete(state.index, request.tag, result);
                continue;
            }
            // Blocking calls block only the calling guest thread: a pool
            // worker waits for this one while the server goes on.
            if self.would_block(&request) {
                if self.refuse_blocking {
                    self.complete(state.index, request.tag, -EAGAIN);
                    continue;
                }
                if self.hand_to_worker(state.index, request) {
                    continue;
                }
            }
            let result = handle(&self.ram, &self.files, &self.net, &request);
            self.complete(state.index, request.tag, result);
        }
        Ok(true)
    }

    fn read_request(&self, address: u64) -> Request {
        let mut bytes = [0u8; 64];
        let _ = self
            .ram
            .memory()
            .read_slice(&mut bytes, GuestAddress(address));
        let word = |index: usize| {
            u64::from_le_bytes(
                bytes[index * 8..index * 8 + 8]
                    .try_into()
                    .unwrap_or_default(),
            )
        };
        Request {
            opcode: word(0) as u32,
            flags: (word(0) >> 32) as u32,
            tag: word(1),
            args: [word(2), word(3), word(4), word(5), word(6), word(7)],
        }
    }
}

fn errno_result(value: isize) -> i64 {
    if value < 0 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        value as i64
    }
}

/// Performs one request; returns its Linux-style result.
pub fn handle(ram: &GuestRam, files: &Files, net: &NetPolicy, request: &Request) -> i64 {
    if let Some(result) = crate::net::handle(ram, files, net, request) {
        return result.unwrap_or_else(|errno| -errno);
    }
    let result = match request.opcode {
        opcode::NOP => Ok(0),
        opcode::READ | opcode::WRITE => read_write(ram, files, request),
        opcode::READV | opcode::WRITEV => vectored(ram, files, request),
        opcode::IOCTL => terminal_ioctl(ram, files, request),
        opcode::FSTAT => fstat(ram, files, request),
        opcode::POLL => poll(ram, files, request),
        opcode::LSEEK => lseek(files, request),
        opcode::GETRANDOM => getrandom(ram, request),
        opcode::LOG => log(ram, request),
        opcode::TRANSFER => transfer(ram, files, request),
        opcode::MAP_FILE | opcode::UNMAP_FILE | opcode::MSYNC | opcode::REMAP_FILE => {
            crate::file_mapping::handle(ram, files, request)
        }
        opcode::MEMORY => memory_request(ram, request),
        opcode => crate::file_ops::handle(ram, files, opcode, request),
    };
    result.unwrap_or_else(|errno| -errno)
}

fn read_write(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, address, len, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    let buffer = ram.io_buffer(address, len)?;
    // SAFETY: `buffer..buffer+len` lies inside guest RAM, which stays mapped;
    // the kernel only reads or writes those bytes, whatever the guest does.
    let done = unsafe {
        if request.opcode == opcode::READ {
            libc::read(fd, buffer.cast(), len as usize)
        } else {
            libc::write(fd, buffer.cast(), len as usize)
        }
    };
    Ok(errno_result(done))
}

fn vectored(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, iov_address, count, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    if count > IOV_MAX {
        return Err(EINVAL);
    }
    let mut raw = vec![0u8; (count * IOVEC_SIZE) as usize];
    // No iovecs: Linux reads none, wherever the array would be.
    if count > 0 {
        ram.memory()
            .read_slice(&mut raw, GuestAddress(iov_address))
            .map_err(|_| EFAULT)?;
    }
    let mut iovecs = Vec::with_capacity(count as usize);
    for chunk in raw.chunks_exact(IOVEC_SIZE as usize) {
        let base = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
        if len == 0 {
            continue;
        }
        let pointer = ram.io_buffer(base, len)?;
        iovecs.push(libc::iovec {
            iov_base: pointer.cast(),
            iov_len: len as usize,
        });
    }
    // Unknown RWF_ flags are the host kernel's to refuse; wider ones are ours.
    let offset = request.args[3] as i64;
    let flags = i32::try_from(request.args[4]).map_err(|_| atoll_abi::linux::errno::EOPNOTSUPP)?;
    // SAFETY: every iovec was checked to lie inside guest RAM; offset -1
    // means the file position, as in preadv2(2).
    let done = unsafe {
        if request.opcode == opcode::READV {
            libc::preadv2(fd, iovecs.as_ptr(), iovecs.len() as i32, offset, flags)
        } else {
            libc::pwritev2(fd, iovecs.as_ptr(), iovecs.len() as i32, offset, flags)
        }
    };
    Ok(errno_result(done))
}

fn terminal_ioctl(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, command, address, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    let size = match command {
        tty::TCGETS => tty::TERMIOS_SIZE,
        tty::TIOCGWINSZ => tty::WINSIZE_SIZE,
        _ => return Err(ENOTTY),
    };
    let mut answer = [0u8; 64];
    // SAFETY: both requests write at most 60 bytes (glibc's termios is the
    // largest) into our 64-byte buffer.
    let done = unsafe { libc::ioctl(fd, command as libc::Ioctl, answer.as_mut_ptr()) };
    if done < 0 {
        return Ok(errno_result(done as isize));
    }
    ram.memory()
        .write_slice(&answer[..size as usize], GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(i64::from(done))
}

fn fstat(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, address, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat fills the struct we own.
    let done = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if done < 0 {
        return Ok(errno_result(done as isize));
    }
    // SAFETY: zeroed, then written only by fstat, so every byte is
    // initialized (libc types `__pad0` as maybe-uninit, but it was zeroed);
    // libc::stat on x86_64 Linux is the kernel's struct stat, STAT_SIZE bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts(stat.as_ptr().cast::<u8>(), STAT_SIZE as usize) };
    ram.memory()
        .write_slice(bytes, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(0)
}

fn poll(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [address, count, timeout, ..] = request.args;
    if count > 1024 {
        return Err(EINVAL);
    }
    let mut raw = vec![0u8; (count * POLLFD_SIZE) as usize];
    ram.memory()
        .read_slice(&mut raw, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    let mut invalid = 0;
    // Held open until the poll returns, whatever the guest closes meanwhile.
    let mut held = Vec::new();
    let mut fds: Vec<libc::pollfd> = raw
        .chunks_exact(POLLFD_SIZE as usize)
        .map(|chunk| {
            let guest_fd = i32::from_le_bytes(chunk[..4].try_into().unwrap_or_default());
            let events = i16::from_le_bytes(chunk[4..6].try_into().unwrap_or_default());
            let fd = if guest_fd < 0 {
                -1
            } else {
                match files.host_fd(guest_fd as u64) {
                    Ok(fd) => {
                        let raw = fd.as_raw_fd();
                        held.push(fd);
                        raw
                    }
                    Err(_) => {
                        invalid += 1;
                        -1
                    }
                }
            };
            libc::pollfd {
                fd,
                events,
                revents: 0,
            }
        })
        .collect();
    // Invalid fds answer POLLNVAL at once, as Linux does: don't block then.
    let timeout = if invalid > 0 {
        0
    } else {
        timeout as i64 as i32
    };
    // SAFETY: `fds` is our own array of `count` pollfds.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    if ready < 0 {
        return Ok(errno_result(ready as isize));
    }
    let mut total = i64::from(ready);
    for (chunk, host) in raw.chunks_exact_mut(POLLFD_SIZE as usize).zip(&fds) {
        let guest_fd = i32::from_le_bytes(chunk[..4].try_into().unwrap_or_default());
        let revents = if guest_fd >= 0 && host.fd < 0 {
            total += 1;
            libc::POLLNVAL
        } else {
            host.revents
        };
        chunk[6..8].copy_from_slice(&revents.to_le_bytes());
    }
    ram.memory()
        .write_slice(&raw, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(total)
}

fn lseek(files: &Files, request: &Request) -> Result<i64, i64> {
    let [fd, offset, whence, ..] = request.args;
    let fd_held = files.host_fd(fd)?;
    let fd = fd_held.as_raw_fd();
    // SAFETY: lseek has no memory effects.
    let position = unsafe { libc::lseek(fd, offset as i64, whence as i32) };
    Ok(errno_result(position as isize))
}

fn getrandom(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [address, len, flags, ..] = request.args;
    let buffer = ram.io_buffer(address, len)?;
    // SAFETY: the buffer lies inside guest RAM (checked above).
    let done = unsafe { libc::getrandom(buffer.cast(), len as usize, flags as u32) };
    Ok(errno_result(done))
}

/// Reads the optional 64-bit offset at guest address `address` (0: none).
fn read_offset(ram: &GuestRam, address: u64) -> Result<Option<i64>, i64> {
    if address == 0 {
        return Ok(None);
    }
    ram.memory()
        .read_obj(GuestAddress(address))
        .map(Some)
        .map_err(|_| EFAULT)
}

fn write_offset(ram: &GuestRam, address: u64, offset: Option<i64>) -> Result<(), i64> {
    match offset {
        Some(value) if address != 0 => ram
            .memory()
            .write_obj(value, GuestAddress(address))
            .map_err(|_| EFAULT),
        _ => Ok(()),
    }
}

fn offset_pointer(offset: &mut Option<i64>) -> *mut i64 {
    offset
        .as_mut()
        .map_or(std::ptr::null_mut(), |value| value as *mut i64)
}

/// splice, sendfile and copy_file_range between the isle's host fds: the
/// data never passes through guest memory.
fn transfer(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [kind, fd_in, off_in_address, fd_out, off_out_address, len] = request.args;
    let (held_in, held_out) = (files.host_fd(fd_in)?, files.host_fd(fd_out)?);
    let (fd_in, fd_out) = (held_in.as_raw_fd(), held_out.as_raw_fd());
    let mut off_in = read_offset(ram, off_in_address)?;
    let mut off_out = read_offset(ram, off_out_address)?;
    let len = len as usize;
    // SAFETY: the offset pointers are null or point at our locals; the fds
    // are the isle's own; the kernel moves data between them only.
    let done = unsafe {
        match kind {
            transfer::SPLICE => libc::splice(
                fd_in,
                offset_pointer(&mut off_in),
                fd_out,
                offset_pointer(&mut off_out),
                len,
                request.flags,
            ),
            transfer::SENDFILE => libc::sendfile(fd_out, fd_in, offset_pointer(&mut off_in), len),
            transfer::COPY_FILE_RANGE => libc::copy_file_range(
                fd_in,
                offset_pointer(&mut off_in),
                fd_out,
                offset_pointer(&mut off_out),
                len,
                request.flags,
            ),
            _ => return Err(EINVAL),
        }
    };
    let result = errno_result(done);
    write_offset(ram, off_in_address, off_in)?;
    write_offset(ram, off_out_address, off_out)?;
    Ok(result)
}

/// memory(kind, address, len) on guest RAM, at once (the server sends
/// POPULATE to its populating thread instead); the range is checked there.
fn memory_request(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [kind, address, len, ..] = request.args;
    match kind {
        memory::POPULATE => ram.populate_ahead(address, len, Duration::ZERO)?,
        memory::RELEASE => ram.release(address, len)?,
        memory::ATTACH => ram.attach(address, len)?,
        _ => return Err(EINVAL),
    }
    Ok(0)
}

fn log(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [address, len, ..] = request.args;
    let len = len.min(4096);
    let mut line = vec![0u8; len as usize];
    ram.memory()
        .read_slice(&mut line, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    use std::io::Write;
    let _ = std::io::stderr().write_all(&line);
    Ok(len as i64)
}

/// Whether a poll request has something ready at once (it then runs inline).
fn poll_ready_now(ram: &GuestRam, files: &Files, request: &Request) -> bool {
    let mut now = *request;
    now.args[2] = 0;
    poll(ram, files, &now).is_ok_and(|ready| ready != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_abi::linux::errno::{EBADF, ENOSYS};

    /// No mounts; stdio is /dev/null, so random requests can't touch the
    /// test process's own.
    fn stdio_only() -> Files {
        let files = Files::new(&[], "/").unwrap();
        files.stdio_to_dev_null();
        files
    }

    /// One request against stdio only, without a network.
    fn serve(ram: &GuestRam, opcode: u32, args: [u64; 6]) -> i64 {
        handle(
            ram,
            &stdio_only(),
            &NetPolicy::default(),
            &request(opcode, args),
        )
    }

    fn request(opcode: u32, args: [u64; 6]) -> Request {
        Request {
            opcode,
            flags: 0,
            tag: 7,
            args,
        }
    }

    #[test]
    fn bad_fds_and_addresses_are_refused() {
        let ram = GuestRam::new(2 << 20).unwrap();
        assert_eq!(serve(&ram, opcode::WRITE, [9, 0x1000, 4, 0, 0, 0]), -EBADF);
        assert_eq!(
            serve(&ram, opcode::WRITE, [1, 2 << 20, 4, 0, 0, 0]),
            -EFAULT
        );
        assert_eq!(
            serve(&ram, opcode::WRITE, [1, u64::MAX - 1, 4, 0, 0, 0]),
            -EFAULT
        );
        assert_eq!(
            serve(&ram, opcode::READV, [0, 0x1000, 5000, 0, 0, 0]),
            -EINVAL
        );
        assert_eq!(
            serve(&ram, opcode::IOCTL, [1, 0x1234, 0x1000, 0, 0, 0]),
            -ENOTTY
        );
        assert_eq!(
            handle(
                &ram,
                &stdio_only(),
                &NetPolicy::default(),
                &request(999, [0; 6])
            ),
            -ENOSYS
        );
    }

    #[test]
    fn iovecs_pointing_outside_ram_are_refused() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let iov = [0x2000u64, 16, 0xffff_0000, 16];
        for (index, word) in iov.iter().enumerate() {
            ram.memory()
                .write_obj(*word, GuestAddress(0x1000 + index as u64 * 8))
                .unwrap();
        }
        assert_eq!(
            serve(&ram, opcode::WRITEV, [1, 0x1000, 2, 0, 0, 0]),
            -EFAULT
        );
    }

    #[test]
    fn zero_length_io_never_checks_its_buffer() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let outside = 1 << 40;
        for op in [opcode::READ, opcode::WRITE, opcode::READV, opcode::WRITEV] {
            assert_eq!(serve(&ram, op, [1, outside, 0, 0, 0, 0]), 0, "opcode {op}");
        }
        // Empty iovecs anywhere are skipped; a non-empty one is still checked.
        let iov = [outside, 0, 0x2000, 0];
        for (index, word) in iov.iter().enumerate() {
            ram.memory()
                .write_obj(*word, GuestAddress(0x1000 + index as u64 * 8))
                .unwrap();
        }
        let at_file_position = u64::MAX;
        let writev = [1, 0x1000, 2, at_file_position, 0, 0];
        assert_eq!(serve(&ram, opcode::WRITEV, writev), 0);
        assert_eq!(
            serve(&ram, opcode::WRITE, [1, outside, 1, 0, 0, 0]),
            -EFAULT
        );
    }

    #[test]
    fn getrandom_fills_guest_memory() {
        let ram = GuestRam::new(2 << 20).unwrap();
        assert_eq!(serve(&ram, opcode::GETRANDOM, [0x3000, 64, 0, 0, 0, 0]), 64);
        let mut bytes = [0u8; 64];
        ram.memory()
            .read_slice(&mut bytes, GuestAddress(0x3000))
            .unwrap();
        assert!(bytes.iter().any(|&b| b != 0));
    }

    #[test]
    fn a_runaway_submission_tail_is_a_protocol_error() {
        let ram = Arc::new(GuestRam::new(2 << 20).unwrap());
        let offload = Offload::new(
            Arc::clone(&ram),
            vec![0x10000],
            stdio_only(),
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

    /// Found by the fuzz target: a request that wrote over the completion
    /// head left the server waiting for room forever. A head ahead of the
    /// tail now stops the isle.
    #[test]
    fn a_completion_head_ahead_of_the_tail_is_a_protocol_error() {
        let ram = Arc::new(GuestRam::new(4 << 20).unwrap());
        let queue = 0x10000;
        let offload = Offload::new(
            Arc::clone(&ram),
            vec![queue],
            stdio_only(),
            NetPolicy::default(),
        );
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
            stdio_only(),
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
                let slot = slot(state.sq_head.wrapping_add(index as u32)) as u64;
                let mut words = [0u64; 8];
                for word in &mut words {
                    *word = next();
                }
                let op = match (next() % 64) as u32 {
                    opcode::LOG => opcode::NOP,
                    op => op,
                };
                words[0] = u64::from(op);
                words[2] = 3 + next() % 8;
                if next() % 2 == 0 {
                    words[3] = next() % (4 << 20);
                }
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                ram.memory()
                    .write_slice(&bytes, GuestAddress(queue + offset::SQ as u64 + slot * 64))
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
                        stdio_only(),
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
