//! PROGRAM as a shell would find and check it, before it is read whole.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::size::format_size;

/// Finds PROGRAM as a shell would: a path if it has a slash, else in PATH
/// (or, friendlier than a shell, in the current directory).
fn resolve_program(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .or_else(|| program.is_file().then(|| program.to_path_buf()))
}

/// The largest program atoll reads: far past any real static binary, and
/// a bound on what a mistaken PROGRAM (a disk image, say) makes it read.
const MAX_PROGRAM_SIZE: u64 = 1 << 30;

/// What a shell would say of PROGRAM when it can't open it: status and reason.
fn open_refusal(shown: impl std::fmt::Display, error: &std::io::Error) -> CliError {
    match error.kind() {
        std::io::ErrorKind::NotFound => CliError::not_found(format!("{shown}: no such file")),
        std::io::ErrorKind::PermissionDenied => {
            CliError::not_executable(format!("{shown}: permission denied"))
        }
        _ => CliError::not_executable(format!("{shown}: {error}")),
    }
}

/// Refuses anything but a regular file (as not executable): a FIFO would
/// block the read, a device (/dev/zero) never end it.
fn check_regular_file(
    metadata: &std::fs::Metadata,
    shown: impl std::fmt::Display,
) -> Result<(), CliError> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        return Err(CliError::not_executable(format!(
            "{shown}: is a directory: give a program file"
        )));
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(CliError::not_executable(format!(
        "{shown}: is not a regular file ({what}): give a program file"
    )))
}

/// The program at PATH (found as a shell would) and its canonical path;
/// else the exit status and message a shell would give. It must be a
/// regular file of at most [`MAX_PROGRAM_SIZE`] that starts as an x86_64
/// ELF; all that is checked before the file is read whole.
pub(super) fn read_program(program: &Path) -> Result<(Vec<u8>, PathBuf), CliError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = program.display();
    let Some(path) = resolve_program(program) else {
        return Err(CliError::not_found(format!(
            "{shown}: no such file (nor in PATH)"
        )));
    };
    let not_executable = |reason: String| CliError::not_executable(format!("{shown}: {reason}"));
    // Looked at before it is opened: opening a device can have effects.
    let metadata = std::fs::metadata(&path).map_err(|error| open_refusal(&shown, &error))?;
    check_regular_file(&metadata, &shown)?;
    // O_NONBLOCK: should it have become a FIFO since, opening it doesn't
    // wait for a writer; fstat then tells.
    let mut file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .map_err(|error| open_refusal(&shown, &error))?;
    let metadata = file
        .metadata()
        .map_err(|error| not_executable(error.to_string()))?;
    check_regular_file(&metadata, &shown)?;
    let read_error = |error: std::io::Error| not_executable(format!("cannot read it: {error}"));
    let mut image = Vec::new();
    (&mut file)
        .take(atoll_vmm::isle::PROGRAM_START_SIZE as u64)
        .read_to_end(&mut image)
        .map_err(read_error)?;
    atoll_vmm::isle::check_program_start(&image)
        .map_err(|error| not_executable(error.to_string()))?;
    let too_large = |size: u64| {
        not_executable(format!(
            "is {}, more than the {} atoll takes as a program",
            format_size(size),
            format_size(MAX_PROGRAM_SIZE)
        ))
    };
    if metadata.len() > MAX_PROGRAM_SIZE {
        return Err(too_large(metadata.len()));
    }
    // One byte past the limit tells a file that grew since fstat.
    (&mut file)
        .take(MAX_PROGRAM_SIZE + 1 - image.len() as u64)
        .read_to_end(&mut image)
        .map_err(read_error)?;
    if image.len() as u64 > MAX_PROGRAM_SIZE {
        return Err(too_large(image.len() as u64));
    }
    Ok((image, std::fs::canonicalize(&path).unwrap_or(path)))
}

/// PROGRAM inside a root filesystem, found as a shell in the isle would
/// (a path if it has a slash, else in the isle's PATH), and read through
/// the isle's own namespace, so its symlinks resolve inside the tree.
/// Returns its bytes and its path in the isle.
pub(super) fn read_program_in_root(
    files: &atoll_vmm::sandbox::Files,
    program: &Path,
    envp: &[Vec<u8>],
) -> Result<(Vec<u8>, PathBuf), CliError> {
    let shown = program.display();
    let name = program.to_string_lossy();
    let candidates: Vec<String> = if name.contains('/') {
        vec![name.into_owned()]
    } else {
        let path = envp
            .iter()
            .find_map(|entry| entry.strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
        path.split(|&byte| byte == b':')
            .filter(|dir| dir.starts_with(b"/"))
            .map(|dir| format!("{}/{name}", String::from_utf8_lossy(dir)))
            .collect()
    };
    let mut first_error = None;
    for candidate in &candidates {
        match files.read_file(candidate, MAX_PROGRAM_SIZE) {
            Ok(image) => {
                atoll_vmm::isle::check_program_start(&image)
                    .map_err(|error| CliError::not_executable(format!("{shown}: {error}")))?;
                return Ok((image, PathBuf::from(candidate)));
            }
            Err(errno) if errno == i64::from(libc::ENOENT) => {}
            Err(errno) => {
                first_error.get_or_insert(errno);
            }
        }
    }
    let where_ = if candidates.len() == 1 {
        "in the root filesystem"
    } else {
        "in the isle's PATH"
    };
    Err(match first_error {
        None => CliError::not_found(format!("{shown}: no such file {where_}")),
        Some(errno) if errno == i64::from(libc::EFBIG) => CliError::not_executable(format!(
            "{shown}: is more than the {} atoll takes as a program",
            format_size(MAX_PROGRAM_SIZE)
        )),
        Some(errno) if errno == i64::from(libc::EACCES) => CliError::not_executable(format!(
            "{shown}: is not a regular file {where_}: give a program file"
        )),
        Some(errno) => CliError::not_executable(format!(
            "{shown}: {}",
            std::io::Error::from_raw_os_error(errno as i32)
        )),
    })
}
