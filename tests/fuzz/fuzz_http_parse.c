/*
 * Fuzz target for proxy/http_parse.c, the admin endpoint's request head
 * parser: any bytes, parsed whole and at every split point the server
 * could see (it parses the buffer again after each read). Invariants are
 * checked and any violation abort()s, so the replay build catches them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* A span lies inside buf[0..len). */
static bool
within(struct ig_span s, const uint8_t *buf, size_t len)
{
	return s.len == 0 || (s.p >= buf && s.p + s.len <= buf + len);
}

static enum ig_http_result
check(const uint8_t *buf, size_t len)
{
	struct ig_http_req req;
	enum ig_http_result r = ig_http_parse(buf, len, 64, &req);
	CHECK((unsigned)r < (unsigned)IG_HTTP_RESULT_COUNT);
	if (r == IG_HTTP_OK) {
		CHECK(req.head_len > 0 && req.head_len <= len);
		CHECK(within(req.method, buf, req.head_len) && req.method.len > 0);
		CHECK(within(req.target, buf, req.head_len) && req.target.len > 0);
		CHECK(req.target.p[0] == '/');
		CHECK(req.path.p == req.target.p && req.path.len <= req.target.len);
		CHECK(memchr(req.path.p, '?', req.path.len) == NULL);
		CHECK(req.minor <= 1 && req.nheaders <= 64);
		/* The head alone parses the same way. */
		struct ig_http_req again;
		CHECK(ig_http_parse(buf, req.head_len, 64, &again) == IG_HTTP_OK);
		CHECK(again.head_len == req.head_len);
	} else if (r != IG_HTTP_AGAIN) {
		CHECK(req.error != NULL && req.error[0] != '\0');
	}
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	/* Copy so that reads past the end are caught by the sanitizers. */
	uint8_t *buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	enum ig_http_result whole = check(buf, size);
	/* A prefix never gives a verdict the whole contradicts: once a prefix
	   is OK or an error, more bytes cannot turn it into AGAIN. */
	for (size_t i = 0; i < size; i += 1 + size / 64) {
		enum ig_http_result r = check(buf, i);
		if (r != IG_HTTP_AGAIN)
			CHECK(whole != IG_HTTP_AGAIN);
	}
	free(buf);
	return 0;
}
