//! A GDB stub for the KVM backend (the gdbstub crate): one vCPU; registers
//! through KVM; memory through the isle's fixed mappings (identity below the
//! kernel, the kernel at its link address); single steps through KVM guest
//! debugging. Breakpoints are `int3`s written into guest memory: the `int3`
//! reaches the kernel's ring-0 fault pad, whose FAULT doorbell the monitor
//! takes as the stop, and the monitor returns the vCPU to ring 3 itself as
//! the pad's `iretq` would (kvm-pvm reports neither KVM_GUESTDBG_USE_SW_BP
//! nor debug-register hits; where KVM does take the `int3`, that works
//! too). The kernel's own `int3` (its TLB flush) never reaches the pad's
//! FAULT path, so it stays the kernel's. Hardware breakpoints (`hbreak`)
//! use the debug registers: kvm-pvm accepts them but never reports a hit.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::{TcpListener, TcpStream};

use atoll_abi::layout::KERNEL_VIRT_BASE;
use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::{X86SegmentRegs, X86_64CoreRegs};
use gdbstub_arch::x86::X86_64_SSE;
use kvm_bindings::{
    kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use super::{run_until_stop, Shared, Stop};
use crate::backend::GdbOptions;
use crate::isle::Outcome;

/// The isle as GDB sees it.
struct Isle<'a> {
    shared: &'a Shared,
    vcpu: VcpuFd,
    /// DR0-DR3.
    breakpoints: [Option<u64>; 4],
    /// `int3`s written into guest memory: address, the byte they replaced.
    sw_breakpoints: BTreeMap<u64, u8>,
    stepping: bool,
    ended: Option<Outcome>,
}

