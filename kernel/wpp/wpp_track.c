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

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/huge_mm.h>
#include <linux/ktime.h>
#include <linux/mutex.h>
#include <linux/pagewalk.h>
#include <linux/sched.h>
#include <linux/shmem_fs.h>
#include <linux/swapops.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/sort.h>
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
static bool wt_allow_threads;	/* wpp.allow_threads when tracking began */
static atomic_t wt_errors;	/* failed run-time reports since tracking began */

/*
 * A run-time report (eager SMI, region sync, batch flush) failed: the
 * firmware's lists are wrong until the power-loss check corrects them.
 * Counted, logged (ratelimited) and reported at power loss.
 */
static void wpp_track_error(const char *what, int err)
{
	atomic_inc(&wt_errors);
	wpp_check_stats.track_errors++;
	pr_warn_ratelimited("%s failed: %d (the power-loss check will correct the lists)\n",
			    what, err);
}

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

/*
 * The thread policy belongs to the tracked process: taken from
 * wpp.allow_threads when tracking begins, recorded in its PCB, and given
 * back with the snapshot when it is recreated (a later change of the
 * parameter does not change what this process may do).
 */
bool wpp_track_threads_allowed(void)
{
	return READ_ONCE(wt_allow_threads);
}

void wpp_track_allow_threads(bool allow)
{
	WRITE_ONCE(wt_allow_threads, allow);
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
	if (wt_nr_ops == WPP_BATCH_OPS) {
		int err = wpp_batch_flush_locked();

		if (err)
			wpp_track_error("page batch", err);
	}
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
	int err;

	if (vma->vm_mm != READ_ONCE(wt_mm) || READ_ONCE(wt_frozen) ||
	    (vma->vm_flags & WPP_SKIP_VMA))
		return;
	va &= PAGE_MASK;
	switch (wt_mode) {
	case WPP_MODE_EAGER:
		/* stack growth changes a VMA under the read lock only */
		if (op == WPP_PAGE_OP_ADD && !wpp_shadow_covers(va)) {
			err = wpp_regions_sync(vma->vm_mm);
			if (err)
				wpp_track_error("region sync", err);
		}
		m.virtual_address = va;
		m.physical_address = PFN_PHYS(pfn);
		err = wpp_smi_simple(op == WPP_PAGE_OP_ADD ? WPP_EV_ADD_PAGE : WPP_EV_REMOVE_PAGE,
				     &m, sizeof(m));
		if (err)
			wpp_track_error(op == WPP_PAGE_OP_ADD ? "add_page" : "remove_page", err);
		break;
	case WPP_MODE_BATCHED:
		spin_lock(&wt_batch_lock);
		if (wt_nr_ops == WPP_BATCH_OPS) {
			err = wpp_regions_sync(vma->vm_mm);
			if (err)
				wpp_track_error("region sync", err);
		}
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
	if (wt_mode == WPP_MODE_EAGER) {
		int err = wpp_regions_sync(mm);

		if (err)
			wpp_track_error("region sync", err);
	}
}

static int wpp_walk_test(unsigned long start, unsigned long end, struct mm_walk *walk)
{
	return (walk->vma->vm_flags & WPP_SKIP_VMA) ? 1 : 0;
}

/*
 * The present pages of an mm as (va, pa) pairs, collected by a page-table
 * walk into a private array: no driver lock is held during the walk, which
 * takes the page-table locks itself (the fault and zap hooks are called with
 * those held and then take wt_batch_lock: holding wt_batch_lock across the
 * walk was an ABBA deadlock). With pin, each normal page also gets a
 * reference, so that what the list names cannot be freed, migrated, merged
 * or collapsed away before the firmware has copied it.
 */
struct wpp_ptlist {
	struct wpp_page_mapping *e;
	struct page **pin;
	unsigned int n, cap, npin;
	bool pin_pages;
	/*
	 * With pin (the power-loss check): pages of the task that are not
	 * present but hold data. A swapped-out anonymous page has a swap pte
	 * and a page being migrated (compaction, KSM, THP, move_pages) a
	 * migration entry; listed as they are they would be REMOVEd and come
	 * back as zero pages: silent loss. Their addresses are collected here
	 * (up to WPP_ABSENT_MAX per walk) so that the check brings them in.
	 */
	unsigned long *absent;
	unsigned int nabsent, swapped, migrating, other;
};

#define WPP_ABSENT_MAX	4096

static void wpp_ptlist_add(struct wpp_ptlist *l, unsigned long va, unsigned long pfn,
			   struct page *page)
{
	if (l->n < l->cap) {
		l->e[l->n].virtual_address = va;
		l->e[l->n].physical_address = PFN_PHYS(pfn);
		if (page) {
			get_page(page);
			l->pin[l->npin++] = page;
		}
	}
	l->n++;		/* counts on when full: the caller grows the array */
}

/* A non-present entry that holds data (not a uffd-wp marker): to bring in. */
static void wpp_ptlist_absent(struct wpp_ptlist *l, unsigned long va, swp_entry_t e)
{
	if (is_pte_marker_entry(e))
		return;
	if (is_migration_entry(e))
		l->migrating++;
	else if (!non_swap_entry(e))
		l->swapped++;
	else
		l->other++;	/* hwpoison, device memory: the fault-in fails loudly */
	if (l->nabsent < WPP_ABSENT_MAX)
		l->absent[l->nabsent++] = va;
}

static int wpp_ptl_pte(pte_t *pte, unsigned long addr, unsigned long next,
		       struct mm_walk *walk)
{
	struct wpp_ptlist *l = walk->private;
	pte_t p = ptep_get(pte);

	if (pte_present(p))
		wpp_ptlist_add(l, addr, pte_pfn(p),
			       l->pin_pages ? vm_normal_page(walk->vma, addr, p) : NULL);
	else if (l->absent && !pte_none(p))
		wpp_ptlist_absent(l, addr, pte_to_swp_entry(p));
	return 0;
}

/* A huge pmd (THP) is listed as its 4 KiB pages, without splitting it. */
static int wpp_ptl_pmd(pmd_t *pmd, unsigned long addr, unsigned long next,
		       struct mm_walk *walk)
{
	struct wpp_ptlist *l = walk->private;
	spinlock_t *ptl = pmd_trans_huge_lock(pmd, walk->vma);
	unsigned long pfn, va;
	bool pin;
	pmd_t v;

	if (!ptl)
		return 0;
	v = *pmd;
	if (pmd_present(v)) {
		pin = l->pin_pages && !is_huge_zero_pmd(v);
		pfn = pmd_pfn(v) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		for (va = addr; va < next; va += PAGE_SIZE, pfn++)
			wpp_ptlist_add(l, va, pfn, pin ? pfn_to_page(pfn) : NULL);
	} else if (l->absent && is_pmd_migration_entry(v)) {
		/* a THP being migrated: its 512 pages are behind this entry */
		wpp_ptlist_absent(l, addr, pmd_to_swp_entry(v));
	}
	spin_unlock(ptl);
	walk->action = ACTION_CONTINUE;
	return 0;
}

static const struct mm_walk_ops wpp_ptl_ops = {
	.pmd_entry = wpp_ptl_pmd,
	.pte_entry = wpp_ptl_pte,
	.test_walk = wpp_walk_test,
};

static void wpp_ptlist_free(struct wpp_ptlist *l)
{
	unsigned int i;

	for (i = 0; i < l->npin; i++)
		put_page(l->pin[i]);
	kvfree(l->pin);
	kvfree(l->e);
	kvfree(l->absent);
	memset(l, 0, sizeof(*l));
}

/* Caller holds the mmap lock of mm (read). */
static int wpp_ptlist_collect(struct mm_struct *mm, struct wpp_ptlist *l, bool pin)
{
	unsigned int cap = get_mm_rss(mm) + 1024;
	int ret;

	for (;;) {
		memset(l, 0, sizeof(*l));
		l->pin_pages = pin;
		l->cap = cap;
		l->e = kvmalloc_array(cap, sizeof(*l->e), GFP_KERNEL);
		if (pin) {
			l->pin = kvmalloc_array(cap, sizeof(*l->pin), GFP_KERNEL);
			l->absent = kvmalloc_array(WPP_ABSENT_MAX, sizeof(*l->absent),
						   GFP_KERNEL);
		}
		if (!l->e || (pin && (!l->pin || !l->absent))) {
			wpp_ptlist_free(l);
			return -ENOMEM;
		}
		ret = walk_page_range(mm, 0, TASK_SIZE_MAX, &wpp_ptl_ops, l);
		if (ret) {
			wpp_ptlist_free(l);
			return ret;
		}
		if (l->n <= l->cap)
			return 0;
		cap = l->n + 1024;	/* pages were added since the estimate */
		wpp_ptlist_free(l);
	}
}

/*
 * Shared anonymous memory (and tmpfs mappings) swapped out leaves no trace in
 * the page tables (the pte is cleared, the swap entry lives in the shmem
 * mapping): the walk cannot see it to bring it in, so a tracked shmem mapping
 * with pages in swap refuses the persist instead of losing them.
 */
static int wpp_check_shmem_swap(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);
	for_each_vma(vmi, vma) {
		unsigned long sw;

		if (!vma->vm_file || !shmem_file(vma->vm_file))
			continue;
		sw = shmem_swap_usage(vma);
		if (sw) {
			pr_err("power loss: %lu KiB of the shared mapping at %#lx are in swap: no snapshot (hint: mlock() it or run without swap)\n",
			       sw >> 10, vma->vm_start);
			return -EAGAIN;
		}
	}
	return 0;
}

