/* Fills PATH with up to MIB mebibytes: `tmpfill PATH MIB [wait]`. Prints
 * how many it wrote and why it stopped; with `wait`, then says "waiting"
 * and sleeps until killed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: tmpfill PATH MIB [wait]\n");
		return 2;
	}
	static char chunk[1 << 20];
	memset(chunk, 'x', sizeof chunk);
	long wanted = atol(argv[2]);
	int fd = open(argv[1], O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	const char *stopped = "done";
	long long bytes = 0, goal = (long long)wanted << 20;
	while (bytes < goal) {
		size_t left = goal - bytes < (long long)sizeof chunk ? goal - bytes : sizeof chunk;
		ssize_t done = write(fd, chunk, left);
		if (done < 0) {
			stopped = strerror(errno);
			break;
		}
		bytes += done;
	}
	printf("wrote %lld MiB: %s\n", bytes >> 20, stopped);
	fflush(stdout);
	if (argc > 3) {
		printf("waiting\n");
		fflush(stdout);
		for (;;)
			sleep(1000);
	}
	return bytes == goal ? 0 : 1;
}
