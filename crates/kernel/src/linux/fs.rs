//! Path syscalls. No file system is visible yet; /proc/self/exe is.

use atoll_abi::linux::errno::{EINVAL, ENOENT};

use super::SysResult;
use crate::arch::x86_64::user;
use crate::boot_info;

const AT_FDCWD: i32 = -100;

fn is_own_exe(path: &[u8]) -> bool {
    if path == b"/proc/self/exe" || path == b"/proc/thread-self/exe" {
        return true;
    }
    let mut pid_path = [0u8; 32];
    let mut writer = crate::trace::LineBuffer::<32>::new();
    let _ = core::fmt::write(
        &mut writer,
        format_args!("/proc/{}/exe", boot_info().identity.pid),
    );
    let own = writer.as_bytes();
    pid_path[..own.len()].copy_from_slice(own);
    path == &pid_path[..own.len()]
}

pub fn readlink(path: u64, buffer: u64, size: u64) -> SysResult {
    readlinkat(AT_FDCWD as u64, path, buffer, size)
}

pub fn readlinkat(_dirfd: u64, path: u64, buffer: u64, size: u64) -> SysResult {
    if size as i64 <= 0 {
        return Err(EINVAL);
    }
    let mut name = [0u8; 4096];
    let path = user::read_cstr(path, &mut name)?;
    if !is_own_exe(path) {
        return Err(ENOENT);
    }
    let target = boot_info().exe_path.as_bytes();
    let len = target.len().min(size as usize);
    user::copy_to(buffer, &target[..len])?;
    Ok(len as u64)
}
