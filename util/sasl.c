/*
 * SASL helpers: mechanism names, strict base64, user name extraction from
 * decoded client responses, and user name normalisation.
 *
 * Everything here is pure. Nothing is logged and no secret is copied: only
 * the identities land in the caller's struct ig_sasl_ident; passwords,
 * tokens and digests are looked at in place (to check the framing) and left
 * in the caller's buffer, which the caller wipes.
 *
 * Strictness is deliberate. The proxy judges a login on the name it extracts
 * here and then forwards the client's bytes to the backend, so any message
 * the two could read differently (duplicate keys, stray escapes, extra NULs,
 * whitespace inside base64) is refused rather than guessed at.
 */
#include "util/sasl.h"

#include <mbedtls/base64.h>
#include <string.h>

#include "util/err.h"

#define CASE(x, s) case x: return s
const char *
ig_sasl_mech_str(enum ig_sasl_mech m)
{
	switch (m) {
	CASE(IG_MECH_PLAIN, "PLAIN");
	CASE(IG_MECH_LOGIN, "LOGIN");
	CASE(IG_MECH_XOAUTH2, "XOAUTH2");
	CASE(IG_MECH_OAUTHBEARER, "OAUTHBEARER");
	CASE(IG_MECH_SCRAM_SHA_1, "SCRAM-SHA-1");
	CASE(IG_MECH_SCRAM_SHA_256, "SCRAM-SHA-256");
	CASE(IG_MECH_CRAM_MD5, "CRAM-MD5");
	case IG_MECH_COUNT:
		break;
	}
	return "?";
}
#undef CASE

enum ig_sasl_mech
ig_sasl_mech_from_name(struct ig_span name)
{
	if (name.p == NULL)
		return IG_MECH_COUNT;
	for (int i = 0; i < IG_MECH_COUNT; i++) {
		enum ig_sasl_mech m = (enum ig_sasl_mech)i;
		if (ig_span_ieq(name, ig_sasl_mech_str(m)))
			return m;
	}
	return IG_MECH_COUNT;
}

bool
ig_sasl_mech_sends_secret(enum ig_sasl_mech m)
{
	switch (m) {
	case IG_MECH_PLAIN:
	case IG_MECH_LOGIN:
	case IG_MECH_XOAUTH2:
	case IG_MECH_OAUTHBEARER:
		return true;
	case IG_MECH_SCRAM_SHA_1:
	case IG_MECH_SCRAM_SHA_256:
	case IG_MECH_CRAM_MD5:
	case IG_MECH_COUNT:
		break;
	}
	return false;
}

bool
ig_sasl_mech_server_first(enum ig_sasl_mech m)
{
	switch (m) {
	case IG_MECH_CRAM_MD5:
		return true;
	case IG_MECH_PLAIN:
	case IG_MECH_LOGIN:
	case IG_MECH_XOAUTH2:
	case IG_MECH_OAUTHBEARER:
	case IG_MECH_SCRAM_SHA_1:
	case IG_MECH_SCRAM_SHA_256:
	case IG_MECH_COUNT:
		break;
	}
	return false;
}

/* ---- base64 ---- */

/* The 6-bit value of a base64 character, or -1. */
static int
sasl_b64_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * mbedTLS skips whitespace and line breaks inside base64; SASL responses
 * have none, and the backend's decoder may treat them differently, so the
 * whole input is checked here first: alphabet only, length a multiple of 4,
 * at most two '=' at the very end, and zero pad bits (RFC 4648 3.5 lets a
 * decoder refuse others), so that each byte string has exactly one accepted
 * encoding.
 */
int
ig_sasl_b64_decode(struct ig_span in, uint8_t *out, size_t outsz, size_t *outlen)
{
	if (outlen == NULL)
		return IG_EINVAL;
	*outlen = 0;
	if (in.len == 0 || (in.len == 1 && in.p[0] == '='))
		return 0;
	if (in.p == NULL || in.len % 4 != 0)
		return IG_EINVAL;

	size_t pad = 0;
	if (in.p[in.len - 1] == '=')
		pad = in.p[in.len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < in.len - pad; i++) {
		if (sasl_b64_val(in.p[i]) < 0)
			return IG_EINVAL;
	}
	if (pad > 0 && (sasl_b64_val(in.p[in.len - pad - 1]) & (pad == 1 ? 0x3 : 0xf)) != 0)
		return IG_EINVAL;

	size_t need = in.len / 4 * 3 - pad;
	if (need > outsz || out == NULL)
		return IG_ETOOLONG;
	size_t olen = 0;
	int rc = mbedtls_base64_decode(out, outsz, &olen, in.p, in.len);
	if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
		return IG_ETOOLONG;
	if (rc != 0 || olen != need)
		return IG_EINVAL;
	*outlen = olen;
	return 0;
}

