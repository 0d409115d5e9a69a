// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-smi-fuzz: send thousands of random mailbox commands to the WPP SMM
 * handler from a guest's user space and check every answer.
 *
 * Usage: wpp-smi-fuzz [--base ADDR] [--seed S] [--count N]
 *                     [--smram BASE:SIZE|auto|none] [--lenient-reserved]
 *                     [--sweep-reserved] [--persist] [--prepare]
 *                     [--known-pages K]
 *
 * Commands are random events 0xa0-0xac (and now and then the one-shot
 * ramstage handoff 0xad, which the handler must ignore after boot) with
 * random payloads, lengths and header junk (bad magic, ABI version, an event
 * in the header that differs from the port byte, payload lengths beyond the
 * mailbox). Physical addresses are drawn from three classes:
 *  - our own locked pages (valid OS RAM),
 *  - other System RAM pages (valid; only ever recorded, never written),
 *  - forbidden ones: the WPP region itself, SMRAM (--smram BASE:SIZE as the
 *    target reports it, e.g. from its "wpp: guard ... smram=" line; "auto"
 *    (default) asks the handler's SMRAM_DIGEST debug op; "none"), every non-RAM
 *    range of /proc/iomem above 1 MiB (PCI windows, MMCONFIG, APIC;
 *    e820-reserved firmware tables such as CBMEM) and addresses beyond the
 *    end of RAM.
 * GET_PAGES writes only into the mailbox, one of our own pages, or a
 * forbidden address (which must be refused), never into other RAM.
 * PERSIST rewrites the persistent device and is left out unless --persist.
 *
 * Checked for every command: it was answered (seq_ack == seq), the status is
 * a known one, and no forbidden address, header junk, oversized length or
 * write to a read-only section was accepted (--lenient-reserved: accepted
 * e820-reserved addresses outside SMRAM and the WPP region are only counted,
 * not violations). Pages of ours that no command named as a destination must
 * be unchanged at the end. Finally INIT, SELFTEST and a READ_DATA of the
 * counters must still succeed, and the debug flags are put back to 0.
 *
 * Strict probes (--known-pages K, after --prepare made a known snapshot of K
 * pages): a "refused" that came from a state or bounds check proves nothing
 * about the address check, so one command in eight becomes a pair that puts
 * the handler where only the address can fail (INIT then ADD_PAGE, or
 * RESTORE FORCE of the known snapshot then an in-bounds GET_PAGES) with a
 * forbidden address, and requires exactly WPP_E_BAD_ADDR. Reported per class
 * as strict_<class>=BAD_ADDR/SENT. Forbidden addresses include holes above
 * 4 GiB and addresses past high RAM (strict_high_bad=BAD_ADDR/SENT counts the
 * strict ones above 4 GiB); one strict pair in four instead offers a page of
 * System RAM above 4 GiB, which must be accepted (strict_high_ram=OK/SENT,
 * 0/0 on a target without RAM there).
 *
 * --prepare: INIT, PAGE_BATCH of K=8 of our pages, PERSIST, RESTORE FORCE;
 * prints "wpp-fuzz prepared pages=K ..." (exit 1 unless all succeeded).
 *
 * --sweep-reserved instead tries ADD_PAGE on every page of the e820-reserved
 * ranges (not SMRAM, not the WPP region) and prints
 *   wpp-fuzz sweep e820_reserved=ACCEPTED/SENT first_accepted=0xPA
 * (exit 1 if any was accepted).
 *
 * Output: "wpp-fuzz violation ..." lines, then one summary line
 *   wpp-fuzz done seed=S commands=N answered=N unanswered=N violations=N ...
 *            statuses=<count per status 0..18,unknown> events=<count per 0xa0..0xad>
 *            region=A/S smram=A/S mmio=A/S beyond_ram=A/S e820_reserved=A/S
 * Exit status: 0 no violation, 1 violations or unanswered commands, 2 usage
 * or setup error. Needs root (ioperm or /dev/port, /dev/mem, pagemap).
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

#define MAP_LEN		(2UL << 20)	/* header + the payloads we write */
#define PAYLOAD_MAX	(MAP_LEN - WPP_MAILBOX_HDR_SIZE)
#define OWN_PAGES	64		/* locked pages of ours */
#define DEST_PAGES	8		/* the first ones may be GET_PAGES targets */
#define MAX_RANGES	64
#define WPP_MAX(a, b)	((a) > (b) ? (a) : (b))
#define LOW_LIMIT	0x100000ULL	/* below 1 MiB the OS and e820 disagree */
/* ramstage -> SMM one-shot handoff (firmware/coreboot/drivers-wpp/wpp_coreboot.h) */
#define APM_HANDOFF	0xad
#define SMI_RINGS	4	/* doorbells per request, as the kernel driver */

struct range {
	uint64_t start, end;		/* inclusive */
	int reserved;			/* "Reserved" in /proc/iomem (e820), not MMIO */
};

/* Classes of forbidden addresses. */
enum { C_REGION, C_SMRAM, C_MMIO, C_BEYOND, C_RESERVED, C_COUNT };
static const char *const class_name[C_COUNT] = {
	"region", "smram", "mmio", "beyond_ram", "e820_reserved",
};

static volatile uint8_t *mbox;
static int port_fd = -1;
static uint32_t seq;
static uint64_t rng;
static uint64_t region_base = WPP_REGION_BASE_DEFAULT;

static struct range ram[MAX_RANGES], bad[MAX_RANGES];
static int nram, nbad;
static uint64_t ram_end;

static uint8_t *own;
static uint64_t own_pa[OWN_PAGES];

static unsigned long status_count[WPP_E_COUNT + 1];
static unsigned long event_count[16];
static unsigned long answered, unanswered, violations, forbidden, forbidden_refused;
static unsigned long rerung;	/* doorbells rung again: a late SMI held the handler */
static unsigned long handoffs;
static uint64_t last_bad_pa;	/* the last forbidden address drawn, for reports */
static int last_class;
static uint64_t smram_base, smram_size;	/* from --smram or the handler */
#define KNOWN_PAGES	8	/* pages of the --prepare snapshot */
static unsigned int known_pages;	/* --known-pages: strict probes on */
static unsigned long strict_sent[C_COUNT], strict_bad_addr[C_COUNT];
/* Strict probes above 4 GiB: RAM there must be accepted, the rest BAD_ADDR. */
#define FOUR_GIB		0x100000000ULL
static unsigned long high_ram_sent, high_ram_ok, high_bad_sent, high_bad_addr;
static int lenient_reserved;	/* e820-reserved acceptance only counted */
static unsigned long class_sent[C_COUNT], class_accepted[C_COUNT];

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static struct wpp_mailbox_hdr *hdr(void)
{
	return (struct wpp_mailbox_hdr *)mbox;
}

static uint8_t *payload(void)
{
	return (uint8_t *)mbox + WPP_MAILBOX_HDR_SIZE;
}

static void fill_random(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rnd();
}

/* ---------------------------------------------------------------- memory map */

static int parse_iomem(void)
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		char *name;

		if (line[0] == ' ')	/* top-level entries only */
			continue;
		if (sscanf(line, "%llx-%llx", &s, &e) != 2)
			continue;
		name = strstr(line, " : ");
		if (!name)
			continue;
		name += 3;
		if (!strncmp(name, "System RAM", 10)) {
			if (nram < MAX_RANGES)
				ram[nram++] = (struct range){ s, e, 0 };
			if (e + 1 > ram_end)
				ram_end = e + 1;
		} else if (s >= LOW_LIMIT && nbad < MAX_RANGES) {
			bad[nbad++] = (struct range){ s, e, !strncmp(name, "Reserved", 8) };
		}
	}
	fclose(f);
	return (nram && !(ram[0].start == 0 && ram[0].end == 0)) ? 0 : -1;
}

