//! Offloaded file and path operations: decoding requests, with every guest
//! string, buffer and struct checked, onto the isle's `Files`.

use std::os::fd::AsFd;

use atoll_abi::linux::errno::{EFAULT, EINVAL, ENAMETOOLONG, ENOSYS};
use atoll_abi::linux::{AT_FDCWD_INT, PATH_MAX, STAT_SIZE};
use atoll_abi::queue::{Opcode, Request};
use vm_memory::{Bytes, GuestAddress};

use super::errno;
use crate::guest::memory::GuestRam;
use crate::host;
use crate::sandbox::Files;

/// Reads a NUL-terminated path from guest memory (at most PATH_MAX bytes).
pub(super) fn guest_string(ram: &GuestRam, address: u64) -> Result<String, i64> {
    let bytes = guest_c_string(ram, address, PATH_MAX as usize)?;
    // Paths are bytes on Linux; the isle's must be UTF-8.
    String::from_utf8(bytes).map_err(|_| EINVAL)
}

/// A C string in guest memory, without its NUL: EFAULT where it leaves
/// RAM, ENAMETOOLONG past `max` bytes.
pub(super) fn guest_c_string(ram: &GuestRam, address: u64, max: usize) -> Result<Vec<u8>, i64> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 256];
    while bytes.len() < max {
        let at = address.checked_add(bytes.len() as u64).ok_or(EFAULT)?;
        let available = ram.size().saturating_sub(at).min(chunk.len() as u64) as usize;
        if available == 0 {
            return Err(EFAULT);
        }
        ram.memory()
            .read_slice(&mut chunk[..available], GuestAddress(at))
            .map_err(|_| EFAULT)?;
        if let Some(end) = chunk[..available].iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..available]);
    }
    Err(ENAMETOOLONG)
}

pub(super) fn write_guest(ram: &GuestRam, address: u64, bytes: &[u8]) -> Result<(), i64> {
    ram.memory()
        .write_slice(bytes, GuestAddress(address))
        .map_err(|_| EFAULT)
}

/// The two paths of renameat and linkat (`a[1]` and `a[3]`).
fn path_pair(ram: &GuestRam, a: [u64; 6]) -> Result<(String, String), i64> {
    Ok((guest_string(ram, a[1])?, guest_string(ram, a[3])?))
}

fn optional_path(ram: &GuestRam, address: u64) -> Result<Option<String>, i64> {
    if address == 0 {
        Ok(None)
    } else {
        guest_string(ram, address).map(Some)
    }
}

/// fcntl's record locks: the guest's `struct flock` is copied in, checked by
/// the host kernel, and copied back for the GETLK forms. Runs on a worker
/// when it may wait, holding only the fd, so the holder can unlock meanwhile.
fn record_lock(ram: &GuestRam, files: &Files, a: [u64; 6]) -> Result<i64, i64> {
    use atoll_abi::linux::fcntl::{FLOCK_SIZE, F_GETLK, F_OFD_GETLK};
    let mut raw = [0u8; FLOCK_SIZE as usize];
    ram.memory()
        .read_slice(&mut raw, GuestAddress(a[2]))
        .map_err(|_| EFAULT)?;
    let mut lock = libc::flock {
        l_type: i16::from_le_bytes([raw[0], raw[1]]),
        l_whence: i16::from_le_bytes([raw[2], raw[3]]),
        l_start: i64::from_le_bytes(raw[8..16].try_into().unwrap_or_default()),
        l_len: i64::from_le_bytes(raw[16..24].try_into().unwrap_or_default()),
        l_pid: i32::from_le_bytes(raw[24..28].try_into().unwrap_or_default()),
    };
    let held = files.host_fd(a[0])?;
    host::fs::record_lock(held.as_fd(), a[1] as i32, &mut lock)?;
    if a[1] == F_GETLK || a[1] == F_OFD_GETLK {
        raw[0..2].copy_from_slice(&lock.l_type.to_le_bytes());
        raw[2..4].copy_from_slice(&lock.l_whence.to_le_bytes());
        raw[8..16].copy_from_slice(&lock.l_start.to_le_bytes());
        raw[16..24].copy_from_slice(&lock.l_len.to_le_bytes());
        raw[24..28].copy_from_slice(&lock.l_pid.to_le_bytes());
        write_guest(ram, a[2], &raw)?;
    }
    Ok(0)
}

