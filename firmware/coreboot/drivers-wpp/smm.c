/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SMM side of WPP on coreboot: the platform for the portable core.
 *
 * Log lines go to the debug port (QEMU debugcon 0xe9 on the twin; never the
 * UART, whose state belongs to the OS) and are appended to the CBMEM console
 * so `cbmem -c` on the running OS shows them. SMM's own printk is not used.
 */
#include <arch/io.h>
#include <commonlib/helpers.h>
#include <cpu/x86/cr.h>
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

#define FOUR_GIB		0x100000000ULL

#if CONFIG(WPP_SMM_PAE_WINDOW)
/*
 * RAM above 4 GiB from 32-bit SMM: while an event needs it, PAE paging with
 * tables in SMRAM (this module's bss, never OS-writable memory): 0-4 GiB
 * identity-mapped with 2 MiB pages, except a window of WIN_PDES pages whose
 * entries map() points at the high frames of one piece at a time. The
 * window's virtual range is chosen at the handoff where the handler never
 * goes: above the end of low DRAM, off SMRAM, the WPP region, the recorded
 * device windows, MMCONFIG, the CBMEM console and the APIC/flash area.
 * Paging is switched on at the first high map() of an event and off before
 * the handler returns, so events without high pages run as before.
 */
#define PAE_P			(1ULL << 0)
#define PAE_RW			(1ULL << 1)
#define PAE_PS			(1ULL << 7)
#define PDE_SIZE		(2ULL << 20)
#define WIN_PDES		3
/* any piece of this size fits the window, whatever its offset in a 2 MiB page */
#define WIN_PIECE		((WIN_PDES - 1) * PDE_SIZE)
#define WIN_AREA_END		0xfe000000ULL	/* APICs, HPET, flash above */

static u64 pae_pdpt[4] __aligned(32);
static u64 pae_pd[4 * 512] __aligned(4096);
static uintptr_t win_va;		/* 0 = no window: high RAM stays unmapped */
static int pae_on;
static CRx_TYPE saved_cr0, saved_cr3, saved_cr4;


static void pae_identity(unsigned int i)
{
	pae_pd[i] = (u64)i * PDE_SIZE | PAE_PS | PAE_RW | PAE_P;
}

static int win_clear(u64 va, u64 size, const struct wpp_handoff *h)
{
	if (va + size > WIN_AREA_END || va < ctx.ram_top ||
	    overlaps(va, size, ctx.layout.smram.base, ctx.layout.smram.size) ||
	    overlaps(va, size, CONFIG_WPP_REGION_BASE, CONFIG_WPP_REGION_SIZE) ||
	    overlaps(va, size, CONFIG_MMCONF_BASE_ADDRESS, CONFIG_MMCONF_BUS_NUMBER * MiB) ||
	    (h->cbmemc_addr && overlaps(va, size, h->cbmemc_addr, 8 + h->cbmemc_size)))
		return 0;
	for (unsigned int i = 0; i < ctx.dev_nwin; i++)
		if (overlaps(va, size, ctx.dev_win[i].base, ctx.dev_win[i].size))
			return 0;
	for (u32 i = 0; i < ctx.layout.nram; i++)
		if (overlaps(va, size, ctx.layout.ram[i].base, ctx.layout.ram[i].size))
			return 0;
	return 1;
}

/* At the handoff, after the layout and the device windows are recorded. */
static void pae_setup(const struct wpp_handoff *h)
{
	const u64 size = WIN_PDES * PDE_SIZE;

	for (unsigned int i = 0; i < ARRAY_SIZE(pae_pd); i++)
		pae_identity(i);
	for (unsigned int i = 0; i < 4; i++)
		pae_pdpt[i] = (uintptr_t)&pae_pd[i * 512] | PAE_P;
	win_va = 0;
	for (u64 va = ALIGN_UP(ctx.ram_top, PDE_SIZE); va + size <= WIN_AREA_END;
	     va += PDE_SIZE) {
		if (win_clear(va, size, h)) {
			win_va = (uintptr_t)va;
			break;
		}
	}
	if (!win_va) {
		wpp_logf(&plat, "smm_paging status=%d error=no_window", WPP_E_BAD_ADDR);
		plat.map_window = 0;
		return;
	}
	plat.map_window = WIN_PIECE;
	wpp_logf(&plat, "smm_paging status=0 mode=pae window=0x%lx:0x%llx piece=0x%llx "
		 "tables=0x%lx", (unsigned long)win_va, (unsigned long long)size,
		 (unsigned long long)WIN_PIECE, (unsigned long)(uintptr_t)pae_pdpt);
}

