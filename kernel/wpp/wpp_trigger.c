// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_trigger.c - /dev/wpp-trigger and the power-loss procedure.
 *
 * Writing a decimal magic number (the seed's numbering) acts:
 *   10 power loss: stop the tracked process, write back its open files and the
 *      CPU caches, send its PCB,
 *      flush pending state, PERSIST, then kill the process
 *   20 reset the firmware state (Init), re-sending the tracked process' state
 *   30 send a test page mapping, 40 send a test memory region
 *   50 / 60 toggle firmware debug flag 1 (verbose) / 2 (trace pages)
 *   70 (ours) bring the firmware up to date now: flush the batch, or do the
 *      lazy walk; lets tests compare firmware state in every mode
 * Anything else is -EINVAL.
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/capability.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/uaccess.h>
#include <linux/wpp.h>
#include <asm/smp.h>
#include "wpp_internal.h"
#include "wpp_pcb.h"

#define WPP_MAGIC_POWER_LOSS	10
#define WPP_MAGIC_RESET		20
#define WPP_MAGIC_TEST_PAGE	30
#define WPP_MAGIC_TEST_REGION	40
#define WPP_MAGIC_DEBUG1	50
#define WPP_MAGIC_DEBUG2	60
#define WPP_MAGIC_SYNC		70

#define WPP_TEST_VA		0x7e0000000000ULL
#define WPP_STOP_TIMEOUT	(5 * HZ)

static DEFINE_MUTEX(wpp_trigger_mutex);
static u64 wpp_power_loss_seq;

/*
 * The halt: from the trigger until the process is killed, SIGCONT is dropped
 * for it (prepare_signal() asks wpp_hook_hold_stop()), so nothing resumes it
 * between the capture and PERSIST. Set and cleared under its siglock.
 */
struct signal_struct *wpp_halt_signal;
static atomic_t wpp_halt_dropped = ATOMIC_INIT(0);

bool __wpp_hold_stop(struct task_struct *p)
{
	atomic_inc(&wpp_halt_dropped);
	return true;
}

static void wpp_halt_set(struct task_struct *t, bool on)
{
	spin_lock_irq(&t->sighand->siglock);
	WRITE_ONCE(wpp_halt_signal, on ? t->signal : NULL);
	spin_unlock_irq(&t->sighand->siglock);
}

/* Every thread still stopped and off its CPU? Caller holds the siglock. */
static bool wpp_still_stopped_locked(struct task_struct *task)
{
	struct task_struct *t;

	if (!(task->signal->flags & SIGNAL_STOP_STOPPED))
		return false;
	for_each_thread(task, t) {
		if (!(READ_ONCE(t->__state) & __TASK_STOPPED) || task_curr(t))
			return false;
	}
	return true;
}

/* Other threads (wpp.allow_threads) stopped and off every CPU? */
static bool wpp_threads_stopped(struct task_struct *task)
{
	struct task_struct *t;
	bool stopped = true;

	rcu_read_lock();
	for_each_thread(task, t) {
		if (t != task && (!(READ_ONCE(t->__state) & __TASK_STOPPED) || task_curr(t)))
			stopped = false;
	}
	rcu_read_unlock();
	return stopped;
}

/* Stop the task (all its threads) with SIGSTOP and wait until it runs on no CPU. */
static int wpp_stop_task(struct task_struct *t)
{
	unsigned long deadline = jiffies + WPP_STOP_TIMEOUT;

	wpp_halt_set(t, true);
	send_sig(SIGSTOP, t, 1);
	for (;;) {
		if ((READ_ONCE(t->__state) & __TASK_STOPPED) &&
		    wait_task_inactive(t, __TASK_STOPPED) && wpp_threads_stopped(t))
			return 0;
		if (t->flags & PF_EXITING)
			return -ESRCH;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(1000, 2000);
	}
}

/* distinct files behind file-backed mappings written back at power loss */
#define WPP_SYNC_MAPPED_MAX	64

static int wpp_sync_one(struct file *f)
{
	return S_ISREG(file_inode(f)->i_mode) ? vfs_fsync(f, 1) : 0;
}

/*
 * The recreator maps file-backed regions from their files again, so those files
 * must be on disk too, even when the process has closed them (a file it created,
 * filled, mapped and closed exists only in the page cache until written back).
 * The files are collected under the mmap lock and synced after it is dropped.
 */
static void wpp_sync_mapped(struct task_struct *task, unsigned int *synced,
			    unsigned int *failed)
{
	struct file *files[WPP_SYNC_MAPPED_MAX];
	struct vm_area_struct *vma;
	struct mm_struct *mm;
	unsigned int n = 0, i, j;

	mm = get_task_mm(task);
	if (!mm)
		return;
	mmap_read_lock(mm);
	{
		VMA_ITERATOR(vmi, mm, 0);

		for_each_vma(vmi, vma) {
			if (!vma->vm_file || n == WPP_SYNC_MAPPED_MAX)
				continue;
			for (j = 0; j < n; j++)
				if (file_inode(files[j]) == file_inode(vma->vm_file))
					break;
			if (j == n)
				files[n++] = get_file(vma->vm_file);
		}
	}
	mmap_read_unlock(mm);
	mmput(mm);
	for (i = 0; i < n; i++) {
		if (wpp_sync_one(files[i]))
			(*failed)++;
		else
			(*synced)++;
		fput(files[i]);
	}
}

/*
 * A recreated process reopens its files at the saved offsets and maps its
 * file-backed regions from their files, so those files must hold what the
 * process wrote before the power went: write back every regular file it has
 * open for writing and every file it has mapped. This is part of the
 * power-fail budget (measured in the log line); files the process neither
 * holds open nor maps are not its state and are left to the file system.
 */
static void wpp_sync_files(struct task_struct *task)
{
	unsigned int fd, synced = 0, failed = 0, msynced = 0, mfailed = 0;
	u64 t0 = ktime_get_ns();

	for (fd = 0; fd < WPP_PCB_FILES_MAX; fd++) {
		struct file *f = fget_task(task, fd);

		if (!f)
			continue;
		if (f->f_mode & FMODE_WRITE) {
			if (wpp_sync_one(f))
				failed++;
			else if (S_ISREG(file_inode(f)->i_mode))
				synced++;
		}
		fput(f);
	}
	wpp_sync_mapped(task, &msynced, &mfailed);
	pr_info("power loss: wrote back %u open files (%u failed) and %u mapped files (%u failed) in %llu us\n",
		synced, failed, msynced, mfailed, (ktime_get_ns() - t0) / NSEC_PER_USEC);
}

int wpp_power_loss(void)
{
	struct task_struct *task;
	struct wpp_call c = { .event = WPP_EV_PERSIST };
	u64 t0 = ktime_get_ns();
	int ret, n;

	task = wpp_tracked_task_get();
	if (!task) {
		pr_info("power loss: no tracked process, nothing to persist\n");
		return -ESRCH;
	}
	pr_info("power loss: persisting pid %d (%s)\n", task_pid_nr(task), task->comm);
	ret = wpp_stop_task(task);
	if (ret) {
		pr_err("power loss: pid %d did not stop: %d\n", task_pid_nr(task), ret);
		goto out;
	}
	wpp_sync_files(task);
	wbinvd_on_all_cpus();

	/*
	 * Bring the firmware up to date the mode's way (lazy: reset + walk,
	 * before the PCB goes in; batched: flush; eager: regions), stop
	 * reporting, then check the result against the stopped task's page
	 * tables in every mode: the hooks do not see every path that changes
	 * them. The check pins every page it lists until PERSIST is done.
	 */
	ret = wpp_track_sync(task);
	wpp_track_freeze();
	if (ret)
		pr_warn("power loss: %s sync failed: %d; the check corrects the lists\n",
			wpp_mode_names[wpp_track_mode()], ret);
	ret = wpp_track_check(task);
	if (ret)
		goto kill;
	ret = wpp_pcb_send(task, ++wpp_power_loss_seq);
	if (ret) {
		pr_err("power loss: sending the PCB failed: %d\n", ret);
		goto kill;
	}
	/*
	 * The halt drops SIGCONT; check under the siglock that it held, and
	 * keep the siglock across PERSIST so that nothing can resume the
	 * process while the firmware copies it.
	 */
	spin_lock_irq(&task->sighand->siglock);
	if (wpp_still_stopped_locked(task))
		ret = wpp_smi(&c);
	else
		ret = -EAGAIN;
	spin_unlock_irq(&task->sighand->siglock);
	if (ret == -EAGAIN)
		pr_err("power loss: pid %d is no longer stopped, not persisting\n",
		       task_pid_nr(task));
	else if (ret)
		pr_err("power loss: PERSIST failed: %d (firmware status %d)\n", ret, c.status);
	else
		pr_info("power loss: pid %d persisted in %llu ms\n", task_pid_nr(task),
			(ktime_get_ns() - t0) / NSEC_PER_MSEC);
kill:
	wpp_track_freeze();
	wpp_track_check_release();
	send_sig(SIGKILL, task, 1);
out:
	wpp_halt_set(task, false);
	n = atomic_xchg(&wpp_halt_dropped, 0);
	if (n)
		pr_info("power loss: pid %d held stopped: %d SIGCONT dropped\n",
			task_pid_nr(task), n);
	put_task_struct(task);
	return ret;
}

static int wpp_test_page(void)
{
	struct wpp_page_mapping m = {
		.virtual_address = WPP_TEST_VA,
		.physical_address = page_to_phys(ZERO_PAGE(0)),
	};

	return wpp_smi_simple(WPP_EV_ADD_PAGE, &m, sizeof(m));
}

static int wpp_test_region(void)
{
	struct wpp_region r = {
		.file_path = "[wpp-test]",
		.virtual_address = WPP_TEST_VA,
		.length = PAGE_SIZE,
		.protection = VM_READ,
		.flags = VM_READ,
	};

	return wpp_smi_simple(WPP_EV_ADD_REGION, &r, sizeof(r));
}

static int wpp_toggle_debug(u32 flag)
{
	struct wpp_debug_cmd cmd = { .op = WPP_DEBUG_OP_TOGGLE, .flags = flag };
	struct wpp_call c = { .event = WPP_EV_DEBUG, .p1 = &cmd, .len1 = sizeof(cmd) };
	int ret = wpp_smi(&c);

	if (!ret)
		pr_info("firmware debug flags now %#llx\n", c.result[0]);
	return ret;
}

static int wpp_sync_now(void)
{
	struct task_struct *task = wpp_tracked_task_get();
	int ret;

	if (!task) {
		pr_info("sync: no tracked process\n");
		return -ESRCH;
	}
	ret = wpp_track_sync(task);
	put_task_struct(task);
	return ret;
}

static int wpp_trigger_do(int magic)
{
	switch (magic) {
	case WPP_MAGIC_POWER_LOSS:
		return wpp_power_loss();
	case WPP_MAGIC_RESET:
		return wpp_track_reset_firmware();
	case WPP_MAGIC_TEST_PAGE:
		return wpp_test_page();
	case WPP_MAGIC_TEST_REGION:
		return wpp_test_region();
	case WPP_MAGIC_DEBUG1:
		return wpp_toggle_debug(WPP_DEBUG_F_VERBOSE);
	case WPP_MAGIC_DEBUG2:
		return wpp_toggle_debug(WPP_DEBUG_F_TRACE_PAGES);
	case WPP_MAGIC_SYNC:
		return wpp_sync_now();
	default:
		return -EINVAL;
	}
}

static ssize_t wpp_trigger_write(struct file *file, const char __user *ubuf,
				 size_t len, loff_t *ppos)
{
	int magic, ret;

	/* the 0600 mode is not enough: every magic number acts on the machine */
	if (!capable(CAP_SYS_ADMIN)) {
		pr_warn_ratelimited("wpp-trigger: pid %d (%s): refused, needs CAP_SYS_ADMIN\n",
				    task_pid_nr(current), current->comm);
		return -EPERM;
	}
	ret = kstrtoint_from_user(ubuf, len, 10, &magic);
	if (ret) {
		pr_info("wpp-trigger: not a number\n");
		return ret;
	}
	mutex_lock(&wpp_trigger_mutex);
	ret = wpp_trigger_do(magic);
	mutex_unlock(&wpp_trigger_mutex);
	if (ret == -EINVAL)
		pr_info("wpp-trigger: unknown magic number %d\n", magic);
	else if (ret)
		pr_info("wpp-trigger: %d failed: %d\n", magic, ret);
	return ret ? ret : len;
}

static const struct file_operations wpp_trigger_fops = {
	.owner = THIS_MODULE,
	.write = wpp_trigger_write,
	.llseek = noop_llseek,
};

static struct miscdevice wpp_trigger_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wpp-trigger",
	.fops = &wpp_trigger_fops,
	.mode = 0600,
};

int wpp_trigger_init(void)
{
	return misc_register(&wpp_trigger_dev);
}
