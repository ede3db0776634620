/* getpid_loop [ITERATIONS]: measures the cost of a raw getpid syscall (the
 * `syscall` instruction directly, so libc cannot cache it) with rdtsc and
 * prints "getpid_cycles=X" (cycles per call) to stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline long raw_getpid(void)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"((long)SYS_getpid)
			 : "rcx", "r11", "memory");
	return ret;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 100000;
	if (iters <= 0)
		iters = 1;
	long first = raw_getpid();
	long mismatches = 0;

	uint64_t start = rdtsc();
	for (long i = 0; i < iters; i++)
		mismatches += raw_getpid() != first;
	uint64_t end = rdtsc();

	if (first <= 0 || mismatches) {
		fprintf(stderr, "getpid_loop: bad getpid results (first=%ld, %ld mismatches)\n",
			first, mismatches);
		return 1;
	}
	printf("getpid_cycles=%.1f\n", (double)(end - start) / (double)iters);
	return 0;
}
