//! Builds the isle kernel for x86_64-unknown-none and hands its path to the
//! atoll binary, which embeds it: one binary is all a user needs.

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;

fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|name| name != "target") {
                watch(&path);
            } else {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let kernel_dir = manifest_dir.join("../kernel");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("kernel-target");
    watch(&kernel_dir.join("src"));
    watch(&manifest_dir.join("../abi/src"));
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "linker.ld",
        "build.rs",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", kernel_dir.join(file).display());
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&kernel_dir)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-none",
            "--target-dir",
        ])
        .arg(&target_dir);
    // The outer build's settings are for the host target; the kernel has its own.
    for variable in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("cannot run cargo to build the kernel: {error}"));
    if !status.success() {
        panic!(
            "building the isle kernel failed (its errors are above; if it says the \
             x86_64-unknown-none target is missing: rustup target add x86_64-unknown-none)"
        );
    }
    let kernel = target_dir.join("x86_64-unknown-none/release/atoll-kernel");
    let embedded = out_dir.join("atoll-kernel.elf");
    std::fs::copy(&kernel, &embedded)
        .unwrap_or_else(|error| panic!("cannot copy {}: {error}", kernel.display()));
    println!("cargo:rustc-env=ATOLL_KERNEL_ELF={}", embedded.display());
    // Its digest, so that `atoll run IMAGE` needn't hash it at every start.
    let bytes = std::fs::read(&embedded).expect("the kernel just copied");
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    println!("cargo:rustc-env=ATOLL_KERNEL_DIGEST=sha256:{hex}");
}
