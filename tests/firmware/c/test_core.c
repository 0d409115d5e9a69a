// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the WPP core on the host platform. Run one test by name:
 *   test_core NAME DEVICE_FILE     (exit 0 = pass; failures print file:line)
 *   test_core --list
 * tests/firmware/test_core_c.py compiles this with ASan/UBSan and runs every
 * test as its own pytest case.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_platform.h"
#include "wpp_mmio.h"
#include "test_harness.h"

#define MiB (1024ULL * 1024)

static void open_hp(struct host_platform *hp, wpp_u64 dev_size, int create)
{
	CHECK(host_platform_open(hp, dev_path, dev_size, create) == 0);
	hp->verbose = getenv("WPP_TEST_VERBOSE") != NULL;
}

static int ev(struct host_platform *hp, wpp_u8 e)
{
	return host_call(hp, e, NULL, 0);
}

static int add_page(struct host_platform *hp, wpp_u64 va, wpp_u64 pa)
{
	struct wpp_page_mapping m = { va, pa };

	return host_call(hp, WPP_EV_ADD_PAGE, &m, sizeof(m));
}

static int remove_page(struct host_platform *hp, wpp_u64 va, wpp_u64 pa)
{
	struct wpp_page_mapping m = { va, pa };

	return host_call(hp, WPP_EV_REMOVE_PAGE, &m, sizeof(m));
}

static int add_region(struct host_platform *hp, wpp_u64 va, wpp_u64 len, const char *path)
{
	struct wpp_region r;

	memset(&r, 0, sizeof(r));
	snprintf(r.file_path, sizeof(r.file_path), "%s", path ? path : "");
	r.virtual_address = va;
	r.length = len;
	r.protection = 3;
	r.flags = 0x22;
	r.state = path ? WPP_REGION_F_FILE : 0;
	return host_call(hp, WPP_EV_ADD_REGION, &r, sizeof(r));
}

static int remove_region(struct host_platform *hp, wpp_u64 va, wpp_u64 len)
{
	struct wpp_region_key k = { va, len };

	return host_call(hp, WPP_EV_REMOVE_REGION, &k, sizeof(k));
}

static int write_meta(struct host_platform *hp, wpp_u32 section, wpp_u32 off, const void *d,
		      wpp_u32 size)
{
	wpp_u8 buf[4096 + sizeof(struct wpp_data_cmd)];
	struct wpp_data_cmd c = { section, off, size, 0 };

	CHECK(size <= 4096);
	memcpy(buf, &c, sizeof(c));
	memcpy(buf + sizeof(c), d, size);
	return host_call(hp, WPP_EV_WRITE_DATA, buf, sizeof(c) + size);
}

static int read_data(struct host_platform *hp, wpp_u32 section, wpp_u32 off, wpp_u32 size)
{
	struct wpp_data_cmd c = { section, off, size, 0 };

	return host_call(hp, WPP_EV_READ_DATA, &c, sizeof(c));
}

static int debug_op(struct host_platform *hp, wpp_u32 op, wpp_u32 flags)
{
	struct wpp_debug_cmd c = { op, flags };

	return host_call(hp, WPP_EV_DEBUG, &c, sizeof(c));
}

static int restore(struct host_platform *hp, wpp_u32 flags)
{
	return host_call(hp, WPP_EV_RESTORE, &flags, sizeof(flags));
}

static int get_pages(struct host_platform *hp, wpp_u32 index, wpp_u32 count, wpp_u64 dest)
{
	struct wpp_get_pages g = { index, count, dest };

	return host_call(hp, WPP_EV_GET_PAGES, &g, sizeof(g));
}

static wpp_u64 res(struct host_platform *hp, int i)
{
	return host_mailbox(hp)->result[i];
}

static struct wpp_region *region_slot(struct host_platform *hp, wpp_u32 i)
{
	return (struct wpp_region *)(hp->region + WPP_REGIONS_OFFSET) + i;
}

static struct wpp_page_mapping *page_slot(struct host_platform *hp, unsigned int b, wpp_u32 i)
{
	return (struct wpp_page_mapping *)(hp->region + WPP_PAGES_OFFSET) +
		(wpp_u64)b * WPP_PAGE_BUCKET_SLOTS + i;
}

static wpp_u64 ram_page(unsigned int i)
{
	return HOST_RAM_BASE + (wpp_u64)i * WPP_PAGE_SIZE;
}

static void fill_page(struct host_platform *hp, unsigned int i, wpp_u32 seed)
{
	wpp_u8 *p = host_phys(hp, ram_page(i));

	for (unsigned int k = 0; k < WPP_PAGE_SIZE; k++)
		p[k] = (wpp_u8)(seed * 131 + i * 31 + k * 7 + (k >> 8));
}

static int smram_intact(struct host_platform *hp)
{
	static wpp_u8 pattern[HOST_SMRAM_SIZE];

	if (pattern[0] != 0xcd)
		memset(pattern, 0xcd, sizeof(pattern));
	return !memcmp(hp->smram, pattern, HOST_SMRAM_SIZE);
}

/* Every log line starts with "wpp: " and is "<event>( key=value)*". */
static void check_log_format(struct host_platform *hp)
{
	const char *p = hp->log ? hp->log : "";

	while (*p) {
		const char *e = strchr(p, '\n');
		const char *q;

		CHECK(e);
		CHECK(!strncmp(p, "wpp: ", 5));
		q = p + 5;
		CHECK(*q >= 'a' && *q <= 'z');
		while (q < e && *q != ' ')
			q++;
		while (q < e) {
			const char *eq;

			CHECK(*q == ' ');
			q++;
			eq = q;
			while (eq < e && *eq != '=' && *eq != ' ')
				eq++;
			CHECK(eq < e && *eq == '=' && eq > q);
			q = eq + 1;
			CHECK(q < e && *q != ' ');
			while (q < e && *q != ' ')
				q++;
		}
		p = e + 1;
	}
}

/* ------------------------------------------------------------------ tests */

static void t_mailbox_checks(void)
{
	struct host_platform hp;
	struct wpp_mailbox_hdr *h;

	open_hp(&hp, 16 * MiB, 1);
	h = host_mailbox(&hp);
	/* wrong magic */
	h->magic = 0x12345678;
	h->abi_version = WPP_ABI_VERSION;
	h->event = WPP_EV_INIT;
	h->seq = 77;
	CHECK_EQ(wpp_handle_event(&hp.ctx, WPP_EV_INIT), 1);
	CHECK_EQ(h->status, WPP_E_BAD_MAILBOX);
	CHECK_EQ(h->seq_ack, 77);
	/* wrong ABI version */
	h->magic = WPP_MAILBOX_MAGIC;
	h->abi_version = WPP_ABI_VERSION + 1;
	h->seq = 78;
	wpp_handle_event(&hp.ctx, WPP_EV_INIT);
	CHECK_EQ(h->status, WPP_E_BAD_MAILBOX);
	CHECK_EQ(h->seq_ack, 78);
	/* header event differs from the port byte */
	h->abi_version = WPP_ABI_VERSION;
	h->event = WPP_EV_PERSIST;
	h->seq = 79;
	wpp_handle_event(&hp.ctx, WPP_EV_INIT);
	CHECK_EQ(h->status, WPP_E_BAD_MAILBOX);
	/* payload_len beyond the mailbox */
	h->event = WPP_EV_INIT;
	h->payload_len = WPP_MAILBOX_PAYLOAD_MAX + 1;
	h->seq = 80;
	wpp_handle_event(&hp.ctx, WPP_EV_INIT);
	CHECK_EQ(h->status, WPP_E_BAD_ARG);
	/* bytes that are not WPP events are left alone */
	h->seq = 81;
	h->status = 1234;
	CHECK_EQ(wpp_handle_event(&hp.ctx, 0x9f), 0);
	CHECK_EQ(wpp_handle_event(&hp.ctx, 0xad), 0);
	CHECK_EQ(wpp_handle_event(&hp.ctx, 0xe1), 0);
	CHECK_EQ(h->status, 1234);
	CHECK_EQ(hp.ctx.counters.errors, 4);
	check_log_format(&hp);
	host_platform_close(&hp);
}

static void t_state_rules(void)
{
	struct host_platform hp;

	open_hp(&hp, 16 * MiB, 1);
	CHECK_EQ(add_page(&hp, 0x400000, ram_page(1)), WPP_E_STATE);
	CHECK_EQ(add_region(&hp, 0x400000, 4096, NULL), WPP_E_STATE);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_STATE);
	CHECK_EQ(get_pages(&hp, 0, 1, 0), WPP_E_STATE);
	CHECK_EQ(ev(&hp, WPP_EV_CONSUME), WPP_E_STATE);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_METADATA, 0, "x", 1), WPP_E_STATE);
	/* read data and debug work in any state */
	CHECK_EQ(read_data(&hp, WPP_SECTION_INTERNAL, 0, 8), WPP_OK);
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_DUMP, 0), WPP_OK);
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	CHECK_EQ(res(&hp, 0), 1);
	CHECK_EQ(add_page(&hp, 0x400000, ram_page(1)), WPP_OK);
	CHECK_EQ(get_pages(&hp, 0, 1, 0), WPP_E_STATE);
	host_platform_close(&hp);
}

static void t_init_resets(void)
{
	struct host_platform hp;
	struct wpp_counters c;

	open_hp(&hp, 16 * MiB, 1);
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x400000, 8192, "/bin/x"), WPP_OK);
	CHECK_EQ(add_page(&hp, 0x400000, ram_page(3)), WPP_OK);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_METADATA, 100, "abc", 3), WPP_OK);
	CHECK(region_slot(&hp, 0)->state & WPP_REGION_F_USED);
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	CHECK_EQ(res(&hp, 0), 2);
	CHECK_EQ(region_slot(&hp, 0)->state, 0);
	CHECK_EQ(page_slot(&hp, 0, 0)->virtual_address, 0);
	CHECK_EQ(hp.region[WPP_METADATA_OFFSET + 100], 0);
	memcpy(&c, hp.region + WPP_INTERNAL_OFFSET, sizeof(c));
	CHECK_EQ(c.generation, 2);
	CHECK_EQ(c.pages_used, 0);
	CHECK_EQ(c.regions_used, 0);
	CHECK_EQ(c.events[0], 2);
	CHECK(host_log_contains(&hp, "wpp: init status=0 generation=2"));
	host_platform_close(&hp);
}

static void t_regions(void)
{
	struct host_platform hp;
	struct wpp_region r;

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	CHECK_EQ(add_region(&hp, 0x400000, 0x1000, "/usr/bin/app"), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x600000, 0x3000, NULL), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x800000, 0x2000, NULL), WPP_OK);
	CHECK(!strcmp(region_slot(&hp, 0)->file_path, "/usr/bin/app"));
	CHECK_EQ(region_slot(&hp, 0)->state, WPP_REGION_F_USED | WPP_REGION_F_FILE);
	CHECK_EQ(region_slot(&hp, 1)->virtual_address, 0x600000);
	/* remove the middle one; the slot is reused first */
	CHECK_EQ(remove_region(&hp, 0x600000, 0x3000), WPP_OK);
	CHECK_EQ(region_slot(&hp, 1)->state & WPP_REGION_F_USED, 0);
	CHECK_EQ(remove_region(&hp, 0x600000, 0x3000), WPP_E_NOT_FOUND);
	CHECK_EQ(add_region(&hp, 0xa00000, 0x1000, NULL), WPP_OK);
	CHECK_EQ(region_slot(&hp, 1)->virtual_address, 0xa00000);
	CHECK_EQ(hp.ctx.region_hw, 3);
	/* length 0 in the key matches any length; mismatching length does not */
	CHECK_EQ(remove_region(&hp, 0x800000, 0x1000), WPP_E_NOT_FOUND);
	CHECK_EQ(remove_region(&hp, 0x800000, 0), WPP_OK);
	CHECK_EQ(hp.ctx.regions_used, 2);
	/* malformed */
	CHECK_EQ(add_region(&hp, 0x400001, 0x1000, NULL), WPP_E_BAD_ARG);
	CHECK_EQ(add_region(&hp, 0x400000, 0, NULL), WPP_E_BAD_ARG);
	CHECK_EQ(add_region(&hp, 0xfffffffffffff000ULL, 0x2000, NULL), WPP_E_BAD_ARG);
	memset(&r, 'A', sizeof(r));		/* path without NUL */
	r.virtual_address = 0x1000;
	r.length = 0x1000;
	CHECK_EQ(host_call(&hp, WPP_EV_ADD_REGION, &r, sizeof(r)), WPP_E_BAD_ARG);
	CHECK_EQ(host_call(&hp, WPP_EV_ADD_REGION, &r, sizeof(r) - 1), WPP_E_BAD_ARG);
	CHECK_EQ(host_call(&hp, WPP_EV_REMOVE_REGION, &r, 4), WPP_E_BAD_ARG);
	host_platform_close(&hp);
}

