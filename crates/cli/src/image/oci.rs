//! The images docker and podman run: OCI and Docker v2 manifests and
//! indexes (the platform picked from an index), their config (Entrypoint,
//! Cmd, Env, WorkingDir, User, the layers' diff_ids), and their root
//! filesystem.
//!
//! Each layer (tar, tar+gzip or tar+zstd) is unpacked once per diff_id into
//! `~/.cache/atoll/layers/`, checked against both its digest and its diff_id
//! as it streams, and kept with its whiteouts as files. A chain of layers
//! (named by its OCI ChainID) is flattened once into
//! `~/.cache/atoll/rootfs/`: directories made anew, everything else hard
//! links into the layers, whiteouts and opaque directories applied, so
//! images sharing layers share their files. Isles see it read-only.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::PathError;
use crate::image::store::{Descriptor, Manifest, Store, StoreError};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The only platform isles run.
const OS: &str = "linux";
const ARCHITECTURE: &str = "amd64";

/// One layer may unpack to at most this much.
const MAX_LAYER: u64 = 64 << 30;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Why a container image can't be read or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Files(#[from] crate::image::rootfs::LayerError),
    #[error("image config {digest} is invalid: {source}")]
    InvalidConfig {
        digest: String,
        source: serde_json::Error,
    },
    #[error("invalid image index: {0}")]
    InvalidIndex(serde_json::Error),
    #[error("the index has no {OS}/{ARCHITECTURE} image (it has: {0}): isles run {OS}/{ARCHITECTURE} programs")]
    NoPlatform(String),
    #[error("the image is for {0}: isles run {OS}/{ARCHITECTURE} programs")]
    WrongPlatform(String),
    #[error("layer {digest} has media type {media_type}: only tar, tar+gzip and tar+zstd layers can be unpacked")]
    UnknownLayer { digest: String, media_type: String },
    #[error("the image lists {layers} layers but its config {diff_ids} diff_ids: refused")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("layer {digest}: {source}")]
    Tar {
        digest: String,
        source: std::io::Error,
    },
    #[error("layer {digest} doesn't match its {what} once read: refused (pull the image again)")]
    Mismatch { digest: String, what: &'static str },
    #[error("layer {0} unpacks to more than 64 GiB: refused")]
    TooLarge(String),
    #[error("layer {digest}: {name} points outside the layer: refused")]
    Outside { digest: String, name: String },
}

/// Whether a manifest's config says it is a container image.
pub fn is_container_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// What an image's config holds that running it needs.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

/// The process an image runs, as docker reads it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// The label an image built on a base keeps its `[run]` settings in.
pub const RUN_LABEL: &str = "dev.atoll.run";

/// Where an image built on a base holds its program.
pub fn program_path(name: &str) -> String {
    format!("/usr/local/bin/{name}")
}

