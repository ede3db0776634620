//! The images an isle boots: the program and the kernel.
//!
//! - [`loader`]: ELF loading (kernel and program), every header checked.
//! - `rewrite`: the program's syscall sites turned into jumps to the
//!   kernel, at load time.
//! - `vdso`: the program's vDSO (clocks without entering the kernel).

pub mod loader;
pub(crate) mod rewrite;
pub(crate) mod vdso;
