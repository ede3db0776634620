//! The isle's vDSO: a small ELF shared object the program finds through
//! AT_SYSINFO_EHDR, as on Linux, so libc's clock_gettime, gettimeofday and
//! time run in the program without entering the kernel.
//!
//! Its code comes from the kernel image (`arch::x86_64::vdso`); the monitor
//! wraps it in an ELF shaped like Linux's x86_64 vDSO: each `__vdso_NAME`
//! with its weak alias `NAME`, all at symbol version `LINUX_2.6` (DT_VERDEF,
//! DT_VERSYM: Go reads them without checking they exist, and glibc and musl
//! look the functions up by that version), a SysV hash (DT_HASH), and
//! section headers for readelf and debuggers. The monitor also fills in the
//! clock calibration.

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

const SONAME: &str = "linux-vdso.so.1";
/// The one symbol version Linux's x86_64 vDSO defines, and every caller asks for.
const VERSION: &str = "LINUX_2.6";
/// Linux names each function `__vdso_NAME` and also exports it, weak, as `NAME`.
const ALIASED_PREFIX: &str = "__vdso_";

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const DYN_SIZE: usize = 16;
const VERDEF_SIZE: usize = 20;
const VERDAUX_SIZE: usize = 8;
const TEXT_ALIGN: usize = 64;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PF_R: u32 = 4;
const PF_X: u32 = 1;

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_SONAME: u64 = 14;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
/// The dynamic entries `image` writes, DT_NULL included.
const DYNAMIC_ENTRIES: usize = 10;

const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const SHN_ABS: u16 = 0xfff1;

const VER_FLG_BASE: u16 = 1;
/// Version indexes: 0 is local, 1 the object itself (the base definition),
/// 2 `LINUX_2.6`.
const VER_NDX_LOCAL: u16 = 0;
const VER_NDX_BASE: u16 = 1;
const VER_NDX_LINUX_2_6: u16 = 2;
const VERSION_DEFINITIONS: usize = 2;

const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_HASH: u32 = 5;
const SHT_DYNAMIC: u32 = 6;
const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;

/// Section indexes, in the order of the section headers.
const SECTION_DYNSYM: u32 = 2;
const SECTION_DYNSTR: u32 = 3;
const SECTION_TEXT: u32 = 7;
const SECTION_SHSTRTAB: u32 = 8;
const SECTIONS: usize = 9;
const SECTION_NAMES: [&str; SECTIONS] = [
    "",
    ".hash",
    ".dynsym",
    ".dynstr",
    ".gnu.version",
    ".gnu.version_d",
    ".dynamic",
    ".text",
    ".shstrtab",
];

fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

