//! Arbitrary ring and memory contents against the host's request decoder
//! and server (see `atoll_vmm::fuzzing` for the input layout and checks).
#![no_main]

use std::sync::{Mutex, OnceLock};

use atoll_vmm::fuzzing::Harness;
use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();

fuzz_target!(|input: &[u8]| {
    let harness = HARNESS.get_or_init(|| Mutex::new(Harness::new()));
    harness.lock().unwrap_or_else(|e| e.into_inner()).run(input);
});
