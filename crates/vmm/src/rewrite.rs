//! Syscall-site rewriting, at load time, before any vCPU runs.
//!
//! A `syscall` traps (about 6,100 cycles under kvm-pvm); a jump into the
//! kernel costs a few. So the monitor finds the program's syscall
//! instructions and sends each through a stub of its own instead:
//!
//! ```text
//! site:  mov $39,%eax          →   site:  jmp stub        (same 5 bytes)
//!        syscall                          syscall         (kept)
//!        ...                              ...
//! stub:  mov $39,%eax                (the replaced instructions, copied)
//!        movabs $site_end,%rcx       (as `syscall` leaves rcx)
//!        jmp *entry(%rip)            (the kernel's rewritten-call entry)
//! ```
//!
//! The kernel entry saves rsp, switches stacks, then reads the flags into
//! r11, so registers, flags and the red zone end up exactly as after a real
//! `syscall`; it returns to rcx, just past the kept `syscall`.
//!
//! Correctness rests on instruction boundaries, which x86 can't recover
//! backwards, so they are proved: iced-x86 decodes every function the ELF
//! names (symbol table, .eh_frame) from its start, and only a syscall met on
//! that walk is a site. What gets replaced is the whole instructions just
//! before it, at least 5 bytes, none of which jumps or reads rip (so the
//! copies behave the same in the stub). The syscall itself stays, so a jump
//! straight to it still works (and traps). Replacing one instruction is
//! always safe; replacing several needs proof that nothing jumps between
//! them: no direct branch anywhere targets their inner boundaries, and their
//! function has no indirect jump. Sites that fit no pattern keep trapping.
//!
//! All of this happens on the image in guest memory before the first
//! instruction runs, so no vCPU can ever see a half-written patch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gimli::{BaseAddresses, CieOrFde, EhFrame, LittleEndian, UnwindSection};
use goblin::elf::{program_header::PT_LOAD, section_header::SHF_EXECINSTR, sym::STT_FUNC, Elf};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};

/// Bytes of `jmp rel32`.
const JUMP_LEN: usize = 5;
/// Most instructions copied into one stub (and bytes replaced at a site).
const MAX_REPLACED: usize = 15;
/// Bytes of the stub's tail: `movabs $imm64,%rcx` (10) + `jmp *rel32(%rip)` (6).
const STUB_TAIL: usize = 16;

/// One site to rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Address of the `syscall` instruction (it stays).
    pub syscall: u64,
    /// First byte replaced; the replaced instructions end at `syscall`.
    pub start: u64,
}

/// What the analysis found, for `--syscall-summary` and the tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Syscall instructions proved by decoding.
    pub proved: usize,
    /// ... of which get rewritten.
    pub rewritten: usize,
    /// Proved sites no pattern fits, by address.
    pub unfit: Vec<u64>,
    /// Functions whose decoding failed (data in text, or not code at all).
    pub undecodable_functions: usize,
}

/// The analysis of one program: which sites to rewrite.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub sites: Vec<Site>,
    pub census: Census,
}

/// A stretch of code known to start at an instruction boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Function {
    start: u64,
    end: u64,
}

/// Executable PT_LOAD bytes by address, for decoding.
struct Text<'a> {
    /// (address, bytes) of each executable segment's file part.
    segments: Vec<(u64, &'a [u8])>,
}

impl<'a> Text<'a> {
    fn new(elf: &Elf, image: &'a [u8]) -> Self {
        let segments = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD && ph.is_executable())
            .filter_map(|ph| {
                let start = usize::try_from(ph.p_offset).ok()?;
                let end = start.checked_add(usize::try_from(ph.p_filesz).ok()?)?;
                Some((ph.p_vaddr, image.get(start..end)?))
            })
            .collect();
        Self { segments }
    }

    /// The bytes of `[start, end)`, if they lie in one executable segment.
    fn bytes(&self, start: u64, end: u64) -> Option<&'a [u8]> {
        self.segments.iter().find_map(|&(address, bytes)| {
            let from = usize::try_from(start.checked_sub(address)?).ok()?;
            let to = usize::try_from(end.checked_sub(address)?).ok()?;
            bytes.get(from..to)
        })
    }
}

