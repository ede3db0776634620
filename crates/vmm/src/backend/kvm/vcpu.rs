//! KVM: the VM, its memory slot, and vCPUs started in ring 3 in the kernel.
//!
//! On kvm-pvm, ring-0 guest code is emulated an instruction at a time and
//! dies on SSE or xsave, so the monitor sets every privileged register here,
//! natively, and the vCPU never runs ring-0 code on a normal path.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};

use atoll_abi::layout::{selector, MMIO_BASE};
use atoll_abi::mmio;
use kvm_bindings::{
    kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_userspace_memory_region, kvm_xcrs, CpuId,
    Msrs, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use crate::guest::memory::GuestRam;
use crate::guest::setup::Layout;

const MSR_IA32_TSC: u32 = 0x10;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// What `rdtscp` and `rdpid` return: Linux puts the CPU number there.
const MSR_TSC_AUX: u32 = 0xc000_0103;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_FSGSBASE: u64 = 1 << 16;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// The guest's CR4 and EFER (LMA comes with paging on).
pub const GUEST_CR4: u64 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_FSGSBASE | CR4_OSXSAVE;
pub const GUEST_EFER: u64 = EFER_SCE | EFER_LME | EFER_NXE;
/// Flags cleared on syscall entry (at CPL 0): TF, IF, DF, NT, AC.
pub const SYSCALL_FLAG_MASK: u64 = 0x100 | 0x200 | 0x400 | 0x4000 | 0x4_0000;
/// `arch_prctl` asking that this process's VMs may use a dynamic XSAVE
/// component (AMX tile data): without it KVM hides AMX from the guest.
const ARCH_REQ_XCOMP_GUEST_PERM: libc::c_int = 0x1025;

#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error("{} not found: this host has no KVM; load the kvm module or use a host with virtualization", .0.display())]
    Missing(PathBuf),
    #[error("no permission to open {}: add your user to the kvm group (usermod -aG kvm $USER) or run as root", .0.display())]
    Permission(PathBuf),
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("this CPU can't run isles: {0}")]
    ExtendedState(atoll_abi::xstate::LayoutError),
    #[error("this CPU can't run isles: it has no {0} (isles need an x86_64 CPU from 2012 on: Intel Ivy Bridge, AMD Zen or later)")]
    MissingFeature(&'static str),
    #[error("KVM refused guest memory: {0}")]
    Slots(String),
    #[error("KVM refused {what}: {source}")]
    Ioctl {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
}

fn ioctl_error(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { what, source }
}

/// Opens the KVM device at `path`.
pub fn open_kvm(path: &Path) -> Result<Kvm, KvmError> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| KvmError::Missing(path.to_path_buf()))?;
    Kvm::new_with_path(&c_path).map_err(|error| match error.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmError::Missing(path.to_path_buf()),
        libc::EACCES | libc::EPERM => KvmError::Permission(path.to_path_buf()),
        errno => KvmError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::from_raw_os_error(errno),
        },
    })
}

/// Creates a VM with `ram` as its only memory slot, at guest-physical 0.
pub fn create_vm(kvm: &Kvm) -> Result<VmFd, KvmError> {
    kvm.create_vm().map_err(ioctl_error("creating a VM"))
}

/// Guest RAM as KVM memory slots, one per
/// [`RAM_SLOT_SIZE`](atoll_abi::layout::RAM_SLOT_SIZE) of address space,
/// registered when first attached: KVM's cost for a slot grows with its
/// size, and most of the address space is never used.
pub struct KvmSlots {
    vm: std::sync::Arc<VmFd>,
    host_base: u64,
    ram_size: u64,
    attached: std::sync::Mutex<Vec<bool>>,
}

impl KvmSlots {
    pub fn new(vm: std::sync::Arc<VmFd>, ram: &GuestRam) -> Self {
        let count = ram.size().div_ceil(atoll_abi::layout::RAM_SLOT_SIZE) as usize;
        Self {
            vm,
            host_base: ram.host_base(),
            ram_size: ram.size(),
            attached: std::sync::Mutex::new(vec![false; count]),
        }
    }
}

impl crate::guest::memory::RamSlots for KvmSlots {
    fn attached(&self) -> Vec<u64> {
        let attached = self.attached.lock().unwrap_or_else(|e| e.into_inner());
        (0..)
            .zip(attached.iter())
            .filter(|(_, &on)| on)
            .map(|(slot, _)| slot)
            .collect()
    }

