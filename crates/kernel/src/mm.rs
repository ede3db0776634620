//! Memory: brk and anonymous mmap over memory that is already mapped.
//!
//! All guest RAM is identity-mapped before boot and ring 3 can't flush the
//! TLB, so the kernel never edits page tables. It only decides which free
//! range of the heap a request gets: brk grows up from the end of the program
//! image, mmap grows down from the stack guard. Memory comes back zeroed:
//! never-used memory is zero already (the "pristine" range), reused memory is
//! cleared on allocation. Protections are recorded by the program's wishes
//! only: mprotect can't be enforced without changing mappings.

use atoll_abi::boot::BootInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::layout::{align_up, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, MAX_CPUS, PAGE_SIZE};
use atoll_abi::linux::errno::{EEXIST, EFAULT, EINVAL, ENOMEM};
use spin::Mutex;

use crate::arch::x86_64::user;

/// Rounds a length up to whole pages; None when that would overflow.
fn page_len(len: u64) -> Option<u64> {
    len.checked_add(PAGE_SIZE - 1)
        .map(|end| end & !(PAGE_SIZE - 1))
}

/// Most distinct mmap ranges at once (adjacent ones merge).
const MAX_MAPPINGS: usize = 1024;

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
    /// Memory here has never been handed out, so it is still zero.
    pristine: Range,
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
}

static SPACE: Mutex<AddressSpace> = Mutex::new(AddressSpace {
    heap_end: 0,
    brk_start: 0,
    brk: 0,
    stack_bottom: 0,
    stack_top: 0,
    mappings: [Range { start: 0, end: 0 }; MAX_MAPPINGS],
    mapping_count: 0,
    pristine: Range { start: 0, end: 0 },
    cpu_count: 1,
    slice_size: 0,
    page_table_root: 0,
    spare_page_tables: 0,
    spare_page_table_count: 0,
    spare_page_tables_used: [0; 2],
    page_table_region: [0; 128],
    protectable: Range { start: 0, end: 0 },
});

/// Bumped at every page-table change; a CPU that has flushed its TLB less
/// recently flushes before it next runs a thread.
static TLB_GENERATION: AtomicU64 = AtomicU64::new(0);
static CPU_TLB_GENERATION: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_LARGE: u64 = 1 << 7;
/// Set by the CPU on use; they say nothing about the mapping.
const PTE_ACCESSED: u64 = 1 << 5;
const PTE_DIRTY: u64 = 1 << 6;
const PTE_ADDRESS: u64 = 0x000f_ffff_ffff_f000;
/// A normal mapping: kernel and program share ring 3, so it is user-accessible.
const PTE_NORMAL: u64 = PTE_PRESENT | PTE_WRITABLE | PTE_USER;

/// Flushes this CPU's TLB if a page table changed since it last did.
pub fn sync_tlb() {
    let cpu = crate::arch::x86_64::cpu::cpu_area().cpu_index as usize;
    let generation = TLB_GENERATION.load(Ordering::Acquire);
    if let Some(mine) = CPU_TLB_GENERATION.get(cpu) {
        if mine.load(Ordering::Relaxed) != generation {
            mine.store(generation, Ordering::Relaxed);
            crate::arch::x86_64::entry::flush_tlb();
        }
    }
}

static KERNEL_PHYS_START: spin::Once<u64> = spin::Once::new();

pub fn init(boot: &BootInfo) {
    KERNEL_PHYS_START.call_once(|| boot.kernel_phys_start);
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
    space.pristine = Range {
        start: boot.heap_start,
        end: boot.heap_end,
    };
}

/// Guest-physical address of a kernel pointer: kernel statics live at the
/// kernel's link address, everything else is identity-mapped.
pub fn guest_physical(address: u64) -> u64 {
    if address >= KERNEL_VIRT_BASE {
        address - KERNEL_VIRT_BASE + KERNEL_PHYS_START.get().copied().unwrap_or(0)
    } else {
        address
    }
}

impl AddressSpace {
    /// Where the page-directory entry mapping `address` lives.
    fn pd_entry(&self, address: u64) -> Result<u64, i64> {
        let pml4e: u64 = user::read(self.page_table_root + ((address >> 39) & 511) * 8)?;
        let pdpte: u64 = user::read((pml4e & PTE_ADDRESS) + ((address >> 30) & 511) * 8)?;
        Ok((pdpte & PTE_ADDRESS) + ((address >> 21) & 511) * 8)
    }

