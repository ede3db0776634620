//! Memory: brk and anonymous mmap over memory that is already mapped.
//!
//! All guest RAM is identity-mapped before boot (address space far larger
//! than the program may use). The kernel decides which free range of the
//! heap a request gets: brk grows up from the end of the program image,
//! mmap grows down from the stack guard. The host backs RAM only where it
//! is used: handing memory out counts its 2 MiB chunks against the memory
//! limit (-m) and asks the host to populate them ahead of the program's
//! first touch; memory that becomes free (munmap, brk shrinking, MADV_
//! DONTNEED, MAP_FIXED over a mapping) is given back to the host, so free
//! memory is always zero and nothing is cleared on allocation. PROT_NONE
//! and read-only protections are enforced in the page tables.
//!
//! What is where: this file holds the address space's state and the
//! syscall-facing API; `mappings` decides where brk and mmap ranges go,
//! `backing` what the host backs and counts against the limit, and
//! `page_tables` the protections and TLB flushes; `regions` keeps the
//! memory map as /proc/self/maps shows it.

mod backing;
mod mappings;
mod page_tables;
pub mod regions;

use atoll_abi::boot::BootInfo;
use atoll_abi::layout::{
    align_up, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, MAX_CPUS, MAX_RAM_SIZE, MAX_RAM_SLOTS, PAGE_SIZE,
};
use atoll_abi::linux::errno::{EINVAL, ENOMEM};
use spin::Mutex;

use crate::arch::x86_64::user;
use backing::{populate_ahead, release};
pub use page_tables::sync_tlb;

/// Rounds a length up to whole pages; None when that would overflow.
fn page_len(len: u64) -> Option<u64> {
    len.checked_add(PAGE_SIZE - 1)
        .map(|end| end & !(PAGE_SIZE - 1))
}

/// Most distinct mmap ranges at once (adjacent ones merge).
const MAX_MAPPINGS: usize = 1024;
/// Most thread stacks tracked at once (the kernel has 256 thread slots);
/// beyond, a stack counts whole like any mapping.
const MAX_STACKS: usize = 256;
/// Words of the backed-chunk bitmap: one bit per 2 MiB of the largest RAM.
const CHUNK_WORDS: usize = (MAX_RAM_SIZE / LARGE_PAGE_SIZE / 64) as usize;

/// What a program may do with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// PROT_NONE: every access faults.
    None,
    /// PROT_READ (with or without PROT_EXEC): writes fault.
    Read,
    /// Anything with PROT_WRITE.
    ReadWrite,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Range {
    start: u64,
    end: u64,
}

struct AddressSpace {
    heap_end: u64,
    brk_start: u64,
    brk: u64,
    stack_bottom: u64,
    stack_top: u64,
    /// Live mmap ranges, sorted and non-overlapping.
    mappings: [Range; MAX_MAPPINGS],
    mapping_count: usize,
    /// Bit n set: heap chunk n (2 MiB at n * 2 MiB) is handed out, at least
    /// in part, and counts against the limit.
    backed: [u64; CHUNK_WORDS],
    backed_chunks: u64,
    limit_chunks: u64,
    /// Where CPU c's populated reserve ends below its slice's allocations.
    reserve_floor: [u64; MAX_CPUS],
    /// Thread stacks (MAP_STACK mappings): only their top chunk is counted
    /// and populated, as a thread touches little more natively.
    stacks: [Range; MAX_STACKS],
    stack_count: usize,
    /// CPU c's mmap slice ends `c * slice_size` below the heap end.
    cpu_count: u64,
    slice_size: u64,
    /// The PML4, and spare pages for splitting 2 MiB mappings.
    page_table_root: u64,
    spare_page_tables: u64,
    spare_page_table_count: u64,
    /// Bit n set: spare page table n is in use.
    spare_page_tables_used: [u64; 2],
    /// The 2 MiB region spare page table n maps.
    page_table_region: [u64; 128],
    /// Where PROT_NONE is allowed: the program image, heap and stack.
    protectable: Range,
    /// Bit n set: RAM slot n is known to reach the vCPUs.
    attached_slots: [u64; SLOT_WORDS],
}

