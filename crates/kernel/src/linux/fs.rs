//! Path syscalls, served by the host inside the isle's mounts (see the
//! monitor's `files` module for the confinement). /proc/self/exe is
//! answered here.

use atoll_abi::linux::errno::{EFAULT, EINVAL};
use atoll_abi::linux::AT_FDCWD;
use atoll_abi::queue::Opcode;

use super::io::host_result;
use super::SysResult;
use crate::arch::x86_64::user;
use crate::{boot_info, offload};

/// The 120-byte Linux `struct statfs`.
const STATFS_SIZE: u64 = 120;
const AT_REMOVEDIR: u64 = 0x200;
const O_CREAT: u64 = 0o100;
const O_WRONLY: u64 = 0o1;
const O_TRUNC: u64 = 0o1000;

fn is_own_exe(path: &[u8]) -> bool {
    if path == b"/proc/self/exe" || path == b"/proc/thread-self/exe" {
        return true;
    }
    let mut writer = crate::trace::LineBuffer::<32>::new();
    let _ = core::fmt::write(
        &mut writer,
        format_args!("/proc/{}/exe", boot_info().identity.pid),
    );
    path == writer.as_bytes()
}

/// A path argument must at least start inside guest RAM; the host reads it.
fn path_arg(path: u64) -> Result<u64, i64> {
    if user::range_ok(path, 1) {
        Ok(path)
    } else {
        Err(EFAULT)
    }
}

fn call(op: Opcode, args: [u64; 6]) -> SysResult {
    host_result(offload::call(op, args))
}

pub fn open(path: u64, flags: u64, mode: u64) -> SysResult {
    openat(AT_FDCWD, path, flags, mode)
}

pub fn creat(path: u64, mode: u64) -> SysResult {
    openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode)
}

pub fn openat(dirfd: u64, path: u64, flags: u64, mode: u64) -> SysResult {
    call(Opcode::OpenAt, [dirfd, path_arg(path)?, flags, mode, 0, 0])
}

pub fn stat(path: u64, statbuf: u64) -> SysResult {
    super::io::newfstatat(AT_FDCWD, path, statbuf, 0)
}

pub fn lstat(path: u64, statbuf: u64) -> SysResult {
    super::io::newfstatat(AT_FDCWD, path, statbuf, 0x100)
}

pub fn access(path: u64, mode: u64) -> SysResult {
    faccessat2(AT_FDCWD, path, mode, 0)
}

pub fn faccessat2(dirfd: u64, path: u64, mode: u64, flags: u64) -> SysResult {
    if mode & !7 != 0 {
        return Err(EINVAL);
    }
    call(
        Opcode::AccessAt,
        [dirfd, path_arg(path)?, mode, flags, 0, 0],
    )
}

pub fn mkdirat(dirfd: u64, path: u64, mode: u64) -> SysResult {
    call(Opcode::MkdirAt, [dirfd, path_arg(path)?, mode, 0, 0, 0])
}

pub fn mknodat(dirfd: u64, path: u64, mode: u64, _device: u64) -> SysResult {
    call(Opcode::MknodAt, [dirfd, path_arg(path)?, mode, 0, 0, 0])
}

pub fn unlinkat(dirfd: u64, path: u64, flags: u64) -> SysResult {
    call(Opcode::UnlinkAt, [dirfd, path_arg(path)?, flags, 0, 0, 0])
}

pub fn rmdir(path: u64) -> SysResult {
    unlinkat(AT_FDCWD, path, AT_REMOVEDIR)
}

pub fn renameat2(old_dirfd: u64, old: u64, new_dirfd: u64, new: u64, flags: u64) -> SysResult {
    call(
        Opcode::RenameAt,
        [
            old_dirfd,
            path_arg(old)?,
            new_dirfd,
            path_arg(new)?,
            flags,
            0,
        ],
    )
}

pub fn linkat(old_dirfd: u64, old: u64, new_dirfd: u64, new: u64, flags: u64) -> SysResult {
    call(
        Opcode::LinkAt,
        [
            old_dirfd,
            path_arg(old)?,
            new_dirfd,
            path_arg(new)?,
            flags,
            0,
        ],
    )
}

pub fn symlinkat(target: u64, new_dirfd: u64, path: u64) -> SysResult {
    call(
        Opcode::SymlinkAt,
        [path_arg(target)?, new_dirfd, path_arg(path)?, 0, 0, 0],
    )
}

