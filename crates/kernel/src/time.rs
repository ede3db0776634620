//! Time from the TSC, with no VM exit.
//!
//! The monitor samples the guest TSC together with the host's REALTIME and
//! MONOTONIC clocks just before boot; the kernel extrapolates with the TSC
//! frequency KVM reports. CLOCK_MONOTONIC therefore agrees with the host's.

use atoll_abi::boot::ClockInfo;

use crate::arch::x86_64::cpu;

#[derive(Clone, Copy)]
struct Calibration {
    tsc_at_boot: u64,
    realtime_ns: u64,
    monotonic_ns: u64,
    /// Nanoseconds per TSC tick, as a 32.32 fixed-point number.
    ns_per_tick_q32: u64,
}

/// Set at boot, and again in a forked child, whose new VM has a TSC of
/// its own.
static CALIBRATION: spin::RwLock<Calibration> = spin::RwLock::new(Calibration {
    tsc_at_boot: 0,
    realtime_ns: 0,
    monotonic_ns: 0,
    ns_per_tick_q32: 0,
});

pub fn init(clock: &ClockInfo) {
    if clock.tsc_khz == 0 {
        panic!("the monitor reported a TSC frequency of 0 kHz");
    }
    *CALIBRATION.write() = Calibration {
        tsc_at_boot: clock.tsc_at_boot,
        realtime_ns: clock.realtime_ns,
        monotonic_ns: clock.monotonic_ns,
        ns_per_tick_q32: clock.ns_per_tick_q32(),
    };
}

fn calibration() -> Calibration {
    *CALIBRATION.read()
}

fn ns_since_boot(calibration: Calibration) -> u64 {
    let ticks = cpu::rdtsc().saturating_sub(calibration.tsc_at_boot);
    ((u128::from(ticks) * u128::from(calibration.ns_per_tick_q32)) >> 32) as u64
}

/// CLOCK_MONOTONIC in ns (the host's timeline).
pub fn monotonic_ns() -> u64 {
    let calibration = calibration();
    calibration.monotonic_ns + ns_since_boot(calibration)
}

/// CLOCK_REALTIME in ns since the epoch.
pub fn realtime_ns() -> u64 {
    let calibration = calibration();
    calibration.realtime_ns + ns_since_boot(calibration)
}

/// Nanoseconds the isle has been running.
pub fn boottime_ns() -> u64 {
    ns_since_boot(calibration())
}
