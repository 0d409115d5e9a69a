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
 * Descriptors without a path are made here, in the child, at their saved fd
 * numbers before RECREATE (the kernel keeps a caller fd of the saved kind and
 * reopens files by path itself), from the PCB that WPP_IOC_INFO copies out:
 *  - a pipe: a new empty pipe; both ends at their fds when the process had
 *    both (paired by inode), the missing end closed (reads see EOF);
 *  - a listening TCP/UDP/unix socket, or a bound unconnected UDP one: a new
 *    socket with its options (SO_REUSEADDR/SO_REUSEPORT/IPV6_V6ONLY),
 *    bound to the saved address, listening with the saved backlog;
 *  - a connected socket: its peer is gone with the power, so it becomes one
 *    end of a socket pair whose other end is closed (EOF and hang-up: a
 *    server drops that client cleanly);
 *  - an eventfd: a new one with the saved count (EFD_SEMAPHORE is not kept);
 *  - an epoll instance: a new one, with the saved interest list (fd, events,
 *    data) registered after every other descriptor exists;
 * with the saved O_NONBLOCK and close-on-exec flags. fds 0-2 stay the
 * recreator's when they were pipes or sockets (the terminal/session is new).
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
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../wpp/wpp_pcb.h"
#include "../wpp/wpp_recreate.h"

#define STATUS_FD	900	/* where the child keeps the status pipe */
#define DEV_FD		901	/* and /dev/wpp-recreate */
#define PCB_BUF		(8U << 20)
#define TCP_LISTEN_STATE	10
#define TCP_CLOSE_STATE		7

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

static int get_info(int fd, struct opts *o, struct wpp_rc_info *info, void *pcb)
{
	memset(info, 0, sizeof(*info));
	info->flags = o->force ? WPP_RC_F_FORCE : 0;
	info->pcb_buf = (uintptr_t)pcb;
	info->pcb_buf_len = pcb ? PCB_BUF : 0;
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
	       "pages=%llu files=%u threads=%u captured=%s%s\n",
	       (unsigned long long)i->snap_sequence, i->pid, i->comm, i->exe_path, i->cwd,
	       i->regions, (unsigned long long)i->pages, i->files, i->threads + 1, when,
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

/*
 * fork (with the original pid if possible); returns the child's pid, 0 in the
 * child. Another pid is above avoid (the highest saved thread id), so that it
 * cannot take a tid the process' threads need.
 */
static pid_t fork_child(pid_t want, int try_pid, pid_t avoid, char *note, size_t len)
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
	if (avoid > 0) {
		int tries;

		args.set_tid = (uintptr_t)&tid;
		args.set_tid_size = 1;
		for (tid = avoid + 1, tries = 0; tries < 4096; tid++, tries++) {
			pid = syscall(SYS_clone3, &args, sizeof(args));
			if (pid >= 0 || errno != EEXIST)
				break;
		}
		if (pid >= 0)
			return pid;
		args.set_tid = 0;
		args.set_tid_size = 0;
	}
	return syscall(SYS_clone3, &args, sizeof(args));
}

/* the highest thread id besides the main one in the PCB (0: single-threaded) */
static pid_t max_thread_id(const void *raw)
{
	const struct wpp_pcb *pcb = raw;
	const struct wpp_pcb_thread *th;
	pid_t max = 0;
	unsigned int i;

	if (pcb->magic != WPP_PCB_MAGIC || pcb->header_size < sizeof(*pcb))
		return 0;
	th = (const void *)((const char *)raw + pcb->threads_offset);
	for (i = 0; i < pcb->threads_count && i < WPP_PCB_THREADS_MAX; i++)
		if (th[i].tid > max)
			max = th[i].tid;
	return max;
}

/* a line in the kernel log, next to the kernel's own refusals (one write: one record) */
static void kmsg(const char *fmt, ...)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	char line[512];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, line, strlen(line)) < 0)
		fprintf(stderr, "wpp-recreate: /dev/kmsg: %s\n", strerror(errno));
	close(fd);
}

/* ---- descriptors without a path (run in the child) ----------------------- */

struct fdprep {
	const struct wpp_pcb *pcb;
	const struct wpp_pcb_file *files;
	const struct wpp_pcb_fdx *fdx;
	const struct wpp_pcb_epitem *ep;
	int *made;		/* per files[] entry: 1 when installed here */
	int tmp_base;		/* temporary fds live above every saved one */
	char *err;
	size_t errlen;
};

