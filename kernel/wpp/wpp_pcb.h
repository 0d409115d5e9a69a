/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wpp_pcb.h - the process control block (PCB) the kernel writes to the
 * Metadata section (offset 0) with WPP_EV_WRITE_DATA at power loss.
 *
 * The recreator reads it back (RESTORE, then READ_DATA of the Metadata
 * section) to rebuild the process execve-style. Layout rules:
 *
 *   - little-endian, naturally aligned, explicit padding, no pointers;
 *   - a fixed header (struct wpp_pcb), followed by variable parts located by
 *     (offset, count) pairs relative to the start of the header, each part
 *     8-byte aligned;
 *   - crc32 is CRC-32 (IEEE, as zlib.crc32) over total_size bytes with the
 *     crc32 field zero;
 *   - version bumps on any incompatible change; readers must reject a version
 *     they do not know and must use header_size to find nothing but the fixed
 *     header (new fields are only ever appended to it).
 *
 * Register state (struct wpp_pcb_regs) is x86-64 struct user_regs_struct, as
 * ptrace(PTRACE_GETREGS) and ELF core dumps (NT_PRSTATUS) have it. The task is
 * captured stopped by SIGSTOP, so when it was inside a system call, ax holds
 * -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND/-ERESTART_RESTARTBLOCK and
 * orig_ax the syscall number: a recreator applies the usual restart rule
 * (ax = orig_ax, ip -= 2) before returning to user mode.
 *
 * FPU state is the ptrace/core-dump user ABI format: the XSAVE (non-compacted)
 * image (NT_X86_XSTATE) when the CPU has XSAVE, else the 512-byte FXSAVE
 * image (NT_PRFPREG); fpu_format says which.
 *
 * Appended to the header (version 1 still, readers accept the shorter
 * header of older writers: WPP_PCB_HEADER_V1_SIZE, and then have none of
 * these parts): the other threads of the process
 * (struct wpp_pcb_thread, each with its own registers, FPU image, signal mask,
 * clear_child_tid, robust list and sigaltstack; the header's fields describe
 * the main thread), per-fd descriptions of what cannot be reopened by path
 * (struct wpp_pcb_fdx: pipes, sockets, epoll; one per files[] entry, same
 * order) and the interest lists of epoll instances (struct wpp_pcb_epitem).
 */
#ifndef WPP_PCB_H
#define WPP_PCB_H

#if defined(__KERNEL__)
#include <linux/stddef.h>
#include <linux/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#endif

#include "wpp_abi.h"

#define WPP_PCB_MAGIC		0x42435057U	/* "WPCB" */
#define WPP_PCB_VERSION		1
#define WPP_PCB_PATH_MAX	256		/* NUL-terminated, truncated if longer */
#define WPP_PCB_NSIG		64
#define WPP_PCB_AUXV_MAX	64		/* u64 words (key, value pairs) */
#define WPP_PCB_FILES_MAX	1024		/* lowest fds kept if more are open */
#define WPP_PCB_THREADS_MAX	256		/* more threads: refused at power loss */
#define WPP_PCB_EPITEMS_MAX	4096		/* epoll registrations, all instances */
#define WPP_PCB_GROUPS_MAX	64		/* more supplementary groups: not recreatable */

#define WPP_PCB_FPU_NONE	0
#define WPP_PCB_FPU_FXSAVE	1		/* 512-byte FXSAVE image */
#define WPP_PCB_FPU_XSAVE	2		/* UABI (non-compacted) XSAVE image */

/* flags */
#define WPP_PCB_F_PATH_TRUNC	(1U << 0)	/* exe_path or cwd truncated */
#define WPP_PCB_F_FILES_TRUNC	(1U << 1)	/* more than WPP_PCB_FILES_MAX fds */
#define WPP_PCB_F_IN_SYSCALL	(1U << 2)	/* orig_ax >= 0: stopped in a syscall */
/* other threads existed (wpp.allow_threads): threads_count of them, threads part */
#define WPP_PCB_F_MULTI_THREAD	(1U << 3)
/* threads were allowed when tracking began (wpp.allow_threads then): the policy */
#define WPP_PCB_F_THREADS_ALLOWED	(1U << 5)
/*
 * more than WPP_PCB_THREADS_MAX threads, EPITEMS_MAX epoll items or
 * GROUPS_MAX supplementary groups: not recreatable
 */
#define WPP_PCB_F_INCOMPLETE	(1U << 4)

/* x86-64 struct user_regs_struct, field for field. */
struct wpp_pcb_regs {
	wpp_u64 r15, r14, r13, r12, bp, bx, r11, r10;
	wpp_u64 r9, r8, ax, cx, dx, si, di, orig_ax;
	wpp_u64 ip, cs, flags, sp, ss, fs_base, gs_base;
	wpp_u64 ds, es, fs, gs;
};					/* 216 bytes */

