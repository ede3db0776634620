//! A file's pages in place of part of guest RAM: mmap(MAP_FIXED) of the
//! file over guest RAM's own host mapping, anonymous memory put back,
//! msync of such a range, and the SIGBUS guard for file pages past their
//! file's end. What shows where is `offload::file_mapping`'s business;
//! this is only the remapping, bounds-checked against RAM.
//!
//! Why replacing pages under guest RAM keeps Rust's rules: no Rust
//! reference to guest RAM's bytes ever exists. The monitor reaches them
//! only through vm-memory's volatile accesses and as pointers handed to
//! the host kernel, and the guest's vCPUs change them at any moment
//! anyway; new contents appearing there is no different from a guest
//! write. The mapping itself stays where it is, as long and readable and
//! writable as before, so every volatile slice and pointer into it stays
//! valid.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::layout::{LARGE_PAGE_SIZE, PAGE_SIZE};
use atoll_abi::linux::errno::EINVAL;
use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};

use super::GuestRam;

/// How a file's pages show in guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePages {
    /// MAP_SHARED: writes go to the file.
    Shared,
    /// MAP_PRIVATE: the file's pages until written, then a private copy.
    Private,
}

/// Readable and writable always: the guest's protections live in its own
/// page tables, and the monitor may write there for the guest (a read into
/// a mapped buffer) without faulting.
const READ_WRITE: ProtFlags = ProtFlags::READ.union(ProtFlags::WRITE);

fn errno(error: rustix::io::Errno) -> i64 {
    i64::from(error.raw_os_error())
}

impl GuestRam {
    /// Shows `file` from `offset` at guest `[address, address + len)`
    /// (page-aligned, inside RAM: EINVAL otherwise). On failure the range
    /// holds private memory again (a failed MAP_FIXED may leave a hole,
    /// which the guest must never find) and the mmap's errno is returned.
    pub fn map_file(
        &self,
        address: u64,
        len: u64,
        file: BorrowedFd<'_>,
        offset: u64,
        pages: FilePages,
    ) -> Result<(), i64> {
        let (address, end) = self.checked_pages(address, len).ok_or(EINVAL)?;
        self.guard_against_sigbus();
        let kind = match pages {
            FilePages::Shared => MapFlags::SHARED,
            FilePages::Private => MapFlags::PRIVATE,
        };
        // SAFETY: MAP_FIXED replaces only pages of guest RAM's own mapping:
        // `[address, end)` is page-aligned and inside RAM (checked above),
        // so the pointer arithmetic stays inside the mapping too.
        // That mapping stays as it was in place, size and protection, and
        // its bytes are never behind a Rust reference (see the module
        // comment). A page past the file's end would raise SIGBUS when the
        // monitor touches it; the guard set above answers that with a zero
        // page.
        let mapped = unsafe {
            rustix::mm::mmap(
                self.host_base.add(address as usize).cast(),
                (end - address) as usize,
                READ_WRITE,
                kind | MapFlags::FIXED,
                file,
                offset,
            )
        };
        if let Err(error) = mapped {
            let _ = self.restore_anonymous(address, end - address);
            return Err(errno(error));
        }
        Ok(())
    }

    /// Puts private anonymous (zero) memory back over guest `[address,
    /// address + len)` (page-aligned, inside RAM: EINVAL otherwise), on
    /// huge pages where whole ones fit, as guest RAM is made.
    pub fn restore_anonymous(&self, address: u64, len: u64) -> Result<(), i64> {
        let (start, end) = self.checked_pages(address, len).ok_or(EINVAL)?;
        // SAFETY: as in `map_file`: page-aligned pages inside guest RAM's
        // own mapping, which stays in place, readable and writable.
        let mapped = unsafe {
            rustix::mm::mmap_anonymous(
                self.host_base.add(start as usize).cast(),
                (end - start) as usize,
                READ_WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED,
            )
        };
        if let Err(error) = mapped {
            let errno = errno(error);
            tracing::error!("guest RAM at {start:#x}..{end:#x} lost its memory: errno {errno}");
            return Err(errno);
        }
        let huge_start = start.next_multiple_of(LARGE_PAGE_SIZE);
        let huge_end = end & !(LARGE_PAGE_SIZE - 1);
        if huge_start < huge_end {
            self.advise_huge_pages(huge_start, huge_end - huge_start);
        }
        Ok(())
    }

    /// msync(2) of guest `[address, address + len)` (page-aligned, inside
    /// RAM: EINVAL otherwise): a shared file's pages there reach the file.
    pub fn sync_file_pages(&self, address: u64, len: u64, flags: MsyncFlags) -> Result<(), i64> {
        let (start, end) = self.checked_pages(address, len).ok_or(EINVAL)?;
        // SAFETY: msync only writes dirty pages of our own mapping back to
        // their file (inside RAM, checked above); no memory changes.
        unsafe {
            rustix::mm::msync(
                self.host_base.add(start as usize).cast(),
                (end - start) as usize,
                flags,
            )
        }
        .map_err(errno)
    }

