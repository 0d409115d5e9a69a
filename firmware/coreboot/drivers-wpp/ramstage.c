/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ramstage part of WPP: reserve the WPP region in the memory map handed to
 * the OS (e820 "reserved"), and hand SMM the final OS RAM map and the CBMEM
 * console location right before the payload runs.
 */
#include <arch/io.h>
#include <bootmem.h>
#include <bootstate.h>
#include <cbmem.h>
#include <console/console.h>
#include <cpu/x86/smm.h>
#include <device/device.h>
#include <string.h>

#include "wpp_abi.h"
#include "wpp_coreboot.h"

void bootmem_platform_add_ranges(void)
{
	bootmem_add_range(CONFIG_WPP_REGION_BASE, CONFIG_WPP_REGION_SIZE, BM_MEM_RESERVED);
	printk(BIOS_INFO, "wpp: region_reserved base=0x%x size=0x%x\n",
	       CONFIG_WPP_REGION_BASE, CONFIG_WPP_REGION_SIZE);
}

/*
 * Only what the OS is told is usable RAM (the e820 "usable" ranges) may be named in
 * a mailbox command. The OS view is walked, not coreboot's own: there ramstage and
 * the payload are "RAM" although ramstage lives inside CBMEM, which the OS sees as
 * reserved, so SMM would have accepted CBMEM pages from the OS.
 */
static bool add_ram(const struct range_entry *r, void *arg)
{
	struct wpp_handoff *h = arg;

	if (range_entry_tag(r) != BM_MEM_RAM)
		return true;
	if (h->nranges == WPP_HANDOFF_MAX_RANGES) {
		printk(BIOS_WARNING, "wpp: handoff_ranges status=13 error=too_many_ranges\n");
		return false;
	}
	h->ram[h->nranges].base = range_entry_base(r);
	h->ram[h->nranges].size = range_entry_size(r);
	h->nranges++;
	return true;
}

int __weak wpp_platform_smi_broadcast(void)
{
	return 1;
}

struct cbmem_console_hdr {
	u32 size;
	u32 cursor;
};

static void wpp_handoff(void *unused)
{
	struct wpp_handoff *h = (void *)(uintptr_t)(CONFIG_WPP_REGION_BASE +
		WPP_MAILBOX_OFFSET + WPP_MAILBOX_HDR_SIZE);
	const struct cbmem_console_hdr *con = cbmem_find(CBMEM_ID_CONSOLE);

	memset(h, 0, sizeof(*h));
	h->magic = WPP_HANDOFF_MAGIC;
	if (con) {
		h->cbmemc_addr = (uintptr_t)con;
		h->cbmemc_size = con->size;
	}
	bootmem_walk_os_mem(add_ram, h);
	/* SMM waits for this many CPUs before it acts on a WPP event. */
	h->smi_cpus = 1;
	if (wpp_platform_smi_broadcast() && dev_count_cpu() > 1)
		h->smi_cpus = dev_count_cpu();
	{
		uintptr_t base;
		size_t size;

		smm_region(&base, &size);
		h->smram_base = base;
		h->smram_size = size;
	}
	printk(BIOS_INFO, "wpp: handoff_sent ranges=%u cbmemc=0x%llx smram=0x%llx:0x%llx "
	       "smi_cpus=%u\n", h->nranges, (unsigned long long)h->cbmemc_addr,
	       (unsigned long long)h->smram_base, (unsigned long long)h->smram_size,
	       h->smi_cpus);
	outb(WPP_APM_CNT_HANDOFF, APM_CNT);
	memset(h, 0, sizeof(*h));
}

BOOT_STATE_INIT_ENTRY(BS_PAYLOAD_BOOT, BS_ON_ENTRY, wpp_handoff, NULL);