/// The file opcodes; anything else is ENOSYS.
pub(super) fn handle(
    ram: &GuestRam,
    files: &Files,
    op: Opcode,
    request: &Request,
) -> Result<i64, i64> {
    let a = request.args;
    let dirfd = a[0] as i64;
    match op {
        Opcode::OpenAt => files.open(dirfd, &guest_string(ram, a[1])?, a[2] as i32, a[3] as u32),
        Opcode::Close => files.close(a[0] as i64),
        Opcode::StatAt => {
            let path = guest_string(ram, a[1])?;
            // Check the destination before doing anything.
            ram.slice(a[2], STAT_SIZE)?;
            let mut stat = host::fs::zeroed_stat();
            files.stat_at(dirfd, &path, a[3] as i32, &mut stat)?;
            write_guest(ram, a[2], &host::fs::stat_bytes(&stat))?;
            Ok(0)
        }
        Opcode::GetDents => {
            let buffer = ram.slice(a[1], a[2])?;
            if let Some(entries) = files.synthetic_entries(a[0], buffer.len().min(1 << 20))? {
                write_guest(ram, a[1], &entries)?;
                return Ok(entries.len() as i64);
            }
            let held = files.host_fd(a[0])?;
            // At most 1 MiB of entries a call, however large the buffer.
            let buffer = buffer
                .subslice(0, buffer.len().min(1 << 20))
                .map_err(|_| EFAULT)?;
            host::fs::getdents64(held.as_fd(), &buffer).map(|done| done as i64)
        }
        Opcode::MkdirAt => files.mkdir(dirfd, &guest_string(ram, a[1])?, a[2] as u32),
        Opcode::MknodAt => files.mknod(dirfd, &guest_string(ram, a[1])?, a[2] as u32),
        Opcode::UnlinkAt => files.unlink(dirfd, &guest_string(ram, a[1])?, a[2] as i32),
        Opcode::RenameAt => {
            let (old, new) = path_pair(ram, a)?;
            files.rename(dirfd, &old, a[2] as i64, &new, a[4] as u32)
        }
        Opcode::ReadlinkAt => {
            let path = guest_string(ram, a[1])?;
            let size = a[3].min(PATH_MAX) as usize;
            let mut target = vec![0u8; size];
            let len = files.readlink(dirfd, &path, &mut target)?;
            write_guest(ram, a[2], &target[..len as usize])?;
            Ok(len)
        }
        Opcode::SymlinkAt => files.symlink(
            &guest_string(ram, a[0])?,
            a[1] as i64,
            &guest_string(ram, a[2])?,
        ),
        Opcode::AccessAt => {
            files.access(dirfd, &guest_string(ram, a[1])?, a[2] as i32, a[3] as i32)
        }
        Opcode::Chdir => {
            let path = optional_path(ram, a[0])?;
            files.chdir(path.as_deref(), a[1] as i64)
        }
        Opcode::GetCwd => {
            let cwd = files.getcwd(a[1])?;
            write_guest(ram, a[0], &cwd)?;
            Ok(cwd.len() as i64)
        }
        Opcode::Dup => files.dup(a[0] as i64, a[1] as i64, a[2] as i32),
        Opcode::Fcntl if atoll_abi::linux::fcntl::is_record_lock(a[1]) => {
            record_lock(ram, files, a)
        }
        Opcode::Fcntl => files.fcntl(a[0] as i64, a[1] as i32, a[2]),
        Opcode::CloseRange => files.close_range(a[0], a[1], a[2] != 0),
        // A negative length keeps its bits, for the host kernel to refuse.
        Opcode::Ftruncate => rustix::fs::ftruncate(&*files.host_fd(a[0])?, a[1])
            .map(|()| 0)
            .map_err(errno),
        Opcode::Fsync if a[1] == 2 => {
            files.sync_mounts();
            Ok(0)
        }
        Opcode::Fsync => {
            let held = files.host_fd(a[0])?;
            let synced = if a[1] == 1 {
                rustix::fs::fdatasync(&*held)
            } else {
                rustix::fs::fsync(&*held)
            };
            synced.map(|()| 0).map_err(errno)
        }
        Opcode::Pipe => {
            ram.slice(a[0], 8)?;
            let [read, write] = files.pipe(a[1] as i32)?;
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&read.to_le_bytes());
            bytes[4..].copy_from_slice(&write.to_le_bytes());
            write_guest(ram, a[0], &bytes)?;
            Ok(0)
        }
        Opcode::Pread | Opcode::Pwrite => {
            let buffer = ram.slice(a[1], a[2])?;
            let offset = a[3] as i64;
            if offset < 0 {
                return Err(EINVAL);
            }
            let held = files.host_fd(a[0])?;
            let done = if op == Opcode::Pread {
                host::fs::pread(held.as_fd(), &buffer, offset)
            } else {
                host::fs::pwrite(held.as_fd(), &buffer, offset)
            };
            done.map(|done| done as i64)
        }
        Opcode::Umask => Ok(files.umask(a[0] as u32)),
        Opcode::FdLimit => Ok(files.set_fd_limit(a[0])),
        Opcode::Chmod => {
            let path = optional_path(ram, a[1])?;
            files.chmod(dirfd, path.as_deref(), a[2] as u32)
        }
        Opcode::UtimensAt => {
            let path = optional_path(ram, a[1])?;
            let times = if a[2] == 0 {
                None
            } else {
                let words: [i64; 4] = [0, 8, 16, 24].map(|offset| {
                    ram.memory()
                        .read_obj::<i64>(GuestAddress(a[2].wrapping_add(offset)))
                        .unwrap_or(i64::MIN)
                });
                if words.contains(&i64::MIN) {
                    return Err(EFAULT);
                }
                Some([
                    libc::timespec {
                        tv_sec: words[0],
                        tv_nsec: words[1],
                    },
                    libc::timespec {
                        tv_sec: words[2],
                        tv_nsec: words[3],
                    },
                ])
            };
            files.utimens(dirfd, path.as_deref(), times, a[3] as i32)
        }
        Opcode::StatFs => {
            // statfs(path), or fstatfs(fd) without one.
            let path = optional_path(ram, a[0])?;
            let statfs = match path {
                Some(path) => {
                    let target = files.open_path(i64::from(AT_FDCWD_INT), &path, true, true)?;
                    host::fs::fstatfs(target.as_fd())?
                }
                None => host::fs::fstatfs(files.host_fd(a[2])?.as_fd())?,
            };
            write_guest(ram, a[1], &statfs)?;
            Ok(0)
        }
        Opcode::Statx => {
            let path = guest_string(ram, a[1])?;
            let flags = a[2] as i32;
            ram.slice(a[4], host::fs::STATX_SIZE as u64)?;
            let mask = a[3] as u32;
            let buffer = if path.is_empty()
                && flags & libc::AT_EMPTY_PATH != 0
                && dirfd as i32 != libc::AT_FDCWD
            {
                host::fs::statx(files.host_fd(a[0])?.as_fd(), flags, mask)?
            } else {
                let target = if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
                    "."
                } else {
                    path.as_str()
                };
                let fd =
                    files.open_path(dirfd, target, flags & libc::AT_SYMLINK_NOFOLLOW == 0, true)?;
                host::fs::statx(fd.as_fd(), flags, mask)?
            };
            write_guest(ram, a[4], &buffer)?;
            Ok(0)
        }
        Opcode::Flock => host::fs::flock(files.host_fd(a[0])?.as_fd(), a[1] as i32),
        // Offsets keep their bits, for the host kernel to refuse a negative one.
        Opcode::Fallocate => rustix::fs::fallocate(
            &*files.host_fd(a[0])?,
            rustix::fs::FallocateFlags::from_bits_retain(a[1] as u32),
            a[2],
            a[3],
        )
        .map(|()| 0)
        .map_err(errno),
        Opcode::Chown => files.chown(
            dirfd,
            optional_path(ram, a[1])?.as_deref(),
            a[2] as u32,
            a[3] as u32,
            a[4] as i32,
        ),
        Opcode::LinkAt => {
            let (old, new) = path_pair(ram, a)?;
            files.link(dirfd, &old, a[2] as i64, &new, a[4] as i32)
        }
        _ => Err(ENOSYS),
    }
}

