// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-smi-probe: talk to the WPP SMM handler from a guest's user space, the
 * way the kernel driver does (mailbox at the WPP region + outb to 0xb2), to
 * test the firmware without the WPP kernel.
 *
 * Usage: wpp-smi-probe [--base ADDR] CMD...
 *   init | dump | selftest | toggle FLAGS | counters | restore | restore-force
 *   | persist | consume | bad-mailbox | bad-event | smram-page PA | region-page
 *   | write-meta OFF TEXT | read-meta OFF LEN | add-page VA PA | read-ro
 *   | roundtrip NPAGES | snapshot NPAGES | own-page | get-pages INDEX COUNT
 *   | get-pages-own INDEX | smram-digest | mem-crc PA PAGES
 *   | cfg-read CONFIG OFF | cfg-write CONFIG OFF VALUE
 * snapshot = roundtrip up to a successful RESTORE (the handler stays in the
 * restored state for GET_PAGES/CONSUME from later invocations); own-page adds
 * one locked page of ours (valid until the probe exits); smram-digest prints
 * the handler's CRC-32 per SMRAM page (DEBUG SMRAM_DIGEST); mem-crc prints a
 * CRC-32 per page of physical memory read through /dev/mem; cfg-read/-write
 * access a dword of a PCI config file in sysfs (moving a BAR as the OS can).
 * One line per call on stdout:
 *   wpp-probe cmd=<cmd> event=0x<ev> status=<n> status_name=<s> seq=<n> seq_ack=<n>
 *             r0=<n> r1=<n> r2=<n> r3=<n> [extra key=value]
 * Exit status: 0 all calls answered (seq_ack == seq), 3 a call was not
 * answered (no SMI handler), 2 usage / mapping error.
 *
 * Needs root (ioperm or /dev/port, and /dev/mem). Built statically into the twin's guest image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../wpp/include/wpp_abi.h"

#define MAP_LEN		(1UL << 20)	/* header + small payloads */
#define SMI_RINGS	4		/* doorbells per request, as the kernel driver */

static volatile uint8_t *mbox;
static int port_fd = -1;	/* /dev/port when ioperm() is not available */
static uint32_t seq;
static int unanswered;

static const char *status_name(int s)
{
	static const char *const n[] = {
		"ok", "bad_mailbox", "bad_event", "bad_arg", "bounds", "read_only",
		"no_slot", "not_found", "bad_addr", "state", "no_device", "device_io",
		"timeout", "too_big", "no_snapshot", "incomplete", "corrupt", "version",
		"consumed", "device_moved",
	};
	return (s >= 0 && s < (int)(sizeof(n) / sizeof(n[0]))) ? n[s] : "unknown";
}

static struct wpp_mailbox_hdr *hdr(void)
{
	return (struct wpp_mailbox_hdr *)mbox;
}

static void *payload(void)
{
	return (void *)(mbox + WPP_MAILBOX_HDR_SIZE);
}

/*
 * Fill the mailbox header and raise the SMI. magic/event overrides let us test the
 * firmware's checks. Returns -1 when the /dev/port write failed, else 0.
 */
static int raise_smi(uint8_t port_ev, uint16_t hdr_ev, uint32_t magic, uint32_t len)
{
	struct wpp_mailbox_hdr *h = hdr();
	int rc = 0;

	seq++;
	h->magic = magic;
	h->abi_version = WPP_ABI_VERSION;
	h->event = hdr_ev;
	h->seq_ack = seq - 1;	/* nothing pending until seq changes */
	h->status = -1;
	h->payload_len = len;
	/* seq last (see wpp-smi-fuzz.c): a late broadcast SMI must not see half a request */
	__sync_synchronize();
	h->seq = seq;
	__sync_synchronize();
	/* rung again while unanswered, as the kernel driver does (see wpp-smi-fuzz.c) */
	for (int ring = 0; ring < SMI_RINGS && rc == 0 && h->seq_ack != seq; ring++) {
		if (port_fd >= 0) {
			if (pwrite(port_fd, &port_ev, 1, WPP_APM_CNT_PORT) != 1)
				rc = -1;
		} else {
			outb(port_ev, WPP_APM_CNT_PORT);
		}
		__sync_synchronize();
	}
	if (rc == 0 && h->seq_ack != seq)
		unanswered = 1;
	return rc;
}

