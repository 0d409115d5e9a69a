// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_pcb.c - capture the process control block of the stopped tracked
 * process (format: wpp_pcb.h) and write it to the Metadata section.
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/cred.h>
#include <linux/crc32.h>
#include <linux/elf.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/path.h>
#include <linux/regset.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include "wpp_internal.h"
#include "wpp_pcb.h"

static const struct user_regset *wpp_find_regset(struct task_struct *task,
						 unsigned int note)
{
	const struct user_regset_view *view = task_user_regset_view(task);
	unsigned int i;

	for (i = 0; i < view->n; i++)
		if (view->regsets[i].core_note_type == note)
			return &view->regsets[i];
	return NULL;
}

/* Copy a path, report truncation. */
static bool wpp_path_copy(char *dst, const struct path *path)
{
	char *buf = kmalloc(PATH_MAX, GFP_KERNEL);
	const char *p;
	bool trunc = false;

	dst[0] = 0;
	if (!buf)
		return true;
	p = d_path(path, buf, PATH_MAX);
	if (!IS_ERR(p))
		trunc = strscpy(dst, p, WPP_PCB_PATH_MAX) < 0;
	kfree(buf);
	return trunc;
}

static unsigned int wpp_pcb_files(struct task_struct *task, struct wpp_pcb_file *out,
				  bool *truncated)
{
	struct files_struct *files;
	unsigned int fd = 0, n = 0;
	struct file *f;

	task_lock(task);
	files = task->files;
	task_unlock(task);
	if (!files)
		return 0;

	for (;; fd++) {
		bool cloexec;

		rcu_read_lock();
		f = task_lookup_next_fd_rcu(task, &fd);
		if (f && !get_file_rcu(f))
			f = NULL;
		cloexec = f && close_on_exec(fd, files_fdtable(files));
		rcu_read_unlock();
		if (!f)
			break;
		if (n == WPP_PCB_FILES_MAX) {
			*truncated = true;
			fput(f);
			break;
		}
		out[n].fd = fd;
		out[n].flags = f->f_flags;
		out[n].pos = f->f_pos;
		out[n].mode = file_inode(f)->i_mode;
		out[n].ino = file_inode(f)->i_ino;
		out[n].cloexec = cloexec;
		if (wpp_path_copy(out[n].path, &f->f_path))
			*truncated = true;
		fput(f);
		n++;
	}
	return n;
}

static void wpp_pcb_mm(struct task_struct *task, struct wpp_pcb *pcb)
{
	struct mm_struct *mm = get_task_mm(task);
	unsigned int i;

	if (!mm)
		return;
	pcb->start_code = mm->start_code;
	pcb->end_code = mm->end_code;
	pcb->start_data = mm->start_data;
	pcb->end_data = mm->end_data;
	pcb->start_brk = mm->start_brk;
	pcb->brk = mm->brk;
	pcb->start_stack = mm->start_stack;
	pcb->arg_start = mm->arg_start;
	pcb->arg_end = mm->arg_end;
	pcb->env_start = mm->env_start;
	pcb->env_end = mm->env_end;
	for (i = 0; i + 1 < ARRAY_SIZE(mm->saved_auxv) && i + 1 < WPP_PCB_AUXV_MAX; i += 2) {
		pcb->auxv[i] = mm->saved_auxv[i];
		pcb->auxv[i + 1] = mm->saved_auxv[i + 1];
		if (mm->saved_auxv[i] == AT_NULL) {
			i += 2;
			break;
		}
	}
	pcb->auxv_count = i;
	mmput(mm);
}