/*
 * The check's page list, every page of the task present and pinned. A page
 * swapped out or being migrated holds the task's data but has no present
 * pte: it is faulted in through GUP on the stopped task's mm (as
 * /proc/<pid>/mem would read it: a swap-in, or a wait for the migration to
 * end), then the tables are walked again. The snapshot must be complete or
 * not taken: a page that cannot be brought in (poisoned, a swap read error,
 * no memory) refuses the persist loudly rather than persisting a zero page.
 * Caller holds the mmap lock of mm (read).
 */
static int wpp_ptlist_collect_present(struct mm_struct *mm, struct wpp_ptlist *l,
				      u64 *swapped, u64 *migrating)
{
	unsigned int round, rounds = 8, i;
	u64 brought = 0;
	int ret;

	*swapped = 0;
	*migrating = 0;
	for (round = 0; ; round++) {
		ret = wpp_ptlist_collect(mm, l, true);
		if (ret)
			return ret;
		if (!l->nabsent)
			break;
		if (round == 0) {
			*swapped = l->swapped;
			*migrating = l->migrating;
			rounds += (l->swapped + l->migrating + l->other) / WPP_ABSENT_MAX;
		}
		if (round >= rounds) {
			pr_err("power loss: %u pages of the task still not present after %u rounds of bringing them in (%u swapped, %u migrating): no snapshot\n",
			       l->swapped + l->migrating + l->other, round,
			       l->swapped, l->migrating);
			ret = -EAGAIN;
			goto fail;
		}
		for (i = 0; i < l->nabsent; i++) {
			struct page *page;
			long got;

			got = get_user_pages_remote(mm, l->absent[i], 1, FOLL_FORCE,
						    &page, NULL, NULL);
			if (got == 1) {
				put_page(page);
				continue;
			}
			ret = got < 0 ? got : -EFAULT;
			pr_err("power loss: the page at %#lx of the task cannot be brought in (%s): %d: no snapshot\n",
			       l->absent[i], l->other ? "poisoned or device page?" :
			       "swap read failed or no memory", ret);
			goto fail;
		}
		brought += l->nabsent;
		wpp_ptlist_free(l);
	}
	if (brought)
		pr_info("power loss: brought in %llu pages before the check (%llu swapped out, %llu migrating) in %u rounds\n",
			brought, *swapped, *migrating, round);
	return 0;
fail:
	wpp_ptlist_free(l);
	return ret;
}

