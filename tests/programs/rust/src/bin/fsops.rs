//! Walks through std::fs step by step in a fresh directory (argv[1], a
//! relative path the program creates), printing one deterministic line per
//! step: paths relative to the starting directory, never absolute, so a run
//! on Linux and a run in an isle print exactly the same.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The deterministic content of `big.bin`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + i / 977) % 251) as u8).collect()
}

/// `name` relative to `root`, or the whole path if it isn't under it.
fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn kind(metadata: &fs::Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "dir"
    } else if file_type.is_file() {
        "file"
    } else {
        "other"
    }
}

/// Every entry under `dir`, depth first in name order: `path kind size`.
fn walk(dir: &Path, out: &mut impl Write) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for path in entries {
        let metadata = fs::symlink_metadata(&path)?;
        let size = if metadata.is_file() {
            metadata.len()
        } else {
            0
        };
        writeln!(
            out,
            "walk: {} {} {size} {:o}",
            path.display(),
            kind(&metadata),
            metadata.permissions().mode() & 0o777
        )?;
        if metadata.is_dir() {
            walk(&path, out)?;
        }
    }
    Ok(())
}

fn run(base: &str, out: &mut impl Write) -> io::Result<()> {
    let start = env::current_dir()?;
    let root = Path::new(base);
    writeln!(out, "start: cwd absolute={}", start.is_absolute())?;

    fs::create_dir_all(root.join("a/b/c"))?;
    fs::create_dir_all(root.join("a/b/c"))?;
    writeln!(out, "create_dir_all: {base}/a/b/c twice ok")?;
    let err = fs::create_dir(root.join("a")).unwrap_err();
    writeln!(out, "create_dir existing: {:?}", err.kind())?;

    let one = root.join("a/one.txt");
    File::create(&one)?.write_all(b"first line\n")?;
    OpenOptions::new()
        .append(true)
        .open(&one)?
        .write_all(b"second line\n")?;
    let mut text = String::new();
    File::open(&one)?.read_to_string(&mut text)?;
    writeln!(out, "append then read_to_string: {text:?}")?;

    let big = root.join("a/b/big.bin");
    fs::write(&big, pattern(200_000))?;
    let back = fs::read(&big)?;
    writeln!(
        out,
        "write/read big.bin: {} bytes, same={}",
        back.len(),
        back == pattern(200_000)
    )?;

    let mut names: Vec<String> = fs::read_dir(root.join("a"))?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort();
    writeln!(out, "read_dir a: {}", names.join(","))?;

    let a = fs::metadata(root.join("a"))?;
    let meta = fs::metadata(&one)?;
    writeln!(
        out,
        "metadata: a is_dir={} is_file={}; one.txt is_dir={} is_file={} len={} mode={:o}",
        a.is_dir(),
        a.is_file(),
        meta.is_dir(),
        meta.is_file(),
        meta.len(),
        meta.permissions().mode() & 0o777
    )?;

    fs::set_permissions(&one, fs::Permissions::from_mode(0o600))?;
    writeln!(
        out,
        "set_permissions 600: mode={:o}",
        fs::metadata(&one)?.permissions().mode() & 0o777
    )?;

    let renamed = root.join("a/b/c/renamed.txt");
    fs::rename(&one, &renamed)?;
    writeln!(
        out,
        "rename: old exists={} new exists={} content={:?}",
        one.exists(),
        renamed.exists(),
        fs::read_to_string(&renamed)?
    )?;

    let copy = root.join("a/big-copy.bin");
    let copied = fs::copy(&big, &copy)?;
    writeln!(
        out,
        "copy: {copied} bytes, same={}, mode={:o}",
        fs::read(&copy)? == pattern(200_000),
        fs::metadata(&copy)?.permissions().mode() & 0o777
    )?;

    let mut file = File::open(&copy)?;
    file.seek(SeekFrom::Start(100_000))?;
    let mut sixteen = [0u8; 16];
    file.read_exact(&mut sixteen)?;
    let end = file.seek(SeekFrom::End(-10))?;
    writeln!(out, "seek: at 100000 {sixteen:02x?}, end-10={end}")?;

    OpenOptions::new().write(true).open(&copy)?.set_len(1000)?;
    writeln!(out, "set_len: len={}", fs::metadata(&copy)?.len())?;

    let link = root.join("a/link");
    std::os::unix::fs::symlink("b/big.bin", &link)?;
    let lmeta = fs::symlink_metadata(&link)?;
    writeln!(
        out,
        "symlink: read_link={} symlink_metadata is_symlink={} metadata len={}",
        fs::read_link(&link)?.display(),
        lmeta.file_type().is_symlink(),
        fs::metadata(&link)?.len()
    )?;
    let dangling = root.join("a/dangling");
    std::os::unix::fs::symlink("nowhere", &dangling)?;
    writeln!(
        out,
        "dangling symlink: exists={} symlink_metadata ok={} metadata: {:?}",
        dangling.exists(),
        fs::symlink_metadata(&dangling).is_ok(),
        fs::metadata(&dangling).unwrap_err().kind()
    )?;

    let hard = root.join("a/hard.txt");
    fs::hard_link(&renamed, &hard)?;
    writeln!(
        out,
        "hard_link: nlink={} content={:?}",
        fs::metadata(&renamed)?.nlink(),
        fs::read_to_string(&hard)?
    )?;

    let err = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&hard)
        .unwrap_err();
    writeln!(out, "create_new existing: {:?}", err.kind())?;
    let err = File::open(root.join("a/missing")).unwrap_err();
    writeln!(out, "open missing: {:?}", err.kind())?;
    let err = File::open(root.join("a/b/c/renamed.txt/x")).unwrap_err();
    writeln!(out, "open through a file: {:?}", err.raw_os_error())?;

    fs::remove_file(&hard)?;
    writeln!(
        out,
        "remove_file: exists={} nlink={}",
        hard.exists(),
        fs::metadata(&renamed)?.nlink()
    )?;

    let canonical = fs::canonicalize(&link)?;
    let expected = start.join(root).join("a/b/big.bin");
    writeln!(
        out,
        "canonicalize link: absolute={} ends with {base}/a/b/big.bin={} equals cwd-joined={}",
        canonical.is_absolute(),
        canonical.ends_with(root.join("a/b/big.bin")),
        canonical == expected
    )?;
    let canonical = fs::canonicalize(root.join("a/b/c/../../b/./c"))?;
    writeln!(out, "canonicalize dots: {}", rel(&start, &canonical))?;
    let dot = fs::canonicalize(".")?;
    writeln!(out, "canonicalize . equals current_dir: {}", dot == start)?;

    env::set_current_dir(root.join("a/b"))?;
    let here = env::current_dir()?;
    writeln!(
        out,
        "set_current_dir: current_dir={} relative read={:?}",
        rel(&start, &here),
        fs::read_to_string("c/renamed.txt")?
    )?;
    File::create("made-here.txt")?.write_all(b"relative create\n")?;
    env::set_current_dir("..")?;
    writeln!(
        out,
        "set_current_dir ..: current_dir={} sees b/made-here.txt={}",
        rel(&start, &env::current_dir()?),
        Path::new("b/made-here.txt").is_file()
    )?;
    env::set_current_dir(&start)?;
    writeln!(out, "back: cwd restored={}", env::current_dir()? == start)?;

    walk(root, out)?;

    let err = fs::remove_dir(root.join("a/b")).unwrap_err();
    writeln!(out, "remove_dir non-empty: {:?}", err.kind())?;
    fs::remove_dir_all(root.join("a/b"))?;
    writeln!(
        out,
        "remove_dir_all a/b: exists={} a exists={}",
        root.join("a/b").exists(),
        root.join("a").exists()
    )?;
    fs::remove_dir_all(root)?;
    writeln!(out, "remove_dir_all {base}: exists={}", root.exists())?;
    Ok(())
}

fn main() -> ExitCode {
    let Some(base) = env::args().nth(1) else {
        eprintln!("usage: fsops RELATIVE-DIR");
        return ExitCode::from(2);
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(&base, &mut out);
    let flushed = out.flush();
    match result.and(flushed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fsops: {e}");
            ExitCode::FAILURE
        }
    }
}
