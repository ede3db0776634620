//! The isle's processes, as McKernel makes them: each isle process has a
//! host process of its own, its monitor. `fork` is a host fork of the
//! monitor: guest RAM, a private mapping, is copied on write by the host
//! kernel, and the host fds behind the isle's (its files, pipes, sockets)
//! are inherited as Linux's are. The child builds a new VM around the
//! memory it inherited and boots it with the generation in the boot info
//! bumped: its kernel, the parent's as it was, resumes only the thread that
//! forked. `wait` is the host's waitpid; a child's monitor ends as its
//! program did (its exit status, or killed by the same signal). Pids are
//! host pids.
//!
//! The fork itself runs on a thread of its own, started before the
//! serving threads are confined (their seccomp filter allows no new
//! process), which holds the locks the child goes on to take. The tree
//! lives as long as its top process ([`lifeline`]).

mod lifeline;
pub(crate) mod table;

use std::mem::offset_of;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use atoll_abi::boot::{BootInfo, ClockInfo, CpuArea, Identity};
use atoll_abi::queue::QueuePair;
use vm_memory::{Bytes, GuestAddress};

use crate::backend::{self, BackendChoice, BootPlan, ClockSlots, Running};
use crate::guest::memory::GuestRam;
use crate::guest::setup::{self, Layout};
use crate::host::process::{self as host_process, Forked};
use crate::image::loader::Kernel;
use crate::isle::Outcome;
use crate::offload::net::NetPolicy;
use crate::offload::Offload;
use crate::sandbox::Files;

/// What a forked child needs to run its isle again.
#[derive(Clone)]
pub(crate) struct Resume {
    pub backend: BackendChoice,
    pub cpu_count: u64,
    pub layout: Layout,
    pub heap: std::ops::Range<u64>,
    pub kernel: Arc<Kernel>,
    pub ram: Arc<GuestRam>,
    pub files: Arc<Files>,
    pub net: NetPolicy,
    pub vcpu_cores: Vec<usize>,
    pub service_core: Option<usize>,
    /// Where the guest keeps its clock calibration (boot info and vDSO).
    pub clock_slots: Vec<ClockSlots>,
    /// The program running (a forked child's is its parent's).
    pub exe_path: Vec<u8>,
    /// How the isles after an execve run.
    pub settings: Arc<crate::isle::Settings>,
}

/// This process is a forked child's monitor (not the top one, `atoll`).
static FORKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A forked child's monitor goes by its program's name, as the host's
/// `ps` and `atoll ps --tree` show the isle's processes; the top one stays
/// `atoll`. Called on the process's first thread.
pub(crate) fn name_after(exe_path: &[u8]) {
    if FORKED.load(std::sync::atomic::Ordering::Relaxed) {
        let name = exe_path.rsplit(|&b| b == b'/').next().unwrap_or(exe_path);
        host_process::set_thread_name(name);
    }
}

type Reply = Sender<Result<i64, i64>>;

/// What the unconfined thread does for the serving ones.
enum Request {
    /// The isle it forks now (the process's first, or the one an execve
    /// booted).
    Serve {
        resume: Box<Resume>,
        offload: std::sync::Weak<Offload>,
    },
    Fork(Reply),
    /// Work only an unconfined thread may do: reading the host's /proc
    /// (the isle's tree), signalling outside the process, stopping it.
    Unconfined(Box<dyn FnOnce() + Send>),
}

/// This process's children not yet waited for: the only processes its
/// isle may signal by pid.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn children() -> std::sync::MutexGuard<'static, Vec<u32>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The program an execve accepted, with its arguments and the signal
/// state it keeps: what the isle that replaces this one runs.
pub(crate) struct Replacement {
    pub image: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    pub exe_path: Vec<u8>,
    pub signals: atoll_abi::boot::ExecSignals,
}

static REPLACEMENT: Mutex<Option<Replacement>> = Mutex::new(None);

/// The program this process runs: what an execve of /proc/self/exe runs
/// again, though no path of the isle's may lead to it.
static PROGRAM: Mutex<Option<Arc<Vec<u8>>>> = Mutex::new(None);

/// This process runs `image` now.
pub(crate) fn keep_program(image: Arc<Vec<u8>>) {
    *PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = Some(image);
}

