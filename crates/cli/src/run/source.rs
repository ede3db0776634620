//! What `atoll run` runs when PROGRAM names a project, an image or a
//! `.isle` file: its program, kernel and files, and its settings merged
//! with the flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use atoll_vmm::MountSpec;

use super::args::{parse_port, InvalidPort, RunArgs};
use crate::error::PathError;
use crate::image::images::KernelError;
use crate::image::oci::{ContainerConfig, ImageConfig, RUN_LABEL};
use crate::image::pack::{BlobError, PackError};
use crate::image::registry::RegistryError;
use crate::image::rootfs::LayerError;
use crate::image::store::StoreError;
use crate::manifest::ManifestError;
use crate::size::{parse_size, SizeError};

/// Why what PROGRAM names (a project, an image, a `.isle` file) can't be run.
#[derive(Debug, thiserror::Error)]
pub(super) enum SourceError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{} isn't built yet: run `atoll build {}`", program.display(), project.display())]
    NotBuilt { program: PathBuf, project: PathBuf },
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("[build] files: {}: {error}", host.display())]
    Files {
        host: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    PackBlob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Container(#[from] crate::image::oci::OciError),
    #[error("{0}: the image's {RUN_LABEL} label is invalid: {1}")]
    RunLabel(String, serde_json::Error),
    #[error("{0}: the image has neither Entrypoint nor Cmd: give the program after the image")]
    NoCommand(String),
    #[error("{0}: pulled, but not in the store")]
    NotPulled(String),
    #[error("[run] memory: {0}")]
    Memory(SizeError),
    #[error("[run] publish: {0}")]
    Publish(InvalidPort),
}

/// The kernel and program an image (or a `.isle` file) runs.
pub(super) struct ImageToRun {
    /// None: the built-in kernel.
    pub(super) kernel: Option<Vec<u8>>,
    pub(super) program: Vec<u8>,
    /// What the isle's /proc/self/exe names.
    pub(super) exe_path: PathBuf,
}

impl std::fmt::Debug for ImageToRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageToRun")
            .field("kernel", &self.kernel.as_ref().map(Vec::len))
            .field("program", &self.program.len())
            .field("exe_path", &self.exe_path)
            .finish()
    }
}

/// `atoll run DIR`: the project's manifest fills in what the flags don't
/// say (flags win; arguments after DIR replace the manifest's args).
/// Also `atoll run NAME[:TAG]` (an image of the local store, pulled first
/// when it names a registry) and `atoll run FILE.isle`: run from verified
/// blobs, with the image's kernel, files and settings.
pub(super) fn apply_manifest(mut args: RunArgs) -> Result<RunArgs, SourceError> {
    let mut target = PathBuf::from(&args.command[0]);
    if crate::manifest::is_project(&target) {
        let manifest = crate::manifest::load(&target)?;
        if manifest.build.base.is_some() {
            // Its program runs on the base's root filesystem: from the
            // image `atoll build` made.
            let reference = format!("{}:{}", manifest.app.name, manifest.app.version);
            if crate::image::store::Store::open()?
                .resolve(&reference)?
                .is_none()
            {
                return Err(SourceError::NotBuilt {
                    program: manifest.program(&target),
                    project: target,
                });
            }
            args.command[0] = reference.into();
            target = PathBuf::from(&args.command[0]);
        }
    }
    if crate::manifest::is_project(&target) {
        let manifest = crate::manifest::load(&target)?;
        let program = manifest.program(&target);
        if !program.is_file() {
            return Err(SourceError::NotBuilt {
                program,
                project: target,
            });
        }
        if let Some(reference) = &manifest.kernel.image {
            let bytes = std::fs::read(&program).map_err(PathError::at(&program))?;
            args.image = Some(ImageToRun {
                kernel: Some(crate::image::images::pinned_kernel(reference)?),
                program: bytes,
                exe_path: std::fs::canonicalize(&program).unwrap_or_else(|_| program.clone()),
            });
        }
        for (host, guest) in manifest.files(&target) {
            let host =
                std::fs::canonicalize(&host).map_err(|error| SourceError::Files { host, error })?;
            args.files.push(MountSpec {
                host,
                guest,
                read_only: true,
                keep_owners: false,
            });
        }
        return apply_settings(args, &manifest.run, program.into_os_string(), Some(&target));
    }
    if target.is_file() && crate::image::pack::is_pack(&target) {
        let packed = crate::image::pack::read(&target)?;
        let layers = crate::image::store::layers(&packed.manifest)?;
        let config = packed.config()?;
        for (layer, guest) in &layers.files {
            let host = crate::image::rootfs::unpacked(&layer.digest, packed.blob(layer)?)?;
            args.files.push(MountSpec {
                host,
                guest: atoll_vmm::sandbox::normalize(guest),
                read_only: true,
                keep_owners: false,
            });
        }
        let kernel = packed.blob(layers.kernel)?;
        args.image = Some(ImageToRun {
            kernel: (kernel != crate::KERNEL_IMAGE).then(|| kernel.to_vec()),
            program: packed.blob(layers.program)?.to_vec(),
            exe_path: std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone()),
        });
        return apply_settings(args, &config.run, argv0(&config), None);
    }
    let reference = args.command[0].to_string_lossy().into_owned();
    let remote = crate::image::registry::looks_remote(&reference);
    // A path, or no store yet: not an image (and no store made for it).
    if target.exists() || (!remote && reference.contains('/')) {
        return Ok(args);
    }
    if !remote && !crate::image::store::Store::root_dir().is_dir() {
        return Ok(args);
    }
    let store = crate::image::store::Store::open()?;
    let descriptor = match store.resolve(&reference)? {
        Some((_, descriptor)) => descriptor,
        // REGISTRY/NAME:TAG not here yet: pulled first.
        None if remote => {
            crate::image::registry::pull_image(&reference, true)?;
            store
                .resolve(&reference)?
                .ok_or_else(|| SourceError::NotPulled(reference.clone()))?
                .1
        }
        None => return Ok(args),
    };
    let image = store.manifest(&descriptor)?;
    if crate::image::oci::is_container_config(&image.config.media_type) {
        let config = ImageConfig::read(&store, &image)?;
        let root = crate::image::oci::root_filesystem(&store, &image, &config)?;
        args.root = Some(MountSpec {
            host: root,
            guest: "/".into(),
            read_only: true,
            keep_owners: false,
        });
        return apply_container_config(args, &config.config.unwrap_or_default(), &reference);
    }
    let config = store.config(&image)?;
    let layers = crate::image::store::layers(&image)?;
    for (layer, guest) in &layers.files {
        let host = crate::image::rootfs::unpacked(&layer.digest, &store.get(layer)?)?;
        args.files.push(MountSpec {
            host,
            guest: atoll_vmm::sandbox::normalize(guest),
            read_only: true,
            keep_owners: false,
        });
    }
    let kernel = if layers.kernel.digest == crate::KERNEL_DIGEST {
        None
    } else {
        Some(store.get(layers.kernel)?)
    };
    args.image = Some(ImageToRun {
        kernel,
        program: store.get(layers.program)?,
        exe_path: store.path_of(layers.program)?,
    });
    apply_settings(args, &config.run, argv0(&config), None)
}