static int in_ram(uint64_t pa, uint64_t len)
{
	for (int i = 0; i < nram; i++)
		if (pa >= ram[i].start && pa + len - 1 <= ram[i].end && pa + len > pa)
			return 1;
	return 0;
}

static int overlaps(uint64_t pa, uint64_t base, uint64_t size)
{
	return pa >= base && pa < base + size;
}

/*
 * A page-aligned address that is not OS RAM; sets last_class. e820-reserved
 * ranges other than SMRAM and the WPP region (firmware tables, CBMEM) are a
 * class of their own: the firmware knows them only from its RAM map.
 */
static uint64_t forbidden_pa(void)
{
	uint64_t pa;
	int cls;

	switch (below(6)) {
	case 5:		/* above 4 GiB, up to 64 GiB: holes and past high RAM */
		pa = FOUR_GIB + below(60ULL << 30);
		cls = C_BEYOND;
		break;
	case 0:		/* the WPP region: mailbox, sections */
		pa = region_base + below(WPP_REGION_SIZE_DEFAULT);
		cls = C_REGION;
		break;
	case 1:		/* SMRAM (TSEG) */
		if (smram_size) {
			pa = smram_base + below(smram_size);
			cls = C_SMRAM;
			break;
		}
		/* fall through */
	case 2:		/* a reserved or MMIO range from /proc/iomem */
		if (nbad) {
			const struct range *r = &bad[below(nbad)];

			pa = r->start + below(r->end - r->start + 1);
			cls = r->reserved ? C_RESERVED : C_MMIO;
			break;
		}
		/* fall through */
	case 3:		/* just beyond the end of RAM */
		pa = ram_end + below(1ULL << 30);
		cls = C_BEYOND;
		break;
	case 4:		/* far beyond: 64 GiB .. 2^52 */
		pa = (64ULL << 30) + below(1ULL << 52);
		cls = C_BEYOND;
		break;
	}
	pa &= ~0xfffULL;
	if (in_ram(pa, 4096)) {
		pa = WPP_MAX(ram_end, FOUR_GIB) + 0x10000000ULL;
		cls = C_BEYOND;
	}
	if (overlaps(pa, region_base, WPP_REGION_SIZE_DEFAULT))
		cls = C_REGION;
	else if (overlaps(pa, smram_base, smram_size))
		cls = C_SMRAM;
	last_bad_pa = pa;
	last_class = cls;
	return pa;
}

