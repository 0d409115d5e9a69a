// SPDX-License-Identifier: GPL-2.0-only
/*
 * The FPGA ring driver (firmware/wpp/src/fpga.c) against a C model of the
 * device: registers, rings in host memory, DMA via fake physical addresses,
 * the unusable every-128th entry, a bounded number of outstanding requests,
 * stalls (timeouts) and failed requests. Run: test_fpga NAME DEVICE_FILE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_platform.h"
#include "test_harness.h"
#include "wpp_fpga.h"

/* ------------------------------------------------------------ device model */

struct model {
	struct host_platform *hp;	/* host "physical memory" */
	wpp_u8 *pmem;
	wpp_u64 size;
	wpp_u32 ctrl, status;
	wpp_u64 base[2];
	wpp_u32 qsize[2], tail[2], head[2], done[2], errors[2];
	wpp_u64 published[2];		/* requests made visible by doorbells */
	wpp_u64 completed[2];
	wpp_u64 max_outstanding;
	int budget;			/* requests processed per DONE poll; <0: all */
	int stall;			/* never complete anything */
	int slow;			/* process only on every slow-th DONE poll */
	wpp_u64 polls;
	int fail_every;			/* fail every n-th request (0 = never) */
	wpp_u64 nreq;
	const char *violation;
	wpp_u64 clock;
};

static struct fpga_request *m_entry(struct model *m, wpp_u32 q, wpp_u32 idx)
{
	return (struct fpga_request *)host_phys(m->hp, m->base[q]) + idx;
}

static void m_violation(struct model *m, const char *what)
{
	if (!m->violation)
		m->violation = what;
}

static void m_process(struct model *m, wpp_u32 q)
{
	int budget = m->budget;

	if (m->stall)
		return;
	if (m->slow && ++m->polls % m->slow)
		return;
	while (m->head[q] != m->tail[q] && budget != 0) {
		wpp_u32 idx = m->head[q];
		struct fpga_request *e = m_entry(m, q, idx);

		m->head[q] = (idx + 1) % m->qsize[q];
		if (wpp_fpga_index_unusable(idx)) {
			if (e->flags & FPGA_REQ_F_VALID)
				m_violation(m, "request in an unusable ring entry");
			continue;
		}
		if (!(e->flags & FPGA_REQ_F_VALID)) {
			m_violation(m, "published entry not valid");
			continue;
		}
		m->nreq++;
		if (m->fail_every && m->nreq % m->fail_every == 0) {
			m->errors[q]++;
		} else {
			wpp_u8 *host = host_phys(m->hp, e->host_addr);

			if (!host || !host_phys(m->hp, e->host_addr + e->length - 1) ||
			    e->length > FPGA_MAX_XFER || e->dev_addr + e->length > m->size) {
				m_violation(m, "bad request");
				m->errors[q]++;
			} else if (q == FPGA_Q_WRITE) {
				memcpy(m->pmem + e->dev_addr, host, e->length);
			} else {
				memcpy(host, m->pmem + e->dev_addr, e->length);
			}
		}
		e->flags = 0;
		m->done[q]++;
		m->completed[q]++;
		if (budget > 0)
			budget--;
	}
}

static wpp_u64 reg_accesses;	/* every register read or write the core caused */

static wpp_u32 m_read32(void *c, wpp_u32 reg)
{
	struct model *m = c;

	reg_accesses++;
	for (wpp_u32 q = 0; q < 2; q++) {
		if (reg == FPGA_REG_Q_DONE(q)) {
			m_process(m, q);
			return m->done[q];
		}
		if (reg == FPGA_REG_Q_ERROR(q))
			return m->errors[q];
	}
	switch (reg) {
	case FPGA_REG_STATUS:
		return m->status;
	case FPGA_REG_DEV_SIZE_LO:
		return (wpp_u32)m->size;
	case FPGA_REG_DEV_SIZE_HI:
		return (wpp_u32)(m->size >> 32);
	}
	m_violation(m, "read of unknown register");
	return 0xffffffff;
}

