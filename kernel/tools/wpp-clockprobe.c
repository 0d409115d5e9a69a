// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-clockprobe - does time continue for a recreated process?
 *
 *   wpp-clockprobe [--period-ms MS]
 *
 * Sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to deadlines
 * start + n * period (a timer armed from the clock, like redis' cron), and a
 * second thread sleeps the same way on CLOCK_BOOTTIME deadlines. Every period
 * it prints
 *
 *   wpp-clockprobe: n=N pid=P mono_ns=M boot_ns=B late_ms=L bt=T
 *
 * late_ms: how far past its deadline the main loop woke; bt: wake-ups of the
 * CLOCK_BOOTTIME thread. If the clocks restarted at boot, the next deadlines
 * lie in the future by the old uptime minus the new one: no lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long period_ms = 200;
static volatile unsigned long bt_count;

static long long ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec to_ts(long long v)
{
	struct timespec ts = { v / 1000000000LL, v % 1000000000LL };

	return ts;
}

static void *timer_thread(void *arg)
{
	long long start = ns(CLOCK_BOOTTIME);
	unsigned long n = 0;

	(void)arg;
	for (;;) {
		struct timespec ts = to_ts(start + (long long)++n * period_ms * 1000000LL);

		while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		bt_count++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long long start, deadline;
	unsigned long n = 0;
	pthread_t th;

	if (argc == 3 && !strcmp(argv[1], "--period-ms"))
		period_ms = strtol(argv[2], NULL, 0);
	else if (argc != 1) {
		fprintf(stderr, "usage: wpp-clockprobe [--period-ms MS]\n");
		return 2;
	}
	if (period_ms <= 0) {
		fprintf(stderr, "wpp-clockprobe: error: --period-ms must be positive\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pthread_create(&th, NULL, timer_thread, NULL)) {
		fprintf(stderr, "wpp-clockprobe: error: pthread_create failed\n");
		return 1;
	}
	start = ns(CLOCK_MONOTONIC);
	for (;;) {
		struct timespec ts;

		n++;
		deadline = start + (long long)n * period_ms * 1000000LL;
		ts = to_ts(deadline);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		printf("wpp-clockprobe: n=%lu pid=%d mono_ns=%lld boot_ns=%lld late_ms=%lld bt=%lu\n",
		       n, getpid(), ns(CLOCK_MONOTONIC), ns(CLOCK_BOOTTIME),
		       (ns(CLOCK_MONOTONIC) - deadline) / 1000000LL, bt_count);
	}
}
