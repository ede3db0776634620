//! The local image store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) under `$ATOLL_HOME`, else `$XDG_DATA_HOME/atoll`,
//! else `~/.local/share/atoll`.
//!
//! An isle image is an OCI image manifest whose config holds the app's
//! run settings and whose layers are the isle kernel and the program, each
//! a whole ELF file (not a tar):
//!
//! | what | media type |
//! | --- | --- |
//! | config | `application/vnd.atoll.config.v1+json` |
//! | kernel layer | `application/vnd.atoll.kernel.v1+elf` (annotation `dev.atoll.kernel.version`) |
//! | program layer | `application/vnd.atoll.program.v1+elf` |
//! | files layer (any number) | `application/vnd.atoll.files.v1.tar` (annotation `dev.atoll.files.path`: where the isle sees it, read-only) |
//!
//! A kernel on its own (`atoll push --kernel`) is a manifest with config
//! `application/vnd.atoll.kernel.config.v1+json` and one kernel layer.
//!
//! The index names each image by `org.opencontainers.image.ref.name` =
//! `NAME:TAG`. Every blob is stored under its sha256 and checked against it
//! when read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.atoll.config.v1+json";
pub const KERNEL_TYPE: &str = "application/vnd.atoll.kernel.v1+elf";
pub const PROGRAM_TYPE: &str = "application/vnd.atoll.program.v1+elf";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const KERNEL_VERSION: &str = "dev.atoll.kernel.version";
pub const FILES_TYPE: &str = "application/vnd.atoll.files.v1.tar";
pub const FILES_PATH: &str = "dev.atoll.files.path";
pub const KERNEL_CONFIG_TYPE: &str = "application/vnd.atoll.kernel.config.v1+json";

/// What a kernel artifact's config holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelConfig {
    pub version: String,
    pub features: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Optional in the OCI image spec (skopeo, for one, leaves it out).
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What an image's config holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub name: String,
    pub version: String,
    pub run: crate::manifest::Run,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

pub struct Store {
    root: PathBuf,
}

