//! Our KVM monitor: a VM and its vCPUs, started in ring 3 in the kernel
//! with every privileged register set from outside (see `vcpu`); doorbells
//! are MMIO exits handled on the vCPU's own thread.

mod gdb;
pub(crate) mod preempt;
pub(crate) mod vcpu;

use std::path::Path;
use std::sync::Arc;

use atoll_abi::boot::{ClockInfo, CpuArea};
use atoll_abi::layout::RAM_SLOT_SIZE;
use atoll_abi::mmio;
use kvm_bindings::CpuId;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress};

use super::{Backend, BootPlan, GdbOptions, GuestCpu, Running};
use crate::guest::memory::{GuestRam, RamSlots};
use crate::guest::setup::Layout;
use crate::host;
use crate::isle::{doorbell_outcome, IsleError, Outcome};
use crate::offload::Offload;
use preempt::Preemption;
use vcpu::{VcpuEvent, VcpuStart};

pub struct KvmBackend {
    kvm: Kvm,
    vm: Option<Arc<VmFd>>,
    vcpus: Vec<VcpuFd>,
    gdb: Option<GdbOptions>,
}

impl KvmBackend {
    pub fn open(device: &Path, gdb: Option<GdbOptions>) -> Result<Self, IsleError> {
        Ok(Self {
            kvm: vcpu::open_kvm(device)?,
            vm: None,
            vcpus: Vec::new(),
            gdb,
        })
    }
}

impl Backend for KvmBackend {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn guest_ram(&mut self, size: u64) -> Result<GuestRam, IsleError> {
        Ok(GuestRam::new(size)?)
    }

    fn prepare(&mut self, boot: &BootPlan) -> Result<GuestCpu, IsleError> {
        let vm = Arc::new(vcpu::create_vm(&self.kvm)?);
        let slots = vcpu::KvmSlots::new(Arc::clone(&vm), boot.ram);
        // What the kernel reaches before it maps anything itself: all but
        // the heap, which it attaches as it hands it out.
        for range in [0..boot.heap.start, boot.heap.end..boot.ram.size()] {
            for slot in range.start / RAM_SLOT_SIZE..range.end.div_ceil(RAM_SLOT_SIZE) {
                slots.attach(slot).map_err(vcpu::KvmError::Slots)?;
            }
        }
        // A forked child's RAM was its parent VM's: the new VM reaches all
        // the parent reached.
        if let Some(inherited) = boot.ram.set_slots(Box::new(slots)) {
            for slot in inherited.attached() {
                let start = slot * RAM_SLOT_SIZE;
                let len = RAM_SLOT_SIZE.min(boot.ram.size().saturating_sub(start));
                boot.ram
                    .attach(start, len)
                    .map_err(|_| vcpu::KvmError::Slots(format!("cannot attach slot {slot}")))?;
            }
        }
        let cpuid: CpuId = vcpu::guest_cpuid(&self.kvm)?;
        vcpu::check_guest_cpu(&cpuid)?;
        for index in 0..boot.cpu_count {
            self.vcpus.push(vcpu::create_vcpu(
                &vm,
                &vcpu::cpuid_for(&cpuid, index),
                boot.layout,
                &VcpuStart {
                    index,
                    entry: boot.kernel.entry,
                    stack_top: boot.layout.kernel_stack_top(index),
                    boot_info: boot.layout.boot_info,
                    syscall_entry: boot.kernel.syscall_entry,
                },
            )?);
        }
        self.vm = Some(vm);
        Ok(GuestCpu {
            hwcap: vcpu::hwcap(&cpuid),
            clock: clock_info(&self.vcpus[0]),
        })
    }

    fn run(self: Box<Self>, isle: Running) -> Outcome {
        let Running {
            ram,
            layout,
            offload,
            preempt_entry,
            exception_vectors,
            vcpu_cores,
            service_core,
            started,
            ..
        } = isle;
        let cpu_count = self.vcpus.len();
        let preemption = Preemption::new(cpu_count);
        preemption.spawn_ticker(Arc::clone(&ram), layout.clone(), service_core);
        let shared = Arc::new(Shared {
            ram,
            layout,
            offload,
            preemption,
            preempt_entry,
            exception_vectors,
            started,
        });
        let KvmBackend { vm, vcpus, gdb, .. } = *self;
        if let Some(gdb) = gdb {
            // One vCPU, debugged from this thread.
            let outcome = match vcpus.into_iter().next() {
                Some(vcpu) => gdb::serve(&shared, vcpu, &gdb),
                None => Outcome::Crashed("no vCPU to debug".into()),
            };
            std::mem::forget(vm);
            return outcome;
        }
        let (outcomes, outcome) = std::sync::mpsc::channel();
        for (index, vcpu) in vcpus.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let outcomes = outcomes.clone();
            let core = vcpu_cores.get(index).copied();
            std::thread::Builder::new()
                .name(format!("atoll-vcpu{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        host::pin_current_thread(core);
                    }
                    shared.preemption.register_current_thread(index);
                    let outcome = run_vcpu(&shared, vcpu, index);
                    let _ = outcomes.send(outcome);
                })
                .expect("spawning a thread only fails when the host is out of resources");
        }
        let outcome = outcome
            .recv()
            .unwrap_or_else(|_| Outcome::Crashed("every vCPU thread died".into()));
        if outcome == Outcome::Exec {
            // The process goes on to the next isle: this one's ticker, VM
            // and (once its other holders let go) memory go.
            shared.preemption.stop();
            drop(vm);
        } else {
            // The process exits next. Closing the VM here would unmap its
            // state, which waits for any populate still in flight.
            std::mem::forget(vm);
        }
        outcome
    }
}

