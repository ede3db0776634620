//! What runs the isle (KVM or QEMU), the guest address space it gets, and
//! the kernel's symbols for GDB.

use std::path::{Path, PathBuf};

use atoll_abi::layout::{align_up, MAX_RAM_SIZE};

/// The backend `--backend` names; `auto` is KVM where the device exists,
/// else QEMU, said in one line.
pub(super) fn choose_backend(
    name: &str,
    kvm_device: &Path,
    gdb: Option<u16>,
) -> atoll_vmm::BackendChoice {
    let gdb = gdb.map(|port| atoll_vmm::GdbOptions {
        port,
        ..Default::default()
    });
    let qemu = || {
        atoll_vmm::BackendChoice::Qemu(atoll_vmm::QemuOptions {
            gdb: gdb.clone(),
            ..Default::default()
        })
    };
    let kvm = || atoll_vmm::BackendChoice::Kvm {
        device: kvm_device.to_path_buf(),
        gdb: gdb.clone(),
    };
    match name {
        "qemu" => qemu(),
        "kvm" => kvm(),
        _ if !kvm_device.exists() && atoll_vmm::backend::qemu::available() => {
            eprintln!(
                "atoll: {} is missing: running on QEMU (TCG) instead, which is slower",
                kvm_device.display()
            );
            qemu()
        }
        _ => kvm(),
    }
}

/// Address space a KVM isle has beyond its limit, for reservations
/// (mmap(PROT_NONE): Go's arenas, Java's and V8's heaps). Reservations cost
/// no memory and the heap's page tables are written as it is used, but KVM
/// keeps per-page metadata for a memory slot's whole size (with shadow
/// paging, as on kvm-pvm: about 2.5 MiB per GiB), so it is not unbounded.
const KVM_RESERVATION_ROOM: u64 = 16 << 30;

/// Guest RAM for an isle limited to `limit` bytes: QEMU's most under QEMU
/// (which refuses a larger limit with its own message), else the limit
/// plus [`KVM_RESERVATION_ROOM`].
pub(super) fn address_space(backend: &atoll_vmm::BackendChoice, limit: u64) -> u64 {
    match backend {
        atoll_vmm::BackendChoice::Qemu(_) => limit.max(atoll_vmm::backend::qemu::MAX_MEMORY),
        atoll_vmm::BackendChoice::Kvm { .. } => {
            (align_up(limit, 1 << 30) + KVM_RESERVATION_ROOM).min(MAX_RAM_SIZE)
        }
    }
}

/// The kernel ELF as a file for GDB's `add-symbol-file` (named by its
/// digest, so it is written once per kernel).
pub(super) fn kernel_symbols_file(kernel: &[u8]) -> Option<PathBuf> {
    let digest = crate::image::store::sha256(kernel);
    let path = std::env::temp_dir().join(format!(
        "atoll-kernel-{}.elf",
        &digest.trim_start_matches("sha256:")[..16]
    ));
    if !path.is_file() {
        std::fs::write(&path, kernel).ok()?;
    }
    Some(path)
}