/* Issue one event and print the answer. */
static int call_raw(const char *cmd, uint8_t port_ev, uint16_t hdr_ev, uint32_t magic,
		    uint32_t len)
{
	struct wpp_mailbox_hdr *h = hdr();

	if (raise_smi(port_ev, hdr_ev, magic, len))
		fprintf(stderr, "wpp-probe error=devport_write errno=%d\n", errno);
	printf("wpp-probe cmd=%s event=0x%02x status=%d status_name=%s seq=%u seq_ack=%u "
	       "r0=%llu r1=%llu r2=%llu r3=%llu", cmd, port_ev, h->status,
	       status_name(h->status), seq, h->seq_ack,
	       (unsigned long long)h->result[0], (unsigned long long)h->result[1],
	       (unsigned long long)h->result[2], (unsigned long long)h->result[3]);
	if (h->seq_ack != seq)
		unanswered = 1;
	return h->status;
}

static int call(const char *cmd, uint8_t ev, uint32_t len)
{
	return call_raw(cmd, ev, ev, WPP_MAILBOX_MAGIC, len);
}

/* Same as call() without printing (bulk loops). */
static int call_quiet(uint8_t ev, uint32_t len)
{
	if (raise_smi(ev, ev, WPP_MAILBOX_MAGIC, len))
		return -1;
	return hdr()->status;
}

static uint64_t num(const char *s)
{
	return strtoull(s, NULL, 0);
}

static int debug_op(const char *cmd, uint32_t op, uint32_t flags)
{
	struct wpp_debug_cmd d = { .op = op, .flags = flags };

	memcpy(payload(), &d, sizeof(d));
	return call(cmd, WPP_EV_DEBUG, sizeof(d));
}

static void counters(void)
{
	struct wpp_data_cmd c = { .section = WPP_SECTION_INTERNAL, .offset = 0,
				  .size = sizeof(struct wpp_counters) };
	struct wpp_counters k;

	memcpy(payload(), &c, sizeof(c));
	if (call("counters", WPP_EV_READ_DATA, sizeof(c)) == WPP_OK) {
		memcpy(&k, (uint8_t *)payload() + sizeof(c), sizeof(k));
		printf(" generation=%llu errors=%llu regions=%llu pages=%llu metadata=%llu "
		       "flags=%llu init_calls=%llu", (unsigned long long)k.generation,
		       (unsigned long long)k.errors, (unsigned long long)k.regions_used,
		       (unsigned long long)k.pages_used, (unsigned long long)k.metadata_used,
		       (unsigned long long)k.debug_flags,
		       (unsigned long long)k.events[0]);
	}
}

static void add_page(const char *cmd, uint64_t va, uint64_t pa)
{
	struct wpp_page_mapping m = { .virtual_address = va, .physical_address = pa };

	memcpy(payload(), &m, sizeof(m));
	call(cmd, WPP_EV_ADD_PAGE, sizeof(m));
}

/* Physical address of a locked page of ours, from /proc/self/pagemap (root). */
static uint64_t virt_to_phys(void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	long psz = sysconf(_SC_PAGESIZE);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / psz * sizeof(e))) != sizeof(e))
		e = 0;
	close(fd);
	if (!(e & (1ULL << 63)))
		return 0;
	return (e & ((1ULL << 55) - 1)) * (uint64_t)psz;
}

static uint32_t crc32(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320U & -(crc & 1));
	}
	return ~crc;
}

static void smram_digest(const char *cmd)
{
	struct wpp_debug_cmd d = { .op = WPP_DEBUG_OP_SMRAM_DIGEST };
	const uint8_t *crcs = (const uint8_t *)payload() + sizeof(d);

	memcpy(payload(), &d, sizeof(d));
	if (call(cmd, WPP_EV_DEBUG, sizeof(d)) != WPP_OK)
		return;
	printf(" smram=0x%llx:0x%llx crcs=", (unsigned long long)hdr()->result[1],
	       (unsigned long long)hdr()->result[2]);
	for (uint64_t i = 0; i < hdr()->result[3]; i++) {
		uint32_t c;

		memcpy(&c, crcs + i * 4, 4);
		printf("%s%08x", i ? "," : "", c);
	}
}

static int mem_fd = -1;

/* CRC-32 of each page of physical memory [pa, pa + pages * 4096). */
static void mem_crc(uint64_t pa, uint64_t pages)
{
	static uint8_t page[4096];

	printf("wpp-probe cmd=mem-crc pa=0x%llx pages=%llu crcs=", (unsigned long long)pa,
	       (unsigned long long)pages);
	for (uint64_t i = 0; i < pages; i++) {
		ssize_t n = pread(mem_fd, page, sizeof(page), (off_t)(pa + i * 4096));

		if (n == (ssize_t)sizeof(page))
			printf("%s%08x", i ? "," : "", crc32(0, page, sizeof(page)));
		else
			printf("%sunreadable", i ? "," : "");
	}
}

