//! mm on simulated memory: each test builds its own address space over
//! fake page tables and checks what it hands out, counts, gives back to the
//! host and writes into the tables.

use super::page_tables::PTE_NORMAL;
use super::*;
use crate::arch::x86_64::user::split_regions;
use crate::offload::take_requests;
use atoll_abi::layout::pte;
use atoll_abi::linux::errno::EEXIST;
use atoll_abi::queue::{memory, Opcode};

const MIB: u64 = 1 << 20;
/// Page tables: one PML4, one PDPT, one directory for the second GiB,
/// where the program lives; spare tables for splitting after them.
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const DIRECTORY: u64 = 0x3000;
const SPARE_TABLES: u64 = 0x10_0000;
const IMAGE_START: u64 = 0x4000_0000;
const HEAP_START: u64 = 0x4020_0000;
const HEAP_END: u64 = 0x7000_0000;
const STACK_TOP: u64 = 0x7020_0000;

/// An address space with the heap unmapped, as the monitor leaves it.
fn space(limit_chunks: u64, spare_tables: u64) -> Box<AddressSpace> {
    user::write(PML4, PDPT | PTE_NORMAL).unwrap();
    user::write(PDPT + 8, DIRECTORY | PTE_NORMAL).unwrap();
    let mut space = Box::new(AddressSpace::EMPTY);
    space.brk_start = HEAP_START;
    space.brk = HEAP_START;
    space.heap_end = HEAP_END;
    space.stack_bottom = HEAP_END;
    space.stack_top = STACK_TOP;
    space.slice_size = ((HEAP_END - HEAP_START) / 2) & !(LARGE_PAGE_SIZE - 1);
    space.page_table_root = PML4;
    space.spare_page_tables = SPARE_TABLES;
    space.spare_page_table_count = spare_tables;
    space.protectable = Range {
        start: IMAGE_START,
        end: STACK_TOP,
    };
    space.limit_chunks = limit_chunks;
    space.reserve_floor[0] = space.slice_top(0);
    space
}

fn range(start: u64, len: u64) -> Range {
    Range {
        start,
        end: start + len,
    }
}

fn map(space: &mut AddressSpace, len: u64, access: Access) -> Result<u64, i64> {
    space.map_anonymous(0, len, Placement::Anywhere, access, false)
}

fn mappings(space: &AddressSpace) -> Vec<Range> {
    space.mappings[..space.mapping_count].to_vec()
}

/// The memory requests of one kind (POPULATE, RELEASE, ATTACH) sent since
/// the last call, as ranges; requests of other kinds are dropped.
fn requests(kind: u64) -> Vec<Range> {
    take_requests()
        .into_iter()
        .filter(|(op, args)| *op == Opcode::Memory && args[0] == kind)
        .map(|(_, args)| range(args[1], args[2]))
        .collect()
}

fn directory_entry(space: &AddressSpace, address: u64) -> u64 {
    user::read(space.pd_entry(address).unwrap()).unwrap()
}

/// The 4 KiB entry for `address` in a split region.
fn page_entry(space: &AddressSpace, address: u64) -> u64 {
    let directory = directory_entry(space, address);
    assert_eq!(directory & pte::LARGE, 0, "{address:#x} is not split");
    user::read((directory & pte::ADDRESS) + ((address >> 12) & 511) * 8).unwrap()
}

const LARGE_NORMAL: u64 = pte::LARGE | PTE_NORMAL;

#[test]
fn brk_grows_backed_and_mapped_then_shrinks_giving_memory_back() {
    let mut space = space(64, 4);
    assert_eq!(space.set_brk(HEAP_START + 3 * MIB), HEAP_START + 3 * MIB);
    assert_eq!(space.backed_chunks, 2);
    assert_eq!(requests(memory::POPULATE), [range(HEAP_START, 4 * MIB)]);
    assert_eq!(
        directory_entry(&space, HEAP_START),
        HEAP_START | LARGE_NORMAL
    );
    assert_eq!(
        directory_entry(&space, HEAP_START + 2 * MIB),
        (HEAP_START + 2 * MIB) | LARGE_NORMAL
    );

    assert_eq!(space.set_brk(HEAP_START + MIB), HEAP_START + MIB);
    assert_eq!(space.backed_chunks, 1, "the emptied chunk stops counting");
    assert_eq!(
        requests(memory::RELEASE),
        [
            range(HEAP_START + MIB, 2 * MIB),
            range(HEAP_START + 2 * MIB, 2 * MIB)
        ]
    );

    // Outside the heap: refused, the break stays.
    assert_eq!(space.set_brk(HEAP_START - 1), HEAP_START + MIB);
    assert_eq!(space.set_brk(HEAP_END + 1), HEAP_START + MIB);
}