    /// Makes every page of `range` inaccessible (PROT_NONE), splitting
    /// 2 MiB mappings into 4 KiB ones where needed. Returns whether a
    /// page table changed.
    fn make_inaccessible(&mut self, range: Range) -> Result<bool, i64> {
        let mut changed = false;
        let mut page = range.start;
        while page < range.end {
            let pd_entry = self.pd_entry(page)?;
            let mut directory: u64 = user::read(pd_entry)?;
            if directory & PTE_LARGE != 0 {
                let table = self
                    .take_page_table(page & !(LARGE_PAGE_SIZE - 1))
                    .ok_or(ENOMEM)?;
                let base = directory & PTE_ADDRESS & !(LARGE_PAGE_SIZE - 1);
                for index in 0..512 {
                    user::write(table + index * 8, (base + index * PAGE_SIZE) | PTE_NORMAL)?;
                }
                directory = table | PTE_NORMAL;
                user::write(pd_entry, directory)?;
                user::note_split(1);
                changed = true;
            }
            let entry = (directory & PTE_ADDRESS) + ((page >> 12) & 511) * 8;
            let value: u64 = user::read(entry)?;
            if value & PTE_PRESENT != 0 {
                user::write(entry, (page & PTE_ADDRESS) | PTE_USER)?;
                changed = true;
            }
            page += PAGE_SIZE;
        }
        Ok(changed)
    }

    fn free_page_table_index(&self) -> Option<usize> {
        (0..self.spare_page_table_count as usize)
            .find(|&index| self.spare_page_tables_used[index / 64] & (1 << (index % 64)) == 0)
    }

    /// A spare page table for splitting `region`. When none is left, split
    /// regions whose pages are all normal again are merged back first.
    fn take_page_table(&mut self, region: u64) -> Option<u64> {
        if self.free_page_table_index().is_none() {
            self.merge_whole_regions();
        }
        let index = self.free_page_table_index()?;
        self.spare_page_tables_used[index / 64] |= 1 << (index % 64);
        self.page_table_region[index] = region;
        Some(self.spare_page_tables + index as u64 * PAGE_SIZE)
    }

    /// Merges every split region that is all normal again back onto one
    /// large mapping. A changed page-directory entry may be cached, so this
    /// flushes; it runs only when spare tables run out.
    fn merge_whole_regions(&mut self) {
        let mut merged = false;
        for index in 0..self.spare_page_table_count as usize {
            if self.spare_page_tables_used[index / 64] & (1 << (index % 64)) == 0 {
                continue;
            }
            let region = self.page_table_region[index];
            let table = self.spare_page_tables + index as u64 * PAGE_SIZE;
            if let Ok(pd_entry) = self.pd_entry(region) {
                merged |= self
                    .merge_if_whole(region, pd_entry, table)
                    .unwrap_or(false);
            }
        }
        if merged {
            TLB_GENERATION.fetch_add(1, Ordering::AcqRel);
            sync_tlb();
        }
    }

    /// Puts a split 2 MiB region back on one large mapping when all its
    /// pages are normal again, and frees its page table.
    fn merge_if_whole(&mut self, region: u64, pd_entry: u64, table: u64) -> Result<bool, i64> {
        let pool_end = self.spare_page_tables + self.spare_page_table_count * PAGE_SIZE;
        if !(self.spare_page_tables..pool_end).contains(&table) {
            return Ok(false);
        }
        for index in 0..512 {
            let value: u64 = user::read(table + index * 8)?;
            if value & !(PTE_ACCESSED | PTE_DIRTY) != (region + index * PAGE_SIZE) | PTE_NORMAL {
                return Ok(false);
            }
        }
        user::write(pd_entry, region | PTE_NORMAL | PTE_LARGE)?;
        user::note_split(-1);
        let index = ((table - self.spare_page_tables) / PAGE_SIZE) as usize;
        self.spare_page_tables_used[index / 64] &= !(1 << (index % 64));
        Ok(true)
    }

