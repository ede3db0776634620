//! x86_64: entry points, CPU access, guest-memory access.

pub mod cpu;
pub mod entry;
pub mod switch;
pub mod user;
