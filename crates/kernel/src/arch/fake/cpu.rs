//! A CPU with a settable index and no monitor behind it.

use std::cell::Cell;

use atoll_abi::boot::PreemptFrame;

thread_local! {
    static CPU_INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling test thread run as CPU `cpu`.
pub fn set_cpu_index(cpu: usize) {
    CPU_INDEX.set(cpu);
}

pub fn cpu_index() -> usize {
    CPU_INDEX.get()
}

pub fn rdtsc() -> u64 {
    0
}

pub fn cpuid(_leaf: u32, _subleaf: u32) -> [u32; 4] {
    [0; 4]
}

pub fn pause() {
    core::hint::spin_loop();
}

pub fn set_fs_base(_value: u64) {}

/// No program stack in host tests: nothing is ever on an alternate stack.
pub fn user_stack_pointer() -> u64 {
    0
}

pub fn set_park_deadline(_ns: u64) {}

/// Host tests take no faults.
pub fn set_fault_upcall(_on: bool) {}

pub fn preempt_frame() -> PreemptFrame {
    PreemptFrame::default()
}

pub fn publish_sched_hints(_runnable_waiting: u64, _next_deadline_ns: u64) {}

/// Host tests have no monitor to pass signals on.
pub fn take_host_signals() -> u64 {
    0
}

/// Host tests run no program code to interrupt.
pub fn request_signal_upcall(_cpu: usize) {}

/// Nothing in the tests may need the monitor: parking, kicks and exits
/// only happen in a running isle.
pub fn doorbell(offset: u64, value: u64) {
    panic!("doorbell {offset:#x} ({value}) rung in a host test");
}

/// Host tests take no faults: nothing was saved.
pub fn fault_report() -> (PreemptFrame, u64, u64, u64) {
    (PreemptFrame::default(), 0, 0, 0)
}

/// A memory map of the test's own, as the monitor would place one.
pub fn region_table(
    _boot: &atoll_abi::boot::BootInfo,
) -> Option<&'static mut atoll_abi::regions::RegionTable> {
    Some(Box::leak(Box::new(atoll_abi::regions::RegionTable::EMPTY)))
}
