//! Simulated guest memory: sparse 4 KiB pages, zero until written. Page
//! tables live here too, so tests can read back what `mm` wrote.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use atoll_abi::layout::{NULL_GUARD_END, PAGE_SIZE};

thread_local! {
    static PAGES: RefCell<HashMap<u64, Box<[u8; PAGE_SIZE as usize]>>> =
        RefCell::new(HashMap::new());
    static SPLIT_REGIONS: Cell<i64> = const { Cell::new(0) };
}

/// Values the kernel reads and writes whole (the ones its logic uses).
pub trait Plain: Copy {
    const SIZE: usize;
    fn from_bytes(bytes: &[u8]) -> Self;
    fn to_bytes(self, bytes: &mut [u8]);
}

macro_rules! plain_integer {
    ($($integer:ty),*) => {$(
        impl Plain for $integer {
            const SIZE: usize = core::mem::size_of::<$integer>();
            fn from_bytes(bytes: &[u8]) -> Self {
                <$integer>::from_le_bytes(bytes.try_into().expect("sized by SIZE"))
            }
            fn to_bytes(self, bytes: &mut [u8]) {
                bytes.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
plain_integer!(u16, u32, u64);

impl<const N: usize> Plain for [u64; N] {
    const SIZE: usize = 8 * N;
    fn from_bytes(bytes: &[u8]) -> Self {
        core::array::from_fn(|index| u64::from_bytes(&bytes[index * 8..index * 8 + 8]))
    }
    fn to_bytes(self, bytes: &mut [u8]) {
        for (index, word) in self.into_iter().enumerate() {
            word.to_bytes(&mut bytes[index * 8..index * 8 + 8]);
        }
    }
}

fn byte_at(address: u64) -> u8 {
    let page = address & !(PAGE_SIZE - 1);
    PAGES.with_borrow(|pages| {
        pages
            .get(&page)
            .map_or(0, |bytes| bytes[(address - page) as usize])
    })
}

fn set_byte(address: u64, byte: u8) {
    let page = address & !(PAGE_SIZE - 1);
    PAGES.with_borrow_mut(|pages| {
        let bytes = pages
            .entry(page)
            .or_insert_with(|| Box::new([0; PAGE_SIZE as usize]));
        bytes[(address - page) as usize] = byte;
    });
}

/// No RAM size or page tables to record: every address is simulated.
pub fn init(_ram_size: u64, _page_table_root: u64) {}

pub fn note_split(delta: i64) {
    SPLIT_REGIONS.set(SPLIT_REGIONS.get() + delta);
}

/// How many 2 MiB regions `mm` says are split into 4 KiB pages.
pub fn split_regions() -> i64 {
    SPLIT_REGIONS.get()
}

pub fn note_region_protected() {}

pub fn range_ok(address: u64, len: u64) -> bool {
    address >= NULL_GUARD_END && address.checked_add(len).is_some()
}

pub fn read<T: Plain>(address: u64) -> Result<T, i64> {
    let bytes: Vec<u8> = (0..T::SIZE as u64)
        .map(|at| byte_at(address + at))
        .collect();
    Ok(T::from_bytes(&bytes))
}

pub fn write<T: Plain>(address: u64, value: T) -> Result<(), i64> {
    let mut bytes = vec![0; T::SIZE];
    value.to_bytes(&mut bytes);
    for (at, byte) in (address..).zip(bytes) {
        set_byte(at, byte);
    }
    Ok(())
}

pub fn fill(address: u64, len: u64, byte: u8) -> Result<(), i64> {
    for at in address..address + len {
        set_byte(at, byte);
    }
    Ok(())
}

/// Simulated memory has no protections to skip.
pub fn fill_accessible(address: u64, len: u64, byte: u8) -> Result<(), i64> {
    fill(address, len, byte)
}

pub fn copy_within(from: u64, to: u64, len: u64) -> Result<(), i64> {
    let bytes: Vec<u8> = (from..from + len).map(byte_at).collect();
    for (at, byte) in (to..).zip(bytes) {
        set_byte(at, byte);
    }
    Ok(())
}