/* Build the PCB of the stopped task into a new buffer; *size gets its length. */
static void *wpp_pcb_build(struct task_struct *task, u64 sequence, u32 *size)
{
	const struct user_regset *rs_xstate, *rs_fp, *rs_regs;
	struct wpp_pcb_file *files;
	struct wpp_pcb_sigaction *sa;
	const struct cred *cred;
	unsigned int nfiles, fpu_cap = 0, off, i;
	struct file *exe;
	struct path pwd;
	struct wpp_pcb *pcb;
	bool trunc = false;
	void *buf;
	int ret;

	rs_regs = wpp_find_regset(task, NT_PRSTATUS);
	rs_xstate = wpp_find_regset(task, NT_X86_XSTATE);
	if (rs_xstate && rs_xstate->active && rs_xstate->active(task, rs_xstate) <= 0)
		rs_xstate = NULL;
	rs_fp = wpp_find_regset(task, NT_PRFPREG);
	if (rs_xstate)
		fpu_cap = rs_xstate->n * rs_xstate->size;
	else if (rs_fp)
		fpu_cap = rs_fp->n * rs_fp->size;

	off = ALIGN(sizeof(*pcb), 8);
	buf = kvzalloc(off + WPP_PCB_NSIG * sizeof(*sa) +
		       WPP_PCB_FILES_MAX * sizeof(*files) + ALIGN(fpu_cap, 8), GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	pcb = buf;
	pcb->magic = WPP_PCB_MAGIC;
	pcb->version = WPP_PCB_VERSION;
	pcb->header_size = sizeof(*pcb);
	pcb->abi_version = WPP_ABI_VERSION;
	pcb->sequence = sequence;
	pcb->timestamp_ns = ktime_get_real_ns();

	/* identity */
	pcb->pid = task_pid_nr(task);
	pcb->tgid = task_tgid_nr(task);
	rcu_read_lock();
	pcb->ppid = task_tgid_nr(rcu_dereference(task->real_parent));
	rcu_read_unlock();
	pcb->pgid = task_pgrp_nr_ns(task, &init_pid_ns);
	pcb->sid = task_session_nr_ns(task, &init_pid_ns);
	cred = get_task_cred(task);
	pcb->uid = from_kuid(&init_user_ns, cred->uid);
	pcb->gid = from_kgid(&init_user_ns, cred->gid);
	pcb->euid = from_kuid(&init_user_ns, cred->euid);
	pcb->egid = from_kgid(&init_user_ns, cred->egid);
	put_cred(cred);
	pcb->personality = task->personality;
	pcb->exit_signal = task->exit_signal;
	get_task_comm(pcb->comm, task);
	exe = get_task_exe_file(task);
	if (exe) {
		trunc |= wpp_path_copy(pcb->exe_path, &exe->f_path);
		fput(exe);
	}
	task_lock(task);
	if (task->fs) {
		get_fs_pwd(task->fs, &pwd);
		pcb->umask = task->fs->umask;
	} else {
		pwd.mnt = NULL;
	}
	task_unlock(task);
	if (pwd.mnt) {
		trunc |= wpp_path_copy(pcb->cwd, &pwd);
		path_put(&pwd);
	}

	/* CPU */
	if (rs_regs) {
		ret = regset_get(task, rs_regs, sizeof(pcb->regs), &pcb->regs);
		if (ret < 0)
			pr_warn("pcb: general registers: %d\n", ret);
	}
	pcb->clear_child_tid = (unsigned long)task->clear_child_tid;
	if ((long)pcb->regs.orig_ax >= 0)
		pcb->flags |= WPP_PCB_F_IN_SYSCALL;
	if (get_nr_threads(task) > 1)
		pcb->flags |= WPP_PCB_F_MULTI_THREAD;

	/* signals */
	sa = buf + off;
	pcb->sigactions_offset = off;
	pcb->sigactions_count = WPP_PCB_NSIG;
	spin_lock_irq(&task->sighand->siglock);
	pcb->sig_blocked = task->blocked.sig[0];
	pcb->sig_pending = task->pending.signal.sig[0] |
			   task->signal->shared_pending.signal.sig[0];
	for (i = 0; i < WPP_PCB_NSIG && i < _NSIG; i++) {
		const struct sigaction *k = &task->sighand->action[i].sa;

		sa[i].handler = (unsigned long)k->sa_handler;
		sa[i].flags = k->sa_flags;
		sa[i].restorer = (unsigned long)k->sa_restorer;
		sa[i].mask = k->sa_mask.sig[0];
	}
	spin_unlock_irq(&task->sighand->siglock);
	off += WPP_PCB_NSIG * sizeof(*sa);

	/* files */
	files = buf + off;
	nfiles = wpp_pcb_files(task, files, &trunc);
	pcb->files_offset = off;
	pcb->files_count = nfiles;
	off += nfiles * sizeof(*files);
	if (nfiles == WPP_PCB_FILES_MAX)
		pcb->flags |= WPP_PCB_F_FILES_TRUNC;

	/* FPU */
	pcb->fpu_offset = off;
	if (rs_xstate) {
		ret = regset_get(task, rs_xstate, fpu_cap, buf + off);
		pcb->fpu_format = WPP_PCB_FPU_XSAVE;
	} else if (rs_fp) {
		ret = regset_get(task, rs_fp, fpu_cap, buf + off);
		pcb->fpu_format = WPP_PCB_FPU_FXSAVE;
	} else {
		ret = 0;
	}
	if (ret < 0) {
		pr_warn("pcb: fpu state: %d\n", ret);
		pcb->fpu_format = WPP_PCB_FPU_NONE;
		ret = 0;
	}
	pcb->fpu_size = ret;
	if (pcb->fpu_format == WPP_PCB_FPU_XSAVE && ret >= 520)
		memcpy(&pcb->xfeatures, buf + off + 512, sizeof(pcb->xfeatures));
	off += ALIGN(ret, 8);

	wpp_pcb_mm(task, pcb);
	if (trunc)
		pcb->flags |= WPP_PCB_F_PATH_TRUNC;
	pcb->total_size = off;
	pcb->crc32 = 0;
	pcb->crc32 = ~crc32_le(~0U, buf, off);
	*size = off;
	return buf;
}

int wpp_pcb_send(struct task_struct *task, u64 sequence)
{
	u32 size;
	void *pcb = wpp_pcb_build(task, sequence, &size);
	int ret;

	if (IS_ERR(pcb))
		return PTR_ERR(pcb);
	if (size > WPP_METADATA_SIZE) {
		kvfree(pcb);
		return -E2BIG;
	}
	ret = wpp_write_data(WPP_SECTION_METADATA, 0, pcb, size);
	pr_info("pcb of pid %d: %u bytes, %u files%s\n", task_pid_nr(task), size,
		((struct wpp_pcb *)pcb)->files_count, ret ? " NOT written" : "");
	kvfree(pcb);
	return ret;
}
