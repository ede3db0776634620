/* Measures the first touch of fresh anonymous memory: mmaps SIZE MiB
 * (argv[1], default 32), optionally sleeps DELAY ms first (argv[2]), then
 * writes one byte per 4 KiB page and prints `touch_cycles=N` per page. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <x86intrin.h>

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 32;
	long delay_ms = argc > 2 ? atol(argv[2]) : 0;
	size_t size = (size_t)mib << 20;
	if (delay_ms > 0) {
		struct timespec pause = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
		nanosleep(&pause, NULL);
	}
	char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (memory == MAP_FAILED) {
		perror("touch: mmap");
		return 1;
	}
	unsigned long long start = __rdtsc();
	for (size_t offset = 0; offset < size; offset += 4096)
		memory[offset] = 1;
	unsigned long long end = __rdtsc();
	printf("touch_cycles=%.1f\n", (double)(end - start) / (double)(size / 4096));
	return 0;
}
