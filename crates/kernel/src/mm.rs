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

use atoll_abi::boot::BootInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::layout::{
    align_down, align_up, pte, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, MAX_CPUS, MAX_RAM_SIZE,
    MAX_RAM_SLOTS, PAGE_SIZE, RAM_SLOT_SIZE,
};
use atoll_abi::linux::errno::{EEXIST, EFAULT, EINVAL, ENOMEM};
use atoll_abi::queue::{memory, Opcode};
use spin::Mutex;

use crate::arch::x86_64::user;

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

impl Access {
    /// The page-table flags for it.
    fn flags(self) -> u64 {
        match self {
            Access::None => pte::USER,
            Access::Read => pte::PRESENT | pte::USER,
            Access::ReadWrite => PTE_NORMAL,
        }
    }
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

/// Bumped at every page-table change; a CPU that has flushed its TLB less
/// recently flushes before it next runs a thread.
static TLB_GENERATION: AtomicU64 = AtomicU64::new(0);
static CPU_TLB_GENERATION: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// A normal mapping: kernel and program share ring 3, so it is user-accessible.
const PTE_NORMAL: u64 = pte::PRESENT | pte::WRITABLE | pte::USER;

/// Flushes this CPU's TLB if a page table changed since it last did.
pub fn sync_tlb() {
    let cpu = crate::arch::x86_64::cpu::cpu_index();
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
    space.limit_chunks = boot.memory_limit / LARGE_PAGE_SIZE;
    // The monitor left the heap unmapped: regions get mapped as they are
    // handed out, so user pointers are checked against the tables.
    user::note_region_protected();
    for cpu in 0..space.cpu_count {
        space.reserve_floor[cpu as usize] = space.slice_top(cpu);
    }
}

/// Populated memory kept ahead of each CPU's allocations (at most half the
/// limit), so the program's first touches find it backed: a first touch of
/// unpopulated memory costs a host fault and zeroing 2 MiB.
const RESERVE: u64 = 256 << 20;

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

/// Asks the host to back `range` now, ahead of the program's touches. A
/// request that arrives after the range was given back again leaves it
/// populated but uncounted until it is given back next time.
fn populate_ahead(range: Range) {
    crate::offload::send(
        Opcode::Memory,
        [
            memory::POPULATE,
            range.start,
            range.end - range.start,
            0,
            0,
            0,
        ],
    );
}

/// Gives `range` back to the host, which zeroes it. Callers hold the
/// address-space lock, so nobody can be handed the range meanwhile.
fn release(range: Range) -> Result<(), i64> {
    let result = crate::offload::call_without_yielding(
        Opcode::Memory,
        [
            memory::RELEASE,
            range.start,
            range.end - range.start,
            0,
            0,
            0,
        ],
    );
    if result < 0 {
        Err(-result)
    } else {
        Ok(())
    }
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
        let pdpte: u64 = user::read((pml4e & pte::ADDRESS) + ((address >> 30) & 511) * 8)?;
        Ok((pdpte & pte::ADDRESS) + ((address >> 21) & 511) * 8)
    }

    /// Gives every page of `range` `access`, mapping it first where the
    /// heap was never mapped. Whole 2 MiB regions change in their directory
    /// entry; partial ones are split into 4 KiB pages.
    /// Returns whether an entry the TLB may cache changed (a present one).
    fn set_access(&mut self, range: Range, access: Access) -> Result<bool, i64> {
        let wanted = access.flags();
        let mut stale = false;
        let mut region = range.start & !(LARGE_PAGE_SIZE - 1);
        while region < range.end {
            let region_end = region + LARGE_PAGE_SIZE;
            let pd_entry = self.pd_entry(region)?;
            let mut directory: u64 = user::read(pd_entry)?;
            let whole = range.start <= region && region_end <= range.end;
            // Heap the monitor left unmapped is mapped whole, as free heap
            // memory always was; absent until now, no TLB holds it.
            let fresh = directory == 0;
            if fresh {
                self.attach(region)?;
                directory = region | pte::LARGE | PTE_NORMAL;
                user::write(pd_entry, directory)?;
            }
            if directory & pte::LARGE != 0 {
                let flags = directory & (pte::PRESENT | pte::WRITABLE | pte::USER);
                if flags == wanted {
                    region = region_end;
                    continue;
                }
                if whole {
                    user::write(pd_entry, region | pte::LARGE | wanted)?;
                    user::note_region_protected();
                    stale |= flags & pte::PRESENT != 0 && !fresh;
                    region = region_end;
                    continue;
                }
                let table = self.take_page_table(region).ok_or(ENOMEM)?;
                for index in 0..512 {
                    user::write(table + index * 8, (region + index * PAGE_SIZE) | flags)?;
                }
                directory = table | PTE_NORMAL;
                user::write(pd_entry, directory)?;
                user::note_split(1);
                stale |= flags & pte::PRESENT != 0 && !fresh;
            }
            let mut page = region.max(range.start);
            while page < region_end.min(range.end) {
                let entry = (directory & pte::ADDRESS) + ((page >> 12) & 511) * 8;
                let value: u64 = user::read(entry)?;
                let flags = value & (pte::PRESENT | pte::WRITABLE | pte::USER);
                if flags != wanted {
                    user::write(entry, (page & pte::ADDRESS) | wanted)?;
                    stale |= flags & pte::PRESENT != 0 && !fresh;
                }
                page += PAGE_SIZE;
            }
            region = region_end;
        }
        Ok(stale)
    }