static void t_region_exhaustion(void)
{
	struct host_platform hp;
	wpp_u32 n = (wpp_u32)WPP_REGION_SLOTS;

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	for (wpp_u32 i = 0; i < n; i++)
		CHECK_EQ(add_region(&hp, (wpp_u64)i << 12, 0x1000, NULL), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x7000000000ULL, 0x1000, NULL), WPP_E_NO_SLOT);
	CHECK_EQ(remove_region(&hp, (wpp_u64)1234 << 12, 0), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x7000000000ULL, 0x1000, NULL), WPP_OK);
	CHECK_EQ(region_slot(&hp, 1234)->virtual_address, 0x7000000000ULL);
	CHECK_EQ(add_region(&hp, 0x7000001000ULL, 0x1000, NULL), WPP_E_NO_SLOT);
	host_platform_close(&hp);
}

/*
 * Removal searches outward from the bucket's last removal: whatever the order
 * (ascending, descending, scattered), every page is found exactly once, a wrong
 * pa is not found, and pa 0 removes the one mapping the va has.
 */
static void t_pages_remove_orders(void)
{
	struct host_platform hp;
	const unsigned int n = 64;	/* pages in bucket 3 */
	wpp_u64 va[64];

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	for (unsigned int round = 0; round < 3; round++) {
		for (unsigned int k = 0; k < n; k++) {
			va[k] = 0x7f0000003000ULL + ((wpp_u64)k << 16);
			CHECK_EQ(add_page(&hp, va[k], ram_page(k)), WPP_OK);
		}
		CHECK_EQ(hp.ctx.pages_used, n);
		CHECK_EQ(remove_page(&hp, va[5], ram_page(6)), WPP_E_NOT_FOUND);
		for (unsigned int k = 0; k < n; k++) {
			/* round 0 ascending, 1 descending, 2 scattered (stride 37 mod 64) */
			unsigned int j = round == 0 ? k : round == 1 ? n - 1 - k : (k * 37) % n;

			CHECK_EQ(remove_page(&hp, va[j], round == 2 ? 0 : ram_page(j)), WPP_OK);
			CHECK_EQ(remove_page(&hp, va[j], 0), WPP_E_NOT_FOUND);
		}
		CHECK_EQ(hp.ctx.pages_used, 0);
		CHECK_EQ(hp.ctx.bucket_hw[3], n);	/* slots are reused, never appended */
	}
	host_platform_close(&hp);
}

static void t_pages_buckets(void)
{
	struct host_platform hp;

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	for (unsigned int b = 0; b < 16; b++) {
		wpp_u64 va = 0x7f0000000000ULL | ((wpp_u64)b << 12);

		CHECK_EQ(WPP_PAGE_BUCKET(va), b);
		CHECK_EQ(add_page(&hp, va, ram_page(b)), WPP_OK);
		CHECK_EQ(page_slot(&hp, b, 0)->virtual_address, va | 1);
		CHECK_EQ(page_slot(&hp, b, 0)->physical_address, ram_page(b));
	}
	/* second page in bucket 5 goes to slot 1 */
	CHECK_EQ(add_page(&hp, 0x15000, ram_page(20)), WPP_OK);
	CHECK_EQ(page_slot(&hp, 5, 1)->virtual_address, 0x15001);
	/* remove by va+pa, wrong pa is not found, pa 0 matches any */
	CHECK_EQ(remove_page(&hp, 0x15000, ram_page(21)), WPP_E_NOT_FOUND);
	CHECK_EQ(remove_page(&hp, 0x15000, ram_page(20)), WPP_OK);
	CHECK_EQ(page_slot(&hp, 5, 1)->virtual_address, 0);
	CHECK_EQ(remove_page(&hp, 0x7f0000005000ULL, 0), WPP_OK);
	/* freed slots are reused LIFO, not appended */
	CHECK_EQ(add_page(&hp, 0x25000, ram_page(30)), WPP_OK);
	CHECK_EQ(page_slot(&hp, 5, 0)->virtual_address, 0x25001);
	CHECK_EQ(add_page(&hp, 0x35000, ram_page(31)), WPP_OK);
	CHECK_EQ(page_slot(&hp, 5, 1)->virtual_address, 0x35001);
	CHECK_EQ(hp.ctx.bucket_hw[5], 2);
	CHECK_EQ(hp.ctx.pages_used, 17);
	/* malformed */
	CHECK_EQ(add_page(&hp, 0x1001, ram_page(1)), WPP_E_BAD_ARG);
	CHECK_EQ(add_page(&hp, 0x1000, ram_page(1) + 8), WPP_E_BAD_ARG);
	CHECK_EQ(remove_page(&hp, 0x1008, 0), WPP_E_BAD_ARG);
	CHECK_EQ(remove_page(&hp, 0x99000, 0), WPP_E_NOT_FOUND);
	CHECK_EQ(host_call(&hp, WPP_EV_ADD_PAGE, NULL, 8), WPP_E_BAD_ARG);
	host_platform_close(&hp);
}

static void t_page_exhaustion(void)
{
	struct host_platform hp;
	wpp_u32 n = (wpp_u32)WPP_PAGE_BUCKET_SLOTS;

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	for (wpp_u32 i = 0; i < n; i++)
		CHECK_EQ(add_page(&hp, ((wpp_u64)i << 16) | 0x3000, ram_page(i % 4096)), WPP_OK);
	CHECK_EQ(add_page(&hp, 0x7fff03000ULL, ram_page(0)), WPP_E_NO_SLOT);
	/* other buckets are unaffected */
	CHECK_EQ(add_page(&hp, 0x7fff04000ULL, ram_page(0)), WPP_OK);
	CHECK_EQ(remove_page(&hp, ((wpp_u64)777 << 16) | 0x3000, 0), WPP_OK);
	CHECK_EQ(add_page(&hp, 0x7fff03000ULL, ram_page(0)), WPP_OK);
	CHECK_EQ(page_slot(&hp, 3, 777)->virtual_address, 0x7fff03001ULL);
	host_platform_close(&hp);
}

static void t_bad_addresses(void)
{
	struct host_platform hp;

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	CHECK_EQ(add_page(&hp, 0x1000, HOST_SMRAM_BASE), WPP_E_BAD_ADDR);
	CHECK_EQ(add_page(&hp, 0x1000, HOST_SMRAM_BASE + HOST_SMRAM_SIZE - 4096), WPP_E_BAD_ADDR);
	CHECK_EQ(add_page(&hp, 0x1000, WPP_REGION_BASE_DEFAULT), WPP_E_BAD_ADDR);
	CHECK_EQ(add_page(&hp, 0x1000, WPP_REGION_BASE_DEFAULT + WPP_MAILBOX_SIZE), WPP_E_BAD_ADDR);
	CHECK_EQ(add_page(&hp, 0x1000, 0), WPP_E_BAD_ADDR);		/* not RAM here */
	CHECK_EQ(add_page(&hp, 0x1000, HOST_RAM_BASE + HOST_RAM_SIZE), WPP_E_BAD_ADDR);
	CHECK_EQ(add_page(&hp, 0x1000, 0xfffffffffffff000ULL), WPP_E_BAD_ADDR);
	CHECK_EQ(add_page(&hp, 0x1000, HOST_RAM_BASE + HOST_RAM_SIZE - 4096), WPP_OK);
	CHECK_EQ(hp.ctx.pages_used, 1);
	CHECK(smram_intact(&hp));
	host_platform_close(&hp);
}

static void t_page_batch(void)
{
	struct host_platform hp;
	wpp_u8 buf[sizeof(struct wpp_page_batch) + 8 * sizeof(struct wpp_page_op)];
	struct wpp_page_batch *b = (void *)buf;
	struct wpp_page_op *ops = (void *)(buf + sizeof(*b));

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	memset(buf, 0, sizeof(buf));
	b->count = 5;
	for (int i = 0; i < 4; i++)
		ops[i] = (struct wpp_page_op){ 0x10000 + i * 0x1000, ram_page(i), 1, 0 };
	ops[4] = (struct wpp_page_op){ 0x11000, 0, WPP_PAGE_OP_REMOVE, 0 };
	CHECK_EQ(host_call(&hp, WPP_EV_PAGE_BATCH, buf, sizeof(*b) + 5 * sizeof(*ops)), WPP_OK);
	CHECK_EQ(res(&hp, 0), 5);
	CHECK_EQ(hp.ctx.pages_used, 3);
	CHECK_EQ(page_slot(&hp, 1, 0)->virtual_address, 0);
	/* stops at the first failing op, in order */
	b->count = 3;
	ops[0] = (struct wpp_page_op){ 0x20000, ram_page(9), WPP_PAGE_OP_ADD, 0 };
	ops[1] = (struct wpp_page_op){ 0x21000, HOST_SMRAM_BASE, WPP_PAGE_OP_ADD, 0 };
	ops[2] = (struct wpp_page_op){ 0x22000, ram_page(10), WPP_PAGE_OP_ADD, 0 };
	CHECK_EQ(host_call(&hp, WPP_EV_PAGE_BATCH, buf, sizeof(*b) + 3 * sizeof(*ops)),
		 WPP_E_BAD_ADDR);
	CHECK_EQ(res(&hp, 0), 1);
	CHECK_EQ(hp.ctx.pages_used, 4);
	CHECK_EQ(page_slot(&hp, 0, 1)->virtual_address, 0x20001);
	CHECK_EQ(page_slot(&hp, 2, 1)->virtual_address, 0);
	CHECK_EQ(hp.ctx.bucket_hw[2], 1);
	/* unknown op, count beyond payload, flags */
	b->count = 1;
	ops[0].op = 7;
	CHECK_EQ(host_call(&hp, WPP_EV_PAGE_BATCH, buf, sizeof(*b) + sizeof(*ops)),
		 WPP_E_BAD_ARG);
	b->count = 3;
	CHECK_EQ(host_call(&hp, WPP_EV_PAGE_BATCH, buf, sizeof(*b) + 2 * sizeof(*ops)),
		 WPP_E_BAD_ARG);
	b->count = 0xffffffff;
	CHECK_EQ(host_call(&hp, WPP_EV_PAGE_BATCH, buf, sizeof(buf)), WPP_E_BAD_ARG);
	b->count = 0;
	b->flags = 1;
	CHECK_EQ(host_call(&hp, WPP_EV_PAGE_BATCH, buf, sizeof(*b)), WPP_E_BAD_ARG);
	host_platform_close(&hp);
}

static void t_data(void)
{
	struct host_platform hp;
	const wpp_u8 *reply;

	open_hp(&hp, 16 * MiB, 1);
	ev(&hp, WPP_EV_INIT);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_METADATA, 4096, "process-control-block", 21), WPP_OK);
	CHECK(!memcmp(hp.region + WPP_METADATA_OFFSET + 4096, "process-control-block", 21));
	CHECK_EQ(hp.ctx.metadata_used, 4096 + 21);
	CHECK_EQ(read_data(&hp, WPP_SECTION_METADATA, 4096, 21), WPP_OK);
	reply = (wpp_u8 *)host_payload(&hp) + sizeof(struct wpp_data_cmd);
	CHECK(!memcmp(reply, "process-control-block", 21));
	CHECK_EQ(host_mailbox(&hp)->payload_len, sizeof(struct wpp_data_cmd) + 21);
	/* only Metadata is writable */
	CHECK_EQ(write_meta(&hp, WPP_SECTION_REGIONS, 0, "x", 1), WPP_E_READ_ONLY);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_INTERNAL, 0, "x", 1), WPP_E_READ_ONLY);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_PAGES, 0, "x", 1), WPP_E_READ_ONLY);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_MAILBOX, 0, "x", 1), WPP_E_READ_ONLY);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_COUNT, 0, "x", 1), WPP_E_BAD_ARG);
	/* bounds (incl. 32-bit overflow of offset + size) */
	CHECK_EQ(write_meta(&hp, WPP_SECTION_METADATA, WPP_METADATA_SIZE - 2, "abc", 3),
		 WPP_E_BOUNDS);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_METADATA, WPP_METADATA_SIZE - 3, "abc", 3), WPP_OK);
	CHECK_EQ(write_meta(&hp, WPP_SECTION_METADATA, 0xffffffff, "abc", 3), WPP_E_BOUNDS);
	CHECK_EQ(read_data(&hp, WPP_SECTION_PAGES, WPP_PAGES_SIZE - 8, 16), WPP_E_BOUNDS);
	CHECK_EQ(read_data(&hp, WPP_SECTION_PAGES, 0, WPP_MAILBOX_PAYLOAD_MAX), WPP_E_BOUNDS);
	CHECK_EQ(read_data(&hp, WPP_SECTION_MAILBOX, 0, 16), WPP_E_BAD_ARG);
	/* size larger than the bytes supplied */
	{
		wpp_u8 buf[256] = { 0 };
		struct wpp_data_cmd c = { WPP_SECTION_METADATA, 0, 100, 0 };

		memcpy(buf, &c, sizeof(c));
		CHECK_EQ(host_call(&hp, WPP_EV_WRITE_DATA, buf, sizeof(c) + 10), WPP_E_BAD_ARG);
		c.reserved = 1;
		memcpy(buf, &c, sizeof(c));
		CHECK_EQ(host_call(&hp, WPP_EV_WRITE_DATA, buf, sizeof(c) + 100), WPP_E_BAD_ARG);
	}
	/* counters readable from Internal offset 0 */
	CHECK_EQ(read_data(&hp, WPP_SECTION_INTERNAL, 0, sizeof(struct wpp_counters)), WPP_OK);
	{
		struct wpp_counters c;

		memcpy(&c, reply, sizeof(c));
		CHECK_EQ(c.generation, 1);
		CHECK_EQ(c.metadata_used, WPP_METADATA_SIZE);
		CHECK(c.errors >= 8);
	}
	host_platform_close(&hp);
}