/// The program this process runs.
pub(crate) fn program() -> Option<Arc<Vec<u8>>> {
    PROGRAM.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Keeps what an accepted execve runs (a later one replaces it: the last
/// one the isle ends for is the one that runs).
pub(crate) fn replace_with(replacement: Replacement) {
    *REPLACEMENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(replacement);
}

/// What the isle ended for (the EXEC doorbell) runs next.
pub(crate) fn take_replacement() -> Option<Replacement> {
    REPLACEMENT.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The forking thread's inbox.
static FORKER: Mutex<Option<Sender<Request>>> = Mutex::new(None);

fn forker_inbox() -> std::sync::MutexGuard<'static, Option<Sender<Request>>> {
    FORKER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Has this process's forking thread fork `resume`'s isle when its program
/// asks, starting the thread at the process's first isle. One thread for
/// the process's life, through its execs: a child's PR_SET_PDEATHSIG fires
/// when the thread that forked it ends, which must be when this process
/// does.
pub(crate) fn start_forker(resume: Resume, offload: std::sync::Weak<Offload>) {
    let mut forker = forker_inbox();
    let serve = Request::Serve {
        resume: Box::new(resume),
        offload,
    };
    let serve = match forker.as_ref() {
        Some(requests) => match requests.send(serve) {
            Ok(()) => return,
            Err(unsent) => unsent.0,
        },
        None => serve,
    };
    let (requests, inbox) = channel::<Request>();
    let _ = requests.send(serve);
    *forker = Some(requests);
    if let Ok(group) = host_process::group(atoll_abi::queue::group::GETPGID, 0, 0) {
        START_GROUP.get_or_init(|| group as u32);
    }
    std::thread::Builder::new()
        .name("atoll-fork".into())
        .spawn(move || {
            let mut serving = None;
            for request in inbox {
                let reply = match request {
                    Request::Serve { resume, offload } => {
                        serving = Some((*resume, offload));
                        continue;
                    }
                    Request::Unconfined(work) => {
                        work();
                        continue;
                    }
                    Request::Fork(reply) => reply,
                };
                let Some((resume, offload)) = &serving else {
                    let _ = reply.send(Err(atoll_abi::linux::errno::EAGAIN));
                    continue;
                };
                // The kernel asked with its vCPU parked (see its
                // `offload::call_parked`): its memory holds no lock taken
                // halfway. A vCPU of another thread may still run.
                if let Some(offload) = offload.upgrade() {
                    if !offload.wait_until_parked(std::time::Duration::from_millis(100)) {
                        tracing::debug!("forking with a vCPU still running");
                    }
                }
                if let Err(errno) = lifeline::before_fork() {
                    let _ = reply.send(Err(errno));
                    continue;
                }
                if let Err(error) = table::make() {
                    tracing::debug!(%error, "no process table: /proc shows each process only itself");
                }
                let forked = {
                    // No other thread may hold these in the child: it
                    // takes them, and the threads that held them are gone.
                    let _files = resume.files.hold_for_fork();
                    let _mappings = resume.ram.file_mappings().hold_for_fork();
                    let _plans = crate::offload::code::hold_for_fork();
                    let _children = children();
                    let _route = crate::program_signals::hold_for_fork();
                    let _forker = forker_inbox();
                    host_process::fork()
                };
                match forked {
                    Ok(Forked::Parent { child }) => {
                        children().push(child);
                        let _ = reply.send(Ok(i64::from(child)));
                    }
                    Ok(Forked::Child) => match serving.take() {
                        Some((resume, _)) => run_child(resume),
                        None => unreachable!("a fork is made only while serving an isle"),
                    },
                    Err(errno) => {
                        let _ = reply.send(Err(errno));
                    }
                }
            }
        })
        .expect("spawning a thread only fails when the host is out of resources");
}

/// WAITID(idtype, id, options, info): the child's siginfo written to guest
/// memory at `info` (if not 0); a reaped child is no longer signalled.
pub(crate) fn waitid(ram: &GuestRam, a: [u64; 6]) -> Result<i64, i64> {
    let [idtype, id, options, info, usage_at, ..] = a;
    let allowed = libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED | libc::WNOHANG | libc::WNOWAIT;
    let options = options as i32;
    if options & !allowed != 0 || options & (libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED) == 0
    {
        return Err(atoll_abi::linux::errno::EINVAL);
    }
    if info != 0 {
        ram.slice(info, 128)?;
    }
    if usage_at != 0 {
        ram.slice(usage_at, std::mem::size_of::<host_process::Rusage>() as u64)?;
    }
    let (siginfo, usage) = host_process::waitid(idtype as u32, id as u32, options)?;
    // si_code at 8, si_pid at 16 (the kernel's siginfo layout).
    let code = i32::from_ne_bytes(siginfo[8..12].try_into().unwrap_or_default());
    let pid = u32::from_ne_bytes(siginfo[16..20].try_into().unwrap_or_default());
    let ended = matches!(code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED);
    if pid != 0 && ended && options & libc::WNOWAIT == 0 {
        children().retain(|&known| known != pid);
    }
    write_at(ram, info, &siginfo)?;
    write_at(ram, usage_at, &usage)?;
    Ok(0)
}

/// Writes `bytes` to guest memory at `address`, unless that is 0 (not
/// asked for).
fn write_at(ram: &GuestRam, address: u64, bytes: &[u8]) -> Result<(), i64> {
    if address != 0 {
        ram.memory()
            .write_slice(bytes, GuestAddress(address))
            .map_err(|_| atoll_abi::linux::errno::EFAULT)?;
    }
    Ok(())
}

/// USAGE(who, address): the host's getrusage of this process or of its
/// children waited for, written to guest memory at `address`.
pub(crate) fn usage(ram: &GuestRam, who: u64, address: u64) -> Result<i64, i64> {
    let who = match who as u32 as i32 {
        libc::RUSAGE_SELF => libc::RUSAGE_SELF,
        libc::RUSAGE_CHILDREN => libc::RUSAGE_CHILDREN,
        _ => return Err(atoll_abi::linux::errno::EINVAL),
    };
    let usage = host_process::rusage(who)?;
    ram.slice(address, usage.len() as u64)?;
    write_at(ram, address, &usage)?;
    Ok(0)
}

/// Asks the unconfined thread to do `request`; waits for its answer.
fn ask(request: impl FnOnce(Reply) -> Request) -> Result<i64, i64> {
    let (reply, answer) = channel();
    let requests = FORKER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    requests
        .ok_or(atoll_abi::linux::errno::ENOSYS)?
        .send(request(reply))
        .map_err(|_| atoll_abi::linux::errno::EAGAIN)?;
    answer
        .recv()
        .unwrap_or(Err(atoll_abi::linux::errno::EAGAIN))
}

/// Whether `pid` is this process or one of its children not yet waited
/// for: what the isle may act on (a group it leads is its own, too).
fn ours(pid: u32) -> bool {
    pid == std::process::id() || children().contains(&pid)
}

/// KILL(pid, signal): a process of the isle's tree only (ESRCH for any
/// other: the isle sees no process of the host's); pid 0 or below -1, a process
/// group one of the isle's processes leads (this process's own group when
/// 0), ESRCH for the group atoll was started in; -1, every process of the
/// isle's tree but this one (ESRCH if there is none), as Linux's kill(-1)
/// in a pid namespace of the isle's own.
pub(crate) fn kill(pid: u64, signal: u64) -> Result<i64, i64> {
    let signal = i32::try_from(signal).map_err(|_| atoll_abi::linux::errno::EINVAL)?;
    let pid = pid as i64 as i32;
    let (target, group) = match pid {
        0 => (
            host_process::group(atoll_abi::queue::group::GETPGID, 0, 0)? as u32,
            true,
        ),
        pid if pid < -1 => (pid.unsigned_abs(), true),
        pid if pid > 0 => (pid as u32, false),
        _ => return unconfined(move || lifeline::kill_all_others(signal)),
    };
    if !group && target == std::process::id() {
        return Err(atoll_abi::linux::errno::ESRCH);
    }
    unconfined(move || match (isle_process(target), group) {
        (false, _) => Err(atoll_abi::linux::errno::ESRCH),
        (true, true) => host_process::kill_group(target, signal),
        (true, false) => host_process::kill(target, signal),
    })
}

/// Whether `pid` is a process of the isle's tree: this process's own or
/// children, or any process below its top (read from /proc, which only an
/// unconfined thread may).
fn isle_process(pid: u32) -> bool {
    ours(pid) || lifeline::in_tree(pid)
}

/// Runs `work` on the unconfined thread; its answer.
fn unconfined(work: impl FnOnce() -> Result<i64, i64> + Send + 'static) -> Result<i64, i64> {
    on_unconfined_thread(work).unwrap_or(Err(atoll_abi::linux::errno::EAGAIN))
}

/// Runs `work` on the unconfined thread; its answer (None: no thread).
fn on_unconfined_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (reply, answer) = channel();
    let requests = forker_inbox().clone()?;
    let job = Box::new(move || {
        let _ = reply.send(work());
    });
    requests.send(Request::Unconfined(job)).ok()?;
    answer.recv().ok()
}

/// The process group the isle's top process started in: the terminal's
/// foreground may be given back to it.
static START_GROUP: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Whether the terminal's foreground may go to process group `pgid`: one
/// an isle process leads, or the one the isle started in.
pub(crate) fn isle_group(pgid: u32) -> bool {
    START_GROUP.get() == Some(&pgid) || in_isle_tree(pgid)
}

/// [`isle_process`], asked from a confined thread.
fn in_isle_tree(pid: u32) -> bool {
    ours(pid) || on_unconfined_thread(move || isle_process(pid)) == Some(true)
}

/// Whether the terminal's foreground may go to group `pgid` (TIOCSPGRP):
/// EPERM for a group of the host's, ESRCH for none, as Linux answers for
/// one outside the session or none at all.
pub(crate) fn may_take_terminal(pgid: i32) -> Result<(), i64> {
    let group = u32::try_from(pgid).map_err(|_| atoll_abi::linux::errno::EINVAL)?;
    if isle_group(group) {
        return Ok(());
    }
    // killpg(_, 0) tells a group that exists (EPERM: not ours to signal).
    match unconfined(move || host_process::kill_group(group, 0)) {
        Err(atoll_abi::linux::errno::ESRCH) => Err(atoll_abi::linux::errno::ESRCH),
        _ => Err(atoll_abi::linux::errno::EPERM),
    }
}

/// STOP(signal): a stop signal's default action. The host stops this
/// process as that signal does (so its parent's wait sees it stopped by
/// it), and answers when the process is continued.
pub(crate) fn stop(signal: u64) -> Result<i64, i64> {
    let signal = i32::try_from(signal).map_err(|_| atoll_abi::linux::errno::EINVAL)?;
    tracing::debug!(signal, "the program stops");
    let stopped = unconfined(move || host_process::stop_as(signal));
    tracing::debug!(signal, "the program goes on");
    stopped
}

/// The isle's processes as /proc shows them: the process table for what
/// each runs, the host's view of their monitors for the rest.
pub(crate) struct IsleProcesses;

impl crate::sandbox::ProcessView for IsleProcesses {
    /// Those with a slot in the process table still alive in the tree.
    fn others(&self) -> Vec<u32> {
        let me = std::process::id();
        let listed: Vec<u32> = table::pids().into_iter().filter(|&pid| pid != me).collect();
        if listed.is_empty() {
            return listed;
        }
        on_unconfined_thread(lifeline::isle_tree)
            .map(|tree| {
                listed
                    .into_iter()
                    .filter(|pid| tree.contains(pid))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn other(&self, pid: u32) -> Option<crate::sandbox::OtherProcess> {
        if pid == std::process::id() {
            return None;
        }
        let running = table::running(pid)?;
        let host_stat = on_unconfined_thread(move || {
            isle_process(pid)
                .then(|| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
                .flatten()
        })??;
        Some(crate::sandbox::OtherProcess {
            arguments: running.arguments,
            program: running.program,
            host_stat,
        })
    }

    fn own_stat(&self) -> Option<String> {
        on_unconfined_thread(|| std::fs::read_to_string("/proc/self/stat").ok())?
    }
}

/// Whether this process's group is orphaned (no member has a parent in
/// another group of its session): the terminal then refuses its
/// background reads with EIO, as Linux does, rather than stopping it.
pub(crate) fn group_orphaned() -> bool {
    on_unconfined_thread(crate::host::own_group_orphaned) == Some(true)
}

/// GROUP(what, pid, pgid): process groups and sessions, of this process
/// or a child (ESRCH for another); a group to join must be one an isle
/// process leads (EPERM otherwise), as Linux keeps groups in a session.
pub(crate) fn group(what: u64, pid: u64, pgid: u64) -> Result<i64, i64> {
    let pid = u32::try_from(pid).map_err(|_| atoll_abi::linux::errno::ESRCH)?;
    if pid != 0 && !ours(pid) {
        return Err(atoll_abi::linux::errno::ESRCH);
    }
    let pgid = u32::try_from(pgid).map_err(|_| atoll_abi::linux::errno::EINVAL)?;
    if what == atoll_abi::queue::group::SETPGID && pgid != 0 && !in_isle_tree(pgid) {
        return Err(atoll_abi::linux::errno::EPERM);
    }
    host_process::group(what, pid, pgid)
}

/// FORK: the child's pid, once the host has forked.
pub(crate) fn fork() -> Result<i64, i64> {
    ask(Request::Fork)
}

/// WAIT(pid, options, usage address): `pid << 32 | status`, as the kernel
/// unpacks it; the child's struct rusage written at the address (0: not).
pub(crate) fn wait(ram: &GuestRam, pid: u64, options: u64, usage_at: u64) -> Result<i64, i64> {
    let options = options as i32 & (libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED);
    if usage_at != 0 {
        ram.slice(usage_at, std::mem::size_of::<host_process::Rusage>() as u64)?;
    }
    let (child, status, usage) = host_process::wait4(pid as i32, options)?;
    if child != 0 && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
        children().retain(|&known| known != child);
    }
    if child != 0 {
        write_at(ram, usage_at, &usage)?;
    }
    Ok(i64::from(child) << 32 | i64::from(status as u32))
}

/// The forked child's monitor: a new VM on the inherited memory, its
/// kernel told it is a child, then the isle run to its end, and this
/// process ended as its program ended.
/// A signal sent to a child's monitor (they come blocked from the parent,
/// whose waiting thread is gone): the program's disposition decides; with
/// no isle to take it, it ends the process as it would any.
fn on_signal(signal: i32) {
    use crate::program_signals::{pass_on_and_wait, stop_atoll, unhandled, Unhandled};
    if !pass_on_and_wait(signal) {
        match unhandled(signal) {
            Unhandled::Nothing => {}
            Unhandled::Stop => stop_atoll(signal),
            Unhandled::End => host_process::die_of(signal, 128 + signal),
        }
    }
}

fn run_child(resume: Resume) -> ! {
    use std::io::Write;
    lifeline::watch_in_child();
    table::enter_child();
    // The parent's forking thread isn't in this process: it gets its own.
    *forker_inbox() = None;
    FORKED.store(true, std::sync::atomic::Ordering::Relaxed);
    name_after(&resume.exe_path);
    crate::isle::forget_stats_publisher();
    // The parent's children are its own.
    children().clear();
    crate::host::handle_signals(&crate::program_signals::PASSED_ON, on_signal);
    let mut outcome = match boot_child(&resume) {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Crashed(error.to_string()),
    };
    if outcome == Outcome::Exec {
        // fork, then exec: the child's next isle runs the new program. The
        // VM the fork made goes first.
        resume.ram.drop_slots();
        let Resume {
            settings, files, ..
        } = resume;
        outcome = match take_replacement() {
            Some(next) => {
                files.close_on_exec();
                let program = crate::isle::ProgramRun::replacing(next);
                crate::isle::run_replacing(&settings, &files, program)
                    .unwrap_or_else(|error| Outcome::Crashed(error.to_string()))
            }
            None => Outcome::Crashed("execve with no program to run".into()),
        };
    }
    table::leave();
    match outcome {
        Outcome::Exited(status) => host_process::exit_now(i32::from(status)),
        Outcome::Killed { signal, report } => {
            if !report.is_empty() {
                // Not eprintln: a hung-up terminal must not stop the exit.
                let _ = writeln!(std::io::stderr(), "atoll: {report}");
            }
            host_process::die_of(signal as i32, 128 + signal as i32)
        }
        Outcome::Crashed(report) => {
            let _ = writeln!(std::io::stderr(), "atoll: isle crashed: {report}");
            host_process::exit_now(125)
        }
        Outcome::Exec => unreachable!("run_replacing boots what an execve asks for"),
    }
}

fn boot_child(resume: &Resume) -> Result<Outcome, crate::isle::IsleError> {
    let started = std::time::Instant::now();
    let memory = resume.ram.memory();
    let memory_error =
        |error: vm_memory::GuestMemoryError| setup::SetupError::Memory(error.to_string());
    // Who it is now, and that its kernel resumes rather than boots.
    let boot_info = resume.layout.boot_info;
    let identity = boot_info + offset_of!(BootInfo, identity) as u64;
    memory
        .write_obj(
            std::process::id(),
            GuestAddress(identity + offset_of!(Identity, pid) as u64),
        )
        .map_err(memory_error)?;
    let parent = std::os::unix::process::parent_id();
    memory
        .write_obj(
            parent,
            GuestAddress(identity + offset_of!(Identity, ppid) as u64),
        )
        .map_err(memory_error)?;
    let generation = GuestAddress(boot_info + offset_of!(BootInfo, generation) as u64);
    let parent_generation: u64 = memory.read_obj(generation).map_err(memory_error)?;
    memory
        .write_obj(parent_generation + 1, generation)
        .map_err(memory_error)?;
    // Fresh rings: the parent's requests in flight are the parent's.
    for cpu in 0..resume.cpu_count {
        let queue = resume.layout.cpu_area(cpu) + offset_of!(CpuArea, queue) as u64;
        let zeros = vec![0u8; std::mem::size_of::<QueuePair>()];
        memory
            .write_slice(&zeros, GuestAddress(queue))
            .map_err(memory_error)?;
        setup::write_cpu_area(memory, &resume.layout, cpu)?;
    }
    // Its /proc/self is its own.
    let mut facts = (*resume.files.facts()).clone();
    (facts.identity.pid, facts.identity.ppid) = (std::process::id(), parent);
    resume.files.set_isle_facts(facts);
    resume.files.reopen_own_sources();
    host_process::release_inherited_vm();
    let mut backend = backend::open(&resume.backend, resume.cpu_count, resume.ram.size())?;
    let cpu = backend.prepare(&BootPlan {
        ram: &resume.ram,
        layout: &resume.layout,
        heap: resume.heap.clone(),
        kernel: &resume.kernel,
        cpu_count: resume.cpu_count,
    })?;
    // The new VM's TSC is its own: the kernel and the vDSO calibrate anew.
    write_clock(&resume.ram, boot_info, &resume.clock_slots, &cpu.clock).map_err(memory_error)?;
    let queues = (0..resume.cpu_count)
        .map(|cpu| resume.layout.cpu_area(cpu) + offset_of!(CpuArea, queue) as u64)
        .collect();
    let confinement = crate::sandbox::Confinement::prepare(
        resume.files.reachable(),
        &crate::sandbox::DEVICES,
        &resume.net,
    )?;
    let offload = Offload::new(
        Arc::clone(&resume.ram),
        queues,
        Arc::clone(&resume.files),
        resume.net.clone(),
    );
    backend.configure_offload(&offload);
    offload.spawn(resume.service_core, confinement);
    crate::program_signals::start(
        Arc::clone(&resume.ram),
        (0..resume.cpu_count)
            .map(|cpu| resume.layout.cpu_area(cpu))
            .collect(),
        Arc::clone(&offload),
    );
    // The child may fork too: a forking thread of its own.
    start_forker(resume.clone(), Arc::downgrade(&offload));
    tracing::debug!(elapsed = ?started.elapsed(), "forked child's isle ready");
    let outcome = backend.run(Running {
        clock_slots: resume.clock_slots.to_vec(),
        ram: Arc::clone(&resume.ram),
        layout: resume.layout.clone(),
        offload: Arc::clone(&offload),
        preempt_entry: resume.kernel.preempt_entry,
        exception_vectors: resume.kernel.exception_vectors,
        vcpu_cores: resume.vcpu_cores.clone(),
        service_core: resume.service_core,
        started,
    });
    crate::program_signals::stop();
    if outcome == Outcome::Exec {
        offload.stop();
    }
    Ok(outcome)
}

/// Writes a new clock calibration where the kernel (the boot info) and the
/// vDSO read it.
fn write_clock(
    ram: &GuestRam,
    boot_info: u64,
    slots: &[ClockSlots],
    clock: &ClockInfo,
) -> Result<(), vm_memory::GuestMemoryError> {
    let memory = ram.memory();
    let khz = boot_info + (offset_of!(BootInfo, clock) + offset_of!(ClockInfo, tsc_khz)) as u64;
    memory.write_obj(clock.tsc_khz, GuestAddress(khz))?;
    for slot in slots {
        memory.write_obj(clock.tsc_at_boot, GuestAddress(slot.tsc_at_boot))?;
        memory.write_obj(clock.monotonic_ns, GuestAddress(slot.monotonic_ns))?;
        memory.write_obj(clock.realtime_ns, GuestAddress(slot.realtime_ns))?;
    }
    Ok(())
}