/// A container image's process, as docker starts it: `--entrypoint`
/// replaces the Entrypoint (and drops the Cmd), arguments after the image
/// replace the Cmd; the image's Env comes under `-e`; its WorkingDir and
/// User apply unless `-w` and `-u` say otherwise.
fn apply_container_config(
    mut args: RunArgs,
    config: &ContainerConfig,
    reference: &str,
) -> Result<RunArgs, SourceError> {
    let entrypoint: Vec<OsString> = match &args.entrypoint {
        Some(program) if program.is_empty() => Vec::new(),
        Some(program) => vec![program.into()],
        None => config
            .entrypoint
            .iter()
            .flatten()
            .map(OsString::from)
            .collect(),
    };
    let cmd: Vec<OsString> = if args.command.len() > 1 {
        args.command.drain(1..).collect()
    } else if args.entrypoint.is_some() {
        Vec::new()
    } else {
        config.cmd.iter().flatten().map(OsString::from).collect()
    };
    let command: Vec<OsString> = entrypoint.into_iter().chain(cmd).collect();
    if command.is_empty() {
        return Err(SourceError::NoCommand(reference.to_string()));
    }
    args.command = command;
    let mut env: Vec<OsString> = config.env.iter().flatten().map(OsString::from).collect();
    env.append(&mut args.env);
    args.env = env;
    let given = |value: &Option<String>| value.clone().filter(|text| !text.is_empty());
    args.workdir = args.workdir.take().or_else(|| given(&config.working_dir));
    args.user = args.user.take().or_else(|| given(&config.user));
    // An image atoll built on a base keeps its other settings in a label.
    match config
        .labels
        .as_ref()
        .and_then(|labels| labels.get(RUN_LABEL))
    {
        Some(settings) => {
            let run: crate::manifest::Run = serde_json::from_str(settings)
                .map_err(|error| SourceError::RunLabel(reference.to_string(), error))?;
            apply_resources(args, &run, None)
        }
        None => Ok(args),
    }
}

/// An image's program sees its own file name as argv[0], as it would
/// natively (busybox picks its applet by it).
fn argv0(config: &crate::image::store::Config) -> OsString {
    config
        .run
        .program
        .as_deref()
        .and_then(|program| Path::new(program).file_name())
        .map_or_else(|| OsString::from(&config.name), OsString::from)
}

/// Fills in what the flags don't say from an app's run settings.
fn apply_settings(
    mut args: RunArgs,
    run: &crate::manifest::Run,
    argv0: OsString,
    project: Option<&Path>,
) -> Result<RunArgs, SourceError> {
    let mut command = vec![argv0];
    if args.command.len() > 1 {
        command.extend(args.command.drain(1..));
    } else {
        command.extend(run.args.iter().map(OsString::from));
    }
    args.command = command;
    let mut env: Vec<OsString> = run
        .env
        .iter()
        .map(|(key, value)| OsString::from(format!("{key}={value}")))
        .collect();
    env.append(&mut args.env);
    args.env = env;
    apply_resources(args, run, project)
}

/// The settings of an app's `[run]` beyond its command and env: cores,
/// memory, volumes, ports, network (flags win).
fn apply_resources(
    mut args: RunArgs,
    run: &crate::manifest::Run,
    project: Option<&Path>,
) -> Result<RunArgs, SourceError> {
    args.cores = args.cores.or(run.cores);
    if args.memory.is_none() {
        if let Some(memory) = &run.memory {
            args.memory = Some(parse_size(memory).map_err(SourceError::Memory)?);
        }
    }
    // Host paths in a manifest are relative to its project (an image's,
    // to the current directory).
    let base = project.unwrap_or(Path::new("."));
    let mut volumes: Vec<String> = run
        .volumes
        .iter()
        .map(|volume| match volume.starts_with('/') {
            true => volume.clone(),
            false => base.join(volume).to_string_lossy().into_owned(),
        })
        .collect();
    volumes.append(&mut args.volumes);
    args.volumes = volumes;
    for port in &run.publish {
        args.publish
            .push(parse_port(port).map_err(SourceError::Publish)?);
    }
    args.net |= run.net;
    Ok(args)
}
