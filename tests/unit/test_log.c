/*
 * Unit tests for util/log.c: escaping of untrusted bytes before logging, the
 * JSON line format (every output checked by a strict JSON checker), user
 * names (escaped or redacted) and the file output with its reopen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "json_check.h"

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

/* ---- JSON --------------------------------------------------------------- */

struct json_row {
	const char *kv;
	size_t len;     /* 0: strlen(kv) */
	const char *want; /* after {"time":"T","level":"info" */
};

static const struct json_row json_rows[] = {
	{ "event=ready listeners=2 workers=1 pid=77", 0,
	  ",\"event\":\"ready\",\"listeners\":2,\"workers\":1,\"pid\":77}\n" },
	/* the session prefix: client split, a quoted value with spaces */
	{ "sid=00000000000000a1 client=127.0.0.1:5050 listener=imaps event=tls-failed "
	  "reason=\"bad record mac\"", 0,
	  ",\"sid\":\"00000000000000a1\",\"client_ip\":\"127.0.0.1\",\"client_port\":5050,"
	  "\"listener\":\"imaps\",\"event\":\"tls-failed\",\"reason\":\"bad record mac\"}\n" },
	{ "client=::1:993 event=x", 0,
	  ",\"client_ip\":\"::1\",\"client_port\":993,\"event\":\"x\"}\n" },
	/* numbers only where the key is numeric and the value all digits */
	{ "count=12 limit=address bytes=0012 duration_ms=-1 errors=3", 0,
	  ",\"count\":12,\"limit\":\"address\",\"bytes\":\"0012\",\"duration_ms\":\"-1\","
	  "\"errors\":3}\n" },
	{ "count=\"12\"", 0, ",\"count\":\"12\"}\n" },
	/* quotes and backslashes in values, a repeated key */
	{ "a=x\"y b=c\\d a=2", 0,
	  ",\"a\":\"x\\\"y\",\"b\":\"c\\\\d\",\"a_2\":\"2\"}\n" },
	/* a repeat whose _2 name is taken already (found by the fuzzer) */
	{ "r_2=a r=b r=c", 0, ",\"r_2\":\"a\",\"r\":\"b\",\"r_3\":\"c\"}\n" },
	/* control bytes, DEL, and bytes that are not UTF-8 */
	{ "v=\x01\x1f\x7f\t", 0, ",\"v\":\"\\u0001\\u001f\\u007f\\u0009\"}\n" },
	{ "v=\xff\xc3(\xed\xa0\x80", 0,
	  ",\"v\":\"\\\\xff\\\\xc3(\\\\xed\\\\xa0\\\\x80\"}\n" },
	/* valid UTF-8 passes as it is */
	{ "user=j\xc3\xb6rg sni=\xe2\x82\xac", 0,
	  ",\"user\":\"j\xc3\xb6rg\",\"sni\":\"\xe2\x82\xac\"}\n" },
	/* overlong and truncated sequences are not UTF-8 */
	{ "v=\xc0\xaf\xe2\x82", 0,
	  ",\"v\":\"\\\\xc0\\\\xaf\\\\xe2\\\\x82\"}\n" },
	/* words that are not fields go to msg; "time", "level", "msg" cannot be forged */
	{ "event=x reserve=16: no descriptor left time=0 level=error msg=hi", 0,
	  ",\"event\":\"x\",\"reserve\":\"16:\",\"time_2\":\"0\",\"level_2\":\"error\","
	  "\"msg\":\"no descriptor left msg=hi\"}\n" },
	/* nor can "truncated", which a cut line appends (found by the fuzzer) */
	{ "truncated=0 event=x", 0, ",\"truncated_2\":\"0\",\"event\":\"x\"}\n" },
	/* an unterminated quote runs to the end; an empty value */
	{ "reason=\"open a=b", 0, ",\"reason\":\"open a=b\"}\n" },
	{ "a= =b \"q\"", 0, ",\"a\":\"\",\"msg\":\"=b \\\"q\\\"\"}\n" },
	/* a NUL byte inside the text */
	{ "v=a\0b", 5, ",\"v\":\"a\\u0000b\"}\n" },
	{ "", 0, "}\n" },
};

