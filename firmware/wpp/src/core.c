/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The WPP event handler: tracks a process' regions and pages in the reserved
 * region, persists them to the persistent device and restores them.
 *
 * Everything read from the mailbox or the WPP region is OS-controlled: it is
 * copied into the context (SMRAM) once, then validated, and never re-read
 * (no double fetch). Every OS-supplied physical address goes through
 * the platform's is_os_ram() check.
 */
#include <string.h>

#include "wpp_core.h"

#define U(x)			((unsigned long long)(x))
#define WPP_ALIGN_UP(x, a)		(((x) + (wpp_u64)(a) - 1) & ~((wpp_u64)(a) - 1))
#define WPP_MIN(a, b)		((a) < (b) ? (a) : (b))

#define REGION_SLOTS		((wpp_u32)WPP_REGION_SLOTS)
#define BUCKET_SLOTS		((wpp_u32)WPP_PAGE_BUCKET_SLOTS)

/* Bytes handed to one device transfer at most; larger runs are split. */
#define MAX_RUN			(4ULL << 20)

/*
 * Longest piece the core maps at once: MAX_RUN, or less when the platform
 * maps through a smaller window (struct wpp_platform.map_window). Never less
 * than one page (a platform that cannot map one page maps nothing).
 */
static wpp_u64 map_piece(const struct wpp_ctx *ctx)
{
	wpp_u64 w = ctx->plat->map_window & ~(wpp_u64)(WPP_PAGE_SIZE - 1);

	if (!ctx->plat->map_window || w >= MAX_RUN)
		return MAX_RUN;
	return w ? w : WPP_PAGE_SIZE;
}

static inline struct wpp_mailbox_hdr *mbox(struct wpp_ctx *ctx)
{
	return (struct wpp_mailbox_hdr *)(ctx->region + WPP_MAILBOX_OFFSET);
}

static inline wpp_u8 *mbox_payload(struct wpp_ctx *ctx)
{
	return ctx->region + WPP_MAILBOX_OFFSET + WPP_MAILBOX_HDR_SIZE;
}

static inline wpp_u8 *section(struct wpp_ctx *ctx, wpp_u32 off)
{
	return ctx->region + off;
}

static inline struct wpp_region *region_slot(struct wpp_ctx *ctx, wpp_u32 i)
{
	return (struct wpp_region *)section(ctx, WPP_REGIONS_OFFSET) + i;
}

static inline struct wpp_page_mapping *bucket_base(struct wpp_ctx *ctx, unsigned int b)
{
	return (struct wpp_page_mapping *)(section(ctx, WPP_PAGES_OFFSET) +
		(wpp_u64)b * BUCKET_SLOTS * sizeof(struct wpp_page_mapping));
}

static inline wpp_u8 *scratch(struct wpp_ctx *ctx)
{
	return section(ctx, WPP_INTERNAL_OFFSET + WPP_INTERNAL_SCRATCH_OFFSET);
}

static inline wpp_u64 scratch_phys(struct wpp_ctx *ctx)
{
	return ctx->region_phys + WPP_INTERNAL_OFFSET + WPP_INTERNAL_SCRATCH_OFFSET;
}

static wpp_u64 now(struct wpp_ctx *ctx)
{
	return ctx->plat->now_us ? ctx->plat->now_us(ctx->plat->ctx) : 0;
}

static const struct {
	wpp_u32 off, size;
} section_geom[WPP_SECTION_COUNT] = {
	[WPP_SECTION_MAILBOX] = { WPP_MAILBOX_OFFSET, WPP_MAILBOX_SIZE },
	[WPP_SECTION_METADATA] = { WPP_METADATA_OFFSET, WPP_METADATA_SIZE },
	[WPP_SECTION_REGIONS] = { WPP_REGIONS_OFFSET, WPP_REGIONS_SIZE },
	[WPP_SECTION_INTERNAL] = { WPP_INTERNAL_OFFSET, WPP_INTERNAL_SIZE },
	[WPP_SECTION_PAGES] = { WPP_PAGES_OFFSET, WPP_PAGES_SIZE },
};

/* ---------------------------------------------------------------- guard */

static int overlaps(wpp_u64 a, wpp_u64 alen, wpp_u64 b, wpp_u64 blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static int in_os_ram(const struct wpp_layout *l, wpp_u64 phys, wpp_u64 len)
{
	for (wpp_u32 i = 0; i < l->nram && i < WPP_LAYOUT_MAX_RAM; i++)
		if (phys >= l->ram[i].base && phys + len <= l->ram[i].base + l->ram[i].size)
			return 1;
	return 0;
}

static int overlaps_os_ram(const struct wpp_layout *l, wpp_u64 base, wpp_u64 size)
{
	for (wpp_u32 i = 0; i < l->nram && i < WPP_LAYOUT_MAX_RAM; i++)
		if (overlaps(base, size, l->ram[i].base, l->ram[i].size))
			return 1;
	return 0;
}

/*
 * End of DRAM below SMM's limit: the higher of SMRAM's end (TSEG sits at the
 * top of low DRAM on q35 and Intel client chipsets) and the end of the highest
 * OS RAM range below the limit. Everything below it is memory, not MMIO.
 */
wpp_u64 wpp_layout_ram_top(const struct wpp_layout *l)
{
	wpp_u64 top = l->smram.size ? l->smram.base + l->smram.size : 0;

	for (wpp_u32 i = 0; i < l->nram && i < WPP_LAYOUT_MAX_RAM; i++) {
		wpp_u64 end = l->ram[i].base + l->ram[i].size;

		if (end <= l->addr_limit && end > top)
			top = end;
	}
	return top;
}

int wpp_check_window(const struct wpp_layout *l, wpp_u64 region_base, wpp_u64 region_size,
		     wpp_u64 base, wpp_u64 size, const char **why)
{
	if (!size || base + size < base) {
		*why = "bar_size";
		return WPP_E_BAD_ADDR;
	}
	if (overlaps(base, size, l->smram.base, l->smram.size)) {
		*why = "bar_over_smram";
		return WPP_E_BAD_ADDR;
	}
	if (overlaps(base, size, region_base, region_size)) {
		*why = "bar_over_region";
		return WPP_E_BAD_ADDR;
	}
	if (base < wpp_layout_ram_top(l) || overlaps_os_ram(l, base, size)) {
		*why = "bar_over_ram";
		return WPP_E_BAD_ADDR;
	}
	if (base + size > l->addr_limit) {
		*why = "bar_above_limit";
		return WPP_E_BAD_ADDR;
	}
	return WPP_OK;
}

int wpp_check_region(const struct wpp_layout *l, const struct wpp_range *win,
		     unsigned int nwin, wpp_u64 base, wpp_u64 size, const char **why)
{
	if (!size || base + size < base) {
		*why = "region_size";
		return WPP_E_BAD_ADDR;
	}
	if (overlaps(base, size, l->smram.base, l->smram.size)) {
		*why = "region_over_smram";
		return WPP_E_BAD_ADDR;
	}
	if (base + size > l->addr_limit) {
		*why = "region_above_limit";
		return WPP_E_BAD_ADDR;
	}
	for (unsigned int i = 0; i < nwin; i++) {
		if (overlaps(base, size, win[i].base, win[i].size)) {
			*why = "region_over_mmio";
			return WPP_E_BAD_ADDR;
		}
	}
	if (overlaps_os_ram(l, base, size)) {
		*why = "region_over_ram";
		return WPP_E_BAD_ADDR;
	}
	if (base + size > wpp_layout_ram_top(l)) {
		*why = "region_beyond_ram";
		return WPP_E_BAD_ADDR;
	}
	return WPP_OK;
}

static const char *pdev_name(const struct wpp_ctx *ctx)
{
	const struct wpp_pdev *d = ctx->plat->pdev;

	return d && d->name ? d->name : "none";
}

int wpp_guard_record(struct wpp_ctx *ctx, const struct wpp_layout *l)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	struct wpp_range win[WPP_PDEV_MAX_WINDOWS];
	const char *why = "";
	int n = 0, rc;

	ctx->guard_ok = 0;
	ctx->dev_recorded = 0;
	ctx->dev_nwin = 0;
	ctx->layout = *l;
	if (ctx->layout.nram > WPP_LAYOUT_MAX_RAM)
		ctx->layout.nram = WPP_LAYOUT_MAX_RAM;
	ctx->ram_top = wpp_layout_ram_top(&ctx->layout);
	memset(win, 0, sizeof(win));
	if (d && d->locate)
		n = d->locate(d->ctx, win, WPP_PDEV_MAX_WINDOWS, 1);
	if (n < 0 || n > (int)WPP_PDEV_MAX_WINDOWS)
		n = 0;
	rc = wpp_check_region(&ctx->layout, win, (unsigned int)n, ctx->region_phys,
			      ctx->region_size, &why);
	if (rc != WPP_OK) {
		wpp_logf(ctx->plat, "guard status=%d error=%s region=0x%llx size=0x%llx "
			 "smram=0x%llx:0x%llx ram_top=0x%llx", rc, why, U(ctx->region_phys),
			 U(ctx->region_size), U(l->smram.base), U(l->smram.size),
			 U(ctx->ram_top));
		return rc;
	}
	ctx->guard_ok = 1;
	for (int i = 0; i < n; i++) {
		rc = wpp_check_window(&ctx->layout, ctx->region_phys, ctx->region_size,
				      win[i].base, win[i].size, &why);
		if (rc != WPP_OK) {
			wpp_logf(ctx->plat, "device status=%d error=%s dev=%s bar=0x%llx "
				 "size=0x%llx", WPP_E_NO_DEVICE, why, pdev_name(ctx),
				 U(win[i].base), U(win[i].size));
			n = -1;
			break;
		}
	}
	if (n > 0) {
		memcpy(ctx->dev_win, win, sizeof(win));
		ctx->dev_nwin = (unsigned int)n;
		ctx->dev_recorded = 1;
	}
	wpp_logf(ctx->plat, "guard status=0 smram=0x%llx:0x%llx ram_top=0x%llx ranges=%u "
		 "dev=%s bar=0x%llx:0x%llx recorded=%d", U(l->smram.base), U(l->smram.size),
		 U(ctx->ram_top), ctx->layout.nram, pdev_name(ctx), U(win[0].base),
		 U(win[0].size), ctx->dev_recorded);
	return WPP_OK;
}