/// A project's program (and `[build] files` directories, as (where the
/// isle sees it, project directory)) as one more layer on a container
/// image: a container image again, which docker could run too. Its
/// Entrypoint is the program, its Cmd the `[run]` args, its Env the
/// base's under `[run]` env; the other settings ride in [`RUN_LABEL`].
/// Returns the new manifest's descriptor.
pub fn compose_on_base(
    store: &Store,
    base: &Manifest,
    name: &str,
    program: &[u8],
    files: &[(String, PathBuf)],
    run: &crate::manifest::Run,
) -> Result<Descriptor, OciError> {
    let layer = program_layer(name, program, files)?;
    let diff_id = crate::image::store::sha256(&layer);
    let layer = store.put("application/vnd.oci.image.layer.v1.tar", &layer)?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&store.get(&base.config)?).map_err(|source| {
            OciError::InvalidConfig {
                digest: base.config.digest.clone(),
                source,
            }
        })?;
    let process = &mut config["config"];
    if !process.is_object() {
        *process = serde_json::json!({});
    }
    let mut env: Vec<String> = process["Env"]
        .as_array()
        .map(|env| {
            env.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in &run.env {
        env.retain(|entry| entry.split('=').next() != Some(key.as_str()));
        env.push(format!("{key}={value}"));
    }
    process["Env"] = serde_json::json!(env);
    process["Entrypoint"] = serde_json::json!([program_path(name)]);
    process["Cmd"] = serde_json::json!(run.args);
    let settings = serde_json::to_string(run).map_err(StoreError::Serialize)?;
    if !process["Labels"].is_object() {
        process["Labels"] = serde_json::json!({});
    }
    process["Labels"][RUN_LABEL] = serde_json::json!(settings);
    match config["rootfs"]["diff_ids"].as_array_mut() {
        Some(diff_ids) => diff_ids.push(serde_json::json!(diff_id)),
        None => config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff_id]}),
    }
    if let Some(history) = config["history"].as_array_mut() {
        history.push(serde_json::json!({ "created_by": "atoll build" }));
    }
    let config_bytes = serde_json::to_vec(&config).map_err(StoreError::Serialize)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: crate::image::store::MANIFEST_TYPE.into(),
        config: store.put(OCI_CONFIG, &config_bytes)?,
        layers: base.layers.iter().cloned().chain([layer]).collect(),
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(StoreError::Serialize)?;
    Ok(store.put(crate::image::store::MANIFEST_TYPE, &bytes)?)
}

/// A tar header as a reproducible layer has it: owned by root, no time.
fn root_owned_header(mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// The tar of a project's layer: reproducible (no times, owned by root).
fn program_layer(
    name: &str,
    program: &[u8],
    files: &[(String, PathBuf)],
) -> Result<Vec<u8>, OciError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let tar_error = |source| OciError::Tar {
        digest: "of the program".into(),
        source,
    };
    let directory = |builder: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut header = root_owned_header(0o755, 0);
        header.set_entry_type(tar::EntryType::Directory);
        builder.append_data(&mut header, path, std::io::empty())
    };
    for dir in ["usr", "usr/local", "usr/local/bin"] {
        directory(&mut builder, dir).map_err(tar_error)?;
    }
    let mut header = root_owned_header(0o755, program.len() as u64);
    let inside = program_path(name);
    builder
        .append_data(&mut header, inside.trim_start_matches('/'), program)
        .map_err(tar_error)?;
    for (guest, host) in files {
        let guest = atoll_vmm::sandbox::normalize(guest);
        let parts: Vec<&str> = guest.split('/').filter(|part| !part.is_empty()).collect();
        for depth in 1..=parts.len() {
            directory(&mut builder, &parts[..depth].join("/")).map_err(tar_error)?;
        }
        crate::image::rootfs::add_tree(&mut builder, host, Path::new(&parts.join("/")))?;
    }
    builder.into_inner().map_err(tar_error)
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    pub fn read(store: &Store, manifest: &Manifest) -> Result<Self, OciError> {
        let bytes = store.get(&manifest.config)?;
        let config: Self =
            serde_json::from_slice(&bytes).map_err(|source| OciError::InvalidConfig {
                digest: manifest.config.digest.clone(),
                source,
            })?;
        if config.os != OS || config.architecture != ARCHITECTURE {
            return Err(OciError::WrongPlatform(format!(
                "{}/{}",
                config.os, config.architecture
            )));
        }
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Whether manifest bytes are an index (a manifest list): by their media
/// type, or, where that is left out, by holding `manifests`.
pub fn is_index(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|probe| {
        probe.media_type == OCI_INDEX
            || probe.media_type == DOCKER_LIST
            || (probe.media_type.is_empty() && probe.manifests.is_some())
    })
}

