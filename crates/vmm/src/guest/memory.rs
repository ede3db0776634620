//! Guest RAM: one private anonymous mapping on transparent huge pages (or,
//! for the QEMU backend, a memfd both processes map).
//!
//! On kvm-pvm a guest's first touch of a 4 KiB page costs ~26,500 cycles,
//! but ~71 once the host has populated huge pages. So RAM is a private
//! mapping with MADV_HUGEPAGE (shared memory gets no THP here), reserved
//! with MAP_NORESERVE far larger than the program may use: only what the
//! kernel asks to populate (MADV_POPULATE_WRITE, ahead of use, from a pool
//! worker) or touches costs host memory, and what it releases goes back.
#![allow(unsafe_code)]

mod file_pages;

pub use file_pages::FilePages;
use vm_memory::mmap::MmapRegion;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap, VolatileSlice,
};

/// Populate in chunks this big: each call holds the mmap lock, which
/// anything unmapping memory in the atoll process waits for.
const POPULATE_CHUNK: u64 = 2 << 20;
const PAGE: u64 = 4096;
/// How long an isle runs before its requests to populate memory ahead are
/// served.
pub const POPULATE_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot reserve {size} bytes of guest memory: {source}")]
    Map {
        size: u64,
        source: vm_memory::mmap::MmapRegionError,
    },
    #[error("cannot make shared guest memory: {0}")]
    Shared(String),
    #[error("cannot set up guest memory regions: {0}")]
    Regions(String),
    #[error("cannot populate guest memory at {offset:#x}+{len:#x}: {source}")]
    Populate {
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
}

/// How a backend makes RAM slot n reachable by its vCPUs (see
/// [`atoll_abi::queue::memory::ATTACH`]); attaching one twice is harmless.
pub trait RamSlots: Send + Sync {
    fn attach(&self, slot: u64) -> Result<(), String>;
    /// The slots attached so far (a forked child's new VM attaches them too).
    fn attached(&self) -> Vec<u64>;
}

/// The isle's RAM, guest-physical `0..size`.
pub struct GuestRam {
    /// First, so it drops first: RAM stops being guarded before it goes.
    sigbus_guard: file_pages::SigbusGuard,
    memory: GuestMemoryMmap,
    host_base: *mut u8,
    size: u64,
    /// Ranges showing a file's pages (mmap MAP_SHARED).
    file_mappings: crate::offload::file_mapping::FileMappings,
    /// A memfd another process maps too: pages go back with MADV_REMOVE.
    shared: bool,
    created: std::time::Instant,
    /// Set by a backend whose vCPUs reach RAM a slot at a time (KVM);
    /// unset, all of RAM is reachable from the start.
    slots: std::sync::RwLock<Option<Box<dyn RamSlots>>>,
}

// SAFETY: `host_base` points into the mapping owned by `memory`, which lives
// as long as self and is safe to access from any thread (all guest memory
// accesses are volatile or bounds-checked raw I/O).
unsafe impl Send for GuestRam {}
// SAFETY: as above; GuestRam has no interior state besides the mapping.
unsafe impl Sync for GuestRam {}

impl GuestRam {
    /// Reserves `size` bytes (a multiple of 2 MiB) and asks for huge pages.
    pub fn new(size: u64) -> Result<Self, MemoryError> {
        let region = MmapRegion::<()>::build(
            None,
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        )
        .map_err(|source| MemoryError::Map { size, source })?;
        Self::from_region(region, size, false)
    }

