//! Memory syscalls: brk, anonymous mmap and friends (see `crate::mm`).

use atoll_abi::linux::errno::{EINVAL, EISDIR, ENODEV, ENOMEM};

use super::SysResult;
use crate::mm::{self, Access, Placement};

const PROT_ALL: u64 = 0x7 | 0x0100_0000 | 0x0200_0000; // READ|WRITE|EXEC|GROWSDOWN|GROWSUP
const PROT_READ: u64 = 0x1;
const PROT_WRITE: u64 = 0x2;
const PROT_EXEC: u64 = 0x4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_STACK: u64 = 0x2_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MADV_DONTNEED: u64 = 4;

/// What `prot` lets the program do (PROT_EXEC implies reading on x86).
fn access(prot: u64) -> Access {
    if prot & PROT_WRITE != 0 {
        Access::ReadWrite
    } else if prot & (PROT_READ | PROT_EXEC) != 0 {
        Access::Read
    } else {
        Access::None
    }
}

pub fn brk(requested: u64) -> SysResult {
    Ok(mm::brk(requested))
}

pub fn mmap(address: u64, len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> SysResult {
    if prot & !PROT_ALL != 0 {
        return Err(EINVAL);
    }
    let kind = flags & MAP_TYPE;
    match kind {
        MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE => {}
        _ => return Err(EINVAL),
    }
    if !offset.is_multiple_of(4096) {
        return Err(EINVAL);
    }
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed
    } else {
        Placement::Anywhere
    };
    let access = access(prot);
    if flags & MAP_ANONYMOUS != 0 {
        // Anonymous MAP_SHARED memory is only shared with forks, which an
        // isle doesn't have, so it is private memory here.
        if flags & MAP_STACK != 0 {
            return mm::map_stack(address, len, placement, access);
        }
        return mm::map_anonymous(address, len, placement, access);
    }
    // A file mapping is a private copy read in now. That is honest for
    // MAP_PRIVATE and for read-only shared mappings; a writable shared one
    // would promise writes reach the file, which a copy can't keep.
    if kind != MAP_PRIVATE && prot & PROT_WRITE != 0 {
        return Err(ENODEV);
    }
    let start = mm::map_anonymous(address, len, placement, Access::ReadWrite)?;
    let mut done = 0;
    while done < len {
        let chunk = (len - done).min(1 << 30);
        match super::io::pread64(fd, start + done, chunk, offset + done) {
            Ok(0) => break,
            Ok(read) => done += read,
            Err(errno) => {
                let _ = mm::unmap(start, len);
                // Directories and other unreadables can't be mapped.
                return Err(if errno == EISDIR { ENODEV } else { errno });
            }
        }
    }
    if access != Access::ReadWrite {
        mm::protect(start, len, access)?;
    }
    Ok(start)
}

pub fn munmap(address: u64, len: u64) -> SysResult {
    mm::unmap(address, len).map(|()| 0)
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, _new_address: u64) -> SysResult {
    if flags & !MREMAP_MAYMOVE != 0 {
        // MREMAP_FIXED and MREMAP_DONTUNMAP need remapping, which an isle can't do.
        return Err(EINVAL);
    }
    mm::remap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0)
}

pub fn mprotect(address: u64, len: u64, prot: u64) -> SysResult {
    if !address.is_multiple_of(4096) || prot & !PROT_ALL != 0 {
        return Err(EINVAL);
    }
    mm::protect(address, len, access(prot)).map(|()| 0)
}

pub fn madvise(address: u64, len: u64, advice: u64) -> SysResult {
    if !address.is_multiple_of(4096) {
        return Err(EINVAL);
    }
    let len = len.checked_add(4095).ok_or(EINVAL)? & !4095;
    if len != 0 && !mm::is_mapped(address, len) {
        return Err(ENOMEM);
    }
    // MADV_DONTNEED promises zeros on the next touch of private memory;
    // the memory goes back to the host.
    if advice == MADV_DONTNEED && len != 0 {
        mm::discard(address, len)?;
    }
    Ok(0)
}
