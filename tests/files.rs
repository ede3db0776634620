//! Real programs on real files in isles: Debian's static busybox applets run
//! on a realistic directory tree and compared with the same applets run
//! natively on an identical copy; escape attempts out of the isle's mounts
//! and into read-only ones; a Rust std program walking through std::fs; and
//! the isle's private /tmp.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;

/// The environment an isle starts with; busybox runs natively with it too.
const ISLE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every file of the data set gets this mtime (2023-06-15 12:00:00 UTC), so
/// listings that show times match.
const FIXED_TIME: i64 = 1_686_830_400;

/// Guest files get modes from the isle's umask (022); make native runs use
/// the same.
fn fixed_umask() {
    // SAFETY: umask has no memory effects.
    unsafe { libc::umask(0o022) };
}

/// A fresh directory under the host's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "atoll-files-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        // The default mount is the cwd at its own (canonical) path.
        Self(fs::canonicalize(&path).unwrap())
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

/// Shows the start of a long output, for assertion messages.
fn excerpt(bytes: &[u8]) -> String {
    let shown = text(&bytes[..bytes.len().min(600)]);
    if bytes.len() > 600 {
        format!("{shown:?}... ({} bytes)", bytes.len())
    } else {
        format!("{shown:?}")
    }
}

fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed: {:?}\n{}", output.status, text(&output.stderr)))
}

/// `busybox ARGS` natively in `dir`, with the isle's environment.
fn native(busybox: &str, dir: &Path, args: &[&str], stdin: Option<PathBuf>) -> Output {
    Command::new(busybox)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", ISLE_PATH)
        .env("HOME", "/")
        .stdin(stdin_of(stdin))
        .output()
        .expect("busybox runs natively")
}

/// `atoll run ATOLL_ARGS PROGRAM ARGS` with the host cwd `dir`.
fn isle_program(
    dir: &Path,
    atoll_args: &[&str],
    program: &str,
    args: &[&str],
    stdin: Option<PathBuf>,
) -> Output {
    let _slot = isle_slot();
    atoll()
        .current_dir(dir)
        .arg("run")
        .args(atoll_args)
        .arg(program)
        .args(args)
        .stdin(stdin_of(stdin))
        .output()
        .expect("atoll runs")
}

/// `atoll run busybox ARGS` in `dir` (the isle mounts it by default).
fn isle(busybox: &str, dir: &Path, args: &[&str], stdin: Option<PathBuf>) -> Output {
    isle_program(dir, &[], busybox, args, stdin)
}

fn stdin_of(path: Option<PathBuf>) -> Stdio {
    match path {
        Some(path) => Stdio::from(fs::File::open(&path).unwrap()),
        None => Stdio::null(),
    }
}

