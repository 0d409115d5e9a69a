// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-counter - the program that proves a process survived a power loss.
 *
 * Every iteration it increments a counter and prints one self-describing line:
 *
 *   wpp-counter: n=42 pid=97 sum=1f0c.. buf=ok fp=4.27.. xmm=... regs=ok
 *                off=2688 fd=ok map=ok mapsum=... state=ok
 *
 * Each field is something a recreated process must get back exactly:
 *  - n:    the counter (kept in memory and in a state file); after a
 *          restore the next line must carry the previous n + 1.
 *  - sum/buf: a --buffer-mib buffer filled from a seeded xorshift PRNG; its
 *          checksum is recomputed every --verify-every iterations (and
 *          after SIGUSR1) and compared with the one taken at start.
 *  - fp/xmm/regs: values that live ONLY in registers across the sleep:
 *          xmm8-xmm15, the x87 top of stack, MXCSR (rounding mode) and the
 *          callee-saved r12-r15 are loaded before a raw nanosleep syscall
 *          and read back after it. A restore that loses register or FPU
 *          state while the process sleeps shows regs=BAD and a wrong fp.
 *  - off/fd: a log file is written (not O_APPEND) with fixed-width lines,
 *          so the file offset (lseek(fd, 0, SEEK_CUR)) must be n * LINE.
 *  - map/mapsum: with --private-map FILE, a MAP_PRIVATE mapping whose
 *          first word is overwritten with n (a COW page) while the rest
 *          must still match the file on disk.
 *
 * Exit status with --iterations: 0 if every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wpp-mix.h"

#define LOG_LINE_LEN	64	/* fixed width of a log-file line, '\n' included */
#define NXMM		8	/* xmm8 .. xmm15 */
#define MXCSR_RC_ZERO	0x6000	/* rounding control: toward zero */
#define MXCSR_RC_MASK	0x6000

struct options {
	unsigned long long iterations;	/* 0: forever */
	unsigned long period_ms;
	unsigned long buffer_mib;
	unsigned long long seed;
	unsigned long verify_every;
	const char *state_file;
	const char *log_file;
	const char *private_map;
	unsigned long map_kib;
};

static volatile sig_atomic_t verify_requested;
static volatile sig_atomic_t stop_requested;

static void on_usr1(int sig)
{
	(void)sig;
	verify_requested = 1;
}