static void
test_json_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(json_rows) / sizeof(json_rows[0]); i++) {
		const struct json_row *r = &json_rows[i];
		char out[1024];
		char want[1024];
		size_t len = r->len != 0 ? r->len : strlen(r->kv);
		size_t n = ig_log_json(out, sizeof(out), "T", IG_LOG_INFO, r->kv, len);
		snprintf(want, sizeof(want), "{\"time\":\"T\",\"level\":\"info\"%s", r->want);
		if (strcmp(out, want) != 0)
			print_error("row %zu: got %s\n", i, out);
		assert_string_equal(out, want);
		assert_int_equal(n, strlen(out));
		assert_true(json_check_line(out, n));
	}
}

/* Every byte value in every place, and lines far too long for the buffer. */
static void
test_json_hostile(void **state)
{
	(void)state;
	char kv[600];
	char out[512];
	for (unsigned b = 0; b < 256; b++) {
		int n = snprintf(kv, sizeof(kv), "event=x v=a%cb w=\"%c\" %c=1 x%c", (char)b,
		    (char)b, (char)b, (char)b);
		assert_true(n > 0);
		size_t len = ig_log_json(out, sizeof(out), "T", IG_LOG_WARN, kv, (size_t)n);
		assert_true(json_check_line(out, len));
	}
	/* Too long: ends with "truncated":true, still one valid line. */
	memset(kv, 'a', sizeof(kv));
	memcpy(kv, "event=long v=", 13);
	for (size_t i = 20; i < sizeof(kv); i += 7)
		kv[i] = (char)0x01; /* each grows to six bytes */
	size_t len = ig_log_json(out, 256, "T", IG_LOG_ERROR, kv, sizeof(kv));
	assert_true(len < 256);
	assert_true(json_check_line(out, len));
	assert_non_null(strstr(out, "\"truncated\":true}\n"));
	/* A forged "truncated" field in a line that is cut: keys stay unique. */
	memcpy(kv, "truncated=1 v=", 14);
	len = ig_log_json(out, 256, "T", IG_LOG_ERROR, kv, sizeof(kv));
	assert_true(json_check_line(out, len));
	assert_non_null(strstr(out, "\"truncated_2\":\"1\""));
	assert_non_null(strstr(out, "\"truncated\":true}\n"));
	/* Many fields: repeats beyond _9 are dropped, keys stay unique. */
	char many[2048] = "";
	for (int i = 0; i < 40; i++)
		strcat(many, "k=1 ");
	char big[8192];
	len = ig_log_json(big, sizeof(big), "T", IG_LOG_INFO, many, strlen(many));
	assert_true(json_check_line(big, len));
	/* More keys than can be told apart: the rest is cut, marked. */
	many[0] = '\0';
	for (int i = 0; i < 80; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "k%d=1 ", i % 70);
	len = ig_log_json(big, sizeof(big), "T", IG_LOG_INFO, many, strlen(many));
	assert_true(json_check_line(big, len));
	assert_non_null(strstr(big, "\"truncated\":true}\n"));
	/* Too small an output buffer writes nothing. */
	assert_int_equal(ig_log_json(out, 100, "T", IG_LOG_INFO, "a=b", 3), 0);
}

/* Random bytes: the output is always one valid JSON line. */
static void
test_json_random(void **state)
{
	(void)state;
	srand(16);
	char kv[300];
	char out[2048];
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand() % (int)sizeof(kv));
		for (size_t i = 0; i < n; i++) {
			int r = rand() % 8;
			kv[i] = (char)(r == 0 ? ' ' : r == 1 ? '=' : r == 2 ? '"' : rand() % 256);
		}
		size_t len = ig_log_json(out, sizeof(out), "T", IG_LOG_DEBUG, kv, n);
		assert_true(json_check_line(out, len));
	}
}

/* ---- user names --------------------------------------------------------- */

