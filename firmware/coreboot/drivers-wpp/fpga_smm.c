/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Persistent device of the MSI Z690 lab board: the PCIe FPGA (wpp_fpga_regs.h).
 * Its register BAR is recorded at the boot-time handoff and compared with PCI
 * config space (which the OS can rewrite) before every access. The rings and
 * the bounce buffer live in the WPP region's Internal section, which is
 * DMA-able RAM outside SMRAM.
 */
#define __SIMPLE_DEVICE__

#include <device/mmio.h>
#include <device/pci_def.h>
#include <device/pci_ops.h>
#include <timer.h>

#include "wpp_core.h"
#include "wpp_coreboot.h"
#include "wpp_fpga.h"

#define RING_PHYS	((uintptr_t)CONFIG_WPP_REGION_BASE + WPP_INTERNAL_OFFSET + \
			 WPP_FPGA_INTERNAL_OFFSET)

static struct wpp_fpga fpga;
static struct wpp_pdev pdev;
static uintptr_t regs;

static u32 fpga_rd(void *unused, u32 reg)
{
	return read32((void *)(regs + reg));
}

static void fpga_wr(void *unused, u32 reg, u32 val)
{
	write32((void *)(regs + reg), val);
}

static wpp_u64 fpga_now(void *unused)
{
	struct mono_time t;

	timer_monotonic_get(&t);
	return t.microseconds;
}

static int find(pci_devfn_t *out)
{
	for (unsigned int bus = 0; bus < 256; bus++) {
		for (unsigned int dev = 0; dev < 32; dev++) {
			pci_devfn_t d = PCI_DEV(bus, dev, 0);

			if (pci_read_config32(d, PCI_VENDOR_ID) ==
			    (FPGA_PCI_DEVICE_ID << 16 | FPGA_PCI_VENDOR_ID)) {
				*out = d;
				return 1;
			}
		}
	}
	return 0;
}

static pci_devfn_t boot_dev;	/* where the device was at the handoff */
static int boot_dev_known;

/* Before every transfer: only the device found at the handoff is read again
 * (a scan of 256 buses per transfer would dominate the persist). */
static int fpga_locate(void *unused, struct wpp_range *win, unsigned int max, int size_them)
{
	if (size_them)
		boot_dev_known = find(&boot_dev);
	if (!max || !boot_dev_known || pci_read_config32(boot_dev, PCI_VENDOR_ID) !=
	    (FPGA_PCI_DEVICE_ID << 16 | FPGA_PCI_VENDOR_ID))
		return 0;
	return wpp_pci_bar(boot_dev, PCI_BASE_ADDRESS_0 + 4 * FPGA_REG_BAR, size_them, &win[0]);
}

static int fpga_probe(void *unused, wpp_u64 *size)
{
	const struct wpp_platform *log = wpp_cb_platform();
	pci_devfn_t d = boot_dev;

	if (!boot_dev_known) {
		wpp_logf(log, "device status=%d error=not_found dev=fpga", WPP_E_NO_DEVICE);
		return WPP_E_NO_DEVICE;
	}
	if (pdev.nwin != 1) {
		wpp_logf(log, "device status=%d error=bar_unusable dev=fpga", WPP_E_NO_DEVICE);
		return WPP_E_NO_DEVICE;
	}
	pci_or_config16(d, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* the register window the core recorded at boot and has just compared */
	if (!fpga.ready || regs != (uintptr_t)pdev.win[0].base) {
		regs = (uintptr_t)pdev.win[0].base;
		fpga.ctx = NULL;
		fpga.read32 = fpga_rd;
		fpga.write32 = fpga_wr;
		fpga.now_us = fpga_now;
		fpga.log = log;
		fpga.timeout_us = 5 * 1000 * 1000;
		if (wpp_fpga_init(&fpga, (void *)RING_PHYS, RING_PHYS, WPP_FPGA_BOUNCE_SIZE))
			return WPP_E_NO_DEVICE;
	}
	*size = fpga.size;
	return WPP_OK;
}

struct wpp_pdev *wpp_platform_pdev(void)
{
	wpp_fpga_pdev(&pdev, &fpga);
	pdev.locate = fpga_locate;
	pdev.probe = fpga_probe;
	return &pdev;
}
