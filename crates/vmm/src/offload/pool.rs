//! The worker pool: a blocking request (a read from a pipe, a socket,
//! a timed poll...) waits on a worker thread of its own, so it blocks only
//! the guest thread that made it while the server goes on.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use atoll_abi::queue::{Opcode, Request};

use super::dispatch::handle;
use super::io::poll_ready_now;
use super::Offload;

/// Most blocking calls waited on at once; beyond, they run on the server.
const MAX_WORKERS: usize = 256;

impl Offload {
    /// Queues a blocking request for a pool worker, starting one if none is
    /// idle. False when the pool is at its limit (the server runs it).
    pub(super) fn hand_to_worker(self: &Arc<Self>, queue: usize, request: Request) -> bool {
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
    pub(super) fn work(self: Arc<Self>) {
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
    pub(super) fn would_block(&self, request: &Request) -> bool {
        // Unknown opcodes are refused at once, on the server.
        let Ok(op) = Opcode::try_from(request.opcode) else {
            return false;
        };
        let a = request.args;
        let (events, small) = match op {
            Opcode::Read
            | Opcode::ReadVectored
            | Opcode::Accept
            | Opcode::RecvFrom
            | Opcode::RecvMsg => (libc::POLLIN, true),
            // A pipe or socket with room takes PIPE_BUF bytes at once; a
            // larger write may wait for its reader.
            Opcode::Write | Opcode::SendTo => (libc::POLLOUT, a[2] <= libc::PIPE_BUF as u64),
            Opcode::WriteVectored | Opcode::SendMsg => (libc::POLLOUT, false),
            Opcode::Connect => return true,
            Opcode::Transfer => {
                return !(self.is_regular_file(a[1]) && self.is_regular_file(a[3]));
            }
            // A lock without LOCK_NB waits for its holder.
            Opcode::Flock => return a[1] & libc::LOCK_NB as u64 == 0,
            Opcode::Fcntl => return atoll_abi::linux::fcntl::waits(a[1]),
            Opcode::EpollWait if a[3] == 0 => return false,
            Opcode::EpollWait => (libc::POLLIN, true),
            Opcode::Poll => return a[2] != 0 && !poll_ready_now(&self.ram, &self.files, request),
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

    pub(super) fn is_regular_file(&self, fd: u64) -> bool {
        self.files.is_regular_file(fd)
    }
}
