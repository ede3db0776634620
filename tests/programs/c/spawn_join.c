/* pthread_create + pthread_join in a loop: prints `spawn_cycles=N` per pair. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv)
{
	long pairs = argc > 1 ? atol(argv[1]) : 2000;
	unsigned long long start = __rdtsc();
	for (long i = 0; i < pairs; i++) {
		pthread_t thread;
		if (pthread_create(&thread, NULL, nothing, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_join(thread, NULL);
	}
	printf("spawn_cycles=%.1f\n", (double)(__rdtsc() - start) / pairs);
	return 0;
}
