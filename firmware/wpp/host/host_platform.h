/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Host test platform: "physical memory" is a few malloc'd buffers at fixed
 * fake physical addresses, the persistent device is a file. Used by the C unit
 * tests and by wpp-host-tool (which produces snapshot images for the Python
 * reader's tests).
 */
#ifndef WPP_HOST_PLATFORM_H
#define WPP_HOST_PLATFORM_H

#include <stdio.h>

#include "wpp_core.h"

/* Fake physical map (mirrors the twin: RAM, WPP region, RAM, SMRAM at the top). */
#define HOST_RAM_BASE		0x00100000ULL
#define HOST_RAM_SIZE		0x01000000ULL	/* 16 MiB of "OS RAM" below the region */
#define HOST_SMRAM_BASE		0x7ff00000ULL
#define HOST_SMRAM_SIZE		0x00100000ULL
/*
 * Optional RAM across 4 GiB (host_platform_add_high_ram): 4 MiB below and
 * 4 MiB above it, reached only through a small moving map window, the way
 * 32-bit SMM with a PAE window reaches RAM above 4 GiB on the twin.
 */
#define HOST_HIGH_BASE		0xffc00000ULL
#define HOST_HIGH_SIZE		0x00800000ULL
/* The persistent device's MMIO window (a PCI BAR on real platforms). */
#define HOST_BAR_BASE		0xc0000000ULL

struct host_platform {
	struct wpp_platform plat;
	struct wpp_pdev pdev;
	struct wpp_ctx ctx;
	wpp_u8 *ram;			/* HOST_RAM_SIZE bytes at HOST_RAM_BASE */
	wpp_u8 *region;			/* WPP_REGION_SIZE_DEFAULT bytes */
	wpp_u8 *smram;			/* canary memory standing for SMRAM */
	int fd;				/* persistent device file */
	wpp_u64 dev_size;
	/* fault injection */
	long long write_budget;		/* bytes the device still accepts; < 0 = unlimited */
	int fail_probe;			/* probe returns this status when non-zero */
	int fail_write;			/* writes return this status when non-zero */
	int fail_read;			/* reads return this status when non-zero */
	/* map() refuses [phys, ...) at or above this (0 = all mappable): pages SMM
	 * cannot reach with the CPU, as above 4 GiB on the FPGA board; the device
	 * still moves them by physical address (DMA) */
	wpp_u64 unmappable_from;
	/* where the device's BAR is now (tests move it; the core compares it with
	 * the window recorded by host_platform_open) */
	wpp_u64 bar_base;
	int bar_locates;		/* locate() calls, to count re-checks */
	struct wpp_layout layout;	/* what host_platform_open recorded */
	/* high RAM: a memfd seen directly (high, for the tests) and through the
	 * window (win), which map() re-points with mmap(MAP_FIXED) on every call,
	 * so a pointer kept past the next map() reads other memory, and anything
	 * beyond the mapped piece faults */
	int high_fd;
	wpp_u8 *high;
	wpp_u8 *win;
	wpp_u64 win_size;
	wpp_u64 high_maps;		/* map() calls served through the window */
	wpp_u64 high_map_max;		/* longest piece asked of the window */
	wpp_u64 window_refused;		/* map() calls longer than the window */
	/* called at each device write: another CPU or a DMA changing memory mid-persist */
	void (*on_write)(struct host_platform *hp, wpp_u64 off);
	int verbose;			/* print log lines to stderr */
	wpp_u64 clock_us;
	/* log capture */
	char *log;
	size_t log_len, log_cap;
};

/* Create with a device file of dev_size bytes (created/truncated when create). */
int host_platform_open(struct host_platform *hp, const char *dev_path, wpp_u64 dev_size,
		       int create);
void host_platform_close(struct host_platform *hp);
/* Add the RAM across 4 GiB (to the layout, re-recorded) behind a map window
 * of `window` bytes (plat.map_window). Returns 0 on success. */
int host_platform_add_high_ram(struct host_platform *hp, wpp_u64 window);

/* The layout host_platform_open records: SMRAM, 16 MiB of OS RAM, 4 GiB limit. */
void host_default_layout(struct wpp_layout *l);

/* Fill the mailbox and issue `event` like the kernel would; returns status. */
int host_call(struct host_platform *hp, wpp_u8 event, const void *payload, wpp_u32 len);
struct wpp_mailbox_hdr *host_mailbox(struct host_platform *hp);
void *host_payload(struct host_platform *hp);
/* Pointer to fake physical address phys (RAM, high RAM or region), NULL otherwise. */
void *host_phys(struct host_platform *hp, wpp_u64 phys);
int host_log_contains(struct host_platform *hp, const char *needle);
void host_log_clear(struct host_platform *hp);

#endif /* WPP_HOST_PLATFORM_H */