    /// Makes inaccessible pages in `range` normal again. A TLB never caches
    /// an absent page, so this needs no flush (merging back does, later).
    fn restore_access(&mut self, range: Range) -> Result<(), i64> {
        let mut region = range.start & !(LARGE_PAGE_SIZE - 1);
        while region < range.end {
            let directory: u64 = user::read(self.pd_entry(region)?)?;
            // Only split regions can hold inaccessible pages.
            if directory & (PTE_LARGE | PTE_PRESENT) == PTE_PRESENT {
                let table = directory & PTE_ADDRESS;
                let mut page = region.max(range.start);
                while page < (region + LARGE_PAGE_SIZE).min(range.end) {
                    let entry = table + ((page >> 12) & 511) * 8;
                    let value: u64 = user::read(entry)?;
                    if value & PTE_PRESENT == 0 {
                        user::write(entry, (page & PTE_ADDRESS) | PTE_NORMAL)?;
                    }
                    page += PAGE_SIZE;
                }
            }
            region += LARGE_PAGE_SIZE;
        }
        Ok(())
    }

    /// mprotect: PROT_NONE makes pages fault; anything else makes them
    /// normal again (read-only is not enforced).
    fn protect(&mut self, range: Range, accessible: bool) -> Result<(), i64> {
        if range.start < self.protectable.start || range.end > self.protectable.end {
            // Kernel, system area: refused as Linux refuses unmapped memory.
            return Err(ENOMEM);
        }
        if accessible {
            return self.restore_access(range);
        }
        if self.make_inaccessible(range)? {
            TLB_GENERATION.fetch_add(1, Ordering::AcqRel);
            sync_tlb();
        }
        Ok(())
    }

    fn brk_limit(&self) -> u64 {
        align_up(self.brk, PAGE_SIZE)
    }

    /// Lowest address mmap may not go below.
    fn mmap_floor(&self) -> u64 {
        self.brk_limit()
    }

    /// Clears `range` where it isn't pristine, then takes it out of the pristine range.
    fn claim(&mut self, range: Range) -> Result<(), i64> {
        self.restore_access(range)?;
        let overlap_start = range.start.max(self.pristine.start);
        let overlap_end = range.end.min(self.pristine.end);
        if overlap_start >= overlap_end {
            user::fill(range.start, range.end - range.start, 0)?;
            return Ok(());
        }
        if overlap_start > range.start {
            user::fill(range.start, overlap_start - range.start, 0)?;
        }
        if range.end > overlap_end {
            user::fill(overlap_end, range.end - overlap_end, 0)?;
        }
        // Claims come from the bottom (brk) or the top (mmap): trim that side.
        if overlap_start - self.pristine.start <= self.pristine.end - overlap_end {
            self.pristine.start = overlap_end;
        } else {
            self.pristine.end = overlap_start;
        }
        Ok(())
    }

    fn overlaps_mapping(&self, range: Range) -> bool {
        self.mappings[..self.mapping_count]
            .iter()
            .any(|m| m.start < range.end && range.start < m.end)
    }

    fn set_brk(&mut self, requested: u64) -> u64 {
        if requested < self.brk_start || requested > self.heap_end {
            return self.brk;
        }
        let old_limit = self.brk_limit();
        let new_limit = align_up(requested, PAGE_SIZE);
        if new_limit > old_limit {
            let growth = Range {
                start: old_limit,
                end: new_limit,
            };
            if new_limit > self.heap_end || self.overlaps_mapping(growth) {
                return self.brk;
            }
            if self.claim(growth).is_err() {
                return self.brk;
            }
        }
        self.brk = requested;
        self.brk
    }

    /// Finds the highest free gap of `len` bytes below the heap end.
    fn find_gap(&self, len: u64) -> Option<u64> {
        // One core, one memory: first the calling CPU's slice of the heap,
        // then anywhere.
        let cpu = crate::arch::x86_64::cpu::cpu_area().cpu_index;
        if self.slice_size >= len && cpu < self.cpu_count {
            let upper = self.heap_end - cpu * self.slice_size;
            if let Some(start) = self.find_gap_within(len, upper - self.slice_size, upper) {
                return Some(start);
            }
        }
        self.find_gap_within(len, 0, self.heap_end)
    }

    /// The highest free gap of `len` bytes inside `[lower, upper)`.
    fn find_gap_within(&self, len: u64, lower: u64, upper: u64) -> Option<u64> {
        let floor = self.mmap_floor().max(lower);
        let mut top = upper;
        for mapping in self.mappings[..self.mapping_count].iter().rev() {
            if mapping.start >= top {
                continue;
            }
            let bottom = mapping.end.max(floor);
            if top >= bottom && top - bottom >= len {
                return Some(top - len);
            }
            top = mapping.start;
            if top <= floor {
                return None;
            }
        }
        (top >= floor && top - floor >= len).then(|| top - len)
    }

