/*
 * Capabilities: the backend's list as learned from its response lines, the
 * fallback before anything is learned, and the list shown before login,
 * which is the backend's cut down to what this connection allows (RFC 2595
 * STARTTLS/LOGINDISABLED, RFC 9051 6.2.1).
 *
 * Output rules that the header leaves open, fixed here so that output is
 * deterministic:
 * - Tokens that are not IMAP atoms (a CTL, SP, '(', ')', '{', '%', '*',
 *   '"', '\\', ']' or a byte >= 0x80) are dropped: they cannot be valid
 *   capabilities and must never reach the client (a CR or LF would split the
 *   response).
 * - Kept AUTH= tokens are written in canonical form ("AUTH=PLAIN"); every
 *   other kept token is written exactly as the backend spelled it.
 * - STARTTLS and then LOGINDISABLED, when added, go at the end.
 */
#include "proxy/caps.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"
#include "util/sasl.h"

/* ATOM-CHAR of RFC 9051: any CHAR except atom-specials. */
static bool
caps_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

static bool
caps_atom(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!caps_atom_char((unsigned char)p[i]))
			return false;
	}
	return true;
}

/* Case-insensitive equality of p[0..n) and the NUL-terminated s. */
static bool
caps_tok_eq(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && strncasecmp(p, s, n) == 0;
}

/*
 * Next space-separated token of s starting at *pos; skips runs of spaces.
 * Returns false at the end of s.
 */
static bool
caps_next(const char *s, size_t *pos, const char **tok, size_t *toklen)
{
	size_t i = *pos;
	while (s[i] == ' ')
		i++;
	if (s[i] == '\0') {
		*pos = i;
		return false;
	}
	size_t start = i;
	while (s[i] != ' ' && s[i] != '\0')
		i++;
	*tok = s + start;
	*toklen = i - start;
	*pos = i;
	return true;
}

static bool
caps_has_tok(const char *caps, const char *tok, size_t toklen)
{
	size_t pos = 0;
	const char *t;
	size_t tl;

	while (caps_next(caps, &pos, &t, &tl)) {
		if (tl == toklen && strncasecmp(t, tok, tl) == 0)
			return true;
	}
	return false;
}

bool
ig_caps_has(const char *caps, const char *cap)
{
	if (caps == NULL || cap == NULL || cap[0] == '\0')
		return false;
	return caps_has_tok(caps, cap, strlen(cap));
}

/* Output under construction: out[0..len) plus a NUL, never past outsz. */
struct caps_buf {
	char *out;
	size_t outsz;
	size_t len;
};

static int
caps_append(struct caps_buf *b, const char *tok, size_t toklen)
{
	size_t sep = b->len > 0 ? 1 : 0;
	if (toklen >= b->outsz || b->outsz - toklen - 1 < b->len + sep)
		return IG_ETOOLONG;
	if (sep)
		b->out[b->len++] = ' ';
	memcpy(b->out + b->len, tok, toklen);
	b->len += toklen;
	b->out[b->len] = '\0';
	return 0;
}

/*
 * When tok is "AUTH=<mech>" (any case), returns the mechanism, which is
 * IG_MECH_COUNT when unknown; returns -1 for any other token.
 */
static int
caps_auth_mech(const char *tok, size_t toklen)
{
	if (toklen < 5 || strncasecmp(tok, "AUTH=", 5) != 0)
		return -1;
	struct ig_span name = { (const uint8_t *)tok + 5, toklen - 5 };
	return (int)ig_sasl_mech_from_name(name);
}

static bool
caps_mech_shown(int m, const struct ig_caps_view *v)
{
	return m >= 0 && m < IG_MECH_COUNT &&
	    (v->mechs_allowed & IG_MECH_BIT(m)) != 0;
}

