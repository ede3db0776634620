/* Futex wake-up latency: the main thread wakes a waiter after letting it
 * wait `argv[1]` µs (0: the waiter's CPU is still polling; 1000: it has
 * parked), argv[2] times. Prints the median cycles from the wake call to
 * the waiter running: `wakeup_cycles=N`. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static _Atomic int generation;
static _Atomic int ready;
static _Atomic unsigned long long woken_at;
static long rounds;

static void *waiter(void *unused)
{
	(void)unused;
	for (long i = 1; i <= rounds; i++) {
		atomic_store(&ready, (int)i);
		while (atomic_load(&generation) < i)
			syscall(SYS_futex, &generation, FUTEX_WAIT_PRIVATE, (int)(i - 1), NULL, NULL, 0);
		atomic_store(&woken_at, __rdtsc());
	}
	return NULL;
}

static int compare(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long gap_us = argc > 1 ? atol(argv[1]) : 0;
	rounds = argc > 2 ? atol(argv[2]) : 200;
	unsigned long long *latency = calloc(rounds, sizeof *latency);
	pthread_t thread;
	pthread_create(&thread, NULL, waiter, NULL);
	for (long i = 1; i <= rounds; i++) {
		while (atomic_load(&ready) < i)
			;
		/* Let the waiter block, then wait the gap. */
		struct timespec pause = { 0, 20000 + gap_us * 1000 };
		nanosleep(&pause, NULL);
		atomic_store(&woken_at, 0);
		unsigned long long start = __rdtsc();
		atomic_store(&generation, (int)i);
		syscall(SYS_futex, &generation, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		unsigned long long end;
		while ((end = atomic_load(&woken_at)) == 0)
			;
		latency[i - 1] = end - start;
	}
	pthread_join(thread, NULL);
	qsort(latency, rounds, sizeof *latency, compare);
	printf("wakeup_cycles=%llu\n", latency[rounds / 2]);
	return 0;
}
