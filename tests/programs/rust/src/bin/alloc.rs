//! `alloc vec [SIZE_MIB]`: allocates a `Vec<u8>` of SIZE_MIB MiB (default 200)
//! via `resize`, writes every 4096th byte, sums them back to verify, drops it,
//! and does it all twice. Prints `alloc vec SIZE MiB ok`.

use std::env;
use std::hint::black_box;
use std::process::ExitCode;

const STRIDE: usize = 4096;

fn round(size: usize, round: u64) -> Result<(), String> {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(size)
        .map_err(|e| format!("reserving {size} bytes: {e}"))?;
    v.resize(size, 0);
    let mut v = black_box(v);

    let mut expected: u64 = 0;
    for (n, off) in (0..size).step_by(STRIDE).enumerate() {
        let value = (n as u64).wrapping_mul(7).wrapping_add(round * 13 + 1) as u8;
        v[off] = value;
        expected += u64::from(value);
    }
    let v = black_box(v);
    let got: u64 = v.iter().step_by(STRIDE).map(|&b| u64::from(b)).sum();
    if got != expected {
        return Err(format!(
            "verify mismatch (round {round}): expected sum {expected}, got {got}"
        ));
    }
    drop(v);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    if mode != "vec" {
        println!("alloc failed: unknown mode {mode:?} (want vec)");
        return ExitCode::FAILURE;
    }
    let mib: usize = match args.get(2).map(|s| s.parse()) {
        None => 200,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            println!("alloc failed: bad size {:?}", args[2]);
            return ExitCode::FAILURE;
        }
    };
    for r in 0..2 {
        if let Err(e) = round(mib << 20, r) {
            println!("alloc failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("alloc vec {mib} MiB ok");
    ExitCode::SUCCESS
}
