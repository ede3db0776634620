/* Tries every way out of the network sandbox it knows, printing one line
 * per attempt: "NAME: refused ERRNO" or "NAME: open".
 *
 * net_escapes P G S, run with -p P -p Q:G -p S, where host servers listen
 * on P (TCP and UDP, 127.0.0.1 and ::1), on Q (TCP, both) and on S (TCP
 * and UDP, ::1 only). The isle serves S itself on 127.0.0.1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SOCK_PACKET
#define SOCK_PACKET 10
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef TCP_REPAIR
#define TCP_REPAIR 19
#endif
#ifndef TCP_FASTOPEN
#define TCP_FASTOPEN 23
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#define ETH_P_ALL 0x0003

static const char *errno_name(int e)
{
	static char other[32];
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENETUNREACH: return "ENETUNREACH";
	case EINPROGRESS: return "EINPROGRESS";
	case EADDRINUSE: return "EADDRINUSE";
	default:
		snprintf(other, sizeof other, "errno %d", e);
		return other;
	}
}

static void report(const char *what, long result)
{
	if (result < 0)
		printf("%s: refused %s\n", what, errno_name(errno));
	else
		printf("%s: open\n", what);
}

static void try_socket(const char *what, int domain, int type, int protocol)
{
	int fd = socket(domain, type, protocol);
	report(what, fd);
	if (fd >= 0)
		close(fd);
}

static void try_socketpair(const char *what, int domain, int type)
{
	int pair[2];
	int done = socketpair(domain, type, 0, pair);
	report(what, done);
	if (done == 0) {
		close(pair[0]);
		close(pair[1]);
	}
}

static void sockets(void)
{
	try_socket("raw_tcp_v4", AF_INET, SOCK_RAW, IPPROTO_TCP);
	try_socket("raw_icmp_v4", AF_INET, SOCK_RAW, IPPROTO_ICMP);
	try_socket("raw_nonblock_v4", AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	try_socket("raw_tcp_v6", AF_INET6, SOCK_RAW, IPPROTO_TCP);
	try_socket("raw_icmpv6_v6", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
	try_socket("packet_v4", AF_INET, SOCK_PACKET, htons(ETH_P_ALL));
	try_socket("packet_v6", AF_INET6, SOCK_PACKET, htons(ETH_P_ALL));
	try_socket("packet_family", AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	try_socket("netlink", AF_NETLINK, SOCK_RAW, 0);
	try_socket("ping_v4", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	try_socket("ping_v6", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6);
	try_socket("seqpacket_v4", AF_INET, SOCK_SEQPACKET, 0);
	try_socket("sctp_v6", AF_INET6, SOCK_STREAM, IPPROTO_SCTP);
	try_socket("udplite_v4", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
	try_socket("bad_type_v4", AF_INET, 11, 0);
	try_socket("unix_raw", AF_UNIX, SOCK_RAW, 0);
	try_socketpair("socketpair_unix_raw", AF_UNIX, SOCK_RAW);
	try_socketpair("socketpair_unix_rdm", AF_UNIX, SOCK_RDM);
	try_socketpair("socketpair_inet", AF_INET, SOCK_STREAM);
	/* What ordinary programs make. */
	try_socket("tcp_v4", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP);
	try_socket("udp_v6", AF_INET6, SOCK_DGRAM, 0);
	try_socketpair("socketpair_unix_seqpacket", AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
}

static void try_option(const char *what, int domain, int type, int level, int name,
		       const void *value, socklen_t len)
{
	int fd = socket(domain, type, 0);
	report(what, setsockopt(fd, level, name, value, len));
	close(fd);
}

static void try_int_option(const char *what, int domain, int type, int level, int name, int value)
{
	try_option(what, domain, type, level, name, &value, sizeof value);
}

