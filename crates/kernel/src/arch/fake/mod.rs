//! The host tests' stand-in for `arch::x86_64`: the functions the kernel's
//! logic calls, over simulated guest memory and a settable CPU index, and
//! none of the assembly. Each test thread has its own simulated machine.

pub mod cpu;
pub mod entry;
pub mod switch;
pub mod user;
