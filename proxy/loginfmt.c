/*
 * The login command as the backend gets it (see loginfmt.h): astrings,
 * segments after "+", and the master login for a user. Pure.
 */
#include "proxy/loginfmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "util/err.h"
#include "util/sasl.h"

void
ig_loginfmt_start(struct ig_loginfmt *f, bool literal_plus)
{
	f->len = 0;
	f->nseg = 0;
	f->literal_plus = literal_plus;
	(void)ig_loginfmt_segment(f); /* the first: there is room for one */
}

bool
ig_loginfmt_add(struct ig_loginfmt *f, const void *p, size_t len)
{
	if (f->cap - f->len < len)
		return false;
	memcpy(f->buf + f->len, p, len);
	f->len += len;
	if (f->len > f->hi)
		f->hi = f->len;
	return true;
}

bool
ig_loginfmt_addf(struct ig_loginfmt *f, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof(tmp) && ig_loginfmt_add(f, tmp, (size_t)n);
}

bool
ig_loginfmt_segment(struct ig_loginfmt *f)
{
	if (f->nseg == IG_LOGINFMT_SEGMENTS)
		return false;
	f->seg_off[f->nseg++] = f->len;
	return true;
}

size_t
ig_loginfmt_seg_end(const struct ig_loginfmt *f, unsigned i)
{
	return i + 1 < f->nseg ? f->seg_off[i + 1] : f->len;
}

/* True when these bytes may go in a quoted string. */
static bool
loginfmt_quotable(const uint8_t *p, size_t len)
{
	if (len > 1024)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

bool
ig_loginfmt_astring(struct ig_loginfmt *f, const uint8_t *p, size_t len)
{
	if (loginfmt_quotable(p, len)) {
		if (!ig_loginfmt_add(f, "\"", 1))
			return false;
		for (size_t i = 0; i < len; i++) {
			if ((p[i] == '"' || p[i] == '\\') && !ig_loginfmt_add(f, "\\", 1))
				return false;
			if (!ig_loginfmt_add(f, &p[i], 1))
				return false;
		}
		return ig_loginfmt_add(f, "\"", 1);
	}
	if (f->literal_plus)
		return ig_loginfmt_addf(f, "{%zu+}\r\n", len) && ig_loginfmt_add(f, p, len);
	return ig_loginfmt_addf(f, "{%zu}\r\n", len) && ig_loginfmt_segment(f) &&
	    ig_loginfmt_add(f, p, len);
}

int
ig_loginfmt_master_check(const struct ig_master_login *m, const char *user)
{
	if (user == NULL || user[0] == '\0' || strlen(user) > IG_USER_MAX)
		return IG_EINVAL;
	if (m->style == IG_MASTER_SEPARATOR && strchr(user, m->separator[0]) != NULL)
		return IG_EINVAL;
	return 0;
}

/* tag LOGIN "user<sep>master" "secret" */
static bool
loginfmt_master_separator(struct ig_loginfmt *f, const char *tag, const char *user,
    const struct ig_master_login *m)
{
	char name[2 * IG_USER_MAX + 2];
	int n = snprintf(name, sizeof(name), "%s%c%s", user, m->separator[0], m->user);
	if (n < 0 || (size_t)n >= sizeof(name))
		return false;
	return ig_loginfmt_addf(f, "%s LOGIN ", tag) &&
	    ig_loginfmt_astring(f, (const uint8_t *)name, (size_t)n) &&
	    ig_loginfmt_add(f, " ", 1) &&
	    ig_loginfmt_astring(f, m->secret, m->secret_len) &&
	    ig_loginfmt_add(f, "\r\n", 2);
}

/* tag AUTHENTICATE PLAIN base64(user NUL master NUL secret) */
static bool
loginfmt_master_authzid(struct ig_loginfmt *f, const char *tag, const char *user,
    const struct ig_master_login *m, bool sasl_ir)
{
	uint8_t msg[2 * (IG_USER_MAX + 1) + IG_MASTER_SECRET_MAX];
	char b64[4 * (sizeof(msg) + 2) / 3 + 4];
	size_t ul = strlen(user), ml = strlen(m->user), blen = 0;
	bool ok = false;
	if (ul > IG_USER_MAX || ml > IG_USER_MAX || m->secret_len > IG_MASTER_SECRET_MAX)
		return false;
	memcpy(msg, user, ul);
	msg[ul] = '\0';
	memcpy(msg + ul + 1, m->user, ml);
	msg[ul + 1 + ml] = '\0';
	memcpy(msg + ul + ml + 2, m->secret, m->secret_len);
	if (ig_sasl_b64_encode(msg, ul + ml + 2 + m->secret_len, b64, sizeof(b64), &blen) != 0)
		goto out;
	if (sasl_ir)
		ok = ig_loginfmt_addf(f, "%s AUTHENTICATE PLAIN ", tag) &&
		    ig_loginfmt_add(f, b64, blen) && ig_loginfmt_add(f, "\r\n", 2);
	else
		ok = ig_loginfmt_addf(f, "%s AUTHENTICATE PLAIN\r\n", tag) &&
		    ig_loginfmt_segment(f) && ig_loginfmt_add(f, b64, blen) &&
		    ig_loginfmt_add(f, "\r\n", 2);
out:
	mbedtls_platform_zeroize(msg, sizeof(msg));
	mbedtls_platform_zeroize(b64, sizeof(b64));
	return ok;
}

int
ig_loginfmt_master(struct ig_loginfmt *f, const char *tag, const char *user,
    const struct ig_master_login *m, bool sasl_ir, bool literal_plus)
{
	if (!m->on || m->secret == NULL || ig_loginfmt_master_check(m, user) != 0)
		return IG_EINVAL;
	ig_loginfmt_start(f, literal_plus);
	bool ok = false;
	switch (m->style) {
	case IG_MASTER_SEPARATOR:
		ok = loginfmt_master_separator(f, tag, user, m);
		break;
	case IG_MASTER_AUTHZID:
		ok = loginfmt_master_authzid(f, tag, user, m, sasl_ir);
		break;
	case IG_MASTER_STYLE_COUNT:
		return IG_EINVAL;
	}
	return ok ? 0 : IG_ETOOLONG;
}
