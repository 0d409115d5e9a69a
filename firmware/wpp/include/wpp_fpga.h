/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Persistent device behind the lab's PCIe FPGA: request rings in firmware
 * memory (DMA-able, outside SMRAM), doorbells and completion counters in MMIO
 * registers (wpp_fpga_regs.h). Portable: register access and the clock are
 * function pointers, so the host tests drive it against a device model.
 */
#ifndef WPP_FPGA_H
#define WPP_FPGA_H

#include "wpp_fpga_regs.h"
#include "wpp_platform.h"

struct wpp_fpga_ring {
	struct fpga_request *entries;	/* CPU pointer, FPGA_RING_ENTRIES entries */
	wpp_u64 phys;			/* what the device is told */
	wpp_u32 tail;			/* next index to fill */
	wpp_u32 submitted;		/* requests published (free-running) */
	wpp_u32 errors_seen;
};

struct wpp_fpga {
	void *ctx;
	wpp_u32 (*read32)(void *ctx, wpp_u32 reg);
	void (*write32)(void *ctx, wpp_u32 reg, wpp_u32 val);
	wpp_u64 (*now_us)(void *ctx);
	const struct wpp_platform *log;	/* for log lines, may be NULL */
	struct wpp_fpga_ring ring[2];
	/* bounce buffer for firmware-private (SMRAM) sources/destinations */
	wpp_u8 *bounce;
	wpp_u64 bounce_phys;
	wpp_u32 bounce_size;
	wpp_u32 max_inflight;		/* usable entries - 1 */
	wpp_u64 timeout_us;
	wpp_u64 size;			/* persistent memory size */
	int ready;
};

/* Usable entries of a ring (every FPGA_RING_SKIP_PERIOD-th is unusable). */
wpp_u32 wpp_fpga_usable_entries(void);
/* True for ring indices the device cannot use. */
int wpp_fpga_index_unusable(wpp_u32 idx);

/*
 * Reset the device and program the rings. ring_mem/ring_phys: 2 rings of
 * FPGA_RING_ENTRIES requests, then the bounce buffer (bounce_size bytes).
 */
int wpp_fpga_init(struct wpp_fpga *f, void *ring_mem, wpp_u64 ring_phys, wpp_u32 bounce_size);

/* Fill pdev with the FPGA's write/read/wait (probe stays the caller's). */
void wpp_fpga_pdev(struct wpp_pdev *pdev, struct wpp_fpga *f);

/* Where the coreboot glue keeps rings + bounce buffer: Internal section + 16 MiB
 * (past the core's counters and scratch), i.e. DMA-able reserved RAM. */
#define WPP_FPGA_INTERNAL_OFFSET	0x01000000U
#define WPP_FPGA_BOUNCE_SIZE		0x00100000U

/* Bytes of firmware memory wpp_fpga_init needs. */
#define WPP_FPGA_RING_BYTES	(2UL * FPGA_RING_ENTRIES * sizeof(struct fpga_request))

#endif /* WPP_FPGA_H */
