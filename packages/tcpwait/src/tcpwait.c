/*
 * cluster-tcpwait: wait until a TCP port accepts connections.
 *
 *   cluster-tcpwait IP PORT [TIMEOUT_SECONDS]
 *
 * Tries to connect to IP:PORT (IPv4 or IPv6 literal, no name lookup) every
 * 200 ms until a connection succeeds (exit 0) or TIMEOUT_SECONDS (default 30)
 * have passed (exit 1, naming the address and the last error). Bad arguments
 * exit 2. Used by units that must not start before a local service listens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int usage(void) {
	fprintf(stderr, "usage: cluster-tcpwait IP PORT [TIMEOUT_SECONDS]\n");
	return 2;
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc < 3 || argc > 4)
		return usage();
	char *end;
	long port = strtol(argv[2], &end, 10);
	if (*argv[2] == '\0' || *end != '\0' || port < 1 || port > 65535) {
		fprintf(stderr, "cluster-tcpwait: port %s: want 1-65535\n", argv[2]);
		return 2;
	}
	double timeout = 30;
	if (argc == 4) {
		timeout = strtod(argv[3], &end);
		if (*argv[3] == '\0' || *end != '\0' || timeout < 0) {
			fprintf(stderr, "cluster-tcpwait: timeout %s: want seconds >= 0\n", argv[3]);
			return 2;
		}
	}
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, argv[1], &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((unsigned short)port);
		len = sizeof *v4;
	} else if (inet_pton(AF_INET6, argv[1], &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((unsigned short)port);
		len = sizeof *v6;
	} else {
		fprintf(stderr, "cluster-tcpwait: %s is not an IP address\n", argv[1]);
		return 2;
	}
	double deadline = now() + timeout;
	int last = 0;
	for (;;) {
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			perror("cluster-tcpwait: socket");
			return 1;
		}
		int rc = connect(fd, (struct sockaddr *)&ss, len);
		last = errno;
		close(fd);
		if (rc == 0)
			return 0;
		if (now() >= deadline)
			break;
		struct timespec pause = {0, 200 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "cluster-tcpwait: %s port %ld not accepting after %g s: %s\n", argv[1], port, timeout, strerror(last));
	return 1;
}
