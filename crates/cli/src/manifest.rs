//! `atoll.toml`: an app as atoll runs it (program, args, env, cores,
//! memory, mounts, ports, kernel) and how to build it.
//!
//! ```toml
//! [app]
//! name = "hello"
//! version = "0.1.0"
//!
//! [build]
//! lang = "rust"            # or "c"; or command = "make CC=musl-gcc"
//! files = ["static:/srv"]  # project directories packed into the image,
//!                          # seen read-only at that path in the isle
//! # base = "localhost:5000/me/debian:12"  # run on this image's root
//! #                        # filesystem (the program is /usr/local/bin/NAME)
//!
//! [run]
//! program = "target/x86_64-unknown-linux-musl/release/hello"  # default by lang
//! args = ["world"]
//! env = { GREETING = "Hello" }
//! cores = 1
//! memory = "64M"
//! volumes = ["data:/data:ro"]
//! publish = ["8080"]
//! net = false
//!
//! [kernel]
//! version = "0.1.0"        # the kernel this atoll carries must match
//! features = ["threads"]
//! # or a kernel pushed on its own (`atoll push --kernel`), pulled if need be:
//! # image = "localhost:5000/atoll/kernel:0.1.0"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PathError;

pub const FILE_NAME: &str = "atoll.toml";
/// What the built-in kernel offers, for `[kernel] features`.
pub const KERNEL_FEATURES: [&str; 6] =
    ["threads", "files", "net", "unix-sockets", "rewrite", "vdso"];
pub const RUST_TARGET: &str = "x86_64-unknown-linux-musl";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub app: App,
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub run: Run,
    #[serde(default)]
    pub kernel: Kernel,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub lang: Option<Lang>,
    pub command: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    /// A container image (REGISTRY/NAME:TAG, or one in the store) whose
    /// root filesystem the program runs on; the image built is then a
    /// container image too.
    pub base: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    C,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub program: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cores: Option<u64>,
    pub memory: Option<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub net: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub version: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
}

/// Why an `atoll.toml` can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Read(#[from] PathError),
    #[error("{}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        problem: InvalidManifest,
    },
}

/// What is wrong in a manifest's text.
#[derive(Debug, thiserror::Error)]
pub enum InvalidManifest {
    /// Not TOML, or not the fields atoll knows (the message names the line).
    #[error("{0}")]
    Toml(String),
    #[error("[app] name = {0:?}: use letters, digits, - and _")]
    AppName(String),
    #[error("[kernel] version = {0:?}, but this atoll carries kernel {ours}", ours = env!("CARGO_PKG_VERSION"))]
    KernelVersion(String),
    #[error("[kernel] features: {0:?} isn't one of {known}", known = KERNEL_FEATURES.join(", "))]
    KernelFeature(String),
    #[error(
        "[build] files: {0:?}: use \"DIR:/PATH\" (a project directory, where the isle sees it)"
    )]
    Files(String),
    #[error("give [build] lang or command, or [run] program")]
    NoProgram,
    #[error(
        "[build] base and [kernel] image: an image on a base runs on this atoll's kernel: give one"
    )]
    BaseWithKernelImage,
}

/// The manifest in `dir`, checked; errors name the file and line.
pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
    let path = dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(PathError::at(&path))?;
    parse(&text).map_err(|problem| ManifestError::Invalid { path, problem })
}

