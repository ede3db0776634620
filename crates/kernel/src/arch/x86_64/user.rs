//! Access to the program's memory.
//!
//! Kernel and program share one identity-mapped address space, so a user
//! pointer is usable as is once it lies inside guest RAM (above the NULL
//! guard). Every access checks that first: a bad pointer gives EFAULT, never
//! a kernel fault.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atoll_abi::layout::{pte, NULL_GUARD_END};
use atoll_abi::linux::errno::EFAULT;

/// End of guest RAM, set once at boot.
static RAM_END: AtomicU64 = AtomicU64::new(0);
/// The PML4, for checking pages the program made inaccessible.
static PAGE_TABLE_ROOT: AtomicU64 = AtomicU64::new(0);
/// 2 MiB regions split into 4 KiB pages (beyond the first, which holds the
/// NULL guard).
static SPLIT_REGIONS: AtomicU64 = AtomicU64::new(0);
/// Set once some whole 2 MiB region is absent or read-only (from boot:
/// the heap is mapped as it is handed out); until then, and while nothing
/// is split, every page of RAM is accessible.
static REGIONS_PROTECTED: AtomicBool = AtomicBool::new(false);

const LARGE: u64 = 2 << 20;
const PAGE: u64 = 4096;

/// Records the end of guest RAM and the page tables. Called once, before
/// the program starts.
pub fn init(ram_size: u64, page_table_root: u64) {
    RAM_END.store(ram_size, Ordering::Relaxed);
    PAGE_TABLE_ROOT.store(page_table_root, Ordering::Relaxed);
}

/// `mm` splits (+1) or merges back (-1) a 2 MiB region.
pub fn note_split(delta: i64) {
    if delta >= 0 {
        SPLIT_REGIONS.fetch_add(delta as u64, Ordering::AcqRel);
    } else {
        SPLIT_REGIONS.fetch_sub(delta.unsigned_abs(), Ordering::AcqRel);
    }
}

/// Some whole 2 MiB region is absent or read-only from now on.
pub fn note_region_protected() {
    REGIONS_PROTECTED.store(true, Ordering::Release);
}

/// Whether every page is known to be readable and writable.
fn all_accessible() -> bool {
    SPLIT_REGIONS.load(Ordering::Acquire) == 0 && !REGIONS_PROTECTED.load(Ordering::Acquire)
}

fn read_table(address: u64) -> u64 {
    // SAFETY: page tables live in the system area, identity-mapped RAM the
    // monitor built and only the kernel edits; reads are plain words.
    unsafe { core::ptr::read_volatile(address as *const u64) }
}

/// The page-table entry for 2 MiB region `region`: (entry, is a 4 KiB table).
fn region_entry(region: u64) -> (u64, bool) {
    let root = PAGE_TABLE_ROOT.load(Ordering::Relaxed);
    let pml4e = read_table(root + ((region >> 39) & 511) * 8);
    let pdpte = read_table((pml4e & pte::ADDRESS) + ((region >> 30) & 511) * 8);
    let pde = read_table((pdpte & pte::ADDRESS) + ((region >> 21) & 511) * 8);
    // Absent entries (the heap not handed out yet) carry no table.
    (pde, pde & pte::PRESENT != 0 && pde & pte::LARGE == 0)
}

/// Calls `each(start, end, entry)` for the runs of `[address, end)` mapped
/// by one page-table entry (its flags say present and writable).
fn for_each_run(address: u64, end: u64, mut each: impl FnMut(u64, u64, u64)) {
    let mut start = address;
    while start < end {
        let region = start & !(LARGE - 1);
        let region_end = (region + LARGE).min(end);
        let (pde, split) = region_entry(region);
        if !split || all_accessible() && region != 0 {
            each(start, region_end, pde);
            start = region_end;
            continue;
        }
        while start < region_end {
            let pte = read_table((pde & pte::ADDRESS) + ((start >> 12) & 511) * 8);
            let page_end = ((start & !(PAGE - 1)) + PAGE).min(region_end);
            each(start, page_end, pte);
            start = page_end;
        }
    }
}

/// Whether every page of the range has all of `flags` (present, and
/// writable for a write).
fn has_flags(address: u64, len: u64, flags: u64) -> bool {
    if len == 0 || all_accessible() {
        return true;
    }
    let mut all = true;
    for_each_run(address, address + len, |_, _, entry| {
        all &= entry & flags == flags;
    });
    all
}

