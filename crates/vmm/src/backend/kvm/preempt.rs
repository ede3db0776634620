//! Preemption without guest interrupts.
//!
//! A timer interrupt costs 100 µs or more on kvm-pvm, so no vCPU ever gets
//! one. Instead a ticker thread looks at the kernel's scheduler hints every
//! few milliseconds, and as a timed wait or a timer falls due. When threads
//! wait for a CPU (or a completion waits to be reaped) and a vCPU has been
//! running program code for a whole tick, or when a deadline has passed
//! and a vCPU runs program code, the ticker signals that vCPU's thread.
//! KVM_RUN returns, the vCPU thread saves the
//! program's registers into the CPU area and redirects the vCPU to the
//! kernel's preemption entry, like a signal upcall. Only program code is
//! ever interrupted: a vCPU in the kernel reaches a scheduling point soon.
//! The ticker also interrupts a vCPU whose thread has a signal to act on
//! (the kernel flags it in the CPU area) as soon as it runs program code.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atoll_abi::boot::{CpuArea, PreemptFrame};
use atoll_abi::layout::KERNEL_VIRT_BASE;
use atoll_abi::queue;
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::guest::setup::Layout;

/// How often the ticker looks; a CPU is preempted after one to two ticks.
pub const TICK: Duration = Duration::from_millis(5);
/// The shortest sleep between looks, so a deadline the kernel hasn't
/// acted on yet (its CPU is in the kernel) doesn't make the ticker spin.
const MIN_SLEEP: Duration = Duration::from_micros(100);

/// Per-vCPU preemption state shared by the ticker and the vCPU threads.
pub struct Preemption {
    requested: Vec<AtomicBool>,
    /// pthread_t of each vCPU thread, once it runs (0 before).
    threads: Vec<AtomicU64>,
    /// The isle has ended and the process goes on (an execve's next isle):
    /// the ticker stops, and nothing signals the old vCPU threads.
    ended: AtomicBool,
}

fn signal_number() -> i32 {
    vmm_sys_util::signal::SIGRTMIN() + 1
}

