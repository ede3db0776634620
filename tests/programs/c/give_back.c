/* give_back MIB: maps and touches MIB MiB, says "touched", waits for a line
 * on stdin, unmaps it, says "unmapped", waits again; then the same with
 * MADV_DONTNEED ("discarded"). Lets a test read the host's RSS between. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void step(const char *what)
{
	char line[16];
	printf("%s\n", what);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		exit(1);
}

static char *touched(size_t size)
{
	char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (memory == MAP_FAILED) {
		perror("give_back: mmap");
		exit(1);
	}
	for (size_t offset = 0; offset < size; offset += 4096)
		memory[offset] = 1;
	return memory;
}

int main(int argc, char **argv)
{
	size_t size = (size_t)(argc > 1 ? atol(argv[1]) : 256) << 20;
	char *memory = touched(size);
	step("touched");
	munmap(memory, size);
	step("unmapped");
	memory = touched(size);
	step("touched");
	madvise(memory, size, MADV_DONTNEED);
	/* Two pages only: reading the rest would bring it back. */
	if (memory[0] != 0 || memory[size - 1] != 0) {
		printf("MADV_DONTNEED left a byte\n");
		return 1;
	}
	step("discarded");
	return 0;
}
