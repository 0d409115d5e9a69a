// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-mmprobe - changes its page tables through a kernel path that has no WPP
 * hook, then checks its memory forever (the probe of issue 13's page-table
 * check: the persisted page list must equal the page tables at power loss,
 * whatever path changed them).
 *
 *   wpp-mmprobe --case CASE [--period-ms MS]
 *
 * Cases:
 *   pmd-move   8 MiB filled at a 2 MiB-aligned address, moved with
 *              mremap(MAYMOVE|FIXED) to another 2 MiB-aligned one: the kernel
 *              moves whole page tables (move_normal_pmd), not ptes
 *   pud-move   a 1 GiB mapping with 64 pages filled, moved between 1 GiB-aligned
 *              addresses (move_normal_pud)
 *   madv-free  8 MiB filled, MADV_FREE, then MADV_PAGEOUT: the lazily-freed
 *              pages are discarded by reclaim (try_to_unmap_one), no swap needed;
 *              they must read as zero afterwards
 *   thp        a huge page faulted in (MADV_HUGEPAGE), split by mprotect() of one
 *              page; a second 2 MiB of 4 KiB pages collapsed with MADV_COLLAPSE
 *   ksm        256 pages, every 16 alike, MADV_MERGEABLE: ksmd (once
 *              /sys/kernel/mm/ksm/run is 1) replaces pages by shared KSM pages
 *   uffd       1 MiB registered with userfaultfd, filled with UFFDIO_COPY
 *   swap       8 MiB filled, then MADV_PAGEOUT with swap on: the pages are
 *              written to swap and their ptes become swap entries (needs swap:
 *              the twin's /data/wpp.swap); the check reads them back, so the
 *              pages are swapped out again from outside (--pageout) once the
 *              probe is stopped
 *   shm-swap   2 MiB of shared anonymous memory (shmem) filled; swapped out from
 *              outside (--pageout) its ptes are cleared, the swap entries live in
 *              shmem: the power-loss check must refuse the persist
 *   compact    32 MiB filled; /proc/sys/vm/compact_memory (written by the test)
 *              migrates pages to other frames (migrate_pages: migration entries)
 *
 *   wpp-mmprobe --pageout PID ADDR LEN
 *              process_madvise(MADV_PAGEOUT) of PID's [ADDR, ADDR+LEN), then
 *              prints "wpp-mmprobe: pageout pid=P swapped=N present=M" from
 *              /proc/PID/pagemap (how many of those pages are in swap now)
 *
 * Output, one line per period (after "wpp-mmprobe: ready case=... pages=N"):
 *   wpp-mmprobe: n=N pid=P case=CASE check=ok|bad va=0x... want=... got=... zero=Z
 * "zero" is how many pages are expected to read as zero (madv-free: discarded).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

#define PAGE 4096UL
#define MIB (1UL << 20)
#define GIB (1UL << 30)

struct area {
	uint8_t *addr;
	size_t len;
	unsigned char *zero;	/* per page: expected to read as zero */
	unsigned long filled;	/* pages with the pattern (stride pages) */
	unsigned long stride;	/* pattern on every stride-th page, others untouched */
	unsigned int alike;	/* ksm: pages share content in groups of this size */
};

static struct area ar[2];
static unsigned int nar;

static void die(const char *what)
{
	fprintf(stderr, "wpp-mmprobe: error: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The 8-byte word w of page p of area a (index i in the area). */
static uint64_t pattern(unsigned int a, unsigned long p, unsigned long w)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL * (p + 1) ^ ((uint64_t)a << 56) ^ w;

	x ^= x >> 29;
	return x * 0xbf58476d1ce4e5b9ULL;
}

static void fill_page(unsigned int a, unsigned long p, uint8_t *dst)
{
	uint64_t *q = (uint64_t *)dst;
	unsigned long key = ar[a].alike ? p / ar[a].alike : p;
	unsigned long w;

	for (w = 0; w < PAGE / 8; w++)
		q[w] = pattern(a, key, w);
}

/* Reserve len bytes aligned to align, returns the aligned start (rest unmapped). */
static uint8_t *aligned_hole(size_t len, size_t align)
{
	uint8_t *p = mmap(NULL, len + align, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start;

	if (p == MAP_FAILED)
		die("mmap (reserve)");
	start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + len + align > start + len)
		munmap((void *)(start + len), (uintptr_t)p + len + align - start - len);
	return (uint8_t *)start;
}

static uint8_t *map_at(uint8_t *at, size_t len, int extra)
{
	uint8_t *p = mmap(at, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | extra, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void new_area(uint8_t *addr, size_t len, unsigned long stride, unsigned int alike)
{
	struct area *a = &ar[nar++];

	a->addr = addr;
	a->len = len;
	a->stride = stride;
	a->alike = alike;
	a->zero = calloc(len / PAGE, 1);
	if (!a->zero)
		die("calloc");
}

static void fill_area(unsigned int i)
{
	unsigned long p;

	for (p = 0; p < ar[i].len / PAGE; p += ar[i].stride) {
		fill_page(i, p, ar[i].addr + p * PAGE);
		ar[i].filled++;
	}
}

/* A new area of len bytes at a 2 MiB boundary, every page written (area 0). */
static uint8_t *filled_area(size_t len, unsigned int alike)
{
	uint8_t *a = aligned_hole(len, 2 * MIB);

	map_at(a, len, 0);
	new_area(a, len, 1, alike);
	fill_area(nar - 1);
	return a;
}

/* The pagemap entry of one of our pages (bit 63 present, bit 62 swapped). */
static uint64_t pagemap_of(const void *va)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	if (fd < 0)
		die("open /proc/self/pagemap");
	if (pread(fd, &e, 8, (off_t)((uintptr_t)va / PAGE * 8)) != 8)
		die("read pagemap");
	close(fd);
	return e;
}

/* Moves an area between two aligned holes; the kernel moves whole tables. */
static void case_move(size_t len, size_t align, unsigned long stride, int noreserve)
{
	uint8_t *src = aligned_hole(len, align), *dst = aligned_hole(len, align);

	map_at(src, len, noreserve ? MAP_NORESERVE : 0);
	new_area(src, len, stride, 0);
	fill_area(0);
	if (mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != dst)
		die("mremap");
	ar[0].addr = dst;
}

static void case_madv_free(void)
{
	size_t len = 8 * MIB;
	uint8_t *a = filled_area(len, 0);
	unsigned long p, gone = 0;

	if (madvise(a, len, MADV_FREE))
		die("madvise(MADV_FREE)");
	if (madvise(a, len, MADV_PAGEOUT))
		die("madvise(MADV_PAGEOUT)");
	for (p = 0; p < len / PAGE; p++) {
		if (!(pagemap_of(a + p * PAGE) >> 63)) {
			ar[0].zero[p] = 1;
			gone++;
		}
	}
	if (!gone) {
		fprintf(stderr, "wpp-mmprobe: error: reclaim discarded no MADV_FREE page\n");
		exit(1);
	}
}

static void case_thp(void)
{
	uint8_t *a = aligned_hole(4 * MIB, 2 * MIB);
	unsigned long p;

	map_at(a, 4 * MIB, 0);
	new_area(a, 4 * MIB, 1, 0);
	/* first 2 MiB: one huge page, then split by changing one page's protection */
	if (madvise(a, 2 * MIB, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)");
	for (p = 0; p < 512; p++)
		fill_page(0, p, a + p * PAGE);
	if (mprotect(a + 100 * PAGE, PAGE, PROT_READ))
		die("mprotect (split)");
	/* second 2 MiB: 4 KiB pages, then collapsed into a huge page */
	for (p = 512; p < 1024; p++)
		fill_page(0, p, a + p * PAGE);
	ar[0].filled = 1024;
	if (madvise(a + 2 * MIB, 2 * MIB, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE) 2");
	if (madvise(a + 2 * MIB, 2 * MIB, MADV_COLLAPSE))
		die("madvise(MADV_COLLAPSE)");
}

static void case_ksm(void)
{
	uint8_t *a = filled_area(MIB, 16);

	if (madvise(a, MIB, MADV_MERGEABLE))
		die("madvise(MADV_MERGEABLE)");
}

static void case_uffd(void)
{
	size_t len = MIB;
	uint8_t *a = aligned_hole(len, 2 * MIB), *src;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { };
	unsigned long p;
	int fd;

	map_at(a, len, 0);
	new_area(a, len, 1, 0);
	src = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		die("mmap (source)");
	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		die("userfaultfd");
	if (ioctl(fd, UFFDIO_API, &api))
		die("UFFDIO_API");
	reg.range.start = (uintptr_t)a;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
	for (p = 0; p < len / PAGE; p++) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)(a + p * PAGE), .src = (uintptr_t)src, .len = PAGE,
		};

		fill_page(0, p, src);
		if (ioctl(fd, UFFDIO_COPY, &c))
			die("UFFDIO_COPY");
	}
	ar[0].filled = len / PAGE;
	close(fd);	/* unregisters: the recreated process has no userfaultfd */
	munmap(src, PAGE);
}

static void case_swap(void)
{
	size_t len = 8 * MIB;
	uint8_t *a = filled_area(len, 0);
	unsigned long p, out = 0;

	if (madvise(a, len, MADV_PAGEOUT))
		die("madvise(MADV_PAGEOUT)");
	for (p = 0; p < len / PAGE; p++)
		out += (pagemap_of(a + p * PAGE) >> 62) & 1;
	if (!out) {
		fprintf(stderr, "wpp-mmprobe: error: MADV_PAGEOUT swapped out no page (is swap on? see /proc/swaps)\n");
		exit(1);
	}
}

static void case_shm_swap(void)
{
	size_t len = 2 * MIB;
	uint8_t *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED)
		die("mmap (shared)");
	new_area(a, len, 1, 0);
	fill_area(0);
}

static void case_compact(void)
{
	/* spread widely enough that compaction moves some */
	filled_area(32 * MIB, 0);
}

/* --pageout PID ADDR LEN: swap out another (stopped) process' pages. */
static int pageout(int pid, uintptr_t addr, size_t len)
{
	struct iovec iov = { (void *)addr, len };
	unsigned long p, sw = 0, pr = 0;
	char path[64];
	int pidfd, fd;

	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		die("pidfd_open");
	if (syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_PAGEOUT, 0) < 0)
		die("process_madvise(MADV_PAGEOUT)");
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	for (p = 0; p < len / PAGE; p++) {
		uint64_t e = 0;

		if (pread(fd, &e, 8, (off_t)((addr / PAGE + p) * 8)) != 8)
			die("read pagemap");
		sw += (e >> 62) & 1;
		pr += e >> 63;
	}
	close(fd);
	printf("wpp-mmprobe: pageout pid=%d swapped=%lu present=%lu\n", pid, sw, pr);
	return 0;
}

