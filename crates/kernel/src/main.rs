//! The atoll isle kernel.
//!
//! A ring-3 library OS in one address space with the program it runs: the
//! monitor builds everything and starts the vCPU at [`kernel_main`] in ring
//! 3; the kernel calibrates its clock, sets up the heap and jumps to the
//! program. From then on it runs only when the program makes a syscall, which
//! [`linux::syscall_dispatch`] serves in the guest (memory, time, identity) or
//! offloads to the host through the shared-memory queue ([`offload`]).
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]
#![deny(unsafe_code)]
// The host tests leave out the syscall table, which calls most of the rest.
#![cfg_attr(test, allow(dead_code))]

mod arch;
#[cfg(not(test))]
mod linux;
mod mm;
// On the host, requests are recorded instead of sent (see offload_fake.rs).
#[cfg_attr(test, path = "offload_fake.rs")]
mod offload;
mod sched;
mod signals;
mod time;
mod trace;

#[cfg(not(test))]
use core::fmt::Write;
#[cfg(not(test))]
use core::sync::atomic::{AtomicU64, Ordering};

use arch::x86_64::cpu;
#[cfg(not(test))]
use arch::x86_64::user;
use atoll_abi::boot::BootInfo;
#[cfg(not(test))]
use atoll_abi::boot::{flags, BOOT_MAGIC, BOOT_VERSION};
use atoll_abi::mmio;

static BOOT_INFO: spin::Once<&'static BootInfo> = spin::Once::new();

/// The boot info, available once [`kernel_main`] has checked it.
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO
        .get()
        .expect("boot info is set before the program starts")
}

/// Whether the monitor asked for boot flag `flag`.
pub fn has_flag(flag: u64) -> bool {
    boot_info().flags & flag != 0
}

/// First Rust code on the boot CPU; called from `_start` with the boot info
/// address the monitor put in `rdi`.
#[cfg(not(test))]
extern "C" fn kernel_main(boot_info_address: u64) -> ! {
    let boot = cpu::boot_info_at(boot_info_address);
    if boot.magic != BOOT_MAGIC || boot.version != BOOT_VERSION {
        panic!(
            "boot info has magic {:#x} version {}, expected version {BOOT_VERSION}",
            boot.magic, boot.version
        );
    }
    // Which boot this is: 1 + the generation (a forked child's memory
    // holds its parent's kernel, booted already).
    let this_boot = boot.generation + 1;
    if cpu::cpu_area().cpu_index != 0 {
        // Secondary CPUs wait for the boot CPU to set the kernel up.
        while BOOTED.load(Ordering::Acquire) != this_boot {
            cpu::pause();
        }
        sched::run_cpu();
    }
    if boot.generation != 0 {
        // A forked child: the parent's kernel, its memory as it was, with
        // only the thread that forked going on (see `linux::process::fork`).
        time::init(&boot.clock);
        linux::resume_forked_child(boot);
        BOOTED.store(this_boot, Ordering::Release);
        sched::run_cpu();
    }
    BOOT_INFO.call_once(|| boot);
    user::init(boot.ram_size, boot.page_table_root);
    time::init(&boot.clock);
    mm::init(boot);
    if boot.flags & flags::DEBUG_PANIC != 0 {
        panic!("panic requested at boot (--debug-panic)");
    }
    sched::init(boot);
    signals::init(boot);
    mm::populate_reserves();
    BOOTED.store(this_boot, Ordering::Release);
    sched::run_cpu()
}

/// Set once the boot CPU has the kernel ready for the others: to the
/// number of the boot (generation + 1), so a forked child's CPUs wait too.
#[cfg(not(test))]
static BOOTED: AtomicU64 = AtomicU64::new(0);

/// Ends the isle with `status` as the atoll process's exit status.
pub fn exit_isle(status: u8) -> ! {
    trace::print_summary_if_asked();
    loop {
        cpu::doorbell(mmio::EXIT, u64::from(status));
    }
}

/// Ends the isle for the program that replaces it (execve).
pub fn exit_isle_replaced() -> ! {
    loop {
        cpu::doorbell(mmio::EXEC, 0);
    }
}

/// Ends the isle as its program killed by `signal` (the monitor's process
/// ends the same way, or with 128 + `signal`).
pub fn end_isle_killed(signal: u32) -> ! {
    trace::print_summary_if_asked();
    loop {
        cpu::doorbell(mmio::KILLED, u64::from(signal));
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut message = trace::LineBuffer::<1024>::new();
    let _ = write!(message, "{info}");
    cpu::set_panic_message(message.as_bytes());
    loop {
        cpu::doorbell(mmio::PANIC, cpu::cpu_area().cpu_index);
    }
}
