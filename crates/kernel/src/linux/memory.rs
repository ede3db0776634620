//! Memory syscalls: brk, anonymous mmap and friends (see `crate::mm`), and
//! MAP_SHARED file mappings, which the host makes by mapping the file's
//! pages over the range of guest RAM the kernel reserved for them (see
//! `atoll_vmm::offload::file_mapping`); [`FILE_RANGES`] remembers which those are.
//! Anonymous MAP_SHARED memory is one of those too, of a file of its own
//! (a memfd), so the process's forks share it as Linux's do.

use atoll_abi::linux::errno::{EACCES, EFAULT, EINVAL, ENODEV, ENOMEM};
use atoll_abi::queue::Opcode;
use spin::Mutex;

use super::io::host_result;
use super::SysResult;
use crate::mm::{self, regions, Access, Placement};
use crate::offload;
use atoll_abi::regions::{flags, names, Region};

const PAGE_SIZE: u64 = 4096;
const PROT_ALL: u64 = 0x7 | 0x0100_0000 | 0x0200_0000; // READ|WRITE|EXEC|GROWSDOWN|GROWSUP
const PROT_READ: u64 = 0x1;
const PROT_WRITE: u64 = 0x2;
const PROT_EXEC: u64 = 0x4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_STACK: u64 = 0x2_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MADV_DONTNEED: u64 = 4;
const MS_ASYNC: u64 = 1;
const MS_INVALIDATE: u64 = 2;
const MS_SYNC: u64 = 4;

/// Most file-shared ranges at once.
const MAX_FILE_RANGES: usize = 256;

/// A range of guest memory showing a file (MAP_SHARED).
#[derive(Clone, Copy, Default)]
struct FileRange {
    start: u64,
    end: u64,
    /// The fd allowed a writable mapping (for mprotect's EACCES).
    may_write: bool,
}

struct FileRanges {
    ranges: [FileRange; MAX_FILE_RANGES],
    count: usize,
}

static FILE_RANGES: Mutex<FileRanges> = Mutex::new(FileRanges {
    ranges: [FileRange {
        start: 0,
        end: 0,
        may_write: false,
    }; MAX_FILE_RANGES],
    count: 0,
});

impl FileRanges {
    fn live(&self) -> &[FileRange] {
        &self.ranges[..self.count]
    }

    fn insert(&mut self, range: FileRange) -> Result<(), i64> {
        if self.count == MAX_FILE_RANGES {
            return Err(ENOMEM);
        }
        self.ranges[self.count] = range;
        self.count += 1;
        Ok(())
    }

    /// The first range overlapping `[start, end)`, clipped to it.
    fn first_overlap(&self, start: u64, end: u64) -> Option<(u64, u64)> {
        self.live()
            .iter()
            .filter(|r| r.start < end && start < r.end)
            .map(|r| (r.start.max(start), r.end.min(end)))
            .min()
    }

    /// The range holding all of `[start, end)`, if one does.
    fn containing(&self, start: u64, end: u64) -> Option<FileRange> {
        self.live()
            .iter()
            .copied()
            .find(|r| r.start <= start && end <= r.end)
    }

    /// Takes `[start, end)` out, keeping what lies beside it.
    fn remove(&mut self, start: u64, end: u64) -> Result<(), i64> {
        let mut index = 0;
        while index < self.count {
            let range = self.ranges[index];
            if range.end <= start || end <= range.start {
                index += 1;
                continue;
            }
            let below = FileRange {
                end: start,
                ..range
            };
            let above = FileRange {
                start: end,
                ..range
            };
            self.ranges[index] = self.ranges[self.count - 1];
            self.count -= 1;
            for part in [below, above] {
                if part.start < part.end {
                    self.insert(part)?;
                }
            }
        }
        Ok(())
    }
}

/// Rounds a length up to whole pages; None when that would overflow.
fn page_len(len: u64) -> Option<u64> {
    len.checked_add(PAGE_SIZE - 1)
        .map(|end| end & !(PAGE_SIZE - 1))
}

