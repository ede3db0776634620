/* Named and abstract Unix sockets and fd passing (SCM_RIGHTS), printing
 * what each call returned and the names sockets report, so a run in an
 * isle can be compared line by line with a native one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64];

static const char *errno_name(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case EADDRINUSE: return "EADDRINUSE";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EINVAL: return "EINVAL";
	case EBADF: return "EBADF";
	case ENOTDIR: return "ENOTDIR";
	case ENOTCONN: return "ENOTCONN";
	default: return "other";
	}
}

static void report(const char *what, long result)
{
	if (result < 0)
		printf("%s: -1 %s\n", what, errno_name(errno));
	else
		printf("%s: ok\n", what);
}

/* A name as the caller sees it: its length and path (or @abstract). */
static void show(const char *what, struct sockaddr_un *name, socklen_t len)
{
	if (len <= offsetof(struct sockaddr_un, sun_path))
		printf("%s: unnamed (len %u)\n", what, (unsigned)len);
	else if (name->sun_path[0] == 0)
		printf("%s: @%.*s (len %u)\n", what,
		       (int)(len - offsetof(struct sockaddr_un, sun_path) - 1),
		       name->sun_path + 1, (unsigned)len);
	else
		printf("%s: %s (len %u)\n", what, name->sun_path, (unsigned)len);
}

static socklen_t address(struct sockaddr_un *name, const char *path, int abstract)
{
	memset(name, 0, sizeof *name);
	name->sun_family = AF_UNIX;
	size_t len = strlen(path);
	if (abstract) {
		memcpy(name->sun_path + 1, path, len);
		return offsetof(struct sockaddr_un, sun_path) + 1 + len;
	}
	memcpy(name->sun_path, path, len);
	return offsetof(struct sockaddr_un, sun_path) + len + 1;
}

static void names(const char *what, int fd)
{
	struct sockaddr_un name;
	socklen_t len = sizeof name;
	char label[64];
	snprintf(label, sizeof label, "%s local", what);
	if (getsockname(fd, (struct sockaddr *)&name, &len) < 0)
		report(label, -1);
	else
		show(label, &name, len);
	len = sizeof name;
	snprintf(label, sizeof label, "%s peer", what);
	if (getpeername(fd, (struct sockaddr *)&name, &len) < 0)
		report(label, -1);
	else
		show(label, &name, len);
}

/* A server and a client in one thread: a Unix connect completes at once
 * while the backlog has room. */
static void stream(const char *path, int abstract)
{
	struct sockaddr_un name;
	socklen_t len = address(&name, path, abstract);
	int server = socket(AF_UNIX, SOCK_STREAM, 0);
	report("bind", bind(server, (struct sockaddr *)&name, len));
	report("listen", listen(server, 4));
	int client = socket(AF_UNIX, SOCK_STREAM, 0);
	report("connect", connect(client, (struct sockaddr *)&name, len));
	struct sockaddr_un from;
	socklen_t from_len = sizeof from;
	int accepted = accept(server, (struct sockaddr *)&from, &from_len);
	report("accept", accepted);
	show("accepted from", &from, from_len);
	names("server", server);
	names("client", client);
	names("accepted", accepted);
	char buffer[16] = {0};
	report("send", write(client, "ping", 4));
	report("receive", read(accepted, buffer, sizeof buffer - 1));
	printf("received: %s\n", buffer);

	int again = socket(AF_UNIX, SOCK_STREAM, 0);
	report("bind the same name again", bind(again, (struct sockaddr *)&name, len));
	close(again);
	close(accepted);
	close(client);
	close(server);
}

static void refusals(void)
{
	struct sockaddr_un name;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	socklen_t len = address(&name, "missing.sock", 0);
	report("connect to a missing name", connect(fd, (struct sockaddr *)&name, len));
	int file = open("plain", O_CREAT | O_WRONLY, 0600);
	close(file);
	len = address(&name, "plain", 0);
	report("connect to a plain file", connect(fd, (struct sockaddr *)&name, len));
	len = address(&name, "plain/below", 0);
	report("bind below a plain file", bind(fd, (struct sockaddr *)&name, len));
	len = address(&name, "nodir/x.sock", 0);
	report("bind in a missing directory", bind(fd, (struct sockaddr *)&name, len));
	close(fd);
	unlink("plain");
}