    /// Adds `range` to the mappings, merging with neighbours and overlaps.
    fn insert(&mut self, range: Range) -> Result<(), i64> {
        let count = self.mapping_count;
        let mut merged = range;
        let first = self.mappings[..count].partition_point(|m| m.end < merged.start);
        let mut last = first;
        while last < count && self.mappings[last].start <= merged.end {
            merged.start = merged.start.min(self.mappings[last].start);
            merged.end = merged.end.max(self.mappings[last].end);
            last += 1;
        }
        let removed = last - first;
        if removed == 0 && count == MAX_MAPPINGS {
            return Err(ENOMEM);
        }
        // Replace mappings[first..last] with `merged`.
        let new_count = count - removed + 1;
        if removed == 0 {
            self.mappings.copy_within(first..count, first + 1);
        } else {
            self.mappings.copy_within(last..count, first + 1);
        }
        self.mappings[first] = merged;
        self.mapping_count = new_count;
        Ok(())
    }

    /// Removes `range` from the mappings, splitting one if needed.
    fn remove(&mut self, range: Range) -> Result<(), i64> {
        let mut index = 0;
        while index < self.mapping_count {
            let mapping = self.mappings[index];
            if mapping.end <= range.start || range.end <= mapping.start {
                index += 1;
                continue;
            }
            let below = Range {
                start: mapping.start,
                end: range.start,
            };
            let above = Range {
                start: range.end,
                end: mapping.end,
            };
            let keep_below = below.start < below.end;
            let keep_above = above.start < above.end;
            match (keep_below, keep_above) {
                (true, true) => {
                    if self.mapping_count == MAX_MAPPINGS {
                        return Err(ENOMEM);
                    }
                    self.mappings
                        .copy_within(index + 1..self.mapping_count, index + 2);
                    self.mappings[index] = below;
                    self.mappings[index + 1] = above;
                    self.mapping_count += 1;
                    index += 2;
                }
                (true, false) => {
                    self.mappings[index] = below;
                    index += 1;
                }
                (false, true) => {
                    self.mappings[index] = above;
                    index += 1;
                }
                (false, false) => {
                    self.mappings
                        .copy_within(index + 1..self.mapping_count, index);
                    self.mapping_count -= 1;
                }
            }
        }
        Ok(())
    }

    fn mapping_containing(&self, range: Range) -> Option<Range> {
        self.mappings[..self.mapping_count]
            .iter()
            .copied()
            .find(|m| m.start <= range.start && range.end <= m.end)
    }

    fn map_anonymous(&mut self, hint: u64, len: u64, placement: Placement) -> Result<u64, i64> {
        self.map_anonymous_with(hint, len, placement, true)
    }

    fn map_anonymous_with(
        &mut self,
        hint: u64,
        len: u64,
        placement: Placement,
        accessible: bool,
    ) -> Result<u64, i64> {
        let start = self.map_anonymous_accessible(hint, len, placement)?;
        if !accessible {
            let end = start + page_len(len).unwrap_or(0);
            if let Err(errno) = self.protect(Range { start, end }, false) {
                let _ = self.remove(Range { start, end });
                return Err(errno);
            }
        }
        Ok(start)
    }

    fn map_anonymous_accessible(
        &mut self,
        hint: u64,
        len: u64,
        placement: Placement,
    ) -> Result<u64, i64> {
        if len == 0 {
            return Err(EINVAL);
        }
        let len = page_len(len).ok_or(ENOMEM)?;
        let start = if placement != Placement::Anywhere {
            if !hint.is_multiple_of(PAGE_SIZE) {
                return Err(EINVAL);
            }
            let end = hint.checked_add(len).ok_or(ENOMEM)?;
            // Only heap memory can be replaced; the image and stack stay.
            if hint < self.brk_start || end > self.heap_end {
                return Err(ENOMEM);
            }
            let wanted = Range { start: hint, end };
            if placement == Placement::FixedNoReplace
                && (hint < self.brk_limit() || self.overlaps_mapping(wanted))
            {
                return Err(EEXIST);
            }
            // Over the brk area (musl puts guard pages there) the memory
            // stays brk's; only the part above it becomes a mapping.
            let brk_limit = self.brk_limit();
            if hint < brk_limit {
                user::fill(hint, end.min(brk_limit) - hint, 0)?;
                if end <= brk_limit {
                    return Ok(hint);
                }
                let above = Range {
                    start: brk_limit,
                    end,
                };
                self.insert(above)?;
                self.claim(above)?;
                return Ok(hint);
            }
            hint
        } else {
            self.find_gap(len).ok_or(ENOMEM)?
        };
        let range = Range {
            start,
            end: start + len,
        };
        self.insert(range)?;
        if let Err(errno) = self.claim(range) {
            let _ = self.remove(range);
            return Err(errno);
        }
        Ok(start)
    }