/// The digest of the index's linux/amd64 manifest (docker's choice: the
/// first that matches; attestations, with no platform or `unknown`, never do).
pub fn pick_platform(index_bytes: &[u8]) -> Result<String, OciError> {
    let index: Index = serde_json::from_slice(index_bytes).map_err(OciError::InvalidIndex)?;
    if let Some(entry) = index.manifests.iter().find(|entry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == OS && p.architecture == ARCHITECTURE)
    }) {
        return Ok(entry.digest.clone());
    }
    let offered: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|entry| entry.platform.as_ref())
        .map(|p| match &p.variant {
            Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(OciError::NoPlatform(if offered.is_empty() {
        "no platforms".into()
    } else {
        offered.join(", ")
    }))
}

enum Compression {
    None,
    Gzip,
    Zstd,
}

/// How a layer is compressed, from its media type (OCI's, distributable or
/// not, and Docker's).
fn compression(layer: &Descriptor) -> Result<Compression, OciError> {
    let media = layer.media_type.as_str();
    let tar = media.starts_with("application/vnd.oci.image.layer.")
        || media.starts_with("application/vnd.docker.image.rootfs.");
    match media.rsplit_once(['.', '+']) {
        Some((_, "tar")) if tar => Ok(Compression::None),
        Some((_, "gzip")) if tar => Ok(Compression::Gzip),
        Some((_, "zstd")) if tar => Ok(Compression::Zstd),
        _ => Err(OciError::UnknownLayer {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
        }),
    }
}

/// Checks that every layer of a container image can be unpacked, before
/// any is fetched.
pub fn check_layers(manifest: &Manifest) -> Result<(), OciError> {
    manifest
        .layers
        .iter()
        .try_for_each(|layer| compression(layer).map(drop))
}

/// Where unpacked layers and flattened root filesystems are kept.
fn cache(kind: &str) -> PathBuf {
    crate::image::rootfs::cache_root().join(kind)
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// OCI's ChainID of each prefix of the layers: the first is its diff_id;
/// each next is sha256 of "PARENT DIFF_ID".
fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let first = ids.next()?.clone();
    Some(ids.fold(first, |parent, diff_id| {
        format!(
            "sha256:{:x}",
            Sha256::digest(format!("{parent} {diff_id}").as_bytes())
        )
    }))
}

/// The image's root filesystem, flattened from its layers (unpacking those
/// not yet unpacked): a directory isles mount read-only at `/`.
pub fn root_filesystem(
    store: &Store,
    manifest: &Manifest,
    config: &ImageConfig,
) -> Result<PathBuf, OciError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(OciError::LayerCount {
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let Some(chain) = chain_id(diff_ids) else {
        // No layers: an empty root.
        let empty = cache("rootfs").join("empty");
        std::fs::create_dir_all(&empty).map_err(PathError::at(&empty))?;
        return Ok(empty);
    };
    let root = cache("rootfs").join(hex(&chain));
    if root.is_dir() {
        return Ok(root);
    }
    let layers = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| unpacked_layer(store, layer, diff_id))
        .collect::<Result<Vec<_>, _>>()?;
    publish(&root, |partial| {
        std::fs::create_dir_all(partial).map_err(PathError::at(partial))?;
        for layer in &layers {
            apply_layer(layer, partial)?;
        }
        Ok(())
    })?;
    Ok(root)
}

/// Makes `dir` by building it at a temporary name and renaming it into
/// place; another atoll building the same one first wins.
fn publish(dir: &Path, build: impl FnOnce(&Path) -> Result<(), OciError>) -> Result<(), OciError> {
    let parent = dir.parent().expect("a cache directory has a parent");
    std::fs::create_dir_all(parent).map_err(PathError::at(parent))?;
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    remove_tree(&partial);
    let built = build(&partial).and_then(|()| {
        std::fs::rename(&partial, dir).or_else(|error| match dir.is_dir() {
            true => Ok(()),
            false => Err(PathError::at(dir)(error).into()),
        })
    });
    remove_tree(&partial);
    built
}

/// Removes a tree even where its directories are read-only to us.
fn remove_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(path);
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// Reads the rest (a tar ends before its padding does), then the digest.
    fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((format!("sha256:{:x}", self.hasher.finalize()), self.read))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.hasher.update(&buf[..count]);
        self.read += count as u64;
        Ok(count)
    }
}