int wpp_guard_device(struct wpp_ctx *ctx, int log)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	struct wpp_range now[WPP_PDEV_MAX_WINDOWS];
	int n;

	if (!d || !ctx->dev_recorded || !d->locate) {
		if (log)
			wpp_logf(ctx->plat, "device status=%d error=not_recorded dev=%s",
				 WPP_E_NO_DEVICE, pdev_name(ctx));
		return WPP_E_NO_DEVICE;
	}
	if (ctx->dev_guarded)
		goto same;
	memset(now, 0, sizeof(now));
	n = d->locate(d->ctx, now, WPP_PDEV_MAX_WINDOWS, 0);
	for (unsigned int i = 0; i < ctx->dev_nwin; i++) {
		if (n == (int)ctx->dev_nwin && now[i].base == ctx->dev_win[i].base)
			continue;
		if (log)
			wpp_logf(ctx->plat, "device status=%d error=bar_moved dev=%s window=%u "
				 "bar=0x%llx recorded=0x%llx", WPP_E_DEVICE_MOVED,
				 pdev_name(ctx), i, n > (int)i ? U(now[i].base) : 0ULL,
				 U(ctx->dev_win[i].base));
		return WPP_E_DEVICE_MOVED;
	}
	ctx->dev_guarded = ctx->event_all_held;
same:
	memcpy(d->win, ctx->dev_win, sizeof(d->win));
	d->nwin = ctx->dev_nwin;
	return WPP_OK;
}

/*
 * An OS-chosen physical range: must lie in one OS RAM range of the recorded
 * layout, outside the WPP region and SMRAM. Each refusal names its reason, so
 * tests can tell which branch refused (the SMRAM branch is checked before the
 * RAM ranges, not hidden behind them).
 */
static int check_os_range(struct wpp_ctx *ctx, wpp_u64 phys, wpp_u64 len)
{
	if (!len || phys + len < phys)
		ctx->reason = "wrap";
	else if (overlaps(phys, len, ctx->region_phys, ctx->region_size))
		ctx->reason = "region";
	else if (overlaps(phys, len, ctx->layout.smram.base, ctx->layout.smram.size))
		ctx->reason = "smram";
	else if (!in_os_ram(&ctx->layout, phys, len))
		ctx->reason = "not_ram";
	else if (ctx->plat->is_os_ram && !ctx->plat->is_os_ram(ctx->plat->ctx, phys, len))
		ctx->reason = "platform";
	else
		return WPP_OK;
	return WPP_E_BAD_ADDR;
}

void wpp_ctx_init(struct wpp_ctx *ctx, const struct wpp_platform *plat, void *region,
		  wpp_u64 region_phys, wpp_u64 region_size)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->plat = plat;
	ctx->region = region;
	ctx->region_phys = region_phys;
	ctx->region_size = region_size;
	ctx->region_free = WPP_NO_SLOT;
	for (unsigned int b = 0; b < WPP_PAGE_BUCKETS; b++)
		ctx->bucket_free[b] = WPP_NO_SLOT;
}

/* ---------------------------------------------------------------- device */

/*
 * Every device operation starts here: the BAR the OS sees in PCI config space
 * must still be the one recorded at boot, or SMM would copy to or from
 * whatever now lies under the moved BAR (SMRAM, RAM, the region).
 */
static int dev_probe(struct wpp_ctx *ctx, wpp_u64 *size)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	int rc;

	if (!d || !d->probe)
		return WPP_E_NO_DEVICE;
	rc = wpp_guard_device(ctx, 1);
	if (rc != WPP_OK)
		return rc;
	rc = d->probe(d->ctx, size);
	if (rc != WPP_OK)
		wpp_logf(ctx->plat, "device status=%d error=%s dev=%s", rc, wpp_status_name(rc),
			 d->name ? d->name : "?");
	return rc;
}

/*
 * Transfers check the BAR again: other CPUs may keep running while one is in
 * SMM (an SMI that reached only the writing CPU, or a platform that does not
 * count the rendezvous), so the OS could move the BAR in the middle of a
 * persist. What remains is the window inside one transfer (at most MAX_RUN
 * bytes). When the rendezvous found every CPU in SMM, the OS is stopped for
 * the whole event and the first check holds until it ends (a GET_PAGES into
 * 1,024 scattered frames read the BAR 1,024 times: 3 PCI config reads each,
 * about 12 us per frame under TCG).
 */
static int dev_write(struct wpp_ctx *ctx, wpp_u64 off, const void *src, wpp_u64 phys,
		     wpp_u64 len)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	int rc;

	if (!len)
		return WPP_OK;
	rc = wpp_guard_device(ctx, 1);
	return rc == WPP_OK ? d->write(d->ctx, off, src, phys, len) : rc;
}

/* A mapped run to a CPU-copy device: copied and CRC'd in one pass (write_crc). */
static int dev_write_crc(struct wpp_ctx *ctx, wpp_u64 off, const void *src, wpp_u64 len,
			 wpp_u32 *crc)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	int rc;

	if (!len)
		return WPP_OK;
	rc = wpp_guard_device(ctx, 1);
	return rc == WPP_OK ? d->write_crc(d->ctx, off, src, len, crc) : rc;
}

static int dev_read(struct wpp_ctx *ctx, wpp_u64 off, void *dst, wpp_u64 phys, wpp_u64 len)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	int rc;

	if (!len)
		return WPP_OK;
	rc = wpp_guard_device(ctx, 1);
	return rc == WPP_OK ? d->read(d->ctx, off, dst, phys, len) : rc;
}

static int dev_wait(struct wpp_ctx *ctx)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	wpp_u64 t = ctx->plat->dev_timeout_us ? ctx->plat->dev_timeout_us : 5000000;

	return d->wait ? d->wait(d->ctx, t) : WPP_OK;
}

/*
 * Update *crc over device bytes, one piece of at most buf_size per transfer:
 * in place on a CPU-mapped device (pdev->crc), else read into buf (at
 * buf_phys for DMA) and CRC'd there.
 */
static int dev_crc(struct wpp_ctx *ctx, wpp_u64 off, wpp_u64 len, wpp_u32 *crc, wpp_u8 *buf,
		   wpp_u64 buf_phys, wpp_u64 buf_size)
{
	struct wpp_pdev *d = ctx->plat->pdev;
	int rc = WPP_OK;

	for (wpp_u64 done = 0, n; rc == WPP_OK && done < len; done += n) {
		n = WPP_MIN(buf_size, len - done);
		if (d->crc) {
			rc = wpp_guard_device(ctx, 1);
			if (rc == WPP_OK)
				rc = d->crc(d->ctx, off + done, n, crc);
			continue;
		}
		rc = dev_read(ctx, off + done, buf, buf_phys, n);
		if (rc == WPP_OK)
			rc = dev_wait(ctx);
		if (rc == WPP_OK)
			*crc = wpp_crc32(*crc, buf, n);
	}
	return rc;
}

/* ---------------------------------------------------------------- init */

static void clear_tracking(struct wpp_ctx *ctx)
{
	memset(section(ctx, WPP_METADATA_OFFSET), 0, ctx->metadata_used);
	memset(section(ctx, WPP_REGIONS_OFFSET), 0,
	       (wpp_u64)ctx->region_hw * sizeof(struct wpp_region));
	for (unsigned int b = 0; b < WPP_PAGE_BUCKETS; b++) {
		memset(bucket_base(ctx, b), 0,
		       (wpp_u64)ctx->bucket_hw[b] * sizeof(struct wpp_page_mapping));
		ctx->bucket_hw[b] = 0;
		ctx->bucket_free[b] = WPP_NO_SLOT;
		ctx->bucket_hint[b] = 0;
	}
	memset(section(ctx, WPP_PAGES_OFFSET), 0, ctx->restored_list_bytes);
	ctx->restored_list_bytes = 0;
	ctx->metadata_used = 0;
	ctx->region_hw = 0;
	ctx->region_free = WPP_NO_SLOT;
	ctx->regions_used = 0;
	ctx->pages_used = 0;
}

static int ev_init(struct wpp_ctx *ctx, wpp_u64 *res)
{
	clear_tracking(ctx);
	ctx->state = WPP_STATE_TRACKING;
	ctx->counters.generation++;
	res[0] = ctx->counters.generation;
	wpp_logf(ctx->plat, "init status=0 generation=%llu", U(ctx->counters.generation));
	return WPP_OK;
}

/* ---------------------------------------------------------------- regions */

static int has_nul(const char *s, size_t n)
{
	while (n--)
		if (!*s++)
			return 1;
	return 0;
}

static int region_alloc(struct wpp_ctx *ctx, wpp_u32 *idx)
{
	wpp_u32 i = ctx->region_free;

	if (i != WPP_NO_SLOT) {
		struct wpp_region *r;

		/* The link lives in OS-writable memory: trust nothing. */
		if (i < ctx->region_hw && !((r = region_slot(ctx, i))->state & WPP_REGION_F_USED)) {
			wpp_u64 next = r->file_offset;

			ctx->region_free = (next && next <= ctx->region_hw) ?
				(wpp_u32)(next - 1) : WPP_NO_SLOT;
			*idx = i;
			return WPP_OK;
		}
		ctx->region_free = WPP_NO_SLOT;
	}
	if (ctx->region_hw < REGION_SLOTS) {
		*idx = ctx->region_hw++;
		return WPP_OK;
	}
	/* Free list lost (tampered): reclaim by scanning. */
	for (i = 0; i < ctx->region_hw; i++) {
		if (!(region_slot(ctx, i)->state & WPP_REGION_F_USED)) {
			*idx = i;
			return WPP_OK;
		}
	}
	return WPP_E_NO_SLOT;
}