int
ig_caps_filter(const char *backend_caps, const struct ig_caps_view *v,
    char *out, size_t outsz)
{
	struct caps_buf b = { out, outsz, 0 };
	bool any_auth = false, has_rev1 = false;
	size_t pos = 0;
	const char *t;
	size_t tl;
	int rc = 0;

	if (out == NULL || outsz == 0)
		return IG_ETOOLONG;
	out[0] = '\0';
	if (v == NULL)
		return IG_EINVAL;
	if (backend_caps == NULL)
		backend_caps = "";

	/* First pass: facts that decide tokens placed before they are met. */
	while (caps_next(backend_caps, &pos, &t, &tl)) {
		if (!caps_atom(t, tl))
			continue;
		if (caps_tok_eq(t, tl, "IMAP4rev1"))
			has_rev1 = true;
		if (caps_mech_shown(caps_auth_mech(t, tl), v))
			any_auth = true;
	}

	if (!has_rev1)
		rc = caps_append(&b, "IMAP4rev1", 9);
	pos = 0;
	while (rc == 0 && caps_next(backend_caps, &pos, &t, &tl)) {
		char canon[32];
		if (!caps_atom(t, tl) || caps_tok_eq(t, tl, "STARTTLS") ||
		    caps_tok_eq(t, tl, "LOGINDISABLED"))
			continue;
		if (caps_tok_eq(t, tl, "SASL-IR") && !any_auth)
			continue;
		int m = caps_auth_mech(t, tl);
		if (m >= 0) {
			if (!caps_mech_shown(m, v))
				continue;
			const char *name = ig_sasl_mech_str((enum ig_sasl_mech)m);
			tl = strlen(name) + 5;
			memcpy(canon, "AUTH=", 5);
			memcpy(canon + 5, name, tl - 5 + 1);
			t = canon;
		}
		if (caps_has_tok(out, t, tl))
			continue;
		rc = caps_append(&b, t, tl);
	}
	if (rc == 0 && v->starttls_offered)
		rc = caps_append(&b, "STARTTLS", 8);
	if (rc == 0 && !v->login_allowed)
		rc = caps_append(&b, "LOGINDISABLED", 13);
	if (rc != 0)
		out[0] = '\0';
	return rc;
}

int
ig_caps_learn(struct ig_caps_learned *l, const char *caps)
{
	size_t n = caps != NULL ? strlen(caps) : 0;
	if (n == 0)
		return IG_ENOTFOUND;
	if (n >= sizeof(l->list))
		return IG_ETOOLONG;
	memcpy(l->list, caps, n + 1);
	l->known = true;
	return 0;
}

int
ig_caps_learn_line(struct ig_caps_learned *l, struct ig_span line)
{
	char caps[IG_CAPS_MAX];
	int rc = ig_caps_from_response(line, caps, sizeof(caps));
	if (rc != 0)
		return rc;
	return ig_caps_learn(l, caps);
}

void
ig_caps_forget(struct ig_caps_learned *l)
{
	l->list[0] = '\0';
	l->known = false;
}

const char *
ig_caps_backend(const struct ig_caps_learned *l)
{
	return l->known ? l->list : IG_CAPS_FALLBACK;
}

void
ig_caps_shown(const struct ig_caps_learned *l, const struct ig_caps_view *v,
    char *out, size_t outsz)
{
	if (ig_caps_filter(ig_caps_backend(l), v, out, outsz) != 0)
		snprintf(out, outsz, "IMAP4rev1");
}

/* Case-insensitive prefix of the span, advancing it on a match. */
static bool
caps_eat(struct ig_span *sp, const char *s)
{
	size_t n = strlen(s);
	if (sp->len < n || strncasecmp((const char *)sp->p, s, n) != 0)
		return false;
	sp->p += n;
	sp->len -= n;
	return true;
}

/*
 * Copies the capabilities in list (SP-separated atoms; runs of spaces
 * tolerated) into out. A non-atom token means the line is not what it
 * claims: IG_ENOTFOUND, as for an empty list.
 */
