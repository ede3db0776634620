//! The isle's memory map in guest memory (`atoll_abi::regions`): the
//! monitor writes the regions it loaded before boot, the kernel keeps the
//! table from then on, and the monitor reads it back for /proc/self/maps.
//! What it reads is the guest's word, checked only so that it can't make
//! the monitor misbehave: it shows the guest its own map.

use atoll_abi::layout::PAGE_SIZE;
use atoll_abi::regions::{
    flags, names, Region, COUNT_OFFSET, REGIONS_OFFSET, REGION_CAPACITY, SEQUENCE_OFFSET,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::setup::{Layout, SetupError};
use super::AbiPlainData;
use crate::image::loader::Program;

/// Reads of a table that kept changing under them give up after this many.
const READ_ATTEMPTS: usize = 16;

/// Writes `regions` (sorted, disjoint) as the table's first entries.
pub fn write(memory: &GuestMemoryMmap, table: u64, regions: &[Region]) -> Result<(), SetupError> {
    let error = |error: vm_memory::GuestMemoryError| SetupError::Memory(error.to_string());
    let count = regions.len().min(REGION_CAPACITY);
    for (index, region) in regions[..count].iter().enumerate() {
        let at = table + (REGIONS_OFFSET + index * Region::SIZE) as u64;
        memory
            .write_obj(AbiPlainData(*region), GuestAddress(at))
            .map_err(error)?;
    }
    memory
        .write_obj(count as u64, GuestAddress(table + COUNT_OFFSET as u64))
        .map_err(error)
}

/// The table as the kernel keeps it now: a consistent snapshot, or
/// whatever a last attempt saw if it never held still. Regions that
/// aren't page-aligned, empty or in order are left out.
pub fn read(memory: &GuestMemoryMmap, table: u64) -> Vec<Region> {
    let word = |offset: usize| {
        memory
            .read_obj::<u64>(GuestAddress(table + offset as u64))
            .unwrap_or(0)
    };
    let mut regions = Vec::new();
    for _ in 0..READ_ATTEMPTS {
        let before = word(SEQUENCE_OFFSET);
        let count = (word(COUNT_OFFSET) as usize).min(REGION_CAPACITY);
        regions.clear();
        for index in 0..count {
            let at = table + (REGIONS_OFFSET + index * Region::SIZE) as u64;
            match memory.read_obj::<AbiPlainData<Region>>(GuestAddress(at)) {
                Ok(AbiPlainData(region)) => regions.push(region),
                Err(_) => break,
            }
        }
        if before % 2 == 0 && word(SEQUENCE_OFFSET) == before {
            break;
        }
        std::thread::yield_now();
    }
    let mut last_end = 0;
    regions.retain(|region| {
        let sound = region.start < region.end
            && region.start >= last_end
            && region.start.is_multiple_of(PAGE_SIZE)
            && region.end.is_multiple_of(PAGE_SIZE);
        if sound {
            last_end = region.end;
        }
        sound
    });
    regions
}

/// PF_X, PF_W, PF_R as region flags.
fn segment_access(p_flags: u32) -> u32 {
    let mut access = 0;
    for (bit, flag) in [(4, flags::READ), (2, flags::WRITE), (1, flags::EXEC)] {
        if p_flags & bit != 0 {
            access |= flag;
        }
    }
    access
}

/// What the monitor loads, as Linux's ELF loader would map it.
pub struct Loaded<'a> {
    /// Each image with the name the monitor knows its file by.
    pub images: Vec<(&'a Program, u32)>,
    /// The syscall stubs of the images' rewritten sites.
    pub stubs: std::ops::Range<u64>,
    pub vdso: std::ops::Range<u64>,
}

/// The regions of what was loaded, sorted: each segment from its file
/// (its bss past the file's last page anonymous), the stubs as anonymous
/// code, the vDSO and the stack.
pub fn loaded(layout: &Layout, loaded: &Loaded) -> Vec<Region> {
    let page_down = |address: u64| address & !(PAGE_SIZE - 1);
    let page_up = |address: u64| address.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mut regions = Vec::new();
    for &(program, name) in &loaded.images {
        for segment in &program.segments {
            let start = page_down(segment.address);
            let file_end = page_up(segment.address + segment.file_size);
            let end = page_up(segment.address + segment.mem_size);
            let access = segment_access(segment.flags);
            regions.push(Region {
                start,
                end: file_end.max(start),
                offset: page_down(segment.file_offset),
                name,
                flags: access,
            });
            regions.push(Region {
                start: file_end,
                end,
                offset: 0,
                name: names::ANONYMOUS,
                flags: access,
            });
        }
    }
    let anonymous = |range: &std::ops::Range<u64>, name: u32| Region {
        start: range.start,
        end: range.end,
        offset: 0,
        name,
        flags: flags::READ | flags::EXEC,
    };
    regions.push(anonymous(&loaded.stubs, names::ANONYMOUS));
    regions.push(anonymous(&loaded.vdso, names::VDSO));
    regions.push(Region {
        start: layout.stack_bottom,
        end: layout.stack_top,
        offset: 0,
        name: names::STACK,
        flags: flags::READ | flags::WRITE,
    });
    regions.sort_by_key(|region| region.start);
    // Segments sharing a page (as small ELFs' do): the first keeps it.
    let mut clipped: Vec<Region> = Vec::with_capacity(regions.len());
    for mut region in regions {
        let last_end = clipped.last().map_or(0, |last| last.end);
        if region.start < last_end {
            region.offset = region.file_offset_at(last_end.min(region.end));
            region.start = last_end;
        }
        if region.start < region.end {
            clipped.push(region);
        }
    }
    clipped
}
