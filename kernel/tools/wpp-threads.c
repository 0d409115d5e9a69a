// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-threads - a multi-threaded probe: every thread keeps and checks its own
 * state across a power loss and recreation (wpp.allow_threads=1).
 *
 *   wpp-threads [--threads N] [--period-ms MS]
 *
 * The main thread and N extra threads each print one line per iteration:
 *
 *   wpp-threads: th=2 tid=101 kind=sleep n=17 regs=ok tls=ok tid_ok=ok
 *
 *  - n: the thread's own counter (thread-local storage, through fs_base);
 *       after recreation each thread's next line carries its previous n + 1.
 *  - regs: "sleep" threads (even th) load per-thread values into xmm8-xmm15
 *       and r12-r15 before a raw nanosleep syscall and compare them after
 *       it: a recreation that loses one thread's registers or FPU state, or
 *       gives it another thread's, shows regs=BAD.
 *  - "cond" threads (odd th > 1) wait on a condition variable the main thread
 *       broadcasts every period: they sit in futex waits, as redis' background
 *       threads do, and must wake up again after recreation.
 *  - the "event" thread (th=1) waits in epoll_wait on an eventfd the main
 *       thread writes every period; regs=ok there means the epoll registration
 *       came back with its data word and the eventfd could be read (descriptors
 *       without a path, made again by the recreator).
 *  - tls: the thread-local copy of the thread's index and tid still match;
 *    tid_ok: gettid() is the tid the thread started with (tids come back).
 *  - rseq: the rseq() registration glibc made for the thread (its area in the
 *       thread's TCB) is the kernel's: registering the same area again answers
 *       EBUSY, and the kernel refreshed the area's cpu_id_start (poisoned by
 *       the thread before each blocking call) with the cpu it runs on. After
 *       recreation this says whether the registration came back and is
 *       updated: a lost one gives rseq=BAD (sticky), "none" if glibc made none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wpp-mix.h"

#define MAX_THREADS	64
#define EV_DATA		0x5770ee5770ee0001ULL	/* the epoll registration's data word */

static unsigned long period_ms = 200;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned long long generation;
static int event_fd = -1, epoll_fd = -1;

static __thread int tls_index = -1;
static __thread pid_t tls_tid;
static __thread unsigned long long tls_n;

/* a non-negative decimal number, or exit 2 with a one-line error */
static unsigned long number(const char *opt, const char *arg)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-') {
		fprintf(stderr, "wpp-threads: error: %s needs a non-negative number, got '%s'\n",
			opt, arg);
		exit(2);
	}
	return v;
}

/* xmm8..15 and r12..r15 hold @in across a raw nanosleep; returns 1 if unchanged */
static int sleep_keeping_registers(uint64_t seed, const struct timespec *ts)
{
	uint64_t in[16], out[16];
	register uint64_t r12 asm("r12") = mix64(seed + 100);
	register uint64_t r13 asm("r13") = mix64(seed + 101);
	register uint64_t r14 asm("r14") = mix64(seed + 102);
	register uint64_t r15 asm("r15") = mix64(seed + 103);
	long ret = SYS_nanosleep;
	int k;

	for (k = 0; k < 16; k++)
		in[k] = mix64(seed + k);
	asm volatile("movdqu 0(%[xin]), %%xmm8\n\t"
		     "movdqu 16(%[xin]), %%xmm9\n\t"
		     "movdqu 32(%[xin]), %%xmm10\n\t"
		     "movdqu 48(%[xin]), %%xmm11\n\t"
		     "movdqu 64(%[xin]), %%xmm12\n\t"
		     "movdqu 80(%[xin]), %%xmm13\n\t"
		     "movdqu 96(%[xin]), %%xmm14\n\t"
		     "movdqu 112(%[xin]), %%xmm15\n\t"
		     "syscall\n\t"
		     "movdqu %%xmm8, 0(%[xout])\n\t"
		     "movdqu %%xmm9, 16(%[xout])\n\t"
		     "movdqu %%xmm10, 32(%[xout])\n\t"
		     "movdqu %%xmm11, 48(%[xout])\n\t"
		     "movdqu %%xmm12, 64(%[xout])\n\t"
		     "movdqu %%xmm13, 80(%[xout])\n\t"
		     "movdqu %%xmm14, 96(%[xout])\n\t"
		     "movdqu %%xmm15, 112(%[xout])\n\t"
		     : "+a"(ret), "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15)
		     : [xin] "r"(in), [xout] "r"(out), "D"(ts), "S"(NULL)
		     : "rcx", "r11", "memory", "cc", "xmm8", "xmm9", "xmm10", "xmm11",
		       "xmm12", "xmm13", "xmm14", "xmm15");
	if (ret != 0 && ret != -EINTR)
		return 0;
	return !memcmp(in, out, sizeof(in)) && r12 == mix64(seed + 100) &&
	       r13 == mix64(seed + 101) && r14 == mix64(seed + 102) && r15 == mix64(seed + 103);
}