const SLOT_WORDS: usize = MAX_RAM_SLOTS.div_ceil(64) as usize;

static SPACE: Mutex<AddressSpace> = Mutex::new(AddressSpace::EMPTY);

impl AddressSpace {
    /// Before boot: no heap, nothing mapped.
    const EMPTY: AddressSpace = AddressSpace {
        heap_end: 0,
        brk_start: 0,
        brk: 0,
        stack_bottom: 0,
        stack_top: 0,
        mappings: [Range { start: 0, end: 0 }; MAX_MAPPINGS],
        mapping_count: 0,
        backed: [0; CHUNK_WORDS],
        backed_chunks: 0,
        limit_chunks: 0,
        reserve_floor: [0; MAX_CPUS],
        stacks: [Range { start: 0, end: 0 }; MAX_STACKS],
        stack_count: 0,
        cpu_count: 1,
        slice_size: 0,
        page_table_root: 0,
        spare_page_tables: 0,
        spare_page_table_count: 0,
        spare_page_tables_used: [0; 2],
        page_table_region: [0; 128],
        protectable: Range { start: 0, end: 0 },
        attached_slots: [0; SLOT_WORDS],
    };
}

static KERNEL_PHYS_START: spin::Once<u64> = spin::Once::new();

pub fn init(boot: &BootInfo) {
    KERNEL_PHYS_START.call_once(|| boot.kernel_phys_start);
    regions::init(boot);
    let mut space = SPACE.lock();
    space.brk_start = boot.heap_start;
    space.brk = boot.heap_start;
    space.heap_end = boot.heap_end;
    space.stack_bottom = boot.program.stack_bottom;
    space.stack_top = boot.program.stack_top;
    // The lowest share stays for brk; each CPU gets one above it.
    space.cpu_count = u64::from(boot.cpu_count.max(1));
    space.slice_size =
        ((boot.heap_end - boot.heap_start) / (space.cpu_count + 1)) & !(LARGE_PAGE_SIZE - 1);
    space.page_table_root = boot.page_table_root;
    space.spare_page_tables = boot.spare_page_tables;
    space.spare_page_table_count = boot.spare_page_table_count.min(128);
    space.protectable = Range {
        start: boot.program.image_start,
        end: boot.program.stack_top,
    };
    space.limit_chunks = boot.memory_limit / LARGE_PAGE_SIZE;
    // The monitor left the heap unmapped: regions get mapped as they are
    // handed out, so user pointers are checked against the tables.
    user::note_region_protected();
    for cpu in 0..space.cpu_count {
        space.reserve_floor[cpu as usize] = space.slice_top(cpu);
    }
}

/// Asks the host to populate every CPU's first reserve (it waits until the
/// isle has run 20 ms, so short isles never pay for it).
pub fn populate_reserves() {
    let mut space = SPACE.lock();
    for cpu in 0..space.cpu_count {
        let top = space.slice_top(cpu);
        space.extend_reserve(cpu, top);
    }
    // brk's first growth, for small allocations.
    let brk_start = align_up(space.brk_start, LARGE_PAGE_SIZE);
    let brk_end = (brk_start + BRK_RESERVE).min(space.slice_top(space.cpu_count));
    if brk_start < brk_end {
        populate_ahead(Range {
            start: brk_start,
            end: brk_end,
        });
    }
}

/// Populated ahead of brk at boot.
const BRK_RESERVE: u64 = 16 << 20;

/// Guest-physical address of a kernel pointer: kernel statics live at the
/// kernel's link address, everything else is identity-mapped.
pub fn guest_physical(address: u64) -> u64 {
    if address >= KERNEL_VIRT_BASE {
        address - KERNEL_VIRT_BASE + KERNEL_PHYS_START.get().copied().unwrap_or(0)
    } else {
        address
    }
}