/* First page that differs from what it should hold, or -1. */
static long check(unsigned int *which, uint64_t *want, uint64_t *got, unsigned long *zero)
{
	unsigned int i;
	unsigned long p, w;

	*zero = 0;
	for (i = 0; i < nar; i++) {
		const struct area *a = &ar[i];
		unsigned long key;

		for (p = 0; p < a->len / PAGE; p += a->stride) {
			const uint64_t *q = (const uint64_t *)(a->addr + p * PAGE);

			key = a->alike ? p / a->alike : p;
			*zero += a->zero[p];
			for (w = 0; w < PAGE / 8; w++) {
				uint64_t e = a->zero[p] ? 0 : pattern(i, key, w);

				if (q[w] != e) {
					*which = i;
					*want = e;
					*got = q[w];
					return (long)p;
				}
			}
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "case", required_argument, NULL, 'c' },
		{ "period-ms", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *kase = NULL;
	long period_ms = 200;
	unsigned long n = 0, zero;
	int o;

	if (argc == 5 && !strcmp(argv[1], "--pageout"))
		return pageout(atoi(argv[2]), strtoull(argv[3], NULL, 0),
			       strtoull(argv[4], NULL, 0));
	while ((o = getopt_long(argc, argv, "c:p:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			kase = optarg;
			break;
		case 'p':
			period_ms = strtol(optarg, NULL, 0);
			break;
		default:
			fprintf(o == 'h' ? stdout : stderr,
				"usage: wpp-mmprobe --case pmd-move|pud-move|madv-free|thp|ksm|uffd|swap|compact|shm-swap [--period-ms MS]\n"
				"       wpp-mmprobe --pageout PID ADDR LEN\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (!kase || period_ms <= 0) {
		fprintf(stderr, "wpp-mmprobe: error: --case is required (see --help)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(kase, "pmd-move"))
		case_move(8 * MIB, 2 * MIB, 1, 0);
	else if (!strcmp(kase, "pud-move"))
		case_move(GIB, GIB, GIB / PAGE / 64, 1);
	else if (!strcmp(kase, "madv-free"))
		case_madv_free();
	else if (!strcmp(kase, "thp"))
		case_thp();
	else if (!strcmp(kase, "ksm"))
		case_ksm();
	else if (!strcmp(kase, "uffd"))
		case_uffd();
	else if (!strcmp(kase, "swap"))
		case_swap();
	else if (!strcmp(kase, "compact"))
		case_compact();
	else if (!strcmp(kase, "shm-swap"))
		case_shm_swap();
	else {
		fprintf(stderr, "wpp-mmprobe: error: unknown case '%s'\n", kase);
		return 2;
	}
	printf("wpp-mmprobe: ready case=%s pid=%d addr=%p pages=%lu\n", kase, getpid(),
	       (void *)ar[0].addr, ar[0].filled);
	for (;;) {
		struct timespec ts = { period_ms / 1000, (period_ms % 1000) * 1000000L };
		unsigned int which = 0;
		uint64_t want = 0, got = 0;
		long bad = check(&which, &want, &got, &zero);

		n++;
		if (bad < 0)
			printf("wpp-mmprobe: n=%lu pid=%d case=%s check=ok zero=%lu\n", n,
			       getpid(), kase, zero);
		else
			printf("wpp-mmprobe: n=%lu pid=%d case=%s check=bad va=%p want=%016" PRIx64
			       " got=%016" PRIx64 " zero=%lu\n", n, getpid(), kase,
			       (void *)(ar[which].addr + bad * PAGE), want, got, zero);
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
}