/// Function extents from the symbol table and .eh_frame (ELF addresses).
fn functions(elf: &Elf, image: &[u8]) -> BTreeSet<Function> {
    let mut found = BTreeSet::new();
    for symbol in elf.syms.iter() {
        if symbol.st_type() == STT_FUNC && symbol.st_size > 0 && symbol.st_value != 0 {
            found.insert(Function {
                start: symbol.st_value,
                end: symbol.st_value.saturating_add(symbol.st_size),
            });
        }
    }
    let eh_frame = elf.section_headers.iter().find(|header| {
        elf.shdr_strtab.get_at(header.sh_name) == Some(".eh_frame")
            && header.sh_flags & u64::from(SHF_EXECINSTR) == 0
    });
    if let Some(header) = eh_frame {
        let data = usize::try_from(header.sh_offset)
            .ok()
            .zip(usize::try_from(header.sh_size).ok())
            .and_then(|(offset, size)| image.get(offset..offset.checked_add(size)?));
        if let Some(data) = data {
            let section = EhFrame::new(data, LittleEndian);
            let bases = BaseAddresses::default().set_eh_frame(header.sh_addr);
            let mut entries = section.entries(&bases);
            while let Ok(Some(entry)) = entries.next() {
                let CieOrFde::Fde(partial) = entry else {
                    continue;
                };
                if let Ok(fde) = partial.parse(EhFrame::cie_from_offset) {
                    let start = fde.initial_address();
                    if start != 0 && fde.len() > 0 {
                        found.insert(Function {
                            start,
                            end: start.saturating_add(fde.len()),
                        });
                    }
                }
            }
        }
    }
    found
}

/// One function decoded from its start, each instruction handed to
/// `visit`; false if something in it isn't a valid instruction.
fn decode(text: &Text, function: Function, mut visit: impl FnMut(&Instruction)) -> bool {
    let Some(bytes) = text.bytes(function.start, function.end) else {
        return false;
    };
    let mut decoder = Decoder::with_ip(64, bytes, function.start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return false;
        }
        visit(&instruction);
    }
    true
}

/// What the first pass learns about a function.
struct Summary {
    function: Function,
    has_syscall: bool,
    has_indirect_jump: bool,
}

/// Whether a copy of `instruction` elsewhere does exactly what it does here.
fn relocatable(instruction: &Instruction) -> bool {
    instruction.flow_control() == FlowControl::Next
        && !instruction.is_ip_rel_memory_operand()
        && instruction.mnemonic() != Mnemonic::Syscall
}

/// The instructions to replace before the syscall at `instructions[index]`,
/// as (start, count), if a pattern fits.
fn fit(
    instructions: &[Instruction],
    index: usize,
    targets: &BTreeSet<u64>,
    has_indirect_jump: bool,
) -> Option<(u64, usize)> {
    let mut len = 0;
    let mut count = 0;
    while len < JUMP_LEN {
        let previous = instructions.get(index.checked_sub(count + 1)?)?;
        if !relocatable(previous) {
            return None;
        }
        // An inner boundary must be no jump's target.
        if count > 0 && (has_indirect_jump || targets.contains(&instructions[index - count].ip())) {
            return None;
        }
        len += previous.len();
        count += 1;
    }
    if len > MAX_REPLACED {
        return None;
    }
    Some((instructions[index - count].ip(), count))
}

