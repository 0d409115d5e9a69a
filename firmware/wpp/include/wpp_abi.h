/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * wpp_abi.h - the one ABI shared by the WPP firmware (coreboot SMM handler) and
 * the Linux kernel driver: reserved-region layout, APMC event numbers, mailbox
 * header, event payloads, status codes and the persistent-device snapshot format.
 *
 * This file is the single source of truth. The kernel build copies it into the
 * driver directory; the Python snapshot inspector (hil/snapshot.py) mirrors the
 * snapshot structs and is tested against images produced by the C code.
 *
 * All structures are little-endian, naturally aligned and padded explicitly so
 * that -m32 (coreboot SMM), x86_64 (kernel) and the host tests agree on sizes.
 */
#ifndef WPP_ABI_H
#define WPP_ABI_H

#if defined(__KERNEL__)
#include <linux/types.h>
typedef __u8 wpp_u8;
typedef __u16 wpp_u16;
typedef __u32 wpp_u32;
typedef __s32 wpp_s32;
typedef __u64 wpp_u64;
#else
#include <stdint.h>
typedef uint8_t wpp_u8;
typedef uint16_t wpp_u16;
typedef uint32_t wpp_u32;
typedef int32_t wpp_s32;
typedef uint64_t wpp_u64;
#endif

#define WPP_ABI_VERSION			1

/* ------------------------------------------------------------------------
 * Reserved region (physical), default 256 MiB at 0x10000000 (seed fig. 5.2).
 * Offsets are relative to the region base.
 * ------------------------------------------------------------------------ */
#define WPP_REGION_BASE_DEFAULT		0x10000000ULL
#define WPP_REGION_SIZE_DEFAULT		0x10000000ULL

enum wpp_section {
	WPP_SECTION_MAILBOX	= 0,	/* kernel <-> firmware exchange */
	WPP_SECTION_METADATA	= 1,	/* process control block; kernel-writable */
	WPP_SECTION_REGIONS	= 2,	/* struct wpp_region slots */
	WPP_SECTION_INTERNAL	= 3,	/* firmware state, counters, scratch */
	WPP_SECTION_PAGES	= 4,	/* 16 buckets of struct wpp_page_mapping */
	WPP_SECTION_COUNT	= 5,
};

#define WPP_MAILBOX_OFFSET		0x00000000U
#define WPP_MAILBOX_SIZE		0x01000000U	/* 16 MiB */
#define WPP_METADATA_OFFSET		0x01000000U
#define WPP_METADATA_SIZE		0x02000000U	/* 32 MiB */
#define WPP_REGIONS_OFFSET		0x03000000U
#define WPP_REGIONS_SIZE		0x03000000U	/* 48 MiB */
#define WPP_INTERNAL_OFFSET		0x06000000U
#define WPP_INTERNAL_SIZE		0x02000000U	/* 32 MiB */
#define WPP_PAGES_OFFSET		0x08000000U
#define WPP_PAGES_SIZE			0x08000000U	/* 128 MiB */

/* ------------------------------------------------------------------------
 * Events: the byte written to APMC port 0xb2. 0xa0-0xac collides with none of
 * coreboot's APM_CNT_* (0x00, 0x1e, 0xca-0xcc, 0xe1, 0xeb-0xed, 0xef).
 * ------------------------------------------------------------------------ */
#define WPP_APM_CNT_PORT		0xb2

