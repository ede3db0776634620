//! atoll's resource manager: isles side by side on partitioned cores and
//! memory.
//!
//! - [`topology`]: the host's cores, SMT siblings, NUMA nodes and memory.
//! - [`config`]: the host's configuration (Linux's cores, partitions).
//! - [`policy`]: who gets which cores and memory (a pure function).
//! - [`state`]: the running isles, shared by every `atoll` command under a
//!   lock, with stale ones reclaimed.
#![deny(unsafe_code)]

pub mod config;
pub mod policy;
pub mod state;
pub mod topology;