fn align(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

/// The SysV ELF hash, which version definitions carry for their name.
fn elf_hash(name: &str) -> u32 {
    name.bytes().fold(0u32, |hash, byte| {
        let hash = (hash << 4).wrapping_add(u32::from(byte));
        let high = hash & 0xf000_0000;
        (hash ^ (high >> 24)) & !high
    })
}

/// A table of NUL-terminated names, starting with the empty one.
struct StringTable {
    bytes: Vec<u8>,
}

impl StringTable {
    fn new() -> Self {
        StringTable { bytes: vec![0] }
    }

    /// Adds `name`, returning its offset.
    fn add(&mut self, name: &str) -> usize {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        at
    }
}

/// One dynamic symbol: its name's offset, binding and type, and where it
/// is: an offset into the code, or none for the version's absolute symbol.
struct Symbol {
    name: usize,
    binding: u8,
    kind: u8,
    code_offset: Option<usize>,
}

/// Where everything goes in the image; it depends only on the code's size
/// and function names, not on the clock the image carries.
struct Layout {
    strings: StringTable,
    soname: usize,
    version: usize,
    /// Every symbol but the null one.
    symbols: Vec<Symbol>,
    section_names: StringTable,
    section_name_offsets: Vec<usize>,
    dynamic: usize,
    hash: usize,
    symtab: usize,
    strtab: usize,
    versym: usize,
    verdef: usize,
    text: usize,
    shstrtab: usize,
    section_headers: usize,
    size: usize,
}

const VERDEF_TABLE_SIZE: usize = VERSION_DEFINITIONS * (VERDEF_SIZE + VERDAUX_SIZE);

impl Layout {
    fn of(code: &VdsoCode) -> Self {
        let mut strings = StringTable::new();
        let soname = strings.add(SONAME);
        let version = strings.add(VERSION);
        let mut symbols = Vec::new();
        for &(name, offset) in &code.functions {
            let function = |name, binding| Symbol {
                name,
                binding,
                kind: STT_FUNC,
                code_offset: Some(offset),
            };
            symbols.push(function(strings.add(name), STB_GLOBAL));
            if let Some(alias) = name.strip_prefix(ALIASED_PREFIX) {
                symbols.push(function(strings.add(alias), STB_WEAK));
            }
        }
        // The linker's symbol for the version definition, as Linux has it.
        symbols.push(Symbol {
            name: version,
            binding: STB_GLOBAL,
            kind: STT_OBJECT,
            code_offset: None,
        });
        let mut section_names = StringTable::new();
        let section_name_offsets = SECTION_NAMES
            .iter()
            .map(|name| {
                if name.is_empty() {
                    0
                } else {
                    section_names.add(name)
                }
            })
            .collect();

        let symbol_count = symbols.len() + 1;
        let dynamic = EHDR_SIZE + 2 * PHDR_SIZE;
        let hash = align(dynamic + DYNAMIC_ENTRIES * DYN_SIZE, 8);
        let symtab = align(hash + hash_size(symbol_count), 8);
        let strtab = symtab + symbol_count * SYM_SIZE;
        let versym = align(strtab + strings.bytes.len(), 2);
        let verdef = align(versym + 2 * symbol_count, 8);
        let text = align(verdef + VERDEF_TABLE_SIZE, TEXT_ALIGN);
        let shstrtab = text + code.bytes.len();
        let section_headers = align(shstrtab + section_names.bytes.len(), 8);
        Layout {
            strings,
            soname,
            version,
            symbols,
            section_names,
            section_name_offsets,
            dynamic,
            hash,
            symtab,
            strtab,
            versym,
            verdef,
            text,
            shstrtab,
            section_headers,
            size: section_headers + SECTIONS * SHDR_SIZE,
        }
    }

    fn symbol_count(&self) -> usize {
        self.symbols.len() + 1
    }
}

/// A SysV hash table with one bucket, and a chain entry for each symbol.
fn hash_size(symbol_count: usize) -> usize {
    4 * (2 + 1 + symbol_count)
}

/// Where the image keeps its clock calibration (`vdso_data`): a backend
/// whose guest TSC isn't the host's sets it again once the guest runs.
pub fn clock_offset(code: &VdsoCode) -> usize {
    Layout::of(code).text + code.data
}

/// Little-endian bytes of `fields`, each the given number of bytes wide.
fn record(fields: &[(u64, usize)]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|&(value, width)| value.to_le_bytes().into_iter().take(width))
        .collect()
}

