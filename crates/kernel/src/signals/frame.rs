//! The signal frame Linux builds on x86_64 (`struct rt_sigframe`), written
//! on the program's stack before its handler runs and read back by
//! rt_sigreturn. Handlers (and runtimes such as Go's) read and change the
//! saved registers in it, so its layout is Linux's to the byte:
//!
//! ```text
//! frame + 0    pretcode: the sa_restorer the handler returns to
//! frame + 8    ucontext: uc_flags, uc_link, uc_stack, uc_mcontext (sigcontext), uc_sigmask
//! frame + 312  siginfo (128 bytes)
//! above        the extended state (xsave format, 64-byte aligned), then FP_XSTATE_MAGIC2
//! ```

use atoll_abi::boot::PreemptFrame;
use atoll_abi::layout::selector;

use super::state::{AltStack, Delivery, Info, SA_ONSTACK, SA_RESTORER};
use crate::arch::x86_64::{switch, user};

const UCONTEXT: u64 = 8;
const UC_STACK: u64 = UCONTEXT + 16;
const UC_MCONTEXT: u64 = UCONTEXT + 40;
const UC_SIGMASK: u64 = UC_MCONTEXT + 256;
const SIGINFO: u64 = UCONTEXT + 304;
const FRAME_SIZE: u64 = SIGINFO + 128;
/// sigcontext's `fpstate` pointer, in words from its start.
const FPSTATE_WORD: usize = 23;
const REDZONE: u64 = 128;

/// uc_flags: the frame holds xsave state, and the saved SS is real.
const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;

/// The software-reserved bytes of the legacy area (`struct _fpx_sw_bytes`)
/// and the word after the state say "this is xsave state of this size".
const SW_BYTES: u64 = 464;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const XSTATE_HEADER: u64 = 512;
const MXCSR: u64 = 24;
/// The rflags bits a handler may change in the saved context (Linux's
/// FIX_EFLAGS): the arithmetic flags, DF, TF, AC and RF, never IF or IOPL.
const USER_FLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x1_0000 | 0x4_0000;
const FLAGS_CLEARED_FOR_HANDLER: u64 = 0x100 | 0x400 | 0x1_0000;
const RFLAGS_BASE: u64 = 0x202;

/// The machine state the frame saves and restores around a handler.
pub struct ExtendedState {
    /// What xsave/xrstor move for this program.
    pub mask: u64,
    /// Bytes of that state in the standard format.
    pub size: u64,
    /// The running thread's own save area (kernel memory, 64-byte aligned).
    pub area: u64,
}

/// Where the handler runs: the stack pointer, and whether that is on the
/// alternate stack (which SS_AUTODISARM then disarms).
fn frame_top(context: &PreemptFrame, delivery: &Delivery) -> (u64, bool) {
    let stack = delivery.alt_stack;
    let usable =
        delivery.action.flags & SA_ONSTACK != 0 && stack.size != 0 && !stack.contains(context.rsp);
    if usable {
        (stack.sp + stack.size, true)
    } else {
        (context.rsp - REDZONE, false)
    }
}

