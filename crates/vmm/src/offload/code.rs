//! Code mapped from files (a dynamic program's libraries, dlopen'ed Python
//! extensions): its syscall sites are rewritten as the monitor rewrites the
//! program's at load (see `image::rewrite`), before the code can run.
//!
//! The kernel reads an mmap(PROT_EXEC) of a file into guest memory, then
//! asks here, once for the size of the stubs the sites in that range need
//! and, having mapped an area that big nearby, again to have them written
//! and the sites patched. The file is analyzed whole, once per isle (by
//! identity) and once per content (the plan cache). Only bytes that still
//! equal the file's are patched, so the guest can't get a patch placed
//! anywhere but where the proof says a site is: code changed after it was
//! mapped just keeps trapping, as under --no-rewrite.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use atoll_abi::linux::errno::{EBADF, EFAULT, EINVAL, ENODEV};
use atoll_abi::queue::Request;
use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::image::rewrite::{self, Census, Plan, Site};
use crate::sandbox::Files;

/// The largest file analyzed: far past any library.
const MAX_FILE_SIZE: u64 = 1 << 30;

/// Set when rewriting is on: the kernel's rewritten-call entry.
static ENTRY: OnceLock<u64> = OnceLock::new();

/// Plans of the files this isle mapped code from, by identity.
static PLANS: Mutex<Option<HashMap<FileIdentity, Arc<FilePlan>>>> = Mutex::new(None);

/// Held while the process forks, so no other thread holds it then.
pub(crate) fn hold_for_fork() -> impl Drop {
    PLANS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Files to analyze, sent to the planner thread with where to answer.
type PlanJob = (Vec<u8>, mpsc::SyncSender<FilePlan>);

/// The planner thread's queue, once it runs.
static PLANNER: Mutex<Option<mpsc::Sender<PlanJob>>> = Mutex::new(None);

/// Turns rewriting of mapped code on, with the kernel's entry for it, and
/// starts the planner: a thread outside the sandbox (start it before the
/// serving threads are confined) that analyzes files and keeps the plan
/// cache, which lives outside the isle's mounts. It only ever computes a
/// plan from the bytes it is given, keyed by their digest, so what a
/// serving thread sends it can't spoil another file's plan.
pub fn enable(rewritten_entry: u64) {
    let _ = ENTRY.set(rewritten_entry);
    let (jobs, queue) = mpsc::channel::<PlanJob>();
    let spawned = std::thread::Builder::new()
        .name("atoll-planner".into())
        .spawn(move || {
            for (bytes, reply) in queue {
                let _ = reply.send(FilePlan::of(&bytes));
            }
        });
    match spawned {
        Ok(_) => *PLANNER.lock().unwrap_or_else(|e| e.into_inner()) = Some(jobs),
        Err(error) => {
            tracing::debug!(%error, "no planner thread: plans of mapped code are not cached")
        }
    }
}

/// The plan of `bytes`, from the planner (and its cache) if it runs.
fn analyze(bytes: Vec<u8>) -> FilePlan {
    let planner = PLANNER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(planner) = planner {
        let (reply, answer) = mpsc::sync_channel(1);
        if planner.send((bytes, reply)).is_ok() {
            if let Ok(plan) = answer.recv() {
                return plan;
            }
        }
        return FilePlan::empty();
    }
    FilePlan::of(&bytes)
}

/// What rewriting found in the files mapped so far (each counted once).
pub fn census() -> Census {
    let plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    let mut total = Census::default();
    for plan in plans.iter().flat_map(|plans| plans.values()) {
        total.proved += plan.census.proved;
        total.rewritten += plan.census.rewritten;
        total.undecodable_functions += plan.census.undecodable_functions;
        total.unfit.extend(&plan.census.unfit);
    }
    total
}

/// A file's identity while this isle runs: what changes when its content
/// can have (ctime moves on every write, and no one can set it back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileIdentity {
    device: u64,
    inode: u64,
    size: i64,
    modified: (i64, u64),
    changed: (i64, u64),
}

/// One file's sites, at file offsets, with the bytes they cover there.
struct FilePlan {
    /// (file offset of the replaced bytes, site at offset 0, original bytes).
    sites: Vec<(u64, Site, Vec<u8>)>,
    census: Census,
}

impl FilePlan {
    fn empty() -> Self {
        Self {
            sites: Vec::new(),
            census: Census::default(),
        }
    }

    /// Analyzes an ELF file: its plan's sites moved from ELF addresses to
    /// file offsets (through the executable segment each lies in).
    fn of(bytes: &[u8]) -> Self {
        let Ok(elf) = Elf::parse(bytes) else {
            return Self::empty();
        };
        let executable: Vec<(u64, u64, u64)> = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD && ph.is_executable())
            .map(|ph| (ph.p_vaddr, ph.p_offset, ph.p_filesz))
            .collect();
        let plan = rewrite::analyze_cached(bytes);
        let mut sites = Vec::with_capacity(plan.sites.len());
        for site in plan.sites {
            let covered_end = site.end.max(site.syscall + 2);
            let Some(&(vaddr, offset, _)) = executable.iter().find(|&&(vaddr, _, size)| {
                vaddr <= site.start && covered_end <= vaddr.saturating_add(size)
            }) else {
                continue;
            };
            let at = site.start - vaddr + offset;
            let Some(original) = usize::try_from(at)
                .ok()
                .and_then(|at| bytes.get(at..at + (covered_end - site.start) as usize))
            else {
                continue;
            };
            let relative = Site {
                syscall: site.syscall - site.start,
                start: 0,
                end: site.end - site.start,
            };
            sites.push((at, relative, original.to_vec()));
        }
        Self {
            sites,
            census: plan.census,
        }
    }

    /// The sites inside file bytes `[offset, offset + len)` shown at guest
    /// `address`, at their guest addresses, with their original bytes.
    fn sites_shown(&self, address: u64, len: u64, offset: u64) -> Vec<(Site, &[u8])> {
        let end = offset.saturating_add(len);
        self.sites
            .iter()
            .filter(|(at, _, original)| offset <= *at && at + original.len() as u64 <= end)
            .map(|(at, site, original)| {
                let start = address + (at - offset);
                let site = Site {
                    syscall: start + site.syscall,
                    start,
                    end: start + site.end,
                };
                (site, &original[..])
            })
            .collect()
    }
}

