/*
 * TOTP (RFC 6238) over HOTP (RFC 4226) with mbedTLS's HMAC-SHA1, and the
 * otpauth:// key URI. See totp.h.
 */
#include "apppass/totp.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/build_info.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "apppass/base32.h"
#include "util/err.h"

/* crypto/mbedtls_config.h keeps SHA-1 in the md layer (to read
   certificates that use it; TLS's verification profile refuses them). */
#if !defined(MBEDTLS_MD_C) || !defined(MBEDTLS_MD_CAN_SHA1)
#error "TOTP needs mbedTLS's md layer with SHA-1 (MBEDTLS_MD_C, MBEDTLS_SHA1_C)"
#endif

#define TOTP_SHA1_LEN 20 /* bytes of an HMAC-SHA1 */

_Static_assert(IG_TOTP_DIGITS >= IG_HOTP_DIGITS_MIN && IG_TOTP_DIGITS <= IG_HOTP_DIGITS_MAX,
    "TOTP codes are HOTP codes");
_Static_assert(IG_TOTP_SECRET_LEN >= IG_TOTP_SECRET_MIN &&
    IG_TOTP_SECRET_LEN <= IG_TOTP_SECRET_MAX, "a new secret is one we take");
_Static_assert(IG_TOTP_DIGITS == 6 && IG_TOTP_PERIOD == 30,
    "the URI's digits= and period= say what the verifier does");

int
ig_totp_secret_new(uint8_t secret[IG_TOTP_SECRET_LEN])
{
	size_t got = 0;
	while (got < IG_TOTP_SECRET_LEN) {
		ssize_t n = getrandom(secret + got, IG_TOTP_SECRET_LEN - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			mbedtls_platform_zeroize(secret, IG_TOTP_SECRET_LEN);
			return IG_EIO;
		}
		got += (size_t)n;
	}
	return 0;
}

uint64_t
ig_totp_step(uint64_t now)
{
	return now / IG_TOTP_PERIOD;
}

int
ig_hotp(const uint8_t *key, size_t keylen, uint64_t counter, unsigned digits,
    uint32_t *code)
{
	static const uint32_t pow10[IG_HOTP_DIGITS_MAX + 1] = {
		1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
	};
	if (key == NULL || keylen < IG_TOTP_SECRET_MIN || keylen > IG_TOTP_SECRET_MAX ||
	    digits < IG_HOTP_DIGITS_MIN || digits > IG_HOTP_DIGITS_MAX)
		return IG_EINVAL;

	uint8_t msg[8], mac[TOTP_SHA1_LEN];
	for (int i = 7; i >= 0; i--) {
		msg[i] = (uint8_t)counter;
		counter >>= 8;
	}
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
	if (md == NULL || mbedtls_md_hmac(md, key, keylen, msg, sizeof(msg), mac) != 0) {
		mbedtls_platform_zeroize(mac, sizeof(mac));
		return IG_EIO;
	}
	/* Dynamic truncation (RFC 4226 section 5.3): the low nibble of the
	   last byte picks four bytes; the top bit is dropped. */
	unsigned off = mac[TOTP_SHA1_LEN - 1] & 0x0fu;
	uint32_t bin = (uint32_t)(mac[off] & 0x7fu) << 24 | (uint32_t)mac[off + 1] << 16 |
	    (uint32_t)mac[off + 2] << 8 | (uint32_t)mac[off + 3];
	*code = bin % pow10[digits];
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return 0;
}

/* Writes the digits-digit decimal form of v, zero-padded, and a NUL. */
static void
totp_format(uint32_t v, unsigned digits, char *out)
{
	for (unsigned i = digits; i > 0; i--) {
		out[i - 1] = (char)('0' + v % 10u);
		v /= 10u;
	}
	out[digits] = '\0';
}

int
ig_totp_code(const uint8_t *secret, size_t secret_len, uint64_t now,
    char out[IG_TOTP_DIGITS + 1])
{
	uint32_t v;
	out[0] = '\0';
	int rc = ig_hotp(secret, secret_len, ig_totp_step(now), IG_TOTP_DIGITS, &v);
	if (rc != 0)
		return rc;
	totp_format(v, IG_TOTP_DIGITS, out);
	mbedtls_platform_zeroize(&v, sizeof(v));
	return 0;
}

