//! Host file calls rustix can't make safely or exactly: stat and statfs
//! in the guest's layout (libc hides fields the guest is owed: statfs's
//! f_fsid and f_flags), statx's whole answer, getdents64, pread and pwrite
//! of guest memory, flock and fcntl record locks with the guest's own
//! operation numbers.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use atoll_abi::linux::STAT_SIZE;
use vm_memory::VolatileSlice;

use super::check;

/// An all-zero `struct stat`, for the host kernel to fill.
pub fn zeroed_stat() -> libc::stat {
    // SAFETY: libc::stat is integers (and padding) only: all-zero is a
    // valid value.
    unsafe { std::mem::zeroed() }
}

/// fstat(2), as libc's `struct stat` (which [`stat_bytes`] lays out for
/// the guest, as it does for a path's).
pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat, i64> {
    let mut stat = zeroed_stat();
    // SAFETY: fstat writes one struct stat into ours.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) }.into())?;
    Ok(stat)
}

/// `stat` as the x86_64 kernel's `struct stat`, field by field; the
/// padding and unused words are zero, as the kernel writes them.
pub fn stat_bytes(stat: &libc::stat) -> [u8; STAT_SIZE as usize] {
    let words: [u64; 18] = [
        stat.st_dev,
        stat.st_ino,
        stat.st_nlink,
        u64::from(stat.st_mode) | u64::from(stat.st_uid) << 32,
        u64::from(stat.st_gid),
        stat.st_rdev,
        stat.st_size as u64,
        stat.st_blksize as u64,
        stat.st_blocks as u64,
        stat.st_atime as u64,
        stat.st_atime_nsec as u64,
        stat.st_mtime as u64,
        stat.st_mtime_nsec as u64,
        stat.st_ctime as u64,
        stat.st_ctime_nsec as u64,
        0,
        0,
        0,
    ];
    let mut bytes = [0u8; STAT_SIZE as usize];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

/// The x86_64 kernel's `struct statfs`: fifteen words.
pub const STATFS_SIZE: usize = 120;
const _: () = assert!(std::mem::size_of::<libc::statfs>() == STATFS_SIZE);

/// fstatfs(2), as the kernel's `struct statfs` bytes.
pub fn fstatfs(fd: BorrowedFd<'_>) -> Result<[u8; STATFS_SIZE], i64> {
    // Words, not libc's struct: libc hides f_fsid and f_flags, and types
    // its spare words as maybe uninitialized.
    let mut words = [0u64; STATFS_SIZE / 8];
    // SAFETY: fstatfs writes one struct statfs, which is exactly our
    // buffer's size (asserted above) and no more aligned than u64s.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), words.as_mut_ptr().cast()) }.into())?;
    let mut bytes = [0u8; STATFS_SIZE];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Ok(bytes)
}

/// The size of the `struct statx` a guest receives.
pub const STATX_SIZE: usize = 256;

/// statx(2) of `fd` itself (AT_EMPTY_PATH, plus `flags`' sync type), with
/// the kernel's whole answer: a field newer than rustix's `Statx` still
/// reaches the guest.
pub fn statx(fd: BorrowedFd<'_>, flags: i32, mask: u32) -> Result<[u8; STATX_SIZE], i64> {
    let mut buffer = [0u8; STATX_SIZE];
    // SAFETY: statx reads the empty NUL-terminated path and writes at most
    // 256 bytes (sizeof(struct statx)) into our buffer.
    check(unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | (flags & libc::AT_STATX_SYNC_TYPE),
            mask,
            buffer.as_mut_ptr(),
        )
    })?;
    Ok(buffer)
}

/// getdents64(2) into a guest buffer.
pub fn getdents64(fd: BorrowedFd<'_>, buffer: &VolatileSlice<'_>) -> Result<usize, i64> {
    let guard = buffer.ptr_guard_mut();
    // SAFETY: the slice's pointer is valid for writes of its length while
    // the guard lives; the kernel writes at most that many bytes.
    let done = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            guard.as_ptr(),
            buffer.len(),
        )
    };
    check(done).map(|done| done as usize)
}