/// The plan of the file behind `file`, analyzed at most once per isle.
fn plan_of(file: &OwnedFd) -> Result<Arc<FilePlan>, i64> {
    let stat = rustix::fs::fstat(file).map_err(|errno| i64::from(errno.raw_os_error()))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG || stat.st_size as u64 > MAX_FILE_SIZE {
        return Err(ENODEV);
    }
    let identity = FileIdentity {
        device: stat.st_dev,
        inode: stat.st_ino,
        size: stat.st_size,
        modified: (stat.st_mtime, stat.st_mtime_nsec),
        changed: (stat.st_ctime, stat.st_ctime_nsec),
    };
    if let Some(plan) = PLANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&identity)
    {
        return Ok(Arc::clone(plan));
    }
    let bytes = read_whole(file, stat.st_size as u64)?;
    let plan = Arc::new(analyze(bytes));
    PLANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(identity, Arc::clone(&plan));
    Ok(plan)
}

/// All `size` bytes of `file`, read from offset 0 (not its position).
fn read_whole(file: &OwnedFd, size: u64) -> Result<Vec<u8>, i64> {
    let mut bytes = vec![0u8; size as usize];
    let mut done = 0;
    while done < bytes.len() {
        match rustix::io::pread(file.as_fd(), &mut bytes[done..], done as u64) {
            Ok(0) => break,
            Ok(read) => done += read,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(i64::from(errno.raw_os_error())),
        }
    }
    bytes.truncate(done);
    Ok(bytes)
}

/// REWRITE_MAPPED(name, address, len, offset, area, area_len), the file
/// named as the memory map names it: with `area`
/// 0, the bytes of stubs the sites in the range need (0: none, or
/// rewriting is off); else writes them at `[area, area + area_len)` and
/// patches the sites. Returns how many it patched.
pub(super) fn rewrite_mapped(ram: &GuestRam, files: &Files, request: &Request) -> Result<i64, i64> {
    let [name, address, len, offset, area, area_len] = request.args;
    let Some(&entry) = ENTRY.get() else {
        return Ok(0);
    };
    ram.slice(address, len)?;
    let name = u32::try_from(name).map_err(|_| EBADF)?;
    let file = files.named_file(name).ok_or(EBADF)?;
    let plan = match plan_of(&file) {
        Ok(plan) => plan,
        // Not a regular file: nothing to rewrite, and mmap goes on.
        Err(ENODEV) => return Ok(0),
        Err(errno) => return Err(errno),
    };
    let shown = plan.sites_shown(address, len, offset);
    let plan = Plan {
        sites: shown.iter().map(|(site, _)| site.clone()).collect(),
        census: Census::default(),
    };
    let needed = rewrite::stub_area_size(&plan);
    if area == 0 {
        return Ok(needed as i64);
    }
    if area_len < needed {
        return Err(EINVAL);
    }
    ram.slice(area, area_len)?;
    // Files shown in guest RAM are theirs to change, not ours.
    let overlaps_file =
        |start: u64, len: u64| ram.file_mappings().unless_mapped(start, len, || 1) == 0;
    if overlaps_file(address, len) || overlaps_file(area, area_len) {
        return Err(EFAULT);
    }
    let originals: HashMap<u64, &[u8]> = shown
        .iter()
        .map(|(site, original)| (site.start, *original))
        .collect();
    let unchanged = |start: u64, bytes: &[u8]| originals.get(&start) == Some(&bytes);
    write_rewrites(ram, &plan, area, entry, unchanged)
}

/// Writes the stubs of `plan` at `area` and patches its sites in guest
/// memory, each only if `unchanged(start, bytes)` says the code there is
/// still what was analyzed. Returns how many sites it patched.
pub(crate) fn write_rewrites(
    ram: &GuestRam,
    plan: &Plan,
    area: u64,
    entry: u64,
    unchanged: impl Fn(u64, &[u8]) -> bool,
) -> Result<i64, i64> {
    let code = |address: u64, len: usize| {
        let mut bytes = vec![0u8; len];
        ram.memory()
            .read_slice(&mut bytes, GuestAddress(address))
            .ok()
            .filter(|()| unchanged(address, &bytes))
            .map(|()| bytes)
    };
    let (stubs, patches) = rewrite::build(plan, area, entry, code);
    let write = |bytes: &[u8], address: u64| {
        ram.memory()
            .write_slice(bytes, GuestAddress(address))
            .map_err(|_| EFAULT)
    };
    write(&stubs, area)?;
    for (address, bytes) in &patches {
        write(bytes, *address)?;
    }
    Ok(patches.len() as i64)
}