/* A synthetic process: regions, metadata and pages (contiguous runs + scattered). */
#define SYN_PAGES 300
static void build_process(struct host_platform *hp, wpp_u32 seed)
{
	char meta[3000];

	CHECK_EQ(ev(hp, WPP_EV_INIT), WPP_OK);
	CHECK_EQ(add_region(hp, 0x400000, 0x100000, "/usr/bin/synthetic"), WPP_OK);
	CHECK_EQ(add_region(hp, 0x7f0000000000ULL, 0x200000, NULL), WPP_OK);
	CHECK_EQ(add_region(hp, 0x900000, 0x4000, NULL), WPP_OK);
	CHECK_EQ(remove_region(hp, 0x900000, 0), WPP_OK);	/* hole in the slots */
	CHECK_EQ(add_region(hp, 0x7ffff000000ULL, 0x21000, "[stack]"), WPP_OK);
	for (unsigned int i = 0; i < sizeof(meta); i++)
		meta[i] = (char)('a' + (i * seed) % 26);
	CHECK_EQ(write_meta(hp, WPP_SECTION_METADATA, 0, meta, sizeof(meta)), WPP_OK);
	for (unsigned int i = 0; i < SYN_PAGES; i++) {
		/* pages 0-99 physically contiguous, the rest scattered */
		unsigned int frame = i < 100 ? 1000 + i : (i * 37) % 900 + 2000;

		fill_page(hp, frame, seed);
		CHECK_EQ(add_page(hp, 0x7f0000000000ULL + (wpp_u64)i * 4096, ram_page(frame)),
			 WPP_OK);
	}
	/* remove a few, add them back elsewhere */
	CHECK_EQ(remove_page(hp, 0x7f0000000000ULL + 50 * 4096, 0), WPP_OK);
	fill_page(hp, 3999, seed);
	CHECK_EQ(add_page(hp, 0x7f0000000000ULL + 50 * 4096, ram_page(3999)), WPP_OK);
}

struct expect_page {
	wpp_u64 va, pa;
};

/* The page list the firmware persists: bucket order, slot order. */
static int collect_pages(struct host_platform *hp, struct expect_page *out)
{
	int n = 0;

	for (unsigned int b = 0; b < 16; b++)
		for (wpp_u32 i = 0; i < hp->ctx.bucket_hw[b]; i++) {
			struct wpp_page_mapping *m = page_slot(hp, b, i);

			if (m->virtual_address & 1)
				out[n++] = (struct expect_page){ m->virtual_address & ~1ULL,
								 m->physical_address };
		}
	return n;
}

static void t_roundtrip(void)
{
	struct host_platform hp, hp2;
	static struct expect_page exp[SYN_PAGES + 10];
	static wpp_u8 saved[SYN_PAGES][4096];	/* by va index */
	static wpp_u64 orig_pa[SYN_PAGES];
	static int seen[SYN_PAGES];
	static wpp_u32 list_index[SYN_PAGES];	/* va index -> snapshot index */
	const wpp_u64 vbase = 0x7f0000000000ULL;
	struct wpp_region regs[8];
	char meta[3000];
	int n;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 7);
	n = collect_pages(&hp, exp);
	CHECK_EQ(n, SYN_PAGES);
	for (int i = 0; i < n; i++) {
		wpp_u64 vi = (exp[i].va - vbase) / 4096;

		CHECK(vi < SYN_PAGES);
		memcpy(saved[vi], host_phys(&hp, exp[i].pa), 4096);
		orig_pa[vi] = exp[i].pa;
	}
	memcpy(meta, hp.region + WPP_METADATA_OFFSET, sizeof(meta));
	memcpy(&regs[0], region_slot(&hp, 0), sizeof(regs[0]));
	memcpy(&regs[1], region_slot(&hp, 1), sizeof(regs[0]));
	memcpy(&regs[2], region_slot(&hp, 2), sizeof(regs[0]));	/* reused slot: [stack] */
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	CHECK_EQ(res(&hp, 0), SYN_PAGES);
	CHECK_EQ(res(&hp, 1), SYN_PAGES * 4096);
	CHECK_EQ(res(&hp, 2), sizeof(meta));
	CHECK(host_log_contains(&hp, "wpp: persist status=0 seq=1 pages=300 page_bytes=1228800 "
				"meta_bytes=3000 regions=3 "));
	CHECK(host_log_contains(&hp, " time_us="));
	check_log_format(&hp);
	host_platform_close(&hp);

	/* "reboot": fresh RAM, fresh region, same device */
	open_hp(&hp2, 0, 0);
	CHECK_EQ(restore(&hp2, 0), WPP_OK);
	CHECK_EQ(res(&hp2, 0), 3);
	CHECK_EQ(res(&hp2, 1), SYN_PAGES);
	CHECK_EQ(res(&hp2, 2), sizeof(meta));
	CHECK_EQ(res(&hp2, 3), 1);
	CHECK(!memcmp(hp2.region + WPP_METADATA_OFFSET, meta, sizeof(meta)));
	CHECK(!memcmp(region_slot(&hp2, 0), &regs[0], sizeof(regs[0])));
	CHECK(!memcmp(region_slot(&hp2, 1), &regs[1], sizeof(regs[0])));
	CHECK(!memcmp(region_slot(&hp2, 2), &regs[2], sizeof(regs[0])));
	CHECK(!strcmp(region_slot(&hp2, 2)->file_path, "[stack]"));
	/* the restored page list covers every page once, with its original frame */
	for (int i = 0; i < n; i++) {
		struct wpp_page_mapping *m =
			(struct wpp_page_mapping *)(hp2.region + WPP_PAGES_OFFSET) + i;
		wpp_u64 vi = (m->virtual_address - vbase) / 4096;

		CHECK(vi < SYN_PAGES);
		CHECK(!seen[vi]);
		seen[vi] = 1;
		CHECK_EQ(m->physical_address, orig_pa[vi]);
		list_index[vi] = (wpp_u32)i;
	}
	/* pages byte-exact: into the mailbox, and into OS RAM */
	for (int vi = 0; vi < n; vi++) {
		CHECK_EQ(get_pages(&hp2, list_index[vi], 1, 0), WPP_OK);
		CHECK_EQ(res(&hp2, 0), 1);
		CHECK(!memcmp((wpp_u8 *)host_payload(&hp2) + sizeof(struct wpp_get_pages),
			      saved[vi], 4096));
	}
	CHECK_EQ(get_pages(&hp2, 0, 100, ram_page(10)), WPP_OK);
	for (int i = 0; i < 100; i++) {
		struct wpp_page_mapping *m =
			(struct wpp_page_mapping *)(hp2.region + WPP_PAGES_OFFSET) + i;
		wpp_u64 vi = (m->virtual_address - vbase) / 4096;

		CHECK(!memcmp(host_phys(&hp2, ram_page(10 + i)), saved[vi], 4096));
	}
	/* tracking is refused until INIT */
	CHECK_EQ(add_page(&hp2, 0x1000, ram_page(1)), WPP_E_STATE);
	CHECK(host_log_contains(&hp2, "wpp: restore status=0 seq=1 pages=300"));
	/* the recreated process' next persist continues the sequence, cycle after cycle */
	CHECK_EQ(ev(&hp2, WPP_EV_INIT), WPP_OK);
	CHECK_EQ(ev(&hp2, WPP_EV_PERSIST), WPP_OK);
	CHECK(host_log_contains(&hp2, "wpp: persist status=0 seq=2 "));
	check_log_format(&hp2);
	host_platform_close(&hp2);
}

static void t_coalesce_and_used_only(void)
{
	struct host_platform hp;
	struct wpp_snapshot_header h;
	FILE *f;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 3);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	/* pages 0-49 and 51-99 contiguous (50 moved) + scattered ones: far fewer
	 * transfers than pages */
	{
		const char *p = strstr(hp.log, "runs=");
		long runs;

		CHECK(p);
		runs = strtol(p + 5, NULL, 10);
		CHECK(runs < SYN_PAGES - 90);
		CHECK(runs > 1);
	}
	host_platform_close(&hp);
	f = fopen(dev_path, "rb");
	CHECK(f);
	CHECK_EQ(fread(&h, sizeof(h), 1, f), 1);
	fclose(f);
	CHECK(!memcmp(h.magic, WPP_SNAP_MAGIC, 8));
	CHECK_EQ(h.sections[WPP_SNAP_SEC_METADATA].length, 3000);
	CHECK_EQ(h.sections[WPP_SNAP_SEC_REGIONS].count, 3);
	CHECK_EQ(h.sections[WPP_SNAP_SEC_REGIONS].length, 3 * sizeof(struct wpp_region));
	CHECK_EQ(h.sections[WPP_SNAP_SEC_PAGELIST].count, SYN_PAGES);
	/* header+marker, metadata 3000 B, 3 regions, 300-entry list: 4 KiB aligned */
	CHECK_EQ(h.sections[WPP_SNAP_SEC_REGIONS].offset, 0x3000);
	CHECK_EQ(h.sections[WPP_SNAP_SEC_PAGELIST].offset, 0x4000);
	CHECK_EQ(h.page_area_offset, 0x6000);
	CHECK_EQ(h.page_area_length, SYN_PAGES * 4096ULL);
	CHECK_EQ(h.flags, WPP_SNAP_F_PAGE_CRC);

	/* a device just too small is refused before anything is written */
	open_hp(&hp, h.page_area_offset + h.page_area_length - 1, 1);
	build_process(&hp, 3);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_TOO_BIG);
	CHECK(host_log_contains(&hp, "error=too_big"));
	host_platform_close(&hp);
	open_hp(&hp, h.page_area_offset + h.page_area_length, 1);
	build_process(&hp, 3);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	host_platform_close(&hp);
}

static void persist_fresh(wpp_u32 seed)
{
	struct host_platform hp;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, seed);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	host_platform_close(&hp);
}

