//! The atoll monitor: builds an isle on KVM and serves it. The tree is the
//! design:
//!
//! - [`isle`]: puts the rest together: [`isle::run`].
//! - [`program_signals`]: signals sent to atoll, passed on to the running
//!   isle's program.
//! - `process`: the isle's processes: fork (a host fork of the monitor), wait.
//! - `guest/`: guest RAM (`memory`) and what is written into it before boot
//!   (`setup`: page tables, descriptor tables, the system area, boot info).
//! - [`image`]: the program and kernel images: `loader` (ELF loading and
//!   checks), `rewrite` (syscall sites turned into jumps to the kernel),
//!   `vdso`.
//! - [`backend`]: what runs the vCPUs: `kvm/` (our KVM monitor, with `vcpu`,
//!   `preempt` and its GDB stub `gdb`), or `qemu`.
//! - `offload/`: the host side of the offload queue: the server loop and
//!   parking, the worker `pool`, the opcode `dispatch`, and the handlers by
//!   family (`io`, `fs`, `events`, `net/`, `file_mapping`).
//! - [`sandbox`]: the monitor's confinement (Landlock, seccomp) and the
//!   isle's view of files: `mounts`, `resolve`, `path_ops`, `fdtable`.
//! - [`host`]: the few raw host calls and facts.
//! - [`alloc`] (in `host`): the `atoll` process's allocator (large buffers on
//!   huge pages).
//! - `fuzzing` (feature `fuzzing`): the offload server as the fuzz target drives it.
#![deny(unsafe_code)]

pub mod backend;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod guest;
pub mod host;
// The allocator lives with the raw host calls; `atoll_vmm::alloc` stays its name.
pub use host::alloc;
pub mod image;
pub mod isle;
pub(crate) mod offload;
pub(crate) mod process;
pub mod program_signals;
pub mod sandbox;

pub use backend::qemu::QemuOptions;
pub use backend::{BackendChoice, GdbOptions};
pub use isle::{run, IsleConfig, IsleError, Outcome};
pub use offload::net::NetPolicy;
pub use sandbox::MountSpec;
