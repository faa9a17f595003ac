/*
 * Unit tests for the app_passwords section (config/apppass.c): the
 * documented shape into struct ig_apppass_conf, the defaults (OWASP's
 * Argon2id minimum), the parameters reaching the hash (a password hashed
 * with the loaded parameters carries them), and every error and warning
 * with its exact text at its FILE:LINE:COL.
 */
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

#include "apppass/hash.h"
#include "config/config.h"
#include "config_fixture.h"
#include "util/err.h"

static int
setup(void **state)
{
	struct cfgfix *t = cfgfix_enter("igap");
	if (t == NULL)
		return -1;
	if (mkdir("lib", 0700) != 0) {
		cfgfix_leave(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	rmdir("lib/dir.db");
	rmdir("lib");
	return cfgfix_leave(*state);
}

/* The documented shape, from line 11. */
static void
test_example(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE
	    "app_passwords:\n"
	    "  store: lib/app-passwords.db\n"
	    "  hash: { memory: 64MiB, iterations: 3, parallelism: 2 }\n"
	    "  max_concurrent_verifications: 8\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->apppass.store, "lib/app-passwords.db");
	assert_int_equal(cfg->apppass.hash.memory_kib, 64 * 1024);
	assert_int_equal(cfg->apppass.hash.iterations, 3);
	assert_int_equal(cfg->apppass.hash.parallelism, 2);
	assert_int_equal(cfg->apppass.max_concurrent_verifications, 8);
	ig_config_free(cfg);
	free(msgs);
}

/* Without the section: no store, and the defaults. With the store alone,
 * or a partial hash, the other values keep their defaults. */
static void
test_defaults(void **state)
{
	(void)state;
	static const struct {
		const char *yaml;
		const char *store;
		uint32_t m, t, p;
	} rows[] = {
		{ CFGFIX_BASE, NULL, 19456, 2, 1 },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n", "lib/ap.db", 19456, 2, 1 },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: {}\n", "lib/ap.db",
		  19456, 2, 1 },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash:\n", "lib/ap.db",
		  19456, 2, 1 },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { iterations: 4 }\n",
		  "lib/ap.db", 19456, 4, 1 },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: 19456KiB }\n",
		  "lib/ap.db", 19456, 2, 1 },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: 1GiB, "
		  "parallelism: 8 }\n", "lib/ap.db", 1048576, 2, 8 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc;
		struct ig_config *cfg;
		char *msgs = load(rows[i].yaml, &rc, &cfg);
		assert_string_equal(msgs, "");
		assert_int_equal(rc, 0);
		if (rows[i].store == NULL)
			assert_null(cfg->apppass.store);
		else
			assert_string_equal(cfg->apppass.store, rows[i].store);
		assert_int_equal(cfg->apppass.hash.memory_kib, rows[i].m);
		assert_int_equal(cfg->apppass.hash.iterations, rows[i].t);
		assert_int_equal(cfg->apppass.hash.parallelism, rows[i].p);
		assert_int_equal(cfg->apppass.max_concurrent_verifications, 4);
		assert_true(ig_apppass_hash_params_ok(&cfg->apppass.hash));
		ig_config_free(cfg);
		free(msgs);
	}
}

/* What the loader stores is what the hash uses: the PHC string of a
 * password hashed with the loaded parameters states them. */
