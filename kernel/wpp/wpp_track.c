// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_track.c - tracking of the one process marked for persistence.
 *
 * Regions: the firmware's region list mirrors the VMAs of the tracked mm. A
 * shadow copy of what the firmware holds is diffed against the VMA tree
 * whenever the mmap write lock is released (eager), at each batch flush
 * (batched) or once at power loss (lazy); only differences become
 * ADD_REGION / REMOVE_REGION events.
 *
 * Pages: present ptes of the tracked mm. Eager sends ADD_PAGE / REMOVE_PAGE
 * from the fault and zap paths, batched queues the same operations and
 * sends them in order with PAGE_BATCH, lazy walks the page tables at power
 * loss. The exec-time baseline (stack, argument pages) is taken by the same
 * walk in every mode, so all three modes converge on the same firmware
 * state: one region per VMA, one page per present pte (VM_IO/VM_PFNMAP
 * mappings excluded).
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/dcache.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/pagewalk.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/wpp.h>
#include "wpp_internal.h"

#define WPP_BATCH_OPS	32768U	/* 768 KiB of struct wpp_page_op */
#define WPP_SKIP_VMA	(VM_IO | VM_PFNMAP)

struct wpp_shadow {
	unsigned long start, end, pgoff, vm_flags;
	const struct file *file;	/* identity only, never dereferenced */
	struct vm_area_struct *vma;	/* valid only during a diff */
};

/* Slot: protected by wt_lock. */
static DEFINE_SPINLOCK(wt_lock);
static struct task_struct *wt_task;
static struct mm_struct *wt_mm;
static pid_t wt_pid;
static bool wt_claimed;
static int wt_mode;
static bool wt_frozen;

/* Firmware region shadow: protected by wt_shadow_lock (nests in wt_batch_lock). */
static DEFINE_SPINLOCK(wt_shadow_lock);
static struct wpp_shadow *wt_shadow;
static unsigned int wt_nr_shadow;
static char wt_path_buf[PATH_MAX];

/* Page operation queue: protected by wt_batch_lock. */
static DEFINE_SPINLOCK(wt_batch_lock);
static struct wpp_page_op *wt_ops;
static unsigned int wt_nr_ops;

pid_t wpp_tracked_pid(void)
{
	return READ_ONCE(wt_task) ? READ_ONCE(wt_pid) : 0;
}

int wpp_track_mode(void)
{
	return READ_ONCE(wt_task) ? wt_mode : -1;
}

unsigned int wpp_batch_pending(void)
{
	return READ_ONCE(wt_nr_ops);
}

struct task_struct *wpp_tracked_task_get(void)
{
	struct task_struct *t;

	spin_lock(&wt_lock);
	t = wt_task;
	if (t)
		get_task_struct(t);
	spin_unlock(&wt_lock);
	return t;
}

void wpp_track_freeze(void)
{
	WRITE_ONCE(wt_frozen, true);
}

/* ---- regions ---------------------------------------------------------- */

static bool wpp_is_stack(struct vm_area_struct *vma)
{
	return vma->vm_start <= vma->vm_mm->start_stack &&
	       vma->vm_end >= vma->vm_mm->start_stack;
}

/* Same name /proc/<pid>/maps shows, without the file case. */
static const char *wpp_vma_special_name(struct vm_area_struct *vma)
{
	const char *name = NULL;

	if (vma->vm_ops && vma->vm_ops->name)
		name = vma->vm_ops->name(vma);
	if (!name)
		name = arch_vma_name(vma);
	if (!name && vma->vm_start <= vma->vm_mm->brk &&
	    vma->vm_end >= vma->vm_mm->start_brk)
		name = "[heap]";
	if (!name && wpp_is_stack(vma))
		name = "[stack]";
	return name;
}

