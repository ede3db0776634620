/* write_loop [ITERATIONS]: measures write(1, "x", 1) with rdtsc; the bytes go
 * to stdout, "write_cycles=X" (cycles per call) goes to stderr. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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
	long failures = 0;
	int last_errno = 0;

	uint64_t start = rdtsc();
	for (long i = 0; i < iters; i++) {
		if (write(1, "x", 1) != 1) {
			failures++;
			last_errno = errno;
		}
	}
	uint64_t end = rdtsc();

	if (failures) {
		fprintf(stderr, "write_loop: %ld writes failed (errno=%d)\n", failures, last_errno);
		return 1;
	}
	fprintf(stderr, "write_cycles=%.1f\n", (double)(end - start) / (double)iters);
	return 0;
}
