/* SPDX-License-Identifier: GPL-2.0-only */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host_platform.h"

static wpp_u64 region_phys(void)
{
	return WPP_REGION_BASE_DEFAULT;
}

void *host_phys(struct host_platform *hp, wpp_u64 phys)
{
	if (phys >= HOST_RAM_BASE && phys < HOST_RAM_BASE + HOST_RAM_SIZE)
		return hp->ram + (phys - HOST_RAM_BASE);
	if (phys >= region_phys() && phys < region_phys() + WPP_REGION_SIZE_DEFAULT)
		return hp->region + (phys - region_phys());
	if (phys >= HOST_SMRAM_BASE && phys < HOST_SMRAM_BASE + HOST_SMRAM_SIZE)
		return hp->smram + (phys - HOST_SMRAM_BASE);
	if (hp->high && phys >= HOST_HIGH_BASE && phys < HOST_HIGH_BASE + HOST_HIGH_SIZE)
		return hp->high + (phys - HOST_HIGH_BASE);
	return NULL;
}

static int in_high(const struct host_platform *hp, wpp_u64 phys, wpp_u64 len)
{
	return hp->high && phys >= HOST_HIGH_BASE && phys + len <= HOST_HIGH_BASE + HOST_HIGH_SIZE;
}

/*
 * High RAM through the window: the whole window is made inaccessible, then
 * just the pages of [phys, phys + len) are mapped at its start. A piece longer
 * than the window is refused (NULL) and counted: the core must split.
 */
