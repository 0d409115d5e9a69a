/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What every host C test program shares: checks that stop the test at the
 * first failure (file:line on stderr, exit 1) and a main() body that runs one
 * test by name, so pytest can run each as its own case:
 *   PROGRAM NAME DEVICE_FILE     (exit 0 and "ok NAME" = pass)
 *   PROGRAM --list
 * The tests[] tables stay in the test files: the pytest wrappers read the
 * names from there.
 */
#ifndef WPP_TEST_HARNESS_H
#define WPP_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		exit(1); \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { \
		fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n", __FILE__, \
			__LINE__, #a, _a, #b, _b); \
		exit(1); \
	} \
} while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct test {
	const char *name;
	void (*fn)(void);
};

/* The persistent device file of the test being run (argv[2]). */
static const char *dev_path;

static inline int run_named_test(int argc, char **argv, const struct test *tests, size_t n)
{
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: %s NAME DEVICE_FILE | --list\n", argv[0]);
		return 2;
	}
	dev_path = argv[2];
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(argv[1], tests[i].name)) {
			tests[i].fn();
			printf("ok %s\n", tests[i].name);
			return 0;
		}
	}
	fprintf(stderr, "unknown test %s\n", argv[1]);
	return 2;
}

#endif /* WPP_TEST_HARNESS_H */