enum wpp_event {
	WPP_EV_INIT		= 0xa0,	/* reset all state for a newly tracked process */
	WPP_EV_ADD_REGION	= 0xa1,	/* payload: struct wpp_region */
	WPP_EV_REMOVE_REGION	= 0xa2,	/* payload: struct wpp_region_key */
	WPP_EV_ADD_PAGE		= 0xa3,	/* payload: struct wpp_page_mapping */
	WPP_EV_REMOVE_PAGE	= 0xa4,	/* payload: struct wpp_page_mapping */
	WPP_EV_PAGE_BATCH	= 0xa5,	/* payload: struct wpp_page_batch + ops, in order */
	WPP_EV_WRITE_DATA	= 0xa6,	/* payload: struct wpp_data_cmd + bytes */
	WPP_EV_READ_DATA	= 0xa7,	/* payload: struct wpp_data_cmd; bytes returned after it */
	WPP_EV_PERSIST		= 0xa8,	/* trigger persisting to the persistent device */
	WPP_EV_RESTORE		= 0xa9,	/* validate snapshot, load sections into the region */
	WPP_EV_GET_PAGES	= 0xaa,	/* payload: struct wpp_get_pages */
	WPP_EV_DEBUG		= 0xab,	/* payload: struct wpp_debug_cmd */
	WPP_EV_CONSUME		= 0xac,	/* mark the restored snapshot consumed */
};

#define WPP_EV_FIRST			WPP_EV_INIT
#define WPP_EV_LAST			WPP_EV_CONSUME
#define WPP_EV_COUNT			(WPP_EV_LAST - WPP_EV_FIRST + 1)

/* Status returned in the mailbox header. 0 is success, everything else an error. */
enum wpp_status {
	WPP_OK			= 0,
	WPP_E_BAD_MAILBOX	= 1,	/* header magic/version wrong */
	WPP_E_BAD_EVENT		= 2,	/* unknown event number */
	WPP_E_BAD_ARG		= 3,	/* malformed payload (length, flags, count) */
	WPP_E_BOUNDS		= 4,	/* section/offset/size outside the section */
	WPP_E_READ_ONLY		= 5,	/* write to a section other than Metadata */
	WPP_E_NO_SLOT		= 6,	/* region or page slots exhausted */
	WPP_E_NOT_FOUND		= 7,	/* remove of an unknown region/page */
	WPP_E_BAD_ADDR		= 8,	/* OS address into SMRAM, the WPP region or not RAM */
	WPP_E_STATE		= 9,	/* event not valid now (e.g. pages before init) */
	WPP_E_NO_DEVICE		= 10,	/* persistent device missing or not usable */
	WPP_E_DEVICE_IO		= 11,	/* device reported an error */
	WPP_E_TIMEOUT		= 12,	/* device did not complete in time */
	WPP_E_TOO_BIG		= 13,	/* snapshot does not fit the device */
	WPP_E_NO_SNAPSHOT	= 14,	/* restore: no snapshot header on the device */
	WPP_E_INCOMPLETE	= 15,	/* restore: completion marker missing/mismatched */
	WPP_E_CORRUPT		= 16,	/* restore: a CRC check failed */
	WPP_E_VERSION		= 17,	/* restore: incompatible snapshot format version */
	WPP_E_CONSUMED		= 18,	/* restore: snapshot already consumed (unless forced) */
	WPP_E_DEVICE_MOVED	= 19,	/* device BAR differs from the one recorded at boot */
	WPP_E_COUNT
};

/* ------------------------------------------------------------------------
 * Mailbox: header at the start of the mailbox section, payload right after.
 * The kernel fills magic, abi_version, event, seq and payload_len, then writes
 * the event number to port 0xb2. The firmware answers with status, seq_ack
 * (= seq of the request it handled) and result[] / reply payload.
 * ------------------------------------------------------------------------ */
#define WPP_MAILBOX_MAGIC		0x4d505057U	/* "WPPM" */
#define WPP_MAILBOX_HDR_SIZE		64U
#define WPP_MAILBOX_PAYLOAD_MAX		(WPP_MAILBOX_SIZE - WPP_MAILBOX_HDR_SIZE)

struct wpp_mailbox_hdr {
	wpp_u32 magic;
	wpp_u16 abi_version;
	wpp_u16 event;		/* the event the kernel intends (checked against port) */
	wpp_u32 seq;		/* request sequence number, set by the kernel */
	wpp_u32 seq_ack;	/* firmware: seq of the handled request */
	wpp_s32 status;		/* firmware: enum wpp_status */
	wpp_u32 payload_len;	/* request: bytes of payload; reply: bytes returned */
	wpp_u64 result[4];	/* event-specific results (see each event) */
	wpp_u8 reserved[8];
};

