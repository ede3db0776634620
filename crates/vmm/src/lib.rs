//! The atoll monitor: builds an isle on KVM and serves it.
//!
//! - [`memory`]: guest RAM on populated huge pages.
//! - [`loader`]: ELF loading (kernel and program) and the initial stack.
//! - [`setup`]: page tables, descriptor tables, the system area, boot info.
//! - [`vcpu`]: KVM VM and vCPU state, the run loop and doorbells.
//! - [`offload`]: the host side of the offload queue.
//! - [`rewrite`]: syscall sites turned into jumps to the kernel, at load time.
//! - [`vdso`]: the program's vDSO (clocks without entering the kernel).
//! - [`backend`]: what runs the vCPUs: our KVM monitor, or QEMU.
//! - [`isle`]: puts them together: [`isle::run`].
//! - [`alloc`]: the `atoll` process's allocator (large buffers on huge pages).
//! - `fuzzing` (feature `fuzzing`): the offload server as the fuzz target drives it.
#![deny(unsafe_code)]

pub mod alloc;
pub mod backend;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod guest;
pub mod host;
pub mod image;
pub mod isle;
pub mod offload;
pub mod sandbox;

pub use backend::qemu::QemuOptions;
pub use backend::{BackendChoice, GdbOptions};
pub use isle::{run, IsleConfig, IsleError, Outcome};
pub use offload::net::NetPolicy;
pub use sandbox::MountSpec;
