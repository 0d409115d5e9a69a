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
	/* slot of the bucket's last removal: munmap removes pages in address order,
	 * which sit in neighbouring slots, so removal searches outward from it */
	wpp_u32 bucket_hint[WPP_PAGE_BUCKETS];
	wpp_u64 pages_used;
	wpp_u64 metadata_used;
	wpp_u64 restored_list_bytes;	/* linear page list written by RESTORE */
	wpp_u64 persist_seq;
	struct wpp_counters counters;
	struct wpp_snapshot_header snap;	/* valid in WPP_STATE_RESTORED */
	struct wpp_snapshot_marker marker;	/* scratch for marker I/O */

	/*
	 * Boot-time facts (wpp_guard_record() at the handoff). Until they are
	 * recorded and the region's placement has passed, no event touches the
	 * region: the mailbox could lie in SMRAM.
	 */
	struct wpp_layout layout;
	wpp_u64 ram_top;		/* end of DRAM below addr_limit */
	int guard_ok;
	int dev_recorded;		/* device windows recorded and placed safely */
	struct wpp_range dev_win[WPP_PDEV_MAX_WINDOWS];
	unsigned int dev_nwin;
	const char *reason;		/* why the last address check refused */
	/* The last SMI's rendezvous (wpp_rendezvous()): CPUs seen in SMM, CPUs
	 * the SMI should reach, and how long the first one waited. */
	wpp_u32 smi_cpus;
	wpp_u32 smi_cpus_expected;
	wpp_u64 smi_rendezvous_us;
	/* The rendezvous found every CPU (set for the next event only), and so
	 * the event being handled runs with the OS stopped: the BAR checked once
	 * in it (dev_guarded) stays where it is until the event ends. */
	int rendezvous_all_held;
	int event_all_held;
	int dev_guarded;
	/* SMRAM-resident copy buffer: what is CRC'd is what is written */
	wpp_u8 bounce[WPP_PAGE_SIZE];
};

/* Set up a context; region must map region_size bytes at region_phys. */
void wpp_ctx_init(struct wpp_ctx *ctx, const struct wpp_platform *plat, void *region,
		  wpp_u64 region_phys, wpp_u64 region_size);

/*
 * Placement checks (pure, no platform calls). Each returns WPP_OK or
 * WPP_E_BAD_ADDR with *why naming the first conflict:
 *  - wpp_check_window: a device MMIO window must not overlap SMRAM ("smram"),
 *    the WPP region ("region") or RAM ("ram": below the end of DRAM, or an OS
 *    RAM range above it), and must be addressable by SMM ("above_limit").
 *  - wpp_check_region: the WPP region must lie in DRAM below SMM's limit, end
 *    no later than the end of DRAM ("beyond_ram"), and overlap neither SMRAM,
 *    OS RAM (it must be reserved) nor any device window ("mmio").
 */
wpp_u64 wpp_layout_ram_top(const struct wpp_layout *l);
int wpp_check_window(const struct wpp_layout *l, wpp_u64 region_base, wpp_u64 region_size,
		     wpp_u64 base, wpp_u64 size, const char **why);
int wpp_check_region(const struct wpp_layout *l, const struct wpp_range *win,
		     unsigned int nwin, wpp_u64 base, wpp_u64 size, const char **why);

/*
 * At the boot-time handoff (before the OS runs): keep the layout in the
 * context, locate and size the device's windows, check them and the region,
 * and record the windows. Returns WPP_OK when the region may be used; the
 * device may still be refused (dev_recorded = 0). Logs "wpp: guard ...".
 */
int wpp_guard_record(struct wpp_ctx *ctx, const struct wpp_layout *l);

/*
 * Before every device access: the device's windows, read again, must equal
 * the recorded ones (WPP_E_DEVICE_MOVED otherwise, WPP_E_NO_DEVICE when none
 * were recorded). Logs refusals when log is set.
 */
int wpp_guard_device(struct wpp_ctx *ctx, int log);

/*
 * Handle the APMC byte `event`. Returns 1 when it was a WPP event (mailbox
 * answered), 0 when the byte is not ours.
 */
int wpp_handle_event(struct wpp_ctx *ctx, wpp_u8 event);
/*
 * Wait (at most timeout_us) until `expected` CPUs are in SMM for this SMI, so
 * that no other CPU runs OS code while the handler acts on the OS' memory, as
 * on the board, whose chipset sends every SMI to every core. Records what it
 * saw in ctx (DEBUG SELFTEST replies r2 = CPUs seen, r3 = expected; PERSIST
 * logs them). Returns WPP_OK, or WPP_E_TIMEOUT (logged) when CPUs are missing:
 * the caller still handles the event, since refusing a PERSIST on a power
 * loss would lose the process.
 */
int wpp_rendezvous(struct wpp_ctx *ctx, wpp_u32 expected, wpp_u64 timeout_us);
/*
 * Is the request in the mailbox already answered (seq_ack == seq)? The OS sets
 * seq_ack != seq before every SMI, so this is an SMI taken late by a CPU for a
 * request another CPU handled: it must not run a second time (logged).
 */
int wpp_already_answered(struct wpp_ctx *ctx, wpp_u8 event);

/* Log helpers (also used by platforms and drivers): "wpp: " is prepended. */
void wpp_logf(const struct wpp_platform *plat, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int wpp_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int wpp_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* CRC-32 (IEEE 802.3, same as zlib.crc32); start with crc = 0. */
wpp_u32 wpp_crc32(wpp_u32 crc, const void *buf, size_t len);
/* The page-data copy (fastest under the twin's TCG, see util.c). */
void wpp_copy(void *dst, const void *src, size_t len);
/* Copy src to dst and return wpp_crc32(crc, src, len) of the bytes written,
 * reading each source byte once. */
wpp_u32 wpp_copy_crc32(wpp_u32 crc, void *dst, const void *src, size_t len);

const char *wpp_status_name(int status);
const char *wpp_event_name(unsigned int event);

#endif /* WPP_CORE_H */