/// Writes the frame for `delivery` below the interrupted `context` and
/// turns `context` into the handler's entry. Returns whether the
/// alternate stack was entered; Err when the stack can't hold the frame.
pub fn push(
    context: &mut PreemptFrame,
    delivery: &Delivery,
    fpu: &ExtendedState,
) -> Result<bool, i64> {
    // x86_64 handlers return through the restorer the C library gives.
    if delivery.action.flags & SA_RESTORER == 0 {
        return Err(atoll_abi::linux::errno::EFAULT);
    }
    let (top, entered_alt_stack) = frame_top(context, delivery);
    let fp_bytes = fpu.size + 4;
    let fpstate = top
        .checked_sub(fp_bytes)
        .ok_or(atoll_abi::linux::errno::EFAULT)?
        & !63;
    let frame = ((fpstate - FRAME_SIZE) & !15) - 8;

    // The program's extended state is still live (the kernel never
    // touches it): save it, then show it in the frame with the marks
    // that say what it is.
    switch::save_extended_state(fpu.area, fpu.mask);
    user::copy_within(fpu.area, fpstate, fpu.size)?;
    user::write(
        fpstate + SW_BYTES,
        [
            u64::from(FP_XSTATE_MAGIC1) | ((fp_bytes) << 32),
            fpu.mask,
            fpu.size,
        ],
    )?;
    user::write(fpstate + fpu.size, FP_XSTATE_MAGIC2)?;

    let stack = delivery.alt_stack;
    user::write(frame, delivery.action.restorer)?;
    user::write(
        frame + UCONTEXT,
        [
            UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
            0,
            stack.sp,
            u64::from(stack.reported_flags(context.rsp)),
            stack.size,
        ],
    )?;
    user::write(
        frame + UC_MCONTEXT,
        sigcontext(context, fpstate, &delivery.info),
    )?;
    user::write(frame + UC_SIGMASK, delivery.mask_to_restore)?;
    user::write(frame + SIGINFO, siginfo(&delivery.info))?;

    *context = PreemptFrame {
        rdi: u64::from(delivery.info.signal),
        rsi: frame + SIGINFO,
        rdx: frame + UCONTEXT,
        rax: 0,
        rip: delivery.action.handler,
        rsp: frame,
        rflags: context.rflags & !FLAGS_CLEARED_FOR_HANDLER,
        ..*context
    };
    Ok(entered_alt_stack)
}

/// The handler starts with the extended state in its initial form, as on
/// Linux (a fresh FPU control word and MXCSR, every register zero).
pub fn reset_extended_state(fpu: &ExtendedState) -> Result<(), i64> {
    initial_extended_state(fpu.area)?;
    switch::restore_extended_state(fpu.area, fpu.mask);
    Ok(())
}

/// An area whose header marks every component initial, with the reset
/// values xrstor takes from the legacy area whatever the header says.
fn initial_extended_state(area: u64) -> Result<(), i64> {
    user::fill(area, atoll_abi::xstate::LEGACY_AND_HEADER, 0)?;
    user::write(area, 0x037f_u16)?;
    user::write(area + MXCSR, 0x1f80_u32)
}