#define RSEQ_POISON	0xfffffe00u	/* no cpu id: the kernel must overwrite it */
#define RSEQ_ABI_LEN	32		/* the length glibc registers (6.1 needs exactly it) */

static __thread int tls_rseq_bad;

static struct rseq *rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* "ok", "BAD" or "none"; poisons cpu_id_start for the next check */
static const char *rseq_state(void)
{
	struct rseq *rs = rseq_area();
	volatile __u32 *start = &rs->cpu_id_start;
	long r;

	if (!__rseq_size)
		return "none";
	r = syscall(SYS_rseq, rs, RSEQ_ABI_LEN, 0, RSEQ_SIG);
	if (r == 0 || errno != EBUSY)
		tls_rseq_bad = 1;	/* the kernel had no (or another) registration */
	if (*start == RSEQ_POISON) {	/* not blocked since the poison: block once */
		struct timespec t = { 0, 1000 };

		nanosleep(&t, NULL);
	}
	if (*start == RSEQ_POISON || *start != rs->cpu_id || (int)rs->cpu_id < 0)
		tls_rseq_bad = 1;
	*start = RSEQ_POISON;
	return tls_rseq_bad ? "BAD" : "ok";
}

static void report(const char *kind, int regs_ok, pid_t tid0)
{
	char line[192];
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int n = snprintf(line, sizeof(line),
			 "wpp-threads: th=%d tid=%d kind=%s n=%llu regs=%s tls=%s tid_ok=%s rseq=%s\n",
			 tls_index, tid, kind, tls_n, regs_ok ? "ok" : "BAD",
			 tls_tid == tid0 ? "ok" : "BAD", tid == tid0 ? "ok" : "BAD",
			 rseq_state());

	/* one write per line: lines of different threads do not interleave */
	if (write(STDOUT_FILENO, line, n) != n)
		exit(1);
}

static void sleep_loop(int index)
{
	struct timespec ts = { period_ms / 1000, (period_ms % 1000) * 1000000L };
	pid_t tid0 = (pid_t)syscall(SYS_gettid);

	tls_index = index;
	tls_tid = tid0;
	for (;;) {
		uint64_t seed = ((uint64_t)tid0 << 32) ^ (tls_n << 8) ^ (uint64_t)index;
		int ok = sleep_keeping_registers(seed, &ts);

		if (index == 0) {
			uint64_t one = 1;

			if (write(event_fd, &one, sizeof(one)) != sizeof(one))
				ok = 0;
			pthread_mutex_lock(&lock);
			generation++;
			pthread_cond_broadcast(&cond);
			pthread_mutex_unlock(&lock);
		}
		tls_n++;
		report("sleep", ok, tid0);
	}
}

static void event_loop(int index)
{
	pid_t tid0 = (pid_t)syscall(SYS_gettid);

	tls_index = index;
	tls_tid = tid0;
	for (;;) {
		struct epoll_event ev;
		uint64_t count = 0;
		int n = epoll_wait(epoll_fd, &ev, 1, -1);
		int ok;

		if (n < 0 && errno == EINTR)
			continue;
		ok = n == 1 && ev.data.u64 == EV_DATA &&
		     read(event_fd, &count, sizeof(count)) == sizeof(count) && count > 0;
		tls_n++;
		report("event", ok, tid0);
		if (!ok)	/* keep the line rate, do not spin */
			usleep(period_ms * 1000);
	}
}

static void *thread_main(void *arg)
{
	int index = (int)(intptr_t)arg;
	pid_t tid0 = (pid_t)syscall(SYS_gettid);
	unsigned long long seen = 0;

	if (index % 2 == 0)
		sleep_loop(index);
	if (index == 1)
		event_loop(index);
	tls_index = index;
	tls_tid = tid0;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (generation == seen)
			pthread_cond_wait(&cond, &lock);
		seen = generation;
		pthread_mutex_unlock(&lock);
		tls_n++;
		report("cond", 1, tid0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "period-ms", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long nthreads = 4;
	pthread_t th;
	unsigned long i;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': nthreads = number("--threads", optarg); break;
		case 'p': period_ms = number("--period-ms", optarg); break;
		default:
			fprintf(stderr, "usage: wpp-threads [--threads N] [--period-ms MS]\n");
			return 2;
		}
	}
	if (nthreads > MAX_THREADS || period_ms == 0) {
		fprintf(stderr, "wpp-threads: error: at most %d threads, period > 0\n", MAX_THREADS);
		return 2;
	}
	event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (event_fd < 0 || epoll_fd < 0 ||
	    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, event_fd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.u64 = EV_DATA })) {
		fprintf(stderr, "wpp-threads: error: eventfd/epoll: %s\n", strerror(errno));
		return 1;
	}
	for (i = 1; i <= nthreads; i++) {
		errno = pthread_create(&th, NULL, thread_main, (void *)(intptr_t)i);
		if (errno) {
			fprintf(stderr, "wpp-threads: error: pthread_create: %s\n", strerror(errno));
			return 1;
		}
	}
	sleep_loop(0);
	return 0;
}
