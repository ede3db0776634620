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
    #[serde(rename = "mediaType")]
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

    pub fn open() -> Result<Self, String> {
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

    fn error(&self, path: &Path, error: std::io::Error) -> String {
        format!(
            "image store {}: {error} (set ATOLL_HOME to a writable directory)",
            path.display()
        )
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, String> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("{digest} is no sha256 digest"))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Stores `bytes` (idempotent: the same content is the same blob).
    pub fn put(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, String> {
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
    pub fn get(&self, descriptor: &Descriptor) -> Result<Vec<u8>, String> {
        let path = self.blob_path(&descriptor.digest)?;
        let bytes = std::fs::read(&path).map_err(|error| {
            format!(
                "blob {} is missing ({error}): pull or build the image again",
                descriptor.digest
            )
        })?;
        if bytes.len() as u64 != descriptor.size || sha256(&bytes) != descriptor.digest {
            return Err(format!(
                "blob {} is corrupt (its content doesn't match its digest): remove the image with `atoll rmi` and pull or build it again",
                descriptor.digest
            ));
        }
        Ok(bytes)
    }

    /// Where a verified blob lives, to run it in place.
    pub fn verified_path(&self, descriptor: &Descriptor) -> Result<PathBuf, String> {
        self.get(descriptor)?;
        self.blob_path(&descriptor.digest)
    }

    fn index(&self) -> Result<Index, String> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| format!("{}: {error}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                manifests: Vec::new(),
            }),
            Err(error) => Err(self.error(&path, error)),
        }
    }

    fn save_index(&self, index: &Index) -> Result<(), String> {
        let path = self.root.join("index.json");
        let temporary = path.with_extension(format!("json.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(index).map_err(|error| error.to_string())?;
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|error| self.error(&path, error))
    }

    /// Names `manifest` REFERENCE (NAME:TAG), replacing what had the name.
    pub fn tag(&self, reference: &str, manifest: &Descriptor) -> Result<(), String> {
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
    pub fn images(&self) -> Result<Vec<(String, Descriptor)>, String> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|entry| Some((entry.annotations.get(REF_NAME)?.clone(), entry)))
            .collect())
    }

    /// The image a reference names; a bare NAME means NAME:latest, or the
    /// only tag NAME has.
    pub fn resolve(&self, reference: &str) -> Result<Option<(String, Descriptor)>, String> {
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

    pub fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, String> {
        let bytes = self.get(descriptor)?;
        serde_json::from_slice(&bytes)
            .map_err(|error| format!("manifest {} is invalid: {error}", descriptor.digest))
    }

    pub fn config(&self, manifest: &Manifest) -> Result<Config, String> {
        let bytes = self.get(&manifest.config)?;
        serde_json::from_slice(&bytes)
            .map_err(|error| format!("config {} is invalid: {error}", manifest.config.digest))
    }

    /// Removes a name (blobs stay until `prune`).
    pub fn untag(&self, reference: &str) -> Result<bool, String> {
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
    pub fn prune(&self) -> Result<(usize, u64), String> {
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

/// Builds and stores the image of an app: its manifest's descriptor.
pub fn store_image(
    store: &Store,
    config: &Config,
    kernel: &[u8],
    program: &[u8],
) -> Result<Descriptor, String> {
    let config_bytes = serde_json::to_vec(config).map_err(|error| error.to_string())?;
    let config = store.put(CONFIG_TYPE, &config_bytes)?;
    let mut kernel = store.put(KERNEL_TYPE, kernel)?;
    kernel
        .annotations
        .insert(KERNEL_VERSION.into(), env!("CARGO_PKG_VERSION").into());
    let program = store.put(PROGRAM_TYPE, program)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_TYPE.into(),
        config,
        layers: vec![kernel, program],
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|error| error.to_string())?;
    store.put(MANIFEST_TYPE, &bytes)
}

/// The kernel and program layers of an image.
pub fn layers(manifest: &Manifest) -> Result<(&Descriptor, &Descriptor), String> {
    let find = |media: &str| {
        manifest
            .layers
            .iter()
            .find(|layer| layer.media_type == media)
            .ok_or_else(|| format!("the image has no {media} layer: it isn't an atoll image"))
    };
    Ok((find(KERNEL_TYPE)?, find(PROGRAM_TYPE)?))
}
