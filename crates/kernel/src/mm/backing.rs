//! Which heap memory the host backs: handing memory out counts its 2 MiB
//! chunks against the memory limit and asks the host to populate them
//! (with a reserve kept ahead of each CPU's allocations); memory that
//! becomes free goes back to the host, which zeroes it.

use atoll_abi::layout::{align_down, align_up, LARGE_PAGE_SIZE};
use atoll_abi::linux::errno::ENOMEM;
use atoll_abi::queue::{memory, Opcode};

use super::{AddressSpace, Range, CHUNK_WORDS};
use crate::arch::x86_64::user;

/// Populated memory kept ahead of each CPU's allocations (at most half the
/// limit), so the program's first touches find it backed: a first touch of
/// unpopulated memory costs a host fault and zeroing 2 MiB.
const RESERVE: u64 = 256 << 20;

/// Asks the host to back `range` now, ahead of the program's touches. A
/// request that arrives after the range was given back again leaves it
/// populated but uncounted until it is given back next time.
pub(super) fn populate_ahead(range: Range) {
    crate::offload::send(
        Opcode::Memory,
        [
            memory::POPULATE,
            range.start,
            range.end - range.start,
            0,
            0,
            0,
        ],
    );
}

/// Gives `range` back to the host, which zeroes it. Callers hold the
/// address-space lock, so nobody can be handed the range meanwhile.
pub(super) fn release(range: Range) -> Result<(), i64> {
    let result = crate::offload::call_without_yielding(
        Opcode::Memory,
        [
            memory::RELEASE,
            range.start,
            range.end - range.start,
            0,
            0,
            0,
        ],
    );
    if result < 0 {
        Err(-result)
    } else {
        Ok(())
    }
}

impl AddressSpace {
    /// The heap chunks `[first, last)` that lie within `range`'s 2 MiB
    /// bounds and inside the heap (chunks shared with the image or the
    /// stack are never counted).
    fn heap_chunks(&self, range: Range) -> (u64, u64) {
        let low = align_up(self.brk_start, LARGE_PAGE_SIZE);
        let high = align_down(self.heap_end, LARGE_PAGE_SIZE);
        let start = align_down(range.start, LARGE_PAGE_SIZE).max(low);
        let end = align_up(range.end, LARGE_PAGE_SIZE).min(high);
        let count = (CHUNK_WORDS * 64) as u64;
        (
            (start / LARGE_PAGE_SIZE).min(count),
            (end.max(start) / LARGE_PAGE_SIZE).min(count),
        )
    }

    fn is_backed(&self, chunk: u64) -> bool {
        self.backed[(chunk / 64) as usize] & (1 << (chunk % 64)) != 0
    }

    fn set_backed(&mut self, chunk: u64, backed: bool) {
        let word = &mut self.backed[(chunk / 64) as usize];
        if backed {
            *word |= 1 << (chunk % 64);
        } else {
            *word &= !(1 << (chunk % 64));
        }
    }

    /// Counts the chunks of `range` not yet backed against the limit (ENOMEM
    /// past it, with nothing changed) and asks the host to populate them.
    pub(super) fn back(&mut self, range: Range) -> Result<(), i64> {
        let (first, last) = self.heap_chunks(range);
        let new = (first..last)
            .filter(|&chunk| !self.is_backed(chunk) && !self.in_stack_depths(chunk))
            .count() as u64;
        if self.backed_chunks + new > self.limit_chunks {
            return Err(ENOMEM);
        }
        self.backed_chunks += new;
        let mut run: Option<Range> = None;
        for chunk in first..last {
            if self.is_backed(chunk) || self.in_stack_depths(chunk) {
                continue;
            }
            self.set_backed(chunk, true);
            let start = chunk * LARGE_PAGE_SIZE;
            run = match run {
                Some(open) if open.end == start => Some(Range {
                    start: open.start,
                    end: start + LARGE_PAGE_SIZE,
                }),
                other => {
                    if let Some(done) = other {
                        populate_ahead(done);
                    }
                    Some(Range {
                        start,
                        end: start + LARGE_PAGE_SIZE,
                    })
                }
            };
        }
        if let Some(done) = run {
            populate_ahead(done);
        }
        let cpu = crate::arch::x86_64::cpu::cpu_index() as u64;
        if cpu < self.cpu_count && range.start < self.reserve_floor[cpu as usize] + RESERVE {
            self.extend_reserve(cpu, range.start);
        }
        Ok(())
    }