static void m_write32(void *c, wpp_u32 reg, wpp_u32 val)
{
	struct model *m = c;

	reg_accesses++;
	if (reg == FPGA_REG_CTRL) {
		m->ctrl = val;
		if (val & FPGA_CTRL_RESET) {
			memset(m->head, 0, sizeof(m->head));
			memset(m->tail, 0, sizeof(m->tail));
			m->status = FPGA_STATUS_READY;
		}
		return;
	}
	for (wpp_u32 q = 0; q < 2; q++) {
		if (reg == FPGA_REG_Q_BASE_LO(q)) {
			m->base[q] = (m->base[q] & ~0xffffffffULL) | val;
			return;
		}
		if (reg == FPGA_REG_Q_BASE_HI(q)) {
			m->base[q] = (m->base[q] & 0xffffffffULL) | ((wpp_u64)val << 32);
			return;
		}
		if (reg == FPGA_REG_Q_SIZE(q)) {
			m->qsize[q] = val;
			return;
		}
		if (reg == FPGA_REG_Q_TAIL(q)) {
			wpp_u32 i = m->tail[q];

			if (val >= m->qsize[q])
				m_violation(m, "tail out of range");
			if (wpp_fpga_index_unusable(val))
				m_violation(m, "tail on an unusable entry");
			for (; i != val; i = (i + 1) % m->qsize[q])
				if (!wpp_fpga_index_unusable(i))
					m->published[q]++;
			m->tail[q] = val;
			if (m->published[q] - m->completed[q] > m->max_outstanding)
				m->max_outstanding = m->published[q] - m->completed[q];
			if (m->published[q] - m->completed[q] >= wpp_fpga_usable_entries())
				m_violation(m, "ring overflow: unconsumed requests overwritten");
			return;
		}
	}
	m_violation(m, "write of unknown register");
}

static wpp_u64 m_now(void *c)
{
	struct model *m = c;

	return m->clock += 1;
}

/* ------------------------------------------------------------ fixtures */

static struct host_platform hp;
static struct model model;
static struct wpp_fpga fpga;
static struct wpp_pdev fpdev;

#define RING_OFF	(WPP_INTERNAL_OFFSET + 0x01000000U)	/* past the core's scratch */
#define BOUNCE_SIZE	(64U * 1024)

static int fpga_probe(void *c, wpp_u64 *size)
{
	(void)c;
	*size = fpga.size;
	return fpga.ready ? WPP_OK : WPP_E_NO_DEVICE;
}

/* The FPGA's register BAR, as PCI config space would report it (tests move it). */
static wpp_u64 fpga_bar = 0xd0000000ULL;

static int fpga_locate(void *c, struct wpp_range *win, unsigned int max, int size_them)
{
	(void)c;
	(void)size_them;
	if (!max)
		return 0;
	win[0] = (struct wpp_range){ fpga_bar, 0x10000 };
	return 1;
}

static void setup(wpp_u64 dev_size)
{
	CHECK(host_platform_open(&hp, dev_path, 4096, 1) == 0);
	hp.verbose = getenv("WPP_TEST_VERBOSE") != NULL;
	memset(&model, 0, sizeof(model));
	model.hp = &hp;
	model.size = dev_size;
	model.pmem = calloc(1, dev_size);
	model.budget = -1;
	CHECK(model.pmem);
	memset(&fpga, 0, sizeof(fpga));
	fpga.ctx = &model;
	fpga.read32 = m_read32;
	fpga.write32 = m_write32;
	fpga.now_us = m_now;
	fpga.log = &hp.plat;
	fpga.timeout_us = 100000;
	CHECK_EQ(wpp_fpga_init(&fpga, hp.region + RING_OFF, WPP_REGION_BASE_DEFAULT + RING_OFF,
			       BOUNCE_SIZE), WPP_OK);
	wpp_fpga_pdev(&fpdev, &fpga);
	fpdev.probe = fpga_probe;
	fpdev.locate = fpga_locate;
	/* the core now persists through the FPGA, whose BAR is recorded as at boot */
	hp.plat.pdev = &fpdev;
	CHECK_EQ(wpp_guard_record(&hp.ctx, &hp.layout), WPP_OK);
	CHECK(hp.ctx.dev_recorded);
}

static void teardown(void)
{
	CHECK(!model.violation || (fprintf(stderr, "violation: %s\n", model.violation), 0));
	free(model.pmem);
	host_platform_close(&hp);
}

static wpp_u64 ram(unsigned int page)
{
	return HOST_RAM_BASE + (wpp_u64)page * 4096;
}

/* ------------------------------------------------------------ tests */

static void t_ring_geometry(void)
{
	int unusable = 0;

	for (wpp_u32 i = 0; i < FPGA_RING_ENTRIES; i++)
		unusable += wpp_fpga_index_unusable(i);
	CHECK_EQ(unusable, FPGA_RING_ENTRIES / 128);
	CHECK(wpp_fpga_index_unusable(127) && wpp_fpga_index_unusable(255));
	CHECK(!wpp_fpga_index_unusable(0) && !wpp_fpga_index_unusable(128));
	CHECK_EQ(wpp_fpga_usable_entries(), FPGA_RING_ENTRIES - FPGA_RING_ENTRIES / 128);
}