    fn attach(&self, slot: u64) -> Result<(), String> {
        use atoll_abi::layout::RAM_SLOT_SIZE;
        let mut attached = self
            .attached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(done) = attached.get_mut(slot as usize) else {
            return Err(format!("slot {slot} lies beyond guest RAM"));
        };
        if *done {
            return Ok(());
        }
        let start = slot * RAM_SLOT_SIZE;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: start,
            memory_size: RAM_SLOT_SIZE.min(self.ram_size - start),
            userspace_addr: self.host_base + start,
        };
        // SAFETY: the region is part of guest RAM's live mapping, which
        // outlives the VM (the isle holds both; the VM is never closed
        // before the process exits). Slots never overlap: each covers its
        // own stretch of guest-physical addresses.
        unsafe { self.vm.set_user_memory_region(region) }
            .map_err(|error| format!("registering guest memory slot {slot}: {error}"))?;
        *done = true;
        Ok(())
    }
}

/// What the guest CPU is told it has: KVM's supported set, with the bits
/// that depend on our setup made true. kvm-pvm leaves out what its ring-0
/// emulator lacks (XSAVE, FSGSBASE), though ring 3, where the isle runs,
/// has them natively; the host's own CPU says whether they are there.
pub fn guest_cpuid(kvm: &Kvm) -> Result<CpuId, KvmError> {
    request_dynamic_xstate();
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(ioctl_error("reading CPUID"))?;
    for entry in cpuid.as_mut_slice() {
        if entry.function == 1 {
            entry.ecx |= 1 << 31; // running under a hypervisor
            entry.ecx |= 1 << 27; // OSXSAVE: the monitor sets CR4.OSXSAVE
            entry.ebx &= 0x00ff_ffff; // initial APIC id 0
            if crate::host::xcr0() != 0 {
                entry.ecx |= 1 << 26; // XSAVE
            }
        }
        if entry.function == 7 && entry.index == 0 && crate::host::fsgsbase() {
            entry.ebx |= 1; // FSGSBASE: the monitor sets CR4.FSGSBASE
        }
    }
    Ok(cpuid)
}

/// The CPUID vCPU `index` sees: its own APIC id.
pub fn cpuid_for(cpuid: &CpuId, index: u64) -> CpuId {
    let mut own = cpuid.clone();
    for entry in own.as_mut_slice() {
        match entry.function {
            1 => entry.ebx = (entry.ebx & 0x00ff_ffff) | ((index as u32) << 24),
            0xb | 0x1f => entry.edx = index as u32,
            _ => {}
        }
    }
    own
}

/// Asks Linux to let this process's guests use AMX tile data, so KVM
/// offers it (CPUID and XCR0) and saves it with the vCPU. The isle's ring 3
/// runs with the host's XCR0 on kvm-pvm, AMX included wherever the host has
/// it, so offering it keeps what CPUID says and what the CPU does the same.
/// Hosts without AMX refuse, and their guests simply don't have it.
fn request_dynamic_xstate() {
    // SAFETY: arch_prctl with a plain integer argument changes only this
    // process's permissions.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_GUEST_PERM,
            atoll_abi::xstate::XFEATURE_TILE_DATA,
        )
    };
}

/// CPUID `function`.`index` as the guest is told, `[eax, ebx, ecx, edx]`.
fn cpuid_entry(cpuid: &CpuId, function: u32, index: u32) -> [u32; 4] {
    cpuid
        .as_slice()
        .iter()
        .find(|entry| entry.function == function && entry.index == index)
        .map(|entry| [entry.eax, entry.ebx, entry.ecx, entry.edx])
        .unwrap_or([0; 4])
}

/// Whether the guest has `rdtscp` (CPUID 0x8000_0001 EDX bit 27), and so
/// the TSC_AUX MSR it reads.
fn has_rdtscp(cpuid: &CpuId) -> bool {
    cpuid_entry(cpuid, 0x8000_0001, 0)[3] & (1 << 27) != 0
}

/// Supported XCR0 bits, from CPUID leaf 0xD.
fn supported_xcr0(cpuid: &CpuId) -> u64 {
    let [eax, _, _, edx] = cpuid_entry(cpuid, atoll_abi::xstate::CPUID_LEAF, 0);
    u64::from(eax) | (u64::from(edx) << 32)
}

/// The XCR0 the monitor sets: what the guest is offered and the host has
/// enabled (on kvm-pvm, ring 3 runs with the host's anyway).
pub fn guest_xcr0(cpuid: &CpuId) -> u64 {
    supported_xcr0(cpuid) & crate::host::xcr0()
}

/// Checks, before boot, that the guest CPU has what the kernel uses
/// unconditionally (FSGSBASE for the program's TLS, XSAVE), and that the
/// kernel can save the extended state of every XCR0 the guest may run
/// with: the one set, and the host's (which kvm-pvm keeps in force in
/// ring 3).
pub fn check_guest_cpu(cpuid: &CpuId) -> Result<atoll_abi::xstate::Layout, KvmError> {
    let [_, features, ..] = cpuid_entry(cpuid, 7, 0);
    if features & 1 == 0 {
        return Err(KvmError::MissingFeature("FSGSBASE"));
    }
    let possible = guest_xcr0(cpuid) | crate::host::xcr0();
    atoll_abi::xstate::layout(possible, |function, index| {
        cpuid_entry(cpuid, function, index)
    })
    .map_err(KvmError::ExtendedState)
}

