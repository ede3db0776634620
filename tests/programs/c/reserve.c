/* reserve GIB: reserves GIB GiB with mmap(PROT_NONE), as Go, Java and V8
 * do, makes 16 MiB in its middle usable with mprotect, writes and checks
 * every page there, then protects one page PROT_READ: reading it works,
 * and writing it dies of SIGSEGV (status 139), as natively. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	size_t size = (size_t)(argc > 1 ? atol(argv[1]) : 4) << 30;
	size_t usable = 16 << 20;
	char *base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		perror("reserve: mmap");
		return 1;
	}
	printf("reserved %zu GiB\n", size >> 30);
	char *part = base + size / 2;
	if (mprotect(part, usable, PROT_READ | PROT_WRITE) != 0) {
		perror("reserve: mprotect");
		return 1;
	}
	for (size_t offset = 0; offset < usable; offset += 4096)
		part[offset] = (char)(offset >> 12);
	for (size_t offset = 0; offset < usable; offset += 4096)
		if (part[offset] != (char)(offset >> 12)) {
			printf("page at %zu lost its byte\n", offset);
			return 1;
		}
	printf("16 MiB made usable and checked\n");
	char *read_only = part + (8 << 20);
	if (mprotect(read_only, 4096, PROT_READ) != 0) {
		perror("reserve: mprotect read-only");
		return 1;
	}
	printf("read-only page reads %d\n", read_only[4096 - 1] + read_only[0]);
	fflush(stdout);
	read_only[8] = 1;
	printf("write to a read-only page went through\n");
	return 0;
}