static void t_wraps_and_skips(void)
{
	wpp_u8 *src, *dst;

	setup(64ULL << 20);
	/* 5000 single-page requests: the 1024-entry ring wraps ~5 times */
	for (unsigned int i = 0; i < 4096; i++) {
		wpp_u8 *p = host_phys(&hp, ram(i));

		for (int k = 0; k < 4096; k++)
			p[k] = (wpp_u8)(i * 13 + k);
	}
	for (unsigned int i = 0; i < 5000; i++)
		CHECK_EQ(fpdev.write(&fpga, (wpp_u64)i * 4096, NULL, ram(i % 4096), 4096), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 100000), WPP_OK);
	CHECK_EQ(model.completed[FPGA_Q_WRITE], 5000);
	CHECK(!model.violation);
	for (unsigned int i = 0; i < 5000; i += 97)
		CHECK(!memcmp(model.pmem + (wpp_u64)i * 4096, host_phys(&hp, ram(i % 4096)), 4096));
	/* read 2 MiB back into other RAM, in FPGA_MAX_XFER pieces */
	CHECK_EQ(fpdev.read(&fpga, 0, NULL, ram(1024), 2 << 20), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 100000), WPP_OK);
	CHECK_EQ(model.completed[FPGA_Q_READ], (2 << 20) / FPGA_MAX_XFER);
	src = model.pmem;
	dst = host_phys(&hp, ram(1024));
	CHECK(!memcmp(src, dst, 2 << 20));
	teardown();
}

static void t_inflight_limit(void)
{
	setup(64ULL << 20);
	model.budget = 1;	/* the device completes one request every 3rd poll: slow */
	model.slow = 3;
	for (unsigned int i = 0; i < 3000; i++)
		CHECK_EQ(fpdev.write(&fpga, (wpp_u64)i * 4096, NULL, ram(i % 4096), 4096), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 100000), WPP_OK);
	CHECK(!model.violation);
	/* the limit was reached but never exceeded */
	CHECK_EQ(model.max_outstanding, fpga.max_inflight);
	teardown();
}

static void t_timeout(void)
{
	setup(16ULL << 20);
	model.stall = 1;
	CHECK_EQ(fpdev.write(&fpga, 0, NULL, ram(0), 4096), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 5000), WPP_E_TIMEOUT);
	CHECK(host_log_contains(&hp, "wpp: fpga status=12 error=timeout queue=0 outstanding=1"));
	/* a full ring blocks submission, which times out too */
	for (unsigned int i = 0; i < fpga.max_inflight - 1; i++)
		CHECK_EQ(fpdev.write(&fpga, 0, NULL, ram(0), 4096), WPP_OK);
	CHECK_EQ(fpdev.write(&fpga, 0, NULL, ram(0), 4096), WPP_E_TIMEOUT);
	CHECK(!model.violation);
	teardown();
}

static void t_request_errors(void)
{
	setup(16ULL << 20);
	model.fail_every = 3;
	for (unsigned int i = 0; i < 3; i++)
		CHECK_EQ(fpdev.write(&fpga, (wpp_u64)i * 4096, NULL, ram(i), 4096), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 100000), WPP_E_DEVICE_IO);
	CHECK(host_log_contains(&hp, "error=request_failed queue=0 failed=1"));
	model.fail_every = 0;
	CHECK_EQ(fpdev.write(&fpga, 0, NULL, ram(0), 4096), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 100000), WPP_OK);
	/* out of the device's range: refused before anything is queued */
	CHECK_EQ(fpdev.write(&fpga, (16ULL << 20) - 100, NULL, ram(0), 4096), WPP_E_DEVICE_IO);
	teardown();
}

static void t_bounce(void)
{
	static wpp_u8 local[200000], back[200000];

	setup(16ULL << 20);
	for (unsigned int i = 0; i < sizeof(local); i++)
		local[i] = (wpp_u8)(i * 7 + 3);
	/* firmware-private buffers (WPP_PHYS_NONE) go through the bounce buffer */
	CHECK_EQ(fpdev.write(&fpga, 4096, local, WPP_PHYS_NONE, sizeof(local)), WPP_OK);
	CHECK_EQ(fpdev.wait(&fpga, 100000), WPP_OK);
	CHECK(!memcmp(model.pmem + 4096, local, sizeof(local)));
	CHECK_EQ(fpdev.read(&fpga, 4096, back, WPP_PHYS_NONE, sizeof(back)), WPP_OK);
	CHECK(!memcmp(back, local, sizeof(local)));
	teardown();
}