/// EDX of CPUID leaf 1, which Linux reports as AT_HWCAP.
pub fn hwcap(cpuid: &CpuId) -> u64 {
    cpuid
        .as_slice()
        .iter()
        .find(|entry| entry.function == 1)
        .map(|entry| u64::from(entry.edx))
        .unwrap_or(0)
}

fn user_segment(selector: u16, code: bool, base: u64) -> kvm_segment {
    kvm_segment {
        base,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 11 } else { 3 },
        present: 1,
        dpl: 3,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Puts a vCPU that a ring-0 fault pad holds back in ring 3 where the
/// exception came from (rip, rsp, rflags from its frame; rax as saved),
/// as the pad's `iretq` would: what a debugger does to resume a program
/// stopped at a breakpoint.
pub fn return_to_user(
    vcpu: &VcpuFd,
    rip: u64,
    rsp: u64,
    rflags: u64,
    rax: u64,
) -> Result<(), KvmError> {
    let mut regs = vcpu.get_regs().map_err(ioctl_error("reading registers"))?;
    regs.rip = rip;
    regs.rsp = rsp;
    regs.rflags = rflags;
    regs.rax = rax;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(ioctl_error("reading special registers"))?;
    sregs.cs = user_segment(selector::USER_CODE, true, 0);
    sregs.ss = user_segment(selector::USER_DATA, false, 0);
    vcpu.set_sregs(&sregs)
        .map_err(ioctl_error("setting special registers"))?;
    vcpu.set_regs(&regs)
        .map_err(ioctl_error("setting registers"))
}

/// Where one vCPU starts.
pub struct VcpuStart {
    pub index: u64,
    pub entry: u64,
    pub stack_top: u64,
    pub boot_info: u64,
    pub syscall_entry: u64,
}

/// Creates and configures vCPU `start.index`: long mode, paging on, ring 3.
pub fn create_vcpu(
    vm: &VmFd,
    cpuid: &CpuId,
    layout: &Layout,
    start: &VcpuStart,
) -> Result<VcpuFd, KvmError> {
    let vcpu = vm
        .create_vcpu(start.index)
        .map_err(ioctl_error("creating a vCPU"))?;
    vcpu.set_cpuid2(cpuid)
        .map_err(ioctl_error("setting CPUID"))?;

    let mut sregs = vcpu
        .get_sregs()
        .map_err(ioctl_error("reading special registers"))?;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = layout.cr3();
    sregs.cr4 = GUEST_CR4;
    sregs.efer = GUEST_EFER | EFER_LMA;
    sregs.cs = user_segment(selector::USER_CODE, true, 0);
    let data = user_segment(selector::USER_DATA, false, 0);
    sregs.ss = data;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = user_segment(selector::USER_DATA, false, layout.cpu_area(start.index));
    sregs.tr = kvm_segment {
        base: layout.tss_of(start.index),
        limit: 103,
        selector: selector::tss(start.index),
        type_: 11, // busy 64-bit TSS
        present: 1,
        ..Default::default()
    };
    sregs.ldt = kvm_segment {
        type_: 2,
        present: 1,
        unusable: 1,
        ..Default::default()
    };
    sregs.gdt.base = layout.gdt;
    sregs.gdt.limit = (selector::gdt_entries(layout.cpu_count) * 8 - 1) as u16;
    sregs.idt.base = layout.idt;
    sregs.idt.limit = 32 * 16 - 1;
    vcpu.set_sregs(&sregs)
        .map_err(ioctl_error("setting special registers"))?;

    let mut xcrs = kvm_xcrs {
        nr_xcrs: 1,
        ..Default::default()
    };
    xcrs.xcrs[0].xcr = 0;
    xcrs.xcrs[0].value = guest_xcr0(cpuid);
    vcpu.set_xcrs(&xcrs).map_err(ioctl_error("setting XCR0"))?;

    let mut entries = vec![
        (MSR_STAR, guest_star()),
        (MSR_LSTAR, start.syscall_entry),
        (MSR_CSTAR, 0),
        (MSR_SYSCALL_MASK, SYSCALL_FLAG_MASK),
        (MSR_KERNEL_GS_BASE, layout.cpu_area(start.index)),
    ];
    if has_rdtscp(cpuid) {
        entries.push((MSR_TSC_AUX, start.index));
    }
    let msrs = Msrs::from_entries(
        &entries
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect::<Vec<_>>(),
    )
    .expect("six MSRs fit a KVM MSR list");
    let written = vcpu
        .set_msrs(&msrs)
        .map_err(ioctl_error("setting syscall MSRs"))?;
    if written != entries.len() {
        return Err(KvmError::Ioctl {
            what: "setting syscall MSRs",
            source: kvm_ioctls::Error::new(libc::EINVAL),
        });
    }

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
        .map_err(ioctl_error("setting the FPU state"))?;

    let regs = kvm_regs {
        rip: start.entry,
        rsp: start.stack_top,
        rdi: start.boot_info,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(ioctl_error("setting registers"))?;
    Ok(vcpu)
}

/// STAR: `syscall` loads the kernel code segment, `sysretq` the user ones.
pub fn guest_star() -> u64 {
    (u64::from(selector::KERNEL_CODE) << 32) | (u64::from(selector::USER_CODE32) << 48)
}

/// The guest TSC frequency in kHz.
pub fn tsc_khz(vcpu: &VcpuFd) -> Option<u64> {
    vcpu.get_tsc_khz()
        .ok()
        .map(u64::from)
        .filter(|&khz| khz > 0)
}

/// The guest's current TSC value.
pub fn guest_tsc(vcpu: &VcpuFd) -> Option<u64> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_TSC,
        ..Default::default()
    }])
    .ok()?;
    match vcpu.get_msrs(&mut msrs) {
        Ok(1) => Some(msrs.as_slice()[0].data),
        _ => None,
    }
}

