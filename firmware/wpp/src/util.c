/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Small freestanding helpers for the WPP core: a printf subset for the
 * "wpp: key=value" log lines (coreboot's printk is not built into SMM unless
 * DEBUG_SMI, which would also print to the UART), CRC-32 and name tables.
 */
#include <stdarg.h>

#include "wpp_core.h"

struct outbuf {
	char *buf;
	size_t size;
	size_t len;
};

static void put(struct outbuf *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct outbuf *o, unsigned long long v, unsigned int base, int neg,
		    int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		unsigned int d = (unsigned int)(v % base);

		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v && n < (int)sizeof(tmp));
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

int wpp_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct outbuf o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		int lng = 0, width = 0;
		char pad = ' ';
		unsigned long long u;
		long long s;

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		if (*fmt == 'z') {
			lng = sizeof(size_t) == sizeof(long long) ? 2 : 0;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *str = va_arg(ap, const char *);

			if (!str)
				str = "(null)";
			while (*str)
				put(&o, *str++);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 'd':
			if (lng >= 2)
				s = va_arg(ap, long long);
			else if (lng == 1)
				s = va_arg(ap, long);
			else
				s = va_arg(ap, int);
			put_num(&o, s < 0 ? 0ULL - (unsigned long long)s : (unsigned long long)s,
				10, s < 0, width, pad);
			break;
		case 'u':
		case 'x':
			if (lng >= 2)
				u = va_arg(ap, unsigned long long);
			else if (lng == 1)
				u = va_arg(ap, unsigned long);
			else
				u = va_arg(ap, unsigned int);
			put_num(&o, u, *fmt == 'x' ? 16 : 10, 0, width, pad);
			break;
		case '%':
			put(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			put(&o, '%');
			put(&o, *fmt);
			break;
		}
	}
	if (o.size)
		o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
	return (int)o.len;
}

int wpp_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = wpp_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void wpp_logf(const struct wpp_platform *plat, const char *fmt, ...)
{
	char line[320];
	va_list ap;
	int n;

	if (!plat || !plat->log)
		return;
	line[0] = 'w';
	line[1] = 'p';
	line[2] = 'p';
	line[3] = ':';
	line[4] = ' ';
	va_start(ap, fmt);
	n = wpp_vsnprintf(line + 5, sizeof(line) - 5, fmt, ap);
	va_end(ap);
	n += 5;
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	plat->log(plat->ctx, line, (size_t)n);
}

/*
 * CRC-32 (IEEE, reflected, as zlib), slicing-by-8: eight 1 KiB tables, eight
 * bytes per step. The page area is CRC'd on every persist and restore, so this
 * sits on the critical path (byte-at-a-time was ~6x slower than the memcpy).
 */
static wpp_u32 crc_table[8][256];
static int crc_table_ready;

