//! ELF loading: the program (untrusted input) and the kernel (built in).
//!
//! A program is an x86_64 ELF executable: ET_EXEC at its link address, or
//! ET_DYN (PIE, static-pie, or a dynamic loader run as a program) at
//! PIE_LOAD_BASE. One that names an interpreter (PT_INTERP) is started
//! there instead: the interpreter, an ET_DYN, is loaded above the program
//! and maps the libraries itself. Every header field is checked before it
//! is used.

use atoll_abi::layout::{
    align_down, align_up, KERNEL_VIRT_BASE, MAX_RAM_SIZE, PAGE_SIZE, PIE_LOAD_BASE,
};
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{ProgramHeader, PT_INTERP, PT_LOAD, PT_PHDR};
use goblin::elf::Elf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("is a script ({0}); atoll runs ELF executables: run its interpreter with the script as an argument")]
    Script(String),
    #[error("is not an ELF executable (it starts with {0})")]
    NotElf(String),
    #[error("is a 32-bit ELF; isles run 64-bit x86_64 programs")]
    Elf32,
    #[error("is an ELF for {0}; isles run x86_64 programs")]
    WrongMachine(String),
    #[error("is not an executable (ELF type {0})")]
    NotExecutable(String),
    #[error(
        "is dynamically linked, and its interpreter {name} is not in the isle ({reason}): \
         run it with --rootfs DIR holding its libraries, or link it statically"
    )]
    MissingInterpreter { name: String, reason: String },
    #[error("is dynamically linked, and its interpreter {name} {reason}")]
    BadInterpreter { name: String, reason: String },
    #[error("is a corrupt ELF: {0}")]
    Corrupt(String),
}

/// One PT_LOAD segment, already relocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub address: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    /// p_flags: PF_R, PF_W, PF_X.
    pub flags: u32,
}

/// A parsed program, ready to be copied into guest memory.
#[derive(Debug)]
pub struct Program {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Lowest and end address of all segments (page-aligned).
    pub image_start: u64,
    pub image_end: u64,
    /// Address of the program headers in memory (AT_PHDR).
    pub phdr_address: u64,
    pub phdr_count: u64,
    pub phdr_entry_size: u64,
    pub position_independent: bool,
    /// What was added to the ELF's addresses to load it (0 unless ET_DYN).
    pub bias: u64,
    /// The interpreter it asks for (PT_INTERP), a path in the isle.
    pub interpreter: Option<String>,
}

fn describe_start(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing: the file is empty".into();
    }
    let shown: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("bytes {}", shown.join(" "))
}

fn machine_name(machine: u16) -> String {
    match machine {
        header::EM_386 => "i386".into(),
        header::EM_ARM => "32-bit ARM".into(),
        header::EM_AARCH64 => "aarch64".into(),
        header::EM_RISCV => "RISC-V".into(),
        header::EM_PPC64 => "ppc64".into(),
        header::EM_S390 => "s390".into(),
        other => format!("machine type {other}"),
    }
}

pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header, LoadError> {
    if bytes.starts_with(b"#!") {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        return Err(LoadError::Script(line));
    }
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(LoadError::NotElf(describe_start(bytes)));
    }
    if bytes.len() < 5 || bytes[header::EI_CLASS] != header::ELFCLASS64 {
        return Err(match bytes.get(header::EI_CLASS) {
            Some(&header::ELFCLASS32) => LoadError::Elf32,
            _ => LoadError::Corrupt("unknown ELF class".into()),
        });
    }
    if bytes.len() < header::header64::SIZEOF_EHDR {
        return Err(LoadError::Corrupt(format!(
            "truncated: {} bytes, shorter than an ELF header",
            bytes.len()
        )));
    }
    if bytes[header::EI_DATA] != header::ELFDATA2LSB {
        return Err(LoadError::Corrupt("not little-endian".into()));
    }
    let header = Elf::parse_header(bytes).map_err(|error| LoadError::Corrupt(error.to_string()))?;
    if header.e_machine != header::EM_X86_64 {
        return Err(LoadError::WrongMachine(machine_name(header.e_machine)));
    }
    Ok(header)
}

