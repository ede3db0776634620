//! MAP_SHARED file mappings. The host maps the file's pages over the
//! guest's range of guest RAM's own host mapping (MAP_FIXED); KVM follows
//! host mapping changes through its MMU notifiers, so the guest then reads
//! and writes the file's page cache, as every other opener of the file does.
//! munmap puts private anonymous memory back. Only the heap (the window the
//! isle sets) can be remapped, never the image, stack or system area.
//!
//! Under QEMU, QEMU maps guest RAM (a memfd) on its own, so a change to
//! atoll's mapping would never reach the guest. There, files of the
//! isle's private /dev/shm and /tmp (which nothing else can open; /dev/shm
//! holds what shm_open and sem_open make) are copied in at map time and
//! written back at msync, munmap, mremap and before the file is mapped
//! again; other files are ENODEV.
//!
//! The remapping itself is guest RAM's ([`GuestRam::map_file`] and its
//! neighbours); this keeps the table of what shows where and checks what
//! the guest asks for.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use atoll_abi::layout::PAGE_SIZE;
use atoll_abi::linux::errno::{EACCES, EINVAL, EIO, ENODEV, ENOMEM, EOVERFLOW};
use atoll_abi::queue::{Opcode, Request};
use rustix::mm::MsyncFlags;

use crate::guest::memory::{FilePages, GuestRam};
use crate::host::positioned_io;
use crate::sandbox::Files;

/// Most file mappings at once: each is a host VMA (and the host allows
/// 65,530 per process).
const MAX_MAPPINGS: usize = 4096;
const MS_FLAGS: i32 = libc::MS_ASYNC | libc::MS_SYNC | libc::MS_INVALIDATE;

/// How a guest range shows its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    /// The file's pages, MAP_SHARED.
    Shared,
    /// The file's pages, MAP_PRIVATE: for fds that may not be written. It
    /// still shows other openers' writes, as long as the guest doesn't
    /// write (which Linux would refuse).
    ReadOnly,
    /// A copy in guest RAM, written back at msync and munmap (QEMU).
    Copy,
}

/// One guest range showing a file.
struct Mapping {
    start: u64,
    end: u64,
    /// Kept for mremap and write-back (the guest may close its fd).
    fd: Arc<OwnedFd>,
    /// File offset of `start`.
    offset: u64,
    view: View,
}

#[derive(Default)]
struct State {
    /// Guest addresses that may be remapped: the heap.
    window: (u64, u64),
    mappings: Vec<Mapping>,
}

/// The file-backed ranges of one guest RAM.
pub struct FileMappings {
    remappable: bool,
    state: Mutex<State>,
}

impl FileMappings {
    /// `remappable`: the guest runs on the host mapping we change (KVM).
    pub fn new(remappable: bool) -> Self {
        Self {
            remappable,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets guest `[start, end)` be remapped; nothing can be until this is set.
    pub fn set_window(&self, start: u64, end: u64) {
        self.lock().window = (start, end);
    }

    /// Runs `f` (and returns its result) unless a file shows somewhere in
    /// `[start, start + len)`; 0 then. No mapping changes meanwhile.
    pub fn unless_mapped(&self, start: u64, len: u64, f: impl FnOnce() -> i32) -> i32 {
        let state = self.lock();
        let end = start.saturating_add(len);
        if state
            .mappings
            .iter()
            .any(|m| m.view != View::Copy && m.start < end && start < m.end)
        {
            return 0;
        }
        f()
    }

    /// Held while the process forks, so no other thread holds it then.
    pub fn hold_for_fork(&self) -> impl Drop + '_ {
        self.lock()
    }

    /// How many ranges show files.
    pub fn count(&self) -> usize {
        self.lock().mappings.len()
    }
}

/// Performs a MAP_FILE, UNMAP_FILE, MSYNC, REMAP_FILE or MAP_PRIVATE_FILE request.
pub fn handle(ram: &GuestRam, files: &Files, op: Opcode, request: &Request) -> Result<i64, i64> {
    let a = request.args;
    match op {
        Opcode::MapFile => map(ram, files, a),
        Opcode::UnmapFile => {
            let range = checked_range(ram, a[0], a[1])?;
            let mut state = ram.file_mappings().lock();
            forget(ram, &mut state, range)
        }
        Opcode::Msync => msync(ram, a),
        Opcode::RemapFile => remap(ram, a),
        Opcode::MapPrivateFile => map_private(ram, files, a),
        Opcode::MapSharedMemory => map_shared_memory(ram, a),
        _ => Err(EINVAL),
    }
}

/// `[address, address + len)`, page-aligned, non-empty, inside the window.
fn checked_range(ram: &GuestRam, address: u64, len: u64) -> Result<(u64, u64), i64> {
    let end = address.checked_add(len).ok_or(EINVAL)?;
    let (low, high) = ram.file_mappings().lock().window;
    let aligned = address.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE);
    if !aligned || len == 0 || address < low || end > high || end > ram.size() {
        return Err(EINVAL);
    }
    Ok((address, end))
}