static void wpp_fill_region(struct wpp_region *r, struct vm_area_struct *vma)
{
	const char *name = NULL;

	memset(r, 0, sizeof(*r));
	r->virtual_address = vma->vm_start;
	r->length = vma->vm_end - vma->vm_start;
	r->protection = vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC);
	r->flags = vma->vm_flags;
	if (vma->vm_file) {
		r->state |= WPP_REGION_F_FILE;
		r->file_offset = (u64)vma->vm_pgoff << PAGE_SHIFT;
		name = d_path(&vma->vm_file->f_path, wt_path_buf, sizeof(wt_path_buf));
		if (IS_ERR(name))
			name = "";
	} else {
		name = wpp_vma_special_name(vma);
	}
	if (name) {
		if (strscpy(r->file_path, name, sizeof(r->file_path)) < 0)
			r->state |= WPP_REGION_F_PATH_TRUNC;
	}
}

static bool wpp_shadow_same(const struct wpp_shadow *a, const struct wpp_shadow *b)
{
	return a->start == b->start && a->end == b->end && a->pgoff == b->pgoff &&
	       a->vm_flags == b->vm_flags && a->file == b->file;
}

/* Entry of arr (sorted by start) identical to key, or NULL. */
static const struct wpp_shadow *wpp_shadow_find(const struct wpp_shadow *arr,
						unsigned int n,
						const struct wpp_shadow *key)
{
	unsigned int lo = 0, hi = n;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (arr[mid].start < key->start)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && wpp_shadow_same(&arr[lo], key))
		return &arr[lo];
	return NULL;
}

/*
 * Bring the firmware's region list in line with the VMAs of mm. Caller holds
 * the mmap lock of mm (read or write). Removes go first so the firmware never
 * sees overlapping regions.
 */
static int wpp_regions_sync(struct mm_struct *mm)
{
	struct wpp_shadow *cur, *old;
	struct vm_area_struct *vma;
	unsigned int n = 0, cap, i;
	struct wpp_region r;
	int ret = 0, err;

	VMA_ITERATOR(vmi, mm, 0);
	cap = mm->map_count + 1;
	cur = kmalloc_array(cap, sizeof(*cur), GFP_ATOMIC | __GFP_NOWARN);
	if (!cur)
		return -ENOMEM;
	for_each_vma(vmi, vma) {
		if (n == cap)
			break;
		cur[n].start = vma->vm_start;
		cur[n].end = vma->vm_end;
		cur[n].pgoff = vma->vm_file ? vma->vm_pgoff : 0;
		cur[n].vm_flags = vma->vm_flags;
		cur[n].file = vma->vm_file;
		cur[n].vma = vma;
		n++;
	}

	spin_lock(&wt_shadow_lock);
	for (i = 0; i < wt_nr_shadow; i++) {
		struct wpp_region_key key = {
			.virtual_address = wt_shadow[i].start,
			.length = wt_shadow[i].end - wt_shadow[i].start,
		};

		if (wpp_shadow_find(cur, n, &wt_shadow[i]))
			continue;
		err = wpp_smi_simple(WPP_EV_REMOVE_REGION, &key, sizeof(key));
		if (err && !ret)
			ret = err;
	}
	for (i = 0; i < n; i++) {
		if (wt_shadow && wpp_shadow_find(wt_shadow, wt_nr_shadow, &cur[i]))
			continue;
		wpp_fill_region(&r, cur[i].vma);
		err = wpp_smi_simple(WPP_EV_ADD_REGION, &r, sizeof(r));
		if (err && !ret)
			ret = err;
	}
	old = wt_shadow;
	wt_shadow = cur;
	wt_nr_shadow = n;
	spin_unlock(&wt_shadow_lock);
	kfree(old);
	return ret;
}

static bool wpp_shadow_covers(unsigned long addr)
{
	unsigned int lo = 0, hi;
	bool hit = false;

	spin_lock(&wt_shadow_lock);
	hi = wt_nr_shadow;
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (wt_shadow[mid].end <= addr) {
			lo = mid + 1;
		} else if (wt_shadow[mid].start > addr) {
			hi = mid;
		} else {
			hit = true;
			break;
		}
	}
	spin_unlock(&wt_shadow_lock);
	return hit;
}

static void wpp_shadow_clear(void)
{
	struct wpp_shadow *old;

	spin_lock(&wt_shadow_lock);
	old = wt_shadow;
	wt_shadow = NULL;
	wt_nr_shadow = 0;
	spin_unlock(&wt_shadow_lock);
	kfree(old);
}

