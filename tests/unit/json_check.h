/*
 * A strict RFC 8259 JSON checker for tests (the unit tests and the
 * fuzz_log_json target): json_check_line() returns true when buf[0..len)
 * is one JSON object followed by exactly one '\n', with no other LF, every
 * string valid UTF-8 without raw control bytes, and no duplicate keys at
 * the top level. No allocation; recursion is bounded.
 */
#ifndef IG_TESTS_JSON_CHECK_H
#define IG_TESTS_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jc {
	const unsigned char *p;
	size_t n, i;
	int depth;
};

static inline void
jc_ws(struct jc *c)
{
	while (c->i < c->n && (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\r'))
		c->i++;
}

static inline bool
jc_utf8(struct jc *c)
{
	unsigned char b = c->p[c->i];
	size_t k;
	uint32_t cp, min;
	if (b >= 0xc2 && b <= 0xdf) {
		k = 2; cp = b & 0x1fu; min = 0x80;
	} else if (b >= 0xe0 && b <= 0xef) {
		k = 3; cp = b & 0x0fu; min = 0x800;
	} else if (b >= 0xf0 && b <= 0xf4) {
		k = 4; cp = b & 0x07u; min = 0x10000;
	} else {
		return false;
	}
	if (c->n - c->i < k)
		return false;
	for (size_t j = 1; j < k; j++) {
		if ((c->p[c->i + j] & 0xc0) != 0x80)
			return false;
		cp = (cp << 6) | (c->p[c->i + j] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return false;
	c->i += k;
	return true;
}

/* A string; its raw span (without quotes) in *s, *sl. */
static inline bool
jc_string(struct jc *c, const unsigned char **s, size_t *sl)
{
	if (c->i >= c->n || c->p[c->i] != '"')
		return false;
	c->i++;
	size_t start = c->i;
	while (c->i < c->n) {
		unsigned char b = c->p[c->i];
		if (b == '"') {
			if (s != NULL) {
				*s = c->p + start;
				*sl = c->i - start;
			}
			c->i++;
			return true;
		}
		if (b < 0x20)
			return false;
		if (b == '\\') {
			if (++c->i >= c->n)
				return false;
			b = c->p[c->i];
			if (b == 'u') {
				if (c->n - c->i < 5)
					return false;
				for (size_t j = 1; j <= 4; j++) {
					unsigned char h = c->p[c->i + j];
					if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
					    (h >= 'A' && h <= 'F')))
						return false;
				}
				c->i += 5;
			} else if (strchr("\"\\/bfnrt", b) != NULL && b != '\0') {
				c->i++;
			} else {
				return false;
			}
			continue;
		}
		if (b >= 0x80) {
			if (!jc_utf8(c))
				return false;
			continue;
		}
		c->i++;
	}
	return false;
}

static inline bool
jc_number(struct jc *c)
{
	size_t s = c->i;
	if (c->i < c->n && c->p[c->i] == '-')
		c->i++;
	if (c->i >= c->n)
		return false;
	if (c->p[c->i] == '0') {
		c->i++;
	} else if (c->p[c->i] >= '1' && c->p[c->i] <= '9') {
		while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
			c->i++;
	} else {
		return false;
	}
	if (c->i < c->n && c->p[c->i] == '.') {
		c->i++;
		size_t d = c->i;
		while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
			c->i++;
		if (c->i == d)
			return false;
	}
	return c->i > s;
}

static inline bool jc_value(struct jc *c);

static inline bool
jc_object(struct jc *c, bool top)
{
	const unsigned char *keys[128];
	size_t klen[128];
	size_t nk = 0;
	if (c->i >= c->n || c->p[c->i] != '{' || ++c->depth > 32)
		return false;
	c->i++;
	jc_ws(c);
	if (c->i < c->n && c->p[c->i] == '}') {
		c->i++;
		c->depth--;
		return true;
	}
	for (;;) {
		jc_ws(c);
		const unsigned char *k;
		size_t kl;
		if (!jc_string(c, &k, &kl))
			return false;
		if (top) {
			for (size_t j = 0; j < nk; j++)
				if (klen[j] == kl && memcmp(keys[j], k, kl) == 0)
					return false;
			if (nk < 128) {
				keys[nk] = k;
				klen[nk++] = kl;
			}
		}
		jc_ws(c);
		if (c->i >= c->n || c->p[c->i] != ':')
			return false;
		c->i++;
		if (!jc_value(c))
			return false;
		jc_ws(c);
		if (c->i >= c->n)
			return false;
		if (c->p[c->i] == ',') {
			c->i++;
			continue;
		}
		if (c->p[c->i] == '}') {
			c->i++;
			c->depth--;
			return true;
		}
		return false;
	}
}

static inline bool
jc_value(struct jc *c)
{
	jc_ws(c);
	if (c->i >= c->n)
		return false;
	switch (c->p[c->i]) {
	case '"':
		return jc_string(c, NULL, NULL);
	case '{':
		return jc_object(c, false);
	case 't':
		if (c->n - c->i >= 4 && memcmp(c->p + c->i, "true", 4) == 0) {
			c->i += 4;
			return true;
		}
		return false;
	case 'f':
		if (c->n - c->i >= 5 && memcmp(c->p + c->i, "false", 5) == 0) {
			c->i += 5;
			return true;
		}
		return false;
	case 'n':
		if (c->n - c->i >= 4 && memcmp(c->p + c->i, "null", 4) == 0) {
			c->i += 4;
			return true;
		}
		return false;
	default:
		return jc_number(c);
	}
}

static inline bool
json_check_line(const char *buf, size_t len)
{
	struct jc c = { (const unsigned char *)buf, len, 0, 0 };
	if (len == 0 || buf[len - 1] != '\n' || memchr(buf, '\n', len - 1) != NULL)
		return false;
	c.n = len - 1;
	if (!jc_object(&c, true))
		return false;
	return c.i == c.n;
}

#endif /* IG_TESTS_JSON_CHECK_H */
