// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-synth - the seed's synthetic benchmark (thesis section 6.2.1).
 *
 * Each cycle mmap()s --size-mib MiB of anonymous private memory (no malloc,
 * so the C library's allocator cannot reuse memory between cycles), fills
 * it with a xorshift PRNG (one page fault per page: the cost WPP's page
 * tracking adds to) and munmap()s it. Output is machine-parseable:
 *
 *   wpp-synth: cycle=1 size_mib=10 ms=10.412
 *   wpp-synth: size_mib=10 cycles=10 total_ms=104.117 per_cycle_ms=10.412 check=...
 *
 * Times come from CLOCK_MONOTONIC; "check" is the xor of every cycle's last
 * word so the fill cannot be optimised away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static unsigned long long parse_num(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || *s == '-' || v == 0) {
		fprintf(stderr, "wpp-synth: error: %s needs a positive number, got '%s'\n",
			opt, s);
		exit(2);
	}
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wpp-synth [--size-mib N] [--cycles N] [--seed S] [--quiet]\n"
		"  --size-mib N  memory per cycle in MiB (default 10)\n"
		"  --cycles N    mmap/fill/munmap cycles (default 10)\n"
		"  --seed S      xorshift seed (default 1)\n"
		"  --quiet       print only the summary line\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size-mib", required_argument, NULL, 's' },
		{ "cycles", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 'r' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long size_mib = 10, cycles = 10, seed = 1, c;
	uint64_t check = 0;
	double total = 0.0;
	int quiet = 0, opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			size_mib = parse_num("--size-mib", optarg);
			break;
		case 'c':
			cycles = parse_num("--cycles", optarg);
			break;
		case 'r':
			seed = parse_num("--seed", optarg);
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wpp-synth: error: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (c = 1; c <= cycles; c++) {
		size_t len = (size_t)size_mib << 20, i, nwords = len / 8;
		uint64_t x = seed + c, *p;
		double t0 = now_ms(), dt;

		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "wpp-synth: error: mmap %llu MiB: %s\n", size_mib,
				strerror(errno));
			return 1;
		}
		for (i = 0; i < nwords; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = x;
		}
		check ^= *(volatile uint64_t *)&p[nwords - 1];
		if (munmap(p, len)) {
			fprintf(stderr, "wpp-synth: error: munmap: %s\n", strerror(errno));
			return 1;
		}
		dt = now_ms() - t0;
		total += dt;
		if (!quiet)
			printf("wpp-synth: cycle=%llu size_mib=%llu ms=%.3f\n", c, size_mib, dt);
	}
	printf("wpp-synth: size_mib=%llu cycles=%llu total_ms=%.3f per_cycle_ms=%.3f "
	       "check=%016" PRIx64 "\n",
	       size_mib, cycles, total, total / (double)cycles, check);
	return 0;
}