#[test]
fn the_heap_slot_is_attached_once() {
    let mut space = space(64, 4);
    map(&mut space, 2 * MIB, Access::ReadWrite).unwrap();
    map(&mut space, 2 * MIB, Access::ReadWrite).unwrap();
    assert_eq!(
        requests(memory::ATTACH),
        [range(HEAP_END - 2 * MIB, PAGE_SIZE)]
    );
}

#[test]
fn mmap_takes_the_highest_gap_and_fills_holes() {
    let mut space = space(64, 4);
    let first = map(&mut space, MIB, Access::ReadWrite).unwrap();
    let second = map(&mut space, MIB, Access::ReadWrite).unwrap();
    let third = map(&mut space, MIB, Access::ReadWrite).unwrap();
    assert_eq!(first, HEAP_END - MIB);
    assert_eq!(second, first - MIB);
    assert_eq!(third, second - MIB);
    // Adjacent mappings are one range.
    assert_eq!(mappings(&space), [range(third, 3 * MIB)]);

    space.unmap(range(second, MIB)).unwrap();
    assert_eq!(
        mappings(&space),
        [range(third, MIB), range(first, MIB)],
        "munmap in the middle splits the range"
    );
    let in_hole = map(&mut space, MIB / 2, Access::ReadWrite).unwrap();
    assert_eq!(in_hole, second + MIB / 2, "the hole's top, not below all");
    let too_big = map(&mut space, 2 * MIB, Access::ReadWrite).unwrap();
    assert_eq!(
        too_big,
        third - 2 * MIB,
        "a request the hole can't hold goes below"
    );
}

#[test]
fn map_fixed_joins_neighbours_and_replaces_what_was_there() {
    let mut space = space(64, 4);
    let start = map(&mut space, 3 * PAGE_SIZE, Access::ReadWrite).unwrap();
    space.unmap(range(start + PAGE_SIZE, PAGE_SIZE)).unwrap();
    assert_eq!(space.mapping_count, 2);

    let middle = start + PAGE_SIZE;
    let fixed = space.map_anonymous(
        middle,
        PAGE_SIZE,
        Placement::Fixed,
        Access::ReadWrite,
        false,
    );
    assert_eq!(fixed, Ok(middle));
    assert_eq!(
        mappings(&space),
        [range(start, 3 * PAGE_SIZE)],
        "merged back"
    );

    take_requests();
    let over = space.map_anonymous(
        start,
        2 * PAGE_SIZE,
        Placement::Fixed,
        Access::ReadWrite,
        false,
    );
    assert_eq!(over, Ok(start));
    assert_eq!(mappings(&space), [range(start, 3 * PAGE_SIZE)]);
    assert_eq!(
        requests(memory::RELEASE),
        [range(start, 2 * PAGE_SIZE)],
        "the old contents are given back, so the new mapping reads as zeros"
    );
}

#[test]
fn map_fixed_noreplace_and_misaligned_hints_are_refused() {
    let mut space = space(64, 4);
    let start = map(&mut space, 2 * PAGE_SIZE, Access::ReadWrite).unwrap();
    let noreplace = |space: &mut AddressSpace, hint| {
        space.map_anonymous(
            hint,
            PAGE_SIZE,
            Placement::FixedNoReplace,
            Access::ReadWrite,
            false,
        )
    };
    assert_eq!(noreplace(&mut space, start + PAGE_SIZE), Err(EEXIST));
    assert_eq!(
        noreplace(&mut space, start - PAGE_SIZE),
        Ok(start - PAGE_SIZE)
    );
    space.set_brk(HEAP_START + PAGE_SIZE);
    assert_eq!(
        noreplace(&mut space, HEAP_START),
        Err(EEXIST),
        "brk's memory"
    );
    let misaligned = space.map_anonymous(
        start + 1,
        PAGE_SIZE,
        Placement::Fixed,
        Access::ReadWrite,
        false,
    );
    assert_eq!(misaligned, Err(EINVAL));
    let below_heap = space.map_anonymous(
        IMAGE_START,
        PAGE_SIZE,
        Placement::Fixed,
        Access::ReadWrite,
        false,
    );
    assert_eq!(
        below_heap,
        Err(ENOMEM),
        "the program image is not replaceable"
    );
}