/// Shows `fd` from `offset` at guest `[start, end)`. On failure the range
/// holds private memory (a failed MAP_FIXED may leave a hole, which the
/// guest must never find).
fn show(
    ram: &GuestRam,
    (start, end): (u64, u64),
    fd: &OwnedFd,
    offset: u64,
    view: View,
) -> Result<(), i64> {
    let len = end - start;
    let pages = match view {
        View::Shared => FilePages::Shared,
        View::ReadOnly => FilePages::Private,
        View::Copy => return copy_in(ram, (start, end), fd, offset),
    };
    ram.map_file(start, len, fd.as_fd(), offset, pages)
}

/// Zeros for filling guest RAM past a copied file's end.
const ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// Reads the file into guest `[start, end)`, zeros past its end.
fn copy_in(ram: &GuestRam, (start, end): (u64, u64), fd: &OwnedFd, offset: u64) -> Result<(), i64> {
    let range = ram.slice(start, end - start).map_err(|_| EINVAL)?;
    let mut done = 0usize;
    while done < range.len() {
        let rest = range.offset(done).map_err(|_| EINVAL)?;
        match positioned_io::pread(fd.as_fd(), &rest, offset + done as u64)? {
            0 => break,
            read => done += read,
        }
    }
    while done < range.len() {
        let rest = range.offset(done).map_err(|_| EINVAL)?;
        rest.copy_from(&ZEROS);
        done += rest.len().min(ZEROS.len());
    }
    Ok(())
}

fn file_stat(fd: &OwnedFd) -> Result<rustix::fs::Stat, i64> {
    rustix::fs::fstat(fd).map_err(|error| i64::from(error.raw_os_error()))
}

/// Writes a copied range back to its file, up to the file's end (a
/// mapping may reach past it; writing there would grow the file).
fn write_back(ram: &GuestRam, mapping: &Mapping) -> Result<(), i64> {
    let size = file_stat(&mapping.fd)?.st_size.max(0) as u64;
    let len = (mapping.end - mapping.start).min(size.saturating_sub(mapping.offset));
    let range = ram.slice(mapping.start, len).map_err(|_| EINVAL)?;
    let mut done = 0usize;
    while done < range.len() {
        let rest = range.offset(done).map_err(|_| EINVAL)?;
        match positioned_io::pwrite(mapping.fd.as_fd(), &rest, mapping.offset + done as u64)? {
            // Nothing written, and no errno to say why.
            0 => return Err(EIO),
            written => done += written,
        }
    }
    Ok(())
}

/// mmap(MAP_PRIVATE) of guest fd `a[0]`: its bytes from offset `a[3]`
/// copied into guest `[a[1], a[1] + a[2])`, zeros past its end. Returns
/// the file's name in the memory map.
fn map_private(ram: &GuestRam, files: &Files, a: [u64; 6]) -> Result<i64, i64> {
    let [fd, address, len, offset, ..] = a;
    let range = checked_range(ram, address, len)?;
    if !offset.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let (held, _) = files.mappable_fd(fd)?;
    let kind = file_stat(&held)?.st_mode & libc::S_IFMT;
    // Pipes, sockets, directories can't be mapped; /dev/zero reads zeros.
    if kind != libc::S_IFREG && kind != libc::S_IFCHR && kind != libc::S_IFBLK {
        return Err(ENODEV);
    }
    match copy_in(ram, range, &held, offset) {
        Err(errno) if errno == i64::from(libc::ESPIPE) => return Err(ENODEV),
        result => result?,
    }
    Ok(i64::from(files.name_mapped_fd(fd)?))
}

