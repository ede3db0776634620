/* Tries, in directory DIR of a writable mount, what would leave the host
 * holding a set-id program or a file of another user:
 * `file_escapes DIR OTHER_ID OWN_UID OWN_GID`. Prints one line per attempt:
 * what it tried, `ok` or the error, and the mode the file has after it.
 * `file_escapes --host-files OTHER_ID` tries to change the owner, mode and
 * times of the host's files an isle is given to use: /dev/null and its
 * stdio (never run it natively as root: it would succeed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(const char *what, int result, const char *path)
{
	const char *outcome = result < 0 ? strerror(errno) : "ok";
	struct stat st;
	if (lstat(path, &st) != 0)
		printf("%s: %s (then lstat: %s)\n", what, outcome, strerror(errno));
	else
		printf("%s: %s, mode %04o\n", what, outcome, st.st_mode & 07777);
}

static void try_host_file(const char *name, int fd, uid_t other)
{
	struct timespec epoch[2] = {{0, 0}, {0, 0}};
	int results[3] = {fchmod(fd, 0), fchown(fd, other, other), futimens(fd, epoch)};
	const char *calls[3] = {"fchmod 0", "fchown OTHER", "futimens 1970"};
	for (int i = 0; i < 3; i++)
		printf("%s %s: %s\n", calls[i], name, results[i] < 0 ? strerror(errno) : "ok");
}

static int host_files(uid_t other)
{
	int null = open("/dev/null", O_RDWR);
	if (null < 0) {
		perror("open /dev/null");
		return 1;
	}
	try_host_file("/dev/null", null, other);
	try_host_file("stdin", 0, other);
	try_host_file("stdout", 1, other);
	int copy = dup(0);
	try_host_file("dup of stdin", copy, other);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--host-files") == 0)
		return host_files((uid_t)atol(argv[2]));
	if (argc != 5 || chdir(argv[1]) != 0) {
		fprintf(stderr, "usage: file_escapes DIR OTHER_ID OWN_UID OWN_GID\n");
		return 2;
	}
	uid_t other = (uid_t)atol(argv[2]);
	uid_t uid = (uid_t)atol(argv[3]);
	gid_t gid = (gid_t)atol(argv[4]);
	umask(0);

	int fd = open("setid", O_CREAT | O_EXCL | O_RDWR, 06755);
	report("open O_CREAT 06755", fd, "setid");
	report("chmod 04755", chmod("setid", 04755), "setid");
	report("fchmod 02755", fchmod(fd, 02755), "setid");
	report("fchmodat 06711", fchmodat(AT_FDCWD, "setid", 06711, 0), "setid");
	report("chown OTHER -1", chown("setid", other, -1), "setid");
	report("chown -1 OTHER", chown("setid", -1, other), "setid");
	report("fchown OTHER OTHER", fchown(fd, other, other), "setid");
	report("fchownat OTHER AT_EMPTY_PATH",
	       fchownat(fd, "", other, other, AT_EMPTY_PATH), "setid");
	if (symlink("setid", "link") != 0)
		perror("symlink");
	report("lchown link OTHER", lchown("link", other, other), "setid");
	report("fchownat link OTHER AT_SYMLINK_NOFOLLOW",
	       fchownat(AT_FDCWD, "link", other, -1, AT_SYMLINK_NOFOLLOW), "setid");
	report("chown link OTHER", chown("link", other, -1), "setid");
	report("chown -1 -1", chown("setid", -1, -1), "setid");
	report("chown OWN OWN", chown("setid", uid, gid), "setid");
	report("chmod 04755 after chown", chmod("setid", 04755), "setid");

	report("mkdir 07777", mkdir("dir", 07777), "dir");
	report("chmod dir 02775", chmod("dir", 02775), "dir");
	report("chmod dir 04775", chmod("dir", 04775), "dir");
	report("chown dir OTHER", chown("dir", other, other), "dir");
	close(fd);
	return 0;
}