struct wpp_pcb_sigaction {
	wpp_u64 handler;		/* SIG_DFL 0, SIG_IGN 1, else user address */
	wpp_u64 flags;			/* SA_* */
	wpp_u64 restorer;
	wpp_u64 mask;			/* sa_mask, bit n-1 = signal n */
};

/* file type in wpp_pcb_file.mode: S_IFMT bits of i_mode, as stat(2) */
struct wpp_pcb_file {
	wpp_s32 fd;
	wpp_u32 flags;			/* f_flags: O_ACCMODE, O_APPEND, O_NONBLOCK, ... */
	wpp_u64 pos;			/* f_pos */
	wpp_u32 mode;			/* i_mode (type + permissions) */
	wpp_u32 cloexec;		/* 1 when FD_CLOEXEC */
	wpp_u64 ino;			/* inode number, for a sanity check */
	char path[WPP_PCB_PATH_MAX];	/* d_path(); "pipe:[n]", "socket:[n]" for those */
};					/* 288 bytes */

/* one thread other than the main one (which is the header's) */
struct wpp_pcb_thread {
	wpp_s32 tid;			/* in the initial pid namespace */
	wpp_u32 flags;			/* WPP_PCB_F_IN_SYSCALL */
	struct wpp_pcb_regs regs;	/* incl. fs_base/gs_base; restart rule as the header */
	wpp_u64 clear_child_tid;
	wpp_u64 sig_blocked;
	wpp_u64 robust_list;		/* set_robust_list() head, user address */
	wpp_u64 robust_list_len;
	wpp_u64 sas_ss_sp;		/* sigaltstack */
	wpp_u64 sas_ss_size;
	wpp_u32 sas_ss_flags;
	wpp_u32 fpu_format;		/* WPP_PCB_FPU_* (as the header's) */
	wpp_u32 fpu_offset;		/* from the PCB start, 8-byte aligned */
	wpp_u32 fpu_size;
	char comm[16];
	wpp_u64 rseq;			/* rseq() area, user address (0: none) */
	wpp_u32 rseq_sig;
	wpp_u32 reserved;
};					/* 320 bytes */

/* wpp_pcb_fdx.kind */
#define WPP_PCB_FDX_NONE	0	/* reopened by path, or not restorable */
#define WPP_PCB_FDX_PIPE	1	/* anonymous pipe end; ends paired by files[].ino */
#define WPP_PCB_FDX_SOCKET	2
#define WPP_PCB_FDX_EPOLL	3	/* epitems[epoll_first .. +epoll_count] */
#define WPP_PCB_FDX_EVENTFD	4	/* count (EFD_SEMAPHORE is not visible: not kept) */

/* wpp_pcb_fdx.sockopts */
#define WPP_PCB_SO_REUSEADDR	(1U << 0)
#define WPP_PCB_SO_REUSEPORT	(1U << 1)
#define WPP_PCB_SO_V6ONLY	(1U << 2)

#define WPP_PCB_SOCK_LISTEN	10	/* wpp_pcb_fdx.state: TCP_LISTEN */

/* what it takes to recreate a descriptor that has no path (files[i] <-> fdx[i]) */
struct wpp_pcb_fdx {
	wpp_s32 fd;
	wpp_u32 kind;			/* WPP_PCB_FDX_* */
	wpp_u32 family;			/* socket: AF_*, SOCK_*, IPPROTO_* */
	wpp_u32 type;
	wpp_u32 protocol;
	wpp_u32 state;			/* sk_state: TCP_LISTEN 10, TCP_ESTABLISHED 1, ... */
	wpp_u32 backlog;		/* listen() backlog (sk_max_ack_backlog) */
	wpp_u32 sockopts;		/* WPP_PCB_SO_* */
	wpp_u32 addr_len;		/* local address (getsockname), 0: unbound */
	wpp_u32 epoll_first;
	wpp_u32 epoll_count;
	wpp_u32 reserved;
	wpp_u64 count;			/* eventfd counter */
	wpp_u8 addr[128];
};					/* 184 bytes */

/* one registration of an epoll instance, as /proc/<pid>/fdinfo shows it */
struct wpp_pcb_epitem {
	wpp_s32 tfd;
	wpp_u32 events;
	wpp_u64 data;
};

struct wpp_pcb {
	wpp_u32 magic;			/* WPP_PCB_MAGIC */
	wpp_u16 version;		/* WPP_PCB_VERSION */
	wpp_u16 header_size;		/* sizeof(struct wpp_pcb) */
	wpp_u32 total_size;		/* header + variable parts, bytes */
	wpp_u32 crc32;
	wpp_u32 flags;			/* WPP_PCB_F_* */
	wpp_u32 abi_version;		/* WPP_ABI_VERSION of the writer */
	wpp_u64 sequence;		/* driver's power-loss counter */
	wpp_u64 timestamp_ns;		/* ktime_get_real_ns() at capture */

