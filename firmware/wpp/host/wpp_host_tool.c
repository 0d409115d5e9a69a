// SPDX-License-Identifier: GPL-2.0-only
/*
 * wpp-host-tool: run the real WPP core on the host platform to produce and
 * check persistent-device images (for hil/snapshot.py's tests and by hand).
 *
 *   wpp-host-tool make-image IMAGE [--pages N] [--regions N] [--meta BYTES]
 *                 [--seed S] [--dev-size BYTES] [--cut BYTES] [--consume]
 *   wpp-host-tool restore IMAGE [--force]
 *
 * make-image tracks a synthetic process (N pages at VA 0x7f0000000000 + i *
 * 4096 whose byte k is (seed * 131 + i * 31 + k * 7 + (k >> 8)) & 0xff, frames
 * scattered in the fake RAM; regions; metadata byte k = (seed + k) & 0xff),
 * persists it with the device cut off after --cut bytes if given, and prints
 * "status=<n> total_bytes=<n>" (bytes a complete persist wrote when not cut).
 * restore prints "status=<n> name=<status name>" as the firmware decides.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_platform.h"

#define VBASE	0x7f0000000000ULL

static int call(struct host_platform *hp, wpp_u8 ev, const void *p, wpp_u32 len)
{
	return host_call(hp, ev, p, len);
}

static int make_image(const char *path, int argc, char **argv)
{
	struct host_platform hp;
	unsigned long pages = 64, regions = 3, meta = 1000, seed = 1;
	unsigned long long dev_size = 16ULL << 20;
	long long cut = -1;
	int consume = 0, rc;
	unsigned long frames = HOST_RAM_SIZE / WPP_PAGE_SIZE;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--consume")) {
			consume = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "missing value for %s\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--pages"))
			pages = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--regions"))
			regions = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--meta"))
			meta = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--seed"))
			seed = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--dev-size"))
			dev_size = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--cut"))
			cut = strtoll(v, NULL, 0);
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	if (pages > frames || meta > WPP_METADATA_SIZE) {
		fprintf(stderr, "at most %lu pages, %u metadata bytes\n", frames,
			WPP_METADATA_SIZE);
		return 2;
	}
	if (host_platform_open(&hp, path, dev_size, 1)) {
		perror(path);
		return 2;
	}
	call(&hp, WPP_EV_INIT, NULL, 0);
	for (unsigned long r = 0; r < regions; r++) {
		struct wpp_region reg;

		memset(&reg, 0, sizeof(reg));
		snprintf(reg.file_path, sizeof(reg.file_path), r % 2 ? "" : "/usr/lib/file%lu.so",
			 r);
		reg.state = r % 2 ? 0 : WPP_REGION_F_FILE;
		reg.virtual_address = VBASE + r * 0x10000000ULL;
		reg.length = 0x200000 + r * 0x1000;
		reg.protection = r % 4;
		reg.flags = 0x22;
		reg.file_offset = r * 4096;
		if (call(&hp, WPP_EV_ADD_REGION, &reg, sizeof(reg)) != WPP_OK)
			return 1;
	}
	for (unsigned long off = 0; off < meta; off += 2048) {
		wpp_u8 buf[sizeof(struct wpp_data_cmd) + 2048];
		struct wpp_data_cmd c = { WPP_SECTION_METADATA, (wpp_u32)off,
					  (wpp_u32)(meta - off < 2048 ? meta - off : 2048), 0 };

		memcpy(buf, &c, sizeof(c));
		for (wpp_u32 k = 0; k < c.size; k++)
			buf[sizeof(c) + k] = (wpp_u8)(seed + off + k);
		if (call(&hp, WPP_EV_WRITE_DATA, buf, sizeof(c) + c.size) != WPP_OK)
			return 1;
	}
	for (unsigned long i = 0; i < pages; i++) {
		/* runs of 8 contiguous frames, runs scattered */
		unsigned long frame = ((i / 8) * 97 % (frames / 8)) * 8 + i % 8;
		wpp_u64 pa = HOST_RAM_BASE + (wpp_u64)frame * WPP_PAGE_SIZE;
		wpp_u8 *p = host_phys(&hp, pa);
		struct wpp_page_mapping m = { VBASE + i * WPP_PAGE_SIZE, pa };

		for (unsigned int k = 0; k < WPP_PAGE_SIZE; k++)
			p[k] = (wpp_u8)(seed * 131 + i * 31 + k * 7 + (k >> 8));
		if (call(&hp, WPP_EV_ADD_PAGE, &m, sizeof(m)) != WPP_OK) {
			fprintf(stderr, "add page %lu failed\n", i);
			return 1;
		}
	}
	hp.write_budget = cut >= 0 ? cut : (1LL << 50);
	rc = call(&hp, WPP_EV_PERSIST, NULL, 0);
	printf("status=%d total_bytes=%lld\n", rc, cut >= 0 ? cut - hp.write_budget :
	       (1LL << 50) - hp.write_budget);
	fputs(hp.log ? hp.log : "", stderr);
	host_platform_close(&hp);
	if (rc == WPP_OK && consume) {
		wpp_u32 flags = 0;

		if (host_platform_open(&hp, path, 0, 0))
			return 2;
		if (call(&hp, WPP_EV_RESTORE, &flags, sizeof(flags)) != WPP_OK ||
		    call(&hp, WPP_EV_CONSUME, NULL, 0) != WPP_OK)
			return 1;
		host_platform_close(&hp);
	}
	return 0;
}

static int restore(const char *path, int force)
{
	struct host_platform hp;
	wpp_u32 flags = force ? WPP_RESTORE_F_FORCE : 0;
	int rc;

	if (host_platform_open(&hp, path, 0, 0)) {
		perror(path);
		return 2;
	}
	rc = call(&hp, WPP_EV_RESTORE, &flags, sizeof(flags));
	printf("status=%d name=%s\n", rc, wpp_status_name(rc));
	fputs(hp.log ? hp.log : "", stderr);
	host_platform_close(&hp);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "make-image"))
		return make_image(argv[2], argc - 3, argv + 3);
	if (argc >= 3 && !strcmp(argv[1], "restore"))
		return restore(argv[2], argc > 3 && !strcmp(argv[3], "--force"));
	fprintf(stderr, "usage: %s make-image IMAGE [opts] | restore IMAGE [--force]\n", argv[0]);
	return 2;
}
