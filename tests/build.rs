//! Builds the real test programs that atoll runs inside its isle.
//!
//! * every `programs/c/*.c` is compiled four times (with `-pthread`):
//!   statically with `musl-gcc` into `OUT_DIR/programs/musl/NAME` and with
//!   `gcc` (glibc) into `OUT_DIR/programs/glibc/NAME`, and dynamically into
//!   `musl-dynamic/` and `glibc-dynamic/`; those in `programs/c/dynamic/`
//!   (dlopen) only dynamically;
//! * the standalone cargo package `programs/rust` is built for
//!   `x86_64-unknown-linux-musl` and its binaries are copied to
//!   `OUT_DIR/programs/rust/NAME`;
//! * every `programs/go/*.go` is built on its own, statically
//!   (`CGO_ENABLED=0`), into `OUT_DIR/programs/go/NAME`: standard library
//!   only, offline, with the Go build cache inside `OUT_DIR`.

use std::env;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const RUST_TARGET: &str = "x86_64-unknown-linux-musl";

const INSTALL_HINT: &str = "install the test-program toolchains with \
    `apt-get install musl-tools gcc golang-go` and `rustup target add x86_64-unknown-linux-musl` \
    (or run scripts/install-deps.sh)";

/// Environment variables that the outer cargo sets for build scripts (or that a
/// user may set for the outer build) and that must not leak into the nested
/// cargo invocation.
const NESTED_CARGO_ENV_REMOVE: &[&str] = &[
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

struct CCompiler {
    /// Executable to run.
    program: &'static str,
    /// Output sub-directory (the flavor label).
    flavor: &'static str,
    /// How it links: `-static`, or nothing for a dynamic PIE.
    link: &'static [&'static str],
}

const C_COMPILERS: &[CCompiler] = &[
    CCompiler {
        program: "musl-gcc",
        flavor: "musl",
        link: &["-static"],
    },
    CCompiler {
        program: "gcc",
        flavor: "glibc",
        link: &["-static"],
    },
    // Dynamically linked (PIE, the distribution's default): run through
    // the interpreter each names, with the host's shared libraries.
    CCompiler {
        program: "musl-gcc",
        flavor: "musl-dynamic",
        link: &[],
    },
    CCompiler {
        program: "gcc",
        flavor: "glibc-dynamic",
        link: &[],
    },
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let programs_out = out_dir.join("programs");

    println!("cargo:rerun-if-changed=build.rs");

    build_c_programs(&manifest_dir.join("programs").join("c"), &programs_out);
    build_rust_programs(
        &manifest_dir.join("programs").join("rust"),
        &out_dir.join("rust-target"),
        &programs_out.join("rust"),
    );
    build_go_programs(
        &manifest_dir.join("programs").join("go"),
        &out_dir.join("go-build"),
        &programs_out.join("go"),
    );
}

fn create_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
}

/// Empties (or creates) an output directory so binaries of deleted sources
/// do not linger.
fn fresh_dir(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("removing {}: {e}", dir.display()),
    }
    create_dir(dir);
}

/// Lists `dir/*.EXT` sorted by name.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("read_dir entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_else(|| panic!("non-UTF-8 program name: {}", path.display()))
        .to_owned()
}

/// Checks that `program` can be spawned at all, so a missing toolchain gives
/// a helpful message rather than an obscure spawn error.
fn require_tool(program: &str, args: &[&str]) {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("atoll-testprogs: `{program}` was not found in PATH; {INSTALL_HINT}")
        }
        Err(e) => panic!("atoll-testprogs: cannot run `{program}`: {e}; {INSTALL_HINT}"),
    }
}