/// mmap(MAP_SHARED) of guest fd `a[0]` over guest `[a[1], a[1] + a[2])`
/// with protection `a[3]`, from file offset `a[4]`.
fn map(ram: &GuestRam, files: &Files, a: [u64; 6]) -> Result<i64, i64> {
    let [fd, address, len, prot, offset, _] = a;
    let range = checked_range(ram, address, len)?;
    if !offset.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    if offset
        .checked_add(len)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(EOVERFLOW);
    }
    let (held, writable) = files.mappable_fd(fd)?;
    if prot & libc::PROT_WRITE as u64 != 0 && !writable {
        return Err(EACCES);
    }
    let stat = file_stat(&held)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        // Pipes, sockets, directories, devices: Linux can't map most, and
        // what it can (/dev/zero) needs no file here.
        return Err(ENODEV);
    }
    let view = match (ram.file_mappings().remappable, writable) {
        (true, true) => View::Shared,
        (true, false) => View::ReadOnly,
        // Only the isle itself can see its private /dev/shm and /tmp, so
        // a copy written back keeps what shm_open and sem_open users rely on.
        (false, _) if files.in_private_dir(fd) => View::Copy,
        (false, _) => return Err(ENODEV),
    };
    let mut state = ram.file_mappings().lock();
    if state.mappings.len() >= MAX_MAPPINGS {
        return Err(ENOMEM);
    }
    // MAP_FIXED replaces: what showed there before is gone (the kernel
    // has already unmapped it; this only keeps the table true).
    forget_entries(&mut state, range);
    if view == View::Copy {
        // Other copies of the file go back first, so this one starts
        // with what they wrote.
        for other in state.mappings.iter().filter(|m| m.view == View::Copy) {
            let same = file_stat(&other.fd)
                .is_ok_and(|it| (it.st_dev, it.st_ino) == (stat.st_dev, stat.st_ino));
            if same {
                write_back(ram, other)?;
            }
        }
    }
    show(ram, range, &held, offset, view)?;
    insert(
        &mut state,
        Mapping {
            start: range.0,
            end: range.1,
            fd: held,
            offset,
            view,
        },
    );
    let name = files.name_mapped_fd(fd)?;
    Ok(i64::from(name) << 1 | i64::from(writable))
}

/// mmap(MAP_SHARED | MAP_ANONYMOUS) over guest `[a[0], a[0] + a[1])`: a
/// new memfd of that size shown there, MAP_SHARED, so the forks of this
/// process (which keep the host's shared mappings) share its pages.
fn map_shared_memory(ram: &GuestRam, a: [u64; 6]) -> Result<i64, i64> {
    let [address, len, ..] = a;
    let range = checked_range(ram, address, len)?;
    if !ram.file_mappings().remappable {
        return Err(ENODEV);
    }
    let errno = |error: rustix::io::Errno| i64::from(error.raw_os_error());
    // Linux names such memory /dev/zero, deleted.
    let memory =
        rustix::fs::memfd_create("dev/zero", rustix::fs::MemfdFlags::CLOEXEC).map_err(errno)?;
    rustix::fs::ftruncate(&memory, len).map_err(errno)?;
    let mut state = ram.file_mappings().lock();
    if state.mappings.len() >= MAX_MAPPINGS {
        return Err(ENOMEM);
    }
    forget_entries(&mut state, range);
    show(ram, range, &memory, 0, View::Shared)?;
    insert(
        &mut state,
        Mapping {
            start: range.0,
            end: range.1,
            fd: Arc::new(memory),
            offset: 0,
            view: View::Shared,
        },
    );
    Ok(0)
}

