// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_recreate.c - bring the last persisted process back (/dev/wpp-recreate).
 *
 * The recreator (kernel/tools/wpp-recreate) forks a child, with the original
 * pid when it is free (clone3 set_tid), and the child calls WPP_IOC_RECREATE.
 * The ioctl replaces the caller execve-style: a new mm is built with every
 * region at its saved address (the layout comes from the snapshot, so ASLR
 * does not matter), file-backed regions are mapped from their files, the
 * saved pages are filled in from the persistent device, and registers, FPU
 * state, fs/gs base, signal handlers and mask, open files at their offsets,
 * cwd, comm and mm layout fields are set before returning to user mode where
 * the process stopped.
 *
 * Why an ioctl and not the seed's hook in clone() keyed on the caller's
 * binary name ("recreator"): the ioctl is an explicit, permission-checked
 * interface (root-only device node) instead of a side effect of a general
 * system call on a name anyone can give a binary; it needs no core-kernel
 * change; it returns a precise errno and message to the caller on refusal;
 * and it acts on the caller only, after the caller chose the pid with the
 * standard clone3(set_tid), so fork semantics stay untouched.
 *
 * Everything that can fail is done before the caller is touched: RESTORE,
 * reading and validating the PCB, region and page lists, opening the binary,
 * every mapped and open file and the cwd, claiming the tracking slot. The new
 * mm is then built while the old one is kept: if mapping or filling fails
 * the caller gets its old mm back and sees only an error. The point of no
 * return is after the pages are in and the FPU image is accepted.
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/compat.h>
#include <linux/crc32.h>
#include <linux/cred.h>
#include <linux/elf.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/mman.h>
#include <linux/mmu_context.h>
#include <linux/memcontrol.h>
#include <linux/mutex.h>
#include <linux/namei.h>
#include <linux/refcount.h>
#include <linux/regset.h>
#include <linux/rmap.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/completion.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <linux/uaccess.h>
#include <linux/userfaultfd_k.h>
#include <linux/vmalloc.h>
#include <linux/wpp.h>
#include <asm/fpu/api.h>
#include <asm/mmu_context.h>
#include <asm/prctl.h>
#include <asm/proto.h>
#include <asm/vdso.h>
#include "wpp_internal.h"
#include "wpp_pcb.h"
#include "wpp_recreate.h"

#define RC_BATCH_PAGES	1024U	/* pages per GET_PAGES call (4 MiB) */
/*
 * The direct form's buffer: physically contiguous (the firmware writes one
 * run per call), below 4 GiB (any firmware can reach it), the largest the
 * buddy allocator gives (order 10 = 4 MiB), smaller under fragmentation.
 */
static bool rc_direct = true;
/*
 * wpp.recreate_direct=0: GET_PAGES through the mailbox only (the fallback
 * form), so that tests check both forms page by page and benches compare them.
 */
module_param_named(recreate_direct, rc_direct, bool, 0644);
MODULE_PARM_DESC(recreate_direct, "recreate: GET_PAGES straight into a kernel buffer (1) or through the mailbox (0)");

/*
 * wpp.recreate_frames=0: no GET_PAGES into the process' own new frames (the
 * frame-list form); the buffer forms above then fill the pages, through page
 * faults. For tests of every form and bench comparisons.
 */
static bool rc_frames = true;
module_param_named(recreate_frames, rc_frames, bool, 0644);
MODULE_PARM_DESC(recreate_frames, "recreate: GET_PAGES straight into the new process' frames (1) or through a buffer (0)");

/* Frames per frame-list GET_PAGES: 8 KiB of addresses in the mailbox, 4 MiB of pages. */
#define RC_FRAMES_BATCH	1024U

#define RC_DIRECT_ORDER		10U
#define RC_DIRECT_MIN_ORDER	4U

/* EFLAGS bits user mode may set (no TF/RF: no stray single-step trap). */
#define RC_USER_EFLAGS	(X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF | X86_EFLAGS_ZF | \
			 X86_EFLAGS_SF | X86_EFLAGS_DF | X86_EFLAGS_OF | X86_EFLAGS_AC | \
			 X86_EFLAGS_ID)

enum rc_kind { RC_ANON, RC_FILE, RC_VDSO, RC_VVAR };

/* fd disposition */
enum rc_fd { RC_FD_OPEN, RC_FD_INHERIT, RC_FD_CLOSED };

struct rc_ax_work {
	struct callback_head cb;
	u64 ax;
};

/* shared by the recreating ioctl and the threads it created */
struct rc_thread_ctl {
	refcount_t ref;
	struct completion go;		/* the process is complete: run, or abort */
	bool abort;
};

/* what one recreated thread loads into itself (owned by that thread) */
struct rc_thread {
	struct rc_thread_ctl *ctl;
	struct wpp_pcb_thread th;
	const struct user_regset *fpu_rs;
	void *fpu;
	struct rc_ax_work *axw;
	const struct cred *cred;	/* the process' credentials, a reference */
};

struct wpp_rc {
	u32 flags;
	char msg[WPP_RC_MSG_MAX];
	bool consumed;

	/* snapshot */
	u64 snap_seq;
	u64 npages;
	u32 nregions;
	u32 meta_len;
	void *meta;
	struct wpp_pcb *pcb;		/* &hdr once validated */
	struct wpp_pcb hdr;		/* the header, zero-extended when older/shorter */
	struct wpp_region *regions;
	struct wpp_page_mapping *plist;

	/* prepared */
	struct file *exe;
	u8 *kind;			/* enum rc_kind per region */
	struct file **rfile;		/* per region, RC_FILE only */
	struct file **ffile;		/* per pcb file */
	u8 *fdmode;			/* enum rc_fd per pcb file */
	struct path cwd;
	bool have_cwd;
	const struct user_regset *fpu_rs;
	struct rc_ax_work *axw;
	bool slot_claimed;
	struct rc_thread_ctl *tctl;	/* threads created and waiting */
	u32 threads_made;
	struct cred *cred;		/* the saved credentials, until committed */

	/* stats */
	u64 pages_written, pages_in_place, pages_zero, pages_skipped;
	u64 t_restore, t_map, t_fill, t_get;	/* t_get: GET_PAGES calls, part of t_fill */
	u64 t_threads;
};

static DEFINE_MUTEX(wpp_rc_mutex);
static char rc_path_buf[PATH_MAX];	/* under wpp_rc_mutex */

static __printf(3, 4) int rc_fail(struct wpp_rc *rc, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rc->msg, sizeof(rc->msg), fmt, ap);
	va_end(ap);
	pr_warn("recreate refused: %s (%d)\n", rc->msg, err);
	return err;
}

static struct wpp_pcb_file *rc_files(struct wpp_rc *rc)
{
	return rc->meta + rc->pcb->files_offset;
}

static struct wpp_pcb_thread *rc_threads(struct wpp_rc *rc)
{
	return rc->meta + rc->pcb->threads_offset;
}

static struct wpp_pcb_sigaction *rc_sigactions(struct wpp_rc *rc)
{
	return rc->meta + rc->pcb->sigactions_offset;
}

static bool rc_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static const char *rc_open_err(long err)
{
	if (err == -ENOENT)
		return "is missing";
	if (err == -EACCES || err == -EPERM)
		return "is not accessible to the process' user";
	return "cannot be opened";
}

/* ---- snapshot --------------------------------------------------------- */

static int rc_restore_status(struct wpp_rc *rc, int ret, s32 status)
{
	if (ret == -ETIMEDOUT || ret == -ENODEV)
		return rc_fail(rc, -ENODEV, "the WPP firmware does not answer");
	switch (status) {
	case WPP_E_NO_SNAPSHOT:
		return rc_fail(rc, -ENOMSG, "no snapshot on the persistent device");
	case WPP_E_INCOMPLETE:
		return rc_fail(rc, -ENODATA,
			       "snapshot incomplete: its completion marker is missing (power cut while persisting?)");
	case WPP_E_CORRUPT:
		return rc_fail(rc, -EBADMSG, "snapshot corrupt: a checksum does not match");
	case WPP_E_VERSION:
		return rc_fail(rc, -EPROTO,
			       "snapshot format version not supported by the firmware (it reads version %d)",
			       WPP_SNAP_FORMAT_VERSION);
	case WPP_E_CONSUMED:
		return rc_fail(rc, -EALREADY,
			       "snapshot already recreated (consumed); force to recreate it again");
	case WPP_E_NO_DEVICE:
		return rc_fail(rc, -ENODEV, "no persistent device");
	default:
		return rc_fail(rc, -EIO, "firmware RESTORE failed: status %d (%d)", status, ret);
	}
}