/* Region slots (Memory Regions section). */
#define WPP_PATH_MAX			100
#define WPP_REGION_F_USED		(1U << 0)
#define WPP_REGION_F_FILE		(1U << 1)	/* file-backed; file_path valid */
#define WPP_REGION_F_PATH_TRUNC		(1U << 2)	/* path longer than WPP_PATH_MAX-1 */

struct wpp_region {
	char file_path[WPP_PATH_MAX];	/* NUL-terminated; "" when anonymous */
	wpp_u32 state;			/* WPP_REGION_F_* (firmware sets USED) */
	wpp_u64 virtual_address;
	wpp_u64 length;
	wpp_u64 protection;		/* PROT_* */
	wpp_u64 flags;			/* MAP_* / VM_* as the kernel chooses */
	wpp_u64 file_offset;		/* bytes into file_path */
};					/* 144 bytes */

struct wpp_region_key {
	wpp_u64 virtual_address;
	wpp_u64 length;
};

#define WPP_REGION_SLOTS		(WPP_REGIONS_SIZE / sizeof(struct wpp_region))

/*
 * Page mappings: the Pages section is 16 buckets, bucket = (va & 0xF000) >> 12,
 * each an array of WPP_PAGE_BUCKET_SLOTS mappings. A slot is used when bit 0
 * of virtual_address is set (virtual addresses are page aligned).
 */
#define WPP_PAGE_SIZE			4096U
#define WPP_PAGE_BUCKETS		16U
#define WPP_PAGE_USED			1ULL
#define WPP_PAGE_BUCKET(va)		((unsigned int)(((va) & 0xF000ULL) >> 12))

struct wpp_page_mapping {
	wpp_u64 virtual_address;	/* page aligned; bit 0 = used in slots */
	wpp_u64 physical_address;	/* page aligned */
};

#define WPP_PAGE_BUCKET_SLOTS \
	(WPP_PAGES_SIZE / WPP_PAGE_BUCKETS / sizeof(struct wpp_page_mapping))

/* Batched page events: applied in order. result[0] = ops applied. */
#define WPP_PAGE_OP_ADD			1U
#define WPP_PAGE_OP_REMOVE		2U

struct wpp_page_op {
	wpp_u64 virtual_address;
	wpp_u64 physical_address;
	wpp_u32 op;			/* WPP_PAGE_OP_* */
	wpp_u32 reserved;
};

struct wpp_page_batch {
	wpp_u32 count;
	wpp_u32 flags;			/* reserved, 0 */
	/* struct wpp_page_op ops[count]; */
};

/* Write/Read Data: payload is this command; WRITE bytes follow it, READ bytes
 * are returned right after it (payload_len on reply = sizeof(cmd) + size). */
struct wpp_data_cmd {
	wpp_u32 section;		/* enum wpp_section */
	wpp_u32 offset;
	wpp_u32 size;
	wpp_u32 reserved;
};

/*
 * Get Pages: copy `count` pages starting at snapshot page index `index` from
 * the persistent device. dest_phys == 0: into the mailbox right after this
 * struct. dest_phys == WPP_GET_PAGES_FRAMES: page i into the 4 KiB frame
 * whose physical address is the i-th of `count` u64s following this struct
 * (the recreated process' own new frames, so no page passes through a
 * buffer). Otherwise into OS memory at dest_phys. Every destination must be
 * RAM and not SMRAM nor the WPP region, a frame also 4 KiB aligned (checked;
 * WPP_E_BAD_ADDR otherwise, after the frames before it were written).
 * result[0] = pages copied.
 */
struct wpp_get_pages {
	wpp_u32 index;
	wpp_u32 count;
	wpp_u64 dest_phys;
};

#define WPP_GET_PAGES_FRAMES		(~0ULL)

