//! What the isle sees of the host's files: `-v` volumes, files layers,
//! its private /tmp, and the working directory.

use atoll_vmm::MountSpec;

use super::tmp::PrivateTmp;
use crate::error::CliError;

/// Parses `HOST:GUEST[:OPTIONS]`, OPTIONS a comma-separated list of `ro`
/// or `rw` and `owners`; unknown or repeated options are refused.
fn parse_volume(text: &str) -> Result<MountSpec, CliError> {
    let invalid = || {
        CliError::usage(format!(
            "invalid -v '{text}': use HOST:GUEST[:OPTIONS], with GUEST an absolute path \
             and OPTIONS among ro, rw, owners (comma-separated)"
        ))
    };
    let mut parts = text.split(':');
    let (Some(host), Some(guest), options, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if host.is_empty() || !guest.starts_with('/') {
        return Err(invalid());
    }
    let mut seen: Vec<&str> = Vec::new();
    for option in options
        .map(|options| options.split(','))
        .into_iter()
        .flatten()
    {
        if !["ro", "rw", "owners"].contains(&option) {
            return Err(CliError::usage(format!(
                "invalid -v '{text}': unknown option '{option}' (use ro, rw or owners)"
            )));
        }
        if seen.contains(&option) {
            return Err(CliError::usage(format!(
                "invalid -v '{text}': option '{option}' given twice"
            )));
        }
        if seen.contains(&"ro") && option == "rw" || seen.contains(&"rw") && option == "ro" {
            return Err(CliError::usage(format!(
                "invalid -v '{text}': ro and rw contradict each other"
            )));
        }
        seen.push(option);
    }
    let host = std::fs::canonicalize(host)
        .map_err(|error| CliError::usage(format!("-v {text}: {host}: {error}")))?;
    if !host.is_dir() {
        return Err(CliError::usage(format!(
            "-v {text}: {} is not a directory",
            host.display()
        )));
    }
    Ok(MountSpec {
        host,
        guest: atoll_vmm::sandbox::normalize(guest),
        read_only: seen.contains(&"ro"),
        keep_owners: seen.contains(&"owners"),
    })
}

/// Parses `--rootfs DIR[:rw]`: DIR as the isle's `/`, read-only unless `:rw`.
pub(super) fn parse_rootfs(text: &str) -> Result<MountSpec, CliError> {
    let (dir, read_only) = match text.rsplit_once(':') {
        Some((dir, "rw")) => (dir, false),
        Some((dir, "ro")) => (dir, true),
        Some((_, option)) if !option.contains('/') => {
            return Err(CliError::usage(format!(
                "invalid --rootfs '{text}': unknown option '{option}' (use DIR, DIR:ro or DIR:rw)"
            )))
        }
        _ => (text, true),
    };
    let host = std::fs::canonicalize(dir).map_err(|error| {
        CliError::usage(match error.kind() {
            std::io::ErrorKind::NotFound => {
                format!("--rootfs {dir}: no such directory: give the root of a file tree")
            }
            _ => format!("--rootfs {dir}: {error}"),
        })
    })?;
    if !host.is_dir() {
        return Err(CliError::usage(format!(
            "--rootfs {}: is not a directory: give the root of a file tree",
            host.display()
        )));
    }
    Ok(MountSpec {
        host,
        guest: "/".into(),
        read_only,
        keep_owners: false,
    })
}

/// The host's system directories a host program's isle sees, read-only,
/// at the same paths: its libraries, ld.so's cache and configuration, and
/// the data files programs read (Python's stdlib, zoneinfo, /etc/passwd).
/// Where the host has a symlink (merged /usr: /lib -> usr/lib), the isle
/// has the same symlink. Nothing else of the host is shown: not /home,
/// /root, /var, /srv, /opt, /mnt, /media, /boot or /run, nor the host's
/// /proc and /sys.
const SYSTEM_DIRS: [&str; 8] = [
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What of the host's /etc an isle never sees: credentials and private
/// keys, which a program running as root could otherwise read.
pub(crate) const HIDDEN_IN_ETC: [&str; 18] = [
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/krb5.keytab",
    "/etc/credstore",
    "/etc/credstore.encrypted",
    "/etc/NetworkManager/system-connections",
    "/etc/wpa_supplicant",
    "/etc/docker/key.json",
];

/// The isle's view of files.
pub(super) struct View {
    pub(super) mounts: Vec<MountSpec>,
    /// Its initial working directory (a guest path).
    pub(super) cwd: String,
    /// Guest paths it can't reach though a mount holds them.
    pub(super) hidden: Vec<String>,
}

/// Where an isle's `/` comes from.
pub(super) enum Root<'a> {
    /// A root filesystem of its own (`--rootfs`, an image's layers).
    Tree(&'a MountSpec),
    /// A host program's: the host's system directories.
    HostSystem,
    /// Nothing but the mount points (an isle image's program).
    Empty,
}

/// The isle's mounts (the current directory by default, unless it has a
/// root filesystem of its own; a private /tmp and /dev/shm unless they are
/// mounted; the host's system directories for a host program) and its
/// working directory.
pub(super) fn mounts(
    volumes: &[String],
    files: &[MountSpec],
    tmp: &PrivateTmp,
    root: Root,
) -> Result<View, CliError> {
    let host_cwd = std::env::current_dir()
        .map_err(|error| CliError::usage(format!("cannot read the current directory: {error}")))?;
    let mut mounts = if let Root::Tree(tree) = root {
        // As a container's: its own tree, and only the volumes asked for.
        let mut mounts = vec![tree.clone()];
        for volume in parse_volumes(volumes)? {
            if volume.guest == "/" {
                return Err(CliError::usage(
                    "-v at / and a root filesystem (--rootfs, an image's) both give the isle's /: give one",
                ));
            }
            mounts.push(volume);
        }
        mounts
    } else if volumes.is_empty() {
        vec![MountSpec {
            host: host_cwd.clone(),
            guest: host_cwd.to_string_lossy().into_owned(),
            read_only: false,
            keep_owners: false,
        }]
    } else {
        parse_volumes(volumes)?
    };
    mounts.extend(files.iter().cloned());
    // /dev/shm is where shm_open and sem_open make their files.
    for (private, guest) in [("tmp", "/tmp"), ("shm", "/dev/shm")] {
        if !mounts.iter().any(|mount| mount.guest == guest) {
            mounts.push(MountSpec {
                host: tmp.path.join(private),
                guest: guest.into(),
                read_only: false,
                keep_owners: false,
            });
        }
    }
    // Start where the user is, if a mount shows that directory: at its
    // path inside the isle. Otherwise at the root.
    let in_tree = matches!(root, Root::Tree(_));
    let cwd = mounts
        .iter()
        .filter(|_| !in_tree)
        .filter_map(|mount| {
            let rest = host_cwd.strip_prefix(&mount.host).ok()?;
            let guest = std::path::Path::new(&mount.guest).join(rest);
            Some((
                mount.host.as_os_str().len(),
                guest.to_string_lossy().into_owned(),
            ))
        })
        .max_by_key(|(depth, _)| *depth)
        .map_or_else(|| "/".to_string(), |(_, guest)| guest);
    let mut hidden = Vec::new();
    if !mounts.iter().any(|mount| mount.guest == "/") {
        // A read-only root holding just the mount points (and /dev), so that
        // `/`, `..` above a mount and `mkdir -p` of absolute paths behave.
        let synthetic = tmp.path.join("root");
        if matches!(root, Root::HostSystem) {
            hidden = system_view(&mut mounts, &synthetic)?;
        }
        for mount in &mounts {
            let _ = std::fs::create_dir_all(synthetic.join(mount.guest.trim_start_matches('/')));
        }
        let _ = std::fs::create_dir_all(synthetic.join("dev"));
        mounts.push(MountSpec {
            host: synthetic,
            guest: "/".into(),
            read_only: true,
            keep_owners: false,
        });
    }
    Ok(View {
        mounts,
        cwd,
        hidden,
    })
}

/// The `-v` volumes, each guest path at most once (one would silently
/// hide the other).
fn parse_volumes(volumes: &[String]) -> Result<Vec<MountSpec>, CliError> {
    let parsed = volumes
        .iter()
        .map(|volume| parse_volume(volume))
        .collect::<Result<Vec<_>, _>>()?;
    for (later, mount) in parsed.iter().enumerate() {
        if let Some(earlier) = parsed[..later]
            .iter()
            .position(|other| other.guest == mount.guest)
        {
            return Err(CliError::usage(format!(
                "-v {} and -v {} both mount at {}: give each guest path once",
                volumes[earlier], volumes[later], mount.guest
            )));
        }
    }
    Ok(parsed)
}

/// Adds [`SYSTEM_DIRS`] the user hasn't mounted over: directories as
/// read-only mounts, symlinks as the same symlinks in the isle's `root`.
/// Returns the paths to hide.
fn system_view(
    mounts: &mut Vec<MountSpec>,
    root: &std::path::Path,
) -> Result<Vec<String>, CliError> {
    let mut hidden = Vec::new();
    for dir in SYSTEM_DIRS {
        // A user's mount at or above it wins (-v /x:/usr, or the cwd /usr/src
        // is more specific and stays).
        if mounts
            .iter()
            .any(|mount| mount.guest == dir || dir.starts_with(&format!("{}/", mount.guest)))
        {
            continue;
        }
        let host = std::path::Path::new(dir);
        let Ok(metadata) = std::fs::symlink_metadata(host) else {
            continue;
        };
        if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(host).map_err(|error| {
                CliError::failed(format!("cannot read the host's {dir}: {error}"))
            })?;
            let link = root.join(dir.trim_start_matches('/'));
            if let Some(parent) = link.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::os::unix::fs::symlink(&target, &link).map_err(|error| {
                CliError::failed(format!("cannot make {dir} in the isle's root: {error}"))
            })?;
        } else if metadata.is_dir() {
            mounts.push(MountSpec {
                host: host.to_path_buf(),
                guest: dir.into(),
                read_only: true,
                keep_owners: false,
            });
            if dir == "/etc" {
                hidden.extend(HIDDEN_IN_ETC.iter().map(|path| path.to_string()));
            }
        }
    }
    Ok(hidden)
}