static void on_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Order-sensitive 64-bit checksum (FNV-1a over words, then a final mix). */
static uint64_t checksum_words(const uint64_t *w, size_t nwords)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < nwords; i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t checksum_bytes(const unsigned char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void die(const char *what)
{
	fprintf(stderr, "wpp-counter: error: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wpp-counter [options]\n"
		"  --iterations N     stop after N iterations (default: forever)\n"
		"  --once             same as --iterations 1\n"
		"  --period-ms MS     sleep between iterations (default 200)\n"
		"  --buffer-mib N     PRNG-filled buffer size (default 1)\n"
		"  --seed S           PRNG seed (default 1)\n"
		"  --verify-every K   verify the buffer every K iterations (default 1)\n"
		"  --state-file PATH  counter file (default /tmp/wpp-counter.state)\n"
		"  --log-file PATH    per-iteration log (default /tmp/wpp-counter.log)\n"
		"  --private-map FILE MAP_PRIVATE mapping of FILE (created if absent)\n"
		"  --map-kib N        size of a created --private-map file (default 64)\n"
		"SIGUSR1 forces a buffer verification in the next iteration.\n");
}

static unsigned long long parse_num(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || *s == '-') {
		fprintf(stderr, "wpp-counter: error: %s needs a non-negative number, got '%s'\n",
			opt, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "iterations", required_argument, NULL, 'n' },
		{ "once", no_argument, NULL, '1' },
		{ "period-ms", required_argument, NULL, 'p' },
		{ "buffer-mib", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 's' },
		{ "verify-every", required_argument, NULL, 'v' },
		{ "state-file", required_argument, NULL, 'S' },
		{ "log-file", required_argument, NULL, 'L' },
		{ "private-map", required_argument, NULL, 'm' },
		{ "map-kib", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->iterations = 0;
	o->period_ms = 200;
	o->buffer_mib = 1;
	o->seed = 1;
	o->verify_every = 1;
	o->state_file = "/tmp/wpp-counter.state";
	o->log_file = "/tmp/wpp-counter.log";
	o->private_map = NULL;
	o->map_kib = 64;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->iterations = parse_num("--iterations", optarg);
			break;
		case '1':
			o->iterations = 1;
			break;
		case 'p':
			o->period_ms = parse_num("--period-ms", optarg);
			break;
		case 'b':
			o->buffer_mib = parse_num("--buffer-mib", optarg);
			break;
		case 's':
			o->seed = parse_num("--seed", optarg);
			break;
		case 'v':
			o->verify_every = parse_num("--verify-every", optarg);
			break;
		case 'S':
			o->state_file = optarg;
			break;
		case 'L':
			o->log_file = optarg;
			break;
		case 'm':
			o->private_map = optarg;
			break;
		case 'k':
			o->map_kib = parse_num("--map-kib", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wpp-counter: error: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if (o->seed == 0)
		o->seed = 1;	/* xorshift has a zero fixed point */
	if (o->map_kib == 0)
		o->map_kib = 4;
}


/* The register state carried across one sleep. */
struct regset {
	uint64_t xmm[NXMM][2];	/* xmm8..15; xmm8 low lane holds the fp sum */
	double x87;		/* st(0) */
	uint32_t mxcsr;
	uint64_t gpr[4];	/* r12..r15 */
};

/*
 * Load @in into xmm8-15, st(0), MXCSR and r12-r15, sleep with a raw
 * nanosleep syscall (no libc code runs in between, so only the kernel's
 * context save/restore can change these registers), then update them in
 * place (xmm8 += @inc, st(0) += 1, r12 += 1) and store them to @out.
 * MXCSR is switched to round-toward-zero for the sleep only.
 */
static long sleep_with_live_registers(const struct regset *in, struct regset *out,
				      double inc, const struct timespec *ts)
{
	register uint64_t r12 asm("r12") = in->gpr[0];
	register uint64_t r13 asm("r13") = in->gpr[1];
	register uint64_t r14 asm("r14") = in->gpr[2];
	register uint64_t r15 asm("r15") = in->gpr[3];
	uint32_t saved_mxcsr;
	long ret = SYS_nanosleep;

	asm volatile("stmxcsr %[saved]\n\t"
		     "movdqu 0(%[xin]), %%xmm8\n\t"
		     "movdqu 16(%[xin]), %%xmm9\n\t"
		     "movdqu 32(%[xin]), %%xmm10\n\t"
		     "movdqu 48(%[xin]), %%xmm11\n\t"
		     "movdqu 64(%[xin]), %%xmm12\n\t"
		     "movdqu 80(%[xin]), %%xmm13\n\t"
		     "movdqu 96(%[xin]), %%xmm14\n\t"
		     "movdqu 112(%[xin]), %%xmm15\n\t"
		     "fldl %[x87in]\n\t"
		     "ldmxcsr %[mxin]\n\t"
		     "syscall\n\t"
		     "stmxcsr %[mxout]\n\t"
		     "ldmxcsr %[saved]\n\t"
		     "addsd %[inc], %%xmm8\n\t"
		     "fld1\n\t"
		     "faddp\n\t"
		     "fstpl %[x87out]\n\t"
		     "incq %%r12\n\t"
		     "movdqu %%xmm8, 0(%[xout])\n\t"
		     "movdqu %%xmm9, 16(%[xout])\n\t"
		     "movdqu %%xmm10, 32(%[xout])\n\t"
		     "movdqu %%xmm11, 48(%[xout])\n\t"
		     "movdqu %%xmm12, 64(%[xout])\n\t"
		     "movdqu %%xmm13, 80(%[xout])\n\t"
		     "movdqu %%xmm14, 96(%[xout])\n\t"
		     "movdqu %%xmm15, 112(%[xout])\n\t"
		     : "+a"(ret), [saved] "=m"(saved_mxcsr),
		       [mxout] "=m"(out->mxcsr), [x87out] "=m"(out->x87),
		       "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15)
		     : [xin] "r"(in->xmm), [xout] "r"(out->xmm),
		       [x87in] "m"(in->x87), [mxin] "m"(in->mxcsr),
		       [inc] "m"(inc), "D"(ts), "S"(NULL)
		     : "rcx", "r11", "memory", "cc", "st", "xmm8", "xmm9",
		       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	out->gpr[0] = r12;
	out->gpr[1] = r13;
	out->gpr[2] = r14;
	out->gpr[3] = r15;
	return ret;
}

static uint64_t dbits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

/* Register pattern for iteration @n: every lane distinct and checkable. */
static void fill_regset(struct regset *r, uint64_t seed, uint64_t n, double fp)
{
	unsigned int k;
	uint32_t mx;

	for (k = 0; k < NXMM; k++) {
		r->xmm[k][0] = mix64(seed ^ (n << 8) ^ (2 * k));
		r->xmm[k][1] = mix64(seed ^ (n << 8) ^ (2 * k + 1));
	}
	r->xmm[0][0] = dbits(fp);
	r->x87 = (double)n;
	asm volatile("stmxcsr %0" : "=m"(mx));
	r->mxcsr = (mx & ~MXCSR_RC_MASK) | MXCSR_RC_ZERO;
	for (k = 0; k < 4; k++)
		r->gpr[k] = mix64(seed ^ (n << 8) ^ (0x80 + k));
}

/* Compare registers after the sleep with what must have come back. */
static void check_regset(const struct regset *in, const struct regset *out,
			 char *why, size_t len)
{
	unsigned int k;
	int xmm_bad = out->xmm[0][1] != in->xmm[0][1];

	for (k = 1; k < NXMM; k++)
		xmm_bad |= out->xmm[k][0] != in->xmm[k][0] ||
			   out->xmm[k][1] != in->xmm[k][1];
	why[0] = '\0';
	if (xmm_bad)
		strncat(why, "+xmm", len - strlen(why) - 1);
	if (out->x87 != in->x87 + 1.0)
		strncat(why, "+x87", len - strlen(why) - 1);
	if ((out->mxcsr & MXCSR_RC_MASK) != MXCSR_RC_ZERO)
		strncat(why, "+mxcsr", len - strlen(why) - 1);
	if (out->gpr[0] != in->gpr[0] + 1 || out->gpr[1] != in->gpr[1] ||
	    out->gpr[2] != in->gpr[2] || out->gpr[3] != in->gpr[3])
		strncat(why, "+gpr", len - strlen(why) - 1);
}

struct buffer {
	uint64_t *w;
	size_t nwords;
	uint64_t sum0;	/* checksum of words 1.. taken after filling */
	uint64_t sum;	/* last computed */
};

static void buffer_init(struct buffer *b, unsigned long mib, uint64_t seed)
{
	uint64_t s = seed;
	size_t i;

	b->nwords = (size_t)mib << 17;	/* MiB / 8 bytes */
	b->w = NULL;
	b->sum0 = b->sum = 0;
	if (!b->nwords)
		return;
	b->w = mmap(NULL, b->nwords * 8, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->w == MAP_FAILED)
		die("mmap buffer");
	for (i = 0; i < b->nwords; i++)
		b->w[i] = xorshift64(&s);
	b->w[0] = 0;	/* word 0 mirrors the counter */
	b->sum0 = b->sum = checksum_words(b->w + 1, b->nwords - 1);
}

struct pmap {
	const char *path;
	unsigned char *p;
	size_t len;
	uint64_t sum;
};

static void pmap_init(struct pmap *m, const char *path, unsigned long kib, uint64_t seed)
{
	struct stat st;
	int fd;

	m->path = path;
	m->p = NULL;
	m->len = 0;
	m->sum = 0;
	if (!path)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path);
	if (fstat(fd, &st))
		die(path);
	if (st.st_size < 16) {
		uint64_t s = seed ^ 0x5eedf11eULL;
		size_t n = (size_t)kib * 1024 / 8, i;
		uint64_t *tmp = malloc(n * 8);

		if (!tmp)
			die("malloc");
		for (i = 0; i < n; i++)
			tmp[i] = xorshift64(&s);
		if (pwrite(fd, tmp, n * 8, 0) != (ssize_t)(n * 8))
			die(path);
		free(tmp);
		st.st_size = (off_t)(n * 8);
	}
	m->len = (size_t)st.st_size;
	m->p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m->p == MAP_FAILED)
		die("mmap --private-map");
	close(fd);
}

/*
 * The mapping must equal the file except its first 8 bytes, which hold the
 * previous counter value (a private COW copy the file never sees).
 */
static const char *pmap_step(struct pmap *m, uint64_t prev_n, uint64_t n)
{
	const char *verdict = "ok";
	unsigned char *disk;
	uint64_t word0, disk0;
	int fd;

	if (!m->p)
		return "none";
	disk = malloc(m->len);
	fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (!disk || fd < 0 || pread(fd, disk, m->len, 0) != (ssize_t)m->len) {
		verdict = "nofile";
	} else {
		memcpy(&word0, m->p, 8);
		memcpy(&disk0, disk, 8);
		if (memcmp(m->p + 8, disk + 8, m->len - 8) != 0 ||
		    word0 != (prev_n ? prev_n : disk0))
			verdict = "BAD";
	}
	if (fd >= 0)
		close(fd);
	free(disk);
	memcpy(m->p, &n, 8);
	m->sum = checksum_bytes(m->p, m->len);
	return verdict;
}

static int write_state(const char *path, uint64_t n)
{
	char line[32];
	int fd, len, ok;

	len = snprintf(line, sizeof(line), "%020" PRIu64 "\n", n);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 0;
	ok = pwrite(fd, line, len, 0) == len;
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	struct options o;
	struct buffer buf;
	struct pmap map;
	struct regset in, out;
	struct sigaction sa;
	struct timespec ts;
	uint64_t n = 0, bad_iterations = 0;
	double fp_mem = 0.0, fp_reg = 0.0;
	int logfd;

	parse_args(argc, argv, &o);
	setvbuf(stdout, NULL, _IOLBF, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* A vanished reader (ssh session gone) must not end the experiment. */
	signal(SIGPIPE, SIG_IGN);

	buffer_init(&buf, o.buffer_mib, o.seed);
	pmap_init(&map, o.private_map, o.map_kib, o.seed);
	logfd = open(o.log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0)
		die(o.log_file);

	printf("wpp-counter: start pid=%d seed=%llu buffer_mib=%lu period_ms=%lu "
	       "iterations=%llu sum=%016" PRIx64 " buf_addr=%p log=%s state=%s map=%s\n",
	       getpid(), o.seed, o.buffer_mib, o.period_ms, o.iterations, buf.sum0,
	       (void *)buf.w,
	       o.log_file, o.state_file, o.private_map ? o.private_map : "none");

	ts.tv_sec = o.period_ms / 1000;
	ts.tv_nsec = (long)(o.period_ms % 1000) * 1000000L;

	while (!stop_requested && (!o.iterations || n < o.iterations)) {
		char regs_why[32], logline[LOG_LINE_LEN + 1];
		const char *buf_verdict = "na", *map_verdict, *fd_verdict = "ok";
		uint64_t next = n + 1;
		off_t off;
		int iteration_bad, state_ok;

		fill_regset(&in, o.seed, n, fp_reg);
		sleep_with_live_registers(&in, &out, 1.0 / (double)next, &ts);
		check_regset(&in, &out, regs_why, sizeof(regs_why));
		memcpy(&fp_reg, &out.xmm[0][0], sizeof(fp_reg));
		fp_mem += 1.0 / (double)next;
		if (dbits(fp_reg) != dbits(fp_mem))
			strncat(regs_why, "+fp", sizeof(regs_why) - strlen(regs_why) - 1);

		if (buf.w) {
			int due = verify_requested || next % (o.verify_every ? o.verify_every : 1) == 0 ||
				  next == o.iterations;

			if (buf.w[0] != n) {
				buf_verdict = "BAD";
			} else if (due && o.verify_every) {
				verify_requested = 0;
				buf.sum = checksum_words(buf.w + 1, buf.nwords - 1);
				buf_verdict = buf.sum == buf.sum0 ? "ok" : "BAD";
			} else {
				buf_verdict = "skip";
			}
			buf.w[0] = next;
		}
		map_verdict = pmap_step(&map, n, next);
		n = next;

		memset(logline, ' ', LOG_LINE_LEN);
		snprintf(logline, sizeof(logline), "n=%020" PRIu64 " sum=%016" PRIx64, n, buf.sum);
		logline[strlen(logline)] = ' ';
		logline[LOG_LINE_LEN - 1] = '\n';
		if (write(logfd, logline, LOG_LINE_LEN) != LOG_LINE_LEN)
			fd_verdict = "BAD";
		off = lseek(logfd, 0, SEEK_CUR);
		if (off != (off_t)(n * LOG_LINE_LEN))
			fd_verdict = "BAD";
		state_ok = write_state(o.state_file, n);

		iteration_bad = !state_ok || regs_why[0] != '\0' || !strcmp(buf_verdict, "BAD") ||
				 strcmp(fd_verdict, "ok") || !strcmp(map_verdict, "BAD") ||
				 !strcmp(map_verdict, "nofile");
		bad_iterations += iteration_bad;
		printf("wpp-counter: n=%" PRIu64 " pid=%d sum=%016" PRIx64 " buf=%s fp=%.17g "
		       "regs=%s%s xmm=%016" PRIx64 " off=%lld fd=%s map=%s mapsum=%016" PRIx64
		       " state=%s\n",
		       n, getpid(), buf.sum, buf_verdict, fp_reg,
		       regs_why[0] ? "BAD:" : "ok", regs_why[0] ? regs_why + 1 : "",
		       out.xmm[NXMM - 1][1], (long long)off, fd_verdict, map_verdict, map.sum,
		       state_ok ? "ok" : "BAD");
	}
	printf("wpp-counter: done n=%" PRIu64 " bad=%" PRIu64 "\n", n, bad_iterations);
	return bad_iterations ? 1 : 0;
}