/// Gives every file-shared part of `[start, end)` private memory again
/// (munmap, or a MAP_FIXED mapping over it).
fn release_files(start: u64, end: u64) -> Result<(), i64> {
    // One piece at a time: the table's lock is never held across a host call.
    loop {
        let piece = {
            let mut ranges = FILE_RANGES.lock();
            let Some(piece) = ranges.first_overlap(start, end) else {
                return Ok(());
            };
            ranges.remove(piece.0, piece.1)?;
            piece
        };
        host_result(offload::call(
            Opcode::UnmapFile,
            [piece.0, piece.1 - piece.0, 0, 0, 0, 0],
        ))?;
    }
}

/// What `prot` lets the program do (PROT_EXEC implies reading on x86).
fn access(prot: u64) -> Access {
    if prot & PROT_WRITE != 0 {
        Access::ReadWrite
    } else if prot & (PROT_READ | PROT_EXEC) != 0 {
        Access::Read
    } else {
        Access::None
    }
}

/// `prot` as the memory map's protection bits.
fn region_access(prot: u64) -> u32 {
    let mut access = 0;
    for (bit, flag) in [
        (PROT_READ, flags::READ),
        (PROT_WRITE, flags::WRITE),
        (PROT_EXEC, flags::EXEC),
    ] {
        if prot & bit != 0 {
            access |= flag;
        }
    }
    access
}

/// Enters a new mapping at `start` in the memory map; if the map is full,
/// the mapping is undone and the call fails with ENOMEM, as Linux does
/// past max_map_count.
fn record(start: u64, len: u64, offset: u64, name: u32, flags: u32) -> SysResult {
    let end = start + page_len(len).ok_or(ENOMEM)?;
    let region = Region {
        start,
        end,
        offset,
        name,
        flags,
    };
    if let Err(errno) = regions::map(region) {
        let _ = release_files(start, end);
        let _ = mm::unmap(start, len);
        return Err(errno);
    }
    Ok(start)
}

pub fn brk(requested: u64) -> SysResult {
    Ok(mm::brk(requested))
}

pub fn mmap(address: u64, len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> SysResult {
    if prot & !PROT_ALL != 0 {
        return Err(EINVAL);
    }
    let kind = flags & MAP_TYPE;
    match kind {
        MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE => {}
        _ => return Err(EINVAL),
    }
    if !offset.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed
    } else {
        Placement::Anywhere
    };
    if placement == Placement::Fixed && address.is_multiple_of(PAGE_SIZE) {
        // MAP_FIXED replaces: a file shown there goes first.
        let end = page_len(len)
            .and_then(|len| address.checked_add(len))
            .ok_or(ENOMEM)?;
        release_files(address, end)?;
    }
    let access = access(prot);
    if flags & MAP_ANONYMOUS != 0 {
        if kind != MAP_PRIVATE {
            match map_shared_memory(address, len, prot, placement) {
                // Where the host can't share memory (QEMU): only forks
                // would see the difference, and QEMU's isles don't fork.
                Err(ENODEV) => {}
                result => return result,
            }
        }
        let start = match flags & MAP_STACK != 0 {
            true => mm::map_stack(address, len, placement, access)?,
            false => mm::map_anonymous(address, len, placement, access)?,
        };
        let shared = match kind {
            MAP_PRIVATE => 0,
            _ => flags::SHARED,
        };
        return record(
            start,
            len,
            0,
            names::ANONYMOUS,
            region_access(prot) | shared,
        );
    }
    let request = FileMap {
        address,
        len,
        prot,
        placement,
        fd,
        offset,
    };
    if kind != MAP_PRIVATE {
        match map_shared_file(request) {
            // Where the host can't share the file (QEMU, /dev/zero), a
            // read-only mapping can still be a copy: nothing writes
            // through it, so it can't diverge from the file by itself.
            Err(ENODEV) if prot & PROT_WRITE == 0 => {}
            result => return result,
        }
    }
    map_private_file(request)
}

/// A file mmap's arguments.
#[derive(Clone, Copy)]
struct FileMap {
    address: u64,
    len: u64,
    prot: u64,
    placement: Placement,
    fd: u64,
    offset: u64,
}