/// What every vCPU thread shares.
pub(super) struct Shared {
    pub ram: Arc<GuestRam>,
    pub layout: Layout,
    pub offload: Arc<Offload>,
    pub preemption: Arc<Preemption>,
    pub preempt_entry: u64,
    pub exception_vectors: u64,
    pub started: std::time::Instant,
}

/// Runs vCPU `index` until the isle ends; returns how it ended.
fn run_vcpu(shared: &Shared, mut vcpu: kvm_ioctls::VcpuFd, index: usize) -> Outcome {
    let outcome = loop {
        match run_until_stop(shared, &mut vcpu, index, false) {
            Stop::Ended(outcome) => break outcome,
            // Guest debugging is off: a stray debug exit just goes on.
            Stop::Debug { .. } | Stop::Trap { .. } => continue,
        }
    };
    if outcome == Outcome::Exec {
        // The process goes on to the next isle: this vCPU (which holds
        // the VM) goes.
        drop(vcpu);
    } else {
        // Closing the vCPU would unmap its run area, which waits for any
        // populate in flight; the process is about to exit anyway.
        std::mem::forget(vcpu);
    }
    outcome
}

/// Why `run_until_stop` returned.
pub(super) enum Stop {
    /// The isle ended.
    Ended(Outcome),
    /// A debug exit: `exception` 1 (a hardware breakpoint, a step) or 3
    /// (an `int3`), at `rip`.
    Debug { exception: u32, rip: u64 },
    /// (Debugging only.) A breakpoint (`vector` 3) or a trap-flag step
    /// (`vector` 1) reached the kernel's fault pad, which holds the vCPU in
    /// ring 0 with the exception frame at `frame`.
    Trap { vector: u64, frame: u64 },
}

/// Runs vCPU `index`, serving its doorbells, until the isle ends or a
/// debug exit (or, when `debugging`, an `int3` reaches the fault pad).
pub(super) fn run_until_stop(
    shared: &Shared,
    vcpu: &mut VcpuFd,
    index: usize,
    debugging: bool,
) -> Stop {
    let Shared {
        ram,
        layout,
        offload,
        preemption,
        preempt_entry,
        started,
        ..
    } = shared;
    let (mut exits, mut preemptions) = (0u64, 0u64);
    loop {
        exits += 1;
        let event = match vcpu::run(vcpu) {
            Ok(event) => event,
            Err(error) => return Stop::Ended(Outcome::Crashed(error.to_string())),
        };
        tracing::debug!(elapsed = ?started.elapsed(), cpu = index, ?event, "vCPU exit");
        let outcome = match event {
            VcpuEvent::Interrupted => {
                if preemption.preempt_if_requested(vcpu, index, ram, layout, *preempt_entry) {
                    preemptions += 1;
                }
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::WAKE_HOST,
                ..
            } => {
                offload.wake_server();
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::KICK,
                value,
            } => {
                offload.kick_vcpu(value as usize);
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::SIGNAL,
                value,
            } => {
                preemption.interrupt_for_signal(value as usize);
                continue;
            }
            VcpuEvent::Doorbell {
                offset: mmio::PARK, ..
            } => {
                // The vCPU's own index, not what the guest wrote.
                let area = layout.cpu_area(index as u64);
                let deadline = ram
                    .memory()
                    .read_obj::<u64>(GuestAddress(
                        area + std::mem::offset_of!(CpuArea, park_deadline_ns) as u64,
                    ))
                    .unwrap_or(0);
                offload.park_vcpu(index, deadline);
                match offload.failure() {
                    Some(failure) => Outcome::Crashed(failure.to_string()),
                    None => continue,
                }
            }
            VcpuEvent::Doorbell {
                offset: mmio::FAULT,
                value,
            } if debugging => match crate::isle::read_frame(ram, value) {
                Some(frame) if frame.vector == 1 || frame.vector == 3 => {
                    return Stop::Trap {
                        vector: frame.vector,
                        frame: value,
                    }
                }
                _ => doorbell_outcome(
                    ram,
                    layout,
                    index as u64,
                    mmio::FAULT,
                    value,
                    Some(vcpu::cr2(vcpu)),
                ),
            },
            VcpuEvent::Doorbell { offset, value } => doorbell_outcome(
                ram,
                layout,
                index as u64,
                offset,
                value,
                Some(vcpu::cr2(vcpu)),
            ),
            VcpuEvent::Debug { exception, rip } => return Stop::Debug { exception, rip },
            VcpuEvent::Shutdown => {
                Outcome::Crashed(format!("triple fault (rip {:#x})", vcpu::rip(vcpu)))
            }
            VcpuEvent::InternalError => Outcome::Crashed(format!(
                "KVM could not emulate the instruction at rip {:#x}",
                vcpu::rip(vcpu)
            )),
            VcpuEvent::Unexpected(what) => {
                Outcome::Crashed(format!("{what} (rip {:#x})", vcpu::rip(vcpu)))
            }
        };
        tracing::debug!(cpu = index, exits, preemptions, "vCPU done");
        return Stop::Ended(outcome);
    }
}

/// Samples the guest TSC and the host clocks together.
fn clock_info(vcpu: &kvm_ioctls::VcpuFd) -> ClockInfo {
    let tsc_khz = vcpu::tsc_khz(vcpu).unwrap_or_else(host::measure_tsc_khz);
    let before = host::monotonic_ns();
    let tsc_at_boot = vcpu::guest_tsc(vcpu).unwrap_or_else(host::rdtsc);
    let after = host::monotonic_ns();
    ClockInfo {
        tsc_khz,
        tsc_at_boot,
        realtime_ns: host::realtime_ns() - (host::monotonic_ns() - (before + after) / 2),
        monotonic_ns: (before + after) / 2,
    }
}
