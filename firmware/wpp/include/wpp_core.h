/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wpp_core.h - the portable WPP event handler.
 *
 * One struct wpp_ctx per machine. Its private state (allocation heads,
 * high-water marks, the validated snapshot header) lives in the context, which
 * the firmware keeps in SMRAM: the OS can scribble over the WPP region but not
 * over the state that decides where the firmware writes.
 */
#ifndef WPP_CORE_H
#define WPP_CORE_H

#include <stdarg.h>

#include "wpp_abi.h"
#include "wpp_platform.h"

enum wpp_state {
	WPP_STATE_IDLE		= 0,	/* nothing tracked since boot */
	WPP_STATE_TRACKING	= 1,	/* after INIT */
	WPP_STATE_RESTORED	= 2,	/* after a successful RESTORE */
};

#define WPP_NO_SLOT			0xffffffffU

struct wpp_ctx {
	const struct wpp_platform *plat;
	wpp_u8 *region;			/* CPU pointer to the reserved region */
	wpp_u64 region_phys;
	wpp_u64 region_size;

	wpp_u32 state;
	wpp_u32 debug_flags;
	/* Regions: slots [0, region_hw) have been handed out; free list via
	 * wpp_region.file_offset of free slots (index + 1, 0 = end). */
	wpp_u32 region_hw;
	wpp_u32 region_free;
	wpp_u32 regions_used;
	/* Pages: per bucket high-water and free list (link in physical_address). */
	wpp_u32 bucket_hw[WPP_PAGE_BUCKETS];
	wpp_u32 bucket_free[WPP_PAGE_BUCKETS];
	wpp_u64 pages_used;
	wpp_u64 metadata_used;
	wpp_u64 restored_list_bytes;	/* linear page list written by RESTORE */
	wpp_u64 persist_seq;
	struct wpp_counters counters;
	struct wpp_snapshot_header snap;	/* valid in WPP_STATE_RESTORED */
	struct wpp_snapshot_marker marker;	/* scratch for marker I/O */
};

/* Set up a context; region must map region_size bytes at region_phys. */
void wpp_ctx_init(struct wpp_ctx *ctx, const struct wpp_platform *plat, void *region,
		  wpp_u64 region_phys, wpp_u64 region_size);

/*
 * Handle the APMC byte `event`. Returns 1 when it was a WPP event (mailbox
 * answered), 0 when the byte is not ours.
 */
int wpp_handle_event(struct wpp_ctx *ctx, wpp_u8 event);

/* Log helpers (also used by platforms and drivers): "wpp: " is prepended. */
void wpp_logf(const struct wpp_platform *plat, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int wpp_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int wpp_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* CRC-32 (IEEE 802.3, same as zlib.crc32); start with crc = 0. */
wpp_u32 wpp_crc32(wpp_u32 crc, const void *buf, size_t len);

const char *wpp_status_name(int status);
const char *wpp_event_name(unsigned int event);

#endif /* WPP_CORE_H */