/// A deterministic pseudo-random sequence (a 64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "island", "atoll", "reef", "lagoon", "coral", "tide",
    "wave", "sand", "palm", "harbor", "kernel", "monitor", "vcpu", "page", "table", "ring",
    "queue", "file", "mount", "path", "symlink", "inode", "block", "sector", "cache", "buffer",
    "Quick", "Brown", "Fox", "Lazy", "Dog", "x86", "linux", "static", "musl", "glibc",
];
const CITIES: &[&str] = &[
    "Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Perth", "Quito", "Tunis", "Riga", "Suva",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"];
const MODULES: &[&str] = &[
    "vmm::files",
    "kernel::fs",
    "cli::run",
    "vmm::vcpu",
    "kernel::io",
];

/// Writes the data set: ~1 MiB of text in a few files, nested directories,
/// a binary file, an empty file, a name with spaces, an executable and
/// symlinks (to a file, to a directory, and dangling); every mtime fixed.
fn populate(root: &Path) {
    let mut rng = Lcg(0x5eed);
    let write = |relative: &str, bytes: &[u8]| {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    };

    let mut words = String::new();
    let mut previous = String::new();
    for _ in 0..8000 {
        // Some lines repeat, so uniq has something to do.
        if rng.below(8) == 0 && !previous.is_empty() {
            words.push_str(&previous);
            continue;
        }
        let count = 3 + rng.below(6);
        let line: Vec<&str> = (0..count).map(|_| rng.pick(WORDS)).collect();
        previous = format!("{}\n", line.join(" "));
        words.push_str(&previous);
    }
    write("words.txt", words.as_bytes());

    let mut csv = String::from("id,name,city,score,flag\n");
    for id in 1..=6000 {
        csv.push_str(&format!(
            "{id},{}{},{},{},{}\n",
            rng.pick(WORDS),
            rng.below(100),
            rng.pick(CITIES),
            rng.below(100_000),
            ["yes", "no"][rng.below(2) as usize]
        ));
    }
    write("data.csv", csv.as_bytes());

    for (name, lines) in [("logs/app.log", 5000), ("logs/old/app.1.log", 800)] {
        let mut log = String::new();
        for n in 0..lines {
            log.push_str(&format!(
                "2024-03-{:02} {:02}:{:02}:{:02} {} {}: request {} took {} us\n",
                1 + n / 200,
                (n / 60) % 24,
                n % 60,
                rng.below(60),
                rng.pick(LEVELS),
                rng.pick(MODULES),
                rng.below(1_000_000),
                rng.below(50_000)
            ));
        }
        write(name, log.as_bytes());
    }

    write(
        "src/main.rs",
        b"fn main() {\n    println!(\"hello\");\n}\n\n// tab\there\n",
    );
    write(
        "src/lib/mod.rs",
        b"pub mod deep;\n\npub fn answer() -> u32 {\n    42\n}\n",
    );
    write(
        "src/lib/deep/leaf.rs",
        b"pub fn leaf() -> &'static str {\n    \"leaf\"\n}\n",
    );
    write("src/run.sh", b"#!/bin/sh\necho run\n");
    fs::set_permissions(root.join("src/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let blob: Vec<u8> = (0..65536).map(|_| rng.next() as u8).collect();
    write("bin/blob.bin", &blob);
    write("empty.txt", b"");
    write("notes with space.txt", b"a note\nwith two lines\n");
    std::os::unix::fs::symlink("logs/app.log", root.join("latest.log")).unwrap();
    std::os::unix::fs::symlink("src", root.join("srclink")).unwrap();
    std::os::unix::fs::symlink("missing-target", root.join("broken")).unwrap();
    set_times(root, FIXED_TIME);
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// Sets atime and mtime of everything under `root` (and root), children
/// first, without following symlinks.
fn set_times(root: &Path, seconds: i64) {
    let metadata = fs::symlink_metadata(root).unwrap();
    if metadata.is_dir() {
        for entry in fs::read_dir(root).unwrap() {
            set_times(&entry.unwrap().path(), seconds);
        }
    }
    let time = libc::timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    let times = [time, time];
    let path = c_path(root);
    // SAFETY: utimensat reads our path and two timespecs.
    let done = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(done, 0, "utimensat {}", root.display());
}

/// One entry of a directory tree, as compared between native and isle.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, size: u64, hash: u64 },
    Link { target: String },
    Other,
}

/// Every entry under `root`, by path relative to it.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let metadata = fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o7777;
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let node = if metadata.file_type().is_symlink() {
                Node::Link {
                    target: fs::read_link(&path).unwrap().display().to_string(),
                }
            } else if metadata.is_dir() {
                visit(root, &path, out);
                Node::Dir { mode }
            } else if metadata.is_file() {
                let mut hasher = DefaultHasher::new();
                hasher.write(&fs::read(&path).unwrap());
                Node::File {
                    mode,
                    size: metadata.len(),
                    hash: hasher.finish(),
                }
            } else {
                Node::Other
            };
            out.insert(name, node);
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// The differences between two trees, one line each.
fn tree_differences(native: &BTreeMap<String, Node>, isle: &BTreeMap<String, Node>) -> Vec<String> {
    let mut differences = Vec::new();
    for (name, node) in native {
        match isle.get(name) {
            None => differences.push(format!("  {name}: only natively ({node:?})")),
            Some(other) if other != node => {
                differences.push(format!("  {name}: native {node:?}, isle {other:?}"))
            }
            Some(_) => {}
        }
    }
    for (name, node) in isle {
        if !native.contains_key(name) {
            differences.push(format!("  {name}: only in the isle ({node:?})"));
        }
    }
    differences
}

/// How to compare a command's results.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Status, stdout and stderr byte for byte.
    Exact,
    /// Stdout as a sorted set of lines (directory order is not semantics).
    SortedLines,
    /// dd: stderr's first two lines only (the third has timings).
    DdStats,
}

/// busybox tar waits for a decompressor child it never forked; fork and the
/// wait family are out of scope.
const WAIT4_WARNING: &[&str] = &["atoll: unsupported syscall wait4 (61)"];

/// A data set twice: one copy for native runs, one for the isle.
struct Pair {
    busybox: &'static str,
    native: Scratch,
    isle: Scratch,
    mismatches: Vec<String>,
    /// Lines dropped from the isle's stderr before comparing.
    tolerated: Vec<&'static str>,
}

impl Pair {
    fn new(busybox: &'static str, label: &str) -> Self {
        fixed_umask();
        let native = Scratch::new(&format!("{label}-native"));
        let isle = Scratch::new(&format!("{label}-isle"));
        populate(native.path());
        populate(isle.path());
        Self {
            busybox,
            native,
            isle,
            mismatches: Vec::new(),
            tolerated: Vec::new(),
        }
    }

    /// Ignores these lines on the isle's stderr.
    fn tolerating(mut self, lines: &[&[&'static str]]) -> Self {
        self.tolerated = lines.concat();
        self
    }

    /// Runs `busybox ARGS` (stdin from `stdin`, a file in each copy) both
    /// ways and records any difference.
    fn check(&mut self, args: &[&str], stdin: Option<&str>, how: Compare) {
        let native = native(
            self.busybox,
            self.native.path(),
            args,
            stdin.map(|name| self.native.join(name)),
        );
        let isle = isle(
            self.busybox,
            self.isle.path(),
            args,
            stdin.map(|name| self.isle.join(name)),
        );
        let mut problems = Vec::new();
        if code(&native) != code(&isle) {
            problems.push(format!(
                "status: native {}, isle {}",
                code(&native),
                code(&isle)
            ));
        }
        let (native_out, isle_out) = if how == Compare::SortedLines {
            let sorted = |bytes: &[u8]| {
                let mut lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
                lines.sort();
                lines.concat()
            };
            (sorted(&native.stdout), sorted(&isle.stdout))
        } else {
            (native.stdout.clone(), isle.stdout.clone())
        };
        if native_out != isle_out {
            problems.push(format!(
                "stdout: native {}\n      isle   {}",
                excerpt(&native_out),
                excerpt(&isle_out)
            ));
        }
        let (native_err, isle_err) = if how == Compare::DdStats {
            let head = |bytes: &[u8]| text(bytes).lines().take(2).collect::<Vec<_>>().join("\n");
            (head(&native.stderr), head(&isle.stderr))
        } else {
            (text(&native.stderr), text(&isle.stderr))
        };
        let isle_err: String = isle_err
            .split_inclusive('\n')
            .filter(|line| !self.tolerated.contains(&line.trim_end_matches('\n')))
            .collect();
        if native_err != isle_err {
            problems.push(format!(
                "stderr: native {native_err:?}\n      isle   {isle_err:?}"
            ));
        }
        if !problems.is_empty() {
            let stdin = stdin.map_or(String::new(), |name| format!(" < {name}"));
            self.mismatches.push(format!(
                "busybox {}{stdin}:\n    {}",
                args.join(" "),
                problems.join("\n    ")
            ));
        }
    }

    fn exact(&mut self, args: &[&str]) {
        self.check(args, None, Compare::Exact);
    }

    fn sorted(&mut self, args: &[&str]) {
        self.check(args, None, Compare::SortedLines);
    }

    /// Records any difference between the two trees.
    fn compare_trees(&mut self, when: &str) {
        let differences = tree_differences(&tree(self.native.path()), &tree(self.isle.path()));
        if !differences.is_empty() {
            self.mismatches
                .push(format!("trees differ {when}:\n{}", differences.join("\n")));
        }
    }

    /// Panics listing every difference recorded.
    fn finish(self) {
        assert!(
            self.mismatches.is_empty(),
            "{} difference(s) between native busybox (cwd {}) and the isle (cwd {}):\n{}",
            self.mismatches.len(),
            self.native.path().display(),
            self.isle.path().display(),
            self.mismatches.join("\n")
        );
    }
}

#[test]
fn busybox_reads_and_transforms_files_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "read");
    pair.exact(&["cat", "words.txt", "notes with space.txt", "empty.txt"]);
    pair.exact(&["cat", "latest.log"]);
    pair.exact(&["cat", "missing.txt"]);
    pair.exact(&["cat", "broken"]);
    pair.exact(&["cat", "logs"]);
    pair.exact(&["head", "-n", "20", "words.txt"]);
    pair.exact(&["head", "-c", "1000", "bin/blob.bin"]);
    pair.exact(&["tail", "-n", "15", "logs/app.log"]);
    pair.exact(&["tail", "-c", "333", "data.csv"]);
    pair.exact(&["tail", "-n", "+7990", "words.txt"]);
    pair.exact(&["wc", "words.txt", "data.csv", "logs/app.log", "empty.txt"]);
    pair.exact(&["wc", "-l", "src/main.rs"]);
    pair.exact(&["sort", "words.txt"]);
    pair.exact(&["sort", "-u", "words.txt"]);
    pair.exact(&["sort", "-t", ",", "-k", "4", "-n", "-r", "data.csv"]);
    pair.exact(&["uniq", "-c", "words.txt"]);
    pair.exact(&["uniq", "-d", "words.txt"]);
    pair.exact(&["cut", "-d", ",", "-f", "2,4", "data.csv"]);
    pair.exact(&["cut", "-c", "1-19", "logs/app.log"]);
    pair.check(&["tr", "a-z", "A-Z"], Some("words.txt"), Compare::Exact);
    pair.check(&["tr", "-d", "0-9"], Some("data.csv"), Compare::Exact);
    pair.exact(&["grep", "-n", "ERROR", "logs/app.log"]);
    pair.exact(&[
        "grep",
        "-c",
        "-i",
        "warn",
        "logs/app.log",
        "logs/old/app.1.log",
    ]);
    pair.exact(&["grep", "-v", "a", "words.txt"]);
    pair.exact(&["grep", "-E", "^(atoll|reef) ", "words.txt"]);
    pair.exact(&["grep", "nothing-matches-this", "words.txt"]);
    pair.sorted(&["grep", "-r", "-l", "fn", "src"]);
    pair.sorted(&["grep", "-r", "-n", "pub", "."]);
    pair.exact(&["sed", "-n", "100,120p", "words.txt"]);
    pair.exact(&["sed", "s/,/;/g", "data.csv"]);
    pair.exact(&[
        "sed",
        "-e",
        "/DEBUG/d",
        "-e",
        "s/took/needed/",
        "logs/app.log",
    ]);
    pair.exact(&[
        "awk",
        "-F,",
        "NR > 1 { total += $4; if ($5 == \"yes\") yes++ } END { print total, yes, NR }",
        "data.csv",
    ]);
    pair.exact(&[
        "awk",
        "{ count[$3]++ } END { for (level in count) print level, count[level] }",
        "logs/app.log",
    ]);
    pair.exact(&[
        "awk",
        "length($0) > 50 { print FILENAME \":\" FNR }",
        "words.txt",
    ]);
    pair.exact(&[
        "md5sum",
        "words.txt",
        "data.csv",
        "bin/blob.bin",
        "empty.txt",
    ]);
    pair.exact(&[
        "sha256sum",
        "words.txt",
        "data.csv",
        "bin/blob.bin",
        "latest.log",
    ]);
    pair.exact(&["od", "-c", "src/main.rs"]);
    pair.exact(&["od", "-A", "x", "-t", "x1z", "-N", "256", "bin/blob.bin"]);
    pair.exact(&["xxd", "bin/blob.bin"]);
    pair.exact(&["xxd", "-l", "100", "-s", "4000", "words.txt"]);
    pair.exact(&["cmp", "words.txt", "words.txt"]);
    pair.exact(&["cmp", "words.txt", "data.csv"]);
    pair.exact(&["readlink", "latest.log"]);
    pair.exact(&["readlink", "srclink"]);
    pair.exact(&["seq", "1", "7", "500"]);
    pair.exact(&["seq", "-w", "0", "5", "100"]);
    pair.exact(&["printf", "%s=%05d\\n", "a", "1", "bee", "22"]);
    pair.exact(&["printf", "%x %o %c %.3f\\n", "255", "8", "A", "3.14159"]);
    pair.exact(&["expr", "6", "*", "7"]);
    pair.exact(&["expr", "length", "hello world"]);
    pair.exact(&["expr", "10", "/", "0"]);
    pair.finish();
}

#[test]
fn busybox_lists_directories_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "list");
    pair.sorted(&["find", "."]);
    pair.sorted(&["find", ".", "-name", "*.log"]);
    pair.sorted(&["find", ".", "-type", "d"]);
    pair.sorted(&["find", ".", "-type", "l"]);
    pair.sorted(&["find", "src", "-type", "f", "-name", "*.rs"]);
    pair.sorted(&["find", "-L", ".", "-type", "f", "-name", "*.rs"]);
    pair.sorted(&["find", ".", "-type", "f", "-size", "+100k"]);
    pair.sorted(&["find", ".", "-empty"]);
    pair.sorted(&["find", ".", "-perm", "-100", "-type", "f"]);
    pair.exact(&["ls"]);
    pair.exact(&["ls", "-ln"]);
    pair.exact(&["ls", "-lna", "logs"]);
    pair.exact(&["ls", "-lnR"]);
    pair.exact(&["ls", "-1F", "srclink/"]);
    pair.exact(&["ls", "-lnd", "src", "srclink", "broken", "missing"]);
    pair.sorted(&["du", "-a", "."]);
    pair.exact(&["du", "-s", "."]);
    pair.exact(&["du", "-sk", "logs", "src", "words.txt"]);
    pair.exact(&[
        "stat",
        "-c",
        "%n %s %F %a %h",
        "words.txt",
        "empty.txt",
        "src",
        "src/run.sh",
        "latest.log",
        "srclink",
        "broken",
    ]);
    pair.exact(&["stat", "-L", "-c", "%n %s %F %a", "latest.log", "srclink"]);
    pair.exact(&["stat", "-c", "%s", "nope"]);
    pair.finish();
}