#[test]
fn memory_past_the_limit_is_enomem_until_some_is_given_back() {
    let mut space = space(4, 4);
    let start = map(&mut space, 8 * MIB, Access::ReadWrite).unwrap();
    assert_eq!(space.backed_chunks, 4);

    assert_eq!(map(&mut space, PAGE_SIZE, Access::ReadWrite), Err(ENOMEM));
    assert_eq!(space.backed_chunks, 4);
    assert_eq!(mappings(&space), [range(start, 8 * MIB)], "nothing changed");

    // PROT_NONE only reserves: allowed past the limit, but not usable.
    let reserved = map(&mut space, 64 * MIB, Access::None).unwrap();
    assert_eq!(space.backed_chunks, 4);
    assert_eq!(space.back(range(reserved, PAGE_SIZE)), Err(ENOMEM));

    take_requests();
    space.unmap(range(start, 2 * MIB)).unwrap();
    assert_eq!(space.backed_chunks, 3);
    assert_eq!(requests(memory::RELEASE), [range(start, 2 * MIB)]);
    assert!(map(&mut space, PAGE_SIZE, Access::ReadWrite).is_ok());
    assert_eq!(space.backed_chunks, 4);
}

#[test]
fn whole_regions_change_protection_in_their_directory_entry() {
    let mut space = space(64, 4);
    let start = map(&mut space, 4 * MIB, Access::ReadWrite).unwrap();
    space.protect(range(start, 2 * MIB), Access::Read).unwrap();
    space
        .protect(range(start + 2 * MIB, 2 * MIB), Access::None)
        .unwrap();
    assert_eq!(
        directory_entry(&space, start),
        start | pte::LARGE | pte::PRESENT | pte::USER,
        "read-only: present, not writable"
    );
    assert_eq!(
        directory_entry(&space, start + 2 * MIB),
        (start + 2 * MIB) | pte::LARGE | pte::USER,
        "PROT_NONE: not present"
    );
    assert_eq!(split_regions(), 0);
}

#[test]
fn set_access_splits_a_large_mapping_and_merges_it_back_when_tables_run_out() {
    let mut space = space(64, 1);
    let first = map(&mut space, 2 * MIB, Access::ReadWrite).unwrap();
    assert_eq!(directory_entry(&space, first), first | LARGE_NORMAL);

    let guard = first + PAGE_SIZE;
    space
        .protect(range(guard, PAGE_SIZE), Access::None)
        .unwrap();
    assert_eq!(directory_entry(&space, first), SPARE_TABLES | PTE_NORMAL);
    assert_eq!(page_entry(&space, guard), guard | pte::USER);
    assert_eq!(page_entry(&space, first), first | PTE_NORMAL);
    assert_eq!(
        page_entry(&space, guard + PAGE_SIZE),
        (guard + PAGE_SIZE) | PTE_NORMAL
    );
    assert_eq!(split_regions(), 1);

    // Normal again, but it stays split until its table is wanted.
    space
        .protect(range(guard, PAGE_SIZE), Access::ReadWrite)
        .unwrap();
    assert_eq!(page_entry(&space, guard), guard | PTE_NORMAL);

    let second = map(&mut space, 2 * MIB, Access::ReadWrite).unwrap();
    let read_only = second + 5 * PAGE_SIZE;
    space
        .protect(range(read_only, PAGE_SIZE), Access::Read)
        .unwrap();
    assert_eq!(
        directory_entry(&space, first),
        first | LARGE_NORMAL,
        "the first region merged back to free the only spare table"
    );
    assert_eq!(directory_entry(&space, second), SPARE_TABLES | PTE_NORMAL);
    assert_eq!(
        page_entry(&space, read_only),
        read_only | pte::PRESENT | pte::USER
    );
    assert_eq!(split_regions(), 1);

    // A region that isn't all normal can't be merged: no table for a third.
    let third = map(&mut space, 2 * MIB, Access::ReadWrite).unwrap();
    assert_eq!(
        space.protect(range(third + PAGE_SIZE, PAGE_SIZE), Access::None),
        Err(ENOMEM)
    );
}