/// Finds the sites of a program image (an ELF file), at the ELF's addresses.
pub fn analyze(image: &[u8]) -> Plan {
    let Ok(elf) = Elf::parse(image) else {
        return Plan::default();
    };
    let text = Text::new(&elf, image);
    let mut census = Census::default();
    // First pass: every direct branch target, and which functions matter.
    let mut targets = Vec::new();
    let mut summaries = Vec::new();
    for function in functions(&elf, image) {
        let mut summary = Summary {
            function,
            has_syscall: false,
            has_indirect_jump: false,
        };
        let decoded = decode(&text, function, |instruction| {
            match instruction.flow_control() {
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch => {
                    targets.push(instruction.near_branch_target());
                }
                FlowControl::IndirectBranch => summary.has_indirect_jump = true,
                _ => summary.has_syscall |= instruction.mnemonic() == Mnemonic::Syscall,
            }
        });
        if !decoded {
            census.undecodable_functions += 1;
        } else if summary.has_syscall {
            summaries.push(summary);
        }
    }
    let targets: BTreeSet<u64> = targets.into_iter().collect();
    // Second pass, over functions with a syscall: fit each site. A site two
    // decodings (overlapping symbols, say) disagree on is dropped.
    let mut proposals: HashMap<u64, Option<u64>> = HashMap::new();
    for summary in &summaries {
        let mut instructions = Vec::new();
        decode(&text, summary.function, |instruction| {
            instructions.push(*instruction)
        });
        for (index, instruction) in instructions.iter().enumerate() {
            if instruction.mnemonic() != Mnemonic::Syscall {
                continue;
            }
            let start = fit(&instructions, index, &targets, summary.has_indirect_jump)
                .map(|(start, _)| start);
            proposals
                .entry(instruction.ip())
                .and_modify(|agreed| {
                    if *agreed != start {
                        *agreed = None;
                    }
                })
                .or_insert(start);
        }
    }
    let proposals: BTreeMap<u64, Option<u64>> = proposals.into_iter().collect();
    census.proved = proposals.len();
    let mut sites: Vec<Site> = Vec::new();
    for (&syscall, &start) in &proposals {
        match start {
            // Two replaced stretches must not overlap.
            Some(start) if sites.last().is_none_or(|last| last.syscall + 2 <= start) => {
                sites.push(Site { syscall, start });
            }
            _ => census.unfit.push(syscall),
        }
    }
    census.rewritten = sites.len();
    Plan { sites, census }
}

impl Plan {
    /// The plan for the image loaded `bias` above its ELF addresses.
    pub fn biased(mut self, bias: u64) -> Self {
        for site in &mut self.sites {
            site.syscall += bias;
            site.start += bias;
        }
        for address in &mut self.census.unfit {
            *address += bias;
        }
        self
    }

    /// The plan as text, for the cache.
    fn to_text(&self) -> String {
        let census = &self.census;
        let mut text = format!(
            "{PLAN_HEADER}\ncensus {} {} {}\n",
            census.proved, census.rewritten, census.undecodable_functions
        );
        for address in &census.unfit {
            text += &format!("unfit {address:x}\n");
        }
        for site in &self.sites {
            text += &format!("site {:x} {:x}\n", site.syscall, site.start);
        }
        text
    }

    /// Reads [`Self::to_text`] back; None if anything is off.
    fn from_text(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != PLAN_HEADER {
            return None;
        }
        let mut plan = Plan::default();
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let number = |index: usize, radix: u32| {
                fields
                    .get(index)
                    .and_then(|field| u64::from_str_radix(field, radix).ok())
            };
            match fields[0] {
                "census" => {
                    plan.census.proved = number(1, 10)? as usize;
                    plan.census.rewritten = number(2, 10)? as usize;
                    plan.census.undecodable_functions = number(3, 10)? as usize;
                }
                "unfit" => plan.census.unfit.push(number(1, 16)?),
                "site" => {
                    let (syscall, start) = (number(1, 16)?, number(2, 16)?);
                    if start >= syscall || syscall - start > MAX_REPLACED as u64 {
                        return None;
                    }
                    plan.sites.push(Site { syscall, start });
                }
                _ => return None,
            }
        }
        (plan.sites.len() == plan.census.rewritten).then_some(plan)
    }
}

/// First line of a cached plan; a new analysis gets a new version.
const PLAN_HEADER: &str = "atoll rewrite plan 1";

/// Where plans are cached: $XDG_CACHE_HOME/atoll or ~/.cache/atoll.
fn cache_directory() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cache"))
        })?;
    Some(base.join("atoll").join("rewrite"))
}

