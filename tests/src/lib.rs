//! Paths to atoll's real test programs.
//!
//! The build script compiles the C programs in `programs/c/` with both
//! `musl-gcc -static` and `gcc -static` (glibc), the Rust programs in
//! `programs/rust/src/bin/` for `x86_64-unknown-linux-musl`, and the Go
//! programs in `programs/go/` with `CGO_ENABLED=0`, all as fully static
//! x86_64 Linux executables; and the C programs again dynamically linked.
//!
//! ```no_run
//! use atoll_testprogs::{program, Flavor};
//!
//! for &flavor in Flavor::ALL {
//!     let hello = program(flavor, "hello");
//!     println!("{}: {}", flavor.label(), hello.display());
//! }
//! ```

use std::fmt;
use std::path::PathBuf;

/// How a test program was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// C, statically linked against musl (`musl-gcc -static -O2`).
    Musl,
    /// C, statically linked against glibc (`gcc -static -O2`).
    Glibc,
    /// Rust std, `x86_64-unknown-linux-musl` (static).
    Rust,
    /// Go, `CGO_ENABLED=0` (static; the runtime makes its own syscalls).
    Go,
    /// C, dynamically linked against musl (`musl-gcc`, PIE, started by
    /// /lib/ld-musl-x86_64.so.1).
    MuslDynamic,
    /// C, dynamically linked against glibc (`gcc`, PIE, started by
    /// /lib64/ld-linux-x86-64.so.2).
    GlibcDynamic,
}

impl Flavor {
    /// The flavors the common programs (hello, cat, exitcode, ...) are all
    /// built in, in a stable order. Go has only programs of its own.
    pub const ALL: &'static [Flavor] = &[Flavor::Musl, Flavor::Glibc, Flavor::Rust];

    /// The static C flavors (every program in `programs/c/` exists in all
    /// the C flavors).
    pub const C: &'static [Flavor] = &[Flavor::Musl, Flavor::Glibc];

    /// The dynamically linked C flavors.
    pub const DYNAMIC: &'static [Flavor] = &[Flavor::MuslDynamic, Flavor::GlibcDynamic];

    /// Short name; also the sub-directory of [`programs_dir`] holding the
    /// flavor's binaries.
    pub fn label(&self) -> &'static str {
        match self {
            Flavor::Musl => "musl",
            Flavor::Glibc => "glibc",
            Flavor::Rust => "rust",
            Flavor::Go => "go",
            Flavor::MuslDynamic => "musl-dynamic",
            Flavor::GlibcDynamic => "glibc-dynamic",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Directory holding the built programs: `<dir>/<flavor label>/<name>`.
pub fn programs_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join("programs")
}

/// Path of the test program `name` built as `flavor`.
///
/// # Panics
///
/// If no such program was built (the message lists the ones that were).
pub fn program(flavor: Flavor, name: &str) -> PathBuf {
    let path = programs_dir().join(flavor.label()).join(name);
    if !path.is_file() {
        panic!(
            "atoll-testprogs: no {} test program named {name:?} at {} (available: {})",
            flavor.label(),
            path.display(),
            names(flavor).join(", ")
        );
    }
    path
}

/// Names of the programs built as `flavor`, sorted.
pub fn names(flavor: Flavor) -> Vec<String> {
    let dir = programs_dir().join(flavor.label());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flavor_has_hello() {
        for &flavor in Flavor::ALL.iter().chain(&[Flavor::Go]) {
            let p = program(flavor, "hello");
            assert!(p.ends_with(format!("{}/hello", flavor.label())));
        }
    }

    #[test]
    fn c_flavors_have_the_same_programs() {
        assert_eq!(names(Flavor::Musl), names(Flavor::Glibc));
        assert!(names(Flavor::Musl).contains(&"idt_smash".to_string()));
    }

    #[test]
    #[should_panic(expected = "no rust test program named \"nope\"")]
    fn missing_program_panics() {
        program(Flavor::Rust, "nope");
    }
}
