/* Modes of new files, directories and Unix sockets under several umasks,
 * and calls whose flags musl and glibc pass differently (open O_PATH,
 * linkat AT_SYMLINK_FOLLOW): `file_modes DIR`, compared with a native run.
 * Everything it makes in DIR it removes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void show(const char *what, int result, const char *path)
{
	struct stat st;
	if (result < 0)
		printf("%s: %s\n", what, strerror(errno));
	else if (lstat(path, &st) != 0)
		printf("%s: ok, then lstat: %s\n", what, strerror(errno));
	else
		printf("%s: mode %04o\n", what, st.st_mode & 07777);
}

static int bound_socket(const char *path)
{
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	strcpy(address.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	int done = bind(fd, (struct sockaddr *)&address, sizeof address);
	close(fd);
	return done;
}

int main(int argc, char **argv)
{
	if (argc != 2 || chdir(argv[1]) != 0) {
		fprintf(stderr, "usage: file_modes DIR\n");
		return 2;
	}
	const mode_t masks[] = {022, 077, 0, 027};
	for (unsigned i = 0; i < sizeof masks / sizeof masks[0]; i++) {
		char name[64];
		umask(masks[i]);
		printf("umask %03o\n", masks[i]);
		snprintf(name, sizeof name, "file-%o", masks[i]);
		int fd = open(name, O_CREAT | O_EXCL | O_WRONLY, 0666);
		show("  open O_CREAT 0666", fd, name);
		close(fd);
		unlink(name);
		fd = open(name, O_CREAT | O_WRONLY, 0777);
		show("  open O_CREAT 0777", fd, name);
		close(fd);
		/* An existing file keeps its mode. */
		chmod(name, 0604);
		fd = open(name, O_CREAT | O_WRONLY, 0777);
		show("  open O_CREAT existing", fd, name);
		close(fd);
		unlink(name);
		snprintf(name, sizeof name, "dir-%o", masks[i]);
		show("  mkdir 0777", mkdir(name, 0777), name);
		rmdir(name);
		snprintf(name, sizeof name, "sock-%o", masks[i]);
		show("  bind", bound_socket(name), name);
		unlink(name);
	}
	umask(022);

	int fd = open("target", O_CREAT | O_WRONLY, 0644);
	close(fd);
	fd = open(".", O_PATH | O_DIRECTORY);
	printf("open O_PATH|O_DIRECTORY: %s\n", fd < 0 ? strerror(errno) : "ok");
	close(fd);
	fd = open("target", O_PATH);
	struct stat st;
	printf("open O_PATH: %s\n", fd < 0 ? strerror(errno) : "ok");
	printf("fstat O_PATH: %s\n", fstat(fd, &st) != 0 ? strerror(errno) : "ok");
	close(fd);

	struct stat target;
	stat("target", &target);
	if (symlink("target", "link") != 0)
		perror("symlink");
	int linked = linkat(AT_FDCWD, "link", AT_FDCWD, "followed", AT_SYMLINK_FOLLOW);
	printf("linkat AT_SYMLINK_FOLLOW: %s", linked ? strerror(errno) : "ok");
	if (lstat("followed", &st) == 0)
		printf(", %s%s", S_ISLNK(st.st_mode) ? "a symlink" : "a regular file",
		       st.st_ino == target.st_ino ? ", the target's inode" : "");
	printf("\n");
	linked = linkat(AT_FDCWD, "link", AT_FDCWD, "unfollowed", 0);
	printf("linkat 0: %s", linked ? strerror(errno) : "ok");
	if (lstat("unfollowed", &st) == 0)
		printf(", %s\n", S_ISLNK(st.st_mode) ? "a symlink" : "a regular file");
	else
		printf("\n");
	unlink("followed");
	unlink("unfollowed");
	unlink("link");
	unlink("target");
	return 0;
}