/* ---- pages ------------------------------------------------------------ */

/* Send the queued operations, oldest first. Caller holds wt_batch_lock. */
static int wpp_batch_flush_locked(void)
{
	unsigned int done = 0;
	int ret = 0;

	while (done < wt_nr_ops) {
		unsigned int n = min(wt_nr_ops - done, WPP_BATCH_OPS);
		struct wpp_page_batch hdr = { .count = n };
		struct wpp_call c = {
			.event = WPP_EV_PAGE_BATCH,
			.p1 = &hdr, .len1 = sizeof(hdr),
			.p2 = wt_ops + done, .len2 = n * sizeof(*wt_ops),
		};

		ret = wpp_smi(&c);
		if (!ret && c.result[0] != n) {
			pr_err("page batch: firmware applied %llu of %u ops\n", c.result[0], n);
			ret = -EIO;
		}
		done += n;
		if (ret)
			break;
	}
	wt_nr_ops = 0;
	return ret;
}

static void wpp_batch_add_locked(u32 op, unsigned long va, unsigned long pfn)
{
	struct wpp_page_op *o;

	if (!wt_ops)
		return;
	if (wt_nr_ops == WPP_BATCH_OPS)
		wpp_batch_flush_locked();
	o = &wt_ops[wt_nr_ops++];
	o->virtual_address = va;
	o->physical_address = PFN_PHYS(pfn);
	o->op = op;
	o->reserved = 0;
}

/* Caller holds the mmap lock of vma->vm_mm. */
static void wpp_page_event(struct vm_area_struct *vma, u32 op, unsigned long va,
			   unsigned long pfn)
{
	struct wpp_page_mapping m;

	if (vma->vm_mm != READ_ONCE(wt_mm) || READ_ONCE(wt_frozen) ||
	    (vma->vm_flags & WPP_SKIP_VMA))
		return;
	va &= PAGE_MASK;
	switch (wt_mode) {
	case WPP_MODE_EAGER:
		/* stack growth changes a VMA under the read lock only */
		if (op == WPP_PAGE_OP_ADD && !wpp_shadow_covers(va))
			wpp_regions_sync(vma->vm_mm);
		m.virtual_address = va;
		m.physical_address = PFN_PHYS(pfn);
		wpp_smi_simple(op == WPP_PAGE_OP_ADD ? WPP_EV_ADD_PAGE : WPP_EV_REMOVE_PAGE,
			       &m, sizeof(m));
		break;
	case WPP_MODE_BATCHED:
		spin_lock(&wt_batch_lock);
		if (wt_nr_ops == WPP_BATCH_OPS)
			wpp_regions_sync(vma->vm_mm);
		wpp_batch_add_locked(op, va, pfn);
		spin_unlock(&wt_batch_lock);
		break;
	default:
		break;
	}
}

void __wpp_pte_map(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn)
{
	wpp_page_event(vma, WPP_PAGE_OP_ADD, addr, pfn);
}

void __wpp_pte_replace(struct vm_area_struct *vma, unsigned long addr,
		       unsigned long old_pfn, unsigned long new_pfn)
{
	wpp_page_event(vma, WPP_PAGE_OP_REMOVE, addr, old_pfn);
	wpp_page_event(vma, WPP_PAGE_OP_ADD, addr, new_pfn);
}

void __wpp_pte_unmap(struct vm_area_struct *vma, unsigned long addr, unsigned long pfn)
{
	wpp_page_event(vma, WPP_PAGE_OP_REMOVE, addr, pfn);
}

void __wpp_pte_move(struct vm_area_struct *vma, unsigned long old_addr,
		    unsigned long new_addr, unsigned long pfn)
{
	wpp_page_event(vma, WPP_PAGE_OP_REMOVE, old_addr, pfn);
	wpp_page_event(vma, WPP_PAGE_OP_ADD, new_addr, pfn);
}

void __wpp_mm_changed(struct mm_struct *mm)
{
	if (mm != READ_ONCE(wt_mm) || READ_ONCE(wt_frozen))
		return;
	if (wt_mode == WPP_MODE_EAGER)
		wpp_regions_sync(mm);
}