    /// Makes sure the RAM slot holding `address` reaches the vCPUs before
    /// anything there is mapped (the host attaches a slot once; later
    /// calls for it stay here).
    fn attach(&mut self, address: u64) -> Result<(), i64> {
        let slot = address / RAM_SLOT_SIZE;
        let (word, bit) = ((slot / 64) as usize, 1u64 << (slot % 64));
        let attached = self.attached_slots.get_mut(word).ok_or(ENOMEM)?;
        if *attached & bit != 0 {
            return Ok(());
        }
        let result = crate::offload::call_without_yielding(
            Opcode::Memory,
            [
                memory::ATTACH,
                align_down(address, PAGE_SIZE),
                PAGE_SIZE,
                0,
                0,
                0,
            ],
        );
        if result < 0 {
            return Err(ENOMEM);
        }
        *attached |= bit;
        Ok(())
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
            if value & !(pte::ACCESSED | pte::DIRTY) != (region + index * PAGE_SIZE) | PTE_NORMAL {
                return Ok(false);
            }
        }
        user::write(pd_entry, region | PTE_NORMAL | pte::LARGE)?;
        user::note_split(-1);
        let index = ((table - self.spare_page_tables) / PAGE_SIZE) as usize;
        self.spare_page_tables_used[index / 64] &= !(1 << (index % 64));
        Ok(true)
    }

    /// Makes every page of `range` readable and writable.
    fn restore_access(&mut self, range: Range) -> Result<(), i64> {
        self.protect(range, Access::ReadWrite)
    }

    /// mprotect: page tables say what the program may do; a TLB entry
    /// that allowed more than the new entry is flushed (an absent page is
    /// never cached, so making pages accessible only flushes what was
    /// read-only).
    fn protect(&mut self, range: Range, access: Access) -> Result<(), i64> {
        if range.start < self.protectable.start || range.end > self.protectable.end {
            // Kernel, system area: refused as Linux refuses unmapped memory.
            return Err(ENOMEM);
        }
        if self.set_access(range, access)? {
            TLB_GENERATION.fetch_add(1, Ordering::AcqRel);
            sync_tlb();
        }
        Ok(())
    }

    /// The heap chunks `[first, last)` that lie within `range`'s 2 MiB
    /// bounds and inside the heap (chunks shared with the image or the
    /// stack are never counted).
    fn heap_chunks(&self, range: Range) -> (u64, u64) {
        let low = align_up(self.brk_start, LARGE_PAGE_SIZE);
        let high = align_down(self.heap_end, LARGE_PAGE_SIZE);
        let start = align_down(range.start, LARGE_PAGE_SIZE).max(low);
        let end = align_up(range.end, LARGE_PAGE_SIZE).min(high);
        let count = (CHUNK_WORDS * 64) as u64;
        (
            (start / LARGE_PAGE_SIZE).min(count),
            (end.max(start) / LARGE_PAGE_SIZE).min(count),
        )
    }

    fn is_backed(&self, chunk: u64) -> bool {
        self.backed[(chunk / 64) as usize] & (1 << (chunk % 64)) != 0
    }

    fn set_backed(&mut self, chunk: u64, backed: bool) {
        let word = &mut self.backed[(chunk / 64) as usize];
        if backed {
            *word |= 1 << (chunk % 64);
        } else {
            *word &= !(1 << (chunk % 64));
        }
    }

    /// Counts the chunks of `range` not yet backed against the limit (ENOMEM
    /// past it, with nothing changed) and asks the host to populate them.
    fn back(&mut self, range: Range) -> Result<(), i64> {
        let (first, last) = self.heap_chunks(range);
        let new = (first..last)
            .filter(|&chunk| !self.is_backed(chunk) && !self.in_stack_depths(chunk))
            .count() as u64;
        if self.backed_chunks + new > self.limit_chunks {
            return Err(ENOMEM);
        }
        self.backed_chunks += new;
        let mut run: Option<Range> = None;
        for chunk in first..last {
            if self.is_backed(chunk) || self.in_stack_depths(chunk) {
                continue;
            }
            self.set_backed(chunk, true);
            let start = chunk * LARGE_PAGE_SIZE;
            run = match run {
                Some(open) if open.end == start => Some(Range {
                    start: open.start,
                    end: start + LARGE_PAGE_SIZE,
                }),
                other => {
                    if let Some(done) = other {
                        populate_ahead(done);
                    }
                    Some(Range {
                        start,
                        end: start + LARGE_PAGE_SIZE,
                    })
                }
            };
        }
        if let Some(done) = run {
            populate_ahead(done);
        }
        let cpu = crate::arch::x86_64::cpu::cpu_index() as u64;
        if cpu < self.cpu_count && range.start < self.reserve_floor[cpu as usize] + RESERVE {
            self.extend_reserve(cpu, range.start);
        }
        Ok(())
    }

    /// Whether `chunk` lies wholly inside a thread stack, below its top
    /// chunk: left to the host to back when touched, and not counted.
    fn in_stack_depths(&self, chunk: u64) -> bool {
        let start = chunk * LARGE_PAGE_SIZE;
        let end = start + LARGE_PAGE_SIZE;
        self.stacks[..self.stack_count]
            .iter()
            .any(|stack| stack.start <= start && end <= align_down(stack.end - 1, LARGE_PAGE_SIZE))
    }

    /// Forgets the thread stacks `range` unmaps.
    fn forget_stacks(&mut self, range: Range) {
        let mut index = 0;
        while index < self.stack_count {
            let stack = self.stacks[index];
            if stack.start < range.end && range.start < stack.end {
                self.stack_count -= 1;
                self.stacks[index] = self.stacks[self.stack_count];
            } else {
                index += 1;
            }
        }
    }

    /// Where CPU `cpu`'s mmap slice ends.
    fn slice_top(&self, cpu: u64) -> u64 {
        align_down(self.heap_end - cpu * self.slice_size, LARGE_PAGE_SIZE)
    }

    /// Populates CPU `cpu`'s reserve down to [`RESERVE`] below `frontier`
    /// (its lowest allocation), where not asked already.
    fn extend_reserve(&mut self, cpu: u64, frontier: u64) {
        let Some(&floor) = self.reserve_floor.get(cpu as usize) else {
            return;
        };
        let room = self.limit_chunks.saturating_sub(self.backed_chunks) * LARGE_PAGE_SIZE;
        let depth = RESERVE
            .min(self.limit_chunks * LARGE_PAGE_SIZE / 2)
            .min(room);
        let slice_bottom = self.slice_top(cpu).saturating_sub(self.slice_size);
        let wanted = align_down(frontier.saturating_sub(depth), LARGE_PAGE_SIZE).max(slice_bottom);
        let top = floor.min(align_down(frontier, LARGE_PAGE_SIZE));
        if wanted < top {
            populate_ahead(Range {
                start: wanted,
                end: top,
            });
            self.reserve_floor[cpu as usize] = wanted;
        }
    }

    /// Whether nothing in `chunk` is handed out: no mapping, no brk memory.
    fn chunk_is_free(&self, chunk: u64) -> bool {
        let range = Range {
            start: chunk * LARGE_PAGE_SIZE,
            end: (chunk + 1) * LARGE_PAGE_SIZE,
        };
        range.start >= self.brk_limit() && !self.overlaps_mapping(range)
    }

    /// Gives the free `range` back to the host, so it reads as zeros when
    /// handed out again, and stops counting the chunks it leaves empty
    /// (giving those back whole).
    fn give_back(&mut self, range: Range) -> Result<(), i64> {
        if range.start >= range.end {
            return Ok(());
        }
        if release(range).is_err() {
            // The host kept the pages: zeros must come from us.
            self.restore_access(range)?;
            user::fill(range.start, range.end - range.start, 0)?;
        }
        let (first, last) = self.heap_chunks(range);
        for chunk in first..last {
            if self.is_backed(chunk) && self.chunk_is_free(chunk) {
                let whole = Range {
                    start: chunk * LARGE_PAGE_SIZE,
                    end: (chunk + 1) * LARGE_PAGE_SIZE,
                };
                if whole.start < range.start || range.end < whole.end {
                    let _ = release(whole);
                }
                self.set_backed(chunk, false);
                self.backed_chunks -= 1;
            }
        }
        Ok(())
    }

    /// munmap(2) of `range`: what it covered goes back to the host.
    fn unmap(&mut self, range: Range) -> Result<(), i64> {
        self.remove(range)?;
        self.forget_stacks(range);
        let freed = self.unmappable(range);
        self.give_back(freed)
    }

    /// The part of `range` munmap may give back: heap above brk's memory.
    fn unmappable(&self, range: Range) -> Range {
        Range {
            start: range.start.max(self.brk_limit()),
            end: range.end.min(self.heap_end),
        }
    }

    fn brk_limit(&self) -> u64 {
        align_up(self.brk, PAGE_SIZE)
    }

    /// Lowest address mmap may not go below.
    fn mmap_floor(&self) -> u64 {
        self.brk_limit()
    }

    /// Hands out free `range` readable and writable: backed and counted
    /// (free memory is zero already).
    fn claim(&mut self, range: Range) -> Result<(), i64> {
        self.back(range)?;
        self.restore_access(range)
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
        if new_limit < old_limit {
            // Shrunk: the memory goes back, and comes back zero if regrown.
            let _ = self.give_back(Range {
                start: new_limit,
                end: old_limit,
            });
        }
        self.brk
    }

    /// Finds the highest free gap of `len` bytes below the heap end.
    fn find_gap(&self, len: u64) -> Option<u64> {
        // One core, one memory: first the calling CPU's slice of the heap,
        // then anywhere.
        let cpu = crate::arch::x86_64::cpu::cpu_index() as u64;
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

    /// Anonymous memory with `access` (PROT_NONE reserves address space
    /// only: nothing is backed or counted until mprotect makes it usable).
    fn map_anonymous(
        &mut self,
        hint: u64,
        len: u64,
        placement: Placement,
        access: Access,
        stack: bool,
    ) -> Result<u64, i64> {
        if len == 0 {
            return Err(EINVAL);
        }
        let len = page_len(len).ok_or(ENOMEM)?;
        let start = if placement == Placement::Anywhere {
            self.find_gap(len).ok_or(ENOMEM)?
        } else {
            self.check_fixed(hint, len, placement)?;
            hint
        };
        let range = Range {
            start,
            end: start + len,
        };
        // Over the brk area (musl puts guard pages there) the memory stays
        // brk's; only the part above it becomes a mapping.
        let brk_limit = self.brk_limit();
        let mapped = Range {
            start: start.max(brk_limit),
            end: range.end,
        };
        if range.start < brk_limit {
            let brk_part = Range {
                start,
                end: range.end.min(brk_limit),
            };
            self.restore_access(brk_part)?;
            user::fill(brk_part.start, brk_part.end - brk_part.start, 0)?;
        }
        if mapped.start < mapped.end {
            if placement == Placement::Fixed && self.overlaps_mapping(mapped) {
                // MAP_FIXED replaces what was there with fresh zeros.
                self.remove(mapped)?;
                self.forget_stacks(mapped);
                self.give_back(mapped)?;
            }
            self.insert(mapped)?;
            if stack && self.stack_count < MAX_STACKS {
                self.stacks[self.stack_count] = mapped;
                self.stack_count += 1;
            }
            let handed_out = match access {
                Access::None => Ok(()),
                _ => self.back(mapped),
            };
            if let Err(errno) = handed_out {
                let _ = self.remove(mapped);
                return Err(errno);
            }
        }
        self.protect(range, access)?;
        Ok(start)
    }

    /// Checks a MAP_FIXED or MAP_FIXED_NOREPLACE request for `len` bytes at `hint`.
    fn check_fixed(&self, hint: u64, len: u64, placement: Placement) -> Result<(), i64> {
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
        Ok(())
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
            let tail = Range {
                start: old + new_len,
                end: old_end,
            };
            self.remove(tail)?;
            self.give_back(tail)?;
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
        let new = self.map_anonymous(0, new_len, Placement::Anywhere, Access::ReadWrite, false)?;
        self.forget_stacks(old_range);
        user::copy_within(old, new, old_len)?;
        self.remove(old_range)?;
        self.give_back(old_range)?;
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