static uint64_t ram_pa(void)
{
	const struct range *r = &ram[below(nram)];
	uint64_t pa = (r->start + below(r->end - r->start + 1)) & ~0xfffULL;

	return pa < LOW_LIMIT || !in_ram(pa, 4096) ? own_pa[0] : pa;
}

/* Physical address for a page operation; *cls_mask gets the forbidden class bit. */
static uint64_t pick_pa(unsigned int *cls_mask)
{
	uint64_t r = below(10), pa;

	if (r < 4)
		return own_pa[below(OWN_PAGES)];
	if (r < 5)
		return ram_pa();
	pa = forbidden_pa();
	*cls_mask |= 1U << last_class;
	return pa;
}

static uint64_t virt_to_phys(void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / 4096 * sizeof(e))) != sizeof(e))
		e = 0;
	close(fd);
	if (!(e & (1ULL << 63)))
		return 0;
	return (e & ((1ULL << 55) - 1)) * 4096;
}

static uint8_t canary(unsigned int page, unsigned int k)
{
	return (uint8_t)(page * 131 + k * 7 + 0x5a);
}

static int setup_own_pages(void)
{
	own = mmap(NULL, OWN_PAGES * 4096UL, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);
	if (own == MAP_FAILED)
		return -1;
	for (unsigned int i = 0; i < OWN_PAGES; i++) {
		for (unsigned int k = 0; k < 4096; k++)
			own[i * 4096UL + k] = canary(i, k);
		own_pa[i] = virt_to_phys(own + i * 4096UL);
		if (!own_pa[i])
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- one command */

static void violation(unsigned long i, uint8_t ev, const char *why, int status)
{
	violations++;
	printf("wpp-fuzz violation i=%lu event=0x%02x why=%s status=%d seq=%u "
	       "last_forbidden_pa=0x%llx\n", i, ev, why, status, seq,
	       (unsigned long long)last_bad_pa);
}

/*
 * Fill the header and raise the SMI. Returns the status, or -1000 when the
 * handler did not answer.
 */
static int raise_smi(uint8_t port_ev, uint16_t hdr_ev, uint32_t magic, uint16_t abi,
		     uint32_t len)
{
	struct wpp_mailbox_hdr *h = hdr();

	seq++;
	h->magic = magic;
	h->abi_version = abi;
	h->event = hdr_ev;
	h->seq_ack = seq - 1;
	h->status = -1;
	h->payload_len = len;
	/*
	 * seq last, as the kernel driver does: with several CPUs another CPU's late
	 * copy of the previous broadcast SMI can reach the handler at any moment. Until
	 * seq changes it answers "duplicate" and leaves the mailbox alone; with seq
	 * written first it answered the half-written request and our seq_ack store
	 * then erased its answer ("unanswered", 2 of 5000 commands on 2 vCPUs).
	 */
	__sync_synchronize();
	h->seq = seq;
	__sync_synchronize();
	/* rung again while unanswered, as the kernel driver does (WPP_SMI_RINGS) */
	for (int ring = 0; ring < SMI_RINGS; ring++) {
		if (ring)
			rerung++;
		if (port_fd >= 0) {
			if (pwrite(port_fd, &port_ev, 1, WPP_APM_CNT_PORT) != 1)
				return -1001;
		} else {
			outb(port_ev, WPP_APM_CNT_PORT);
		}
		__sync_synchronize();
		if (h->seq_ack == seq)
			return h->status;
		if (port_ev == APM_HANDOFF)
			break;	/* never answered after boot */
	}
	return -1000;
}

static uint32_t random_len(uint32_t natural)
{
	uint64_t r = below(20);

	if (r < 14)
		return natural;
	if (r < 18)
		return (uint32_t)below(natural + 64);
	return (uint32_t)rnd();	/* anything, mostly far beyond the mailbox */
}

static int simple(uint8_t ev, const void *pl, uint32_t len);

/* A random page of System RAM above 4 GiB, or 0 when there is none. */
static uint64_t high_ram_pa(void)
{
	uint64_t total = 0, pick;

	for (int i = 0; i < nram; i++)
		if (ram[i].end >= FOUR_GIB)
			total += ram[i].end + 1 - WPP_MAX(ram[i].start, FOUR_GIB);
	if (!total)
		return 0;
	pick = below(total);
	for (int i = 0; i < nram; i++) {
		uint64_t lo = WPP_MAX(ram[i].start, FOUR_GIB), n;

		if (ram[i].end < FOUR_GIB)
			continue;
		n = ram[i].end + 1 - lo;
		if (pick < n)
			return (lo + pick) & ~0xfffULL;
		pick -= n;
	}
	return 0;
}

/*
 * The other half of the address policy above 4 GiB: a page of high System RAM
 * offered where nothing else can fail (INIT, then ADD_PAGE) must be accepted.
 * Only recorded by the handler, never written (no PERSIST follows here).
 */
static void strict_high_ram(unsigned long i)
{
	uint64_t pa = high_ram_pa();
	struct wpp_page_mapping m = { .virtual_address = 0x400000 + below(512) * 4096,
				      .physical_address = pa };
	int st;

	if (!pa)
		return;
	st = simple(WPP_EV_INIT, NULL, 0);
	if (st != WPP_OK) {
		violation(i, WPP_EV_INIT, "strict_init_failed", st);
		return;
	}
	st = simple(WPP_EV_ADD_PAGE, &m, sizeof(m));
	event_count[WPP_EV_ADD_PAGE - WPP_EV_FIRST]++;
	if (st == -1000 || st == -1001) {
		unanswered++;
		violation(i, 0, "unanswered", st);
		return;
	}
	answered++;
	if (st >= 0 && st < WPP_E_COUNT)
		status_count[st]++;
	high_ram_sent++;
	if (st == WPP_OK)
		high_ram_ok++;
	else
		violation(i, WPP_EV_ADD_PAGE, "high_ram_not_accepted", st);
}

/*
 * A forbidden address offered where nothing but the address can fail: the
 * answer must be WPP_E_BAD_ADDR itself, not any refusal.
 */
static void strict_probe(unsigned long i)
{
	uint64_t pa = forbidden_pa();
	int cls = last_class, st, pre;

	if (!smram_size && cls == C_SMRAM)
		return;
	if (below(2)) {
		struct wpp_page_mapping m = { .virtual_address = 0x400000 + below(512) * 4096,
					      .physical_address = pa };

		pre = simple(WPP_EV_INIT, NULL, 0);
		if (pre != WPP_OK) {
			violation(i, WPP_EV_INIT, "strict_init_failed", pre);
			return;
		}
		st = simple(WPP_EV_ADD_PAGE, &m, sizeof(m));
		event_count[WPP_EV_ADD_PAGE - WPP_EV_FIRST]++;
	} else {
		uint32_t flags = WPP_RESTORE_F_FORCE;
		struct wpp_get_pages g;

		pre = simple(WPP_EV_RESTORE, &flags, sizeof(flags));
		if (pre != WPP_OK) {
			violation(i, WPP_EV_RESTORE, "known_snapshot_not_restored", pre);
			return;
		}
		g.index = (uint32_t)below(known_pages);
		g.count = (uint32_t)below(known_pages - g.index) + 1;
		g.dest_phys = pa;
		st = simple(WPP_EV_GET_PAGES, &g, sizeof(g));
		event_count[WPP_EV_GET_PAGES - WPP_EV_FIRST]++;
	}
	if (st == -1000 || st == -1001) {
		unanswered++;
		violation(i, 0, "unanswered", st);
		return;
	}
	answered++;
	if (st < 0 || st >= WPP_E_COUNT) {
		status_count[WPP_E_COUNT]++;
		violation(i, 0, "unknown_status", st);
		return;
	}
	status_count[st]++;
	strict_sent[cls]++;
	if (pa >= FOUR_GIB) {
		high_bad_sent++;
		high_bad_addr += st == WPP_E_BAD_ADDR;
	}
	if (st == WPP_E_BAD_ADDR)
		strict_bad_addr[cls]++;
	else if (cls != C_RESERVED || !lenient_reserved)
		violation(i, 0, "forbidden_addr_not_bad_addr", st);
}

static void one(unsigned long i, int allow_persist)
{
	uint8_t ev = (uint8_t)(WPP_EV_FIRST + below(WPP_EV_COUNT));
	uint8_t *pl = payload();
	uint32_t len = 0, magic = WPP_MAILBOX_MAGIC;
	uint16_t hdr_ev, abi = WPP_ABI_VERSION;
	unsigned int bad = 0, strict;	/* forbidden address classes named */
	int must_fail = 0, st;
	const char *why = "";

	if (known_pages && below(8) == 0) {
		if (below(4) == 0)
			strict_high_ram(i);
		else
			strict_probe(i);
		return;
	}
	if (ev == WPP_EV_PERSIST && !allow_persist)
		ev = WPP_EV_READ_DATA;
	if (below(200) == 0) {
		ev = APM_HANDOFF;
		handoffs++;
	}
	memset(pl, 0, 4096);
	switch (ev) {
	case WPP_EV_INIT:
	case WPP_EV_CONSUME:
	case WPP_EV_PERSIST:
		len = (uint32_t)below(2) * (uint32_t)below(64);
		fill_random(pl, len);
		break;
	case WPP_EV_ADD_REGION: {
		struct wpp_region r;

		fill_random((uint8_t *)&r, sizeof(r));
		if (below(2))
			r.file_path[below(sizeof(r.file_path))] = 0;
		if (below(2)) {
			r.virtual_address &= 0x7ffffffff000ULL;
			r.length = (below(64) + 1) * 4096;
		}
		memcpy(pl, &r, sizeof(r));
		len = sizeof(r);
		break;
	}
	case WPP_EV_REMOVE_REGION:
		fill_random(pl, sizeof(struct wpp_region_key));
		len = sizeof(struct wpp_region_key);
		break;
	case WPP_EV_ADD_PAGE:
	case WPP_EV_REMOVE_PAGE: {
		struct wpp_page_mapping m;

		m.virtual_address = below(2) ? rnd() : (rnd() & 0x7ffffffff000ULL);
		m.physical_address = pick_pa(&bad);
		memcpy(pl, &m, sizeof(m));
		len = sizeof(m);
		if (ev == WPP_EV_REMOVE_PAGE)
			bad = 0;	/* removing an unknown mapping is harmless */
		why = "forbidden_pa_accepted";
		break;
	}
	case WPP_EV_PAGE_BATCH: {
		struct wpp_page_batch *b = (struct wpp_page_batch *)pl;
		struct wpp_page_op *ops = (struct wpp_page_op *)(b + 1);
		uint32_t n = (uint32_t)below(below(10) < 7 ? 64 : 3000) + 1;

		if ((n + 1) * sizeof(*ops) > PAYLOAD_MAX)
			n = 64;
		for (uint32_t k = 0; k < n; k++) {
			unsigned int m = 0;

			ops[k].virtual_address = rnd() & 0x7ffffffff000ULL;
			ops[k].physical_address = pick_pa(&m);
			ops[k].op = below(8) ? (uint32_t)below(2) + 1 : (uint32_t)rnd();
			ops[k].reserved = 0;
			if (ops[k].op == WPP_PAGE_OP_ADD)
				bad |= m;
		}
		b->count = below(10) ? n : (uint32_t)rnd();
		b->flags = below(4) ? 0 : (uint32_t)rnd();
		len = sizeof(*b) + n * sizeof(*ops);
		if (b->count != n)
			bad = 0;
		why = "forbidden_pa_in_batch_accepted";
		break;
	}
	case WPP_EV_WRITE_DATA:
	case WPP_EV_READ_DATA: {
		struct wpp_data_cmd d;

		d.section = below(4) ? (uint32_t)below(WPP_SECTION_COUNT) :
				       (uint32_t)below(2) * (uint32_t)rnd();
		d.offset = below(2) ? (uint32_t)below(8192) : (uint32_t)rnd();
		d.size = below(3) ? (uint32_t)below(4096) + 1 : (uint32_t)rnd();
		d.reserved = 0;
		memcpy(pl, &d, sizeof(d));
		len = sizeof(d);
		if (ev == WPP_EV_WRITE_DATA) {
			uint32_t n = d.size < 4096 ? d.size : 4096;

			fill_random(pl + sizeof(d), n);
			len += n;
			if (d.section != WPP_SECTION_METADATA) {
				must_fail = 1;
				why = "write_to_read_only_section_accepted";
			}
		}
		break;
	}
	case WPP_EV_RESTORE: {
		uint32_t flags = below(2) ? WPP_RESTORE_F_FORCE : (uint32_t)rnd();

		memcpy(pl, &flags, sizeof(flags));
		len = below(2) ? sizeof(flags) : 0;
		break;
	}
	case WPP_EV_GET_PAGES: {
		struct wpp_get_pages g;
		uint64_t r = below(10);

		g.index = below(2) ? (uint32_t)below(16) : (uint32_t)rnd();
		if (r < 4) {
			g.count = (uint32_t)below(4) + 1;
			g.dest_phys = 0;
		} else if (r < 6) {
			g.count = 1;
			g.dest_phys = own_pa[below(DEST_PAGES)];
		} else {
			g.count = (uint32_t)below(16) + 1;
			g.dest_phys = forbidden_pa();
			bad = 1U << last_class;
			why = "forbidden_dest_accepted";
		}
		memcpy(pl, &g, sizeof(g));
		len = sizeof(g);
		break;
	}
	case WPP_EV_DEBUG: {
		struct wpp_debug_cmd d;

		d.op = below(8) ? (uint32_t)below(4) : (uint32_t)rnd();
		d.flags = (uint32_t)below(4);
		if (d.op == WPP_DEBUG_OP_DUMP && below(4))
			d.op = WPP_DEBUG_OP_TOGGLE;	/* dumps are long: fewer of them */
		memcpy(pl, &d, sizeof(d));
		len = sizeof(d);
		break;
	}
	default:	/* handoff: not for the OS */
		len = (uint32_t)below(256);
		fill_random(pl, len);
		break;
	}

	strict = ((1U << C_COUNT) - 1) & ~(lenient_reserved ? 1U << C_RESERVED : 0U);
	if (bad & strict)
		must_fail = 1;
	else if (must_fail == 0)
		why = "";
	hdr_ev = ev;
	if (ev != APM_HANDOFF && below(10) == 0) {
		switch (below(4)) {
		case 0:
			magic = (uint32_t)rnd();
			why = "bad_magic_accepted";
			break;
		case 1:
			abi = (uint16_t)(WPP_ABI_VERSION + 1 + below(100));
			why = "bad_abi_accepted";
			break;
		case 2:
			hdr_ev = (uint16_t)(WPP_EV_FIRST + ((ev - WPP_EV_FIRST + 1 +
						below(WPP_EV_COUNT - 1)) % WPP_EV_COUNT));
			why = "event_mismatch_accepted";
			break;
		default:
			len = WPP_MAILBOX_PAYLOAD_MAX + 1 + (uint32_t)below(1U << 30);
			why = "oversized_len_accepted";
			break;
		}
		must_fail = 1;
	} else {
		len = random_len(len);
		if (len > WPP_MAILBOX_PAYLOAD_MAX) {
			must_fail = 1;
			why = "oversized_len_accepted";
		}
	}

	st = raise_smi(ev, hdr_ev, magic, abi, len);
	event_count[ev - WPP_EV_FIRST]++;
	if (ev == APM_HANDOFF) {
		/* ignored after boot (logged "already_done"): no answer expected */
		if (st != -1000 && st != WPP_E_STATE && st >= 0)
			violation(i, ev, "handoff_answered_ok", st);
		return;
	}
	if (st == -1000 || st == -1001) {
		unanswered++;
		violation(i, ev, st == -1000 ? "unanswered" : "port_write_failed", st);
		return;
	}
	answered++;
	if (st < 0 || st >= WPP_E_COUNT) {
		status_count[WPP_E_COUNT]++;
		violation(i, ev, "unknown_status", st);
		return;
	}
	status_count[st]++;
	if (hdr()->payload_len > WPP_MAILBOX_PAYLOAD_MAX)
		violation(i, ev, "reply_len_beyond_mailbox", st);
	for (int c = 0; c < C_COUNT; c++) {
		if (!(bad & (1U << c)))
			continue;
		class_sent[c]++;
		if (st == WPP_OK)
			class_accepted[c]++;
	}
	if (bad & strict) {
		forbidden++;
		if (st != WPP_OK)
			forbidden_refused++;
	}
	if (must_fail && st == WPP_OK)
		violation(i, ev, why, st);
}

/* ---------------------------------------------------------------- wrap-up */

static int simple(uint8_t ev, const void *pl, uint32_t len)
{
	memcpy(payload(), pl, len);
	return raise_smi(ev, ev, WPP_MAILBOX_MAGIC, WPP_ABI_VERSION, len);
}

static void sanity(void)
{
	struct wpp_debug_cmd d = { .op = WPP_DEBUG_OP_SELFTEST };
	struct wpp_data_cmd c = { .section = WPP_SECTION_INTERNAL,
				  .size = sizeof(struct wpp_counters) };
	struct wpp_counters k;
	int init, self, cnt, flags_st;
	uint64_t flags = 0;
	unsigned int canary_bad = 0;

	init = simple(WPP_EV_INIT, NULL, 0);
	self = simple(WPP_EV_DEBUG, &d, sizeof(d));
	cnt = simple(WPP_EV_READ_DATA, &c, sizeof(c));
	if (cnt == WPP_OK) {
		memcpy(&k, payload() + sizeof(c), sizeof(k));
		flags = k.debug_flags;
	}
	/* put the debug flags back (toggle is an XOR) */
	d.op = WPP_DEBUG_OP_TOGGLE;
	d.flags = (uint32_t)flags;
	flags_st = simple(WPP_EV_DEBUG, &d, sizeof(d));
	for (unsigned int i = DEST_PAGES; i < OWN_PAGES; i++)
		for (unsigned int b = 0; b < 4096; b++)
			if (own[i * 4096UL + b] != canary(i, b)) {
				canary_bad++;
				break;
			}
	if (init != WPP_OK || self != WPP_OK || cnt != WPP_OK || flags_st != WPP_OK)
		violation(0, 0, "handler_unusable_after_fuzzing",
			  init ? init : self ? self : cnt);
	if (canary_bad)
		violation(0, 0, "untargeted_own_page_changed", (int)canary_bad);
	printf("wpp-fuzz sanity init=%d selftest=%d counters=%d debug_flags_was=%llu "
	       "flags_reset=%d canary_bad_pages=%u\n", init, self, cnt,
	       (unsigned long long)flags, flags_st, canary_bad);
}

/* A known snapshot for the strict probes: KNOWN_PAGES of our canary pages. */
static int prepare(void)
{
	struct wpp_page_batch *b = (struct wpp_page_batch *)payload();
	struct wpp_page_op *ops = (struct wpp_page_op *)(b + 1);
	uint32_t flags = WPP_RESTORE_F_FORCE;
	int init, batch, persist, restore;

	init = simple(WPP_EV_INIT, NULL, 0);
	b->count = KNOWN_PAGES;
	b->flags = 0;
	for (unsigned int k = 0; k < KNOWN_PAGES; k++) {
		ops[k].virtual_address = 0x500000 + (uint64_t)k * 4096;
		ops[k].physical_address = own_pa[DEST_PAGES + k];
		ops[k].op = WPP_PAGE_OP_ADD;
		ops[k].reserved = 0;
	}
	batch = raise_smi(WPP_EV_PAGE_BATCH, WPP_EV_PAGE_BATCH, WPP_MAILBOX_MAGIC,
			  WPP_ABI_VERSION, sizeof(*b) + KNOWN_PAGES * sizeof(*ops));
	persist = simple(WPP_EV_PERSIST, NULL, 0);
	restore = simple(WPP_EV_RESTORE, &flags, sizeof(flags));
	printf("wpp-fuzz prepared pages=%u init=%d batch=%d persist=%d restore=%d\n",
	       KNOWN_PAGES, init, batch, persist, restore);
	return init || batch || persist || restore ? 1 : 0;
}

/* SMRAM as the handler reports it (DEBUG SMRAM_DIGEST); 0 when refused. */
static int smram_from_handler(void)
{
	struct wpp_debug_cmd d = { .op = WPP_DEBUG_OP_SMRAM_DIGEST };

	if (simple(WPP_EV_DEBUG, &d, sizeof(d)) != WPP_OK || !hdr()->result[2])
		return 0;
	smram_base = hdr()->result[1];
	smram_size = hdr()->result[2];
	return 1;
}

/*
 * Deterministic companion of the random run: ADD_PAGE of every page of every
 * e820-reserved range above 1 MiB except SMRAM and the WPP region (firmware
 * tables, CBMEM). None of them is OS RAM, so none may be accepted.
 */
static int sweep_reserved(void)
{
	struct wpp_page_mapping m;
	unsigned long sent = 0, accepted = 0;
	uint64_t first = 0;

	if (simple(WPP_EV_INIT, NULL, 0) != WPP_OK) {
		printf("wpp-fuzz sweep error=init\n");
		return 2;
	}
	for (int i = 0; i < nbad; i++) {
		if (!bad[i].reserved)
			continue;
		for (uint64_t pa = bad[i].start & ~0xfffULL; pa <= bad[i].end; pa += 4096) {
			if (overlaps(pa, region_base, WPP_REGION_SIZE_DEFAULT) ||
			    overlaps(pa, smram_base, smram_size) || pa < bad[i].start)
				continue;
			m.virtual_address = 0x400000 + (sent % 4096) * 4096;
			m.physical_address = pa;
			sent++;
			if (simple(WPP_EV_ADD_PAGE, &m, sizeof(m)) == WPP_OK) {
				if (!accepted)
					first = pa;
				accepted++;
				/* keep the slots free for the next ones */
				simple(WPP_EV_REMOVE_PAGE, &m, sizeof(m));
			}
		}
	}
	simple(WPP_EV_INIT, NULL, 0);	/* leave no mapping behind */
	printf("wpp-fuzz sweep e820_reserved=%lu/%lu first_accepted=0x%llx\n", accepted, sent,
	       (unsigned long long)first);
	return accepted ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long count = 3000;
	unsigned long long seed = 1;
	int allow_persist = 0, sweep = 0, fd, smram_auto = 1, do_prepare = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--base") && i + 1 < argc) {
			region_base = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			count = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--persist")) {
			allow_persist = 1;
		} else if (!strcmp(argv[i], "--lenient-reserved")) {
			lenient_reserved = 1;
		} else if (!strcmp(argv[i], "--sweep-reserved")) {
			sweep = 1;
		} else if (!strcmp(argv[i], "--prepare")) {
			do_prepare = 1;
		} else if (!strcmp(argv[i], "--known-pages") && i + 1 < argc) {
			known_pages = (unsigned int)strtoul(argv[++i], NULL, 0);
			if (!known_pages || known_pages > KNOWN_PAGES) {
				fprintf(stderr, "wpp-fuzz error=usage --known-pages 1..%d\n",
					KNOWN_PAGES);
				return 2;
			}
		} else if (!strcmp(argv[i], "--smram") && i + 1 < argc &&
			   !strcmp(argv[i + 1], "auto")) {
			i++;
			smram_auto = 1;
		} else if (!strcmp(argv[i], "--smram") && i + 1 < argc &&
			   !strcmp(argv[i + 1], "none")) {
			i++;
			smram_auto = 0;
			smram_base = smram_size = 0;	/* unknown here: class not drawn */
		} else if (!strcmp(argv[i], "--smram") && i + 1 < argc) {
			char *end;

			smram_auto = 0;
			smram_base = strtoull(argv[++i], &end, 0);
			smram_size = *end == ':' ? strtoull(end + 1, NULL, 0) : 0;
			if (!smram_size) {
				fprintf(stderr, "wpp-fuzz error=usage --smram BASE:SIZE\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: %s [--base ADDR] [--seed S] [--count N] "
				"[--smram BASE:SIZE|auto|none] [--lenient-reserved] "
				"[--sweep-reserved] [--persist] [--prepare] "
				"[--known-pages K]\n", argv[0]);
			return 2;
		}
	}
	rng = seed * 0x9e3779b97f4a7c15ULL + 1;
	if (parse_iomem()) {
		fprintf(stderr, "wpp-fuzz error=iomem (no System RAM in /proc/iomem: root?)\n");
		return 2;
	}
	if (ioperm(WPP_APM_CNT_PORT, 1, 1)) {
		port_fd = open("/dev/port", O_WRONLY);
		if (port_fd < 0) {
			fprintf(stderr, "wpp-fuzz error=ioperm errno=%d (%s)\n", errno,
				strerror(errno));
			return 2;
		}
	}
	fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		fprintf(stderr, "wpp-fuzz error=open_devmem errno=%d (%s)\n", errno,
			strerror(errno));
		return 2;
	}
	mbox = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)region_base);
	if (mbox == MAP_FAILED || setup_own_pages()) {
		fprintf(stderr, "wpp-fuzz error=mmap errno=%d (%s)\n", errno, strerror(errno));
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (smram_auto && !smram_from_handler()) {
		fprintf(stderr, "wpp-fuzz error=smram_unknown (the handler refused "
			"SMRAM_DIGEST: pass --smram BASE:SIZE from its 'wpp: guard' line)\n");
		return 2;
	}
	if (do_prepare)
		return prepare();
	if (sweep)
		return sweep_reserved();
	printf("wpp-fuzz start seed=%llu count=%lu ram_ranges=%d forbidden_ranges=%d "
	       "ram_end=0x%llx persist=%d smram=0x%llx:0x%llx known_pages=%u\n", seed, count,
	       nram, nbad, (unsigned long long)ram_end, allow_persist,
	       (unsigned long long)smram_base, (unsigned long long)smram_size, known_pages);

	for (unsigned long i = 1; i <= count; i++)
		one(i, allow_persist);
	sanity();

	printf("wpp-fuzz done seed=%llu commands=%lu answered=%lu unanswered=%lu "
	       "violations=%lu forbidden=%lu forbidden_refused=%lu handoffs=%lu rerung=%lu "
	       "statuses=", seed, count, answered, unanswered, violations, forbidden,
	       forbidden_refused, handoffs, rerung);
	for (int s = 0; s <= WPP_E_COUNT; s++)
		printf("%s%lu", s ? "," : "", status_count[s]);
	printf(" events=");
	for (int e = 0; e < 14; e++)
		printf("%s%lu", e ? "," : "", event_count[e]);
	for (int c = 0; c < C_COUNT; c++)
		printf(" %s=%lu/%lu", class_name[c], class_accepted[c], class_sent[c]);
	for (int c = 0; c < C_COUNT; c++)
		printf(" strict_%s=%lu/%lu", class_name[c], strict_bad_addr[c], strict_sent[c]);
	printf(" strict_high_ram=%lu/%lu strict_high_bad=%lu/%lu\n", high_ram_ok, high_ram_sent,
	       high_bad_addr, high_bad_sent);
	return violations || unanswered ? 1 : 0;
}