static void
test_parameters_reach_the_hash(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char phc[IG_APPPASS_PHC_MAX + 1];
	struct ig_apppass_hash_params got;
	char *msgs = load(CFGFIX_BASE
	    "app_passwords:\n"
	    "  store: lib/ap.db\n"
	    "  hash: { memory: 8MiB, iterations: 5, parallelism: 2 }\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(ig_apppass_hash(&cfg->apppass.hash, "s3cr3t", 6, phc, sizeof(phc)), 0);
	assert_int_equal(strncmp(phc, "$argon2id$v=19$m=8192,t=5,p=2$", 30), 0);
	assert_int_equal(ig_apppass_hash_params_of(phc, &got), 0);
	assert_memory_equal(&got, &cfg->apppass.hash, sizeof(got));
	ig_config_free(cfg);
	free(msgs);
}

/* Bounds and shapes, each at its place. */
static void
test_errors(void **state)
{
	(void)state;
	int rc;
	char *msgs = load(CFGFIX_BASE
	    "app_passwords:\n"                                           /* 11 */
	    "  store: nodir/ap.db\n"
	    "  hash:\n"
	    "    memory: 19\n"
	    "    iterations: 0\n"                                        /* 15 */
	    "    parallelism: 9\n"
	    "    memroy: 1MiB\n"
	    "  max_concurrent_verifications: 0\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:10: cannot use 'nodir/ap.db' for 'app_passwords.store': directory "
	    "'nodir': No such file or directory\n"
	    "t.yaml:14:13: invalid size '19' for 'app_passwords.hash.memory': expected a whole "
	    "number with KiB, MiB or GiB (e.g. 19MiB)\n"
	    "t.yaml:15:17: 'app_passwords.hash.iterations' must be between 1 and 16 (got 0)\n"
	    "t.yaml:16:18: 'app_passwords.hash.parallelism' must be between 1 and 8 (got 9)\n"
	    "t.yaml:17:5: unknown key 'memroy' in 'app_passwords.hash' (did you mean "
	    "'memory'?)\n"
	    "t.yaml:18:33: 'app_passwords.max_concurrent_verifications' must be between 1 and "
	    "256 (got 0)\n");
	free(msgs);

	static const struct {
		const char *yaml;
		const char *msg;
	} rows[] = {
		{ CFGFIX_BASE "app_passwords:\n  hash: { memory: 19MiB }\n",
		  "t.yaml:12:3: missing required key 'store' in 'app_passwords'\n" },
		{ CFGFIX_BASE "app_passwords:\n",
		  "t.yaml:11:15: missing required key 'store' in 'app_passwords'\n" },
		{ CFGFIX_BASE "app_passwords: lib/ap.db\n",
		  "t.yaml:11:16: 'app_passwords' must be a mapping, not a scalar\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: 6MiB, "
		  "iterations: 5 }\n",
		  "t.yaml:13:19: 'app_passwords.hash.memory' must be between 7MiB and 1GiB (got "
		  "6MiB)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: 1025MiB }\n",
		  "t.yaml:13:19: 'app_passwords.hash.memory' must be between 7MiB and 1GiB (got "
		  "1025MiB)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: 19MB }\n",
		  "t.yaml:13:19: invalid size '19MB' for 'app_passwords.hash.memory': expected a "
		  "whole number with KiB, MiB or GiB (e.g. 19MiB)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: -1MiB }\n",
		  "t.yaml:13:19: invalid size '-1MiB' for 'app_passwords.hash.memory': expected a "
		  "whole number with KiB, MiB or GiB (e.g. 19MiB)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { memory: "
		  "99999999999999999999GiB }\n",
		  "t.yaml:13:19: invalid size '99999999999999999999GiB' for "
		  "'app_passwords.hash.memory': expected a whole number with KiB, MiB or GiB (e.g. "
		  "19MiB)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hash: { iterations: 17 }\n",
		  "t.yaml:13:23: 'app_passwords.hash.iterations' must be between 1 and 16 (got "
		  "17)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/dir.db\n",
		  "t.yaml:12:10: cannot use 'lib/dir.db' for 'app_passwords.store': it exists and "
		  "is not a regular file\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hint: \"two\\tcolumns\"\n",
		  "t.yaml:13:9: invalid value 'two\\x09columns' for 'app_passwords.hint': expected 1 "
		  "to 200 characters of printable ASCII (no control or non-ASCII characters)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  hint: \"caf\xc3\xa9\"\n",
		  "t.yaml:13:9: invalid value 'caf\\xc3\\xa9' for 'app_passwords.hint': expected 1 "
		  "to 200 characters of printable ASCII (no control or non-ASCII characters)\n" },
		{ CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n  store: lib/ap2.db\n",
		  "t.yaml:13:3: duplicate key 'store' in 'app_passwords' (first at 12:3)\n" },
	};
	assert_int_equal(mkdir("lib/dir.db", 0700), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *m = load(rows[i].yaml, &rc, NULL);
		assert_int_equal(rc, IG_ECONFIG);
		assert_string_equal(m, rows[i].msg);
		free(m);
	}
}

/* Below OWASP's table: a warning at the memory key, and the load
 * succeeds; at or above it, silence. */
static void
test_owasp_warning(void **state)
{
	(void)state;
	static const struct {
		const char *hash;
		bool warn;
	} rows[] = {
		{ "{ memory: 45MiB, iterations: 1 }", true },
		{ "{ memory: 46MiB, iterations: 1 }", false },
		{ "{ memory: 18MiB, iterations: 2 }", true },
		{ "{ memory: 19MiB, iterations: 2 }", false },
		{ "{ memory: 11MiB, iterations: 3 }", true },
		{ "{ memory: 12MiB, iterations: 3 }", false },
		{ "{ memory: 8MiB, iterations: 4 }", true },
		{ "{ memory: 9MiB, iterations: 4 }", false },
		{ "{ memory: 7MiB, iterations: 5 }", false },
		{ "{ memory: 7MiB, iterations: 16 }", false },
		{ "{ iterations: 1 }", true },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char yaml[512];
		int rc;
		struct ig_config *cfg;
		snprintf(yaml, sizeof(yaml), CFGFIX_BASE "app_passwords:\n  store: lib/ap.db\n"
		    "  hash: %s\n", rows[i].hash);
		char *m = load(yaml, &rc, &cfg);
		assert_int_equal(rc, 0);
		if (rows[i].warn) {
			assert_non_null(strstr(m, "t.yaml:13:"));
			assert_non_null(strstr(m, ": warning: 'app_passwords.hash' is below OWASP's "
			    "minimum for Argon2id"));
		} else {
			assert_string_equal(m, "");
		}
		ig_config_free(cfg);
		free(m);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parameters_reach_the_hash),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_owasp_warning),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
