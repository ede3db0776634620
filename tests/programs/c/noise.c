/* OS noise, hourglass style: reads the TSC in a tight loop for argv[1] ms
 * and records every gap between consecutive reads. Prints the loop's usual
 * step, the mean and max gap above a threshold, and a histogram of gaps by
 * powers of two (in cycles). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

int main(int argc, char **argv)
{
	long duration_ms = argc > 1 ? atol(argv[1]) : 10000;
	const unsigned long long threshold = 1000; /* cycles: anything slower is noise */
	unsigned long long histogram[64] = { 0 };
	unsigned long long samples = 0, noisy = 0, noise_total = 0, max_gap = 0;
	struct timespec start_ts;
	clock_gettime(CLOCK_MONOTONIC, &start_ts);
	unsigned long long previous = __rdtsc(), start = previous;
	/* Calibrate the TSC against the clock for the stop condition. */
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	struct timespec after_ts;
	clock_gettime(CLOCK_MONOTONIC, &after_ts);
	double ns = (after_ts.tv_sec - start_ts.tv_sec) * 1e9 + (after_ts.tv_nsec - start_ts.tv_nsec);
	double cycles_per_ms = (double)(__rdtsc() - start) / ns * 1e6;
	unsigned long long end = __rdtsc() + (unsigned long long)(cycles_per_ms * duration_ms);
	previous = __rdtsc();
	for (;;) {
		unsigned long long now = __rdtsc();
		unsigned long long gap = now - previous;
		previous = now;
		samples++;
		if (gap > threshold) {
			noisy++;
			noise_total += gap;
			if (gap > max_gap)
				max_gap = gap;
			histogram[63 - __builtin_clzll(gap)]++;
		}
		if (now >= end)
			break;
	}
	printf("samples=%llu\nnoisy_gaps=%llu\nmean_noisy_gap_cycles=%.0f\nmax_gap_cycles=%llu\nnoise_fraction=%.6f\n",
	       samples, noisy, noisy ? (double)noise_total / noisy : 0.0, max_gap,
	       (double)noise_total / (cycles_per_ms * duration_ms));
	for (int bucket = 0; bucket < 64; bucket++)
		if (histogram[bucket])
			printf("gap_2^%d=%llu\n", bucket, histogram[bucket]);
	return 0;
}
