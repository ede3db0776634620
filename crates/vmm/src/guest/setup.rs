//! The isle's memory layout and everything the monitor writes before boot:
//! page tables, GDT/IDT/TSS, per-CPU areas, the boot info and the program's
//! initial stack. See `atoll_abi::layout` for the picture.

use std::mem::size_of;

use atoll_abi::boot::{BootInfo, CpuArea};
use atoll_abi::layout::{
    align_down, align_up, pte, selector, stack_size_for, EXCEPTION_STACK_SIZE, KERNEL_STACK_SIZE,
    KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, MMIO_BASE, NULL_GUARD_END, PAGE_SIZE, STACK_GUARD,
};
use atoll_abi::linux::auxv::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::AbiPlainData;

/// Heap smaller than this leaves a program no room to run.
const MIN_HEAP: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Kernel and program share ring 3: every mapping is user-accessible.
const PTE_TABLE: u64 = pte::PRESENT | pte::WRITABLE | pte::USER;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetupError {
    #[error("the program at {start:#x}..{end:#x} does not fit in the isle's memory: it needs the space below {limit:#x}; raise -m")]
    ProgramOutsideMemory { start: u64, end: u64, limit: u64 },
    #[error("the program sits below {NULL_GUARD_END:#x}, where isles keep NULL unmapped")]
    ProgramInNullGuard,
    #[error("the isle's memory is too small for the kernel, stack and program: raise -m")]
    TooSmall,
    #[error("the arguments and environment ({0} bytes) exceed a quarter of the stack")]
    ArgumentsTooLong(u64),
    #[error("guest memory write failed: {0}")]
    Memory(String),
}

fn memory_error(error: vm_memory::GuestMemoryError) -> SetupError {
    SetupError::Memory(error.to_string())
}

/// Where everything goes in an isle of a given size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ram_size: u64,
    pub cpu_count: u64,
    pub system_start: u64,
    pub boot_info: u64,
    pub gdt: u64,
    pub idt: u64,
    pub tss: u64,
    pub page_tables: u64,
    pub page_table_pages: u64,
    /// Pages for the kernel to split 2 MiB mappings with.
    pub spare_page_tables: u64,
    /// The memory map (`atoll_abi::regions::RegionTable`).
    pub regions: u64,
    pub cpu_areas: u64,
    pub cpu_area_stride: u64,
    pub kernel_phys_start: u64,
    pub kernel_phys_end: u64,
    pub stack_top: u64,
    pub stack_bottom: u64,
    pub heap_end: u64,
}

/// Page tables the kernel can use to split 2 MiB mappings: each one lets
/// a 2 MiB region hold PROT_NONE guard pages (thread stacks need one each).
pub const SPARE_PAGE_TABLES: u64 = 128;
const CPU_AREA_SIZE: u64 = align_up(size_of::<CpuArea>() as u64, PAGE_SIZE);
const TSS_SIZE: u64 = 104;
const REGION_TABLE_PAGES: u64 =
    align_up(atoll_abi::regions::TABLE_SIZE as u64, PAGE_SIZE) / PAGE_SIZE;

