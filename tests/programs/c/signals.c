// Signals delivered to handlers, each case printing what it saw, so that
// an isle's run can be compared line for line with a native one.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>

#include "handlers.h"

static volatile sig_atomic_t handled;
static volatile int seen_signo, seen_code, seen_pid_is_ours, seen_tid;

static void on_info(int signo, siginfo_t *info, void *context) {
    (void)context;
    handled++;
    seen_signo = signo;
    seen_code = info->si_code;
    seen_pid_is_ours = info->si_pid == getpid();
    seen_tid = (int)syscall(SYS_gettid);
}

static void raise_runs_the_handler(void) {
    install(SIGUSR1, on_info, 0);
    handled = 0;
    raise(SIGUSR1);
    printf("raise: handled=%d signo=%d code=%d pid_is_ours=%d\n", handled, seen_signo,
           seen_code, seen_pid_is_ours);
    kill(getpid(), SIGUSR1);
    printf("kill: handled=%d code=%d pid_is_ours=%d\n", handled, seen_code, seen_pid_is_ours);
}

static void set_rax(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    ((ucontext_t *)context)->uc_mcontext.gregs[REG_RAX] = 42;
}

static void a_handler_changes_the_saved_context(void) {
    install(SIGUSR2, set_rax, 0);
    long result = syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR2);
    printf("context: the interrupted call returns %ld\n", result);
}

