/* sched_yield in a loop: prints `yield_cycles=N` per call (argv[1] calls). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>

int main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 100000;
	unsigned long long start = __rdtsc();
	for (long i = 0; i < calls; i++)
		sched_yield();
	printf("yield_cycles=%.1f\n", (double)(__rdtsc() - start) / calls);
	return 0;
}