impl Layout {
    /// Plans an isle of `ram_size` bytes with `cpu_count` vCPUs and a kernel
    /// image spanning `kernel_span` bytes.
    pub fn plan(ram_size: u64, cpu_count: u64, kernel_span: u64) -> Result<Self, SetupError> {
        let pd_count = ram_size.div_ceil(GIB);
        // PML4, identity PDPT + PDs + the PT for the first 2 MiB, kernel PDPT + PD + PT, MMIO PDPT + PD.
        let page_table_pages = 1 + 1 + pd_count + 1 + 3 + 2;
        if kernel_span > LARGE_PAGE_SIZE {
            return Err(SetupError::Memory(format!(
                "kernel image of {kernel_span} bytes exceeds 2 MiB"
            )));
        }
        let cpu_area_stride = CPU_AREA_SIZE + KERNEL_STACK_SIZE + EXCEPTION_STACK_SIZE;
        let fixed_pages = 1 /* boot info */ + 1 /* GDT */ + 1 /* IDT */ + 2 /* TSS */;
        let system_size = (fixed_pages + page_table_pages + SPARE_PAGE_TABLES + REGION_TABLE_PAGES)
            * PAGE_SIZE
            + cpu_count * cpu_area_stride;
        let kernel_size = align_up(kernel_span, PAGE_SIZE);
        let needed = system_size + kernel_size + stack_size_for(ram_size) + STACK_GUARD + MIN_HEAP;
        if ram_size < needed + NULL_GUARD_END {
            return Err(SetupError::TooSmall);
        }
        let system_start = align_down(ram_size - system_size, PAGE_SIZE);
        let boot_info = system_start;
        let gdt = boot_info + PAGE_SIZE;
        let idt = gdt + PAGE_SIZE;
        let tss = idt + PAGE_SIZE;
        let page_tables = tss + 2 * PAGE_SIZE;
        let spare_page_tables = page_tables + page_table_pages * PAGE_SIZE;
        let regions = spare_page_tables + SPARE_PAGE_TABLES * PAGE_SIZE;
        let cpu_areas = regions + REGION_TABLE_PAGES * PAGE_SIZE;
        // Kernel, system area and the top of the stack share the last huge
        // page(s) of RAM: boot touches as few huge pages as possible.
        let kernel_phys_start = system_start - kernel_size;
        let stack_top = kernel_phys_start;
        let stack_bottom = stack_top - stack_size_for(ram_size);
        Ok(Self {
            ram_size,
            cpu_count,
            system_start,
            boot_info,
            gdt,
            idt,
            tss,
            page_tables,
            page_table_pages,
            spare_page_tables,
            regions,
            cpu_areas,
            cpu_area_stride,
            kernel_phys_start,
            kernel_phys_end: kernel_phys_start + kernel_span,
            stack_top,
            stack_bottom,
            heap_end: stack_bottom - STACK_GUARD,
        })
    }

    /// Checks that a program image fits below the heap's end with room to spare.
    pub fn check_program(&self, image_start: u64, image_end: u64) -> Result<(), SetupError> {
        if image_start < NULL_GUARD_END {
            return Err(SetupError::ProgramInNullGuard);
        }
        let limit = self.heap_end - MIN_HEAP;
        if image_end > limit {
            return Err(SetupError::ProgramOutsideMemory {
                start: image_start,
                end: image_end,
                limit,
            });
        }
        Ok(())
    }

    /// CPU `cpu`'s TSS (128 bytes apart in the two TSS pages).
    pub fn tss_of(&self, cpu: u64) -> u64 {
        self.tss + cpu * 128
    }

    pub fn cpu_area(&self, cpu: u64) -> u64 {
        self.cpu_areas + cpu * self.cpu_area_stride
    }

    /// Top of CPU `cpu`'s kernel stack (16-byte aligned).
    pub fn kernel_stack_top(&self, cpu: u64) -> u64 {
        self.cpu_area(cpu) + CPU_AREA_SIZE + KERNEL_STACK_SIZE
    }

    /// Top of CPU `cpu`'s exception stack.
    pub fn exception_stack_top(&self, cpu: u64) -> u64 {
        self.kernel_stack_top(cpu) + EXCEPTION_STACK_SIZE
    }

    pub fn cr3(&self) -> u64 {
        self.page_tables
    }

    /// Guest-physical address of a kernel virtual address.
    pub fn kernel_physical(&self, address: u64) -> u64 {
        address - KERNEL_VIRT_BASE + self.kernel_phys_start
    }
}

fn write_u64(memory: &GuestMemoryMmap, address: u64, value: u64) -> Result<(), SetupError> {
    memory
        .write_obj(value, GuestAddress(address))
        .map_err(memory_error)
}

