// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_sysfs.c - state for tools and tests.
 *
 * /sys/kernel/wpp/
 *   tracked_pid     pid of the tracked process, 0 when none
 *   mode            mode of the tracked process, or the next one's
 *   batch_pending   page operations queued (batched mode)
 *   region          "<base> <size>" of the firmware region (hex)
 *   stats           one line per event: name calls errors ns
 *                   plus "no_answer N", "rerung N" and "last_status S"
 *   fw_counters     the firmware's struct wpp_counters (READ_DATA), key value;
 *                   mode 0400: every read is an SMI
 *   check           the power-loss page-table check: checks, failed, corrections
 *                   (pages/regions added/removed), last pages/regions/us
 *
 * debugfs wpp/ (firmware state read back with READ_DATA, for tests):
 *   fw_regions      "start end prot flags offset state path" per used slot, hex
 *   fw_pages        "va pa" per used page slot, hex
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/kobject.h>
#include <linux/sort.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/vmalloc.h>
#include "wpp_internal.h"

#define WPP_SCAN_CHUNK	(1U << 20)

static ssize_t tracked_pid_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%d\n", wpp_tracked_pid());
}

static ssize_t mode_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	int m = wpp_track_mode();

	return sysfs_emit(buf, "%s\n", wpp_mode_names[m < 0 ? READ_ONCE(wpp_mode) : m]);
}

static ssize_t batch_pending_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", wpp_batch_pending());
}

static ssize_t region_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%#llx %#llx\n", wpp_region_base, wpp_region_size);
}

static ssize_t stats_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	struct wpp_smi_stats *st = kmalloc(sizeof(*st), GFP_KERNEL);
	unsigned int i;
	int n = 0;

	if (!st)
		return -ENOMEM;
	wpp_smi_get_stats(st);
	for (i = 0; i < WPP_EV_COUNT; i++)
		n += sysfs_emit_at(buf, n, "%s %llu %llu %llu\n",
				   wpp_event_name(WPP_EV_FIRST + i),
				   st->calls[i], st->errors[i], st->ns[i]);
	n += sysfs_emit_at(buf, n, "no_answer %llu\nrerung %llu\nlast_status %d\n",
			   st->no_answer, st->rerung, st->last_status);
	kfree(st);
	return n;
}

static ssize_t fw_counters_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	struct wpp_counters c;
	unsigned int i;
	int n = 0, ret;

	ret = wpp_read_data(WPP_SECTION_INTERNAL, 0, &c, sizeof(c));
	if (ret)
		return ret;
	n += sysfs_emit_at(buf, n, "generation %llu\n", c.generation);
	for (i = 0; i < WPP_EV_COUNT; i++)
		n += sysfs_emit_at(buf, n, "%s %llu\n", wpp_event_name(WPP_EV_FIRST + i),
				   c.events[i]);
	n += sysfs_emit_at(buf, n, "errors %llu\nregions_used %llu\npages_used %llu\n",
			   c.errors, c.regions_used, c.pages_used);
	n += sysfs_emit_at(buf, n, "metadata_used %llu\ndebug_flags %#llx\n",
			   c.metadata_used, c.debug_flags);
	return n;
}

static ssize_t check_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	struct wpp_check_stats st = wpp_check_stats;	/* counters: a torn read is harmless */

	return sysfs_emit(buf,
			  "checks %llu\nfailed %llu\npages_added %llu\npages_removed %llu\n"
			  "regions_added %llu\nregions_removed %llu\nlast_pages %llu\n"
			  "last_regions %llu\nlast_corrected %llu\nlast_us %llu\ntrack_errors %llu\n"
			  "swapped_in %llu\nmigration_waits %llu\nlast_brought_in %llu\n",
			  st.checks, st.failed, st.pages_added, st.pages_removed,
			  st.regions_added, st.regions_removed, st.last_pages,
			  st.last_regions, st.last_corrected, st.last_us, st.track_errors,
			  st.swapped_in, st.migration_waits, st.last_brought_in);
}

static struct kobj_attribute wpp_attrs[] = {
	__ATTR_RO(tracked_pid),
	__ATTR_RO(mode),
	__ATTR_RO(batch_pending),
	__ATTR_RO(region),
	__ATTR_RO(stats),
	/* root only: each read is an SMI (READ_DATA) */
	__ATTR(fw_counters, 0400, fw_counters_show, NULL),
	__ATTR_RO(check),
};

static struct attribute *wpp_attr_list[ARRAY_SIZE(wpp_attrs) + 1];
static const struct attribute_group wpp_group = { .attrs = wpp_attr_list };

/* ---- debugfs: firmware lists ----------------------------------------- */

struct wpp_text {
	char *buf;
	size_t len, cap;
};

static int wpp_text_add(struct wpp_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->cap - t->len < 256) {
		size_t cap = t->cap ? t->cap * 2 : 65536;
		char *nb = kvmalloc(cap, GFP_KERNEL);

		if (!nb)
			return -ENOMEM;
		if (t->buf)
			memcpy(nb, t->buf, t->len);
		kvfree(t->buf);
		t->buf = nb;
		t->cap = cap;
	}
	va_start(ap, fmt);
	n = vscnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += n;
	return 0;
}