pub fn readlink(path: u64, buffer: u64, size: u64) -> SysResult {
    readlinkat(AT_FDCWD, path, buffer, size)
}

pub fn readlinkat(dirfd: u64, path: u64, buffer: u64, size: u64) -> SysResult {
    if size as i64 <= 0 {
        return Err(EINVAL);
    }
    let mut name = [0u8; 32];
    if let Ok(short) = user::read_cstr(path, &mut name) {
        if is_own_exe(short) {
            let target = boot_info().exe_path.as_bytes();
            let len = target.len().min(size as usize);
            user::copy_to(buffer, &target[..len])?;
            return Ok(len as u64);
        }
    }
    if !user::range_ok(buffer, size.min(4096)) {
        return Err(EFAULT);
    }
    call(
        Opcode::ReadlinkAt,
        [dirfd, path_arg(path)?, buffer, size, 0, 0],
    )
}

pub fn chdir(path: u64) -> SysResult {
    call(Opcode::Chdir, [path_arg(path)?, 0, 0, 0, 0, 0])
}

pub fn fchdir(fd: u64) -> SysResult {
    call(Opcode::Chdir, [0, fd, 0, 0, 0, 0])
}

pub fn getcwd(buffer: u64, size: u64) -> SysResult {
    if size == 0 {
        return Err(EINVAL);
    }
    if !user::range_ok(buffer, size.min(4096)) {
        return Err(EFAULT);
    }
    call(Opcode::GetCwd, [buffer, size, 0, 0, 0, 0])
}

pub fn umask(mask: u64) -> SysResult {
    call(Opcode::Umask, [mask, 0, 0, 0, 0, 0])
}

pub fn fchmodat(dirfd: u64, path: u64, mode: u64) -> SysResult {
    call(Opcode::Chmod, [dirfd, path_arg(path)?, mode, 0, 0, 0])
}

pub fn chmod(path: u64, mode: u64) -> SysResult {
    fchmodat(AT_FDCWD, path, mode)
}

pub fn fchmod(fd: u64, mode: u64) -> SysResult {
    call(Opcode::Chmod, [fd, 0, mode, 0, 0, 0])
}

pub fn utimensat(dirfd: u64, path: u64, times: u64, flags: u64) -> SysResult {
    let path = if path == 0 { 0 } else { path_arg(path)? };
    call(Opcode::UtimensAt, [dirfd, path, times, flags, 0, 0])
}

pub fn statfs(path: u64, buffer: u64) -> SysResult {
    if !user::range_ok(buffer, STATFS_SIZE) {
        return Err(EFAULT);
    }
    call(Opcode::StatFs, [path_arg(path)?, buffer, 0, 0, 0, 0])
}

pub fn fstatfs(fd: u64, buffer: u64) -> SysResult {
    if !user::range_ok(buffer, STATFS_SIZE) {
        return Err(EFAULT);
    }
    call(Opcode::StatFs, [0, buffer, fd, 0, 0, 0])
}

pub fn truncate(path: u64, length: u64) -> SysResult {
    let fd = openat(AT_FDCWD, path, O_WRONLY, 0)?;
    let result = super::io::ftruncate(fd, length);
    let _ = super::io::close(fd);
    result
}

pub fn statx(dirfd: u64, path: u64, flags: u64, mask: u64, buffer: u64) -> SysResult {
    if !user::range_ok(buffer, 256) {
        return Err(EFAULT);
    }
    call(
        Opcode::Statx,
        [dirfd, path_arg(path)?, flags, mask, buffer, 0],
    )
}

pub fn flock(fd: u64, operation: u64) -> SysResult {
    call(Opcode::Flock, [fd, operation, 0, 0, 0, 0])
}

pub fn fallocate(fd: u64, mode: u64, offset: u64, len: u64) -> SysResult {
    call(Opcode::Fallocate, [fd, mode, offset, len, 0, 0])
}

pub fn fchownat(dirfd: u64, path: u64, owner: u64, group: u64, flags: u64) -> SysResult {
    call(
        Opcode::Chown,
        [dirfd, path_arg(path)?, owner, group, flags, 0],
    )
}

pub fn fchown(fd: u64, owner: u64, group: u64) -> SysResult {
    call(Opcode::Chown, [fd, 0, owner, group, 0, 0])
}

pub fn sync() -> SysResult {
    call(Opcode::Fsync, [0, 2, 0, 0, 0, 0])
}