static int wpp_walk_test(unsigned long start, unsigned long end, struct mm_walk *walk)
{
	return (walk->vma->vm_flags & WPP_SKIP_VMA) ? 1 : 0;
}

static int wpp_walk_pte(pte_t *pte, unsigned long addr, unsigned long next,
			struct mm_walk *walk)
{
	pte_t p = ptep_get(pte);

	if (pte_present(p))
		wpp_batch_add_locked(WPP_PAGE_OP_ADD, addr, pte_pfn(p));
	return 0;
}

static const struct mm_walk_ops wpp_walk_ops = {
	.pte_entry = wpp_walk_pte,
	.test_walk = wpp_walk_test,
};

/*
 * Report all regions and every present page of mm. Caller holds the mmap
 * lock of mm. Pages already reported are not walked again: used for the
 * exec-time baseline (the firmware was reset at clone) and for lazy mode.
 */
static int wpp_sync_all(struct mm_struct *mm, bool walk_pages)
{
	int ret, err;

	ret = wpp_regions_sync(mm);
	spin_lock(&wt_batch_lock);
	if (walk_pages) {
		err = walk_page_range(mm, 0, TASK_SIZE_MAX, &wpp_walk_ops, NULL);
		if (err && !ret)
			ret = err;
	}
	err = wpp_batch_flush_locked();
	spin_unlock(&wt_batch_lock);
	return ret ? ret : err;
}

/*
 * Bring the firmware up to date: flush the batch (batched), re-check the
 * regions (eager), or - lazy - reset the firmware and report everything
 * (the firmware knows nothing of the process in lazy mode, and a reset
 * makes a repeated sync idempotent). Used at power loss (task stopped) and
 * by magic number 70.
 */
int wpp_track_sync(struct task_struct *task)
{
	struct mm_struct *mm = get_task_mm(task);
	int ret = 0;

	if (!mm)
		return -ESRCH;
	mmap_read_lock(mm);
	if (mm != READ_ONCE(wt_mm)) {
		ret = -ESRCH;
	} else if (wt_mode == WPP_MODE_LAZY) {
		ret = wpp_smi_simple(WPP_EV_INIT, NULL, 0);
		wpp_shadow_clear();
		spin_lock(&wt_batch_lock);
		wt_nr_ops = 0;
		spin_unlock(&wt_batch_lock);
		if (!ret)
			ret = wpp_sync_all(mm, true);
	} else {
		ret = wpp_sync_all(mm, false);
	}
	mmap_read_unlock(mm);
	mmput(mm);
	return ret;
}

/* Magic number 20: reset the firmware; re-send the tracked process' state. */
int wpp_track_reset_firmware(void)
{
	struct task_struct *task;
	struct mm_struct *mm;
	int ret;

	ret = wpp_smi_simple(WPP_EV_INIT, NULL, 0);
	wpp_shadow_clear();
	spin_lock(&wt_batch_lock);
	wt_nr_ops = 0;
	spin_unlock(&wt_batch_lock);
	if (ret)
		return ret;
	task = wpp_tracked_task_get();
	if (!task)
		return 0;
	mm = get_task_mm(task);
	if (mm && mm == READ_ONCE(wt_mm) && wt_mode != WPP_MODE_LAZY) {
		mmap_read_lock(mm);
		ret = wpp_sync_all(mm, true);
		mmap_read_unlock(mm);
	}
	if (mm)
		mmput(mm);
	put_task_struct(task);
	return ret;
}

/* ---- life cycle hooks ------------------------------------------------- */

int __wpp_copy_process(u64 clone_flags)
{
	if ((clone_flags & CLONE_THREAD) && READ_ONCE(wpp_allow_threads)) {
		pr_info_once("threads allowed in the tracked process: every thread is persisted\n");
		return 0;
	}
	if (clone_flags & CLONE_THREAD) {
		pr_warn("pid %d (%s): clone(CLONE_THREAD) refused: a tracked process must stay single-threaded\n",
			task_pid_nr(current), current->comm);
		return -EPERM;
	}
	return 0;
}

