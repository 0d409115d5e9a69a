/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SMM side of WPP on coreboot: the platform for the portable core.
 *
 * Log lines go to the debug port (QEMU debugcon 0xe9 on the twin; never the
 * UART, whose state belongs to the OS) and are appended to the CBMEM console
 * so `cbmem -c` on the running OS shows them. SMM's own printk is not used.
 */
#include <arch/io.h>
#include <cpu/x86/smm.h>
#include <string.h>
#include <timer.h>

#include "wpp_abi.h"
#include "wpp_core.h"
#include "wpp_coreboot.h"

#define CBMEMC_CURSOR_MASK	((1U << 28) - 1)
#define CBMEMC_OVERFLOW		(1U << 31)

struct cbmemc {
	u32 size;
	u32 cursor;
	u8 body[0];
};

static struct wpp_ctx ctx;
static struct wpp_platform plat;
static int ready;
static int handoff_done;
static struct wpp_handoff handoff;	/* validated copy, lives in SMRAM */
static struct wpp_layout layout;

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static void *cb_map(void *unused, wpp_u64 phys, wpp_u64 len)
{
	if (phys + len < phys || phys + len > 0x100000000ULL)
		return NULL;
	return (void *)(uintptr_t)phys;
}

/*
 * Second opinion after the core's check against the recorded layout: coreboot's
 * own idea of where the SMM handler lives (covers ASEG too).
 */
static bool cb_is_os_ram(void *unused, wpp_u64 phys, wpp_u64 len)
{
	if (phys + len > 0x100000000ULL)
		return true;	/* the handler is below 4 GiB */
	return !smm_points_to_smram((void *)(uintptr_t)phys, (size_t)len);
}

/*
 * The rendezvous count kept by coreboot's SMM entry (patch 0005, applied to
 * the twin's coreboot). A coreboot without it (Dasharo for the board, so far)
 * links this fallback: 0 = not counted, and SMM then does not wait.
 */
u32 __weak smm_cpus_in_smm(void)
{
	return 0;
}

static wpp_u32 cb_smm_cpus(void *unused)
{
	return smm_cpus_in_smm();
}

static void cb_relax(void *unused)
{
	asm volatile("pause" ::: "memory");
}

#if CONFIG(WPP_SMRAM_DIGEST)
static const void *cb_map_smram(void *unused)
{
	return (const void *)(uintptr_t)ctx.layout.smram.base;
}
#endif

static void cbmemc_put(const char *s, size_t len)
{
	struct cbmemc *c = (void *)(uintptr_t)handoff.cbmemc_addr;
	u32 size = handoff.cbmemc_size, cur, flags;

	if (!c || !size)
		return;
	/* The cursor is OS-writable memory: clamp it to the size recorded at boot. */
	cur = c->cursor;
	flags = cur & ~CBMEMC_CURSOR_MASK;
	cur &= CBMEMC_CURSOR_MASK;
	if (cur >= size)
		cur = 0;
	while (len--) {
		c->body[cur++] = (u8)*s++;
		if (cur >= size) {
			cur = 0;
			flags |= CBMEMC_OVERFLOW;
		}
	}
	c->cursor = cur | flags;
}

static void cb_log(void *unused, const char *line, size_t len)
{
	if (CONFIG_WPP_DEBUGCON_PORT) {
		for (size_t i = 0; i < len; i++)
			outb(line[i], CONFIG_WPP_DEBUGCON_PORT);
		outb('\n', CONFIG_WPP_DEBUGCON_PORT);
	}
	cbmemc_put(line, len);
	cbmemc_put("\n", 1);
}

static wpp_u64 cb_now(void *unused)
{
	struct mono_time t;

	timer_monotonic_get(&t);
	return t.microseconds;
}

static void setup(void)
{
	plat.ctx = NULL;
	plat.map = cb_map;
	plat.is_os_ram = cb_is_os_ram;
	plat.log = cb_log;
	plat.now_us = cb_now;
	/* Running in SMM right now: a counting coreboot says at least 1. */
	if (smm_cpus_in_smm())
		plat.smm_cpus = cb_smm_cpus;
	plat.relax = cb_relax;
#if CONFIG(WPP_SMRAM_DIGEST)
	plat.map_smram = cb_map_smram;
#endif
	plat.pdev = wpp_platform_pdev();
	plat.dev_timeout_us = 5 * 1000 * 1000;
	wpp_ctx_init(&ctx, &plat, (void *)(uintptr_t)CONFIG_WPP_REGION_BASE,
		     CONFIG_WPP_REGION_BASE, CONFIG_WPP_REGION_SIZE);
	ready = 1;
}