/*
 * Debug: toggle flags and/or dump state to the log. result[0] = flags now;
 * SELFTEST also sets result[1] = persistent device size in bytes.
 * SMRAM_DIGEST (firmware built with it, else WPP_E_BAD_ARG): result[1] = SMRAM
 * base, result[2] = SMRAM size, result[3] = number of 4 KiB pages N; the reply
 * holds the command followed by N wpp_u32 CRC-32s, one per SMRAM page, so a
 * test can tell that no refused command changed SMRAM.
 */
#define WPP_DEBUG_F_VERBOSE		(1U << 0)	/* log every event */
#define WPP_DEBUG_F_TRACE_PAGES		(1U << 1)	/* log every page event */
#define WPP_DEBUG_OP_TOGGLE		1U
#define WPP_DEBUG_OP_DUMP		2U		/* counters + section use */
#define WPP_DEBUG_OP_SELFTEST		3U		/* device write/read-back check */
#define WPP_DEBUG_OP_SMRAM_DIGEST	4U		/* CRC-32 per SMRAM page */

struct wpp_debug_cmd {
	wpp_u32 op;
	wpp_u32 flags;
};

/*
 * Restore flags (payload of WPP_EV_RESTORE is an optional wpp_u32).
 * On success: result[0] = regions, result[1] = pages, result[2] = metadata
 * bytes, result[3] = snapshot sequence. The Metadata section then holds the
 * persisted metadata at offset 0, the Regions section the persisted regions
 * compacted from slot 0, and the Pages section the page list LINEARLY (entry
 * i = page i of the snapshot, as Get Pages indexes it; not bucketed). Tracking
 * events return WPP_E_STATE until the next WPP_EV_INIT.
 */
#define WPP_RESTORE_F_FORCE		(1U << 0)	/* accept a consumed snapshot */

/*
 * Event preconditions (WPP_E_STATE otherwise): ADD/REMOVE_REGION, ADD/REMOVE_PAGE,
 * PAGE_BATCH, WRITE_DATA and PERSIST need a preceding INIT; GET_PAGES and
 * CONSUME need a successful RESTORE. INIT result[0] = generation.
 * PERSIST result[0] = pages, result[1] = page bytes, result[2] = metadata
 * bytes, result[3] = duration in microseconds.
 * PAGE_BATCH stops at the first failing op: status = its error, result[0] =
 * ops applied before it.
 * REMOVE_PAGE matches virtual_address, and physical_address unless it is 0.
 * REMOVE_REGION matches virtual_address, and length unless it is 0.
 */

/*
 * Firmware counters, readable with READ_DATA from offset 0 of the Internal
 * section (refreshed after every event). The rest of the Internal section is
 * firmware scratch space (device bounce buffers), not an interface.
 */
#define WPP_INTERNAL_COUNTERS_OFFSET	0x0U
#define WPP_INTERNAL_SCRATCH_OFFSET	0x00100000U
#define WPP_INTERNAL_SCRATCH_SIZE	0x00400000U	/* 4 MiB */

struct wpp_counters {
	wpp_u64 generation;		/* INIT count since boot */
	wpp_u64 events[WPP_EV_COUNT];	/* calls per event */
	wpp_u64 errors;
	wpp_u64 regions_used;
	wpp_u64 pages_used;
	wpp_u64 metadata_used;		/* high-water mark of Metadata writes */
	wpp_u64 debug_flags;
};

/* ------------------------------------------------------------------------
 * Snapshot format on the persistent device.
 *
 *   0x0000  struct wpp_snapshot_header (4 KiB block, CRC'd)
 *   0x1000  struct wpp_snapshot_marker (4 KiB block, written LAST)
 *   0x2000  sections, each 4 KiB aligned: metadata (used bytes), regions (used
 *           slots, compacted), page list (compacted struct wpp_page_mapping in
 *           page-area order)
 *   ...     page area: page i at page_area_offset + i * 4096
 *
 * A persist first invalidates the marker, then writes sections, pages and the
 * header, and finally the marker whose header_crc32 must match the header.
 * ------------------------------------------------------------------------ */
