//! Single-file images: `atoll pack SOURCE -o FILE.isle`, `atoll load`, and
//! running a `.isle` file (`atoll run FILE.isle`, or `./FILE.isle` once
//! `atoll binfmt install` has registered the format).
//!
//! A `.isle` file is a 36-byte header, `#!/usr/bin/env -S atoll run\n`
//! then `\x7fISLE01\n`, followed by a tar of an OCI image layout holding
//! one image: `oci-layout`, `index.json` (the image's name in
//! `org.opencontainers.image.ref.name`) and `blobs/sha256/...`. So
//! `tail -c +37 hello.isle | tar t` lists it, and every blob is checked
//! against its digest when the file is read.
//!
//! The shebang runs `./hello.isle` through the `atoll` in PATH even
//! without binfmt_misc; the binfmt registration matches the whole header
//! and needs no PATH (nor `env -S`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::{CliError, PathError};
use crate::image::store::{self, Descriptor, Manifest, Store, StoreError};
use crate::manifest::ManifestError;
use crate::project::PartsError;

/// What a `.isle` file starts with (binfmt_misc matches on it).
pub const MAGIC: [u8; 36] = *b"#!/usr/bin/env -S atoll run\n\x7fISLE01\n";
// binfmt_misc matches at most 128 bytes of magic.
const _: () = assert!(MAGIC.len() <= 128);

/// Whether `path` is a `.isle` file (by its first bytes, not its name).
pub fn is_pack(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut head))
        .is_ok()
        && head == MAGIC
}

/// What is wrong with a blob of a `.isle` file.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the file lacks blob {0}: pack it again")]
    Lacking(String),
    #[error("blob {0} doesn't match its digest: the file is corrupt; pack it again")]
    Corrupt(String),
}

/// Why a `.isle` file can't be read or written, or an image packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("{}: not a .isle file (make one with `atoll pack`)", .0.display())]
    NotAPack(PathBuf),
    #[error("{}: corrupt ({source})", path.display())]
    Corrupt {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: unexpected entry {entry:?}: not a .isle file", path.display())]
    UnexpectedEntry { path: PathBuf, entry: String },
    #[error("{}: no valid index.json: not a .isle file", .0.display())]
    NoIndex(PathBuf),
    #[error("{}: index.json names no image", .0.display())]
    Unnamed(PathBuf),
    /// The image's manifest blob, named with the file.
    #[error("{}: {problem}", path.display())]
    ManifestBlob { path: PathBuf, problem: BlobError },
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("invalid image config: {0}")]
    InvalidConfig(serde_json::Error),
    /// The tar being written (in memory) failed.
    #[error(transparent)]
    Archive(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Parts(#[from] PartsError),
    #[error("{}: {error}: run `atoll build {project}` first", program.display())]
    NotBuilt {
        program: PathBuf,
        error: std::io::Error,
        project: String,
    },
    #[error("{program}: {error}")]
    NotAProgram {
        program: String,
        error: atoll_vmm::image::loader::LoadError,
    },
    #[error("{0}: no such project, program or image (see `atoll images`)")]
    NoSuchSource(String),
}

/// An image read from a `.isle` file.
pub struct Packed {
    pub name: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Packed {
    /// A blob of the image, checked against its descriptor.
    pub fn blob(&self, descriptor: &Descriptor) -> Result<&[u8], BlobError> {
        let bytes = self
            .blobs
            .get(&descriptor.digest)
            .ok_or_else(|| BlobError::Lacking(descriptor.digest.clone()))?;
        if bytes.len() as u64 != descriptor.size || store::sha256(bytes) != descriptor.digest {
            return Err(BlobError::Corrupt(descriptor.digest.clone()));
        }
        Ok(bytes)
    }

    pub fn config(&self) -> Result<store::Config, PackError> {
        serde_json::from_slice(self.blob(&self.manifest.config)?).map_err(PackError::InvalidConfig)
    }
}

/// Reads and checks a `.isle` file.
pub fn read(path: &Path) -> Result<Packed, PackError> {
    let bytes = std::fs::read(path).map_err(PathError::at(path))?;
    let body = bytes
        .strip_prefix(&MAGIC)
        .ok_or_else(|| PackError::NotAPack(path.to_path_buf()))?;
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(body);
    let entries = archive.entries().map_err(PathError::at(path))?;
    for entry in entries {
        let mut entry = entry.map_err(|source| PackError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let known = name == "oci-layout"
            || name == "index.json"
            || name
                .strip_prefix("blobs/sha256/")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !known {
            return Err(PackError::UnexpectedEntry {
                path: path.to_path_buf(),
                entry: name,
            });
        }
        let mut content = Vec::with_capacity(entry.size().min(1 << 30) as usize);
        std::io::Read::read_to_end(&mut entry, &mut content).map_err(PathError::at(path))?;
        files.insert(name, content);
    }
    let index: serde_json::Value = files
        .get("index.json")
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .ok_or_else(|| PackError::NoIndex(path.to_path_buf()))?;
    let entry: Descriptor = index
        .get("manifests")
        .and_then(|list| list.get(0))
        .and_then(|entry| serde_json::from_value(entry.clone()).ok())
        .ok_or_else(|| PackError::Unnamed(path.to_path_buf()))?;
    let name = entry
        .annotations
        .get(store::REF_NAME)
        .cloned()
        .unwrap_or_else(|| "unnamed:latest".into());
    let mut blobs = BTreeMap::new();
    for (file, content) in files {
        if let Some(hex) = file.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), content);
        }
    }
    let mut packed = Packed {
        name,
        manifest_bytes: Vec::new(),
        manifest: Manifest {
            schema_version: 2,
            media_type: String::new(),
            config: entry.clone(),
            layers: Vec::new(),
            annotations: Default::default(),
        },
        blobs,
    };
    let manifest_bytes = packed
        .blob(&entry)
        .map_err(|problem| PackError::ManifestBlob {
            path: path.to_path_buf(),
            problem,
        })?
        .to_vec();
    packed.manifest = store::parse_manifest(&manifest_bytes)?;
    packed.manifest_bytes = manifest_bytes;
    Ok(packed)
}

