// Timers that send signals (alarm, setitimer, timer_create), each case
// printing what it saw, so that an isle's run can be compared line for line
// with a native one. Times are chosen so that the printed facts don't
// depend on the machine's speed.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "handlers.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static volatile sig_atomic_t fired;
static volatile int seen_code, seen_value, seen_overrun, seen_tid, seen_timer_id;

static void on_timer(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    fired++;
    seen_code = info->si_code;
    seen_value = info->si_value.sival_int;
    seen_overrun = info->si_overrun;
    seen_timer_id = info->si_timerid;
    seen_tid = (int)syscall(SYS_gettid);
}


/* A CLOCK_MONOTONIC timer that sends `signo` with `value` to the process. */
static timer_t signalling_timer(int signo, int value) {
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = signo;
    event.sigev_value.sival_int = value;
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &event, &timer) != 0) {
        perror("timer_create");
        exit(1);
    }
    return timer;
}

static double now_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void alarm_ends_pause(void) {
    install(SIGALRM, on_timer, 0);
    fired = 0;
    printf("alarm: nothing set before=%u\n", alarm(1));
    unsigned left = alarm(1);
    double started = now_seconds();
    int result = pause();
    int error = errno;
    double took = now_seconds() - started;
    printf("alarm: replaced one with %u s left, pause %d %s, fired=%d code_is_kernel=%d, "
           "about a second=%d\n",
           left, result, strerror(error), fired, seen_code == SI_KERNEL,
           took > 0.8 && took < 3.0);
    alarm(5);
    printf("alarm(0) cancels one with %u s left\n", alarm(0));
}

// A thread computing in program code never enters the kernel: the timer's
// signal reaches it anyway.
static void setitimer_interrupts_a_computation(void) {
    install(SIGALRM, on_timer, SA_RESTART);
    fired = 0;
    struct itimerval every = {{0, 20000}, {0, 20000}};
    if (setitimer(ITIMER_REAL, &every, NULL) != 0) {
        perror("setitimer");
        exit(1);
    }
    volatile uint64_t spins = 0;
    while (fired < 5)
        spins++;
    struct itimerval off = {{0, 0}, {0, 0}}, was;
    setitimer(ITIMER_REAL, &off, &was);
    struct itimerval now;
    getitimer(ITIMER_REAL, &now);
    printf("setitimer: fired %d times while computing, interval was %ld us, armed=%d, "
           "disarmed now=%d\n",
           fired, (long)was.it_interval.tv_usec,
           was.it_value.tv_sec != 0 || was.it_value.tv_usec != 0,
           now.it_value.tv_sec == 0 && now.it_value.tv_usec == 0);
}

static void getitimer_counts_down(void) {
    struct itimerval set = {{0, 0}, {30, 0}}, read;
    setitimer(ITIMER_REAL, &set, NULL);
    getitimer(ITIMER_REAL, &read);
    printf("getitimer: between 29 and 30 s left=%d\n",
           read.it_value.tv_sec == 29 || (read.it_value.tv_sec == 30 && read.it_value.tv_usec == 0));
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    struct itimerval bad = {{0, 0}, {0, 1000000}};
    int result = setitimer(ITIMER_REAL, &bad, NULL);
    printf("setitimer: usec of a million: %d %s\n", result, strerror(errno));
    result = setitimer(7, &set, NULL);
    printf("setitimer: which 7: %d %s\n", result, strerror(errno));
}

static void posix_timer_sends_its_value(void) {
    install(SIGRTMIN, on_timer, 0);
    fired = 0;
    timer_t timer = signalling_timer(SIGRTMIN, 4321);
    struct itimerspec once = {{0, 0}, {0, 10 * 1000 * 1000}};
    timer_settime(timer, 0, &once, NULL);
    while (!fired)
        pause();
    struct itimerspec after;
    timer_gettime(timer, &after);
    printf("timer_create: fired=%d code_is_timer=%d value=%d overrun=%d disarmed=%d\n", fired,
           seen_code == SI_TIMER, seen_value, seen_overrun,
           after.it_value.tv_sec == 0 && after.it_value.tv_nsec == 0);
    timer_delete(timer);
    int result = timer_gettime(timer, &after);
    printf("timer_gettime after delete: %d %s\n", result, strerror(errno));
}

