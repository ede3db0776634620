//! The isle's process table: the arguments and program each process of
//! the tree runs, which its /proc/PID shows the isle's other processes.
//! The host knows neither (a monitor's own command line is atoll's).
//!
//! It lives in a memfd the top monitor maps before its first fork, which
//! every fork inherits mapped: each process writes its own slot, at its
//! fork and at each execve, and reads the others'. Only monitors map it;
//! no guest sees it. A slot is written under a sequence count (odd while
//! it changes), so a reader never takes half of one. A slot left by a
//! process killed outright is taken again once its pid is gone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use vm_memory::mmap::MmapRegion;
use vm_memory::{VolatileMemory, VolatileSlice};

/// Processes an isle's tree holds at once, as far as /proc shows them.
const SLOTS: usize = 512;
const SLOT_BYTES: usize = 4096;
/// pid, sequence count, arguments' length, program's length.
const HEADER: usize = 16;
const PROGRAM_MAX: usize = 256;
/// The arguments, NUL after each, cut here (Linux shows up to a page).
const ARGUMENTS_MAX: usize = SLOT_BYTES - HEADER - PROGRAM_MAX;

static TABLE: OnceLock<MmapRegion<()>> = OnceLock::new();

/// What this process runs now: its slot's contents.
static OWN: Mutex<Running> = Mutex::new(Running {
    arguments: Vec::new(),
    program: Vec::new(),
});

/// What a process of the isle runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Running {
    /// Its arguments, each followed by a NUL, as /proc/PID/cmdline reads.
    pub arguments: Vec<u8>,
    /// Its program's guest path.
    pub program: Vec<u8>,
}

