/* SPDX-License-Identifier: GPL-2.0-only */
#include <string.h>

#include "wpp_core.h"
#include "wpp_mmio.h"

static int mmio_write(void *c, wpp_u64 off, const void *src, wpp_u64 src_phys, wpp_u64 len)
{
	struct wpp_mmio_dev *d = c;

	(void)src_phys;
	if (!d->base)
		return WPP_E_NO_DEVICE;
	if (!src)
		return WPP_E_BAD_ADDR;	/* needs a CPU mapping of the source */
	if (off > d->size || len > d->size - off)
		return WPP_E_DEVICE_IO;
	wpp_copy(d->base + off, src, (size_t)len);
	return WPP_OK;
}

static int mmio_write_crc(void *c, wpp_u64 off, const void *src, wpp_u64 len, wpp_u32 *crc)
{
	struct wpp_mmio_dev *d = c;

	if (!d->base)
		return WPP_E_NO_DEVICE;
	if (!src)
		return WPP_E_BAD_ADDR;
	if (off > d->size || len > d->size - off)
		return WPP_E_DEVICE_IO;
	*crc = wpp_copy_crc32(*crc, d->base + off, src, (size_t)len);
	return WPP_OK;
}

static int mmio_crc(void *c, wpp_u64 off, wpp_u64 len, wpp_u32 *crc)
{
	struct wpp_mmio_dev *d = c;

	if (!d->base)
		return WPP_E_NO_DEVICE;
	if (off > d->size || len > d->size - off)
		return WPP_E_DEVICE_IO;
	*crc = wpp_crc32(*crc, d->base + off, (size_t)len);
	return WPP_OK;
}

static int mmio_read(void *c, wpp_u64 off, void *dst, wpp_u64 dst_phys, wpp_u64 len)
{
	struct wpp_mmio_dev *d = c;

	(void)dst_phys;
	if (!d->base)
		return WPP_E_NO_DEVICE;
	if (!dst)
		return WPP_E_BAD_ADDR;
	if (off > d->size || len > d->size - off)
		return WPP_E_DEVICE_IO;
	wpp_copy(dst, d->base + off, (size_t)len);
	return WPP_OK;
}

static int mmio_wait(void *c, wpp_u64 timeout_us)
{
	(void)c;
	(void)timeout_us;
	/* Copies are synchronous; order them before a following marker write. */
	__sync_synchronize();
	return WPP_OK;
}

void wpp_mmio_init(struct wpp_pdev *pdev, struct wpp_mmio_dev *dev, const char *name)
{
	pdev->name = name;
	pdev->ctx = dev;
	pdev->probe = NULL;
	pdev->read = mmio_read;
	pdev->write = mmio_write;
	pdev->write_crc = mmio_write_crc;
	pdev->crc = mmio_crc;
	pdev->wait = mmio_wait;
}
