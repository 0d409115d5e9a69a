// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_main.c - Whole Process Persistence driver: parameters and start-up.
 *
 * Kernel parameters (this driver is built in):
 *   wpp.region_base=0x10000000  physical base of the firmware-reserved region
 *   wpp.region_size=0x10000000  its size (at least the ABI layout, 256 MiB)
 *   wpp.mode=eager|batched|lazy  tracking mode, also writable at run time in
 *                               /sys/module/wpp/parameters/mode while no
 *                               process is tracked
 *   wpp.pin_bars=1af4:1110,...   PCI devices whose BARs stay below 4 GiB
 *   wpp.allow_threads=0|1        let a process tracked from now on create threads
 *                               (default 0: refused). Memory is tracked per mm; at
 *                               power loss every thread is stopped and persisted
 *                               (the PCB's threads part) and recreation brings
 *                               every thread back with its tid. The policy is the
 *                               process': taken when tracking begins, recorded in
 *                               its snapshot and given back with it.
 *
 * The driver refuses to start unless the whole region is reserved in the
 * e820 map: only a firmware that implements WPP reserves it, and mapping RAM
 * the kernel hands out would corrupt memory.
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <asm/e820/api.h>
#include "wpp_internal.h"

const char *const wpp_mode_names[] = {
	[WPP_MODE_EAGER] = "eager",
	[WPP_MODE_BATCHED] = "batched",
	[WPP_MODE_LAZY] = "lazy",
};

int wpp_mode = WPP_MODE_EAGER;
u64 wpp_region_base = WPP_REGION_BASE_DEFAULT;
u64 wpp_region_size = WPP_REGION_SIZE_DEFAULT;
bool wpp_ready;
bool wpp_allow_threads;

module_param_named(region_base, wpp_region_base, ullong, 0444);
MODULE_PARM_DESC(region_base, "physical base of the firmware-reserved WPP region");
module_param_named(region_size, wpp_region_size, ullong, 0444);
MODULE_PARM_DESC(region_size, "size of the firmware-reserved WPP region");

module_param_named(allow_threads, wpp_allow_threads, bool, 0644);
MODULE_PARM_DESC(allow_threads, "allow threads in the tracked process; all are persisted and recreated");

static int wpp_mode_set(const char *val, const struct kernel_param *kp)
{
	int idx = sysfs_match_string(wpp_mode_names, val);

	if (idx < 0)
		return -EINVAL;
	if (wpp_tracked_pid()) {
		pr_warn("mode cannot change while pid %d is tracked\n", wpp_tracked_pid());
		return -EBUSY;
	}
	WRITE_ONCE(wpp_mode, idx);
	return 0;
}

static int wpp_mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", wpp_mode_names[READ_ONCE(wpp_mode)]);
}

static const struct kernel_param_ops wpp_mode_ops = {
	.set = wpp_mode_set,
	.get = wpp_mode_get,
};
module_param_cb(mode, &wpp_mode_ops, NULL, 0644);
MODULE_PARM_DESC(mode, "eager|batched|lazy (default eager)");

static int __init wpp_init(void)
{
	u64 end = wpp_region_base + wpp_region_size;
	int ret;

	if (wpp_region_size < WPP_PAGES_OFFSET + WPP_PAGES_SIZE ||
	    (wpp_region_base & (PAGE_SIZE - 1)) || end > (1ULL << 32)) {
		pr_err("region %#llx+%#llx does not fit the ABI layout below 4 GiB, not starting\n",
		       wpp_region_base, wpp_region_size);
		return -EINVAL;
	}
	if (!e820__mapped_all(wpp_region_base, end, E820_TYPE_RESERVED)) {
		pr_err("region %#llx-%#llx is not reserved in the e820 map (firmware without WPP?), not starting\n",
		       wpp_region_base, end - 1);
		return -ENODEV;
	}
	ret = wpp_smi_init();
	if (ret)
		return ret;
	WRITE_ONCE(wpp_ready, true);
	ret = wpp_trigger_init();
	if (ret)
		pr_err("cannot register /dev/wpp-trigger: %d\n", ret);
	ret = wpp_sysfs_init();
	if (ret)
		pr_err("cannot create /sys/kernel/wpp: %d\n", ret);
	pr_info("mailbox at %#llx, region %#llx-%#llx, mode %s, ABI %d\n",
		wpp_region_base + WPP_MAILBOX_OFFSET, wpp_region_base, end - 1,
		wpp_mode_names[wpp_mode], WPP_ABI_VERSION);
	return 0;
}
device_initcall(wpp_init);
