//! The guest: its RAM and what the monitor writes into it before boot.
//!
//! - [`memory`]: guest RAM on populated huge pages (or a memfd for QEMU),
//!   populate and release, slot attachment.
//! - [`setup`]: the memory layout, page tables, GDT/IDT/TSS, per-CPU areas,
//!   the boot info and the program's initial stack.
//! - [`regions`]: the memory map the kernel keeps, as loaded and as read back.

pub mod memory;
pub mod regions;
pub mod setup;

/// An abi struct as vm-memory plain data, so `read_obj` and `write_obj`
/// move it to and from guest memory whole (the orphan rule keeps
/// `ByteValued` off the abi types themselves).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct AbiPlainData<T>(pub T);

// SAFETY: BootInfo is `repr(C)` of integers and byte arrays only, so any
// bytes make a valid value, and it has no padding (atoll-abi's
// `boot_info_has_no_padding` test), so every byte of a value is initialized.
#[allow(unsafe_code)]
unsafe impl vm_memory::ByteValued for AbiPlainData<atoll_abi::boot::BootInfo> {}

// SAFETY: Region is `repr(C)` of three u64s and two u32s: 32 bytes with
// no padding, and any bytes make a valid value.
#[allow(unsafe_code)]
unsafe impl vm_memory::ByteValued for AbiPlainData<atoll_abi::regions::Region> {}

// SAFETY: LongModeStart is `repr(C)` of u64s and arrays of u64s only: any
// bytes make a valid value, and there is no padding between or after them.
#[allow(unsafe_code)]
unsafe impl vm_memory::ByteValued for AbiPlainData<atoll_abi::boot::LongModeStart> {}

// SAFETY: Request is `repr(C, align(64))` of two u32s, a u64 and six u64s:
// 64 bytes with no padding, and any bytes make a valid value.
#[allow(unsafe_code)]
unsafe impl vm_memory::ByteValued for AbiPlainData<atoll_abi::queue::Request> {}

// SAFETY: Completion is `repr(C, align(16))` of a u64 and an i64: 16 bytes
// with no padding, and any bytes make a valid value.
#[allow(unsafe_code)]
unsafe impl vm_memory::ByteValued for AbiPlainData<atoll_abi::queue::Completion> {}