/* RESTORE, then read the PCB, the region list and the page list. */
static int rc_load(struct wpp_rc *rc)
{
	u32 fw_flags = 0;
	struct wpp_call c = { .event = WPP_EV_RESTORE, .p1 = &fw_flags, .len1 = sizeof(fw_flags) };
	u64 t0 = ktime_get_ns();
	int ret;

	ret = wpp_smi(&c);
	if (ret == -EIO && c.status == WPP_E_CONSUMED && (rc->flags & WPP_RC_F_FORCE)) {
		fw_flags = WPP_RESTORE_F_FORCE;
		rc->consumed = true;
		ret = wpp_smi(&c);
	}
	if (ret)
		return rc_restore_status(rc, ret, c.status);
	rc->nregions = c.result[0];
	rc->npages = c.result[1];
	rc->meta_len = c.result[2];
	rc->snap_seq = c.result[3];

	if (rc->meta_len < sizeof(struct wpp_pcb) || rc->meta_len > WPP_METADATA_SIZE)
		return rc_fail(rc, -EBADMSG, "snapshot metadata of %u bytes holds no process control block",
			       rc->meta_len);
	if (rc->nregions > WPP_REGION_SLOTS ||
	    rc->npages > WPP_PAGES_SIZE / sizeof(struct wpp_page_mapping))
		return rc_fail(rc, -EBADMSG, "snapshot counts out of range: %u regions, %llu pages",
			       rc->nregions, rc->npages);

	rc->meta = kvmalloc(rc->meta_len, GFP_KERNEL);
	rc->regions = kvmalloc_array(max(rc->nregions, 1U), sizeof(*rc->regions), GFP_KERNEL);
	rc->plist = kvmalloc_array(max_t(u64, rc->npages, 1), sizeof(*rc->plist), GFP_KERNEL);
	if (!rc->meta || !rc->regions || !rc->plist)
		return rc_fail(rc, -ENOMEM, "out of memory for the snapshot lists");
	ret = wpp_read_data(WPP_SECTION_METADATA, 0, rc->meta, rc->meta_len);
	if (!ret)
		ret = wpp_read_data(WPP_SECTION_REGIONS, 0, rc->regions,
				    rc->nregions * sizeof(*rc->regions));
	if (!ret)
		ret = wpp_read_data(WPP_SECTION_PAGES, 0, rc->plist,
				    rc->npages * sizeof(*rc->plist));
	if (ret)
		return rc_fail(rc, -EIO, "reading the restored snapshot from the firmware failed (%d)",
			       ret);
	rc->t_restore = ktime_get_ns() - t0;
	return 0;
}

/* a variable part: after the header, 8-byte aligned, inside the PCB (empty: any) */
static bool rc_part_ok(struct wpp_pcb *p, u32 off, u64 count, u32 size)
{
	if (!count)
		return true;
	return off >= p->header_size && (off & 7) == 0 &&
	       (u64)off + count * size <= p->total_size;
}

static int rc_check_pcb(struct wpp_rc *rc)
{
	struct wpp_pcb *raw = rc->meta, *p = &rc->hdr;
	u32 saved, crc, i;

	if (raw->magic != WPP_PCB_MAGIC)
		return rc_fail(rc, -EBADMSG, "no process control block in the snapshot (magic %#x)",
			       raw->magic);
	if (raw->version != WPP_PCB_VERSION || raw->header_size < WPP_PCB_HEADER_V1_SIZE ||
	    raw->header_size & 7)
		return rc_fail(rc, -EPROTO,
			       "process control block version %u (%u bytes), this kernel reads version %u (%zu bytes)",
			       raw->version, raw->header_size, WPP_PCB_VERSION, sizeof(*p));
	if (raw->total_size < raw->header_size || raw->total_size > rc->meta_len)
		return rc_fail(rc, -EBADMSG, "process control block size %u out of range (metadata %u)",
			       raw->total_size, rc->meta_len);
	saved = raw->crc32;
	raw->crc32 = 0;
	crc = ~crc32_le(~0U, rc->meta, raw->total_size);
	raw->crc32 = saved;
	if (crc != saved)
		return rc_fail(rc, -EBADMSG, "process control block corrupt: CRC %08x, expected %08x",
			       crc, saved);
	/* fields an older, shorter header lacks read as zero: no such parts */
	memset(p, 0, sizeof(*p));
	memcpy(p, raw, min_t(size_t, raw->header_size, sizeof(*p)));
	rc->pcb = p;
	if (p->abi_version != WPP_ABI_VERSION)
		return rc_fail(rc, -EPROTO, "process control block written for WPP ABI %u, this kernel has %u",
			       p->abi_version, WPP_ABI_VERSION);
	if (p->sigactions_count > WPP_PCB_NSIG ||
	    !rc_part_ok(p, p->sigactions_offset, p->sigactions_count,
			sizeof(struct wpp_pcb_sigaction)) ||
	    !rc_part_ok(p, p->files_offset, p->files_count, sizeof(struct wpp_pcb_file)) ||
	    !rc_part_ok(p, p->fpu_offset, p->fpu_size, 1) ||
	    p->auxv_count > WPP_PCB_AUXV_MAX ||
	    (p->fdx_offset &&
	     !rc_part_ok(p, p->fdx_offset, p->files_count, sizeof(struct wpp_pcb_fdx))) ||
	    p->epitems_count > WPP_PCB_EPITEMS_MAX ||
	    !rc_part_ok(p, p->epitems_offset, p->epitems_count, sizeof(struct wpp_pcb_epitem)) ||
	    p->threads_count > WPP_PCB_THREADS_MAX ||
	    !rc_part_ok(p, p->threads_offset, p->threads_count, sizeof(struct wpp_pcb_thread)))
		return rc_fail(rc, -EBADMSG, "process control block parts out of bounds");
	for (i = 0; i < p->threads_count; i++) {
		struct wpp_pcb_thread *th = &rc_threads(rc)[i];

		if (!rc_part_ok(p, th->fpu_offset, th->fpu_size, 1))
			return rc_fail(rc, -EBADMSG, "thread %d: FPU image out of bounds", th->tid);
		if (th->regs.ip >= TASK_SIZE_MAX || th->regs.fs_base >= TASK_SIZE_MAX ||
		    th->regs.gs_base >= TASK_SIZE_MAX || th->tid <= 0)
			return rc_fail(rc, -EBADMSG, "thread %d: saved registers hold kernel addresses (ip %#llx)",
				       th->tid, th->regs.ip);
		th->comm[sizeof(th->comm) - 1] = 0;
	}
	if (p->regs.ip >= TASK_SIZE_MAX || p->regs.fs_base >= TASK_SIZE_MAX ||
	    p->regs.gs_base >= TASK_SIZE_MAX)
		return rc_fail(rc, -EBADMSG, "saved registers hold kernel addresses (ip %#llx)",
			       p->regs.ip);
	p->comm[sizeof(p->comm) - 1] = 0;
	p->exe_path[sizeof(p->exe_path) - 1] = 0;
	p->cwd[sizeof(p->cwd) - 1] = 0;
	return 0;
}

static void rc_free(struct wpp_rc *rc)
{
	u32 i;

	if (rc->rfile)
		for (i = 0; i < rc->nregions; i++)
			if (rc->rfile[i])
				fput(rc->rfile[i]);
	if (rc->ffile)
		for (i = 0; i < rc->pcb->files_count; i++)
			if (rc->ffile[i])
				fput(rc->ffile[i]);
	if (rc->exe)
		fput(rc->exe);
	if (rc->have_cwd)
		path_put(&rc->cwd);
	if (rc->cred)
		put_cred(rc->cred);
	kfree(rc->axw);
	kvfree(rc->rfile);
	kvfree(rc->ffile);
	kvfree(rc->fdmode);
	kvfree(rc->kind);
	kvfree(rc->plist);
	kvfree(rc->regions);
	kvfree(rc->meta);
}

/* ---- preparation: everything that can fail, caller untouched ------------ */

static int rc_check_binary(struct wpp_rc *rc, const char __user *ubin)
{
	char *given, *real;
	int ret = 0;

	given = strndup_user(ubin, PATH_MAX);
	if (IS_ERR(given))
		return rc_fail(rc, PTR_ERR(given), "bad binary path argument");
	rc->exe = filp_open(given, O_RDONLY | O_LARGEFILE, 0);
	if (IS_ERR(rc->exe)) {
		ret = PTR_ERR(rc->exe);
		rc->exe = NULL;
		ret = rc_fail(rc, ret == -ENOENT ? -ENOEXEC : ret,
			      "wrong binary: the snapshot is of %s, and %s cannot be opened (%d)",
			      rc->pcb->exe_path, given, ret);
		goto out;
	}
	if (!S_ISREG(file_inode(rc->exe)->i_mode)) {
		ret = rc_fail(rc, -ENOEXEC, "wrong binary: the snapshot is of %s, %s is no regular file",
			      rc->pcb->exe_path, given);
		goto out;
	}
	real = d_path(&rc->exe->f_path, rc_path_buf, sizeof(rc_path_buf));
	if (IS_ERR(real) || strcmp(real, rc->pcb->exe_path)) {
		ret = rc_fail(rc, -ENOEXEC, "wrong binary: the snapshot is of %s, not %s",
			      rc->pcb->exe_path, IS_ERR(real) ? given : real);
		goto out;
	}
out:
	kfree(given);
	return ret;
}

