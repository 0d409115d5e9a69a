/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Persistent device of the twin: QEMU ivshmem-plain (1af4:1110), whose BAR2
 * is host-file-backed memory. Found through PCI config space on every probe
 * because the OS may have moved or disabled the BAR; only BARs below 4 GiB
 * are usable (32-bit SMM without paging).
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

static int ivshmem_probe(void *unused, wpp_u64 *size)
{
	pci_devfn_t d;
	u16 cmd;
	u32 lo, hi, szlo, szhi;
	u64 base, sz;

	mmio.base = NULL;
	if (!find(&d)) {
		wpp_logf(wpp_cb_platform(), "device status=%d error=not_found dev=ivshmem",
			 WPP_E_NO_DEVICE);
		return WPP_E_NO_DEVICE;
	}
	cmd = pci_read_config16(d, PCI_COMMAND);
	lo = pci_read_config32(d, PCI_BASE_ADDRESS_2);
	hi = (lo & PCI_BASE_ADDRESS_MEM_LIMIT_MASK) == PCI_BASE_ADDRESS_MEM_LIMIT_64 ?
		pci_read_config32(d, PCI_BASE_ADDRESS_3) : 0;
	base = ((u64)hi << 32) | (lo & ~0xfU);

	/* Size the BAR with decoding off, then put everything back. */
	pci_write_config16(d, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
	pci_write_config32(d, PCI_BASE_ADDRESS_2, 0xffffffff);
	szlo = pci_read_config32(d, PCI_BASE_ADDRESS_2) & ~0xfU;
	szhi = 0xffffffff;
	if (hi || (lo & PCI_BASE_ADDRESS_MEM_LIMIT_MASK) == PCI_BASE_ADDRESS_MEM_LIMIT_64) {
		pci_write_config32(d, PCI_BASE_ADDRESS_3, 0xffffffff);
		szhi = pci_read_config32(d, PCI_BASE_ADDRESS_3);
		pci_write_config32(d, PCI_BASE_ADDRESS_3, hi);
	}
	pci_write_config32(d, PCI_BASE_ADDRESS_2, lo);
	pci_write_config16(d, PCI_COMMAND, cmd);
	sz = ~(((u64)szhi << 32) | szlo) + 1;

	if (!(cmd & PCI_COMMAND_MEMORY) || !base) {
		wpp_logf(wpp_cb_platform(), "device status=%d error=bar_disabled dev=ivshmem "
			 "cmd=0x%x bar=0x%llx", WPP_E_NO_DEVICE, cmd, (unsigned long long)base);
		return WPP_E_NO_DEVICE;
	}
	if (base + sz > 0x100000000ULL) {
		wpp_logf(wpp_cb_platform(), "device status=%d error=bar_above_4g dev=ivshmem "
			 "bar=0x%llx size=0x%llx", WPP_E_NO_DEVICE, (unsigned long long)base,
			 (unsigned long long)sz);
		return WPP_E_NO_DEVICE;
	}
	mmio.base = (u8 *)(uintptr_t)base;
	mmio.size = sz;
	mmio.phys = base;
	*size = sz;
	return WPP_OK;
}

struct wpp_pdev *wpp_platform_pdev(void)
{
	wpp_mmio_init(&pdev, &mmio, "ivshmem");
	pdev.probe = ivshmem_probe;
	return &pdev;
}
