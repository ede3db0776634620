//! The worker pool: a blocking request (a read from a pipe, a socket,
//! a timed poll...) waits on a worker thread of its own, so it blocks only
//! the guest thread that made it while the server goes on; and the one
//! decision per request of where it is served.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atoll_abi::linux::errno::{EAGAIN, EOPNOTSUPP};
use atoll_abi::queue::{memory, Opcode, Request};
use rustix::event::{PollFd, PollFlags};

use super::dispatch::handle;
use super::interrupt::Position;
use super::{io, Offload};
use crate::sandbox::FileKind;

/// Most blocking calls waited on at once; beyond, they run on the server.
const MAX_WORKERS: usize = 256;

/// Whether this host's pipes take RWF_NOWAIT writes (older Linux refuses
/// them): cleared at the first refusal, and pipe writes then poll first.
static PIPES_TAKE_NOWAIT: AtomicBool = AtomicBool::new(true);

/// A blocking request waiting for a worker.
pub(super) struct Job {
    /// Where it was read: what an interrupt names it by.
    pub(super) position: Position,
    pub(super) op: Opcode,
    pub(super) request: Request,
}

/// Where the server serves one request, decided once, from its opcode.
pub(super) enum Serving {
    /// Here and now: it finishes on its own.
    Inline,
    /// On a pool worker: it may wait on something outside the isle.
    Worker,
    /// Already served while deciding, with this result.
    Served(i64),
}

impl Offload {
    /// Queues a blocking request for a pool worker, starting one unless an
    /// idle worker is left for it. False when the pool is at its limit (the
    /// server runs it).
    pub(super) fn hand_to_worker(
        self: &Arc<Self>,
        position: Position,
        op: Opcode,
        request: Request,
    ) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        // A notified worker counts as idle until it has taken its job, so
        // each queued job already has one of the idle workers: a job queued
        // with none left would wait behind one that may never end (an
        // accept waiting for this very connect).
        if self.idle_workers.load(Ordering::SeqCst) <= jobs.len() {
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
        jobs.push_back(Job {
            position,
            op,
            request,
        });
        drop(jobs);
        self.job_ready.notify_one();
        true
    }

    /// A pool worker: runs blocking requests one at a time, forever.
    pub(super) fn work(self: Arc<Self>) {
        loop {
            let job = {
                let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = jobs.pop_front() {
                        self.worker_started(job.position);
                        break job;
                    }
                    if self.failure().is_some() {
                        // The isle is gone (or replaced): so is its pool.
                        self.workers.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    self.idle_workers.fetch_add(1, Ordering::SeqCst);
                    jobs = self.job_ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                    self.idle_workers.fetch_sub(1, Ordering::SeqCst);
                }
            };
            let result = handle(&self.ram, &self.files, &self.net, job.op, &job.request);
            self.worker_finished(job.position);
            self.complete(job.position.0, job.request.tag, result);
        }
    }

    /// Where `request` (of opcode `op`) is served: on a worker if it would
    /// wait on something outside the isle's control (a pipe, a terminal, a
    /// socket, a timed poll), else here; some are served while deciding.
    pub(super) fn serving(&self, op: Opcode, request: &Request) -> Serving {
        let a = request.args;
        let (events, small) = match op {
            // Populating waits for the isle to have run a while: its own
            // thread does it later.
            Opcode::Memory if a[0] == memory::POPULATE => {
                return Serving::Served(self.populate_later(a[1], a[2]));
            }
            Opcode::Read | Opcode::Write => return self.serving_read_write(op, request),
            Opcode::ReadVectored | Opcode::Accept | Opcode::RecvFrom | Opcode::RecvMsg => {
                (PollFlags::IN, true)
            }
            // A pipe or socket with room takes PIPE_BUF bytes at once; a
            // larger write may wait for its reader.
            Opcode::SendTo => (PollFlags::OUT, a[2] <= libc::PIPE_BUF as u64),
            Opcode::WriteVectored | Opcode::SendMsg => (PollFlags::OUT, false),
            Opcode::Connect | Opcode::Fork => return Serving::Worker,
            // A shared futex's wait waits for another process, maybe.
            Opcode::SharedFutex if a[1] == atoll_abi::queue::shared_futex::WAIT => {
                return Serving::Worker
            }
            Opcode::Wait if a[1] & libc::WNOHANG as u64 == 0 => return Serving::Worker,
            Opcode::WaitId if a[2] & libc::WNOHANG as u64 == 0 => return Serving::Worker,
            Opcode::Transfer => {
                return if self.files.is_regular_file(a[1]) && self.files.is_regular_file(a[3]) {
                    Serving::Inline
                } else {
                    Serving::Worker
                };
            }
            // A lock without LOCK_NB waits for its holder.
            Opcode::Flock if a[1] & libc::LOCK_NB as u64 == 0 => return Serving::Worker,
            Opcode::Fcntl if atoll_abi::linux::fcntl::waits(a[1]) => return Serving::Worker,
            Opcode::EpollWait if a[3] == 0 => return Serving::Inline,
            Opcode::EpollWait => (PollFlags::IN, true),
            // A timed poll with something ready (or refused) is answered by
            // the look without waiting.
            Opcode::Poll if a[2] != 0 => {
                return match io::poll_now(&self.ram, &self.files, request) {
                    Ok(0) => Serving::Worker,
                    result => Serving::Served(result.unwrap_or_else(|errno| -errno)),
                };
            }
            // Other file operations finish on their own (opening a FIFO is
            // the exception, and still runs on the server).
            _ => return Serving::Inline,
        };
        // Unknown fds are the handler's to refuse, at once.
        let Ok((held, kind)) = self.files.host_fd_and_kind(a[0]) else {
            return Serving::Inline;
        };
        match kind {
            // Regular files never wait on anyone.
            FileKind::Regular => Serving::Inline,
            _ if !small => Serving::Worker,
            _ if ready(held.as_fd(), events) => Serving::Inline,
            _ => Serving::Worker,
        }
    }