static int ev_add_region(struct wpp_ctx *ctx, const wpp_u8 *pl, wpp_u32 len)
{
	struct wpp_region r;
	wpp_u32 idx;
	int rc;

	if (len < sizeof(r))
		return WPP_E_BAD_ARG;
	memcpy(&r, pl, sizeof(r));
	if (!has_nul(r.file_path, sizeof(r.file_path)))
		return WPP_E_BAD_ARG;
	if (!r.length || (r.virtual_address & (WPP_PAGE_SIZE - 1)) ||
	    r.virtual_address + r.length < r.virtual_address)
		return WPP_E_BAD_ARG;
	rc = region_alloc(ctx, &idx);
	if (rc != WPP_OK)
		return rc;
	r.state = (r.state & (WPP_REGION_F_FILE | WPP_REGION_F_PATH_TRUNC)) | WPP_REGION_F_USED;
	memcpy(region_slot(ctx, idx), &r, sizeof(r));
	ctx->regions_used++;
	if (ctx->debug_flags & WPP_DEBUG_F_VERBOSE)
		wpp_logf(ctx->plat, "add_region status=0 slot=%u va=0x%llx len=0x%llx prot=0x%llx",
			 idx, U(r.virtual_address), U(r.length), U(r.protection));
	return WPP_OK;
}

static int ev_remove_region(struct wpp_ctx *ctx, const wpp_u8 *pl, wpp_u32 len)
{
	struct wpp_region_key k;

	if (len < sizeof(k))
		return WPP_E_BAD_ARG;
	memcpy(&k, pl, sizeof(k));
	for (wpp_u32 i = 0; i < ctx->region_hw; i++) {
		struct wpp_region *r = region_slot(ctx, i);

		if (!(r->state & WPP_REGION_F_USED) || r->virtual_address != k.virtual_address)
			continue;
		if (k.length && r->length != k.length)
			continue;
		memset(r, 0, sizeof(*r));
		r->file_offset = ctx->region_free == WPP_NO_SLOT ? 0 : (wpp_u64)ctx->region_free + 1;
		ctx->region_free = i;
		if (ctx->regions_used)
			ctx->regions_used--;
		return WPP_OK;
	}
	return WPP_E_NOT_FOUND;
}

/* ---------------------------------------------------------------- pages */

static int page_add(struct wpp_ctx *ctx, wpp_u64 va, wpp_u64 pa)
{
	unsigned int b;
	struct wpp_page_mapping *base;
	wpp_u32 i;
	int rc;

	if ((va & (WPP_PAGE_SIZE - 1)) || (pa & (WPP_PAGE_SIZE - 1)))
		return WPP_E_BAD_ARG;
	rc = check_os_range(ctx, pa, WPP_PAGE_SIZE);
	if (rc != WPP_OK)
		return rc;
	b = WPP_PAGE_BUCKET(va);
	base = bucket_base(ctx, b);
	i = ctx->bucket_free[b];
	if (i != WPP_NO_SLOT) {
		if (i < ctx->bucket_hw[b] && !(base[i].virtual_address & WPP_PAGE_USED)) {
			wpp_u64 next = base[i].physical_address;

			ctx->bucket_free[b] = (next && next <= ctx->bucket_hw[b]) ?
				(wpp_u32)(next - 1) : WPP_NO_SLOT;
		} else {
			ctx->bucket_free[b] = WPP_NO_SLOT;
			i = WPP_NO_SLOT;
		}
	}
	if (i == WPP_NO_SLOT) {
		if (ctx->bucket_hw[b] < BUCKET_SLOTS) {
			i = ctx->bucket_hw[b]++;
		} else {
			for (i = 0; i < ctx->bucket_hw[b]; i++)
				if (!(base[i].virtual_address & WPP_PAGE_USED))
					break;
			if (i == ctx->bucket_hw[b])
				return WPP_E_NO_SLOT;
		}
	}
	base[i].physical_address = pa;
	base[i].virtual_address = va | WPP_PAGE_USED;
	ctx->pages_used++;
	if (ctx->debug_flags & WPP_DEBUG_F_TRACE_PAGES)
		wpp_logf(ctx->plat, "add_page status=0 bucket=%u slot=%u va=0x%llx pa=0x%llx",
			 b, i, U(va), U(pa));
	return WPP_OK;
}

static int slot_is(const struct wpp_page_mapping *m, wpp_u64 va, wpp_u64 pa)
{
	return m->virtual_address == (va | WPP_PAGE_USED) && (!pa || m->physical_address == pa);
}

/*
 * The slot holding va (and pa, unless 0), or WPP_NO_SLOT. The search starts at
 * the bucket's last removal and widens both ways: a munmap removes pages in
 * address order, and pages added in order sit in ascending slots (fresh) or
 * descending ones (popped off the free list), so the next page is a neighbour.
 * A linear scan from slot 0 made each removal cost the bucket's size: batched
 * tracking of 100 MiB spent ~250 ms per PAGE_BATCH under TCG, 1.6x the
 * untracked run, nearly all of it here.
 */
static wpp_u32 page_find(const struct wpp_page_mapping *base, wpp_u32 hw, wpp_u32 from,
			 wpp_u64 va, wpp_u64 pa)
{
	if (!hw)
		return WPP_NO_SLOT;
	if (from >= hw)
		from = hw - 1;
	for (wpp_u32 d = 0; d <= from || from + d < hw; d++) {
		if (from + d < hw && slot_is(&base[from + d], va, pa))
			return from + d;
		if (d && d <= from && slot_is(&base[from - d], va, pa))
			return from - d;
	}
	return WPP_NO_SLOT;
}

static int page_remove(struct wpp_ctx *ctx, wpp_u64 va, wpp_u64 pa)
{
	unsigned int b = WPP_PAGE_BUCKET(va);
	struct wpp_page_mapping *base = bucket_base(ctx, b);
	wpp_u32 i;

	if (va & (WPP_PAGE_SIZE - 1))
		return WPP_E_BAD_ARG;
	i = page_find(base, ctx->bucket_hw[b], ctx->bucket_hint[b], va, pa);
	if (i != WPP_NO_SLOT) {
		ctx->bucket_hint[b] = i;
		base[i].virtual_address = 0;
		base[i].physical_address = ctx->bucket_free[b] == WPP_NO_SLOT ? 0 :
			(wpp_u64)ctx->bucket_free[b] + 1;
		ctx->bucket_free[b] = i;
		if (ctx->pages_used)
			ctx->pages_used--;
		if (ctx->debug_flags & WPP_DEBUG_F_TRACE_PAGES)
			wpp_logf(ctx->plat, "remove_page status=0 bucket=%u slot=%u va=0x%llx",
				 b, i, U(va));
		return WPP_OK;
	}
	return WPP_E_NOT_FOUND;
}

static int ev_page(struct wpp_ctx *ctx, const wpp_u8 *pl, wpp_u32 len, int add)
{
	struct wpp_page_mapping m;

	if (len < sizeof(m))
		return WPP_E_BAD_ARG;
	memcpy(&m, pl, sizeof(m));
	return add ? page_add(ctx, m.virtual_address, m.physical_address) :
		page_remove(ctx, m.virtual_address, m.physical_address);
}

static int ev_page_batch(struct wpp_ctx *ctx, const wpp_u8 *pl, wpp_u32 len, wpp_u64 *res)
{
	struct wpp_page_batch hdr;

	if (len < sizeof(hdr))
		return WPP_E_BAD_ARG;
	memcpy(&hdr, pl, sizeof(hdr));
	if (hdr.flags || hdr.count > (len - sizeof(hdr)) / sizeof(struct wpp_page_op))
		return WPP_E_BAD_ARG;
	for (wpp_u32 i = 0; i < hdr.count; i++) {
		struct wpp_page_op op;
		int rc;

		memcpy(&op, pl + sizeof(hdr) + (wpp_u64)i * sizeof(op), sizeof(op));
		if (op.op == WPP_PAGE_OP_ADD)
			rc = page_add(ctx, op.virtual_address, op.physical_address);
		else if (op.op == WPP_PAGE_OP_REMOVE)
			rc = page_remove(ctx, op.virtual_address, op.physical_address);
		else
			rc = WPP_E_BAD_ARG;
		if (rc != WPP_OK) {
			res[0] = i;
			return rc;
		}
	}
	res[0] = hdr.count;
	return WPP_OK;
}

/* ---------------------------------------------------------------- data */

/* Copy a data command out of the OS-writable mailbox once, then check the copy. */
static int get_data_cmd(const wpp_u8 *pl, wpp_u32 len, struct wpp_data_cmd *c)
{
	if (len < sizeof(*c))
		return WPP_E_BAD_ARG;
	memcpy(c, pl, sizeof(*c));
	if (c->section >= WPP_SECTION_COUNT || c->reserved)
		return WPP_E_BAD_ARG;
	if ((wpp_u64)c->offset + c->size > section_geom[c->section].size)
		return WPP_E_BOUNDS;
	return WPP_OK;
}

static int ev_write_data(struct wpp_ctx *ctx, const wpp_u8 *pl, wpp_u32 len)
{
	struct wpp_data_cmd c;
	int rc;

	rc = get_data_cmd(pl, len, &c);
	if (rc != WPP_OK)
		return rc;
	if (c.section != WPP_SECTION_METADATA)
		return WPP_E_READ_ONLY;
	if (c.size > len - sizeof(c))
		return WPP_E_BAD_ARG;
	memcpy(section(ctx, WPP_METADATA_OFFSET) + c.offset, pl + sizeof(c), c.size);
	if ((wpp_u64)c.offset + c.size > ctx->metadata_used)
		ctx->metadata_used = (wpp_u64)c.offset + c.size;
	return WPP_OK;
}