static int rc_prepare_regions(struct wpp_rc *rc)
{
	u32 i;

	rc->kind = kvcalloc(max(rc->nregions, 1U), sizeof(*rc->kind), GFP_KERNEL);
	rc->rfile = kvcalloc(max(rc->nregions, 1U), sizeof(*rc->rfile), GFP_KERNEL);
	if (!rc->kind || !rc->rfile)
		return rc_fail(rc, -ENOMEM, "out of memory");
	for (i = 0; i < rc->nregions; i++) {
		struct wpp_region *r = &rc->regions[i];
		u64 fl = r->flags;
		char *path = r->file_path;
		struct file *f;

		path[WPP_PATH_MAX - 1] = 0;
		if ((r->virtual_address | r->length) & ~PAGE_MASK || !r->length ||
		    r->virtual_address + r->length > TASK_SIZE_MAX ||
		    r->virtual_address + r->length < r->virtual_address)
			return rc_fail(rc, -EBADMSG, "region %#llx+%#llx is not a user range",
				       r->virtual_address, r->length);
		if (fl & VM_HUGETLB)
			return rc_fail(rc, -EINVAL, "region %#llx (%s): hugetlb mappings are not supported",
				       r->virtual_address, path);
		if (!(r->state & WPP_REGION_F_FILE)) {
			if (!strcmp(path, "[vdso]"))
				rc->kind[i] = RC_VDSO;
			else if (!strcmp(path, "[vvar]"))
				rc->kind[i] = RC_VVAR;
			else
				rc->kind[i] = RC_ANON;
			if (rc->kind[i] == RC_VDSO && r->length != vdso_image_64.size)
				return rc_fail(rc, -EPROTO,
					       "the vDSO of this kernel (%lu bytes) is not the saved one (%llu bytes): recreate on the kernel that persisted",
					       vdso_image_64.size, r->length);
			continue;
		}
		/* shared anonymous memory is a shmem file named after /dev/zero */
		if ((fl & VM_SHARED) && !strcmp(path, "/dev/zero (deleted)")) {
			rc->kind[i] = RC_ANON;
			continue;
		}
		if (r->state & WPP_REGION_F_PATH_TRUNC || path[0] != '/')
			return rc_fail(rc, -ENOENT, "mapped file %s at %#llx cannot be reopened (path %s)",
				       path, r->virtual_address,
				       path[0] == '/' ? "truncated" : "not absolute");
		if (rc_ends_with(path, " (deleted)"))
			return rc_fail(rc, -ENOENT, "mapped file %s at %#llx was deleted before the power loss",
				       path, r->virtual_address);
		f = filp_open(path, ((fl & VM_SHARED) && (fl & VM_MAYWRITE) ? O_RDWR : O_RDONLY) |
			      O_LARGEFILE, 0);
		if (IS_ERR(f))
			return rc_fail(rc, PTR_ERR(f), "mapped file %s (at %#llx) %s (error %ld)",
				       path, r->virtual_address, rc_open_err(PTR_ERR(f)), -PTR_ERR(f));
		rc->kind[i] = RC_FILE;
		rc->rfile[i] = f;
	}
	return 0;
}

/*
 * fds that shared one open file (dup, 2>&1) have the same path, inode, flags
 * and offset: give them one file again, so that they keep sharing the offset.
 */
static struct file *rc_shared_file(struct wpp_rc *rc, u32 i)
{
	struct wpp_pcb_file *pf = rc_files(rc), *e = &pf[i];
	u32 j;

	for (j = 0; j < i; j++)
		if (rc->fdmode[j] == RC_FD_OPEN && pf[j].ino == e->ino &&
		    pf[j].flags == e->flags && pf[j].pos == e->pos &&
		    !strcmp(pf[j].path, e->path))
			return get_file(rc->ffile[j]);
	return NULL;
}

/*
 * Did the recreator prepare this pathless descriptor (a pipe, socket or epoll
 * instance made at the saved fd number)? Then the process gets that one.
 */
static bool rc_caller_prepared(const struct wpp_pcb_file *e)
{
	struct file *f = fget(e->fd);
	umode_t type = e->mode & S_IFMT;
	bool ok = false;

	if (!f)
		return false;
	if (type && (file_inode(f)->i_mode & S_IFMT) == type) {
		ok = true;
	} else if (!type && !strncmp(e->path, "anon_inode:", 11)) {
		char *p = d_path(&f->f_path, rc_path_buf, sizeof(rc_path_buf));

		ok = !IS_ERR(p) && !strcmp(p, e->path);
	}
	fput(f);
	return ok;
}

static int rc_prepare_files(struct wpp_rc *rc)
{
	struct wpp_pcb_file *pf = rc_files(rc);
	u32 n = rc->pcb->files_count, i;
	unsigned long nofile = rlimit(RLIMIT_NOFILE);

	rc->ffile = kvcalloc(max(n, 1U), sizeof(*rc->ffile), GFP_KERNEL);
	rc->fdmode = kvcalloc(max(n, 1U), sizeof(*rc->fdmode), GFP_KERNEL);
	if (!rc->ffile || !rc->fdmode)
		return rc_fail(rc, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		struct wpp_pcb_file *e = &pf[i];
		umode_t type = e->mode & S_IFMT;
		bool reopen;
		struct file *f;
		loff_t pos;

		e->path[WPP_PCB_PATH_MAX - 1] = 0;
		if (e->fd < 0 || e->fd >= nofile)
			return rc_fail(rc, -EMFILE, "fd %d (%s) exceeds the open-file limit %lu",
				       e->fd, e->path, nofile);
		reopen = e->path[0] == '/' && (type == S_IFREG || type == S_IFDIR ||
					       type == S_IFCHR || type == S_IFBLK);
		if (reopen && rc_ends_with(e->path, " (deleted)"))
			return rc_fail(rc, -ENOENT, "open file %s (fd %d) was deleted before the power loss",
				       e->path, e->fd);
		if (!reopen && rc_caller_prepared(e)) {
			rc->fdmode[i] = RC_FD_INHERIT;
			continue;
		}
		if (!reopen) {
			/* pipes, sockets, anon inodes the recreator did not make */
			rc->fdmode[i] = e->fd <= 2 ? RC_FD_INHERIT : RC_FD_CLOSED;
			pr_info("recreate: fd %d (%s) cannot be restored, %s\n", e->fd, e->path,
				e->fd <= 2 ? "the recreator's is kept" : "left closed");
			continue;
		}
		f = rc_shared_file(rc, i);
		if (f) {
			rc->ffile[i] = f;
			rc->fdmode[i] = RC_FD_OPEN;
			continue;
		}
		f = filp_open(e->path, (e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) |
			      O_LARGEFILE, 0);
		if (IS_ERR(f)) {
			if (type == S_IFCHR && e->fd <= 2) {
				rc->fdmode[i] = RC_FD_INHERIT;
				pr_info("recreate: fd %d (%s) cannot be reopened (%ld), the recreator's is kept\n",
					e->fd, e->path, PTR_ERR(f));
				continue;
			}
			return rc_fail(rc, PTR_ERR(f), "open file %s (fd %d) %s (error %ld)",
				       e->path, e->fd, rc_open_err(PTR_ERR(f)), -PTR_ERR(f));
		}
		rc->ffile[i] = f;
		rc->fdmode[i] = RC_FD_OPEN;
		if (type == S_IFREG || type == S_IFBLK) {
			pos = vfs_llseek(f, e->pos, SEEK_SET);
			if (pos != e->pos)
				return rc_fail(rc, pos < 0 ? (int)pos : -EIO,
					       "open file %s (fd %d): cannot seek to offset %llu",
					       e->path, e->fd, e->pos);
		}
		if (file_inode(f)->i_ino != e->ino)
			pr_info("recreate: %s (fd %d) is inode %lu now, was %llu\n", e->path, e->fd,
				file_inode(f)->i_ino, e->ino);
	}
	return 0;
}

static const struct user_regset *rc_find_regset(unsigned int note)
{
	const struct user_regset_view *view = task_user_regset_view(current);
	unsigned int i;

	for (i = 0; i < view->n; i++)
		if (view->regsets[i].core_note_type == note)
			return &view->regsets[i];
	return NULL;
}

static int rc_prepare_fpu(struct wpp_rc *rc)
{
	struct wpp_pcb *p = rc->pcb;
	unsigned int note, size;

	if (p->fpu_format == WPP_PCB_FPU_NONE)
		return 0;
	note = p->fpu_format == WPP_PCB_FPU_XSAVE ? NT_X86_XSTATE : NT_PRFPREG;
	if (p->fpu_format != WPP_PCB_FPU_XSAVE && p->fpu_format != WPP_PCB_FPU_FXSAVE)
		return rc_fail(rc, -EPROTO, "unknown FPU state format %u", p->fpu_format);
	rc->fpu_rs = rc_find_regset(note);
	size = rc->fpu_rs ? rc->fpu_rs->n * rc->fpu_rs->size : 0;
	if (!rc->fpu_rs || !rc->fpu_rs->set || size != p->fpu_size)
		return rc_fail(rc, -EPROTO,
			       "saved FPU state (%s, %u bytes) does not fit this CPU (%u bytes)",
			       note == NT_X86_XSTATE ? "XSAVE" : "FXSAVE", p->fpu_size, size);
	return 0;
}

static int rc_check_caller(struct wpp_rc *rc)
{
	struct task_struct *t = current;

	if (!t->mm || (t->flags & PF_KTHREAD))
		return rc_fail(rc, -EINVAL, "the caller has no user address space");
	if (in_compat_syscall())
		return rc_fail(rc, -EINVAL, "the caller must be a 64-bit process");
	if (get_nr_threads(t) != 1)
		return rc_fail(rc, -EINVAL, "the caller must be single-threaded");
	if (atomic_read(&t->files->count) != 1 || refcount_read(&t->sighand->count) != 1 ||
	    t->fs->users != 1)
		return rc_fail(rc, -EINVAL,
			       "the caller shares its files, fs or signal handlers (fork it without CLONE_FILES/FS/SIGHAND)");
	if (t->wpp_persist)
		return rc_fail(rc, -EINVAL, "the caller is itself tracked");
	return 0;
}

/* ---- the new mm ------------------------------------------------------- */