static void corrupt_byte(wpp_u64 off)
{
	FILE *f = fopen(dev_path, "r+b");
	int c;

	CHECK(f);
	fseek(f, (long)off, SEEK_SET);
	c = fgetc(f);
	fseek(f, (long)off, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
}

static void read_hdr(struct wpp_snapshot_header *h)
{
	FILE *f = fopen(dev_path, "rb");

	CHECK(f);
	CHECK_EQ(fread(h, sizeof(*h), 1, f), 1);
	fclose(f);
}

static int restore_status(const char *expect_log)
{
	struct host_platform hp;
	int rc;

	open_hp(&hp, 0, 0);
	rc = restore(&hp, 0);
	if (expect_log && !host_log_contains(&hp, expect_log)) {
		fprintf(stderr, "log lacks '%s':\n%s", expect_log, hp.log ? hp.log : "");
		exit(1);
	}
	if (rc != WPP_OK)
		CHECK_EQ(hp.ctx.state, WPP_STATE_IDLE);
	check_log_format(&hp);
	host_platform_close(&hp);
	return rc;
}

static void t_crc_failures(void)
{
	struct wpp_snapshot_header h;

	persist_fresh(5);
	read_hdr(&h);
	CHECK_EQ(restore_status(NULL), WPP_OK);

	corrupt_byte(h.page_area_offset + 5 * 4096 + 17);
	CHECK_EQ(restore_status("check=page_crc"), WPP_E_CORRUPT);

	persist_fresh(5);
	corrupt_byte(h.sections[WPP_SNAP_SEC_METADATA].offset + 100);
	CHECK_EQ(restore_status("check=section_crc section=metadata"), WPP_E_CORRUPT);

	persist_fresh(5);
	corrupt_byte(h.sections[WPP_SNAP_SEC_REGIONS].offset + 3);
	CHECK_EQ(restore_status("section=regions"), WPP_E_CORRUPT);

	persist_fresh(5);
	corrupt_byte(h.sections[WPP_SNAP_SEC_PAGELIST].offset + 20);
	CHECK_EQ(restore_status("section=pagelist"), WPP_E_CORRUPT);

	persist_fresh(5);
	corrupt_byte(offsetof(struct wpp_snapshot_header, page_count));
	CHECK_EQ(restore_status("check=header_crc"), WPP_E_CORRUPT);
}

static void write_at(wpp_u64 off, const void *d, size_t n)
{
	FILE *f = fopen(dev_path, "r+b");

	CHECK(f);
	fseek(f, (long)off, SEEK_SET);
	CHECK_EQ(fwrite(d, n, 1, f), 1);
	fclose(f);
}

static void t_marker_and_version(void)
{
	struct wpp_snapshot_header h;
	struct wpp_snapshot_marker m;
	static const wpp_u8 zero[64];

	/* blank device */
	{
		struct host_platform hp;

		open_hp(&hp, 16 * MiB, 1);
		host_platform_close(&hp);
	}
	CHECK_EQ(restore_status("check=no_header"), WPP_E_NO_SNAPSHOT);

	persist_fresh(9);
	write_at(WPP_SNAP_MARKER_OFFSET, zero, sizeof(zero));
	CHECK_EQ(restore_status("check=marker_missing"), WPP_E_INCOMPLETE);

	/* marker of another persist (sequence mismatch) */
	persist_fresh(9);
	{
		FILE *f = fopen(dev_path, "rb");

		CHECK(f);
		fseek(f, WPP_SNAP_MARKER_OFFSET, SEEK_SET);
		CHECK_EQ(fread(&m, sizeof(m), 1, f), 1);
		fclose(f);
	}
	m.sequence++;
	m.marker_crc32 = 0;
	m.marker_crc32 = wpp_crc32(0, &m, sizeof(m));
	write_at(WPP_SNAP_MARKER_OFFSET, &m, sizeof(m));
	CHECK_EQ(restore_status("check=marker_mismatch"), WPP_E_INCOMPLETE);

	/* marker itself damaged */
	persist_fresh(9);
	corrupt_byte(WPP_SNAP_MARKER_OFFSET + 30);
	CHECK_EQ(restore_status("check=marker_crc"), WPP_E_INCOMPLETE);

	/* a future format version: refused as VERSION even with valid CRCs */
	persist_fresh(9);
	read_hdr(&h);
	h.format_version = WPP_SNAP_FORMAT_VERSION + 1;
	h.header_crc32 = 0;
	h.header_crc32 = wpp_crc32(0, &h, sizeof(h));
	write_at(0, &h, sizeof(h));
	CHECK_EQ(restore_status("check=format_version"), WPP_E_VERSION);
}

static void t_consume(void)
{
	struct host_platform hp;

	persist_fresh(11);
	open_hp(&hp, 0, 0);
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	CHECK_EQ(ev(&hp, WPP_EV_CONSUME), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: consume status=0 seq=1"));
	host_platform_close(&hp);
	CHECK_EQ(restore_status("check=consumed"), WPP_E_CONSUMED);
	open_hp(&hp, 0, 0);
	CHECK_EQ(restore(&hp, WPP_RESTORE_F_FORCE), WPP_OK);
	CHECK_EQ(get_pages(&hp, 0, 1, 0), WPP_OK);
	CHECK_EQ(restore(&hp, 0x80), WPP_E_BAD_ARG);
	host_platform_close(&hp);
}

static void t_get_pages_checks(void)
{
	struct host_platform hp;

	persist_fresh(13);
	open_hp(&hp, 0, 0);
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	CHECK_EQ(get_pages(&hp, SYN_PAGES - 1, 1, 0), WPP_OK);
	CHECK_EQ(get_pages(&hp, SYN_PAGES - 1, 2, 0), WPP_E_BOUNDS);
	CHECK_EQ(get_pages(&hp, 0xffffffff, 2, 0), WPP_E_BOUNDS);
	CHECK_EQ(get_pages(&hp, 0, 0, 0), WPP_E_BOUNDS);
	CHECK_EQ(get_pages(&hp, 0, 1, HOST_SMRAM_BASE), WPP_E_BAD_ADDR);
	CHECK_EQ(get_pages(&hp, 0, 2, HOST_SMRAM_BASE - 4096), WPP_E_BAD_ADDR);
	CHECK_EQ(get_pages(&hp, 0, 1, WPP_REGION_BASE_DEFAULT + WPP_METADATA_OFFSET),
		 WPP_E_BAD_ADDR);
	CHECK_EQ(get_pages(&hp, 0, 1, 0x5000), WPP_E_BAD_ADDR);	/* not RAM */
	CHECK_EQ(get_pages(&hp, 0, 2, HOST_RAM_BASE + HOST_RAM_SIZE - 4096), WPP_E_BAD_ADDR);
	/* each refusal names the branch that refused it: an SMRAM address must be
	 * refused by the SMRAM check, not fall through to the RAM-range check */
	CHECK(host_log_contains(&hp, "get_pages status=8 error=bad_addr reason=smram "
				"dest=0x7ff00000"));
	CHECK(host_log_contains(&hp, "reason=smram dest=0x7feff000"));
	CHECK(host_log_contains(&hp, "reason=region dest=0x11000000"));
	CHECK(host_log_contains(&hp, "reason=not_ram dest=0x5000"));
	CHECK(host_log_contains(&hp, "reason=not_ram dest=0x10ff000"));
	CHECK(smram_intact(&hp));
	host_platform_close(&hp);
}

/*
 * GET_PAGES into a list of frames: neighbouring (one run), scattered and
 * descending frames get exactly the bytes the mailbox form returns; the list
 * must lie in the payload; a bad frame stops the call there, with the frames
 * before it written and those after it untouched.
 */
static void t_get_pages_frames(void)
{
	static wpp_u8 want[8][4096];
	const wpp_u64 frames[8] = { ram_page(40), ram_page(41), ram_page(42), ram_page(30),
				    ram_page(20), ram_page(21), ram_page(50), ram_page(49) };
	const struct { wpp_u64 pa; const char *log; } bad[] = {
		{ HOST_SMRAM_BASE, "reason=smram frame=3 dest=0x7ff00000" },
		{ ram_page(30) + 8, "reason=unaligned frame=3" },
		{ WPP_REGION_BASE_DEFAULT, "reason=region frame=3" },
		{ 0x5000, "reason=not_ram frame=3" },
	};
	struct {
		struct wpp_get_pages g;
		wpp_u64 f[8];
	} req;
	struct host_platform hp;

	persist_fresh(17);
	open_hp(&hp, 0, 0);
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(get_pages(&hp, 5 + i, 1, 0), WPP_OK);
		memcpy(want[i], (wpp_u8 *)host_payload(&hp) + sizeof(struct wpp_get_pages), 4096);
	}
	CHECK(memcmp(want[0], want[1], 4096));
	req.g = (struct wpp_get_pages){ 5, 8, WPP_GET_PAGES_FRAMES };
	memcpy(req.f, frames, sizeof(frames));
	for (int i = 0; i < 8; i++)
		memset(host_phys(&hp, frames[i]), 0xa5, 4096);
	CHECK_EQ(host_call(&hp, WPP_EV_GET_PAGES, &req, sizeof(req)), WPP_OK);
	CHECK_EQ(res(&hp, 0), 8);
	for (int i = 0; i < 8; i++)
		CHECK(!memcmp(host_phys(&hp, frames[i]), want[i], 4096));
	CHECK_EQ(host_call(&hp, WPP_EV_GET_PAGES, &req, sizeof(req) - 8), WPP_E_BAD_ARG);
	for (unsigned int b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
		wpp_u8 untouched[4096];

		memset(untouched, 0xa5, sizeof(untouched));
		for (int i = 0; i < 8; i++)
			memset(host_phys(&hp, frames[i]), 0xa5, 4096);
		req.f[3] = bad[b].pa;
		CHECK_EQ(host_call(&hp, WPP_EV_GET_PAGES, &req, sizeof(req)), WPP_E_BAD_ADDR);
		CHECK(host_log_contains(&hp, bad[b].log));
		for (int i = 0; i < 8; i++)
			if (i != 3)
				CHECK(!memcmp(host_phys(&hp, frames[i]), i < 3 ? want[i] : untouched,
					      4096));
	}
	CHECK(smram_intact(&hp));
	host_platform_close(&hp);
}

static void t_debug(void)
{
	struct host_platform hp;
	wpp_u8 before[4096], after[4096];
	FILE *f;

	open_hp(&hp, 1 * MiB, 1);
	f = fopen(dev_path, "r+b");
	CHECK(f);
	fseek(f, 1 * MiB - 4096, SEEK_SET);
	memset(before, 0x3c, sizeof(before));
	CHECK_EQ(fwrite(before, sizeof(before), 1, f), 1);
	fclose(f);
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_TOGGLE, WPP_DEBUG_F_VERBOSE), WPP_OK);
	CHECK_EQ(res(&hp, 0), WPP_DEBUG_F_VERBOSE);
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_TOGGLE, WPP_DEBUG_F_TRACE_PAGES), WPP_OK);
	CHECK_EQ(res(&hp, 0), WPP_DEBUG_F_VERBOSE | WPP_DEBUG_F_TRACE_PAGES);
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_TOGGLE, 0x100), WPP_E_BAD_ARG);
	ev(&hp, WPP_EV_INIT);
	CHECK_EQ(add_page(&hp, 0x3000, ram_page(2)), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: add_page status=0 bucket=3 slot=0 va=0x3000"));
	CHECK_EQ(add_region(&hp, 0x3000, 0x1000, NULL), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: add_region status=0 slot=0"));
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_DUMP, 0), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: dump state=1 generation=1 regions=1"));
	CHECK(host_log_contains(&hp, "wpp: dump bucket=3 hw=1"));
	CHECK(host_log_contains(&hp, "wpp: dump event=add_page calls=1"));
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SELFTEST, 0), WPP_OK);
	CHECK_EQ(res(&hp, 1), 1 * MiB);
	CHECK(host_log_contains(&hp, "wpp: selftest status=0 dev=hostfile size=1048576"));
	f = fopen(dev_path, "rb");
	CHECK(f);
	fseek(f, 1 * MiB - 4096, SEEK_SET);
	CHECK_EQ(fread(after, sizeof(after), 1, f), 1);
	fclose(f);
	CHECK(!memcmp(before, after, sizeof(before)));	/* self-test leaves data intact */
	hp.fail_probe = WPP_E_NO_DEVICE;
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SELFTEST, 0), WPP_E_NO_DEVICE);
	CHECK_EQ(debug_op(&hp, 99, 0), WPP_E_BAD_ARG);
	check_log_format(&hp);
	host_platform_close(&hp);
}

static void t_device_errors(void)
{
	struct host_platform hp;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 1);
	hp.fail_probe = WPP_E_NO_DEVICE;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_NO_DEVICE);
	hp.fail_probe = 0;
	hp.fail_write = WPP_E_DEVICE_IO;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_DEVICE_IO);
	CHECK(host_log_contains(&hp, "wpp: persist status=11 error=device_io"));
	hp.fail_write = WPP_E_TIMEOUT;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_TIMEOUT);
	hp.fail_write = 0;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	host_platform_close(&hp);
}

/* Four pages in bucket 0 (slots 0-3), the second removed again: slot 1 is
 * free below the high water mark, the OS may scribble on it. */
static void bucket0_with_hole(struct host_platform *hp)
{
	open_hp(hp, 64 * MiB, 1);
	ev(hp, WPP_EV_INIT);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(add_page(hp, 0x10000 + i * 0x10000, ram_page(i)), WPP_OK);
	CHECK_EQ(remove_page(hp, 0x20000, 0), WPP_OK);
}

static void t_tampered_slots(void)
{
	struct host_platform hp;

	bucket0_with_hole(&hp);
	/* the OS points the free link far away: ignored, allocation stays in bounds */
	page_slot(&hp, 0, 1)->physical_address = 0x7fffffff;
	CHECK_EQ(add_page(&hp, 0x50000, ram_page(5)), WPP_OK);
	CHECK_EQ(add_page(&hp, 0x60000, ram_page(6)), WPP_OK);
	CHECK(hp.ctx.bucket_hw[0] <= 6);
	/* the OS forges a used slot pointing into SMRAM: persist refuses */
	page_slot(&hp, 0, 2)->physical_address = HOST_SMRAM_BASE;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_BAD_ADDR);
	CHECK(host_log_contains(&hp, "persist check=page_slot"));
	/* forged slot in the wrong bucket is refused too */
	page_slot(&hp, 0, 2)->physical_address = ram_page(2);
	page_slot(&hp, 0, 2)->virtual_address = 0x31001;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_BAD_ADDR);
	/* region free link tampering */
	CHECK_EQ(add_region(&hp, 0x1000, 0x1000, NULL), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x2000, 0x1000, NULL), WPP_OK);
	CHECK_EQ(remove_region(&hp, 0x1000, 0), WPP_OK);
	region_slot(&hp, 0)->file_offset = 0xffffffffffULL;
	CHECK_EQ(add_region(&hp, 0x3000, 0x1000, NULL), WPP_OK);
	CHECK_EQ(add_region(&hp, 0x4000, 0x1000, NULL), WPP_OK);
	CHECK(hp.ctx.region_hw <= 3);
	CHECK(smram_intact(&hp));
	host_platform_close(&hp);
}

/* The OS changes a page slot once, at the first device write of a persist:
 * after the pages were counted, before they are walked. */
static int slot_change;		/* < 0: slot 0 of bucket 0 is freed; > 0: slot 1 is used */

static void change_slot_once(struct host_platform *hp, wpp_u64 off)
{
	(void)off;
	if (slot_change < 0) {
		page_slot(hp, 0, 0)->virtual_address &= ~WPP_PAGE_USED;
	} else {
		page_slot(hp, 0, 1)->virtual_address = 0x20000 | WPP_PAGE_USED;
		page_slot(hp, 0, 1)->physical_address = ram_page(1);
	}
	hp->on_write = NULL;
}

/* Slots that change between count and walk fail the persist (the header
 * would not match the page list), and the device then holds no snapshot. */
