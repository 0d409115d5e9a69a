/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The register-pattern mixer of the guest tools that fill registers with known
 * values before a power loss and check them after recreation (wpp-counter,
 * wpp-threads): one definition, so the two agree on what a seed produces.
 */
#ifndef WPP_MIX_H
#define WPP_MIX_H

#include <stdint.h>

/* splitmix64's finaliser: distinct, well-spread 64-bit values from small seeds */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

#endif /* WPP_MIX_H */
