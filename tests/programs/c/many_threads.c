/* many_threads [N]: creates N threads (default 64) with default attributes
 * (glibc: 8 MiB stacks), all alive at once behind a barrier, then joins
 * them. Prints "created N joined N" and `threads_ms=T` on stderr. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_barrier_t all_started;

static void *worker(void *arg)
{
	pthread_barrier_wait(&all_started);
	return arg;
}

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 64;
	if (count < 1 || count > 1000)
		return 2;
	pthread_t *threads = calloc((size_t)count, sizeof *threads);
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_barrier_init(&all_started, NULL, (unsigned)count + 1);
	for (int i = 0; i < count; i++) {
		int rc = pthread_create(&threads[i], NULL, worker, (void *)(long)i);
		if (rc != 0) {
			printf("create failed at %d: %s\n", i, strerror(rc));
			return 1;
		}
	}
	pthread_barrier_wait(&all_started);
	int joined = 0;
	for (int i = 0; i < count; i++) {
		void *result;
		if (pthread_join(threads[i], &result) == 0 && result == (void *)(long)i)
			joined++;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("created %d joined %d\n", count, joined);
	fprintf(stderr, "threads_ms=%.2f\n",
		(end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6);
	return 0;
}
