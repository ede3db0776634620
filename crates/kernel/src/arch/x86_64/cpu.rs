//! CPU access: time stamp counter, FS base, the per-CPU area and doorbells.

use atoll_abi::boot::{BootInfo, CpuArea, PreemptFrame};
use atoll_abi::layout::MMIO_BASE;
use atoll_abi::mmio;
use atoll_abi::queue::{Completion, QueuePair, Request};
use core::sync::atomic::Ordering;

/// Reads the time stamp counter (native in ring 3: no exit).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; CR4.TSD is clear so ring 3 may use it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CPUID `leaf`.`subleaf` as `[eax, ebx, ecx, edx]`: what the hypervisor
/// tells this vCPU (an exit under KVM, so only for boot-time questions).
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // SAFETY: cpuid has no memory effects and exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let result = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
    [result.eax, result.ebx, result.ecx, result.edx]
}

/// Tells the CPU we are spinning.
#[inline]
pub fn pause() {
    core::hint::spin_loop();
}

/// Sets the FS base (the program's TLS pointer). CR4.FSGSBASE is set by the monitor.
pub fn set_fs_base(value: u64) {
    use x86_64::registers::segmentation::Segment64;
    // SAFETY: the address is canonical (callers check it) and FS belongs to the program.
    unsafe {
        x86_64::registers::segmentation::FS::write_base(x86_64::VirtAddr::new_truncate(value))
    };
}

/// Reads the FS base.
pub fn fs_base() -> u64 {
    use x86_64::registers::segmentation::Segment64;
    x86_64::registers::segmentation::FS::read_base().as_u64()
}

/// This CPU's area, found through the GS base the monitor set.
pub fn cpu_area() -> &'static CpuArea {
    let address: u64;
    // SAFETY: reads one word at a fixed offset of the GS-based CpuArea.
    unsafe {
        core::arch::asm!(
            "mov %gs:{offset}, {out}",
            offset = const core::mem::offset_of!(CpuArea, self_addr),
            out = out(reg) address,
            options(att_syntax, nostack, readonly, preserves_flags)
        );
    }
    // SAFETY: the monitor placed a CpuArea at `self_addr`, identity-mapped
    // and alive for the whole run. Fields the host writes are atomics.
    unsafe { &*(address as *const CpuArea) }
}

/// The program's stack pointer as the running syscall entered.
pub fn user_stack_pointer() -> u64 {
    // SAFETY: a plain word of this CPU's own area, written by its syscall
    // entry before the call was dispatched.
    unsafe { core::ptr::read_volatile(&raw const (*cpu_area_mut()).user_rsp) }
}

/// Which CPU this is (0 is the boot CPU).
pub fn cpu_index() -> usize {
    cpu_area().cpu_index as usize
}

/// Raw pointer to this CPU's area, for the few fields the kernel writes.
fn cpu_area_mut() -> *mut CpuArea {
    cpu_area() as *const CpuArea as *mut CpuArea
}

/// Sets the deadline for the next PARK doorbell.
pub fn set_park_deadline(ns: u64) {
    // SAFETY: only this CPU writes its own area; the host reads it only
    // while this vCPU is stopped in the PARK exit.
    unsafe { core::ptr::write_volatile(&raw mut (*cpu_area_mut()).park_deadline_ns, ns) }
}

/// The program registers the monitor saved at this CPU's last preemption.
pub fn preempt_frame() -> PreemptFrame {
    // SAFETY: the monitor wrote the frame while this vCPU was stopped, before
    // sending it to the preemption entry that calls us.
    unsafe { core::ptr::read_volatile(&raw const (*cpu_area_mut()).preempt_frame) }
}

/// Tells the monitor how many threads wait for a CPU and the earliest timed
/// wait, so it knows when a CPU running program code must be preempted.
pub fn publish_sched_hints(runnable_waiting: u64, next_deadline_ns: u64) {
    let area = cpu_area_at(crate::boot_info(), 0);
    // SAFETY: plain words in CPU 0's area that only the monitor reads;
    // volatile because it reads them concurrently.
    unsafe {
        core::ptr::write_volatile(&raw mut (*area).runnable_waiting, runnable_waiting);
        core::ptr::write_volatile(&raw mut (*area).next_deadline_ns, next_deadline_ns);
    }
}

/// Asks the monitor to interrupt CPU `cpu` once it runs program code, so
/// its thread acts on a signal sent to it.
pub fn request_signal_upcall(cpu: usize) {
    let area = cpu_area_at(crate::boot_info(), cpu);
    // SAFETY: a plain word in that CPU's area that only the monitor reads
    // and clears; volatile because it does so concurrently.
    unsafe { core::ptr::write_volatile(&raw mut (*area).signal_upcall, 1) }
}

/// Signals the monitor passed on from the host since the last look, as a
/// set (bit N-1: signal N). One load when there are none.
pub fn take_host_signals() -> u64 {
    static SEEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let area = cpu_area_at(crate::boot_info(), 0);
    // SAFETY: a word of CPU 0's area that only the monitor writes.
    let raised = unsafe { core::ptr::read_volatile(&raw const (*area).host_signals_raised) };
    let seen = SEEN.load(Ordering::Acquire);
    if raised == seen
        || SEEN
            .compare_exchange(seen, raised, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return 0;
    }
    let mut taken = 0;
    for index in 0..64 {
        // SAFETY: byte `index` of the area's `host_signals`, which the
        // monitor sets and the kernel clears, both atomically.
        let byte = unsafe {
            &*(&raw const (*area).host_signals)
                .cast::<core::sync::atomic::AtomicU8>()
                .add(index)
        };
        if byte.swap(0, Ordering::AcqRel) != 0 {
            taken |= 1 << index;
        }
    }
    taken
}

