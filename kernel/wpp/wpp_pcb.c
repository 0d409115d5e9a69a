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
#include <linux/futex.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/nsproxy.h>
#include <linux/time_namespace.h>
#include <linux/path.h>
#include <linux/net.h>
#include <linux/regset.h>
#include <linux/seq_file.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <net/sock.h>
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

/* where the capture puts its per-fd descriptions */
struct wpp_pcb_fdcap {
	struct wpp_pcb_fdx *fdx;
	struct wpp_pcb_epitem *ep;
	unsigned int nep;
	bool ep_trunc;
	char *seqbuf;			/* WPP_PCB_SEQ_BUF, for show_fdinfo */
};

#define WPP_PCB_SEQ_BUF	(256 * 1024)

/*
 * The interest list of an epoll instance: fs/eventpoll.c keeps its items
 * private and shows them only as /proc/<pid>/fdinfo text, which is therefore
 * the interface used here (its format is user ABI: CRIU parses it too).
 */
static void wpp_pcb_epoll(struct file *f, struct wpp_pcb_fdx *x, struct wpp_pcb_fdcap *cap)
{
	struct seq_file m = { .buf = cap->seqbuf, .size = WPP_PCB_SEQ_BUF };
	char *line, *next;

	x->kind = WPP_PCB_FDX_EPOLL;
	x->epoll_first = cap->nep;
	if (!f->f_op->show_fdinfo || !cap->seqbuf)
		return;
	f->f_op->show_fdinfo(&m, f);
	if (seq_has_overflowed(&m))
		cap->ep_trunc = true;
	cap->seqbuf[min(m.count, (size_t)WPP_PCB_SEQ_BUF - 1)] = 0;
	for (line = cap->seqbuf; line && *line; line = next) {
		struct wpp_pcb_epitem *e = &cap->ep[cap->nep];
		int tfd;
		unsigned int events;
		unsigned long long data;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
			continue;
		if (cap->nep == WPP_PCB_EPITEMS_MAX) {
			cap->ep_trunc = true;
			break;
		}
		e->tfd = tfd;
		e->events = events;
		e->data = data;
		cap->nep++;
		x->epoll_count++;
	}
}

/* an eventfd's counter, from its fdinfo text like the epoll items */
static void wpp_pcb_eventfd(struct file *f, struct wpp_pcb_fdx *x, struct wpp_pcb_fdcap *cap)
{
	struct seq_file m = { .buf = cap->seqbuf, .size = WPP_PCB_SEQ_BUF };
	unsigned long long count;
	const char *p;

	x->kind = WPP_PCB_FDX_EVENTFD;
	if (!f->f_op->show_fdinfo || !cap->seqbuf)
		return;
	f->f_op->show_fdinfo(&m, f);
	cap->seqbuf[min(m.count, (size_t)WPP_PCB_SEQ_BUF - 1)] = 0;
	p = strstr(cap->seqbuf, "eventfd-count:");
	if (p && sscanf(p, "eventfd-count: %llx", &count) == 1)
		x->count = count;
}

static void wpp_pcb_socket(struct file *f, struct wpp_pcb_fdx *x)
{
	struct socket *sock = sock_from_file(f);
	struct sock *sk = sock ? sock->sk : NULL;
	int len;

	if (!sk)
		return;
	x->kind = WPP_PCB_FDX_SOCKET;
	x->family = sk->sk_family;
	x->type = sock->type;
	x->protocol = sk->sk_protocol;
	x->state = READ_ONCE(sk->sk_state);
	x->backlog = READ_ONCE(sk->sk_max_ack_backlog);
	if (sk->sk_reuse)
		x->sockopts |= WPP_PCB_SO_REUSEADDR;
	if (sk->sk_reuseport)
		x->sockopts |= WPP_PCB_SO_REUSEPORT;
	if (sk->sk_ipv6only)
		x->sockopts |= WPP_PCB_SO_V6ONLY;
	BUILD_BUG_ON(sizeof(x->addr) < sizeof(struct sockaddr_storage));
	len = kernel_getsockname(sock, (struct sockaddr *)x->addr);
	x->addr_len = len > 0 ? len : 0;
}

static void wpp_pcb_fdx(struct file *f, const struct wpp_pcb_file *e,
			struct wpp_pcb_fdx *x, struct wpp_pcb_fdcap *cap)
{
	x->fd = e->fd;
	if (S_ISFIFO(e->mode) && !strncmp(e->path, "pipe:", 5))
		x->kind = WPP_PCB_FDX_PIPE;
	else if (S_ISSOCK(e->mode))
		wpp_pcb_socket(f, x);
	else if (!strcmp(e->path, "anon_inode:[eventpoll]"))
		wpp_pcb_epoll(f, x, cap);
	else if (!strcmp(e->path, "anon_inode:[eventfd]"))
		wpp_pcb_eventfd(f, x, cap);
}

