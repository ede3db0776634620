/* TCP echo round trips on loopback between two threads: argv[1] port,
 * argv[2] round trips; prints `tcp_rtt_cycles=N`. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <x86intrin.h>

static int listener;
static long rounds;

static void *echo(void *unused)
{
	(void)unused;
	int conn = accept(listener, NULL, NULL);
	char byte;
	for (long i = 0; i < rounds; i++) {
		if (read(conn, &byte, 1) != 1 || write(conn, &byte, 1) != 1)
			break;
	}
	close(conn);
	return NULL;
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 19500;
	rounds = argc > 2 ? atol(argv[2]) : 2000;
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	int on = 1;
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1)) {
		perror("listen");
		return 1;
	}
	pthread_t thread;
	pthread_create(&thread, NULL, echo, NULL);
	int client = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(client, (struct sockaddr *)&address, sizeof address)) {
		perror("connect");
		return 1;
	}
	setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	char byte = 'x';
	unsigned long long start = __rdtsc();
	for (long i = 0; i < rounds; i++) {
		if (write(client, &byte, 1) != 1 || read(client, &byte, 1) != 1) {
			perror("round trip");
			return 1;
		}
	}
	unsigned long long end = __rdtsc();
	close(client);
	pthread_join(thread, NULL);
	printf("tcp_rtt_cycles=%.0f\n", (double)(end - start) / rounds);
	return 0;
}
