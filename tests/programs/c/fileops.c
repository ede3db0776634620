/* create + fstat + close + unlink of small files, argv[1] times: prints
 * `fileops_per_s=N` (one op = the four calls). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 2000;
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (long i = 0; i < count; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%ld", i % 16);
		int fd = open(name, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			perror("fileops");
			return 1;
		}
		close(fd);
		unlink(name);
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
	printf("fileops_per_s=%.0f\n", count / seconds);
	return 0;
}