    /// [`Self::serving`] for read and write, which are served here with the
    /// host fd looked up once, when they can't wait: a regular file; a
    /// write of at most PIPE_BUF bytes that a pipe takes without waiting;
    /// one to anything else that polls ready. The rest go to a worker.
    fn serving_read_write(&self, op: Opcode, request: &Request) -> Serving {
        let [fd, _, len, ..] = request.args;
        let (held, kind) = match self.files.host_fd_and_kind(fd) {
            Ok(found) => found,
            Err(errno) => return Serving::Served(-errno),
        };
        let fd = held.as_fd();
        let served_here = || {
            Serving::Served(
                io::read_write_on(&self.ram, fd, op, request).unwrap_or_else(|errno| -errno),
            )
        };
        if kind == FileKind::Regular {
            return served_here();
        }
        let events = if op == Opcode::Read {
            PollFlags::IN
        } else if len > libc::PIPE_BUF as u64 {
            // A larger write may wait for its reader whatever is ready.
            return Serving::Worker;
        } else {
            PollFlags::OUT
        };
        if op == Opcode::Write
            && kind == FileKind::Pipe
            && PIPES_TAKE_NOWAIT.load(Ordering::Relaxed)
        {
            // The write is its own readiness check: it goes in whole or
            // not at all (EAGAIN, then a worker waits for room).
            match io::write_without_waiting(&self.ram, fd, request) {
                Err(EAGAIN) => return Serving::Worker,
                Err(EOPNOTSUPP) => PIPES_TAKE_NOWAIT.store(false, Ordering::Relaxed),
                result => return Serving::Served(result.unwrap_or_else(|errno| -errno)),
            }
        }
        if ready(fd, events) {
            served_here()
        } else {
            Serving::Worker
        }
    }
}

/// Whether `fd` has `events` ready now (or an error to report at once).
fn ready(fd: BorrowedFd<'_>, events: PollFlags) -> bool {
    let now = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut [PollFd::from_borrowed_fd(fd, events)], Some(&now)) != Ok(0)
}

#[cfg(test)]
pub(super) mod tests {
    use atoll_abi::linux::errno::EPIPE;

    use super::*;
    use crate::guest::memory::GuestRam;
    use crate::guest::AbiPlainData;
    use crate::offload::net::NetPolicy;
    use crate::offload::tests::stdio_only;
    use atoll_abi::queue::{completion_offset, offset, Completion};
    use vm_memory::{Bytes, GuestAddress};

    /// An offload whose isle has one pipe (made with `flags`): its fds.
    pub(in crate::offload) fn with_pipe(flags: i32) -> (Arc<Offload>, [i32; 2]) {
        let files = stdio_only();
        let pipe = files.pipe(flags).unwrap();
        let ram = Arc::new(GuestRam::new(2 << 20).unwrap());
        let offload = Offload::new(ram, vec![0x10000], Arc::new(files), NetPolicy::default());
        (offload, pipe)
    }

    pub(in crate::offload) fn request(op: Opcode, fd: i32, len: u64) -> Request {
        Request {
            opcode: op.as_u32(),
            flags: 0,
            tag: 1,
            args: [fd as u64, 0x1000, len, 0, 0, 0],
        }
    }

