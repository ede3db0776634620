/* AIM7-style compute jobs: add, multiply and divide loops over short, int,
 * long, float and double. argv[1] threads each run jobs for argv[2] ms;
 * prints `jobs_per_minute=N` for all threads together. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long duration_ms;
static volatile int sink;

#define KERNEL(type, name)                                                  \
	static type name(type seed)                                         \
	{                                                                   \
		type a = seed, b = (type)3, c = (type)7;                    \
		for (int i = 0; i < 2000; i++) {                            \
			a = (type)(a + b);                                  \
			b = (type)(b * c + 1);                              \
			c = (type)(a / (type)(b == 0 ? 1 : b) + 2);         \
		}                                                           \
		return (type)(a + b + c);                                   \
	}
KERNEL(short, job_short)
KERNEL(int, job_int)
KERNEL(long, job_long)
KERNEL(float, job_float)
KERNEL(double, job_double)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *worker(void *out)
{
	long jobs = 0;
	double end = now_ms() + duration_ms;
	while (now_ms() < end) {
		for (int i = 0; i < 10; i++) {
			sink += job_short((short)jobs) + job_int((int)jobs) + (int)job_long(jobs) +
				(int)job_float((float)jobs) + (int)job_double((double)jobs);
			jobs++;
		}
	}
	*(long *)out = jobs;
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	duration_ms = argc > 2 ? atol(argv[2]) : 2000;
	pthread_t ids[64];
	long jobs[64] = { 0 };
	if (threads < 1 || threads > 64)
		return 2;
	for (int i = 0; i < threads; i++)
		pthread_create(&ids[i], NULL, worker, &jobs[i]);
	long total = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(ids[i], NULL);
		total += jobs[i];
	}
	printf("jobs_per_minute=%.0f\n", total * 60000.0 / duration_ms);
	return 0;
}
