/* alloc MODE [SIZE_MIB]: allocates SIZE_MIB MiB (default 200) with MODE =
 * brk (sbrk-style, on the raw brk syscall), mmap (anonymous private) or
 * malloc, writes every 4096th byte, sums them back to verify, frees, and does
 * it all a second time to show the freed memory is reusable.
 * Prints "alloc MODE SIZE MiB ok". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STRIDE 4096

static int fail(const char *what)
{
	int e = errno;
	printf("alloc failed: %s: errno=%d (%s)\n", what, e, strerror(e));
	return 1;
}

/* sbrk() on top of the raw brk syscall. musl's sbrk() refuses any non-zero
 * increment (it always fails with ENOMEM, to protect its malloc), so the libc
 * one cannot be used; this behaves like glibc's: returns the old break, or
 * (void *)-1 with errno = ENOMEM. The break is always restored before any
 * other allocation could happen, so libc's view of it stays valid. */
static void *my_sbrk(intptr_t inc)
{
	uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0);
	if (inc == 0)
		return (void *)cur;
	uintptr_t want = cur + (uintptr_t)inc;
	if ((uintptr_t)syscall(SYS_brk, want) != want) {
		errno = ENOMEM;
		return (void *)-1;
	}
	return (void *)cur;
}

/* Writes a round-dependent pattern to every STRIDE-th byte and checks it. */
static int touch_and_verify(unsigned char *p, size_t size, unsigned round)
{
	uint64_t expected = 0, got = 0;
	for (size_t off = 0; off < size; off += STRIDE) {
		unsigned char v = (unsigned char)((off / STRIDE) * 7 + round * 13 + 1);
		p[off] = v;
		expected += v;
	}
	for (size_t off = 0; off < size; off += STRIDE)
		got += ((volatile unsigned char *)p)[off];
	if (got != expected) {
		printf("alloc failed: verify mismatch (round %u): expected sum %llu, got %llu\n",
		       round, (unsigned long long)expected, (unsigned long long)got);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("alloc failed: usage: alloc brk|mmap|malloc [SIZE_MIB]\n");
		return 1;
	}
	const char *mode = argv[1];
	long mib = argc > 2 ? atol(argv[2]) : 200;
	if (mib <= 0) {
		printf("alloc failed: bad size %s\n", argv[2]);
		return 1;
	}
	size_t size = (size_t)mib << 20;

	for (unsigned round = 0; round < 2; round++) {
		if (strcmp(mode, "brk") == 0) {
			void *p = my_sbrk((intptr_t)size);
			if (p == (void *)-1)
				return fail("sbrk grow");
			if (touch_and_verify(p, size, round))
				return 1;
			if (my_sbrk(-(intptr_t)size) == (void *)-1)
				return fail("sbrk shrink");
		} else if (strcmp(mode, "mmap") == 0) {
			void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				return fail("mmap");
			if (touch_and_verify(p, size, round))
				return 1;
			if (munmap(p, size) != 0)
				return fail("munmap");
		} else if (strcmp(mode, "malloc") == 0) {
			unsigned char *p = malloc(size);
			if (!p)
				return fail("malloc");
			if (touch_and_verify(p, size, round))
				return 1;
			free(p);
		} else {
			printf("alloc failed: unknown mode %s (want brk, mmap or malloc)\n", mode);
			return 1;
		}
	}
	printf("alloc %s %ld MiB ok\n", mode, mib);
	return 0;
}