fn program_headers(bytes: &[u8], header: &Header) -> Result<Vec<ProgramHeader>, LoadError> {
    let entry_size = u64::from(header.e_phentsize);
    if header.e_phnum == 0 {
        return Err(LoadError::Corrupt("no program headers".into()));
    }
    if entry_size != 56 {
        return Err(LoadError::Corrupt(format!(
            "program header size {entry_size}, expected 56"
        )));
    }
    let table_end = header
        .e_phoff
        .checked_add(entry_size * u64::from(header.e_phnum))
        .filter(|&end| end <= bytes.len() as u64)
        .ok_or_else(|| {
            LoadError::Corrupt(format!(
                "truncated: program headers at offset {:#x} run past the end of the file ({} bytes)",
                header.e_phoff,
                bytes.len()
            ))
        })?;
    let _ = table_end;
    ProgramHeader::parse(
        bytes,
        header.e_phoff as usize,
        usize::from(header.e_phnum),
        Ctx::new(Container::Big, Endian::Little),
    )
    .map_err(|error| LoadError::Corrupt(error.to_string()))
}

/// Parses and checks a program image.
pub fn parse_program(bytes: &[u8]) -> Result<Program, LoadError> {
    parse_at(bytes, PIE_LOAD_BASE)
}

/// Parses and checks a program's interpreter, loaded at `base` (a page
/// boundary): an ET_DYN that needs no interpreter itself.
pub fn parse_interpreter(bytes: &[u8], base: u64) -> Result<Program, LoadError> {
    let interpreter = parse_at(bytes, base)?;
    if !interpreter.position_independent {
        return Err(LoadError::NotExecutable(
            "EXEC, where an interpreter must be DYN (position-independent)".into(),
        ));
    }
    if let Some(name) = interpreter.interpreter {
        return Err(LoadError::NotExecutable(format!(
            "an interpreter that asks for an interpreter itself ({name})"
        )));
    }
    Ok(interpreter)
}