static int wpp_fw_regions(struct wpp_text *t)
{
	const u32 per = WPP_SCAN_CHUNK / sizeof(struct wpp_region);
	struct wpp_counters c;
	struct wpp_region *chunk;
	u64 found = 0;
	u32 slot, i;
	int ret;

	ret = wpp_read_data(WPP_SECTION_INTERNAL, 0, &c, sizeof(c));
	if (ret)
		return ret;
	chunk = kvmalloc_array(per, sizeof(*chunk), GFP_KERNEL);
	if (!chunk)
		return -ENOMEM;
	for (slot = 0; slot < WPP_REGION_SLOTS && found < c.regions_used; slot += per) {
		u32 n = min_t(u32, per, WPP_REGION_SLOTS - slot);

		ret = wpp_read_data(WPP_SECTION_REGIONS, slot * sizeof(*chunk), chunk,
				    n * sizeof(*chunk));
		if (ret)
			break;
		for (i = 0; i < n; i++) {
			struct wpp_region *r = &chunk[i];

			if (!(r->state & WPP_REGION_F_USED))
				continue;
			r->file_path[WPP_PATH_MAX - 1] = 0;
			found++;
			ret = wpp_text_add(t, "%llx %llx %llx %llx %llx %x %s\n",
					   r->virtual_address,
					   r->virtual_address + r->length,
					   r->protection, r->flags, r->file_offset,
					   r->state, r->file_path);
			if (ret)
				goto out;
		}
	}
out:
	kvfree(chunk);
	return ret;
}

static int wpp_fw_pages(struct wpp_text *t)
{
	const u32 bucket_size = WPP_PAGES_SIZE / WPP_PAGE_BUCKETS;
	struct wpp_counters c;
	u64 found = 0;
	u32 b, off, i;
	struct wpp_page_mapping *chunk;
	int ret;

	ret = wpp_read_data(WPP_SECTION_INTERNAL, 0, &c, sizeof(c));
	if (ret)
		return ret;
	chunk = kvmalloc(WPP_SCAN_CHUNK, GFP_KERNEL);
	if (!chunk)
		return -ENOMEM;
	for (b = 0; b < WPP_PAGE_BUCKETS && found < c.pages_used; b++) {
		for (off = 0; off < bucket_size && found < c.pages_used; off += WPP_SCAN_CHUNK) {
			ret = wpp_read_data(WPP_SECTION_PAGES, b * bucket_size + off, chunk,
					    WPP_SCAN_CHUNK);
			if (ret)
				goto out;
			for (i = 0; i < WPP_SCAN_CHUNK / sizeof(*chunk); i++) {
				if (!(chunk[i].virtual_address & WPP_PAGE_USED))
					continue;
				found++;
				ret = wpp_text_add(t, "%llx %llx\n",
						   chunk[i].virtual_address & ~WPP_PAGE_USED,
						   chunk[i].physical_address);
				if (ret)
					goto out;
			}
		}
	}
out:
	kvfree(chunk);
	return ret;
}

static int wpp_fw_open(struct inode *inode, struct file *file)
{
	int (*fill)(struct wpp_text *t) = inode->i_private;
	struct wpp_text *t = kzalloc(sizeof(*t), GFP_KERNEL);
	int ret;

	if (!t)
		return -ENOMEM;
	ret = fill(t);
	if (ret) {
		kvfree(t->buf);
		kfree(t);
		return ret;
	}
	file->private_data = t;
	return 0;
}

static ssize_t wpp_fw_read(struct file *file, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct wpp_text *t = file->private_data;

	return simple_read_from_buffer(ubuf, len, ppos, t->buf, t->len);
}

static int wpp_fw_release(struct inode *inode, struct file *file)
{
	struct wpp_text *t = file->private_data;

	kvfree(t->buf);
	kfree(t);
	return 0;
}

static const struct file_operations wpp_fw_fops = {
	.owner = THIS_MODULE,
	.open = wpp_fw_open,
	.read = wpp_fw_read,
	.release = wpp_fw_release,
	.llseek = default_llseek,
};

int wpp_sysfs_init(void)
{
	struct kobject *kobj;
	struct dentry *dir;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(wpp_attrs); i++)
		wpp_attr_list[i] = &wpp_attrs[i].attr;
	kobj = kobject_create_and_add("wpp", kernel_kobj);
	if (!kobj)
		return -ENOMEM;
	dir = debugfs_create_dir("wpp", NULL);
	debugfs_create_file("fw_regions", 0400, dir, wpp_fw_regions, &wpp_fw_fops);
	debugfs_create_file("fw_pages", 0400, dir, wpp_fw_pages, &wpp_fw_fops);
	return sysfs_create_group(kobj, &wpp_group);
}
