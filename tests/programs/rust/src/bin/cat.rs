//! Copies stdin to stdout with `std::io::copy` on the locked handles.

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    let stdin = io::stdin();
    let stdout = io::stdout();
    match io::copy(&mut stdin.lock(), &mut stdout.lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cat: {e} (errno={})", e.raw_os_error().unwrap_or(0));
            ExitCode::FAILURE
        }
    }
}