/// realpath prints absolute paths: each copy's own.
#[test]
fn busybox_realpath_and_pwd_name_the_cwd() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    fixed_umask();
    let dir = Scratch::new("pwd");
    populate(dir.path());
    let output = isle(busybox, dir.path(), &["pwd"], None);
    assert_eq!(
        (code(&output), text(&output.stdout)),
        (0, format!("{}\n", dir.path().display())),
        "{}",
        text(&output.stderr)
    );
    let output = isle(
        busybox,
        dir.path(),
        &["realpath", "latest.log", "srclink/lib"],
        None,
    );
    assert_eq!(
        (code(&output), text(&output.stdout)),
        (
            0,
            format!(
                "{}\n{}\n",
                dir.join("logs/app.log").display(),
                dir.join("src/lib").display()
            )
        ),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn busybox_changes_trees_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "mutate");
    pair.exact(&["mkdir", "-p", "new/deep/er/est"]);
    pair.exact(&["mkdir", "new"]);
    pair.exact(&["mkdir", "-p", "words.txt/x"]);
    pair.exact(&["cp", "words.txt", "new/words-copy.txt"]);
    pair.exact(&["cp", "-r", "src", "src-copy"]);
    pair.exact(&["cp", "data.csv", "notes with space.txt", "logs"]);
    pair.exact(&["cp", "nope", "new/"]);
    pair.exact(&["mv", "logs/old/app.1.log", "new/deep/moved.log"]);
    pair.exact(&["mv", "src-copy", "src-moved"]);
    pair.exact(&["mv", "new/words-copy.txt", "new/deep/er"]);
    pair.exact(&["rm", "-r", "src-moved/lib"]);
    pair.exact(&["rm", "empty.txt", "broken"]);
    pair.exact(&["rm", "nope"]);
    pair.exact(&["rm", "logs"]);
    pair.exact(&["ln", "-s", "../words.txt", "new/words-link"]);
    pair.exact(&["readlink", "new/words-link"]);
    pair.exact(&["head", "-n", "3", "new/words-link"]);
    pair.exact(&["ln", "-s", "/nowhere/at/all", "new/absolute-link"]);
    pair.exact(&["readlink", "new/absolute-link"]);
    pair.exact(&["ln", "logs/app.log", "hard.log"]);
    pair.exact(&["stat", "-c", "%n %h %s", "hard.log", "logs/app.log"]);
    pair.exact(&["touch", "new/touched.txt", "words.txt"]);
    pair.exact(&["chmod", "600", "data.csv"]);
    pair.exact(&["chmod", "751", "new/deep"]);
    pair.exact(&["chmod", "-R", "go-rwx", "src"]);
    pair.exact(&["chmod", "+x", "bin/blob.bin"]);
    pair.check(
        &[
            "dd",
            "if=bin/blob.bin",
            "of=new/part.bin",
            "bs=4096",
            "count=3",
            "skip=2",
        ],
        None,
        Compare::DdStats,
    );
    pair.check(
        &[
            "dd",
            "if=words.txt",
            "of=new/middle.txt",
            "ibs=777",
            "obs=1000",
            "skip=3",
            "count=50",
        ],
        None,
        Compare::DdStats,
    );
    pair.check(
        &[
            "dd",
            "if=bin/blob.bin",
            "of=new/part.bin",
            "bs=512",
            "seek=20",
            "count=1",
            "conv=notrunc",
        ],
        None,
        Compare::DdStats,
    );
    pair.exact(&["sed", "-i", "s/alpha/ALPHA/g", "words.txt"]);
    pair.exact(&["sort", "-o", "sorted.txt", "words.txt"]);
    pair.exact(&["truncate", "-s", "1000", "new/deep/er/words-copy.txt"]);
    pair.exact(&["truncate", "-s", "5000", "new/grown.bin"]);
    pair.exact(&["rmdir", "new/deep/er/est"]);
    pair.exact(&["rmdir", "new"]);
    pair.check(
        &["tee", "new/tee.txt", "new/tee2.txt"],
        Some("data.csv"),
        Compare::Exact,
    );
    pair.check(
        &["tee", "-a", "new/tee.txt"],
        Some("words.txt"),
        Compare::Exact,
    );
    pair.compare_trees("after mkdir, cp, mv, rm, ln, touch, chmod, dd, sed -i, truncate, tee");
    pair.exact(&["rm", "-r", "new", "src", "srclink"]);
    pair.exact(&["rm", "-rf", "logs", "nope"]);
    pair.compare_trees("after rm -r");
    pair.finish();
}

/// touch on existing and new files: compared by existence and size (times
/// are the clock's).
#[test]
fn busybox_touch_creates_and_updates_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "touch");
    pair.exact(&["touch", "fresh.txt", "words.txt", "src/lib/new.rs"]);
    pair.exact(&["touch", "-c", "not-created.txt"]);
    pair.exact(&["touch", "no/such/dir/file"]);
    pair.compare_trees("after touch");
    for copy in [pair.native.path(), pair.isle.path()] {
        let mtime = fs::metadata(copy.join("words.txt")).unwrap().mtime();
        assert!(
            mtime > FIXED_TIME,
            "touch left words.txt's mtime alone in {}",
            copy.display()
        );
        assert_eq!(
            fs::metadata(copy.join("src/lib/mod.rs")).unwrap().mtime(),
            FIXED_TIME
        );
    }
    pair.finish();
}

/// cp -p and cp -a preserve modes, times and ownership, quietly.
#[test]
fn busybox_cp_preserving_attributes_is_quiet_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "cp-p");
    pair.exact(&["cp", "-p", "src/run.sh", "kept.sh"]);
    pair.exact(&["cp", "-a", "src", "src-archive"]);
    pair.compare_trees("after cp -p and cp -a");
    for copy in [pair.native.path(), pair.isle.path()] {
        for name in ["kept.sh", "src-archive/lib/deep/leaf.rs", "src-archive"] {
            assert_eq!(
                fs::symlink_metadata(copy.join(name)).unwrap().mtime(),
                FIXED_TIME,
                "{name}'s mtime not preserved in {}",
                copy.display()
            );
        }
    }
    pair.finish();
}

#[test]
fn busybox_tar_round_trips_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "tar").tolerating(&[WAIT4_WARNING]);
    pair.exact(&[
        "tar",
        "cf",
        "pack.tar",
        "src",
        "logs",
        "latest.log",
        "words.txt",
        "bin",
    ]);
    pair.exact(&["mkdir", "out"]);
    pair.exact(&["tar", "xf", "pack.tar", "-C", "out"]);
    // The archives list the same members (archive bytes may differ: tar
    // records times and owners as each side sees them).
    pair.sorted(&["tar", "tf", "pack.tar"]);
    let native_tree = tree(&pair.native.join("out"));
    let isle_tree = tree(&pair.isle.join("out"));
    let differences = tree_differences(&native_tree, &isle_tree);
    assert!(
        differences.is_empty(),
        "extracted trees differ:\n{}",
        differences.join("\n")
    );
    // And they hold what was archived, modes included.
    let archived: BTreeMap<String, Node> = tree(pair.native.path())
        .into_iter()
        .filter(|(name, _)| {
            ["src", "logs", "latest.log", "words.txt", "bin"]
                .iter()
                .any(|top| name == top || name.starts_with(&format!("{top}/")))
        })
        .collect();
    let differences = tree_differences(&archived, &native_tree);
    assert!(
        differences.is_empty(),
        "native extraction differs from the originals:\n{}",
        differences.join("\n")
    );
    // Extraction restored the archived mtimes of files in the isle too.
    for name in [
        "out/words.txt",
        "out/src/lib/deep/leaf.rs",
        "out/bin/blob.bin",
    ] {
        assert_eq!(
            fs::symlink_metadata(pair.isle.join(name)).unwrap().mtime(),
            FIXED_TIME,
            "{name}"
        );
    }
    // The isle's archive extracts natively to the same tree.
    fs::create_dir(pair.native.join("from-isle")).unwrap();
    let output = native(
        busybox,
        pair.native.path(),
        &[
            "tar",
            "xf",
            pair.isle.join("pack.tar").to_str().unwrap(),
            "-C",
            "from-isle",
        ],
        None,
    );
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let differences = tree_differences(&native_tree, &tree(&pair.native.join("from-isle")));
    assert!(
        differences.is_empty(),
        "the isle's archive extracts natively to a different tree:\n{}",
        differences.join("\n")
    );
    pair.finish();
}

