//! /proc/self/maps: the memory map the kernel keeps in guest memory (see
//! `crate::guest::regions`), with the names of the files it shows. The
//! monitor names a file when the isle maps it, and keeps it open, as a
//! Linux VMA holds its file: code mapped from it can still be rewritten
//! when mprotect makes it executable later.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use atoll_abi::regions::{flags, names, Region};

use super::mounts::Files;

/// Most files named at once; past it, mappings show no name.
const MAX_NAMED_FILES: usize = 1024;

struct NamedFile {
    path: String,
    device: u64,
    inode: u64,
    /// None for the images the monitor loaded itself.
    fd: Option<Arc<OwnedFd>>,
}

/// The files the isle's memory shows, by [`Region::name`].
#[derive(Default)]
pub(super) struct NamedFiles {
    files: Mutex<Vec<NamedFile>>,
    /// Guest RAM and the table's guest address, once booting.
    table: Mutex<Option<(Arc<crate::guest::memory::GuestRam>, u64)>>,
}

impl NamedFiles {
    pub(super) fn hold_for_fork(&self) -> impl Drop + '_ {
        self.lock()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<NamedFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name of `file`: the one it already has, a new one, or none
    /// when the table is full.
    fn name(&self, file: NamedFile) -> u32 {
        let mut files = self.lock();
        let same = |known: &NamedFile| {
            (known.device, known.inode) == (file.device, file.inode) && known.path == file.path
        };
        let index = match files.iter().position(same) {
            Some(index) => {
                if files[index].fd.is_none() {
                    files[index].fd = file.fd;
                }
                index
            }
            None if files.len() < MAX_NAMED_FILES => {
                files.push(file);
                files.len() - 1
            }
            None => return names::ANONYMOUS,
        };
        names::FIRST_FILE + index as u32
    }
}

/// A host file's device and inode.
fn identity(fd: &OwnedFd) -> (u64, u64) {
    rustix::fs::fstat(fd).map_or((0, 0), |stat| (stat.st_dev, stat.st_ino))
}

impl Files {
    /// Where the kernel keeps the memory map, in `ram`.
    pub fn set_region_table(&self, ram: Arc<crate::guest::memory::GuestRam>, table: u64) {
        *self.named.table.lock().unwrap_or_else(|e| e.into_inner()) = Some((ram, table));
    }

    /// Names the file guest fd `fd` is, for a mapping of it.
    pub fn name_mapped_fd(&self, fd: u64) -> Result<u32, i64> {
        let (held, path) = {
            let state = self.lock();
            let file = i32::try_from(fd)
                .ok()
                .and_then(|fd| state.fds.get(&fd))
                .ok_or(atoll_abi::linux::errno::EBADF)?;
            let path = match &file.guest_path {
                Some(path) => self.canonical(path),
                None => self.fd_link(&state, fd as i32).unwrap_or_default(),
            };
            (Arc::clone(&file.fd), path)
        };
        let (device, inode) = identity(held.as_ref());
        Ok(self.named.name(NamedFile {
            path,
            device,
            inode,
            fd: Some(held),
        }))
    }

    /// Names an image the monitor loads from the isle's `path`.
    pub fn name_loaded_image(&self, path: &str) -> u32 {
        let mut stat = crate::host::fs::zeroed_stat();
        let (device, inode) = match self.stat_at(i64::from(libc::AT_FDCWD), path, 0, &mut stat) {
            Ok(_) => (stat.st_dev, stat.st_ino),
            Err(_) => (0, 0),
        };
        self.named.name(NamedFile {
            path: self.canonical(path),
            device,
            inode,
            fd: None,
        })
    }

    /// `path` with no symlink on it, as Linux names a mapped file.
    fn canonical(&self, path: &str) -> String {
        let absolute = super::resolve::normalize(path);
        self.expand_symlinks(absolute.clone(), true)
            .unwrap_or(absolute)
    }

    /// The file a mapping named `name` shows, open.
    pub fn named_file(&self, name: u32) -> Option<Arc<OwnedFd>> {
        let index = name.checked_sub(names::FIRST_FILE)? as usize;
        self.named.lock().get(index)?.fd.clone()
    }

    /// /proc/self/maps as Linux writes it.
    pub(super) fn maps_text(&self) -> String {
        let shown = self
            .named
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some((ram, table)) = shown else {
            return String::new();
        };
        let regions = crate::guest::regions::read(ram.memory(), table);
        let files = self.named.lock();
        let mut text = String::new();
        for region in regions {
            let file = region
                .name
                .checked_sub(names::FIRST_FILE)
                .and_then(|index| files.get(index as usize));
            text.push_str(&maps_line(&region, file));
        }
        text
    }
}

/// One line: range, protection, offset, device, inode, then the name from
/// the 74th column, as Linux pads it.
fn maps_line(region: &Region, file: Option<&NamedFile>) -> String {
    let bit = |flag: u32, letter: char| match region.flags & flag != 0 {
        true => letter,
        false => '-',
    };
    let (device, inode) = file.map_or((0, 0), |file| (file.device, file.inode));
    let mut line = format!(
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        region.start,
        region.end,
        bit(flags::READ, 'r'),
        bit(flags::WRITE, 'w'),
        bit(flags::EXEC, 'x'),
        if region.flags & flags::SHARED != 0 {
            's'
        } else {
            'p'
        },
        region.offset,
        libc::major(device),
        libc::minor(device),
        inode,
    );
    let name = match (region.name, file) {
        (_, Some(file)) => file.path.as_str(),
        (names::HEAP, _) => "[heap]",
        (names::STACK, _) => "[stack]",
        (names::VDSO, _) => "[vdso]",
        _ => "",
    };
    if !name.is_empty() {
        while line.len() < 73 {
            line.push(' ');
        }
        line.push_str(name);
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_linux_writes_them() {
        let file = NamedFile {
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            device: libc::makedev(8, 1),
            inode: 1234,
            fd: None,
        };
        let code = Region {
            start: 0x7f00_0000_0000,
            end: 0x7f00_0002_8000,
            offset: 0x26000,
            name: names::FIRST_FILE,
            flags: flags::READ | flags::EXEC,
        };
        let line = maps_line(&code, Some(&file));
        assert!(line.starts_with("7f0000000000-7f0000028000 r-xp 00026000 08:01 1234 "));
        assert_eq!(line.find('/'), Some(73), "{line}");
        let stack = Region {
            start: 0x1000,
            end: 0x2000,
            offset: 0,
            name: names::STACK,
            flags: flags::READ | flags::WRITE,
        };
        assert!(maps_line(&stack, None).starts_with("00001000-00002000 rw-p 00000000 00:00 0 "));
        assert!(maps_line(&stack, None).ends_with(" [stack]\n"));
        let anonymous = Region {
            name: names::ANONYMOUS,
            flags: flags::SHARED,
            ..stack
        };
        assert_eq!(
            maps_line(&anonymous, None),
            "00001000-00002000 ---s 00000000 00:00 0 \n"
        );
    }
}