/// [`parse_program`] with ET_DYN images placed at `base`.
fn parse_at(bytes: &[u8], base: u64) -> Result<Program, LoadError> {
    let header = parse_header(bytes)?;
    let position_independent = match header.e_type {
        header::ET_EXEC => false,
        header::ET_DYN => true,
        other => {
            return Err(LoadError::NotExecutable(
                header::et_to_str(other).to_string(),
            ))
        }
    };
    let headers = program_headers(bytes, &header)?;
    let interpreter = match headers.iter().find(|ph| ph.p_type == PT_INTERP) {
        Some(interp) => Some(interpreter_name(bytes, interp)?),
        None => None,
    };
    if header.e_entry == 0 {
        return Err(LoadError::NotExecutable(
            "DYN without an entry point (a shared library)".into(),
        ));
    }

    let loads: Vec<&ProgramHeader> = headers.iter().filter(|ph| ph.p_type == PT_LOAD).collect();
    if loads.is_empty() {
        return Err(LoadError::Corrupt("no loadable segments".into()));
    }
    let min_address = loads.iter().map(|ph| ph.p_vaddr).min().unwrap_or(0);
    let bias = if position_independent {
        base.checked_sub(align_down(min_address, PAGE_SIZE))
            .ok_or_else(|| LoadError::Corrupt(format!("PIE segments start at {min_address:#x}")))?
    } else {
        0
    };

    let mut segments = Vec::with_capacity(loads.len());
    for (index, ph) in loads.iter().enumerate() {
        let file_end = ph.p_offset.checked_add(ph.p_filesz);
        if file_end.is_none_or(|end| end > bytes.len() as u64) {
            return Err(LoadError::Corrupt(format!(
                "truncated: segment {index} needs file bytes {:#x}..{:#x}, the file has {:#x}",
                ph.p_offset,
                ph.p_offset.saturating_add(ph.p_filesz),
                bytes.len()
            )));
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(LoadError::Corrupt(format!(
                "segment {index} is larger in the file than in memory"
            )));
        }
        let address = ph.p_vaddr.checked_add(bias);
        // No isle has memory up there; bounding it keeps later arithmetic exact.
        let end = address
            .and_then(|a| a.checked_add(ph.p_memsz))
            .filter(|&end| end <= MAX_RAM_SIZE);
        match (address, end) {
            (Some(address), Some(_)) => segments.push(Segment {
                address,
                mem_size: ph.p_memsz,
                file_offset: ph.p_offset,
                file_size: ph.p_filesz,
                flags: ph.p_flags,
            }),
            _ => {
                return Err(LoadError::Corrupt(format!(
                    "segment {index} at {:#x} ({:#x} bytes) lies beyond any isle's memory",
                    ph.p_vaddr, ph.p_memsz
                )))
            }
        }
    }
    segments.sort_by_key(|segment| segment.address);
    for pair in segments.windows(2) {
        if pair[0].address + pair[0].mem_size > pair[1].address {
            return Err(LoadError::Corrupt(format!(
                "segments at {:#x} and {:#x} overlap",
                pair[0].address, pair[1].address
            )));
        }
    }
    let image_start = align_down(segments[0].address, PAGE_SIZE);
    let image_end = segments
        .iter()
        .map(|s| align_up(s.address + s.mem_size, PAGE_SIZE))
        .max()
        .unwrap_or(0);

    // AT_PHDR: PT_PHDR if present, else where the loaded file maps e_phoff.
    let phdr_address = headers
        .iter()
        .find(|ph| ph.p_type == PT_PHDR)
        .and_then(|ph| ph.p_vaddr.checked_add(bias))
        .or_else(|| {
            segments
                .iter()
                .find(|s| {
                    s.file_offset <= header.e_phoff && header.e_phoff < s.file_offset + s.file_size
                })
                .map(|s| s.address + (header.e_phoff - s.file_offset))
        })
        .unwrap_or(0);
    let entry = header.e_entry.checked_add(bias).unwrap_or(0);
    if !segments
        .iter()
        .any(|s| s.address <= entry && entry < s.address + s.mem_size)
    {
        return Err(LoadError::Corrupt(format!(
            "entry point {:#x} is outside every segment",
            header.e_entry
        )));
    }
    Ok(Program {
        entry,
        segments,
        image_start,
        image_end,
        phdr_address,
        phdr_count: u64::from(header.e_phnum),
        phdr_entry_size: u64::from(header.e_phentsize),
        position_independent,
        bias,
        interpreter,
    })
}

/// The path PT_INTERP names: NUL-terminated, absolute, in the file.
fn interpreter_name(bytes: &[u8], interp: &ProgramHeader) -> Result<String, LoadError> {
    let name = usize::try_from(interp.p_offset)
        .ok()
        .zip(usize::try_from(interp.p_filesz).ok())
        .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
        .ok_or_else(|| LoadError::Corrupt("PT_INTERP lies outside the file".into()))?;
    let name = name.strip_suffix(b"\0").unwrap_or(name);
    match std::str::from_utf8(name) {
        Ok(name) if name.starts_with('/') && !name.contains('\0') && name.len() < 4096 => {
            Ok(name.to_string())
        }
        _ => Err(LoadError::Corrupt(format!(
            "PT_INTERP is not an absolute path: {:?}",
            String::from_utf8_lossy(&name[..name.len().min(80)])
        ))),
    }
}

