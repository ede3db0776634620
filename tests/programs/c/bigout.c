/* Writes exactly N bytes (argv[1], default 1048576) of a deterministic pattern
 * to stdout in 4096-byte write() calls: byte i = (i * 131 + i / 251) & 0xff. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 0) : 1048576;
	static unsigned char buf[4096];
	uint64_t i = 0;

	while (i < total) {
		size_t chunk = total - i < sizeof buf ? (size_t)(total - i) : sizeof buf;
		for (size_t j = 0; j < chunk; j++) {
			uint64_t k = i + j;
			buf[j] = (unsigned char)((k * 131 + k / 251) & 0xff);
		}
		size_t off = 0;
		while (off < chunk) {
			ssize_t w = write(1, buf + off, chunk - off);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "bigout: write error: errno=%d\n", errno);
				return 1;
			}
			off += (size_t)w;
		}
		i += chunk;
	}
	return 0;
}
