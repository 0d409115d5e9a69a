// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-recreate - bring the last persisted process back after a power loss.
 *
 *   wpp-recreate [--force] [--new-pid] [--wait] BINARY
 *   wpp-recreate --info [--force]
 *
 * Recreate: asks the kernel (/dev/wpp-recreate, WPP_IOC_INFO) to restore and
 * validate the snapshot, checks that BINARY is the persisted program, then
 * forks a child with the original pid when that pid is free (clone3 with
 * set_tid) and the child calls WPP_IOC_RECREATE, which replaces it by the
 * persisted process (execve-style). The parent learns the outcome through a
 * pipe the kernel closes on success (like a close-on-exec pipe after exec)
 * and prints ONE line, "wpp-recreate: recreated ..." on stdout or
 * "wpp-recreate: error: ..." on stderr; the recreated process keeps running as its child
 * (--wait: wait for it and exit with its status).
 * (A process is started tracked with wpp-start.)
 *
 * Output lines start with "wpp-recreate: "; refusals are
 * "wpp-recreate: error: <cause>" on stderr with exit status 1 (2: usage).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../wpp/wpp_recreate.h"

#define STATUS_FD	900	/* where the child keeps the status pipe */

struct opts {
	int force, new_pid, wait, info;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wpp-recreate [--force] [--new-pid] [--wait] BINARY\n"
		"       wpp-recreate --info [--force]\n"
		"  BINARY      the persisted program (must be the snapshot's executable)\n"
		"  --force     recreate a snapshot that was already recreated (consumed)\n"
		"  --new-pid   do not try to reuse the original pid\n"
		"  --wait      wait for the recreated process and exit with its status\n"
		"  --info      describe the snapshot and exit\n");
}

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("wpp-recreate: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int open_dev(void)
{
	int fd = open(WPP_RC_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("cannot open %s: %s (kernel without WPP, or no WPP firmware)",
		     WPP_RC_DEVICE, strerror(errno));
	return fd;
}

static int wait_child(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid: %s", strerror(errno));
	if (WIFEXITED(st)) {
		printf("wpp-recreate: %s pid %d exited with status %d\n", what, pid,
		       WEXITSTATUS(st));
		return WEXITSTATUS(st);
	}
	printf("wpp-recreate: %s pid %d killed by signal %d\n", what, pid, WTERMSIG(st));
	return 128 + WTERMSIG(st);
}

static int get_info(int fd, struct opts *o, struct wpp_rc_info *info)
{
	memset(info, 0, sizeof(*info));
	info->flags = o->force ? WPP_RC_F_FORCE : 0;
	if (ioctl(fd, WPP_IOC_INFO, info) < 0)
		return fail("%s", info->msg[0] ? info->msg : strerror(errno));
	return 0;
}

static void print_info(const struct wpp_rc_info *i)
{
	time_t sec = i->timestamp_ns / 1000000000ULL;
	char when[64];

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&sec));
	printf("wpp-recreate: snapshot seq=%llu pid=%d comm=%.16s exe=%s cwd=%s regions=%u "
	       "pages=%llu files=%u captured=%s%s\n",
	       (unsigned long long)i->snap_sequence, i->pid, i->comm, i->exe_path, i->cwd,
	       i->regions, (unsigned long long)i->pages, i->files, when,
	       i->consumed ? " consumed=yes" : "");
}

static void pid_owner(pid_t pid, char *comm, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(comm, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(comm, len, f))
		comm[strcspn(comm, "\n")] = 0;
	fclose(f);
}

/* fork (with the original pid if possible); returns the child's pid, 0 in the child */
static pid_t fork_child(pid_t want, int try_pid, char *note, size_t len)
{
	struct clone_args args = { .exit_signal = SIGCHLD };
	pid_t tid = want, pid;
	char comm[64];

	note[0] = 0;

	if (try_pid && want > 0) {
		args.set_tid = (uintptr_t)&tid;
		args.set_tid_size = 1;
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0)
			return pid;
		if (errno == EEXIST) {
			pid_owner(want, comm, sizeof(comm));
			snprintf(note, len, ", original pid %d in use by %s", want, comm);
		} else {
			snprintf(note, len, ", original pid %d not reusable: %s", want,
				 strerror(errno));
		}
	}
	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	return syscall(SYS_clone3, &args, sizeof(args));
}

static int do_recreate(struct opts *o, const char *binary)
{
	struct wpp_rc_info info;
	char real[PATH_MAX];
	int fd, p[2], ret;
	struct wpp_rc_req req;
	char buf[WPP_RC_MSG_MAX + 32], note[128], when[64];
	time_t sec;
	double t0;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	fd = open_dev();
	if (fd < 0)
		return 1;
	if (get_info(fd, o, &info))
		return 1;
	if (!realpath(binary, real))
		return fail("wrong binary: the snapshot is of %s, and %s: %s", info.exe_path, binary,
			    strerror(errno));
	if (strcmp(real, info.exe_path))
		return fail("wrong binary: the snapshot is of %s, not %s", info.exe_path, real);
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail("pipe: %s", strerror(errno));

	fflush(stdout);
	fflush(stderr);
	t0 = now_ms();
	pid = fork_child(info.pid, !o->new_pid, note, sizeof(note));
	if (pid < 0)
		return fail("clone3: %s", strerror(errno));
	if (pid == 0) {
		/* the kernel closes every fd the process did not have: EOF = success */
		close(p[0]);
		if (dup3(p[1], STATUS_FD, O_CLOEXEC) == STATUS_FD) {
			close(p[1]);
			p[1] = STATUS_FD;
		}
		memset(&req, 0, sizeof(req));
		req.flags = o->force ? WPP_RC_F_FORCE : 0;
		req.binary = (uintptr_t)real;
		ret = ioctl(fd, WPP_IOC_RECREATE, &req);
		/* only reached on failure */
		n = snprintf(buf, sizeof(buf), "%d %s", errno,
			     req.msg[0] ? req.msg : strerror(errno));
		if (write(p[1], buf, n) < 0)
			_exit(3);
		_exit(ret ? 1 : 4);
	}
	close(p[1]);
	while ((n = read(p[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += n;
	}
	buf[got] = 0;
	if (got) {
		char *msg = strchr(buf, ' ');

		waitpid(pid, NULL, 0);
		return fail("%s", msg ? msg + 1 : buf);
	}
	sec = info.timestamp_ns / 1000000000ULL;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&sec));
	printf("wpp-recreate: recreated %s pid %d as pid %d in %.1f ms (snapshot %llu of %s%s: "
	       "%u regions, %llu pages, %u files%s)\n", info.exe_path, info.pid, pid,
	       now_ms() - t0, (unsigned long long)info.snap_sequence, when,
	       info.consumed ? ", forced over consumed" : "", info.regions,
	       (unsigned long long)info.pages, info.files, note);
	if (!o->wait)
		return 0;
	fflush(stdout);
	return wait_child(pid, "recreated");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "new-pid", no_argument, NULL, 'n' },
		{ "wait", no_argument, NULL, 'w' },
		{ "info", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'f': o.force = 1; break;
		case 'n': o.new_pid = 1; break;
		case 'w': o.wait = 1; break;
		case 'i': o.info = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (o.info) {
		struct wpp_rc_info info;
		int fd = open_dev();

		if (fd < 0 || get_info(fd, &o, &info))
			return 1;
		print_info(&info);
		return 0;
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	return do_recreate(&o, argv[optind]);
}
