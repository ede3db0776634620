//! Isle against native, in one run: `cargo bench -p atoll-cli`.
//!
//! Prints a table of isle/native ratios plus where an isle's start-up time
//! goes. Targets are reported next to the figures, never asserted. Each
//! table's measurements live in `isle_vs_native/`, named for what they
//! measure; `measure` has the timing and table-row helpers they share.

#[path = "isle_vs_native/dynamic.rs"]
mod dynamic;
#[path = "isle_vs_native/images.rs"]
mod images;
#[path = "isle_vs_native/isles.rs"]
mod isles;
#[path = "isle_vs_native/measure.rs"]
mod measure;
#[path = "isle_vs_native/memory.rs"]
mod memory;
#[path = "isle_vs_native/offload.rs"]
mod offload;
#[path = "isle_vs_native/processes.rs"]
mod processes;
#[path = "isle_vs_native/qemu.rs"]
mod qemu;
#[path = "isle_vs_native/rewriting.rs"]
mod rewriting;
#[path = "isle_vs_native/signals.rs"]
mod signals;
#[path = "isle_vs_native/startup.rs"]
mod startup;
#[path = "isle_vs_native/threads.rs"]
mod threads;

use std::path::Path;
use std::process::Command;

use atoll_testprogs::{program, Flavor};

use dynamic::dynamic_section;
use images::images_section;
use isles::isles_section;
use measure::{isle, median_figure, wall_ms, ATOLL, RUNS};
use memory::{memory_section, vmm_overhead_mib};
use offload::offload_section;
use processes::processes_section;
use qemu::qemu_section;
use rewriting::rewrite_section;
use signals::signals_section;
use startup::{bare_vm_process, startup_phases};
use threads::threads_section;

fn main() {
    if std::env::args().any(|arg| arg == "--bare-vm") {
        bare_vm_process();
        return;
    }
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    // `cargo bench -p atoll-cli --bench isle_vs_native -- --rewriting`
    // (or --isles, --images, --qemu, --memory, --signals, --dynamic,
    // --processes): just
    // that table.
    if std::env::args().any(|arg| arg == "--rewriting") {
        rewrite_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--isles") {
        isles_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--images") {
        images_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--qemu") {
        qemu_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--memory") {
        memory_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--signals") {
        signals_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--dynamic") {
        dynamic_section();
        return;
    }
    if std::env::args().any(|arg| arg == "--processes") {
        processes_section();
        return;
    }
    let hello = program(Flavor::Musl, "hello");
    let kvm = Path::new("/dev/kvm").exists();
    println!(
        "atoll bench: isle vs native, one run ({RUNS} runs per wall-time median), isles on {}\n",
        if kvm {
            "atoll's KVM monitor"
        } else {
            "QEMU's TCG (this machine has no /dev/kvm)"
        }
    );

    let isle_hello = wall_ms(|| isle(&hello));
    let native_hello = wall_ms(|| Command::new(&hello));
    let bare_vm = kvm.then(|| {
        wall_ms(|| {
            let mut command = Command::new(std::env::current_exe().expect("own path"));
            command.arg("--bare-vm");
            command
        })
    });

    let getpid = program(Flavor::Glibc, "getpid_loop");
    let isle_getpid = median_figure(|| isle(&getpid), "getpid_cycles", false);
    let native_getpid = median_figure(|| Command::new(&getpid), "getpid_cycles", false);

    let write_loop = program(Flavor::Glibc, "write_loop");
    let sink = std::env::temp_dir().join("atoll-bench-write-sink");
    let to_file = |mut command: Command| {
        command.stdout(std::fs::File::create(&sink).expect("sink file"));
        command
    };
    let isle_write = median_figure(|| to_file(isle(&write_loop)), "write_cycles", true);
    let native_write = median_figure(|| to_file(Command::new(&write_loop)), "write_cycles", true);
    let _ = std::fs::remove_file(&sink);

    let touch = program(Flavor::Glibc, "touch");
    let isle_touch = |delay_ms: &str| {
        let touch = touch.clone();
        let delay_ms = delay_ms.to_string();
        median_figure(
            move || {
                let mut command = Command::new(ATOLL);
                command
                    .args(["run", "-m", "256M"])
                    .arg(&touch)
                    .args(["64", &delay_ms]);
                command
            },
            "touch_cycles",
            false,
        )
    };
    let touch_now = isle_touch("0");
    let touch_later = isle_touch("300");
    let native_touch = median_figure(
        || {
            let mut command = Command::new(&touch);
            command.arg("64");
            command
        },
        "touch_cycles",
        false,
    );

    let (overhead_64, guest_64) = vmm_overhead_mib("64M");
    let (overhead_1g, guest_1g) = vmm_overhead_mib("1024M");

    println!("| what | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| `atoll run hello` wall time (median) | {isle_hello:.2} ms | {native_hello:.2} ms | {:.1}x | at most 5x |",
        isle_hello / native_hello
    );
    match bare_vm {
        Some(bare_vm) => println!(
            "| bare KVM VM process, one instruction (the floor) | {bare_vm:.2} ms | {native_hello:.2} ms | {:.1}x | report |",
            bare_vm / native_hello
        ),
        None => println!("| bare KVM VM process (the floor) | no /dev/kvm | - | - | report |"),
    }
    println!(
        "| getpid, cycles per call | {isle_getpid:.0} | {native_getpid:.0} | {:.1}x | report |",
        isle_getpid / native_getpid
    );
    println!(
        "| write(1, buf, 1) to a file, cycles per call | {isle_write:.0} | {native_write:.0} | {:.1}x | at most 2x |",
        isle_write / native_write
    );
    println!(
        "| first touch of fresh mmap memory, cycles per 4 KiB page, at once | {touch_now:.0} | {native_touch:.0} | {:.2}x | report |",
        touch_now / native_touch
    );
    println!(
        "| the same after 300 ms (reserves populated in the background) | {touch_later:.0} | {native_touch:.0} | {:.2}x | report |",
        touch_later / native_touch
    );
    println!(
        "| VMM RSS beyond guest RAM, 64M isle | {overhead_64:.1} MiB (guest {guest_64:.0} MiB resident) | - | - | at most 10 MiB |"
    );
    println!(
        "| VMM RSS beyond guest RAM, 1G isle | {overhead_1g:.1} MiB (guest {guest_1g:.0} MiB resident) | - | - | at most 10 MiB |"
    );

    threads_section();
    signals_section();
    memory_section();
    offload_section();
    rewrite_section();
    isles_section();
    images_section();
    dynamic_section();
    processes_section();

    println!("\nwhere one `atoll run hello` spends its time (monitor log, ms since atoll's main):");
    let mut previous = 0.0;
    for (what, at) in startup_phases(&hello) {
        println!("  {at:>7.3}  (+{:>6.3})  {what}", at - previous);
        previous = at;
    }
}