static void options(void)
{
	struct ip_mreq group = { .imr_multiaddr.s_addr = htonl(0xe0000001) };
	struct ipv6_mreq group6 = { .ipv6mr_interface = 1 };
	inet_pton(AF_INET6, "ff02::1", &group6.ipv6mr_multiaddr);
	struct sock_filter_like { unsigned short code; unsigned char jt, jf; unsigned value; } accept_all =
		{ 0x06, 0, 0, 0xffff };
	struct { unsigned short len; void *filter; } program = { 1, &accept_all };
	struct timeval second = { .tv_sec = 1 };

	try_int_option("so_mark_v4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_MARK, 1);
	try_int_option("so_mark_v6", AF_INET6, SOCK_STREAM, SOL_SOCKET, SO_MARK, 1);
	try_option("so_bindtodevice_v4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3);
	try_option("so_bindtodevice_v6", AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3);
	try_int_option("so_rcvbufforce_v4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_RCVBUFFORCE, 1 << 24);
	try_int_option("so_priority_7_v4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PRIORITY, 7);
	try_int_option("ip_transparent_v4", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_TRANSPARENT, 1);
	try_int_option("ipv6_transparent_v6", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_TRANSPARENT, 1);
	try_int_option("ip_hdrincl_v4", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_HDRINCL, 1);
	try_int_option("ip_freebind_v4", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_FREEBIND, 1);
	try_int_option("tcp_repair_v4", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_REPAIR, 1);
	try_int_option("tcp_fastopen_connect_v6", AF_INET6, SOCK_STREAM, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1);
	try_option("ip_add_membership_v4", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_ADD_MEMBERSHIP, &group, sizeof group);
	try_option("ipv6_add_membership_v6", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &group6, sizeof group6);
	try_option("so_attach_filter_v4", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
	/* What ordinary programs set. */
	try_int_option("so_reuseaddr_v4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR, 1);
	try_int_option("tcp_nodelay_v6", AF_INET6, SOCK_STREAM, IPPROTO_TCP, TCP_NODELAY, 1);
	try_option("so_rcvtimeo_v4", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_RCVTIMEO, &second, sizeof second);
	try_int_option("so_priority_6_v4", AF_INET, SOCK_STREAM, SOL_SOCKET, SO_PRIORITY, 6);
	try_int_option("ipv6_v6only_v6", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	try_int_option("tcp_fastopen_v4", AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_FASTOPEN, 5);
	/* Sending to groups and broadcast: set, but nowhere to send to. */
	try_int_option("ip_multicast_loop_v4", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_MULTICAST_LOOP, 1);
	try_int_option("ipv6_multicast_hops_v6", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 1);
	try_int_option("so_broadcast_v4", AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_BROADCAST, 1);
}

/* An address of `family` (AF_INET, AF_INET6) from text and a port. */
static socklen_t address(struct sockaddr_storage *storage, int family, const char *text, int port)
{
	memset(storage, 0, sizeof *storage);
	if (family == AF_INET) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)storage;
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		inet_pton(AF_INET, text, &v4->sin_addr);
		return sizeof *v4;
	}
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)storage;
	v6->sin6_family = AF_INET6;
	v6->sin6_port = htons(port);
	inet_pton(AF_INET6, text, &v6->sin6_addr);
	return sizeof *v6;
}

static void try_listen_unbound(const char *what, int family)
{
	struct sockaddr_storage name;
	socklen_t len = sizeof name;
	int fd = socket(family, SOCK_STREAM, 0);
	int done = listen(fd, 8);
	int saved = errno;
	getsockname(fd, (struct sockaddr *)&name, &len);
	errno = saved;
	int port = ntohs(((struct sockaddr_in *)&name)->sin_port);
	if (done < 0)
		printf("%s: refused %s, port %d\n", what, errno_name(errno), port);
	else
		printf("%s: open, port %d\n", what, port);
	close(fd);
}

static void try_bind(const char *what, int family, const char *text, int port)
{
	struct sockaddr_storage name;
	socklen_t len = address(&name, family, text, port);
	int fd = socket(family, SOCK_STREAM, 0);
	report(what, bind(fd, (struct sockaddr *)&name, len));
	close(fd);
}

/* Binds a port with a sharing option set: SO_REUSEPORT joins whoever
 * holds the port as the same user, SO_REUSEADDR does for datagrams. */
static void try_share(const char *what, int family, int type, int option, const char *text,
		      int port)
{
	struct sockaddr_storage name;
	socklen_t len = address(&name, family, text, port);
	int fd = socket(family, type, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, option, &one, sizeof one);
	report(what, bind(fd, (struct sockaddr *)&name, len));
	close(fd);
}

/* The host's servers on P share their port with their own user. */
static void share_host_port(int port)
{
	try_share("reuseport_tcp_v4 p", AF_INET, SOCK_STREAM, SO_REUSEPORT, "0.0.0.0", port);
	try_share("reuseport_tcp_v6 p", AF_INET6, SOCK_STREAM, SO_REUSEPORT, "::1", port);
	try_share("reuseport_udp_v4 p", AF_INET, SOCK_DGRAM, SO_REUSEPORT, "127.0.0.1", port);
	try_share("reuseaddr_udp_v6 p", AF_INET6, SOCK_DGRAM, SO_REUSEADDR, "::1", port);
}

/* Two of the isle's own sockets may share its port. */
static void share_own_port(int port)
{
	struct sockaddr_storage name;
	socklen_t len = address(&name, AF_INET, "127.0.0.1", port);
	int one = 1, first = socket(AF_INET, SOCK_STREAM, 0), second = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(first, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	setsockopt(second, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	report("own_reuseport_first", bind(first, (struct sockaddr *)&name, len));
	report("own_reuseport_second", bind(second, (struct sockaddr *)&name, len));
	close(first);
	close(second);
}

static void listening(void)
{
	try_listen_unbound("listen_unbound_v4", AF_INET);
	try_listen_unbound("listen_unbound_v6", AF_INET6);
	try_bind("bind_ephemeral_v4", AF_INET, "0.0.0.0", 0);
	try_bind("bind_ephemeral_v6", AF_INET6, "::", 0);
	try_bind("bind_unpublished_v4", AF_INET, "127.0.0.1", 1);
	try_bind("bind_unpublished_v6", AF_INET6, "::1", 1);
	/* Unix sockets listen on the names they were allowed. */
	struct sockaddr_un name = { .sun_family = AF_UNIX };
	memcpy(name.sun_path + 1, "net_escapes", 11);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&name, offsetof(struct sockaddr_un, sun_path) + 12);
	report("listen_unix", listen(fd, 8));
	close(fd);
}

enum way { CONNECT, FASTOPEN, FASTOPEN_SENDMSG, SENDTO, SENDMSG, UDP_CONNECT, SENDMMSG, BROADCAST };

/* Reaches `text` port `port` in the way named, from a fresh socket. */
static void try_reach(const char *what, const char *label, enum way way, int family,
		      const char *text, int port)
{
	char line[96];
	struct sockaddr_storage name;
	socklen_t len = address(&name, family, text, port);
	int stream = way == CONNECT || way == FASTOPEN || way == FASTOPEN_SENDMSG;
	int fd = socket(family, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
	char byte = 'x';
	struct iovec iov = { &byte, 1 };
	struct msghdr message = { .msg_name = &name, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1 };
	struct mmsghdr messages = { .msg_hdr = message };
	long done = -1;
	switch (way) {
	case CONNECT:
	case UDP_CONNECT:
		done = connect(fd, (struct sockaddr *)&name, len);
		break;
	case FASTOPEN:
		done = sendto(fd, &byte, 1, MSG_FASTOPEN, (struct sockaddr *)&name, len);
		break;
	case FASTOPEN_SENDMSG:
		done = sendmsg(fd, &message, MSG_FASTOPEN);
		break;
	case BROADCAST:
		setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &(int){ 1 }, sizeof(int));
		/* fall through */
	case SENDTO:
		done = sendto(fd, &byte, 1, 0, (struct sockaddr *)&name, len);
		break;
	case SENDMSG:
		done = sendmsg(fd, &message, 0);
		break;
	case SENDMMSG:
		done = sendmmsg(fd, &messages, 1, 0);
		break;
	}
	snprintf(line, sizeof line, "%s %s", what, label);
	report(line, done);
	close(fd);
}

/* Every way to a published port a host server holds. */
static void host_server(const char *label, int port)
{
	try_reach("connect_v4", label, CONNECT, AF_INET, "127.0.0.1", port);
	try_reach("connect_v6", label, CONNECT, AF_INET6, "::1", port);
	try_reach("connect_mapped", label, CONNECT, AF_INET6, "::ffff:127.0.0.1", port);
	try_reach("connect_any_v4", label, CONNECT, AF_INET, "0.0.0.0", port);
	try_reach("connect_any_v6", label, CONNECT, AF_INET6, "::", port);
	try_reach("connect_mapped_any", label, CONNECT, AF_INET6, "::ffff:0.0.0.0", port);
	try_reach("connect_127_0_0_2", label, CONNECT, AF_INET, "127.0.0.2", port);
	try_reach("fastopen_v4", label, FASTOPEN, AF_INET, "127.0.0.1", port);
	try_reach("fastopen_v6", label, FASTOPEN, AF_INET6, "::1", port);
	try_reach("fastopen_sendmsg_mapped", label, FASTOPEN_SENDMSG, AF_INET6, "::ffff:127.0.0.1", port);
	try_reach("udp_sendto_v4", label, SENDTO, AF_INET, "127.0.0.1", port);
	try_reach("udp_sendto_v6", label, SENDTO, AF_INET6, "::1", port);
	try_reach("udp_sendmsg_mapped", label, SENDMSG, AF_INET6, "::ffff:127.0.0.1", port);
	try_reach("udp_sendmmsg_any_v4", label, SENDMMSG, AF_INET, "0.0.0.0", port);
	try_reach("udp_connect_v6", label, UDP_CONNECT, AF_INET6, "::1", port);
	try_reach("udp_broadcast_v4", label, BROADCAST, AF_INET, "255.255.255.255", port);
	try_reach("udp_multicast_v4", label, SENDTO, AF_INET, "224.0.0.1", port);
	try_reach("udp_multicast_v6", label, SENDTO, AF_INET6, "ff02::1", port);
}

/* Where an unbound datagram socket sending to the isle's own server is
 * bound: on loopback, not on every address where other hosts reach it. */
static void show_autobind(const char *what, int family, const char *text, int port)
{
	struct sockaddr_storage name, local;
	socklen_t len = address(&name, family, text, port), local_len = sizeof local;
	char shown[INET6_ADDRSTRLEN] = "?";
	int fd = socket(family, SOCK_DGRAM, 0);
	sendto(fd, "x", 1, 0, (struct sockaddr *)&name, len);
	getsockname(fd, (struct sockaddr *)&local, &local_len);
	if (family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&local)->sin_addr, shown, sizeof shown);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&local)->sin6_addr, shown, sizeof shown);
	printf("%s s: bound to %s\n", what, shown);
	close(fd);
}

/* The isle's own servers on S, on 127.0.0.1 only: a host server has ::1. */
static void own_server(int port)
{
	struct sockaddr_storage name;
	socklen_t len = address(&name, AF_INET, "127.0.0.1", port);
	int server = socket(AF_INET, SOCK_STREAM, 0);
	int datagrams = socket(AF_INET, SOCK_DGRAM, 0);
	report("own_bind", bind(server, (struct sockaddr *)&name, len));
	report("own_listen", listen(server, 8));
	report("own_udp_bind", bind(datagrams, (struct sockaddr *)&name, len));
	try_reach("connect_v4", "s", CONNECT, AF_INET, "127.0.0.1", port);
	try_reach("connect_mapped", "s", CONNECT, AF_INET6, "::ffff:127.0.0.1", port);
	try_reach("connect_any_v4", "s", CONNECT, AF_INET, "0.0.0.0", port);
	try_reach("connect_v6", "s", CONNECT, AF_INET6, "::1", port);
	try_reach("udp_sendto_v4", "s", SENDTO, AF_INET, "127.0.0.1", port);
	try_reach("udp_sendto_v6", "s", SENDTO, AF_INET6, "::1", port);
	show_autobind("udp_autobind_v4", AF_INET, "127.0.0.1", port);
	show_autobind("udp_autobind_mapped", AF_INET6, "::ffff:127.0.0.1", port);
	close(server);
	close(datagrams);
	try_reach("connect_after_close_v4", "s", CONNECT, AF_INET, "127.0.0.1", port);
	try_reach("udp_sendto_after_close_v4", "s", SENDTO, AF_INET, "127.0.0.1", port);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: net_escapes P G S\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sockets();
	options();
	listening();
	share_host_port(atoi(argv[1]));
	host_server("p", atoi(argv[1]));
	host_server("q", atoi(argv[2]));
	own_server(atoi(argv[3]));
	share_own_port(atoi(argv[3]));
	return 0;
}