fn sigcontext(context: &PreemptFrame, fpstate: u64, info: &Info) -> [u64; 32] {
    let c = context;
    let segments = u64::from(selector::USER_CODE) | (u64::from(selector::USER_DATA) << 48);
    let mut words = [
        c.r8, c.r9, c.r10, c.r11, c.r12, c.r13, c.r14, c.r15, c.rdi, c.rsi, c.rbp, c.rbx, c.rdx,
        c.rax, c.rcx, c.rsp, c.rip, c.rflags, segments, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    // err, trapno, oldmask stay 0; cr2 is the faulting address.
    words[22] = if is_fault(info) {
        info.address_or_value
    } else {
        0
    };
    words[FPSTATE_WORD] = fpstate;
    words
}

fn is_fault(info: &Info) -> bool {
    use super::state::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
    info.code > 0 && matches!(info.signal, SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP)
}

/// siginfo_t's first 32 bytes (the rest is zero): signo, errno, code, then
/// the union: si_pid/si_uid (kill), si_addr (faults), or si_timerid,
/// si_overrun and si_value (timers). Also what sigtimedwait hands over.
pub fn siginfo(info: &Info) -> [u64; 16] {
    let mut words = [0u64; 16];
    words[0] = u64::from(info.signal) | (u64::from(info.errno as u32) << 32);
    words[1] = u64::from(info.code as u32);
    if is_fault(info) {
        words[2] = info.address_or_value;
    } else if info.code == super::state::SI_TIMER {
        words[2] = u64::from(info.timer_id) | (u64::from(info.overrun) << 32);
        words[3] = info.address_or_value;
    } else {
        words[2] = u64::from(info.pid) | (u64::from(info.uid) << 32);
        words[3] = info.address_or_value;
    }
    words
}

/// What rt_sigreturn takes back from the frame at `frame`.
pub struct Restored {
    pub context: PreemptFrame,
    pub mask: u64,
    pub alt_stack: AltStack,
}

/// Reads the frame a handler returned from (at `frame`: its stack pointer
/// at rt_sigreturn, less the restorer address the handler's `ret` popped),
/// restores the extended state saved in it, and gives back the rest.
pub fn pop(frame: u64, current_rflags: u64, fpu: &ExtendedState) -> Result<Restored, i64> {
    let words: [u64; 32] = user::read(frame + UC_MCONTEXT)?;
    let mask: u64 = user::read(frame + UC_SIGMASK)?;
    let [sp, flags, size] = user::read::<[u64; 3]>(frame + UC_STACK)?;
    let [r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, rflags, ..] =
        words;
    let context = PreemptFrame {
        rax,
        rbx,
        rcx,
        rdx,
        rsi,
        rdi,
        rbp,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rip,
        rflags: (current_rflags & !USER_FLAGS) | (rflags & USER_FLAGS) | RFLAGS_BASE,
        rsp,
    };
    restore_extended_state(words[FPSTATE_WORD], fpu)?;
    Ok(Restored {
        context,
        mask,
        alt_stack: AltStack {
            sp,
            flags: flags as u32,
            size,
        },
    })
}

/// Loads the extended state from a frame's `fpstate`: copied into the
/// thread's own area first and made valid there (header bits only for
/// components in force, reserved bytes zero, MXCSR's reserved bits clear),
/// so that no program-written bytes can make xrstor fault. No fpstate
/// means the initial state; one without the xsave marks, x87 and SSE only.
fn restore_extended_state(fpstate: u64, fpu: &ExtendedState) -> Result<(), i64> {
    if fpstate == 0 {
        return reset_extended_state(fpu);
    }
    let [magic_and_size, _features, _size] = user::read::<[u64; 3]>(fpstate + SW_BYTES)?;
    let has_xstate = magic_and_size as u32 == FP_XSTATE_MAGIC1
        && magic_and_size >> 32 == fpu.size + 4
        && user::read::<u32>(fpstate + fpu.size)? == FP_XSTATE_MAGIC2;
    let (copied, components) = if has_xstate {
        (fpu.size, fpu.mask)
    } else {
        (512, fpu.mask & 0b11)
    };
    user::copy_within(fpstate, fpu.area, copied)?;
    let header = fpu.area + XSTATE_HEADER;
    let present: u64 = if has_xstate {
        user::read(header)?
    } else {
        0b11
    };
    user::fill(header, 64, 0)?;
    user::write(header, present & components)?;
    let mxcsr: u32 = user::read(fpu.area + MXCSR)?;
    user::write(fpu.area + MXCSR, mxcsr & 0xffff)?;
    switch::restore_extended_state(fpu.area, fpu.mask);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::state::{Action, SI_TKILL};

    fn delivery(flags: u64, alt_stack: AltStack) -> Delivery {
        Delivery {
            info: Info {
                signal: 10,
                code: SI_TKILL,
                pid: 7,
                uid: 1000,
                ..Info::default()
            },
            action: Action {
                handler: 0x40_1000,
                flags: flags | SA_RESTORER,
                restorer: 0x40_2000,
                mask: 0,
            },
            mask_to_restore: 0x5,
            alt_stack,
        }
    }

    fn interrupted() -> PreemptFrame {
        PreemptFrame {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rbp: 7,
            r8: 8,
            r9: 9,
            r10: 10,
            r11: 11,
            r12: 12,
            r13: 13,
            r14: 14,
            r15: 15,
            rip: 0x40_3000,
            rflags: 0x246 | 0x400,
            rsp: 0x7f_0000,
        }
    }

    const FPU: ExtendedState = ExtendedState {
        mask: 0b11,
        size: 576,
        area: 0x10_0000,
    };

    #[test]
    fn the_frame_is_linuxs_and_comes_back_whole() {
        let mut context = interrupted();
        let entered = push(&mut context, &delivery(0, AltStack::DISABLED), &FPU).unwrap();
        assert!(!entered);
        // Below the red zone, 16-byte aligned less the return address.
        assert_eq!((context.rsp + 8) % 16, 0);
        assert!(context.rsp + FRAME_SIZE + 576 <= 0x7f_0000 - REDZONE);
        assert_eq!(context.rip, 0x40_1000);
        assert_eq!(context.rdi, 10);
        assert_eq!(context.rsi, context.rsp + 312);
        assert_eq!(context.rdx, context.rsp + 8);
        assert_eq!(context.rflags & 0x400, 0, "DF is clear in the handler");
        assert_eq!(user::read::<u64>(context.rsp).unwrap(), 0x40_2000);
        // siginfo: signo 10, code SI_TKILL, pid 7, uid 1000.
        let info: [u64; 3] = user::read(context.rsi).unwrap();
        assert_eq!(info[0], 10);
        assert_eq!(info[1] as u32 as i32, SI_TKILL);
        assert_eq!(info[2], 7 | (1000 << 32));
        // gregs as glibc's REG_* index them: REG_RIP is 16, REG_RSP 15.
        let gregs: [u64; 32] = user::read(context.rdx + 40).unwrap();
        assert_eq!(gregs[16], 0x40_3000);
        assert_eq!(gregs[15], 0x7f_0000);
        assert_eq!(gregs[13], 1, "REG_RAX");
        let fpstate = gregs[FPSTATE_WORD];
        assert_eq!(fpstate % 64, 0);
        assert_eq!(
            user::read::<u32>(fpstate + SW_BYTES).unwrap(),
            FP_XSTATE_MAGIC1
        );
        assert_eq!(user::read::<u32>(fpstate + 576).unwrap(), FP_XSTATE_MAGIC2);
        assert_eq!(user::read::<u64>(context.rdx + 296).unwrap(), 0x5);

        // A handler changes the saved rip; rt_sigreturn takes it back.
        user::write(context.rdx + 40 + 16 * 8, 0x40_4000_u64).unwrap();
        let restored = pop(context.rsp + 8 - 8, 0x202, &FPU).unwrap();
        let expected = PreemptFrame {
            rip: 0x40_4000,
            rflags: 0x246 | 0x400,
            ..interrupted()
        };
        assert_eq!(restored.context, expected);
        assert_eq!(restored.mask, 0x5);
    }

    #[test]
    fn sigreturn_never_gives_the_program_iopl_or_a_cleared_interrupt_flag() {
        let mut context = interrupted();
        push(&mut context, &delivery(0, AltStack::DISABLED), &FPU).unwrap();
        user::write(context.rdx + 40 + 17 * 8, 0x3000_u64 | 0x1).unwrap();
        let restored = pop(context.rsp, 0x202, &FPU).unwrap();
        assert_eq!(restored.context.rflags, 0x202 | 0x1);
    }

    #[test]
    fn sa_onstack_runs_the_handler_on_the_alternate_stack_once() {
        let stack = AltStack {
            sp: 0x50_0000,
            flags: 0,
            size: 0x4000,
        };
        let mut context = interrupted();
        assert!(push(&mut context, &delivery(SA_ONSTACK, stack), &FPU).unwrap());
        assert!(stack.contains(context.rsp));
        // uc_stack says where the handler runs.
        let uc_stack: [u64; 3] = user::read(context.rdx + 16).unwrap();
        assert_eq!(uc_stack, [0x50_0000, 0, 0x4000]);
        // A signal arriving while already on it nests on the same stack.
        let mut nested = context;
        assert!(!push(&mut nested, &delivery(SA_ONSTACK, stack), &FPU).unwrap());
        assert!(nested.rsp < context.rsp && stack.contains(nested.rsp));
    }
}
