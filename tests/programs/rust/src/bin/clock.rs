//! Prints `realtime_ns=N` (SystemTime since the epoch), then checks that
//! `Instant` advances across a 100 ms `thread::sleep` and prints `instant_ok`
//! and `slept_ns=N`.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let realtime = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("clock: realtime is before the epoch: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("realtime_ns={}", realtime.as_nanos());

    let before = Instant::now();
    thread::sleep(Duration::from_millis(100));
    let after = Instant::now();
    if after <= before {
        eprintln!("clock: Instant did not advance across a 100 ms sleep");
        return ExitCode::FAILURE;
    }
    println!("instant_ok");
    println!("slept_ns={}", after.duration_since(before).as_nanos());
    ExitCode::SUCCESS
}