/// The vDSO image, to be placed at a page boundary (all addresses in it
/// are offsets from its start).
pub fn image(code: &VdsoCode, clock: &ClockInfo) -> Vec<u8> {
    let layout = Layout::of(code);
    let mut image = vec![0u8; layout.size];
    write_headers(&mut image, &layout);
    write_dynamic(&mut image, &layout);
    write_symbols(&mut image, &layout);
    write_versions(&mut image, &layout);
    write_sections(&mut image, &layout, code);

    put(&mut image, layout.text, &code.bytes);
    let data = layout.text + code.data;
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

/// The ELF header of a 64-bit little-endian x86_64 shared object, and its
/// program headers: one read+execute load of the whole image, and the
/// dynamic section.
fn write_headers(image: &mut [u8], layout: &Layout) {
    put(image, 0, &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    let header = record(&[
        (3, 2),  // e_type: ET_DYN
        (62, 2), // e_machine: EM_X86_64
        (1, 4),  // e_version
        (0, 8),  // e_entry
        (EHDR_SIZE as u64, 8),
        (layout.section_headers as u64, 8),
        (0, 4), // e_flags
        (EHDR_SIZE as u64, 2),
        (PHDR_SIZE as u64, 2),
        (2, 2),
        (SHDR_SIZE as u64, 2),
        (SECTIONS as u64, 2),
        (u64::from(SECTION_SHSTRTAB), 2),
    ]);
    put(image, 16, &header);
    let program_header = |kind: u32, flags: u32, offset: usize, len: usize| {
        let mut fields = vec![(u64::from(kind), 4), (u64::from(flags), 4)];
        fields.extend([offset, offset, offset, len, len, 8].map(|value| (value as u64, 8)));
        record(&fields)
    };
    put(
        image,
        EHDR_SIZE,
        &program_header(PT_LOAD, PF_R | PF_X, 0, layout.size),
    );
    put(
        image,
        EHDR_SIZE + PHDR_SIZE,
        &program_header(PT_DYNAMIC, PF_R, layout.dynamic, DYNAMIC_ENTRIES * DYN_SIZE),
    );
}

fn write_dynamic(image: &mut [u8], layout: &Layout) {
    let entries: [(u64, usize); DYNAMIC_ENTRIES] = [
        (DT_SONAME, layout.soname),
        (DT_HASH, layout.hash),
        (DT_STRTAB, layout.strtab),
        (DT_SYMTAB, layout.symtab),
        (DT_STRSZ, layout.strings.bytes.len()),
        (DT_SYMENT, SYM_SIZE),
        (DT_VERDEF, layout.verdef),
        (DT_VERDEFNUM, VERSION_DEFINITIONS),
        (DT_VERSYM, layout.versym),
        (DT_NULL, 0),
    ];
    for (index, (tag, value)) in entries.into_iter().enumerate() {
        put(
            image,
            layout.dynamic + index * DYN_SIZE,
            &record(&[(tag, 8), (value as u64, 8)]),
        );
    }
}

/// The hash table, the symbols (symbol 0 is null) and their names.
fn write_symbols(image: &mut [u8], layout: &Layout) {
    // One bucket holding every symbol in a chain: 1, 2, ..., the last.
    let count = layout.symbol_count() as u32;
    let mut words = vec![1, count, 1];
    words.extend((0..count).map(|index| {
        if index == 0 || index + 1 == count {
            0
        } else {
            index + 1
        }
    }));
    let words: Vec<u8> = words
        .iter()
        .flat_map(|word: &u32| word.to_le_bytes())
        .collect();
    put(image, layout.hash, &words);

    for (index, symbol) in layout.symbols.iter().enumerate() {
        let (section, value) = match symbol.code_offset {
            Some(offset) => (u64::from(SECTION_TEXT), layout.text + offset),
            None => (u64::from(SHN_ABS), 0),
        };
        let entry = record(&[
            (symbol.name as u64, 4),
            (u64::from(symbol.binding << 4 | symbol.kind), 1),
            (0, 1), // st_other: default visibility
            (section, 2),
            (value as u64, 8),
            (0, 8), // st_size: unknown
        ]);
        put(image, layout.symtab + (index + 1) * SYM_SIZE, &entry);
    }
    put(image, layout.strtab, &layout.strings.bytes);
}

/// Symbol versions as Linux's vDSO has them: a base definition naming the
/// object, then `LINUX_2.6`, which every symbol but the null one has.
fn write_versions(image: &mut [u8], layout: &Layout) {
    let versions = std::iter::once(VER_NDX_LOCAL)
        .chain(layout.symbols.iter().map(|_| VER_NDX_LINUX_2_6))
        .flat_map(u16::to_le_bytes)
        .collect::<Vec<u8>>();
    put(image, layout.versym, &versions);

    let definitions = [
        (VER_FLG_BASE, VER_NDX_BASE, SONAME, layout.soname),
        (0, VER_NDX_LINUX_2_6, VERSION, layout.version),
    ];
    let entry_size = VERDEF_SIZE + VERDAUX_SIZE;
    for (index, (flags, version_index, name, name_offset)) in definitions.into_iter().enumerate() {
        let next = if index + 1 == definitions.len() {
            0
        } else {
            entry_size
        };
        let entry = record(&[
            (1, 2), // vd_version
            (u64::from(flags), 2),
            (u64::from(version_index), 2),
            (1, 2), // vd_cnt: one name
            (u64::from(elf_hash(name)), 4),
            (VERDEF_SIZE as u64, 4), // vd_aux: the name follows
            (next as u64, 4),
            (name_offset as u64, 4), // vda_name
            (0, 4),                  // vda_next
        ]);
        put(image, layout.verdef + index * entry_size, &entry);
    }
}

/// One section header's fields (its name comes from the section's index).
#[derive(Default)]
struct Section {
    kind: u32,
    flags: u64,
    offset: usize,
    size: usize,
    link: u32,
    info: u32,
    alignment: usize,
    entry_size: usize,
}

/// Section headers, for readelf and debuggers (the loaders read only the
/// dynamic section).
fn write_sections(image: &mut [u8], layout: &Layout, code: &VdsoCode) {
    put(image, layout.shstrtab, &layout.section_names.bytes);
    let symbol_count = layout.symbol_count();
    let sections: [Section; SECTIONS] = [
        Section::default(),
        Section {
            kind: SHT_HASH,
            flags: SHF_ALLOC,
            offset: layout.hash,
            size: hash_size(symbol_count),
            link: SECTION_DYNSYM,
            alignment: 8,
            entry_size: 4,
            ..Section::default()
        },
        Section {
            kind: SHT_DYNSYM,
            flags: SHF_ALLOC,
            offset: layout.symtab,
            size: symbol_count * SYM_SIZE,
            link: SECTION_DYNSTR,
            info: 1, // the first global symbol
            alignment: 8,
            entry_size: SYM_SIZE,
        },
        Section {
            kind: SHT_STRTAB,
            flags: SHF_ALLOC,
            offset: layout.strtab,
            size: layout.strings.bytes.len(),
            alignment: 1,
            ..Section::default()
        },
        Section {
            kind: SHT_GNU_VERSYM,
            flags: SHF_ALLOC,
            offset: layout.versym,
            size: 2 * symbol_count,
            link: SECTION_DYNSYM,
            alignment: 2,
            entry_size: 2,
            ..Section::default()
        },
        Section {
            kind: SHT_GNU_VERDEF,
            flags: SHF_ALLOC,
            offset: layout.verdef,
            size: VERDEF_TABLE_SIZE,
            link: SECTION_DYNSTR,
            info: VERSION_DEFINITIONS as u32,
            alignment: 8,
            ..Section::default()
        },
        Section {
            kind: SHT_DYNAMIC,
            flags: SHF_ALLOC,
            offset: layout.dynamic,
            size: DYNAMIC_ENTRIES * DYN_SIZE,
            link: SECTION_DYNSTR,
            alignment: 8,
            entry_size: DYN_SIZE,
            ..Section::default()
        },
        Section {
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            offset: layout.text,
            size: code.bytes.len(),
            alignment: TEXT_ALIGN,
            ..Section::default()
        },
        Section {
            kind: SHT_STRTAB,
            offset: layout.shstrtab,
            size: layout.section_names.bytes.len(),
            alignment: 1,
            ..Section::default()
        },
    ];
    for (index, section) in sections.iter().enumerate() {
        // Loaded sections are at the address of their offset.
        let address = if section.flags & SHF_ALLOC != 0 {
            section.offset
        } else {
            0
        };
        let header = record(&[
            (layout.section_name_offsets[index] as u64, 4),
            (u64::from(section.kind), 4),
            (section.flags, 8),
            (address as u64, 8),
            (section.offset as u64, 8),
            (section.size as u64, 8),
            (u64::from(section.link), 4),
            (u64::from(section.info), 4),
            (section.alignment as u64, 8),
            (section.entry_size as u64, 8),
        ]);
        put(image, layout.section_headers + index * SHDR_SIZE, &header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    const CLOCK: ClockInfo = ClockInfo {
        tsc_khz: 2_000_000,
        tsc_at_boot: 7,
        realtime_ns: 9,
        monotonic_ns: 8,
    };

    fn sample_code() -> VdsoCode {
        VdsoCode {
            bytes: vec![0xcc; 200],
            functions: vec![
                ("__vdso_clock_gettime", 40),
                ("__vdso_gettimeofday", 80),
                ("__vdso_time", 120),
            ],
            data: 0,
        }
    }

    fn u16_at(image: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(image[at..at + 2].try_into().unwrap())
    }

    fn u32_at(image: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(image[at..at + 4].try_into().unwrap())
    }

    fn name_at(image: &[u8], strtab: usize, offset: usize) -> &str {
        let start = strtab + offset;
        let len = image[start..].iter().position(|&byte| byte == 0).unwrap();
        std::str::from_utf8(&image[start..start + len]).unwrap()
    }

    #[test]
    fn the_image_is_an_elf_whose_symbols_point_at_the_code() {
        let code = sample_code();
        let image = image(&code, &CLOCK);
        let elf = Elf::parse(&image).unwrap();
        assert_eq!(elf.header.e_type, goblin::elf::header::ET_DYN);
        assert_eq!(elf.soname, Some(SONAME));
        let found: Vec<(&str, u8, u64)> = elf
            .dynsyms
            .iter()
            .skip(1)
            .map(|sym| (&elf.dynstrtab[sym.st_name], sym.st_bind(), sym.st_value))
            .collect();
        let text = clock_offset(&code);
        let at = |offset: usize| (text + offset) as u64;
        assert_eq!(
            found,
            [
                ("__vdso_clock_gettime", STB_GLOBAL, at(40)),
                ("clock_gettime", STB_WEAK, at(40)),
                ("__vdso_gettimeofday", STB_GLOBAL, at(80)),
                ("gettimeofday", STB_WEAK, at(80)),
                ("__vdso_time", STB_GLOBAL, at(120)),
                ("time", STB_WEAK, at(120)),
                ("LINUX_2.6", STB_GLOBAL, 0),
            ]
        );
        let text_section = &elf.section_headers[SECTION_TEXT as usize];
        assert_eq!(elf.shdr_strtab.get_at(text_section.sh_name), Some(".text"));
        assert_eq!(text_section.sh_offset, text as u64);
        assert_eq!(text_section.sh_size, 200);
        let load = &elf.program_headers[0];
        assert_eq!((load.p_offset, load.p_filesz), (0, image.len() as u64));

        let data = &image[text..text + vdso_data::SIZE];
        assert_eq!(data[..8], 7u64.to_le_bytes());
        assert_eq!(data[8..16], CLOCK.ns_per_tick_q32().to_le_bytes());
        assert_eq!(data[16..24], 8u64.to_le_bytes());
        assert_eq!(data[24..32], 9u64.to_le_bytes());
    }

    /// The version of each symbol, found as Go's runtime and musl find it:
    /// through DT_VERSYM and DT_VERDEF, walking the definitions' chain.
    fn versions_by_dynamic_tags(image: &[u8]) -> Vec<(String, String)> {
        let elf = Elf::parse(image).unwrap();
        let info = &elf.dynamic.as_ref().unwrap().info;
        assert_eq!(info.verdefnum, VERSION_DEFINITIONS as u64);
        let (versym, strtab) = (info.versym as usize, info.strtab);
        let mut definitions = Vec::new();
        let mut at = info.verdef as usize;
        loop {
            let (flags, index, hash) = (
                u16_at(image, at + 2),
                u16_at(image, at + 4),
                u32_at(image, at + 8),
            );
            let name = name_at(
                image,
                strtab,
                u32_at(image, at + u32_at(image, at + 12) as usize) as usize,
            );
            assert_eq!(hash, elf_hash(name), "{name}");
            definitions.push((flags, index, name.to_string()));
            match u32_at(image, at + 16) {
                0 => break,
                next => at += next as usize,
            }
        }
        assert_eq!(
            definitions,
            [
                (VER_FLG_BASE, 1, SONAME.to_string()),
                (0, 2, VERSION.to_string())
            ]
        );
        elf.dynsyms
            .iter()
            .enumerate()
            .skip(1)
            .map(|(index, sym)| {
                let version = u16_at(image, versym + 2 * index);
                let (_, _, name) = definitions
                    .iter()
                    .find(|(flags, ndx, _)| flags & VER_FLG_BASE == 0 && *ndx == version)
                    .unwrap_or_else(|| panic!("symbol {index} has version {version}"));
                (elf.dynstrtab[sym.st_name].to_string(), name.clone())
            })
            .collect()
    }

    #[test]
    fn every_symbol_is_at_version_linux_2_6_as_on_linux() {
        // Go's runtime compares this hash with its own constant.
        assert_eq!(elf_hash(VERSION), 0x03ae_75f6);
        let image = image(&sample_code(), &CLOCK);
        let versions = versions_by_dynamic_tags(&image);
        assert_eq!(versions.len(), 7);
        for (symbol, version) in &versions {
            assert_eq!(version, VERSION, "{symbol}");
        }

        // The section headers (readelf's view) say the same.
        let elf = Elf::parse(&image).unwrap();
        let versym = elf.versym.as_ref().unwrap();
        assert_eq!(versym.get_at(0).unwrap().vs_val, VER_NDX_LOCAL);
        for index in 1..elf.dynsyms.len() {
            let version = versym.get_at(index).unwrap();
            assert!(!version.is_hidden());
            assert_eq!(version.version(), VER_NDX_LINUX_2_6);
        }
        let names: Vec<(u16, &str)> = elf
            .verdef
            .as_ref()
            .unwrap()
            .iter()
            .map(|def| {
                let aux = def.iter().next().unwrap();
                (def.vd_ndx, &elf.dynstrtab[aux.vda_name])
            })
            .collect();
        assert_eq!(
            names,
            [(VER_NDX_BASE, SONAME), (VER_NDX_LINUX_2_6, VERSION)]
        );
    }
}
