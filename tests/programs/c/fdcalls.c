/* Positioned vectored I/O, close_range, fcntl record locks (POSIX and
 * open-file-description locks), close-on-exec as each fd-making call
 * asks, RLIMIT_NOFILE, FIFOs made by mknod, printing what each call returned so a run
 * in an isle can be compared line by line with a native one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "report.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC 4
#endif

static char path[64];

static void vectored(void)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	char head[] = "0123456789", tail[] = "abcdef";
	struct iovec out[2] = {{head, 10}, {tail, 6}};
	report("pwritev at 4", pwritev(fd, out, 2, 4));
	report("offset after pwritev", lseek(fd, 0, SEEK_CUR));
	report("pwritev2 at -1 (the file position)", syscall(SYS_pwritev2, fd, out, 1, -1L, 0L, 0));
	report("offset after pwritev2", lseek(fd, 0, SEEK_CUR));

	char a[5] = {0}, b[9] = {0};
	struct iovec in[2] = {{a, 4}, {b, 8}};
	report("preadv at 2", preadv(fd, in, 2, 2));
	printf("read: [%s] [%s]\n", a, b);
	memset(a, 0, sizeof a);
	memset(b, 0, sizeof b);
	report("preadv2 at 16", syscall(SYS_preadv2, fd, in, 2, 16L, 0L, 0));
	printf("read: [%s] [%s]\n", a, b);
	report("preadv at -5", preadv(fd, in, 2, -5));
	report("preadv2 with unknown flags", syscall(SYS_preadv2, fd, in, 2, 0L, 0L, 0x4000));
	report("preadv with a bad fd", preadv(99, in, 2, 0));
	struct iovec wild = {(void *)16, 4};
	report("preadv into an unmapped buffer", preadv(fd, &wild, 1, 0));
	close(fd);
}

static void closing(void)
{
	int base = open(path, O_RDONLY);
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = dup(base);
	report("close_range cloexec on the last two",
	       syscall(SYS_close_range, fds[2], fds[3], CLOSE_RANGE_CLOEXEC));
	report("FD_CLOEXEC of the first dup", fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	report("FD_CLOEXEC of the last dup", fcntl(fds[3], F_GETFD) & FD_CLOEXEC);
	report("close_range of all five", syscall(SYS_close_range, base, fds[3], 0));
	report("fcntl on a closed fd", fcntl(fds[1], F_GETFD));
	report("close_range with first > last", syscall(SYS_close_range, 9, 3, 0));
	report("close_range with unknown flags", syscall(SYS_close_range, 3, 4, 0x100));
	report("close_range of nothing open", syscall(SYS_close_range, 500, 600, 0));
}

static int lock(int fd, int command, short type, off_t start, off_t len)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return fcntl(fd, command, &l);
}

static void describe(const char *what, int fd, int command, short type, off_t start, off_t len)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	int result = fcntl(fd, command, &l);
	if (result < 0) {
		report(what, result);
		return;
	}
	const char *kind = l.l_type == F_UNLCK ? "unlocked" : l.l_type == F_WRLCK ? "write" : "read";
	printf("%s: %s start %ld len %ld pid %s\n", what, kind, (long)l.l_start, (long)l.l_len,
	       l.l_pid == -1 ? "-1" : l.l_pid == 0 ? "0" : "some");
}

static int waiter_fd;
static volatile int waiter_got_lock;

static void *waiter(void *unused)
{
	(void)unused;
	int result = lock(waiter_fd, F_OFD_SETLKW, F_WRLCK, 0, 10);
	waiter_got_lock = result == 0 ? 1 : -1;
	return NULL;
}

static void locking(void)
{
	int first = open(path, O_RDWR);
	int second = open(path, O_RDWR);

	/* POSIX locks belong to the process: they never conflict within it. */
	report("F_SETLK write 0..10", lock(first, F_SETLK, F_WRLCK, 0, 10));
	describe("F_GETLK from the same process", second, F_GETLK, F_WRLCK, 0, 10);
	report("F_SETLK unlock", lock(first, F_SETLK, F_UNLCK, 0, 0));

	/* Open-file-description locks conflict between two opens. */
	report("F_OFD_SETLK write 0..10 on the first", lock(first, F_OFD_SETLK, F_WRLCK, 0, 10));
	describe("F_OFD_GETLK from the second", second, F_OFD_GETLK, F_RDLCK, 5, 1);
	report("F_OFD_SETLK read 5 on the second", lock(second, F_OFD_SETLK, F_RDLCK, 5, 1));
	report("F_OFD_SETLK read 20.. on the second", lock(second, F_OFD_SETLK, F_RDLCK, 20, 0));
	describe("F_OFD_GETLK past both", first, F_OFD_GETLK, F_WRLCK, 12, 4);

	/* A waiter blocks only its own thread, until the holder lets go. */
	waiter_fd = second;
	pthread_t thread;
	pthread_create(&thread, NULL, waiter, NULL);
	usleep(100000);
	printf("waiter holds the lock before the unlock: %s\n", waiter_got_lock ? "yes" : "no");
	report("F_OFD_SETLK unlock on the first", lock(first, F_OFD_SETLK, F_UNLCK, 0, 0));
	pthread_join(thread, NULL);
	printf("waiter after the unlock: %d\n", waiter_got_lock);
	describe("F_OFD_GETLK from the first", first, F_OFD_GETLK, F_WRLCK, 0, 1);

	report("F_SETLK with a bad type", lock(first, F_SETLK, 42, 0, 1));
	report("F_OFD_SETLK with a pid set", fcntl(first, F_OFD_SETLK, &(struct flock){
		.l_type = F_RDLCK, .l_pid = 1}));
	report("F_SETLK on a read-only fd for writing", lock(open(path, O_RDONLY), F_SETLK, F_WRLCK, 0, 1));
	report("F_GETLK into an unmapped struct", fcntl(first, F_GETLK, (void *)16));
	close(first);
	close(second);
}

