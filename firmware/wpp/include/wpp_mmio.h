/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Generic "byte-addressable persistent memory behind a BAR" device: transfers
 * are CPU copies, so they complete synchronously. Platforms provide probe()
 * (where is the BAR now?) and reuse read/write/wait from here.
 */
#ifndef WPP_MMIO_H
#define WPP_MMIO_H

#include "wpp_platform.h"

struct wpp_mmio_dev {
	wpp_u8 *base;		/* CPU pointer to the BAR, NULL = not usable */
	wpp_u64 phys;
	wpp_u64 size;
};

/* Fill pdev with the mmio read/write/wait; probe is left to the caller. */
void wpp_mmio_init(struct wpp_pdev *pdev, struct wpp_mmio_dev *dev, const char *name);

#endif /* WPP_MMIO_H */