/* The OS moves the FPGA's register BAR over TSEG: no register is touched (no
 * doorbell, no DONE counter read through the moved BAR), every command refused. */
static void t_bar_moved(void)
{
	struct wpp_page_mapping m = { 0x400000, ram(100) };
	wpp_u32 flags = WPP_RESTORE_F_FORCE;
	struct wpp_debug_cmd d = { WPP_DEBUG_OP_SELFTEST, 0 };
	wpp_u64 before;

	setup(64ULL << 20);
	CHECK_EQ(host_call(&hp, WPP_EV_INIT, NULL, 0), WPP_OK);
	CHECK_EQ(host_call(&hp, WPP_EV_ADD_PAGE, &m, sizeof(m)), WPP_OK);
	fpga_bar = HOST_SMRAM_BASE;
	before = reg_accesses;
	CHECK_EQ(host_call(&hp, WPP_EV_PERSIST, NULL, 0), WPP_E_DEVICE_MOVED);
	CHECK_EQ(host_call(&hp, WPP_EV_RESTORE, &flags, sizeof(flags)), WPP_E_DEVICE_MOVED);
	CHECK_EQ(host_call(&hp, WPP_EV_DEBUG, &d, sizeof(d)), WPP_E_DEVICE_MOVED);
	CHECK_EQ(reg_accesses, before);
	CHECK(host_log_contains(&hp, "wpp: device status=19 error=bar_moved dev=fpga window=0 "
				"bar=0x7ff00000 recorded=0xd0000000"));
	fpga_bar = 0xd0000000ULL;
	CHECK_EQ(host_call(&hp, WPP_EV_PERSIST, NULL, 0), WPP_OK);
	CHECK(reg_accesses > before);
	teardown();
}

static void t_core_roundtrip(void)
{
	struct wpp_page_mapping m;
	struct wpp_get_pages g;
	wpp_u32 flags = 0;

	setup(64ULL << 20);
	model.budget = 3;
	CHECK_EQ(host_call(&hp, WPP_EV_INIT, NULL, 0), WPP_OK);
	for (unsigned int i = 0; i < 300; i++) {
		wpp_u8 *p = host_phys(&hp, ram(100 + i));

		for (int k = 0; k < 4096; k++)
			p[k] = (wpp_u8)(i ^ k);
		m = (struct wpp_page_mapping){ 0x400000 + (wpp_u64)i * 4096, ram(100 + i) };
		CHECK_EQ(host_call(&hp, WPP_EV_ADD_PAGE, &m, sizeof(m)), WPP_OK);
	}
	CHECK_EQ(host_call(&hp, WPP_EV_PERSIST, NULL, 0), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: persist status=0 seq=1 pages=300"));
	/* wipe the RAM copies, restore from the device model */
	memset(host_phys(&hp, ram(100)), 0, 300 * 4096);
	CHECK_EQ(host_call(&hp, WPP_EV_RESTORE, &flags, sizeof(flags)), WPP_OK);
	for (unsigned int i = 0; i < 300; i += 29) {
		struct wpp_page_mapping *e =
			(struct wpp_page_mapping *)(hp.region + WPP_PAGES_OFFSET) + i;
		unsigned int vi = (unsigned int)((e->virtual_address - 0x400000) / 4096);
		wpp_u8 *got;

		g = (struct wpp_get_pages){ i, 1, ram(2000) };
		CHECK_EQ(host_call(&hp, WPP_EV_GET_PAGES, &g, sizeof(g)), WPP_OK);
		got = host_phys(&hp, ram(2000));
		for (int k = 0; k < 4096; k++)
			CHECK_EQ(got[k], (wpp_u8)(vi ^ k));
	}
	CHECK(!model.violation);
	teardown();
}

static const struct test tests[] = {
	{ "ring_geometry", t_ring_geometry },
	{ "wraps_and_skips", t_wraps_and_skips },
	{ "inflight_limit", t_inflight_limit },
	{ "timeout", t_timeout },
	{ "request_errors", t_request_errors },
	{ "bounce", t_bounce },
	{ "core_roundtrip", t_core_roundtrip },
	{ "bar_moved", t_bar_moved },
};

int main(int argc, char **argv)
{
	return run_named_test(argc, argv, tests, ARRAY_SIZE(tests));
}