static int ev_read_data(struct wpp_ctx *ctx, wpp_u8 *pl, wpp_u32 len, wpp_u32 *reply_len)
{
	struct wpp_data_cmd c;
	int rc;

	rc = get_data_cmd(pl, len, &c);
	if (rc != WPP_OK)
		return rc;
	if (c.section == WPP_SECTION_MAILBOX)
		return WPP_E_BAD_ARG;
	if (c.size > WPP_MAILBOX_PAYLOAD_MAX - sizeof(c))
		return WPP_E_BOUNDS;
	memcpy(pl + sizeof(c), section(ctx, section_geom[c.section].off) + c.offset, c.size);
	*reply_len = sizeof(c) + c.size;
	return WPP_OK;
}

/* ---------------------------------------------------------------- persist */

struct persist_run {
	wpp_u64 phys;		/* start of the physically contiguous run */
	wpp_u64 len;
	wpp_u64 dev_off;
	wpp_u32 crc;
	wpp_u64 runs;
	wpp_u64 readback;	/* pages CRC'd from a device read-back */
};

/*
 * A run SMM cannot map for the CPU (above 4 GiB on the FPGA board: the device
 * moves it by DMA) is CRC'd from what landed on the device, read back through
 * the SMRAM bounce buffer (dev_crc()). Its CRC is never dropped: restore refuses a
 * snapshot without a page CRC, and a failed read-back fails the persist.
 */
static int crc_readback(struct wpp_ctx *ctx, struct persist_run *run)
{
	int rc = dev_wait(ctx);

	if (rc == WPP_OK)
		rc = dev_crc(ctx, run->dev_off, run->len, &run->crc, ctx->bounce, WPP_PHYS_NONE,
			     sizeof(ctx->bounce));
	if (rc != WPP_OK)
		wpp_logf(ctx->plat, "persist check=page_crc_readback pa=0x%llx status=%d",
			 U(run->phys), rc);
	return rc;
}

static int flush_run(struct wpp_ctx *ctx, struct persist_run *run)
{
	void *src;
	int rc;

	if (!run->len)
		return WPP_OK;
	src = ctx->plat->map ? ctx->plat->map(ctx->plat->ctx, run->phys, run->len) : NULL;
	if (src && ctx->plat->pdev->write_crc) {
		rc = dev_write_crc(ctx, run->dev_off, src, run->len, &run->crc);
	} else {
		if (src)
			run->crc = wpp_crc32(run->crc, src, run->len);
		rc = dev_write(ctx, run->dev_off, src, run->phys, run->len);
	}
	if (rc == WPP_OK && !src) {
		rc = crc_readback(ctx, run);
		run->readback += run->len / WPP_PAGE_SIZE;
	}
	run->dev_off += run->len;
	run->len = 0;
	run->runs++;
	return rc;
}

struct list_writer {
	wpp_u64 dev_off;
	wpp_u32 fill;
	wpp_u32 crc;
};

/*
 * Write OS-writable bytes (Metadata, the scratch buffer) to the device so that
 * the CRC and the written data come from the same fetch: each chunk is copied
 * into SMRAM once, CRC'd there and written from there. (CRC'ing the section
 * and then letting the device read it again gave a snapshot whose CRC did not
 * match its data when the OS changed it in between: a persist that reported
 * success but could never be restored.)
 */
static int write_bounced(struct wpp_ctx *ctx, wpp_u64 dev_off, const wpp_u8 *src, wpp_u64 len,
			 wpp_u32 *crc)
{
	int rc = WPP_OK;

	for (wpp_u64 done = 0; rc == WPP_OK && done < len;) {
		wpp_u64 n = WPP_MIN((wpp_u64)sizeof(ctx->bounce), len - done);

		memcpy(ctx->bounce, src + done, n);
		*crc = wpp_crc32(*crc, ctx->bounce, n);
		rc = dev_write(ctx, dev_off + done, ctx->bounce, WPP_PHYS_NONE, n);
		if (rc == WPP_OK)
			rc = dev_wait(ctx);	/* the bounce buffer is reused next */
		done += n;
	}
	return rc;
}

static int list_flush(struct wpp_ctx *ctx, struct list_writer *w)
{
	int rc;

	if (!w->fill)
		return WPP_OK;
	rc = write_bounced(ctx, w->dev_off, scratch(ctx), w->fill, &w->crc);
	w->dev_off += w->fill;
	w->fill = 0;
	return rc;
}

static int list_put(struct wpp_ctx *ctx, struct list_writer *w, const void *e, wpp_u32 size)
{
	if (w->fill + size > WPP_INTERNAL_SCRATCH_SIZE) {
		int rc = list_flush(ctx, w);

		if (rc != WPP_OK)
			return rc;
	}
	memcpy(scratch(ctx) + w->fill, e, size);
	w->fill += size;
	return WPP_OK;
}

/* Next used slot in round-robin bucket order (slot i of bucket 0..15, then
 * slot i + 1): for pages faulted in address order this is address order. */
struct slot_iter {
	wpp_u32 i;
	unsigned int b;
	wpp_u32 max_hw;
	wpp_u64 seen;
	wpp_u64 expect;
};

static int next_slot(struct wpp_ctx *ctx, struct slot_iter *it, struct wpp_page_mapping *e)
{
	for (; it->i < it->max_hw; it->i++, it->b = 0) {
		for (; it->b < WPP_PAGE_BUCKETS; it->b++) {
			if (it->i >= ctx->bucket_hw[it->b])
				continue;
			memcpy(e, &bucket_base(ctx, it->b)[it->i], sizeof(*e));
			if (e->virtual_address & WPP_PAGE_USED) {
				e->virtual_address &= ~WPP_PAGE_USED;
				it->b++;
				return 1;
			}
		}
	}
	return 0;
}

static void slot_iter_init(struct wpp_ctx *ctx, struct slot_iter *it, wpp_u64 npages)
{
	it->i = 0;
	it->b = 0;
	it->max_hw = 0;
	for (unsigned int b = 0; b < WPP_PAGE_BUCKETS; b++)
		if (ctx->bucket_hw[b] > it->max_hw)
			it->max_hw = ctx->bucket_hw[b];
	it->seen = 0;
	it->expect = npages;
}

/*
 * Next used slot of a persist walk. The slots are OS-writable: a walk that
 * finds more or fewer pages than count_pages() counted means they changed
 * under us, and the snapshot would not match its header. Returns 1 with *e
 * filled; at the end 0 with *rc WPP_OK, or WPP_E_STATE if the count is off.
 */
static int next_counted_slot(struct wpp_ctx *ctx, struct slot_iter *it,
			     struct wpp_page_mapping *e, int *rc)
{
	*rc = WPP_OK;
	if (next_slot(ctx, it, e)) {
		if (it->seen < it->expect) {
			it->seen++;
			return 1;
		}
		wpp_logf(ctx->plat, "persist check=slots_changed counted=%llu", U(it->expect));
		*rc = WPP_E_STATE;
	} else if (it->seen != it->expect) {
		wpp_logf(ctx->plat, "persist check=slots_changed counted=%llu found=%llu",
			 U(it->expect), U(it->seen));
		*rc = WPP_E_STATE;
	}
	return 0;
}

/* Add one page (a local, validated copy) to the current run. */
static int run_add(struct wpp_ctx *ctx, struct persist_run *run, wpp_u64 pa)
{
	int rc;

	if (check_os_range(ctx, pa, WPP_PAGE_SIZE) != WPP_OK) {
		wpp_logf(ctx->plat, "persist check=slots_changed pa=0x%llx", U(pa));
		return WPP_E_STATE;
	}
	if (run->len && pa == run->phys + run->len &&
	    run->len + WPP_PAGE_SIZE <= map_piece(ctx)) {
		run->len += WPP_PAGE_SIZE;
		return WPP_OK;
	}
	rc = flush_run(ctx, run);
	run->phys = pa;
	run->len = WPP_PAGE_SIZE;
	return rc;
}

static int map_less(const struct wpp_page_mapping *a, const struct wpp_page_mapping *b)
{
	if (a->physical_address != b->physical_address)
		return a->physical_address < b->physical_address;
	return a->virtual_address < b->virtual_address;
}

static void sift_down(struct wpp_page_mapping *v, wpp_u64 root, wpp_u64 n)
{
	for (;;) {
		wpp_u64 c = 2 * root + 1;
		struct wpp_page_mapping t;

		if (c >= n)
			return;
		if (c + 1 < n && map_less(&v[c], &v[c + 1]))
			c++;
		if (!map_less(&v[root], &v[c]))
			return;
		t = v[root];
		v[root] = v[c];
		v[c] = t;
		root = c;
	}
}

/* In-place heapsort by physical address: no recursion, no extra memory. */
static void sort_by_phys(struct wpp_page_mapping *v, wpp_u64 n)
{
	for (wpp_u64 i = n / 2; i-- > 0;)
		sift_down(v, i, n);
	for (wpp_u64 end = n; end > 1; end--) {
		struct wpp_page_mapping t = v[0];

		v[0] = v[end - 1];
		v[end - 1] = t;
		sift_down(v, 0, end - 1);
	}
}

/*
 * Page list sorted by physical address (fits the scratch buffer): the page
 * area is then written in as few, as large transfers as the frames allow.
 */
static int persist_pages_sorted(struct wpp_ctx *ctx, wpp_u64 npages, struct persist_run *run,
				struct list_writer *w)
{
	struct wpp_page_mapping *v = (struct wpp_page_mapping *)scratch(ctx);
	struct slot_iter it;
	struct wpp_page_mapping e;
	int rc;

	slot_iter_init(ctx, &it, npages);
	while (next_counted_slot(ctx, &it, &e, &rc))
		v[it.seen - 1] = e;
	if (rc != WPP_OK)
		return rc;
	sort_by_phys(v, npages);
	for (wpp_u64 i = 0; i < npages; i++) {
		wpp_u64 pa;

		memcpy(&pa, &v[i].physical_address, sizeof(pa));	/* one fetch */
		rc = run_add(ctx, run, pa);
		if (rc != WPP_OK)
			return rc;
	}
	rc = flush_run(ctx, run);
	if (rc != WPP_OK)
		return rc;
	/* The list goes out after the pages: the runs only read RAM, the scratch
	 * buffer stays untouched by the firmware until this write has completed. */
	w->crc = 0;
	return write_bounced(ctx, w->dev_off, (const wpp_u8 *)v, npages * sizeof(*v), &w->crc);
}

