/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Request-ring driver for the lab's PCIe FPGA (seed 5.2.3):
 *  - one ring per direction in firmware memory, base and size in registers;
 *  - a request is written to ring[tail], then TAIL (doorbell) is advanced
 *    past it; indices with idx % 128 == 127 are never used;
 *  - at most max_inflight requests are outstanding: submitting waits for the
 *    device's DONE counter to advance;
 *  - every wait has a timeout (seed: 5 s) and ends with WPP_E_TIMEOUT and a
 *    log line instead of hanging the SMI (IOMMU-blocked DMA never completes).
 */
#include <string.h>

#include "wpp_core.h"
#include "wpp_fpga.h"

#define U(x)	((unsigned long long)(x))

int wpp_fpga_index_unusable(wpp_u32 idx)
{
	return idx % FPGA_RING_SKIP_PERIOD == FPGA_RING_SKIP_PERIOD - 1;
}

wpp_u32 wpp_fpga_usable_entries(void)
{
	return FPGA_RING_ENTRIES - FPGA_RING_ENTRIES / FPGA_RING_SKIP_PERIOD;
}

static wpp_u32 done(struct wpp_fpga *f, int q)
{
	return f->read32(f->ctx, FPGA_REG_Q_DONE(q));
}

static int check_errors(struct wpp_fpga *f, int q)
{
	wpp_u32 e = f->read32(f->ctx, FPGA_REG_Q_ERROR(q));

	if (e != f->ring[q].errors_seen) {
		wpp_logf(f->log, "fpga status=%d error=request_failed queue=%d failed=%u",
			 WPP_E_DEVICE_IO, q, e - f->ring[q].errors_seen);
		f->ring[q].errors_seen = e;
		return WPP_E_DEVICE_IO;
	}
	return WPP_OK;
}

/* Wait until at most `limit` requests of queue q are outstanding. */
static int wait_inflight(struct wpp_fpga *f, int q, wpp_u32 limit)
{
	wpp_u64 t0 = f->now_us(f->ctx);
	struct wpp_fpga_ring *r = &f->ring[q];

	for (;;) {
		wpp_u32 outstanding = r->submitted - done(f, q);

		if (outstanding > f->max_inflight + 1) {
			/* DONE ahead of what we submitted: device state is garbage */
			wpp_logf(f->log, "fpga status=%d error=bad_done queue=%d", WPP_E_DEVICE_IO,
				 q);
			return WPP_E_DEVICE_IO;
		}
		if (outstanding <= limit)
			return check_errors(f, q);
		if (f->now_us(f->ctx) - t0 > f->timeout_us) {
			wpp_logf(f->log, "fpga status=%d error=timeout queue=%d outstanding=%u "
				 "timeout_us=%llu", WPP_E_TIMEOUT, q, outstanding, U(f->timeout_us));
			return WPP_E_TIMEOUT;
		}
	}
}

static int submit(struct wpp_fpga *f, int q, wpp_u64 host, wpp_u64 dev, wpp_u32 len)
{
	struct wpp_fpga_ring *r = &f->ring[q];
	struct fpga_request *e;
	int rc;

	rc = wait_inflight(f, q, f->max_inflight - 1);
	if (rc != WPP_OK)
		return rc;
	e = &r->entries[r->tail];
	e->host_addr = host;
	e->dev_addr = dev;
	e->length = len;
	e->flags = FPGA_REQ_F_VALID;
	r->tail = (r->tail + 1) % FPGA_RING_ENTRIES;
	if (wpp_fpga_index_unusable(r->tail))
		r->tail = (r->tail + 1) % FPGA_RING_ENTRIES;
	r->submitted++;
	__sync_synchronize();	/* entry visible before the doorbell */
	f->write32(f->ctx, FPGA_REG_Q_TAIL(q), r->tail);
	return WPP_OK;
}

static int transfer(struct wpp_fpga *f, int q, wpp_u64 dev, wpp_u64 host, wpp_u64 len)
{
	if (!f->ready)
		return WPP_E_NO_DEVICE;
	if (dev > f->size || len > f->size - dev)
		return WPP_E_DEVICE_IO;
	while (len) {
		wpp_u32 n = len > FPGA_MAX_XFER ? FPGA_MAX_XFER : (wpp_u32)len;
		int rc = submit(f, q, host, dev, n);

		if (rc != WPP_OK)
			return rc;
		host += n;
		dev += n;
		len -= n;
	}
	return WPP_OK;
}

static int fpga_wait(void *c, wpp_u64 timeout_us)
{
	struct wpp_fpga *f = c;
	int rc;

	f->timeout_us = timeout_us;
	rc = wait_inflight(f, FPGA_Q_WRITE, 0);
	if (rc == WPP_OK)
		rc = wait_inflight(f, FPGA_Q_READ, 0);
	return rc;
}