static void t_slots_changed(void)
{
	struct host_platform hp;

	bucket0_with_hole(&hp);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);

	slot_change = -1;
	hp.on_write = change_slot_once;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_STATE);
	CHECK(host_log_contains(&hp, "persist check=slots_changed counted=3 found=2"));
	page_slot(&hp, 0, 0)->virtual_address |= WPP_PAGE_USED;

	host_log_clear(&hp);
	slot_change = 1;
	hp.on_write = change_slot_once;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_STATE);
	CHECK(host_log_contains(&hp, "persist check=slots_changed counted=3"));
	CHECK(!host_log_contains(&hp, "found="));
	CHECK(smram_intact(&hp));
	host_platform_close(&hp);
	/* the good snapshot's marker was invalidated first: nothing half-valid to restore */
	CHECK_EQ(restore_status("check=marker_missing"), WPP_E_INCOMPLETE);
}

/* Simulated power loss: the device stops accepting bytes after N. */
static void t_power_cut(void)
{
	struct host_platform hp;
	long long total;
	long long cuts[400];
	int ncuts = 0;

	/* measure the bytes a complete persist writes */
	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 21);
	hp.write_budget = 1LL << 40;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	total = (1LL << 40) - hp.write_budget;
	host_platform_close(&hp);
	CHECK(total > SYN_PAGES * 4096);

	for (long long c = 0; c < 64; c++)
		cuts[ncuts++] = c;
	for (long long c = total - 64; c < total; c++)
		cuts[ncuts++] = c;
	srand(1234);
	while (ncuts < 300)
		cuts[ncuts++] = rand() % total;

	for (int k = 0; k < ncuts; k++) {
		/* blank device: any cut leaves no usable snapshot */
		open_hp(&hp, 64 * MiB, 1);
		build_process(&hp, 21);
		hp.write_budget = cuts[k];
		ev(&hp, WPP_EV_PERSIST);
		host_platform_close(&hp);
		if (restore_status(NULL) == WPP_OK) {
			fprintf(stderr, "cut at %lld of %lld bytes was accepted\n", cuts[k], total);
			exit(1);
		}
	}
	/* with a previous complete snapshot (seq 1): a cut persist (seq 2) either
	 * leaves the old snapshot intact (nothing written yet) or is refused */
	for (int k = 0; k < 120; k++) {
		struct host_platform r;
		int rc;

		open_hp(&hp, 64 * MiB, 1);
		build_process(&hp, 21);
		CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
		build_process(&hp, 22);
		hp.write_budget = cuts[k];
		ev(&hp, WPP_EV_PERSIST);
		host_platform_close(&hp);
		open_hp(&r, 0, 0);
		rc = restore(&r, 0);
		if (rc == WPP_OK) {
			CHECK_EQ(cuts[k], 0);
			CHECK_EQ(res(&r, 3), 1);
		}
		host_platform_close(&r);
	}
	/* the full byte count succeeds */
	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 21);
	hp.write_budget = total;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	host_platform_close(&hp);
	CHECK_EQ(restore_status(NULL), WPP_OK);
}

static wpp_u64 rnd64(void)
{
	return ((wpp_u64)rand() << 42) ^ ((wpp_u64)rand() << 21) ^ (wpp_u64)rand();
}

/* Interesting physical addresses: RAM, SMRAM, region, edges, garbage. */
static wpp_u64 rnd_addr(void)
{
	switch (rand() % 8) {
	case 0: return HOST_SMRAM_BASE + (wpp_u64)(rand() % 256) * 4096;
	case 1: return WPP_REGION_BASE_DEFAULT + (wpp_u64)(rand() % 65536) * 4096;
	case 2: return HOST_RAM_BASE + HOST_RAM_SIZE - (wpp_u64)(rand() % 3) * 4096;
	case 3: return rnd64();
	case 4: return rnd64() & ~0xfffULL;
	default: return ram_page((unsigned int)rand() % 4096);
	}
}

static void t_fuzz(void)
{
	struct host_platform hp;
	int iters = getenv("WPP_FUZZ_ITERS") ? atoi(getenv("WPP_FUZZ_ITERS")) : 20000;
	wpp_u8 *shadow = malloc(HOST_RAM_SIZE);

	CHECK(shadow);
	open_hp(&hp, 8 * MiB, 1);
	srand(4242);
	for (unsigned int i = 0; i < HOST_RAM_SIZE; i += 4096)
		fill_page(&hp, i / 4096, 1);
	memcpy(shadow, hp.ram, HOST_RAM_SIZE);
	for (int it = 0; it < iters; it++) {
		wpp_u8 e = (wpp_u8)(WPP_EV_FIRST + rand() % (WPP_EV_COUNT + 2) - 1);
		wpp_u8 *pl = host_payload(&hp);
		wpp_u32 len = (wpp_u32)(rand() % 512);
		struct wpp_mailbox_hdr *h = host_mailbox(&hp);
		int handled, get_pages_to_ram = 0;

		for (wpp_u32 k = 0; k < 512; k += 8) {
			wpp_u64 v = (rand() % 3) ? rnd_addr() : rnd64();

			memcpy(pl + k, &v, 8);
		}
		/* plausible structures half of the time */
		switch (e) {
		case WPP_EV_WRITE_DATA:
		case WPP_EV_READ_DATA: {
			struct wpp_data_cmd c = { (wpp_u32)(rand() % 6),
				(wpp_u32)(rand() % 2 ? (wpp_u64)(rand() % 65536) : rnd64()),
				(wpp_u32)(rand() % 2 ? (wpp_u64)(rand() % 600) : rnd64()), 0 };

			if (rand() % 2)
				memcpy(pl, &c, sizeof(c));
			break;
		}
		case WPP_EV_PAGE_BATCH:
			if (rand() % 2) {
				wpp_u32 cnt = (wpp_u32)(rand() % 25), z = 0;

				memcpy(pl, &cnt, 4);
				memcpy(pl + 4, &z, 4);
				for (wpp_u32 k = 0; k < cnt; k++) {
					wpp_u32 op = (wpp_u32)(rand() % 3);

					memcpy(pl + 8 + k * 24 + 16, &op, 4);
				}
			}
			break;
		case WPP_EV_DEBUG: {
			struct wpp_debug_cmd c = { (wpp_u32)(rand() % 4), (wpp_u32)(rand() % 4) };

			if (c.op == WPP_DEBUG_OP_TOGGLE)
				c.flags = 0;	/* keep logs quiet */
			memcpy(pl, &c, sizeof(c));
			break;
		}
		case WPP_EV_GET_PAGES:
			get_pages_to_ram = 1;
			break;
		case WPP_EV_RESTORE:
			if (rand() % 2)
				memset(pl, 0, 4);
			break;
		default:
			break;
		}
		if (e == WPP_EV_INIT && rand() % 4)
			e = WPP_EV_ADD_PAGE;
		h->magic = rand() % 50 ? WPP_MAILBOX_MAGIC : (wpp_u32)rand();
		h->abi_version = WPP_ABI_VERSION;
		h->event = rand() % 50 ? e : (wpp_u16)rand();
		h->seq = (wpp_u32)it;
		h->payload_len = rand() % 20 ? len : (wpp_u32)rnd64();
		handled = wpp_handle_event(&hp.ctx, e);
		if (e >= WPP_EV_FIRST && e <= WPP_EV_LAST) {
			CHECK_EQ(handled, 1);
			CHECK_EQ(h->seq_ack, (wpp_u32)it);
			CHECK(h->status >= 0 && h->status < WPP_E_COUNT);
		} else {
			CHECK_EQ(handled, 0);
		}
		if (!smram_intact(&hp)) {
			fprintf(stderr, "SMRAM changed at iteration %d event 0x%x\n", it, e);
			exit(1);
		}
		/* OS RAM only ever changes through GET_PAGES, inside its destination:
		 * absorb exactly that range into the shadow, compare all periodically */
		if (get_pages_to_ram && h->status == WPP_OK) {
			struct wpp_get_pages g;

			memcpy(&g, pl, sizeof(g));
			if (g.dest_phys) {
				wpp_u64 off = g.dest_phys - HOST_RAM_BASE;

				CHECK(g.dest_phys >= HOST_RAM_BASE &&
				      off + g.count * 4096ULL <= HOST_RAM_SIZE);
				memcpy(shadow + off, hp.ram + off, g.count * 4096ULL);
			}
		}
		if (it % 64 == 0 && memcmp(shadow, hp.ram, HOST_RAM_SIZE)) {
			fprintf(stderr, "RAM changed before iteration %d\n", it);
			exit(1);
		}
		if (hp.log_len > (1 << 20))
			host_log_clear(&hp);
		/* occasionally make a real snapshot so restore/get_pages get exercised */
		if (it % 2000 == 1000) {
			build_process(&hp, (wpp_u32)it);
			CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
			memcpy(shadow, hp.ram, HOST_RAM_SIZE);
		}
	}
	CHECK(!memcmp(shadow, hp.ram, HOST_RAM_SIZE));
	check_log_format(&hp);
	host_platform_close(&hp);
	free(shadow);
}

static void t_fuzz_restored(void)
{
	/* same, starting from a restored snapshot (exercises GET_PAGES/CONSUME) */
	struct host_platform hp;
	wpp_u8 *shadow = malloc(HOST_RAM_SIZE);

	CHECK(shadow);
	persist_fresh(31);
	open_hp(&hp, 0, 0);
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	srand(99);
	memcpy(shadow, hp.ram, HOST_RAM_SIZE);
	for (int it = 0; it < 5000; it++) {
		struct {
			struct wpp_get_pages g;
			wpp_u64 f[40];
		} req;
		struct wpp_get_pages g = { (wpp_u32)(rand() % 400), (wpp_u32)(rand() % 40),
					   rand() % 3 ? rnd_addr() : 0 };
		wpp_u32 len = sizeof(g);
		int rc;

		memset(&req, 0, sizeof(req));
		req.g = g;

		if (rand() % 4 == 0) {
			/* the frame-list form: frames anywhere, a list maybe cut short */
			g.dest_phys = req.g.dest_phys = WPP_GET_PAGES_FRAMES;
			for (wpp_u32 k = 0; k < 40; k++)
				req.f[k] = rand() % 8 ? ram_page((unsigned int)rand() % 4096) :
					rnd_addr();
			len = sizeof(g) + (rand() % 8 ? g.count : (wpp_u32)rand() % 41) * 8U;
		}
		rc = host_call(&hp, WPP_EV_GET_PAGES, &req, len);
		CHECK(smram_intact(&hp));
		if (g.dest_phys == WPP_GET_PAGES_FRAMES) {
			/* only listed frames may change (those past a refused one do not) */
			for (wpp_u32 k = 0; k < g.count && k < 40; k++) {
				wpp_u64 off = req.f[k] - HOST_RAM_BASE;

				if (req.f[k] >= HOST_RAM_BASE && off < HOST_RAM_SIZE &&
				    !(off & 4095))
					memcpy(shadow + off, hp.ram + off, 4096);
			}
			CHECK(rc != WPP_OK || g.index + g.count <= SYN_PAGES);
		} else if (rc == WPP_OK && g.dest_phys) {
			wpp_u64 off = g.dest_phys - HOST_RAM_BASE;

			CHECK(g.index + g.count <= SYN_PAGES);
			CHECK(g.dest_phys >= HOST_RAM_BASE &&
			      off + g.count * 4096ULL <= HOST_RAM_SIZE);
			memcpy(shadow + off, hp.ram + off, g.count * 4096ULL);
		}
		if (it % 64 == 0)
			CHECK(!memcmp(shadow, hp.ram, HOST_RAM_SIZE));
		if (it % 1000 == 999)
			CHECK_EQ(ev(&hp, WPP_EV_CONSUME), WPP_OK);
	}
	CHECK(!memcmp(shadow, hp.ram, HOST_RAM_SIZE));
	host_platform_close(&hp);
	free(shadow);
}

/* The OS frees a region slot after the persist counted the regions (another
 * CPU, at the first device write): the persist fails instead of writing a
 * header whose region section is longer than the regions written. */
static void free_region_once(struct host_platform *hp, wpp_u64 off)
{
	(void)off;
	region_slot(hp, 0)->state &= ~WPP_REGION_F_USED;
	hp->on_write = NULL;
}

static void t_regions_changed(void)
{
	struct host_platform hp;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 6);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	hp.on_write = free_region_once;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_STATE);
	CHECK(host_log_contains(&hp, "persist check=regions_changed counted=3 found=2"));
	host_platform_close(&hp);
	CHECK_EQ(restore_status("check=marker_missing"), WPP_E_INCOMPLETE);
}

/* ------------------------------------------------------------ SMM guard */

#define GiB (1024ULL * MiB)

static int window(const struct wpp_layout *l, wpp_u64 base, wpp_u64 size, const char *expect)
{
	const char *why = "";
	int rc = wpp_check_window(l, WPP_REGION_BASE_DEFAULT, WPP_REGION_SIZE_DEFAULT, base,
				  size, &why);

	if (expect ? (rc != WPP_E_BAD_ADDR || strcmp(why, expect)) : rc != WPP_OK) {
		fprintf(stderr, "window 0x%llx+0x%llx: rc=%d why=%s, expected %s\n",
			(unsigned long long)base, (unsigned long long)size, rc, why,
			expect ? expect : "ok");
		return 0;
	}
	return 1;
}

