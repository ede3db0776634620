//! The page tables behind mprotect: heap regions are mapped as they are
//! handed out, 2 MiB regions are split into 4 KiB pages from a pool of
//! spare tables (and merged back when it runs dry), and every CPU flushes
//! its TLB before running a thread once a cached entry may have changed.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::layout::{align_down, pte, LARGE_PAGE_SIZE, MAX_CPUS, PAGE_SIZE, RAM_SLOT_SIZE};
use atoll_abi::linux::errno::ENOMEM;
use atoll_abi::queue::{memory, Opcode};

use super::{Access, AddressSpace, Range};
use crate::arch::x86_64::user;

/// Bumped at every page-table change; a CPU that has flushed its TLB less
/// recently flushes before it next runs a thread.
static TLB_GENERATION: AtomicU64 = AtomicU64::new(0);
static CPU_TLB_GENERATION: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// A normal mapping: kernel and program share ring 3, so it is user-accessible.
pub(super) const PTE_NORMAL: u64 = pte::PRESENT | pte::WRITABLE | pte::USER;

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

impl AddressSpace {
    /// Where the page-directory entry mapping `address` lives.
    pub(super) fn pd_entry(&self, address: u64) -> Result<u64, i64> {
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
    pub(super) fn restore_access(&mut self, range: Range) -> Result<(), i64> {
        self.protect(range, Access::ReadWrite)
    }

    /// mprotect: page tables say what the program may do; a TLB entry
    /// that allowed more than the new entry is flushed (an absent page is
    /// never cached, so making pages accessible only flushes what was
    /// read-only).
    pub(super) fn protect(&mut self, range: Range, access: Access) -> Result<(), i64> {
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
}
