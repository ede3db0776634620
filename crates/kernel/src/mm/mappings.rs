//! The program's view of its heap: brk, the list of mmap ranges, where a
//! new mapping goes (the calling CPU's slice first), what MAP_FIXED,
//! munmap and mremap replace, move or give back.

use atoll_abi::layout::{align_up, PAGE_SIZE};
use atoll_abi::linux::errno::{EEXIST, EFAULT, EINVAL, ENOMEM};

use super::{page_len, Access, AddressSpace, Placement, Range, MAX_MAPPINGS, MAX_STACKS};
use crate::arch::x86_64::user;

impl AddressSpace {
    /// munmap(2) of `range`: what it covered goes back to the host.
    pub(super) fn unmap(&mut self, range: Range) -> Result<(), i64> {
        self.remove(range)?;
        self.forget_stacks(range);
        let freed = self.unmappable(range);
        self.give_back(freed)
    }

    /// The part of `range` munmap may give back: heap above brk's memory.
    fn unmappable(&self, range: Range) -> Range {
        Range {
            start: range.start.max(self.brk_limit()),
            end: range.end.min(self.heap_end),
        }
    }

    pub(super) fn brk_limit(&self) -> u64 {
        align_up(self.brk, PAGE_SIZE)
    }

    /// Lowest address mmap may not go below.
    fn mmap_floor(&self) -> u64 {
        self.brk_limit()
    }

    /// Hands out free `range` readable and writable: backed and counted
    /// (free memory is zero already).
    fn claim(&mut self, range: Range) -> Result<(), i64> {
        self.back(range)?;
        self.restore_access(range)
    }

    pub(super) fn overlaps_mapping(&self, range: Range) -> bool {
        self.mappings[..self.mapping_count]
            .iter()
            .any(|m| m.start < range.end && range.start < m.end)
    }

    pub(super) fn set_brk(&mut self, requested: u64) -> u64 {
        if requested < self.brk_start || requested > self.heap_end {
            return self.brk;
        }
        let old_limit = self.brk_limit();
        let new_limit = align_up(requested, PAGE_SIZE);
        if new_limit > old_limit {
            let growth = Range {
                start: old_limit,
                end: new_limit,
            };
            if new_limit > self.heap_end || self.overlaps_mapping(growth) {
                return self.brk;
            }
            if self.claim(growth).is_err() {
                return self.brk;
            }
        }
        self.brk = requested;
        if new_limit < old_limit {
            // Shrunk: the memory goes back, and comes back zero if regrown.
            let _ = self.give_back(Range {
                start: new_limit,
                end: old_limit,
            });
        }
        self.brk
    }

    /// Finds the highest free gap of `len` bytes below the heap end.
    fn find_gap(&self, len: u64) -> Option<u64> {
        // One core, one memory: first the calling CPU's slice of the heap,
        // then anywhere.
        let cpu = crate::arch::x86_64::cpu::cpu_index() as u64;
        if self.slice_size >= len && cpu < self.cpu_count {
            let upper = self.heap_end - cpu * self.slice_size;
            if let Some(start) = self.find_gap_within(len, upper - self.slice_size, upper) {
                return Some(start);
            }
        }
        self.find_gap_within(len, 0, self.heap_end)
    }

    /// The highest free gap of `len` bytes inside `[lower, upper)`.
    fn find_gap_within(&self, len: u64, lower: u64, upper: u64) -> Option<u64> {
        let floor = self.mmap_floor().max(lower);
        let mut top = upper;
        for mapping in self.mappings[..self.mapping_count].iter().rev() {
            if mapping.start >= top {
                continue;
            }
            let bottom = mapping.end.max(floor);
            if top >= bottom && top - bottom >= len {
                return Some(top - len);
            }
            top = mapping.start;
            if top <= floor {
                return None;
            }
        }
        (top >= floor && top - floor >= len).then(|| top - len)
    }

    /// Adds `range` to the mappings, merging with neighbours and overlaps.
    fn insert(&mut self, range: Range) -> Result<(), i64> {
        let count = self.mapping_count;
        let mut merged = range;
        let first = self.mappings[..count].partition_point(|m| m.end < merged.start);
        let mut last = first;
        while last < count && self.mappings[last].start <= merged.end {
            merged.start = merged.start.min(self.mappings[last].start);
            merged.end = merged.end.max(self.mappings[last].end);
            last += 1;
        }
        let removed = last - first;
        if removed == 0 && count == MAX_MAPPINGS {
            return Err(ENOMEM);
        }
        // Replace mappings[first..last] with `merged`.
        let new_count = count - removed + 1;
        if removed == 0 {
            self.mappings.copy_within(first..count, first + 1);
        } else {
            self.mappings.copy_within(last..count, first + 1);
        }
        self.mappings[first] = merged;
        self.mapping_count = new_count;
        Ok(())
    }

