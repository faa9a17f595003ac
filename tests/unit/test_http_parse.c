/*
 * Unit tests for proxy/http_parse.c: the admin endpoint's request heads,
 * complete, partial (every prefix of a good head is AGAIN) and hostile.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/http_parse.h"

static const struct {
	const char *in;
	enum ig_http_result want;
	const char *path;   /* for OK */
	unsigned minor;
} rows[] = {
	{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", IG_HTTP_OK, "/metrics", 1 },
	{ "GET /metrics HTTP/1.0\r\n\r\n", IG_HTTP_OK, "/metrics", 0 },
	{ "GET /readyz?x=1&y HTTP/1.1\r\n\r\n", IG_HTTP_OK, "/readyz", 1 },
	{ "POST /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", IG_HTTP_OK, "/healthz", 1 },
	{ "GET / HTTP/1.1\nA: b\n\n", IG_HTTP_OK, "/", 1 },            /* bare LF */
	{ "GET / HTTP/1.1\r\nA:\r\nB: \xc3\xa9 \t v\r\n\r\n", IG_HTTP_OK, "/", 1 },
	{ "GET /metrics HTTP/1.1\r\nHost: x\r\n", IG_HTTP_AGAIN, NULL, 0 },
	{ "GET /met", IG_HTTP_AGAIN, NULL, 0 },
	{ "", IG_HTTP_AGAIN, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r", IG_HTTP_AGAIN, NULL, 0 },
	{ "GET /metrics HTTP/2.0\r\n\r\n", IG_HTTP_VERSION, NULL, 0 },
	{ "GET /metrics HTTP/1.2\r\n\r\n", IG_HTTP_VERSION, NULL, 0 },
	{ "PRI * HTTP/2.0\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET  /metrics HTTP/1.1\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET http://h/metrics HTTP/1.1\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1 \r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.10\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics http/1.1\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "G(T /metrics HTTP/1.1\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ " GET /metrics HTTP/1.1\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\rX\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r\n folded\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r\n: empty\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r\nSp ace: x\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r\nA: b\x01\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "GET /metrics HTTP/1.1\r\nA: b\x7f\r\n\r\n", IG_HTTP_BAD, NULL, 0 },
	{ "\x16\x03\x01\x02\x00", IG_HTTP_BAD, NULL, 0 },            /* a TLS hello */
	{ "GET /\x01 HTTP/1.1", IG_HTTP_BAD, NULL, 0 },              /* early refusal */
};

static void
test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ig_http_req req;
		const char *in = rows[i].in;
		enum ig_http_result r = ig_http_parse((const uint8_t *)in, strlen(in), 4, &req);
		if (r != rows[i].want)
			fail_msg("row %zu (%s): got %s, want %s", i, in, ig_http_result_str(r),
			    ig_http_result_str(rows[i].want));
		if (r == IG_HTTP_OK) {
			assert_int_equal(req.path.len, strlen(rows[i].path));
			assert_memory_equal(req.path.p, rows[i].path, req.path.len);
			assert_int_equal(req.minor, rows[i].minor);
			assert_true(req.head_len <= strlen(in));
		} else if (r != IG_HTTP_AGAIN) {
			assert_non_null(req.error);
		}
	}
}

/* Every proper prefix of a good head asks for more; the whole is OK. */
static void
test_prefixes(void **state)
{
	(void)state;
	const char *in = "GET /metrics?a=b HTTP/1.1\r\nHost: 127.0.0.1:9143\r\n"
	    "User-Agent: Prometheus/2.42\r\nAccept: text/plain\r\n\r\n";
	size_t n = strlen(in);
	struct ig_http_req req;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ig_http_parse((const uint8_t *)in, i, 8, &req), IG_HTTP_AGAIN);
	assert_int_equal(ig_http_parse((const uint8_t *)in, n, 8, &req), IG_HTTP_OK);
	assert_int_equal(req.nheaders, 3);
	assert_int_equal(req.head_len, n);
	assert_int_equal(req.method.len, 3);
	assert_int_equal(req.target.len, strlen("/metrics?a=b"));
}

static void
test_header_count(void **state)
{
	(void)state;
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 5; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "H%d: v\r\n", i);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
	struct ig_http_req req;
	assert_int_equal(ig_http_parse((uint8_t *)buf, (size_t)n, 5, &req), IG_HTTP_OK);
	assert_int_equal(ig_http_parse((uint8_t *)buf, (size_t)n, 4, &req), IG_HTTP_TOO_MANY);
	/* A NUL among headers not yet complete is refused at once. */
	static const uint8_t nul[] = "GET / HTTP/1.1\r\nA: \0";
	assert_int_equal(ig_http_parse(nul, sizeof(nul) - 1, 4, &req), IG_HTTP_BAD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_header_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