impl Isle<'_> {
    /// Where `len` bytes at guest virtual `address` are in guest RAM.
    fn physical(&self, address: u64, len: usize) -> Option<u64> {
        let layout = &self.shared.layout;
        let len = len as u64;
        if address >= KERNEL_VIRT_BASE {
            let physical = layout.kernel_physical(address);
            (physical.checked_add(len)? <= layout.kernel_phys_end).then_some(physical)
        } else {
            (address.checked_add(len)? <= self.shared.ram.size()).then_some(address)
        }
    }

    /// Loads the breakpoints and the step flag into KVM.
    fn apply_debug(&self) -> Result<(), String> {
        let mut debug = kvm_guest_debug {
            control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
            ..Default::default()
        };
        if self.stepping {
            debug.control |= KVM_GUESTDBG_SINGLESTEP;
        }
        let mut dr7 = 0;
        for (index, breakpoint) in self.breakpoints.iter().enumerate() {
            if let Some(address) = breakpoint {
                debug.arch.debugreg[index] = *address;
                // Local enable; condition 00 (execute), length 00.
                dr7 |= 1 << (2 * index);
            }
        }
        debug.arch.debugreg[7] = dr7;
        self.vcpu
            .set_guest_debug(&debug)
            .map_err(|error| format!("KVM refused guest debugging: {error}"))
    }

    fn add_sw_breakpoint_at(&mut self, address: u64) -> bool {
        if self.sw_breakpoints.contains_key(&address) {
            return true;
        }
        let Some(physical) = self.physical(address, 1) else {
            return false;
        };
        let memory = self.shared.ram.memory();
        let Ok(original) = memory.read_obj::<u8>(GuestAddress(physical)) else {
            return false;
        };
        if memory.write_obj(0xccu8, GuestAddress(physical)).is_err() {
            return false;
        }
        self.sw_breakpoints.insert(address, original);
        true
    }

    fn remove_sw_breakpoint_at(&mut self, address: u64) -> bool {
        let (Some(original), Some(physical)) = (
            self.sw_breakpoints.remove(&address),
            self.physical(address, 1),
        ) else {
            return false;
        };
        self.shared
            .ram
            .memory()
            .write_obj(original, GuestAddress(physical))
            .is_ok()
    }

    /// A breakpoint or a step reached the kernel's fault pad (frame at
    /// `frame`): puts the vCPU back in ring 3 as the pad's `iretq` would,
    /// on the `int3` if it is one of GDB's (true), past it otherwise.
    fn return_from_pad(&mut self, frame: u64) -> Result<bool, String> {
        let ram = &self.shared.ram;
        let frame = crate::isle::read_frame(ram, frame)
            .ok_or_else(|| format!("breakpoint with a bad frame address {frame:#x}"))?;
        let area = self.shared.layout.cpu_area(0);
        let rax: u64 = ram
            .memory()
            .read_obj(GuestAddress(
                area + atoll_abi::boot::CPU_AREA_FAULT_RAX as u64,
            ))
            .map_err(|error| error.to_string())?;
        let address = frame.rip.wrapping_sub(1);
        let ours = frame.vector == 3 && self.sw_breakpoints.contains_key(&address);
        let rip = if ours { address } else { frame.rip };
        // No trap flag left from a step: KVM sets it again for the next.
        let rflags = frame.rflags & !0x100;
        crate::backend::kvm::vcpu::return_to_user(&self.vcpu, rip, frame.rsp, rflags, rax)
            .map_err(|error| error.to_string())?;
        Ok(ours)
    }

    /// Puts rip back on a breakpoint's `int3` if KVM stopped past it.
    fn rewind_to_breakpoint(&mut self, rip: u64) -> Result<bool, String> {
        let mut regs = self.vcpu.get_regs().map_err(|e| e.to_string())?;
        for address in [rip, regs.rip, regs.rip.wrapping_sub(1)] {
            if self.sw_breakpoints.contains_key(&address) {
                if regs.rip != address {
                    regs.rip = address;
                    self.vcpu.set_regs(&regs).map_err(|e| e.to_string())?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn add_breakpoint(&mut self, address: u64) -> bool {
        if self.breakpoints.contains(&Some(address)) {
            return true;
        }
        match self.breakpoints.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(address);
                true
            }
            None => false,
        }
    }

    fn remove_breakpoint(&mut self, address: u64) -> bool {
        match self
            .breakpoints
            .iter_mut()
            .find(|slot| **slot == Some(address))
        {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }
}

fn fatal(error: impl std::fmt::Display) -> TargetError<String> {
    TargetError::Fatal(error.to_string())
}

impl Target for Isle<'_> {
    type Arch = X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadBase for Isle<'_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        let r = self.vcpu.get_regs().map_err(fatal)?;
        regs.regs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        regs.rip = r.rip;
        regs.eflags = r.rflags as u32;
        let s = self.vcpu.get_sregs().map_err(fatal)?;
        regs.segments = X86SegmentRegs {
            cs: u32::from(s.cs.selector),
            ss: u32::from(s.ss.selector),
            ds: u32::from(s.ds.selector),
            es: u32::from(s.es.selector),
            fs: u32::from(s.fs.selector),
            gs: u32::from(s.gs.selector),
        };
        if let Ok(fpu) = self.vcpu.get_fpu() {
            regs.mxcsr = fpu.mxcsr;
            for (xmm, bytes) in regs.xmm.iter_mut().zip(fpu.xmm.iter()) {
                *xmm = u128::from_le_bytes(*bytes);
            }
            for (st, bytes) in regs.st.iter_mut().zip(fpu.fpr.iter()) {
                st.copy_from_slice(&bytes[..10]);
            }
        }
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        let mut r = self.vcpu.get_regs().map_err(fatal)?;
        [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ] = regs.regs;
        r.rip = regs.rip;
        r.rflags = u64::from(regs.eflags);
        self.vcpu.set_regs(&r).map_err(fatal)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let Some(physical) = self.physical(start, data.len()) else {
            return Err(TargetError::NonFatal);
        };
        self.shared
            .ram
            .memory()
            .read_slice(data, GuestAddress(physical))
            .map_err(|_| TargetError::NonFatal)?;
        // GDB sees the code, not its breakpoints.
        let end = start + data.len() as u64;
        for (&address, &original) in self.sw_breakpoints.range(start..end) {
            data[(address - start) as usize] = original;
        }
        Ok(data.len())
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        let Some(physical) = self.physical(start, data.len()) else {
            return Err(TargetError::NonFatal);
        };
        self.shared
            .ram
            .memory()
            .write_slice(data, GuestAddress(physical))
            .map_err(|_| TargetError::NonFatal)
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for Isle<'_> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.stepping = false;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Isle<'_> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.stepping = true;
        Ok(())
    }
}

impl Breakpoints for Isle<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Isle<'_> {
    fn add_sw_breakpoint(&mut self, address: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.add_sw_breakpoint_at(address))
    }

    fn remove_sw_breakpoint(&mut self, address: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.remove_sw_breakpoint_at(address))
    }
}

impl HwBreakpoint for Isle<'_> {
    fn add_hw_breakpoint(&mut self, address: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.add_breakpoint(address))
    }

    fn remove_hw_breakpoint(&mut self, address: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.remove_breakpoint(address))
    }
}

struct EventLoop<'a>(PhantomData<&'a ()>);