/// What the store, or an image's manifest, fails with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's own files can't be read or written.
    #[error("image store {}: {source} (set ATOLL_HOME to a writable directory)", path.display())]
    Access {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is no sha256 digest")]
    NotADigest(String),
    #[error("blob {digest} is missing ({source}): pull or build the image again")]
    MissingBlob {
        digest: String,
        source: std::io::Error,
    },
    #[error("blob {0} is corrupt (its content doesn't match its digest): remove the image with `atoll rmi` and pull or build it again")]
    CorruptBlob(String),
    #[error("{}: {source}", path.display())]
    InvalidIndex {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A manifest or config that won't serialize (serde_json fails only
    /// on non-string map keys, which none has).
    #[error(transparent)]
    Serialize(serde_json::Error),
    #[error("manifest {digest} is invalid: {source}")]
    InvalidManifest {
        digest: String,
        source: serde_json::Error,
    },
    #[error("config {digest} is invalid: {source}")]
    InvalidConfig {
        digest: String,
        source: serde_json::Error,
    },
    /// An image arriving whose blob isn't what its manifest says.
    #[error("{reference}: blob {digest} doesn't match its digest: refused")]
    Mismatch { reference: String, digest: String },
    /// A manifest tagged without all its blobs here.
    #[error("{reference}: blob {digest} is missing")]
    Incomplete { reference: String, digest: String },
    /// A manifest from outside (a registry, a pack) that doesn't parse.
    #[error("invalid image manifest: {0}")]
    ImageManifest(serde_json::Error),
    #[error("the image has no {0} layer: it isn't an atoll image")]
    MissingLayer(&'static str),
    #[error("files layer {0} has no absolute {FILES_PATH}: refused")]
    FilesPath(String),
}

/// NAME:TAG split at the tag's colon (a registry's port colon is no tag).
pub fn split_tag(reference: &str) -> Option<(&str, &str)> {
    reference
        .rsplit_once(':')
        .filter(|(name, tag)| !name.is_empty() && !tag.is_empty() && !tag.contains('/'))
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl Store {
    /// The store's directory.
    pub fn root_dir() -> PathBuf {
        if let Some(home) = std::env::var_os("ATOLL_HOME").filter(|home| !home.is_empty()) {
            return PathBuf::from(home);
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
                    .join(".local/share")
            });
        data.join("atoll")
    }

    pub fn open() -> Result<Self, StoreError> {
        let root = Self::root_dir();
        let store = Self { root };
        std::fs::create_dir_all(store.root.join("blobs/sha256"))
            .map_err(|error| store.error(&store.root, error))?;
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, "{\"imageLayoutVersion\": \"1.0.0\"}\n")
                .map_err(|error| store.error(&layout, error))?;
        }
        Ok(store)
    }

    fn error(&self, path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Access {
            path: path.to_path_buf(),
            source,
        }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| StoreError::NotADigest(digest.to_string()))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Stores `bytes` (idempotent: the same content is the same blob).
    pub fn put(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, StoreError> {
        let digest = sha256(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            let temporary = path.with_extension(format!("partial-{}", std::process::id()));
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|error| self.error(&path, error))?;
        }
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
            annotations: Default::default(),
        })
    }

    /// A blob's bytes, checked against its digest and size.
    pub fn get(&self, descriptor: &Descriptor) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(&descriptor.digest)?;
        let bytes = std::fs::read(&path).map_err(|source| StoreError::MissingBlob {
            digest: descriptor.digest.clone(),
            source,
        })?;
        if bytes.len() as u64 != descriptor.size || sha256(&bytes) != descriptor.digest {
            return Err(StoreError::CorruptBlob(descriptor.digest.clone()));
        }
        Ok(bytes)
    }

    fn index(&self) -> Result<Index, StoreError> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::InvalidIndex { path, source }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                manifests: Vec::new(),
            }),
            Err(error) => Err(self.error(&path, error)),
        }
    }

    fn save_index(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.root.join("index.json");
        let temporary = path.with_extension(format!("json.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(index).map_err(StoreError::Serialize)?;
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|error| self.error(&path, error))
    }

    /// Names `manifest` REFERENCE (NAME:TAG), replacing what had the name.
    pub fn tag(&self, reference: &str, manifest: &Descriptor) -> Result<(), StoreError> {
        let mut index = self.index()?;
        index
            .manifests
            .retain(|entry| entry.annotations.get(REF_NAME).map(String::as_str) != Some(reference));
        let mut entry = manifest.clone();
        entry.annotations.insert(REF_NAME.into(), reference.into());
        index.manifests.push(entry);
        self.save_index(&index)
    }

    /// Every named image: (reference, manifest descriptor).
    pub fn images(&self) -> Result<Vec<(String, Descriptor)>, StoreError> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|entry| Some((entry.annotations.get(REF_NAME)?.clone(), entry)))
            .collect())
    }

    /// The image a reference names; a bare NAME means NAME:latest, or the
    /// only tag NAME has.
    pub fn resolve(&self, reference: &str) -> Result<Option<(String, Descriptor)>, StoreError> {
        let images = self.images()?;
        if let Some(found) = images.iter().find(|(name, _)| name == reference) {
            return Ok(Some(found.clone()));
        }
        if split_tag(reference).is_some() {
            return Ok(None);
        }
        let tagged: Vec<&(String, Descriptor)> = images
            .iter()
            .filter(|(name, _)| split_tag(name).map(|(repo, _)| repo) == Some(reference))
            .collect();
        Ok(match tagged[..] {
            [only] => Some(only.clone()),
            _ => tagged
                .into_iter()
                .find(|(name, _)| name.ends_with(":latest"))
                .cloned(),
        })
    }

    pub fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, StoreError> {
        let bytes = self.get(descriptor)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::InvalidManifest {
            digest: descriptor.digest.clone(),
            source,
        })
    }

    pub fn config(&self, manifest: &Manifest) -> Result<Config, StoreError> {
        let bytes = self.get(&manifest.config)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::InvalidConfig {
            digest: manifest.config.digest.clone(),
            source,
        })
    }

    /// Stores an image that arrived from outside under REFERENCE: every
    /// blob its manifest lists must be given, each matching its digest.
    /// Fails as the source of the blobs does, or as the store does.
    pub fn import<E: From<StoreError>>(
        &self,
        reference: &str,
        manifest_bytes: &[u8],
        blob: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, E>,
    ) -> Result<Descriptor, E> {
        let manifest = parse_manifest(manifest_bytes)?;
        for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let bytes = blob(descriptor)?;
            if bytes.len() as u64 != descriptor.size || sha256(&bytes) != descriptor.digest {
                return Err(StoreError::Mismatch {
                    reference: reference.to_string(),
                    digest: descriptor.digest.clone(),
                }
                .into());
            }
            self.put(&descriptor.media_type, &bytes)?;
        }
        Ok(self.tag_manifest(reference, manifest_bytes)?)
    }

    /// Stores a manifest whose blobs are all here already, under REFERENCE.
    pub fn tag_manifest(
        &self,
        reference: &str,
        manifest_bytes: &[u8],
    ) -> Result<Descriptor, StoreError> {
        let manifest = parse_manifest(manifest_bytes)?;
        if let Some(missing) = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .find(|blob| !self.has(blob))
        {
            return Err(StoreError::Incomplete {
                reference: reference.to_string(),
                digest: missing.digest.clone(),
            });
        }
        // A Docker v2 manifest keeps its own media type.
        let media_type = match manifest.media_type.as_str() {
            "" => MANIFEST_TYPE,
            given => given,
        };
        let descriptor = self.put(media_type, manifest_bytes)?;
        self.tag(reference, &descriptor)?;
        Ok(descriptor)
    }

    /// Whether a blob is here whole. Blobs are only ever stored once
    /// checked against their digest; reads check them again.
    pub fn has(&self, descriptor: &Descriptor) -> bool {
        self.blob_path(&descriptor.digest)
            .ok()
            .and_then(|path| std::fs::metadata(path).ok())
            .is_some_and(|meta| meta.len() == descriptor.size)
    }

    /// Whether a blob is here and matches its digest; a corrupt one is
    /// removed (so that a pull fetches it again).
    pub fn verify_or_remove(&self, descriptor: &Descriptor) -> bool {
        if self.get(descriptor).is_ok() {
            return true;
        }
        if let Ok(path) = self.blob_path(&descriptor.digest) {
            let _ = std::fs::remove_file(path);
        }
        false
    }

    /// The path a blob is stored at (for pulls that stream into it).
    pub fn path_of(&self, descriptor: &Descriptor) -> Result<PathBuf, StoreError> {
        self.blob_path(&descriptor.digest)
    }

    /// The kernel artifacts here: (name, config, kernel layer).
    pub fn kernels(&self) -> Result<Vec<(String, KernelConfig, Descriptor)>, StoreError> {
        let mut kernels = Vec::new();
        for (name, descriptor) in self.images()? {
            let Ok(manifest) = self.manifest(&descriptor) else {
                continue;
            };
            if manifest.config.media_type != KERNEL_CONFIG_TYPE {
                continue;
            }
            let Some(config) = self
                .get(&manifest.config)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            else {
                continue;
            };
            if let Some(layer) = manifest.layers.iter().find(|l| l.media_type == KERNEL_TYPE) {
                kernels.push((name, config, layer.clone()));
            }
        }
        Ok(kernels)
    }

    /// Removes a name (blobs stay until `prune`).
    pub fn untag(&self, reference: &str) -> Result<bool, StoreError> {
        let mut index = self.index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|entry| entry.annotations.get(REF_NAME).map(String::as_str) != Some(reference));
        let removed = index.manifests.len() != before;
        self.save_index(&index)?;
        Ok(removed)
    }

    /// Deletes the blobs no named image uses; returns (count, bytes).
    pub fn prune(&self) -> Result<(usize, u64), StoreError> {
        let mut used = BTreeSet::new();
        for (_, descriptor) in self.images()? {
            used.insert(descriptor.digest.clone());
            if let Ok(manifest) = self.manifest(&descriptor) {
                used.insert(manifest.config.digest.clone());
                used.extend(manifest.layers.iter().map(|layer| layer.digest.clone()));
            }
        }
        let (mut count, mut bytes) = (0, 0);
        let dir = self.root.join("blobs/sha256");
        for entry in std::fs::read_dir(&dir)
            .map_err(|error| self.error(&dir, error))?
            .flatten()
        {
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !used.contains(&digest) {
                bytes += entry.metadata().map_or(0, |meta| meta.len());
                if std::fs::remove_file(entry.path()).is_ok() {
                    count += 1;
                }
            }
        }
        Ok((count, bytes))
    }
}

