//! The isle's memory map, as `/proc/self/maps` shows it.
//!
//! One table in the system area: the monitor writes the regions it loads
//! before boot (program, interpreter, syscall stubs, vDSO, stack), the
//! kernel keeps it as the program maps, protects, remaps and unmaps, and
//! the monitor reads it when the program opens `/proc/self/maps`. Unlike
//! the kernel's allocator, which merges whatever is adjacent, a region has
//! one protection and one source, as a Linux VMA does.
//!
//! The monitor reads without the kernel's lock: `sequence` is odd while the
//! kernel changes the table, and a read that saw it change is retried.

/// Most regions at once; past it, calls that would add one fail with
/// ENOMEM, as Linux's max_map_count makes them.
pub const REGION_CAPACITY: usize = 4096;

/// [`Region::flags`] bits.
pub mod flags {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
    /// MAP_SHARED: the file's own pages, not a private copy.
    pub const SHARED: u32 = 8;
    /// Has been writable since it was mapped: its bytes may no longer be
    /// its file's (not shown).
    pub const WRITTEN: u32 = 16;
    /// The protection bits.
    pub const ACCESS: u32 = READ | WRITE | EXEC;

    /// `flags` with [`WRITTEN`] added if they let the program write.
    pub const fn noting_writes(flags: u32) -> u32 {
        match flags & WRITE != 0 {
            true => flags | WRITTEN,
            false => flags,
        }
    }
}

/// [`Region::name`] values below [`names::FIRST_FILE`]; from it on, a name
/// is a file the monitor knows by that number.
pub mod names {
    pub const ANONYMOUS: u32 = 0;
    pub const HEAP: u32 = 1;
    pub const STACK: u32 = 2;
    pub const VDSO: u32 = 3;
    pub const FIRST_FILE: u32 = 16;
}

/// One mapping: `[start, end)`, page-aligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start` (0 when anonymous).
    pub offset: u64,
    pub name: u32,
    pub flags: u32,
}

impl Region {
    pub const SIZE: usize = core::mem::size_of::<Region>();

    pub fn is_file(&self) -> bool {
        self.name >= names::FIRST_FILE
    }

    /// The part from `at` on, with its file offset moved along.
    fn from(&self, at: u64) -> Region {
        Region {
            start: at,
            offset: self.file_offset_at(at),
            ..*self
        }
    }

    /// The file offset that `address` (inside the region) shows.
    pub fn file_offset_at(&self, address: u64) -> u64 {
        match self.is_file() {
            true => self.offset + (address - self.start),
            false => 0,
        }
    }

    /// Whether `next`, starting where this ends, continues it: the same
    /// source and protection, and for a file the next bytes of it.
    fn continues_into(&self, next: &Region) -> bool {
        self.end == next.start
            && self.name == next.name
            && self.flags == next.flags
            && (!self.is_file() || self.offset + (self.end - self.start) == next.offset)
    }
}

/// No room for another region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// The table itself, at [`crate::boot::BootInfo::regions`].
#[repr(C)]
pub struct RegionTable {
    /// Odd while the kernel changes the table.
    pub sequence: u64,
    pub count: u64,
    /// `regions[..count]`, sorted and disjoint.
    pub regions: [Region; REGION_CAPACITY],
}

/// Byte offsets of the fields, for the monitor's reads of guest memory.
pub const SEQUENCE_OFFSET: usize = core::mem::offset_of!(RegionTable, sequence);
pub const COUNT_OFFSET: usize = core::mem::offset_of!(RegionTable, count);
pub const REGIONS_OFFSET: usize = core::mem::offset_of!(RegionTable, regions);
pub const TABLE_SIZE: usize = core::mem::size_of::<RegionTable>();

impl RegionTable {
    pub const EMPTY: RegionTable = RegionTable {
        sequence: 0,
        count: 0,
        regions: [Region {
            start: 0,
            end: 0,
            offset: 0,
            name: 0,
            flags: 0,
        }; REGION_CAPACITY],
    };

    pub fn live(&self) -> &[Region] {
        &self.regions[..(self.count as usize).min(REGION_CAPACITY)]
    }

    /// Whether a change may add `more` regions (each call adds at most 2).
    fn check_room(&self, more: usize) -> Result<(), TableFull> {
        match self.live().len() + more <= REGION_CAPACITY {
            true => Ok(()),
            false => Err(TableFull),
        }
    }

