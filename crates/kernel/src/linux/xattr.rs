//! Extended attributes. The isle's files carry none it can see: getting
//! one finds no such attribute (ENODATA), listing finds an empty list, and
//! setting or removing one is unsupported (EOPNOTSUPP), as on a filesystem
//! without xattr support. The file itself is still looked up first, so a
//! missing path or a bad fd fails as Linux fails it.

use atoll_abi::linux::errno::{EFAULT, EOPNOTSUPP};
use atoll_abi::linux::AT_FDCWD;

use super::SysResult;
use crate::arch::x86_64::user;

/// ENODATA: the attribute isn't there.
const ENODATA: i64 = 61;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const F_GETFD: u64 = 1;
/// Longest attribute name Linux takes (XATTR_NAME_MAX).
const NAME_MAX: usize = 255;

/// The file a call names must exist: a path (lstat-like if `follow` is
/// false) or an fd.
fn look_up(file: File) -> Result<(), i64> {
    match file {
        File::Path { path, follow } => {
            let flags = if follow { 0 } else { AT_SYMLINK_NOFOLLOW };
            super::fs::faccessat2(AT_FDCWD, path, 0, flags).map(|_| ())
        }
        File::Fd(fd) => super::io::fcntl(fd, F_GETFD, 0).map(|_| ()),
    }
}

/// What an xattr call acts on.
#[derive(Clone, Copy)]
pub enum File {
    Path { path: u64, follow: bool },
    Fd(u64),
}

/// Checks the attribute name as Linux does: readable, 1 to 255 bytes.
fn check_name(name: u64) -> Result<(), i64> {
    let mut bytes = [0u8; NAME_MAX + 1];
    match user::read_cstr(name, &mut bytes) {
        Ok(name) if !name.is_empty() => Ok(()),
        Ok(_) => Err(atoll_abi::linux::errno::ERANGE),
        Err(EFAULT) => Err(EFAULT),
        Err(_) => Err(atoll_abi::linux::errno::ERANGE),
    }
}

pub fn getxattr(file: File, name: u64) -> SysResult {
    check_name(name)?;
    look_up(file)?;
    Err(ENODATA)
}

pub fn listxattr(file: File) -> SysResult {
    look_up(file)?;
    Ok(0)
}

pub fn setxattr(file: File, name: u64) -> SysResult {
    check_name(name)?;
    look_up(file)?;
    Err(EOPNOTSUPP)
}
