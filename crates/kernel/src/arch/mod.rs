//! Architecture code: all assembly and nearly all `unsafe` of the kernel lives below.
//!
//! Host unit tests get `fake/` in its place: the same functions over
//! simulated memory, so the kernel's logic runs unchanged in a test process.
#![allow(unsafe_code)]

mod syscall_frame;

#[cfg(not(test))]
pub mod x86_64;

#[cfg(test)]
#[path = "fake/mod.rs"]
pub mod x86_64;