static void cfg_access(const char *path, uint64_t off, int write, uint32_t val)
{
	int fd = open(path, write ? O_RDWR : O_RDONLY);
	uint32_t v = val;
	ssize_t n;

	if (fd < 0) {
		printf("wpp-probe cmd=cfg error=open errno=%d", errno);
		return;
	}
	n = write ? pwrite(fd, &v, 4, (off_t)off) : pread(fd, &v, 4, (off_t)off);
	close(fd);
	printf("wpp-probe cmd=%s off=%llu ok=%d value=0x%08x", write ? "cfg-write" : "cfg-read",
	       (unsigned long long)off, n == 4, v);
}

/* One locked page of ours, valid until exit: a legitimate GET_PAGES target. */
static uint8_t *own_page(uint64_t *pa)
{
	uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, 4096);
	*pa = virt_to_phys(p);
	return *pa ? p : NULL;
}

/*
 * Persist and restore our own pages through the firmware: INIT, PAGE_BATCH of n
 * locked pages, metadata, PERSIST, RESTORE, then GET_PAGES of every page into
 * the mailbox and compare with the original; then once more with the dest_phys
 * form, straight into the page's own frame (dest_ok/dest_bad; high_pages
 * counts frames above 4 GiB, which SMM reaches through its map window).
 * Proves the SMM path end to end.
 */
static void roundtrip(unsigned int n, int stop_after_restore)
{
	const uint64_t vbase = 0x7e0000000000ULL;
	uint8_t *buf = mmap(NULL, (size_t)n * 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
	struct wpp_page_batch *b;
	struct wpp_page_op *ops;
	unsigned int ok = 0, bad = 0, missing = 0, dest_ok = 0, dest_bad = 0, high = 0;
	uint64_t *pas = calloc(n ? n : 1, sizeof(*pas));

	if (buf == MAP_FAILED || !pas || n > 20000) {
		printf("wpp-probe cmd=roundtrip error=alloc");
		return;
	}
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int k = 0; k < 4096; k++)
			buf[(size_t)i * 4096 + k] = (uint8_t)(i * 29 + k * 3 + (k >> 9));
	if (call("roundtrip-init", WPP_EV_INIT, 0) != WPP_OK)
		return;
	printf("\n");
	b = payload();
	ops = (struct wpp_page_op *)(b + 1);
	b->count = n;
	b->flags = 0;
	for (unsigned int i = 0; i < n; i++) {
		ops[i].virtual_address = vbase + (uint64_t)i * 4096;
		ops[i].physical_address = virt_to_phys(buf + (size_t)i * 4096);
		pas[i] = ops[i].physical_address;
		high += pas[i] >= 0x100000000ULL;
		ops[i].op = WPP_PAGE_OP_ADD;
		ops[i].reserved = 0;
		if (!ops[i].physical_address)
			missing++;
	}
	call("roundtrip-batch", WPP_EV_PAGE_BATCH, sizeof(*b) + n * sizeof(*ops));
	printf(" no_pfn=%u\n", missing);
	{
		struct wpp_data_cmd d = { .section = WPP_SECTION_METADATA, .size = 19 };

		memcpy(payload(), &d, sizeof(d));
		memcpy((uint8_t *)payload() + sizeof(d), "wpp-probe-roundtrip", 19);
		call("roundtrip-meta", WPP_EV_WRITE_DATA, sizeof(d) + 19);
		printf("\n");
	}
	if (call("roundtrip-persist", WPP_EV_PERSIST, 0) != WPP_OK)
		return;
	printf("\n");
	/* scribble over our pages: the restored copies must come from the device */
	memset(buf, 0xee, (size_t)n * 4096);
	if (call("roundtrip-restore", WPP_EV_RESTORE, 0) != WPP_OK || stop_after_restore)
		return;
	printf("\n");
	for (unsigned int i = 0; i < n; i++) {
		struct wpp_data_cmd d = { .section = WPP_SECTION_PAGES, .offset = i * 16, .size = 16 };
		struct wpp_page_mapping m;
		struct wpp_get_pages g = { .index = i, .count = 1, .dest_phys = 0 };
		uint64_t vi;
		uint8_t *got;
		int good = 1;

		memcpy(payload(), &d, sizeof(d));
		hdr()->payload_len = sizeof(d);
		if (call_quiet(WPP_EV_READ_DATA, sizeof(d)) != WPP_OK) {
			bad++;
			continue;
		}
		memcpy(&m, (uint8_t *)payload() + sizeof(d), sizeof(m));
		vi = (m.virtual_address - vbase) / 4096;
		memcpy(payload(), &g, sizeof(g));
		if (vi >= n || call_quiet(WPP_EV_GET_PAGES, sizeof(g)) != WPP_OK) {
			bad++;
			continue;
		}
		got = (uint8_t *)payload() + sizeof(g);
		for (unsigned int k = 0; k < 4096 && good; k++)
			good = got[k] == (uint8_t)(vi * 29 + k * 3 + (k >> 9));
		if (good)
			ok++;
		else
			bad++;
	}
	/* dest_phys form: snapshot page i straight into the frame it came from */
	memset(buf, 0xdd, (size_t)n * 4096);
	for (unsigned int i = 0; i < n; i++) {
		struct wpp_data_cmd d = { .section = WPP_SECTION_PAGES, .offset = i * 16, .size = 16 };
		struct wpp_page_mapping m;
		struct wpp_get_pages g = { .index = i, .count = 1 };
		uint64_t vi;
		int good = 1;

		memcpy(payload(), &d, sizeof(d));
		if (call_quiet(WPP_EV_READ_DATA, sizeof(d)) != WPP_OK) {
			dest_bad++;
			continue;
		}
		memcpy(&m, (uint8_t *)payload() + sizeof(d), sizeof(m));
		vi = (m.virtual_address - vbase) / 4096;
		if (vi >= n || !pas[vi]) {
			dest_bad++;
			continue;
		}
		g.dest_phys = pas[vi];
		memcpy(payload(), &g, sizeof(g));
		if (call_quiet(WPP_EV_GET_PAGES, sizeof(g)) != WPP_OK) {
			dest_bad++;
			continue;
		}
		for (unsigned int k = 0; k < 4096 && good; k++)
			good = buf[vi * 4096 + k] == (uint8_t)(vi * 29 + k * 3 + (k >> 9));
		if (good)
			dest_ok++;
		else
			dest_bad++;
	}
	call("roundtrip-consume", WPP_EV_CONSUME, 0);
	printf(" pages=%u ok=%u bad=%u dest_ok=%u dest_bad=%u high_pages=%u", n, ok, bad,
	       dest_ok, dest_bad, high);
	munmap(buf, (size_t)n * 4096);
	free(pas);
}

