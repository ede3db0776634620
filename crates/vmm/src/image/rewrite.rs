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

/// One site to rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Address of the `syscall` instruction.
    pub syscall: u64,
    /// The bytes replaced, `[start, end)`: whole instructions either just
    /// before the syscall (`end == syscall`; it stays) or from the syscall
    /// on (`start == syscall`; it goes into the stub with what follows).
    pub start: u64,
    pub end: u64,
}

impl Site {
    fn replaces_syscall(&self) -> bool {
        self.start == self.syscall
    }
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
    /// Sizeless (an assembly symbol without `.size`): `end` is only where
    /// the next function starts, and decoding stops where the code does.
    open_ended: bool,
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
    let mut sizeless = Vec::new();
    for symbol in elf.syms.iter() {
        if symbol.st_type() != STT_FUNC || symbol.st_value == 0 {
            continue;
        }
        if symbol.st_size == 0 {
            sizeless.push(symbol.st_value);
        } else {
            found.insert(Function {
                start: symbol.st_value,
                end: symbol.st_value.saturating_add(symbol.st_size),
                open_ended: false,
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
                    // A signal trampoline's entry (glibc's and musl's
                    // __restore_rt, CIE augmentation "S") starts one byte
                    // before its code, for unwinders that look up pc - 1.
                    let skip = u64::from(fde.is_signal_trampoline());
                    let start = fde.initial_address() + skip;
                    if fde.initial_address() != 0 && fde.len() > skip {
                        found.insert(Function {
                            start,
                            end: fde.initial_address().saturating_add(fde.len()),
                            open_ended: false,
                        });
                    }
                }
            }
        }
    }
    // A sizeless function runs at most to the next known start.
    let starts: BTreeSet<u64> = found
        .iter()
        .map(|function| function.start)
        .chain(sizeless.iter().copied())
        .collect();
    for start in sizeless {
        let end = starts
            .range(start + 1..)
            .next()
            .copied()
            .unwrap_or(start + 4096)
            .min(start + 4096);
        found.insert(Function {
            start,
            end,
            open_ended: true,
        });
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
    // For a sizeless function: the furthest place a branch seen so far
    // goes to. Past a ret or jmp with nothing jumping further, what
    // follows may be data, so decoding stops there.
    let mut reach = function.start;
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return false;
        }
        visit(&instruction);
        if !function.open_ended {
            continue;
        }
        match instruction.flow_control() {
            FlowControl::ConditionalBranch => {
                reach = reach.max(instruction.near_branch_target());
            }
            FlowControl::UnconditionalBranch
            | FlowControl::IndirectBranch
            | FlowControl::Return
            | FlowControl::Exception
                if reach < instruction.next_ip() =>
            {
                break;
            }
            FlowControl::UnconditionalBranch => {
                reach = reach.max(instruction.near_branch_target());
            }
            _ => {}
        }
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

/// Whether an instruction boundary inside a replaced stretch is safe:
/// nothing may jump there.
fn inner_boundary_ok(address: u64, targets: &BTreeSet<u64>, has_indirect_jump: bool) -> bool {
    !has_indirect_jump && !targets.contains(&address)
}

/// The bytes to replace for the syscall at `instructions[index]`, if a
/// pattern fits: whole instructions just before it (preferred: the syscall
/// stays), or else the syscall and whole instructions after it (the last
/// may be a `ret`).
fn fit(
    instructions: &[Instruction],
    index: usize,
    targets: &BTreeSet<u64>,
    has_indirect_jump: bool,
) -> Option<Site> {
    let syscall = instructions.get(index)?.ip();
    let before = || {
        let mut start = syscall;
        let mut count = 0;
        while syscall - start < JUMP_LEN as u64 {
            let previous = instructions.get(index.checked_sub(count + 1)?)?;
            if !relocatable(previous)
                || (count > 0 && !inner_boundary_ok(start, targets, has_indirect_jump))
            {
                return None;
            }
            start = previous.ip();
            count += 1;
        }
        (syscall - start <= MAX_REPLACED as u64).then_some(Site {
            syscall,
            start,
            end: syscall,
        })
    };
    let after = || {
        let mut end = instructions[index].next_ip();
        let mut next = index + 1;
        while end - syscall < JUMP_LEN as u64 {
            let following = instructions.get(next)?;
            if !inner_boundary_ok(end, targets, has_indirect_jump) {
                return None;
            }
            let returns = following.flow_control() == FlowControl::Return
                && following.len() == 1
                && end - syscall + 1 >= JUMP_LEN as u64;
            if !relocatable(following) && !returns {
                return None;
            }
            end = following.next_ip();
            next += 1;
        }
        (end - syscall <= MAX_REPLACED as u64).then_some(Site {
            syscall,
            start: syscall,
            end,
        })
    };
    before().or_else(after)
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
    let mut proposals: HashMap<u64, Option<Site>> = HashMap::new();
    for summary in &summaries {
        let mut instructions = Vec::new();
        decode(&text, summary.function, |instruction| {
            instructions.push(*instruction)
        });
        for (index, instruction) in instructions.iter().enumerate() {
            if instruction.mnemonic() != Mnemonic::Syscall {
                continue;
            }
            let site = fit(&instructions, index, &targets, summary.has_indirect_jump);
            proposals
                .entry(instruction.ip())
                .and_modify(|agreed| {
                    if *agreed != site {
                        *agreed = None;
                    }
                })
                .or_insert(site);
        }
    }
    let proposals: BTreeMap<u64, Option<Site>> = proposals.into_iter().collect();
    census.proved = proposals.len();
    let mut sites: Vec<Site> = Vec::new();
    for (&syscall, site) in &proposals {
        match site {
            // Two rewritten stretches (a kept syscall included) must not overlap.
            Some(site)
                if sites
                    .last()
                    .is_none_or(|last| last.end.max(last.syscall + 2) <= site.start) =>
            {
                sites.push(site.clone());
            }
            _ => census.unfit.push(syscall),
        }
    }
    census.rewritten = sites.len();
    Plan { sites, census }
}

impl Plan {
    /// Adds the sites of another image's plan (already biased) to this one.
    pub fn merge(&mut self, other: Plan) {
        self.sites.extend(other.sites);
        self.census.proved += other.census.proved;
        self.census.rewritten += other.census.rewritten;
        self.census.unfit.extend(other.census.unfit);
        self.census.undecodable_functions += other.census.undecodable_functions;
    }

