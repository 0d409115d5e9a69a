// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_pci.c - keep the persistent device's BARs below 4 GiB (seed 5.1.4).
 *
 * The SMM handler reaches the persistent device through its BARs with 32-bit
 * addressing and before/independently of the OS, so the kernel must not
 * move them above 4 GiB. For each device listed in wpp.pin_bars (vendor:device
 * in hex, comma separated) a memory BAR that the firmware placed below 4 GiB
 * is marked fixed, and one that is unassigned or above 4 GiB is demoted to a
 * 32-bit BAR so that the allocator only uses the 32-bit window.
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/pci.h>
#include <linux/sizes.h>
#include <linux/string.h>
#include "wpp_internal.h"

static char *wpp_pin_bars;
module_param_named(pin_bars, wpp_pin_bars, charp, 0444);
MODULE_PARM_DESC(pin_bars, "vendor:device[,vendor:device...] whose BARs stay below 4 GiB");

static bool wpp_pin_match(u16 vendor, u16 device)
{
	const char *p = wpp_pin_bars;
	unsigned int v, d;
	int n;

	while (p && *p) {
		if (sscanf(p, "%x:%x%n", &v, &d, &n) != 2)
			return false;
		if (v == vendor && d == device)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static void wpp_pci_pin(struct pci_dev *dev)
{
	int i;

	if (!wpp_pin_match(dev->vendor, dev->device))
		return;
	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		struct resource *r = &dev->resource[i];
		resource_size_t size = resource_size(r);

		if (!(r->flags & IORESOURCE_MEM) || !size)
			continue;
		if (r->start && r->end < SZ_4G && !(r->flags & IORESOURCE_UNSET)) {
			r->flags |= IORESOURCE_PCI_FIXED;
			pci_info(dev, "wpp: BAR%d %pR pinned below 4 GiB\n", i, r);
			continue;
		}
		if (r->flags & IORESOURCE_MEM_64) {
			r->flags &= ~IORESOURCE_MEM_64;
			pci_write_config_dword(dev, PCI_BASE_ADDRESS_0 + 4 * (i + 1), 0);
		}
		r->start = 0;
		r->end = size - 1;
		r->flags |= IORESOURCE_UNSET;
		pci_info(dev, "wpp: BAR%d (%pa bytes) to be assigned below 4 GiB\n", i, &size);
	}
}
DECLARE_PCI_FIXUP_HEADER(PCI_ANY_ID, PCI_ANY_ID, wpp_pci_pin);