/// Writes the page tables: identity map of RAM (minus the NULL guard), the
/// kernel at KERNEL_VIRT_BASE, and the doorbell page at MMIO_BASE. The heap
/// from `heap_start` to the layout's heap end is left to the kernel, which
/// maps each 2 MiB region as it hands it out: a large isle's directories
/// (4 KiB per GiB) are then written only where memory is used, not at boot.
pub fn write_page_tables(
    memory: &GuestMemoryMmap,
    layout: &Layout,
    heap_start: u64,
) -> Result<(), SetupError> {
    let lazy_start = align_up(heap_start, LARGE_PAGE_SIZE);
    let lazy_end = align_down(layout.heap_end, LARGE_PAGE_SIZE).max(lazy_start);
    let page = |index: u64| layout.page_tables + index * PAGE_SIZE;
    let pml4 = page(0);
    let identity_pdpt = page(1);
    let pd_count = layout.ram_size.div_ceil(GIB);
    let identity_pd = |gib: u64| page(2 + gib);
    let low_pt = page(2 + pd_count);
    let kernel_pdpt = page(3 + pd_count);
    let kernel_pd = page(4 + pd_count);
    let kernel_pt = page(5 + pd_count);
    let mmio_pdpt = page(6 + pd_count);
    let mmio_pd = page(7 + pd_count);

    write_u64(memory, pml4, identity_pdpt | PTE_TABLE)?;
    for gib in 0..pd_count {
        write_u64(
            memory,
            identity_pdpt + gib * 8,
            identity_pd(gib) | PTE_TABLE,
        )?;
        let pages_in_gib = ((layout.ram_size - gib * GIB).min(GIB)).div_ceil(LARGE_PAGE_SIZE);
        for index in 0..pages_in_gib {
            let address = gib * GIB + index * LARGE_PAGE_SIZE;
            let entry = if address == 0 {
                low_pt | PTE_TABLE
            } else if (lazy_start..lazy_end).contains(&address) {
                // Left zero (not present) for the kernel.
                continue;
            } else {
                address | PTE_TABLE | pte::LARGE
            };
            write_u64(memory, identity_pd(gib) + index * 8, entry)?;
        }
    }
    for index in NULL_GUARD_END / PAGE_SIZE..LARGE_PAGE_SIZE / PAGE_SIZE {
        write_u64(memory, low_pt + index * 8, (index * PAGE_SIZE) | PTE_TABLE)?;
    }

    write_u64(memory, pml4 + 511 * 8, kernel_pdpt | PTE_TABLE)?;
    let kernel_pdpt_index = (KERNEL_VIRT_BASE >> 30) & 511;
    write_u64(
        memory,
        kernel_pdpt + kernel_pdpt_index * 8,
        kernel_pd | PTE_TABLE,
    )?;
    write_u64(memory, kernel_pd, kernel_pt | PTE_TABLE)?;
    let kernel_pages = (layout.kernel_phys_end - layout.kernel_phys_start).div_ceil(PAGE_SIZE);
    for index in 0..kernel_pages {
        let address = layout.kernel_phys_start + index * PAGE_SIZE;
        write_u64(memory, kernel_pt + index * 8, address | PTE_TABLE)?;
    }

    let mmio_pml4_index = (MMIO_BASE >> 39) & 511;
    write_u64(memory, pml4 + mmio_pml4_index * 8, mmio_pdpt | PTE_TABLE)?;
    write_u64(
        memory,
        mmio_pdpt + ((MMIO_BASE >> 30) & 511) * 8,
        mmio_pd | PTE_TABLE,
    )?;
    let uncached = pte::NO_CACHE | pte::WRITE_THROUGH;
    write_u64(
        memory,
        mmio_pd + ((MMIO_BASE >> 21) & 511) * 8,
        MMIO_BASE | PTE_TABLE | pte::LARGE | uncached,
    )?;
    Ok(())
}

/// 64-bit code and data descriptors for the GDT.
const GDT_KERNEL_CODE: u64 = 0x00af_9b00_0000_ffff;
const GDT_KERNEL_DATA: u64 = 0x00cf_9300_0000_ffff;
const GDT_USER_CODE32: u64 = 0x00cf_fb00_0000_ffff;
const GDT_USER_DATA: u64 = 0x00cf_f300_0000_ffff;
const GDT_USER_CODE: u64 = 0x00af_fb00_0000_ffff;

/// Writes the GDT, one TSS (boot CPU) and the IDT pointing every exception
/// vector at the kernel's ring-0 landing pads, on IST 1.
pub fn write_descriptor_tables(
    memory: &GuestMemoryMmap,
    layout: &Layout,
    exception_vectors: u64,
) -> Result<(), SetupError> {
    let gdt = [
        0,
        GDT_KERNEL_CODE,
        GDT_KERNEL_DATA,
        GDT_USER_CODE32,
        GDT_USER_DATA,
        GDT_USER_CODE,
    ];
    for (index, entry) in gdt.iter().enumerate() {
        write_u64(memory, layout.gdt + index as u64 * 8, *entry)?;
    }
    for cpu in 0..layout.cpu_count {
        let tss = layout.tss_of(cpu);
        let (low, high) = tss_descriptor(tss);
        let descriptor = layout.gdt + u64::from(selector::tss(cpu));
        write_u64(memory, descriptor, low)?;
        write_u64(memory, descriptor + 8, high)?;
        // TSS: rsp0 at 4, ist1 at 36, I/O bitmap offset at 102 (none).
        let stack = layout.exception_stack_top(cpu);
        memory
            .write_obj(stack, GuestAddress(tss + 4))
            .map_err(memory_error)?;
        memory
            .write_obj(stack, GuestAddress(tss + 36))
            .map_err(memory_error)?;
        memory
            .write_obj(TSS_SIZE as u16, GuestAddress(tss + 102))
            .map_err(memory_error)?;
    }

    for vector in 0..32u64 {
        let handler = exception_vectors + vector * 16;
        let low = (handler & 0xffff)
            | (u64::from(selector::KERNEL_CODE) << 16)
            | (1 << 32) // IST 1
            | (gate_type(vector) << 40)
            | ((handler >> 16) & 0xffff) << 48;
        write_u64(memory, layout.idt + vector * 16, low)?;
        write_u64(memory, layout.idt + vector * 16 + 8, handler >> 32)?;
    }
    Ok(())
}