/// Whether `[address, address + len)` lies inside mapped guest RAM.
pub fn range_ok(address: u64, len: u64) -> bool {
    let end = RAM_END.load(Ordering::Relaxed);
    match address.checked_add(len) {
        Some(limit) => address >= NULL_GUARD_END && limit <= end,
        None => false,
    }
}

fn check(address: u64, len: u64) -> Result<(), i64> {
    if range_ok(address, len) && has_flags(address, len, pte::PRESENT) {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// [`check`] for a write: read-only pages are EFAULT too, as on Linux
/// (and the kernel, in ring 3, would fault on them).
fn check_write(address: u64, len: u64) -> Result<(), i64> {
    if range_ok(address, len) && has_flags(address, len, pte::PRESENT | pte::WRITABLE) {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Reads a `T` from user memory.
pub fn read<T: UserData>(address: u64) -> Result<T, i64> {
    check(address, core::mem::size_of::<T>() as u64)?;
    // SAFETY: the range is inside identity-mapped RAM (checked above); any
    // bytes the program left there make a valid T (UserData), and the read
    // tolerates any alignment.
    Ok(unsafe { core::ptr::read_unaligned(address as *const T) })
}

/// What can be read from program memory: types for which every bit pattern
/// is a valid value (the program may have written anything there).
///
/// # Safety
/// Implement it only for types without invalid bit patterns: integers and
/// arrays of them (no bool, char, enums, references or pointers to follow).
pub unsafe trait UserData: Copy {}

macro_rules! user_data {
    ($($integer:ty),*) => {
        // SAFETY: every bit pattern is a valid integer.
        $(unsafe impl UserData for $integer {})*
    };
}
user_data!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
// SAFETY: an array is valid when each element is, whatever its bytes.
unsafe impl<T: UserData, const N: usize> UserData for [T; N] {}

/// Writes a `T` to user memory.
pub fn write<T: Copy>(address: u64, value: T) -> Result<(), i64> {
    check_write(address, core::mem::size_of::<T>() as u64)?;
    // SAFETY: as in `read`; the kernel holds no Rust reference into user memory.
    unsafe { core::ptr::write_unaligned(address as *mut T, value) };
    Ok(())
}

/// Copies `bytes` to user memory at `address`.
pub fn copy_to(address: u64, bytes: &[u8]) -> Result<(), i64> {
    check_write(address, bytes.len() as u64)?;
    // SAFETY: destination checked above; the source is kernel memory, which
    // lives outside guest RAM's identity map, so the two never overlap.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len()) };
    Ok(())
}

/// Fills `len` bytes of user memory with `byte`.
pub fn fill(address: u64, len: u64, byte: u8) -> Result<(), i64> {
    check_write(address, len)?;
    // SAFETY: range checked above.
    unsafe { core::ptr::write_bytes(address as *mut u8, byte, len as usize) };
    Ok(())
}

/// Fills the writable pages of a range with `byte`, skipping PROT_NONE
/// and read-only ones.
pub fn fill_accessible(address: u64, len: u64, byte: u8) -> Result<(), i64> {
    if !range_ok(address, len) {
        return Err(EFAULT);
    }
    let writable = pte::PRESENT | pte::WRITABLE;
    for_each_run(address, address + len, |start, end, entry| {
        if all_accessible() || entry & writable == writable {
            // SAFETY: inside RAM (checked above) and mapped writable (this run is).
            unsafe { core::ptr::write_bytes(start as *mut u8, byte, (end - start) as usize) };
        }
    });
    Ok(())
}

/// Moves `len` bytes inside user memory (ranges may overlap).
pub fn copy_within(from: u64, to: u64, len: u64) -> Result<(), i64> {
    check(from, len)?;
    check_write(to, len)?;
    // SAFETY: both ranges checked above; `copy` handles overlap.
    unsafe { core::ptr::copy(from as *const u8, to as *mut u8, len as usize) };
    Ok(())
}

/// Reads a NUL-terminated string into `buffer`; returns its bytes.
/// ENAMETOOLONG when it doesn't fit.
pub fn read_cstr(address: u64, buffer: &mut [u8]) -> Result<&[u8], i64> {
    for (index, slot) in buffer.iter_mut().enumerate() {
        let byte: u8 = read(address + index as u64)?;
        if byte == 0 {
            return Ok(&buffer[..index]);
        }
        *slot = byte;
    }
    Err(atoll_abi::linux::errno::ENAMETOOLONG)
}