const struct wpp_platform *wpp_cb_platform(void)
{
	return &plat;
}

static void take_handoff(void)
{
	const struct wpp_handoff *src = (void *)(uintptr_t)(CONFIG_WPP_REGION_BASE +
		WPP_MAILBOX_OFFSET + WPP_MAILBOX_HDR_SIZE);
	struct wpp_handoff h;

	if (handoff_done) {
		wpp_logf(&plat, "handoff status=%d error=already_done", WPP_E_STATE);
		return;
	}
	handoff_done = 1;
	/* The handoff lies in the region: not read at all if that overlaps SMRAM
	 * (the core refuses every event then, see wpp_guard_record()). */
	if (smm_points_to_smram(src, sizeof(*src))) {
		wpp_logf(&plat, "handoff status=%d error=region_over_smram", WPP_E_BAD_ADDR);
		return;
	}
	memcpy(&h, src, sizeof(h));
	if (h.magic != WPP_HANDOFF_MAGIC || h.nranges > WPP_HANDOFF_MAX_RANGES ||
	    h.nranges > WPP_LAYOUT_MAX_RAM) {
		wpp_logf(&plat, "handoff status=%d error=bad_handoff", WPP_E_BAD_ARG);
		return;
	}
	/* ramstage's SMRAM must hold this very handler (its state is in SMRAM) */
	if (!h.smram_size || (uintptr_t)&ctx < h.smram_base ||
	    (uintptr_t)&ctx + sizeof(ctx) > h.smram_base + h.smram_size) {
		wpp_logf(&plat, "handoff status=%d error=bad_smram smram=0x%llx:0x%llx",
			 WPP_E_BAD_ARG, (unsigned long long)h.smram_base,
			 (unsigned long long)h.smram_size);
		return;
	}
	/* The CBMEM console must not overlap SMRAM or the WPP region. */
	if (h.cbmemc_addr && (h.cbmemc_addr + 8 + h.cbmemc_size > 0x100000000ULL ||
	    smm_points_to_smram((void *)(uintptr_t)h.cbmemc_addr, 8 + h.cbmemc_size) ||
	    overlaps(h.cbmemc_addr, 8 + h.cbmemc_size, CONFIG_WPP_REGION_BASE,
		     CONFIG_WPP_REGION_SIZE)))
		h.cbmemc_addr = 0;
	if (!h.smi_cpus || h.smi_cpus > CONFIG_MAX_CPUS)
		h.smi_cpus = 1;
	handoff = h;
	wpp_logf(&plat, "handoff status=0 ranges=%u cbmemc=0x%llx abi=%u smi_cpus=%u",
		 handoff.nranges, (unsigned long long)handoff.cbmemc_addr, WPP_ABI_VERSION,
		 handoff.smi_cpus);

	/* The machine as it is before the OS runs: recorded in SMRAM, with the
	 * device's BARs, for every later check. */
	memset(&layout, 0, sizeof(layout));
	layout.smram.base = h.smram_base;
	layout.smram.size = h.smram_size;
	layout.addr_limit = 0x100000000ULL;	/* 32-bit SMM, no paging */
	layout.nram = h.nranges;
	for (u32 i = 0; i < h.nranges; i++) {
		layout.ram[i].base = h.ram[i].base;
		layout.ram[i].size = h.ram[i].size;
	}
	wpp_guard_record(&ctx, &layout);
}

int wpp_smi_apmc(uint8_t data)
{
	if (data != WPP_APM_CNT_HANDOFF && (data < WPP_EV_FIRST || data > WPP_EV_LAST))
		return 0;
	if (!ready)
		setup();
	if (data == WPP_APM_CNT_HANDOFF) {
		take_handoff();
		return 1;
	}
	/*
	 * Hold every CPU the SMI reaches before touching the OS' memory: the
	 * others are parked in coreboot's SMM entry until this one is done.
	 * handoff.smi_cpus is 0 before the handoff (then: only this CPU).
	 */
	if (wpp_already_answered(&ctx, data))
		return 1;
	wpp_rendezvous(&ctx, handoff.smi_cpus, WPP_RENDEZVOUS_TIMEOUT_US);
	return wpp_handle_event(&ctx, data);
}