fn insert(state: &mut State, mapping: Mapping) {
    let at = state.mappings.partition_point(|m| m.start < mapping.start);
    state.mappings.insert(at, mapping);
}

/// Takes `range` out of the table, keeping what lies beside it; returns
/// the pieces taken out.
fn forget_entries(state: &mut State, (start, end): (u64, u64)) -> Vec<Mapping> {
    let mut dropped = Vec::new();
    let mut kept = Vec::with_capacity(state.mappings.len() + 1);
    for mapping in state.mappings.drain(..) {
        if mapping.end <= start || end <= mapping.start {
            kept.push(mapping);
            continue;
        }
        let piece = |from: u64, to: u64| Mapping {
            start: from,
            end: to,
            fd: Arc::clone(&mapping.fd),
            offset: mapping.offset + (from - mapping.start),
            view: mapping.view,
        };
        dropped.push(piece(mapping.start.max(start), mapping.end.min(end)));
        if mapping.start < start {
            kept.push(piece(mapping.start, start));
        }
        if end < mapping.end {
            kept.push(piece(end, mapping.end));
        }
    }
    kept.sort_by_key(|m| m.start);
    state.mappings = kept;
    dropped
}

/// Takes the files shown in `range` away: copies are written back, the
/// file's pages give way to private memory.
fn forget(ram: &GuestRam, state: &mut State, range: (u64, u64)) -> Result<i64, i64> {
    let mut result = Ok(0);
    for piece in forget_entries(state, range) {
        let done = match piece.view {
            View::Copy => write_back(ram, &piece),
            View::Shared | View::ReadOnly => {
                ram.restore_anonymous(piece.start, piece.end - piece.start)
            }
        };
        if let Err(errno) = done {
            result = Err(errno);
        }
    }
    result
}

fn msync(ram: &GuestRam, a: [u64; 6]) -> Result<i64, i64> {
    let [address, len, flags, ..] = a;
    let flags = i32::try_from(flags).map_err(|_| EINVAL)?;
    if flags & !MS_FLAGS != 0 || flags & libc::MS_ASYNC != 0 && flags & libc::MS_SYNC != 0 {
        return Err(EINVAL);
    }
    let sync_flags = MsyncFlags::from_bits_retain(flags as u32);
    let (start, end) = checked_range(ram, address, len)?;
    let state = ram.file_mappings().lock();
    for mapping in &state.mappings {
        let (from, to) = (mapping.start.max(start), mapping.end.min(end));
        if from >= to {
            continue;
        }
        match mapping.view {
            View::Shared => ram.sync_file_pages(from, to - from, sync_flags)?,
            View::Copy => {
                let piece = Mapping {
                    start: from,
                    end: to,
                    fd: Arc::clone(&mapping.fd),
                    offset: mapping.offset + (from - mapping.start),
                    view: View::Copy,
                };
                write_back(ram, &piece)?;
            }
            View::ReadOnly => {}
        }
    }
    Ok(0)
}