/// Present interrupt gates: DPL 3 for `int3` and `into` (which programs
/// may execute on purpose), DPL 0 for the rest (`int n` from ring 3 faults).
fn gate_type(vector: u64) -> u64 {
    if vector == 3 || vector == 4 {
        0xee
    } else {
        0x8e
    }
}

fn tss_descriptor(base: u64) -> (u64, u64) {
    let limit = TSS_SIZE - 1;
    let low = (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | 0x89 << 40 // present, 64-bit available TSS
        | ((limit >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    (low, base >> 32)
}

/// Everything the initial stack holds, in Linux's execve layout.
pub struct StackSpec<'a> {
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
    pub execfn: &'a [u8],
    pub random: [u8; 16],
    pub auxv: Vec<(u64, u64)>,
}

/// Builds argc/argv/envp/auxv below `layout.stack_top`; returns the initial rsp.
pub fn write_initial_stack(
    memory: &GuestMemoryMmap,
    layout: &Layout,
    spec: &StackSpec,
) -> Result<u64, SetupError> {
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets = Vec::new();
    for item in spec
        .argv
        .iter()
        .chain(spec.envp.iter())
        .chain(std::iter::once(&spec.execfn.to_vec()))
    {
        offsets.push(strings.len() as u64);
        strings.extend_from_slice(item);
        strings.push(0);
    }
    let platform_offset = strings.len() as u64;
    strings.extend_from_slice(b"x86_64\0");
    // Like Linux, arguments may take a quarter of the stack: strings, the
    // pointers to them and the auxiliary vector.
    let pointer_bytes =
        (spec.argv.len() + spec.envp.len() + 3 + 2 * (spec.auxv.len() + 4)) as u64 * 8;
    let needed = strings.len() as u64 + pointer_bytes + 64;
    if needed > (layout.stack_top - layout.stack_bottom) / 4 {
        return Err(SetupError::ArgumentsTooLong(needed));
    }
    let strings_start = align_down(layout.stack_top - 16 - strings.len() as u64, 16);
    memory
        .write_slice(&strings, GuestAddress(strings_start))
        .map_err(memory_error)?;
    let random_address = strings_start - 16;
    memory
        .write_slice(&spec.random, GuestAddress(random_address))
        .map_err(memory_error)?;

    let mut auxv = spec.auxv.clone();
    auxv.push((AT_RANDOM, random_address));
    auxv.push((AT_PLATFORM, strings_start + platform_offset));
    auxv.push((AT_EXECFN, strings_start + offsets[offsets.len() - 1]));
    auxv.push((AT_NULL, 0));

    let mut words: Vec<u64> = Vec::new();
    words.push(spec.argv.len() as u64);
    for offset in &offsets[..spec.argv.len()] {
        words.push(strings_start + offset);
    }
    words.push(0);
    for offset in &offsets[spec.argv.len()..spec.argv.len() + spec.envp.len()] {
        words.push(strings_start + offset);
    }
    words.push(0);
    for (key, value) in auxv {
        words.push(key);
        words.push(value);
    }
    let stack_pointer = align_down(random_address - words.len() as u64 * 8, 16);
    let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
    memory
        .write_slice(&bytes, GuestAddress(stack_pointer))
        .map_err(memory_error)?;
    Ok(stack_pointer)
}

/// Writes the boot info.
pub fn write_boot_info(
    memory: &GuestMemoryMmap,
    layout: &Layout,
    boot_info: &BootInfo,
) -> Result<(), SetupError> {
    memory
        .write_obj(AbiPlainData(*boot_info), GuestAddress(layout.boot_info))
        .map_err(memory_error)
}

/// Writes the fields of CPU `cpu`'s area that the kernel reads before it writes any.
pub fn write_cpu_area(
    memory: &GuestMemoryMmap,
    layout: &Layout,
    cpu: u64,
) -> Result<(), SetupError> {
    use atoll_abi::boot::CPU_AREA_KERNEL_STACK_TOP;
    let area = layout.cpu_area(cpu);
    write_u64(
        memory,
        area + CPU_AREA_KERNEL_STACK_TOP as u64,
        layout.kernel_stack_top(cpu),
    )?;
    write_u64(
        memory,
        area + std::mem::offset_of!(CpuArea, self_addr) as u64,
        area,
    )?;
    write_u64(
        memory,
        area + std::mem::offset_of!(CpuArea, cpu_index) as u64,
        cpu,
    )?;
    write_u64(
        memory,
        area + atoll_abi::boot::CPU_AREA_LAST_DOORBELL as u64,
        atoll_abi::boot::NO_DOORBELL,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_stacks_system_kernel_and_stack_at_the_top() {
        let layout = Layout::plan(64 << 20, 1, 0x10000).unwrap();
        assert!(layout.system_start < layout.ram_size);
        assert_eq!(layout.kernel_phys_start % PAGE_SIZE, 0);
        assert!(
            layout.ram_size - layout.stack_top < LARGE_PAGE_SIZE,
            "kernel and system share the top huge page"
        );
        assert!(layout.kernel_phys_end <= layout.system_start);
        assert_eq!(layout.stack_top, layout.kernel_phys_start);
        assert_eq!(layout.stack_top - layout.stack_bottom, 4 << 20);
        assert!(layout.exception_stack_top(0) <= layout.ram_size);
        assert_eq!(layout.kernel_stack_top(0) % 16, 0);
    }

    #[test]
    fn the_heap_is_left_unmapped_for_the_kernel() {
        let layout = Layout::plan(4 << 30, 1, 0x10000).unwrap();
        let ram = crate::guest::memory::GuestRam::new(4 << 30).unwrap();
        let heap_start = 0x60_0000;
        write_page_tables(ram.memory(), &layout, heap_start).unwrap();
        let entry = |address: u64| -> u64 {
            let pd_page = 2 + address / GIB;
            let at = layout.page_tables + pd_page * PAGE_SIZE + ((address >> 21) & 511) * 8;
            ram.memory().read_obj(GuestAddress(at)).unwrap()
        };
        // The image's region and the top (stack, kernel, system area) are mapped.
        assert_eq!(entry(0x40_0000), 0x40_0000 | PTE_TABLE | pte::LARGE);
        let top = align_down(layout.stack_bottom, LARGE_PAGE_SIZE);
        assert_eq!(entry(top), top | PTE_TABLE | pte::LARGE);
        // The heap in between, across directories, is not.
        assert_eq!(entry(heap_start), 0);
        assert_eq!(entry(3 << 30), 0);
    }

    #[test]
    fn programs_must_fit_below_the_heap_end() {
        let layout = Layout::plan(64 << 20, 1, 0x10000).unwrap();
        assert!(layout.check_program(0x40_0000, 0x50_0000).is_ok());
        assert_eq!(
            layout.check_program(0x1000, 0x2000),
            Err(SetupError::ProgramInNullGuard)
        );
        assert!(matches!(
            layout.check_program(0x40_0000, 0x1000_0000),
            Err(SetupError::ProgramOutsideMemory { .. })
        ));
    }

    #[test]
    fn tiny_isles_are_refused() {
        assert_eq!(Layout::plan(2 << 20, 1, 0x10000), Err(SetupError::TooSmall));
        assert!(Layout::plan(atoll_abi::layout::MIN_RAM_SIZE, 1, 0x10000).is_ok());
    }

    #[test]
    fn tss_descriptor_encodes_base_and_limit() {
        let (low, high) = tss_descriptor(0x1234_5678_9abc_def0);
        assert_eq!(low & 0xffff, TSS_SIZE - 1);
        assert_eq!((low >> 16) & 0xff_ffff, 0xbc_def0);
        assert_eq!((low >> 56) & 0xff, 0x9a);
        assert_eq!(high, 0x1234_5678);
    }
}
