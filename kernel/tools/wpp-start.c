// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-start [-d] PROG [ARGS...] - start PROG as the process tracked for
 * persistence: clone() with CLONE_DETACHED (the WPP kernel marks the child),
 * then execvp() in the child.
 *
 *   -d  print the child's pid on stdout and exit at once (the child keeps
 *       running, with stdin from /dev/null and stdout sent to stderr, so that
 *       P=$(wpp-start -d prog) returns); without -d, wait for the child and
 *       exit with its status.
 *   -T  self-test instead of PROG: the tracked child tries to create a
 *       thread (clone(CLONE_THREAD)); exit 0 when the kernel refuses it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_DETACHED
#define CLONE_DETACHED 0x00400000
#endif

static const char *why(int err)
{
	switch (err) {
	case EBUSY:
		return "another process is already tracked (one at a time; see wpp-status)";
	case ENODEV:
		return "WPP is not available: the driver did not start (no firmware-reserved region?)";
	case EPERM:
		return "refused by the kernel (tracking needs CAP_SYS_ADMIN; a tracked process cannot start threads or trackers)";
	case EINVAL:
		return "invalid clone flags for tracking";
	default:
		return strerror(err);
	}
}

/* A kernel without WPP ignores CLONE_DETACHED: check the child's flag. */
static int check_tracked(pid_t pid)
{
	char path[64], line[128] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/process_persistence", pid);
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "wpp-start: %s: %s (kernel without WPP support?)\n",
			path, strerror(errno));
		return -1;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	if (!strstr(line, "true")) {
		fprintf(stderr, "wpp-start: pid %d is not marked for persistence (%s)\n",
			pid, line);
		return -1;
	}
	return 0;
}

static char thread_stack[16384] __attribute__((aligned(16)));

/* Child of -T: a thread would run this; it only exits. */
static int thread_fn(void *arg)
{
	(void)arg;
	syscall(SYS_exit, 0);
	return 0;
}

static int try_thread(void)
{
	int r = clone(thread_fn, thread_stack + sizeof(thread_stack),
		      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
		      CLONE_SYSVSEM, NULL);

	if (r < 0) {
		printf("thread refused: %s\n", strerror(errno));
		fflush(stdout);
		return 0;
	}
	printf("thread created (tid %d): NOT refused\n", r);
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv)
{
	int detach = 0, selftest = 0, status, argi = 1;
	pid_t pid;

	if (argc > 1 && strcmp(argv[1], "-d") == 0) {
		detach = 1;
		argi++;
	} else if (argc > 1 && strcmp(argv[1], "-T") == 0) {
		selftest = 1;
	}
	if (!selftest && (argi >= argc || argv[argi][0] == '-')) {
		fprintf(stderr, "usage: wpp-start [-d] PROG [ARGS...] | wpp-start -T\n");
		return 2;
	}
	fflush(NULL);
	pid = syscall(SYS_clone, CLONE_DETACHED | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		int err = errno;

		fprintf(stderr, "wpp-start: clone(CLONE_DETACHED) failed: %s (%s)\n",
			why(err), strerror(err));
		return 1;
	}
	if (pid == 0 && selftest) {
		fflush(NULL);
		_exit(try_thread());
	}
	if (pid == 0) {
		if (detach) {
			int null = open("/dev/null", O_RDONLY);

			if (null >= 0) {
				dup2(null, 0);
				close(null);
			}
			dup2(2, 1);
		}
		execvp(argv[argi], argv + argi);
		fprintf(stderr, "wpp-start: exec %s: %s\n", argv[argi], strerror(errno));
		_exit(127);
	}
	if (!selftest && check_tracked(pid)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}
	if (detach) {
		printf("%d\n", pid);
		return 0;
	}
	fprintf(stderr, "wpp-start: pid %d tracked\n", pid);
	if (waitpid(pid, &status, 0) < 0) {
		perror("wpp-start: waitpid");
		return 1;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
