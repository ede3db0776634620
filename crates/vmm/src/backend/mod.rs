//! What runs an isle's vCPUs, behind one trait (cloud-hypervisor's
//! `hypervisor` crate is the model):
//!
//! - `kvm`: our own monitor on /dev/kvm. vCPUs start in ring 3 with
//!   every register set from outside; doorbells are MMIO exits.
//! - [`qemu`]: QEMU (TCG) as a fallback and as the way to run the kernel's
//!   hardware paths (LSTAR at CPL 0, `sysretq`) on a host whose KVM is
//!   kvm-pvm. Guest RAM is a memfd both processes map; the boot CPU enters
//!   through the kernel's PVH entry; final doorbells are polled.
//!
//! Everything else (loading, page tables, the boot info, the offload
//! server) is the same for both: `isle::run`.

pub(crate) mod kvm;
pub mod qemu;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use atoll_abi::boot::ClockInfo;

use crate::guest::memory::GuestRam;
use crate::guest::setup::Layout;
use crate::image::loader::Kernel;
use crate::isle::{IsleError, Outcome};
use crate::offload::Offload;

/// Which backend runs an isle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// Our KVM monitor, on this device.
    Kvm {
        device: PathBuf,
        gdb: Option<GdbOptions>,
    },
    /// QEMU.
    Qemu(qemu::QemuOptions),
}

/// Serve GDB before the first instruction.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GdbOptions {
    /// The loopback port to wait for GDB on.
    pub port: u16,
    /// For the line that says how to attach: the program's ELF and the
    /// kernel's (their symbols are at the addresses they run at).
    pub program_symbols: Option<PathBuf>,
    pub kernel_symbols: Option<PathBuf>,
}

impl GdbOptions {
    /// The line that says how to attach GDB.
    pub fn hint(&self) -> String {
        let program = self
            .program_symbols
            .as_ref()
            .map_or_else(|| "PROGRAM".into(), |path| path.display().to_string());
        let kernel = self
            .kernel_symbols
            .as_ref()
            .map(|path| format!(" -ex 'add-symbol-file {}'", path.display()))
            .unwrap_or_default();
        format!(
            "atoll: waiting for GDB on 127.0.0.1:{}: gdb {program} -ex 'target remote :{}'{kernel}",
            self.port, self.port
        )
    }
}

/// Guest memory as the boot CPUs will find it, for [`Backend::prepare`].
pub struct BootPlan<'a> {
    pub ram: &'a GuestRam,
    pub layout: &'a Layout,
    /// Guest-physical memory the kernel maps only as it hands it out.
    pub heap: std::ops::Range<u64>,
    pub kernel: &'a Kernel,
    pub cpu_count: u64,
}

/// What the boot info and the program's auxv say about the guest CPU.
pub struct GuestCpu {
    pub hwcap: u64,
    pub clock: ClockInfo,
}

/// A booted isle, for [`Backend::run`].
pub struct Running {
    pub ram: Arc<GuestRam>,
    pub layout: Layout,
    pub offload: Arc<Offload>,
    pub preempt_entry: u64,
    /// The kernel's ring-0 exception pads (32 of 16 bytes).
    pub exception_vectors: u64,
    pub vcpu_cores: Vec<usize>,
    pub service_core: Option<usize>,
    pub started: Instant,
    /// Where the guest keeps its clock calibration (boot info and vDSO),
    /// for a backend whose guest TSC isn't the host's.
    pub clock_slots: Vec<ClockSlots>,
}

/// Guest addresses of one copy of the clock calibration: a guest TSC value
/// and the host clocks at that instant.
#[derive(Clone, Copy)]
pub struct ClockSlots {
    pub tsc_at_boot: u64,
    pub monotonic_ns: u64,
    pub realtime_ns: u64,
}

pub trait Backend {
    fn name(&self) -> &'static str;
    /// Guest RAM of `size` bytes that this backend can run.
    fn guest_ram(&mut self, size: u64) -> Result<GuestRam, IsleError>;
    /// Makes the vCPUs, once guest memory holds the kernel and the page and
    /// descriptor tables.
    fn prepare(&mut self, boot: &BootPlan) -> Result<GuestCpu, IsleError>;
    /// Adjusts the offload server to how this backend rings doorbells.
    fn configure_offload(&self, _offload: &Arc<Offload>) {}
    /// Runs the isle until it ends.
    fn run(self: Box<Self>, isle: Running) -> Outcome;
}

/// Opens the backend `choice` names for an isle of `cpu_count` vCPUs and
/// `memory_size` bytes.
pub fn open(
    choice: &BackendChoice,
    cpu_count: u64,
    memory_size: u64,
) -> Result<Box<dyn Backend>, IsleError> {
    Ok(match choice {
        BackendChoice::Kvm { device, gdb } => {
            if gdb.is_some() && cpu_count != 1 {
                return Err(IsleError::Gdb(
                    "--gdb debugs isles of one vCPU: use -c 1".into(),
                ));
            }
            Box::new(kvm::KvmBackend::open(device, gdb.clone())?)
        }
        BackendChoice::Qemu(options) => Box::new(qemu::QemuBackend::open(
            options.clone(),
            cpu_count,
            memory_size,
        )?),
    })
}
