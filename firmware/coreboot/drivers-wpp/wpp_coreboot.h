/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * coreboot glue for the WPP core: the APMC entry point boards call from
 * mainboard_smi_apmc(), and the one-shot ramstage -> SMM handoff.
 */
#ifndef DRIVERS_WPP_COREBOOT_H
#define DRIVERS_WPP_COREBOOT_H

#include <stdint.h>

/*
 * Firmware-internal APMC value: ramstage hands SMM the OS RAM map and the
 * CBMEM console location just before the payload starts. SMM accepts it once
 * per boot (first call wins), so a later OS-issued 0xad is refused.
 */
#define WPP_APM_CNT_HANDOFF		0xad
#define WPP_HANDOFF_MAGIC		0x46485057U	/* "WPHF" */
#define WPP_HANDOFF_MAX_RANGES		32

struct wpp_handoff {
	uint32_t magic;
	uint32_t nranges;
	uint64_t cbmemc_addr;		/* struct cbmem_console, 0 = none */
	uint32_t cbmemc_size;		/* its body size */
	uint32_t smi_cpus;		/* CPUs every APM SMI reaches (rendezvous) */
	struct {
		uint64_t base;
		uint64_t size;
	} ram[WPP_HANDOFF_MAX_RANGES];
	/* SMRAM (TSEG) from smm_region(), which not every SoC links into SMM */
	uint64_t smram_base;
	uint64_t smram_size;
};

#if ENV_SMM
#include <device/pci_type.h>
struct wpp_range;
/*
 * Read a memory BAR (config offset bar_reg; 64-bit BARs use the next dword
 * too) into *w. With size_them the size is probed (decoding off while the BAR
 * holds all ones, then everything put back): only at the boot-time handoff.
 * Returns 1 when the BAR is a memory BAR, 0 otherwise.
 */
int wpp_pci_bar(pci_devfn_t d, unsigned int bar_reg, int size_them, struct wpp_range *w);
#endif

/*
 * ramstage: does an APM SMI reach every CPU? Boards' chipsets broadcast every
 * SMI (the default, 1); the QEMU q35 mainboard overrides it with the outcome
 * of its fw_cfg "SMI broadcast" negotiation.
 */
int wpp_platform_smi_broadcast(void);

/* How long the first CPU in SMM waits for the others before it acts anyway. */
#define WPP_RENDEZVOUS_TIMEOUT_US	(CONFIG_WPP_RENDEZVOUS_TIMEOUT_MS * 1000ULL)

/* Handle an APMC byte in SMM; returns 1 when it was a WPP event. */
int wpp_smi_apmc(uint8_t data);

#if ENV_SMM
struct wpp_pdev;
/* The platform's persistent device (ivshmem.c or fpga_smm.c). */
struct wpp_pdev *wpp_platform_pdev(void);
/* The platform the core runs on, for drivers' log lines. */
struct wpp_platform;
const struct wpp_platform *wpp_cb_platform(void);
#endif

#endif