static void pae_enable(void)
{
	saved_cr0 = read_cr0();
	saved_cr3 = read_cr3();
	saved_cr4 = read_cr4();
	write_cr3((uintptr_t)pae_pdpt);
	write_cr4(saved_cr4 | CR4_PAE);
	write_cr0(saved_cr0 | CR0_PG);
	pae_on = 1;
}

/* Before the handler returns: paging off, the window back to identity. */
static void pae_disable(void)
{
	if (!pae_on)
		return;
	write_cr0(saved_cr0);
	write_cr4(saved_cr4);
	write_cr3(saved_cr3);
	for (unsigned int i = 0; i < WIN_PDES; i++)
		pae_identity(win_va / PDE_SIZE + i);
	pae_on = 0;
}

static void *pae_map(wpp_u64 phys, wpp_u64 len)
{
	u64 base = phys & ~(PDE_SIZE - 1);

	if (!win_va || len > WIN_PIECE)
		return NULL;
	if (!pae_on)
		pae_enable();
	for (unsigned int i = 0; i < WIN_PDES; i++) {
		uintptr_t va = win_va + i * PDE_SIZE;

		pae_pd[va / PDE_SIZE] = (base + i * PDE_SIZE) | PAE_PS | PAE_RW | PAE_P;
		asm volatile("invlpg (%0)" :: "r"(va) : "memory");
	}
	return (void *)(win_va + (uintptr_t)(phys - base));
}
#else
static void pae_setup(const struct wpp_handoff *h) {}
static void pae_disable(void) {}
static void *pae_map(wpp_u64 phys, wpp_u64 len)
{
	return NULL;	/* the device moves such pages by DMA (FPGA board) */
}
#endif

/*
 * Below 4 GiB SMM addresses memory directly (identity). Above, only through
 * the PAE window, one piece (at most plat.map_window) per call; the pointer
 * is valid until the next call or the end of the event.
 */
static void *cb_map(void *unused, wpp_u64 phys, wpp_u64 len)
{
	if (!len || phys + len < phys)
		return NULL;
	if (phys + len <= FOUR_GIB)
		return (void *)(uintptr_t)phys;
	return pae_map(phys, len);
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
	if (wpp_guard_record(&ctx, &layout) == WPP_OK)
		pae_setup(&h);
}

int wpp_smi_apmc(uint8_t data)
{
	uint8_t now;
	int ret;

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
	/*
	 * The APM value this SMI was dispatched with may be stale: on a machine
	 * whose CPUs are host threads (the twin), one CPU can take its copy of
	 * the previous broadcast SMI so late that the OS has meanwhile written
	 * the next request, whose own `out` is still to come. The rendezvous
	 * waits for the requesting CPU, which enters SMM only through that
	 * `out`: read the port again now, so the request is judged by the value
	 * its own doorbell wrote (a stale one answered it BAD_MAILBOX).
	 */
	now = inb(APM_CNT);	/* not apm_get_apmc(): that one also logs */
	if (now != data) {
		wpp_logf(&plat, "smi status=0 apm_was=0x%x apm_now=0x%x", data, now);
		if (now < WPP_EV_FIRST || now > WPP_EV_LAST)
			return 1;	/* not a WPP doorbell: leave the mailbox alone */
		data = now;
	}
	ret = wpp_handle_event(&ctx, data);
	pae_disable();
	return ret;
}