/* Too many pages for the scratch buffer: stream in round-robin slot order. */
static int persist_pages_streamed(struct wpp_ctx *ctx, wpp_u64 npages, struct persist_run *run,
				  struct list_writer *w)
{
	struct slot_iter it;
	struct wpp_page_mapping e;
	int rc;

	slot_iter_init(ctx, &it, npages);
	while (next_counted_slot(ctx, &it, &e, &rc)) {
		rc = run_add(ctx, run, e.physical_address);
		if (rc == WPP_OK)
			rc = list_put(ctx, w, &e, sizeof(e));
		if (rc != WPP_OK)
			return rc;
	}
	if (rc != WPP_OK)
		return rc;
	rc = flush_run(ctx, run);
	if (rc == WPP_OK)
		rc = list_flush(ctx, w);
	return rc;
}

/* Count used page slots and check every physical address again: the slots are
 * OS-writable, so what was valid at ADD time proves nothing now. */
static int count_pages(struct wpp_ctx *ctx, wpp_u64 *count)
{
	wpp_u64 n = 0;

	for (unsigned int b = 0; b < WPP_PAGE_BUCKETS; b++) {
		const struct wpp_page_mapping *base = bucket_base(ctx, b);

		for (wpp_u32 i = 0; i < ctx->bucket_hw[b]; i++) {
			wpp_u64 va = base[i].virtual_address, pa = base[i].physical_address;

			if (!(va & WPP_PAGE_USED))
				continue;
			if ((pa & (WPP_PAGE_SIZE - 1)) || WPP_PAGE_BUCKET(va) != b ||
			    check_os_range(ctx, pa, WPP_PAGE_SIZE) != WPP_OK) {
				wpp_logf(ctx->plat, "persist check=page_slot bucket=%u slot=%u "
					 "pa=0x%llx", b, i, U(pa));
				return WPP_E_BAD_ADDR;
			}
			n++;
		}
	}
	*count = n;
	return WPP_OK;
}

static int ev_persist(struct wpp_ctx *ctx, wpp_u64 *res)
{
	struct wpp_snapshot_header h;
	struct wpp_snapshot_marker *m = &ctx->marker;
	struct persist_run run;
	struct list_writer w;
	wpp_u64 t0 = now(ctx), t_meta, t_pages, dev_size = 0, npages = 0, nregions = 0;
	wpp_u64 off;
	int rc;

	rc = dev_probe(ctx, &dev_size);
	if (rc != WPP_OK)
		return rc;
	rc = count_pages(ctx, &npages);
	if (rc != WPP_OK)
		return rc;
	for (wpp_u32 i = 0; i < ctx->region_hw; i++)
		if (region_slot(ctx, i)->state & WPP_REGION_F_USED)
			nregions++;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, WPP_SNAP_MAGIC, sizeof(h.magic));
	h.format_version = WPP_SNAP_FORMAT_VERSION;
	h.header_size = sizeof(h);
	h.sequence = ++ctx->persist_seq;
	h.timestamp_us = t0;
	h.region_base = ctx->region_phys;
	off = WPP_SNAP_DATA_OFFSET;
	h.sections[WPP_SNAP_SEC_METADATA].offset = off;
	h.sections[WPP_SNAP_SEC_METADATA].length = ctx->metadata_used;
	h.sections[WPP_SNAP_SEC_METADATA].count = (wpp_u32)ctx->metadata_used;
	off = WPP_ALIGN_UP(off + ctx->metadata_used, WPP_SNAP_ALIGN);
	h.sections[WPP_SNAP_SEC_REGIONS].offset = off;
	h.sections[WPP_SNAP_SEC_REGIONS].length = nregions * sizeof(struct wpp_region);
	h.sections[WPP_SNAP_SEC_REGIONS].count = (wpp_u32)nregions;
	off = WPP_ALIGN_UP(off + nregions * sizeof(struct wpp_region), WPP_SNAP_ALIGN);
	h.sections[WPP_SNAP_SEC_PAGELIST].offset = off;
	h.sections[WPP_SNAP_SEC_PAGELIST].length = npages * sizeof(struct wpp_page_mapping);
	h.sections[WPP_SNAP_SEC_PAGELIST].count = (wpp_u32)npages;
	off = WPP_ALIGN_UP(off + npages * sizeof(struct wpp_page_mapping), WPP_SNAP_ALIGN);
	h.page_area_offset = off;
	h.page_count = npages;
	h.page_area_length = npages * WPP_PAGE_SIZE;
	if (off + h.page_area_length > dev_size) {
		wpp_logf(ctx->plat, "persist status=%d error=too_big need=%llu dev_size=%llu",
			 WPP_E_TOO_BIG, U(off + h.page_area_length), U(dev_size));
		return WPP_E_TOO_BIG;
	}

	/* 1. Invalidate the marker: from here on the device holds no snapshot. */
	memset(m, 0, sizeof(*m));
	rc = dev_write(ctx, WPP_SNAP_MARKER_OFFSET, m, WPP_PHYS_NONE, sizeof(*m));
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc != WPP_OK)
		goto out;

	/* 2. Metadata (used bytes only), CRC'd over the bytes written. */
	h.sections[WPP_SNAP_SEC_METADATA].crc32 = 0;
	rc = write_bounced(ctx, h.sections[WPP_SNAP_SEC_METADATA].offset,
			   section(ctx, WPP_METADATA_OFFSET), ctx->metadata_used,
			   &h.sections[WPP_SNAP_SEC_METADATA].crc32);
	if (rc != WPP_OK)
		goto out;

	/* 3. Regions, compacted through the scratch buffer. The slots are
	 * OS-writable: a walk that finds fewer used slots than were counted for
	 * the header would leave the header's region section short of its data. */
	memset(&w, 0, sizeof(w));
	w.dev_off = h.sections[WPP_SNAP_SEC_REGIONS].offset;
	{
		wpp_u32 n = 0;

		for (wpp_u32 i = 0; i < ctx->region_hw && n < nregions; i++) {
			struct wpp_region r;

			memcpy(&r, region_slot(ctx, i), sizeof(r));
			if (!(r.state & WPP_REGION_F_USED))
				continue;
			n++;
			rc = list_put(ctx, &w, &r, sizeof(r));
			if (rc != WPP_OK)
				goto out;
		}
		if (n != nregions) {
			wpp_logf(ctx->plat, "persist check=regions_changed counted=%llu found=%u",
				 U(nregions), n);
			rc = WPP_E_STATE;
			goto out;
		}
	}
	rc = list_flush(ctx, &w);
	if (rc != WPP_OK)
		goto out;
	h.sections[WPP_SNAP_SEC_REGIONS].crc32 = w.crc;
	t_meta = now(ctx);

	/* 4. Page list and pages, coalescing physically contiguous frames. */
	memset(&w, 0, sizeof(w));
	w.dev_off = h.sections[WPP_SNAP_SEC_PAGELIST].offset;
	memset(&run, 0, sizeof(run));
	run.dev_off = h.page_area_offset;
	if (npages * sizeof(struct wpp_page_mapping) <= WPP_INTERNAL_SCRATCH_SIZE)
		rc = persist_pages_sorted(ctx, npages, &run, &w);
	else
		rc = persist_pages_streamed(ctx, npages, &run, &w);
	if (rc != WPP_OK)
		goto out;
	h.sections[WPP_SNAP_SEC_PAGELIST].crc32 = w.crc;
	h.page_crc32 = run.crc;
	h.flags = WPP_SNAP_F_PAGE_CRC;
	h.header_crc32 = 0;
	h.header_crc32 = wpp_crc32(0, &h, sizeof(h));

	/* 5. Header, then (once everything has landed) the marker, LAST. */
	rc = dev_write(ctx, WPP_SNAP_HEADER_OFFSET, &h, WPP_PHYS_NONE, sizeof(h));
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc != WPP_OK)
		goto out;
	t_pages = now(ctx);
	memcpy(m->magic, WPP_MARKER_MAGIC, sizeof(m->magic));
	m->sequence = h.sequence;
	m->header_crc32 = h.header_crc32;
	m->state = WPP_MARKER_STATE_COMPLETE;
	m->persist_time_us = t_pages - t0;
	m->marker_crc32 = 0;
	m->marker_crc32 = wpp_crc32(0, m, sizeof(*m));
	rc = dev_write(ctx, WPP_SNAP_MARKER_OFFSET, m, WPP_PHYS_NONE, sizeof(*m));
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc != WPP_OK)
		goto out;

	res[0] = npages;
	res[1] = h.page_area_length;
	res[2] = ctx->metadata_used;
	res[3] = now(ctx) - t0;
	wpp_logf(ctx->plat, "persist status=0 seq=%llu pages=%llu page_bytes=%llu "
		 "meta_bytes=%llu regions=%llu runs=%llu readback_pages=%llu meta_us=%llu "
		 "pages_us=%llu time_us=%llu cpus=%u cpus_expected=%u",
		 U(h.sequence), U(npages), U(h.page_area_length), U(ctx->metadata_used),
		 U(nregions), U(run.runs), U(run.readback), U(t_meta - t0),
		 U(t_pages - t_meta), U(res[3]), ctx->smi_cpus, ctx->smi_cpus_expected);
	return WPP_OK;
out:
	wpp_logf(ctx->plat, "persist status=%d error=%s seq=%llu time_us=%llu", rc,
		 wpp_status_name(rc), U(h.sequence), U(now(ctx) - t0));
	return rc;
}

/* ---------------------------------------------------------------- restore */

static int read_header_and_marker(struct wpp_ctx *ctx, struct wpp_snapshot_header *h,
				  struct wpp_snapshot_marker *m, wpp_u64 *dev_size)
{
	int rc = dev_probe(ctx, dev_size);

