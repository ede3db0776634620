//! Guest memory layout.
//!
//! Guest RAM is one block at guest-physical 0, identity-mapped (virtual ==
//! physical) with user-accessible pages, because kernel and program share one
//! ring-3 address space. The kernel image is linked in the top 2 GiB of the
//! address space and mapped onto physical memory at the top of RAM. Everything
//! but the heap is mapped before the first instruction; the kernel maps heap
//! regions as it hands them out, before the program can touch them, so the
//! isle never takes a page fault on purpose. RAM is address space: the host
//! backs it only where the kernel hands memory out.
//!
//! ```text
//! 0 .. NULL_GUARD_END          not mapped: NULL and small-offset dereferences fault
//! program image                at its link address (static) or PIE_LOAD_BASE (static-pie)
//! heap                         brk grows up from the image end, mmap grows down
//! program stack                STACK_GUARD below it, argv/envp/auxv at its top
//! kernel image                 mapped again at KERNEL_VIRT_BASE
//! system area                  boot info, GDT/IDT/TSS, page tables, per-CPU areas
//! ram_size
//! MMIO_BASE                    doorbell page (no memory behind it: writes exit)
//! ```

/// Size of a base page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large page, the granularity of most of the identity map.
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;
/// Addresses below this are never mapped, like Linux's default mmap_min_addr.
pub const NULL_GUARD_END: u64 = 0x10000;
/// Where a position-independent (static-pie) program is loaded.
pub const PIE_LOAD_BASE: u64 = 0x40_0000;
/// Virtual address the kernel is linked at (the top 2 GiB, kernel code model).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Guest-physical address of the doorbell page; above any RAM an isle may have.
pub const MMIO_BASE: u64 = 0x80_0000_0000;
/// Largest guest RAM (address space), so RAM never reaches MMIO_BASE.
pub const MAX_RAM_SIZE: u64 = 256 << 30;
/// Guest RAM reaches the vCPUs in slots this big (see
/// [`memory::ATTACH`](crate::queue::memory::ATTACH)): slot n is
/// `n * RAM_SLOT_SIZE..(n + 1) * RAM_SLOT_SIZE`.
pub const RAM_SLOT_SIZE: u64 = 1 << 30;
/// Most RAM slots an isle can have.
pub const MAX_RAM_SLOTS: u64 = MAX_RAM_SIZE / RAM_SLOT_SIZE;
/// Smallest guest RAM that leaves the program room to run.
pub const MIN_RAM_SIZE: u64 = 8 << 20;
/// Unmapped-in-spirit gap between the heap and the stack; writes there are not caught
/// (pages stay mapped), but the allocator never hands it out.
pub const STACK_GUARD: u64 = 64 << 10;
/// Largest number of vCPUs an isle can have.
pub const MAX_CPUS: usize = 64;
/// Per-CPU kernel stack size (syscall handling runs here).
pub const KERNEL_STACK_SIZE: u64 = 64 << 10;
/// Per-CPU ring-0 stack for the exception landing pads.
pub const EXCEPTION_STACK_SIZE: u64 = 4 << 10;

const _: () = assert!(
    MAX_RAM_SIZE <= MMIO_BASE,
    "RAM must never reach the doorbells"
);
const _: () = assert!(MMIO_BASE.is_multiple_of(LARGE_PAGE_SIZE));

/// Rounds `value` up to a multiple of `align` (a power of two).
pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

/// Rounds `value` down to a multiple of `align` (a power of two).
pub const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

/// Main-thread stack size for an isle with `ram_size` bytes: Linux's 8 MiB
/// default when there is room, less in small isles.
pub const fn stack_size_for(ram_size: u64) -> u64 {
    let size = ram_size / 16;
    if size < (1 << 20) {
        1 << 20
    } else if size > (8 << 20) {
        8 << 20
    } else {
        align_down(size, PAGE_SIZE)
    }
}

/// GDT selectors. The order is what syscall/sysret demand: kernel code then
/// kernel data at STAR[47:32]; user data then user code at STAR[63:48] + 8/16.
/// x86_64 page-table entry bits, as the monitor writes the boot tables and
/// the kernel the heap's.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const WRITE_THROUGH: u64 = 1 << 3;
    pub const NO_CACHE: u64 = 1 << 4;
    /// Set by the CPU on use; they say nothing about the mapping.
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// In a directory entry: a 2 MiB page, not a table.
    pub const LARGE: u64 = 1 << 7;
    /// The physical address an entry points at.
    pub const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
}

pub mod selector {
    pub const KERNEL_CODE: u16 = 0x08;
    pub const KERNEL_DATA: u16 = 0x10;
    pub const USER_CODE32: u16 = 0x18 | 3;
    pub const USER_DATA: u16 = 0x20 | 3;
    pub const USER_CODE: u16 = 0x28 | 3;
    /// CPU 0's TSS; CPU n's is 16 bytes further per CPU (two slots each).
    pub const TSS: u16 = 0x30;

    /// The TSS selector of CPU `cpu`.
    pub const fn tss(cpu: u64) -> u16 {
        TSS + 16 * cpu as u16
    }

    /// Number of 8-byte GDT slots for `cpus` CPUs.
    pub const fn gdt_entries(cpus: u64) -> usize {
        6 + 2 * cpus as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers_round_correctly() {
        assert_eq!(align_up(1, PAGE_SIZE), PAGE_SIZE);
        assert_eq!(align_up(PAGE_SIZE, PAGE_SIZE), PAGE_SIZE);
        assert_eq!(align_down(PAGE_SIZE + 1, PAGE_SIZE), PAGE_SIZE);
        assert_eq!(align_up(3 << 20, LARGE_PAGE_SIZE), 4 << 20);
    }

    #[test]
    fn stack_size_scales_with_ram() {
        assert_eq!(stack_size_for(8 << 20), 1 << 20);
        assert_eq!(stack_size_for(64 << 20), 4 << 20);
        assert_eq!(stack_size_for(1 << 30), 8 << 20);
    }
}
