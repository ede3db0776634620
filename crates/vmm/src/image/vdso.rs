//! The isle's vDSO: a small ELF shared object the program finds through
//! AT_SYSINFO_EHDR, as on Linux, so libc's clock_gettime, gettimeofday and
//! time run in the program without entering the kernel.
//!
//! Its code comes from the kernel image (`arch::x86_64::vdso`); the monitor
//! wraps it in an ELF with a dynamic symbol table that glibc, musl and Go
//! all read (DT_HASH, DT_SYMTAB, DT_STRTAB; no symbol versions, which they
//! accept), and fills in the clock calibration.

use atoll_abi::boot::{vdso_data, ClockInfo};

/// The vDSO's code as the kernel image holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VdsoCode {
    pub bytes: Vec<u8>,
    /// Offsets into `bytes` of the functions, by exported name.
    pub functions: Vec<(&'static str, usize)>,
    /// Offset of the calibration data.
    pub data: usize,
}

/// The names libcs look up, and the kernel symbols that implement them.
pub const FUNCTIONS: [(&str, &str); 3] = [
    ("__vdso_clock_gettime", "atoll_vdso_clock_gettime"),
    ("__vdso_gettimeofday", "atoll_vdso_gettimeofday"),
    ("__vdso_time", "atoll_vdso_time"),
];

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SYM_SIZE: usize = 24;
const DYN_SIZE: usize = 16;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_SONAME: u64 = 14;
const SONAME: &str = "linux-vdso.so.1";

fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