/// The directory holding `layer` unpacked, unpacking it the first time:
/// streamed from the store, checked against its digest and its diff_id.
fn unpacked_layer(store: &Store, layer: &Descriptor, diff_id: &str) -> Result<PathBuf, OciError> {
    let dir = cache("layers").join(hex(diff_id));
    if dir.is_dir() {
        return Ok(dir);
    }
    let compression = compression(layer)?;
    let path = store.path_of(layer)?;
    let file = std::fs::File::open(&path).map_err(|source| StoreError::MissingBlob {
        digest: layer.digest.clone(),
        source,
    })?;
    let tar_error = |source| OciError::Tar {
        digest: layer.digest.clone(),
        source,
    };
    publish(&dir, |partial| {
        let mut compressed = Hashing::new(std::io::BufReader::with_capacity(1 << 20, file));
        let (diff_digest, _) = {
            let reader: Box<dyn Read + '_> = match compression {
                Compression::None => Box::new(&mut compressed),
                Compression::Gzip => Box::new(flate2::read::GzDecoder::new(&mut compressed)),
                Compression::Zstd => {
                    Box::new(zstd::stream::read::Decoder::new(&mut compressed).map_err(tar_error)?)
                }
            };
            let mut tar = Hashing::new(reader);
            unpack_layer(&mut tar, partial, &layer.digest)?;
            tar.finish().map_err(tar_error)?
        };
        let (digest, size) = compressed.finish().map_err(tar_error)?;
        if digest != layer.digest || size != layer.size {
            return Err(OciError::Mismatch {
                digest: layer.digest.clone(),
                what: "digest",
            });
        }
        if diff_digest != diff_id {
            return Err(OciError::Mismatch {
                digest: layer.digest.clone(),
                what: "diff_id",
            });
        }
        Ok(())
    })?;
    Ok(dir)
}

/// Root keeps the image's owners; anyone else owns what they unpack.
fn is_root() -> bool {
    atoll_manager::state::effective_uid() == 0
}

/// Unpacks a layer's tar into `into`, whiteouts as the empty files they
/// are. Device nodes are left out (isles have no devices there); names
/// and links that would leave `into` are refused (the tar crate checks
/// `..`, absolute names and symlinked parents).
fn unpack_layer(tar: &mut dyn Read, into: &Path, digest: &str) -> Result<(), OciError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(into).map_err(PathError::at(into))?;
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_preserve_ownerships(is_root());
    let tar_error = |source| OciError::Tar {
        digest: digest.to_string(),
        source,
    };
    let mut total = 0u64;
    // A directory's own mode is set last: a read-only one would refuse
    // what goes into it.
    let mut directory_modes = Vec::new();
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let kind = entry.header().entry_type();
        if kind.is_character_special() || kind.is_block_special() {
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > MAX_LAYER {
            return Err(OciError::TooLarge(digest.to_string()));
        }
        let name = entry.path().map_err(tar_error)?.into_owned();
        if !entry.unpack_in(into).map_err(tar_error)? {
            return Err(OciError::Outside {
                digest: digest.to_string(),
                name: name.display().to_string(),
            });
        }
        if kind.is_dir() {
            let mode = entry.header().mode().map_err(tar_error)?;
            let path = into.join(&name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(PathError::at(&path))?;
            directory_modes.push((path, mode));
        }
    }
    // Deepest first, so no parent closes before its children are set.
    directory_modes.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode) in directory_modes {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(PathError::at(&path))?;
    }
    Ok(())
}

