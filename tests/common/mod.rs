//! Shared helpers for the tests that boot isles.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

pub use atoll_testprogs::{program, Flavor};

pub mod debian;
pub mod registry;

/// What a test needs from the host, if `found`. Otherwise, in CI
/// (`CI=true`) the test fails: CI installs every tool the tests use
/// (scripts/install-deps.sh), so a missing one there is a bug, not a reason
/// to pass. Elsewhere the test is skipped, loudly, and the caller returns.
#[track_caller]
pub fn require<T>(found: Result<T, String>) -> Option<T> {
    match found {
        Ok(found) => Some(found),
        Err(reason) if std::env::var_os("CI").is_some_and(|ci| ci == "true") => {
            panic!("{}: {reason}", test_name())
        }
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

/// Says that the current test skips (part of) its work, and why.
fn skip(reason: &str) {
    eprintln!("SKIPPED {}: {reason}", test_name());
}

/// libtest runs each test on a thread named after it.
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

/// The executable `tool` (a path, or a name looked up in PATH), or why it's
/// missing, naming the Debian `package` that provides it.
pub fn tool(tool: &str, package: &str) -> Result<PathBuf, String> {
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    let found = if tool.contains('/') {
        Some(PathBuf::from(tool)).filter(|path| executable(path))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(tool))
                .find(|path| executable(path))
        })
    };
    found.ok_or_else(|| format!("{tool} is missing (apt-get install {package})"))
}

pub fn qemu_system() -> Result<PathBuf, String> {
    tool("qemu-system-x86_64", "qemu-system-x86")
}

/// /bin/busybox if it is a static build (only those run in an isle; the
/// `busybox` package's is dynamic).
pub fn static_busybox() -> Result<&'static str, String> {
    const BUSYBOX: &str = "/bin/busybox";
    match std::fs::read(BUSYBOX) {
        Ok(bytes) if is_static_elf(&bytes) => Ok(BUSYBOX),
        Ok(_) => Err(format!(
            "{BUSYBOX} is not a static build (apt-get install busybox-static)"
        )),
        Err(_) => Err(format!(
            "{BUSYBOX} is missing (apt-get install busybox-static)"
        )),
    }
}

/// An x86_64 ELF without a program interpreter (PT_INTERP). (Static glibc
/// binaries contain the string "ld-linux-x86-64.so.2", so looking for it
/// misjudges them.)
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    const PT_INTERP: u32 = 3;
    if !bytes.starts_with(b"\x7fELF\x02\x01") || u16_at(0x12) != Some(62) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).all(|index| {
        let at = phoff as usize + index * usize::from(phentsize);
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

/// Every isle pins a core and polls: on a 2-core machine, one at a time.
static ISLE_SLOT: Mutex<()> = Mutex::new(());

/// Holds the right to boot an isle until dropped.
pub fn isle_slot() -> MutexGuard<'static, ()> {
    ISLE_SLOT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether this machine has a KVM device, or why not (with what the kernel
/// said about KVM at boot, where it said something).
pub fn kvm_device() -> Result<(), String> {
    if Path::new("/dev/kvm").exists() {
        return Ok(());
    }
    let kernel_said = Command::new("dmesg")
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .find(|line| line.contains("kvm") && line.contains("not binding"))
                .map(|line| format!(": the kernel said \"{}\"", line.trim()))
        })
        .unwrap_or_default();
    Err(format!("this machine has no /dev/kvm{kernel_said}"))
}

/// For the tests of atoll's own KVM monitor: whether they can run, as
/// [`require`] decides (in CI a machine without KVM fails them).
#[track_caller]
pub fn require_kvm() -> bool {
    require(kvm_device()).is_some()
}

/// The backend this machine runs isles on: atoll's KVM monitor where there
/// is a KVM device, else QEMU's TCG (as `--backend auto` chooses).
pub fn machine_backend() -> &'static str {
    if std::path::Path::new("/dev/kvm").exists() {
        "kvm"
    } else {
        "qemu"
    }
}

