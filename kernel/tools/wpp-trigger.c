// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-trigger N - write the magic number N to /dev/wpp-trigger
 * (10 power loss, 20 reset firmware, 30 test page, 40 test region,
 * 50/60 toggle debug flags, 70 sync now) and explain a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEV "/dev/wpp-trigger"

static const char *why(int err)
{
	switch (err) {
	case ESRCH:
		return "no tracked process";
	case EINVAL:
		return "unknown magic number (10 20 30 40 50 60 70)";
	case EIO:
		return "the firmware reported an error (see dmesg and wpp-status)";
	case ETIMEDOUT:
		return "the firmware did not answer the SMI (firmware without WPP?)";
	case ENOENT:
		return "no " DEV ": the WPP driver did not start (see dmesg | grep wpp)";
	case EACCES:
		return DEV " is root-only";
	default:
		return strerror(err);
	}
}

int main(int argc, char **argv)
{
	char *end;
	char buf[32];
	long n;
	int fd, len;

	if (argc != 2) {
		fprintf(stderr, "usage: wpp-trigger N\n");
		return 2;
	}
	n = strtol(argv[1], &end, 10);
	if (*argv[1] == 0 || *end) {
		fprintf(stderr, "wpp-trigger: '%s' is not a number\n", argv[1]);
		return 2;
	}
	fd = open(DEV, O_WRONLY);
	if (fd < 0) {
		fprintf(stderr, "wpp-trigger: %s: %s\n", DEV, why(errno));
		return 1;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", n);
	if (write(fd, buf, len) != len) {
		fprintf(stderr, "wpp-trigger: %ld: %s (%s)\n", n, why(errno), strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	return 0;
}
