//! Same output as bigout.c: exactly N bytes (argv[1], default 1048576) where
//! byte i = (i * 131 + i / 251) & 0xff, written in 4096-byte chunks.

use std::env;
use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let total: u64 = match env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(n) => n,
            Err(e) => {
                eprintln!("bigout: bad size {arg:?}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => 1_048_576,
    };

    let stdout = io::stdout();
    // StdoutLock is line-buffered; every chunk below is handed over whole, so
    // write directly and let write_all cope with short writes.
    let mut out = stdout.lock();
    let mut buf = [0u8; 4096];
    let mut i: u64 = 0;
    while i < total {
        let chunk = (total - i).min(buf.len() as u64) as usize;
        for (j, byte) in buf[..chunk].iter_mut().enumerate() {
            let k = i + j as u64;
            *byte = (k.wrapping_mul(131).wrapping_add(k / 251) & 0xff) as u8;
        }
        if let Err(e) = out.write_all(&buf[..chunk]) {
            eprintln!("bigout: write error: {e}");
            return ExitCode::FAILURE;
        }
        i += chunk as u64;
    }
    match out.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bigout: flush error: {e}");
            ExitCode::FAILURE
        }
    }
}