    /// Wraps a change in the odd-sequence window readers check.
    fn change<T>(&mut self, change: impl FnOnce(&mut Self) -> T) -> T {
        self.sequence = self.sequence.wrapping_add(1);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let result = change(self);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.sequence = self.sequence.wrapping_add(1);
        result
    }

    /// `region` replaces whatever was at its addresses (mmap, MAP_FIXED).
    pub fn map(&mut self, region: Region) -> Result<(), TableFull> {
        if region.start >= region.end {
            return Ok(());
        }
        let region = Region {
            flags: flags::noting_writes(region.flags),
            ..region
        };
        self.check_room(2)?;
        self.change(|table| {
            table.cut(region.start, region.end);
            let at = table.first_from(region.start);
            table.insert_at(at, region);
            table.merge_around(at, at + 1);
        });
        Ok(())
    }

    /// Nothing is mapped at `[start, end)` any more (munmap).
    pub fn unmap(&mut self, start: u64, end: u64) -> Result<(), TableFull> {
        if start >= end {
            return Ok(());
        }
        self.check_room(1)?;
        self.change(|table| table.cut(start, end));
        Ok(())
    }

    /// `[start, end)` gets the protection bits `access` (mprotect).
    pub fn protect(&mut self, start: u64, end: u64, access: u32) -> Result<(), TableFull> {
        if start >= end {
            return Ok(());
        }
        self.check_room(2)?;
        self.change(|table| {
            table.split_at(start);
            table.split_at(end);
            let first = table.first_from(start);
            let mut last = first;
            while last < table.live().len() && table.regions[last].end <= end {
                let region = &mut table.regions[last];
                region.flags = flags::noting_writes(
                    (region.flags & !flags::ACCESS) | (access & flags::ACCESS),
                );
                last += 1;
            }
            table.merge_around(first, last);
        });
        Ok(())
    }

    /// The region holding `address`.
    pub fn find(&self, address: u64) -> Option<Region> {
        let live = self.live();
        let at = live.partition_point(|r| r.end <= address);
        live.get(at).copied().filter(|r| r.start <= address)
    }

