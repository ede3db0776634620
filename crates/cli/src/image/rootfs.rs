//! Files layers: a project directory packed as a reproducible tar (the
//! same tree gives the same digest), and unpacked once per digest into a
//! cache that isles mount read-only.

use std::path::{Path, PathBuf};

use crate::error::PathError;

/// A files layer may hold at most this much (unpacked).
const MAX_UNPACKED: u64 = 8 << 30;

/// Why a files layer can't be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("{}: only files and directories can go into an image", .0.display())]
    NotFileOrDirectory(PathBuf),
    /// The tar itself doesn't read.
    #[error("files layer: {0}")]
    Tar(std::io::Error),
    #[error("files layer: {0} is neither a file nor a directory: refused")]
    Special(String),
    #[error("files layer: larger than 8 GiB unpacked: refused")]
    TooLarge,
    #[error("files layer: {0} points outside the layer: refused")]
    Outside(String),
}

/// `dir` as a tar: regular files and directories in name order, owned by
/// root, with their permission bits and no times (symlinks are followed).
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>, LayerError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    add_tree(&mut builder, dir, Path::new(""))?;
    Ok(builder.into_inner().map_err(PathError::at(dir))?)
}

pub(crate) fn add_tree(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    inside: &Path,
) -> Result<(), LayerError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(PathError::at(dir))?
        .collect::<Result<_, _>>()
        .map_err(PathError::at(dir))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = inside.join(entry.file_name());
        // Follows symlinks: the layer holds what they point at.
        let meta = std::fs::metadata(&path).map_err(PathError::at(&path))?;
        let mut header = tar::Header::new_ustar();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        if meta.is_dir() {
            header.set_size(0);
            builder
                .append_data(&mut header, &name, std::io::empty())
                .map_err(PathError::at(&path))?;
            add_tree(builder, &path, &name)?;
        } else if meta.is_file() {
            let file = std::fs::File::open(&path).map_err(PathError::at(&path))?;
            builder
                .append_data(&mut header, &name, file)
                .map_err(PathError::at(&path))?;
        } else {
            return Err(LayerError::NotFileOrDirectory(path));
        }
    }
    Ok(())
}

/// atoll's cache: `$XDG_CACHE_HOME/atoll`, else `~/.cache/atoll`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".cache")
        })
        .join("atoll")
}

/// The directory holding layer `digest` unpacked; `tar` (already checked
/// against the digest) is unpacked there the first time.
pub fn unpacked(digest: &str, tar: &[u8]) -> Result<PathBuf, LayerError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let root = cache_root().join("files");
    let dir = root.join(hex);
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).map_err(PathError::at(&root))?;
    let temporary = root.join(format!("{hex}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temporary);
    let outcome = unpack(tar, &temporary).and_then(|()| {
        std::fs::rename(&temporary, &dir).or_else(|error| {
            // Another atoll unpacked it first: theirs is as good.
            if dir.is_dir() {
                Ok(())
            } else {
                Err(PathError::at(&dir)(error).into())
            }
        })
    });
    let _ = std::fs::remove_dir_all(&temporary);
    outcome.map(|()| dir)
}

/// Unpacks only plain files and directories, each inside `into` (the tar
/// crate refuses `..` and absolute names).
fn unpack(tar: &[u8], into: &Path) -> Result<(), LayerError> {
    std::fs::create_dir_all(into).map_err(PathError::at(into))?;
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    let mut total = 0u64;
    let entries = archive.entries().map_err(LayerError::Tar)?;
    for entry in entries {
        let mut entry = entry.map_err(LayerError::Tar)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(LayerError::Special(
                entry.path_bytes().escape_ascii().to_string(),
            ));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED {
            return Err(LayerError::TooLarge);
        }
        let unpacked = entry.unpack_in(into).map_err(LayerError::Tar)?;
        if !unpacked {
            return Err(LayerError::Outside(
                entry.path_bytes().escape_ascii().to_string(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atoll-rootfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_tree_packs_reproducibly_and_unpacks_the_same() {
        let dir = scratch("tree");
        std::fs::create_dir_all(dir.join("src/sub")).unwrap();
        std::fs::write(dir.join("src/a.txt"), "alpha").unwrap();
        std::fs::write(dir.join("src/sub/b.bin"), [0u8, 1, 2, 3]).unwrap();
        let first = pack_dir(&dir.join("src")).unwrap();
        // Touching a file changes its time, not the layer.
        std::fs::write(dir.join("src/a.txt"), "alpha").unwrap();
        let second = pack_dir(&dir.join("src")).unwrap();
        assert_eq!(first, second);
        unpack(&first, &dir.join("out")).unwrap();
        assert_eq!(std::fs::read(dir.join("out/a.txt")).unwrap(), b"alpha");
        assert_eq!(
            std::fs::read(dir.join("out/sub/b.bin")).unwrap(),
            [0, 1, 2, 3]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn links_and_escapes_are_refused() {
        let dir = scratch("bad");
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "etc", "/etc").unwrap();
        let tar = builder.into_inner().unwrap();
        let error = unpack(&tar, &dir.join("out")).unwrap_err();
        assert!(
            matches!(&error, LayerError::Special(name) if name == "etc"),
            "{error}"
        );

        let mut raw = tar::Header::new_gnu();
        raw.set_size(1);
        raw.set_entry_type(tar::EntryType::Regular);
        // Write the escaping name directly: the builder itself refuses "..".
        raw.as_old_mut().name[..9].copy_from_slice(b"../escape");
        raw.set_cksum();
        let mut bytes = raw.as_bytes().to_vec();
        bytes.extend([b'x'; 512]);
        bytes.extend([0u8; 1024]);
        let error = unpack(&bytes, &dir.join("out2")).unwrap_err();
        assert!(matches!(error, LayerError::Outside(_)), "{error}");
        assert!(!dir.join("escape").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