/// Merges layer directory `from` into `to` (a real directory, never a
/// symlink: every level is checked as it is made), as overlayfs would show
/// the layer on top of what `to` holds.
fn apply_layer(from: &Path, to: &Path) -> Result<(), OciError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(PathError::at(from))?
        .collect::<Result<_, _>>()
        .map_err(PathError::at(from))?;
    entries.sort_by_key(|entry| entry.file_name());
    // An opaque directory hides everything the layers below put there.
    if entries.iter().any(|entry| entry.file_name() == OPAQUE) {
        for below in std::fs::read_dir(to).map_err(PathError::at(to))?.flatten() {
            remove_any(&below.path())?;
        }
    }
    for entry in &entries {
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text == OPAQUE {
            continue;
        }
        if let Some(hidden) = name_text.strip_prefix(WHITEOUT) {
            remove_any(&to.join(hidden))?;
            continue;
        }
        let source = entry.path();
        let target = to.join(&name);
        let meta = std::fs::symlink_metadata(&source).map_err(PathError::at(&source))?;
        let existing = std::fs::symlink_metadata(&target).ok();
        if meta.is_dir() {
            if existing.as_ref().is_some_and(|old| !old.is_dir()) {
                remove_any(&target)?;
            }
            if !target.is_dir() {
                std::fs::create_dir(&target).map_err(PathError::at(&target))?;
            }
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700))
                .map_err(PathError::at(&target))?;
            apply_layer(&source, &target)?;
            if is_root() {
                std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))
                    .map_err(PathError::at(&target))?;
            }
            std::fs::set_permissions(&target, meta.permissions())
                .map_err(PathError::at(&target))?;
            continue;
        }
        if existing.is_some() {
            remove_any(&target)?;
        }
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&source).map_err(PathError::at(&source))?;
            std::os::unix::fs::symlink(&link, &target).map_err(PathError::at(&target))?;
            if is_root() {
                std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))
                    .map_err(PathError::at(&target))?;
            }
        } else if std::fs::hard_link(&source, &target).is_err() {
            // Another file system, or too many links: a copy holds the same.
            std::fs::copy(&source, &target).map_err(PathError::at(&target))?;
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (nothing there is fine).
fn remove_any(path: &Path) -> Result<(), OciError> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => {
            remove_tree(path);
            match path.exists() {
                true => Err(PathError::at(path)(std::io::Error::other("cannot remove")).into()),
                false => Ok(()),
            }
        }
        Ok(_) => std::fs::remove_file(path).map_err(|error| PathError::at(path)(error).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atoll-oci-{name}-{}", std::process::id()));
        remove_tree(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A tar of (name, content: None for a directory, Some("->x") for a
    /// symlink to x).
    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for &(name, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match content {
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, name, std::io::empty())
                        .unwrap();
                }
                Some(text) if text.starts_with("->") => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, name, &text[2..]).unwrap();
                }
                Some(text) => {
                    header.set_mode(0o644);
                    header.set_size(text.len() as u64);
                    builder
                        .append_data(&mut header, name, text.as_bytes())
                        .unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn read(root: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(root.join(name)).ok()
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_what_is_below() {
        let dir = scratch("whiteouts");
        let lower = tar_of(&[
            ("etc", None),
            ("etc/keep", Some("kept")),
            ("etc/gone", Some("lower")),
            ("var", None),
            ("var/cache", None),
            ("var/cache/old", Some("old")),
            ("lib", None),
            ("lib/x", Some("dir")),
            ("bin", Some("->usr/bin")),
        ]);
        let upper = tar_of(&[
            ("etc", None),
            ("etc/.wh.gone", Some("")),
            ("etc/new", Some("upper")),
            ("var", None),
            ("var/cache", None),
            ("var/cache/.wh..wh..opq", Some("")),
            ("var/cache/fresh", Some("fresh")),
            // A file replaces a directory; a directory replaces a symlink.
            ("lib", Some("now a file")),
            ("bin", None),
            ("bin/sh", Some("shell")),
        ]);
        let (l, u, root) = (dir.join("l"), dir.join("u"), dir.join("root"));
        unpack_layer(&mut lower.as_slice(), &l, "lower").unwrap();
        unpack_layer(&mut upper.as_slice(), &u, "upper").unwrap();
        std::fs::create_dir_all(&root).unwrap();
        apply_layer(&l, &root).unwrap();
        apply_layer(&u, &root).unwrap();
        assert_eq!(read(&root, "etc/keep").as_deref(), Some("kept"));
        assert_eq!(read(&root, "etc/gone"), None);
        assert!(!root.join("etc/.wh.gone").exists());
        assert_eq!(read(&root, "etc/new").as_deref(), Some("upper"));
        assert_eq!(read(&root, "var/cache/old"), None);
        assert_eq!(read(&root, "var/cache/fresh").as_deref(), Some("fresh"));
        assert!(!root.join("var/cache/.wh..wh..opq").exists());
        assert_eq!(read(&root, "lib").as_deref(), Some("now a file"));
        assert!(std::fs::symlink_metadata(root.join("bin"))
            .unwrap()
            .is_dir());
        assert_eq!(read(&root, "bin/sh").as_deref(), Some("shell"));
        // The lower layer itself is untouched: its files are shared.
        assert_eq!(read(&l, "etc/gone").as_deref(), Some("lower"));
        assert_eq!(read(&l, "var/cache/old").as_deref(), Some("old"));
        remove_tree(&dir);
    }

    #[test]
    fn a_symlink_in_a_layer_never_leads_a_later_file_out() {
        let dir = scratch("escape");
        let outside = dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        // In one tar: a link to outside, then a file through it.
        let mut tar = tar_of(&[("link", Some(&format!("->{}", outside.display())))]);
        tar.truncate(tar.len() - 1024);
        let mut raw = tar::Header::new_gnu();
        raw.set_size(1);
        raw.set_mode(0o644);
        raw.as_old_mut().name[..6].copy_from_slice(b"link/x");
        raw.set_cksum();
        tar.extend(raw.as_bytes());
        tar.extend([b'x'; 512]);
        tar.extend([0u8; 1024]);
        let result = unpack_layer(&mut tar.as_slice(), &dir.join("l"), "evil");
        assert!(result.is_err(), "{result:?}");
        assert!(!outside.join("x").exists());
        remove_tree(&dir);
    }

    #[test]
    fn the_platform_is_picked_from_an_index() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:arm","size":1,
             "platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:att","size":1,
             "platform":{"architecture":"unknown","os":"unknown"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:amd","size":1,
             "platform":{"architecture":"amd64","os":"linux"}}]}"#;
        assert!(is_index(index));
        assert_eq!(pick_platform(index).unwrap(), "sha256:amd");
        let docker_list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
          "manifests":[{"digest":"sha256:s390","size":1,"platform":{"architecture":"s390x","os":"linux"}}]}"#;
        assert!(is_index(docker_list));
        let error = pick_platform(docker_list).unwrap_err().to_string();
        assert!(error.contains("linux/s390x"), "{error}");
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:c","size":1},"layers":[]}"#;
        assert!(!is_index(manifest));
    }

    #[test]
    fn layer_media_types_name_their_compression() {
        let layer = |media_type: &str| Descriptor {
            media_type: media_type.into(),
            digest: "sha256:l".into(),
            size: 1,
            annotations: Default::default(),
        };
        for (media_type, expected) in [
            ("application/vnd.oci.image.layer.v1.tar", "none"),
            ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
            ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "gzip",
            ),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
            ("application/vnd.docker.image.rootfs.diff.tar", "none"),
        ] {
            let found = match compression(&layer(media_type)).unwrap() {
                Compression::None => "none",
                Compression::Gzip => "gzip",
                Compression::Zstd => "zstd",
            };
            assert_eq!(found, expected, "{media_type}");
        }
        assert!(compression(&layer("application/vnd.atoll.program.v1+elf")).is_err());
        assert!(compression(&layer("application/vnd.oci.image.layer.v1.tar+bzip2")).is_err());
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        assert_eq!(chain_id(std::slice::from_ref(&a)), Some(a.clone()));
        let expected = format!("sha256:{:x}", Sha256::digest(b"sha256:aaaa sha256:bbbb"));
        assert_eq!(chain_id(&[a, b]), Some(expected));
        assert_eq!(chain_id(&[]), None);
    }
}