pub fn parse(text: &str) -> Result<Manifest, InvalidManifest> {
    let manifest: Manifest = toml::from_str(text)
        .map_err(|error| InvalidManifest::Toml(atoll_manager::config::toml_error(text, &error)))?;
    let name_ok = !manifest.app.name.is_empty()
        && manifest
            .app
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(InvalidManifest::AppName(manifest.app.name));
    }
    let ours = env!("CARGO_PKG_VERSION");
    if let (Some(version), None) = (&manifest.kernel.version, &manifest.kernel.image) {
        if version != ours {
            return Err(InvalidManifest::KernelVersion(version.clone()));
        }
    }
    if let Some(feature) = manifest
        .kernel
        .features
        .iter()
        .find(|feature| !KERNEL_FEATURES.contains(&feature.as_str()))
    {
        return Err(InvalidManifest::KernelFeature(feature.clone()));
    }
    for files in &manifest.build.files {
        split_files(files)?;
    }
    if manifest.build.base.is_some() && manifest.kernel.image.is_some() {
        return Err(InvalidManifest::BaseWithKernelImage);
    }
    if manifest.build.lang.is_none()
        && manifest.build.command.is_none()
        && manifest.run.program.is_none()
    {
        return Err(InvalidManifest::NoProgram);
    }
    Ok(manifest)
}

impl Manifest {
    /// The program, as a path inside the project directory `dir`.
    pub fn program(&self, dir: &Path) -> PathBuf {
        match (&self.run.program, self.build.lang) {
            (Some(program), _) => dir.join(program),
            (None, Some(Lang::Rust)) => dir
                .join("target")
                .join(RUST_TARGET)
                .join("release")
                .join(&self.app.name),
            (None, _) => dir.join(&self.app.name),
        }
    }
}

/// `DIR:GUEST` of `[build] files`, checked.
fn split_files(text: &str) -> Result<(&str, &str), InvalidManifest> {
    text.split_once(':')
        .filter(|(dir, guest)| !dir.is_empty() && guest.starts_with('/') && guest.len() > 1)
        .ok_or_else(|| InvalidManifest::Files(text.to_string()))
}

impl Manifest {
    /// `[build] files`: (the directory, where the isle sees it).
    pub fn files(&self, dir: &Path) -> Vec<(PathBuf, String)> {
        self.build
            .files
            .iter()
            .filter_map(|text| split_files(text).ok())
            .map(|(host, guest)| (dir.join(host), atoll_vmm::sandbox::normalize(guest)))
            .collect()
    }
}

/// Whether `path` is a project directory: one with an atoll.toml.
pub fn is_project(path: &Path) -> bool {
    path.is_dir() && path.join(FILE_NAME).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_parses_and_names_its_program() {
        let manifest = parse(
            "[app]\nname = \"hello\"\nversion = \"0.1.0\"\n[build]\nlang = \"rust\"\n\
             [run]\nargs = [\"a\"]\nenv = { K = \"V\" }\ncores = 2\nmemory = \"128M\"\n\
             volumes = [\"d:/d\"]\npublish = [\"8080\"]\nnet = true\n\
             [kernel]\nversion = \"0.1.0\"\nfeatures = [\"threads\"]\n",
        )
        .unwrap();
        assert_eq!(manifest.run.cores, Some(2));
        assert_eq!(manifest.run.env["K"], "V");
        assert_eq!(
            manifest.program(Path::new("/p")),
            Path::new("/p/target/x86_64-unknown-linux-musl/release/hello")
        );
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        for (text, needle) in [
            ("[app]\nname = \"x\"\n", "missing field `version`"),
            ("[app]\nname = \"x\"\nversion = \"1\"\ncolour = 2\n", "line 4"),
            ("[app]\nname = \"a b\"\nversion = \"1\"\n[build]\nlang = \"c\"\n", "letters"),
            ("[app]\nname = \"x\"\nversion = \"1\"\n[build]\nlang = \"go\"\n", "line 5"),
            ("[app]\nname = \"x\"\nversion = \"1\"\n", "[build] lang"),
            (
                "[app]\nname = \"x\"\nversion = \"1\"\n[build]\nlang = \"c\"\n[kernel]\nversion = \"9\"\n",
                "carries kernel",
            ),
            (
                "[app]\nname = \"x\"\nversion = \"1\"\n[build]\nlang = \"c\"\n[kernel]\nfeatures = [\"gpu\"]\n",
                "isn't one of",
            ),
            (
                "[app]\nname = \"x\"\nversion = \"1\"\n[build]\nlang = \"c\"\nfiles = [\"www\"]\n",
                "DIR:/PATH",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }
}