extern "C" fn interrupt_kvm_run(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

fn area_field(layout: &Layout, cpu: usize, offset: usize) -> GuestAddress {
    GuestAddress(layout.cpu_area(cpu as u64) + offset as u64)
}

impl Preemption {
    pub fn new(cpu_count: usize) -> Arc<Self> {
        // Only interrupts KVM_RUN; the handler itself does nothing.
        let _ = vmm_sys_util::signal::register_signal_handler(signal_number(), interrupt_kvm_run);
        Arc::new(Self {
            requested: (0..cpu_count).map(|_| AtomicBool::new(false)).collect(),
            threads: (0..cpu_count).map(|_| AtomicU64::new(0)).collect(),
            ended: AtomicBool::new(false),
        })
    }

    /// The isle has ended: the ticker stops at its next tick, letting go of
    /// the isle's memory, and no vCPU thread is signalled again.
    pub fn stop(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Called by vCPU thread `cpu` when it starts.
    pub fn register_current_thread(&self, cpu: usize) {
        self.threads[cpu].store(crate::host::current_thread_id(), Ordering::SeqCst);
    }

    /// Starts the ticker.
    pub fn spawn_ticker(self: &Arc<Self>, ram: Arc<GuestRam>, layout: Layout, core: Option<usize>) {
        let preemption = Arc::clone(self);
        std::thread::Builder::new()
            .name("atoll-ticker".into())
            .spawn(move || {
                if let Some(core) = core {
                    crate::host::pin_current_thread(core);
                }
                preemption.tick_forever(&ram, &layout)
            })
            .expect("spawning a thread only fails when the host is out of resources");
    }

    fn tick_forever(&self, ram: &GuestRam, layout: &Layout) {
        let count = self.requested.len();
        let mut last_epoch = vec![0u64; count];
        let mut deadline: u64 = 0;
        let mut acted_on: u64 = 0;
        loop {
            // A tick, or less when a timed wait or a timer is due sooner;
            // a whole tick again once the ticker has acted on a deadline
            // the kernel hasn't moved on from yet.
            let now = crate::host::monotonic_ns();
            let sleep = match deadline {
                0 => TICK,
                deadline if deadline == acted_on => TICK,
                deadline => Duration::from_nanos(deadline.saturating_sub(now)).min(TICK),
            };
            std::thread::sleep(sleep.max(MIN_SLEEP));
            if self.ended.load(Ordering::SeqCst) {
                return;
            }
            let memory = ram.memory();
            let read = |cpu: usize, offset: usize| {
                memory
                    .read_obj::<u64>(area_field(layout, cpu, offset))
                    .unwrap_or(0)
            };
            let waiting = read(0, std::mem::offset_of!(CpuArea, runnable_waiting));
            deadline = read(0, std::mem::offset_of!(CpuArea, next_deadline_ns));
            let due = deadline != 0 && crate::host::monotonic_ns() >= deadline;
            // A completion nobody reaped: its thread waits to be woken by a
            // CPU that enters the kernel.
            let unreaped = (0..count).any(|cpu| {
                let queue = std::mem::offset_of!(CpuArea, queue);
                let index = |field: usize| {
                    memory
                        .load::<u32>(area_field(layout, cpu, queue + field), Ordering::SeqCst)
                        .unwrap_or(0)
                };
                index(queue::offset::CQ_TAIL) != index(queue::offset::CQ_HEAD)
            });
            let mut wanted = if waiting > 0 {
                waiting as usize
            } else {
                usize::from(unreaped)
            };
            // Something due: the first CPU running program code goes to the
            // kernel now, not after a whole tick there.
            let mut due_now = due;
            if due {
                acted_on = deadline;
            }
            for (cpu, last) in last_epoch.iter_mut().enumerate() {
                let epoch = read(cpu, std::mem::offset_of!(CpuArea, user_epoch));
                let in_program = epoch % 2 == 1;
                let in_program_all_tick = in_program && epoch == *last;
                *last = epoch;
                // A signal for the thread running there: interrupt it now if
                // it runs program code (in the kernel it sees it on the way out).
                let signal_field =
                    area_field(layout, cpu, std::mem::offset_of!(CpuArea, signal_upcall));
                let signalled =
                    in_program && memory.read_obj::<u64>(signal_field).unwrap_or(0) != 0;
                if signalled {
                    let _ = memory.write_obj(0u64, signal_field);
                }
                if signalled || (due_now && in_program) {
                    due_now = false;
                    self.interrupt(cpu);
                } else if wanted > 0 && in_program_all_tick {
                    wanted -= 1;
                    self.interrupt(cpu);
                }
            }
        }
    }

    /// The SIGNAL doorbell: a thread on vCPU `cpu` has a signal. Interrupted
    /// now; if it isn't in program code then, the kernel sees the signal on
    /// its way out (and the ticker's look catches the rest).
    pub fn interrupt_for_signal(&self, cpu: usize) {
        if cpu < self.requested.len() {
            self.interrupt(cpu);
        }
    }

    fn interrupt(&self, cpu: usize) {
        let thread = self.threads[cpu].load(Ordering::SeqCst);
        if thread == 0 || self.ended.load(Ordering::SeqCst) {
            return;
        }
        self.requested[cpu].store(true, Ordering::SeqCst);
        // vCPU threads live as long as their isle, and the signal has a handler.
        crate::host::signal_thread(thread, signal_number());
    }

    /// After KVM_RUN was interrupted: redirects vCPU `cpu` to the kernel's
    /// preemption entry if the ticker asked and it is in program code.
    pub fn preempt_if_requested(
        &self,
        vcpu: &VcpuFd,
        cpu: usize,
        ram: &GuestRam,
        layout: &Layout,
        entry: u64,
    ) -> bool {
        if !self.requested[cpu].swap(false, Ordering::SeqCst) {
            return false;
        }
        let Ok(mut regs) = vcpu.get_regs() else {
            return false;
        };
        if regs.rip >= KERNEL_VIRT_BASE {
            return false;
        }
        let frame = PreemptFrame {
            rax: regs.rax,
            rbx: regs.rbx,
            rcx: regs.rcx,
            rdx: regs.rdx,
            rsi: regs.rsi,
            rdi: regs.rdi,
            rbp: regs.rbp,
            r8: regs.r8,
            r9: regs.r9,
            r10: regs.r10,
            r11: regs.r11,
            r12: regs.r12,
            r13: regs.r13,
            r14: regs.r14,
            r15: regs.r15,
            rip: regs.rip,
            rflags: regs.rflags,
            rsp: regs.rsp,
        };
        let words = [
            frame.rax,
            frame.rbx,
            frame.rcx,
            frame.rdx,
            frame.rsi,
            frame.rdi,
            frame.rbp,
            frame.r8,
            frame.r9,
            frame.r10,
            frame.r11,
            frame.r12,
            frame.r13,
            frame.r14,
            frame.r15,
            frame.rip,
            frame.rflags,
            frame.rsp,
        ];
        let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
        let memory = ram.memory();
        if memory
            .write_slice(
                &bytes,
                area_field(layout, cpu, std::mem::offset_of!(CpuArea, preempt_frame)),
            )
            .is_err()
        {
            return false;
        }
        let Ok(stack) = memory.read_obj::<u64>(area_field(
            layout,
            cpu,
            atoll_abi::boot::CPU_AREA_KERNEL_STACK_TOP,
        )) else {
            return false;
        };
        regs.rip = entry;
        regs.rsp = stack;
        regs.rflags = 0x2;
        vcpu.set_regs(&regs).is_ok()
    }
}