static void *high_map(struct host_platform *hp, wpp_u64 phys, wpp_u64 len)
{
	wpp_u64 off = phys - HOST_HIGH_BASE, pg = off & ~(wpp_u64)(WPP_PAGE_SIZE - 1);
	wpp_u64 span = (off - pg + len + WPP_PAGE_SIZE - 1) & ~(wpp_u64)(WPP_PAGE_SIZE - 1);

	hp->high_maps++;
	if (len > hp->high_map_max)
		hp->high_map_max = len;
	if (len > hp->win_size) {
		hp->window_refused++;
		return NULL;
	}
	if (mmap(hp->win, hp->win_size + WPP_PAGE_SIZE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED ||
	    mmap(hp->win, span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, hp->high_fd,
		 (off_t)pg) == MAP_FAILED)
		return NULL;
	return hp->win + (off - pg);
}

static void *hp_map(void *c, wpp_u64 phys, wpp_u64 len)
{
	struct host_platform *hp = c;

	if (phys + len < phys)
		return NULL;
	if (hp->unmappable_from && phys + len > hp->unmappable_from)
		return NULL;
	if (in_high(hp, phys, len))
		return high_map(hp, phys, len);
	if (phys >= HOST_RAM_BASE && phys + len <= HOST_RAM_BASE + HOST_RAM_SIZE)
		return hp->ram + (phys - HOST_RAM_BASE);
	if (phys >= region_phys() && phys + len <= region_phys() + WPP_REGION_SIZE_DEFAULT)
		return hp->region + (phys - region_phys());
	return NULL;
}

static int overlaps(wpp_u64 a, wpp_u64 alen, wpp_u64 b, wpp_u64 blen)
{
	return a < b + blen && b < a + alen;
}

static bool hp_is_os_ram(void *c, wpp_u64 phys, wpp_u64 len)
{
	(void)c;
	if (!len || phys + len < phys)
		return false;
	if (overlaps(phys, len, HOST_SMRAM_BASE, HOST_SMRAM_SIZE) ||
	    overlaps(phys, len, region_phys(), WPP_REGION_SIZE_DEFAULT))
		return false;
	if (in_high(c, phys, len))
		return true;
	return phys >= HOST_RAM_BASE && phys + len <= HOST_RAM_BASE + HOST_RAM_SIZE;
}

static void hp_log(void *c, const char *line, size_t len)
{
	struct host_platform *hp = c;

	if (hp->verbose)
		fprintf(stderr, "%.*s\n", (int)len, line);
	if (hp->log_len + len + 2 > hp->log_cap) {
		size_t cap = (hp->log_cap ? hp->log_cap * 2 : 4096) + len;
		char *n = realloc(hp->log, cap);

		if (!n)
			return;
		hp->log = n;
		hp->log_cap = cap;
	}
	memcpy(hp->log + hp->log_len, line, len);
	hp->log_len += len;
	hp->log[hp->log_len++] = '\n';
	hp->log[hp->log_len] = '\0';
}

static wpp_u64 hp_now(void *c)
{
	struct host_platform *hp = c;

	return hp->clock_us += 3;
}

static int dev_locate(void *c, struct wpp_range *win, unsigned int max, int size_them)
{
	struct host_platform *hp = c;

	(void)size_them;
	hp->bar_locates++;
	if (!max)
		return 0;
	win[0].base = hp->bar_base;
	win[0].size = hp->dev_size;
	return 1;
}

static const void *hp_map_smram(void *c)
{
	struct host_platform *hp = c;

	return hp->smram;
}

void host_default_layout(struct wpp_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->smram.base = HOST_SMRAM_BASE;
	l->smram.size = HOST_SMRAM_SIZE;
	l->addr_limit = 0x100000000ULL;
	l->nram = 1;
	l->ram[0].base = HOST_RAM_BASE;
	l->ram[0].size = HOST_RAM_SIZE;
}

static int dev_probe(void *c, wpp_u64 *size)
{
	struct host_platform *hp = c;

	if (hp->fail_probe)
		return hp->fail_probe;
	*size = hp->dev_size;
	return WPP_OK;
}

static int dev_write(void *c, wpp_u64 off, const void *src, wpp_u64 src_phys, wpp_u64 len)
{
	struct host_platform *hp = c;

	if (hp->on_write)
		hp->on_write(hp, off);
	if (hp->fail_write)
		return hp->fail_write;
	if (!src)
		src = host_phys(hp, src_phys);
	if (!src || off + len > hp->dev_size || off + len < off)
		return WPP_E_DEVICE_IO;
	/* Simulated power loss: the device silently stops accepting data. */
	if (hp->write_budget >= 0) {
		if ((long long)len > hp->write_budget)
			len = (wpp_u64)hp->write_budget;
		hp->write_budget -= (long long)len;
	}
	if (len && pwrite(hp->fd, src, len, (off_t)off) != (ssize_t)len)
		return WPP_E_DEVICE_IO;
	return WPP_OK;
}

static int dev_read(void *c, wpp_u64 off, void *dst, wpp_u64 dst_phys, wpp_u64 len)
{
	struct host_platform *hp = c;

	if (hp->fail_read)
		return hp->fail_read;
	if (!dst)
		dst = host_phys(hp, dst_phys);
	if (!dst || off + len > hp->dev_size || off + len < off)
		return WPP_E_DEVICE_IO;
	if (pread(hp->fd, dst, len, (off_t)off) != (ssize_t)len)
		return WPP_E_DEVICE_IO;
	return WPP_OK;
}

static int dev_wait(void *c, wpp_u64 timeout_us)
{
	(void)c;
	(void)timeout_us;
	return WPP_OK;
}

/* Lazily zeroed, with inaccessible guard pages on both sides: an access just
 * outside the WPP region faults instead of silently passing. */
#define GUARD 4096UL
static wpp_u8 *map_guarded(size_t size)
{
	wpp_u8 *p = mmap(NULL, size + 2 * GUARD, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	mprotect(p, GUARD, PROT_NONE);
	mprotect(p + GUARD + size, GUARD, PROT_NONE);
	return p + GUARD;
}

int host_platform_open(struct host_platform *hp, const char *dev_path, wpp_u64 dev_size,
		       int create)
{
	struct stat st;

	memset(hp, 0, sizeof(*hp));
	hp->high_fd = -1;
	hp->ram = calloc(1, HOST_RAM_SIZE);
	hp->region = map_guarded(WPP_REGION_SIZE_DEFAULT);
	hp->smram = calloc(1, HOST_SMRAM_SIZE);
	if (!hp->ram || !hp->region || !hp->smram)
		return -1;
	memset(hp->smram, 0xcd, HOST_SMRAM_SIZE);
	hp->fd = open(dev_path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0644);
	if (hp->fd < 0)
		return -1;
	if (create) {
		if (ftruncate(hp->fd, (off_t)dev_size))
			return -1;
		hp->dev_size = dev_size;
	} else {
		if (fstat(hp->fd, &st))
			return -1;
		hp->dev_size = (wpp_u64)st.st_size;
	}
	hp->write_budget = -1;
	hp->pdev = (struct wpp_pdev){
		.name = "hostfile",
		.ctx = hp,
		.locate = dev_locate,
		.probe = dev_probe,
		.write = dev_write,
		.read = dev_read,
		.wait = dev_wait,
	};
	hp->plat = (struct wpp_platform){
		.ctx = hp,
		.map = hp_map,
		.is_os_ram = hp_is_os_ram,
		.log = hp_log,
		.now_us = hp_now,
		.map_smram = hp_map_smram,
		.pdev = &hp->pdev,
		.dev_timeout_us = 5000000,
	};
	hp->bar_base = HOST_BAR_BASE;
	wpp_ctx_init(&hp->ctx, &hp->plat, hp->region, region_phys(), WPP_REGION_SIZE_DEFAULT);
	host_default_layout(&hp->layout);
	if (wpp_guard_record(&hp->ctx, &hp->layout) != WPP_OK || !hp->ctx.dev_recorded)
		return -1;
	return 0;
}

int host_platform_add_high_ram(struct host_platform *hp, wpp_u64 window)
{
	struct wpp_layout *l = &hp->layout;

	if (hp->high || !window || (window & (WPP_PAGE_SIZE - 1)) ||
	    l->nram >= WPP_LAYOUT_MAX_RAM)
		return -1;
	hp->high_fd = memfd_create("wpp-high-ram", 0);
	if (hp->high_fd < 0 || ftruncate(hp->high_fd, (off_t)HOST_HIGH_SIZE))
		return -1;
	hp->high = mmap(NULL, HOST_HIGH_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, hp->high_fd, 0);
	hp->win = mmap(NULL, window + WPP_PAGE_SIZE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hp->high == MAP_FAILED || hp->win == MAP_FAILED) {
		hp->high = NULL;
		return -1;
	}
	hp->win_size = window;
	hp->plat.map_window = window;
	l->ram[l->nram].base = HOST_HIGH_BASE;
	l->ram[l->nram].size = HOST_HIGH_SIZE;
	l->nram++;
	if (wpp_guard_record(&hp->ctx, l) != WPP_OK || !hp->ctx.dev_recorded)
		return -1;
	return 0;
}

void host_platform_close(struct host_platform *hp)
{
	if (hp->fd >= 0)
		close(hp->fd);
	if (hp->high) {
		munmap(hp->high, HOST_HIGH_SIZE);
		munmap(hp->win, hp->win_size + WPP_PAGE_SIZE);
		close(hp->high_fd);
	}
	free(hp->ram);
	if (hp->region)
		munmap(hp->region - GUARD, WPP_REGION_SIZE_DEFAULT + 2 * GUARD);
	free(hp->smram);
	free(hp->log);
	memset(hp, 0, sizeof(*hp));
	hp->fd = -1;
}

struct wpp_mailbox_hdr *host_mailbox(struct host_platform *hp)
{
	return (struct wpp_mailbox_hdr *)(hp->region + WPP_MAILBOX_OFFSET);
}

void *host_payload(struct host_platform *hp)
{
	return hp->region + WPP_MAILBOX_OFFSET + WPP_MAILBOX_HDR_SIZE;
}

int host_call(struct host_platform *hp, wpp_u8 event, const void *payload, wpp_u32 len)
{
	static wpp_u32 seq;
	struct wpp_mailbox_hdr *h = host_mailbox(hp);

	h->magic = WPP_MAILBOX_MAGIC;
	h->abi_version = WPP_ABI_VERSION;
	h->event = event;
	h->seq = ++seq;
	h->seq_ack = 0;
	h->status = -1;
	h->payload_len = len;
	if (payload && len && payload != host_payload(hp))
		memcpy(host_payload(hp), payload, len);
	if (!wpp_handle_event(&hp->ctx, event))
		return -1;
	if (h->seq_ack != seq)
		return -2;
	return h->status;
}

int host_log_contains(struct host_platform *hp, const char *needle)
{
	return hp->log && strstr(hp->log, needle) != NULL;
}

void host_log_clear(struct host_platform *hp)
{
	hp->log_len = 0;
	if (hp->log)
		hp->log[0] = '\0';
}
