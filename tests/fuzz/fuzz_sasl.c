/*
 * Fuzz target for proxy/sasl.c and proxy/caps.c: the same bytes go to every
 * mechanism's user name extraction, base64 both ways, normalisation, the
 * capability filter and the response line parser. Invariants are checked
 * and any violation abort()s, so the replay build catches them too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/caps.h"
#include "util/err.h"
#include "util/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* True when s is NUL-terminated within sz bytes; returns its length. */
static size_t
fz_strlen(const char *s, size_t sz)
{
	const char *nul = memchr(s, '\0', sz);
	CHECK(nul != NULL);
	return (size_t)(nul - s);
}

static bool
fz_name_ok(const char *s)
{
	size_t n = fz_strlen(s, IG_USER_MAX + 1);
	return n <= IG_USER_MAX && strpbrk(s, "\r\n") == NULL;
}

static void
fz_extract(const uint8_t *data, size_t size)
{
	for (int i = 0; i <= IG_MECH_COUNT; i++) {
		enum ig_sasl_mech m = (enum ig_sasl_mech)i;
		struct ig_sasl_ident id;
		memset(&id, 0xa5, sizeof(id));
		int rc = ig_sasl_extract_user(m, data, size, &id);
		CHECK(rc == 0 || rc == IG_EPROTO || rc == IG_ENOTFOUND ||
		    rc == IG_ETOOLONG || rc == IG_EINVAL);
		CHECK(fz_name_ok(id.authcid) && fz_name_ok(id.authzid));
		if (rc != 0) {
			CHECK(id.authcid[0] == '\0' && id.authzid[0] == '\0');
			CHECK(id.secret.p == NULL && id.secret.len == 0);
			continue;
		}
		/* A secret, when found, lies inside the message and is not
		   empty; only the mechanisms that carry one report one. */
		if (id.secret.p != NULL) {
			CHECK(id.secret.p >= data && id.secret.len > 0 &&
			    id.secret.len <= size - (size_t)(id.secret.p - data));
			CHECK(m == IG_MECH_PLAIN || m == IG_MECH_XOAUTH2 ||
			    m == IG_MECH_OAUTHBEARER);
		} else {
			CHECK(id.secret.len == 0);
			CHECK(m != IG_MECH_PLAIN && m != IG_MECH_XOAUTH2 &&
			    m != IG_MECH_OAUTHBEARER);
		}
		const char *mu = ig_sasl_mailbox_user(&id);
		CHECK(mu == id.authcid || mu == id.authzid);
		/* A successful extraction names someone (OAUTHBEARER: authzid). */
		CHECK(mu[0] != '\0');
		if (m == IG_MECH_OAUTHBEARER)
			CHECK(id.authcid[0] == '\0');
		/* Without escapes the name is a substring of the message. */
		if (m == IG_MECH_PLAIN || m == IG_MECH_LOGIN || m == IG_MECH_CRAM_MD5 ||
		    m == IG_MECH_XOAUTH2) {
			size_t n = strlen(id.authcid);
			CHECK(n <= size);
			bool found = false;
			for (size_t k = 0; k + n <= size && !found; k++)
				found = memcmp(data + k, id.authcid, n) == 0;
			CHECK(found);
		}
		/* What extraction accepts, normalisation accepts. */
		char norm[IG_USER_MAX + 1];
		CHECK(ig_user_normalize((const uint8_t *)mu, strlen(mu), true, norm,
		    sizeof(norm)) == 0);
	}
}

static void
fz_base64(const uint8_t *data, size_t size)
{
	static uint8_t dec[8192];
	static char enc[8192 * 4 / 3 + 8];
	struct ig_span in = { data, size };
	size_t dl = 12345;

	int rc = ig_sasl_b64_decode(in, dec, sizeof(dec), &dl);
	CHECK(rc == 0 || rc == IG_EINVAL || rc == IG_ETOOLONG);
	if (rc != 0) {
		CHECK(dl == 0);
		return;
	}
	CHECK(dl <= sizeof(dec) && dl <= size);
	/* A too-small buffer is reported, never overrun. */
	if (dl > 0) {
		size_t dl2 = 1;
		CHECK(ig_sasl_b64_decode(in, dec, dl - 1, &dl2) == IG_ETOOLONG && dl2 == 0);
		CHECK(ig_sasl_b64_decode(in, dec, dl, &dl2) == 0 && dl2 == dl);
	}
	/* Strict decoding means re-encoding gives the input back ("=" aside). */
	size_t el = 0;
	CHECK(ig_sasl_b64_encode(dec, dl, enc, sizeof(enc), &el) == 0);
	CHECK(fz_strlen(enc, sizeof(enc)) == el);
	if (!(size == 1 && data[0] == '='))
		CHECK(el == size && memcmp(enc, data, size) == 0);
	if (el > 0) {
		size_t el2 = 1;
		CHECK(ig_sasl_b64_encode(dec, dl, enc, el, &el2) == IG_ETOOLONG);
		CHECK(el2 == 0 && enc[0] == '\0');
	}
}