static void datagrams(void)
{
	struct sockaddr_un name;
	socklen_t len = address(&name, "dgram.sock", 0);
	int receiver = socket(AF_UNIX, SOCK_DGRAM, 0);
	report("bind datagram", bind(receiver, (struct sockaddr *)&name, len));
	int sender = socket(AF_UNIX, SOCK_DGRAM, 0);
	report("sendto by name", sendto(sender, "hello", 5, 0, (struct sockaddr *)&name, len));
	char buffer[16] = {0};
	report("recv", recv(receiver, buffer, sizeof buffer - 1, 0));
	printf("datagram: %s\n", buffer);
	close(sender);
	close(receiver);
	unlink("dgram.sock");
}

static int send_fd(int via, int fd)
{
	char byte = 'x';
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr align;
		char bytes[CMSG_SPACE(sizeof(int))];
	} control;
	memset(&control, 0, sizeof control);
	struct msghdr message = {0};
	message.msg_iov = &iov;
	message.msg_iovlen = 1;
	message.msg_control = control.bytes;
	message.msg_controllen = sizeof control.bytes;
	struct cmsghdr *header = CMSG_FIRSTHDR(&message);
	header->cmsg_level = SOL_SOCKET;
	header->cmsg_type = SCM_RIGHTS;
	header->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(header), &fd, sizeof fd);
	return sendmsg(via, &message, 0);
}

static int receive_fd(int via, int flags)
{
	char byte;
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr align;
		char bytes[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr message = {0};
	message.msg_iov = &iov;
	message.msg_iovlen = 1;
	message.msg_control = control.bytes;
	message.msg_controllen = sizeof control.bytes;
	if (recvmsg(via, &message, flags) < 0)
		return -1;
	struct cmsghdr *header = CMSG_FIRSTHDR(&message);
	if (!header || header->cmsg_type != SCM_RIGHTS) {
		printf("no fd came\n");
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(header), sizeof fd);
	return fd;
}

static void passing(void)
{
	int pair[2];
	report("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, pair));
	int file = open("passed.txt", O_CREAT | O_RDWR | O_TRUNC, 0600);
	report("write the file", write(file, "through a socket", 16));
	report("send a file fd", send_fd(pair[0], file));
	close(file);
	int received = receive_fd(pair[1], MSG_CMSG_CLOEXEC);
	report("receive a file fd", received);
	printf("received fd is cloexec: %d\n", (fcntl(received, F_GETFD) & FD_CLOEXEC) != 0);
	char buffer[32] = {0};
	report("pread the received fd", pread(received, buffer, sizeof buffer - 1, 0));
	printf("through the received fd: %s\n", buffer);
	struct stat by_fd, by_name;
	fstat(received, &by_fd);
	stat("passed.txt", &by_name);
	printf("same file: %d\n", by_fd.st_ino == by_name.st_ino);
	close(received);

	int pipe_ends[2];
	report("pipe", pipe(pipe_ends));
	report("send a pipe's write end", send_fd(pair[1], pipe_ends[1]));
	close(pipe_ends[1]);
	int writer = receive_fd(pair[0], 0);
	report("receive it", writer);
	report("write through it", write(writer, "piped", 5));
	close(writer);
	memset(buffer, 0, sizeof buffer);
	report("read the pipe", read(pipe_ends[0], buffer, sizeof buffer - 1));
	printf("through the pipe: %s\n", buffer);
	close(pipe_ends[0]);

	report("send a closed fd", send_fd(pair[0], 999));
	close(pair[0]);
	close(pair[1]);
	unlink("passed.txt");
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/atoll-unixsock-%d", (int)getpid());
	if (mkdir(dir, 0700) < 0 || chdir(dir) < 0) {
		perror(dir);
		return 1;
	}
	stream("stream.sock", 0);
	unlink("stream.sock");
	stream("atoll-unixsock-test", 1);
	refusals();
	datagrams();
	passing();
	chdir("/");
	report("rmdir", rmdir(dir));
	return 0;
}