int
ig_totp_verify(const uint8_t *secret, size_t secret_len, struct ig_span code,
    uint64_t now, uint64_t last_used_step, uint64_t *matched_step)
{
	if (code.len != IG_TOTP_DIGITS || code.p == NULL)
		return IG_EINVAL;
	for (size_t i = 0; i < code.len; i++)
		if (code.p[i] < '0' || code.p[i] > '9')
			return IG_EINVAL;
	if (secret == NULL || secret_len < IG_TOTP_SECRET_MIN ||
	    secret_len > IG_TOTP_SECRET_MAX)
		return IG_EINVAL;

	/* Every step of the window is computed and compared, and the result
	   is chosen without a branch on the comparison, so the time taken
	   says nothing of which step, if any, matched. Which steps are
	   eligible (after last_used_step) is no secret. */
	uint64_t t = ig_totp_step(now);
	uint64_t first = t >= IG_TOTP_DRIFT ? t - IG_TOTP_DRIFT : 0;
	uint64_t found = 0;  /* the matching step, 0 for none */
	int rc = 0;
	for (uint64_t s = first; s <= t + IG_TOTP_DRIFT; s++) {
		char want[IG_TOTP_DIGITS + 1];
		uint32_t v;
		if ((rc = ig_hotp(secret, secret_len, s, IG_TOTP_DIGITS, &v)) != 0)
			break;
		totp_format(v, IG_TOTP_DIGITS, want);
		uint64_t eq = (uint64_t)(mbedtls_ct_memcmp(want, code.p, IG_TOTP_DIGITS) == 0);
		uint64_t take = (uint64_t)(s > last_used_step);
		uint64_t mask = 0 - (eq & take); /* all ones for a usable match */
		found = (found & ~mask) | (s & mask); /* steps ascend: the latest wins */
		mbedtls_platform_zeroize(want, sizeof(want));
		mbedtls_platform_zeroize(&v, sizeof(v));
	}
	if (rc != 0)
		return rc;
	if (found == 0)
		return IG_ENOTFOUND;
	*matched_step = found;
	return 0;
}

/* Appends the byte c to out if it fits; *o counts what would be written. */
static void
totp_put(char *out, size_t outsz, size_t *o, char c)
{
	if (*o < outsz)
		out[*o] = c;
	(*o)++;
}

static void
totp_puts(char *out, size_t outsz, size_t *o, const char *s)
{
	while (*s != '\0')
		totp_put(out, outsz, o, *s++);
}

/* Appends s percent-encoded: RFC 3986's unreserved characters and '@' as
 * they are, every other byte as %XX (upper-case hex). */
static void
totp_put_pct(char *out, size_t outsz, size_t *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
			totp_put(out, outsz, o, (char)c);
		} else {
			totp_put(out, outsz, o, '%');
			totp_put(out, outsz, o, hex[c >> 4]);
			totp_put(out, outsz, o, hex[c & 15u]);
		}
	}
}

/* A label part the Key Uri Format allows: non-empty, no ':' and no
 * control character. */
static bool
totp_label_ok(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == ':' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int
ig_totp_uri(const char *issuer, const char *user, const uint8_t *secret,
    size_t secret_len, char *out, size_t outsz, size_t *outlen)
{
	*outlen = 0;
	if (outsz > 0)
		out[0] = '\0';
	if (!totp_label_ok(issuer) || !totp_label_ok(user) || secret == NULL ||
	    secret_len < IG_TOTP_SECRET_MIN || secret_len > IG_TOTP_SECRET_MAX)
		return IG_EINVAL;

	char b32[IG_BASE32_ENC_LEN(IG_TOTP_SECRET_MAX) + 1];
	size_t b32len;
	if (ig_base32_encode(secret, secret_len, b32, sizeof(b32), &b32len) != 0)
		return IG_EINVAL; /* cannot happen: the buffer fits the longest */

	size_t o = 0;
	totp_puts(out, outsz, &o, "otpauth://totp/");
	totp_put_pct(out, outsz, &o, issuer);
	totp_put(out, outsz, &o, ':');
	totp_put_pct(out, outsz, &o, user);
	totp_puts(out, outsz, &o, "?secret=");
	totp_puts(out, outsz, &o, b32);
	totp_puts(out, outsz, &o, "&issuer=");
	totp_put_pct(out, outsz, &o, issuer);
	totp_puts(out, outsz, &o, "&algorithm=SHA1&digits=6&period=30");
	mbedtls_platform_zeroize(b32, sizeof(b32));

	if (o >= outsz) {
		/* It did not fit: the part written holds the secret. */
		if (outsz > 0)
			mbedtls_platform_zeroize(out, outsz);
		return IG_ETOOLONG;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}