#define WPP_SNAP_MAGIC			"WPPSNAP1"	/* 8 bytes, no NUL stored */
#define WPP_SNAP_FORMAT_VERSION		1
#define WPP_SNAP_HEADER_OFFSET		0x0000U
#define WPP_SNAP_MARKER_OFFSET		0x1000U
#define WPP_SNAP_DATA_OFFSET		0x2000U
#define WPP_SNAP_ALIGN			0x1000U

enum wpp_snap_section {
	WPP_SNAP_SEC_METADATA	= 0,
	WPP_SNAP_SEC_REGIONS	= 1,
	WPP_SNAP_SEC_PAGELIST	= 2,
	WPP_SNAP_SEC_COUNT	= 3,
};

struct wpp_snap_section_desc {
	wpp_u64 offset;			/* bytes from device start */
	wpp_u64 length;			/* bytes */
	wpp_u32 count;			/* entries (regions, pages) or bytes for metadata */
	wpp_u32 crc32;			/* CRC-32 (IEEE 802.3, as zlib.crc32) */
};

struct wpp_snapshot_header {
	char magic[8];			/* WPP_SNAP_MAGIC */
	wpp_u32 format_version;		/* WPP_SNAP_FORMAT_VERSION */
	wpp_u32 header_size;		/* sizeof(struct wpp_snapshot_header) */
	wpp_u64 sequence;		/* persist counter, increases per persist */
	wpp_u64 timestamp_us;		/* firmware timestamp at persist start */
	wpp_u64 region_base;		/* physical base of the reserved region */
	struct wpp_snap_section_desc sections[WPP_SNAP_SEC_COUNT];
	wpp_u64 page_area_offset;
	wpp_u64 page_count;
	wpp_u64 page_area_length;
	wpp_u32 page_crc32;		/* CRC-32 over the whole page area */
	wpp_u32 flags;			/* WPP_SNAP_F_* */
	wpp_u32 reserved;
	wpp_u32 header_crc32;		/* CRC-32 of this struct with this field = 0 */
};

/* header.flags: page_crc32 is valid. Always set by this firmware (pages it
 * cannot map for the CPU, e.g. above 4 GiB on the FPGA platform, are CRC'd from
 * a read-back of the device); a snapshot without it is refused on restore. */
#define WPP_SNAP_F_PAGE_CRC		(1U << 0)

#define WPP_MARKER_MAGIC		"WPPDONE!"	/* 8 bytes, no NUL stored */
#define WPP_MARKER_STATE_COMPLETE	1U
#define WPP_MARKER_STATE_CONSUMED	2U

struct wpp_snapshot_marker {
	char magic[8];			/* WPP_MARKER_MAGIC */
	wpp_u64 sequence;		/* equals header.sequence */
	wpp_u32 header_crc32;		/* equals header.header_crc32 */
	wpp_u32 state;			/* WPP_MARKER_STATE_* */
	wpp_u64 persist_time_us;	/* duration of the persist, for reports */
	wpp_u32 reserved;
	wpp_u32 marker_crc32;		/* CRC-32 of this struct with this field = 0 */
};

#if !defined(__cplusplus)
_Static_assert(sizeof(struct wpp_mailbox_hdr) == WPP_MAILBOX_HDR_SIZE, "mailbox hdr");
_Static_assert(sizeof(struct wpp_region) == 144, "region");
_Static_assert(sizeof(struct wpp_page_mapping) == 16, "page mapping");
_Static_assert(sizeof(struct wpp_page_op) == 24, "page op");
_Static_assert(sizeof(struct wpp_snap_section_desc) == 24, "section desc");
_Static_assert(sizeof(struct wpp_snapshot_header) == 152, "snapshot header");
_Static_assert(sizeof(struct wpp_data_cmd) == 16, "data cmd");
_Static_assert(sizeof(struct wpp_get_pages) == 16, "get pages");
_Static_assert(sizeof(struct wpp_page_batch) == 8, "page batch");
_Static_assert(sizeof(struct wpp_snapshot_marker) == 40, "marker");
#endif

#endif /* WPP_ABI_H */