static unsigned int wpp_pcb_files(struct task_struct *task, struct wpp_pcb_file *out,
				  bool *truncated, struct wpp_pcb_fdcap *cap)
{
	struct files_struct *files;
	unsigned int fd = 0, n = 0;
	struct file *f;

	/* a reference: the table must outlive the walk even if the task exits */
	task_lock(task);
	files = task->files;
	if (files)
		atomic_inc(&files->count);
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
		wpp_pcb_fdx(f, &out[n], &cap->fdx[n], cap);
		fput(f);
		n++;
	}
	put_files_struct(files);
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

struct wpp_pcb_regsets {
	const struct user_regset *xstate, *fp, *regs;
	unsigned int fpu_cap;
};

static void wpp_pcb_find_regsets(struct task_struct *task, struct wpp_pcb_regsets *rs)
{
	rs->regs = wpp_find_regset(task, NT_PRSTATUS);
	rs->xstate = wpp_find_regset(task, NT_X86_XSTATE);
	if (rs->xstate && rs->xstate->active && rs->xstate->active(task, rs->xstate) <= 0)
		rs->xstate = NULL;
	rs->fp = wpp_find_regset(task, NT_PRFPREG);
	rs->fpu_cap = 0;
	if (rs->xstate)
		rs->fpu_cap = rs->xstate->n * rs->xstate->size;
	else if (rs->fp)
		rs->fpu_cap = rs->fp->n * rs->fp->size;
}

/* One thread's FPU image into dst (fpu_cap bytes); returns its size, 0 for none. */
static u32 wpp_pcb_fpu(struct task_struct *t, const struct wpp_pcb_regsets *rs, void *dst,
		       u32 *format)
{
	int ret = 0;

	*format = WPP_PCB_FPU_NONE;
	if (rs->xstate) {
		ret = regset_get(t, rs->xstate, rs->fpu_cap, dst);
		*format = WPP_PCB_FPU_XSAVE;
	} else if (rs->fp) {
		ret = regset_get(t, rs->fp, rs->fpu_cap, dst);
		*format = WPP_PCB_FPU_FXSAVE;
	}
	if (ret < 0) {
		pr_warn("pcb: fpu state of tid %d: %d\n", task_pid_nr(t), ret);
		*format = WPP_PCB_FPU_NONE;
		ret = 0;
	}
	return ret;
}

static void wpp_pcb_regs(struct task_struct *t, const struct wpp_pcb_regsets *rs,
			 struct wpp_pcb_regs *regs, u32 *flags)
{
	int ret;

	if (rs->regs) {
		ret = regset_get(t, rs->regs, sizeof(*regs), regs);
		if (ret < 0)
			pr_warn("pcb: general registers of tid %d: %d\n", task_pid_nr(t), ret);
	}
	if ((long)regs->orig_ax >= 0)
		*flags |= WPP_PCB_F_IN_SYSCALL;
}

/*
 * The threads other than the main one, stopped like it. Returns how many
 * were taken (refs in tasks[]), or WPP_PCB_THREADS_MAX + 1 when there are more.
 */
static unsigned int wpp_pcb_collect_threads(struct task_struct *task, struct task_struct **tasks)
{
	struct task_struct *t;
	unsigned int n = 0;

	rcu_read_lock();
	for_each_thread(task, t) {
		if (t == task || (t->flags & PF_EXITING))	/* an exiting thread is gone */
			continue;
		if (n == WPP_PCB_THREADS_MAX) {
			n++;
			break;
		}
		get_task_struct(t);
		tasks[n++] = t;
	}
	rcu_read_unlock();
	return n;
}

/* the rseq() registration (glibc registers one per thread) */
static void wpp_pcb_rseq(struct task_struct *t, u64 *rseq, u32 *sig)
{
#ifdef CONFIG_RSEQ
	*rseq = (unsigned long)t->rseq;
	*sig = t->rseq_sig;
#endif
}