    /// `size` bytes shared with another process through a memfd (which
    /// holds `size + extra` bytes: room beyond the isle's RAM for that
    /// process's own use). Shared memory gets 4 KiB pages here, so this is
    /// only for backends that need it (QEMU).
    pub fn new_shared(size: u64, extra: u64) -> Result<(Self, std::fs::File), MemoryError> {
        use std::os::fd::FromRawFd;
        let map_error = |error: std::io::Error| MemoryError::Shared(error.to_string());
        // SAFETY: memfd_create reads a NUL-terminated name; the fd it
        // returns is new and ours.
        let fd = unsafe { libc::memfd_create(c"atoll-guest-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(map_error(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just made and nothing else owns it.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.set_len(size + extra).map_err(map_error)?;
        let region = MmapRegion::<()>::from_file(
            vm_memory::FileOffset::new(file.try_clone().map_err(map_error)?, 0),
            size as usize,
        )
        .map_err(|source| MemoryError::Map { size, source })?;
        Ok((Self::from_region(region, size, true)?, file))
    }

    /// Guest-physical `0..size` backed by `region`; `shared`: a memfd the
    /// other process (QEMU) maps on its own, so file pages mapped over ours
    /// would never reach the guest.
    fn from_region(region: MmapRegion<()>, size: u64, shared: bool) -> Result<Self, MemoryError> {
        let host_base = region.as_ptr();
        let region = GuestRegionMmap::new(region, GuestAddress(0))
            .ok_or_else(|| MemoryError::Regions("guest region overflows".into()))?;
        let memory = GuestMemoryMmap::from_regions(vec![region])
            .map_err(|error| MemoryError::Regions(error.to_string()))?;
        Ok(Self {
            sigbus_guard: file_pages::SigbusGuard::default(),
            memory,
            host_base,
            size,
            file_mappings: crate::offload::file_mapping::FileMappings::new(!shared),
            shared,
            created: std::time::Instant::now(),
            slots: std::sync::RwLock::new(None),
        })
    }

    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of guest-physical 0, for the KVM memory slot.
    pub fn host_base(&self) -> u64 {
        self.host_base as u64
    }

    /// Lets `slots` decide which parts of RAM the vCPUs reach; returns the
    /// slots it replaces (a forked child's, which were its parent VM's).
    pub fn set_slots(&self, slots: Box<dyn RamSlots>) -> Option<Box<dyn RamSlots>> {
        let mut current = self.slots.write().unwrap_or_else(|e| e.into_inner());
        current.replace(slots)
    }

    /// Drops the slots, and with them the VM they attach RAM to: for a
    /// forked child's RAM at an execve, whose other owners include the
    /// parent's objects copied into the child, which never drop it.
    pub fn drop_slots(&self) {
        self.slots.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Makes `[address, address + len)` reachable by the vCPUs: the slots
    /// it touches are attached. EINVAL outside RAM, ENOMEM when the backend
    /// can't attach one.
    pub fn attach(&self, address: u64, len: u64) -> Result<(), i64> {
        use atoll_abi::layout::RAM_SLOT_SIZE;
        let einval = i64::from(libc::EINVAL);
        let end = address.checked_add(len).ok_or(einval)?;
        if end > self.size || len == 0 {
            return Err(einval);
        }
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        let Some(slots) = slots.as_ref() else {
            return Ok(());
        };
        for slot in address / RAM_SLOT_SIZE..end.div_ceil(RAM_SLOT_SIZE) {
            slots.attach(slot).map_err(|error| {
                tracing::warn!(slot, %error, "cannot attach guest memory");
                i64::from(libc::ENOMEM)
            })?;
        }
        Ok(())
    }

    pub fn file_mappings(&self) -> &crate::offload::file_mapping::FileMappings {
        &self.file_mappings
    }

    /// `[address, address + len)` as a volatile slice, EFAULT if it leaves
    /// RAM. The guest may change the bytes at any time, so they are only
    /// ever copied or handed to the host kernel, never referenced. A
    /// zero-length range is never checked, as Linux never touches it.
    pub fn slice(&self, address: u64, len: u64) -> Result<VolatileSlice<'_>, i64> {
        let efault = atoll_abi::linux::errno::EFAULT;
        let (address, len) = if len == 0 { (0, 0) } else { (address, len) };
        let end = address.checked_add(len).ok_or(efault)?;
        if end > self.size {
            return Err(efault);
        }
        self.memory
            .get_slice(GuestAddress(address), len as usize)
            .map_err(|_| efault)
    }

    /// Host pointer to `[address, address + len)`, if that lies inside RAM.
    /// The guest may change the bytes at any time: use for raw I/O only.
    pub fn host_range(&self, address: u64, len: u64) -> Option<*mut u8> {
        let end = address.checked_add(len)?;
        if end > self.size {
            return None;
        }
        // SAFETY: address < size (or len == 0 with address <= size), so the
        // result stays inside (or one past) the mapping.
        Some(unsafe { self.host_base.add(address as usize) })
    }

    /// [`Self::host_range`] for a buffer the host kernel reads or writes:
    /// EFAULT if it leaves RAM, but a zero-length one is never checked, as
    /// Linux never touches it (its pointer then is RAM's base).
    pub fn io_buffer(&self, address: u64, len: u64) -> Result<*mut u8, i64> {
        if len == 0 {
            return Ok(self.host_base);
        }
        self.host_range(address, len)
            .ok_or(atoll_abi::linux::errno::EFAULT)
    }

    /// Backs `[offset, offset + len)` (2 MiB-aligned) with huge pages.
    ///
    /// Only where the guest will touch much: on this host a huge page's first
    /// touch costs 0.2 to 2.7 ms (zeroing 2 MiB), a base page's 3 µs.
    pub fn advise_huge_pages(&self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return;
        }
        // SAFETY: advice on a range of our own mapping; no memory-safety
        // effect. Failure only means no huge pages: slower, still correct.
        unsafe {
            libc::madvise(
                self.host_base.add(offset as usize).cast(),
                (end - offset) as usize,
                libc::MADV_HUGEPAGE,
            )
        };
    }

    /// Binds all of guest RAM to NUMA node `node` (MPOL_BIND), before any
    /// of it is touched, so the isle's memory sits beside its cores.
    /// Returns whether the host took it (a kernel without NUMA doesn't).
    pub fn bind_to_node(&self, node: u32) -> bool {
        const MPOL_BIND: libc::c_long = 2;
        let Some(mask) = 1u64.checked_shl(node) else {
            return false;
        };
        // SAFETY: mbind reads `mask` (64 bits, maxnode 64) and changes the
        // policy of our own mapping; no memory is read or written through it.
        let done = unsafe {
            libc::syscall(
                libc::SYS_mbind,
                self.host_base,
                self.size as usize,
                MPOL_BIND,
                &mask as *const u64,
                64usize,
                0usize,
            )
        };
        done == 0
    }

    /// Faults in `[offset, offset + len)` now, writable.
    pub fn populate(&self, offset: u64, len: u64) -> Result<(), MemoryError> {
        let end = offset.saturating_add(len).min(self.size);
        let mut start = offset;
        while start < end {
            let chunk = (end - start).min(POPULATE_CHUNK);
            // Never over a file's pages: that would dirty them, or copy
            // them (a private view) and lose sight of the file.
            let result = self.file_mappings.unless_mapped(start, chunk, || {
                // SAFETY: the range is inside our mapping; populating has no
                // effect on contents (they are zero or already written).
                unsafe {
                    libc::madvise(
                        self.host_base.add(start as usize).cast(),
                        chunk as usize,
                        libc::MADV_POPULATE_WRITE,
                    )
                }
            });
            if result != 0 {
                return Err(MemoryError::Populate {
                    offset: start,
                    len: chunk,
                    source: std::io::Error::last_os_error(),
                });
            }
            start += chunk;
        }
        Ok(())
    }

    /// Page-aligned `[offset, offset + len)` if it lies inside RAM: the
    /// guest names these ranges, so nothing else is trusted.
    pub(crate) fn checked_pages(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let aligned = offset.is_multiple_of(PAGE) && len.is_multiple_of(PAGE);
        let end = offset.checked_add(len)?;
        (aligned && len > 0 && end <= self.size).then_some((offset, end))
    }

    /// The guest's POPULATE: backs a range ahead of use. The first requests
    /// come at boot, so it waits until the isle has run `delay`: a
    /// short-lived isle never pays for memory it won't touch.
    pub fn populate_ahead(
        &self,
        offset: u64,
        len: u64,
        delay: std::time::Duration,
    ) -> Result<(), i64> {
        let (offset, end) = self
            .checked_pages(offset, len)
            .ok_or(i64::from(libc::EINVAL))?;
        if let Some(wait) = delay.checked_sub(self.created.elapsed()) {
            std::thread::sleep(wait);
        }
        self.populate(offset, end - offset)
            .map_err(|_| i64::from(libc::ENOMEM))
    }

    /// The guest's RELEASE: gives a range's memory back to the host; it
    /// reads as zeros afterwards.
    pub fn release(&self, offset: u64, len: u64) -> Result<(), i64> {
        let (offset, end) = self
            .checked_pages(offset, len)
            .ok_or(i64::from(libc::EINVAL))?;
        // A memfd keeps its pages through MADV_DONTNEED (QEMU maps them
        // too); MADV_REMOVE punches them out of the file.
        let advice = if self.shared {
            libc::MADV_REMOVE
        } else {
            libc::MADV_DONTNEED
        };
        // A file's pages are the file's: only UNMAP_FILE puts memory back
        // there.
        let result = self.file_mappings.unless_mapped(offset, end - offset, || {
            // SAFETY: the range lies inside our mapping (checked above); the
            // guest asked for its contents to become zero.
            unsafe {
                libc::madvise(
                    self.host_base.add(offset as usize).cast(),
                    (end - offset) as usize,
                    advice,
                )
            }
        });
        if result == 0 {
            Ok(())
        } else {
            Err(i64::from(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn ram_is_zeroed_readable_and_bounds_checked() {
        let ram = GuestRam::new(4 << 20).unwrap();
        ram.populate(0, 4 << 20).unwrap();
        let value: u64 = ram.memory().read_obj(GuestAddress(0x1000)).unwrap();
        assert_eq!(value, 0);
        ram.memory()
            .write_obj(0xdead_beef_u64, GuestAddress(0x2000))
            .unwrap();
        assert_eq!(
            ram.memory().read_obj::<u64>(GuestAddress(0x2000)).unwrap(),
            0xdead_beef
        );
        assert!(ram.host_range(4 << 20, 0).is_some());
        assert!(ram.host_range(4 << 20, 1).is_none());
        assert!(ram.host_range(u64::MAX, 2).is_none());
        assert!(ram
            .memory()
            .read_obj::<u64>(GuestAddress((4 << 20) - 4))
            .is_err());
        let efault = atoll_abi::linux::errno::EFAULT;
        assert_eq!(ram.slice(0x2000, 8).unwrap().len(), 8);
        assert_eq!(ram.slice((4 << 20) - 8, 8).unwrap().len(), 8);
        assert_eq!(ram.slice((4 << 20) - 8, 9).err(), Some(efault));
        assert_eq!(ram.slice(u64::MAX, 2).err(), Some(efault));
        // Linux never touches a zero-length buffer, wherever it points.
        assert_eq!(ram.slice(u64::MAX, 0).unwrap().len(), 0);
    }

    #[test]
    fn released_memory_reads_zero_and_bad_ranges_are_refused() {
        let ram = GuestRam::new(4 << 20).unwrap();
        let delay = std::time::Duration::ZERO;
        ram.populate_ahead(0, 4 << 20, delay).unwrap();
        ram.memory()
            .write_obj(0xdead_beef_u64, GuestAddress(0x2000))
            .unwrap();
        ram.release(0x2000, 0x1000).unwrap();
        assert_eq!(
            ram.memory().read_obj::<u64>(GuestAddress(0x2000)).unwrap(),
            0
        );
        assert_eq!(ram.release(0x2001, 0x1000), Err(i64::from(libc::EINVAL)));
        assert_eq!(ram.release(4 << 20, 0x1000), Err(i64::from(libc::EINVAL)));
        assert_eq!(ram.release(!0xfff, 0x2000), Err(i64::from(libc::EINVAL)));
        assert_eq!(
            ram.populate_ahead(0, 0, delay),
            Err(i64::from(libc::EINVAL))
        );
    }
}
