//! A global allocator for the `atoll` process that puts large buffers
//! (program images, image layers in flight) on transparent huge pages.
//!
//! Hosts commonly run THP in `madvise` mode, and first touch of a 4 KiB
//! page costs ~16,000 cycles on our machines: a 100 MiB buffer then takes
//! ~0.14 s of page faults before any work. Large allocations get their own
//! mapping with MADV_HUGEPAGE (faulted 2 MiB at a time); small ones go to
//! the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations this large (or larger) get a mapping of their own.
const LARGE: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

pub struct LargeOnHugePages;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= 4096
}

fn mapping_size(size: usize) -> usize {
    size.next_multiple_of(HUGE_PAGE)
}

fn map(size: usize) -> *mut u8 {
    let length = mapping_size(size);
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    // SAFETY: advice on the mapping just made; failure only costs speed.
    unsafe { libc::madvise(address, length, libc::MADV_HUGEPAGE) };
    address.cast()
}

// SAFETY: large blocks are whole mappings, freed by munmap with the size
// they were made with (a Layout's size is the same at dealloc); all other
// blocks are the system allocator's, in and out.
unsafe impl GlobalAlloc for LargeOnHugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            map(layout.size())
        } else {
            // SAFETY: the caller's layout, passed on unchanged.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // Anonymous mappings start zeroed.
            map(layout.size())
        } else {
            // SAFETY: the caller's layout, passed on unchanged.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: `pointer` is a mapping `map` made for this size.
            unsafe { libc::munmap(pointer.cast(), mapping_size(layout.size())) };
        } else {
            // SAFETY: the system allocator's block, with its layout.
            unsafe { System.dealloc(pointer, layout) }
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with this alignment is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_large(&layout), is_large(&new_layout)) {
            // SAFETY: the system allocator's block, resized by it.
            (false, false) => unsafe { System.realloc(pointer, layout, new_size) },
            (true, true) => {
                // SAFETY: the old block is our mapping of that size; the
                // kernel moves it whole if it must.
                let moved = unsafe {
                    libc::mremap(
                        pointer.cast(),
                        mapping_size(layout.size()),
                        mapping_size(new_size),
                        libc::MREMAP_MAYMOVE,
                    )
                };
                if moved == libc::MAP_FAILED {
                    return std::ptr::null_mut();
                }
                // SAFETY: advice on our own mapping; failure only costs speed.
                unsafe { libc::madvise(moved, mapping_size(new_size), libc::MADV_HUGEPAGE) };
                moved.cast()
            }
            _ => {
                // SAFETY: a valid layout (see above).
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller size
                    // and distinct; the old one is freed once copied.
                    unsafe {
                        std::ptr::copy_nonoverlapping(pointer, new, layout.size().min(new_size));
                        self.dealloc(pointer, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_contents_across_every_kind_of_resize() {
        let allocator = LargeOnHugePages;
        let small = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: the test owns every block and uses each within its size.
        unsafe {
            let block = allocator.alloc(small);
            block.write_bytes(0xab, 1000);
            let grown = allocator.realloc(block, small, 6 << 20);
            assert_eq!(*grown.add(999), 0xab);
            grown.add((6 << 20) - 1).write(7);
            let large = Layout::from_size_align(6 << 20, 8).unwrap();
            let bigger = allocator.realloc(grown, large, 20 << 20);
            assert_eq!((*bigger, *bigger.add((6 << 20) - 1)), (0xab, 7));
            let larger = Layout::from_size_align(20 << 20, 8).unwrap();
            let shrunk = allocator.realloc(bigger, larger, 100);
            assert_eq!(*shrunk.add(99), 0xab);
            allocator.dealloc(shrunk, Layout::from_size_align(100, 8).unwrap());
            let zeroed = allocator.alloc_zeroed(large);
            assert!(std::slice::from_raw_parts(zeroed, 6 << 20)
                .iter()
                .all(|&b| b == 0));
            allocator.dealloc(zeroed, large);
        }
    }
}
