//! The offload server as the fuzz target (`fuzz/`) drives it: arbitrary
//! bytes become a submission ring and guest memory, and the real server
//! decodes and performs every request against a real mount.
//!
//! Per input it checks what must always hold: the server never panics,
//! every completion is a byte count or a Linux errno (a debug assertion
//! where completions are posted), a sound ring is never called broken, and
//! a file outside the mount is untouched.
//! Requests that would wait (on a pipe nobody writes, say) fail with EAGAIN
//! rather than hang the fuzzer; the rest run exactly as for an isle.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atoll_abi::queue::{offset, request_offset, Opcode, DEPTH};
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::offload::net::NetPolicy;
use crate::offload::{Offload, OffloadError, QueueState};
use crate::sandbox::{Files, MountSpec, MAX_FDS};

/// Guest RAM of the fuzzed isle; its queue pair sits in the last 64 KiB.
const RAM: u64 = 2 << 20;
const QUEUE: u64 = RAM - 0x10000;
/// Where the input's memory part lands (requests' addresses aim there).
const DATA: u64 = 0x1000;
/// The fuzzer's bytes are cut into requests as the ring holds them.
const REQUEST_SIZE: usize = std::mem::size_of::<atoll_abi::queue::Request>();
/// Where files may be mapped (MAP_FILE): apart from the input's memory
/// and the queue, as the heap is apart from the system area in an isle.
const MAPPABLE: (u64, u64) = (0x10_0000, QUEUE);
const OUTSIDE_TEXT: &[u8] = b"outside the mount\n";

/// One fuzzed isle, kept across inputs (libFuzzer runs in one process).
pub struct Harness {
    ram: Arc<GuestRam>,
    offload: Arc<Offload>,
    state: QueueState,
    scratch: PathBuf,
    outside: PathBuf,
    /// Tells the reaper thread to stop.
    done: Arc<AtomicBool>,
    /// Inputs served so far (the mount is emptied every so often).
    runs: u64,
}

