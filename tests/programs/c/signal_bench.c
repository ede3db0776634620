/* signal_bench [ITERATIONS]: what a signal costs.
 * - raise_cycles: raise(SIGUSR1) -> handler -> back, per signal;
 * - pthread_kill_cycles: pthread_kill to a thread spinning on another
 *   core until its handler has run there, per signal;
 * - timer_cycles: an interval timer's expiry to its handler running in a
 *   thread that computes, lateness per expiry past its due time.
 * Prints "KEY=X" lines with rdtsc cycles. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "handlers.h"

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static volatile uint64_t handled;
static void count(int signo, siginfo_t *info, void *context) {
    (void)signo, (void)info, (void)context;
    handled++;
}

static volatile int spinner_ready, stop_spinning;
static void *spin(void *unused) {
    (void)unused;
    spinner_ready = 1;
    while (!stop_spinning)
        __asm__ volatile("pause");
    return NULL;
}

static volatile uint64_t timer_handled, lateness_sum;
static volatile uint64_t next_due;
static uint64_t period_cycles;
static void late_by(int signo, siginfo_t *info, void *context) {
    (void)signo, (void)info, (void)context;
    uint64_t now = rdtsc();
    lateness_sum += now > next_due ? now - next_due : 0;
    next_due += period_cycles;
    timer_handled++;
}

static uint64_t cycles_per_ms(void) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t first = rdtsc();
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000000L + now.tv_nsec - start.tv_nsec < 20000000L);
    return (rdtsc() - first) / 20;
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    if (iterations <= 0)
        iterations = 1;
    install(SIGUSR1, count, 0);
    raise(SIGUSR1);
    uint64_t start = rdtsc();
    for (long i = 0; i < iterations; i++)
        raise(SIGUSR1);
    uint64_t raise_cycles = (rdtsc() - start) / (uint64_t)iterations;
    if (handled != (uint64_t)iterations + 1) {
        fprintf(stderr, "signal_bench: %llu of %ld raises handled\n",
                (unsigned long long)handled, iterations + 1);
        return 1;
    }
    printf("raise_cycles=%llu\n", (unsigned long long)raise_cycles);

    pthread_t spinner;
    pthread_create(&spinner, NULL, spin, NULL);
    while (!spinner_ready)
        ;
    long kills = iterations / 20 + 1;
    handled = 0;
    start = rdtsc();
    for (long i = 0; i < kills; i++) {
        uint64_t before = handled;
        pthread_kill(spinner, SIGUSR1);
        while (handled == before)
            __asm__ volatile("pause");
    }
    uint64_t kill_cycles = (rdtsc() - start) / (uint64_t)kills;
    stop_spinning = 1;
    pthread_join(spinner, NULL);
    printf("pthread_kill_cycles=%llu\n", (unsigned long long)kill_cycles);

    /* 10 ms period, 20 expiries, while this thread computes. */
    period_cycles = cycles_per_ms() * 10;
    install(SIGALRM, late_by, 0);
    struct itimerval every = {{0, 10000}, {0, 10000}};
    next_due = rdtsc() + period_cycles;
    setitimer(ITIMER_REAL, &every, NULL);
    volatile uint64_t spins = 0;
    while (timer_handled < 20)
        spins++;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("timer_cycles=%llu\n", (unsigned long long)(lateness_sum / timer_handled));
    return 0;
}
