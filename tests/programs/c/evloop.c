/* An epoll event loop over a pipe, a socket pair, an eventfd and a timerfd,
 * then poll and select on a pipe plus a socket. Output is deterministic. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(void)
{
	int pipe_fds[2], pair[2];
	if (pipe(pipe_fds) || socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) {
		perror("setup");
		return 1;
	}
	int event = eventfd(0, 0);
	int timer = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec every = { { 0, 10 * 1000 * 1000 }, { 0, 10 * 1000 * 1000 } };
	timerfd_settime(timer, 0, &every, NULL);
	int epoll = epoll_create1(0);
	int watched[] = { pipe_fds[0], pair[1], event, timer };
	for (int i = 0; i < 4; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 100 + i };
		epoll_ctl(epoll, EPOLL_CTL_ADD, watched[i], &ev);
	}
	write(pipe_fds[1], "pipe!", 5);
	write(pair[0], "socket!", 7);
	uint64_t one = 1;
	write(event, &one, 8);
	int ticks = 0, pipe_seen = 0, socket_seen = 0, event_seen = 0;
	while (ticks < 3) {
		struct epoll_event ready[8];
		int n = epoll_wait(epoll, ready, 8, 1000);
		if (n <= 0) {
			printf("epoll_wait returned %d\n", n);
			return 1;
		}
		for (int i = 0; i < n; i++) {
			char buf[64];
			uint64_t value;
			switch (ready[i].data.u64) {
			case 100:
				pipe_seen += read(pipe_fds[0], buf, sizeof buf);
				break;
			case 101:
				socket_seen += read(pair[1], buf, sizeof buf);
				break;
			case 102:
				read(event, &value, 8);
				event_seen += (int)value;
				break;
			case 103:
				read(timer, &value, 8);
				ticks += value > 0;
				break;
			}
		}
	}
	printf("epoll: pipe %d bytes, socket %d bytes, eventfd %d, timer ticks %d\n", pipe_seen, socket_seen,
	       event_seen, ticks);

	write(pipe_fds[1], "x", 1);
	struct pollfd fds[2] = { { pipe_fds[0], POLLIN, 0 }, { pair[1], POLLIN, 0 } };
	int ready = poll(fds, 2, 100);
	printf("poll: %d ready, pipe %s, socket %s\n", ready, fds[0].revents & POLLIN ? "readable" : "idle",
	       fds[1].revents & POLLIN ? "readable" : "idle");
	char drain;
	read(pipe_fds[0], &drain, 1);
	write(pair[0], "y", 1);
	fd_set set;
	FD_ZERO(&set);
	FD_SET(pipe_fds[0], &set);
	FD_SET(pair[1], &set);
	struct timeval wait = { 0, 100 * 1000 };
	int selected = select(pair[1] > pipe_fds[0] ? pair[1] + 1 : pipe_fds[0] + 1, &set, NULL, NULL, &wait);
	printf("select: %d ready, pipe %s, socket %s\n", selected, FD_ISSET(pipe_fds[0], &set) ? "readable" : "idle",
	       FD_ISSET(pair[1], &set) ? "readable" : "idle");
	return 0;
}
