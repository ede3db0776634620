/* Prints realtime_ns, monotonic_ns, gettimeofday_us, then sleeps 100 ms with
 * nanosleep and prints slept_ns (CLOCK_MONOTONIC across the sleep). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static long long ns(clockid_t clk)
{
	struct timespec ts;
	if (clock_gettime(clk, &ts) != 0) {
		fprintf(stderr, "clock: clock_gettime(%d) failed: errno=%d\n", (int)clk, errno);
		return -1;
	}
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	long long rt = ns(CLOCK_REALTIME);
	long long mono = ns(CLOCK_MONOTONIC);
	struct timeval tv;
	if (rt < 0 || mono < 0)
		return 1;
	if (gettimeofday(&tv, NULL) != 0) {
		fprintf(stderr, "clock: gettimeofday failed: errno=%d\n", errno);
		return 1;
	}
	printf("realtime_ns=%lld\n", rt);
	printf("monotonic_ns=%lld\n", mono);
	printf("gettimeofday_us=%lld\n", (long long)tv.tv_sec * 1000000LL + tv.tv_usec);

	struct timespec req = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
	struct timespec rem;
	long long before = ns(CLOCK_MONOTONIC);
	while (nanosleep(&req, &rem) != 0) {
		if (errno != EINTR) {
			fprintf(stderr, "clock: nanosleep failed: errno=%d\n", errno);
			return 1;
		}
		req = rem;
	}
	long long after = ns(CLOCK_MONOTONIC);
	if (before < 0 || after < 0)
		return 1;
	printf("slept_ns=%lld\n", after - before);
	return 0;
}
