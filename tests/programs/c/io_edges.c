/* Calls whose work an isle splits between its kernel and the host: pipe
 * sizes (host pipes), sync(2), and zero-length I/O through pointers
 * outside the program's memory (which Linux never touches). Prints what
 * each call returned so a run in an isle can be compared line by line
 * with a native one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "report.h"

static char path[64];

static void pipe_sizes(void)
{
	int ends[2];
	if (pipe(ends) != 0) {
		perror("pipe");
		return;
	}
	report("F_GETPIPE_SZ of a new pipe", fcntl(ends[0], F_GETPIPE_SZ));
	report("F_SETPIPE_SZ 5000 on the write end", fcntl(ends[1], F_SETPIPE_SZ, 5000));
	report("F_GETPIPE_SZ of the read end", fcntl(ends[0], F_GETPIPE_SZ));
	report("F_SETPIPE_SZ 0", fcntl(ends[1], F_SETPIPE_SZ, 0));
	report("F_SETPIPE_SZ three pages and a byte", fcntl(ends[0], F_SETPIPE_SZ, 3 * 4096 + 1));
	report("F_SETPIPE_SZ 1 MiB", fcntl(ends[1], F_SETPIPE_SZ, 1 << 20));
	report("F_SETPIPE_SZ above 2 GiB", fcntl(ends[1], F_SETPIPE_SZ, 0x80000001u));
	report("F_GETPIPE_SZ after refusals", fcntl(ends[0], F_GETPIPE_SZ));

	static char data[8192];
	memset(data, 'x', sizeof data);
	report("write two pages", write(ends[1], data, sizeof data));
	report("F_SETPIPE_SZ below what it holds", fcntl(ends[1], F_SETPIPE_SZ, 4096));
	report("F_SETPIPE_SZ to what it holds", fcntl(ends[1], F_SETPIPE_SZ, 8192));
	report("read it back", read(ends[0], data, sizeof data));

	int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	report("F_GETPIPE_SZ of a regular file", fcntl(file, F_GETPIPE_SZ));
	report("F_SETPIPE_SZ of a regular file", fcntl(file, F_SETPIPE_SZ, 4096));
	close(file);
	close(ends[0]);
	report("F_GETPIPE_SZ of a closed fd", fcntl(ends[0], F_GETPIPE_SZ));
	report("F_SETPIPE_SZ of a closed fd", fcntl(ends[0], F_SETPIPE_SZ, 4096));
	close(ends[1]);
}

static void syncing(void)
{
	int file = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	report("write before sync", write(file, "synced\n", 7));
	report("sync", syscall(SYS_sync));
	close(file);
}

static void zero_length(void)
{
	/* Unmapped natively (far above the program and below its mmaps),
	 * and beyond an isle's RAM. */
	void *wild = (void *)0x100000000000ul;
	/* Where Linux stops taking even zero-length buffers. */
	void *past_user = (void *)0x7ffffffff001ul;
	void *kernel = (void *)0xffff800000000000ul;

	int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	report("write 4 bytes", write(file, "data", 4));
	lseek(file, 0, SEEK_SET);
	report("write 0 bytes from an unmapped buffer", write(file, wild, 0));
	report("read 0 bytes into an unmapped buffer", read(file, wild, 0));
	report("pwrite 0 bytes from an unmapped buffer", pwrite(file, wild, 0, 2));
	report("pread 0 bytes into an unmapped buffer", pread(file, wild, 0, 2));
	report("write 0 bytes at the last user page", write(file, (void *)0x7ffffffff000ul, 0));
	report("write 0 bytes past the user half", write(file, past_user, 0));
	report("read 0 bytes into the kernel half", read(file, kernel, 0));
	report("write 1 byte from an unmapped buffer", write(file, wild, 1));
	report("read 1 byte into an unmapped buffer", read(file, wild, 1));

	struct iovec empty[2] = {{wild, 0}, {NULL, 0}};
	report("writev of empty unmapped iovecs", writev(file, empty, 2));
	report("readv of empty unmapped iovecs", readv(file, empty, 2));
	report("writev of no iovecs at an unmapped address", writev(file, wild, 0));
	report("readv of no iovecs at an unmapped address", readv(file, wild, 0));
	report("preadv of no iovecs at an unmapped address", preadv(file, wild, 0, 0));
	report("offset after them all", lseek(file, 0, SEEK_CUR));
	close(file);

	int reader = open(path, O_RDONLY);
	report("write 0 bytes to a read-only fd", write(reader, wild, 0));
	close(reader);
	report("write 0 bytes to a closed fd", write(reader, wild, 0));

	int dir = open("/", O_RDONLY | O_DIRECTORY);
	report("read 0 bytes from a directory", read(dir, wild, 0));
	close(dir);

	int ends[2];
	if (pipe(ends) != 0) {
		perror("pipe");
		return;
	}
	report("write 0 bytes to a pipe", write(ends[1], wild, 0));
	report("read 0 bytes from an empty pipe", read(ends[0], wild, 0));
	close(ends[0]);
	close(ends[1]);
}

int main(void)
{
	snprintf(path, sizeof path, "/tmp/atoll-io-edges-%d", (int)getpid());
	pipe_sizes();
	syncing();
	zero_length();
	unlink(path);
	return 0;
}