static int fpga_write(void *c, wpp_u64 off, const void *src, wpp_u64 src_phys, wpp_u64 len)
{
	struct wpp_fpga *f = c;
	int rc;

	if (src_phys != WPP_PHYS_NONE)
		return transfer(f, FPGA_Q_WRITE, off, src_phys, len);
	/* SMRAM source: the device cannot reach it, go through the bounce buffer */
	while (len) {
		wpp_u32 n = len > f->bounce_size ? f->bounce_size : (wpp_u32)len;

		rc = fpga_wait(f, f->timeout_us);	/* bounce buffer free again */
		if (rc != WPP_OK)
			return rc;
		memcpy(f->bounce, src, n);
		rc = transfer(f, FPGA_Q_WRITE, off, f->bounce_phys, n);
		if (rc != WPP_OK)
			return rc;
		src = (const wpp_u8 *)src + n;
		off += n;
		len -= n;
	}
	return WPP_OK;
}

static int fpga_read(void *c, wpp_u64 off, void *dst, wpp_u64 dst_phys, wpp_u64 len)
{
	struct wpp_fpga *f = c;
	int rc;

	if (dst_phys != WPP_PHYS_NONE)
		return transfer(f, FPGA_Q_READ, off, dst_phys, len);
	while (len) {
		wpp_u32 n = len > f->bounce_size ? f->bounce_size : (wpp_u32)len;

		rc = fpga_wait(f, f->timeout_us);
		if (rc == WPP_OK)
			rc = transfer(f, FPGA_Q_READ, off, f->bounce_phys, n);
		if (rc == WPP_OK)
			rc = fpga_wait(f, f->timeout_us);
		if (rc != WPP_OK)
			return rc;
		memcpy(dst, f->bounce, n);
		dst = (wpp_u8 *)dst + n;
		off += n;
		len -= n;
	}
	return WPP_OK;
}

int wpp_fpga_init(struct wpp_fpga *f, void *ring_mem, wpp_u64 ring_phys, wpp_u32 bounce_size)
{
	wpp_u64 t0 = f->now_us(f->ctx);

	if (!f->timeout_us)
		f->timeout_us = 5000000;
	f->ready = 0;
	f->write32(f->ctx, FPGA_REG_CTRL, FPGA_CTRL_RESET);
	while (!(f->read32(f->ctx, FPGA_REG_STATUS) & FPGA_STATUS_READY)) {
		if (f->now_us(f->ctx) - t0 > f->timeout_us) {
			wpp_logf(f->log, "fpga status=%d error=reset_timeout", WPP_E_TIMEOUT);
			return WPP_E_TIMEOUT;
		}
	}
	memset(ring_mem, 0, WPP_FPGA_RING_BYTES);
	for (int q = 0; q < 2; q++) {
		struct wpp_fpga_ring *r = &f->ring[q];
		wpp_u64 phys = ring_phys + (wpp_u64)q * FPGA_RING_ENTRIES *
			sizeof(struct fpga_request);

		r->entries = (struct fpga_request *)ring_mem + (wpp_u64)q * FPGA_RING_ENTRIES;
		r->phys = phys;
		r->tail = 0;
		r->submitted = 0;
		f->write32(f->ctx, FPGA_REG_Q_BASE_LO(q), (wpp_u32)phys);
		f->write32(f->ctx, FPGA_REG_Q_BASE_HI(q), (wpp_u32)(phys >> 32));
		f->write32(f->ctx, FPGA_REG_Q_SIZE(q), FPGA_RING_ENTRIES);
		f->write32(f->ctx, FPGA_REG_Q_TAIL(q), 0);
		/* counters restart at whatever the device reports after reset */
		r->submitted = done(f, q);
		r->errors_seen = f->read32(f->ctx, FPGA_REG_Q_ERROR(q));
	}
	f->bounce = (wpp_u8 *)ring_mem + WPP_FPGA_RING_BYTES;
	f->bounce_phys = ring_phys + WPP_FPGA_RING_BYTES;
	f->bounce_size = bounce_size;
	f->max_inflight = wpp_fpga_usable_entries() - 1;
	f->size = ((wpp_u64)f->read32(f->ctx, FPGA_REG_DEV_SIZE_HI) << 32) |
		f->read32(f->ctx, FPGA_REG_DEV_SIZE_LO);
	f->write32(f->ctx, FPGA_REG_CTRL, FPGA_CTRL_ENABLE);
	f->ready = 1;
	wpp_logf(f->log, "fpga status=0 op=init size=%llu ring_entries=%u usable=%u",
		 U(f->size), FPGA_RING_ENTRIES, wpp_fpga_usable_entries());
	return WPP_OK;
}

void wpp_fpga_pdev(struct wpp_pdev *pdev, struct wpp_fpga *f)
{
	pdev->name = "fpga";
	pdev->ctx = f;
	pdev->write = fpga_write;
	pdev->read = fpga_read;
	pdev->wait = fpga_wait;
}
