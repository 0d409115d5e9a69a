/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wpp_recreate.h - user ABI of /dev/wpp-recreate, the device through which
 * wpp-recreate (kernel/tools/wpp-recreate.c) brings the last persisted
 * process back. Shared by the driver and the tool; no kernel types.
 *
 *   WPP_IOC_INFO      RESTORE the snapshot in the firmware, validate it and
 *                     its process control block, describe it. Changes
 *                     nothing in the caller.
 *   WPP_IOC_RECREATE  replace the calling process, execve-style, by the
 *                     persisted one: on success the ioctl "returns" into the
 *                     restored process where it stopped; on failure the
 *                     caller is untouched and msg says why.
 *
 * Refusals (errno, and msg names the cause; the kernel log has the same line):
 *   ENOMSG      no snapshot on the persistent device
 *   ENODATA     snapshot incomplete (power cut while persisting)
 *   EBADMSG     snapshot or process control block corrupt (CRC)
 *   EPROTO      incompatible snapshot/PCB format version
 *   EALREADY    snapshot already recreated (consumed); WPP_RC_F_FORCE overrides
 *   ENOEXEC     wrong binary (msg names the snapshot's and the given one)
 *   ENOENT      a file the process had open or mapped, or its cwd, is missing
 *   EBUSY       a process is tracked right now, or another recreate runs
 *   EINVAL      the caller cannot be replaced (threads, shared files/fs/sighand)
 *   EOPNOTSUPP  the persisted process had several threads and wpp.allow_threads
 *               is 0, or more threads/epoll items than the PCB holds
 *   EEXIST      a thread id of the persisted process is in use
 *
 * Descriptors without a path (pipes, sockets, epoll) are the caller's job:
 * INFO can copy the whole PCB out (pcb_buf), so the recreator creates them
 * at the saved fd numbers before RECREATE; a caller fd of the saved type
 * (pipe, socket, the same anon-inode kind) at a saved fd number is kept,
 * every other caller fd is closed.
 *   ENODEV      no WPP firmware answering
 */
#ifndef WPP_RECREATE_H
#define WPP_RECREATE_H

#include <linux/ioctl.h>
#include "wpp_abi.h"

#define WPP_RC_DEVICE		"/dev/wpp-recreate"
#define WPP_RC_MSG_MAX		256
#define WPP_RC_PATH_MAX		256

#define WPP_RC_F_FORCE		(1U << 0)	/* accept a consumed snapshot */

struct wpp_rc_info {
	wpp_u32 flags;			/* in: WPP_RC_F_* */
	wpp_s32 pid;			/* original pid */
	wpp_u64 snap_sequence;		/* firmware persist counter */
	wpp_u64 pcb_sequence;		/* driver power-loss counter */
	wpp_u64 timestamp_ns;		/* capture time (CLOCK_REALTIME) */
	wpp_u64 pages;			/* pages in the snapshot */
	wpp_u32 regions;
	wpp_u32 files;
	wpp_u32 pcb_flags;		/* WPP_PCB_F_* */
	wpp_u32 consumed;		/* 1 when forced over a consumed snapshot */
	char comm[16];
	char exe_path[WPP_RC_PATH_MAX];
	char cwd[WPP_RC_PATH_MAX];
	char msg[WPP_RC_MSG_MAX];	/* out on failure */
	wpp_u64 pcb_buf;		/* in: user buffer for the PCB, or 0 */
	wpp_u32 pcb_buf_len;		/* in: its size */
	wpp_u32 pcb_len;		/* out: PCB size (copied when it fits) */
	wpp_u32 threads;		/* out: threads besides the main one */
	wpp_u32 reserved;
};

struct wpp_rc_req {
	wpp_u32 flags;			/* in: WPP_RC_F_* */
	wpp_u32 reserved;
	wpp_u64 binary;			/* in: user pointer to the binary's path */
	char msg[WPP_RC_MSG_MAX];	/* out on failure */
};

#define WPP_RC_IOC_MAGIC	'W'
#define WPP_IOC_INFO		_IOWR(WPP_RC_IOC_MAGIC, 0x40, struct wpp_rc_info)
#define WPP_IOC_RECREATE	_IOWR(WPP_RC_IOC_MAGIC, 0x41, struct wpp_rc_req)

#endif /* WPP_RECREATE_H */