/// Why a vCPU stopped running guest code.
#[derive(Debug, PartialEq, Eq)]
pub enum VcpuEvent {
    /// The guest rang doorbell `offset` with `value`.
    Doorbell { offset: u64, value: u64 },
    /// Triple fault.
    Shutdown,
    /// KVM could not run the guest (on kvm-pvm: an unemulatable ring-0 instruction).
    InternalError,
    /// A signal interrupted KVM_RUN (the preemption ticker's doing).
    Interrupted,
    /// A debug exit (guest debugging on): `exception` 1 for a hardware
    /// breakpoint or a step, 3 for an `int3`.
    Debug { exception: u32, rip: u64 },
    /// Anything else; the text says what.
    Unexpected(String),
}

/// Runs the vCPU until it reports something the isle must act on.
pub fn run(vcpu: &mut VcpuFd) -> Result<VcpuEvent, KvmError> {
    loop {
        match vcpu.run() {
            Ok(VcpuExit::MmioWrite(address, data)) => {
                if !(MMIO_BASE..MMIO_BASE + mmio::SIZE).contains(&address) {
                    return Ok(VcpuEvent::Unexpected(format!(
                        "write to unbacked address {address:#x}"
                    )));
                }
                let mut bytes = [0u8; 8];
                let len = data.len().min(8);
                bytes[..len].copy_from_slice(&data[..len]);
                return Ok(VcpuEvent::Doorbell {
                    offset: address - MMIO_BASE,
                    value: u64::from_le_bytes(bytes),
                });
            }
            Ok(VcpuExit::MmioRead(_, data)) => data.fill(0),
            Ok(VcpuExit::IoIn(_, data)) => data.fill(0),
            Ok(VcpuExit::IoOut(..)) | Ok(VcpuExit::Intr) => {}
            Ok(VcpuExit::Shutdown) => return Ok(VcpuEvent::Shutdown),
            Ok(VcpuExit::Debug(debug)) => {
                return Ok(VcpuEvent::Debug {
                    exception: debug.exception,
                    rip: debug.pc,
                })
            }
            Ok(VcpuExit::InternalError) => return Ok(VcpuEvent::InternalError),
            Ok(VcpuExit::Hlt) => return Ok(VcpuEvent::Unexpected("the vCPU halted".into())),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                return Ok(VcpuEvent::Unexpected(format!(
                    "KVM entry failed (reason {reason:#x}, cpu {cpu})"
                )))
            }
            Ok(other) => return Ok(VcpuEvent::Unexpected(format!("unexpected exit {other:?}"))),
            Err(error) if error.errno() == libc::EINTR => return Ok(VcpuEvent::Interrupted),
            Err(error) if error.errno() == libc::EAGAIN => {}
            Err(source) => {
                return Err(KvmError::Ioctl {
                    what: "running the vCPU",
                    source,
                })
            }
        }
    }
}

/// The guest's instruction pointer, for crash reports.
pub fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|regs| regs.rip).unwrap_or(0)
}

/// CR2: the address of the last page fault.
pub fn cr2(vcpu: &VcpuFd) -> u64 {
    vcpu.get_sregs().map(|sregs| sregs.cr2).unwrap_or(0)
}