    fn in_stack(&self, address: u64) -> bool {
        self.stack_bottom <= address && address < self.stack_top
    }

    fn remap(&mut self, old: u64, old_len: u64, new_len: u64, may_move: bool) -> Result<u64, i64> {
        if !old.is_multiple_of(PAGE_SIZE) || new_len == 0 || old_len == 0 {
            return Err(EINVAL);
        }
        let old_len = page_len(old_len).ok_or(EINVAL)?;
        // Lengths that wrap are EINVAL, as Linux says for them.
        let new_len = page_len(new_len).ok_or(EINVAL)?;
        let old_end = old.checked_add(old_len).ok_or(EFAULT)?;
        let new_end = old.checked_add(new_len).ok_or(EINVAL)?;
        let old_range = Range {
            start: old,
            end: old_end,
        };
        if self.mapping_containing(old_range).is_none() {
            // Like Linux: a mapping that can't grow is ENOMEM (musl probes
            // the main stack this way), no mapping at all is EFAULT.
            return Err(if self.in_stack(old) { ENOMEM } else { EFAULT });
        }
        if new_len <= old_len {
            self.remove(Range {
                start: old + new_len,
                end: old_end,
            })?;
            return Ok(old);
        }
        let growth = Range {
            start: old_end,
            end: new_end,
        };
        if growth.end <= self.heap_end && !self.overlaps_mapping(growth) {
            self.insert(growth)?;
            self.claim(growth)?;
            return Ok(old);
        }
        if !may_move {
            return Err(ENOMEM);
        }
        let new = self.map_anonymous(0, new_len, Placement::Anywhere)?;
        user::copy_within(old, new, old_len)?;
        self.remove(old_range)?;
        Ok(new)
    }
}

/// brk(2): returns the new break, or the old one when the request fails.
pub fn brk(requested: u64) -> u64 {
    SPACE.lock().set_brk(requested)
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

/// Anonymous mmap of accessible memory.
pub fn map_anonymous(hint: u64, len: u64, placement: Placement) -> Result<u64, i64> {
    SPACE.lock().map_anonymous(hint, len, placement)
}

/// Anonymous mmap honouring PROT_NONE (`accessible == false`).
pub fn map_anonymous_with(
    hint: u64,
    len: u64,
    placement: Placement,
    accessible: bool,
) -> Result<u64, i64> {
    SPACE
        .lock()
        .map_anonymous_with(hint, len, placement, accessible)
}

/// munmap(2) of anonymous memory.
pub fn unmap(address: u64, len: u64) -> Result<(), i64> {
    if !address.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(EINVAL);
    }
    let end = page_len(len)
        .and_then(|len| address.checked_add(len))
        .ok_or(EINVAL)?;
    SPACE.lock().remove(Range {
        start: address,
        end,
    })
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

/// mprotect(2): only PROT_NONE versus accessible is enforced.
pub fn protect(address: u64, len: u64, accessible: bool) -> Result<(), i64> {
    if !address.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let end = page_len(len)
        .and_then(|len| address.checked_add(len))
        .ok_or(ENOMEM)?;
    if end == address {
        return Ok(());
    }
    SPACE.lock().protect(
        Range {
            start: address,
            end,
        },
        accessible,
    )
}

/// Heap memory not in use (for sysinfo's freeram).
pub fn free_bytes() -> u64 {
    let space = SPACE.lock();
    let mapped: u64 = space.mappings[..space.mapping_count]
        .iter()
        .map(|m| m.end - m.start)
        .sum();
    (space.heap_end - space.brk_limit()).saturating_sub(mapped)
}