static int prep_fail(struct fdprep *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* a new fd moved above the saved ones, so installing never clobbers it */
static int prep_high(struct fdprep *p, int fd)
{
	int h;

	if (fd < 0)
		return -1;
	h = fcntl(fd, F_DUPFD_CLOEXEC, p->tmp_base);
	close(fd);
	return h;
}

/* put tmp at every files[] entry with the same inode (dups share one file) */
static int prep_install(struct fdprep *p, int tmp, unsigned int i, int rdonly_only, int wr_only)
{
	const struct wpp_pcb_file *f = p->files;
	unsigned int j;

	for (j = i; j < p->pcb->files_count; j++) {
		int acc = f[j].flags & O_ACCMODE;

		if (p->made[j] || f[j].ino != f[i].ino || p->fdx[j].kind != p->fdx[i].kind)
			continue;
		if ((rdonly_only && acc != O_RDONLY) || (wr_only && acc == O_RDONLY))
			continue;
		if (f[j].fd <= 2)
			continue;
		if (dup3(tmp, f[j].fd, f[j].cloexec ? O_CLOEXEC : 0) < 0)
			return prep_fail(p, "fd %d (%s): dup3: %s", f[j].fd, f[j].path,
					 strerror(errno));
		if (fcntl(f[j].fd, F_SETFL, f[j].flags & O_NONBLOCK) < 0)
			return prep_fail(p, "fd %d (%s): fcntl: %s", f[j].fd, f[j].path,
					 strerror(errno));
		p->made[j] = 1;
	}
	return 0;
}

static int prep_pipe(struct fdprep *p, unsigned int i)
{
	int fds[2], r, w, ret;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return prep_fail(p, "fd %d (%s): pipe: %s", p->files[i].fd, p->files[i].path,
				 strerror(errno));
	r = prep_high(p, fds[0]);
	w = prep_high(p, fds[1]);
	if (r < 0 || w < 0)
		return prep_fail(p, "pipe: fcntl: %s", strerror(errno));
	ret = prep_install(p, r, i, 1, 0);
	if (!ret)
		ret = prep_install(p, w, i, 0, 1);
	close(r);
	close(w);
	return ret;
}

static int prep_listen(struct fdprep *p, unsigned int i)
{
	const struct wpp_pcb_fdx *x = &p->fdx[i];
	const struct wpp_pcb_file *f = &p->files[i];
	const struct sockaddr_un *un = (const void *)x->addr;
	int one = 1, s, ret = 0;
	struct stat st;

	s = prep_high(p, socket(x->family, x->type | SOCK_CLOEXEC, x->protocol));
	if (s < 0)
		return prep_fail(p, "socket fd %d: socket(%u, %u, %u): %s", f->fd, x->family,
				 x->type, x->protocol, strerror(errno));
	if ((x->sockopts & WPP_PCB_SO_REUSEADDR) &&
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		ret = prep_fail(p, "socket fd %d: SO_REUSEADDR: %s", f->fd, strerror(errno));
	if (!ret && (x->sockopts & WPP_PCB_SO_REUSEPORT) &&
	    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		ret = prep_fail(p, "socket fd %d: SO_REUSEPORT: %s", f->fd, strerror(errno));
	if (!ret && x->family == AF_INET6 && (x->sockopts & WPP_PCB_SO_V6ONLY) &&
	    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		ret = prep_fail(p, "socket fd %d: IPV6_V6ONLY: %s", f->fd, strerror(errno));
	/* a unix socket's file outlives it: a stale one from before the power loss */
	if (!ret && x->family == AF_UNIX && un->sun_path[0] && !stat(un->sun_path, &st) &&
	    S_ISSOCK(st.st_mode))
		unlink(un->sun_path);
	if (!ret && x->addr_len > sizeof(sa_family_t) &&
	    bind(s, (const struct sockaddr *)x->addr, x->addr_len) < 0)
		ret = prep_fail(p, "socket fd %d: bind to its saved address: %s", f->fd,
				strerror(errno));
	if (!ret && x->state == TCP_LISTEN_STATE && listen(s, (int)x->backlog) < 0)
		ret = prep_fail(p, "socket fd %d: listen: %s", f->fd, strerror(errno));
	if (!ret)
		ret = prep_install(p, s, i, 0, 0);
	close(s);
	return ret;
}

/* a connection whose peer went with the power: EOF and hang-up */
static int prep_dead_socket(struct fdprep *p, unsigned int i)
{
	int sv[2], s, ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return prep_fail(p, "socket fd %d: socketpair: %s", p->files[i].fd,
				 strerror(errno));
	close(sv[1]);
	s = prep_high(p, sv[0]);
	if (s < 0)
		return prep_fail(p, "socketpair: fcntl: %s", strerror(errno));
	ret = prep_install(p, s, i, 0, 0);
	close(s);
	return ret;
}

static int prep_socket(struct fdprep *p, unsigned int i)
{
	const struct wpp_pcb_fdx *x = &p->fdx[i];
	int inet = x->family == AF_INET || x->family == AF_INET6 || x->family == AF_UNIX;

	if (inet && x->state == TCP_LISTEN_STATE)
		return prep_listen(p, i);
	if (inet && x->type == SOCK_DGRAM && x->state == TCP_CLOSE_STATE &&
	    x->addr_len > sizeof(sa_family_t))
		return prep_listen(p, i);	/* bound, unconnected datagram socket */
	return prep_dead_socket(p, i);
}

static int prep_epoll(struct fdprep *p, unsigned int i)
{
	int e = prep_high(p, epoll_create1(EPOLL_CLOEXEC)), ret;

	if (e < 0)
		return prep_fail(p, "epoll fd %d: epoll_create1: %s", p->files[i].fd,
				 strerror(errno));
	ret = prep_install(p, e, i, 0, 0);
	close(e);
	return ret;
}

static int prep_eventfd(struct fdprep *p, unsigned int i)
{
	uint64_t count = p->fdx[i].count;
	int e = prep_high(p, eventfd(0, EFD_CLOEXEC)), ret;

	if (e < 0)
		return prep_fail(p, "eventfd fd %d: eventfd: %s", p->files[i].fd, strerror(errno));
	if (count && write(e, &count, sizeof(count)) != sizeof(count))
		ret = prep_fail(p, "eventfd fd %d: setting its count %llu: %s", p->files[i].fd,
				(unsigned long long)count, strerror(errno));
	else
		ret = prep_install(p, e, i, 0, 0);
	close(e);
	return ret;
}

static int prep_fd_is_made(struct fdprep *p, int fd)
{
	unsigned int j;

	for (j = 0; j < p->pcb->files_count; j++)
		if (p->files[j].fd == fd)
			return p->made[j];
	return 0;
}

/* the interest lists, once every descriptor they name exists */
static int prep_epoll_items(struct fdprep *p, unsigned int i)
{
	const struct wpp_pcb_fdx *x = &p->fdx[i];
	unsigned int k;

	if (!p->made[i] || x->epoll_first + x->epoll_count > p->pcb->epitems_count)
		return 0;
	for (k = x->epoll_first; k < x->epoll_first + x->epoll_count; k++) {
		const struct wpp_pcb_epitem *it = &p->ep[k];
		struct epoll_event ev = { .events = it->events, .data.u64 = it->data };

		if (!prep_fd_is_made(p, it->tfd)) {
			fprintf(stderr, "wpp-recreate: warning: epoll fd %d: fd %d is not a pipe, socket, eventfd or epoll made here, not registered\n",
				x->fd, it->tfd);
			continue;
		}
		if (epoll_ctl(x->fd, EPOLL_CTL_ADD, it->tfd, &ev) < 0)
			return prep_fail(p, "epoll fd %d: registering fd %d (events %#x): %s",
					 x->fd, it->tfd, it->events, strerror(errno));
	}
	return 0;
}

static int prepare_fds(const void *raw, int *devfd, char *err, size_t errlen)
{
	const struct wpp_pcb *pcb = raw;
	struct fdprep p = { .pcb = pcb, .err = err, .errlen = errlen };
	unsigned int i;
	int maxfd = 2, ret = 0;

	if (pcb->magic != WPP_PCB_MAGIC || pcb->version != WPP_PCB_VERSION)
		return 0;	/* the kernel refuses it with the reason */
	if (pcb->header_size < sizeof(*pcb) || !pcb->fdx_offset)
		return 0;	/* an older PCB: no descriptions, nothing to make */
	p.files = (const void *)((const char *)raw + pcb->files_offset);
	p.fdx = (const void *)((const char *)raw + pcb->fdx_offset);
	p.ep = (const void *)((const char *)raw + pcb->epitems_offset);
	p.made = calloc(pcb->files_count + 1, sizeof(*p.made));
	if (!p.made)
		return prep_fail(&p, "out of memory");
	for (i = 0; i < pcb->files_count; i++)
		if (p.files[i].fd > maxfd)
			maxfd = p.files[i].fd;
	if (maxfd >= STATUS_FD - 64) {
		free(p.made);
		return prep_fail(&p, "fd %d of the process collides with the recreator's (%d, %d)",
				 maxfd, STATUS_FD, DEV_FD);
	}
	p.tmp_base = maxfd + 1;
	if (dup3(*devfd, DEV_FD, O_CLOEXEC) == DEV_FD) {
		close(*devfd);
		*devfd = DEV_FD;
	}
	for (i = 0; i < pcb->files_count && !ret; i++) {
		if (p.made[i] || p.files[i].fd <= 2)
			continue;
		switch (p.fdx[i].kind) {
		case WPP_PCB_FDX_PIPE:
			ret = prep_pipe(&p, i);
			break;
		case WPP_PCB_FDX_SOCKET:
			ret = prep_socket(&p, i);
			break;
		case WPP_PCB_FDX_EPOLL:
			ret = prep_epoll(&p, i);
			break;
		case WPP_PCB_FDX_EVENTFD:
			ret = prep_eventfd(&p, i);
			break;
		}
	}
	for (i = 0; i < pcb->files_count && !ret; i++)
		if (p.fdx[i].kind == WPP_PCB_FDX_EPOLL)
			ret = prep_epoll_items(&p, i);
	free(p.made);
	return ret;
}

static long long clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME restart at every boot, so every
 * deadline the process computed from them (timers, absolute sleeps, redis'
 * cron) would lie in this boot's future. The process' children of this
 * recreator get a new time namespace whose offsets make both clocks continue
 * from their values at the power loss (as CRIU does): the process does not
 * see the time it was down. Called right before the child is forked, so the
 * clocks go on from about where they stopped.
 */
static void continue_clocks(const struct wpp_pcb *pcb, char *note, size_t len)
{
	static const struct { const char *name; clockid_t id; } clk[2] = {
		{ "monotonic", CLOCK_MONOTONIC }, { "boottime", CLOCK_BOOTTIME },
	};
	long long saved[2], off;
	char buf[160];
	size_t n = 0;
	int fd, i;

	if (pcb->header_size < offsetof(struct wpp_pcb, clock_valid) + 24 || !pcb->clock_valid) {
		snprintf(note, len, ", clocks restart (no saved clocks)");
		return;
	}
	saved[0] = (long long)pcb->monotonic_ns;
	saved[1] = (long long)pcb->boottime_ns;
	if (unshare(CLONE_NEWTIME) < 0) {
		snprintf(note, len, ", clocks restart (no time namespace: %s)", strerror(errno));
		return;
	}
	for (i = 0; i < 2; i++) {
		long long sec, nsec;

		off = saved[i] - clock_ns(clk[i].id);
		sec = off / 1000000000LL;
		nsec = off % 1000000000LL;
		if (nsec < 0) {
			nsec += 1000000000LL;
			sec--;
		}
		n += snprintf(buf + n, sizeof(buf) - n, "%s %lld %lld\n", clk[i].name, sec, nsec);
	}
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n) {
		snprintf(note, len, ", clocks restart (timens_offsets: %s)", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	snprintf(note, len, ", clocks continue at %.3f s", (double)saved[0] / 1e9);
}

static int do_recreate(struct opts *o, const char *binary)
{
	struct wpp_rc_info info;
	char real[PATH_MAX];
	int fd, p[2], ret;
	struct wpp_rc_req req;
	char buf[WPP_RC_MSG_MAX + 32], note[128], when[64], clocks[96];
	time_t sec;
	double t0;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	void *pcb = calloc(1, PCB_BUF);

	fd = open_dev();
	if (fd < 0 || !pcb)
		return 1;
	if (get_info(fd, o, &info, pcb))
		return 1;
	if (info.pcb_len > PCB_BUF)
		return fail("the process control block (%u bytes) exceeds %u bytes", info.pcb_len,
			    PCB_BUF);
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
	continue_clocks(pcb, clocks, sizeof(clocks));
	pid = fork_child(info.pid, !o->new_pid, max_thread_id(pcb), note, sizeof(note));
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
		if (prepare_fds(pcb, &fd, req.msg, sizeof(req.msg))) {
			kmsg("wpp-recreate: recreate refused: %s\n", req.msg);
			n = snprintf(buf, sizeof(buf), "%d %s", 0, req.msg);
			if (write(p[1], buf, n) < 0)
				_exit(3);
			_exit(1);
		}
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
	       "%u regions, %llu pages, %u files, %u threads%s%s)\n", info.exe_path, info.pid, pid,
	       now_ms() - t0, (unsigned long long)info.snap_sequence, when,
	       info.consumed ? ", forced over consumed" : "", info.regions,
	       (unsigned long long)info.pages, info.files, info.threads + 1, note, clocks);
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

		if (fd < 0 || get_info(fd, &o, &info, NULL))
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
