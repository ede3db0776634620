//! Access to the program's memory.
//!
//! Kernel and program share one identity-mapped address space, so a user
//! pointer is usable as is once it lies inside guest RAM (above the NULL
//! guard). Every access checks that first: a bad pointer gives EFAULT, never
//! a kernel fault.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::layout::NULL_GUARD_END;
use atoll_abi::linux::errno::EFAULT;

/// End of guest RAM, set once at boot.
static RAM_END: AtomicU64 = AtomicU64::new(0);

/// Records the end of guest RAM. Called once, before the program starts.
pub fn init(ram_size: u64) {
    RAM_END.store(ram_size, Ordering::Relaxed);
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
    if range_ok(address, len) {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Reads a `T` from user memory.
pub fn read<T: Copy>(address: u64) -> Result<T, i64> {
    check(address, core::mem::size_of::<T>() as u64)?;
    // SAFETY: the range is inside identity-mapped RAM (checked above); T is
    // plain data (Copy) and the read tolerates any alignment.
    Ok(unsafe { core::ptr::read_unaligned(address as *const T) })
}

/// Writes a `T` to user memory.
pub fn write<T: Copy>(address: u64, value: T) -> Result<(), i64> {
    check(address, core::mem::size_of::<T>() as u64)?;
    // SAFETY: as in `read`; the kernel holds no Rust reference into user memory.
    unsafe { core::ptr::write_unaligned(address as *mut T, value) };
    Ok(())
}

/// Copies `bytes` to user memory at `address`.
pub fn copy_to(address: u64, bytes: &[u8]) -> Result<(), i64> {
    check(address, bytes.len() as u64)?;
    // SAFETY: destination checked above; the source is kernel memory, which
    // lives outside guest RAM's identity map, so the two never overlap.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len()) };
    Ok(())
}

/// Fills `len` bytes of user memory with `byte`.
pub fn fill(address: u64, len: u64, byte: u8) -> Result<(), i64> {
    check(address, len)?;
    // SAFETY: range checked above.
    unsafe { core::ptr::write_bytes(address as *mut u8, byte, len as usize) };
    Ok(())
}

/// Moves `len` bytes inside user memory (ranges may overlap).
pub fn copy_within(from: u64, to: u64, len: u64) -> Result<(), i64> {
    check(from, len)?;
    check(to, len)?;
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