static void wpp_pcb_thread(struct task_struct *t, const struct wpp_pcb_regsets *rs,
			   struct wpp_pcb_thread *th, void *fpu_dst)
{
	th->tid = task_pid_nr(t);
	wpp_pcb_regs(t, rs, &th->regs, &th->flags);
	th->clear_child_tid = (unsigned long)t->clear_child_tid;
	th->robust_list = (unsigned long)t->robust_list;
	th->robust_list_len = t->robust_list ? sizeof(*t->robust_list) : 0;
	spin_lock_irq(&t->sighand->siglock);
	th->sig_blocked = t->blocked.sig[0];
	spin_unlock_irq(&t->sighand->siglock);
	th->sas_ss_sp = t->sas_ss_sp;
	th->sas_ss_size = t->sas_ss_size;
	th->sas_ss_flags = t->sas_ss_flags;
	get_task_comm(th->comm, t);
	wpp_pcb_rseq(t, &th->rseq, &th->rseq_sig);
	th->fpu_size = wpp_pcb_fpu(t, rs, fpu_dst, &th->fpu_format);
}

static u64 wpp_cap64(kernel_cap_t c)
{
	return c.cap[0] | (u64)c.cap[1] << 32;
}

/*
 * Everything the recreated process needs to be this user again (the
 * recreator gives it these credentials and opens its files under them).
 * Returns true when the groups do not fit: then it cannot come back.
 */
static bool wpp_pcb_cred(const struct cred *cred, struct wpp_pcb *pcb)
{
	const struct group_info *gi = cred->group_info;
	unsigned int i;

	BUILD_BUG_ON(_KERNEL_CAPABILITY_U32S != 2);
	pcb->cred_valid = 1;
	pcb->suid = from_kuid(&init_user_ns, cred->suid);
	pcb->sgid = from_kgid(&init_user_ns, cred->sgid);
	pcb->fsuid = from_kuid(&init_user_ns, cred->fsuid);
	pcb->fsgid = from_kgid(&init_user_ns, cred->fsgid);
	pcb->securebits = cred->securebits;
	pcb->cap_inheritable = wpp_cap64(cred->cap_inheritable);
	pcb->cap_permitted = wpp_cap64(cred->cap_permitted);
	pcb->cap_effective = wpp_cap64(cred->cap_effective);
	pcb->cap_bset = wpp_cap64(cred->cap_bset);
	pcb->cap_ambient = wpp_cap64(cred->cap_ambient);
	pcb->ngroups = min_t(unsigned int, gi->ngroups, WPP_PCB_GROUPS_MAX);
	for (i = 0; i < pcb->ngroups; i++)
		pcb->groups[i] = from_kgid(&init_user_ns, gi->gid[i]);
	return gi->ngroups > WPP_PCB_GROUPS_MAX;
}

/* CLOCK_MONOTONIC and CLOCK_BOOTTIME as the task sees them (its time namespace). */
static void wpp_pcb_clocks(struct task_struct *task, struct wpp_pcb *pcb)
{
	s64 mono = ktime_get_ns(), boot = ktime_get_boottime_ns();

#ifdef CONFIG_TIME_NS
	task_lock(task);
	if (task->nsproxy && task->nsproxy->time_ns) {
		const struct timens_offsets *o = &task->nsproxy->time_ns->offsets;

		mono += timespec64_to_ns(&o->monotonic);
		boot += timespec64_to_ns(&o->boottime);
	}
	task_unlock(task);
#endif
	pcb->clock_valid = 1;
	pcb->monotonic_ns = mono;
	pcb->boottime_ns = boot;
}

