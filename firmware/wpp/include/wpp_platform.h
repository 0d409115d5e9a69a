/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wpp_platform.h - what the portable WPP core needs from its environment.
 *
 * The core (core.c) never touches hardware itself. A platform (coreboot SMM on
 * q35 or the MSI board, or the host test harness) fills a struct wpp_platform:
 * physical memory access, the address policy ("is this OS RAM that is neither
 * SMRAM nor the WPP region"), a log sink, a microsecond clock and the
 * persistent device. Function pointers instead of link-time hooks so the host
 * tests can run several platforms (fault injection, power cuts) in one binary.
 */
#ifndef WPP_PLATFORM_H
#define WPP_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "wpp_abi.h"

/* "No physical address": the buffer lives in SMRAM/firmware-private memory. */
#define WPP_PHYS_NONE			(~0ULL)

struct wpp_range {
	wpp_u64 base;
	wpp_u64 size;
};

#define WPP_LAYOUT_MAX_RAM		32
#define WPP_PDEV_MAX_WINDOWS		2

/*
 * The machine as the firmware saw it before the OS ran: SMRAM, the RAM the OS
 * is told it may use (e820 "usable"), and how far SMM can address. Recorded in
 * SMRAM at the ramstage -> SMM handoff; everything the OS can change later
 * (PCI BARs, mailbox contents) is judged against it.
 */
struct wpp_layout {
	struct wpp_range smram;		/* TSEG; size 0 = unknown (nothing is SMRAM) */
	wpp_u64 addr_limit;		/* SMM maps [0, addr_limit) (4 GiB on 32-bit SMM) */
	wpp_u32 nram;
	wpp_u32 reserved;
	struct wpp_range ram[WPP_LAYOUT_MAX_RAM];	/* OS RAM */
};

/*
 * Persistent device. Transfers may be queued (asynchronous, e.g. DMA rings);
 * the core calls wait() before it reuses a source/destination buffer and
 * before it writes the completion marker. Every call returns enum wpp_status.
 * src_phys/dst_phys give the physical address of the host buffer when known
 * (DMA engines need it) or WPP_PHYS_NONE (then the driver must bounce).
 * A CPU pointer may be NULL when the platform cannot map the memory (DMA-only
 * devices are then still able to move it by physical address).
 */
struct wpp_pdev {
	const char *name;
	void *ctx;
	/*
	 * Where the device decodes now, read from PCI config space (which the OS
	 * can rewrite): fills up to max windows and returns their number (0 = not
	 * found). With size_them the sizes are probed too (BAR sizing writes the
	 * BAR: only done at the boot-time handoff); otherwise sizes may be 0.
	 * The core compares these with the windows recorded at boot before every
	 * device access (see wpp_guard_device()).
	 */
	int (*locate)(void *ctx, struct wpp_range *win, unsigned int max, int size_them);
	/* The windows recorded at boot and checked by the core; probe and the
	 * transfers use these, never a fresh BAR read. */
	struct wpp_range win[WPP_PDEV_MAX_WINDOWS];
	unsigned int nwin;
	/* Check the device is usable (enabled, answering); called at the start of
	 * every device operation, after the core's window check. */
	int (*probe)(void *ctx, wpp_u64 *size);
	int (*write)(void *ctx, wpp_u64 dev_off, const void *src, wpp_u64 src_phys,
		     wpp_u64 len);
	int (*read)(void *ctx, wpp_u64 dev_off, void *dst, wpp_u64 dst_phys, wpp_u64 len);
	/*
	 * Optional, for CPU-copy devices: write from a CPU pointer and update
	 * *crc (wpp_crc32) over exactly the bytes written, in one pass. The
	 * persist uses it for mapped page runs; NULL = write, CRC separately.
	 */
	int (*write_crc)(void *ctx, wpp_u64 dev_off, const void *src, wpp_u64 len,
			 wpp_u32 *crc);
	/*
	 * Optional, for CPU-mapped devices: update *crc (wpp_crc32) over device
	 * bytes where they lie. Restore's page check uses it instead of copying
	 * each piece into the scratch buffer first; NULL = read, then CRC.
	 */
	int (*crc)(void *ctx, wpp_u64 dev_off, wpp_u64 len, wpp_u32 *crc);
	/* Wait until every queued transfer has completed. */
	int (*wait)(void *ctx, wpp_u64 timeout_us);
};

struct wpp_platform {
	void *ctx;
	/*
	 * CPU pointer for [phys, phys + len), or NULL when not mappable. The
	 * pointer is valid until the next map() call or the end of the event:
	 * a platform may map high RAM through one small window it moves on each
	 * call (PAE window in 32-bit SMM on the twin).
	 */
	void *(*map)(void *ctx, wpp_u64 phys, wpp_u64 len);
	/*
	 * The largest len map() serves at any phys (a multiple of 4 KiB; 0 = no
	 * limit). The core splits page runs and GET_PAGES destinations into
	 * pieces of at most this size, so a window never has to hold more.
	 */
	wpp_u64 map_window;
	/* Optional second opinion after the core's own check against the
	 * recorded layout: false vetoes [phys, phys + len) (NULL = no veto). */
	bool (*is_os_ram)(void *ctx, wpp_u64 phys, wpp_u64 len);
	/* CPU pointer to SMRAM for the SMRAM_DIGEST debug op; NULL = op refused
	 * (firmware built without it: production boards). */
	const void *(*map_smram)(void *ctx);
	/* One complete log line, without newline, starting with "wpp: ". */
	void (*log)(void *ctx, const char *line, size_t len);
	wpp_u64 (*now_us)(void *ctx);
	struct wpp_pdev *pdev;
	/* Device timeout for one wait (the seed used 5 s). */
	wpp_u64 dev_timeout_us;
	/*
	 * SMI rendezvous: how many CPUs are in SMM right now for this SMI (each
	 * checks in when it enters and out when it leaves). NULL = not counted
	 * (host tests, one CPU). See wpp_rendezvous().
	 */
	wpp_u32 (*smm_cpus)(void *ctx);
	/* Let a spinning CPU breathe (PAUSE); NULL = busy loop. */
	void (*relax)(void *ctx);
};

#endif /* WPP_PLATFORM_H */
