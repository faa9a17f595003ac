/*
 * Server identity check: RFC 6125 section 6.4 as narrowed by RFC 2595
 * section 2.4 and RFC 7817 for IMAP. Reference identifiers come from the
 * configuration, never from DNS; presented identifiers come from the
 * certificate and are treated as hostile bytes (embedded NULs, control
 * characters, misplaced '*' all simply fail to match).
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "certs/name.h"
#include "util/err.h"

/* Longest textual IP address inet_pton() is asked about (IPv6 with IPv4 tail). */
#define NAME_IPLIT_MAX 46

static unsigned char
name_lower(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	return c;
}

static bool
name_eq_nocase(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (name_lower((unsigned char)a[i]) != name_lower((unsigned char)b[i]))
			return false;
	}
	return true;
}

/*
 * A name made of printable ASCII without spaces, with no empty label (no
 * leading dot, no "..", not empty). The caller has removed one trailing dot
 * already, so a dot left at the end means an empty last label. '*' is
 * refused unless allow_star; the caller decides where a star may be.
 */
static bool
name_is_wellformed(const char *s, size_t len, bool allow_star)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
		if (c == '*' && !allow_star)
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false; /* i + 1 < len: s[len - 1] is not a dot */
	}
	return true;
}

/* Removes one trailing dot (absolute name) from a length. */
static size_t
name_strip_dot(const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '.')
		return len - 1;
	return len;
}

/*
 * Parses an IPv4 dotted quad or an IPv6 literal into out (4 or 16 bytes).
 * Returns the address length, or 0 when s is not an IP literal.
 */
static size_t
name_parse_ip(const char *s, size_t len, unsigned char out[16])
{
	char buf[NAME_IPLIT_MAX + 1];

	if (len == 0 || len > NAME_IPLIT_MAX || memchr(s, '\0', len) != NULL)
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, buf, out) == 1)
		return 16;
	return 0;
}

bool
ig_cert_name_match(const char *pattern, size_t plen, const char *host, size_t hlen)
{
	unsigned char ip[16];

	if (pattern == NULL || host == NULL)
		return false;
	plen = name_strip_dot(pattern, plen);
	hlen = name_strip_dot(host, hlen);
	/* The reference identifier is a plain host name: never a pattern. */
	if (!name_is_wellformed(host, hlen, false))
		return false;

	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *prest = pattern + 1; /* ".example.com" */
		size_t prestlen = plen - 1;
		const char *hdot;

		/* "*.com" and "*." are too broad: two labels must follow. */
		if (!name_is_wellformed(prest + 1, prestlen - 1, false) ||
		    memchr(prest + 1, '.', prestlen - 1) == NULL)
			return false;
		if (name_parse_ip(host, hlen, ip) != 0)
			return false;
		/* "*" stands for exactly one non-empty left-most label. */
		hdot = memchr(host, '.', hlen);
		if (hdot == NULL || hdot == host)
			return false;
		if ((size_t)(host + hlen - hdot) != prestlen)
			return false;
		return name_eq_nocase(hdot, prest, prestlen);
	}

	/* No wildcard: any '*' elsewhere (partial or inner) never matches. */
	if (!name_is_wellformed(pattern, plen, false))
		return false;
	return plen == hlen && name_eq_nocase(pattern, host, hlen);
}

/*
 * Walks the subjectAltName entries of crt. Sets *has_dns when there is at
 * least one dNSName. When ip_len is nonzero, compares iPAddress entries with
 * ip[0..ip_len); otherwise compares dNSName entries with host. Returns true
 * on a match.
 */
static bool
name_check_san(const mbedtls_x509_crt *crt, const char *host, const unsigned char *ip,
    size_t ip_len, bool *has_dns)
{
	*has_dns = false;
	for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur != NULL;
	    cur = cur->next) {
		mbedtls_x509_subject_alternative_name san;
		bool match = false;

		if (cur->buf.p == NULL || cur->buf.len == 0)
			continue;
		memset(&san, 0, sizeof(san));
		/* Types mbedTLS does not parse (x400, EDI, ...) are skipped. */
		if (mbedtls_x509_parse_subject_alt_name(&cur->buf, &san) != 0)
			continue;
		if (san.type == MBEDTLS_X509_SAN_DNS_NAME) {
			*has_dns = true;
			if (ip_len == 0)
				match = ig_cert_name_match(
				    (const char *)san.san.unstructured_name.p,
				    san.san.unstructured_name.len, host, strlen(host));
		} else if (san.type == MBEDTLS_X509_SAN_IP_ADDRESS && ip_len != 0) {
			match = san.san.unstructured_name.len == ip_len &&
			    memcmp(san.san.unstructured_name.p, ip, ip_len) == 0;
		}
		mbedtls_x509_free_subject_alt_name(&san);
		if (match)
			return true;
	}
	return false;
}

/* Compares host with every commonName of the subject (RFC 6125 6.4.4). */
static bool
name_check_cn(const mbedtls_x509_crt *crt, const char *host)
{
	for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
		if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		if (ig_cert_name_match((const char *)n->val.p, n->val.len, host,
		    strlen(host)))
			return true;
	}
	return false;
}

int
ig_cert_check_host(const mbedtls_x509_crt *crt, const char *host)
{
	unsigned char ip[16];
	size_t ip_len;
	bool has_dns;

	if (crt == NULL || host == NULL || crt->raw.p == NULL)
		return IG_ECERT;
	ip_len = name_parse_ip(host, strlen(host), ip);
	if (name_check_san(crt, host, ip, ip_len, &has_dns))
		return 0;
	/*
	 * An IP literal is only ever compared with iPAddress entries: a CN
	 * holding an address is the legacy form RFC 6125 does not allow.
	 */
	if (ip_len != 0 || has_dns)
		return IG_ECERT;
	return name_check_cn(crt, host) ? 0 : IG_ECERT;
}
