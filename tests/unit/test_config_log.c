/*
 * Unit tests for the log section of config/: log.format, log.file,
 * log.redact_users, log.redact_key_file and log.level (the same setting as
 * the top-level log_level, which keeps working): defaults, the documented
 * shape, and every error with its exact text at its FILE:LINE:COL.
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

#include "config/config.h"
#include "config_fixture.h"
#include "util/err.h"

CFGFIX_SETUP_TEARDOWN("iglog")

static void
test_defaults(void **state)
{
	(void)state;
	static const char *const yamls[] = { CFGFIX_BASE, CFGFIX_BASE "log:\n" };
	for (size_t i = 0; i < sizeof(yamls) / sizeof(yamls[0]); i++) {
		int rc;
		struct ig_config *cfg;
		char *msgs = load(yamls[i], &rc, &cfg);
		assert_string_equal(msgs, "");
		assert_int_equal(rc, 0);
		assert_int_equal(cfg->log_format, IG_LOG_TEXT);
		assert_null(cfg->log_file);
		assert_false(cfg->log_redact_users);
		assert_null(cfg->log_redact_key_file);
		assert_int_equal(cfg->log_level, IG_LOG_INFO);
		ig_config_free(cfg);
		free(msgs);
	}
}

static void
test_documented(void **state)
{
	(void)state;
	FILE *f = fopen("key", "w");
	assert_non_null(f);
	fputs("0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	assert_int_equal(chmod("key", 0600), 0);
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE "log:\n  format: json\n  file: ig.log\n"
	    "  redact_users: true\n  redact_key_file: key\n  level: debug\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->log_format, IG_LOG_JSON);
	assert_string_equal(cfg->log_file, "ig.log");
	assert_true(cfg->log_redact_users);
	assert_string_equal(cfg->log_redact_key_file, "key");
	assert_int_equal(cfg->log_level, IG_LOG_DEBUG);
	ig_config_free(cfg);
	free(msgs);

	msgs = load(CFGFIX_BASE "log:\n  file: syslog\n  format: text\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->log_file, "syslog");
	assert_int_equal(cfg->log_format, IG_LOG_TEXT);
	ig_config_free(cfg);
	free(msgs);

	/* The top-level log_level keeps working. */
	msgs = load(CFGFIX_BASE "log_level: warn\nlog:\n  format: json\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->log_level, IG_LOG_WARN);
	ig_config_free(cfg);
	free(msgs);

	/* A world-readable key file loads, with a warning. */
	assert_int_equal(chmod("key", 0644), 0);
	msgs = load(CFGFIX_BASE "log:\n  redact_key_file: key\n", &rc, &cfg);
	assert_string_equal(msgs, "t.yaml:12:20: warning: key file 'key' is readable by every "
	    "user (mode 644)\n");
	assert_int_equal(rc, 0);
	ig_config_free(cfg);
	free(msgs);
	unlink("key");
}

struct err_row {
	const char *yaml;
	const char *want;
};

static const struct err_row err_rows[] = {
	{ CFGFIX_BASE "log:\n  format: xml\n",
	  "t.yaml:12:11: invalid value 'xml' for 'log.format': expected one of text, json\n" },
	{ CFGFIX_BASE "log:\n  redact_users: yes\n",
	  "t.yaml:12:17: invalid value 'yes' for 'log.redact_users': expected true or false\n" },
	{ CFGFIX_BASE "log:\n  level: loud\n",
	  "t.yaml:12:10: invalid value 'loud' for 'log.level': "
	  "expected one of error, warn, info, debug\n" },
	{ CFGFIX_BASE "log_level: info\nlog:\n  level: debug\n",
	  "t.yaml:13:10: 'log.level' and 'log_level' are the same setting: keep one\n" },
	{ CFGFIX_BASE "log:\n  file: /nonexistent-dir/ig.log\n",
	  "t.yaml:12:9: cannot use '/nonexistent-dir/ig.log' for 'log.file': directory "
	  "'/nonexistent-dir' does not exist\n" },
	{ CFGFIX_BASE "log:\n  file: /tmp\n",
	  "t.yaml:12:9: cannot use '/tmp' for 'log.file': it exists and is not a regular file\n" },
	{ CFGFIX_BASE "log:\n  file: \"\"\n",
	  "t.yaml:12:9: 'log.file' must be between 1 and 4095 characters\n" },
	{ CFGFIX_BASE "log:\n  file: [a]\n",
	  "t.yaml:12:9: 'log.file' must be a single value, not a sequence\n" },
	{ CFGFIX_BASE "log:\n  redact_key_file: cert.pem\n",
	  "t.yaml:12:20: cannot use 'cert.pem' for 'log.redact_key_file': a key file holds 16 "
	  "to 64 bytes, not 12\n" },
	{ CFGFIX_BASE "log:\n  fromat: json\n",
	  "t.yaml:12:3: unknown key 'fromat' in 'log' (did you mean 'format'?)\n" },
	{ CFGFIX_BASE "log: json\n",
	  "t.yaml:11:6: 'log' must be a mapping, not a scalar\n" },
};

static void
test_error_rows(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		int rc;
		char *msgs = load(err_rows[i].yaml, &rc, NULL);
		if (strcmp(msgs, err_rows[i].want) != 0 || rc != IG_ECONFIG) {
			print_error("row %zu: rc %d, got:\n%swant:\n%s\n", i, rc, msgs,
			    err_rows[i].want);
			bad++;
		}
		free(msgs);
	}
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_documented, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_rows, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
