//! What an isle's start costs: the floor (a bare KVM VM in a process) and
//! the phases of one `atoll run hello` from the monitor's log.

use std::path::Path;

use super::measure::{isle, strip_ansi};

/// A process that creates a KVM VM with one vCPU and runs one instruction:
/// the floor for any KVM-based isle start.
pub fn bare_vm_process() {
    use kvm_bindings::kvm_userspace_memory_region;
    let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
    let vm = kvm.create_vm().expect("VM");
    let size = 0x1000;
    // SAFETY: an anonymous private mapping we own for the process's life.
    let memory = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(memory, libc::MAP_FAILED);
    // SAFETY: writes the `hlt` opcode into the page we just mapped.
    unsafe { *(memory as *mut u8) = 0xf4 };
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0x1000,
        memory_size: size as u64,
        userspace_addr: memory as u64,
    };
    // SAFETY: the mapping outlives the VM (the process exits right after).
    unsafe { vm.set_user_memory_region(region) }.expect("memory slot");
    let mut vcpu = vm.create_vcpu(0).expect("vCPU");
    let mut sregs = vcpu.get_sregs().expect("sregs");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).expect("sregs");
    let regs = kvm_bindings::kvm_regs {
        rip: 0x1000,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).expect("regs");
    let exit = format!("{:?}", vcpu.run().expect("run"));
    assert!(exit.contains("Hlt"), "bare VM stopped with {exit}");
}

/// Start-up phases of one isle, from the monitor's debug log.
pub fn startup_phases(hello: &Path) -> Vec<(String, f64)> {
    let output = isle(hello)
        .env("ATOLL_LOG", "atoll_vmm=debug")
        .output()
        .expect("runs");
    let log = String::from_utf8_lossy(&output.stderr);
    log.lines()
        .filter_map(|line| {
            let line = strip_ansi(line);
            let message = line.split("atoll_vmm::isle: ").nth(1)?;
            let (what, rest) = message.split_once(" elapsed=")?;
            let elapsed = rest.split_whitespace().next()?;
            let ms = if let Some(us) = elapsed.strip_suffix("µs") {
                us.parse::<f64>().ok()? / 1000.0
            } else {
                elapsed.strip_suffix("ms")?.parse::<f64>().ok()?
            };
            Some((what.to_string(), ms))
        })
        .collect()
}