/// brk(2): returns the new break, or the old one when the request fails.
pub fn brk(requested: u64) -> u64 {
    let mut space = SPACE.lock();
    let old_limit = space.brk_limit();
    let brk = space.set_brk(requested);
    let (start, limit) = (space.brk_start, space.brk_limit());
    drop(space);
    if limit != old_limit {
        regions::set_heap(start, old_limit, limit);
    }
    brk
}

/// Where an mmap may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere free (the address is only a hint, which isn't followed).
    Anywhere,
    /// Exactly there, replacing what is there (MAP_FIXED).
    Fixed,
    /// Exactly there, or EEXIST (MAP_FIXED_NOREPLACE).
    FixedNoReplace,
}

/// Anonymous mmap: PROT_NONE reserves, anything else hands memory out.
pub fn map_anonymous(
    hint: u64,
    len: u64,
    placement: Placement,
    access: Access,
) -> Result<u64, i64> {
    SPACE
        .lock()
        .map_anonymous(hint, len, placement, access, false)
}

/// [`map_anonymous`] of a thread stack (MAP_STACK): of its memory only the
/// top 2 MiB chunk counts and is populated ahead.
pub fn map_stack(hint: u64, len: u64, placement: Placement, access: Access) -> Result<u64, i64> {
    SPACE
        .lock()
        .map_anonymous(hint, len, placement, access, true)
}

/// munmap(2) of anonymous memory: what it covered goes back to the host.
pub fn unmap(address: u64, len: u64) -> Result<(), i64> {
    if !address.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(EINVAL);
    }
    let end = page_len(len)
        .and_then(|len| address.checked_add(len))
        .ok_or(EINVAL)?;
    let range = Range {
        start: address,
        end,
    };
    SPACE.lock().unmap(range)
}

/// MADV_DONTNEED: the range reads as zeros afterwards. Heap and stack
/// memory goes back to the host; the program image is cleared in place.
pub fn discard(address: u64, len: u64) -> Result<(), i64> {
    let space = SPACE.lock();
    let given_back = Range {
        start: address.max(space.brk_start),
        end: (address + len).min(space.stack_top),
    };
    if given_back.start < given_back.end && release(given_back).is_ok() {
        if address < given_back.start {
            user::fill_accessible(address, given_back.start - address, 0)?;
        }
        return Ok(());
    }
    user::fill_accessible(address, len, 0)
}

/// mremap(2) without MREMAP_FIXED.
pub fn remap(old: u64, old_len: u64, new_len: u64, may_move: bool) -> Result<u64, i64> {
    SPACE.lock().remap(old, old_len, new_len, may_move)
}

/// Whether `[address, address + len)` is inside guest RAM at all (for
/// mprotect and madvise, which have nothing to change).
pub fn is_mapped(address: u64, len: u64) -> bool {
    user::range_ok(address, len)
}

/// mprotect(2). Making heap memory usable hands it out (counted against
/// the limit: ENOMEM past it, as Linux's overcommit accounting says).
pub fn protect(address: u64, len: u64, access: Access) -> Result<(), i64> {
    if !address.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let end = page_len(len)
        .and_then(|len| address.checked_add(len))
        .ok_or(ENOMEM)?;
    if end == address {
        return Ok(());
    }
    let range = Range {
        start: address,
        end,
    };
    let mut space = SPACE.lock();
    if access != Access::None {
        space.back(range)?;
    }
    space.protect(range, access)
}

/// Memory the program may still have handed out (for sysinfo's freeram).
pub fn free_bytes() -> u64 {
    let space = SPACE.lock();
    space.limit_chunks.saturating_sub(space.backed_chunks) * LARGE_PAGE_SIZE
}

#[cfg(test)]
mod tests;