	if (rc != WPP_OK)
		return rc;
	if (*dev_size < WPP_SNAP_DATA_OFFSET)
		return WPP_E_NO_DEVICE;
	rc = dev_read(ctx, WPP_SNAP_HEADER_OFFSET, h, WPP_PHYS_NONE, sizeof(*h));
	if (rc == WPP_OK)
		rc = dev_read(ctx, WPP_SNAP_MARKER_OFFSET, m, WPP_PHYS_NONE, sizeof(*m));
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	return rc;
}

static wpp_u32 struct_crc(const void *p, size_t size, size_t crc_off)
{
	wpp_u8 tmp[sizeof(struct wpp_snapshot_header)];

	memcpy(tmp, p, size);
	memset(tmp + crc_off, 0, sizeof(wpp_u32));
	return wpp_crc32(0, tmp, size);
}

/* The same checks, in the same order, as hil/snapshot.py's verdict. */
static int check_snapshot(const struct wpp_snapshot_header *h,
			  const struct wpp_snapshot_marker *m, wpp_u64 dev_size,
			  const char **why)
{
	int has_hdr = !memcmp(h->magic, WPP_SNAP_MAGIC, 8);
	int has_marker = !memcmp(m->magic, WPP_MARKER_MAGIC, 8);
	wpp_u32 hcrc;
	wpp_u64 end;

	if (!has_hdr && !has_marker) {
		*why = "no_header";
		return WPP_E_NO_SNAPSHOT;
	}
	if (has_hdr && (h->format_version != WPP_SNAP_FORMAT_VERSION ||
			h->header_size != sizeof(*h))) {
		*why = "format_version";
		return WPP_E_VERSION;
	}
	if (!has_hdr || !has_marker) {
		*why = has_hdr ? "marker_missing" : "header_missing";
		return WPP_E_INCOMPLETE;
	}
	if (struct_crc(m, sizeof(*m), offsetof(struct wpp_snapshot_marker, marker_crc32)) !=
	    m->marker_crc32) {
		*why = "marker_crc";
		return WPP_E_INCOMPLETE;
	}
	hcrc = struct_crc(h, sizeof(*h), offsetof(struct wpp_snapshot_header, header_crc32));
	if (hcrc != h->header_crc32) {
		*why = "header_crc";
		return WPP_E_CORRUPT;
	}
	if (m->sequence != h->sequence || m->header_crc32 != hcrc) {
		*why = "marker_mismatch";
		return WPP_E_INCOMPLETE;
	}
	/* Layout sanity (a CRC-valid header written by a buggy/foreign writer). */
	if (h->sections[WPP_SNAP_SEC_METADATA].length > WPP_METADATA_SIZE ||
	    h->sections[WPP_SNAP_SEC_REGIONS].count > REGION_SLOTS ||
	    h->sections[WPP_SNAP_SEC_REGIONS].length !=
		(wpp_u64)h->sections[WPP_SNAP_SEC_REGIONS].count * sizeof(struct wpp_region) ||
	    h->page_count != h->sections[WPP_SNAP_SEC_PAGELIST].count ||
	    h->sections[WPP_SNAP_SEC_PAGELIST].length != h->page_count *
		sizeof(struct wpp_page_mapping) ||
	    h->sections[WPP_SNAP_SEC_PAGELIST].length > WPP_PAGES_SIZE ||
	    h->page_area_length != h->page_count * WPP_PAGE_SIZE) {
		*why = "layout";
		return WPP_E_CORRUPT;
	}
	for (int s = 0; s < WPP_SNAP_SEC_COUNT; s++) {
		end = h->sections[s].offset + h->sections[s].length;
		if (h->sections[s].offset < WPP_SNAP_DATA_OFFSET || end < h->sections[s].offset ||
		    end > dev_size) {
			*why = "layout";
			return WPP_E_CORRUPT;
		}
	}
	end = h->page_area_offset + h->page_area_length;
	if (h->page_area_offset < WPP_SNAP_DATA_OFFSET || end < h->page_area_offset ||
	    end > dev_size) {
		*why = "layout";
		return WPP_E_CORRUPT;
	}
	return WPP_OK;
}

static const char *const snap_sec_names[WPP_SNAP_SEC_COUNT] = {
	"metadata", "regions", "pagelist"
};

static int ev_restore(struct wpp_ctx *ctx, const wpp_u8 *pl, wpp_u32 len, wpp_u64 *res)
{
	static const wpp_u32 dest_off[WPP_SNAP_SEC_COUNT] = {
		WPP_METADATA_OFFSET, WPP_REGIONS_OFFSET, WPP_PAGES_OFFSET
	};
	struct wpp_snapshot_header h;
	struct wpp_snapshot_marker m;
	const char *why = "device";	/* until a snapshot check names itself */
	wpp_u32 flags = 0;
	wpp_u64 t0 = now(ctx), t_sections, dev_size = 0;
	int rc;

	if (len >= sizeof(flags))
		memcpy(&flags, pl, sizeof(flags));
	if (flags & ~WPP_RESTORE_F_FORCE)
		return WPP_E_BAD_ARG;

	rc = read_header_and_marker(ctx, &h, &m, &dev_size);
	if (rc != WPP_OK)
		goto fail;
	rc = check_snapshot(&h, &m, dev_size, &why);
	if (rc != WPP_OK)
		goto fail;
	if (m.state == WPP_MARKER_STATE_CONSUMED && !(flags & WPP_RESTORE_F_FORCE)) {
		why = "consumed";
		rc = WPP_E_CONSUMED;
		goto fail;
	}

	/* Tracking state is replaced by the snapshot. */
	clear_tracking(ctx);
	ctx->state = WPP_STATE_IDLE;
	for (int s = 0; s < WPP_SNAP_SEC_COUNT; s++) {
		wpp_u8 *dst = section(ctx, dest_off[s]);

		rc = dev_read(ctx, h.sections[s].offset, dst, ctx->region_phys + dest_off[s],
			      h.sections[s].length);
		if (rc == WPP_OK)
			rc = dev_wait(ctx);
		if (rc != WPP_OK)
			goto fail;
		if (wpp_crc32(0, dst, h.sections[s].length) != h.sections[s].crc32) {
			memset(dst, 0, h.sections[s].length);
			wpp_logf(ctx->plat, "restore check=section_crc section=%s",
				 snap_sec_names[s]);
			why = "section_crc";
			rc = WPP_E_CORRUPT;
			goto fail;
		}
	}
	ctx->metadata_used = h.sections[WPP_SNAP_SEC_METADATA].length;
	ctx->restored_list_bytes = h.sections[WPP_SNAP_SEC_PAGELIST].length;
	t_sections = now(ctx);

	if (h.page_count && !(h.flags & WPP_SNAP_F_PAGE_CRC)) {
		/* Pages nobody verified are never handed back. */
		why = "page_crc_missing";
		rc = WPP_E_CORRUPT;
		goto fail;
	}
	if (h.flags & WPP_SNAP_F_PAGE_CRC) {
		wpp_u32 crc = 0;

		rc = dev_crc(ctx, h.page_area_offset, h.page_area_length, &crc, scratch(ctx),
			     scratch_phys(ctx), WPP_INTERNAL_SCRATCH_SIZE);
		if (rc != WPP_OK)
			goto fail;
		if (crc != h.page_crc32) {
			why = "page_crc";
			rc = WPP_E_CORRUPT;
			goto fail;
		}
	}

	ctx->snap = h;
	ctx->state = WPP_STATE_RESTORED;
	/* A recreated process persists as the next snapshot, not as number 1 again. */
	if (ctx->persist_seq < h.sequence)
		ctx->persist_seq = h.sequence;
	res[0] = h.sections[WPP_SNAP_SEC_REGIONS].count;
	res[1] = h.page_count;
	res[2] = h.sections[WPP_SNAP_SEC_METADATA].length;
	res[3] = h.sequence;
	wpp_logf(ctx->plat, "restore status=0 seq=%llu pages=%llu page_bytes=%llu "
		 "meta_bytes=%llu regions=%u sections_us=%llu verify_us=%llu time_us=%llu",
		 U(h.sequence), U(h.page_count), U(h.page_area_length),
		 U(h.sections[WPP_SNAP_SEC_METADATA].length),
		 h.sections[WPP_SNAP_SEC_REGIONS].count, U(t_sections - t0),
		 U(now(ctx) - t_sections), U(now(ctx) - t0));
	return WPP_OK;
fail:
	if (ctx->state == WPP_STATE_RESTORED)
		ctx->state = WPP_STATE_IDLE;
	wpp_logf(ctx->plat, "restore status=%d error=%s check=%s time_us=%llu", rc,
		 wpp_status_name(rc), why, U(now(ctx) - t0));
	return rc;
}

/* ---------------------------------------------------------------- get pages */

/*
 * GET_PAGES into OS frames (dest_phys form): piece by piece, each mapped on
 * its own, since a platform's map window may be smaller than the request and
 * a pointer is only valid until the next map() call.
 */
static int get_pages_to_frames(struct wpp_ctx *ctx, wpp_u64 dev_off, wpp_u64 dest,
			       wpp_u64 bytes)
{
	wpp_u64 piece = map_piece(ctx);
	int rc = WPP_OK;

	for (wpp_u64 done = 0; rc == WPP_OK && done < bytes; done += piece) {
		wpp_u64 n = WPP_MIN(piece, bytes - done);
		void *dst = ctx->plat->map ? ctx->plat->map(ctx->plat->ctx, dest + done, n) :
			NULL;

		rc = dev_read(ctx, dev_off + done, dst, dest + done, n);
		if (rc == WPP_OK)
			rc = dev_wait(ctx);
	}
	return rc;
}

/*
 * GET_PAGES into a list of OS frames (WPP_GET_PAGES_FRAMES): each address is
 * read out of the OS-writable mailbox once and checked before it is used, and
 * neighbouring frames are moved as one run. A refused frame stops the call
 * (the frames before it hold their pages, which the OS asked for).
 */