/// What an image is made of.
pub struct Parts<'a> {
    pub config: &'a Config,
    pub kernel: &'a [u8],
    pub program: &'a [u8],
    /// (where the isle sees it, the tar)
    pub files: &'a [(String, Vec<u8>)],
}

/// Stores a blob of a media type somewhere; returns its descriptor.
pub type PutBlob<'a> = dyn FnMut(&str, &[u8]) -> Result<Descriptor, StoreError> + 'a;

/// Puts an image's blobs with `put` and returns its manifest's bytes and
/// descriptor: the same parts give the same digest wherever they go.
pub fn compose(parts: &Parts, put: &mut PutBlob) -> Result<Descriptor, StoreError> {
    let config_bytes = serde_json::to_vec(parts.config).map_err(StoreError::Serialize)?;
    let config = put(CONFIG_TYPE, &config_bytes)?;
    let mut kernel = put(KERNEL_TYPE, parts.kernel)?;
    kernel
        .annotations
        .insert(KERNEL_VERSION.into(), kernel_version(parts.kernel));
    let mut layers = vec![kernel, put(PROGRAM_TYPE, parts.program)?];
    for (guest, tar) in parts.files {
        let mut layer = put(FILES_TYPE, tar)?;
        layer.annotations.insert(FILES_PATH.into(), guest.clone());
        layers.push(layer);
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_TYPE.into(),
        config,
        layers,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(StoreError::Serialize)?;
    put(MANIFEST_TYPE, &bytes)
}

/// The version of a kernel: this atoll's for the built-in one, else what
/// a kernel artifact in the store says.
pub fn kernel_version(kernel: &[u8]) -> String {
    if kernel == crate::KERNEL_IMAGE {
        return env!("CARGO_PKG_VERSION").into();
    }
    let digest = sha256(kernel);
    Store::open()
        .ok()
        .and_then(|store| {
            store
                .kernels()
                .ok()?
                .into_iter()
                .find_map(|(_, config, layer)| (layer.digest == digest).then_some(config.version))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Builds and stores the image of an app: its manifest's descriptor.
pub fn store_image(store: &Store, parts: &Parts) -> Result<Descriptor, StoreError> {
    compose(parts, &mut |media_type, bytes| store.put(media_type, bytes))
}

/// The layers of an image, by role.
pub struct Layers<'a> {
    pub kernel: &'a Descriptor,
    pub program: &'a Descriptor,
    /// (layer, where the isle sees it)
    pub files: Vec<(&'a Descriptor, &'a str)>,
}

/// The kernel, program and files layers of an image.
pub fn layers(manifest: &Manifest) -> Result<Layers<'_>, StoreError> {
    let find = |media: &'static str| {
        manifest
            .layers
            .iter()
            .find(|layer| layer.media_type == media)
            .ok_or(StoreError::MissingLayer(media))
    };
    let mut files = Vec::new();
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == FILES_TYPE)
    {
        let guest = layer
            .annotations
            .get(FILES_PATH)
            .filter(|path| path.starts_with('/'))
            .ok_or_else(|| StoreError::FilesPath(layer.digest.clone()))?;
        files.push((layer, guest.as_str()));
    }
    Ok(Layers {
        kernel: find(KERNEL_TYPE)?,
        program: find(PROGRAM_TYPE)?,
        files,
    })
}

/// Parses a manifest that arrived from outside (a registry or a pack).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, StoreError> {
    serde_json::from_slice(bytes).map_err(StoreError::ImageManifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OCI image spec makes the manifest's mediaType optional; skopeo
    /// writes manifests without one.
    #[test]
    fn a_manifest_without_a_media_type_is_read() {
        let manifest = br#"{"schemaVersion":2,
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:bb","size":3}]}"#;
        let manifest = parse_manifest(manifest).expect("a valid OCI manifest");
        assert_eq!(manifest.media_type, "");
        assert_eq!(
            manifest.config.media_type,
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(manifest.layers.len(), 1);
        assert!(parse_manifest(br#"{"schemaVersion":2,"layers":[]}"#).is_err());
    }
}
