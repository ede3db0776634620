//! Signals sent to atoll itself (Ctrl-C's SIGINT, `atoll stop`'s SIGTERM,
//! SIGQUIT, SIGHUP, SIGWINCH, SIGUSR1/2) while an isle runs go on to its
//! program, as a kill(2) from outside the isle would: the program's
//! disposition decides what happens.
//!
//! The monitor sets the signal's byte in CPU 0's area and bumps a counter;
//! then every CPU is asked to look: a CPU in program code is interrupted
//! by the ticker (`signal_upcall`), a parked one is kicked. The kernel
//! clears the byte when it takes the signal, so the monitor can tell a
//! kernel that took it from one that isn't looking (under QEMU, say).

use std::sync::{Arc, Mutex};

use atoll_abi::boot::CpuArea;
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::offload::Offload;

/// The running isle, while it runs.
struct Route {
    ram: Arc<GuestRam>,
    /// Guest addresses of the CPU areas.
    areas: Vec<u64>,
    offload: Arc<Offload>,
    raised: u64,
}

static ROUTE: Mutex<Option<Route>> = Mutex::new(None);

fn field(area: u64, offset: usize) -> GuestAddress {
    GuestAddress(area + offset as u64)
}

/// Signals sent to atoll go to this isle until [`stop`].
pub(crate) fn start(ram: Arc<GuestRam>, areas: Vec<u64>, offload: Arc<Offload>) {
    *ROUTE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Route {
        ram,
        areas,
        offload,
        raised: 0,
    });
}

/// The isle has ended: signals are atoll's again.
/// Held while the process forks, so no other thread holds it then.
pub(crate) fn hold_for_fork() -> impl Drop {
    ROUTE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn stop() {
    ROUTE.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// The signals atoll passes on to the program: `atoll stop`'s SIGTERM,
/// the terminal's SIGINT (Ctrl-C), SIGQUIT (Ctrl-\), SIGTSTP (Ctrl-Z),
/// SIGHUP and SIGWINCH (a resize), SIGUSR1/SIGUSR2 sent to atoll, SIGCHLD
/// (a child process of the isle's, which is one of atoll's, ended or
/// stopped), and job control's SIGCONT, SIGTTIN and SIGTTOU. Blocked in
/// every thread of atoll's, SIGTTIN and SIGTTOU are never the terminal's
/// to send: the isle's kernel sends them as its program's dispositions
/// say.
pub const PASSED_ON: [i32; 12] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGWINCH,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// What a signal passed on does to atoll itself when no isle takes it,
/// as its default action would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unhandled {
    /// SIGCHLD, SIGWINCH, SIGCONT (the host continued atoll already).
    Nothing,
    /// The stop signals.
    Stop,
    /// The rest.
    End,
}

/// Stops atoll as stop signal `signal` would, until it is continued.
pub fn stop_atoll(signal: i32) {
    let _ = crate::host::process::stop_as(signal);
}

pub fn unhandled(signal: i32) -> Unhandled {
    match signal {
        libc::SIGCHLD | libc::SIGWINCH | libc::SIGCONT => Unhandled::Nothing,
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Unhandled::Stop,
        _ => Unhandled::End,
    }
}

/// Passes `signal` on to the running isle's program and waits (up to a
/// second) for its kernel to take it; false when no isle took it. What
/// atoll does then is its own ([`unhandled`]).
pub fn pass_on_and_wait(signal: i32) -> bool {
    tracing::debug!(signal, "passed on to the program");
    if !pass_on(signal) {
        return false;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    // Taken is checked last, too: a stop the program took may have held
    // this process (and this wait) past the deadline.
    while !taken(signal) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    true
}

/// Passes `signal` on to the running isle's program; false when no isle
/// runs (or the number is no signal).
pub fn pass_on(signal: i32) -> bool {
    let mut route = ROUTE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(route) = route.as_mut() else {
        return false;
    };
    let (Ok(index @ 0..64), Some(&first)) = (usize::try_from(signal - 1), route.areas.first())
    else {
        return false;
    };
    let memory = route.ram.memory();
    let byte = field(first, std::mem::offset_of!(CpuArea, host_signals) + index);
    if memory
        .store(1u8, byte, std::sync::atomic::Ordering::SeqCst)
        .is_err()
    {
        return false;
    }
    route.raised += 1;
    let _ = memory.store(
        route.raised,
        field(first, std::mem::offset_of!(CpuArea, host_signals_raised)),
        std::sync::atomic::Ordering::SeqCst,
    );
    for (cpu, &area) in route.areas.iter().enumerate() {
        let _ = memory.write_obj(
            1u64,
            field(area, std::mem::offset_of!(CpuArea, signal_upcall)),
        );
        route.offload.kick_vcpu(cpu);
    }
    true
}

/// Whether the isle's kernel has taken `signal` since it was passed on, or
/// the isle has ended (nothing is left to take it).
pub fn taken(signal: i32) -> bool {
    let route = ROUTE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(route) = route.as_ref() else {
        return true;
    };
    let (Ok(index @ 0..64), Some(&first)) = (usize::try_from(signal - 1), route.areas.first())
    else {
        return false;
    };
    let byte = field(first, std::mem::offset_of!(CpuArea, host_signals) + index);
    route
        .ram
        .memory()
        .load::<u8>(byte, std::sync::atomic::Ordering::SeqCst)
        .is_ok_and(|value| value == 0)
}
