/* clock_loop [ITERATIONS]: the cost of clock_gettime(CLOCK_MONOTONIC)
 * through libc, as programs call it, measured with rdtsc; prints
 * "clock_gettime_cycles=X" (cycles per call) to stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 100000;
	if (iters <= 0)
		iters = 1;
	struct timespec first, now = {0, 0};
	if (clock_gettime(CLOCK_MONOTONIC, &first) != 0) {
		perror("clock_gettime");
		return 1;
	}
	long backwards = 0;
	uint64_t start = rdtsc();
	for (long i = 0; i < iters; i++) {
		struct timespec before = now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		backwards += now.tv_sec < before.tv_sec ||
			     (now.tv_sec == before.tv_sec && now.tv_nsec < before.tv_nsec);
	}
	uint64_t end = rdtsc();
	if (backwards) {
		fprintf(stderr, "clock_loop: the clock went backwards %ld times\n", backwards);
		return 1;
	}
	printf("clock_gettime_cycles=%.1f\n", (double)(end - start) / (double)iters);
	return 0;
}