static void masks_hold_signals_until_unblocked(void) {
    install(SIGUSR1, on_info, 0);
    handled = 0;
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    raise(SIGUSR1);
    sigpending(&pending);
    printf("mask: handled while blocked=%d pending=%d\n", handled, sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("mask: handled once unblocked=%d (merged)\n", handled);
}

static volatile int depth, deepest, calls;
static void nested(int signo, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    depth++;
    calls++;
    if (depth > deepest)
        deepest = depth;
    if (calls < 3)
        raise(signo);
    depth--;
}

static void nodefer_nests_and_resethand_resets(void) {
    install(SIGUSR1, nested, SA_NODEFER);
    deepest = calls = 0;
    raise(SIGUSR1);
    printf("nodefer: deepest=%d calls=%d\n", deepest, calls);
    install(SIGUSR1, nested, 0);
    deepest = calls = 0;
    raise(SIGUSR1);
    printf("deferred: deepest=%d calls=%d\n", deepest, calls);
    install(SIGUSR2, on_info, SA_RESETHAND);
    raise(SIGUSR2);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    printf("resethand: reset to default=%d\n", now.sa_handler == SIG_DFL);
}

static char *alt_base;
static size_t alt_size;
static volatile int on_alt, reported_onstack;
static void check_stack(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    (void)context;
    char here;
    on_alt = &here > alt_base && &here < alt_base + alt_size;
    stack_t now;
    sigaltstack(NULL, &now);
    reported_onstack = (now.ss_flags & SS_ONSTACK) != 0;
}

static void sigaltstack_runs_handlers_there(void) {
    alt_size = 64 * 1024;
    alt_base = malloc(alt_size);
    stack_t stack = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    sigaltstack(&stack, NULL);
    install(SIGUSR1, check_stack, SA_ONSTACK);
    raise(SIGUSR1);
    printf("altstack: on it=%d reported SS_ONSTACK=%d\n", on_alt, reported_onstack);
    install(SIGUSR1, check_stack, 0);
    raise(SIGUSR1);
    printf("no SA_ONSTACK: on it=%d\n", on_alt);
    stack.ss_flags = SS_DISABLE;
    sigaltstack(&stack, NULL);
}

static void clobber_vectors(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    (void)context;
    uint64_t junk = 0xdeadbeefdeadbeefull;
    __asm__ volatile("movq %0, %%xmm8\n\tmovq %0, %%xmm0" : : "r"(junk) : "xmm0", "xmm8");
    volatile double x = 1.0;
    for (int i = 0; i < 10; i++)
        x = x * 3.0 + 0.5;
}

static void vector_registers_survive_a_handler(void) {
    install(SIGUSR2, clobber_vectors, 0);
    uint64_t pattern = 0x0123456789abcdefull, after;
    long tid = syscall(SYS_gettid);
    long pid = getpid();
    long number = SYS_tgkill;
    __asm__ volatile("movq %[pattern], %%xmm8\n\t"
                     "mov %[pid], %%rdi\n\t"
                     "mov %[tid], %%rsi\n\t"
                     "mov $12, %%edx\n\t"
                     "syscall\n\t"
                     "movq %%xmm8, %[after]"
                     : [after] "=r"(after), "+a"(number)
                     : [pattern] "r"(pattern), [pid] "r"(pid), [tid] "r"(tid)
                     : "rdi", "rsi", "rdx", "rcx", "r11", "xmm8", "memory");
    printf("xstate: xmm8 kept=%d\n", after == pattern);
}

static sigjmp_buf jump;
static void jump_out(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    (void)context;
    siglongjmp(jump, 1);
}

static void siglongjmp_leaves_a_handler(void) {
    install(SIGUSR1, jump_out, 0);
    if (sigsetjmp(jump, 1) == 0) {
        raise(SIGUSR1);
        printf("siglongjmp: not taken\n");
    } else {
        sigset_t now;
        sigprocmask(SIG_BLOCK, NULL, &now);
        printf("siglongjmp: out, mask restored=%d\n", !sigismember(&now, SIGUSR1));
    }
}

static pthread_t main_thread;
static void *send_later(void *signo) {
    struct timespec pause_time = {0, 20 * 1000 * 1000};
    nanosleep(&pause_time, NULL);
    pthread_kill(main_thread, (int)(intptr_t)signo);
    return NULL;
}

static void sigsuspend_waits_for_a_signal(void) {
    install(SIGUSR1, on_info, 0);
    handled = 0;
    sigset_t block, old, during;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    main_thread = pthread_self();
    pthread_t sender;
    pthread_create(&sender, NULL, send_later, (void *)(intptr_t)SIGUSR1);
    sigemptyset(&during);
    int result = sigsuspend(&during);
    int error = errno;
    sigset_t after;
    sigprocmask(SIG_SETMASK, NULL, &after);
    printf("sigsuspend: %d %s handled=%d blocked again=%d code=%d\n", result, strerror(error),
           handled, sigismember(&after, SIGUSR1), seen_code);
    pthread_join(sender, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void sleep_is_interrupted(void) {
    install(SIGUSR2, on_info, 0);
    main_thread = pthread_self();
    pthread_t sender;
    pthread_create(&sender, NULL, send_later, (void *)(intptr_t)SIGUSR2);
    struct timespec request = {5, 0}, left = {0, 0};
    int result = nanosleep(&request, &left);
    printf("nanosleep: %d %s, some left=%d\n", result, strerror(errno),
           left.tv_sec > 0 && left.tv_sec < 5);
    pthread_join(sender, NULL);
}

static volatile int worker_tid;
static void *wait_in_pause(void *unused) {
    (void)unused;
    worker_tid = (int)syscall(SYS_gettid);
    pause();
    return (void *)(intptr_t)(errno == EINTR);
}

static void pthread_kill_reaches_another_thread(void) {
    install(SIGUSR1, on_info, 0);
    handled = 0;
    pthread_t worker = start_thread_with_tid(wait_in_pause, &worker_tid);
    struct timespec settle = {0, 20 * 1000 * 1000};
    nanosleep(&settle, NULL);
    pthread_kill(worker, SIGUSR1);
    void *eintr;
    pthread_join(worker, &eintr);
    printf("pthread_kill: handled=%d in that thread=%d pause EINTR=%d\n", handled,
           seen_tid == worker_tid, (int)(intptr_t)eintr);
}

static volatile int spinner_started, spinner_stopped;
static void stop_spinning(int signo, siginfo_t *info, void *context) {
    (void)signo, (void)info, (void)context;
    spinner_stopped = 1;
}
static void *spin_until_signalled(void *unused) {
    (void)unused;
    spinner_started = 1;
    while (!spinner_stopped)
        ;
    return NULL;
}

/* The signal reaches a thread that never enters the kernel. */
static void a_spinning_thread_is_interrupted(void) {
    install(SIGUSR1, stop_spinning, 0);
    pthread_t spinner;
    pthread_create(&spinner, NULL, spin_until_signalled, NULL);
    while (!spinner_started)
        sched_yield();
    struct timespec settle = {0, 20 * 1000 * 1000};
    nanosleep(&settle, NULL);
    pthread_kill(spinner, SIGUSR1);
    pthread_join(spinner, NULL);
    printf("spinning thread: stopped by its handler=%d\n", spinner_stopped);
}

static volatile int outside_code = -1;
static void note_outside(int signo, siginfo_t *info, void *context) {
    (void)signo, (void)context;
    outside_code = info->si_code;
}

/* Says "ready", then waits for a SIGINT from outside the program (Ctrl-C)
 * in a read of stdin, a pipe nobody writes: the handler runs and the read
 * ends with EINTR. A SIGTERM then finds no handler. */
static void waits_for_sigint_from_outside(void) {
    install(SIGINT, note_outside, 0);
    printf("ready\n");
    char byte;
    ssize_t got = read(0, &byte, 1);
    int error = errno;
    printf("SIGINT from outside: si_code %d, read %zd %s\n", outside_code, got,
           got < 0 ? strerror(error) : "");
}

/* A thread blocked in a call served on the host (a read of an empty pipe,
 * a recv, a poll) is interrupted by a signal another thread sends: the
 * call ends with EINTR, or is restarted under SA_RESTART as Linux
 * decides per call. */
static int interrupted_pipe[2];
static void refill_pipe(int signo, siginfo_t *info, void *context) {
    (void)signo, (void)info, (void)context;
    handled++;
    if (write(interrupted_pipe[1], "r", 1) != 1)
        _exit(3);
}

static void interrupted_after(int signo) {
    main_thread = pthread_self();
    pthread_t sender;
    pthread_create(&sender, NULL, send_later, (void *)(intptr_t)signo);
    pthread_detach(sender);
}

static void blocked_calls_are_interrupted(void) {
    if (pipe(interrupted_pipe) != 0) {
        perror("pipe");
        exit(1);
    }
    char byte = 0;
    install(SIGUSR1, on_info, 0);
    handled = 0;
    interrupted_after(SIGUSR1);
    ssize_t got = read(interrupted_pipe[0], &byte, 1);
    int error = errno;
    printf("read, no SA_RESTART: %zd %s handled=%d\n", got, strerror(error), handled);

    install(SIGUSR1, refill_pipe, SA_RESTART);
    handled = 0;
    interrupted_after(SIGUSR1);
    got = read(interrupted_pipe[0], &byte, 1);
    printf("read, SA_RESTART: restarted and got %zd byte '%c' handled=%d\n", got, byte, handled);

    install(SIGUSR1, on_info, SA_RESTART);
    handled = 0;
    interrupted_after(SIGUSR1);
    struct pollfd wait_for = {.fd = interrupted_pipe[0], .events = POLLIN};
    int ready = poll(&wait_for, 1, -1);
    error = errno;
    printf("poll, SA_RESTART: %d %s handled=%d\n", ready, strerror(error), handled);

    int pair[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    install(SIGUSR1, on_info, 0);
    handled = 0;
    interrupted_after(SIGUSR1);
    got = recv(pair[0], &byte, 1, 0);
    error = errno;
    printf("recv, no SA_RESTART: %zd %s handled=%d\n", got, strerror(error), handled);
    close(pair[0]);
    close(pair[1]);
    close(interrupted_pipe[0]);
    close(interrupted_pipe[1]);
    signal(SIGUSR1, SIG_DFL);
}

static void *wait_for_sigusr2(void *unused) {
    (void)unused;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    int signo = 0;
    sigwait(&set, &signo);
    return (void *)(intptr_t)signo;
}

static void sigwait_in_a_dedicated_thread(void) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    pthread_t waiter;
    pthread_create(&waiter, NULL, wait_for_sigusr2, NULL);
    struct timespec settle = {0, 20 * 1000 * 1000};
    nanosleep(&settle, NULL);
    kill(getpid(), SIGUSR2);
    void *signo;
    pthread_join(waiter, &signo);
    printf("sigwait: got %d\n", (int)(intptr_t)signo);
    struct timespec none = {0, 1000 * 1000};
    int result = sigtimedwait(&set, NULL, &none);
    printf("sigtimedwait: %d %s\n", result, strerror(errno));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void *sleep_forever(void *unused) {
    (void)unused;
    for (;;)
        sleep(100);
    return NULL;
}

static void pthread_cancel_ends_a_sleeping_thread(void) {
    pthread_t sleeper;
    pthread_create(&sleeper, NULL, sleep_forever, NULL);
    struct timespec settle = {0, 20 * 1000 * 1000};
    nanosleep(&settle, NULL);
    pthread_cancel(sleeper);
    void *result;
    pthread_join(sleeper, &result);
    printf("pthread_cancel: canceled=%d\n", result == PTHREAD_CANCELED);
}

#include <sys/mman.h>

static volatile int fault_code;
static volatile uintptr_t fault_address;
static void escape_fault(int signo, siginfo_t *info, void *context) {
    (void)context;
    seen_signo = signo;
    fault_code = info->si_code;
    fault_address = (uintptr_t)info->si_addr;
    siglongjmp(jump, 1);
}

static char *volatile guarded;
static void open_the_page(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    fault_code = info->si_code;
    fault_address = (uintptr_t)info->si_addr;
    mprotect(guarded, 4096, PROT_READ | PROT_WRITE);
}

static void faults_reach_their_handlers(void) {
    install(SIGSEGV, escape_fault, 0);
    volatile int *volatile nowhere = (volatile int *)0x10;
    if (sigsetjmp(jump, 1) == 0)
        *nowhere = 1;
    printf("null write: signo=%d code=%d addr=%#lx\n", seen_signo, fault_code,
           (unsigned long)fault_address);
    install(SIGFPE, escape_fault, 0);
    if (sigsetjmp(jump, 1) == 0) {
        int zero = 0, one = 1;
        __asm__ volatile("cltd\n\tidivl %1" : "+a"(one) : "r"(zero) : "rdx");
    }
    printf("divide by zero: signo=%d code=%d\n", seen_signo, fault_code);
    install(SIGILL, escape_fault, 0);
    if (sigsetjmp(jump, 1) == 0)
        __asm__ volatile("ud2");
    printf("ud2: signo=%d code=%d\n", seen_signo, fault_code);
    // A handler that makes the access valid: the instruction runs again.
    guarded = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    install(SIGSEGV, open_the_page, 0);
    volatile char *slot = guarded + 100;
    *slot = 42;
    printf("guard page: code=%d at the slot=%d value=%d\n", fault_code,
           fault_address == (uintptr_t)slot, *slot);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    signal(SIGILL, SIG_DFL);
}

static void default_action_of_sigterm(void) {
    pthread_t sleeper;
    pthread_create(&sleeper, NULL, sleep_forever, NULL);
    struct timespec settle = {0, 20 * 1000 * 1000};
    nanosleep(&settle, NULL);
    pthread_kill(sleeper, SIGTERM);
    pause();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *only = argc > 1 ? argv[1] : "";
    CASE(raise_runs_the_handler);
    CASE(a_handler_changes_the_saved_context);
    CASE(masks_hold_signals_until_unblocked);
    CASE(nodefer_nests_and_resethand_resets);
    CASE(sigaltstack_runs_handlers_there);
    CASE(vector_registers_survive_a_handler);
    CASE(siglongjmp_leaves_a_handler);
    CASE(sigsuspend_waits_for_a_signal);
    CASE(sleep_is_interrupted);
    CASE(pthread_kill_reaches_another_thread);
    CASE(sigwait_in_a_dedicated_thread);
    CASE(pthread_cancel_ends_a_sleeping_thread);
    CASE(faults_reach_their_handlers);
    CASE(blocked_calls_are_interrupted);
    // Only when asked: it ends the program.
    if (strcmp(only, "default_action_of_sigterm") == 0)
        default_action_of_sigterm();
    // Only when asked: it needs a CPU per thread or preemption, which an
    // isle under QEMU doesn't have.
    if (strcmp(only, "a_spinning_thread_is_interrupted") == 0)
        a_spinning_thread_is_interrupted();
    // Only when asked: it waits for a signal from outside.
    if (strcmp(only, "waits_for_sigint_from_outside") == 0)
        waits_for_sigint_from_outside();
    return 0;
}