// A blocked periodic timer's signal stays pending once; the expiries
// meanwhile are its overrun.
static void a_blocked_timer_counts_overruns(void) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, &old);
    timer_t timer = signalling_timer(SIGRTMIN, 0);
    struct itimerspec every = {{0, 5 * 1000 * 1000}, {0, 5 * 1000 * 1000}};
    timer_settime(timer, 0, &every, NULL);
    struct timespec wait = {0, 100 * 1000 * 1000};
    nanosleep(&wait, NULL);
    siginfo_t info;
    int taken = sigwaitinfo(&block, &info);
    siginfo_t first = info;
    int overrun = timer_getoverrun(timer);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(timer, 0, &off, NULL);
    // An expiry since may have queued one more (kernels differ on keeping
    // it once the timer is disarmed): drop it.
    struct timespec none = {0, 0};
    sigtimedwait(&block, &info, &none);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("overrun: taken=%d code_is_timer=%d, at least 10 overruns=%d, getoverrun agrees=%d\n",
           taken == SIGRTMIN, first.si_code == SI_TIMER, first.si_overrun >= 10,
           overrun == first.si_overrun);
    timer_delete(timer);
}

static volatile int target_tid;
static void *wait_for_timer(void *unused) {
    (void)unused;
    target_tid = (int)syscall(SYS_gettid);
    while (!fired)
        pause();
    return NULL;
}

// SIGEV_THREAD_ID, as glibc's SIGEV_THREAD timers use it: the signal goes
// to that thread, though the main thread doesn't block it.
static void a_timer_signals_one_thread(void) {
    install(SIGUSR1, on_timer, 0);
    fired = 0;
    pthread_t waiter = start_thread_with_tid(wait_for_timer, &target_tid);
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = SIGUSR1;
    event.sigev_notify_thread_id = target_tid;
    timer_t timer;
    if (timer_create(CLOCK_REALTIME, &event, &timer) != 0) {
        perror("timer_create SIGEV_THREAD_ID");
        exit(1);
    }
    // An absolute time on CLOCK_REALTIME, 20 ms from now.
    struct itimerspec at = {{0, 0}, {0, 0}};
    clock_gettime(CLOCK_REALTIME, &at.it_value);
    at.it_value.tv_nsec += 20 * 1000 * 1000;
    if (at.it_value.tv_nsec >= 1000000000) {
        at.it_value.tv_sec++;
        at.it_value.tv_nsec -= 1000000000;
    }
    timer_settime(timer, TIMER_ABSTIME, &at, NULL);
    pthread_join(waiter, NULL);
    printf("SIGEV_THREAD_ID: fired=%d in that thread=%d\n", fired, seen_tid == target_tid);
    timer_delete(timer);
    event.sigev_notify_thread_id = 999999;
    int result = timer_create(CLOCK_REALTIME, &event, &timer);
    printf("SIGEV_THREAD_ID of no thread: %d %s\n", result, strerror(errno));
}

static volatile int thread_timer_calls;
static void count_call(union sigval value) {
    thread_timer_calls += value.sival_int;
}

// SIGEV_THREAD: libc runs the function on a thread of its own.
static void sigev_thread_runs_a_function(void) {
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD;
    event.sigev_notify_function = count_call;
    event.sigev_value.sival_int = 1;
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &event, &timer) != 0) {
        perror("timer_create SIGEV_THREAD");
        exit(1);
    }
    struct itimerspec every = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
    timer_settime(timer, 0, &every, NULL);
    while (thread_timer_calls < 3) {
        struct timespec nap = {0, 5 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    timer_delete(timer);
    printf("SIGEV_THREAD: the function ran at least 3 times=%d\n", thread_timer_calls >= 3);
}

static void bad_timer_arguments(void) {
    timer_t timer;
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = 65;
    int result = timer_create(CLOCK_MONOTONIC, &event, &timer);
    printf("timer_create signal 65: %d %s\n", result, strerror(errno));
    event.sigev_signo = SIGUSR1;
    result = timer_create(99, &event, &timer);
    printf("timer_create clock 99: %d %s\n", result, strerror(errno));
    result = timer_create(CLOCK_MONOTONIC_RAW, &event, &timer);
    printf("timer_create CLOCK_MONOTONIC_RAW: %d %s\n", result, strerror(errno));
    timer_create(CLOCK_MONOTONIC, &event, &timer);
    struct itimerspec bad = {{0, 0}, {0, 1000000000}};
    result = timer_settime(timer, 0, &bad, NULL);
    printf("timer_settime nsec of a billion: %d %s\n", result, strerror(errno));
    timer_delete(timer);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *only = argc > 1 ? argv[1] : "";
    CASE(alarm_ends_pause);
    CASE(setitimer_interrupts_a_computation);
    CASE(getitimer_counts_down);
    CASE(posix_timer_sends_its_value);
    CASE(a_blocked_timer_counts_overruns);
    CASE(a_timer_signals_one_thread);
    CASE(sigev_thread_runs_a_function);
    CASE(bad_timer_arguments);
    return 0;
}