static int get_pages_to_list(struct wpp_ctx *ctx, const wpp_u8 *list, wpp_u32 count,
			     wpp_u64 dev_off)
{
	wpp_u64 run_pa = 0, run_len = 0;
	int rc = WPP_OK;

	for (wpp_u32 k = 0; k < count; k++) {
		wpp_u64 pa;

		memcpy(&pa, list + (wpp_u64)k * sizeof(pa), sizeof(pa));
		if (pa & (WPP_PAGE_SIZE - 1))
			ctx->reason = "unaligned";
		if ((pa & (WPP_PAGE_SIZE - 1)) || check_os_range(ctx, pa, WPP_PAGE_SIZE)) {
			wpp_logf(ctx->plat, "get_pages status=%d error=bad_addr reason=%s "
				 "frame=%u dest=0x%llx", WPP_E_BAD_ADDR, ctx->reason, k, U(pa));
			rc = WPP_E_BAD_ADDR;
			break;
		}
		if (run_len && pa == run_pa + run_len && run_len + WPP_PAGE_SIZE <= map_piece(ctx)) {
			run_len += WPP_PAGE_SIZE;
			continue;
		}
		if (run_len)
			rc = get_pages_to_frames(ctx, dev_off, run_pa, run_len);
		if (rc != WPP_OK)
			return rc;
		dev_off += run_len;
		run_pa = pa;
		run_len = WPP_PAGE_SIZE;
	}
	if (run_len) {
		int rc2 = get_pages_to_frames(ctx, dev_off, run_pa, run_len);

		if (rc == WPP_OK)
			rc = rc2;
	}
	return rc;
}

static int ev_get_pages(struct wpp_ctx *ctx, wpp_u8 *pl, wpp_u32 len, wpp_u64 *res,
			wpp_u32 *reply_len)
{
	struct wpp_get_pages g;
	wpp_u64 bytes, dev_off, dev_size = 0;
	int rc;

	if (len < sizeof(g))
		return WPP_E_BAD_ARG;
	memcpy(&g, pl, sizeof(g));
	if (ctx->state != WPP_STATE_RESTORED)
		return WPP_E_STATE;
	if (!g.count || (wpp_u64)g.index + g.count > ctx->snap.page_count)
		return WPP_E_BOUNDS;
	bytes = (wpp_u64)g.count * WPP_PAGE_SIZE;
	if (g.dest_phys == 0) {
		if (bytes > WPP_MAILBOX_PAYLOAD_MAX - sizeof(g))
			return WPP_E_BOUNDS;
	} else if (g.dest_phys == WPP_GET_PAGES_FRAMES) {
		if (len < sizeof(g) || (wpp_u64)g.count * sizeof(wpp_u64) > len - sizeof(g))
			return WPP_E_BAD_ARG;
	} else {
		rc = check_os_range(ctx, g.dest_phys, bytes);
		if (rc != WPP_OK) {
			wpp_logf(ctx->plat, "get_pages status=%d error=bad_addr reason=%s "
				 "dest=0x%llx bytes=%llu", rc, ctx->reason, U(g.dest_phys),
				 U(bytes));
			return rc;
		}
	}
	rc = dev_probe(ctx, &dev_size);
	if (rc != WPP_OK)
		return rc;
	if (ctx->snap.page_area_offset + ctx->snap.page_area_length > dev_size)
		return WPP_E_NO_DEVICE;
	dev_off = ctx->snap.page_area_offset + (wpp_u64)g.index * WPP_PAGE_SIZE;
	if (g.dest_phys == 0) {
		rc = dev_read(ctx, dev_off, pl + sizeof(g), ctx->region_phys + WPP_MAILBOX_OFFSET +
			      WPP_MAILBOX_HDR_SIZE + sizeof(g), bytes);
		if (rc == WPP_OK)
			rc = dev_wait(ctx);
	} else if (g.dest_phys == WPP_GET_PAGES_FRAMES) {
		rc = get_pages_to_list(ctx, pl + sizeof(g), g.count, dev_off);
	} else {
		rc = get_pages_to_frames(ctx, dev_off, g.dest_phys, bytes);
	}
	if (rc != WPP_OK)
		return rc;
	res[0] = g.count;
	if (g.dest_phys == 0)
		*reply_len = sizeof(g) + (wpp_u32)bytes;
	if (ctx->debug_flags & WPP_DEBUG_F_VERBOSE)
		wpp_logf(ctx->plat, "get_pages status=0 index=%u count=%u", g.index, g.count);
	return WPP_OK;
}

/* ---------------------------------------------------------------- consume */

static int ev_consume(struct wpp_ctx *ctx)
{
	struct wpp_snapshot_marker *m = &ctx->marker;
	wpp_u64 dev_size = 0;
	int rc;

	if (ctx->state != WPP_STATE_RESTORED)
		return WPP_E_STATE;
	rc = dev_probe(ctx, &dev_size);
	if (rc == WPP_OK)
		rc = dev_read(ctx, WPP_SNAP_MARKER_OFFSET, m, WPP_PHYS_NONE, sizeof(*m));
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc != WPP_OK)
		return rc;
	if (memcmp(m->magic, WPP_MARKER_MAGIC, 8) || m->sequence != ctx->snap.sequence ||
	    struct_crc(m, sizeof(*m), offsetof(struct wpp_snapshot_marker, marker_crc32)) !=
		m->marker_crc32)
		return WPP_E_INCOMPLETE;
	m->state = WPP_MARKER_STATE_CONSUMED;
	m->marker_crc32 = 0;
	m->marker_crc32 = wpp_crc32(0, m, sizeof(*m));
	rc = dev_write(ctx, WPP_SNAP_MARKER_OFFSET, m, WPP_PHYS_NONE, sizeof(*m));
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc == WPP_OK)
		wpp_logf(ctx->plat, "consume status=0 seq=%llu", U(ctx->snap.sequence));
	return rc;
}

/* ---------------------------------------------------------------- debug */

static void dump_state(struct wpp_ctx *ctx)
{
	const struct wpp_counters *c = &ctx->counters;

	wpp_logf(ctx->plat, "dump state=%u generation=%llu regions=%u region_hw=%u "
		 "pages=%llu metadata_bytes=%llu errors=%llu flags=0x%x",
		 ctx->state, U(c->generation), ctx->regions_used, ctx->region_hw,
		 U(ctx->pages_used), U(ctx->metadata_used), U(c->errors), ctx->debug_flags);
	for (unsigned int b = 0; b < WPP_PAGE_BUCKETS; b++)
		if (ctx->bucket_hw[b])
			wpp_logf(ctx->plat, "dump bucket=%u hw=%u", b, ctx->bucket_hw[b]);
	for (unsigned int e = 0; e < WPP_EV_COUNT; e++)
		if (c->events[e])
			wpp_logf(ctx->plat, "dump event=%s calls=%llu",
				 wpp_event_name(WPP_EV_FIRST + e), U(c->events[e]));
}

static int selftest(struct wpp_ctx *ctx, wpp_u64 *res)
{
	wpp_u8 *save = scratch(ctx), *pat = save + WPP_PAGE_SIZE, *back = pat + WPP_PAGE_SIZE;
	wpp_u64 ph = scratch_phys(ctx), size = 0, off, t0 = now(ctx);
	int rc, rc2;

	rc = dev_probe(ctx, &size);
	if (rc != WPP_OK)
		goto out;
	if (size < WPP_SNAP_DATA_OFFSET + WPP_PAGE_SIZE) {
		rc = WPP_E_NO_DEVICE;
		goto out;
	}
	res[1] = size;
	off = (size & ~(wpp_u64)(WPP_PAGE_SIZE - 1)) - WPP_PAGE_SIZE;
	for (unsigned int i = 0; i < WPP_PAGE_SIZE; i++)
		pat[i] = (wpp_u8)(i * 7 + 0x5a + (t0 & 0xff));
	rc = dev_read(ctx, off, save, ph, WPP_PAGE_SIZE);
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc != WPP_OK)
		goto out;
	rc = dev_write(ctx, off, pat, ph + WPP_PAGE_SIZE, WPP_PAGE_SIZE);
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc == WPP_OK)
		rc = dev_read(ctx, off, back, ph + 2 * WPP_PAGE_SIZE, WPP_PAGE_SIZE);
	if (rc == WPP_OK)
		rc = dev_wait(ctx);
	if (rc == WPP_OK && memcmp(pat, back, WPP_PAGE_SIZE))
		rc = WPP_E_DEVICE_IO;
	rc2 = dev_write(ctx, off, save, ph, WPP_PAGE_SIZE);
	if (rc2 == WPP_OK)
		rc2 = dev_wait(ctx);
	if (rc == WPP_OK)
		rc = rc2;
out:
	/* Which CPUs were held in SMM for this SMI: tests prove the rendezvous. */
	res[2] = ctx->smi_cpus;
	res[3] = ctx->smi_cpus_expected;
	wpp_logf(ctx->plat, "selftest status=%d dev=%s size=%llu time_us=%llu cpus=%u "
		 "cpus_expected=%u rendezvous_us=%llu", rc,
		 ctx->plat->pdev && ctx->plat->pdev->name ? ctx->plat->pdev->name : "none",
		 U(size), U(now(ctx) - t0), ctx->smi_cpus, ctx->smi_cpus_expected,
		 U(ctx->smi_rendezvous_us));
	return rc;
}

/*
 * One CRC-32 per 4 KiB page of SMRAM into the reply, so a test can show that
 * refused commands left SMRAM alone (pages that change on every SMI, such as
 * save states and stacks, are told apart by comparing two idle digests).
 * Platforms enable it only for test builds.
 */
