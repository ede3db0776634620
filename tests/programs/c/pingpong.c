/* Two threads hand a token back and forth through futex wait/wake:
 * prints `pingpong_cycles=N` per round trip (argv[1] round trips). */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static _Atomic int turn;
static long rounds;

static void wait_for(int value)
{
	int seen;
	while ((seen = atomic_load(&turn)) != value)
		syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void hand_to(int value)
{
	atomic_store(&turn, value);
	syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *pong(void *unused)
{
	(void)unused;
	for (long i = 0; i < rounds; i++) {
		wait_for(1);
		hand_to(0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	rounds = argc > 1 ? atol(argv[1]) : 20000;
	pthread_t thread;
	pthread_create(&thread, NULL, pong, NULL);
	unsigned long long start = __rdtsc();
	for (long i = 0; i < rounds; i++) {
		hand_to(1);
		wait_for(0);
	}
	unsigned long long end = __rdtsc();
	pthread_join(thread, NULL);
	printf("pingpong_cycles=%.1f\n", (double)(end - start) / rounds);
	return 0;
}
