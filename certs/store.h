/*
 * The certificate store: the server certificates (PEM chain + key) of one
 * configuration generation, and SNI selection among them. Immutable once
 * loaded; it must outlive every mbedtls_ssl_config it was applied to.
 */
#ifndef IG_CERTS_STORE_H
#define IG_CERTS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>

struct ig_certstore;

struct ig_cert_pair_conf {
	const char *cert_path; /* PEM chain: leaf first */
	const char *key_path;  /* PEM or DER private key, unencrypted */
};

/*
 * Loads every pair: parses the chain and the key, checks that the key belongs
 * to the leaf certificate, and records the leaf's DNS names (SAN dNSName,
 * else CN) for SNI. On failure returns IG_ECERT (or IG_ENOMEM) and writes a
 * one-line reason naming the file into err (size errsz); nothing is kept.
 * On success *out owns everything (free with ig_certstore_free()).
 */
int ig_certstore_load(const struct ig_cert_pair_conf *pairs, size_t npairs,
    struct ig_certstore **out, char *err, size_t errsz);

void ig_certstore_free(struct ig_certstore *store);

/*
 * Installs the default certificates on conf: every pair whose names match
 * those of the first pair (so an ECDSA and an RSA certificate for the same
 * names are both offered and mbedTLS picks by the client's signature
 * algorithms). Returns 0 or a negative IG_E* code.
 */
int ig_certstore_apply_default(const struct ig_certstore *store, mbedtls_ssl_config *conf);

/*
 * For an SNI callback: installs on ssl (mbedtls_ssl_set_hs_own_cert) the
 * pairs for the requested server name: every pair with an exact name match,
 * plus a wildcard match only for a key type (ECDSA, RSA) no exact pair
 * covers (mbedTLS picks among installed pairs by the client's signature
 * algorithms, so a wildcard must not outrank an exact name). Names compare
 * case-insensitively. Returns 0 if at least one matched, IG_ENOTFOUND if
 * none did (nothing installed: the defaults apply; the SNI callback must
 * then return 0 unless it wants to refuse unknown names).
 */
int ig_certstore_select(const struct ig_certstore *store, mbedtls_ssl_context *ssl,
    const unsigned char *name, size_t len);

/* Number of pairs loaded. */
size_t ig_certstore_count(const struct ig_certstore *store);

/*
 * The end of validity of pair i (0 .. count-1, in the order loaded): the
 * earliest notAfter of its chain (leaf and intermediates), in Unix seconds
 * (UTC). Returns 0, or IG_ENOTFOUND for an index out of range.
 */
int ig_certstore_not_after(const struct ig_certstore *store, size_t i, int64_t *unix_s);

#endif /* IG_CERTS_STORE_H */
