/*
 * The admin HTTP server's request head parser (proxy/http_parse.h).
 */
#include "proxy/http_parse.h"

#include <stdbool.h>
#include <string.h>

#define CASE(x, s) case x: return s
const char *
ig_http_result_str(enum ig_http_result r)
{
	switch (r) {
	CASE(IG_HTTP_AGAIN, "again");
	CASE(IG_HTTP_OK, "ok");
	CASE(IG_HTTP_BAD, "bad");
	CASE(IG_HTTP_TOO_MANY, "too-many-headers");
	CASE(IG_HTTP_VERSION, "version");
	case IG_HTTP_RESULT_COUNT:
		break;
	}
	return "?";
}
#undef CASE

/* RFC 9110 tchar. */
static bool
http_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool
http_vchar(uint8_t c)
{
	return c > 0x20 && c < 0x7f;
}

static enum ig_http_result
http_fail(struct ig_http_req *req, enum ig_http_result r, const char *why)
{
	req->error = why;
	return r;
}

/*
 * The next line of buf from *pos: its span without the line end. Returns
 * 1 for a line, 0 when no line end is there yet, -1 for a CR not followed
 * by LF.
 */
static int
http_line(const uint8_t *buf, size_t len, size_t *pos, struct ig_span *line)
{
	size_t i = *pos;
	for (; i < len; i++) {
		if (buf[i] == '\n') {
			line->p = buf + *pos;
			line->len = i - *pos;
			*pos = i + 1;
			return 1;
		}
		if (buf[i] == '\r') {
			if (i + 1 == len)
				return 0;
			if (buf[i + 1] != '\n')
				return -1;
			line->p = buf + *pos;
			line->len = i - *pos;
			*pos = i + 2;
			return 1;
		}
	}
	return 0;
}

static enum ig_http_result
http_request_line(struct ig_span l, struct ig_http_req *req)
{
	size_t i = 0;
	while (i < l.len && http_tchar(l.p[i]))
		i++;
	if (i == 0 || i == l.len || l.p[i] != ' ')
		return http_fail(req, IG_HTTP_BAD, "malformed request line");
	req->method = (struct ig_span){ l.p, i };
	size_t t = ++i;
	while (i < l.len && http_vchar(l.p[i]))
		i++;
	if (i == t || i == l.len || l.p[i] != ' ')
		return http_fail(req, IG_HTTP_BAD, "malformed request line");
	req->target = (struct ig_span){ l.p + t, i - t };
	if (req->target.p[0] != '/')
		return http_fail(req, IG_HTTP_BAD, "request target is not a path");
	const uint8_t *q = memchr(req->target.p, '?', req->target.len);
	req->path = (struct ig_span){ req->target.p,
	    q != NULL ? (size_t)(q - req->target.p) : req->target.len };
	struct ig_span v = { l.p + i + 1, l.len - i - 1 };
	if (v.len != 8 || memcmp(v.p, "HTTP/", 5) != 0 || v.p[5] < '0' || v.p[5] > '9' ||
	    v.p[6] != '.' || v.p[7] < '0' || v.p[7] > '9')
		return http_fail(req, IG_HTTP_BAD, "malformed HTTP version");
	if (v.p[5] != '1' || v.p[7] > '1')
		return http_fail(req, IG_HTTP_VERSION, "HTTP version not supported");
	req->minor = (unsigned)(v.p[7] - '0');
	return IG_HTTP_OK;
}

static enum ig_http_result
http_header_line(struct ig_span l, struct ig_http_req *req)
{
	if (l.p[0] == ' ' || l.p[0] == '\t')
		return http_fail(req, IG_HTTP_BAD, "obsolete line folding");
	size_t i = 0;
	while (i < l.len && http_tchar(l.p[i]))
		i++;
	if (i == 0 || i == l.len || l.p[i] != ':')
		return http_fail(req, IG_HTTP_BAD, "malformed header field");
	for (i++; i < l.len; i++)
		if (!http_vchar(l.p[i]) && l.p[i] != ' ' && l.p[i] != '\t' && l.p[i] < 0x80)
			return http_fail(req, IG_HTTP_BAD, "control character in header field");
	return IG_HTTP_OK;
}

enum ig_http_result
ig_http_parse(const uint8_t *buf, size_t len, unsigned max_headers, struct ig_http_req *req)
{
	memset(req, 0, sizeof(*req));
	size_t pos = 0;
	struct ig_span line;
	int lr = http_line(buf, len, &pos, &line);
	if (lr < 0)
		return http_fail(req, IG_HTTP_BAD, "bare CR");
	if (lr == 0) {
		/* Refuse early what can never become a request line. */
		for (size_t i = 0; i < len; i++)
			if (buf[i] != '\r' && (buf[i] < 0x20 || buf[i] >= 0x7f))
				return http_fail(req, IG_HTTP_BAD, "control character in request line");
		return IG_HTTP_AGAIN;
	}
	enum ig_http_result r = http_request_line(line, req);
	if (r != IG_HTTP_OK)
		return r;
	for (;;) {
		lr = http_line(buf, len, &pos, &line);
		if (lr < 0)
			return http_fail(req, IG_HTTP_BAD, "bare CR");
		if (lr == 0) {
			for (size_t i = pos; i < len; i++)
				if (buf[i] == '\0')
					return http_fail(req, IG_HTTP_BAD, "NUL in header field");
			return IG_HTTP_AGAIN;
		}
		if (line.len == 0)
			break;
		if (req->nheaders == max_headers)
			return http_fail(req, IG_HTTP_TOO_MANY, "too many header fields");
		req->nheaders++;
		if ((r = http_header_line(line, req)) != IG_HTTP_OK)
			return r;
	}
	req->head_len = pos;
	return IG_HTTP_OK;
}