pub(crate) fn read_guest(ram: &GuestRam, address: u64, len: usize) -> Result<Vec<u8>, i64> {
    let mut bytes = vec![0u8; len];
    ram.memory()
        .read_slice(&mut bytes, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::MountSpec;
    use atoll_abi::linux::errno::{EBADF, ENOENT, EROFS};
    use atoll_abi::linux::AT_FDCWD;

    const RAM: u64 = 2 << 20;

    fn setup(read_only: bool) -> (GuestRam, Files, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "atoll-fileops-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), b"contents").unwrap();
        let files = Files::new(
            &[MountSpec {
                host: dir.clone(),
                guest: "/m".into(),
                read_only,
                keep_owners: false,
            }],
            "/m",
        )
        .unwrap();
        (GuestRam::new(RAM).unwrap(), files, dir)
    }

    fn put_string(ram: &GuestRam, address: u64, text: &str) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        ram.memory()
            .write_slice(&bytes, GuestAddress(address))
            .unwrap();
    }

    fn request(args: [u64; 6]) -> Request {
        Request {
            opcode: 0,
            flags: 0,
            tag: 0,
            args,
        }
    }

    /// The file family's handler alone: other families' opcodes are
    /// ENOSYS here (the dispatch never sends them).
    fn run(ram: &GuestRam, files: &Files, op: Opcode, args: [u64; 6]) -> Result<i64, i64> {
        handle(ram, files, op, &request(args))
    }

    #[test]
    fn sync_flushes_each_filesystem_of_the_mounts_once() {
        let (ram, files, dir) = setup(false);
        assert_eq!(run(&ram, &files, Opcode::Fsync, [0, 2, 0, 0, 0, 0]), Ok(0));
        assert_eq!(files.sync_mounts(), 1);
        // Two mounts of one filesystem are synced once; another
        // filesystem (the proc of /proc, if it is mounted) once more.
        let mount = |host: &std::path::Path, guest: &str| MountSpec {
            host: host.to_path_buf(),
            guest: guest.into(),
            read_only: true,
            keep_owners: false,
        };
        let two_of_one = Files::new(&[mount(&dir, "/a"), mount(&dir, "/b")], "/a").unwrap();
        assert_eq!(two_of_one.sync_mounts(), 1);
        let proc = std::path::Path::new("/proc");
        if proc.join("self").exists() {
            let two = Files::new(&[mount(&dir, "/a"), mount(proc, "/p")], "/a").unwrap();
            assert_eq!(two.sync_mounts(), 2);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn paths_outside_guest_memory_or_unterminated_are_refused() {
        let (ram, files, _) = setup(false);
        assert_eq!(
            run(&ram, &files, Opcode::OpenAt, [AT_FDCWD, RAM, 0, 0, 0, 0]),
            Err(EFAULT)
        );
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::OpenAt,
                [AT_FDCWD, u64::MAX - 3, 0, 0, 0, 0]
            ),
            Err(EFAULT)
        );
        // A "path" running into the end of RAM without a NUL.
        ram.memory()
            .write_slice(&[b'a'; 16], GuestAddress(RAM - 16))
            .unwrap();
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::OpenAt,
                [AT_FDCWD, RAM - 16, 0, 0, 0, 0]
            ),
            Err(EFAULT)
        );
        // Longer than PATH_MAX.
        ram.memory()
            .write_slice(&vec![b'x'; 5000], GuestAddress(0x1000))
            .unwrap();
        assert_eq!(
            run(&ram, &files, Opcode::OpenAt, [AT_FDCWD, 0x1000, 0, 0, 0, 0]),
            Err(ENAMETOOLONG)
        );
    }

    #[test]
    fn fds_never_issued_are_ebadf() {
        let (ram, files, _) = setup(false);
        for fd in [3u64, 1023, 1024, u64::MAX, 1 << 40] {
            assert_eq!(
                run(&ram, &files, Opcode::Close, [fd, 0, 0, 0, 0, 0]),
                Err(EBADF),
                "{fd}"
            );
            assert_eq!(
                run(&ram, &files, Opcode::GetDents, [fd, 0x1000, 64, 0, 0, 0]),
                Err(EBADF),
                "{fd}"
            );
            assert_eq!(
                run(&ram, &files, Opcode::Pread, [fd, 0x1000, 64, 0, 0, 0]),
                Err(EBADF),
                "{fd}"
            );
            assert_eq!(
                run(&ram, &files, Opcode::Dup, [fd, u64::MAX, 0, 0, 0, 0]),
                Err(EBADF),
                "{fd}"
            );
        }
        put_string(&ram, 0x2000, "file");
        assert_eq!(
            run(&ram, &files, Opcode::OpenAt, [77, 0x2000, 0, 0, 0, 0]),
            Err(EBADF)
        );
    }

    #[test]
    fn buffers_are_bounds_checked_before_use() {
        let (ram, files, _) = setup(false);
        put_string(&ram, 0x2000, "file");
        let fd = run(&ram, &files, Opcode::OpenAt, [AT_FDCWD, 0x2000, 0, 0, 0, 0]).unwrap() as u64;
        assert_eq!(
            run(&ram, &files, Opcode::Pread, [fd, RAM - 4, 64, 0, 0, 0]),
            Err(EFAULT)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Pread, [fd, 0x3000, u64::MAX, 0, 0, 0]),
            Err(EFAULT)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Pread, [fd, 0x3000, 8, u64::MAX, 0, 0]),
            Err(EINVAL)
        );
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::StatAt,
                [AT_FDCWD, 0x2000, RAM - 8, 0, 0, 0]
            ),
            Err(EFAULT)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Pipe, [RAM - 4, 0, 0, 0, 0, 0]),
            Err(EFAULT)
        );
        assert_eq!(
            run(&ram, &files, Opcode::GetCwd, [RAM - 1, 64, 0, 0, 0, 0]),
            Err(EFAULT)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Pread, [fd, 0x3000, 8, 0, 0, 0]),
            Ok(8)
        );
        let mut bytes = [0u8; 8];
        ram.memory()
            .read_slice(&mut bytes, GuestAddress(0x3000))
            .unwrap();
        assert_eq!(&bytes, b"contents");
    }

    #[test]
    fn record_locks_and_close_range_check_what_the_guest_gives() {
        use atoll_abi::linux::fcntl::{F_GETLK, F_SETLK};
        let (ram, files, _) = setup(false);
        put_string(&ram, 0x2000, "file");
        let fd = run(&ram, &files, Opcode::OpenAt, [AT_FDCWD, 0x2000, 2, 0, 0, 0]).unwrap() as u64;
        for address in [RAM - 8, u64::MAX - 4, RAM] {
            assert_eq!(
                run(&ram, &files, Opcode::Fcntl, [fd, F_GETLK, address, 0, 0, 0]),
                Err(EFAULT),
                "{address:#x}"
            );
        }
        // A write lock over the whole file, then asked about from the same
        // process: POSIX says unlocked, and the answer lands in guest memory.
        let mut lock = [0u8; 32];
        lock[0..2].copy_from_slice(&(libc::F_WRLCK as i16).to_le_bytes());
        ram.memory()
            .write_slice(&lock, GuestAddress(0x3000))
            .unwrap();
        assert_eq!(
            run(&ram, &files, Opcode::Fcntl, [fd, F_SETLK, 0x3000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Fcntl, [fd, F_GETLK, 0x3000, 0, 0, 0]),
            Ok(0)
        );
        ram.memory()
            .read_slice(&mut lock, GuestAddress(0x3000))
            .unwrap();
        assert_eq!(i16::from_le_bytes([lock[0], lock[1]]), libc::F_UNLCK as i16);
        lock[0..2].copy_from_slice(&99i16.to_le_bytes());
        ram.memory()
            .write_slice(&lock, GuestAddress(0x3000))
            .unwrap();
        assert_eq!(
            run(&ram, &files, Opcode::Fcntl, [fd, F_SETLK, 0x3000, 0, 0, 0]),
            Err(EINVAL)
        );
        // Ranges past any fd, reversed or huge, close nothing they must not.
        for (first, last) in [
            (1 << 40, u64::MAX),
            (u64::MAX, u64::MAX),
            (fd + 1, u64::MAX),
        ] {
            assert_eq!(
                run(&ram, &files, Opcode::CloseRange, [first, last, 0, 0, 0, 0]),
                Ok(0)
            );
        }
        assert_eq!(
            run(&ram, &files, Opcode::Fcntl, [fd, F_GETLK, 0x3000, 0, 0, 0]),
            Err(EINVAL),
            "the fd is still open (the lock type is still bad)"
        );
        assert_eq!(
            run(&ram, &files, Opcode::CloseRange, [fd, u64::MAX, 0, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Fcntl, [fd, F_GETLK, 0x3000, 0, 0, 0]),
            Err(EBADF)
        );
    }

    #[test]
    fn escapes_and_read_only_writes_are_refused() {
        let (ram, files, dir) = setup(true);
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        for path in [
            "../../etc/passwd",
            "/etc/passwd",
            "link",
            "/proc/self/root/etc/passwd",
        ] {
            put_string(&ram, 0x2000, path);
            assert_eq!(
                run(&ram, &files, Opcode::OpenAt, [AT_FDCWD, 0x2000, 0, 0, 0, 0]),
                Err(ENOENT),
                "{path}"
            );
        }
        put_string(&ram, 0x2000, "file");
        put_string(&ram, 0x2100, "renamed");
        let write = libc::O_WRONLY as u64;
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::OpenAt,
                [AT_FDCWD, 0x2000, write, 0, 0, 0]
            ),
            Err(EROFS)
        );
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::UnlinkAt,
                [AT_FDCWD, 0x2000, 0, 0, 0, 0]
            ),
            Err(EROFS)
        );
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::RenameAt,
                [AT_FDCWD, 0x2000, AT_FDCWD, 0x2100, 0, 0]
            ),
            Err(EROFS)
        );
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::MkdirAt,
                [AT_FDCWD, 0x2100, 0o755, 0, 0, 0]
            ),
            Err(EROFS)
        );
        assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"contents");
    }

    #[test]
    fn unknown_opcodes_and_flags_are_refused() {
        let (ram, files, _) = setup(false);
        // Unknown numbers stop at the dispatch; another family's opcode
        // is no file operation.
        assert_eq!(run(&ram, &files, Opcode::Socket, [0; 6]), Err(ENOSYS));
        put_string(&ram, 0x2000, "file");
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::OpenAt,
                [AT_FDCWD, 0x2000, 1 << 30, 0, 0, 0]
            ),
            Err(EINVAL)
        );
        assert_eq!(
            run(&ram, &files, Opcode::Pipe, [0x3000, 0xffff, 0, 0, 0, 0]),
            Err(EINVAL)
        );
        assert_eq!(
            run(
                &ram,
                &files,
                Opcode::UnlinkAt,
                [AT_FDCWD, 0x2000, 0x1, 0, 0, 0]
            ),
            Err(EINVAL)
        );
    }

    /// Random requests over random memory: the server must never panic,
    /// answer only Linux-style results, and keep to its mount.
    #[test]
    fn random_requests_never_panic_or_escape() {
        let (ram, files, dir) = setup(false);
        files.stdio_to_dev_null();
        let outside = dir.with_extension("outside");
        std::fs::write(&outside, b"untouched").unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Some plausible strings, so paths get past decoding.
        for (index, text) in ["file", "..", "/", "sub/x", "../outside", "/m/file", "a/b/c"]
            .iter()
            .enumerate()
        {
            put_string(&ram, 0x10000 + index as u64 * 64, text);
        }
        for _ in 0..20_000 {
            let Ok(op) = Opcode::try_from((next() % 40) as u32) else {
                continue;
            };
            let mut args = [0u64; 6];
            for arg in &mut args {
                *arg = match next() % 6 {
                    0 => next(),
                    1 => next() % 8,
                    2 => 0x10000 + (next() % 7) * 64,
                    3 => AT_FDCWD,
                    4 => RAM - (next() % 64),
                    _ => next() % RAM,
                };
            }
            // Skip what would block or hang the test host itself.
            if matches!(op, Opcode::Fsync) {
                continue;
            }
            let bytes: [u8; 8] = next().to_le_bytes();
            let _ = ram
                .memory()
                .write_slice(&bytes, GuestAddress(next() % (RAM - 8)));
            if let Err(errno) = run(&ram, &files, op, args) {
                assert!((1..4096).contains(&errno), "op {op:?} gave errno {errno}");
            }
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"untouched");
        let _ = std::fs::remove_file(&outside);
    }
}