fn build_c_programs(src_dir: &Path, programs_out: &Path) {
    println!("cargo:rerun-if-changed={}", src_dir.display());
    let sources = files_with_ext(src_dir, "c");
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
    }

    for cc in C_COMPILERS {
        require_tool(cc.program, &["--version"]);
        fresh_dir(&programs_out.join(cc.flavor));
    }

    // Start every compile first, then collect them: the compiles are
    // independent, so this runs them in parallel.
    let mut jobs: Vec<(String, Child)> = Vec::new();
    // Those in `dynamic/` need a dynamic linker (dlopen): only those builds.
    let dynamic_only = files_with_ext(&src_dir.join("dynamic"), "c");
    for src in sources.iter().chain(&dynamic_only) {
        println!("cargo:rerun-if-changed={}", src.display());
        let name = file_stem(src);
        for cc in C_COMPILERS {
            if dynamic_only.contains(src) && cc.link.contains(&"-static") {
                continue;
            }
            let out = programs_out.join(cc.flavor).join(&name);
            let child = Command::new(cc.program)
                .args(cc.link)
                .args(["-O2", "-g", "-Wall", "-pthread", "-o"])
                .arg(&out)
                .arg(src)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawning `{}`: {e}; {INSTALL_HINT}", cc.program));
            jobs.push((format!("{} {}", cc.program, src.display()), child));
        }
    }

    let mut failures = Vec::new();
    for (what, child) in jobs {
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for `{what}`: {e}"));
        if !output.status.success() {
            failures.push(format!(
                "`{what}` failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        } else {
            for line in String::from_utf8_lossy(&output.stderr).lines() {
                println!("cargo:warning={what}: {line}");
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "atoll-testprogs: compiling C test programs failed:\n{}",
            failures.join("\n")
        );
    }
}

fn build_rust_programs(crate_dir: &Path, target_dir: &Path, dest: &Path) {
    let bin_dir = crate_dir.join("src").join("bin");
    println!(
        "cargo:rerun-if-changed={}",
        crate_dir.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-changed={}", crate_dir.join("src").display());
    let bins = files_with_ext(&bin_dir, "rs");
    for bin in &bins {
        println!("cargo:rerun-if-changed={}", bin.display());
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--offline", "--target", RUST_TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(crate_dir)
        .stdin(Stdio::null());
    for var in NESTED_CARGO_ENV_REMOVE {
        cmd.env_remove(var);
    }

    let output: Output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "atoll-testprogs: cargo ({}) was not found; {INSTALL_HINT}",
            Path::new(&cargo).display()
        ),
        Err(e) => panic!("atoll-testprogs: running nested cargo: {e}"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("can't find crate for `std`")
            || stderr.contains("target may not be installed")
        {
            format!(
                "\nhint: the {RUST_TARGET} standard library seems to be missing; {INSTALL_HINT}"
            )
        } else {
            String::new()
        };
        panic!(
            "atoll-testprogs: building the Rust test programs in {} failed ({}):\n{}{}{hint}",
            crate_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            stderr
        );
    }

    fresh_dir(dest);
    let built = target_dir.join(RUST_TARGET).join("release");
    for bin in &bins {
        let name = file_stem(bin);
        let from = built.join(&name);
        let to = dest.join(&name);
        fs::copy(&from, &to).unwrap_or_else(|e| {
            panic!(
                "atoll-testprogs: copying {} to {}: {e}",
                from.display(),
                to.display()
            )
        });
    }
}

/// Builds each `*.go` in `src_dir` as its own static program in `dest`.
/// `work_dir` holds Go's build cache and GOPATH, so the build writes
/// nothing outside the target directory and reads no user settings.
fn build_go_programs(src_dir: &Path, work_dir: &Path, dest: &Path) {
    println!("cargo:rerun-if-changed={}", src_dir.display());
    let sources = files_with_ext(src_dir, "go");
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
    }
    require_tool("go", &["version"]);
    fresh_dir(dest);
    create_dir(work_dir);
    for src in &sources {
        let out = dest.join(file_stem(src));
        let output = Command::new("go")
            .args(["build", "-trimpath", "-o"])
            .arg(&out)
            .arg(src)
            .current_dir(src_dir)
            // Static, standard library only, and no network: no module
            // downloads, no toolchain switch, no user or workspace config.
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .env("GOWORK", "off")
            .env("GOCACHE", work_dir.join("cache"))
            .env("GOPATH", work_dir.join("gopath"))
            .env_remove("GOOS")
            .env_remove("GOARCH")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("atoll-testprogs: running `go build`: {e}; {INSTALL_HINT}"));
        if !output.status.success() {
            panic!(
                "atoll-testprogs: `go build {}` failed ({}):\n{}{}",
                src.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