/* A device BAR must not overlap SMRAM, the region or RAM (edges exact). */
static void t_bar_placement(void)
{
	struct wpp_layout l;

	host_default_layout(&l);	/* SMRAM 0x7ff00000-0x7fffffff = top of DRAM */
	CHECK_EQ(wpp_layout_ram_top(&l), 0x80000000ULL);
	CHECK(window(&l, 0x80000000ULL, 512 * MiB, NULL));	/* first byte past TSEG */
	CHECK(window(&l, 0xc0000000ULL, 0x3fffffffULL + 1, NULL));	/* up to 4 GiB */
	/* over TSEG: its last MiB, its first byte, its last byte */
	CHECK(window(&l, 0x60000000ULL, 512 * MiB, "bar_over_smram"));
	CHECK(window(&l, 0x7fe00000ULL, 0x100001ULL, "bar_over_smram"));
	CHECK(window(&l, 0x7ffff000ULL, 0x1000, "bar_over_smram"));
	/* ending exactly where TSEG starts: no SMRAM, but RAM */
	CHECK(window(&l, 0x7fe00000ULL, 0x100000ULL, "bar_over_ram"));
	/* ordinary RAM (the twin's repro address), and the legacy area */
	CHECK(window(&l, 0x20000000ULL, 512 * MiB, "bar_over_ram"));
	CHECK(window(&l, 0xa0000ULL, 0x20000ULL, "bar_over_ram"));
	/* over the WPP region: its first byte, its last byte; ending at its base */
	CHECK(window(&l, 0x00000000ULL, 512 * MiB, "bar_over_region"));
	CHECK(window(&l, 0x1ffff000ULL, 0x1000, "bar_over_region"));
	CHECK(window(&l, 0x0ffff000ULL, 0x1000, "bar_over_ram"));
	/* beyond what 32-bit SMM maps, empty or wrapping */
	CHECK(window(&l, 0xfff00000ULL, 0x100001ULL, "bar_above_limit"));
	CHECK(window(&l, 0x100000000ULL, 0x1000, "bar_above_limit"));
	CHECK(window(&l, 0x90000000ULL, 0, "bar_size"));
	CHECK(window(&l, ~0xfffULL, 0x2000, "bar_size"));
	/* OS RAM above 4 GiB (remapped): a BAR there is over RAM, not above limit */
	l.ram[1] = (struct wpp_range){ 4 * GiB, 2 * GiB };
	l.nram = 2;
	l.addr_limit = ~0ULL;	/* a 64-bit SMM */
	CHECK_EQ(wpp_layout_ram_top(&l), 6 * GiB);
	CHECK(window(&l, 5 * GiB, 0x1000, "bar_over_ram"));
	l.ram[1] = (struct wpp_range){ 8 * GiB, 2 * GiB };
	CHECK(window(&l, 6 * GiB, 2 * GiB, "bar_over_ram"));	/* below the top */
	CHECK(window(&l, 10 * GiB, 0x1000, NULL));		/* right after it */
	CHECK(window(&l, 10 * GiB - 0x1000, 0x1000, "bar_over_ram"));
}

static int region(const struct wpp_layout *l, const struct wpp_range *win, unsigned int nwin,
		  const char *expect)
{
	const char *why = "";
	int rc = wpp_check_region(l, win, nwin, WPP_REGION_BASE_DEFAULT, WPP_REGION_SIZE_DEFAULT,
				  &why);

	if (expect ? (rc != WPP_E_BAD_ADDR || strcmp(why, expect)) : rc != WPP_OK) {
		fprintf(stderr, "region: rc=%d why=%s, expected %s\n", rc, why,
			expect ? expect : "ok");
		return 0;
	}
	return 1;
}

/* The region (0x10000000-0x1fffffff) against SMRAM, MMIO and the end of RAM. */
static void t_region_placement(void)
{
	struct wpp_layout l;
	struct wpp_range bar = { 0xc0000000ULL, 512 * MiB };

	host_default_layout(&l);
	CHECK(region(&l, &bar, 1, NULL));
	/* a twin with 512 MiB: TSEG at 0x1ff00000 lies in the Pages section */
	l.smram = (struct wpp_range){ 0x1ff00000ULL, MiB };
	CHECK(region(&l, &bar, 1, "region_over_smram"));
	l.smram = (struct wpp_range){ 0x0ff00000ULL, MiB };	/* ends at the base */
	l.ram[0] = (struct wpp_range){ MiB, 0x0fe00000ULL };
	CHECK(region(&l, &bar, 1, "region_beyond_ram"));	/* 256 MiB: no RAM there */
	l.smram = (struct wpp_range){ 0x20000000ULL, MiB };	/* starts at its end */
	CHECK(region(&l, &bar, 1, NULL));
	/* the OS was told the region is usable RAM */
	host_default_layout(&l);
	l.ram[1] = (struct wpp_range){ 0x1ffff000ULL, 0x2000 };
	l.nram = 2;
	CHECK(region(&l, &bar, 1, "region_over_ram"));
	l.ram[1] = (struct wpp_range){ 0x20000000ULL, 0x1000 };	/* adjacent: fine */
	CHECK(region(&l, &bar, 1, NULL));
	/* a device window inside it */
	bar = (struct wpp_range){ 0x1ffff000ULL, 0x1000 };
	CHECK(region(&l, &bar, 1, "region_over_mmio"));
	bar = (struct wpp_range){ 0x20000000ULL, 0x1000 };
	CHECK(region(&l, &bar, 1, NULL));
	/* beyond what SMM maps */
	l.addr_limit = 0x1fffffffULL;
	CHECK(region(&l, &bar, 1, "region_above_limit"));
}

/* No layout (no handoff) or a misplaced region: no event touches the mailbox. */
static void t_guard_no_layout(void)
{
	struct host_platform hp;
	struct wpp_mailbox_hdr *h;
	struct wpp_layout l;

	open_hp(&hp, 16 * MiB, 1);
	host_default_layout(&l);
	l.smram = (struct wpp_range){ WPP_REGION_BASE_DEFAULT + WPP_PAGES_OFFSET, MiB };
	CHECK_EQ(wpp_guard_record(&hp.ctx, &l), WPP_E_BAD_ADDR);
	CHECK(host_log_contains(&hp, "wpp: guard status=8 error=region_over_smram"));
	h = host_mailbox(&hp);
	h->magic = WPP_MAILBOX_MAGIC;
	h->abi_version = WPP_ABI_VERSION;
	h->event = WPP_EV_INIT;
	h->seq = 5;
	h->seq_ack = 4;
	h->status = -1;
	CHECK_EQ(wpp_handle_event(&hp.ctx, WPP_EV_INIT), 1);
	CHECK_EQ(h->seq_ack, 4);
	CHECK_EQ(h->status, -1);
	CHECK_EQ(hp.ctx.state, WPP_STATE_IDLE);
	CHECK(host_log_contains(&hp, "wpp: init status=9 error=no_layout"));
	/* a fresh context before any handoff behaves the same */
	wpp_ctx_init(&hp.ctx, &hp.plat, hp.region, WPP_REGION_BASE_DEFAULT,
		     WPP_REGION_SIZE_DEFAULT);
	CHECK_EQ(wpp_handle_event(&hp.ctx, WPP_EV_INIT), 1);
	CHECK_EQ(h->seq_ack, 4);
	/* with a good layout it answers */
	CHECK_EQ(wpp_guard_record(&hp.ctx, &hp.layout), WPP_OK);
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	check_log_format(&hp);
	host_platform_close(&hp);
}

static int dev_file_equals(const wpp_u8 *want, size_t len)
{
	static wpp_u8 got[4 * MiB];
	FILE *f = fopen(dev_path, "rb");
	size_t n;

	CHECK(f && len <= sizeof(got));
	n = fread(got, 1, len, f);
	fclose(f);
	return n == len && !memcmp(got, want, len);
}

/*
 * The OS rewrites the BAR after the handoff (over TSEG, over RAM, over the
 * region): every command that touches the device is refused with
 * WPP_E_DEVICE_MOVED and a log line, nothing is read or written through it.
 */
static void t_bar_moved(void)
{
	static const wpp_u64 moved[] = { 0x60000000ULL, 0x20000000ULL, 0x0ULL,
					 HOST_BAR_BASE + 0x1000 };
	static wpp_u8 dev_before[4 * MiB];
	struct host_platform hp;
	FILE *f;

	persist_fresh(21);
	open_hp(&hp, 0, 0);
	f = fopen(dev_path, "rb");
	CHECK(f && fread(dev_before, 1, sizeof(dev_before), f) == sizeof(dev_before));
	fclose(f);
	for (unsigned int i = 0; i < ARRAY_SIZE(moved); i++) {
		char want[160];

		host_log_clear(&hp);
		hp.bar_base = moved[i];
		CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SELFTEST, 0), WPP_E_DEVICE_MOVED);
		CHECK_EQ(restore(&hp, WPP_RESTORE_F_FORCE), WPP_E_DEVICE_MOVED);
		CHECK(hp.ctx.state != WPP_STATE_RESTORED);
		CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
		CHECK_EQ(add_page(&hp, 0x1000, ram_page(1)), WPP_OK);	/* no device needed */
		CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_DEVICE_MOVED);
		snprintf(want, sizeof(want), "wpp: device status=19 error=bar_moved dev=hostfile "
			 "window=0 bar=0x%llx recorded=0x%llx", (unsigned long long)moved[i],
			 (unsigned long long)HOST_BAR_BASE);
		CHECK(host_log_contains(&hp, want));
		CHECK(smram_intact(&hp));
		CHECK(dev_file_equals(dev_before, sizeof(dev_before)));
	}
	/* moved back to where it was at boot: usable again */
	hp.bar_base = HOST_BAR_BASE;
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	CHECK_EQ(get_pages(&hp, 0, 1, 0), WPP_OK);
	hp.bar_base = 0x60000000ULL;
	CHECK_EQ(get_pages(&hp, 0, 1, 0), WPP_E_DEVICE_MOVED);
	CHECK_EQ(get_pages(&hp, 0, 1, ram_page(5)), WPP_E_DEVICE_MOVED);
	CHECK_EQ(ev(&hp, WPP_EV_CONSUME), WPP_E_DEVICE_MOVED);
	CHECK(dev_file_equals(dev_before, sizeof(dev_before)));
	check_log_format(&hp);
	host_platform_close(&hp);
}

/* The OS moves the BAR in the middle of a persist (another CPU): the next
 * transfer is refused and no completion marker is written. */
static void move_bar_once(struct host_platform *hp, wpp_u64 off)
{
	if (off >= WPP_SNAP_DATA_OFFSET) {
		hp->bar_base = 0x60000000ULL;
		hp->on_write = NULL;
	}
}

static void t_bar_moved_mid_persist(void)
{
	struct host_platform hp;
	int locates;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 3);
	locates = hp.bar_locates;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	CHECK(hp.bar_locates - locates > 3);	/* re-checked per transfer, not once */
	hp.on_write = move_bar_once;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_DEVICE_MOVED);
	CHECK(host_log_contains(&hp, "error=bar_moved"));
	host_platform_close(&hp);
	CHECK_EQ(restore_status("check=marker_missing"), WPP_E_INCOMPLETE);
}

/*
 * With every CPU parked in SMM (a complete rendezvous before the event) the
 * OS cannot move the BAR during the event: the guard reads it once per event.
 * The rendezvous counts for the next event only; without it, every transfer
 * checks again and a move in the middle is still caught.
 */
static wpp_u32 all_cpus(void *ctx)
{
	(void)ctx;
	return 2;
}

/* A process to persist, after a rendezvous that expected `cpus` (two are there). */
static void open_after_rendezvous(struct host_platform *hp, wpp_u32 cpus, int want)
{
	open_hp(hp, 64 * MiB, 1);
	build_process(hp, 3);
	hp->plat.smm_cpus = all_cpus;
	CHECK_EQ(wpp_rendezvous(&hp->ctx, cpus, 1000), want);
}

/* BAR reads by the guard during one successful persist. */
static int persist_locates(struct host_platform *hp)
{
	int before = hp->bar_locates;

	CHECK_EQ(ev(hp, WPP_EV_PERSIST), WPP_OK);
	return hp->bar_locates - before;
}

static void t_bar_once_when_all_held(void)
{
	struct host_platform hp;

	open_after_rendezvous(&hp, 2, WPP_OK);
	CHECK_EQ(persist_locates(&hp), 1);
	/* the next event had no rendezvous: per transfer again */
	CHECK(persist_locates(&hp) > 3);
	hp.on_write = move_bar_once;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_DEVICE_MOVED);
	hp.on_write = NULL;
	host_platform_close(&hp);
	/* a rendezvous that timed out (a CPU missing) does not count */
	open_after_rendezvous(&hp, 3, WPP_E_TIMEOUT);
	CHECK(persist_locates(&hp) > 3);
	host_platform_close(&hp);
}

