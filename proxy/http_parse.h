/*
 * The admin HTTP server's request parser (proxy/admin_http.c): one
 * HTTP/1.0 or HTTP/1.1 request head (request line and header fields, up
 * to the empty line), checked strictly. Pure: no allocation, no I/O;
 * results are spans into the caller's bytes. The caller keeps the bytes
 * read so far in one bounded buffer and parses it again after each read
 * (the head is a few hundred bytes; the buffer bounds the work).
 */
#ifndef IG_PROXY_HTTP_PARSE_H
#define IG_PROXY_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

enum ig_http_result {
	IG_HTTP_AGAIN,       /* no empty line yet: read more */
	IG_HTTP_OK,          /* a complete, well-formed head */
	IG_HTTP_BAD,         /* malformed (400) */
	IG_HTTP_TOO_MANY,    /* more header fields than allowed (431) */
	IG_HTTP_VERSION,     /* not HTTP/1.0 or HTTP/1.1 (505) */
	IG_HTTP_RESULT_COUNT
};
const char *ig_http_result_str(enum ig_http_result r);

struct ig_http_req {
	struct ig_span method;         /* a token, e.g. "GET" */
	struct ig_span target;         /* origin-form "/path[?query]" */
	struct ig_span path;           /* target without the query */
	unsigned minor;                /* HTTP/1.minor: 0 or 1 */
	unsigned nheaders;             /* header fields seen */
	size_t head_len;               /* bytes of the head, empty line included */
	const char *error;             /* why, when not OK (static text) */
};

/*
 * Parses buf[0..len). Returns IG_HTTP_OK with *req filled, IG_HTTP_AGAIN
 * when the head is not complete yet (and nothing seen so far is wrong),
 * or an error with req->error set. Lines end in CRLF (a bare LF is
 * accepted as the end of a line; a bare CR is not), the request line is
 * "METHOD SP origin-form SP HTTP/1.x", header lines are "token: value"
 * with visible characters, spaces and tabs in the value; obsolete line
 * folding, NUL and other control bytes are refused. At most max_headers
 * header fields.
 */
enum ig_http_result ig_http_parse(const uint8_t *buf, size_t len, unsigned max_headers,
    struct ig_http_req *req);

#endif /* IG_PROXY_HTTP_PARSE_H */
