//! Same behaviour as hello.c: prints `Hello, ARGS` (argv[1..] joined by
//! spaces, or `world`), then for every name in the comma-separated `SHOW_ENV`
//! prints `NAME=value` or `NAME unset`.

use std::env;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

fn run() -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());

    out.write_all(b"Hello, ")?;
    let args: Vec<_> = env::args_os().skip(1).collect();
    if args.is_empty() {
        out.write_all(b"world")?;
    } else {
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                out.write_all(b" ")?;
            }
            out.write_all(arg.as_bytes())?;
        }
    }
    out.write_all(b"\n")?;

    if let Some(show) = env::var_os("SHOW_ENV") {
        for name in show.as_bytes().split(|&b| b == b',') {
            if name.is_empty() {
                continue;
            }
            out.write_all(name)?;
            match env::var_os(OsStr::from_bytes(name)) {
                Some(value) => {
                    out.write_all(b"=")?;
                    out.write_all(value.as_bytes())?;
                }
                None => out.write_all(b" unset")?,
            }
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            ExitCode::FAILURE
        }
    }
}