#[test]
fn busybox_gzip_round_trips_as_natively() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "gzip");
    pair.exact(&["gzip", "-k", "words.txt"]);
    pair.exact(&["gzip", "-9", "data.csv", "logs/app.log"]);
    pair.compare_trees("after gzip");
    pair.exact(&["gunzip", "-c", "words.txt.gz"]);
    pair.exact(&["gunzip", "-c", "logs/app.log.gz", "data.csv.gz"]);
    pair.exact(&["gunzip", "data.csv.gz", "logs/app.log.gz"]);
    pair.exact(&["gunzip", "words.txt.gz"]);
    pair.compare_trees("after gunzip");
    pair.finish();

    // Round trip in the isle alone, and its .gz decompressing natively.
    fixed_umask();
    let dir = Scratch::new("gzip-alone");
    populate(dir.path());
    let original = fs::read(dir.join("words.txt")).unwrap();
    let output = isle(busybox, dir.path(), &["gzip", "words.txt"], None);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert!(!dir.join("words.txt").exists(), "gzip removes its input");
    let compressed = fs::read(dir.join("words.txt.gz")).unwrap();
    assert!(
        compressed.len() < original.len() / 2,
        "{} bytes",
        compressed.len()
    );
    let output = native(busybox, dir.path(), &["gunzip", "-c", "words.txt.gz"], None);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert!(
        output.stdout == original,
        "the isle's .gz decompresses natively to something else"
    );
    let output = isle(busybox, dir.path(), &["gunzip", "words.txt.gz"], None);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert!(
        fs::read(dir.join("words.txt")).unwrap() == original,
        "round trip changed words.txt"
    );
}

// ---------------------------------------------------------------- escapes

/// The secret's content, mode and mtime.
type SecretState = (String, u32, i64);

/// A mountable directory with a secret file next to it, and symlinks inside
/// pointing out.
struct Escape {
    base: Scratch,
    /// What must never appear in an isle's output.
    secret: String,
    /// The mount's tree as created.
    original: BTreeMap<String, Node>,
}

/// The first line of the host's /etc/shadow, which isles never see (or a
/// stand-in if unreadable).
fn shadow_line() -> String {
    fs::read_to_string("/etc/shadow")
        .ok()
        .and_then(|text| text.lines().next().map(str::to_string))
        .filter(|line| !line.is_empty())
        .unwrap_or_else(|| "root:*:".into())
}

impl Escape {
    fn new() -> Self {
        fixed_umask();
        let base = Scratch::new("escape");
        let secret = format!("TOP-SECRET-{}-do-not-leak", std::process::id());
        fs::write(base.join("secret"), format!("{secret}\n")).unwrap();
        fs::set_permissions(base.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
        let mnt = base.join("mnt");
        fs::create_dir_all(mnt.join("sub")).unwrap();
        fs::write(mnt.join("ok.txt"), b"inside\n").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, mnt.join(name)).unwrap();
        };
        link("/etc/shadow", "to-shadow");
        link("../secret", "up");
        link(base.join("secret").to_str().unwrap(), "host-absolute");
        link("..", "parent");
        link("../", "parent-slash");
        link("sub/../../secret", "sub-up");
        set_times(base.path(), FIXED_TIME);
        let original = tree(&mnt);
        Self {
            base,
            secret,
            original,
        }
    }

    fn mnt(&self) -> PathBuf {
        self.base.join("mnt")
    }

    fn state(&self) -> SecretState {
        let secret = self.base.join("secret");
        let metadata = fs::metadata(&secret).unwrap();
        (
            fs::read_to_string(&secret).unwrap(),
            metadata.permissions().mode() & 0o7777,
            metadata.mtime(),
        )
    }

    /// Puts the secret and the mount back as created.
    fn restore(&self) {
        let secret = self.base.join("secret");
        fs::write(&secret, format!("{}\n", self.secret)).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
        set_times(&secret, FIXED_TIME);
        for name in tree(&self.mnt()).keys() {
            if !self.original.contains_key(name) {
                let stray = self.mnt().join(name);
                let _ = fs::remove_file(&stray).or_else(|_| fs::remove_dir_all(&stray));
            }
        }
    }

    /// Records a problem if `output` succeeded, leaked the secret or
    /// /etc/shadow (on stdout, stderr or into a file in the mount), or
    /// changed the secret; then restores everything.
    fn refused(&self, what: &str, output: &Output, problems: &mut Vec<String>) {
        let out = text(&output.stdout);
        let err = text(&output.stderr);
        let shadow = shadow_line();
        if code(output) == 0 {
            problems.push(format!(
                "{what}: exit 0, stdout {}",
                excerpt(&output.stdout)
            ));
        }
        for leaked in [&self.secret, &shadow] {
            if out.contains(leaked.as_str()) || err.contains(leaked.as_str()) {
                problems.push(format!("{what}: LEAKED {leaked:?}: {out:?} {err:?}"));
            }
        }
        for (name, node) in tree(&self.mnt()) {
            let path = self.mnt().join(&name);
            if self.original.get(&name) != Some(&node) {
                let content = if matches!(node, Node::File { .. }) {
                    fs::read_to_string(&path).unwrap_or_default()
                } else {
                    String::new()
                };
                if content.contains(&self.secret) || content.contains(&shadow) {
                    problems.push(format!("{what}: LEAKED into the mount as {name}"));
                } else if self.original.contains_key(&name) {
                    problems.push(format!("{what}: changed {name} in the mount: {node:?}"));
                }
            }
        }
        let after = self.state();
        if after != (format!("{}\n", self.secret), 0o644, FIXED_TIME) {
            problems.push(format!("{what}: changed the secret outside: {after:?}"));
        }
        self.restore();
    }
}

