//! The no_std contract between an isle (the guest kernel) and its host (the monitor).
//!
//! Everything here is plain `repr(C)` data and constants shared by both sides:
//! where things live in guest memory ([`layout`]), what the monitor hands the
//! kernel at boot ([`boot`]), the offload queue format ([`queue`]), the doorbells
//! the kernel rings with single MMIO writes ([`mmio`]) and the Linux constants
//! both sides need ([`linux`], [`syscalls`]) and the memory map both keep
//! ([`regions`]).
#![no_std]
#![deny(unsafe_code)]

pub mod boot;
pub mod layout;
pub mod linux;
pub mod mmio;
pub mod queue;
pub mod regions;
pub mod syscalls;
pub mod xstate;