	/* identity */
	wpp_s32 pid;			/* in the initial pid namespace */
	wpp_s32 tgid;
	wpp_s32 ppid;
	wpp_s32 pgid;
	wpp_s32 sid;
	wpp_u32 uid, gid, euid, egid;
	wpp_u32 personality;
	char comm[16];
	char exe_path[WPP_PCB_PATH_MAX];
	char cwd[WPP_PCB_PATH_MAX];
	wpp_u32 umask;
	wpp_u32 exit_signal;

	/* CPU */
	struct wpp_pcb_regs regs;
	wpp_u64 clear_child_tid;	/* set_tid_address() */

	/* signals */
	wpp_u64 sig_blocked;		/* bit n-1 = signal n */
	wpp_u64 sig_pending;		/* private | shared pending, informational */
	wpp_u32 sigactions_offset;	/* struct wpp_pcb_sigaction[WPP_PCB_NSIG] */
	wpp_u32 sigactions_count;	/* signals 1..count */

	/* files */
	wpp_u32 files_offset;		/* struct wpp_pcb_file[files_count], fd order */
	wpp_u32 files_count;

	/* FPU */
	wpp_u32 fpu_offset;
	wpp_u32 fpu_size;
	wpp_u32 fpu_format;		/* WPP_PCB_FPU_* */
	wpp_u32 reserved0;
	wpp_u64 xfeatures;		/* XSTATE_BV of the image (0 for FXSAVE) */

	/* memory layout (mm_struct), needed for brk and /proc/<pid>/ consistency */
	wpp_u64 start_code, end_code, start_data, end_data;
	wpp_u64 start_brk, brk, start_stack;
	wpp_u64 arg_start, arg_end, env_start, env_end;
	wpp_u64 auxv[WPP_PCB_AUXV_MAX];
	wpp_u32 auxv_count;		/* u64 words used in auxv[] */
	wpp_u32 reserved1;

	/* appended: main thread extras, other threads, descriptors */
	wpp_u64 robust_list;
	wpp_u64 robust_list_len;
	wpp_u32 threads_offset;		/* struct wpp_pcb_thread[threads_count] */
	wpp_u32 threads_count;		/* threads besides the main one */
	wpp_u32 fdx_offset;		/* struct wpp_pcb_fdx[files_count] */
	wpp_u32 epitems_offset;		/* struct wpp_pcb_epitem[epitems_count] */
	wpp_u32 epitems_count;
	wpp_u32 reserved2;
	wpp_u64 sas_ss_sp;		/* the main thread's sigaltstack */
	wpp_u64 sas_ss_size;
	wpp_u32 sas_ss_flags;
	wpp_u32 reserved3;
	wpp_u64 rseq;			/* the main thread's rseq() area (0: none) */
	wpp_u32 rseq_sig;
	wpp_u32 reserved4;

	/*
	 * appended: the credentials (cred_valid 1); uid, gid, euid and egid
	 * are the identity fields above. A reader of an older PCB (header up
	 * to here) has only those four.
	 */
	wpp_u32 cred_valid;
	wpp_u32 suid, sgid, fsuid, fsgid;
	wpp_u32 ngroups;		/* supplementary groups in groups[] */
	wpp_u32 securebits;
	wpp_u32 reserved5;
	wpp_u64 cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient;
	wpp_u32 groups[WPP_PCB_GROUPS_MAX];

	/*
	 * appended: the clocks as the process saw them at the capture, in its
	 * time namespace (clock_valid 1), so that a recreated process can see
	 * CLOCK_MONOTONIC and CLOCK_BOOTTIME continue from there (a time
	 * namespace with offsets: its timers and sleeps do not count the time
	 * it was down).
	 */
	wpp_u32 clock_valid;
	wpp_u32 reserved6;
	wpp_u64 monotonic_ns;
	wpp_u64 boottime_ns;
};

/* the header as first written (no threads, fdx or epoll parts) */
#define WPP_PCB_HEADER_V1_SIZE	offsetof(struct wpp_pcb, robust_list)
/* the header before the credentials and clocks were appended */
#define WPP_PCB_HEADER_CRED_OFF	offsetof(struct wpp_pcb, cred_valid)
#define WPP_PCB_HEADER_CLOCK_OFF	offsetof(struct wpp_pcb, clock_valid)

#if !defined(__cplusplus)
_Static_assert(sizeof(struct wpp_pcb_regs) == 216, "pcb regs");
_Static_assert(sizeof(struct wpp_pcb_sigaction) == 32, "pcb sigaction");
_Static_assert(sizeof(struct wpp_pcb_file) == 288, "pcb file");
_Static_assert(sizeof(struct wpp_pcb_thread) == 320, "pcb thread");
_Static_assert(sizeof(struct wpp_pcb_fdx) == 184, "pcb fdx");
_Static_assert(sizeof(struct wpp_pcb_epitem) == 16, "pcb epitem");
_Static_assert(sizeof(struct wpp_pcb) % 8 == 0, "pcb header alignment");
#endif

#endif /* WPP_PCB_H */