/// The built-in kernel: its segments (at kernel virtual addresses) and the
/// symbols the monitor needs.
#[derive(Debug)]
pub struct Kernel {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Bytes from KERNEL_VIRT_BASE to the end of the last segment.
    pub span: u64,
    pub syscall_entry: u64,
    pub exception_vectors: u64,
    /// Where a preempted vCPU is sent (see `preempt`).
    pub preempt_entry: u64,
    /// Where rewritten syscall sites enter (see `rewrite`).
    pub rewritten_entry: u64,
    /// The vDSO's code (see `vdso`).
    pub vdso: crate::image::vdso::VdsoCode,
    /// The 32-bit entry for a boot CPU started outside long mode (QEMU's
    /// PVH boot), and where it reads its `LongModeStart`.
    pub pvh_entry: u64,
    pub long_mode_start: u64,
    /// Where the other CPUs continue in 32-bit mode, and their real-mode
    /// trampoline (copied below 1 MiB) with its two address slots.
    pub pvh_long_mode: u64,
    pub ap_trampoline: (u64, u64),
    pub ap_starts: u64,
    pub ap_long_mode: u64,
}

/// The bytes between the kernel's `atoll_vdso_start` and `atoll_vdso_end`,
/// with the offsets of the vDSO's functions and data.
fn vdso_code(
    elf: &Elf,
    bytes: &[u8],
    symbol: &dyn Fn(&str) -> Result<u64, LoadError>,
) -> Result<crate::image::vdso::VdsoCode, LoadError> {
    let (start, end) = (symbol("atoll_vdso_start")?, symbol("atoll_vdso_end")?);
    let broken = || LoadError::Corrupt("kernel vDSO code outside its segments".into());
    let segment = elf
        .program_headers
        .iter()
        .find(|ph| ph.p_type == PT_LOAD && ph.p_vaddr <= start && end <= ph.p_vaddr + ph.p_filesz)
        .ok_or_else(broken)?;
    let offset = (segment.p_offset + (start - segment.p_vaddr)) as usize;
    let code = bytes
        .get(offset..offset + (end - start) as usize)
        .ok_or_else(broken)?
        .to_vec();
    let inside = |address: u64| {
        (start..end)
            .contains(&address)
            .then(|| (address - start) as usize)
            .ok_or_else(broken)
    };
    let mut functions = Vec::new();
    for (name, kernel_name) in crate::image::vdso::FUNCTIONS {
        functions.push((name, inside(symbol(kernel_name)?)?));
    }
    Ok(crate::image::vdso::VdsoCode {
        bytes: code,
        functions,
        data: inside(symbol("atoll_vdso_data")?)?,
    })
}