static int
caps_copy_list(struct ig_span list, char *out, size_t outsz)
{
	struct caps_buf b = { out, outsz, 0 };
	size_t i = 0;

	while (i < list.len) {
		if (list.p[i] == ' ') {
			i++;
			continue;
		}
		size_t start = i;
		while (i < list.len && list.p[i] != ' ')
			i++;
		const char *tok = (const char *)list.p + start;
		if (!caps_atom(tok, i - start)) {
			out[0] = '\0';
			return IG_ENOTFOUND;
		}
		if (caps_append(&b, tok, i - start) != 0) {
			out[0] = '\0';
			return IG_ETOOLONG;
		}
	}
	return b.len > 0 ? 0 : IG_ENOTFOUND;
}

/* "[CAPABILITY a b c]" followed by the end or SP text. */
static int
caps_resp_code(struct ig_span sp, char *out, size_t outsz)
{
	if (!caps_eat(&sp, "[CAPABILITY "))
		return IG_ENOTFOUND;
	const uint8_t *close = sp.len ? memchr(sp.p, ']', sp.len) : NULL;
	if (close == NULL)
		return IG_ENOTFOUND;
	size_t n = (size_t)(close - sp.p);
	if (n + 1 < sp.len && close[1] != ' ')
		return IG_ENOTFOUND;
	struct ig_span list = { sp.p, n };
	return caps_copy_list(list, out, outsz);
}

int
ig_caps_from_response(struct ig_span line, char *out, size_t outsz)
{
	if (out == NULL || outsz == 0)
		return IG_ETOOLONG;
	out[0] = '\0';
	if (line.p == NULL || line.len == 0)
		return IG_ENOTFOUND;

	struct ig_span sp = line;
	if (caps_eat(&sp, "* ")) {
		struct ig_span rest = sp;
		if (caps_eat(&rest, "CAPABILITY")) {
			if (rest.len == 0)
				return IG_ENOTFOUND;
			if (rest.p[0] != ' ')
				return IG_ENOTFOUND;
			return caps_copy_list(rest, out, outsz);
		}
		if (!caps_eat(&sp, "OK "))
			return IG_ENOTFOUND;
		return caps_resp_code(sp, out, outsz);
	}

	/* tag = 1*<any ASTRING-CHAR except "+">; ']' is allowed in a tag. */
	size_t i = 0;
	while (i < sp.len && sp.p[i] != ' ' &&
	    (caps_atom_char(sp.p[i]) || sp.p[i] == ']') && sp.p[i] != '+')
		i++;
	if (i == 0 || i == sp.len || sp.p[i] != ' ')
		return IG_ENOTFOUND;
	sp.p += i + 1;
	sp.len -= i + 1;
	if (!caps_eat(&sp, "OK "))
		return IG_ENOTFOUND;
	return caps_resp_code(sp, out, outsz);
}

static bool
caps_view_eq(const struct ig_caps_view *a, const struct ig_caps_view *b)
{
	return a->starttls_offered == b->starttls_offered &&
	    a->login_allowed == b->login_allowed && a->mechs_allowed == b->mechs_allowed;
}

bool
ig_caps_memo_get(const struct ig_caps_memo *m, uint64_t version,
    const struct ig_caps_view *v, char *out, size_t outsz)
{
	for (size_t i = 0; i < IG_CAPS_MEMO; i++) {
		if (!m->e[i].used || m->e[i].version != version || !caps_view_eq(&m->e[i].view, v))
			continue;
		size_t n = strlen(m->e[i].list);
		if (n >= outsz)
			return false;
		memcpy(out, m->e[i].list, n + 1);
		return true;
	}
	return false;
}

void
ig_caps_memo_put(struct ig_caps_memo *m, uint64_t version,
    const struct ig_caps_view *v, const char *list)
{
	size_t n = strlen(list);
	if (n >= sizeof(m->e[0].list))
		return;
	size_t slot = m->next;
	for (size_t i = 0; i < IG_CAPS_MEMO; i++) {
		if (m->e[i].used && caps_view_eq(&m->e[i].view, v)) {
			slot = i; /* an older version's list for the same view */
			break;
		}
	}
	if (slot == m->next)
		m->next = (m->next + 1) % IG_CAPS_MEMO;
	m->e[slot].version = version;
	m->e[slot].view = *v;
	m->e[slot].used = true;
	memcpy(m->e[slot].list, list, n + 1);
}