/* exec_mmap() without the release of the old mm: the caller keeps it. */
static int rc_switch_mm(struct mm_struct *mm, struct mm_struct **oldp, bool first)
{
	struct task_struct *tsk = current;
	struct mm_struct *old_mm = tsk->mm, *active_mm;
	int ret;

	/* killable on the way in only: the way back must not fail */
	if (first) {
		ret = down_write_killable(&tsk->signal->exec_update_lock);
		if (ret)
			return ret;
		ret = mmap_read_lock_killable(old_mm);
		if (ret) {
			up_write(&tsk->signal->exec_update_lock);
			return ret;
		}
	} else {
		down_write(&tsk->signal->exec_update_lock);
		mmap_read_lock(old_mm);
	}
	/*
	 * As exec_mmap(): the RSS events this task cached for the mm it leaves
	 * (SPLIT_RSS_COUNTING batches up to 64) go to that mm now, not to the
	 * next one ("BUG: Bad rss-counter state ... MM_SHMEMPAGES val:-63").
	 */
	sync_mm_rss(old_mm);
	task_lock(tsk);
	membarrier_exec_mmap(mm);
	local_irq_disable();
	active_mm = tsk->active_mm;
	tsk->active_mm = mm;
	tsk->mm = mm;
	if (!IS_ENABLED(CONFIG_ARCH_WANT_IRQS_OFF_ACTIVATE_MM))
		local_irq_enable();
	activate_mm(active_mm, mm);
	if (IS_ENABLED(CONFIG_ARCH_WANT_IRQS_OFF_ACTIVATE_MM))
		local_irq_enable();
	if (first)
		lru_gen_add_mm(mm);
	task_unlock(tsk);
	lru_gen_use_mm(mm);
	mmap_read_unlock(old_mm);
	up_write(&tsk->signal->exec_update_lock);
	*oldp = old_mm;
	return 0;
}

static unsigned long rc_map_flags(u64 vm_flags)
{
	unsigned long f = MAP_FIXED_NOREPLACE;

	f |= (vm_flags & VM_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (vm_flags & VM_GROWSDOWN)
		f |= MAP_GROWSDOWN;
	if (vm_flags & VM_NORESERVE)
		f |= MAP_NORESERVE;
	return f;
}

static int rc_map_regions(struct wpp_rc *rc, struct mm_struct *mm)
{
	u64 vvar = 0, vdso = 0;
	u32 i;

	for (i = 0; i < rc->nregions; i++) {
		if (rc->kind[i] == RC_VVAR)
			vvar = rc->regions[i].virtual_address;
		else if (rc->kind[i] == RC_VDSO)
			vdso = rc->regions[i].virtual_address;
	}
	/* first, so that no other region can take its place */
	if (vdso) {
		int ret = vvar ? map_vdso_once(&vdso_image_64, vvar) : -ENOENT;

		if (ret || (unsigned long)mm->context.vdso != vdso)
			return rc_fail(rc, ret ?: -EFAULT,
				       "cannot place the vDSO at %#llx (vvar %#llx): %d", vdso, vvar, ret);
	}
	for (i = 0; i < rc->nregions; i++) {
		struct wpp_region *r = &rc->regions[i];
		unsigned long prot = r->protection & (PROT_READ | PROT_WRITE | PROT_EXEC);
		unsigned long flags = rc_map_flags(r->flags), addr;

		switch (rc->kind[i]) {
		case RC_FILE:
			addr = vm_mmap(rc->rfile[i], r->virtual_address, r->length, prot, flags,
				       r->file_offset);
			break;
		case RC_ANON:
			addr = vm_mmap(NULL, r->virtual_address, r->length, prot,
				       flags | MAP_ANONYMOUS, 0);
			break;
		default:
			continue;
		}
		if (IS_ERR_VALUE(addr) || addr != r->virtual_address)
			return rc_fail(rc, IS_ERR_VALUE(addr) ? (int)addr : -EFAULT,
				       "cannot map region %#llx+%#llx (%s): %ld", r->virtual_address,
				       r->length, r->file_path[0] ? r->file_path : "anonymous",
				       (long)addr);
	}

	mmap_write_lock(mm);
	mm->start_code = rc->pcb->start_code;
	mm->end_code = rc->pcb->end_code;
	mm->start_data = rc->pcb->start_data;
	mm->end_data = rc->pcb->end_data;
	mm->start_brk = rc->pcb->start_brk;
	mm->brk = rc->pcb->brk;
	mm->start_stack = rc->pcb->start_stack;
	mm->arg_start = rc->pcb->arg_start;
	mm->arg_end = rc->pcb->arg_end;
	mm->env_start = rc->pcb->env_start;
	mm->env_end = rc->pcb->env_end;
	memset(mm->saved_auxv, 0, sizeof(mm->saved_auxv));
	memcpy(mm->saved_auxv, rc->pcb->auxv,
	       min_t(size_t, sizeof(mm->saved_auxv) - 2 * sizeof(mm->saved_auxv[0]),
		     rc->pcb->auxv_count * sizeof(u64)));
	mmap_write_unlock(mm);
	return 0;
}

/* Index of the region holding va, or -1. Regions are kept sorted by address. */
static int rc_region_of(struct wpp_rc *rc, u64 va)
{
	int lo = 0, hi = rc->nregions;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		struct wpp_region *r = &rc->regions[mid];

		if (r->virtual_address + r->length <= va)
			lo = mid + 1;
		else if (r->virtual_address > va)
			hi = mid;
		else
			return mid;
	}
	return -1;
}

static void rc_sort_regions(struct wpp_rc *rc)
{
	u32 i, j;

	/* insertion sort: the firmware keeps them nearly sorted, n is small */
	for (i = 1; i < rc->nregions; i++) {
		struct wpp_region tmp = rc->regions[i];

		for (j = i; j > 0 && rc->regions[j - 1].virtual_address > tmp.virtual_address; j--)
			rc->regions[j] = rc->regions[j - 1];
		rc->regions[j] = tmp;
	}
}

#ifdef CONFIG_USERFAULTFD
/* The page-table page for va in mm, allocated on the way; NULL: no memory. */
static pmd_t *rc_pmd_alloc(struct mm_struct *mm, unsigned long va)
{
	pgd_t *pgd = pgd_offset(mm, va);
	p4d_t *p4d = p4d_alloc(mm, pgd, va);
	pud_t *pud = p4d ? pud_alloc(mm, p4d, va) : NULL;
	pmd_t *pmd = pud ? pmd_alloc(mm, pud, va) : NULL;

	if (!pmd || pmd_trans_huge(*pmd) || pmd_devmap(*pmd))
		return NULL;
	if (unlikely(pmd_none(*pmd)) && __pte_alloc(mm, pmd))
		return NULL;
	return pmd;
}

/*
 * Map pg, a new frame already holding the page's bytes, at va of a private
 * mapping, the way userfaultfd's UFFDIO_COPY maps a filled page (its helper:
 * anon rmap, LRU, memcg, RSS). No page fault zeroes a frame first and no
 * buffer is copied: the firmware wrote the frame. Only where nothing is
 * mapped yet (every page of a new mm). True: pg now belongs to the mm; false:
 * the caller still owns it and writes the page the ordinary way.
 */
static bool rc_map_frame(struct mm_struct *mm, u64 va, struct page *pg)
{
	struct vm_area_struct *vma;
	bool done = false;
	pmd_t *pmd;

	mmap_read_lock(mm);
	vma = vma_lookup(mm, va);
	if (!vma || (vma->vm_flags & (VM_SHARED | VM_PFNMAP | VM_MIXEDMAP | VM_HUGETLB)) ||
	    unlikely(anon_vma_prepare(vma)))
		goto out;
	pmd = rc_pmd_alloc(mm, va);
	if (!pmd)
		goto out;
	__SetPageUptodate(pg);	/* orders the frame's bytes before the pte */
	if (mem_cgroup_charge(page_folio(pg), mm, GFP_KERNEL))
		goto out;
	done = !mfill_atomic_install_pte(mm, pmd, vma, va, pg, true, false);
out:
	mmap_read_unlock(mm);
	return done;
}
#else
static bool rc_map_frame(struct mm_struct *mm, u64 va, struct page *pg)
{
	return false;
}
#endif

/*
 * One page of the snapshot into the new mm: skipped (vDSO, [vvar], shared
 * file mappings), left to the zero page (an all-zero private anonymous page),
 * its frame mapped as it is (frame: the firmware wrote the page into it;
 * private mappings), else a plain copy into the (current) new mm when
 * writable, else a forced write like ptrace's, which breaks COW of read-only
 * private maps. A frame not mapped is freed.
 */
static int rc_fill_one(struct wpp_rc *rc, struct mm_struct *mm, u64 idx, u8 *page,
		       struct page *frame)
{
	u64 va = rc->plist[idx].virtual_address & PAGE_MASK;
	int r = rc_region_of(rc, va);
	u8 kind = r < 0 ? RC_VVAR : rc->kind[r];
	int ret = 0;

	if (kind == RC_VDSO || kind == RC_VVAR ||
	    (kind == RC_FILE && (rc->regions[r].flags & VM_SHARED))) {
		rc->pages_skipped++;
	} else if (kind == RC_ANON && !(rc->regions[r].flags & VM_SHARED) &&
		   !memchr_inv(page, 0, PAGE_SIZE)) {
		rc->pages_zero++;
	} else if (frame && rc_map_frame(mm, va, frame)) {
		rc->pages_written++;
		rc->pages_in_place++;
		return 0;
	} else if (kind == RC_ANON && (rc->regions[r].flags & VM_WRITE) &&
		   !copy_to_user((void __user *)(unsigned long)va, page, PAGE_SIZE)) {
		rc->pages_written++;
	} else if (access_remote_vm(mm, va, page, PAGE_SIZE, FOLL_FORCE | FOLL_WRITE) ==
		   PAGE_SIZE) {
		rc->pages_written++;
	} else {
		ret = rc_fail(rc, -EFAULT, "cannot fill page %#llx", va);
	}
	if (frame)
		put_page(frame);	/* uncharges it too if rc_map_frame() charged it */
	return ret;
}

