//! The memory map /proc/self/maps shows (`atoll_abi::regions`), kept as
//! the program maps, protects, remaps and unmaps: one protection and one
//! source per region, where the allocator's ranges merge whatever is
//! adjacent. The monitor wrote what it loaded; the kernel keeps the rest.

use atoll_abi::linux::errno::ENOMEM;
use atoll_abi::regions::{names, Region, RegionTable, TableFull};
use spin::Mutex;

static TABLE: Mutex<Option<&'static mut RegionTable>> = Mutex::new(None);

pub fn init(boot: &atoll_abi::boot::BootInfo) {
    *TABLE.lock() = crate::arch::x86_64::cpu::region_table(boot);
}

/// Runs `change` on the table; without one (a monitor that made none)
/// there is nothing to keep.
fn change(change: impl FnOnce(&mut RegionTable) -> Result<(), TableFull>) -> Result<(), i64> {
    match TABLE.lock().as_deref_mut() {
        Some(table) => change(table).map_err(|TableFull| ENOMEM),
        None => Ok(()),
    }
}

/// `region` is mapped, over whatever was there.
pub fn map(region: Region) -> Result<(), i64> {
    change(|table| table.map(region))
}

pub fn unmap(start: u64, end: u64) -> Result<(), i64> {
    change(|table| table.unmap(start, end))
}

/// `[start, end)` gets protection `access` (`regions::flags` bits).
pub fn protect(start: u64, end: u64, access: u32) -> Result<(), i64> {
    change(|table| table.protect(start, end, access))
}

/// What `[old, old + old_len)` showed now shows at `[new, new + new_len)`.
pub fn remap(old: u64, old_len: u64, new: u64, new_len: u64) -> Result<(), i64> {
    change(|table| {
        let Some(source) = table.find(old) else {
            return Ok(());
        };
        let moved = Region {
            start: new,
            end: new + new_len,
            offset: source.file_offset_at(old),
            ..source
        };
        table.unmap(old, old + old_len)?;
        table.map(moved)
    })
}

/// brk moved: the heap is `[start, end)`.
pub fn set_heap(start: u64, old_end: u64, end: u64) {
    let _ = change(|table| match end > old_end {
        true => table.map(Region {
            start: old_end.max(start),
            end,
            offset: 0,
            name: names::HEAP,
            flags: atoll_abi::regions::flags::READ | atoll_abi::regions::flags::WRITE,
        }),
        false => table.unmap(end, old_end),
    });
}

/// Up to `N` pieces of regions inside `[start, end)`, clipped to it.
pub fn pieces<const N: usize>(start: u64, end: u64) -> ([Region; N], usize) {
    let mut found = [Region::default(); N];
    let mut count = 0;
    if let Some(table) = TABLE.lock().as_deref() {
        for (slot, piece) in found.iter_mut().zip(table.pieces(start, end)) {
            *slot = piece;
            count += 1;
        }
    }
    (found, count)
}