fn own() -> std::sync::MutexGuard<'static, Running> {
    OWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process runs `argv` of `program` now (its isle booted, or an
/// execve replaced it): its slot says so, once there is a table.
pub(crate) fn set_own(argv: &[Vec<u8>], program: &[u8]) {
    let mut arguments = Vec::new();
    for argument in argv {
        arguments.extend_from_slice(argument);
        arguments.push(0);
    }
    let running = Running {
        arguments,
        program: program.to_vec(),
    };
    *own() = running.clone();
    if let Some(table) = TABLE.get() {
        publish(table, &running);
    }
}

/// Before the first fork: the top monitor makes the table, with its slot.
pub(crate) fn make() -> std::io::Result<()> {
    if TABLE.get().is_some() {
        return Ok(());
    }
    let memfd = rustix::fs::memfd_create("atoll-processes", rustix::fs::MemfdFlags::CLOEXEC)?;
    let file = std::fs::File::from(memfd);
    file.set_len((SLOTS * SLOT_BYTES) as u64)?;
    let region =
        MmapRegion::<()>::from_file(vm_memory::FileOffset::new(file, 0), SLOTS * SLOT_BYTES)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
    let table = TABLE.get_or_init(|| region);
    publish(table, &own());
    Ok(())
}

/// In a forked child: its slot, holding its parent's program until it
/// execs, as Linux's /proc shows a fork.
pub(crate) fn enter_child() {
    if let Some(table) = TABLE.get() {
        publish(table, &own());
    }
}

/// Before this process ends: its slot is free again.
pub(crate) fn leave() {
    let Some(table) = TABLE.get() else {
        return;
    };
    let me = std::process::id();
    for index in 0..SLOTS {
        if let Some(pid) = pid_word(table, index) {
            let _ = pid.compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

/// What process `pid` runs, if it has a slot.
pub(crate) fn running(pid: u32) -> Option<Running> {
    let table = TABLE.get()?;
    (0..SLOTS)
        .find_map(|index| read(table, index).filter(|(owner, _)| *owner == pid))
        .map(|(_, running)| running)
}

/// The pids with a slot (some may have ended without leaving it).
pub(crate) fn pids() -> Vec<u32> {
    let Some(table) = TABLE.get() else {
        return Vec::new();
    };
    (0..SLOTS)
        .filter_map(|index| pid_word(table, index).map(|pid| pid.load(Ordering::SeqCst)))
        .filter(|&pid| pid != 0)
        .collect()
}

fn slot(table: &MmapRegion<()>, index: usize) -> Option<VolatileSlice<'_>> {
    table.get_slice(index * SLOT_BYTES, SLOT_BYTES).ok()
}

fn pid_word(table: &MmapRegion<()>, index: usize) -> Option<&AtomicU32> {
    table.get_atomic_ref::<AtomicU32>(index * SLOT_BYTES).ok()
}

fn sequence(table: &MmapRegion<()>, index: usize) -> Option<&AtomicU32> {
    table
        .get_atomic_ref::<AtomicU32>(index * SLOT_BYTES + 4)
        .ok()
}

/// Writes `running` into this process's slot, taking one if it has none:
/// a free one, or one whose process is gone.
fn publish(table: &MmapRegion<()>, running: &Running) {
    let me = std::process::id();
    let taken = (0..SLOTS)
        .find(|&index| pid_word(table, index).is_some_and(|pid| pid.load(Ordering::SeqCst) == me));
    let taken = taken.or_else(|| {
        (0..SLOTS).find(|&index| {
            let Some(pid) = pid_word(table, index) else {
                return false;
            };
            let owner = pid.load(Ordering::SeqCst);
            let free = owner == 0 || !crate::host::process::alive(owner);
            free && pid
                .compare_exchange(owner, me, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })
    });
    let Some((slot, sequence)) =
        taken.and_then(|index| Some((slot(table, index)?, sequence(table, index)?)))
    else {
        tracing::debug!("the process table is full: /proc won't show this process to others");
        return;
    };
    let arguments = &running.arguments[..running.arguments.len().min(ARGUMENTS_MAX)];
    let program = &running.program[..running.program.len().min(PROGRAM_MAX)];
    let mut lengths = (arguments.len() as u32).to_ne_bytes().to_vec();
    lengths.extend_from_slice(&(program.len() as u32).to_ne_bytes());
    sequence.fetch_add(1, Ordering::SeqCst);
    for (at, bytes) in [
        (8, lengths.as_slice()),
        (HEADER, program),
        (HEADER + PROGRAM_MAX, arguments),
    ] {
        if let Ok(place) = slot.get_slice(at, bytes.len()) {
            place.copy_from(bytes);
        }
    }
    sequence.fetch_add(1, Ordering::SeqCst);
}

/// Slot `index`'s owner and contents, read whole (retried while written).
fn read(table: &MmapRegion<()>, index: usize) -> Option<(u32, Running)> {
    let (slot, sequence, pid) = (
        slot(table, index)?,
        sequence(table, index)?,
        pid_word(table, index)?,
    );
    for _ in 0..1000 {
        let before = sequence.load(Ordering::SeqCst);
        let owner = pid.load(Ordering::SeqCst);
        if owner == 0 {
            return None;
        }
        if before % 2 == 1 {
            std::thread::yield_now();
            continue;
        }
        let mut lengths = [0u8; 8];
        slot.get_slice(8, 8).ok()?.copy_to(&mut lengths);
        let arguments_len =
            (u32::from_ne_bytes(lengths[..4].try_into().ok()?) as usize).min(ARGUMENTS_MAX);
        let program_len =
            (u32::from_ne_bytes(lengths[4..].try_into().ok()?) as usize).min(PROGRAM_MAX);
        let mut program = vec![0u8; program_len];
        slot.get_slice(HEADER, program_len)
            .ok()?
            .copy_to(&mut program);
        let mut arguments = vec![0u8; arguments_len];
        slot.get_slice(HEADER + PROGRAM_MAX, arguments_len)
            .ok()?
            .copy_to(&mut arguments);
        if sequence.load(Ordering::SeqCst) == before && pid.load(Ordering::SeqCst) == owner {
            return Some((owner, Running { arguments, program }));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MmapRegion<()> {
        MmapRegion::<()>::new(SLOTS * SLOT_BYTES).unwrap()
    }

    #[test]
    fn a_slot_reads_back_what_its_process_published() {
        let table = table();
        let running = Running {
            arguments: b"sleep\x0030\x00".to_vec(),
            program: b"/bin/sleep".to_vec(),
        };
        publish(&table, &running);
        let me = std::process::id();
        let found: Vec<_> = (0..SLOTS).filter_map(|index| read(&table, index)).collect();
        assert_eq!(found, vec![(me, running.clone())]);
        // Publishing again rewrites the same slot.
        let replaced = Running {
            arguments: vec![b'x'; ARGUMENTS_MAX + 10],
            program: b"/bin/true".to_vec(),
        };
        publish(&table, &replaced);
        let found: Vec<_> = (0..SLOTS).filter_map(|index| read(&table, index)).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.arguments.len(), ARGUMENTS_MAX, "cut to the slot");
        assert_eq!(found[0].1.program, b"/bin/true");
    }

    #[test]
    fn a_slot_whose_process_is_gone_is_taken_again() {
        let table = table();
        // Every slot held by a pid no process has (past any pid_max).
        for index in 0..SLOTS {
            pid_word(&table, index)
                .unwrap()
                .store(0x7fff_fff0, Ordering::SeqCst);
        }
        publish(&table, &Running::default());
        let mine = (0..SLOTS)
            .filter(|&index| {
                pid_word(&table, index).unwrap().load(Ordering::SeqCst) == std::process::id()
            })
            .count();
        assert_eq!(mine, 1);
    }
}