/// pread(2) into a guest buffer.
pub fn pread(fd: BorrowedFd<'_>, buffer: &VolatileSlice<'_>, offset: i64) -> Result<usize, i64> {
    let guard = buffer.ptr_guard_mut();
    // SAFETY: the slice's pointer is valid for writes of its length while
    // the guard lives; the kernel writes at most that many bytes.
    let done = unsafe { libc::pread(fd.as_raw_fd(), guard.as_ptr().cast(), buffer.len(), offset) };
    check(done as libc::c_long).map(|done| done as usize)
}

/// pwrite(2) from a guest buffer.
pub fn pwrite(fd: BorrowedFd<'_>, buffer: &VolatileSlice<'_>, offset: i64) -> Result<usize, i64> {
    let guard = buffer.ptr_guard();
    // SAFETY: the slice's pointer is valid for reads of its length while
    // the guard lives; the kernel only reads them.
    let done = unsafe { libc::pwrite(fd.as_raw_fd(), guard.as_ptr().cast(), buffer.len(), offset) };
    check(done as libc::c_long).map(|done| done as usize)
}

/// flock(2) with the guest's operation, for the host kernel to check.
pub fn flock(fd: BorrowedFd<'_>, operation: i32) -> Result<i64, i64> {
    // SAFETY: flock has no memory effects.
    check(unsafe { libc::flock(fd.as_raw_fd(), operation) }.into())
}

/// fcntl(2) with a record-lock command (F_GETLK, F_SETLK, F_SETLKW and
/// their F_OFD_ forms) on `lock`; any other command is EINVAL.
pub fn record_lock(fd: BorrowedFd<'_>, command: i32, lock: &mut libc::flock) -> Result<i64, i64> {
    if !atoll_abi::linux::fcntl::is_record_lock(command as u64) {
        return Err(i64::from(libc::EINVAL));
    }
    // SAFETY: the record-lock commands read (and the GETLK forms write) one
    // struct flock, ours.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), command, lock as *mut libc::flock) }.into())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn stat_bytes_are_the_kernels_struct_stat() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let stat = fstat(file.as_fd()).unwrap();
        // SAFETY: zeroed, then written only by the kernel's fstat, so every
        // byte, padding included, is initialized; STAT_SIZE is its size.
        let raw = unsafe {
            std::slice::from_raw_parts(
                (&stat as *const libc::stat).cast::<u8>(),
                STAT_SIZE as usize,
            )
        };
        assert_eq!(std::mem::size_of::<libc::stat>(), STAT_SIZE as usize);
        assert_eq!(&stat_bytes(&stat)[..], raw);
    }

    #[test]
    fn fstatfs_keeps_the_fields_libc_hides() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let bytes = fstatfs(file.as_fd()).unwrap();
        let word = |index: usize| u64::from_ne_bytes(bytes[index * 8..][..8].try_into().unwrap());
        let statfs = rustix::fs::fstatfs(&file).unwrap();
        assert_eq!(word(0), statfs.f_type as u64);
        assert_eq!(word(1), statfs.f_bsize as u64);
        assert_eq!(word(2), statfs.f_blocks);
        assert_eq!(
            word(10),
            statfs.f_flags as u64,
            "f_flags, in libc's spare words"
        );
    }

    #[test]
    fn record_lock_takes_only_lock_commands() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let mut lock = libc::flock {
            l_type: libc::F_RDLCK as i16,
            l_whence: libc::SEEK_SET as i16,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        assert_eq!(
            record_lock(file.as_fd(), libc::F_SETFL, &mut lock),
            Err(i64::from(libc::EINVAL))
        );
        assert_eq!(record_lock(file.as_fd(), libc::F_GETLK, &mut lock), Ok(0));
        assert_eq!(lock.l_type, libc::F_UNLCK as i16, "no one else holds it");
    }
}
