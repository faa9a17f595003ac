/* Unit tests for proxy/log.c: escaping of untrusted bytes before logging. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/log.h"

struct esc_row {
	const char *in;
	size_t len;
	size_t outsz;
	const char *want;
};

static const struct esc_row esc_rows[] = {
	{ "a LOGIN", 7, 64, "a LOGIN" },
	{ "a\r\n", 3, 64, "a\\x0d\\x0a" },
	{ "q\"\\", 3, 64, "q\\x22\\x5c" },
	{ "\x00\xff", 2, 64, "\\x00\\xff" },
	{ "abcdefghijklmnopqrstuvwxyz", 26, 12, "abcdefgh..." },
	{ "", 0, 4, "" },
};

static void
test_escape_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(esc_rows) / sizeof(esc_rows[0]); i++) {
		char out[64];
		memset(out, 'X', sizeof(out));
		ig_log_escape((const uint8_t *)esc_rows[i].in, esc_rows[i].len, out,
		    esc_rows[i].outsz);
		assert_string_equal(out, esc_rows[i].want);
		assert_true(strlen(out) < esc_rows[i].outsz);
	}
}

static void
test_level_parse(void **state)
{
	(void)state;
	enum ig_log_level l;
	assert_int_equal(ig_log_level_parse("DEBUG", &l), 0);
	assert_int_equal(l, IG_LOG_DEBUG);
	assert_int_equal(ig_log_level_parse("warn", &l), 0);
	assert_int_equal(l, IG_LOG_WARN);
	assert_int_equal(ig_log_level_parse("verbose", &l), IG_EINVAL);
	assert_string_equal(ig_strerror(IG_ETLS), "TLS error");
	assert_string_equal(ig_strerror(12345), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_rows),
		cmocka_unit_test(test_level_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