#[test]
fn reads_cannot_leave_the_mounts() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let escape = Escape::new();
    let base = escape.base.path().display().to_string();
    let mut problems = Vec::new();

    // With -v MNT:/data (the cwd, the scratch dir, is not mounted).
    let volume = format!("{}:/data", escape.mnt().display());
    let host_secret = format!("{base}/secret");
    let attempts: Vec<Vec<&str>> = vec![
        vec!["cat", "../secret"],
        vec!["cat", "/data/../secret"],
        vec!["cat", "/data/sub/../../secret"],
        vec!["cat", "/data/./../secret"],
        vec!["cat", "/data/up"],
        vec!["cat", "/data/sub-up"],
        vec!["cat", "/data/to-shadow"],
        vec!["cat", "/data/host-absolute"],
        vec!["cat", "/data/parent/secret"],
        vec!["cat", "/data/parent-slash/secret"],
        vec!["cat", "/data/parent/parent/secret"],
        vec!["cat", "/etc/shadow"],
        vec!["cat", "/proc/self/root/etc/shadow"],
        vec!["cat", "/proc/self/cwd/../secret"],
        vec!["cat", "/proc/1/root/etc/shadow"],
        vec!["cat", &host_secret],
        vec!["head", "-c", "100", "/data/up"],
        vec!["cp", "/data/up", "/data/copied"],
        vec!["cp", "/data/../secret", "/data/copied"],
        vec!["ln", "/data/../secret", "/data/hard"],
        vec!["dd", "if=/data/up", "of=/data/copied"],
    ];
    for attempt in &attempts {
        let output = isle_program(escape.base.path(), &["-v", &volume], busybox, attempt, None);
        escape.refused(
            &format!("-v {volume} busybox {}", attempt.join(" ")),
            &output,
            &mut problems,
        );
    }

    // With the default mount: the cwd (MNT) at its own path.
    let attempts: Vec<Vec<&str>> = vec![
        vec!["cat", "../secret"],
        vec!["cat", "./sub/../../secret"],
        vec!["cat", "up"],
        vec!["cat", "sub-up"],
        vec!["cat", "to-shadow"],
        vec!["cat", "host-absolute"],
        vec!["cat", "parent/secret"],
        vec!["cat", "parent-slash/secret"],
        vec!["cat", &host_secret],
        vec!["cat", "/etc/shadow"],
        vec!["cat", "/proc/self/root/etc/shadow"],
        vec!["cat", "/proc/self/cwd/../secret"],
        vec!["cp", "../secret", "copied"],
        vec!["cp", "up", "copied"],
        vec!["ln", "../secret", "hard"],
        vec!["sort", "up"],
    ];
    for attempt in &attempts {
        let output = isle(busybox, &escape.mnt(), attempt, None);
        escape.refused(
            &format!("(cwd mount) busybox {}", attempt.join(" ")),
            &output,
            &mut problems,
        );
    }

    // Listings show nothing outside.
    for (atoll_args, args) in [
        (vec!["-v", volume.as_str()], vec!["find", "/data"]),
        (vec![], vec!["find", "."]),
        (vec![], vec!["ls", "-a", ".."]),
    ] {
        let output = isle_program(&escape.mnt(), &atoll_args, busybox, &args, None);
        let out = text(&output.stdout);
        if out
            .lines()
            .any(|line| line == "secret" || line.ends_with("/secret"))
        {
            problems.push(format!(
                "{atoll_args:?} busybox {}: lists the secret: {out:?}",
                args.join(" ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} escape(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Metadata changes through a symlink pointing out of the mount must not
/// reach the host file it names.
#[test]
fn metadata_changes_cannot_leave_the_mounts() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let escape = Escape::new();
    let volume = format!("{}:/data", escape.mnt().display());
    let mut problems = Vec::new();
    let mut check = |what: String, output: Output, must_fail: bool| {
        let (content, mode, mtime) = escape.state();
        if content != format!("{}\n", escape.secret) || mode != 0o644 || mtime != FIXED_TIME {
            problems.push(format!(
                "{what}: changed the secret outside the mount: mode {mode:o}, mtime {mtime} (was 644, {FIXED_TIME}); exit {}, stdout {:?}, stderr {:?}",
                code(&output),
                text(&output.stdout),
                text(&output.stderr)
            ));
        } else if must_fail && code(&output) == 0 {
            problems.push(format!("{what}: succeeded: {:?}", text(&output.stdout)));
        }
        // Put everything back for the next attempt.
        escape.restore();
    };

    // busybox touch: utimensat by path first. It may then legitimately
    // create a file inside the mount, but must leave the outside alone.
    for link in ["up", "host-absolute", "sub-up"] {
        let output = isle(busybox, &escape.mnt(), &["touch", link], None);
        check(format!("(cwd mount) busybox touch {link}"), output, false);
        let path = format!("/data/{link}");
        let output = isle_program(
            escape.base.path(),
            &["-v", &volume],
            busybox,
            &["touch", &path],
            None,
        );
        check(format!("-v {volume} busybox touch {path}"), output, false);
    }
    // busybox chmod stats first; chmod(2) itself goes straight to the path.
    let fsprobe = program(Flavor::Glibc, "fsprobe");
    let fsprobe = fsprobe.to_str().unwrap();
    for link in ["up", "host-absolute", "sub-up"] {
        let output = isle(busybox, &escape.mnt(), &["chmod", "600", link], None);
        check(
            format!("(cwd mount) busybox chmod 600 {link}"),
            output,
            true,
        );
        let output = isle_program(&escape.mnt(), &[], fsprobe, &["chmod", link, "600"], None);
        check(
            format!("(cwd mount) fsprobe chmod {link} 600"),
            output,
            true,
        );
        let path = format!("/data/{link}");
        let output = isle_program(
            escape.base.path(),
            &["-v", &volume],
            fsprobe,
            &["chmod", &path, "600"],
            None,
        );
        check(
            format!("-v {volume} fsprobe chmod {path} 600"),
            output,
            true,
        );
        // chown to -1, -1 changes nothing either way: only the result tells.
        let output = isle_program(&escape.mnt(), &[], fsprobe, &["chown", link], None);
        check(format!("(cwd mount) fsprobe chown {link}"), output, true);
    }
    assert!(
        problems.is_empty(),
        "{} escape(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A read-only mount and a read-write one side by side.
struct ReadOnly {
    base: Scratch,
    volumes: [String; 4],
}

impl ReadOnly {
    fn new() -> Self {
        fixed_umask();
        let base = Scratch::new("ro");
        let volumes = [
            "-v".to_string(),
            format!("{}:/ro:ro", base.join("ro").display()),
            "-v".to_string(),
            format!("{}:/rw", base.join("rw").display()),
        ];
        let setup = Self { base, volumes };
        setup.reset();
        setup
    }

    /// (Re)creates both trees.
    fn reset(&self) {
        for name in ["ro", "rw"] {
            let _ = fs::remove_dir_all(self.base.join(name));
        }
        populate(&self.base.join("ro"));
        fs::create_dir_all(self.base.join("rw")).unwrap();
        fs::write(self.base.join("rw/move-me.txt"), b"from the rw mount\n").unwrap();
    }

    /// The read-only tree with every mtime.
    fn ro_state(&self) -> Vec<(String, Node, i64)> {
        let root = self.base.join("ro");
        tree(&root)
            .into_iter()
            .map(|(name, node)| {
                let mtime = fs::symlink_metadata(root.join(&name)).unwrap().mtime();
                (name, node, mtime)
            })
            .collect()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let volumes: Vec<&str> = self.volumes.iter().map(String::as_str).collect();
        isle_program(self.base.path(), &volumes, program, args, None)
    }
}

#[test]
fn read_only_mounts_refuse_every_change() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let setup = ReadOnly::new();
    let before = setup.ro_state();
    let attempts: &[&[&str]] = &[
        &["touch", "/ro/new.txt"],
        &["touch", "/ro/words.txt"],
        &["touch", "-c", "/ro/words.txt"],
        &["mkdir", "/ro/newdir"],
        &["rm", "/ro/words.txt"],
        &["rm", "-r", "/ro/src"],
        &["rm", "-f", "/ro/latest.log"],
        &["rmdir", "/ro/logs/old"],
        &["mv", "/ro/words.txt", "/ro/renamed.txt"],
        &["mv", "/ro/src", "/ro/src2"],
        &["mv", "/rw/move-me.txt", "/ro/"],
        &["mv", "/rw/move-me.txt", "/ro/moved.txt"],
        &["cp", "/rw/move-me.txt", "/ro/copied.txt"],
        &["cp", "/rw/move-me.txt", "/ro/words.txt"],
        &["chmod", "777", "/ro/words.txt"],
        &["chmod", "-R", "700", "/ro/src"],
        &["ln", "-s", "anything", "/ro/new-link"],
        &["ln", "/ro/words.txt", "/ro/hard-link"],
        &["dd", "if=/rw/move-me.txt", "of=/ro/words.txt"],
        &[
            "dd",
            "if=/rw/move-me.txt",
            "of=/ro/words.txt",
            "conv=notrunc",
        ],
        &["truncate", "-s", "0", "/ro/words.txt"],
        &["sed", "-i", "s/alpha/omega/", "/ro/words.txt"],
        &["gzip", "/ro/data.csv"],
        &["tar", "cf", "/ro/pack.tar", "/ro/src"],
        &["tee", "/ro/tee.txt"],
    ];
    let mut problems = Vec::new();
    for attempt in attempts {
        let output = setup.run(busybox, attempt);
        let what = format!("busybox {}", attempt.join(" "));
        if code(&output) == 0 {
            problems.push(format!("{what}: exit 0"));
        } else if !text(&output.stderr).contains("Read-only file system") {
            problems.push(format!(
                "{what}: failed without EROFS: {:?}",
                text(&output.stderr)
            ));
        }
        if setup.ro_state() != before {
            let differences: Vec<String> = setup
                .ro_state()
                .into_iter()
                .filter(|entry| !before.contains(entry))
                .map(|entry| format!("{entry:?}"))
                .collect();
            problems.push(format!(
                "{what}: changed the read-only tree: {}",
                differences.join(", ")
            ));
            setup.reset();
        }
        if !setup.base.join("rw/move-me.txt").is_file() {
            problems.push(format!("{what}: lost /rw/move-me.txt"));
            setup.reset();
        }
    }
    // Reading still works.
    let output = setup.run(busybox, &["md5sum", "/ro/words.txt"]);
    let expected = native(
        busybox,
        &setup.base.join("ro"),
        &["md5sum", "words.txt"],
        None,
    );
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout).replace("/ro/", ""),
        text(&expected.stdout),
        "reading the read-only mount"
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// fchmod, futimens and fchown on an fd opened read-only in a read-only
/// mount fail with EROFS, as on Linux.
#[test]
fn read_only_mounts_refuse_changes_through_fds() {
    let setup = ReadOnly::new();
    let before = setup.ro_state();
    let fsprobe = program(Flavor::Glibc, "fsprobe");
    let mut problems = Vec::new();
    for args in [
        &["fchmod", "/ro/words.txt", "777"][..],
        &["futimens", "/ro/words.txt"],
        &["fchown", "/ro/words.txt"],
        &["chmod", "/ro/words.txt", "777"],
        &["chown", "/ro/words.txt"],
    ] {
        let output = setup.run(fsprobe.to_str().unwrap(), args);
        let out = text(&output.stdout);
        if args[0].starts_with('f') && !out.starts_with("open ok\n") {
            problems.push(format!(
                "fsprobe {}: couldn't even open: {out:?}",
                args.join(" ")
            ));
        } else if code(&output) == 0 || !out.ends_with("errno 30\n") {
            problems.push(format!(
                "fsprobe {}: expected EROFS (30), got exit {}: {out:?}",
                args.join(" "),
                code(&output)
            ));
        }
        let after = setup.ro_state();
        if after != before {
            let changed: Vec<String> = after
                .into_iter()
                .filter(|entry| !before.contains(entry))
                .map(|entry| format!("{entry:?}"))
                .collect();
            problems.push(format!(
                "fsprobe {}: changed the read-only tree: {}",
                args.join(" "),
                changed.join(", ")
            ));
            // Undo, so the next probe is judged on its own.
            fs::set_permissions(
                setup.base.join("ro/words.txt"),
                fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            set_times(&setup.base.join("ro/words.txt"), FIXED_TIME);
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A symlink with an absolute target inside the same mount, as the isle
/// names it, resolves as it does natively (where the same path works).
#[test]
fn absolute_symlinks_inside_a_mount_resolve_in_the_isles_namespace() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    fixed_umask();
    let dir = Scratch::new("abs-links");
    fs::create_dir_all(dir.join("data/sub")).unwrap();
    fs::write(dir.join("data/sub/target.txt"), b"reached\n").unwrap();
    // The default mount shows the cwd at its own path: a link to that path.
    let own_path = dir.join("data/sub/target.txt");
    std::os::unix::fs::symlink(&own_path, dir.join("data/own-path-link")).unwrap();
    // With -v DATA:/data, the isle names the file /data/sub/target.txt.
    std::os::unix::fs::symlink("/data/sub/target.txt", dir.join("data/guest-path-link")).unwrap();

    let mut problems = Vec::new();
    let output = isle(busybox, &dir.join("data"), &["cat", "own-path-link"], None);
    let native_output = native(busybox, &dir.join("data"), &["cat", "own-path-link"], None);
    if (code(&output), &output.stdout) != (0, &native_output.stdout) {
        problems.push(format!(
            "(cwd mount) busybox cat own-path-link (-> {}): exit {}, stdout {:?}, stderr {:?}; natively {:?}",
            own_path.display(),
            code(&output),
            text(&output.stdout),
            text(&output.stderr),
            text(&native_output.stdout)
        ));
    }
    let volume = format!("{}:/data", dir.join("data").display());
    let output = isle_program(
        dir.path(),
        &["-v", &volume],
        busybox,
        &["cat", "/data/guest-path-link"],
        None,
    );
    if (code(&output), text(&output.stdout)) != (0, "reached\n".to_string()) {
        problems.push(format!(
            "-v {volume} busybox cat /data/guest-path-link (-> /data/sub/target.txt): exit {}, stdout {:?}, stderr {:?}",
            code(&output),
            text(&output.stdout),
            text(&output.stderr)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// With -v, a host cwd that no mount shows is not the isle's: it starts at /.
#[test]
fn an_unmounted_host_cwd_is_not_the_isles() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let dir = Scratch::new("cwd");
    fs::create_dir_all(dir.join("data")).unwrap();
    let volume = format!("{}:/data", dir.join("data").display());
    let output = isle_program(dir.path(), &["-v", &volume], busybox, &["pwd"], None);
    assert_eq!(
        (code(&output), text(&output.stdout)),
        (0, "/\n".to_string()),
        "atoll run -v {volume} busybox pwd, from {}: the isle's cwd names a directory it \
         can't see (the host cwd's path, resolved in the private /tmp). stderr: {}",
        dir.path().display(),
        text(&output.stderr)
    );
}

/// Behind atoll's own checks, the host kernel confines the monitor's
/// threads that act on a running isle's requests: the offload server and
/// the pool worker blocked in the isle's read have no_new_privs and
/// atoll's two seccomp filters (the unit tests in vmm's sandbox show what
/// those filters refuse); the vCPU threads, which run only guest code,
/// need neither.
#[test]
fn the_threads_serving_a_running_isle_are_confined_by_the_host_kernel() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let dir = Scratch::new("confined");
    let _slot = isle_slot();
    // cat blocks reading its stdin: a pool worker holds that read.
    let mut child = atoll()
        .current_dir(dir.path())
        .args(["run", busybox, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atoll starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\n").unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert_eq!(first, "first\n", "{}", {
        let _ = child.kill();
        text(&child.wait_with_output().unwrap().stderr)
    });
    let pid = child.id();
    let mut threads: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let name = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let fields = status
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.to_string(), value.trim().to_string()))
            .collect();
        threads.push((name.trim().to_string(), fields));
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));

    let serving: Vec<_> = threads
        .iter()
        .filter(|(name, _)| ["atoll-offload", "atoll-io"].contains(&name.as_str()))
        .collect();
    let names: Vec<&str> = serving.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"atoll-offload") && names.contains(&"atoll-io"),
        "the isle's threads: {:?}",
        threads.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    for (name, fields) in serving {
        let field = |key: &str| fields.get(key).map(String::as_str).unwrap_or("absent");
        assert_eq!(field("Seccomp"), "2", "{name}: not in seccomp filter mode");
        assert_eq!(field("Seccomp_filters"), "2", "{name}: atoll's two filters");
        assert_eq!(field("NoNewPrivs"), "1", "{name}");
    }
}

// ----------------------------------------------------- a Rust std program

#[test]
fn rust_std_fs_behaves_as_natively() {
    fixed_umask();
    let fsops = program(Flavor::Rust, "fsops");
    let native_dir = Scratch::new("fsops-native");
    let isle_dir = Scratch::new("fsops-isle");
    let native = Command::new(&fsops)
        .arg("work")
        .current_dir(native_dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&native), 0, "natively: {}", text(&native.stderr));
    let isle = isle_program(
        isle_dir.path(),
        &[],
        fsops.to_str().unwrap(),
        &["work"],
        None,
    );
    let native_lines: Vec<String> = text(&native.stdout).lines().map(str::to_string).collect();
    let isle_lines: Vec<String> = text(&isle.stdout).lines().map(str::to_string).collect();
    let first_difference = native_lines
        .iter()
        .zip(&isle_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(native_lines.len().min(isle_lines.len()));
    assert_eq!(
        (code(&isle), text(&isle.stdout), text(&isle.stderr)),
        (0, text(&native.stdout), String::new()),
        "first difference at line {}: native {:?}, isle {:?}",
        first_difference + 1,
        native_lines.get(first_difference),
        isle_lines.get(first_difference)
    );
    // Both removed their trees at the end.
    assert!(!native_dir.join("work").exists());
    assert!(!isle_dir.join("work").exists());
}

/// Every C flavor opens and reads a file (musl passes O_LARGEFILE to open).
#[test]
fn c_programs_of_every_flavor_open_files() {
    fixed_umask();
    let dir = Scratch::new("open");
    fs::write(dir.join("file.txt"), vec![b'x'; 12345]).unwrap();
    for &flavor in Flavor::C {
        let fsprobe = program(flavor, "fsprobe");
        let output = isle_program(
            dir.path(),
            &[],
            fsprobe.to_str().unwrap(),
            &["read", "file.txt"],
            None,
        );
        assert_eq!(
            (code(&output), text(&output.stdout)),
            (0, "open ok\nread ok\n12345 bytes\n".to_string()),
            "{flavor}: {}",
            text(&output.stderr)
        );
    }
}

// ------------------------------------------------------------ private /tmp

#[test]
fn each_isle_has_a_private_tmp() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let probe = format!("atoll-private-probe-{}", std::process::id());
    let host_file = format!("atoll-host-only-{}", std::process::id());
    let host_tmp = Path::new("/tmp");
    fs::write(host_tmp.join(&host_file), b"host\n").unwrap();
    let dir = Scratch::new("tmp");
    let volume = format!("{}:/data", dir.path().display());

    let mut problems = Vec::new();
    for atoll_args in [vec![], vec!["-v", volume.as_str()]] {
        let probe_path = format!("/tmp/{probe}");
        let output = isle_program(
            dir.path(),
            &atoll_args,
            busybox,
            &["touch", &probe_path],
            None,
        );
        if code(&output) != 0 {
            problems.push(format!(
                "{atoll_args:?} busybox touch {probe_path}: exit {}: {}",
                code(&output),
                text(&output.stderr)
            ));
        }
        let output = isle_program(dir.path(), &atoll_args, busybox, &["ls", "/tmp"], None);
        let listing = text(&output.stdout);
        if code(&output) != 0 {
            problems.push(format!(
                "{atoll_args:?} busybox ls /tmp: exit {}: {}",
                code(&output),
                text(&output.stderr)
            ));
        }
        if listing.contains(&probe) {
            problems.push(format!(
                "{atoll_args:?}: a second isle sees the first one's /tmp: {listing:?}"
            ));
        }
        if listing.contains(&host_file) {
            problems.push(format!(
                "{atoll_args:?}: the isle sees the host's /tmp: {listing:?}"
            ));
        }
        let output = isle_program(
            dir.path(),
            &atoll_args,
            busybox,
            &["cat", &format!("/tmp/{host_file}")],
            None,
        );
        if code(&output) == 0 || text(&output.stdout).contains("host") {
            problems.push(format!(
                "{atoll_args:?}: the isle reads the host's /tmp/{host_file}"
            ));
        }
        if host_tmp.join(&probe).exists() {
            problems.push(format!("{atoll_args:?}: the probe reached the host's /tmp"));
            let _ = fs::remove_file(host_tmp.join(&probe));
        }
        // Nor is it left behind in a private /tmp atoll forgot to remove.
        for entry in fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("atoll-tmp-")
                && entry.path().join(&probe).exists()
            {
                problems.push(format!(
                    "{atoll_args:?}: {} outlived its isle",
                    entry.path().display()
                ));
            }
        }
    }
    fs::remove_file(host_tmp.join(&host_file)).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Entries atoll process `pid` has in the places private /tmps went.
fn private_tmps_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("atoll-tmp-{pid}-");
    [Path::new("/dev/shm").to_path_buf(), std::env::temp_dir()]
        .iter()
        .filter_map(|base| fs::read_dir(base).ok())
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

/// One way atoll is run for the private /tmp tests.
struct TmpRunner {
    who: &'static str,
    uid: u32,
    /// A copy of tmpfill this user can run.
    tmpfill: PathBuf,
    /// `atoll run`, as this user, in a directory of theirs.
    run: Box<dyn Fn() -> Command>,
}

/// As root (atoll makes the tmpfs itself) and, where the test can drop to
/// nobody, as nobody under QEMU (a helper in a user namespace of its own
/// makes it). `name` tells this test's nobody directory from others'.
fn tmp_runners(dir: &Path, name: &str) -> Vec<TmpRunner> {
    let dir = dir.to_path_buf();
    let mut runners = vec![TmpRunner {
        who: "root",
        uid: 0,
        tmpfill: program(Flavor::Musl, "tmpfill"),
        run: Box::new(move || {
            let mut run = atoll();
            run.current_dir(&dir).arg("run").stdin(Stdio::null());
            run
        }),
    }];
    if let Some(nobody) = AsNobody::new(name) {
        let own = nobody.owned_dir("work");
        runners.push(TmpRunner {
            who: "nobody",
            uid: NOBODY,
            tmpfill: nobody.copy(&program(Flavor::Musl, "tmpfill")),
            run: Box::new(move || {
                let mut run = nobody.atoll();
                run.current_dir(&own).arg("run").stdin(Stdio::null());
                run
            }),
        });
    }
    runners
}

/// An isle's /tmp and /dev/shm hold at most --tmp-size, or the memory limit
/// (-m), together: past it writes get ENOSPC, as on a full tmpfs; as root
/// and as another user.
#[test]
fn the_private_tmp_is_bounded() {
    let dir = Scratch::new("tmp-bound");
    for TmpRunner {
        who, tmpfill, run, ..
    } in tmp_runners(dir.path(), "tmp-bound")
    {
        for (atoll_args, path, bound) in [
            (&["--tmp-size", "8M"][..], "/tmp/fill", 8),
            (&["-m", "64M"][..], "/dev/shm/fill", 64),
        ] {
            let output = {
                let _slot = isle_slot();
                run()
                    .args(atoll_args)
                    .arg(&tmpfill)
                    .args([path, "100"])
                    .output()
                    .expect("atoll runs")
            };
            let said = text(&output.stdout);
            let written: u64 = said
                .strip_prefix("wrote ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|mib| mib.parse().ok())
                .unwrap_or(u64::MAX);
            assert!(
                said.ends_with(": No space left on device\n") && written <= bound,
                "as {who}, {atoll_args:?} writing 100 MiB to {path}: {said:?}, stderr {}",
                text(&output.stderr)
            );
            assert_eq!(code(&output), 1, "as {who}, {atoll_args:?}");
        }
        // A tmpfs of size 0 would have no bound at all.
        let output = {
            let _slot = isle_slot();
            run()
                .args(["--tmp-size", "0"])
                .arg(&tmpfill)
                .args(["/tmp/f", "1"])
                .output()
                .expect("atoll runs")
        };
        assert_eq!(code(&output), 2, "as {who}: {}", text(&output.stderr));
    }
}

/// While the isle runs, its /tmp lives on a tmpfs of mode 0700 that no
/// host path names; once atoll is killed (SIGKILL: no clean-up) nothing of
/// it is left; as root and as another user.
#[test]
fn a_killed_isles_tmp_leaves_nothing_behind() {
    let dir = Scratch::new("tmp-kill");
    for TmpRunner {
        who,
        uid,
        tmpfill,
        run,
    } in tmp_runners(dir.path(), "tmp-kill")
    {
        let _slot = isle_slot();
        let mut child = run()
            .arg(&tmpfill)
            .args(["/tmp/fill", "4", "wait"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("atoll starts");
        let pid = child.id();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let said: Vec<String> = lines.by_ref().take(2).map_while(Result::ok).collect();
        assert_eq!(said, ["wrote 4 MiB: done", "waiting"], "as {who}");
        // atoll reaches it through an fd of its own: find that directory
        // (setpriv execs atoll, so the pid is atoll's).
        let roots: Vec<(PathBuf, u32, u32)> = fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter(|fd| fd.path().join("tmp/fill").is_file())
            .map(|fd| {
                let meta = fs::metadata(fd.path()).unwrap();
                (fd.path(), meta.permissions().mode() & 0o7777, meta.uid())
            })
            .collect();
        assert!(
            !roots.is_empty(),
            "as {who}: no fd of atoll leads to the isle's /tmp"
        );
        for (root, mode, owner) in &roots {
            assert_eq!(
                *mode,
                0o700,
                "as {who}: {} is open to other users",
                root.display()
            );
            assert_eq!(
                *owner,
                uid,
                "as {who}: {} is not the user's",
                root.display()
            );
        }
        assert_eq!(
            private_tmps_of(pid),
            Vec::<PathBuf>::new(),
            "as {who}: a host path names it"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(private_tmps_of(pid), Vec::<PathBuf>::new(), "as {who}");
    }
}

// ------------------------------------------------- the isle's file system

/// The mount points hang off a root directory, as on Linux: `/` is a
/// directory, `..` of a mount's root is `/`, and `mkdir -p /abs/path`
/// (which busybox starts with mkdir("/"), expecting EEXIST) works.
#[test]
fn the_root_directory_exists_above_the_mounts() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    fixed_umask();
    let dir = Scratch::new("root");
    fs::write(dir.join("file.txt"), b"x\n").unwrap();
    let volume = format!("{}:/data", dir.path().display());
    let own_path = dir.join("own/deep").display().to_string();
    let mut problems = Vec::new();
    for (atoll_args, args, expected) in [
        (
            vec!["-v", volume.as_str()],
            vec!["ls", "-a", "/data"],
            ".\n..\nfile.txt\n",
        ),
        (
            vec!["-v", volume.as_str()],
            vec!["stat", "-c", "%F", "/", "/data/.."],
            "directory\ndirectory\n",
        ),
        (
            vec!["-v", volume.as_str()],
            vec!["mkdir", "-p", "/data/made/deep"],
            "",
        ),
        (vec![], vec!["mkdir", "-p", own_path.as_str()], ""),
    ] {
        let output = isle_program(dir.path(), &atoll_args, busybox, &args, None);
        if (code(&output), text(&output.stdout)) != (0, expected.to_string()) {
            problems.push(format!(
                "atoll run {} busybox {}: exit {}, stdout {:?}, stderr {:?}; expected {expected:?}",
                atoll_args.join(" "),
                args.join(" "),
                code(&output),
                text(&output.stdout),
                text(&output.stderr)
            ));
        }
    }
    for made in ["made/deep", "own/deep"] {
        if !dir.join(made).is_dir() {
            problems.push(format!("{made} wasn't created"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// /dev/null is there, as every Linux program expects: gzip -t writes to it.
#[test]
fn dev_null_is_there_as_on_linux() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let mut pair = Pair::new(busybox, "dev-null");
    pair.exact(&["gzip", "-k", "words.txt"]);
    pair.exact(&["gzip", "-t", "words.txt.gz"]);
    pair.exact(&["cat", "/dev/null"]);
    pair.check(
        &["dd", "if=words.txt", "of=/dev/null", "bs=4096"],
        None,
        Compare::DdStats,
    );
    pair.finish();
}

#[test]
fn positioned_vectored_io_close_range_and_record_locks_behave_as_natively() {
    assert_c_program_matches_native("fdcalls");
}

/// Host pipes keep their sizes as on Linux, sync(2) works (on the isle's
/// mounts only), and zero-length I/O never checks its buffer.
#[test]
fn pipe_sizes_sync_and_zero_length_io_behave_as_natively() {
    assert_c_program_matches_native("io_edges");
}

// ------------------------------------------- owners, set-id bits, umask

/// What `file_escapes` must print on a mount without `:owners`: no set-id
/// bit sticks (but S_ISGID on a directory), no file goes to another user.
const ESCAPES_REFUSED: &str = "\
open O_CREAT 06755: ok, mode 0755
chmod 04755: ok, mode 0755
fchmod 02755: ok, mode 0755
fchmodat 06711: ok, mode 0711
chown OTHER -1: Operation not permitted, mode 0711
chown -1 OTHER: Operation not permitted, mode 0711
fchown OTHER OTHER: Operation not permitted, mode 0711
fchownat OTHER AT_EMPTY_PATH: Operation not permitted, mode 0711
lchown link OTHER: Operation not permitted, mode 0711
fchownat link OTHER AT_SYMLINK_NOFOLLOW: Operation not permitted, mode 0711
chown link OTHER: Operation not permitted, mode 0711
chown -1 -1: ok, mode 0711
chown OWN OWN: ok, mode 0711
chmod 04755 after chown: ok, mode 0755
mkdir 07777: ok, mode 1777
chmod dir 02775: ok, mode 2775
chmod dir 04775: ok, mode 0775
chown dir OTHER: Operation not permitted, mode 0775
";

/// The host's files an isle is given to use, not to own: /dev/null, and
/// its stdio (here a file of the host's as stdin). Their owner, mode and
/// times stay as they were (found by the fuzz target, which had set the
/// host's /dev/null to mode 0000 through a guest fd).
#[test]
fn isles_cannot_change_the_host_files_they_are_given_to_use() {
    let dir = Scratch::new("host-files");
    let given = dir.join("given");
    fs::write(&given, "input\n").unwrap();
    fs::set_permissions(&given, fs::Permissions::from_mode(0o644)).unwrap();
    let facts = |path: &Path| {
        let meta = fs::metadata(path).unwrap();
        (
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.mtime_nsec(),
        )
    };
    let (null_before, given_before) = (facts(Path::new("/dev/null")), facts(&given));
    let refused: String = ["/dev/null", "stdin", "stdout", "dup of stdin"]
        .iter()
        .flat_map(|name| {
            ["fchmod 0", "fchown OTHER", "futimens 1970"]
                .map(|call| format!("{call} {name}: Operation not permitted\n"))
        })
        .collect();
    for &flavor in Flavor::C {
        let probe = program(flavor, "file_escapes");
        let output = isle_program(
            dir.path(),
            &[],
            probe.to_str().unwrap(),
            &["--host-files", "1234"],
            Some(given.clone()),
        );
        assert_eq!(code(&output), 0, "{flavor}: {}", text(&output.stderr));
        assert_eq!(text(&output.stdout), refused, "{flavor}");
        assert_eq!(
            facts(Path::new("/dev/null")),
            null_before,
            "{flavor}: /dev/null"
        );
        assert_eq!(
            facts(&given),
            given_before,
            "{flavor}: the file given as stdin"
        );
    }
}

/// Through a writable mount an isle can't leave the host holding a
/// setuid or setgid program, nor files of another user; `:owners` lets
/// it, as natively.
#[test]
fn isles_cannot_make_set_id_programs_or_give_files_away() {
    // SAFETY: geteuid and getegid only read our credentials.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let other = if uid == 1234 { 4321 } else { 1234 };
    let ids = [other.to_string(), uid.to_string(), gid.to_string()];
    for &flavor in Flavor::C {
        let probe = program(flavor, "file_escapes");
        let probe = probe.to_str().unwrap();
        let dir = Scratch::new("escapes");
        let mut args = vec![dir.path().to_str().unwrap()];
        args.extend(ids.iter().map(String::as_str));
        let output = isle_program(dir.path(), &[], probe, &args, None);
        assert_eq!(code(&output), 0, "{flavor}: {}", text(&output.stderr));
        assert_eq!(text(&output.stdout), ESCAPES_REFUSED, "{flavor}");
        for name in ["setid", "dir", "link"] {
            let meta = fs::symlink_metadata(dir.join(name)).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o4000),
                (uid, gid, 0),
                "{flavor}: {name} on the host"
            );
        }
        assert_eq!(fs::metadata(dir.join("setid")).unwrap().mode() & 0o6000, 0);

        // `:owners` keeps what the isle asks for, as a native run does.
        let native = Scratch::new("escapes-native");
        let mut native_args = vec![native.path().to_str().unwrap()];
        native_args.extend(ids.iter().map(String::as_str));
        let expected = {
            let _slot = isle_slot();
            Command::new(probe).args(&native_args).output().unwrap()
        };
        let owners = Scratch::new("escapes-owners");
        let volume = format!("{}:/data:owners", owners.path().display());
        let mut isle_args = vec!["/data"];
        isle_args.extend(ids.iter().map(String::as_str));
        let output = isle_program(dir.path(), &["-v", &volume], probe, &isle_args, None);
        assert_eq!(
            text(&output.stdout),
            text(&expected.stdout),
            "{flavor} :owners"
        );
    }
    // As an unprivileged user (under QEMU), the same refusals, and the
    // files are that user's.
    let Some(nobody) = AsNobody::new("file-escapes") else {
        return;
    };
    let probe = nobody.copy(&program(Flavor::Musl, "file_escapes"));
    let dir = nobody.owned_dir("escapes");
    let own = NOBODY.to_string();
    let output = {
        let _slot = isle_slot();
        nobody
            .atoll()
            .current_dir(&dir)
            .arg("run")
            .arg(&probe)
            .args([dir.to_str().unwrap(), &other.to_string(), &own, &own])
            .output()
            .unwrap()
    };
    assert_eq!(code(&output), 0, "as nobody: {}", text(&output.stderr));
    assert_eq!(text(&output.stdout), ESCAPES_REFUSED, "as nobody");
    for name in ["setid", "dir", "link"] {
        let meta = fs::symlink_metadata(dir.join(name)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o4000),
            (NOBODY, NOBODY, 0),
            "as nobody: {name} on the host"
        );
    }
}

/// New files, directories and Unix sockets get exactly the modes Linux
/// gives under the isle's umask (whatever atoll's own); open(O_PATH) and
/// linkat(AT_SYMLINK_FOLLOW) behave as natively, in musl as in glibc.
#[test]
fn new_files_get_the_isles_umask_and_path_calls_behave_as_natively() {
    for &flavor in Flavor::C {
        let probe = program(flavor, "file_modes");
        let dir = Scratch::new("modes");
        let native = {
            let _slot = isle_slot();
            Command::new(&probe).arg(dir.path()).output().unwrap()
        };
        assert!(
            native.status.success(),
            "{flavor}: {}",
            text(&native.stderr)
        );
        let output = isle_program(
            dir.path(),
            &[],
            probe.to_str().unwrap(),
            &[dir.path().to_str().unwrap()],
            None,
        );
        assert_eq!(code(&output), 0, "{flavor}: {}", text(&output.stderr));
        assert_eq!(text(&output.stdout), text(&native.stdout), "{flavor}");
    }
}

/// `-v` options are ro, rw and owners, comma-separated, each at most once;
/// anything else is a one-line error, not a mount at a strange path.
#[test]
fn volume_options_are_checked() {
    let dir = Scratch::new("volume-options");
    let host = dir.path().display().to_string();
    for (spec, needle) in [
        (format!("{host}:/x:ro:ro"), "use HOST:GUEST[:OPTIONS]"),
        (format!("{host}:/x:ro,ro"), "'ro' given twice"),
        (format!("{host}:/x:ro,rw"), "contradict"),
        (format!("{host}:/x:rox"), "unknown option 'rox'"),
        (format!("{host}:/x:"), "unknown option ''"),
    ] {
        let hello = program(Flavor::Musl, "hello");
        let output = run(&["run", "-v", &spec, hello.to_str().unwrap()]);
        assert_one_line_error(&output, 2, &[needle]);
    }
}

/// atoll's own files keep atoll's umask whatever the isle's: the registry
/// it rewrites as the isle ends is not world-writable.
#[test]
fn atolls_own_files_keep_its_umask() {
    fixed_umask();
    let scratch = Scratch::new("runtime");
    // One atoll makes itself, as on a fresh machine.
    let runtime = scratch.path().join("registry");
    let dir = Scratch::new("own-umask");
    let probe = program(Flavor::Musl, "file_modes");
    let output = {
        let _slot = isle_slot();
        atoll()
            .current_dir(dir.path())
            .env("ATOLL_RUNTIME_DIR", &runtime)
            .arg("run")
            .arg(&probe)
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let mut pending = vec![runtime.clone()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            meta.mode() & 0o002,
            0,
            "{} is world-writable",
            path.display()
        );
        if meta.is_dir() {
            pending.extend(
                fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|entry| entry.path()),
            );
        } else {
            files += 1;
        }
    }
    assert!(files > 0, "atoll wrote nothing to {}", runtime.display());
}
