/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Persistent device of the twin: QEMU ivshmem-plain (1af4:1110), whose BAR2
 * is host-file-backed memory. Its BAR is recorded (and sized) at the boot-time
 * handoff; before every access the core compares the BAR in PCI config space,
 * which the OS can rewrite, with the recorded one, and transfers then use the
 * recorded window only.
 */
#define __SIMPLE_DEVICE__

#include <device/pci_def.h>
#include <device/pci_ops.h>

#include "wpp_core.h"
#include "wpp_coreboot.h"
#include "wpp_mmio.h"

#define IVSHMEM_VENDOR		0x1af4
#define IVSHMEM_DEVICE		0x1110
#define IVSHMEM_SCAN_BUSES	4

static struct wpp_mmio_dev mmio;
static struct wpp_pdev pdev;

static int find(pci_devfn_t *out)
{
	for (unsigned int bus = 0; bus < IVSHMEM_SCAN_BUSES; bus++) {
		for (unsigned int dev = 0; dev < 32; dev++) {
			pci_devfn_t d = PCI_DEV(bus, dev, 0);
			u32 id = pci_read_config32(d, PCI_VENDOR_ID);

			if (id == (IVSHMEM_DEVICE << 16 | IVSHMEM_VENDOR)) {
				*out = d;
				return 1;
			}
		}
	}
	return 0;
}

static pci_devfn_t boot_dev;	/* where the device was at the handoff */
static int boot_dev_known;

/*
 * Called before every transfer: after the handoff only the device found then
 * is read (a bus scan per transfer would cost 128 config reads each).
 */
static int ivshmem_locate(void *unused, struct wpp_range *win, unsigned int max, int size_them)
{
	if (size_them)
		boot_dev_known = find(&boot_dev);
	if (!max || !boot_dev_known ||
	    pci_read_config32(boot_dev, PCI_VENDOR_ID) != (IVSHMEM_DEVICE << 16 | IVSHMEM_VENDOR))
		return 0;
	return wpp_pci_bar(boot_dev, PCI_BASE_ADDRESS_2, size_them, &win[0]);
}

static int ivshmem_probe(void *unused, wpp_u64 *size)
{
	u16 cmd;

	mmio.base = NULL;
	if (!boot_dev_known) {
		wpp_logf(wpp_cb_platform(), "device status=%d error=not_found dev=ivshmem",
			 WPP_E_NO_DEVICE);
		return WPP_E_NO_DEVICE;
	}
	cmd = pci_read_config16(boot_dev, PCI_COMMAND);
	if (!(cmd & PCI_COMMAND_MEMORY) || pdev.nwin != 1) {
		wpp_logf(wpp_cb_platform(), "device status=%d error=bar_disabled dev=ivshmem "
			 "cmd=0x%x", WPP_E_NO_DEVICE, cmd);
		return WPP_E_NO_DEVICE;
	}
	/* the window the core recorded at boot and has just compared */
	mmio.base = (u8 *)(uintptr_t)pdev.win[0].base;
	mmio.size = pdev.win[0].size;
	mmio.phys = pdev.win[0].base;
	*size = mmio.size;
	return WPP_OK;
}

struct wpp_pdev *wpp_platform_pdev(void)
{
	wpp_mmio_init(&pdev, &mmio, "ivshmem");
	pdev.locate = ivshmem_locate;
	pdev.probe = ivshmem_probe;
	return &pdev;
}