    /// The plan for the image loaded `bias` above its ELF addresses.
    pub fn biased(mut self, bias: u64) -> Self {
        for site in &mut self.sites {
            site.syscall += bias;
            site.start += bias;
            site.end += bias;
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
            text += &format!("site {:x} {:x} {:x}\n", site.syscall, site.start, site.end);
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
                    let site = Site {
                        syscall: number(1, 16)?,
                        start: number(2, 16)?,
                        end: number(3, 16)?,
                    };
                    let shape_ok = site.end - site.start <= MAX_REPLACED as u64
                        && site.end - site.start >= JUMP_LEN as u64
                        && (site.end == site.syscall || site.start == site.syscall);
                    if site.end <= site.start || !shape_ok {
                        return None;
                    }
                    plan.sites.push(site);
                }
                _ => return None,
            }
        }
        (plan.sites.len() == plan.census.rewritten).then_some(plan)
    }
}

/// First line of a cached plan; a new analysis gets a new version.
const PLAN_HEADER: &str = "atoll rewrite plan 4";

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

/// Bytes of `movabs $imm64,%rcx`, `jmp *rel32(%rip)` and `jmp rel32`.
const MOVABS_LEN: usize = 10;
const INDIRECT_JUMP_LEN: usize = 6;

/// Bytes one stub takes for `site`.
fn stub_len(site: &Site) -> usize {
    let replaced = (site.end - site.start) as usize;
    if site.replaces_syscall() {
        // Enter, then come back to set rcx, run what followed the syscall
        // and jump back (a final `ret` makes that jump dead, harmless).
        MOVABS_LEN + INDIRECT_JUMP_LEN + MOVABS_LEN + (replaced - 2) + JUMP_LEN
    } else {
        replaced + MOVABS_LEN + INDIRECT_JUMP_LEN
    }
}

/// Room the stubs of `plan` need: the stubs plus the entry pointer.
pub fn stub_area_size(plan: &Plan) -> u64 {
    if plan.sites.is_empty() {
        return 0;
    }
    (8 + plan.sites.iter().map(stub_len).sum::<usize>()) as u64
}

