//! Prints `about to fault`, flushes, then reads through a null pointer.

use std::io::{self, Write};

fn main() {
    println!("about to fault");
    io::stdout().flush().expect("flush stdout");
    // Hide the null from the optimiser (and from the null-argument lints) so
    // the load really is emitted.
    let p: *const u64 = std::hint::black_box(core::ptr::null::<u64>());
    // SAFETY: none — this is deliberately undefined behaviour. The program
    // exists to take a page fault on address 0 so that the monitor's
    // fault reporting can be tested; it must never return from this read.
    let value = unsafe { std::ptr::read_volatile(p) };
    println!("read {value}"); // never reached
}