/*
 * A frame for one page: below 4 GiB while there is room (a 32-bit SMM
 * handler reaches it without moving its window onto high RAM, which under
 * TCG flushes the whole TLB per frame), else anywhere.
 */
static struct page *rc_frame_alloc(void)
{
	struct page *pg = alloc_page(((GFP_HIGHUSER_MOVABLE & ~__GFP_HIGHMEM) | __GFP_DMA32 |
				      __GFP_NOWARN | __GFP_NORETRY) & ~__GFP_DIRECT_RECLAIM);

	return pg ? pg : alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN);
}

static int rc_cmp_pfn(const void *a, const void *b)
{
	unsigned long x = page_to_pfn(*(struct page * const *)a);
	unsigned long y = page_to_pfn(*(struct page * const *)b);

	return x < y ? -1 : x > y;
}

/*
 * The frame-list form of GET_PAGES: a new frame per page, the firmware writes
 * each page into its frame, the frame is mapped as it is. Returns the number
 * of pages done: fewer than npages when the firmware refuses a frame
 * (BAD_ADDR: an older firmware, or a frame it cannot reach), and the caller
 * fills the rest through a buffer; *ret is set on any other failure.
 */
static u64 rc_fill_frames(struct wpp_rc *rc, struct mm_struct *mm, int *ret)
{
	struct page **pg = kvmalloc_array(RC_FRAMES_BATCH, sizeof(*pg), GFP_KERNEL);
	u64 *frames = kvmalloc_array(RC_FRAMES_BATCH, sizeof(*frames), GFP_KERNEL);
	u64 i = 0;
	u32 j, n;

	*ret = 0;
	if (!pg || !frames)
		goto out;
	for (; i < rc->npages && !*ret; i += n) {
		struct wpp_get_pages g = { .index = i, .dest_phys = WPP_GET_PAGES_FRAMES };
		struct wpp_call c = {
			.event = WPP_EV_GET_PAGES, .p1 = &g, .len1 = sizeof(g), .p2 = frames,
		};
		u64 tg;

		n = min_t(u64, RC_FRAMES_BATCH, rc->npages - i);
		for (j = 0; j < n; j++) {
			pg[j] = rc_frame_alloc();
			if (!pg[j])
				break;
		}
		if (j < n) {
			*ret = rc_fail(rc, -ENOMEM, "out of memory for the pages");
			n = j;
			goto free_batch;
		}
		/*
		 * Any frame can take any page: in address order, neighbouring
		 * frames go in one transfer and a firmware that maps high RAM
		 * through a window moves it less often.
		 */
		sort(pg, n, sizeof(*pg), rc_cmp_pfn, NULL);
		for (j = 0; j < n; j++)
			frames[j] = PFN_PHYS(page_to_pfn(pg[j]));
		g.count = n;
		c.len2 = n * sizeof(*frames);
		tg = ktime_get_ns();
		*ret = wpp_smi(&c);
		rc->t_get += ktime_get_ns() - tg;
		if (*ret && c.status == WPP_E_BAD_ADDR) {
			pr_info("recreate: the firmware refused GET_PAGES into the process' frames (bad_addr) at page %llu: the rest through a buffer\n",
				i);
			*ret = 0;
			goto free_batch;
		}
		if (*ret) {
			*ret = rc_fail(rc, -EIO, "GET_PAGES of pages %llu..%llu failed: firmware status %d",
				       i, i + n - 1, c.status);
			goto free_batch;
		}
		for (j = 0; j < n; j++) {
			int r = rc_fill_one(rc, mm, i + j, page_address(pg[j]), pg[j]);

			if (r && !*ret)
				*ret = r;
		}
		cond_resched();
	}
	goto out;
free_batch:
	for (j = 0; j < n; j++)
		put_page(pg[j]);
out:
	if ((!pg || !frames) && !*ret)
		pr_info("recreate: no memory for a frame list: pages through a buffer\n");
	kvfree(pg);
	kvfree(frames);
	return i;
}

/* A physically contiguous buffer below 4 GiB for the direct form, or NULL. */
static struct page *rc_direct_alloc(unsigned int *order)
{
	unsigned int o;

	for (o = RC_DIRECT_ORDER; o >= RC_DIRECT_MIN_ORDER; o--) {
		struct page *pg = alloc_pages(GFP_KERNEL | __GFP_DMA32 | __GFP_NOWARN |
					      __GFP_NORETRY, o);

		if (pg) {
			*order = o;
			return pg;
		}
	}
	return NULL;
}

/*
 * Pages from index `from` on into the new mm through a buffer, each written
 * by a page fault and a copy. GET_PAGES' direct form (dest_phys)
 * has the firmware write each batch straight into a contiguous kernel buffer
 * (the persistent device's DMA), so a page is copied once, into the process;
 * through the mailbox it was copied twice (mailbox -> buffer -> process) and
 * a batch was bounded by the mailbox. A firmware that refuses the buffer's
 * address (BAD_ADDR: an older one, or a platform that cannot write there) or
 * no contiguous memory: the mailbox form, said once in the log. The snapshot's
 * page CRC was checked by RESTORE either way.
 */
static int rc_fill_buffered(struct wpp_rc *rc, struct mm_struct *mm, u64 from)
{
	unsigned int order = 0;
	bool want = READ_ONCE(rc_direct);
	struct page *direct = want ? rc_direct_alloc(&order) : NULL;
	u32 batch = direct ? 1U << order : RC_BATCH_PAGES;
	u8 *buf = direct ? page_address(direct) : NULL;
	u8 *mbuf = NULL;
	u64 i;
	int ret = 0;

	if (from >= rc->npages)
		goto out;
	if (!direct) {
		pr_info("recreate: %s: pages through the mailbox\n",
			want ? "no contiguous buffer below 4 GiB" : "recreate_direct=0");
		mbuf = kvmalloc(RC_BATCH_PAGES * PAGE_SIZE, GFP_KERNEL);
		if (!mbuf) {
			ret = rc_fail(rc, -ENOMEM, "out of memory for the page buffer");
			goto out;
		}
		buf = mbuf;
	}
	for (i = from; i < rc->npages && !ret; ) {
		u32 n = min_t(u64, batch, rc->npages - i), j;
		struct wpp_get_pages g = { .index = i, .count = n };
		struct wpp_call c = {
			.event = WPP_EV_GET_PAGES, .p1 = &g, .len1 = sizeof(g),
		};
		u64 tg = ktime_get_ns();

		if (direct) {
			g.dest_phys = PFN_PHYS(page_to_pfn(direct));
		} else {
			c.out = buf;
			c.out_off = sizeof(g);
			c.out_len = n * PAGE_SIZE;
		}
		ret = wpp_smi(&c);
		rc->t_get += ktime_get_ns() - tg;
		if (ret && direct && c.status == WPP_E_BAD_ADDR) {
			pr_info("recreate: the firmware refused GET_PAGES into %#llx (bad_addr): pages through the mailbox\n",
				(u64)PFN_PHYS(page_to_pfn(direct)));
			__free_pages(direct, order);
			direct = NULL;
			batch = RC_BATCH_PAGES;
			mbuf = kvmalloc(RC_BATCH_PAGES * PAGE_SIZE, GFP_KERNEL);
			if (!mbuf) {
				ret = rc_fail(rc, -ENOMEM, "out of memory for the page buffer");
				break;
			}
			buf = mbuf;
			ret = 0;
			continue;	/* the same batch again, through the mailbox */
		}
		if (ret) {
			ret = rc_fail(rc, -EIO, "GET_PAGES of pages %llu..%llu failed: firmware status %d",
				      i, i + n - 1, c.status);
			break;
		}
		for (j = 0; j < n && !ret; j++)
			ret = rc_fill_one(rc, mm, i + j, buf + (size_t)j * PAGE_SIZE, NULL);
		i += n;
		cond_resched();
	}
out:
	if (direct)
		__free_pages(direct, order);
	kvfree(mbuf);
	return ret;
}

/*
 * The snapshot's pages into the new mm: into the process' own new frames
 * (frame-list GET_PAGES), or what remains of them through a buffer when the
 * firmware refuses that form. RESTORE has checked the page area's CRC before.
 */
static int rc_fill_pages(struct wpp_rc *rc, struct mm_struct *mm)
{
	u64 done = 0;
	int ret = 0;

	if (READ_ONCE(rc_frames) && rc->npages)
		done = rc_fill_frames(rc, mm, &ret);
	if (ret || done >= rc->npages)
		return ret;
	return rc_fill_buffered(rc, mm, done);
}

/* Load the FPU image into current's fpstate; on error nothing is changed. */
static int rc_set_fpu(struct wpp_rc *rc)
{
	struct wpp_pcb *p = rc->pcb;

	if (!rc->fpu_rs)
		return 0;
	/*
	 * Save the live registers into fpstate and mark them stale
	 * (TIF_NEED_FPU_LOAD): from here on fpstate is the truth and is
	 * loaded into the registers on the way back to user mode.
	 */
	kernel_fpu_begin();
	kernel_fpu_end();
	return rc->fpu_rs->set(current, rc->fpu_rs, 0, p->fpu_size, rc->meta + p->fpu_offset,
			       NULL);
}

