/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wpp_internal.h - declarations shared by the parts of the WPP driver.
 */
#ifndef WPP_INTERNAL_H
#define WPP_INTERNAL_H

#include <linux/types.h>
#include <linux/mm_types.h>
#include "wpp_abi.h"

enum wpp_mode {
	WPP_MODE_EAGER = 0,	/* one SMI per event */
	WPP_MODE_BATCHED = 1,	/* page events queued, one SMI per batch */
	WPP_MODE_LAZY = 2,	/* nothing at run time, walk at power loss */
};

extern const char *const wpp_mode_names[];
extern int wpp_mode;		/* for the next tracked process */
extern u64 wpp_region_base;
extern u64 wpp_region_size;
extern bool wpp_ready;		/* mailbox mapped, hooks may act */
extern bool wpp_allow_threads;

/* One firmware call. p1/p2 are concatenated into the payload; on success
 * out_len bytes from payload offset out_off are copied to out.
 */
struct wpp_call {
	u16 event;
	const void *p1;
	u32 len1;
	const void *p2;
	u32 len2;
	void *out;
	u32 out_off;
	u32 out_len;
	s32 status;		/* out: firmware status, or -1 when no answer */
	u64 result[4];		/* out */
};

struct wpp_smi_stats {
	u64 calls[WPP_EV_COUNT];
	u64 errors[WPP_EV_COUNT];
	u64 ns[WPP_EV_COUNT];
	u64 no_answer;
	u64 rerung;		/* doorbells rung again after no answer */
	s32 last_status;
	u16 last_event;
};

int wpp_smi_init(void);
int wpp_smi(struct wpp_call *c);
int wpp_smi_simple(u16 event, const void *payload, u32 len);
int wpp_read_data(u32 section, u32 offset, void *buf, u32 size);
int wpp_write_data(u32 section, u32 offset, const void *buf, u32 size);
void wpp_smi_get_stats(struct wpp_smi_stats *st);
const char *wpp_event_name(unsigned int event);

/* tracking */
pid_t wpp_tracked_pid(void);
struct task_struct *wpp_tracked_task_get(void);
int wpp_track_reset_firmware(void);
int wpp_track_sync(struct task_struct *task);
void wpp_track_freeze(void);
bool wpp_track_threads_allowed(void);
void wpp_track_allow_threads(bool allow);
int wpp_track_check(struct task_struct *task);
void wpp_track_check_release(void);

/* the power-loss page-table check, for /sys/kernel/wpp/check */
struct wpp_check_stats {
	u64 checks, failed;
	u64 pages_added, pages_removed, regions_added, regions_removed;
	u64 last_pages, last_regions, last_corrected, last_us;
	u64 track_errors;	/* failed run-time reports (eager SMIs, syncs, batches) */
	/* pages brought in before the list was taken: swapped out, migrating */
	u64 swapped_in, migration_waits, last_brought_in;
};

extern struct wpp_check_stats wpp_check_stats;
unsigned int wpp_batch_pending(void);
int wpp_track_mode(void);

/* power loss + PCB */
int wpp_pcb_send(struct task_struct *task, u64 sequence);
int wpp_power_loss(void);

int wpp_trigger_init(void);
int wpp_sysfs_init(void);

#endif /* WPP_INTERNAL_H */
