//! The QEMU backend (TCG) against the KVM monitor and native.

use std::path::Path;
use std::process::Command;

use atoll_testprogs::{program, Flavor};

use super::measure::{isle_with, median_figure, wall_ms};

/// The QEMU backend (TCG) against our KVM monitor and native: wall time of
/// hello, and the getpid and write figures under full x86 semantics (the
/// syscall entry at CPL 0, `sysretq`).
pub fn qemu_section() {
    let installed = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("qemu-system-x86_64").is_file())
    });
    if !installed {
        println!("| QEMU backend | skipped: no qemu-system-x86_64 | | | |");
        return;
    }
    let on = |backend: &'static str, program: &Path, args: &'static [&'static str]| {
        let program = program.to_path_buf();
        move || isle_with(&["--backend", backend], &program, args)
    };
    println!("\n| QEMU backend (TCG) | QEMU | KVM | native | QEMU/KVM | QEMU/native |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let hello = program(Flavor::Musl, "hello");
    let qemu_hello = wall_ms(on("qemu", &hello, &[]));
    let kvm_hello = wall_ms(on("kvm", &hello, &[]));
    let native_hello = wall_ms(|| Command::new(&hello));
    println!(
        "| `atoll run hello`, wall time, ms | {qemu_hello:.1} | {kvm_hello:.2} | {native_hello:.2} | {:.1}x | {:.0}x |",
        qemu_hello / kvm_hello,
        qemu_hello / native_hello
    );
    let getpid = program(Flavor::Glibc, "getpid_loop");
    for (label, flags) in [
        ("getpid, rewritten sites, cycles per call", &[][..]),
        (
            "getpid, every call trapping (--no-rewrite), cycles per call",
            &["--no-rewrite"][..],
        ),
    ] {
        let figure_on = |backend: &str| {
            let mut all = vec!["--backend", backend];
            all.extend_from_slice(flags);
            let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
            let getpid = getpid.clone();
            median_figure(
                move || {
                    let flags: Vec<&str> = all.iter().map(String::as_str).collect();
                    isle_with(&flags, &getpid, &[])
                },
                "getpid_cycles",
                false,
            )
        };
        let (qemu, kvm) = (figure_on("qemu"), figure_on("kvm"));
        let native = median_figure(|| Command::new(&getpid), "getpid_cycles", false);
        println!(
            "| {label} | {qemu:.0} | {kvm:.0} | {native:.0} | {:.2}x | {:.2}x |",
            qemu / kvm,
            qemu / native
        );
    }
    let write_loop = program(Flavor::Glibc, "write_loop");
    let sink = std::env::temp_dir().join("atoll-bench-qemu-write-sink");
    let to_file = |mut command: Command| {
        command.stdout(std::fs::File::create(&sink).expect("sink file"));
        command
    };
    let write_on = |backend: &'static str| {
        median_figure(
            || to_file(isle_with(&["--backend", backend], &write_loop, &[])),
            "write_cycles",
            true,
        )
    };
    let (qemu_write, kvm_write) = (write_on("qemu"), write_on("kvm"));
    let native_write = median_figure(|| to_file(Command::new(&write_loop)), "write_cycles", true);
    let _ = std::fs::remove_file(&sink);
    println!(
        "| 1-byte write to a file, cycles per call | {qemu_write:.0} | {kvm_write:.0} | {native_write:.0} | {:.2}x | {:.2}x |",
        qemu_write / kvm_write,
        qemu_write / native_write
    );
}