static long cloexec(int fd)
{
	if (fd < 0)
		return fd;
	long flag = fcntl(fd, F_GETFD) & FD_CLOEXEC;
	close(fd);
	return flag;
}

static void close_on_exec(void)
{
	int pair[2];
	report("socket FD_CLOEXEC", cloexec(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)));
	report("socket plain", cloexec(socket(AF_UNIX, SOCK_STREAM, 0)));
	report("eventfd EFD_CLOEXEC", cloexec(eventfd(0, EFD_CLOEXEC)));
	report("eventfd plain", cloexec(eventfd(0, 0)));
	report("timerfd TFD_CLOEXEC", cloexec(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)));
	report("epoll EPOLL_CLOEXEC", cloexec(epoll_create1(EPOLL_CLOEXEC)));
	report("socketpair", socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
	report("socketpair FD_CLOEXEC", cloexec(pair[0]) + cloexec(pair[1]));
}

static void open_file_limit(void)
{
	struct rlimit limit = {16, 16};
	report("setrlimit NOFILE 16", setrlimit(RLIMIT_NOFILE, &limit));
	int last = -1, fd;
	while ((fd = open("/dev/null", O_RDONLY)) >= 0)
		last = fd;
	printf("opened up to fd %d, then %s\n", last, errno_name(errno));
	report("dup2 to the limit", dup2(0, 16));
	report("F_DUPFD at the limit", fcntl(0, F_DUPFD, 16));
	for (fd = 3; fd <= last; fd++)
		close(fd);
	report("open below the limit", cloexec(open("/dev/null", O_RDONLY)));
}

static void fifos(void)
{
	char fifo[300], below[320];
	snprintf(fifo, sizeof fifo, "%s.fifo", path);
	report("mknod S_IFIFO", mknod(fifo, S_IFIFO | 0600, 0));
	struct stat st;
	report("stat the FIFO", stat(fifo, &st));
	printf("is a FIFO: %d, mode %o\n", S_ISFIFO(st.st_mode), st.st_mode & 0777);
	report("mknod it again", mknod(fifo, S_IFIFO | 0600, 0));
	report("mkfifo a second", mkfifo(path, 0600));
	report("mkfifo it again", mkfifo(path, 0600));
	unlink(path);
	int reader = open(fifo, O_RDONLY | O_NONBLOCK);
	int writer = open(fifo, O_WRONLY | O_NONBLOCK);
	report("write into the FIFO", write(writer, "fifo", 4));
	char bytes[8] = {0};
	report("read it back", read(reader, bytes, sizeof bytes));
	printf("read: %s\n", bytes);
	close(reader);
	close(writer);
	snprintf(below, sizeof below, "%s/below", fifo);
	report("utimensat below a non-directory", utimensat(AT_FDCWD, below, NULL, 0));
	report("mknod below a non-directory", mknod(below, S_IFIFO | 0600, 0));
	unlink(fifo);
}

int main(void)
{
	snprintf(path, sizeof path, "/tmp/atoll-fdcalls-%d", (int)getpid());
	vectored();
	closing();
	locking();
	unlink(path);
	close_on_exec();
	fifos();
	open_file_limit();
	return 0;
}
