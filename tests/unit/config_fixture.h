/*
 * Shared by the configuration unit tests: a private working directory with
 * placeholder certificate files (the loader checks that named files exist),
 * loading YAML from a string while capturing every message, and checking a
 * CIDR block by its text.
 */
#ifndef IG_TESTS_UNIT_CONFIG_FIXTURE_H
#define IG_TESTS_UNIT_CONFIG_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "policy/cidr.h"

struct cfgfix {
	char path[64];
	char oldcwd[4096];
};

/* Creates path with placeholder content and the given mode. */
static void
touch(const char *path, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("placeholder\n", f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/*
 * Makes a directory /tmp/<prefix>XXXXXX, enters it and creates cert.pem and
 * key.pem there. Returns the fixture (free with cfgfix_leave()) or NULL.
 */
static struct cfgfix *
cfgfix_enter(const char *prefix)
{
	struct cfgfix *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	snprintf(t->path, sizeof(t->path), "/tmp/%sXXXXXX", prefix);
	if (getcwd(t->oldcwd, sizeof(t->oldcwd)) == NULL || mkdtemp(t->path) == NULL ||
	    chdir(t->path) != 0) {
		free(t);
		return NULL;
	}
	touch("cert.pem", 0644);
	touch("key.pem", 0600);
	return t;
}

/* Removes cert.pem and key.pem, leaves and removes the directory (which the
   caller has emptied of anything else). Returns 0 or -1. */
static int
cfgfix_leave(struct cfgfix *t)
{
	unlink("cert.pem");
	unlink("key.pem");
	int rc = chdir(t->oldcwd) == 0 && rmdir(t->path) == 0 ? 0 : -1;
	free(t);
	return rc;
}

/*
 * Loads yaml (named "t.yaml") with flags; returns what was written to errf
 * (free it). *out gets the config when out is not NULL (else it is freed).
 */
static char *
load_flags(const char *yaml, unsigned flags, int *rc, struct ig_config **out)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *ef = open_memstream(&buf, &size);
	assert_non_null(ef);
	struct ig_config *cfg = NULL;
	*rc = ig_config_load_string_flags("t.yaml", yaml, strlen(yaml), flags, &cfg, ef);
	fclose(ef);
	if (*rc == 0)
		assert_non_null(cfg);
	else
		assert_null(cfg);
	if (out != NULL)
		*out = cfg;
	else
		ig_config_free(cfg);
	return buf;
}

/* Asserts that CIDR block c reads as text ("10.20.0.0/16"). Inline, so a
 * test that does not use it is not warned about it. */
static inline void
assert_cidr(const struct ig_cidr *c, const char *text)
{
	char buf[64];
	ig_cidr_format(c, buf, sizeof(buf));
	assert_string_equal(buf, text);
}

/* load_flags() with no flags. */
static char *
load(const char *yaml, int *rc, struct ig_config **out)
{
	return load_flags(yaml, 0, rc, out);
}

/*
 * The smallest valid configuration: 10 lines, so a section appended to it
 * starts at line 11 (tests check error positions against that).
 */
#define CFGFIX_BASE \
    "listeners:\n" \
    "  - name: imaps\n" \
    "    listen: \"127.0.0.1:993\"\n" \
    "    tls: implicit\n" \
    "tls:\n" \
    "  certificates:\n" \
    "    - cert: cert.pem\n" \
    "      key: key.pem\n" \
    "backend:\n" \
    "  address: \"127.0.0.1:1143\"\n"

/*
 * A test file's cmocka group setup and teardown (named setup and teardown):
 * every test runs in one fixture directory named after prefix.
 */
#define CFGFIX_SETUP_TEARDOWN(prefix)                 \
	static int                                    \
	setup(void **state)                           \
	{                                             \
		struct cfgfix *t = cfgfix_enter(prefix); \
		if (t == NULL)                        \
			return -1;                    \
		*state = t;                           \
		return 0;                             \
	}                                             \
	static int                                    \
	teardown(void **state)                        \
	{                                             \
		return cfgfix_leave(*state);          \
	}

#endif /* IG_TESTS_UNIT_CONFIG_FIXTURE_H */