/// Parses the embedded kernel image. Failure means a broken build.
pub fn parse_kernel(bytes: &[u8]) -> Result<Kernel, LoadError> {
    let elf = Elf::parse(bytes).map_err(|error| LoadError::Corrupt(error.to_string()))?;
    let symbol = |name: &str| {
        elf.syms
            .iter()
            .find(|sym| elf.strtab.get_at(sym.st_name) == Some(name))
            .map(|sym| sym.st_value)
            .ok_or_else(|| LoadError::Corrupt(format!("kernel lacks symbol {name}")))
    };
    let mut segments = Vec::new();
    for ph in elf.program_headers.iter().filter(|ph| ph.p_type == PT_LOAD) {
        if ph.p_vaddr < KERNEL_VIRT_BASE || ph.p_offset + ph.p_filesz > bytes.len() as u64 {
            return Err(LoadError::Corrupt(format!(
                "kernel segment at {:#x}",
                ph.p_vaddr
            )));
        }
        segments.push(Segment {
            address: ph.p_vaddr,
            mem_size: ph.p_memsz,
            file_offset: ph.p_offset,
            file_size: ph.p_filesz,
            flags: ph.p_flags,
        });
    }
    let span = segments
        .iter()
        .map(|s| s.address + s.mem_size - KERNEL_VIRT_BASE)
        .max()
        .unwrap_or(0);
    Ok(Kernel {
        entry: elf.entry,
        segments,
        span: align_up(span, PAGE_SIZE),
        syscall_entry: symbol("atoll_syscall_entry")?,
        exception_vectors: symbol("atoll_exception_vectors")?,
        preempt_entry: symbol("atoll_preempt_entry")?,
        rewritten_entry: symbol("atoll_rewritten_entry")?,
        vdso: vdso_code(&elf, bytes, &symbol)?,
        pvh_entry: symbol("atoll_pvh_entry")?,
        long_mode_start: symbol("atoll_long_mode_start")?,
        pvh_long_mode: symbol("atoll_pvh_long_mode")?,
        ap_trampoline: (
            symbol("atoll_ap_trampoline")?,
            symbol("atoll_ap_trampoline_end")?,
        ),
        ap_starts: symbol("atoll_ap_starts")?,
        ap_long_mode: symbol("atoll_ap_long_mode")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid static ELF: header, one PT_LOAD, code at the entry.
    fn tiny_elf(e_type: u16, machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x1000];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[6] = 1; // version
        bytes[16..18].copy_from_slice(&e_type.to_le_bytes());
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
        bytes[24..32].copy_from_slice(&0x40_0078u64.to_le_bytes()); // entry
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        bytes[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes()); // phnum
        let ph = 64;
        bytes[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        bytes[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes());
        bytes[ph + 16..ph + 24].copy_from_slice(&0x40_0000u64.to_le_bytes()); // vaddr
        bytes[ph + 32..ph + 40].copy_from_slice(&0x1000u64.to_le_bytes()); // filesz
        bytes[ph + 40..ph + 48].copy_from_slice(&0x2000u64.to_le_bytes()); // memsz
        bytes
    }

    #[test]
    fn a_static_executable_parses() {
        let program = parse_program(&tiny_elf(header::ET_EXEC, header::EM_X86_64)).unwrap();
        assert_eq!(program.entry, 0x40_0078);
        assert_eq!(program.image_start, 0x40_0000);
        assert_eq!(program.image_end, 0x40_2000);
        assert_eq!(program.phdr_address, 0x40_0040);
        assert!(!program.position_independent);
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(matches!(parse_program(b""), Err(LoadError::NotElf(_))));
        assert!(matches!(parse_program(b"hello"), Err(LoadError::NotElf(_))));
        assert!(matches!(
            parse_program(b"#!/bin/sh\necho"),
            Err(LoadError::Script(_))
        ));
        let mut elf32 = tiny_elf(header::ET_EXEC, header::EM_X86_64);
        elf32[4] = 1;
        assert_eq!(parse_program(&elf32).unwrap_err(), LoadError::Elf32);
        let arm = tiny_elf(header::ET_EXEC, header::EM_AARCH64);
        assert_eq!(
            parse_program(&arm).unwrap_err(),
            LoadError::WrongMachine("aarch64".into())
        );
        let object = tiny_elf(header::ET_REL, header::EM_X86_64);
        assert!(matches!(
            parse_program(&object),
            Err(LoadError::NotExecutable(_))
        ));
    }

    #[test]
    fn truncation_is_caught_at_every_length() {
        let elf = tiny_elf(header::ET_EXEC, header::EM_X86_64);
        for len in 0..elf.len() {
            assert!(parse_program(&elf[..len]).is_err(), "length {len} accepted");
        }
    }

    #[test]
    fn segments_at_the_top_of_the_address_space_are_refused() {
        let mut elf = tiny_elf(header::ET_EXEC, header::EM_X86_64);
        elf[64 + 16..64 + 24].copy_from_slice(&(u64::MAX - 0x1000).to_le_bytes());
        assert!(matches!(parse_program(&elf), Err(LoadError::Corrupt(_))));
        elf[64 + 16..64 + 24].copy_from_slice(&(1u64 << 47).to_le_bytes());
        assert!(matches!(parse_program(&elf), Err(LoadError::Corrupt(_))));
    }

    #[test]
    fn position_independent_programs_are_moved_to_the_pie_base() {
        let mut elf = tiny_elf(header::ET_DYN, header::EM_X86_64);
        elf[24..32].copy_from_slice(&0x78u64.to_le_bytes());
        elf[64 + 16..64 + 24].copy_from_slice(&0u64.to_le_bytes());
        let program = parse_program(&elf).unwrap();
        assert_eq!(program.entry, PIE_LOAD_BASE + 0x78);
        assert!(program.position_independent);
    }
}
