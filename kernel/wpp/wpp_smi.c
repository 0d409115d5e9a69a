// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp_smi.c - the SMI transport: the mailbox at the start of the
 * firmware-reserved region and the software SMI through APMC port 0xb2.
 *
 * Calls are serialized by a raw spinlock with interrupts off, because they
 * are made from page-fault and unmap paths that may hold other spinlocks.
 * Every call checks that the firmware answered this very request (seq_ack)
 * and what it said (status).
 */
#define pr_fmt(fmt) "wpp: " fmt

#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/minmax.h>
#include "wpp_internal.h"

static DEFINE_RAW_SPINLOCK(wpp_smi_lock);
static void *wpp_mbox;		/* WPP_MAILBOX_SIZE bytes, write-back mapped */
static u32 wpp_seq;
static struct wpp_smi_stats wpp_stats;

static const char *const wpp_event_names[WPP_EV_COUNT] = {
	"init", "add_region", "remove_region", "add_page", "remove_page",
	"page_batch", "write_data", "read_data", "persist", "restore",
	"get_pages", "debug", "consume",
};

const char *wpp_event_name(unsigned int event)
{
	if (event < WPP_EV_FIRST || event > WPP_EV_LAST)
		return "?";
	return wpp_event_names[event - WPP_EV_FIRST];
}