/// Reserves the range a file mmap gets, lets `show` put the file there
/// (undone if it fails) and applies PROT_NONE.
fn map_file(request: FileMap, show: impl FnOnce(u64, u64) -> Result<(), i64>) -> SysResult {
    let start = mm::map_anonymous(
        request.address,
        request.len,
        request.placement,
        Access::ReadWrite,
    )?;
    let end = start + page_len(request.len).ok_or(ENOMEM)?;
    if let Err(errno) = show(start, end) {
        let _ = mm::unmap(start, request.len);
        return Err(errno);
    }
    let access = access(request.prot);
    if access != Access::ReadWrite {
        mm::protect(start, request.len, access)?;
    }
    Ok(start)
}

/// MAP_PRIVATE of a file: a private copy read in now. Code (PROT_EXEC)
/// then has its syscall sites rewritten by the host, before it can run.
fn map_private_file(request: FileMap) -> SysResult {
    let mut name = names::ANONYMOUS;
    let start = map_file(request, |start, end| {
        let read = offload::call(
            Opcode::MapPrivateFile,
            [request.fd, start, end - start, request.offset, 0, 0],
        );
        name = host_result(read)? as u32;
        Ok(())
    })?;
    let access = region_access(request.prot);
    record(start, request.len, request.offset, name, access)?;
    if request.prot & PROT_EXEC != 0 {
        let len = page_len(request.len).ok_or(ENOMEM)?;
        rewrite_mapped_code(name, start, len, request.offset);
    }
    Ok(start)
}

/// Has the host rewrite the syscall sites of code read from file `name`
/// at `start` (see `atoll_vmm::offload::code`): it says how much room the
/// stubs need, the kernel maps that nearby (mmap places downwards, so
/// just below) and the host fills it and patches the sites. Any failure
/// only leaves the sites trapping, which is correct, just slower.
fn rewrite_mapped_code(name: u32, start: u64, len: u64, offset: u64) {
    if name < names::FIRST_FILE {
        return;
    }
    let args = [u64::from(name), start, len, offset, 0, 0];
    let needed = offload::call(Opcode::RewriteMapped, args);
    if needed <= 0 {
        return;
    }
    let Ok(area) = mm::map_anonymous(0, needed as u64, Placement::Anywhere, Access::ReadWrite)
    else {
        return;
    };
    let args = [u64::from(name), start, len, offset, area, needed as u64];
    if offload::call(Opcode::RewriteMapped, args) <= 0 {
        let _ = mm::unmap(area, needed as u64);
        return;
    }
    // The stubs are code: nothing writes them again.
    let _ = mm::protect(area, needed as u64, Access::Read);
    let _ = record(
        area,
        needed as u64,
        0,
        names::ANONYMOUS,
        flags::READ | flags::EXEC,
    );
}

/// MAP_SHARED | MAP_ANONYMOUS: the kernel reserves the range, the host
/// shows a new memfd's pages there (zeros, shared with the forks to come).
fn map_shared_memory(address: u64, len: u64, prot: u64, placement: Placement) -> SysResult {
    let request = FileMap {
        address,
        len,
        prot,
        placement,
        fd: 0,
        offset: 0,
    };
    let start = map_file(request, |start, end| {
        shown_by_host(start, end, true, || {
            offload::call(Opcode::MapSharedMemory, [start, end - start, 0, 0, 0, 0])
        })
        .map(|_| ())
    })?;
    let access = region_access(prot) | flags::SHARED;
    record(start, len, 0, names::ANONYMOUS, access)
}

/// Records `start..end` as memory the host shows from a file, then asks
/// the host to with `call`: its non-negative answer, or its errno with the
/// record taken back.
fn shown_by_host(start: u64, end: u64, may_write: bool, call: impl FnOnce() -> i64) -> SysResult {
    let range = FileRange {
        start,
        end,
        may_write,
    };
    FILE_RANGES.lock().insert(range)?;
    let result = call();
    if result < 0 {
        let _ = FILE_RANGES.lock().remove(start, end);
        return Err(-result);
    }
    Ok(result as u64)
}

