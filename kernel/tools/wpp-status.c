// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-status             tracked pid, mode, SMI counters, firmware counters
 * wpp-status --compare PID
 *     compare the firmware's region and page lists (read back by the driver,
 *     debugfs wpp/fw_regions and wpp/fw_pages) with /proc/PID/maps and the
 *     present pages of /proc/PID/pagemap; [vvar]/[vsyscall] (pfn mappings the
 *     driver does not report) are left out. Prints differences; exit 0 when
 *     identical, 1 when not, 2 on errors. Stop the process first (kill -STOP)
 *     for a stable picture.
 * wpp-status --dump PID
 *     print what --compare reads from /proc: "R start end prot offset path"
 *     per region and "P va pa" per present page (hex), for offline checks of a
 *     persisted snapshot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYS "/sys/kernel/wpp/"
#define DBG "/sys/kernel/debug/wpp/"

struct region {
	uint64_t start, end, prot, offset;
	char path[128];
};

struct page {
	uint64_t va, pa;
};

static void cat(const char *name)
{
	char path[128], line[256];
	FILE *f;

	snprintf(path, sizeof(path), SYS "%s", name);
	f = fopen(path, "r");
	if (!f) {
		printf("%s: %s\n", name, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		printf("  %s", line);
	fclose(f);
}

static int show_status(void)
{
	char line[64] = "";
	FILE *f = fopen(SYS "tracked_pid", "r");

	if (!f) {
		fprintf(stderr, "wpp-status: %s: %s (driver not started; see dmesg | grep wpp)\n",
			SYS, strerror(errno));
		return 2;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	printf("tracked pid: %s", line);
	printf("mode:\n");
	cat("mode");
	printf("batch pending:\n");
	cat("batch_pending");
	printf("region (base size):\n");
	cat("region");
	printf("SMI calls (event calls errors ns):\n");
	cat("stats");
	printf("firmware counters:\n");
	cat("fw_counters");
	return 0;
}

static int cmp_region(const void *a, const void *b)
{
	const struct region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_page(const void *a, const void *b)
{
	const struct page *x = a, *y = b;

	if (x->va != y->va)
		return x->va < y->va ? -1 : 1;
	return x->pa < y->pa ? -1 : x->pa > y->pa;
}

static int skip_name(const char *path)
{
	return !strcmp(path, "[vvar]") || !strcmp(path, "[vsyscall]");
}

static size_t read_maps(int pid, struct region **out)
{
	char path[64], line[4096], perms[8], dev[16];
	size_t n = 0, cap = 64;
	struct region *r = malloc(cap * sizeof(*r));
	unsigned long long ino;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "wpp-status: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while (fgets(line, sizeof(line), f)) {
		struct region x = { 0 };
		int pos = 0;
		char *p;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %15s %llu %n",
			   &x.start, &x.end, perms, &x.offset, dev, &ino, &pos) < 6)
			continue;
		p = line + pos;
		p[strcspn(p, "\n")] = 0;
		snprintf(x.path, sizeof(x.path), "%.99s", p);
		x.prot = (perms[0] == 'r') | (perms[1] == 'w') << 1 | (perms[2] == 'x') << 2;
		if (skip_name(x.path))
			continue;
		if (n == cap)
			r = realloc(r, (cap *= 2) * sizeof(*r));
		r[n++] = x;
	}
	fclose(f);
	*out = r;
	return n;
}

static FILE *open_debugfs(const char *name)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), DBG "%s", name);
	f = fopen(path, "r");
	if (!f && errno == ENOENT) {
		mount("none", "/sys/kernel/debug", "debugfs", 0, NULL);
		f = fopen(path, "r");
	}
	if (!f) {
		fprintf(stderr, "wpp-status: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return f;
}

static size_t read_fw_regions(struct region **out)
{
	FILE *f = open_debugfs("fw_regions");
	size_t n = 0, cap = 64;
	struct region *r = malloc(cap * sizeof(*r));
	char line[512];

	while (fgets(line, sizeof(line), f)) {
		struct region x = { 0 };
		uint64_t flags;
		unsigned int state;
		int pos = 0;

		if (sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 " %x %n",
			   &x.start, &x.end, &x.prot, &flags, &x.offset, &state, &pos) < 6)
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(x.path, sizeof(x.path), "%s", pos ? line + pos : "");
		if (skip_name(x.path))
			continue;
		if (n == cap)
			r = realloc(r, (cap *= 2) * sizeof(*r));
		r[n++] = x;
	}
	fclose(f);
	*out = r;
	return n;
}