/// mremap: the file that showed at `old` shows at `[new, new + new_len)`.
fn remap(ram: &GuestRam, a: [u64; 6]) -> Result<i64, i64> {
    let [old, old_len, new, new_len, ..] = a;
    let old_range = checked_range(ram, old, old_len)?;
    let new_range = checked_range(ram, new, new_len)?;
    let mut state = ram.file_mappings().lock();
    let (fd, offset, view) = state
        .mappings
        .iter()
        .find(|m| m.start <= old_range.0 && old_range.1 <= m.end)
        .map(|m| (Arc::clone(&m.fd), m.offset + (old - m.start), m.view))
        .ok_or(EINVAL)?;
    if offset
        .checked_add(new_len)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(EOVERFLOW);
    }
    if view == View::Copy {
        // The copy moves through the file: written back, read in again.
        forget(ram, &mut state, old_range)?;
    }
    forget_entries(&mut state, new_range);
    show(ram, new_range, &fd, offset, view)?;
    // What is left of the old range (outside the new one) becomes
    // private memory.
    forget(ram, &mut state, old_range)?;
    insert(
        &mut state,
        Mapping {
            start: new_range.0,
            end: new_range.1,
            fd,
            offset,
            view,
        },
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_abi::linux::errno::{EBADF, EROFS};
    use std::os::unix::fs::FileExt;
    use vm_memory::{Bytes, GuestAddress};

    const RAM: u64 = 8 << 20;
    const WINDOW: (u64, u64) = (2 << 20, 6 << 20);
    const AT_FDCWD: i64 = atoll_abi::linux::AT_FDCWD_INT as i64;
    const PROT_RW: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;

    struct Isle {
        ram: GuestRam,
        files: Files,
        dir: std::path::PathBuf,
    }

    impl Drop for Isle {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Guest RAM with the window set, a writable mount /data and a
    /// read-only one /ro, each holding `file` ("initial" and two pages).
    fn isle(remappable: bool, label: &str) -> Isle {
        let dir =
            std::env::temp_dir().join(format!("atoll-file-mapping-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut contents = vec![b'.'; 2 * PAGE_SIZE as usize];
        contents[..7].copy_from_slice(b"initial");
        for sub in ["rw", "ro", "shm"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            std::fs::write(dir.join(sub).join("file"), &contents).unwrap();
        }
        let spec = |sub: &str, guest: &str, read_only| crate::sandbox::MountSpec {
            host: dir.join(sub),
            guest: guest.into(),
            read_only,
            keep_owners: false,
        };
        let mut files = Files::new(
            &[
                spec("rw", "/data", false),
                spec("ro", "/ro", true),
                spec("shm", "/dev/shm", false),
            ],
            "/data",
        )
        .unwrap();
        files.set_private_dirs(&["/dev/shm".into()]);
        let ram = if remappable {
            GuestRam::new(RAM).unwrap()
        } else {
            GuestRam::new_shared(RAM, 0).unwrap().0
        };
        ram.file_mappings().set_window(WINDOW.0, WINDOW.1);
        Isle { ram, files, dir }
    }

    impl Isle {
        fn open(&self, path: &str, flags: i32) -> u64 {
            self.files.open(AT_FDCWD, path, flags, 0).unwrap() as u64
        }

        fn call(&self, op: Opcode, args: [u64; 6]) -> Result<i64, i64> {
            let request = Request {
                opcode: op.as_u32(),
                flags: 0,
                tag: 1,
                args,
            };
            handle(&self.ram, &self.files, op, &request)
        }

        fn read(&self, address: u64, len: usize) -> Vec<u8> {
            let mut bytes = vec![0; len];
            self.ram
                .memory()
                .read_slice(&mut bytes, GuestAddress(address))
                .unwrap();
            bytes
        }
    }

    #[test]
    fn writes_go_both_ways_and_munmap_brings_private_memory_back() {
        let isle = isle(true, "both-ways");
        let fd = isle.open("/data/file", libc::O_RDWR);
        let at = WINDOW.0 + PAGE_SIZE;
        let map = [fd, at, 2 * PAGE_SIZE, PROT_RW, 0, 0];
        assert_eq!(
            isle.call(Opcode::MapFile, map).map(|shown| shown & 1),
            Ok(1)
        );
        assert_eq!(isle.read(at, 7), b"initial");
        // Guest RAM's host mapping is the file's page cache now.
        isle.ram
            .memory()
            .write_slice(b"guest", GuestAddress(at + PAGE_SIZE))
            .unwrap();
        let host = std::fs::File::options()
            .read(true)
            .write(true)
            .open(isle.dir.join("rw/file"))
            .unwrap();
        let mut seen = [0u8; 5];
        host.read_exact_at(&mut seen, PAGE_SIZE).unwrap();
        assert_eq!(&seen, b"guest");
        host.write_all_at(b"host!", 0).unwrap();
        assert_eq!(isle.read(at, 5), b"host!");
        let sync = [at, 2 * PAGE_SIZE, libc::MS_SYNC as u64, 0, 0, 0];
        assert_eq!(isle.call(Opcode::Msync, sync), Ok(0));
        // Half of it goes; that half is zeroed private memory again.
        assert_eq!(
            isle.call(Opcode::UnmapFile, [at, PAGE_SIZE, 0, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(isle.read(at, 5), [0; 5]);
        isle.ram
            .memory()
            .write_slice(b"private", GuestAddress(at))
            .unwrap();
        host.read_exact_at(&mut seen, 0).unwrap();
        assert_eq!(&seen, b"host!");
        assert_eq!(isle.ram.file_mappings().count(), 1);
        assert_eq!(isle.read(at + PAGE_SIZE, 5), b"guest");
    }

    /// A page past the file's end would SIGBUS the monitor reading a guest
    /// string there: it reads zeros instead.
    #[test]
    fn pages_past_the_end_of_the_file_read_as_zeros() {
        let isle = isle(true, "sigbus");
        let fd = isle.open("/data/file", libc::O_RDWR);
        let at = WINDOW.0;
        let map = [fd, at, 4 * PAGE_SIZE, PROT_RW, 0, 0];
        assert_eq!(
            isle.call(Opcode::MapFile, map).map(|shown| shown & 1),
            Ok(1)
        );
        assert_eq!(isle.read(at + 3 * PAGE_SIZE, 4), [0; 4]);
        assert_eq!(isle.read(at, 7), b"initial");
    }

    #[test]
    fn mremap_moves_the_file_and_frees_the_old_range() {
        let isle = isle(true, "mremap");
        let fd = isle.open("/data/file", libc::O_RDWR);
        let (old, new) = (WINDOW.0, WINDOW.0 + (1 << 20));
        let map = [fd, old, PAGE_SIZE, PROT_RW, PAGE_SIZE, 0];
        assert_eq!(
            isle.call(Opcode::MapFile, map).map(|shown| shown & 1),
            Ok(1)
        );
        let remap = [old, PAGE_SIZE, new, 2 * PAGE_SIZE, 0, 0];
        assert_eq!(isle.call(Opcode::RemapFile, remap), Ok(0));
        assert_eq!(isle.read(old, 1), [0]);
        assert_eq!(isle.read(new, 1), b".");
        assert_eq!(isle.ram.file_mappings().count(), 1);
    }

    #[test]
    fn linux_refusals_and_bad_ranges() {
        let isle = isle(true, "refusals");
        let read_only = isle.open("/data/file", libc::O_RDONLY);
        let write_only = isle.open("/data/file", libc::O_WRONLY);
        let on_ro_mount = isle.open("/ro/file", libc::O_RDONLY);
        let fd = isle.open("/data/file", libc::O_RDWR);
        let dir = isle.open("/data", libc::O_RDONLY | libc::O_DIRECTORY);
        let at = WINDOW.0;
        let map = |fd, address, len, prot, offset| {
            isle.call(Opcode::MapFile, [fd, address, len, prot, offset, 0])
        };
        let page = PAGE_SIZE;
        assert_eq!(map(read_only, at, page, PROT_RW, 0), Err(EACCES));
        assert_eq!(map(write_only, at, page, 1, 0), Err(EACCES));
        assert_eq!(map(on_ro_mount, at, page, PROT_RW, 0), Err(EACCES));
        assert_eq!(map(99, at, page, 1, 0), Err(EBADF));
        assert_eq!(map(dir, at, page, 1, 0), Err(ENODEV));
        // Outside the window (the image, the system area, beyond RAM),
        // unaligned, empty, wrapping: nothing is touched.
        for (address, len) in [
            (WINDOW.0 - page, 2 * page),
            (WINDOW.1 - page, 2 * page),
            (RAM, page),
            (at + 1, page),
            (at, page + 1),
            (at, 0),
            (u64::MAX - page + 1, page),
        ] {
            assert_eq!(
                map(fd, address, len, 1, 0),
                Err(EINVAL),
                "{address:#x}+{len:#x}"
            );
            assert_eq!(
                isle.call(Opcode::UnmapFile, [address, len, 0, 0, 0, 0]),
                Err(EINVAL)
            );
            assert_eq!(
                isle.call(Opcode::Msync, [address, len, 0, 0, 0, 0]),
                Err(EINVAL)
            );
        }
        assert_eq!(map(fd, at, page, 1, 1), Err(EINVAL));
        assert_eq!(map(fd, at, page, 1, !(page - 1)), Err(EOVERFLOW));
        assert_eq!(isle.ram.file_mappings().count(), 0);
        // A read-only fd maps read-only (and may never be made writable).
        assert_eq!(map(read_only, at, page, 1, 0).map(|shown| shown & 1), Ok(0));
        assert_eq!(
            map(on_ro_mount, at + page, page, 1, 0).map(|shown| shown & 1),
            Ok(0)
        );
        let both = (libc::MS_SYNC | libc::MS_ASYNC) as u64;
        assert_eq!(
            isle.call(Opcode::Msync, [at, page, both, 0, 0, 0]),
            Err(EINVAL)
        );
        // The mount stays as it was.
        assert_eq!(
            isle.files.open(AT_FDCWD, "/ro/file", libc::O_RDWR, 0),
            Err(EROFS)
        );
        let remap = [at + 3 * page, page, at, page, 0, 0];
        assert_eq!(isle.call(Opcode::RemapFile, remap), Err(EINVAL));
    }

    #[test]
    fn without_kvm_only_private_files_map_as_copies_written_back() {
        let isle = isle(false, "copy");
        let fd = isle.open("/data/file", libc::O_RDWR);
        let at = WINDOW.0;
        let map = |fd| isle.call(Opcode::MapFile, [fd, at, 2 * PAGE_SIZE, PROT_RW, 0, 0]);
        assert_eq!(map(fd), Err(ENODEV));
        let shm = isle.open("/dev/shm/file", libc::O_RDWR);
        assert_eq!(map(shm).map(|shown| shown & 1), Ok(1));
        assert_eq!(isle.read(at, 7), b"initial");
        isle.ram
            .memory()
            .write_slice(b"copied", GuestAddress(at + PAGE_SIZE))
            .unwrap();
        // A second copy starts with what the first wrote.
        let again = isle.open("/dev/shm/file", libc::O_RDONLY);
        let second = [again, at + (1 << 20), PAGE_SIZE, 1, PAGE_SIZE, 0];
        assert_eq!(
            isle.call(Opcode::MapFile, second).map(|shown| shown & 1),
            Ok(0)
        );
        assert_eq!(isle.read(at + (1 << 20), 6), b"copied");
        let sync = [at, 2 * PAGE_SIZE, libc::MS_SYNC as u64, 0, 0, 0];
        assert_eq!(isle.call(Opcode::Msync, sync), Ok(0));
        let file = std::fs::read(isle.dir.join("shm/file")).unwrap();
        assert_eq!(&file[PAGE_SIZE as usize..][..6], b"copied");
        // Past the file's end nothing is written back: the file keeps its size.
        std::fs::File::options()
            .write(true)
            .open(isle.dir.join("shm/file"))
            .unwrap()
            .set_len(PAGE_SIZE)
            .unwrap();
        let unmap = [at, 2 * PAGE_SIZE, 0, 0, 0, 0];
        assert_eq!(isle.call(Opcode::UnmapFile, unmap), Ok(0));
        let file = std::fs::read(isle.dir.join("shm/file")).unwrap();
        assert_eq!(file.len(), PAGE_SIZE as usize);
    }

    #[test]
    fn a_copy_reads_zeros_past_the_file_end() {
        let isle = isle(false, "copy-end");
        let at = WINDOW.0;
        let past_end = at + 2 * PAGE_SIZE;
        isle.ram
            .memory()
            .write_slice(&[7; 2 * PAGE_SIZE as usize], GuestAddress(past_end))
            .unwrap();
        let shm = isle.open("/dev/shm/file", libc::O_RDWR);
        let map = [shm, at, 4 * PAGE_SIZE, PROT_RW, 0, 0];
        assert_eq!(
            isle.call(Opcode::MapFile, map).map(|shown| shown & 1),
            Ok(1)
        );
        assert_eq!(isle.read(at, 7), b"initial");
        assert_eq!(
            isle.read(past_end, 2 * PAGE_SIZE as usize),
            [0; 2 * PAGE_SIZE as usize]
        );
    }
}