/// A host config that never exists: tests see atoll's defaults, not the
/// machine's /etc/atoll/host.toml (which may not even be readable to them).
pub const NO_HOST_CONFIG: &str = "/nonexistent/atoll-tests/host.toml";

/// `atoll` with a clean, predictable environment, on this machine's
/// backend named outright (so `auto` doesn't announce its choice).
pub fn atoll() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_atoll"));
    command
        .env_remove("ATOLL_LOG")
        .env_remove("ATOLL_KVM_DEVICE")
        .env("ATOLL_HOST_CONFIG", NO_HOST_CONFIG)
        .env("ATOLL_BACKEND", machine_backend());
    command
}

/// Runs `atoll ARGS` with `stdin` piped in; waits for it.
pub fn run_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let _slot = isle_slot();
    let mut child = atoll()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atoll starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may exit without reading everything: that's its right.
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("atoll runs");
    writer.join().expect("stdin writer finishes");
    output
}

/// Runs `atoll ARGS` with empty stdin.
pub fn run(args: &[&str]) -> Output {
    run_with_input(args, b"")
}

/// `atoll run PROGRAM ARGS` for a test program.
pub fn run_program(flavor: Flavor, name: &str, args: &[&str]) -> Output {
    let path = program(flavor, name);
    let mut all = vec!["run", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run(&all)
}

/// `atoll run FLAGS PROGRAM` for a test program.
pub fn run_program_with(flavor: Flavor, name: &str, flags: &[&str]) -> Output {
    let path = program(flavor, name);
    let mut all = vec!["run"];
    all.extend_from_slice(flags);
    all.push(path.to_str().expect("utf-8 path"));
    run(&all)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status, or a panic naming what happened instead.
pub fn status(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("atoll was killed: {:?}\n{}", output.status, stderr(output)))
}

/// Asserts a failure with `code` and exactly one stderr line containing every `needle`.
pub fn assert_one_line_error(output: &Output, code: i32, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(status(output), code, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(err.starts_with("atoll: "), "{err}");
}

/// Runs C test program `name` natively and in an isle, in every C flavor,
/// and asserts the same status 0, the same stdout and a quiet stderr.
pub fn assert_c_program_matches_native(name: &str) {
    for &flavor in Flavor::C {
        let native = {
            let _slot = isle_slot();
            Command::new(program(flavor, name)).output().unwrap()
        };
        assert!(
            native.status.success(),
            "{flavor} natively: {}",
            stderr(&native)
        );
        let isle = run_program(flavor, name, &[]);
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
        assert_eq!(stderr(&isle), "", "{flavor}");
    }
}

/// Copies a program that a test will run. The copy is written by `cp`, not
/// by this process: a test on another thread that forks while this process
/// holds the copy open for writing passes that fd on to its child, and
/// exec of the copy then fails with ETXTBSY until the child execs.
pub fn copy_executable(from: &Path, to: &Path) {
    let copied = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .unwrap_or_else(|e| panic!("cp {} {}: {e}", from.display(), to.display()));
    assert!(
        copied.success(),
        "cp {} {}: {copied}",
        from.display(),
        to.display()
    );
}

/// A place to run isles as an unprivileged user (nobody), under QEMU's TCG
/// (/dev/kvm is root's): atoll and programs copied where nobody can run
/// them, scratch directories nobody owns, and a registry of nobody's own.
/// Removed when dropped.
pub struct AsNobody {
    dir: PathBuf,
    setpriv: PathBuf,
}

pub const NOBODY: u32 = 65534;

impl AsNobody {
    /// None (said loudly, or failing in CI) where the test can't drop to
    /// nobody: it must run as root, with setpriv.
    pub fn new(name: &str) -> Option<Self> {
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let needs = tool("/usr/bin/setpriv", "util-linux").and_then(|setpriv| {
            root.then_some(setpriv)
                .ok_or_else(|| "it must run as root, to drop to nobody".to_string())
        });
        let setpriv = require(needs)?;
        let dir = std::env::temp_dir().join(format!("atoll-nobody-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o755)).unwrap();
        let nobody = Self { dir, setpriv };
        copy_executable(
            Path::new(env!("CARGO_BIN_EXE_atoll")),
            &nobody.dir.join("atoll"),
        );
        let registry = nobody.owned_dir("registry");
        std::fs::set_permissions(&registry, PermissionsExt::from_mode(0o700)).unwrap();
        Some(nobody)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A copy of `program` nobody can run.
    pub fn copy(&self, program: &Path) -> PathBuf {
        let copy = self.dir.join(program.file_name().unwrap());
        copy_executable(program, &copy);
        copy
    }

    /// A fresh directory nobody owns.
    pub fn owned_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        dir
    }

    /// `atoll` run as nobody, with nobody's registry, under QEMU.
    pub fn atoll(&self) -> Command {
        let mut command = Command::new(&self.setpriv);
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(self.dir.join("atoll"))
            .env_remove("ATOLL_LOG")
            .env_remove("ATOLL_KVM_DEVICE")
            .env("ATOLL_HOST_CONFIG", NO_HOST_CONFIG)
            .env("ATOLL_RUNTIME_DIR", self.dir.join("registry"))
            .env("ATOLL_BACKEND", "qemu")
            .current_dir(&self.dir);
        command
    }
}

impl Drop for AsNobody {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory under target/, outside /tmp (the isle's /tmp is its
/// own), removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let binary = std::env::current_exe().ok();
        let binary = binary
            .as_deref()
            .and_then(Path::file_stem)
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.split('-').next())
            .unwrap_or("test");
        let path = std::env::current_dir()
            .unwrap()
            .join("target")
            .join(format!(
                "{binary}-{label}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(std::fs::canonicalize(&path).unwrap())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether this run asks every isle not to rewrite (CI runs the tests
/// again with ATOLL_NO_REWRITE=1).
pub fn no_rewrite_asked() -> bool {
    std::env::var_os("ATOLL_NO_REWRITE").is_some_and(|value| !value.is_empty() && value != "0")
}

/// The rewriting verdict of a `--syscall-summary` where rewriting is off:
/// true (and checked) if it is, so the caller stops there.
pub fn summary_says_not_rewritten(summary: &str) -> bool {
    if no_rewrite_asked() {
        assert!(
            summary.contains("not rewritten (--no-rewrite)"),
            "{summary}"
        );
        return true;
    }
    false
}

/// Runs `program args` natively and in an isle, both in `dir` with TZ
/// UTC, one isle slot at a time.
pub fn both(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> (Output, Output) {
    let native = {
        let _slot = isle_slot();
        Command::new(&program)
            .args(args)
            .current_dir(dir)
            .env("TZ", "UTC")
            .output()
            .unwrap()
    };
    let isle = {
        let _slot = isle_slot();
        atoll()
            .arg("run")
            .args(["-e", "TZ=UTC"])
            .arg(&program)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    };
    (native, isle)
}

/// The host processes below `pid` (its children, theirs, ...) that are
/// alive; a zombie has ended (whoever reaps it holds nothing of ours).
pub fn live_descendants(pid: u32) -> Vec<u32> {
    let mut parents = std::collections::HashMap::<u32, Vec<u32>>::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, then ppid.
        let mut fields = stat[stat.rfind(')').unwrap() + 2..].split(' ');
        let state = fields.next().unwrap_or("Z");
        let parent = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" && state != "X" {
            parents.entry(parent).or_default().push(child);
        }
    }
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(parent) = next.pop() {
        for &child in parents.get(&parent).into_iter().flatten() {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// Whether host process `pid` is alive (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat[stat.rfind(')').unwrap() + 2..].chars().next(),
            Some('Z' | 'X')
        )
    })
}