/// Writes an image (its manifest descriptor and blobs by digest) as a
/// `.isle` file, executable, replacing `output` only once it is whole.
fn write(
    output: &Path,
    name: &str,
    manifest: &Descriptor,
    blobs: &BTreeMap<String, Vec<u8>>,
) -> Result<u64, PackError> {
    let mut entry = manifest.clone();
    entry
        .annotations
        .insert(store::REF_NAME.into(), name.to_string());
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] });
    let mut builder = tar::Builder::new(MAGIC.to_vec());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, bytes)
    };
    let written = add("oci-layout", b"{\"imageLayoutVersion\": \"1.0.0\"}\n")
        .and_then(|()| add("index.json", index.to_string().as_bytes()))
        .and_then(|()| {
            blobs.iter().try_for_each(|(digest, bytes)| {
                let hex = digest.trim_start_matches("sha256:");
                add(&format!("blobs/sha256/{hex}"), bytes)
            })
        })
        .and_then(|()| builder.into_inner());
    let bytes = written.map_err(PackError::Archive)?;
    let temporary = output.with_extension(format!("partial-{}", std::process::id()));
    let saved = std::fs::write(&temporary, &bytes)
        .and_then(|()| {
            std::fs::set_permissions(
                &temporary,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
        })
        .and_then(|()| std::fs::rename(&temporary, output));
    if let Err(error) = saved {
        let _ = std::fs::remove_file(&temporary);
        return Err(PathError::at(output)(error).into());
    }
    Ok(bytes.len() as u64)
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll pack ./hello -o hello.isle        # a built project\n  atoll pack hello:0.1.0 -o hello.isle    # an image of the store\n  atoll pack ./prog -o prog.isle          # a static program\n  atoll run hello.isle world              # or ./hello.isle world, after `atoll binfmt install`"
)]
pub struct PackArgs {
    /// What to pack: a built project directory, an image NAME[:TAG], or a static program
    source: String,
    /// The file to write (conventionally NAME.isle)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
}

/// `atoll pack`: one self-describing, runnable file.
pub fn pack(args: PackArgs) -> Result<i32, CliError> {
    let (name, manifest, blobs) = collect(&args.source)?;
    let size = write(&args.output, &name, &manifest, &blobs)?;
    if !args.quiet {
        println!(
            "packed {name} into {} ({}, {} KiB)",
            args.output.display(),
            &manifest.digest[..19],
            size.div_ceil(1024)
        );
    }
    Ok(0)
}

type Collected = (String, Descriptor, BTreeMap<String, Vec<u8>>);

/// The image SOURCE names, as its manifest and blobs.
fn collect(source: &str) -> Result<Collected, PackError> {
    let path = Path::new(source);
    let mut blobs = BTreeMap::new();
    let mut keep = |media_type: &str, bytes: &[u8]| {
        let digest = store::sha256(bytes);
        blobs.insert(digest.clone(), bytes.to_vec());
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
            annotations: Default::default(),
        })
    };
    if crate::manifest::is_project(path) {
        let manifest = crate::manifest::load(path)?;
        let program = manifest.program(path);
        let bytes = std::fs::read(&program).map_err(|error| PackError::NotBuilt {
            program: program.clone(),
            error,
            project: source.to_string(),
        })?;
        let owned = crate::project::project_parts(&manifest, path, bytes)?;
        let descriptor = store::compose(&owned.parts(), &mut keep)?;
        let name = format!("{}:{}", manifest.app.name, manifest.app.version);
        return Ok((name, descriptor, blobs));
    }
    if path.is_file() {
        let program = std::fs::read(path).map_err(PathError::at(path))?;
        atoll_vmm::isle::check_program(&program).map_err(|error| PackError::NotAProgram {
            program: source.to_string(),
            error,
        })?;
        let stem = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "program".into());
        let config = store::Config {
            name: stem.clone(),
            version: "latest".into(),
            run: Default::default(),
        };
        let parts = store::Parts {
            config: &config,
            kernel: crate::KERNEL_IMAGE,
            program: &program,
            files: &[],
        };
        let descriptor = store::compose(&parts, &mut keep)?;
        return Ok((format!("{stem}:latest"), descriptor, blobs));
    }
    let store = Store::open()?;
    let (name, descriptor) = store
        .resolve(source)?
        .ok_or_else(|| PackError::NoSuchSource(source.to_string()))?;
    let manifest = store.manifest(&descriptor)?;
    for blob in std::iter::once(&descriptor)
        .chain(std::iter::once(&manifest.config))
        .chain(&manifest.layers)
    {
        blobs.insert(blob.digest.clone(), store.get(blob)?);
    }
    Ok((name, descriptor, blobs))
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll load hello.isle && atoll run hello:0.1.0")]
pub struct LoadArgs {
    /// The .isle file
    file: PathBuf,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
}

/// `atoll load`: a `.isle` file's image into the local store, by its name.
pub fn load(args: LoadArgs) -> Result<i32, CliError> {
    let packed = read(&args.file)?;
    let store = Store::open()?;
    let descriptor = store.import(&packed.name, &packed.manifest_bytes, &mut |blob| {
        Ok::<_, PackError>(packed.blob(blob)?.to_vec())
    })?;
    if !args.quiet {
        println!("loaded {} ({})", packed.name, &descriptor.digest[..19]);
    }
    Ok(0)
}