    /// Removes `range` from the mappings, splitting one if needed.
    fn remove(&mut self, range: Range) -> Result<(), i64> {
        let mut index = 0;
        while index < self.mapping_count {
            let mapping = self.mappings[index];
            if mapping.end <= range.start || range.end <= mapping.start {
                index += 1;
                continue;
            }
            let below = Range {
                start: mapping.start,
                end: range.start,
            };
            let above = Range {
                start: range.end,
                end: mapping.end,
            };
            let keep_below = below.start < below.end;
            let keep_above = above.start < above.end;
            match (keep_below, keep_above) {
                (true, true) => {
                    if self.mapping_count == MAX_MAPPINGS {
                        return Err(ENOMEM);
                    }
                    self.mappings
                        .copy_within(index + 1..self.mapping_count, index + 2);
                    self.mappings[index] = below;
                    self.mappings[index + 1] = above;
                    self.mapping_count += 1;
                    index += 2;
                }
                (true, false) => {
                    self.mappings[index] = below;
                    index += 1;
                }
                (false, true) => {
                    self.mappings[index] = above;
                    index += 1;
                }
                (false, false) => {
                    self.mappings
                        .copy_within(index + 1..self.mapping_count, index);
                    self.mapping_count -= 1;
                }
            }
        }
        Ok(())
    }

    fn mapping_containing(&self, range: Range) -> Option<Range> {
        self.mappings[..self.mapping_count]
            .iter()
            .copied()
            .find(|m| m.start <= range.start && range.end <= m.end)
    }

    /// Anonymous memory with `access` (PROT_NONE reserves address space
    /// only: nothing is backed or counted until mprotect makes it usable).
    pub(super) fn map_anonymous(
        &mut self,
        hint: u64,
        len: u64,
        placement: Placement,
        access: Access,
        stack: bool,
    ) -> Result<u64, i64> {
        if len == 0 {
            return Err(EINVAL);
        }
        let len = page_len(len).ok_or(ENOMEM)?;
        let start = if placement == Placement::Anywhere {
            self.find_gap(len).ok_or(ENOMEM)?
        } else {
            self.check_fixed(hint, len, placement)?;
            hint
        };
        let range = Range {
            start,
            end: start + len,
        };
        // Over the brk area (musl puts guard pages there) the memory stays
        // brk's; only the part above it becomes a mapping.
        let brk_limit = self.brk_limit();
        let mapped = Range {
            start: start.max(brk_limit),
            end: range.end,
        };
        if range.start < brk_limit {
            let brk_part = Range {
                start,
                end: range.end.min(brk_limit),
            };
            self.restore_access(brk_part)?;
            user::fill(brk_part.start, brk_part.end - brk_part.start, 0)?;
        }
        if mapped.start < mapped.end {
            if placement == Placement::Fixed && self.overlaps_mapping(mapped) {
                // MAP_FIXED replaces what was there with fresh zeros.
                self.remove(mapped)?;
                self.forget_stacks(mapped);
                self.give_back(mapped)?;
            }
            self.insert(mapped)?;
            if stack && self.stack_count < MAX_STACKS {
                self.stacks[self.stack_count] = mapped;
                self.stack_count += 1;
            }
            let handed_out = match access {
                Access::None => Ok(()),
                _ => self.back(mapped),
            };
            if let Err(errno) = handed_out {
                let _ = self.remove(mapped);
                return Err(errno);
            }
        }
        self.protect(range, access)?;
        Ok(start)
    }

    /// Checks a MAP_FIXED or MAP_FIXED_NOREPLACE request for `len` bytes at `hint`.
    fn check_fixed(&self, hint: u64, len: u64, placement: Placement) -> Result<(), i64> {
        if !hint.is_multiple_of(PAGE_SIZE) {
            return Err(EINVAL);
        }
        let end = hint.checked_add(len).ok_or(ENOMEM)?;
        // Only heap memory can be replaced; the image and stack stay.
        if hint < self.brk_start || end > self.heap_end {
            return Err(ENOMEM);
        }
        let wanted = Range { start: hint, end };
        if placement == Placement::FixedNoReplace
            && (hint < self.brk_limit() || self.overlaps_mapping(wanted))
        {
            return Err(EEXIST);
        }
        Ok(())
    }

    fn in_stack(&self, address: u64) -> bool {
        self.stack_bottom <= address && address < self.stack_top
    }

    pub(super) fn remap(
        &mut self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
    ) -> Result<u64, i64> {
        if !old.is_multiple_of(PAGE_SIZE) || new_len == 0 || old_len == 0 {
            return Err(EINVAL);
        }
        let old_len = page_len(old_len).ok_or(EINVAL)?;
        // Lengths that wrap are EINVAL, as Linux says for them.
        let new_len = page_len(new_len).ok_or(EINVAL)?;
        let old_end = old.checked_add(old_len).ok_or(EFAULT)?;
        let new_end = old.checked_add(new_len).ok_or(EINVAL)?;
        let old_range = Range {
            start: old,
            end: old_end,
        };
        if self.mapping_containing(old_range).is_none() {
            // Like Linux: a mapping that can't grow is ENOMEM (musl probes
            // the main stack this way), no mapping at all is EFAULT.
            return Err(if self.in_stack(old) { ENOMEM } else { EFAULT });
        }
        if new_len <= old_len {
            let tail = Range {
                start: old + new_len,
                end: old_end,
            };
            self.remove(tail)?;
            self.give_back(tail)?;
            return Ok(old);
        }
        let growth = Range {
            start: old_end,
            end: new_end,
        };
        if growth.end <= self.heap_end && !self.overlaps_mapping(growth) {
            self.insert(growth)?;
            self.claim(growth)?;
            return Ok(old);
        }
        if !may_move {
            return Err(ENOMEM);
        }
        let new = self.map_anonymous(0, new_len, Placement::Anywhere, Access::ReadWrite, false)?;
        self.forget_stacks(old_range);
        user::copy_within(old, new, old_len)?;
        self.remove(old_range)?;
        self.give_back(old_range)?;
        Ok(new)
    }
}