/// Machine code for one stub at `at`, or None if something is out of
/// rel32 reach. `replaced` holds the site's original bytes.
fn stub(site: &Site, replaced: &[u8], at: u64, area: u64) -> Option<Vec<u8>> {
    let mut code = Vec::with_capacity(stub_len(site));
    let movabs_rcx = |code: &mut Vec<u8>, value: u64| {
        code.extend_from_slice(&[0x48, 0xb9]);
        code.extend_from_slice(&value.to_le_bytes());
    };
    // jmp *entry(%rip): the pointer sits at the area's start.
    let enter = |code: &mut Vec<u8>| -> Option<()> {
        let next = at + (code.len() + INDIRECT_JUMP_LEN) as u64;
        code.extend_from_slice(&[0xff, 0x25]);
        code.extend_from_slice(&relative(next, area)?.to_le_bytes());
        Some(())
    };
    if site.replaces_syscall() {
        // The kernel returns to rcx: here, just after the entering jump.
        let back_here = at + (MOVABS_LEN + INDIRECT_JUMP_LEN) as u64;
        movabs_rcx(&mut code, back_here);
        enter(&mut code)?;
        movabs_rcx(&mut code, site.syscall + 2);
        code.extend_from_slice(&replaced[2..]);
        let next = at + (code.len() + JUMP_LEN) as u64;
        code.push(0xe9);
        code.extend_from_slice(&relative(next, site.end)?.to_le_bytes());
    } else {
        code.extend_from_slice(replaced);
        movabs_rcx(&mut code, site.syscall + 2);
        enter(&mut code)?;
    }
    Some(code)
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
        let len = (site.end - site.start) as usize;
        let covered = (site.end.max(site.syscall + 2) - site.start) as usize;
        let Some(mut replaced) = code(site.start, covered) else {
            continue;
        };
        // What was analyzed must be what is there.
        let syscall_at = (site.syscall - site.start) as usize;
        if replaced.get(syscall_at..syscall_at + 2) != Some(&[0x0f, 0x05][..]) {
            continue;
        }
        replaced.truncate(len);
        let at = area + stubs.len() as u64;
        let (Some(jump), Some(code)) = (
            relative(site.start + JUMP_LEN as u64, at),
            stub(site, &replaced, at, area),
        ) else {
            continue;
        };
        stubs.extend_from_slice(&code);
        let mut patch = vec![0xe9];
        patch.extend_from_slice(&jump.to_le_bytes());
        // Bytes left after the jump are never run: int3.
        patch.resize(len, 0xcc);
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
            open_ended: false,
        };
        assert!(decode(&text, function, |i| instructions.push(*i)));
        instructions
    }

    #[test]
    fn a_sizeless_function_is_decoded_only_as_far_as_its_code_goes() {
        // jne +3 (over the ret); syscall; ret; ret; then data: 0f 05.
        let bytes = [0x75, 0x03, 0x0f, 0x05, 0xc3, 0xc3, 0x0f, 0x05, 0xff, 0xff];
        let text = Text {
            segments: vec![(0x1000, &bytes[..])],
        };
        let mut seen = Vec::new();
        let function = Function {
            start: 0x1000,
            end: 0x100a,
            open_ended: true,
        };
        assert!(decode(&text, function, |i| seen.push(i.ip())));
        assert_eq!(seen, [0x1000, 0x1002, 0x1004, 0x1005]);
    }

    #[test]
    fn mov_eax_before_syscall_is_replaced_alone() {
        // mov $39,%eax; syscall; ret
        let code = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3];
        let decoded = instructions(&code, 0x1000);
        let site = fit(&decoded, 1, &BTreeSet::new(), true);
        assert_eq!(
            site,
            Some(Site {
                syscall: 0x1005,
                start: 0x1000,
                end: 0x1005
            })
        );
    }

    #[test]
    fn a_syscall_at_a_jump_target_takes_what_follows_into_its_stub() {
        // loop: mov %r10,%rax; syscall; xor %ecx,%ecx; cmp %r8,%rax; jne loop
        let code = [
            0x4c, 0x89, 0xd0, 0x0f, 0x05, 0x31, 0xc9, 0x4c, 0x39, 0xc0, 0x75, 0xf4,
        ];
        let decoded = instructions(&code, 0x1000);
        let targets = BTreeSet::from([0x1000]);
        let site = Site {
            syscall: 0x1003,
            start: 0x1003,
            end: 0x100a,
        };
        assert_eq!(fit(&decoded, 1, &targets, false), Some(site));
        // Not when something may jump between them.
        assert_eq!(fit(&decoded, 1, &targets, true), None);
        let inner = BTreeSet::from([0x1000, 0x1007]);
        assert_eq!(fit(&decoded, 1, &inner, false), None);
        // syscall; ret is too short; syscall; cmp; ret reaches 5 bytes.
        let short = instructions(&[0x0f, 0x05, 0xc3], 0x2000);
        assert_eq!(fit(&short, 0, &BTreeSet::new(), false), None);
        let with_ret = instructions(&[0x0f, 0x05, 0x48, 0x39, 0xc0, 0xc3], 0x2000);
        assert_eq!(
            fit(&with_ret, 0, &BTreeSet::new(), false).map(|site| site.end),
            Some(0x2005)
        );
    }

    #[test]
    fn short_instructions_are_joined_only_without_jumps_between() {
        // mov %rdi,%rax; mov %rsi,%rdi; mov %rdx,%rsi; syscall
        let code = [
            0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x0f, 0x05,
        ];
        let decoded = instructions(&code, 0x1000);
        let start = |targets: &BTreeSet<u64>, indirect: bool| {
            fit(&decoded, 3, targets, indirect).map(|site| site.start)
        };
        assert_eq!(start(&BTreeSet::new(), false), Some(0x1003));
        assert_eq!(start(&BTreeSet::from([0x1006]), false), None);
        assert_eq!(start(&BTreeSet::new(), true), None);
    }

    #[test]
    fn jumps_and_rip_relative_instructions_are_not_copied() {
        // lea 0(%rip),%rax (rip-relative); syscall
        let code = [0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x0f, 0x05];
        let decoded = instructions(&code, 0x1000);
        assert_eq!(fit(&decoded, 1, &BTreeSet::new(), false), None);
        // syscall; jae +0x10 (a branch is not copied): nothing fits.
        let code = [0x0f, 0x05, 0x0f, 0x83, 0x10, 0, 0, 0];
        let decoded = instructions(&code, 0x1000);
        assert_eq!(fit(&decoded, 0, &BTreeSet::new(), false), None);
    }

    #[test]
    fn plans_survive_the_cache_and_damaged_ones_are_refused() {
        let plan = Plan {
            sites: vec![Site {
                syscall: 0x40_1005,
                start: 0x40_1000,
                end: 0x40_1005,
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
            text.replace(PLAN_HEADER, "atoll rewrite plan 0"),
            text.replace("site 401005 401000 401005", "site 401005 400000 401005"),
            text.replace("site 401005 401000 401005", "site 401005 401000 401009"),
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
            let len = site.end - site.start;
            assert!((JUMP_LEN as u64..=MAX_REPLACED as u64).contains(&len));
            assert!(site.end == site.syscall || site.start == site.syscall);
        }
    }

    #[test]
    fn stubs_copy_the_replaced_bytes_and_return_past_the_syscall() {
        let plan = Plan {
            sites: vec![Site {
                syscall: 0x40_1005,
                start: 0x40_1000,
                end: 0x40_1005,
            }],
            census: Census::default(),
        };
        let area = 0x50_0000;
        let entry = 0xffff_ffff_8000_1234;
        let code = |address: u64, len: usize| {
            assert_eq!((address, len), (0x40_1000, 7));
            Some(vec![0xb8, 39, 0, 0, 0, 0x0f, 0x05])
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
        // Code that isn't what was analyzed is left alone.
        let (_, patches) = build(&plan, area, entry, |_, _| Some(vec![0x90; 7]));
        assert!(patches.is_empty());
    }

    #[test]
    fn a_stub_that_takes_the_syscall_comes_back_to_run_what_followed() {
        // syscall; xor %ecx,%ecx; cmp %r8,%rax at 0x40_1003..0x40_100a.
        let site = Site {
            syscall: 0x40_1003,
            start: 0x40_1003,
            end: 0x40_100a,
        };
        let original = [0x0f, 0x05, 0x31, 0xc9, 0x4c, 0x39, 0xc0];
        let plan = Plan {
            sites: vec![site],
            census: Census::default(),
        };
        let area = 0x50_0000;
        let (stubs, patches) = build(&plan, area, 0xffff_ffff_8000_0000, |_, len| {
            Some(original[..len].to_vec())
        });
        assert_eq!(stubs.len() as u64, stub_area_size(&plan));
        let stub = &stubs[8..];
        // rcx = where the kernel comes back to: just past the entering jump.
        assert_eq!(&stub[..2], &[0x48, 0xb9]);
        assert_eq!(&stub[2..10], &(area + 8 + 16).to_le_bytes());
        assert_eq!(&stub[10..12], &[0xff, 0x25]);
        // Then rcx as `syscall` leaves it, the following code, and back.
        assert_eq!(&stub[16..18], &[0x48, 0xb9]);
        assert_eq!(&stub[18..26], &0x40_1005u64.to_le_bytes());
        assert_eq!(&stub[26..31], &original[2..]);
        assert_eq!(stub[31], 0xe9);
        let back = i32::from_le_bytes(stub[32..36].try_into().unwrap());
        assert_eq!(area as i64 + 8 + 36 + i64::from(back), 0x40_100a);
        let (at, patch) = &patches[0];
        assert_eq!((*at, patch.len()), (0x40_1003, 7));
        assert_eq!(&patch[5..], &[0xcc, 0xcc]);
    }
}