/// Copies a panic message into this CPU's area for the PANIC doorbell.
pub fn set_panic_message(message: &[u8]) {
    let area = cpu_area_mut();
    // SAFETY: as for set_park_deadline: the host reads after the PANIC exit.
    unsafe {
        let buffer = &mut (*area).panic_message;
        let len = message.len().min(buffer.len());
        buffer[..len].copy_from_slice(&message[..len]);
        core::ptr::write_volatile(&raw mut (*area).panic_len, len as u64);
    }
}

fn cpu_area_at(boot: &BootInfo, cpu: usize) -> *mut CpuArea {
    (boot.cpu_areas + cpu as u64 * boot.cpu_area_stride) as *mut CpuArea
}

/// Sends faults of program code to the kernel's fault entry (on) or to
/// the monitor (off), on every CPU.
pub fn set_fault_upcall(on: bool) {
    let boot = crate::boot_info();
    for cpu in 0..boot.cpu_count as usize {
        // SAFETY: a plain word of CPU `cpu`'s area, read only by that CPU's
        // fault pad; volatile because that may run at any moment.
        unsafe {
            core::ptr::write_volatile(
                &raw mut (*cpu_area_at(boot, cpu)).fault_upcall,
                u64::from(on),
            )
        };
    }
}

/// What the fault pad saved of a fault it sent to the kernel: the
/// program's registers, the vector, the error code and CR2.
pub fn fault_report() -> (PreemptFrame, u64, u64, u64) {
    let area = cpu_area_mut();
    // SAFETY: this CPU's own area, written by its fault pad just before it
    // entered the kernel's fault entry that calls us.
    unsafe {
        (
            core::ptr::read_volatile(&raw const (*area).fault_frame),
            core::ptr::read_volatile(&raw const (*area).fault_vector),
            core::ptr::read_volatile(&raw const (*area).fault_error_code),
            core::ptr::read_volatile(&raw const (*area).fault_cr2),
        )
    }
}

/// CPU `cpu`'s offload queue pair.
pub fn queue_of(boot: &BootInfo, cpu: usize) -> &'static QueuePair {
    // SAFETY: the monitor placed `cpu_count` CpuAreas there for the whole
    // run; the queue's indices are atomics, its entries are only accessed
    // through `write_request` and `read_completion`.
    unsafe { &(*cpu_area_at(boot, cpu)).queue }
}

/// Writes `request` into submission slot `slot` of CPU `cpu`'s queue.
pub fn write_request(cpu: usize, slot: usize, request: Request) {
    let area = cpu_area_at(crate::boot_info(), cpu);
    // SAFETY: the slot is free (the guest owns it until it publishes
    // sq_tail) and only code on `cpu` produces into this ring; volatile
    // because the host reads it concurrently after publication.
    unsafe { core::ptr::write_volatile(&raw mut (*area).queue.sq[slot], request) }
}

/// Reads completion slot `slot` of CPU `cpu`'s queue.
pub fn read_completion(cpu: usize, slot: usize) -> Completion {
    let area = cpu_area_at(crate::boot_info(), cpu);
    // SAFETY: the host published this slot before advancing cq_tail.
    unsafe { core::ptr::read_volatile(&raw const (*area).queue.cq[slot]) }
}

/// Rings doorbell `offset` with `value`: one MMIO write, one VM exit.
/// A final one (EXIT, PANIC, FAULT) is also left in this CPU's area, for a
/// monitor whose doorbell writes don't exit (QEMU) and which polls there.
pub fn doorbell(offset: u64, value: u64) {
    if matches!(
        offset,
        mmio::EXIT | mmio::KILLED | mmio::PANIC | mmio::FAULT
    ) {
        let area = cpu_area_mut();
        // SAFETY: this CPU's own area; volatile because the monitor polls
        // it from another thread. The value goes first: the monitor reads
        // it once it sees the offset.
        unsafe {
            core::ptr::write_volatile(&raw mut (*area).last_doorbell_value, value);
            core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
            core::ptr::write_volatile(&raw mut (*area).last_doorbell, offset);
        }
    }
    let address = (MMIO_BASE + offset) as *mut u64;
    // SAFETY: the doorbell page is mapped and has no memory behind it: the
    // write exits to the monitor and has no other effect.
    unsafe { core::ptr::write_volatile(address, value) }
}

/// The boot info the monitor passed in `rdi`.
pub fn boot_info_at(address: u64) -> &'static BootInfo {
    // SAFETY: the monitor wrote a BootInfo there, in the system area that
    // stays mapped and unchanged for the whole run.
    unsafe { &*(address as *const BootInfo) }
}

/// The memory map the monitor placed in the system area, if it lies there
/// whole and aligned.
pub fn region_table(boot: &BootInfo) -> Option<&'static mut atoll_abi::regions::RegionTable> {
    use atoll_abi::regions::{RegionTable, TABLE_SIZE};
    let start = boot.regions;
    let end = start.checked_add(TABLE_SIZE as u64)?;
    let inside = boot.system_start <= start && end <= boot.system_end;
    if !inside || !start.is_multiple_of(core::mem::align_of::<RegionTable>() as u64) {
        return None;
    }
    // SAFETY: the monitor reserved these bytes of the system area for the
    // table for the whole run, nothing else in the isle uses them, and the
    // one caller (`mm::regions::init`) keeps the reference behind a lock.
    Some(unsafe { &mut *(start as *mut RegionTable) })
}