/// No file the fuzzer makes grows past this: inputs ask for terabytes.
const MAX_FILE_SIZE: u64 = 16 << 20;
/// The mount is emptied after this many inputs, so that files made by
/// thousands of inputs don't pile up on the disk.
const RUNS_PER_CLEANUP: u64 = 256;

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A fresh isle with one writable mount at /data (its cwd) in a scratch
    /// directory, next to a file it must never reach.
    pub fn new() -> Self {
        // As the monitor does: a closed pipe is EPIPE for the isle.
        crate::host::ignore_sigpipe();
        crate::host::limit_file_size(MAX_FILE_SIZE).expect("RLIMIT_FSIZE");
        let scratch = std::env::temp_dir().join(format!("atoll-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(scratch.join("mount")).expect("scratch mount");
        let outside = scratch.join("outside.txt");
        std::fs::write(&outside, OUTSIDE_TEXT).expect("outside file");
        let ram = Arc::new(GuestRam::new(RAM).expect("guest RAM"));
        ram.file_mappings().set_window(MAPPABLE.0, MAPPABLE.1);
        // The guest reaps completions on its own, as a real one does, so
        // a request that writes over the ring's head can't stall the server.
        let done = Arc::new(AtomicBool::new(false));
        {
            let (ram, done) = (Arc::clone(&ram), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let memory = ram.memory();
                    if let Ok(tail) = memory.load::<u32>(
                        GuestAddress(QUEUE + offset::CQ_TAIL as u64),
                        Ordering::SeqCst,
                    ) {
                        let head = GuestAddress(QUEUE + offset::CQ_HEAD as u64);
                        let _ = memory.store(tail, head, Ordering::SeqCst);
                    }
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            });
        }
        let offload = Self::offload(&ram, &scratch);
        Self {
            ram,
            offload,
            state: QueueState {
                index: 0,
                base: QUEUE,
                sq_head: 0,
            },
            scratch,
            outside,
            done,
            runs: 0,
        }
    }

    /// A server for the isle, with its fds reset: stdio on /dev/null.
    fn offload(ram: &Arc<GuestRam>, scratch: &std::path::Path) -> Arc<Offload> {
        let files = Files::new(
            &[MountSpec {
                host: scratch.join("mount"),
                guest: "/data".into(),
                read_only: false,
                keep_owners: false,
            }],
            "/data",
        )
        .expect("files");
        files.stdio_to_dev_null();
        Offload::never_blocking(Arc::clone(ram), QUEUE, files, NetPolicy::default())
    }

    fn load(&self, field: usize) -> u32 {
        self.ram
            .memory()
            .load(GuestAddress(QUEUE + field as u64), Ordering::SeqCst)
            .unwrap_or(0)
    }

    fn store(&self, field: usize, value: u32) {
        let _ =
            self.ram
                .memory()
                .store(value, GuestAddress(QUEUE + field as u64), Ordering::SeqCst);
    }

    /// Serves one input. Its layout: a control byte (bit 0: take the next
    /// four bytes as a raw submission tail, to break the ring), a request
    /// count byte, that many 64-byte requests, then guest memory at DATA.
    pub fn run(&mut self, input: &[u8]) {
        self.runs += 1;
        if self.runs.is_multiple_of(RUNS_PER_CLEANUP) {
            self.empty_mount();
        }
        let Some((&control, rest)) = input.split_first() else {
            return;
        };
        let (raw_tail, rest) = if control & 1 != 0 && rest.len() >= 4 {
            let (tail, rest) = rest.split_at(4);
            (
                Some(u32::from_le_bytes(tail.try_into().unwrap_or_default())),
                rest,
            )
        } else {
            (None, rest)
        };
        let Some((&count, rest)) = rest.split_first() else {
            return;
        };
        let count = usize::from(count)
            .min(DEPTH as usize)
            .min(rest.len() / REQUEST_SIZE);
        let (requests, memory) = rest.split_at(count * REQUEST_SIZE);

        // Last input's memory must not leak into this one's.
        let zeros = vec![0u8; (QUEUE - DATA) as usize];
        let _ = self.ram.memory().write_slice(&zeros, GuestAddress(DATA));
        let room = (QUEUE - DATA) as usize;
        let _ = self
            .ram
            .memory()
            .write_slice(&memory[..memory.len().min(room)], GuestAddress(DATA));
        for (index, request) in requests.chunks_exact(REQUEST_SIZE).enumerate() {
            let mut request = request.to_vec();
            let op = u32::from_le_bytes(request[..4].try_into().unwrap_or_default());
            // Not the fuzzer's business: stderr noise, and flushing the
            // disks under the mounts (fsync, sync(2) as syncfs).
            if matches!(Opcode::try_from(op), Ok(Opcode::Log | Opcode::Fsync)) {
                request[..4].copy_from_slice(&Opcode::Nop.as_u32().to_le_bytes());
            }
            let entry = request_offset(self.state.sq_head.wrapping_add(index as u32));
            let _ = self
                .ram
                .memory()
                .write_slice(&request, GuestAddress(QUEUE + entry as u64));
        }
        // The guest reaped everything so far.
        self.store(offset::CQ_HEAD, self.load(offset::CQ_TAIL));
        let tail = raw_tail.unwrap_or(self.state.sq_head.wrapping_add(count as u32));
        self.store(offset::SQ_TAIL, tail);

        match self.offload.drain(&mut self.state) {
            Ok(_) => {}
            Err(OffloadError::Protocol(_)) => {
                assert!(
                    tail.wrapping_sub(self.state.sq_head) > DEPTH,
                    "a sound ring was called broken"
                );
                // The isle would stop here; the next input starts a sound ring.
                self.store(offset::SQ_TAIL, self.state.sq_head);
            }
            Err(other) => panic!("draining fails only on the protocol: {other}"),
        }
        if self.offload.failure().is_some() {
            // A request wrote over the completion ring's head, and the
            // server stopped the isle: the next input gets a fresh one.
            for field in [
                offset::SQ_TAIL,
                offset::SQ_HEAD,
                offset::CQ_TAIL,
                offset::CQ_HEAD,
            ] {
                self.store(field, 0);
            }
            self.state.sq_head = 0;
            self.offload = Self::offload(&self.ram, &self.scratch);
            return;
        }
        // Requests may have written anywhere in RAM, the ring included:
        // put the indices back as the server knows them.
        self.store(offset::SQ_HEAD, self.state.sq_head);
        let _ = self.offload.files().close_range(3, MAX_FDS as u64, false);
        assert_eq!(
            std::fs::read(&self.outside).ok().as_deref(),
            Some(OUTSIDE_TEXT),
            "a request reached a file outside the mount"
        );
    }
}

impl Harness {
    /// Removes what earlier inputs left in the mount (the mount directory
    /// itself stays: the server holds it open).
    fn empty_mount(&self) {
        let mount = self.scratch.join("mount");
        for entry in std::fs::read_dir(&mount).into_iter().flatten().flatten() {
            let path = entry.path();
            // A symlink goes as it is: chmod would follow it, and inputs
            // make links to / and /dev/null (which this once set to 0700).
            if path.is_symlink() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            // Inputs chmod things: make them removable first.
            let _ = std::fs::set_permissions(
                &path,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            );
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

#[cfg(test)]
mod tests {
    /// The kept corpus (fuzz/corpus) runs through the harness cleanly.
    #[test]
    fn the_kept_corpus_runs_clean() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/offload_server");
        let mut harness = super::Harness::new();
        let mut inputs = 0;
        for entry in std::fs::read_dir(corpus).unwrap() {
            harness.run(&std::fs::read(entry.unwrap().path()).unwrap());
            inputs += 1;
        }
        assert!(inputs > 0);
    }
}
