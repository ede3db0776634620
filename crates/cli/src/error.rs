//! The cli's one error: a one-line message and the exit status it gives.
//! Commands return it; `main` alone prints it (`atoll: MESSAGE`) and exits.
//! Each subsystem has its own error type (what went wrong, no status);
//! here alone they become a `CliError`, with the status their failures give.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::image::pack::PackError;
use crate::image::registry::{NetworkError, RegistryError};
use crate::image::store::StoreError;
use crate::manifest::ManifestError;
use crate::project::PartsError;

/// Exit status for bad command-line use (as clap does).
pub(crate) const STATUS_USAGE: i32 = 2;
/// Exit status when atoll itself fails (as docker run does).
pub(crate) const STATUS_ATOLL_FAILED: i32 = 125;
/// Exit status for a program that can't be executed (as a shell does).
pub(crate) const STATUS_NOT_EXECUTABLE: i32 = 126;
/// Exit status for a program that doesn't exist (as a shell does).
pub(crate) const STATUS_NOT_FOUND: i32 = 127;

#[derive(Debug)]
pub(crate) struct CliError {
    status: i32,
    message: String,
}

impl CliError {
    /// Bad input: a flag, an argument, a manifest (status 2).
    pub(crate) fn usage(message: impl Display) -> Self {
        Self::with_status(STATUS_USAGE, message)
    }

    /// atoll itself couldn't do it (status 125).
    pub(crate) fn failed(message: impl Display) -> Self {
        Self::with_status(STATUS_ATOLL_FAILED, message)
    }

    /// The program exists but can't run (status 126).
    pub(crate) fn not_executable(message: impl Display) -> Self {
        Self::with_status(STATUS_NOT_EXECUTABLE, message)
    }

    /// There is no such program (status 127).
    pub(crate) fn not_found(message: impl Display) -> Self {
        Self::with_status(STATUS_NOT_FOUND, message)
    }

    /// Passes on a status someone else chose: a build tool's, a signal's.
    pub(crate) fn with_status(status: i32, message: impl Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }

    pub(crate) fn status(&self) -> i32 {
        self.status
    }
}

impl Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// A bad `atoll.toml` is bad input.
impl From<ManifestError> for CliError {
    fn from(error: ManifestError) -> Self {
        Self::usage(error)
    }
}

/// What the image store, registries, `.isle` files and image building
/// fail with: atoll couldn't do it.
macro_rules! atoll_failed_from {
    ($($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> Self {
                Self::failed(error)
            }
        }
    )*};
}
atoll_failed_from!(
    StoreError,
    PackError,
    NetworkError,
    RegistryError,
    PartsError
);

/// An I/O failure on a file the user can find: `PATH: ERROR`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub(crate) struct PathError {
    path: PathBuf,
    source: std::io::Error,
}

impl PathError {
    /// For `map_err`: the I/O error, at `path`.
    pub(crate) fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CliError;

    #[test]
    fn each_kind_of_error_exits_as_a_shell_or_clap_would() {
        assert_eq!(CliError::usage("-").status(), 2);
        assert_eq!(CliError::failed("-").status(), 125);
        assert_eq!(CliError::not_executable("-").status(), 126);
        assert_eq!(CliError::not_found("-").status(), 127);
        assert_eq!(CliError::with_status(137, "-").status(), 137);
    }

    #[test]
    fn the_message_is_shown_as_given() {
        assert_eq!(
            CliError::usage("-m 0: too small").to_string(),
            "-m 0: too small"
        );
    }
}