impl<'a> run_blocking::BlockingEventLoop for EventLoop<'a> {
    type Target = Isle<'a>;
    type Connection = TcpStream;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Isle<'a>,
        conn: &mut TcpStream,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        run_blocking::WaitForStopReasonError<String, std::io::Error>,
    > {
        use run_blocking::{Event, WaitForStopReasonError};
        // GDB's Ctrl-C is seen between runs (a run ends at the next exit).
        if conn
            .peek()
            .map_err(WaitForStopReasonError::Connection)?
            .is_some()
        {
            let byte = conn.read().map_err(WaitForStopReasonError::Connection)?;
            return Ok(Event::IncomingData(byte));
        }
        if target.ended.is_some() {
            return Ok(Event::TargetStopped(SingleThreadStopReason::Terminated(
                Signal::SIGKILL,
            )));
        }
        target
            .apply_debug()
            .map_err(WaitForStopReasonError::Target)?;
        let reason = loop {
            match run_until_stop(target.shared, &mut target.vcpu, 0, true) {
                // Where KVM takes int3s itself.
                Stop::Debug { exception: 3, rip } => {
                    if target
                        .rewind_to_breakpoint(rip)
                        .map_err(WaitForStopReasonError::Target)?
                    {
                        break SingleThreadStopReason::SwBreak(());
                    }
                    break SingleThreadStopReason::Signal(Signal::SIGTRAP);
                }
                // Where the int3 or the step's #DB reached the kernel's pad
                // (kvm-pvm delivers them to the guest).
                Stop::Trap { vector, frame } => {
                    let ours = target
                        .return_from_pad(frame)
                        .map_err(WaitForStopReasonError::Target)?;
                    if ours {
                        break SingleThreadStopReason::SwBreak(());
                    }
                    if vector == 1 && target.stepping {
                        break SingleThreadStopReason::DoneStep;
                    }
                    // The program's own int3: the debugger's business.
                    break SingleThreadStopReason::Signal(Signal::SIGTRAP);
                }
                // The step's #DB went into the guest (kvm-pvm): let the pad
                // run, unstepped, to its FAULT doorbell (above).
                Stop::Debug { rip, .. }
                    if target.stepping
                        && (target.shared.exception_vectors
                            ..target.shared.exception_vectors + 32 * 16)
                            .contains(&rip) =>
                {
                    let mut debug = kvm_guest_debug {
                        control: KVM_GUESTDBG_ENABLE,
                        ..Default::default()
                    };
                    debug.arch.debugreg[7] = 0;
                    target
                        .vcpu
                        .set_guest_debug(&debug)
                        .map_err(|error| WaitForStopReasonError::Target(error.to_string()))?;
                    continue;
                }
                Stop::Debug { .. } if target.stepping => break SingleThreadStopReason::DoneStep,
                Stop::Debug { .. } => break SingleThreadStopReason::HwBreak(()),
                Stop::Ended(outcome) => {
                    let reason = match &outcome {
                        Outcome::Exited(status) => SingleThreadStopReason::Exited(*status),
                        Outcome::Killed { signal, .. } => {
                            SingleThreadStopReason::Terminated(Signal(*signal as u8))
                        }
                        Outcome::Crashed(_) => SingleThreadStopReason::Terminated(Signal::SIGKILL),
                        // The debugged program is gone: a new one runs.
                        Outcome::Exec => SingleThreadStopReason::Exited(0),
                    };
                    target.ended = Some(outcome);
                    break reason;
                }
            }
        };
        Ok(Event::TargetStopped(reason))
    }

    fn on_interrupt(_target: &mut Isle<'a>) -> Result<Option<Self::StopReason>, String> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Waits for GDB on the options' port, serves it until it leaves, and runs
/// the isle on (undebugged) if it is still alive then.
pub(super) fn serve(shared: &Shared, vcpu: VcpuFd, options: &GdbOptions) -> Outcome {
    shared.preemption.register_current_thread(0);
    let listener = match TcpListener::bind(("127.0.0.1", options.port)) {
        Ok(listener) => listener,
        Err(error) => {
            return Outcome::Crashed(format!(
                "cannot wait for GDB on 127.0.0.1:{}: {error}",
                options.port
            ))
        }
    };
    eprintln!("{}", options.hint());
    let stream = match listener.accept() {
        Ok((stream, _)) => stream,
        Err(error) => return Outcome::Crashed(format!("GDB didn't connect: {error}")),
    };
    let mut isle = Isle {
        shared,
        vcpu,
        breakpoints: [None; 4],
        sw_breakpoints: BTreeMap::new(),
        stepping: false,
        ended: None,
    };
    let session = GdbStub::new(stream).run_blocking::<EventLoop>(&mut isle);
    if let Some(outcome) = isle.ended.take() {
        std::mem::forget(isle.vcpu);
        return outcome;
    }
    match session {
        Ok(DisconnectReason::Kill) => {
            std::mem::forget(isle.vcpu);
            Outcome::Killed {
                signal: 9,
                report: "program killed from GDB".into(),
            }
        }
        Ok(_) | Err(_) => {
            // GDB left with the isle alive: it runs on, undebugged, without
            // breakpoints and without the trap flag a last step may leave.
            let addresses: Vec<u64> = isle.sw_breakpoints.keys().copied().collect();
            for address in addresses {
                isle.remove_sw_breakpoint_at(address);
            }
            let _ = isle.vcpu.set_guest_debug(&kvm_guest_debug::default());
            if let Ok(mut regs) = isle.vcpu.get_regs() {
                regs.rflags &= !0x100;
                let _ = isle.vcpu.set_regs(&regs);
            }
            let mut vcpu = isle.vcpu;
            let outcome = loop {
                if let Stop::Ended(outcome) = run_until_stop(shared, &mut vcpu, 0, false) {
                    break outcome;
                }
            };
            std::mem::forget(vcpu);
            outcome
        }
    }
}