static size_t read_fw_pages(struct page **out)
{
	FILE *f = open_debugfs("fw_pages");
	size_t n = 0, cap = 1024;
	struct page *p = malloc(cap * sizeof(*p));
	struct page x;

	while (fscanf(f, "%" SCNx64 " %" SCNx64, &x.va, &x.pa) == 2) {
		if (n == cap)
			p = realloc(p, (cap *= 2) * sizeof(*p));
		p[n++] = x;
	}
	fclose(f);
	*out = p;
	return n;
}

static size_t read_pagemap(int pid, const struct region *r, size_t nr, struct page **out)
{
	size_t n = 0, cap = 1024, i;
	struct page *p = malloc(cap * sizeof(*p));
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "wpp-status: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	for (i = 0; i < nr; i++) {
		uint64_t va;

		for (va = r[i].start; va < r[i].end; va += 4096) {
			uint64_t e;

			if (pread(fd, &e, 8, (va / 4096) * 8) != 8)
				break;
			if (!(e >> 63 & 1))
				continue;
			if (n == cap)
				p = realloc(p, (cap *= 2) * sizeof(*p));
			p[n].va = va;
			p[n].pa = (e & ((1ULL << 55) - 1)) * 4096;
			n++;
		}
	}
	close(fd);
	*out = p;
	return n;
}

static int compare(int pid)
{
	struct region *mr, *fr;
	struct page *mp, *fp;
	size_t nmr, nfr, nmp, nfp, i, j;
	int diffs = 0;

	nmr = read_maps(pid, &mr);
	nfr = read_fw_regions(&fr);
	qsort(mr, nmr, sizeof(*mr), cmp_region);
	qsort(fr, nfr, sizeof(*fr), cmp_region);
	for (i = 0, j = 0; i < nmr || j < nfr;) {
		if (j == nfr || (i < nmr && mr[i].start < fr[j].start)) {
			printf("region only in maps:     %" PRIx64 "-%" PRIx64 " %s\n",
			       mr[i].start, mr[i].end, mr[i].path);
			i++, diffs++;
		} else if (i == nmr || fr[j].start < mr[i].start) {
			printf("region only in firmware: %" PRIx64 "-%" PRIx64 " %s\n",
			       fr[j].start, fr[j].end, fr[j].path);
			j++, diffs++;
		} else {
			if (mr[i].end != fr[j].end || mr[i].prot != fr[j].prot ||
			    mr[i].offset != fr[j].offset || strcmp(mr[i].path, fr[j].path)) {
				printf("region differs: maps %" PRIx64 "-%" PRIx64 " p%" PRIx64
				       " o%" PRIx64 " '%s' / fw %" PRIx64 "-%" PRIx64 " p%" PRIx64
				       " o%" PRIx64 " '%s'\n",
				       mr[i].start, mr[i].end, mr[i].prot, mr[i].offset, mr[i].path,
				       fr[j].start, fr[j].end, fr[j].prot, fr[j].offset, fr[j].path);
				diffs++;
			}
			i++, j++;
		}
	}

	nmp = read_pagemap(pid, mr, nmr, &mp);
	nfp = read_fw_pages(&fp);
	qsort(mp, nmp, sizeof(*mp), cmp_page);
	qsort(fp, nfp, sizeof(*fp), cmp_page);
	for (i = 0, j = 0; i < nmp || j < nfp;) {
		int c = i == nmp ? 1 : j == nfp ? -1 : cmp_page(&mp[i], &fp[j]);

		if (c < 0) {
			if (diffs++ < 40)
				printf("page only in pagemap:  %" PRIx64 " -> %" PRIx64 "\n",
				       mp[i].va, mp[i].pa);
			i++;
		} else if (c > 0) {
			if (diffs++ < 40)
				printf("page only in firmware: %" PRIx64 " -> %" PRIx64 "\n",
				       fp[j].va, fp[j].pa);
			j++;
		} else {
			i++, j++;
		}
	}
	printf("regions: maps %zu firmware %zu; pages: pagemap %zu firmware %zu; differences %d\n",
	       nmr, nfr, nmp, nfp, diffs);
	return diffs ? 1 : 0;
}

static int dump(int pid)
{
	struct region *r;
	struct page *p;
	size_t nr, np, i;

	nr = read_maps(pid, &r);
	np = read_pagemap(pid, r, nr, &p);
	for (i = 0; i < nr; i++)
		printf("R %" PRIx64 " %" PRIx64 " %" PRIx64 " %" PRIx64 " %s\n",
		       r[i].start, r[i].end, r[i].prot, r[i].offset, r[i].path);
	for (i = 0; i < np; i++)
		printf("P %" PRIx64 " %" PRIx64 "\n", p[i].va, p[i].pa);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--compare"))
		return compare(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "--dump"))
		return dump(atoi(argv[2]));
	if (argc != 1) {
		fprintf(stderr, "usage: wpp-status [--compare PID | --dump PID]\n");
		return 2;
	}
	return show_status();
}