/// Whether the word at `address` lies in memory the host shows from a
/// file (MAP_SHARED): other processes may see it, so its futexes are the
/// host's.
pub(super) fn shared_with_processes(address: u64) -> bool {
    FILE_RANGES
        .lock()
        .containing(address, address.saturating_add(4))
        .is_some()
}

/// MAP_SHARED of a file: the kernel reserves the range, the host shows
/// the file's pages there.
fn map_shared_file(request: FileMap) -> SysResult {
    // An fd is an int; the host checks it against the isle's table.
    let fd = request.fd as i32;
    if fd < 0 {
        return Err(atoll_abi::linux::errno::EBADF);
    }
    let mut name = names::ANONYMOUS;
    let start = map_file(request, |start, end| {
        let result = shown_by_host(start, end, false, || {
            offload::call(
                Opcode::MapFile,
                [
                    fd as u64,
                    start,
                    end - start,
                    request.prot,
                    request.offset,
                    0,
                ],
            )
        })?;
        let mut ranges = FILE_RANGES.lock();
        let count = ranges.count;
        if let Some(mine) = ranges.ranges[..count]
            .iter_mut()
            .find(|r| r.start == start && r.end == end)
        {
            mine.may_write = result & 1 == 1;
        }
        name = (result >> 1) as u32;
        Ok(())
    })?;
    let access = region_access(request.prot) | flags::SHARED;
    record(start, request.len, request.offset, name, access)
}

pub fn munmap(address: u64, len: u64) -> SysResult {
    if !address.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(EINVAL);
    }
    let end = page_len(len)
        .and_then(|len| address.checked_add(len))
        .ok_or(EINVAL)?;
    regions::unmap(address, end)?;
    release_files(address, end)?;
    mm::unmap(address, len).map(|()| 0)
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, _new_address: u64) -> SysResult {
    if flags & !MREMAP_MAYMOVE != 0 {
        // MREMAP_FIXED and MREMAP_DONTUNMAP need remapping, which an isle can't do.
        return Err(EINVAL);
    }
    let may_move = flags & MREMAP_MAYMOVE != 0;
    let old_end = page_len(old_len).and_then(|len| old.checked_add(len));
    let file = match old_end {
        Some(old_end) if old.is_multiple_of(PAGE_SIZE) && old_len != 0 => {
            let ranges = FILE_RANGES.lock();
            ranges
                .first_overlap(old, old_end)
                .map(|_| ranges.containing(old, old_end))
        }
        _ => None,
    };
    let new = match file {
        None => mm::remap(old, old_len, new_len, may_move)?,
        // Linux refuses a remap across several mappings.
        Some(None) => return Err(EFAULT),
        Some(Some(range)) => remap_file(range, old, old_len, new_len, may_move)?,
    };
    // Both lengths were whole pages' worth once mm took them.
    let (old_len, new_len) = (
        old_len.next_multiple_of(PAGE_SIZE),
        new_len.next_multiple_of(PAGE_SIZE),
    );
    regions::remap(old, old_len, new, new_len)?;
    Ok(new)
}

/// mremap of (part of) a file-shared range: the host shows the file at
/// the new place, from where it showed at `old`.
fn remap_file(range: FileRange, old: u64, old_len: u64, new_len: u64, may_move: bool) -> SysResult {
    let old_len = page_len(old_len).ok_or(EINVAL)?;
    let new_len = page_len(new_len).ok_or(EINVAL)?;
    if new_len == 0 {
        return Err(EINVAL);
    }
    if new_len <= old_len {
        release_files(old + new_len, old + old_len)?;
        return mm::remap(old, old_len, new_len, false);
    }
    let new = match mm::remap(old, old_len, new_len, false) {
        Ok(same) => same,
        Err(ENOMEM) if may_move => {
            mm::map_anonymous(0, new_len, Placement::Anywhere, Access::ReadWrite)?
        }
        Err(errno) => return Err(errno),
    };
    let moved = FileRange {
        start: new,
        end: new + new_len,
        ..range
    };
    {
        let mut ranges = FILE_RANGES.lock();
        ranges.remove(old, old + old_len)?;
        ranges.insert(moved)?;
    }
    let result = offload::call(Opcode::RemapFile, [old, old_len, new, new_len, 0, 0]);
    if result < 0 {
        let _ = FILE_RANGES.lock().remove(new, new + new_len);
        return Err(-result);
    }
    if new != old {
        mm::unmap(old, old_len)?;
    }
    Ok(new)
}