int wpp_smi_init(void)
{
	wpp_mbox = memremap(wpp_region_base + WPP_MAILBOX_OFFSET, WPP_MAILBOX_SIZE,
			    MEMREMAP_WB);
	if (!wpp_mbox) {
		pr_err("cannot map the mailbox at %#llx\n",
		       wpp_region_base + WPP_MAILBOX_OFFSET);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Raise the SMI. Not inlined and followed by a jump so that the out is the
 * last instruction of a QEMU TCG translation block: TCG takes the pending SMI
 * at the next block boundary, so the firmware has run before we read the
 * mailbox back. On hardware the SMI is taken before the next instruction.
 */
static noinline void wpp_smi_raise(u8 event)
{
	asm volatile("outb %b0, %w1\n\t"
		     "jmp 1f\n"
		     "1:"
		     : : "a" (event), "Nd" ((u16)WPP_APM_CNT_PORT) : "memory");
}

/*
 * How often one request's doorbell is rung before "no answer". With several
 * CPUs the SMI entry lets one CPU run the handler while the others wait; if
 * that CPU took a late copy of the previous SMI and read the mailbox before
 * this request was complete, our own SMI waits behind it and is dropped. The
 * request is still unanswered, and nothing has acted on it, so ringing again
 * is safe (an answered request is never rung again).
 */
#define WPP_SMI_RINGS	4

int wpp_smi(struct wpp_call *c)
{
	struct wpp_mailbox_hdr *hdr = wpp_mbox;
	u8 *payload = (u8 *)wpp_mbox + WPP_MAILBOX_HDR_SIZE;
	u32 len = c->len1 + c->len2;
	unsigned long flags;
	unsigned int idx, ring;
	u32 seq, ack = 0, rlen;
	s32 status;
	u64 t0, dt;
	int ret = 0;

	c->status = -1;
	if (!wpp_mbox)
		return -ENODEV;
	if (c->event < WPP_EV_FIRST || c->event > WPP_EV_LAST)
		return -EINVAL;
	if (len > WPP_MAILBOX_PAYLOAD_MAX || c->len1 > WPP_MAILBOX_PAYLOAD_MAX ||
	    c->out_len > WPP_MAILBOX_PAYLOAD_MAX - c->out_off)
		return -E2BIG;
	idx = c->event - WPP_EV_FIRST;

	raw_spin_lock_irqsave(&wpp_smi_lock, flags);
	seq = ++wpp_seq;
	if (c->len1)
		memcpy(payload, c->p1, c->len1);
	if (c->len2)
		memcpy(payload + c->len1, c->p2, c->len2);
	hdr->magic = WPP_MAILBOX_MAGIC;
	hdr->abi_version = WPP_ABI_VERSION;
	hdr->event = c->event;
	hdr->seq_ack = seq - 1;
	hdr->status = -1;
	hdr->payload_len = len;
	memset(hdr->result, 0, sizeof(hdr->result));
	/*
	 * seq goes last: until it changes, seq == seq_ack and an SMI that reaches
	 * the handler now (another CPU's late copy of the previous broadcast SMI,
	 * which the handler takes for an APM SMI) answers "duplicate" and leaves
	 * the mailbox alone. Once seq is visible the request is complete, so such
	 * an SMI may only answer this very request early (the firmware reads the
	 * port again once every CPU is held, so it judges the request by our
	 * doorbell, not the previous one); ours then finds it answered. Writing
	 * seq first let a late SMI act on a half-written request and had seq_ack
	 * overwritten after its answer ("no answer", or a page removed twice:
	 * NOT_FOUND).
	 */
	wmb();
	WRITE_ONCE(hdr->seq, seq);
	/* the request must be in memory before the SMI handler reads it */
	mb();

	t0 = ktime_get_ns();
	for (ring = 0; ring < WPP_SMI_RINGS; ring++) {
		if (ring)
			wpp_stats.rerung++;
		wpp_smi_raise(c->event);
		/* read the answer only after the SMI returned */
		mb();
		ack = READ_ONCE(hdr->seq_ack);
		if (ack == seq)
			break;
	}
	dt = ktime_get_ns() - t0;

	status = READ_ONCE(hdr->status);
	rlen = READ_ONCE(hdr->payload_len);
	if (ack != seq) {
		ret = -ETIMEDOUT;
		wpp_stats.no_answer++;
	} else {
		c->status = status;
		memcpy(c->result, hdr->result, sizeof(c->result));
		if (status != WPP_OK)
			ret = -EIO;
		else if (c->out_len && rlen < c->out_off + c->out_len)
			ret = -EPROTO;
		else if (c->out_len)
			memcpy(c->out, payload + c->out_off, c->out_len);
	}
	wpp_stats.calls[idx]++;
	wpp_stats.ns[idx] += dt;
	if (ret)
		wpp_stats.errors[idx]++;
	wpp_stats.last_status = ack == seq ? status : -1;
	wpp_stats.last_event = c->event;
	raw_spin_unlock_irqrestore(&wpp_smi_lock, flags);

	if (ret == -ETIMEDOUT)
		pr_err_ratelimited("%s (%#x) seq %u: no answer from firmware (seq_ack %u)\n",
				   wpp_event_name(c->event), c->event, seq, ack);
	else if (ret)
		pr_err_ratelimited("%s (%#x) seq %u failed: status %d, reply %u bytes\n",
				   wpp_event_name(c->event), c->event, seq, status, rlen);
	return ret;
}

int wpp_smi_simple(u16 event, const void *payload, u32 len)
{
	struct wpp_call c = { .event = event, .p1 = payload, .len1 = len };

	return wpp_smi(&c);
}

#define WPP_DATA_CHUNK	(1U << 20)

int wpp_read_data(u32 section, u32 offset, void *buf, u32 size)
{
	while (size) {
		u32 n = min(size, WPP_DATA_CHUNK);
		struct wpp_data_cmd cmd = { .section = section, .offset = offset, .size = n };
		struct wpp_call c = {
			.event = WPP_EV_READ_DATA, .p1 = &cmd, .len1 = sizeof(cmd),
			.out = buf, .out_off = sizeof(cmd), .out_len = n,
		};
		int ret = wpp_smi(&c);

		if (ret)
			return ret;
		buf += n;
		offset += n;
		size -= n;
	}
	return 0;
}

int wpp_write_data(u32 section, u32 offset, const void *buf, u32 size)
{
	while (size) {
		u32 n = min(size, WPP_DATA_CHUNK);
		struct wpp_data_cmd cmd = { .section = section, .offset = offset, .size = n };
		struct wpp_call c = {
			.event = WPP_EV_WRITE_DATA, .p1 = &cmd, .len1 = sizeof(cmd),
			.p2 = buf, .len2 = n,
		};
		int ret = wpp_smi(&c);

		if (ret)
			return ret;
		buf += n;
		offset += n;
		size -= n;
	}
	return 0;
}

void wpp_smi_get_stats(struct wpp_smi_stats *st)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&wpp_smi_lock, flags);
	*st = wpp_stats;
	raw_spin_unlock_irqrestore(&wpp_smi_lock, flags);
}
