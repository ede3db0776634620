//! The guest: its RAM and what the monitor writes into it before boot.
//!
//! - [`memory`]: guest RAM on populated huge pages (or a memfd for QEMU),
//!   populate and release, slot attachment.
//! - [`setup`]: the memory layout, page tables, GDT/IDT/TSS, per-CPU areas,
//!   the boot info and the program's initial stack.

pub mod memory;
pub mod setup;