int main(int argc, char **argv)
{
	uint64_t base = WPP_REGION_BASE_DEFAULT;
	int fd, i = 1;

	if (argc > 2 && !strcmp(argv[1], "--base")) {
		base = num(argv[2]);
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [--base ADDR] CMD...\n", argv[0]);
		return 2;
	}
	if (ioperm(WPP_APM_CNT_PORT, 1, 1)) {
		/* kernels without CONFIG_X86_IOPL_IOPERM: fall back to /dev/port */
		port_fd = open("/dev/port", O_WRONLY);
		if (port_fd < 0) {
			fprintf(stderr, "wpp-probe error=ioperm errno=%d (%s), no /dev/port\n",
				errno, strerror(errno));
			return 2;
		}
	}
	fd = open("/dev/mem", O_RDWR | O_SYNC);
	mem_fd = fd;
	if (fd < 0) {
		fprintf(stderr, "wpp-probe error=open_devmem errno=%d (%s)\n", errno,
			strerror(errno));
		return 2;
	}
	mbox = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
	if (mbox == MAP_FAILED) {
		fprintf(stderr, "wpp-probe error=mmap errno=%d (%s)\n", errno, strerror(errno));
		return 2;
	}

	for (; i < argc; i++) {
		const char *c = argv[i];

		if (!strcmp(c, "init")) {
			call(c, WPP_EV_INIT, 0);
		} else if (!strcmp(c, "dump")) {
			debug_op(c, WPP_DEBUG_OP_DUMP, 0);
		} else if (!strcmp(c, "selftest")) {
			debug_op(c, WPP_DEBUG_OP_SELFTEST, 0);
		} else if (!strcmp(c, "toggle") && i + 1 < argc) {
			debug_op(c, WPP_DEBUG_OP_TOGGLE, (uint32_t)num(argv[++i]));
		} else if (!strcmp(c, "counters")) {
			counters();
		} else if (!strcmp(c, "restore")) {
			call(c, WPP_EV_RESTORE, 0);
		} else if (!strcmp(c, "persist")) {
			call(c, WPP_EV_PERSIST, 0);
		} else if (!strcmp(c, "bad-mailbox")) {
			call_raw(c, WPP_EV_INIT, WPP_EV_INIT, 0xdeadbeef, 0);
		} else if (!strcmp(c, "bad-event")) {
			/* header says DEBUG, port says INIT: must be refused */
			call_raw(c, WPP_EV_INIT, WPP_EV_DEBUG, WPP_MAILBOX_MAGIC, 0);
		} else if (!strcmp(c, "smram-page") && i + 1 < argc) {
			/* SMRAM as the target reports it (no constant: it moves with RAM size) */
			add_page(c, 0x400000, num(argv[++i]));
		} else if (!strcmp(c, "restore-force")) {
			uint32_t f = WPP_RESTORE_F_FORCE;

			memcpy(payload(), &f, sizeof(f));
			call(c, WPP_EV_RESTORE, sizeof(f));
		} else if (!strcmp(c, "consume")) {
			call(c, WPP_EV_CONSUME, 0);
		} else if (!strcmp(c, "snapshot") && i + 1 < argc) {
			roundtrip((unsigned int)num(argv[++i]), 1);
		} else if (!strcmp(c, "own-page")) {
			uint64_t pa = 0;

			if (own_page(&pa))
				add_page(c, 0x7d0000000000ULL, pa);
			else
				printf("wpp-probe cmd=own-page error=alloc");
		} else if (!strcmp(c, "get-pages") && i + 2 < argc) {
			struct wpp_get_pages g = { .index = (uint32_t)num(argv[i + 1]),
						   .count = (uint32_t)num(argv[i + 2]) };

			i += 2;
			memcpy(payload(), &g, sizeof(g));
			call(c, WPP_EV_GET_PAGES, sizeof(g));
		} else if (!strcmp(c, "get-pages-own") && i + 1 < argc) {
			struct wpp_get_pages g = { .index = (uint32_t)num(argv[++i]), .count = 1 };

			if (!own_page(&g.dest_phys)) {
				printf("wpp-probe cmd=get-pages-own error=alloc");
			} else {
				memcpy(payload(), &g, sizeof(g));
				call(c, WPP_EV_GET_PAGES, sizeof(g));
			}
		} else if (!strcmp(c, "smram-digest")) {
			smram_digest(c);
		} else if (!strcmp(c, "mem-crc") && i + 2 < argc) {
			mem_crc(num(argv[i + 1]), num(argv[i + 2]));
			i += 2;
		} else if (!strcmp(c, "cfg-read") && i + 2 < argc) {
			cfg_access(argv[i + 1], num(argv[i + 2]), 0, 0);
			i += 2;
		} else if (!strcmp(c, "cfg-write") && i + 3 < argc) {
			cfg_access(argv[i + 1], num(argv[i + 2]), 1, (uint32_t)num(argv[i + 3]));
			i += 3;
		} else if (!strcmp(c, "region-page")) {
			add_page(c, 0x400000, base + WPP_PAGES_OFFSET);
		} else if (!strcmp(c, "add-page") && i + 2 < argc) {
			uint64_t va = num(argv[i + 1]), pa = num(argv[i + 2]);

			i += 2;
			add_page(c, va, pa);
		} else if (!strcmp(c, "write-meta") && i + 2 < argc) {
			struct wpp_data_cmd d = { .section = WPP_SECTION_METADATA,
						  .offset = (uint32_t)num(argv[i + 1]),
						  .size = (uint32_t)strlen(argv[i + 2]) };

			memcpy(payload(), &d, sizeof(d));
			memcpy((uint8_t *)payload() + sizeof(d), argv[i + 2], d.size);
			i += 2;
			call(c, WPP_EV_WRITE_DATA, sizeof(d) + d.size);
		} else if (!strcmp(c, "read-meta") && i + 2 < argc) {
			struct wpp_data_cmd d = { .section = WPP_SECTION_METADATA,
						  .offset = (uint32_t)num(argv[i + 1]),
						  .size = (uint32_t)num(argv[i + 2]) };

			i += 2;
			if (d.size > 256)
				d.size = 256;
			memcpy(payload(), &d, sizeof(d));
			if (call(c, WPP_EV_READ_DATA, sizeof(d)) == WPP_OK)
				printf(" data=%.*s", (int)d.size,
				       (const char *)payload() + sizeof(d));
		} else if (!strcmp(c, "roundtrip") && i + 1 < argc) {
			roundtrip((unsigned int)num(argv[++i]), 0);
		} else if (!strcmp(c, "read-ro")) {
			struct wpp_data_cmd d = { .section = WPP_SECTION_REGIONS, .size = 4 };

			memcpy(payload(), &d, sizeof(d));
			call(c, WPP_EV_WRITE_DATA, sizeof(d) + 4);
		} else {
			fprintf(stderr, "wpp-probe error=unknown_cmd cmd=%s\n", c);
			return 2;
		}
		printf("\n");
		fflush(stdout);
	}
	return unanswered ? 3 : 0;
}