/*
 * Zero bytes encode to "" (not the RFC 4959 "=", which is IMAP framing and
 * the caller's business). mbedTLS writes nothing at all for zero bytes, so
 * that case is handled here.
 */
int
ig_sasl_b64_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen)
{
	size_t dummy;
	if (outlen == NULL)
		outlen = &dummy;
	*outlen = 0;
	if (out == NULL || outsz == 0)
		return IG_ETOOLONG;
	out[0] = '\0';
	if (len == 0)
		return 0;
	if (in == NULL)
		return IG_EINVAL;
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return IG_ETOOLONG;
	size_t need = (len + 2) / 3 * 4 + 1;
	if (outsz < need)
		return IG_ETOOLONG;
	size_t olen = 0;
	if (mbedtls_base64_encode((unsigned char *)out, outsz, &olen, in, len) != 0) {
		out[0] = '\0';
		return IG_ETOOLONG;
	}
	*outlen = olen;
	return 0;
}

/* ---- names ---- */

static bool
sasl_bad_name_byte(uint8_t c)
{
	return c == '\0' || c == '\r' || c == '\n';
}

/*
 * Copies the name p[0..n) into dst (IG_USER_MAX + 1 bytes). With unescape,
 * p is an RFC 5801/5802 saslname: "=2C" stands for ',' and "=3D" for '=',
 * and any other '=' is malformed. Refuses empty names and names with NUL, CR
 * or LF (IG_EPROTO; checked over the whole input before the length) and
 * longer than IG_USER_MAX once unescaped (IG_ETOOLONG).
 */
static int
sasl_copy_name(const uint8_t *p, size_t n, bool unescape, char *dst)
{
	size_t o = 0;
	bool toolong = false;

	dst[0] = '\0';
	if (n == 0)
		return IG_EPROTO;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (sasl_bad_name_byte(c)) {
			dst[0] = '\0';
			return IG_EPROTO;
		}
		if (unescape && c == '=') {
			/* Upper-case hex only, as RFC 5802 spells them. */
			if (n - i >= 3 && p[i + 1] == '2' && p[i + 2] == 'C') {
				c = ',';
			} else if (n - i >= 3 && p[i + 1] == '3' && p[i + 2] == 'D') {
				c = '=';
			} else {
				dst[0] = '\0';
				return IG_EPROTO;
			}
			i += 2;
		}
		if (o == IG_USER_MAX) {
			toolong = true;
			continue;
		}
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	if (toolong) {
		dst[0] = '\0';
		return IG_ETOOLONG;
	}
	return 0;
}

/* Byte-wise search, since messages may hold NULs. */
static const uint8_t *
sasl_find(const uint8_t *p, size_t n, uint8_t c)
{
	return n == 0 ? NULL : memchr(p, c, n);
}

static bool
sasl_prefix(const uint8_t *p, size_t n, const char *s)
{
	size_t sl = strlen(s);
	return n >= sl && memcmp(p, s, sl) == 0;
}

