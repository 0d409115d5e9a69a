/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * PCI memory BARs as SMM sees them: read (and at boot sized) for the core's
 * placement guard, which records them at the handoff and compares them before
 * every device access.
 */
#define __SIMPLE_DEVICE__

#include <device/pci_def.h>
#include <device/pci_ops.h>

#include "wpp_core.h"
#include "wpp_coreboot.h"

int wpp_pci_bar(pci_devfn_t d, unsigned int bar_reg, int size_them, struct wpp_range *w)
{
	u32 lo = pci_read_config32(d, bar_reg), hi = 0, szlo, szhi = 0xffffffff;
	int is64 = (lo & PCI_BASE_ADDRESS_MEM_LIMIT_MASK) == PCI_BASE_ADDRESS_MEM_LIMIT_64;
	u16 cmd;

	if (lo & PCI_BASE_ADDRESS_SPACE_IO)
		return 0;
	if (is64)
		hi = pci_read_config32(d, bar_reg + 4);
	w->base = ((u64)hi << 32) | (lo & ~0xfU);
	w->size = 0;
	if (!size_them)
		return 1;
	cmd = pci_read_config16(d, PCI_COMMAND);
	pci_write_config16(d, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
	pci_write_config32(d, bar_reg, 0xffffffff);
	szlo = pci_read_config32(d, bar_reg) & ~0xfU;
	if (is64) {
		pci_write_config32(d, bar_reg + 4, 0xffffffff);
		szhi = pci_read_config32(d, bar_reg + 4);
		pci_write_config32(d, bar_reg + 4, hi);
	}
	pci_write_config32(d, bar_reg, lo);
	pci_write_config16(d, PCI_COMMAND, cmd);
	w->size = szlo ? ~(((u64)szhi << 32) | szlo) + 1 : 0;
	return 1;
}