/// [`analyze`], remembered per image content: decoding a big program takes
/// milliseconds, a cached plan far less. Any cache trouble just means
/// analyzing again.
pub fn analyze_cached(image: &[u8]) -> Plan {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    PLAN_HEADER.hash(&mut hasher);
    image.hash(&mut hasher);
    let key = format!("{:016x}-{}", hasher.finish(), image.len());
    let path = cache_directory().map(|directory| directory.join(key));
    if let Some(plan) = path
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| Plan::from_text(&text))
    {
        return plan;
    }
    let plan = analyze(image);
    if let Some(path) = path {
        let write = || -> std::io::Result<()> {
            let directory = path.parent().unwrap_or(&path);
            std::fs::create_dir_all(directory)?;
            let temporary = directory.join(format!(".{}.tmp", std::process::id()));
            std::fs::write(&temporary, plan.to_text())?;
            std::fs::rename(&temporary, &path)
        };
        if let Err(error) = write() {
            tracing::debug!(%error, "could not cache the rewrite plan");
        }
    }
    plan
}

/// Bytes one stub takes for `site`.
fn stub_len(site: &Site) -> usize {
    (site.syscall - site.start) as usize + STUB_TAIL
}

/// Room the stubs of `plan` need: the stubs plus the entry pointer.
pub fn stub_area_size(plan: &Plan) -> u64 {
    if plan.sites.is_empty() {
        return 0;
    }
    (8 + plan.sites.iter().map(stub_len).sum::<usize>()) as u64
}

/// Writes the stubs for `plan` at `area` (an address within ±2 GiB of every
/// site) and returns the patched bytes for each site: (address, bytes).
/// `code` reads the loaded image's bytes at an address; `entry` is the
/// kernel's rewritten-call entry.
pub fn build(
    plan: &Plan,
    area: u64,
    entry: u64,
    code: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let mut stubs = entry.to_le_bytes().to_vec();
    let mut patches = Vec::new();
    for site in &plan.sites {
        let replaced_len = (site.syscall - site.start) as usize;
        let Some(replaced) = code(site.start, replaced_len) else {
            continue;
        };
        let stub = area + stubs.len() as u64;
        let Some(jump) = relative(site.start + JUMP_LEN as u64, stub) else {
            continue;
        };
        stubs.extend_from_slice(&replaced);
        // movabs $after_syscall, %rcx
        stubs.extend_from_slice(&[0x48, 0xb9]);
        stubs.extend_from_slice(&(site.syscall + 2).to_le_bytes());
        // jmp *entry(%rip): the pointer sits at the area's start.
        let after = area + stubs.len() as u64 + 6;
        let Some(to_pointer) = relative(after, area) else {
            continue;
        };
        stubs.extend_from_slice(&[0xff, 0x25]);
        stubs.extend_from_slice(&to_pointer.to_le_bytes());
        let mut patch = vec![0xe9];
        patch.extend_from_slice(&jump.to_le_bytes());
        // Bytes left between the jump and the syscall are never run: int3.
        patch.resize(replaced_len, 0xcc);
        patches.push((site.start, patch));
    }
    (stubs, patches)
}