static bool
sasl_iprefix(const uint8_t *p, size_t n, const char *s)
{
	size_t sl = strlen(s);
	if (n < sl)
		return false;
	for (size_t i = 0; i < sl; i++) {
		uint8_t a = p[i], b = (uint8_t)s[i];
		if (a >= 'A' && a <= 'Z')
			a = (uint8_t)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (uint8_t)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

static bool
sasl_is_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * RFC 4616: [authzid] NUL authcid NUL passwd, with authcid and passwd
 * 1*SAFE. Exactly two NULs; an empty authcid or an empty password is
 * malformed (the grammar requires one or more characters). The password is
 * only checked for being non-empty and NUL-free; it is never copied.
 */
static int
sasl_plain(const uint8_t *msg, size_t len, struct ig_sasl_ident *out)
{
	const uint8_t *nul1 = sasl_find(msg, len, '\0');
	if (nul1 == NULL)
		return IG_EPROTO;
	size_t zlen = (size_t)(nul1 - msg);
	const uint8_t *c = nul1 + 1;
	size_t rest = len - zlen - 1;
	const uint8_t *nul2 = sasl_find(c, rest, '\0');
	if (nul2 == NULL)
		return IG_EPROTO;
	size_t clen = (size_t)(nul2 - c);
	const uint8_t *pw = nul2 + 1;
	size_t pwlen = rest - clen - 1;
	if (pwlen == 0 || sasl_find(pw, pwlen, '\0') != NULL)
		return IG_EPROTO;

	int rc = sasl_copy_name(c, clen, false, out->authcid);
	if (rc != 0)
		return rc;
	out->secret = (struct ig_span){ pw, pwlen };
	if (zlen > 0)
		return sasl_copy_name(msg, zlen, false, out->authzid);
	return 0;
}

/* The LOGIN mechanism's first response is the bare user name. */
static int
sasl_login(const uint8_t *msg, size_t len, struct ig_sasl_ident *out)
{
	return sasl_copy_name(msg, len, false, out->authcid);
}

/* The pairs of an XOAUTH2/OAUTHBEARER response that matter here. */
struct sasl_kv {
	struct ig_span user; /* value of "user=", into the message */
	struct ig_span auth; /* value of "auth=", into the message; a secret */
	bool has_user;
	bool has_auth;
};

/*
 * Reads a run of \x01-terminated "key=value" pairs ending in an empty pair
 * (the final \x01), as XOAUTH2 and OAUTHBEARER share: keys are 1*ALPHA, each
 * key at most once (a second "user=" is exactly what a lenient backend and a
 * strict proxy would read differently). Looks up the values of "user" and
 * "auth" for the caller. With vchar_only, values are RFC 7628
 * *(VCHAR / SP / HTAB / CR / LF).
 */
static int
sasl_kvpairs(const uint8_t *p, size_t n, bool vchar_only, struct sasl_kv *kv)
{
	/* Keys seen, to refuse duplicates; more than 16 pairs is malformed. */
	struct ig_span seen[16];
	size_t nseen = 0;

	memset(kv, 0, sizeof(*kv));
	for (;;) {
		const uint8_t *end = sasl_find(p, n, 0x01);
		if (end == NULL)
			return IG_EPROTO;
		size_t plen = (size_t)(end - p);
		if (plen == 0) {
			/* The closing \x01: it must be the last byte. */
			return n == 1 ? 0 : IG_EPROTO;
		}
		const uint8_t *eq = sasl_find(p, plen, '=');
		if (eq == NULL || eq == p)
			return IG_EPROTO;
		struct ig_span key = { p, (size_t)(eq - p) };
		struct ig_span val = { eq + 1, plen - key.len - 1 };
		for (size_t i = 0; i < key.len; i++) {
			if (!sasl_is_alpha(key.p[i]))
				return IG_EPROTO;
		}
		for (size_t i = 0; vchar_only && i < val.len; i++) {
			uint8_t c = val.p[i];
			if (!((c >= 0x20 && c <= 0x7e) || c == '\t' || c == '\r' || c == '\n'))
				return IG_EPROTO;
		}
		for (size_t i = 0; i < nseen; i++) {
			if (seen[i].len == key.len && memcmp(seen[i].p, key.p, key.len) == 0)
				return IG_EPROTO;
		}
		if (nseen == sizeof(seen) / sizeof(seen[0]))
			return IG_EPROTO;
		seen[nseen++] = key;
		if (key.len == 4 && memcmp(key.p, "user", 4) == 0) {
			kv->user = val;
			kv->has_user = true;
		} else if (key.len == 4 && memcmp(key.p, "auth", 4) == 0) {
			kv->auth = val;
			kv->has_auth = true;
		}
		p = end + 1;
		n -= plen + 1;
	}
}

/*
 * "auth=" must carry "Bearer" (scheme case-insensitive, RFC 6750), one
 * space and a non-empty token. The token itself is the backend's to judge.
 */
static bool
sasl_bearer_ok(struct ig_span auth)
{
	return sasl_iprefix(auth.p, auth.len, "Bearer ") && auth.len > 7;
}

/*
 * XOAUTH2: "user=" U \x01 "auth=Bearer " T \x01 \x01. Both keys are
 * required, in either order; other well-formed keys are tolerated (Dovecot
 * ignores them too); duplicates are not.
 */
static int
sasl_xoauth2(const uint8_t *msg, size_t len, struct ig_sasl_ident *out)
{
	/* NUL has no business in any XOAUTH2 field, token included. */
	if (sasl_find(msg, len, '\0') != NULL)
		return IG_EPROTO;
	struct sasl_kv kv;
	int rc = sasl_kvpairs(msg, len, false, &kv);
	if (rc != 0)
		return rc;
	if (!kv.has_user || !kv.has_auth || !sasl_bearer_ok(kv.auth))
		return IG_EPROTO;
	out->secret = (struct ig_span){ kv.auth.p + 7, kv.auth.len - 7 };
	return sasl_copy_name(kv.user.p, kv.user.len, false, out->authcid);
}

/*
 * The GS2 header (RFC 5801 section 4, without the non-standard "F," flag
 * that neither SCRAM nor OAUTHBEARER uses): cbind-flag "," ["a=" saslname]
 * ",". The flag is "n" or "y"; "p=" cb-name only when allow_p (SCRAM: the
 * backend refuses "p" on a non-PLUS mechanism, the proxy only reads the
 * name). Sets *hdrlen to the header length including the second comma.
 */
static int
sasl_gs2_header(const uint8_t *msg, size_t len, bool allow_p, size_t *hdrlen,
    char *authzid)
{
	size_t i;

	if (len >= 2 && (msg[0] == 'n' || msg[0] == 'y') && msg[1] == ',') {
		i = 2;
	} else if (allow_p && len >= 2 && msg[0] == 'p' && msg[1] == '=') {
		i = 2;
		while (i < len && (sasl_is_alpha(msg[i]) ||
		    (msg[i] >= '0' && msg[i] <= '9') || msg[i] == '.' || msg[i] == '-'))
			i++;
		if (i == 2 || i == len || msg[i] != ',')
			return IG_EPROTO;
		i++;
	} else {
		return IG_EPROTO;
	}

	if (i < len && msg[i] == ',') {
		*hdrlen = i + 1;
		return 0;
	}
	if (!sasl_prefix(msg + i, len - i, "a="))
		return IG_EPROTO;
	i += 2;
	const uint8_t *comma = sasl_find(msg + i, len - i, ',');
	if (comma == NULL)
		return IG_EPROTO;
	size_t zlen = (size_t)(comma - (msg + i));
	int rc = sasl_copy_name(msg + i, zlen, true, authzid);
	if (rc != 0)
		return rc;
	*hdrlen = i + zlen + 1;
	return 0;
}

/*
 * RFC 7628: gs2-header \x01 *kvpair \x01, with a required "auth" pair
 * carrying a Bearer token. The user name is the GS2 authzid; without one the
 * response is well formed but names nobody (IG_ENOTFOUND) and the identity
 * is the token's, which only the backend can resolve. The bare "\x01" a
 * client sends after a server error is not an initial response: IG_EPROTO.
 */
static int
sasl_oauthbearer(const uint8_t *msg, size_t len, struct ig_sasl_ident *out)
{
	size_t hl = 0;
	int rc = sasl_gs2_header(msg, len, false, &hl, out->authzid);
	if (rc != 0)
		return rc;
	if (hl == len || msg[hl] != 0x01)
		return IG_EPROTO;
	struct sasl_kv kv;
	rc = sasl_kvpairs(msg + hl + 1, len - hl - 1, true, &kv);
	if (rc != 0)
		return rc;
	if (!kv.has_auth || !sasl_bearer_ok(kv.auth))
		return IG_EPROTO;
	out->secret = (struct ig_span){ kv.auth.p + 7, kv.auth.len - 7 };
	return out->authzid[0] == '\0' ? IG_ENOTFOUND : 0;
}

/* printable = %x21-2B / %x2D-7E (RFC 5802: printable ASCII except ','). */
static bool
sasl_scram_printable(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ',';
}

/*
 * RFC 5802 client-first-message: gs2-header "n=" saslname ",r=" c-nonce
 * ["," extensions]. A reserved "m=" extension must fail authentication
 * (section 5.1), so it is malformed here. Extensions are ALPHA "=" 1*value-char
 * (anything but NUL and ',').
 */
static int
sasl_scram(const uint8_t *msg, size_t len, struct ig_sasl_ident *out)
{
	if (sasl_find(msg, len, '\0') != NULL)
		return IG_EPROTO;
	size_t i = 0;
	int rc = sasl_gs2_header(msg, len, true, &i, out->authzid);
	if (rc != 0)
		return rc;
	if (!sasl_prefix(msg + i, len - i, "n="))
		return IG_EPROTO;
	i += 2;
	const uint8_t *comma = sasl_find(msg + i, len - i, ',');
	if (comma == NULL)
		return IG_EPROTO;
	size_t ulen = (size_t)(comma - (msg + i));
	rc = sasl_copy_name(msg + i, ulen, true, out->authcid);
	if (rc != 0)
		return rc;
	i += ulen + 1;

	if (!sasl_prefix(msg + i, len - i, "r="))
		return IG_EPROTO;
	i += 2;
	size_t start = i;
	while (i < len && sasl_scram_printable(msg[i]))
		i++;
	if (i == start)
		return IG_EPROTO;
	while (i < len) {
		/* msg[i] == ',' here: only ',' stops the printable runs. */
		if (msg[i] != ',' || len - i < 4 || !sasl_is_alpha(msg[i + 1]) ||
		    msg[i + 2] != '=')
			return IG_EPROTO;
		i += 3;
		start = i;
		while (i < len && msg[i] != ',')
			i++;
		if (i == start)
			return IG_EPROTO;
	}
	return 0;
}

static bool
sasl_lhex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/*
 * RFC 2195: user SP digest, the digest being 16 octets in lower-case hex.
 * The user name may itself hold spaces, so it is everything before the last
 * one.
 */
static int
sasl_cram_md5(const uint8_t *msg, size_t len, struct ig_sasl_ident *out)
{
	if (len < 34 || msg[len - 33] != ' ')
		return IG_EPROTO;
	for (size_t i = len - 32; i < len; i++) {
		if (!sasl_lhex(msg[i]))
			return IG_EPROTO;
	}
	return sasl_copy_name(msg, len - 33, false, out->authcid);
}

int
ig_sasl_extract_user(enum ig_sasl_mech m, const uint8_t *msg, size_t len,
    struct ig_sasl_ident *out)
{
	int rc = IG_EPROTO;

	if (out == NULL)
		return IG_EINVAL;
	out->authcid[0] = '\0';
	out->authzid[0] = '\0';
	out->secret = (struct ig_span){ NULL, 0 };
	if (msg == NULL && len != 0)
		return IG_EINVAL;
	if (msg == NULL)
		msg = (const uint8_t *)"";

	switch (m) {
	case IG_MECH_PLAIN:
		rc = sasl_plain(msg, len, out);
		break;
	case IG_MECH_LOGIN:
		rc = sasl_login(msg, len, out);
		break;
	case IG_MECH_XOAUTH2:
		rc = sasl_xoauth2(msg, len, out);
		break;
	case IG_MECH_OAUTHBEARER:
		rc = sasl_oauthbearer(msg, len, out);
		break;
	case IG_MECH_SCRAM_SHA_1:
	case IG_MECH_SCRAM_SHA_256:
		rc = sasl_scram(msg, len, out);
		break;
	case IG_MECH_CRAM_MD5:
		rc = sasl_cram_md5(msg, len, out);
		break;
	case IG_MECH_COUNT:
		rc = IG_EINVAL;
		break;
	}
	if (rc != 0) {
		/* No half-extracted identity survives a refusal. */
		out->authcid[0] = '\0';
		out->authzid[0] = '\0';
		out->secret = (struct ig_span){ NULL, 0 };
	}
	return rc;
}

const char *
ig_sasl_mailbox_user(const struct ig_sasl_ident *id)
{
	return id->authzid[0] != '\0' ? id->authzid : id->authcid;
}

/*
 * Only ASCII letters are folded (Dovecot's %L lowers ASCII only); UTF-8
 * bytes >= 0x80 are copied untouched, whatever the locale. Bad bytes are
 * looked for before the length so that a long name with a CR is reported as
 * invalid rather than merely long.
 */
int
ig_user_normalize(const uint8_t *in, size_t len, bool fold, char *out, size_t outsz)
{
	if (out == NULL || outsz == 0)
		return IG_EINVAL;
	out[0] = '\0';
	if (in == NULL || len == 0)
		return IG_EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (sasl_bad_name_byte(in[i]))
			return IG_EINVAL;
	}
	if (len > IG_USER_MAX || len >= outsz)
		return IG_ETOOLONG;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		if (fold && c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		out[i] = (char)c;
	}
	out[len] = '\0';
	return 0;
}