/* ---- after the point of no return ------------------------------------- */

/*
 * The syscall return path stores the handler's return value into regs->ax
 * after the handler, and sys_ioctl() truncates it to int: a 64-bit ax cannot
 * be returned. A task work runs after that store (exit_to_user_mode_loop,
 * and before any signal frame is set up: get_signal() runs task works
 * first), so it sets ax.
 */
static void rc_set_ax(struct callback_head *cb)
{
	struct rc_ax_work *w = container_of(cb, struct rc_ax_work, cb);

	task_pt_regs(current)->ax = w->ax;
	kfree(w);
}

/*
 * Load saved user registers into current's pt_regs (syscall-restart rule
 * applied) and fs/gs base; axw (consumed) sets ax on the way out.
 */
static void rc_load_regs(const struct wpp_pcb_regs *s, u32 pcb_flags, struct rc_ax_work **axw)
{
	struct pt_regs *regs = task_pt_regs(current);
	u64 ax = s->ax, ip = s->ip;

	if (pcb_flags & WPP_PCB_F_IN_SYSCALL) {
		switch ((long)s->ax) {
		case -ERESTARTSYS:
		case -ERESTARTNOINTR:
		case -ERESTARTNOHAND:
		case -ERESTART_RESTARTBLOCK:	/* restart block lost: the call restarts whole */
			ax = s->orig_ax;
			ip -= 2;
			break;
		}
	}
	regs->r15 = s->r15;
	regs->r14 = s->r14;
	regs->r13 = s->r13;
	regs->r12 = s->r12;
	regs->bp = s->bp;
	regs->bx = s->bx;
	regs->r11 = s->r11;
	regs->r10 = s->r10;
	regs->r9 = s->r9;
	regs->r8 = s->r8;
	regs->cx = s->cx;
	regs->dx = s->dx;
	regs->si = s->si;
	regs->di = s->di;
	regs->ip = ip;
	regs->sp = s->sp;
	regs->flags = (regs->flags & ~RC_USER_EFLAGS) | (s->flags & RC_USER_EFLAGS) | X86_EFLAGS_IF;
	regs->cs = __USER_CS;
	regs->ss = __USER_DS;
	regs->orig_ax = -1;	/* no syscall-restart handling of the ioctl's own return */
	regs->ax = ax;
	(*axw)->ax = ax;
	init_task_work(&(*axw)->cb, rc_set_ax);
	if (!task_work_add(current, &(*axw)->cb, TWA_RESUME))
		*axw = NULL;

	do_arch_prctl_64(current, ARCH_SET_FS, s->fs_base);
	do_arch_prctl_64(current, ARCH_SET_GS, s->gs_base);
}

static void rc_set_regs(struct wpp_rc *rc)
{
	rc_load_regs(&rc->pcb->regs, rc->pcb->flags, &rc->axw);
}

/* current's sigaltstack as saved (flags: the kernel keeps SS_AUTODISARM only) */
static void rc_set_altstack(u64 sp, u64 size, u32 flags)
{
	struct task_struct *t = current;

	if (size && !(flags & SS_DISABLE) && sp < TASK_SIZE_MAX) {
		t->sas_ss_sp = sp;
		t->sas_ss_size = size;
		t->sas_ss_flags = flags & SS_AUTODISARM;
	} else {
		t->sas_ss_sp = 0;
		t->sas_ss_size = 0;
		t->sas_ss_flags = SS_DISABLE;
	}
}

/*
 * current's rseq() registration as saved: the area is in the restored memory
 * (glibc's per-thread TCB), the kernel refreshes its cpu id before user mode
 */
static void rc_set_rseq(u64 rseq, u32 sig)
{
#ifdef CONFIG_RSEQ
	if (!rseq || rseq >= TASK_SIZE_MAX || !IS_ALIGNED(rseq, 32))
		return;
	current->rseq = (struct rseq __user *)(unsigned long)rseq;
	current->rseq_sig = sig;
	rseq_set_notify_resume(current);
#endif
}

/* ---- threads ------------------------------------------------------------ */

static void rc_ctl_put(struct rc_thread_ctl *ctl)
{
	if (refcount_dec_and_test(&ctl->ref))
		kfree(ctl);
}

static void rc_thread_free(struct rc_thread *rt)
{
	if (rt->cred)
		put_cred(rt->cred);
	kfree(rt->axw);
	kfree(rt->fpu);
	kfree(rt);
}

static void rc_load_fpu(const struct user_regset *rs, const void *img, u32 size)
{
	int ret;

	if (!rs || !size)
		return;
	kernel_fpu_begin();	/* live registers to fpstate: fpstate is the truth now */
	kernel_fpu_end();
	ret = rs->set(current, rs, 0, size, img, NULL);
	if (ret)
		pr_warn("recreate: tid %d: saved FPU state not accepted (%d), it starts with a clean FPU\n",
			task_pid_nr(current), ret);
}

/*
 * The first code a recreated thread runs, in kernel mode in its own context
 * (kernel_clone() with args.fn, like user_mode_thread()). It waits until the
 * whole process is restored (files, signal handlers, tracking), then loads
 * its own registers, FPU, fs/gs base, signal mask, clear_child_tid, robust
 * list, sigaltstack and name, and returns to user mode where it stopped
 * (ret_from_fork zeroes ax after this returns: the task work sets it).
 */
static int rc_thread_fn(void *arg)
{
	struct rc_thread *rt = arg;
	struct rc_thread_ctl *ctl = rt->ctl;
	const struct wpp_pcb_thread *th = &rt->th;
	unsigned long never = sigmask(SIGKILL) | sigmask(SIGSTOP);
	struct task_struct *t = current;
	sigset_t blocked;
	bool abort;

	wait_for_completion(&ctl->go);
	abort = READ_ONCE(ctl->abort);
	rc_ctl_put(ctl);
	if (abort) {
		rc_thread_free(rt);
		do_exit(0);
	}
	commit_creds((struct cred *)rt->cred);	/* consumes the reference */
	rt->cred = NULL;
	set_dumpable(t->mm, SUID_DUMP_USER);
	rc_load_regs(&th->regs, th->flags, &rt->axw);
	rc_load_fpu(rt->fpu_rs, rt->fpu, th->fpu_size);
	siginitset(&blocked, th->sig_blocked & ~never);
	set_current_blocked(&blocked);
	t->clear_child_tid = (int __user *)(unsigned long)th->clear_child_tid;
	t->robust_list = (struct robust_list_head __user *)(unsigned long)th->robust_list;
	rc_set_altstack(th->sas_ss_sp, th->sas_ss_size, th->sas_ss_flags);
	__set_task_comm(t, th->comm, false);
	rc_set_rseq(th->rseq, th->rseq_sig);
	rc_thread_free(rt);
	return 0;
}

static kernel_cap_t rc_cap(u64 v)
{
	kernel_cap_t c = { };

	c.cap[0] = (u32)v;
	c.cap[1] = (u32)(v >> 32);
	return c;
}

/*
 * The credentials the process had: its uids, gids, supplementary groups and
 * capabilities (an older PCB has only uid, gid, euid and egid: then the
 * saved ids follow the effective ones, no groups, and no capabilities
 * unless it ran as root). Its files are opened under them and it gets them
 * at the point of no return: never root's unless it was root.
 */
static int rc_make_cred(struct wpp_rc *rc)
{
	const struct wpp_pcb *p = rc->pcb;
	struct group_info *gi;
	struct cred *new;
	u32 i, ngroups = p->cred_valid ? p->ngroups : 0;
	bool root = !p->uid && !p->euid;

	if (ngroups > WPP_PCB_GROUPS_MAX)
		return rc_fail(rc, -EBADMSG, "process control block corrupt: %u groups", ngroups);
	new = prepare_creds();
	gi = groups_alloc(ngroups);
	if (!new || !gi) {
		if (new)
			abort_creds(new);
		if (gi)
			put_group_info(gi);
		return rc_fail(rc, -ENOMEM, "out of memory for the credentials");
	}
	new->uid = make_kuid(&init_user_ns, p->uid);
	new->gid = make_kgid(&init_user_ns, p->gid);
	new->euid = make_kuid(&init_user_ns, p->euid);
	new->egid = make_kgid(&init_user_ns, p->egid);
	new->suid = make_kuid(&init_user_ns, p->cred_valid ? p->suid : p->euid);
	new->sgid = make_kgid(&init_user_ns, p->cred_valid ? p->sgid : p->egid);
	new->fsuid = make_kuid(&init_user_ns, p->cred_valid ? p->fsuid : p->euid);
	new->fsgid = make_kgid(&init_user_ns, p->cred_valid ? p->fsgid : p->egid);
	for (i = 0; i < ngroups; i++)
		gi->gid[i] = make_kgid(&init_user_ns, p->groups[i]);
	groups_sort(gi);
	set_groups(new, gi);
	put_group_info(gi);
	if (p->cred_valid) {
		new->securebits = p->securebits;
		new->cap_inheritable = rc_cap(p->cap_inheritable);
		new->cap_permitted = rc_cap(p->cap_permitted);
		new->cap_effective = rc_cap(p->cap_effective);
		new->cap_bset = rc_cap(p->cap_bset);
		new->cap_ambient = rc_cap(p->cap_ambient);
	} else if (!root) {
		cap_clear(new->cap_inheritable);
		cap_clear(new->cap_permitted);
		cap_clear(new->cap_effective);
		cap_clear(new->cap_ambient);
	}
	if (!uid_valid(new->uid) || !uid_valid(new->euid) || !uid_valid(new->suid) ||
	    !uid_valid(new->fsuid) || !gid_valid(new->gid) || !gid_valid(new->egid) ||
	    !gid_valid(new->sgid) || !gid_valid(new->fsgid)) {
		abort_creds(new);
		return rc_fail(rc, -EBADMSG, "process control block corrupt: invalid uid/gid");
	}
	for (i = 0; i < ngroups; i++) {
		if (!gid_valid(gi->gid[i])) {
			abort_creds(new);
			return rc_fail(rc, -EBADMSG, "process control block corrupt: invalid group");
		}
	}
	rc->cred = new;
	return 0;
}