pub fn mprotect(address: u64, len: u64, prot: u64) -> SysResult {
    if !address.is_multiple_of(4096) || prot & !PROT_ALL != 0 {
        return Err(EINVAL);
    }
    let end = address.saturating_add(page_len(len).unwrap_or(u64::MAX));
    if prot & PROT_WRITE != 0 {
        // As Linux: a shared file mapping can't become writable unless its
        // fd was opened for writing.
        let ranges = FILE_RANGES.lock();
        let read_only = ranges
            .live()
            .iter()
            .any(|r| r.start < end && address < r.end && !r.may_write);
        if read_only {
            return Err(EACCES);
        }
    }
    // Private copies of a file's code becoming executable: rewritten as
    // mmap(PROT_EXEC) rewrites them (only sites still as the file has
    // them; code that was ever writable is left trapping, as changed code is).
    let (pieces, count) = regions::pieces::<16>(address, end);
    let becoming_code = |piece: &&Region| {
        piece.is_file() && piece.flags & (flags::EXEC | flags::SHARED | flags::WRITTEN) == 0
    };
    mm::protect(address, len, access(prot))?;
    regions::protect(address, end, region_access(prot))?;
    if prot & (PROT_EXEC | PROT_WRITE) == PROT_EXEC {
        for piece in pieces[..count].iter().filter(becoming_code) {
            rewrite_mapped_code(
                piece.name,
                piece.start,
                piece.end - piece.start,
                piece.offset,
            );
        }
    }
    Ok(0)
}

pub fn madvise(address: u64, len: u64, advice: u64) -> SysResult {
    if !address.is_multiple_of(4096) {
        return Err(EINVAL);
    }
    let len = len.checked_add(4095).ok_or(EINVAL)? & !4095;
    if len != 0 && !mm::is_mapped(address, len) {
        return Err(ENOMEM);
    }
    // MADV_DONTNEED promises zeros on the next touch of private memory,
    // which goes back to the host. A file's pages come back from the file,
    // so they stay as they are.
    if advice == MADV_DONTNEED && len != 0 {
        let end = address + len;
        let mut at = address;
        while at < end {
            let next_file = FILE_RANGES.lock().first_overlap(at, end);
            let (gap_end, skip_to) = next_file.unwrap_or((end, end));
            if at < gap_end {
                mm::discard(at, gap_end - at)?;
            }
            at = skip_to.max(gap_end);
        }
    }
    Ok(0)
}

pub fn msync(address: u64, len: u64, flags: u64) -> SysResult {
    if !address.is_multiple_of(PAGE_SIZE)
        || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC
    {
        return Err(EINVAL);
    }
    let len = page_len(len).ok_or(ENOMEM)?;
    let end = address.checked_add(len).ok_or(ENOMEM)?;
    if len == 0 {
        return Ok(0);
    }
    if !mm::is_mapped(address, len) {
        return Err(ENOMEM);
    }
    let mut at = address;
    loop {
        let next_file = FILE_RANGES.lock().first_overlap(at, end);
        let Some((start, stop)) = next_file else {
            break;
        };
        host_result(offload::call(
            Opcode::Msync,
            [start, stop - start, flags, 0, 0, 0],
        ))?;
        at = stop;
    }
    Ok(0)
}

/// mincore(address, len, vector): every mapped page of an isle is in
/// memory (the host backs what is handed out, and nothing is swapped to
/// the isle's knowledge), so each byte says 1; ENOMEM where a page is not
/// mapped, as Linux.
pub fn mincore(address: u64, len: u64, vector: u64) -> SysResult {
    if !address.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let len = page_len(len).ok_or(ENOMEM)?;
    if len == 0 {
        return Ok(0);
    }
    if !mm::is_mapped(address, len) {
        return Err(ENOMEM);
    }
    crate::arch::x86_64::user::fill(vector, len / PAGE_SIZE, 1)?;
    Ok(0)
}