fn align(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

/// The vDSO's string table: "", the soname, then the function names.
fn strings(code: &VdsoCode) -> Vec<u8> {
    let mut strings = vec![0u8];
    strings.extend_from_slice(SONAME.as_bytes());
    strings.push(0);
    for (name, _) in &code.functions {
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
    }
    strings
}

/// Where the code starts in the image.
fn text_offset(code: &VdsoCode) -> usize {
    let symbol_count = code.functions.len() + 1;
    let hash = EHDR_SIZE + 2 * PHDR_SIZE + 7 * DYN_SIZE;
    let symbols = align(hash + 4 * (2 + 1 + symbol_count), 8);
    align(symbols + symbol_count * SYM_SIZE + strings(code).len(), 64)
}

/// Where the image keeps its clock calibration (`vdso_data`): a backend
/// whose guest TSC isn't the host's sets it again once the guest runs.
pub fn clock_offset(code: &VdsoCode) -> usize {
    text_offset(code) + code.data
}

/// The vDSO image, to be placed at a page boundary (all addresses in it
/// are offsets from its start).
pub fn image(code: &VdsoCode, clock: &ClockInfo) -> Vec<u8> {
    let strings = strings(code);
    let symbol_count = code.functions.len() + 1;
    let dynamic_entries = 7;

    let phdrs = EHDR_SIZE;
    let dynamic = phdrs + 2 * PHDR_SIZE;
    let hash = dynamic + dynamic_entries * DYN_SIZE;
    let hash_size = 4 * (2 + 1 + symbol_count);
    let symbols = align(hash + hash_size, 8);
    let strtab = symbols + symbol_count * SYM_SIZE;
    let text = text_offset(code);
    let soname = 1;
    let mut names = Vec::new();
    let mut at = 1 + SONAME.len() + 1;
    for (name, _) in &code.functions {
        names.push(at);
        at += name.len() + 1;
    }
    let size = text + code.bytes.len();
    let mut image = vec![0u8; size];

    // ELF header: a 64-bit little-endian x86_64 shared object.
    put(&mut image, 0, &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    put(&mut image, 16, &3u16.to_le_bytes());
    put(&mut image, 18, &62u16.to_le_bytes());
    put(&mut image, 20, &1u32.to_le_bytes());
    put(&mut image, 32, &(phdrs as u64).to_le_bytes());
    put(&mut image, 52, &(EHDR_SIZE as u16).to_le_bytes());
    put(&mut image, 54, &(PHDR_SIZE as u16).to_le_bytes());
    put(&mut image, 56, &2u16.to_le_bytes());
    put(&mut image, 58, &64u16.to_le_bytes());

    // One read+execute load of the whole image, and the dynamic section.
    let phdr = |kind: u32, flags: u32, offset: usize, len: usize| {
        let mut bytes = Vec::with_capacity(PHDR_SIZE);
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&flags.to_le_bytes());
        for value in [offset, offset, offset, len, len, 8] {
            bytes.extend_from_slice(&(value as u64).to_le_bytes());
        }
        bytes
    };
    put(&mut image, phdrs, &phdr(PT_LOAD, 5, 0, size));
    let dynamic_size = dynamic_entries * DYN_SIZE;
    put(
        &mut image,
        phdrs + PHDR_SIZE,
        &phdr(PT_DYNAMIC, 4, dynamic, dynamic_size),
    );

    let entries = [
        (DT_HASH, hash),
        (DT_STRTAB, strtab),
        (DT_SYMTAB, symbols),
        (DT_STRSZ, strings.len()),
        (DT_SYMENT, SYM_SIZE),
        (DT_SONAME, soname),
        (DT_NULL, 0),
    ];
    for (index, (tag, value)) in entries.iter().enumerate() {
        let at = dynamic + index * DYN_SIZE;
        put(&mut image, at, &tag.to_le_bytes());
        put(&mut image, at + 8, &(*value as u64).to_le_bytes());
    }

    // SysV hash: one bucket holding every symbol in a chain.
    let mut words = vec![1u32, symbol_count as u32, 1];
    for index in 0..symbol_count as u32 {
        words.push(if index == 0 || index + 1 == symbol_count as u32 {
            0
        } else {
            index + 1
        });
    }
    let words: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
    put(&mut image, hash, &words);

    // Symbol 0 is null; then global functions (section 1: any defined one).
    for (index, ((_, offset), name)) in code.functions.iter().zip(&names).enumerate() {
        let at = symbols + (index + 1) * SYM_SIZE;
        put(&mut image, at, &(*name as u32).to_le_bytes());
        image[at + 4] = 0x12; // STB_GLOBAL, STT_FUNC
        put(&mut image, at + 6, &1u16.to_le_bytes());
        put(&mut image, at + 8, &((text + offset) as u64).to_le_bytes());
    }
    put(&mut image, strtab, &strings);

    put(&mut image, text, &code.bytes);
    let data = text + code.data;
    for (offset, value) in [
        (vdso_data::TSC_AT_BOOT, clock.tsc_at_boot),
        (vdso_data::NS_PER_TICK_Q32, clock.ns_per_tick_q32()),
        (vdso_data::MONOTONIC_NS, clock.monotonic_ns),
        (vdso_data::REALTIME_NS, clock.realtime_ns),
    ] {
        put(&mut image, data + offset, &value.to_le_bytes());
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    #[test]
    fn the_image_is_an_elf_whose_symbols_point_at_the_code() {
        let code = VdsoCode {
            bytes: vec![0xcc; 200],
            functions: vec![("__vdso_clock_gettime", 40), ("__vdso_time", 120)],
            data: 0,
        };
        let clock = ClockInfo {
            tsc_khz: 2_000_000,
            tsc_at_boot: 7,
            realtime_ns: 9,
            monotonic_ns: 8,
        };
        let image = image(&code, &clock);
        let elf = Elf::parse(&image).unwrap();
        assert_eq!(elf.header.e_type, goblin::elf::header::ET_DYN);
        assert_eq!(elf.soname, Some(SONAME));
        let found: Vec<(String, u64)> = elf
            .dynsyms
            .iter()
            .skip(1)
            .map(|sym| (elf.dynstrtab[sym.st_name].to_string(), sym.st_value))
            .collect();
        let text = image.len() - 200;
        assert_eq!(
            found,
            [
                ("__vdso_clock_gettime".to_string(), (text + 40) as u64),
                ("__vdso_time".to_string(), (text + 120) as u64)
            ]
        );
        let data = &image[text..text + vdso_data::SIZE];
        assert_eq!(data[..8], 7u64.to_le_bytes());
        assert_eq!(data[8..16], clock.ns_per_tick_q32().to_le_bytes());
        assert_eq!(data[16..24], 8u64.to_le_bytes());
        assert_eq!(data[24..32], 9u64.to_le_bytes());
    }
}
