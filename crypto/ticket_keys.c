/*
 * The ticket key file's parser and formatter (crypto/ticket_keys.h). Pure:
 * no I/O, no allocation, no clock; fuzzed by tests/fuzz/fuzz_ticket_keys.c.
 */
#include "crypto/ticket_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>

#include "util/err.h"

/* Longest key token decoded (a longer one is refused by its length). */
#define TK_TOKEN_MAX 128

static int
tk_fail(struct ig_ticket_keys_error *err, struct ig_ticket_keys *out, unsigned line,
    unsigned col, int rc, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int
tk_fail(struct ig_ticket_keys_error *err, struct ig_ticket_keys *out, unsigned line,
    unsigned col, int rc, const char *fmt, ...)
{
	va_list ap;
	err->line = line;
	err->col = col;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	ig_ticket_keys_wipe(out);
	return rc;
}

static bool
tk_is_b64(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
}

static bool
tk_is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/*
 * One key line's token (blanks trimmed, tok[0] at column col0). Decodes it
 * into *k, or reports the first problem. The decoded bytes are wiped here.
 */
static int
tk_parse_key(const uint8_t *tok, size_t len, unsigned line, unsigned col0,
    struct ig_ticket_key *k, struct ig_ticket_keys_error *err, struct ig_ticket_keys *out)
{
	size_t pad = SIZE_MAX; /* where '=' starts */
	for (size_t i = 0; i < len; i++) {
		uint8_t c = tok[i];
		unsigned col = col0 + (unsigned)i;
		if (c == '=') {
			if (pad == SIZE_MAX)
				pad = i;
			continue;
		}
		if (pad != SIZE_MAX)
			return tk_fail(err, out, line, col0 + (unsigned)pad, IG_EINVAL,
			    "'=' inside a key: base64 padding comes only at its end");
		if (tk_is_blank(c))
			return tk_fail(err, out, line, col, IG_EINVAL, "a blank inside a key");
		if (c == '-' || c == '_')
			return tk_fail(err, out, line, col, IG_EINVAL, "'%c' is base64url, not "
			    "base64: a key uses A-Z a-z 0-9 + /", c);
		/* (Quotes and backslashes as bytes: the reason goes into a
		   quoted log value.) */
		if (!tk_is_b64(c) && c >= 0x21 && c < 0x7f && c != '"' && c != '\\')
			return tk_fail(err, out, line, col, IG_EINVAL, "'%c' is not a base64 "
			    "character", c);
		if (!tk_is_b64(c))
			return tk_fail(err, out, line, col, IG_EINVAL, "byte 0x%02x is not a base64 "
			    "character", c);
	}
	if (len > TK_TOKEN_MAX)
		return tk_fail(err, out, line, col0, IG_EINVAL, "a key is %d base64 characters, "
		    "this one has %zu", IG_TICKET_KEY_B64_LEN, len);
	uint8_t raw[TK_TOKEN_MAX];
	size_t n = 0;
	int ret = mbedtls_base64_decode(raw, sizeof(raw), &n, tok, len);
	if (ret != 0) {
		mbedtls_platform_zeroize(raw, sizeof(raw));
		return tk_fail(err, out, line, col0, IG_EINVAL, "not valid base64 (%zu characters: "
		    "a key is %d)", len, IG_TICKET_KEY_B64_LEN);
	}
	if (n != IG_TICKET_KEY_RAW_LEN) {
		mbedtls_platform_zeroize(raw, sizeof(raw));
		return tk_fail(err, out, line, col0, IG_EINVAL, "the key decodes to %zu bytes: a key "
		    "is %d (a %d-byte name, then a %d-byte AES-256 key)", n, IG_TICKET_KEY_RAW_LEN,
		    IG_TICKET_KEY_NAME_LEN, IG_TICKET_KEY_LEN);
	}
	memcpy(k->name, raw, IG_TICKET_KEY_NAME_LEN);
	memcpy(k->key, raw + IG_TICKET_KEY_NAME_LEN, IG_TICKET_KEY_LEN);
	mbedtls_platform_zeroize(raw, sizeof(raw));
	uint8_t any = 0;
	for (size_t i = 0; i < IG_TICKET_KEY_LEN; i++)
		any |= k->key[i];
	if (any == 0)
		return tk_fail(err, out, line, col0, IG_EINVAL, "the key is all zero bytes (make keys "
		    "with `imapguard ticket-key new`)");
	return 0;
}

int
ig_ticket_keys_parse(const uint8_t *buf, size_t len, struct ig_ticket_keys *out,
    struct ig_ticket_keys_error *err)
{
	unsigned key_line[IG_TICKET_KEYS_MAX] = { 0 };
	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (len > IG_TICKET_KEY_FILE_MAX)
		return tk_fail(err, out, 0, 0, IG_ETOOLONG, "larger than %d bytes",
		    IG_TICKET_KEY_FILE_MAX);
	unsigned line = 0;
	for (size_t p = 0; p < len;) {
		line++;
		const uint8_t *l = buf + p;
		const uint8_t *nl = memchr(l, '\n', len - p);
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - p;
		p += ll + (nl != NULL);
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		for (size_t i = 0; i < ll; i++)
			if ((l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f)
				return tk_fail(err, out, line, (unsigned)i + 1, IG_EINVAL,
				    "control byte 0x%02x", l[i]);
		size_t s = 0, e = ll;
		while (s < e && tk_is_blank(l[s]))
			s++;
		while (e > s && tk_is_blank(l[e - 1]))
			e--;
		if (s == e || l[s] == '#')
			continue;
		if (out->n == IG_TICKET_KEYS_MAX)
			return tk_fail(err, out, line, (unsigned)s + 1, IG_EINVAL, "more than %d keys: "
			    "the file holds the key that encrypts (last) and at most one before it "
			    "that still decrypts", IG_TICKET_KEYS_MAX);
		struct ig_ticket_key *k = &out->k[out->n];
		int rc = tk_parse_key(l + s, e - s, line, (unsigned)s + 1, k, err, out);
		if (rc != 0)
			return rc;
		for (size_t j = 0; j < out->n; j++)
			if (memcmp(out->k[j].name, k->name, IG_TICKET_KEY_NAME_LEN) == 0)
				return tk_fail(err, out, line, (unsigned)s + 1, IG_EINVAL,
				    "same key name as the key on line %u: names select the key "
				    "that decrypts a ticket", key_line[j]);
		key_line[out->n++] = line;
	}
	if (out->n == 0)
		return tk_fail(err, out, 0, 0, IG_EINVAL, "no key in it (make one with `imapguard "
		    "ticket-key new`)");
	return 0;
}

/* Appends s to buf at *o; false when it does not fit (NUL included). */
static bool
tk_put(char *buf, size_t bufsz, size_t *o, const char *s)
{
	size_t l = strlen(s);
	if (bufsz - *o <= l)
		return false;
	memcpy(buf + *o, s, l + 1);
	*o += l;
	return true;
}

int
ig_ticket_keys_format(const struct ig_ticket_keys *keys, char *buf, size_t bufsz,
    size_t *outlen)
{
	static const char head[] =
	    "# imapguard TLS session ticket keys (tls.ticket_key_file). One key a line,\n"
	    "# oldest first: base64 of a 4-byte name and a 32-byte AES-256-GCM key.\n"
	    "# The last key encrypts new tickets, the one before it only decrypts.\n"
	    "# Secret: mode 600 (or 640). Replace with `imapguard ticket-key rotate`.\n";
	if (keys->n < 1 || keys->n > IG_TICKET_KEYS_MAX)
		return IG_EINVAL;
	size_t o = 0;
	if (bufsz == 0)
		return IG_ETOOLONG;
	buf[0] = '\0';
	if (!tk_put(buf, bufsz, &o, head))
		return IG_ETOOLONG;
	for (size_t i = 0; i < keys->n; i++) {
		const struct ig_ticket_key *k = &keys->k[i];
		uint8_t raw[IG_TICKET_KEY_RAW_LEN];
		char b64[IG_TICKET_KEY_B64_LEN + 1], hex[IG_TICKET_KEY_NAME_HEX], note[96];
		size_t n = 0;
		memcpy(raw, k->name, IG_TICKET_KEY_NAME_LEN);
		memcpy(raw + IG_TICKET_KEY_NAME_LEN, k->key, IG_TICKET_KEY_LEN);
		int ret = mbedtls_base64_encode((unsigned char *)b64, sizeof(b64), &n, raw,
		    sizeof(raw));
		mbedtls_platform_zeroize(raw, sizeof(raw));
		snprintf(note, sizeof(note), "# key %s: %s\n", ig_ticket_key_name_hex(k->name, hex),
		    i + 1 == keys->n ? "encrypts and decrypts" : "decrypts only");
		bool ok = ret == 0 && tk_put(buf, bufsz, &o, note) && tk_put(buf, bufsz, &o, b64) &&
		    tk_put(buf, bufsz, &o, "\n");
		mbedtls_platform_zeroize(b64, sizeof(b64));
		if (!ok) {
			mbedtls_platform_zeroize(buf, bufsz);
			return IG_ETOOLONG;
		}
	}
	*outlen = o;
	return 0;
}

const char *
ig_ticket_key_name_hex(const uint8_t name[IG_TICKET_KEY_NAME_LEN],
    char out[IG_TICKET_KEY_NAME_HEX])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < IG_TICKET_KEY_NAME_LEN; i++) {
		out[2 * i] = digits[name[i] >> 4];
		out[2 * i + 1] = digits[name[i] & 15];
	}
	out[2 * IG_TICKET_KEY_NAME_LEN] = '\0';
	return out;
}

void
ig_ticket_keys_strerror(const struct ig_ticket_keys_error *err, char *buf, size_t bufsz)
{
	if (err->line > 0 && err->col > 0)
		snprintf(buf, bufsz, "line %u, column %u: %s", err->line, err->col, err->reason);
	else if (err->line > 0)
		snprintf(buf, bufsz, "line %u: %s", err->line, err->reason);
	else
		snprintf(buf, bufsz, "%s", err->reason);
}

void
ig_ticket_keys_wipe(struct ig_ticket_keys *keys)
{
	mbedtls_platform_zeroize(keys, sizeof(*keys));
}