    /// The pieces of regions inside `[start, end)`, clipped to it.
    pub fn pieces(&self, start: u64, end: u64) -> impl Iterator<Item = Region> + '_ {
        let live = self.live();
        let first = live.partition_point(|r| r.end <= start);
        live[first..]
            .iter()
            .take_while(move |r| r.start < end)
            .map(move |r| Region {
                end: r.end.min(end),
                ..r.from(r.start.max(start))
            })
    }

    /// Index of the first region ending after `address`.
    fn first_from(&self, address: u64) -> usize {
        self.live().partition_point(|r| r.end <= address)
    }

    /// Splits the region strictly containing `address` in two there.
    fn split_at(&mut self, address: u64) {
        let at = self.first_from(address);
        let Some(&region) = self.live().get(at) else {
            return;
        };
        if region.start < address && address < region.end {
            self.regions[at].end = address;
            self.insert_at(at + 1, region.from(address));
        }
    }

    /// Removes all of `[start, end)`, keeping what lies beside it.
    fn cut(&mut self, start: u64, end: u64) {
        self.split_at(start);
        self.split_at(end);
        let first = self.first_from(start);
        let mut last = first;
        while last < self.live().len() && self.regions[last].end <= end {
            last += 1;
        }
        let count = self.live().len();
        self.regions.copy_within(last..count, first);
        self.count = (count - (last - first)) as u64;
    }

    fn insert_at(&mut self, at: usize, region: Region) {
        let count = self.live().len();
        self.regions.copy_within(at..count, at + 1);
        self.regions[at] = region;
        self.count = count as u64 + 1;
    }

    /// Joins regions that continue each other from `first - 1` to `last`.
    fn merge_around(&mut self, first: usize, last: usize) {
        let mut at = first.saturating_sub(1);
        let mut stop = last.min(self.live().len());
        while at + 1 < self.live().len() && at < stop {
            let (left, right) = (self.regions[at], self.regions[at + 1]);
            if left.continues_into(&right) {
                self.regions[at].end = right.end;
                let count = self.live().len();
                self.regions.copy_within(at + 2..count, at + 1);
                self.count = count as u64 - 1;
                stop = stop.saturating_sub(1);
            } else {
                at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;

    const RW: u32 = flags::READ | flags::WRITE;
    const RX: u32 = flags::READ | flags::EXEC;

    fn table() -> Box<RegionTable> {
        Box::new(RegionTable::EMPTY)
    }

    fn anonymous(start: u64, end: u64) -> Region {
        Region {
            start,
            end,
            offset: 0,
            name: names::ANONYMOUS,
            flags: RW,
        }
    }

    fn file(start: u64, end: u64, offset: u64, flags: u32) -> Region {
        Region {
            start,
            end,
            offset,
            name: names::FIRST_FILE,
            flags,
        }
    }

    fn spans(table: &RegionTable) -> Vec<(u64, u64, u64, u32)> {
        table
            .live()
            .iter()
            .map(|r| (r.start, r.end, r.offset, r.flags & !flags::WRITTEN))
            .collect()
    }

    #[test]
    fn a_library_mapped_as_ld_so_maps_it_shows_one_region_per_segment() {
        let mut table = table();
        // The whole file read-only, then its code and data over it, then
        // the bss as anonymous memory after it.
        table.map(file(0x10000, 0x15000, 0, flags::READ)).unwrap();
        table.map(file(0x11000, 0x13000, 0x1000, RX)).unwrap();
        table.map(file(0x14000, 0x15000, 0x3000, RW)).unwrap();
        table.map(anonymous(0x15000, 0x16000)).unwrap();
        assert_eq!(
            spans(&table),
            [
                (0x10000, 0x11000, 0, flags::READ),
                (0x11000, 0x13000, 0x1000, RX),
                (0x13000, 0x14000, 0x3000, flags::READ),
                (0x14000, 0x15000, 0x3000, RW),
                (0x15000, 0x16000, 0, RW),
            ]
        );
        // RELRO: the data page becomes read-only, and joins its neighbour
        // only if the offsets continue (here they don't: 0x3000 twice).
        table.protect(0x14000, 0x15000, flags::READ).unwrap();
        assert_eq!(table.live().len(), 5);
        assert_eq!(
            table.find(0x14800).unwrap().flags,
            flags::READ | flags::WRITTEN
        );
        assert_eq!(table.find(0x13800).unwrap().flags, flags::READ);
        table.unmap(0x10000, 0x16000).unwrap();
        assert!(table.live().is_empty());
        assert_eq!(table.sequence % 2, 0);
    }

    #[test]
    fn neighbours_that_continue_each_other_merge_and_splits_keep_offsets() {
        let mut table = table();
        table.map(anonymous(0x1000, 0x3000)).unwrap();
        table.map(anonymous(0x3000, 0x5000)).unwrap();
        assert_eq!(spans(&table), [(0x1000, 0x5000, 0, RW)]);
        table.protect(0x2000, 0x3000, 0).unwrap();
        assert_eq!(
            spans(&table),
            [
                (0x1000, 0x2000, 0, RW),
                (0x2000, 0x3000, 0, 0),
                (0x3000, 0x5000, 0, RW)
            ]
        );
        table.protect(0x2000, 0x3000, RW).unwrap();
        assert_eq!(spans(&table), [(0x1000, 0x5000, 0, RW)]);
        // Once writable, always marked so: a region never written doesn't
        // merge with one that was.
        table.map(file(0x5000, 0x6000, 0, flags::READ)).unwrap();
        table.map(file(0x6000, 0x7000, 0x1000, RW)).unwrap();
        table.protect(0x6000, 0x7000, flags::READ).unwrap();
        assert_eq!(table.find(0x5000).unwrap().end, 0x6000);
        table
            .map(file(0x8000, 0xa000, 0x4000, flags::READ))
            .unwrap();
        table.unmap(0x8000, 0x9000).unwrap();
        assert_eq!(table.find(0x9000).unwrap().offset, 0x5000);
        assert_eq!(table.find(0x8000), None);
        let pieces: Vec<_> = table.pieces(0x4000, 0x9800).collect();
        assert_eq!(pieces.len(), 4);
        let last = pieces[3];
        assert_eq!(
            (last.start, last.end, last.offset),
            (0x9000, 0x9800, 0x5000)
        );
    }

    #[test]
    fn a_full_table_refuses_what_would_add_a_region() {
        let mut table = table();
        for index in 0..REGION_CAPACITY as u64 - 1 {
            // Gaps between them: none merge.
            table
                .map(anonymous(index * 0x2000, index * 0x2000 + 0x1000))
                .unwrap();
        }
        assert_eq!(
            table.map(anonymous(0x1000_0000, 0x1000_1000)),
            Err(TableFull)
        );
        assert_eq!(table.protect(0, 0x800, 0), Err(TableFull));
        assert_eq!(table.live().len(), REGION_CAPACITY - 1);
    }
}
