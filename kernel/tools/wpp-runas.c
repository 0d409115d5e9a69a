// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-runas - run a command with other credentials, for the privilege tests
 * (the guest's busybox has no su/setpriv with these controls).
 *
 *   wpp-runas UID GID[,GROUP...] CMD [ARGS]   set groups, gid, uid; exec CMD
 *   wpp-runas --no-sys-admin CMD [ARGS]       stay root, without CAP_SYS_ADMIN
 *                                            (bounding, effective, permitted)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: wpp-runas UID GID[,GROUP...] CMD [ARGS]\n"
			"       wpp-runas --no-sys-admin CMD [ARGS]\n");
	return 2;
}

static int drop_sys_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	unsigned int word = CAP_SYS_ADMIN / 32, bit = 1U << (CAP_SYS_ADMIN % 32);

	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0))
		return -1;
	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[word].effective &= ~bit;
	data[word].permitted &= ~bit;
	data[word].inheritable &= ~bit;
	return (int)syscall(SYS_capset, &hdr, data);
}

int main(int argc, char **argv)
{
	gid_t groups[64];
	size_t ngroups = 0;
	char *p, *end;
	uid_t uid;
	gid_t gid;

	if (argc >= 3 && !strcmp(argv[1], "--no-sys-admin")) {
		if (drop_sys_admin()) {
			perror("wpp-runas: dropping CAP_SYS_ADMIN");
			return 1;
		}
		execvp(argv[2], argv + 2);
		fprintf(stderr, "wpp-runas: %s: %s\n", argv[2], strerror(errno));
		return 127;
	}
	if (argc < 4)
		return usage();
	uid = strtoul(argv[1], &end, 10);
	if (*end)
		return usage();
	gid = strtoul(argv[2], &end, 10);
	for (p = end; *p == ',' && ngroups < 64; p = end)
		groups[ngroups++] = strtoul(p + 1, &end, 10);
	if (*p)
		return usage();
	if (setgroups(ngroups, groups) || setgid(gid) || setuid(uid)) {
		perror("wpp-runas: setting credentials");
		return 1;
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "wpp-runas: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
