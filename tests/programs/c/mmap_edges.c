/* Memory syscalls at their edges: each line shows the result and errno Linux
 * gives, so the output is the same natively and in an isle. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SHOW(name, expr)                                                            \
	do {                                                                         \
		errno = 0;                                                           \
		long result_ = (long)(expr);                                         \
		printf("%s: %s errno=%d\n", name, result_ == -1 ? "failed" : "ok", errno); \
	} while (0)

int main(void)
{
	long page = 4096;
	void *brk0 = (void *)syscall(SYS_brk, 0);
	void *brk_huge = (void *)syscall(SYS_brk, (uintptr_t)-100);
	printf("brk to the top of the address space: %s\n", brk_huge == brk0 ? "refused" : "moved");

	SHOW("mmap of 2^64-4095 bytes",
	     (long)mmap(NULL, (size_t)-4095, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	SHOW("mmap of 0 bytes", (long)mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));

	char *a = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 1;
	memset(a, 0xab, 4 * page);
	SHOW("MAP_FIXED_NOREPLACE over a mapping",
	     (long)mmap(a, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	char *b = mmap(a + page, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	printf("MAP_FIXED over a mapping: %s, zeroed=%d, neighbours kept=%d\n", b == a + page ? "same address" : "moved",
	       b[0] == 0 && b[page - 1] == 0, (unsigned char)a[0] == 0xab && (unsigned char)a[2 * page] == 0xab);

	SHOW("mremap that would wrap", (long)mremap(a, page, (size_t)-(uintptr_t)a, MREMAP_MAYMOVE));
	SHOW("mremap of length 0 (private)", (long)mremap(a, 0, page, MREMAP_MAYMOVE));
	SHOW("munmap of 2^64-1 bytes", munmap(a, (size_t)-1));
	SHOW("munmap unaligned", munmap(a + 1, page));

	char *grown = mremap(a, 4 * page, 64 * page, MREMAP_MAYMOVE);
	printf("mremap grow: %s, contents kept=%d, tail zeroed=%d\n", grown == MAP_FAILED ? "failed" : "ok",
	       grown != MAP_FAILED && (unsigned char)grown[0] == 0xab && (unsigned char)grown[4 * page - 1] == 0xab,
	       grown != MAP_FAILED && grown[4 * page] == 0 && grown[64 * page - 1] == 0);

	char *c = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int overlaps = c < grown + 64 * page && grown < c + 8 * page;
	printf("a new mapping overlaps a live one: %d\n", overlaps);
	memset(c, 1, 8 * page);
	munmap(c, 8 * page);
	char *d = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int zero = 1;
	for (long i = 0; i < 8 * page; i++)
		zero &= d[i] == 0;
	printf("reused memory comes back zeroed: %d\n", zero);

	/* Guard pages: PROT_NONE sub-ranges, MADV_DONTNEED across them. */
	char *g = mmap(NULL, 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SHOW("mprotect the second page read-write", mprotect(g + page, page, PROT_READ | PROT_WRITE));
	g[page] = 7;
	SHOW("madvise DONTNEED over a guard page", madvise(g, 2 * page, MADV_DONTNEED));
	printf("after DONTNEED the accessible page reads %d\n", g[page]);
	SHOW("mprotect the first page back", mprotect(g, page, PROT_READ | PROT_WRITE));
	g[0] = 1;
	printf("the former guard page is writable: %d\n", g[0]);
	SHOW("mprotect unaligned", mprotect(g + 1, page, PROT_NONE));
	SHOW("munmap the pair", munmap(g, 2 * page));
	return 0;
}
