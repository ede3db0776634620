/* One file operation busybox can't be made to do on its own, for the
 * confinement tests: `fsprobe OP PATH [MODE]`. Prints one line per system
 * call, `NAME ok` or `NAME errno N`, and exits 0 if the operation succeeded,
 * 1 if it failed.
 *
 *   chmod PATH MODE     chmod(2) by path (follows a final symlink)
 *   chown PATH          chown(2) by path to -1, -1 (changes nothing, but
 *                       fails as a real change would: ENOENT, EROFS...)
 *   fchmod PATH MODE    open(O_RDONLY), then fchmod(2) the fd
 *   fchown PATH         open(O_RDONLY), then fchown(2) the fd to -1, -1
 *   futimens PATH       open(O_RDONLY), then futimens(2) the fd
 *   read PATH           open(O_RDONLY), then print how many bytes it reads
 *                       (never the content)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int report(const char *name, int result)
{
	if (result < 0)
		printf("%s errno %d\n", name, errno);
	else
		printf("%s ok\n", name);
	return result < 0;
}

static int open_for(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	report("open", fd);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fsprobe chmod|chown|fchmod|fchown|futimens|read PATH [MODE]\n");
		return 2;
	}
	const char *op = argv[1], *path = argv[2];
	mode_t mode = argc > 3 ? (mode_t)strtol(argv[3], NULL, 8) : 0644;
	if (strcmp(op, "chmod") == 0)
		return report("chmod", chmod(path, mode));
	if (strcmp(op, "chown") == 0)
		return report("chown", chown(path, (uid_t)-1, (gid_t)-1));
	int fd = open_for(path);
	if (fd < 0)
		return 1;
	if (strcmp(op, "fchmod") == 0)
		return report("fchmod", fchmod(fd, mode));
	if (strcmp(op, "fchown") == 0)
		return report("fchown", fchown(fd, (uid_t)-1, (gid_t)-1));
	if (strcmp(op, "futimens") == 0) {
		struct timespec times[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
		return report("futimens", futimens(fd, times));
	}
	if (strcmp(op, "read") == 0) {
		char buffer[65536];
		long total = 0;
		ssize_t done;
		while ((done = read(fd, buffer, sizeof buffer)) > 0)
			total += done;
		if (report("read", (int)done))
			return 1;
		printf("%ld bytes\n", total);
		return 0;
	}
	fprintf(stderr, "fsprobe: unknown op %s\n", op);
	return 2;
}