/* A BAR already over TSEG (or RAM) at the handoff is never recorded. */
static void t_bar_bad_at_boot(void)
{
	static const struct { wpp_u64 base; const char *why; } cases[] = {
		{ 0x7ff00000ULL, "bar_over_smram" },
		{ 0x20000000ULL, "bar_over_ram" },
	};

	for (unsigned int i = 0; i < ARRAY_SIZE(cases); i++) {
		struct host_platform hp;
		char want[96];

		open_hp(&hp, 16 * MiB, 1);
		hp.bar_base = cases[i].base;
		CHECK_EQ(wpp_guard_record(&hp.ctx, &hp.layout), WPP_OK);
		CHECK_EQ(hp.ctx.dev_recorded, 0);
		snprintf(want, sizeof(want), "wpp: device status=10 error=%s dev=hostfile",
			 cases[i].why);
		CHECK(host_log_contains(&hp, want));
		CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SELFTEST, 0), WPP_E_NO_DEVICE);
		CHECK(host_log_contains(&hp, "device status=10 error=not_recorded"));
		/* tracking still works: only the device is refused */
		CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
		CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_NO_DEVICE);
		CHECK(smram_intact(&hp));
		host_platform_close(&hp);
	}
	/* over the region: the region itself is refused, no event is answered */
	{
		struct host_platform hp;

		open_hp(&hp, 16 * MiB, 1);
		hp.bar_base = WPP_REGION_BASE_DEFAULT + WPP_PAGES_OFFSET;
		CHECK_EQ(wpp_guard_record(&hp.ctx, &hp.layout), WPP_E_BAD_ADDR);
		CHECK(host_log_contains(&hp, "wpp: guard status=8 error=region_over_mmio"));
		CHECK_EQ(ev(&hp, WPP_EV_INIT), -2);	/* not answered */
		host_platform_close(&hp);
	}
}

/* SMRAM_DIGEST: one CRC per SMRAM page; a changed byte shows in its page only. */
static void t_smram_digest(void)
{
	struct host_platform hp;
	const wpp_u32 pages = HOST_SMRAM_SIZE / WPP_PAGE_SIZE;
	static wpp_u32 a[HOST_SMRAM_SIZE / WPP_PAGE_SIZE], b[HOST_SMRAM_SIZE / WPP_PAGE_SIZE];
	const wpp_u8 *reply;

	open_hp(&hp, 16 * MiB, 1);
	reply = (const wpp_u8 *)host_payload(&hp) + sizeof(struct wpp_debug_cmd);
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SMRAM_DIGEST, 0), WPP_OK);
	CHECK_EQ(res(&hp, 1), HOST_SMRAM_BASE);
	CHECK_EQ(res(&hp, 2), HOST_SMRAM_SIZE);
	CHECK_EQ(res(&hp, 3), pages);
	CHECK_EQ(host_mailbox(&hp)->payload_len, sizeof(struct wpp_debug_cmd) + pages * 4);
	memcpy(a, reply, sizeof(a));
	CHECK_EQ(a[0], wpp_crc32(0, hp.smram, WPP_PAGE_SIZE));
	hp.smram[77 * WPP_PAGE_SIZE + 5] ^= 1;
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SMRAM_DIGEST, 0), WPP_OK);
	memcpy(b, reply, sizeof(b));
	for (wpp_u32 i = 0; i < pages; i++)
		CHECK_EQ(a[i] != b[i], i == 77);
	CHECK(host_log_contains(&hp, "wpp: debug status=0 op=smram_digest smram=0x7ff00000:"
				"0x100000 pages=256 crc=0x"));
	hp.plat.map_smram = NULL;	/* production build: refused */
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SMRAM_DIGEST, 0), WPP_E_BAD_ARG);
	check_log_format(&hp);
	host_platform_close(&hp);
}

/*
 * Pages SMM cannot map (above 4 GiB on the board) still get a page CRC, from a
 * read-back of the device; before, the CRC was dropped and restore accepted
 * the pages unverified.
 */
static void t_page_crc_unmappable(void)
{
	struct host_platform hp;
	struct wpp_snapshot_header h;

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 9);
	hp.unmappable_from = ram_page(2000);	/* the scattered pages are "high" */
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: persist status=0 "));
	CHECK(!host_log_contains(&hp, "readback_pages=0 "));
	host_platform_close(&hp);
	read_hdr(&h);
	CHECK(h.flags & WPP_SNAP_F_PAGE_CRC);
	CHECK_EQ(restore_status("wpp: restore status=0"), WPP_OK);
	/* the read-back CRC really covers those pages: damage one, restore refuses */
	corrupt_byte(h.page_area_offset + (SYN_PAGES - 1) * 4096ULL + 17);
	CHECK_EQ(restore_status("check=page_crc"), WPP_E_CORRUPT);

	/* a failing read-back fails the persist (no snapshot without its CRC) */
	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 9);
	hp.unmappable_from = ram_page(2000);
	hp.fail_read = WPP_E_DEVICE_IO;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_E_DEVICE_IO);
	CHECK(host_log_contains(&hp, "persist check=page_crc_readback"));
	host_platform_close(&hp);
	CHECK_EQ(restore_status("check=no_header"), WPP_E_NO_SNAPSHOT);
}

/* A page's test pattern, by physical address (works for any RAM, high too). */
static void fill_pa(struct host_platform *hp, wpp_u64 pa, wpp_u32 seed)
{
	wpp_u8 *p = host_phys(hp, pa);

	CHECK(p);
	for (unsigned int k = 0; k < WPP_PAGE_SIZE; k++)
		p[k] = (wpp_u8)(seed * 131 + (pa >> 12) * 31 + k * 7 + (k >> 8));
}

#define HIGH_WINDOW	(4 * WPP_PAGE_SIZE)
#define FOUR_GIB	0x100000000ULL

/*
 * RAM above (and across) 4 GiB reached through a map window of 4 pages, as
 * 32-bit SMM with a PAE window on the twin: persist splits runs at the window
 * (10 contiguous frames across 4 GiB), CRCs every page from the CPU copy (no
 * read-back), and GET_PAGES writes high frames in both forms. Before the core
 * split at the window, the 10-frame run was asked of the window in one piece.
 */
static void t_high_ram_window(void)
{
	static wpp_u8 want[16][WPP_PAGE_SIZE];
	struct host_platform hp;
	struct wpp_snapshot_header h;
	wpp_u64 pas[16];
	unsigned int n = 0;

	/* sorted by physical address = snapshot order */
	pas[n++] = ram_page(7);
	for (unsigned int i = 0; i < 10; i++)
		pas[n++] = FOUR_GIB - 6 * WPP_PAGE_SIZE + i * WPP_PAGE_SIZE;
	pas[n++] = FOUR_GIB + 0x200000;
	pas[n++] = HOST_HIGH_BASE + HOST_HIGH_SIZE - WPP_PAGE_SIZE;

	open_hp(&hp, 64 * MiB, 1);
	CHECK_EQ(host_platform_add_high_ram(&hp, HIGH_WINDOW), 0);
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	for (unsigned int i = 0; i < n; i++) {
		fill_pa(&hp, pas[i], 5);
		memcpy(want[i], host_phys(&hp, pas[i]), WPP_PAGE_SIZE);
		CHECK_EQ(add_page(&hp, 0x400000 + (wpp_u64)i * WPP_PAGE_SIZE, pas[i]), WPP_OK);
	}
	/* the address policy covers high RAM: beyond its end, not RAM */
	CHECK_EQ(add_page(&hp, 0x900000, HOST_HIGH_BASE + HOST_HIGH_SIZE), WPP_E_BAD_ADDR);
	CHECK(host_log_contains(&hp, "reason=not_ram"));
	CHECK_EQ(add_page(&hp, 0x901000, 0x200000000ULL), WPP_E_BAD_ADDR);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	CHECK(host_log_contains(&hp, "wpp: persist status=0 "));
	CHECK(host_log_contains(&hp, " readback_pages=0 "));
	CHECK_EQ(hp.window_refused, 0);
	CHECK(hp.high_map_max <= HIGH_WINDOW);
	CHECK(hp.high_maps >= 3 + 2);	/* 10 frames in 4-page pieces, 2 single ones */
	host_platform_close(&hp);
	read_hdr(&h);
	CHECK(h.flags & WPP_SNAP_F_PAGE_CRC);
	CHECK_EQ(h.page_count, n);

	/* restore into zeroed high RAM: dest_phys form across 4 GiB, and single pages */
	open_hp(&hp, 0, 0);
	CHECK_EQ(host_platform_add_high_ram(&hp, HIGH_WINDOW), 0);
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	CHECK_EQ(get_pages(&hp, 1, 10, pas[1]), WPP_OK);
	CHECK_EQ(get_pages(&hp, 11, 1, pas[11]), WPP_OK);
	CHECK_EQ(get_pages(&hp, 12, 1, pas[12]), WPP_OK);
	for (unsigned int i = 1; i < n; i++)
		CHECK(!memcmp(host_phys(&hp, pas[i]), want[i], WPP_PAGE_SIZE));
	CHECK_EQ(hp.window_refused, 0);
	CHECK(hp.high_map_max <= HIGH_WINDOW);
	/* mailbox form of a high page */
	CHECK_EQ(get_pages(&hp, 12, 1, 0), WPP_OK);
	CHECK(!memcmp((wpp_u8 *)host_payload(&hp) + sizeof(struct wpp_get_pages), want[12],
		      WPP_PAGE_SIZE));
	/* a destination running past the end of high RAM is refused */
	CHECK_EQ(get_pages(&hp, 11, 2, pas[12]), WPP_E_BAD_ADDR);
	CHECK(host_log_contains(&hp, "get_pages status=8 error=bad_addr reason=not_ram"));
	host_platform_close(&hp);

	/* the CRC covers the high pages: damage the one above 4 GiB, restore refuses */
	corrupt_byte(h.page_area_offset + 12ULL * WPP_PAGE_SIZE + 99);
	CHECK_EQ(restore_status("check=page_crc"), WPP_E_CORRUPT);
}

/* A window that is not a multiple of a page, or smaller than one, still maps
 * whole pages: the core never asks for less than a page or more than the window. */
static void t_map_window_piece(void)
{
	struct host_platform hp;

	open_hp(&hp, 64 * MiB, 1);
	CHECK_EQ(host_platform_add_high_ram(&hp, 2 * WPP_PAGE_SIZE), 0);
	hp.plat.map_window = 2 * WPP_PAGE_SIZE + 100;	/* rounded down to 2 pages */
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	for (unsigned int i = 0; i < 7; i++) {
		fill_pa(&hp, FOUR_GIB + i * WPP_PAGE_SIZE, 9);
		CHECK_EQ(add_page(&hp, 0x400000 + i * WPP_PAGE_SIZE, FOUR_GIB + i * WPP_PAGE_SIZE),
			 WPP_OK);
	}
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	CHECK_EQ(hp.window_refused, 0);
	CHECK_EQ(hp.high_map_max, 2 * WPP_PAGE_SIZE);
	CHECK_EQ(hp.high_maps, 4);	/* 2 + 2 + 2 + 1 pages */
	CHECK(host_log_contains(&hp, " runs=4 "));
	host_platform_close(&hp);
	CHECK_EQ(restore_status("wpp: restore status=0"), WPP_OK);
}

/* wpp_copy / wpp_copy_crc32 against memcpy / wpp_crc32: every alignment of
 * source and destination, lengths around the 8- and 32-byte steps, a chained
 * CRC, and no byte written outside [dst, dst + len). */
static void t_copy_routines(void)
{
	static const size_t lens[] = { 0, 1, 3, 7, 8, 9, 31, 32, 33, 63, 4096, 4099, 65536 };
	wpp_u8 *src = malloc(65536 + 16), *dst = malloc(65536 + 32), *want = malloc(65536 + 32);

	CHECK(src && dst && want);
	for (unsigned int i = 0; i < 65536 + 16; i++)
		src[i] = (wpp_u8)(i * 131 + (i >> 7));
	for (unsigned int so = 0; so < 8; so++) {
		for (unsigned int dof = 0; dof < 8; dof++) {
			for (unsigned int l = 0; l < ARRAY_SIZE(lens); l++) {
				size_t n = lens[l];
				wpp_u32 crc;

				memset(dst, 0xa5, 65536 + 32);
				memset(want, 0xa5, 65536 + 32);
				memcpy(want + 8 + dof, src + so, n);
				wpp_copy(dst + 8 + dof, src + so, n);
				CHECK(!memcmp(dst, want, 65536 + 32));
				memset(dst, 0xa5, 65536 + 32);
				crc = wpp_copy_crc32(0x1234abcd, dst + 8 + dof, src + so, n);
				CHECK_EQ(crc, wpp_crc32(0x1234abcd, src + so, n));
				CHECK(!memcmp(dst, want, 65536 + 32));
			}
		}
	}
	free(src);
	free(dst);
	free(want);
}