static void
fz_encode_roundtrip(const uint8_t *data, size_t size)
{
	static char enc[8192 * 4 / 3 + 8];
	static uint8_t dec[8192];
	size_t el = 0, dl = 0;

	if (size > 8192)
		return;
	CHECK(ig_sasl_b64_encode(data, size, enc, sizeof(enc), &el) == 0);
	CHECK(el == (size + 2) / 3 * 4 && fz_strlen(enc, sizeof(enc)) == el);
	struct ig_span sp = { (const uint8_t *)enc, el };
	CHECK(ig_sasl_b64_decode(sp, dec, sizeof(dec), &dl) == 0);
	CHECK(dl == size && (size == 0 || memcmp(dec, data, size) == 0));
}

static void
fz_normalize(const uint8_t *data, size_t size)
{
	for (int f = 0; f < 2; f++) {
		char out[IG_USER_MAX + 1];
		memset(out, 0xa5, sizeof(out));
		int rc = ig_user_normalize(data, size, f != 0, out, sizeof(out));
		CHECK(rc == 0 || rc == IG_EINVAL || rc == IG_ETOOLONG);
		size_t n = fz_strlen(out, sizeof(out));
		if (rc != 0) {
			CHECK(n == 0);
			continue;
		}
		CHECK(n == size && n <= IG_USER_MAX);
		for (size_t i = 0; i < n; i++) {
			uint8_t c = data[i], o = (uint8_t)out[i];
			CHECK(c != '\0' && c != '\r' && c != '\n');
			if (f && c >= 'A' && c <= 'Z')
				CHECK(o == c - 'A' + 'a');
			else
				CHECK(o == c);
		}
	}
}

/* Every token of a filtered list is an atom, once, single-spaced. */
static void
fz_caps_shape(const char *caps, size_t sz)
{
	size_t n = fz_strlen(caps, sz);
	CHECK(n < sz);
	if (n == 0)
		return;
	CHECK(caps[0] != ' ' && caps[n - 1] != ' ' && strstr(caps, "  ") == NULL);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)caps[i];
		CHECK(c >= 0x20 && c < 0x7f && c != ']' && c != '"' && c != '\\');
	}
}

/* True when some token of caps starts with "AUTH=" in any case. */
static bool
fz_has_auth(const char *caps)
{
	for (const char *p = caps; *p != '\0'; p++) {
		if ((p == caps || p[-1] == ' ') && strncasecmp(p, "AUTH=", 5) == 0)
			return true;
	}
	return false;
}

static void
fz_caps(const uint8_t *data, size_t size)
{
	static const struct ig_caps_view views[] = {
		{ true, false, 0 },
		{ true, false, IG_MECH_BIT(IG_MECH_SCRAM_SHA_256) },
		{ false, true, IG_MECH_ALL },
		{ false, false, IG_MECH_BIT(IG_MECH_PLAIN) | IG_MECH_BIT(IG_MECH_CRAM_MD5) },
	};
	static char in[IG_CAPS_MAX * 4];
	static char out[IG_CAPS_MAX], again[IG_CAPS_MAX], small[IG_CAPS_MAX];

	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;
	memcpy(in, data, n);
	in[n] = '\0';

	for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		const struct ig_caps_view *v = &views[i];
		int rc = ig_caps_filter(in, v, out, sizeof(out));
		CHECK(rc == 0 || rc == IG_ETOOLONG);
		fz_caps_shape(out, sizeof(out));
		if (rc != 0) {
			CHECK(out[0] == '\0');
			continue;
		}
		size_t len = strlen(out);
		CHECK(ig_caps_has(out, "IMAP4rev1"));
		CHECK(ig_caps_has(out, "STARTTLS") == v->starttls_offered);
		CHECK(ig_caps_has(out, "LOGINDISABLED") == !v->login_allowed);
		if (v->mechs_allowed == 0)
			CHECK(!ig_caps_has(out, "SASL-IR") && !fz_has_auth(out));
		/* Idempotent, and exactly len + 1 bytes needed. */
		CHECK(ig_caps_filter(out, v, again, sizeof(again)) == 0);
		CHECK(strcmp(out, again) == 0);
		CHECK(ig_caps_filter(in, v, small, len + 1) == 0);
		CHECK(strcmp(out, small) == 0);
		CHECK(ig_caps_filter(in, v, small, len) == IG_ETOOLONG && small[0] == '\0');
	}

	struct ig_span line = { data, size };
	int rc = ig_caps_from_response(line, out, sizeof(out));
	CHECK(rc == 0 || rc == IG_ENOTFOUND || rc == IG_ETOOLONG);
	fz_caps_shape(out, sizeof(out));
	if (rc != 0) {
		CHECK(out[0] == '\0');
		return;
	}
	CHECK(out[0] != '\0');
	size_t len = strlen(out);
	CHECK(len <= size);
	CHECK(ig_caps_from_response(line, small, len + 1) == 0 && strcmp(small, out) == 0);
	CHECK(ig_caps_from_response(line, small, len) == IG_ETOOLONG && small[0] == '\0');
	/* Every token found is reported present. */
	char *save = NULL;
	memcpy(again, out, len + 1);
	for (char *t = strtok_r(again, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save))
		CHECK(ig_caps_has(out, t));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_extract(data, size);
	fz_base64(data, size);
	fz_encode_roundtrip(data, size);
	fz_normalize(data, size);
	fz_caps(data, size);

	/* Mechanism lookup never reads past the span. */
	struct ig_span name = { data, size };
	enum ig_sasl_mech m = ig_sasl_mech_from_name(name);
	if (m != IG_MECH_COUNT)
		CHECK(strlen(ig_sasl_mech_str(m)) == size);
	return 0;
}
