/* Copies stdin to stdout in 64 KiB read()/write() chunks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char buf[64 * 1024];

int main(void)
{
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "cat: read error: errno=%d\n", errno);
			return 1;
		}
		if (n == 0)
			return 0;
		ssize_t off = 0;
		while (off < n) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "cat: write error: errno=%d\n", errno);
				return 1;
			}
			off += w;
		}
	}
}