static void
test_user_names(void **state)
{
	(void)state;
	char out[1100];
	assert_int_equal(ig_log_set_redact(false, NULL, 0), 0);
	assert_string_equal(ig_log_user("alice@example.org", out, sizeof(out)),
	    "alice@example.org");
	/* A name that would add fields is quoted and escaped. */
	assert_string_equal(ig_log_user("bob event=login-result result=ok", out, sizeof(out)),
	    "\"bob event=login-result result=ok\"");
	assert_string_equal(ig_log_user("a\"b\\c\x01", out, sizeof(out)),
	    "\"a\\x22b\\x5cc\\x01\"");

	/* Redacted: a keyed hash, the same for the same name and key. */
	static const uint8_t key[16] = "0123456789abcdef";
	assert_int_equal(ig_log_set_redact(true, key, sizeof(key)), 0);
	char a[64], b[64], c[64];
	ig_log_user("alice", a, sizeof(a));
	ig_log_user("alice", b, sizeof(b));
	ig_log_user("alicf", c, sizeof(c));
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 18);
	assert_memory_equal(a, "h:", 2);
	assert_null(strstr(a, "alice"));
	/* HMAC-SHA256("0123456789abcdef", "alice"), first 8 bytes */
	assert_string_equal(a, "h:fdbf8b1cacd3d578");
	/* Another key, another token. */
	static const uint8_t key2[16] = "fedcba9876543210";
	assert_int_equal(ig_log_set_redact(true, key2, sizeof(key2)), 0);
	ig_log_user("alice", b, sizeof(b));
	assert_string_not_equal(a, b);
	/* A user rule's name hides the user; other rules stay readable. */
	assert_string_equal(ig_log_rule("user:alice", out, sizeof(out)), "user:h:63c37aec67ef8d46");
	assert_string_equal(ig_log_rule("defaults", out, sizeof(out)), "defaults");
	assert_string_equal(ig_log_rule("group:staff", out, sizeof(out)), "group:staff");
	/* Off again: the name. */
	assert_int_equal(ig_log_set_redact(false, NULL, 0), 0);
	assert_string_equal(ig_log_user("alice", out, sizeof(out)), "alice");
	assert_string_equal(ig_log_rule("user:alice", out, sizeof(out)), "user:alice");
	assert_string_equal(ig_log_rule("user:a b", out, sizeof(out)), "\"user:a b\"");
	assert_int_equal(ig_log_set_redact(true, key, 0), IG_EINVAL);
}

/* ---- the file output ---------------------------------------------------- */

static size_t
slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

static void
test_file_reopen(void **state)
{
	(void)state;
	char dir[] = "/tmp/ig-test-log-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], rotated[256];
	snprintf(path, sizeof(path), "%s/ig.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/ig.log.1", dir);
	assert_null(ig_log_path());
	assert_int_equal(ig_log_reopen(), 0); /* stderr: nothing to do */
	assert_int_equal(ig_log_open(path), 0);
	assert_string_equal(ig_log_path(), path);
	ig_log_set_format(IG_LOG_JSON);
	log_info("event=one n=\"first line\"");
	assert_int_equal(rename(path, rotated), 0);
	log_info("event=two"); /* still into the renamed file */
	assert_int_equal(ig_log_reopen(), 0);
	log_warn("event=three");
	ig_log_set_format(IG_LOG_TEXT);
	log_info("event=four");

	char buf[4096];
	size_t n = slurp(rotated, buf, sizeof(buf));
	assert_true(n > 0);
	char *nl = strchr(buf, '\n');
	assert_non_null(nl);
	assert_true(json_check_line(buf, (size_t)(nl - buf) + 1));
	assert_non_null(strstr(buf, "\"event\":\"one\",\"n\":\"first line\"}"));
	assert_non_null(strstr(buf, "\"event\":\"two\"}"));
	assert_null(strstr(buf, "three"));
	n = slurp(path, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "\"level\":\"warn\",\"event\":\"three\"}\n"));
	assert_non_null(strstr(buf, " info event=four\n"));
	assert_null(strstr(buf, "one"));
	unlink(path);
	unlink(rotated);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_rows),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_json_rows),
		cmocka_unit_test(test_json_hostile),
		cmocka_unit_test(test_json_random),
		cmocka_unit_test(test_user_names),
		/* last: it leaves the output on a file */
		cmocka_unit_test(test_file_reopen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