/* Refuse a multi-threaded snapshot that cannot come back whole. */
static int rc_check_threads(struct wpp_rc *rc)
{
	struct wpp_pcb *p = rc->pcb;
	u32 i;

	if (p->flags & WPP_PCB_F_INCOMPLETE)
		return rc_fail(rc, -EOPNOTSUPP,
			       "pid %d had more threads (max %d) or epoll registrations (max %d) than the snapshot holds",
			       p->pid, WPP_PCB_THREADS_MAX, WPP_PCB_EPITEMS_MAX);
	/*
	 * No wpp.allow_threads check here: the policy belongs to the time the
	 * process was tracked (threads could exist only if it allowed them) and
	 * comes back with it.
	 */
	if (!p->threads_count)
		return 0;
	for (i = 0; i < p->threads_count; i++) {
		struct wpp_pcb_thread *th = &rc_threads(rc)[i];
		struct task_struct *o;
		char comm[TASK_COMM_LEN] = "";

		if (th->fpu_size && th->fpu_size != p->fpu_size)
			return rc_fail(rc, -EPROTO, "thread %d: FPU image of %u bytes, the process' is %u",
				       th->tid, th->fpu_size, p->fpu_size);
		rcu_read_lock();
		o = find_task_by_pid_ns(th->tid, &init_pid_ns);
		if (o)
			get_task_comm(comm, o);
		rcu_read_unlock();
		if (o)
			return rc_fail(rc, -EEXIST, "thread id %d of pid %d is in use by %s",
				       th->tid, p->pid, comm);
	}
	return 0;
}

static struct rc_thread *rc_thread_alloc(struct wpp_rc *rc, struct wpp_pcb_thread *th)
{
	struct rc_thread *rt = kzalloc(sizeof(*rt), GFP_KERNEL);

	if (!rt)
		return NULL;
	rt->th = *th;
	rt->cred = get_cred(rc->cred);
	rt->axw = kzalloc(sizeof(*rt->axw), GFP_KERNEL);
	if (th->fpu_size && th->fpu_format == rc->pcb->fpu_format) {
		rt->fpu_rs = rc->fpu_rs;
		rt->fpu = kmemdup(rc->meta + th->fpu_offset, th->fpu_size, GFP_KERNEL);
	}
	if (!rt->axw || (rt->fpu_rs && !rt->fpu)) {
		rc_thread_free(rt);
		return NULL;
	}
	return rt;
}

/*
 * Create every saved thread with its tid, sharing the new mm; each waits in
 * rc_thread_fn() until rc_threads_go(). Before the point of no return: on
 * failure the ones made are told to exit.
 */
static int rc_make_threads(struct wpp_rc *rc)
{
	u32 i, n = rc->pcb->threads_count;
	u64 t0 = ktime_get_ns();

	if (!n)
		return 0;
	rc->tctl = kzalloc(sizeof(*rc->tctl), GFP_KERNEL);
	if (!rc->tctl)
		return rc_fail(rc, -ENOMEM, "out of memory for the threads");
	refcount_set(&rc->tctl->ref, 1);
	init_completion(&rc->tctl->go);
	for (i = 0; i < n; i++) {
		struct wpp_pcb_thread *th = &rc_threads(rc)[i];
		pid_t tid = th->tid;
		struct kernel_clone_args args = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
				 CLONE_THREAD | CLONE_SYSVSEM,
			.set_tid = &tid,
			.set_tid_size = 1,
			.fn = rc_thread_fn,
		};
		struct rc_thread *rt = rc_thread_alloc(rc, th);
		pid_t got;

		if (!rt)
			return rc_fail(rc, -ENOMEM, "out of memory for thread %d", tid);
		rt->ctl = rc->tctl;
		refcount_inc(&rc->tctl->ref);
		args.fn_arg = rt;
		got = kernel_clone(&args);
		if (got < 0) {
			rc_ctl_put(rc->tctl);
			rc_thread_free(rt);
			if (got == -EEXIST)
				return rc_fail(rc, got, "thread id %d of pid %d is in use",
					       tid, rc->pcb->pid);
			return rc_fail(rc, got, "cannot create thread %d of pid %d (%d)",
				       tid, rc->pcb->pid, got);
		}
		rc->threads_made++;
	}
	rc->t_threads = ktime_get_ns() - t0;
	return 0;
}

/* Release the waiting threads: into the restored process, or to exit. */
static void rc_threads_go(struct wpp_rc *rc, bool abort)
{
	if (!rc->tctl)
		return;
	rc->tctl->abort = abort;
	complete_all(&rc->tctl->go);
	rc_ctl_put(rc->tctl);
	rc->tctl = NULL;
}

static void rc_set_signals(struct wpp_rc *rc)
{
	struct wpp_pcb_sigaction *sa = rc_sigactions(rc);
	unsigned long never = sigmask(SIGKILL) | sigmask(SIGSTOP);
	struct task_struct *t = current;
	sigset_t blocked;
	u32 i;

	spin_lock_irq(&t->sighand->siglock);
	for (i = 0; i < rc->pcb->sigactions_count && i < _NSIG; i++) {
		struct k_sigaction *k = &t->sighand->action[i];

		if (i + 1 == SIGKILL || i + 1 == SIGSTOP)
			continue;
		k->sa.sa_handler = (__sighandler_t)(unsigned long)sa[i].handler;
		k->sa.sa_flags = sa[i].flags;
		k->sa.sa_restorer = (__sigrestore_t)(unsigned long)sa[i].restorer;
		siginitset(&k->sa.sa_mask, sa[i].mask & ~never);
	}
	spin_unlock_irq(&t->sighand->siglock);
	rc_set_altstack(rc->pcb->sas_ss_sp, rc->pcb->sas_ss_size, rc->pcb->sas_ss_flags);
	siginitset(&blocked, rc->pcb->sig_blocked & ~never);
	set_current_blocked(&blocked);
}

static bool rc_fd_wanted(struct wpp_rc *rc, unsigned int fd)
{
	struct wpp_pcb_file *pf = rc_files(rc);
	u32 i;

	for (i = 0; i < rc->pcb->files_count; i++)
		if (pf[i].fd == fd)
			return rc->fdmode[i] == RC_FD_INHERIT;
	return false;
}

static void rc_set_files(struct wpp_rc *rc)
{
	struct wpp_pcb_file *pf = rc_files(rc);
	struct files_struct *files = current->files;
	unsigned int fd, max;
	u32 i;

	spin_lock(&files->file_lock);
	max = files_fdtable(files)->max_fds;
	spin_unlock(&files->file_lock);
	/* close what the recreator had open, except stdio kept for unrestorable fds */
	for (fd = 0; fd < max; fd++)
		if (!rc_fd_wanted(rc, fd))
			close_fd(fd);
	for (i = 0; i < rc->pcb->files_count; i++) {
		if (rc->fdmode[i] != RC_FD_OPEN)
			continue;
		if (replace_fd(pf[i].fd, rc->ffile[i], pf[i].cloexec ? O_CLOEXEC : 0) < 0)
			pr_warn("recreate: cannot install fd %d (%s)\n", pf[i].fd, pf[i].path);
	}
}

static void rc_set_misc(struct wpp_rc *rc)
{
	struct task_struct *t = current;

	set_fs_pwd(t->fs, &rc->cwd);
	t->fs->umask = rc->pcb->umask & 0777;
	__set_task_comm(t, rc->pcb->comm, true);
	t->personality = rc->pcb->personality;
	t->clear_child_tid = (int __user *)(unsigned long)rc->pcb->clear_child_tid;
	t->robust_list = (struct robust_list_head __user *)(unsigned long)rc->pcb->robust_list;
	rseq_execve(t);
	rc_set_rseq(rc->pcb->rseq, rc->pcb->rseq_sig);
}

/* ---- the ioctls --------------------------------------------------------- */

static int rc_begin(struct wpp_rc *rc)
{
	pid_t other;

	if (!READ_ONCE(wpp_ready))
		return rc_fail(rc, -ENODEV, "WPP is not available (no firmware region)");
	other = wpp_tracked_pid();
	if (other)
		return rc_fail(rc, -EBUSY,
			       "pid %d is tracked: restoring would discard its firmware state", other);
	return 0;
}