/*
 * Report all regions and every present page of mm. Caller holds the mmap
 * lock of mm. Pages already reported are not walked again: used for the
 * exec-time baseline (the firmware was reset at clone) and for lazy mode.
 */
static int wpp_sync_all(struct mm_struct *mm, bool walk_pages)
{
	struct wpp_ptlist l = { };
	unsigned int i;
	int ret, err;

	ret = wpp_regions_sync(mm);
	if (walk_pages) {
		err = wpp_ptlist_collect(mm, &l, false);
		if (err && !ret)
			ret = err;
	}
	spin_lock(&wt_batch_lock);
	for (i = 0; i < l.n; i++)
		wpp_batch_add_locked(WPP_PAGE_OP_ADD, l.e[i].virtual_address,
				     PHYS_PFN(l.e[i].physical_address));
	err = wpp_batch_flush_locked();
	spin_unlock(&wt_batch_lock);
	wpp_ptlist_free(&l);
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

/* ---- power-loss check: the firmware's lists against the page tables ---- */

struct wpp_check_stats wpp_check_stats;
static DEFINE_MUTEX(wt_check_mutex);	/* wpp_check_stats, wt_pins */
static struct wpp_ptlist wt_pins;	/* pages held from the check to PERSIST */

static int wpp_cmp_mapping(const void *a, const void *b)
{
	const struct wpp_page_mapping *x = a, *y = b;

	if (x->virtual_address != y->virtual_address)
		return x->virtual_address < y->virtual_address ? -1 : 1;
	if (x->physical_address != y->physical_address)
		return x->physical_address < y->physical_address ? -1 : 1;
	return 0;
}

#define WPP_CHECK_CHUNK_MIN	1024U		/* entries: 16 KiB of pages */
#define WPP_CHECK_CHUNK_MAX	(1U << 16)	/* entries: 1 MiB of pages */

/*
 * The firmware's page list, read back with READ_DATA. Each bucket keeps its
 * used slots below a high-water mark and everything above it zero, and at
 * most one free slot below it is all zero (the end of its free list), so a
 * bucket is read in growing chunks until an all-zero chunk: the cost follows
 * the number of pages, not the 128 MiB section.
 */
static int wpp_fw_page_list(u64 used, struct wpp_page_mapping **out, unsigned int *nout)
{
	const u32 slots = WPP_PAGE_BUCKET_SLOTS;
	struct wpp_page_mapping *chunk, *list;
	unsigned int n = 0, cap = used + 1024;
	u32 b, slot, cn, i;
	bool zero;
	int ret = 0;

	chunk = kvmalloc_array(WPP_CHECK_CHUNK_MAX, sizeof(*chunk), GFP_KERNEL);
	list = kvmalloc_array(cap, sizeof(*list), GFP_KERNEL);
	if (!chunk || !list) {
		ret = -ENOMEM;
		goto out;
	}
	for (b = 0; b < WPP_PAGE_BUCKETS && !ret; b++) {
		cn = WPP_CHECK_CHUNK_MIN;
		for (slot = 0; slot < slots; slot += cn, cn = min(cn * 2, WPP_CHECK_CHUNK_MAX)) {
			cn = min(cn, slots - slot);
			ret = wpp_read_data(WPP_SECTION_PAGES,
					    (b * slots + slot) * sizeof(*chunk), chunk,
					    cn * sizeof(*chunk));
			if (ret)
				break;
			zero = true;
			for (i = 0; i < cn; i++) {
				if (chunk[i].virtual_address || chunk[i].physical_address)
					zero = false;
				if (!(chunk[i].virtual_address & WPP_PAGE_USED))
					continue;
				if (n == cap) {
					pr_err("check: firmware lists more pages than its count %llu\n",
					       used);
					ret = -EUCLEAN;
					break;
				}
				list[n].virtual_address = chunk[i].virtual_address & ~WPP_PAGE_USED;
				list[n].physical_address = chunk[i].physical_address;
				n++;
			}
			if (zero || ret)
				break;
		}
	}
out:
	kvfree(chunk);
	if (ret) {
		kvfree(list);
		return ret;
	}
	*out = list;
	*nout = n;
	return 0;
}

/* Send removes and adds with PAGE_BATCH; the firmware must apply every one. */
static int wpp_send_ops(struct wpp_page_op *ops, unsigned int n)
{
	unsigned int done = 0, k;
	int ret = 0;

	while (done < n && !ret) {
		struct wpp_page_batch hdr;
		struct wpp_call c = { .event = WPP_EV_PAGE_BATCH };

		k = min(n - done, WPP_BATCH_OPS);
		hdr.count = k;
		hdr.flags = 0;
		c.p1 = &hdr;
		c.len1 = sizeof(hdr);
		c.p2 = ops + done;
		c.len2 = k * sizeof(*ops);
		ret = wpp_smi(&c);
		if (!ret && c.result[0] != k) {
			pr_err("check: firmware applied %llu of %u corrections\n", c.result[0], k);
			ret = -EIO;
		}
		done += k;
	}
	return ret;
}

/* Page list: firmware vs page tables; corrections counted in added and removed. */
static int wpp_check_pages(struct wpp_ptlist *pt, u64 used, unsigned int *added,
			   unsigned int *removed)
{
	struct wpp_page_mapping *fw = NULL;
	struct wpp_page_op *ops;
	unsigned int nfw = 0, i = 0, j = 0, nops = 0;
	int ret;

	ret = wpp_fw_page_list(used, &fw, &nfw);
	if (ret)
		return ret;
	sort(fw, nfw, sizeof(*fw), wpp_cmp_mapping, NULL);
	sort(pt->e, pt->n, sizeof(*pt->e), wpp_cmp_mapping, NULL);
	ops = kvmalloc_array(nfw + pt->n + 1, sizeof(*ops), GFP_KERNEL);
	if (!ops) {
		kvfree(fw);
		return -ENOMEM;
	}
	/* removes first: a firmware list never holds more than the two lists */
	while (i < nfw) {
		int c = j < pt->n ? wpp_cmp_mapping(&fw[i], &pt->e[j]) : -1;

		if (c == 0) {
			i++;
			j++;
			continue;
		}
		if (c < 0 || fw[i].virtual_address == pt->e[j].virtual_address) {
			ops[nops].virtual_address = fw[i].virtual_address;
			ops[nops].physical_address = fw[i].physical_address;
			ops[nops].op = WPP_PAGE_OP_REMOVE;
			ops[nops++].reserved = 0;
			if (nops <= 8)
				pr_warn("check: firmware lists va %#llx -> pa %#llx, the page tables do not\n",
					fw[i].virtual_address, fw[i].physical_address);
			i++;
			continue;
		}
		j++;
	}
	*removed = nops;
	for (i = 0, j = 0; j < pt->n; j++) {
		while (i < nfw && wpp_cmp_mapping(&fw[i], &pt->e[j]) < 0)
			i++;
		if (i < nfw && !wpp_cmp_mapping(&fw[i], &pt->e[j]))
			continue;
		ops[nops].virtual_address = pt->e[j].virtual_address;
		ops[nops].physical_address = pt->e[j].physical_address;
		ops[nops].op = WPP_PAGE_OP_ADD;
		ops[nops].reserved = 0;
		if (nops - *removed < 8)
			pr_warn("check: page tables map va %#llx -> pa %#llx, the firmware does not list it\n",
				pt->e[j].virtual_address, pt->e[j].physical_address);
		nops++;
	}
	*added = nops - *removed;
	ret = wpp_send_ops(ops, nops);
	kvfree(ops);
	kvfree(fw);
	return ret;
}

static bool wpp_region_equal(const struct wpp_region *a, const struct wpp_region *b)
{
	return a->virtual_address == b->virtual_address && a->length == b->length &&
	       a->protection == b->protection && a->flags == b->flags &&
	       a->file_offset == b->file_offset &&
	       (a->state & ~WPP_REGION_F_USED) == (b->state & ~WPP_REGION_F_USED) &&
	       !strncmp(a->file_path, b->file_path, sizeof(a->file_path));
}

/* Region list: firmware vs VMAs. Caller holds the mmap lock of mm. */
static int wpp_check_regions(struct mm_struct *mm, u64 used, unsigned int *added,
			     unsigned int *removed)
{
	const u32 per = WPP_CHECK_CHUNK_MAX * sizeof(struct wpp_page_mapping) /
			sizeof(struct wpp_region);
	struct wpp_region *fw, *cur, *chunk;
	unsigned int nfw = 0, ncur = 0, cap, i, j;
	struct vm_area_struct *vma;
	u32 slot, cn;
	int ret = 0, err;

	VMA_ITERATOR(vmi, mm, 0);
	cap = mm->map_count + 1;
	fw = kvmalloc_array(used + 1, sizeof(*fw), GFP_KERNEL);
	cur = kvmalloc_array(cap, sizeof(*cur), GFP_KERNEL);
	chunk = kvmalloc_array(per, sizeof(*chunk), GFP_KERNEL);
	if (!fw || !cur || !chunk) {
		ret = -ENOMEM;
		goto out;
	}
	for (slot = 0, cn = 64; slot < WPP_REGION_SLOTS && nfw < used;
	     slot += cn, cn = min(cn * 2, per)) {
		cn = min_t(u32, cn, WPP_REGION_SLOTS - slot);
		ret = wpp_read_data(WPP_SECTION_REGIONS, slot * sizeof(*chunk), chunk,
				    cn * sizeof(*chunk));
		if (ret)
			goto out;
		for (i = 0; i < cn && nfw < used; i++)
			if (chunk[i].state & WPP_REGION_F_USED)
				fw[nfw++] = chunk[i];
	}
	spin_lock(&wt_shadow_lock);	/* wt_path_buf */
	for_each_vma(vmi, vma) {
		if (ncur == cap)
			break;
		wpp_fill_region(&cur[ncur++], vma);
	}
	spin_unlock(&wt_shadow_lock);

	*added = 0;
	*removed = 0;
	for (i = 0; i < nfw; i++) {
		struct wpp_region_key key = {
			.virtual_address = fw[i].virtual_address,
			.length = fw[i].length,
		};

		for (j = 0; j < ncur; j++)
			if (wpp_region_equal(&fw[i], &cur[j]))
				break;
		if (j < ncur) {
			cur[j].state |= WPP_REGION_F_USED;	/* matched */
			continue;
		}
		fw[i].file_path[WPP_PATH_MAX - 1] = 0;
		pr_warn("check: firmware region %#llx-%#llx %s differs from the VMAs\n",
			fw[i].virtual_address, fw[i].virtual_address + fw[i].length,
			fw[i].file_path);
		err = wpp_smi_simple(WPP_EV_REMOVE_REGION, &key, sizeof(key));
		if (err && !ret)
			ret = err;
		(*removed)++;
	}
	for (j = 0; j < ncur; j++) {
		if (cur[j].state & WPP_REGION_F_USED)
			continue;
		pr_warn("check: VMA %#llx-%#llx %s missing in the firmware\n",
			cur[j].virtual_address, cur[j].virtual_address + cur[j].length,
			cur[j].file_path);
		err = wpp_smi_simple(WPP_EV_ADD_REGION, &cur[j], sizeof(cur[j]));
		if (err && !ret)
			ret = err;
		(*added)++;
	}
	/* the shadow is what the firmware holds now */
	if (*added || *removed)
		wpp_shadow_clear();
out:
	kvfree(chunk);
	kvfree(cur);
	kvfree(fw);
	return ret;
}

static int wpp_read_counters(struct wpp_counters *c)
{
	return wpp_read_data(WPP_SECTION_INTERNAL, WPP_INTERNAL_COUNTERS_OFFSET, c, sizeof(*c));
}

/*
 * At power loss, with the task stopped and tracking frozen: make the
 * firmware's page list equal the present pages of the task's page tables
 * and its region list equal the VMAs, whatever changed them (paths without a
 * hook: PMD/PUD moves, reclaim of MADV_FREE pages, THP, KSM, migration,
 * userfaultfd), in every mode; pages swapped out or being migrated are
 * brought in first (wpp_ptlist_collect_present). Every listed page is pinned until
 * wpp_track_check_release(), so nothing can free or move it before PERSIST
 * has copied it. Differences are corrected, logged and counted
 * (/sys/kernel/wpp/check); afterwards the firmware's counts must match.
 */
int wpp_track_check(struct task_struct *task)
{
	unsigned int padd = 0, prem = 0, radd = 0, rrem = 0, nvma;
	struct mm_struct *mm = get_task_mm(task);
	u64 swapped = 0, migrating = 0;
	struct wpp_counters c;
	u64 t0 = ktime_get_ns(), us;
	int ret;

	if (!mm)
		return -ESRCH;
	mutex_lock(&wt_check_mutex);
	wpp_ptlist_free(&wt_pins);
	mmap_read_lock(mm);
	nvma = mm->map_count;
	ret = wpp_read_counters(&c);
	if (!ret)
		ret = wpp_check_regions(mm, c.regions_used, &radd, &rrem);
	if (!ret)
		ret = wpp_check_shmem_swap(mm);
	if (!ret)
		ret = wpp_ptlist_collect_present(mm, &wt_pins, &swapped, &migrating);
	if (!ret)
		ret = wpp_check_pages(&wt_pins, c.pages_used, &padd, &prem);
	if (!ret)
		ret = wpp_read_counters(&c);
	if (!ret && (c.pages_used != wt_pins.n || c.regions_used != nvma)) {
		pr_err("check: after correction the firmware holds %llu pages and %llu regions, the task %u and %u\n",
		       c.pages_used, c.regions_used, wt_pins.n, nvma);
		ret = -EUCLEAN;
	}
	mmap_read_unlock(mm);
	mmput(mm);
	us = (ktime_get_ns() - t0) / NSEC_PER_USEC;

	if (atomic_read(&wt_errors))
		pr_warn("power loss: %d run-time reports to the firmware had failed since tracking began\n",
			atomic_read(&wt_errors));
	wpp_check_stats.checks++;
	wpp_check_stats.pages_added += padd;
	wpp_check_stats.pages_removed += prem;
	wpp_check_stats.regions_added += radd;
	wpp_check_stats.regions_removed += rrem;
	wpp_check_stats.last_pages = wt_pins.n;
	wpp_check_stats.last_regions = nvma;
	wpp_check_stats.last_corrected = padd + prem + radd + rrem;
	wpp_check_stats.last_us = us;
	wpp_check_stats.swapped_in += swapped;
	wpp_check_stats.migration_waits += migrating;
	wpp_check_stats.last_brought_in = swapped + migrating;
	if (ret) {
		wpp_check_stats.failed++;
		pr_err("power loss: page-table check failed: %d\n", ret);
	} else if (padd + prem + radd + rrem) {
		pr_warn("power loss: page-table check corrected the firmware: %u pages added, %u removed, %u regions added, %u removed (%s mode; %u pages, %u regions) in %llu us\n",
			padd, prem, radd, rrem, wpp_mode_names[wt_mode], wt_pins.n, nvma, us);
	} else {
		pr_info("power loss: page-table check: firmware lists match (%u pages, %u regions) in %llu us\n",
			wt_pins.n, nvma, us);
	}
	mutex_unlock(&wt_check_mutex);
	return ret;
}

/* After PERSIST (or its failure): drop the pins of wpp_track_check(). */
void wpp_track_check_release(void)
{
	mutex_lock(&wt_check_mutex);
	wpp_ptlist_free(&wt_pins);
	mutex_unlock(&wt_check_mutex);
}

/*
 * Magic number 20: reset the firmware; re-send the tracked process' state.
 * The process may be running: its mmap lock is held for writing from the
 * reset until its state is queued and sent, so that no fault or zap (they
 * run under the read lock and report through the hooks) falls between the
 * page-table walk and the queued pages (a page twice, or a remove before
 * its add: the firmware refused the batch).
 */
int wpp_track_reset_firmware(void)
{
	struct task_struct *task = wpp_tracked_task_get();
	struct mm_struct *mm = task ? get_task_mm(task) : NULL;
	int ret;

	if (mm && mm != READ_ONCE(wt_mm)) {
		mmput(mm);
		mm = NULL;
	}
	if (mm)
		mmap_write_lock(mm);
	ret = wpp_smi_simple(WPP_EV_INIT, NULL, 0);
	wpp_shadow_clear();
	spin_lock(&wt_batch_lock);
	wt_nr_ops = 0;
	spin_unlock(&wt_batch_lock);
	if (!ret && mm && wt_mode != WPP_MODE_LAZY)
		ret = wpp_sync_all(mm, true);
	if (mm) {
		mmap_write_unlock(mm);
		mmput(mm);
	}
	if (task)
		put_task_struct(task);
	return ret;
}

/* ---- life cycle hooks ------------------------------------------------- */

int __wpp_copy_process(u64 clone_flags)
{
	if ((clone_flags & CLONE_THREAD) && READ_ONCE(wt_allow_threads)) {
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

	/*
	 * Tracking takes the single slot, makes every page event of the process
	 * an SMI (eager) and puts its memory on the persistent device: only an
	 * administrator may ask for that.
	 */
	if (!capable(CAP_SYS_ADMIN)) {
		pr_warn_ratelimited("pid %d (%s) uid %u: CLONE_DETACHED refused: tracking needs CAP_SYS_ADMIN\n",
				    task_pid_nr(current), current->comm,
				    from_kuid(&init_user_ns, current_uid()));
		return -EPERM;
	}
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
	wt_allow_threads = READ_ONCE(wpp_allow_threads);
	wt_frozen = false;
	atomic_set(&wt_errors, 0);
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
