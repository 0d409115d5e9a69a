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
	/* Locate and check the device; called at the start of every device
	 * operation because the OS may have moved or disabled it. */
	int (*probe)(void *ctx, wpp_u64 *size);
	int (*write)(void *ctx, wpp_u64 dev_off, const void *src, wpp_u64 src_phys,
		     wpp_u64 len);
	int (*read)(void *ctx, wpp_u64 dev_off, void *dst, wpp_u64 dst_phys, wpp_u64 len);
	/* Wait until every queued transfer has completed. */
	int (*wait)(void *ctx, wpp_u64 timeout_us);
};

struct wpp_platform {
	void *ctx;
	/* CPU pointer for [phys, phys + len), or NULL when not mappable. */
	void *(*map)(void *ctx, wpp_u64 phys, wpp_u64 len);
	/* True when [phys, phys + len) is OS RAM that is neither SMRAM nor the
	 * WPP region (the confused-deputy check for every OS-chosen address). */
	bool (*is_os_ram)(void *ctx, wpp_u64 phys, wpp_u64 len);
	/* One complete log line, without newline, starting with "wpp: ". */
	void (*log)(void *ctx, const char *line, size_t len);
	wpp_u64 (*now_us)(void *ctx);
	struct wpp_pdev *pdev;
	/* Device timeout for one wait (the seed used 5 s). */
	wpp_u64 dev_timeout_us;
};

#endif /* WPP_PLATFORM_H */