/* Build the PCB of the stopped task into a new buffer; *size gets its length. */
static void *wpp_pcb_build(struct task_struct *task, u64 sequence, u32 *size)
{
	struct wpp_pcb_fdcap cap = { };
	struct task_struct **tasks;
	struct wpp_pcb_regsets rs;
	struct wpp_pcb_thread *th;
	struct wpp_pcb_file *files;
	struct wpp_pcb_sigaction *sa;
	const struct cred *cred;
	unsigned int nfiles, nthreads, off, i;
	size_t cap_bytes;
	struct file *exe;
	struct path pwd;
	struct wpp_pcb *pcb;
	bool trunc = false;
	void *buf;

	wpp_pcb_find_regsets(task, &rs);
	tasks = kcalloc(WPP_PCB_THREADS_MAX, sizeof(*tasks), GFP_KERNEL);
	if (!tasks)
		return ERR_PTR(-ENOMEM);
	nthreads = wpp_pcb_collect_threads(task, tasks);

	off = ALIGN(sizeof(*pcb), 8);
	cap_bytes = off + WPP_PCB_NSIG * sizeof(*sa) +
		    WPP_PCB_FILES_MAX * (sizeof(*files) + sizeof(struct wpp_pcb_fdx)) +
		    WPP_PCB_EPITEMS_MAX * sizeof(struct wpp_pcb_epitem) +
		    (WPP_PCB_THREADS_MAX + 1) * (sizeof(*th) + ALIGN(rs.fpu_cap, 8));
	buf = kvzalloc(cap_bytes, GFP_KERNEL);
	cap.seqbuf = kvmalloc(WPP_PCB_SEQ_BUF, GFP_KERNEL);
	if (!buf) {
		pcb = ERR_PTR(-ENOMEM);
		goto out;
	}
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
	if (wpp_pcb_cred(cred, pcb))
		pcb->flags |= WPP_PCB_F_INCOMPLETE;
	put_cred(cred);
	wpp_pcb_clocks(task, pcb);
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
	wpp_pcb_regs(task, &rs, &pcb->regs, &pcb->flags);
	pcb->clear_child_tid = (unsigned long)task->clear_child_tid;
	pcb->robust_list = (unsigned long)task->robust_list;
	pcb->robust_list_len = task->robust_list ? sizeof(*task->robust_list) : 0;
	pcb->sas_ss_sp = task->sas_ss_sp;
	pcb->sas_ss_size = task->sas_ss_size;
	pcb->sas_ss_flags = task->sas_ss_flags;
	wpp_pcb_rseq(task, &pcb->rseq, &pcb->rseq_sig);

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

	/* files, then their descriptions and the epoll items (sized by the files) */
	files = buf + off;
	cap.fdx = buf + off + WPP_PCB_FILES_MAX * sizeof(*files);
	cap.ep = (void *)(cap.fdx + WPP_PCB_FILES_MAX);
	nfiles = wpp_pcb_files(task, files, &trunc, &cap);
	pcb->files_offset = off;
	pcb->files_count = nfiles;
	off += nfiles * sizeof(*files);
	if (nfiles == WPP_PCB_FILES_MAX)
		pcb->flags |= WPP_PCB_F_FILES_TRUNC;
	pcb->fdx_offset = off;
	memmove(buf + off, cap.fdx, nfiles * sizeof(*cap.fdx));
	off += nfiles * sizeof(*cap.fdx);
	pcb->epitems_offset = off;
	pcb->epitems_count = cap.nep;
	memmove(buf + off, cap.ep, cap.nep * sizeof(*cap.ep));
	off += cap.nep * sizeof(*cap.ep);
	if (cap.ep_trunc)
		pcb->flags |= WPP_PCB_F_INCOMPLETE;

	/* FPU of the main thread */
	pcb->fpu_offset = off;
	pcb->fpu_size = wpp_pcb_fpu(task, &rs, buf + off, &pcb->fpu_format);
	if (pcb->fpu_format == WPP_PCB_FPU_XSAVE && pcb->fpu_size >= 520)
		memcpy(&pcb->xfeatures, buf + off + 512, sizeof(pcb->xfeatures));
	off += ALIGN(pcb->fpu_size, 8);

	/* the other threads, then their FPU images */
	if (nthreads > WPP_PCB_THREADS_MAX) {
		pcb->flags |= WPP_PCB_F_INCOMPLETE;
		nthreads = WPP_PCB_THREADS_MAX;
	}
	if (nthreads)
		pcb->flags |= WPP_PCB_F_MULTI_THREAD;
	if (wpp_track_threads_allowed())
		pcb->flags |= WPP_PCB_F_THREADS_ALLOWED;
	th = buf + off;
	pcb->threads_offset = off;
	pcb->threads_count = nthreads;
	off += nthreads * sizeof(*th);
	for (i = 0; i < nthreads; i++) {
		wpp_pcb_thread(tasks[i], &rs, &th[i], buf + off);
		th[i].fpu_offset = off;
		off += ALIGN(th[i].fpu_size, 8);
	}

	wpp_pcb_mm(task, pcb);
	if (trunc)
		pcb->flags |= WPP_PCB_F_PATH_TRUNC;
	pcb->total_size = off;
	pcb->crc32 = 0;
	pcb->crc32 = ~crc32_le(~0U, buf, off);
	*size = off;
out:
	for (i = 0; i < min_t(unsigned int, nthreads, WPP_PCB_THREADS_MAX); i++)
		put_task_struct(tasks[i]);
	kfree(tasks);
	kvfree(cap.seqbuf);
	return pcb;
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
	pr_info("pcb of pid %d: %u bytes, %u files, %u epoll items, %u more threads%s%s\n",
		task_pid_nr(task), size, ((struct wpp_pcb *)pcb)->files_count,
		((struct wpp_pcb *)pcb)->epitems_count, ((struct wpp_pcb *)pcb)->threads_count,
		(((struct wpp_pcb *)pcb)->flags & WPP_PCB_F_INCOMPLETE) ?
		" (INCOMPLETE: too many threads or epoll items)" : "",
		ret ? " NOT written" : "");
	kvfree(pcb);
	return ret;
}