/* The mmio device's one-pass write: bytes and CRC, bounds refused. */
static void t_mmio_write_crc(void)
{
	struct wpp_pdev pdev;
	struct wpp_mmio_dev dev;
	wpp_u8 *bar = calloc(1, 65536), src[8192];
	wpp_u32 crc = 0;

	CHECK(bar);
	memset(&pdev, 0, sizeof(pdev));
	for (unsigned int i = 0; i < sizeof(src); i++)
		src[i] = (wpp_u8)(i * 7 + 3);
	dev.base = bar;
	dev.phys = HOST_BAR_BASE;
	dev.size = 65536;
	wpp_mmio_init(&pdev, &dev, "test");
	CHECK(pdev.write_crc);
	CHECK_EQ(pdev.write_crc(&dev, 4096, src, sizeof(src), &crc), WPP_OK);
	CHECK_EQ(crc, wpp_crc32(0, src, sizeof(src)));
	CHECK(!memcmp(bar + 4096, src, sizeof(src)));
	CHECK_EQ(pdev.write_crc(&dev, 65536 - 4096, src, sizeof(src), &crc), WPP_E_DEVICE_IO);
	CHECK_EQ(pdev.write_crc(&dev, 0, NULL, 4096, &crc), WPP_E_BAD_ADDR);
	/* the CRC in place over what was written, bounds refused */
	CHECK(pdev.crc);
	crc = 0;
	CHECK_EQ(pdev.crc(&dev, 4096, sizeof(src), &crc), WPP_OK);
	CHECK_EQ(crc, wpp_crc32(0, src, sizeof(src)));
	CHECK_EQ(pdev.crc(&dev, 65536 - 4096, 8192, &crc), WPP_E_DEVICE_IO);
	CHECK_EQ(pdev.crc(&dev, 65537, 0, &crc), WPP_E_DEVICE_IO);
	free(bar);
}

static int write_crc_calls;

/* A CPU-copy device with write_crc over the host file: copy + CRC in one pass
 * into a bounce buffer, then the host device's own write. */
static int host_write_crc(void *c, wpp_u64 off, const void *src, wpp_u64 len, wpp_u32 *crc)
{
	struct host_platform *hp = c;
	void *tmp = malloc(len);
	int rc;

	CHECK(tmp);
	*crc = wpp_copy_crc32(*crc, tmp, src, len);
	rc = hp->pdev.write(c, off, tmp, WPP_PHYS_NONE, len);
	free(tmp);
	write_crc_calls++;
	return rc;
}

/* Persist through write_crc (the twin's path): the snapshot's page CRC is the
 * one the one-pass copy computed, and restore verifies it. */
static void t_persist_write_crc(void)
{
	struct host_platform hp;
	struct wpp_snapshot_header h;

	open_hp(&hp, 64 * MiB, 1);
	hp.pdev.write_crc = host_write_crc;
	build_process(&hp, 11);
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	CHECK(write_crc_calls > 0);
	CHECK(host_log_contains(&hp, " readback_pages=0 "));
	host_platform_close(&hp);
	read_hdr(&h);
	CHECK(h.flags & WPP_SNAP_F_PAGE_CRC);
	CHECK_EQ(restore_status("wpp: restore status=0"), WPP_OK);
	corrupt_byte(h.page_area_offset + 5 * 4096ULL + 1);
	CHECK_EQ(restore_status("check=page_crc"), WPP_E_CORRUPT);
}

/* Rewrite header flags (and the CRCs that cover them) in the device file. */
static void set_header_flags(wpp_u32 flags)
{
	struct wpp_snapshot_header h;
	struct wpp_snapshot_marker m;
	FILE *f = fopen(dev_path, "r+b");

	CHECK(f);
	CHECK_EQ(fread(&h, sizeof(h), 1, f), 1);
	fseek(f, WPP_SNAP_MARKER_OFFSET, SEEK_SET);
	CHECK_EQ(fread(&m, sizeof(m), 1, f), 1);
	h.flags = flags;
	h.page_crc32 = 0;
	h.header_crc32 = 0;
	h.header_crc32 = wpp_crc32(0, &h, sizeof(h));
	m.header_crc32 = h.header_crc32;
	m.marker_crc32 = 0;
	m.marker_crc32 = wpp_crc32(0, &m, sizeof(m));
	fseek(f, 0, SEEK_SET);
	CHECK_EQ(fwrite(&h, sizeof(h), 1, f), 1);
	fseek(f, WPP_SNAP_MARKER_OFFSET, SEEK_SET);
	CHECK_EQ(fwrite(&m, sizeof(m), 1, f), 1);
	fclose(f);
}

/* A snapshot whose pages carry no CRC is refused, whatever else is intact. */
static void t_page_crc_required(void)
{
	persist_fresh(4);
	set_header_flags(0);
	CHECK_EQ(restore_status("check=page_crc_missing"), WPP_E_CORRUPT);
}

/* The OS rewrites Metadata while the persist copies it (another CPU): the CRC
 * and the data come from one fetch, so the snapshot is consistent and holds
 * what was CRC'd; before, it got a CRC of the old bytes over the new ones. */
static void scribble_meta(struct host_platform *hp, wpp_u64 off)
{
	/* the device write of the metadata section: after the firmware fetched it */
	if (off == WPP_SNAP_DATA_OFFSET) {
		memset(hp->region + WPP_METADATA_OFFSET, 'Z', 3000);
		hp->on_write = NULL;
	}
}

static void t_metadata_one_fetch(void)
{
	struct host_platform hp;
	char meta[3000];

	open_hp(&hp, 64 * MiB, 1);
	build_process(&hp, 5);
	memcpy(meta, hp.region + WPP_METADATA_OFFSET, sizeof(meta));
	hp.on_write = scribble_meta;
	CHECK_EQ(ev(&hp, WPP_EV_PERSIST), WPP_OK);
	host_platform_close(&hp);
	open_hp(&hp, 0, 0);
	CHECK_EQ(restore(&hp, 0), WPP_OK);
	/* the first chunk was fetched before any device write of it */
	CHECK(!memcmp(hp.region + WPP_METADATA_OFFSET, meta, sizeof(meta)));
	host_platform_close(&hp);
}

static void t_vsnprintf(void)
{
	char b[64];

	wpp_snprintf(b, sizeof(b), "a=%u b=%d c=0x%llx d=%s e=%llu f=%08x", 7u, -3,
		     0xabcdef123ULL, "x", 18446744073709551615ULL, 0x1f);
	CHECK(!strcmp(b, "a=7 b=-3 c=0xabcdef123 d=x e=18446744073709551615 f=0000001f"));
	CHECK_EQ(wpp_snprintf(b, 8, "%s", "0123456789"), 10);
	CHECK(!strcmp(b, "0123456"));
	CHECK_EQ(wpp_crc32(0, "123456789", 9), 0xcbf43926);
	CHECK(!strcmp(wpp_status_name(WPP_E_CONSUMED), "consumed"));
	CHECK(!strcmp(wpp_event_name(WPP_EV_CONSUME), "consume"));
}

/*
 * SMI rendezvous: the handler waits until every CPU the SMI reaches is in SMM
 * (a CPU that checks in late is waited for; one that never comes ends the wait
 * at the bound, logged), and SELFTEST / PERSIST report what was seen.
 */
static wpp_u32 rdv_present, rdv_arrive_after, rdv_polls, rdv_relaxed;

static wpp_u32 rdv_smm_cpus(void *c)
{
	(void)c;
	if (++rdv_polls >= rdv_arrive_after && rdv_arrive_after)
		return rdv_present + 1;
	return rdv_present;
}

static void rdv_relax(void *c)
{
	(void)c;
	rdv_relaxed++;
}

static void t_rendezvous(void)
{
	struct host_platform hp;

	open_hp(&hp, 64 * MiB, 1);
	/* No counter (one CPU, host): one CPU seen, nothing waited for. */
	CHECK_EQ(wpp_rendezvous(&hp.ctx, 0, 1000), WPP_OK);
	CHECK_EQ(hp.ctx.smi_cpus, 1);
	CHECK_EQ(hp.ctx.smi_cpus_expected, 1);

	/* The second CPU checks in on the 50th poll: waited for, not timed out. */
	hp.plat.smm_cpus = rdv_smm_cpus;
	hp.plat.relax = rdv_relax;
	rdv_present = 1;
	rdv_arrive_after = 50;
	rdv_polls = rdv_relaxed = 0;
	CHECK_EQ(wpp_rendezvous(&hp.ctx, 2, 1000000), WPP_OK);
	CHECK_EQ(rdv_polls, 50);
	CHECK_EQ(rdv_relaxed, 49);
	CHECK_EQ(hp.ctx.smi_cpus, 2);
	CHECK_EQ(hp.ctx.smi_cpus_expected, 2);
	CHECK(hp.ctx.smi_rendezvous_us > 0);
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SELFTEST, 0), WPP_OK);
	CHECK_EQ(res(&hp, 2), 2);
	CHECK_EQ(res(&hp, 3), 2);
	CHECK(host_log_contains(&hp, " cpus=2 cpus_expected=2 "));

	/* A CPU that never comes: the wait ends at the bound and says so. */
	host_log_clear(&hp);
	rdv_arrive_after = 0;
	rdv_polls = 0;
	CHECK_EQ(wpp_rendezvous(&hp.ctx, 2, 3000), WPP_E_TIMEOUT);
	CHECK(rdv_polls > 1);
	CHECK(hp.ctx.smi_rendezvous_us >= 3000);
	CHECK(hp.ctx.smi_rendezvous_us < 3100);
	CHECK_EQ(hp.ctx.smi_cpus, 1);
	CHECK(host_log_contains(&hp, "wpp: rendezvous status=12 error=cpus_missing cpus=1 "
				"cpus_expected=2 "));
	CHECK_EQ(debug_op(&hp, WPP_DEBUG_OP_SELFTEST, 0), WPP_OK);
	CHECK_EQ(res(&hp, 2), 1);
	CHECK_EQ(res(&hp, 3), 2);

	/* All already there: no wait at all. */
	rdv_present = 2;
	rdv_polls = rdv_relaxed = 0;
	CHECK_EQ(wpp_rendezvous(&hp.ctx, 2, 1000), WPP_OK);
	CHECK_EQ(rdv_polls, 1);
	CHECK_EQ(rdv_relaxed, 0);

	/* A CPU taking the same broadcast SMI late finds the request answered. */
	CHECK_EQ(ev(&hp, WPP_EV_INIT), WPP_OK);
	CHECK_EQ(host_mailbox(&hp)->seq_ack, host_mailbox(&hp)->seq);
	CHECK(wpp_already_answered(&hp.ctx, WPP_EV_INIT));
	CHECK(host_log_contains(&hp, "wpp: smi status=0 duplicate=1 event=0xa0 "));
	host_mailbox(&hp)->seq_ack = host_mailbox(&hp)->seq - 1;	/* a new request */
	CHECK(!wpp_already_answered(&hp.ctx, WPP_EV_INIT));
	check_log_format(&hp);
	host_platform_close(&hp);
}

static const struct test tests[] = {
	{ "mailbox_checks", t_mailbox_checks },
	{ "state_rules", t_state_rules },
	{ "init_resets", t_init_resets },
	{ "regions", t_regions },
	{ "pages_remove_orders", t_pages_remove_orders },
	{ "region_exhaustion", t_region_exhaustion },
	{ "pages_buckets", t_pages_buckets },
	{ "page_exhaustion", t_page_exhaustion },
	{ "bad_addresses", t_bad_addresses },
	{ "page_batch", t_page_batch },
	{ "data", t_data },
	{ "roundtrip", t_roundtrip },
	{ "coalesce_and_used_only", t_coalesce_and_used_only },
	{ "crc_failures", t_crc_failures },
	{ "marker_and_version", t_marker_and_version },
	{ "consume", t_consume },
	{ "get_pages_checks", t_get_pages_checks },
	{ "get_pages_frames", t_get_pages_frames },
	{ "bar_once_when_all_held", t_bar_once_when_all_held },
	{ "debug", t_debug },
	{ "device_errors", t_device_errors },
	{ "tampered_slots", t_tampered_slots },
	{ "slots_changed", t_slots_changed },
	{ "power_cut", t_power_cut },
	{ "fuzz", t_fuzz },
	{ "fuzz_restored", t_fuzz_restored },
	{ "vsnprintf", t_vsnprintf },
	{ "regions_changed", t_regions_changed },
	{ "bar_placement", t_bar_placement },
	{ "region_placement", t_region_placement },
	{ "guard_no_layout", t_guard_no_layout },
	{ "bar_moved", t_bar_moved },
	{ "bar_moved_mid_persist", t_bar_moved_mid_persist },
	{ "bar_bad_at_boot", t_bar_bad_at_boot },
	{ "smram_digest", t_smram_digest },
	{ "page_crc_unmappable", t_page_crc_unmappable },
	{ "page_crc_required", t_page_crc_required },
	{ "metadata_one_fetch", t_metadata_one_fetch },
	{ "rendezvous", t_rendezvous },
	{ "high_ram_window", t_high_ram_window },
	{ "map_window_piece", t_map_window_piece },
	{ "copy_routines", t_copy_routines },
	{ "mmio_write_crc", t_mmio_write_crc },
	{ "persist_write_crc", t_persist_write_crc },
};

int main(int argc, char **argv)
{
	return run_named_test(argc, argv, tests, ARRAY_SIZE(tests));
}
