/* Reads argv[1] in 64 KiB chunks: prints `read_mb_per_s=N`. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buffer[64 * 1024];
	int fd = open(argc > 1 ? argv[1] : "data", O_RDONLY);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	long long total = 0;
	ssize_t got;
	while ((got = read(fd, buffer, sizeof buffer)) > 0)
		total += got;
	clock_gettime(CLOCK_MONOTONIC, &end);
	double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
	printf("read_mb_per_s=%.0f\n", total / 1048576.0 / seconds);
	return 0;
}