    /// Whether `chunk` lies wholly inside a thread stack, below its top
    /// chunk: left to the host to back when touched, and not counted.
    fn in_stack_depths(&self, chunk: u64) -> bool {
        let start = chunk * LARGE_PAGE_SIZE;
        let end = start + LARGE_PAGE_SIZE;
        self.stacks[..self.stack_count]
            .iter()
            .any(|stack| stack.start <= start && end <= align_down(stack.end - 1, LARGE_PAGE_SIZE))
    }

    /// Forgets the thread stacks `range` unmaps.
    pub(super) fn forget_stacks(&mut self, range: Range) {
        let mut index = 0;
        while index < self.stack_count {
            let stack = self.stacks[index];
            if stack.start < range.end && range.start < stack.end {
                self.stack_count -= 1;
                self.stacks[index] = self.stacks[self.stack_count];
            } else {
                index += 1;
            }
        }
    }

    /// Where CPU `cpu`'s mmap slice ends.
    pub(super) fn slice_top(&self, cpu: u64) -> u64 {
        align_down(self.heap_end - cpu * self.slice_size, LARGE_PAGE_SIZE)
    }

    /// Populates CPU `cpu`'s reserve down to [`RESERVE`] below `frontier`
    /// (its lowest allocation), where not asked already.
    pub(super) fn extend_reserve(&mut self, cpu: u64, frontier: u64) {
        let Some(&floor) = self.reserve_floor.get(cpu as usize) else {
            return;
        };
        let room = self.limit_chunks.saturating_sub(self.backed_chunks) * LARGE_PAGE_SIZE;
        let depth = RESERVE
            .min(self.limit_chunks * LARGE_PAGE_SIZE / 2)
            .min(room);
        let slice_bottom = self.slice_top(cpu).saturating_sub(self.slice_size);
        let wanted = align_down(frontier.saturating_sub(depth), LARGE_PAGE_SIZE).max(slice_bottom);
        let top = floor.min(align_down(frontier, LARGE_PAGE_SIZE));
        if wanted < top {
            populate_ahead(Range {
                start: wanted,
                end: top,
            });
            self.reserve_floor[cpu as usize] = wanted;
        }
    }

    /// Whether nothing in `chunk` is handed out: no mapping, no brk memory.
    fn chunk_is_free(&self, chunk: u64) -> bool {
        let range = Range {
            start: chunk * LARGE_PAGE_SIZE,
            end: (chunk + 1) * LARGE_PAGE_SIZE,
        };
        range.start >= self.brk_limit() && !self.overlaps_mapping(range)
    }

    /// Gives the free `range` back to the host, so it reads as zeros when
    /// handed out again, and stops counting the chunks it leaves empty
    /// (giving those back whole).
    pub(super) fn give_back(&mut self, range: Range) -> Result<(), i64> {
        if range.start >= range.end {
            return Ok(());
        }
        if release(range).is_err() {
            // The host kept the pages: zeros must come from us.
            self.restore_access(range)?;
            user::fill(range.start, range.end - range.start, 0)?;
        }
        let (first, last) = self.heap_chunks(range);
        for chunk in first..last {
            if self.is_backed(chunk) && self.chunk_is_free(chunk) {
                let whole = Range {
                    start: chunk * LARGE_PAGE_SIZE,
                    end: (chunk + 1) * LARGE_PAGE_SIZE,
                };
                if whole.start < range.start || range.end < whole.end {
                    let _ = release(whole);
                }
                self.set_backed(chunk, false);
                self.backed_chunks -= 1;
            }
        }
        Ok(())
    }
}
