// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-memcpy - the memory copy bandwidth a program on this machine gets.
 *
 * hil bench divides WPP's page bandwidth (persist, recreate) by this number,
 * measured in the same run on the same target: that ratio says how far a copy
 * path is from what the machine can do, whatever the machine (TCG twin or
 * board). Two buffers of --size-mib MiB are mmap()ed and written first, so no
 * page fault and no zero-page mapping is timed; one untimed copy warms the
 * caches and TLBs, then --reps copies are timed with CLOCK_MONOTONIC.
 *
 * --method picks the copy routine: memcpy (the C library's, what a program
 * gets: the baseline), movsb / movsq (x86 "rep movs", byte and quadword, the
 * routines an SMM handler typically uses), or all three in turn. Output is
 * machine-parseable, one line per method:
 *
 *   wpp-memcpy: method=memcpy size_mib=64 reps=5 gib_s=1.21,1.25,... median_gib_s=1.23
 *
 * GiB/s counts bytes copied (each byte read once and written once).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MAX_REPS 100

enum method { M_MEMCPY, M_MOVSB, M_MOVSQ, M_COUNT };

static const char *const method_names[M_COUNT] = { "memcpy", "movsb", "movsq" };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long parse_num(const char *opt, const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || *s == '-' || v == 0 || v > max) {
		fprintf(stderr, "wpp-memcpy: error: %s needs a number in 1..%lu, got '%s'\n",
			opt, max, s);
		exit(2);
	}
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wpp-memcpy [--size-mib N] [--reps N] [--method memcpy|movsb|movsq|all]\n"
		"  --size-mib N  size of each of the two buffers in MiB (default 64)\n"
		"  --reps N      timed copies (default 5, at most %d)\n"
		"  --method M    copy routine (default memcpy)\n", MAX_REPS);
}

static void copy(enum method m, void *dst, const void *src, size_t len)
{
#if defined(__x86_64__)
	size_t n;

	switch (m) {
	case M_MOVSB:
		n = len;
		asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
		return;
	case M_MOVSQ:
		n = len / 8;
		asm volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
		return;
	default:
		break;
	}
#endif
	memcpy(dst, src, len);
	/* keep the compiler from dropping or merging the copies */
	asm volatile("" : : "r"(dst) : "memory");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void run(enum method m, unsigned char *dst, unsigned char *src, size_t len,
		unsigned long reps, unsigned long size_mib)
{
	double gib[MAX_REPS], sorted[MAX_REPS];
	unsigned long i;

	copy(m, dst, src, len);	/* warm-up, untimed */
	for (i = 0; i < reps; i++) {
		double t0 = now_s(), dt;

		copy(m, dst, src, len);
		dt = now_s() - t0;
		gib[i] = dt > 0 ? (double)len / dt / (1024.0 * 1024.0 * 1024.0) : 0.0;
	}
	if (memcmp(dst, src, len) != 0) {
		fprintf(stderr, "wpp-memcpy: error: method %s copied wrong bytes\n",
			method_names[m]);
		exit(1);
	}
	memcpy(sorted, gib, reps * sizeof(gib[0]));
	qsort(sorted, reps, sizeof(sorted[0]), cmp_double);
	printf("wpp-memcpy: method=%s size_mib=%lu reps=%lu gib_s=", method_names[m],
	       size_mib, reps);
	for (i = 0; i < reps; i++)
		printf("%s%.4f", i ? "," : "", gib[i]);
	printf(" median_gib_s=%.4f\n", reps % 2 ? sorted[reps / 2] :
	       (sorted[reps / 2 - 1] + sorted[reps / 2]) / 2.0);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "method", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long size_mib = 64, reps = 5;
	int first = M_MEMCPY, last = M_MEMCPY, c, m;
	unsigned char *src, *dst;
	size_t len;

	while ((c = getopt_long(argc, argv, "s:r:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			size_mib = parse_num("--size-mib", optarg, 1UL << 20);
			break;
		case 'r':
			reps = parse_num("--reps", optarg, MAX_REPS);
			break;
		case 'm':
			if (strcmp(optarg, "all") == 0) {
				first = M_MEMCPY;
				last = M_COUNT - 1;
				break;
			}
			for (m = 0; m < M_COUNT; m++)
				if (strcmp(optarg, method_names[m]) == 0)
					break;
			if (m == M_COUNT) {
				fprintf(stderr, "wpp-memcpy: error: unknown method '%s'\n", optarg);
				usage(stderr);
				return 2;
			}
			first = last = m;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	len = (size_t)size_mib << 20;
	src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		fprintf(stderr, "wpp-memcpy: error: cannot map 2 x %lu MiB: %s\n", size_mib,
			strerror(errno));
		fprintf(stderr, "hint: use a smaller --size-mib\n");
		return 1;
	}
	/* pre-touch both: real frames, not the shared zero page, before timing */
	for (size_t i = 0; i < len; i += 64)
		src[i] = (unsigned char)(i >> 6) | 1;
	memset(dst, 0xa5, len);
	for (m = first; m <= last; m++)
		run((enum method)m, dst, src, len, reps, size_mib);
	return 0;
}