static int rc_info(struct wpp_rc *rc, struct wpp_rc_info *info)
{
	int ret = rc_begin(rc);

	if (!ret)
		ret = rc_load(rc);
	if (!ret)
		ret = rc_check_pcb(rc);
	if (ret)
		return ret;
	info->pid = rc->pcb->pid;
	info->snap_sequence = rc->snap_seq;
	info->pcb_sequence = rc->pcb->sequence;
	info->timestamp_ns = rc->pcb->timestamp_ns;
	info->pages = rc->npages;
	info->regions = rc->nregions;
	info->files = rc->pcb->files_count;
	info->pcb_flags = rc->pcb->flags;
	info->threads = rc->pcb->threads_count;
	info->pcb_len = rc->pcb->total_size;
	info->consumed = rc->consumed;
	memcpy(info->comm, rc->pcb->comm, sizeof(info->comm));
	strscpy(info->exe_path, rc->pcb->exe_path, sizeof(info->exe_path));
	strscpy(info->cwd, rc->pcb->cwd, sizeof(info->cwd));
	return 0;
}

static int rc_recreate(struct wpp_rc *rc, const char __user *ubin)
{
	struct mm_struct *mm = NULL, *old_mm = NULL, *back;
	struct task_struct *t = current;
	const struct cred *saved;
	u64 t0 = ktime_get_ns(), t1;
	int ret;

	ret = rc_check_caller(rc);
	if (!ret)
		ret = rc_begin(rc);
	if (ret)
		return ret;
	/* the tracking slot: the recreated process is tracked again */
	ret = __wpp_clone_begin(0);
	if (ret)
		return rc_fail(rc, ret, "the tracking slot is taken (%d)", ret);
	rc->slot_claimed = true;

	ret = rc_load(rc);
	if (!ret)
		ret = rc_check_pcb(rc);
	if (!ret)
		ret = rc_make_cred(rc);
	if (!ret) {
		saved = override_creds(rc->cred);
		ret = rc_check_binary(rc, ubin);
		revert_creds(saved);
	}
	if (ret)
		return ret;
	ret = rc_check_threads(rc);
	if (ret)
		return ret;
	if (rc->pcb->flags & WPP_PCB_F_FILES_TRUNC)
		pr_warn("recreate: pid %d had more than %d open files: only the lowest are restored\n",
			rc->pcb->pid, WPP_PCB_FILES_MAX);
	rc_sort_regions(rc);
	/*
	 * Every path is looked up and opened as the process' user, never as
	 * root: a file swapped for a symlink while the machine was off must
	 * not give the process access its user did not have.
	 */
	saved = override_creds(rc->cred);
	ret = kern_path(rc->pcb->cwd, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &rc->cwd);
	if (ret) {
		revert_creds(saved);
		return rc_fail(rc, ret, "working directory %s: %s as uid %u (%d)", rc->pcb->cwd,
			       rc_open_err(ret), rc->pcb->euid, ret);
	}
	rc->have_cwd = true;
	ret = rc_prepare_regions(rc);
	if (!ret)
		ret = rc_prepare_files(rc);
	revert_creds(saved);
	if (!ret)
		ret = rc_prepare_fpu(rc);
	if (ret)
		return ret;
	rc->axw = kzalloc(sizeof(*rc->axw), GFP_KERNEL);
	mm = mm_alloc();
	if (!rc->axw || !mm) {
		ret = rc_fail(rc, -ENOMEM, "out of memory for the new address space");
		goto fail_mm;
	}
	mm->task_size = TASK_SIZE;
	arch_pick_mmap_layout(mm, &t->signal->rlim[RLIMIT_STACK]);
	ret = set_mm_exe_file(mm, rc->exe);
	if (ret) {
		ret = rc_fail(rc, ret, "%s is open for writing", rc->pcb->exe_path);
		goto fail_mm;
	}

	/* build the new mm in place of the caller's, which is kept until the end */
	ret = rc_switch_mm(mm, &old_mm, true);
	if (ret) {
		ret = rc_fail(rc, ret, "interrupted");
		goto fail_mm;
	}
	t1 = ktime_get_ns();
	ret = rc_map_regions(rc, mm);
	rc->t_map = ktime_get_ns() - t1;
	if (!ret) {
		t1 = ktime_get_ns();
		ret = rc_fill_pages(rc, mm);
		rc->t_fill = ktime_get_ns() - t1;
	}
	if (!ret) {
		ret = rc_set_fpu(rc);
		if (ret)
			ret = rc_fail(rc, ret, "the saved FPU state was not accepted (%d)", ret);
	}
	if (!ret)
		ret = rc_make_threads(rc);
	if (ret) {
		rc_threads_go(rc, true);
		/* give the caller its address space back */
		rc_switch_mm(old_mm, &back, false);
		goto fail_mm;
	}

	/* ---- point of no return ---- */
	t->clear_child_tid = NULL;	/* the recreator's, in the old mm */
	exec_mm_release(t, old_mm);
	setmax_mm_hiwater_rss(&t->signal->maxrss, old_mm);
	mm_update_next_owner(old_mm);
	mmput(old_mm);
	rc_set_regs(rc);
	rc_set_signals(rc);
	rc_set_files(rc);
	rc_set_misc(rc);
	/* the saved user: commit_creds() consumes the reference */
	commit_creds(rc->cred);
	rc->cred = NULL;
	set_dumpable(t->mm, SUID_DUMP_USER);

	{
		struct wpp_call c = { .event = WPP_EV_CONSUME };

		if (wpp_smi(&c))
			pr_warn("recreate: CONSUME failed (firmware status %d): the snapshot can be recreated again\n",
				c.status);
	}
	/*
	 * track again: Init (the firmware forgets the restored snapshot), then
	 * the address space as after an exec (eager/batched send it all now)
	 */
	__wpp_clone_end(t, 0);
	rc->slot_claimed = false;
	wpp_track_allow_threads((rc->pcb->flags & WPP_PCB_F_THREADS_ALLOWED) ||
				rc->pcb->threads_count);
	__wpp_exec_done();
	rc_threads_go(rc, false);

	pr_info("recreated pid %d (was %d, %s) from snapshot %llu%s: %u regions, %llu pages (%llu written, %llu of them in place, %llu zero, %llu skipped), %u threads more, restore %llu ms, map %llu ms, fill %llu ms (get_pages %llu ms), threads %llu us, total %llu ms\n",
		task_pid_nr(t), rc->pcb->pid, rc->pcb->comm, rc->snap_seq,
		rc->consumed ? " (forced)" : "", rc->nregions, rc->npages, rc->pages_written,
		rc->pages_in_place, rc->pages_zero, rc->pages_skipped, rc->threads_made,
		rc->t_restore / NSEC_PER_MSEC,
		rc->t_map / NSEC_PER_MSEC, rc->t_fill / NSEC_PER_MSEC, rc->t_get / NSEC_PER_MSEC,
		rc->t_threads / NSEC_PER_USEC, (ktime_get_ns() - t0) / NSEC_PER_MSEC);
	return 0;

fail_mm:
	if (mm)
		mmput(mm);
	return ret;
}

static void rc_release_slot(struct wpp_rc *rc)
{
	if (rc->slot_claimed)
		__wpp_clone_end(ERR_PTR(-ECANCELED), 0);
	rc->slot_claimed = false;
}

static long wpp_rc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct wpp_rc *rc;
	long ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (cmd != WPP_IOC_INFO && cmd != WPP_IOC_RECREATE)
		return -ENOTTY;
	rc = kzalloc(sizeof(*rc), GFP_KERNEL);
	if (!rc)
		return -ENOMEM;
	if (!mutex_trylock(&wpp_rc_mutex)) {
		kfree(rc);
		return -EBUSY;
	}
	if (cmd == WPP_IOC_INFO) {
		struct wpp_rc_info *info = kzalloc(sizeof(*info), GFP_KERNEL);

		ret = -ENOMEM;
		if (info && !copy_from_user(info, uarg, sizeof(*info))) {
			rc->flags = info->flags;
			info->msg[0] = 0;
			ret = rc_info(rc, info);
			if (!ret && info->pcb_buf && info->pcb_buf_len >= info->pcb_len &&
			    copy_to_user(u64_to_user_ptr(info->pcb_buf), rc->meta, info->pcb_len))
				ret = -EFAULT;
			if (ret)
				strscpy(info->msg, rc->msg, sizeof(info->msg));
			if (copy_to_user(uarg, info, sizeof(*info)))
				ret = -EFAULT;
		} else if (info) {
			ret = -EFAULT;
		}
		kfree(info);
	} else {
		struct wpp_rc_req req;

		if (copy_from_user(&req, uarg, sizeof(req))) {
			ret = -EFAULT;
		} else {
			rc->flags = req.flags;
			ret = rc_recreate(rc, u64_to_user_ptr(req.binary));
			rc_release_slot(rc);
			/* on success the caller's memory is gone: nothing to copy back */
			if (ret) {
				strscpy(req.msg, rc->msg, sizeof(req.msg));
				if (copy_to_user(uarg, &req, sizeof(req)))
					ret = -EFAULT;
			}
		}
	}
	rc_free(rc);
	mutex_unlock(&wpp_rc_mutex);
	kfree(rc);
	return ret;
}

static const struct file_operations wpp_rc_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = wpp_rc_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice wpp_rc_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wpp-recreate",
	.fops = &wpp_rc_fops,
	.mode = 0600,
};

/* After wpp_init() (device_initcall): the device exists only with WPP running. */
static int __init wpp_recreate_init(void)
{
	int ret;

	if (!READ_ONCE(wpp_ready))
		return 0;
	ret = misc_register(&wpp_rc_dev);
	if (ret)
		pr_err("cannot register /dev/wpp-recreate: %d\n", ret);
	return ret;
}
late_initcall(wpp_recreate_init);
