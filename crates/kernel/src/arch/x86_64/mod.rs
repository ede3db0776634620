//! x86_64: entry points, CPU access, guest-memory access, the vDSO's code.

pub mod cpu;
pub mod entry;
pub mod pvh;
pub mod switch;
pub mod user;
pub mod vdso;