static void crc_init(void)
{
	for (wpp_u32 i = 0; i < 256; i++) {
		wpp_u32 c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320U ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (wpp_u32 i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
				crc_table[0][crc_table[t - 1][i] & 0xff];
	crc_table_ready = 1;
}

wpp_u32 wpp_crc32(wpp_u32 crc, const void *buf, size_t len)
{
	const wpp_u8 *p = buf;

	if (!crc_table_ready)
		crc_init();
	crc = ~crc;
	while (len && ((unsigned long)p & 7)) {
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		wpp_u32 lo = crc ^ ((wpp_u32)p[0] | (wpp_u32)p[1] << 8 | (wpp_u32)p[2] << 16 |
				    (wpp_u32)p[3] << 24);
		wpp_u32 hi = (wpp_u32)p[4] | (wpp_u32)p[5] << 8 | (wpp_u32)p[6] << 16 |
			(wpp_u32)p[7] << 24;

		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
			crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
			crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
			crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/*
 * The CPU copy for page data (mmio device: the twin's ivshmem BAR): 32 bytes
 * per step through eight 32-bit registers. Under QEMU TCG, where the twin runs
 * SMM, string instructions are emulated one element at a time: measured in the
 * guest (64-bit user space, 32 MiB, loaded 2-core host) rep movsl 0.45-0.59,
 * rep movsb 0.15-0.21, SSE2 movdqu x4/x8 0.3-0.98 and movntdq 0.13-0.95, this
 * loop 0.74-1.45 GiB/s. It needs no SSE, so no FPU/SSE state of the interrupted
 * context has to be saved in SMM. Real hardware wants ERMS `rep movsb` (or
 * wide moves) instead: see firmware/README.md.
 */
void wpp_copy(void *dst, const void *src, size_t len)
{
	wpp_u8 *d = dst;
	const wpp_u8 *s = src;

	if (!(((unsigned long)d | (unsigned long)s) & 3)) {
		wpp_u32 *dw = (wpp_u32 *)dst;
		const wpp_u32 *sw = (const wpp_u32 *)src;

		for (; len >= 32; len -= 32, dw += 8, sw += 8) {
			wpp_u32 a = sw[0], b = sw[1], c = sw[2], e = sw[3];
			wpp_u32 f = sw[4], g = sw[5], h = sw[6], k = sw[7];

			dw[0] = a;
			dw[1] = b;
			dw[2] = c;
			dw[3] = e;
			dw[4] = f;
			dw[5] = g;
			dw[6] = h;
			dw[7] = k;
			/* keeps gcc from turning the loop back into memcpy (rep movsl) */
			__asm__ __volatile__("" ::: "memory");
		}
		d = (wpp_u8 *)dw;
		s = (const wpp_u8 *)sw;
	}
	while (len--)
		*d++ = *s++;
}

/*
 * Copy and CRC in one pass: each 8-byte group is loaded once, stored and fed to
 * the slicing-by-8 step, so the CRC is over exactly the bytes written (a
 * separate CRC pass read the source twice: another CPU changing it in between
 * gave a snapshot whose CRC did not match its pages) and the source is read
 * once instead of twice, which under TCG is most of the cost.
 */
wpp_u32 wpp_copy_crc32(wpp_u32 crc, void *dst, const void *src, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	wpp_u8 *d = dst;
	const wpp_u8 *s = src;

	if (!crc_table_ready)
		crc_init();
	if (!(((unsigned long)d | (unsigned long)s) & 3)) {
		wpp_u32 *dw = (wpp_u32 *)dst;
		const wpp_u32 *sw = (const wpp_u32 *)src;

		crc = ~crc;
		for (; len >= 8; len -= 8, dw += 2, sw += 2) {
			wpp_u32 lo = sw[0], hi = sw[1];

			dw[0] = lo;
			dw[1] = hi;
			lo ^= crc;
			crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
				crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
				crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
				crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
			__asm__ __volatile__("" ::: "memory");
		}
		crc = ~crc;
		d = (wpp_u8 *)dw;
		s = (const wpp_u8 *)sw;
	}
	/* unaligned or the tail: CRC what was copied, from the destination */
	wpp_copy(d, s, len);
	return wpp_crc32(crc, d, len);
#else
	wpp_copy(dst, src, len);
	return wpp_crc32(crc, dst, len);
#endif
}

static const char *const status_names[WPP_E_COUNT] = {
	[WPP_OK] = "ok",
	[WPP_E_BAD_MAILBOX] = "bad_mailbox",
	[WPP_E_BAD_EVENT] = "bad_event",
	[WPP_E_BAD_ARG] = "bad_arg",
	[WPP_E_BOUNDS] = "bounds",
	[WPP_E_READ_ONLY] = "read_only",
	[WPP_E_NO_SLOT] = "no_slot",
	[WPP_E_NOT_FOUND] = "not_found",
	[WPP_E_BAD_ADDR] = "bad_addr",
	[WPP_E_STATE] = "state",
	[WPP_E_NO_DEVICE] = "no_device",
	[WPP_E_DEVICE_IO] = "device_io",
	[WPP_E_TIMEOUT] = "timeout",
	[WPP_E_TOO_BIG] = "too_big",
	[WPP_E_NO_SNAPSHOT] = "no_snapshot",
	[WPP_E_INCOMPLETE] = "incomplete",
	[WPP_E_CORRUPT] = "corrupt",
	[WPP_E_VERSION] = "version",
	[WPP_E_CONSUMED] = "consumed",
	[WPP_E_DEVICE_MOVED] = "device_moved",
};

const char *wpp_status_name(int status)
{
	if (status < 0 || status >= WPP_E_COUNT)
		return "unknown";
	return status_names[status];
}

static const char *const event_names[WPP_EV_COUNT] = {
	"init", "add_region", "remove_region", "add_page", "remove_page", "page_batch",
	"write_data", "read_data", "persist", "restore", "get_pages", "debug", "consume",
};

const char *wpp_event_name(unsigned int event)
{
	if (event < WPP_EV_FIRST || event > WPP_EV_LAST)
		return "unknown";
	return event_names[event - WPP_EV_FIRST];
}