    /// Guards this RAM against SIGBUS from its file pages (see
    /// [`SIGBUS_GUARDED`]); once is enough.
    fn guard_against_sigbus(&self) {
        let base = self.host_base();
        if self.sigbus_guard.base.load(Ordering::SeqCst) != 0 {
            return;
        }
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            // SAFETY: installs a handler that only reads atomics and maps a
            // page (async-signal-safe), for a signal that would otherwise
            // end the process. The sigaction struct is ours, zeroed (valid
            // for it) and then filled.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_sigbus as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
            }
        });
        for (start, end) in &SIGBUS_GUARDED {
            if start
                .compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                end.store(base + self.size(), Ordering::SeqCst);
                self.sigbus_guard.base.store(base, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// One guest RAM's place in [`SIGBUS_GUARDED`]: its host address once it
/// is guarded, 0 before; given back when the RAM goes.
#[derive(Default)]
pub(super) struct SigbusGuard {
    base: AtomicU64,
}

impl Drop for SigbusGuard {
    fn drop(&mut self) {
        let base = *self.base.get_mut();
        for (start, end) in &SIGBUS_GUARDED {
            if base != 0 && start.load(Ordering::SeqCst) == base {
                end.store(0, Ordering::SeqCst);
                start.store(0, Ordering::SeqCst);
            }
        }
    }
}

/// Host ranges of guest RAM that show files: a page there past its file's
/// end raises SIGBUS when the monitor touches it (a guest string or
/// buffer), which [`on_sigbus`] answers with a zero page instead, so the
/// guest can't kill its monitor that way.
static SIGBUS_GUARDED: [(AtomicU64, AtomicU64); 16] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; 16];

/// SIGBUS inside guarded guest RAM: the page lies past its file's end.
/// Linux would kill the guest program; here the monitor was touching it
/// for the guest, so the page becomes a zero page and the access goes on.
/// Anywhere else the default action ends the process, as before.
extern "C" fn on_sigbus(_signal: i32, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers;
    // si_addr is the faulting address for SIGBUS.
    let address = unsafe { (*info).si_addr() } as u64;
    let guarded = SIGBUS_GUARDED.iter().any(|(start, end)| {
        let start = start.load(Ordering::SeqCst);
        start != 0 && (start..end.load(Ordering::SeqCst)).contains(&address)
    });
    let page = address & !(PAGE_SIZE - 1);
    // SAFETY: errno is this thread's, saved and put back. A guarded page
    // lies inside a live guest RAM's mapping (its slot is cleared before
    // that RAM goes), so mapping a zero page over it only changes guest
    // bytes, which no Rust reference holds (see the module comment).
    // signal() resets SIGBUS, so the access faults again and ends us.
    unsafe {
        let errno = *libc::__errno_location();
        if guarded {
            libc::mmap(
                page as *mut libc::c_void,
                PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
        } else {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
        *libc::__errno_location() = errno;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use vm_memory::{Bytes, GuestAddress};

    const RAM: u64 = 4 << 20;

    #[test]
    fn only_whole_pages_inside_ram_are_remapped() {
        let ram = GuestRam::new(RAM).unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let page = PAGE_SIZE;
        for (address, len) in [
            (RAM - page, 2 * page),
            (RAM, page),
            (page + 1, page),
            (page, page + 1),
            (page, 0),
            (u64::MAX - page + 1, page),
        ] {
            let shown = ram.map_file(address, len, file.as_fd(), 0, FilePages::Private);
            assert_eq!(shown, Err(EINVAL), "{address:#x}+{len:#x}");
            assert_eq!(ram.restore_anonymous(address, len), Err(EINVAL));
            let sync = ram.sync_file_pages(address, len, MsyncFlags::SYNC);
            assert_eq!(sync, Err(EINVAL));
        }
    }

    #[test]
    fn a_file_shows_until_anonymous_memory_comes_back() {
        let ram = GuestRam::new(RAM).unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let at = RAM - 2 * PAGE_SIZE;
        ram.map_file(at, PAGE_SIZE, file.as_fd(), 0, FilePages::Private)
            .unwrap();
        let magic: [u8; 4] = ram.memory().read_obj(GuestAddress(at)).unwrap();
        assert_eq!(&magic, b"\x7fELF");
        ram.sync_file_pages(at, PAGE_SIZE, MsyncFlags::SYNC)
            .unwrap();
        ram.restore_anonymous(at, PAGE_SIZE).unwrap();
        let zeros: [u8; 4] = ram.memory().read_obj(GuestAddress(at)).unwrap();
        assert_eq!(zeros, [0; 4]);
    }
}