/// `to - from` as a rel32, if it fits.
fn relative(from: u64, to: u64) -> Option<i32> {
    i32::try_from(to.wrapping_sub(from) as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instructions(bytes: &[u8], ip: u64) -> Vec<Instruction> {
        let mut instructions = Vec::new();
        let text = Text {
            segments: vec![(ip, bytes)],
        };
        let function = Function {
            start: ip,
            end: ip + bytes.len() as u64,
        };
        assert!(decode(&text, function, |i| instructions.push(*i)));
        instructions
    }

    #[test]
    fn mov_eax_before_syscall_is_replaced_alone() {
        // mov $39,%eax; syscall; ret
        let code = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3];
        let decoded = instructions(&code, 0x1000);
        assert_eq!(fit(&decoded, 1, &BTreeSet::new(), true), Some((0x1000, 1)));
    }

    #[test]
    fn short_instructions_are_joined_only_without_jumps_between() {
        // mov %rdi,%rax; mov %rsi,%rdi; mov %rdx,%rsi; syscall
        let code = [
            0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x0f, 0x05,
        ];
        let decoded = instructions(&code, 0x1000);
        assert_eq!(fit(&decoded, 3, &BTreeSet::new(), false), Some((0x1003, 2)));
        let target = BTreeSet::from([0x1006]);
        assert_eq!(fit(&decoded, 3, &target, false), None);
        assert_eq!(fit(&decoded, 3, &BTreeSet::new(), true), None);
    }

    #[test]
    fn jumps_and_rip_relative_instructions_are_not_copied() {
        // lea 0(%rip),%rax (rip-relative); syscall
        let code = [0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x0f, 0x05];
        let decoded = instructions(&code, 0x1000);
        assert_eq!(fit(&decoded, 1, &BTreeSet::new(), false), None);
        // jmp +0; mov %eax,%eax ... syscall at function start: nothing before.
        let code = [0x0f, 0x05, 0xc3];
        let decoded = instructions(&code, 0x1000);
        assert_eq!(fit(&decoded, 0, &BTreeSet::new(), false), None);
    }

    #[test]
    fn plans_survive_the_cache_and_damaged_ones_are_refused() {
        let plan = Plan {
            sites: vec![Site {
                syscall: 0x40_1005,
                start: 0x40_1000,
            }],
            census: Census {
                proved: 2,
                rewritten: 1,
                unfit: vec![0x40_2000],
                undecodable_functions: 3,
            },
        };
        let text = plan.to_text();
        let back = Plan::from_text(&text).unwrap();
        assert_eq!((back.sites, back.census), (plan.sites.clone(), plan.census));
        for damaged in [
            text.replace("plan 1", "plan 0"),
            text.replace("site 401005 401000", "site 401005 400000"),
            text.replace("census 2 1 3", "census 2 2 3"),
            text.replace("unfit", "unfitting"),
        ] {
            assert!(Plan::from_text(&damaged).is_none(), "{damaged}");
        }
        let biased = Plan::from_text(&text).unwrap().biased(0x1000);
        assert_eq!(biased.sites[0].start, 0x40_2000);
        assert_eq!(biased.census.unfit, [0x40_3000]);
    }

    #[test]
    fn real_programs_have_their_sites_found_and_fitted() {
        // The test binary itself: a Rust std program, glibc inside.
        let image = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let plan = analyze(&image);
        assert!(plan.census.proved > 10, "{:?}", plan.census);
        assert!(
            plan.census.rewritten * 10 >= plan.census.proved * 8,
            "{:?}",
            plan.census
        );
        for site in &plan.sites {
            assert!(site.start < site.syscall && site.syscall - site.start <= MAX_REPLACED as u64);
        }
    }

    #[test]
    fn stubs_copy_the_replaced_bytes_and_return_past_the_syscall() {
        let plan = Plan {
            sites: vec![Site {
                syscall: 0x40_1005,
                start: 0x40_1000,
            }],
            census: Census::default(),
        };
        let area = 0x50_0000;
        let entry = 0xffff_ffff_8000_1234;
        let code = |address: u64, len: usize| {
            assert_eq!((address, len), (0x40_1000, 5));
            Some(vec![0xb8, 39, 0, 0, 0])
        };
        let (stubs, patches) = build(&plan, area, entry, code);
        assert_eq!(stubs.len() as u64, stub_area_size(&plan));
        assert_eq!(&stubs[..8], &entry.to_le_bytes());
        assert_eq!(&stubs[8..13], &[0xb8, 39, 0, 0, 0]);
        assert_eq!(&stubs[13..15], &[0x48, 0xb9]);
        assert_eq!(&stubs[15..23], &0x40_1007u64.to_le_bytes());
        assert_eq!(&stubs[23..25], &[0xff, 0x25]);
        let back = i32::from_le_bytes(stubs[25..29].try_into().unwrap());
        assert_eq!(area as i64 + 29 + i64::from(back), area as i64);
        let (at, patch) = &patches[0];
        assert_eq!(*at, 0x40_1000);
        assert_eq!(patch[0], 0xe9);
        let to = i32::from_le_bytes(patch[1..5].try_into().unwrap());
        assert_eq!(0x40_1005 + i64::from(to), area as i64 + 8);
    }
}
