/*
 * Server identity check (RFC 2595 section 2.4, RFC 6125, RFC 7817): does a
 * certificate name match the host name the proxy was configured with?
 */
#ifndef IG_CERTS_NAME_H
#define IG_CERTS_NAME_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/x509_crt.h>

/*
 * Matches one presented DNS name (pattern[0..plen)) against the reference
 * host name (host[0..hlen)): case-insensitive (ASCII); one trailing dot on
 * either side ignored; "*" allowed only as the whole left-most label of a
 * pattern with at least two more labels ("*.example.com" matches
 * "a.example.com", not "example.com", "a.b.example.com" or "com"); no partial
 * wildcards ("f*.example.com" never matches); a wildcard never matches an IP
 * address literal; empty labels never match.
 */
bool ig_cert_name_match(const char *pattern, size_t plen, const char *host, size_t hlen);

/*
 * Checks host against a certificate: its subjectAltName dNSName entries if it
 * has any (any one may match; an IP literal host is compared with iPAddress
 * entries), else its subject CN. Returns 0 on a match, IG_ECERT otherwise.
 */
int ig_cert_check_host(const mbedtls_x509_crt *crt, const char *host);

#endif /* IG_CERTS_NAME_H */
