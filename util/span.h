/*
 * A span is a view into a buffer owned by someone else: parsers return spans
 * into the caller's bytes instead of copying them. A span is valid only as
 * long as the buffer it points into is neither freed nor moved.
 */
#ifndef IG_UTIL_SPAN_H
#define IG_UTIL_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

struct ig_span {
	const uint8_t *p; /* first byte, or NULL for an empty/absent span */
	size_t len;       /* number of bytes */
};

/* True when the span equals the NUL-terminated string s, ignoring ASCII case. */
static inline bool
ig_span_ieq(struct ig_span sp, const char *s)
{
	size_t n = strlen(s);
	return sp.len == n && (n == 0 || strncasecmp((const char *)sp.p, s, n) == 0);
}

#endif /* IG_UTIL_SPAN_H */