int __wpp_clone_begin(u64 clone_flags)
{
	struct wpp_page_op *ops = NULL;
	pid_t other;

	if (clone_flags & (CLONE_THREAD | CLONE_VM)) {
		pr_warn("pid %d (%s): CLONE_DETACHED with CLONE_THREAD/CLONE_VM refused\n",
			task_pid_nr(current), current->comm);
		return -EINVAL;
	}
	if (!READ_ONCE(wpp_ready)) {
		pr_warn("pid %d (%s): CLONE_DETACHED refused: WPP is not available (no firmware region)\n",
			task_pid_nr(current), current->comm);
		return -ENODEV;
	}
	if (!READ_ONCE(wt_ops)) {
		ops = kvmalloc_array(WPP_BATCH_OPS, sizeof(*ops), GFP_KERNEL);
		if (!ops)
			return -ENOMEM;
	}

	spin_lock(&wt_lock);
	if (wt_claimed) {
		other = wt_task ? wt_pid : 0;
		spin_unlock(&wt_lock);
		kvfree(ops);
		pr_warn("pid %d (%s): CLONE_DETACHED refused: pid %d is already tracked (one at a time)\n",
			task_pid_nr(current), current->comm, other);
		return -EBUSY;
	}
	wt_claimed = true;
	wt_mode = READ_ONCE(wpp_mode);
	wt_frozen = false;
	spin_unlock(&wt_lock);

	spin_lock(&wt_batch_lock);
	if (!wt_ops) {
		wt_ops = ops;
		ops = NULL;
	}
	wt_nr_ops = 0;
	spin_unlock(&wt_batch_lock);
	kvfree(ops);
	return 0;
}

void __wpp_clone_end(struct task_struct *p, u64 clone_flags)
{
	int ret;

	if (IS_ERR(p)) {
		spin_lock(&wt_lock);
		if (!wt_task)
			wt_claimed = false;
		spin_unlock(&wt_lock);
		return;
	}
	/* The child has not run yet: nobody else looks at its flag. */
	p->wpp_persist = 1;
	get_task_struct(p);
	spin_lock(&wt_lock);
	wt_task = p;
	wt_pid = task_pid_nr(p);
	wt_mm = NULL;
	spin_unlock(&wt_lock);
	wpp_shadow_clear();

	ret = wpp_smi_simple(WPP_EV_INIT, NULL, 0);
	pr_info("tracking pid %d (%s mode)%s\n", wt_pid, wpp_mode_names[wt_mode],
		ret ? ": Init failed, firmware state unknown" : "");
}

void __wpp_exec_done(void)
{
	struct mm_struct *mm = current->mm, *old;

	spin_lock(&wt_lock);
	if (wt_task != current) {
		spin_unlock(&wt_lock);
		return;
	}
	old = wt_mm;
	mmgrab(mm);
	WRITE_ONCE(wt_mm, mm);
	spin_unlock(&wt_lock);
	if (old) {
		clear_bit(MMF_WPP, &old->flags);
		mmdrop(old);
	}

	mmap_read_lock(mm);
	if (wt_mode != WPP_MODE_LAZY) {
		set_bit(MMF_WPP, &mm->flags);
		wpp_sync_all(mm, true);
	}
	mmap_read_unlock(mm);
	pr_info("pid %d: exec %s, address space tracked\n", task_pid_nr(current),
		current->comm);
}

void __wpp_task_exit(struct task_struct *tsk)
{
	struct mm_struct *mm;

	spin_lock(&wt_lock);
	if (wt_task != tsk) {
		spin_unlock(&wt_lock);
		return;
	}
	mm = wt_mm;
	WRITE_ONCE(wt_mm, NULL);
	WRITE_ONCE(wt_task, NULL);
	wt_claimed = false;
	spin_unlock(&wt_lock);

	tsk->wpp_persist = 0;
	if (mm) {
		clear_bit(MMF_WPP, &mm->flags);
		mmdrop(mm);
	}
	spin_lock(&wt_batch_lock);
	wt_nr_ops = 0;
	spin_unlock(&wt_batch_lock);
	wpp_shadow_clear();
	pr_info("pid %d exited, tracking ended\n", task_pid_nr(tsk));
	put_task_struct(tsk);
}
