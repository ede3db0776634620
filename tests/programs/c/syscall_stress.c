/* 8 threads calling different syscalls through the same libc wrappers at
 * once (the generic syscall() and read/write/getpid/clock_gettime), each
 * checking every result. Prints one line per thread, then "ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 8
#define ROUNDS 5000

static long pid;
static int pipe_ends[THREADS][2];

static void *worker(void *argument)
{
	long me = (long)argument;
	long failures = 0;
	char byte = (char)('a' + me), back;
	struct timespec now, before = {0, 0};
	for (long round = 0; round < ROUNDS; round++) {
		switch ((round + me) % 4) {
		case 0:
			failures += syscall(SYS_getpid) != pid;
			break;
		case 1:
			failures += syscall(SYS_gettid) <= 0;
			break;
		case 2:
			failures += write(pipe_ends[me][1], &byte, 1) != 1;
			failures += read(pipe_ends[me][0], &back, 1) != 1 || back != byte;
			break;
		default:
			failures += clock_gettime(CLOCK_MONOTONIC, &now) != 0;
			failures += now.tv_sec < before.tv_sec ||
				    (now.tv_sec == before.tv_sec && now.tv_nsec < before.tv_nsec);
			before = now;
			break;
		}
	}
	return (void *)failures;
}

int main(void)
{
	pid = getpid();
	pthread_t threads[THREADS];
	for (long i = 0; i < THREADS; i++) {
		if (pipe(pipe_ends[i]) != 0) {
			perror("pipe");
			return 1;
		}
	}
	for (long i = 0; i < THREADS; i++)
		pthread_create(&threads[i], NULL, worker, (void *)i);
	long total = 0;
	for (long i = 0; i < THREADS; i++) {
		void *failures;
		pthread_join(threads[i], &failures);
		printf("thread %ld: %ld failures\n", i, (long)failures);
		total += (long)failures;
	}
	printf("%s\n", total ? "FAILED" : "ok");
	return total != 0;
}