    #[test]
    fn pipe_writes_are_served_at_once_until_the_pipe_is_full() {
        let (offload, [read, write]) = with_pipe(0);
        let mut written = 0;
        loop {
            match offload.serving(Opcode::Write, &request(Opcode::Write, write, 4096)) {
                Serving::Served(done) => written += done,
                Serving::Worker => break,
                Serving::Inline => panic!("a pipe write is served or waits"),
            }
            assert!(written <= 16 << 20, "the pipe never filled");
        }
        assert!(written > 0 && written % 4096 == 0, "wrote {written}");
        // More than PIPE_BUF may wait for the reader, whatever is ready.
        let (empty, [_, large]) = with_pipe(0);
        assert!(matches!(
            empty.serving(Opcode::Write, &request(Opcode::Write, large, 8192)),
            Serving::Worker
        ));
        // What was written is there to read at once.
        assert!(matches!(
            offload.serving(Opcode::Read, &request(Opcode::Read, read, 4096)),
            Serving::Served(4096)
        ));
    }

    #[test]
    fn a_full_nonblocking_pipe_answers_eagain_and_a_readerless_one_epipe() {
        let (offload, [read, write]) = with_pipe(libc::O_NONBLOCK);
        let small = request(Opcode::Write, write, 512);
        while let Serving::Served(done) = offload.serving(Opcode::Write, &small) {
            assert_eq!(done, 512);
        }
        // The worker's write doesn't wait either: O_NONBLOCK is the isle's.
        let on_worker = handle(
            &offload.ram,
            &offload.files,
            &offload.net,
            Opcode::Write,
            &small,
        );
        assert_eq!(on_worker, -EAGAIN);
        offload.files.close(i64::from(read)).unwrap();
        assert!(matches!(
            offload.serving(Opcode::Write, &small),
            Serving::Served(result) if result == -EPIPE
        ));
    }

    /// Found as a hang in the net tests: a worker that had just been
    /// notified still counted as idle, so a connect queued right behind an
    /// accept waited for the accept's worker, and the accept waited for the
    /// connect.
    #[test]
    fn a_job_queued_behind_one_that_blocks_gets_a_worker_of_its_own() {
        let (offload, [blocked_read, blocked_write]) = with_pipe(0);
        let [ready_read, ready_write] = offload.files.pipe(0).unwrap();
        let queue = 0x10000;
        let completions = || -> u32 {
            offload
                .ram
                .memory()
                .load(
                    GuestAddress(queue + offset::CQ_TAIL as u64),
                    Ordering::SeqCst,
                )
                .unwrap()
        };
        // One worker, idle again after a job of its own.
        assert!(offload.hand_to_worker((0, 0), Opcode::Nop, request(Opcode::Nop, 0, 0)));
        while completions() < 1 || offload.idle_workers.load(Ordering::SeqCst) < 1 {
            std::thread::yield_now();
        }
        // Back to back, as the server hands them: the first waits for a
        // writer that comes only once the second is served.
        let mut waits = request(Opcode::Read, blocked_read, 8);
        waits.tag = 2;
        let mut served = request(Opcode::Read, ready_read, 8);
        served.tag = 3;
        let write_to = |fd: i32, bytes: &[u8]| {
            let (held, _) = offload.files.host_fd_and_kind(fd as u64).unwrap();
            rustix::io::write(held.as_fd(), bytes).unwrap();
        };
        write_to(ready_write, b"ready");
        assert!(offload.hand_to_worker((0, 1), Opcode::Read, waits));
        assert!(offload.hand_to_worker((0, 2), Opcode::Read, served));
        let started = std::time::Instant::now();
        while completions() < 2 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the second job waited behind the first"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let AbiPlainData(completion) = offload
            .ram
            .memory()
            .read_obj::<AbiPlainData<Completion>>(GuestAddress(queue + completion_offset(1) as u64))
            .unwrap();
        assert_eq!((completion.tag, completion.result), (3, 5));
        write_to(blocked_write, b"go");
        while completions() < 3 {
            std::thread::yield_now();
        }
    }

    #[test]
    fn bad_fds_and_unready_reads_are_decided_without_the_handler() {
        let (offload, [read, _]) = with_pipe(0);
        assert!(matches!(
            offload.serving(Opcode::Write, &request(Opcode::Write, 77, 8)),
            Serving::Served(result) if result == -atoll_abi::linux::errno::EBADF
        ));
        assert!(matches!(
            offload.serving(Opcode::Read, &request(Opcode::Read, read, 8)),
            Serving::Worker
        ));
    }
}
