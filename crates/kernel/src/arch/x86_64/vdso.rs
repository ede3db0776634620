//! The code of the isle's vDSO: clock_gettime, gettimeofday and time
//! answered in the program itself, from the TSC, with no kernel entry.
//!
//! The monitor copies `atoll_vdso_start..atoll_vdso_end` into the vDSO image
//! it gives the program (AT_SYSINFO_EHDR) and fills the calibration at
//! `atoll_vdso_data`: the same numbers `crate::time` extrapolates from, so
//! both agree. The code is position-independent and reads its data
//! rip-relative; anything it doesn't serve falls back to the syscall.

use atoll_abi::boot::vdso_data;

core::arch::global_asm!(
    r#"
    .section .text.vdso, "ax"
    .p2align 4
    .global atoll_vdso_start
atoll_vdso_start:
    .global atoll_vdso_data
atoll_vdso_data:
    .fill {data_size}, 1, 0

    // Nanoseconds of the clock in %edi into %rax (CF clear), or CF set
    // for a clock this code doesn't serve. Clobbers rcx, rdx, r8.
atoll_vdso_now:
    lea atoll_vdso_data(%rip), %r8
    cmp $0, %edi
    je 1f
    cmp $5, %edi
    je 1f
    cmp $1, %edi
    je 2f
    cmp $4, %edi
    je 2f
    cmp $6, %edi
    je 2f
    cmp $7, %edi
    je 2f
    stc
    ret
1:
    mov {realtime}(%r8), %rcx
    jmp 3f
2:
    mov {monotonic}(%r8), %rcx
3:
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    sub {tsc_at_boot}(%r8), %rax
    jae 4f
    xor %eax, %eax
4:
    mulq {ns_per_tick_q32}(%r8)
    shrd $32, %rdx, %rax
    add %rcx, %rax
    clc
    ret

    // int clock_gettime(clockid_t, struct timespec *)
    .global atoll_vdso_clock_gettime
atoll_vdso_clock_gettime:
    call atoll_vdso_now
    jc 5f
    xor %edx, %edx
    mov $1000000000, %ecx
    div %rcx
    mov %rax, (%rsi)
    mov %rdx, 8(%rsi)
    xor %eax, %eax
    ret
5:
    mov $228, %eax
    syscall
    ret

    // CLOCK_REALTIME as seconds in %rax and nanoseconds in %rdx.
    // Clobbers rcx, rdi, r8.
atoll_vdso_realtime:
    xor %edi, %edi
    call atoll_vdso_now
    xor %edx, %edx
    mov $1000000000, %ecx
    div %rcx
    ret

    // int gettimeofday(struct timeval *, struct timezone *)
    .global atoll_vdso_gettimeofday
atoll_vdso_gettimeofday:
    test %rsi, %rsi
    jz 6f
    movq $0, (%rsi)
6:
    test %rdi, %rdi
    jz 7f
    mov %rdi, %r9
    call atoll_vdso_realtime
    mov %rax, (%r9)
    mov %rdx, %rax
    xor %edx, %edx
    mov $1000, %ecx
    div %rcx
    mov %rax, 8(%r9)
7:
    xor %eax, %eax
    ret

    // time_t time(time_t *)
    .global atoll_vdso_time
atoll_vdso_time:
    mov %rdi, %r9
    call atoll_vdso_realtime
    test %r9, %r9
    jz 8f
    mov %rax, (%r9)
8:
    ret
    .global atoll_vdso_end
atoll_vdso_end:
    .text
"#,
    data_size = const vdso_data::SIZE,
    tsc_at_boot = const vdso_data::TSC_AT_BOOT,
    ns_per_tick_q32 = const vdso_data::NS_PER_TICK_Q32,
    monotonic = const vdso_data::MONOTONIC_NS,
    realtime = const vdso_data::REALTIME_NS,
    options(att_syntax)
);

extern "C" {
    fn atoll_vdso_start();
}

/// Keeps the vDSO code in the image; the monitor finds it by its symbols.
#[used]
static VDSO: unsafe extern "C" fn() = atoll_vdso_start;