static int smram_digest(struct wpp_ctx *ctx, wpp_u8 *pl, wpp_u64 *res, wpp_u32 *reply_len)
{
	const struct wpp_range *sm = &ctx->layout.smram;
	const wpp_u8 *p = ctx->plat->map_smram ? ctx->plat->map_smram(ctx->plat->ctx) : NULL;
	wpp_u64 pages = sm->size / WPP_PAGE_SIZE;
	wpp_u32 all = 0;

	if (!p || !pages)
		return WPP_E_BAD_ARG;
	if (pages * sizeof(wpp_u32) > WPP_MAILBOX_PAYLOAD_MAX - sizeof(struct wpp_debug_cmd))
		return WPP_E_TOO_BIG;
	for (wpp_u64 i = 0; i < pages; i++) {
		wpp_u32 crc = wpp_crc32(0, p + i * WPP_PAGE_SIZE, WPP_PAGE_SIZE);

		memcpy(pl + sizeof(struct wpp_debug_cmd) + i * sizeof(crc), &crc, sizeof(crc));
		all = wpp_crc32(all, &crc, sizeof(crc));
	}
	res[1] = sm->base;
	res[2] = sm->size;
	res[3] = pages;
	*reply_len = (wpp_u32)(sizeof(struct wpp_debug_cmd) + pages * sizeof(wpp_u32));
	wpp_logf(ctx->plat, "debug status=0 op=smram_digest smram=0x%llx:0x%llx pages=%llu "
		 "crc=0x%08x", U(sm->base), U(sm->size), U(pages), all);
	return WPP_OK;
}

static int ev_debug(struct wpp_ctx *ctx, wpp_u8 *pl, wpp_u32 len, wpp_u64 *res,
		    wpp_u32 *reply_len)
{
	struct wpp_debug_cmd c;
	int rc = WPP_OK;

	if (len < sizeof(c))
		return WPP_E_BAD_ARG;
	memcpy(&c, pl, sizeof(c));
	switch (c.op) {
	case WPP_DEBUG_OP_TOGGLE:
		if (c.flags & ~(WPP_DEBUG_F_VERBOSE | WPP_DEBUG_F_TRACE_PAGES))
			return WPP_E_BAD_ARG;
		ctx->debug_flags ^= c.flags;
		wpp_logf(ctx->plat, "debug status=0 op=toggle flags=0x%x", ctx->debug_flags);
		break;
	case WPP_DEBUG_OP_DUMP:
		dump_state(ctx);
		break;
	case WPP_DEBUG_OP_SELFTEST:
		rc = selftest(ctx, res);
		break;
	case WPP_DEBUG_OP_SMRAM_DIGEST:
		rc = smram_digest(ctx, pl, res, reply_len);
		break;
	default:
		return WPP_E_BAD_ARG;
	}
	res[0] = ctx->debug_flags;
	return rc;
}

/* ---------------------------------------------------------------- dispatch */

static int state_ok(struct wpp_ctx *ctx, wpp_u8 ev)
{
	switch (ev) {
	case WPP_EV_ADD_REGION:
	case WPP_EV_REMOVE_REGION:
	case WPP_EV_ADD_PAGE:
	case WPP_EV_REMOVE_PAGE:
	case WPP_EV_PAGE_BATCH:
	case WPP_EV_WRITE_DATA:
	case WPP_EV_PERSIST:
		return ctx->state == WPP_STATE_TRACKING;
	case WPP_EV_GET_PAGES:
	case WPP_EV_CONSUME:
		return ctx->state == WPP_STATE_RESTORED;
	default:
		return 1;
	}
}

static void publish_counters(struct wpp_ctx *ctx)
{
	struct wpp_counters *c = &ctx->counters;

	c->regions_used = ctx->regions_used;
	c->pages_used = ctx->pages_used;
	c->metadata_used = ctx->metadata_used;
	c->debug_flags = ctx->debug_flags;
	memcpy(section(ctx, WPP_INTERNAL_OFFSET + WPP_INTERNAL_COUNTERS_OFFSET), c, sizeof(*c));
}

int wpp_rendezvous(struct wpp_ctx *ctx, wpp_u32 expected, wpp_u64 timeout_us)
{
	const struct wpp_platform *p = ctx->plat;
	wpp_u64 t0 = now(ctx), waited = 0;
	wpp_u32 n = 1;

	if (!expected)
		expected = 1;
	if (p->smm_cpus) {
		for (;;) {
			n = p->smm_cpus(p->ctx);
			waited = now(ctx) - t0;
			if (n >= expected || waited >= timeout_us)
				break;
			if (p->relax)
				p->relax(p->ctx);
		}
	}
	ctx->smi_cpus = n;
	ctx->smi_cpus_expected = expected;
	ctx->smi_rendezvous_us = waited;
	ctx->rendezvous_all_held = p->smm_cpus && n >= expected;
	if (n < expected) {
		wpp_logf(p, "rendezvous status=%d error=cpus_missing cpus=%u cpus_expected=%u "
			 "time_us=%llu", WPP_E_TIMEOUT, n, expected, U(waited));
		return WPP_E_TIMEOUT;
	}
	return WPP_OK;
}

int wpp_already_answered(struct wpp_ctx *ctx, wpp_u8 event)
{
	struct wpp_mailbox_hdr hdr;

	if (!ctx->guard_ok)
		return 0;
	memcpy(&hdr, mbox(ctx), sizeof(hdr));
	if (hdr.magic != WPP_MAILBOX_MAGIC || hdr.seq_ack != hdr.seq)
		return 0;
	wpp_logf(ctx->plat, "smi status=0 duplicate=1 event=0x%x seq=%u", event, hdr.seq);
	return 1;
}

static int handle_event(struct wpp_ctx *ctx, wpp_u8 ev)
{
	struct wpp_mailbox_hdr hdr;
	wpp_u64 res[4] = { 0, 0, 0, 0 };
	wpp_u32 reply_len = 0, len;
	wpp_u8 *pl = mbox_payload(ctx);
	int rc;

	if (ev < WPP_EV_FIRST || ev > WPP_EV_LAST)
		return 0;
	if (!ctx->guard_ok) {
		/* No checked layout (handoff missing or region misplaced): the
		 * mailbox itself may be SMRAM or MMIO, so it is not even answered. */
		wpp_logf(ctx->plat, "%s status=%d error=no_layout", wpp_event_name(ev),
			 WPP_E_STATE);
		return 1;
	}
	ctx->reason = NULL;
	memcpy(&hdr, mbox(ctx), sizeof(hdr));
	len = hdr.payload_len;
	ctx->counters.events[ev - WPP_EV_FIRST]++;

	if (hdr.magic != WPP_MAILBOX_MAGIC || hdr.abi_version != WPP_ABI_VERSION ||
	    hdr.event != ev)
		rc = WPP_E_BAD_MAILBOX;
	else if (len > WPP_MAILBOX_PAYLOAD_MAX)
		rc = WPP_E_BAD_ARG;
	else if (!state_ok(ctx, ev))
		rc = WPP_E_STATE;
	else {
		switch (ev) {
		case WPP_EV_INIT:
			rc = ev_init(ctx, res);
			break;
		case WPP_EV_ADD_REGION:
			rc = ev_add_region(ctx, pl, len);
			break;
		case WPP_EV_REMOVE_REGION:
			rc = ev_remove_region(ctx, pl, len);
			break;
		case WPP_EV_ADD_PAGE:
			rc = ev_page(ctx, pl, len, 1);
			break;
		case WPP_EV_REMOVE_PAGE:
			rc = ev_page(ctx, pl, len, 0);
			break;
		case WPP_EV_PAGE_BATCH:
			rc = ev_page_batch(ctx, pl, len, res);
			break;
		case WPP_EV_WRITE_DATA:
			rc = ev_write_data(ctx, pl, len);
			break;
		case WPP_EV_READ_DATA:
			rc = ev_read_data(ctx, pl, len, &reply_len);
			break;
		case WPP_EV_PERSIST:
			rc = ev_persist(ctx, res);
			break;
		case WPP_EV_RESTORE:
			rc = ev_restore(ctx, pl, len, res);
			break;
		case WPP_EV_GET_PAGES:
			rc = ev_get_pages(ctx, pl, len, res, &reply_len);
			break;
		case WPP_EV_DEBUG:
			rc = ev_debug(ctx, pl, len, res, &reply_len);
			break;
		case WPP_EV_CONSUME:
			rc = ev_consume(ctx);
			break;
		default:
			rc = WPP_E_BAD_EVENT;
			break;
		}
	}
	if (rc != WPP_OK) {
		ctx->counters.errors++;
		/* persist/restore/selftest log their own failures */
		if (ev != WPP_EV_PERSIST && ev != WPP_EV_RESTORE && ev != WPP_EV_DEBUG)
			wpp_logf(ctx->plat, "%s status=%d error=%s seq=%u%s%s", wpp_event_name(ev),
				 rc, wpp_status_name(rc), hdr.seq, ctx->reason ? " reason=" : "",
				 ctx->reason ? ctx->reason : "");
	} else if ((ctx->debug_flags & WPP_DEBUG_F_VERBOSE) && ev != WPP_EV_INIT &&
		   ev != WPP_EV_PERSIST && ev != WPP_EV_RESTORE && ev != WPP_EV_CONSUME) {
		wpp_logf(ctx->plat, "%s status=0 seq=%u", wpp_event_name(ev), hdr.seq);
	}
	publish_counters(ctx);

	/* Reply: results first, seq_ack last. */
	{
		struct wpp_mailbox_hdr *out = mbox(ctx);

		for (int i = 0; i < 4; i++)
			out->result[i] = res[i];
		out->payload_len = reply_len;
		out->status = rc;
		out->seq_ack = hdr.seq;
	}
	return 1;
}

/*
 * One event. A complete rendezvous (every CPU parked in SMM for this SMI)
 * holds for this event only: it lets the device guard check the BAR once
 * per event instead of before every transfer (see wpp_guard_device()).
 */
int wpp_handle_event(struct wpp_ctx *ctx, wpp_u8 ev)
{
	int handled;

	ctx->event_all_held = ctx->rendezvous_all_held;
	ctx->rendezvous_all_held = 0;
	ctx->dev_guarded = 0;
	handled = handle_event(ctx, ev);
	ctx->event_all_held = 0;
	ctx->dev_guarded = 0;
	return handled;
}
