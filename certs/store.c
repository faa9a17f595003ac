/*
 * The certificate store: server certificate chains and their keys for one
 * configuration generation, plus SNI selection among them. Built in one pass
 * by ig_certstore_load() and never modified afterwards, so one store can be
 * shared by every mbedtls_ssl_config and handshake of its generation.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <mbedtls/build_info.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#if defined(MBEDTLS_ERROR_C)
#include <mbedtls/error.h>
#endif
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "certs/name.h"
#include "certs/store.h"
#include "util/err.h"

/* Larger certificate or key files are refused rather than read. */
#define STORE_FILE_MAX (1024 * 1024)

struct store_pair {
	mbedtls_x509_crt chain; /* leaf first, then intermediates */
	mbedtls_pk_context key; /* private key of the leaf */
	char **names;           /* owned; lower case, no trailing dot */
	size_t nnames;
};

struct ig_certstore {
	/*
	 * Owned array. The store is immutable, but mbedTLS takes non-const
	 * certificate and key pointers (it never writes to them except for
	 * the RSA blinding values, which it guards with its own mutex since
	 * MBEDTLS_THREADING_C is on), hence a pointer rather than a flexible
	 * array: the pairs stay writable through a const store.
	 */
	struct store_pair *pairs;
	size_t npairs;
};

static void
store_mbedtls_reason(int ret, char *buf, size_t bufsz)
{
#if defined(MBEDTLS_ERROR_C)
	char why[128];

	mbedtls_strerror(ret, why, sizeof(why));
	snprintf(buf, bufsz, "%s (-0x%04x)", why, (unsigned int)-ret);
#else
	snprintf(buf, bufsz, "mbedTLS error -0x%04x", (unsigned int)-ret);
#endif
}

static void
store_set_err(char *err, size_t errsz, const char *path, const char *what, const char *why)
{
	if (err == NULL || errsz == 0)
		return;
	snprintf(err, errsz, "%s: %s: %s", path, what, why);
}

static void
store_set_mbedtls_err(char *err, size_t errsz, const char *path, const char *what, int ret)
{
	char why[160];

	store_mbedtls_reason(ret, why, sizeof(why));
	store_set_err(err, errsz, path, what, why);
}

/*
 * Reads a whole file into a NUL-terminated heap buffer, as mbedTLS's own
 * loaders do: *len counts the NUL only for PEM input, which is what the PEM
 * parsers expect, while DER is passed with its exact length. On success the
 * caller zeroizes (keys) and frees *buf. Returns 0, IG_ENOMEM or IG_ECERT
 * with err filled in.
 */
static int
store_read_file(const char *path, unsigned char **buf, size_t *len, char *err, size_t errsz)
{
	FILE *f;
	struct stat st;
	unsigned char *p;
	size_t n;

	*buf = NULL;
	*len = 0;
	if ((f = fopen(path, "rb")) == NULL) {
		store_set_err(err, errsz, path, "cannot open", strerror(errno));
		return IG_ECERT;
	}
	if (fstat(fileno(f), &st) != 0) {
		store_set_err(err, errsz, path, "cannot stat", strerror(errno));
		fclose(f);
		return IG_ECERT;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > STORE_FILE_MAX) {
		store_set_err(err, errsz, path, "cannot load",
		    S_ISREG(st.st_mode) ? "file too large" : "not a regular file");
		fclose(f);
		return IG_ECERT;
	}
	n = (size_t)st.st_size;
	if ((p = malloc(n + 1)) == NULL) {
		store_set_err(err, errsz, path, "cannot load", "out of memory");
		fclose(f);
		return IG_ENOMEM;
	}
	if (fread(p, 1, n, f) != n || ferror(f)) {
		store_set_err(err, errsz, path, "cannot read", "short read");
		mbedtls_platform_zeroize(p, n + 1);
		free(p);
		fclose(f);
		return IG_ECERT;
	}
	fclose(f);
	p[n] = '\0';
	if (n == 0) {
		store_set_err(err, errsz, path, "cannot load", "empty file");
		free(p);
		return IG_ECERT;
	}
	if (strstr((const char *)p, "-----BEGIN ") != NULL)
		n++;
	*buf = p;
	*len = n;
	return 0;
}

/* Appends a lower-cased copy of name[0..len) without its trailing dot. */
static int
store_add_name(struct store_pair *pair, const unsigned char *name, size_t len)
{
	char **names;
	char *copy;

	if (len > 0 && name[len - 1] == '.')
		len--;
	/* A name with a NUL can never be matched: don't record it. */
	if (len == 0 || memchr(name, '\0', len) != NULL)
		return 0;
	for (size_t i = 0; i < pair->nnames; i++) {
		if (strlen(pair->names[i]) == len && strncasecmp(pair->names[i],
		    (const char *)name, len) == 0)
			return 0;
	}
	if ((copy = malloc(len + 1)) == NULL)
		return IG_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = name[i];
		copy[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	copy[len] = '\0';
	names = realloc(pair->names, (pair->nnames + 1) * sizeof(*names));
	if (names == NULL) {
		free(copy);
		return IG_ENOMEM;
	}
	names[pair->nnames++] = copy;
	pair->names = names;
	return 0;
}

/* Records the leaf's SAN dNSNames, or its CNs when it has none. */
static int
store_collect_names(struct store_pair *pair)
{
	const mbedtls_x509_crt *leaf = &pair->chain;
	int ret;

	for (const mbedtls_x509_sequence *cur = &leaf->subject_alt_names; cur != NULL;
	    cur = cur->next) {
		mbedtls_x509_subject_alternative_name san;

		if (cur->buf.p == NULL || cur->buf.len == 0)
			continue;
		memset(&san, 0, sizeof(san));
		if (mbedtls_x509_parse_subject_alt_name(&cur->buf, &san) != 0)
			continue;
		ret = 0;
		if (san.type == MBEDTLS_X509_SAN_DNS_NAME)
			ret = store_add_name(pair, san.san.unstructured_name.p,
			    san.san.unstructured_name.len);
		mbedtls_x509_free_subject_alt_name(&san);
		if (ret != 0)
			return ret;
	}
	if (pair->nnames > 0)
		return 0;
	for (const mbedtls_x509_name *n = &leaf->subject; n != NULL; n = n->next) {
		if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		if ((ret = store_add_name(pair, n->val.p, n->val.len)) != 0)
			return ret;
	}
	return 0;
}

static void
store_pair_free(struct store_pair *pair)
{
	mbedtls_x509_crt_free(&pair->chain);
	mbedtls_pk_free(&pair->key);
	for (size_t i = 0; i < pair->nnames; i++)
		free(pair->names[i]);
	free(pair->names);
	pair->names = NULL;
	pair->nnames = 0;
}

/* Loads one pair (already initialised by the caller) or fills in err. */
static int
store_load_pair(struct store_pair *pair, const struct ig_cert_pair_conf *conf,
    mbedtls_ctr_drbg_context *drbg, char *err, size_t errsz)
{
	unsigned char *buf;
	size_t len;
	int ret;

	if (conf->cert_path == NULL || conf->key_path == NULL) {
		store_set_err(err, errsz, conf->cert_path ? conf->cert_path : "(null)",
		    "cannot load", "certificate or key path missing");
		return IG_ECERT;
	}

	if ((ret = store_read_file(conf->cert_path, &buf, &len, err, errsz)) != 0)
		return ret;
	ret = mbedtls_x509_crt_parse(&pair->chain, buf, len);
	free(buf);
	if (ret < 0) {
		store_set_mbedtls_err(err, errsz, conf->cert_path,
		    "cannot parse certificate", ret);
		return IG_ECERT;
	}
	if (ret > 0) {
		char why[64];
		snprintf(why, sizeof(why), "%d certificate(s) of the chain unreadable", ret);
		store_set_err(err, errsz, conf->cert_path, "cannot parse certificate", why);
		return IG_ECERT;
	}
	/*
	 * mbedTLS 3.6 writes a TLS handshake message in one record, never in
	 * fragments: the Certificate message with the whole chain must fit
	 * the output record (MBEDTLS_SSL_OUT_CONTENT_LEN, crypto/mbedtls_config.h)
	 * or every handshake with this pair fails. TLS 1.3's message is the
	 * larger: 4 (header) + 1 (empty context) + 3 (list length) + for each
	 * certificate 3 (length) + DER + 2 (no extensions).
	 */
	size_t msg = 8;
	for (const mbedtls_x509_crt *c = &pair->chain; c != NULL; c = c->next)
		msg += 5 + c->raw.len;
	if (msg > MBEDTLS_SSL_OUT_CONTENT_LEN) {
		char why[160];
		snprintf(why, sizeof(why), "the chain needs a %zu-byte TLS Certificate message, "
		    "more than the %d bytes of a TLS record here (leave out the root, "
		    "or fewer names)", msg, MBEDTLS_SSL_OUT_CONTENT_LEN);
		store_set_err(err, errsz, conf->cert_path, "certificate chain too long", why);
		return IG_ECERT;
	}

	if ((ret = store_read_file(conf->key_path, &buf, &len, err, errsz)) != 0)
		return ret;
	ret = mbedtls_pk_parse_key(&pair->key, buf, len, NULL, 0, mbedtls_ctr_drbg_random,
	    drbg);
	mbedtls_platform_zeroize(buf, len);
	free(buf);
	if (ret != 0) {
		store_set_mbedtls_err(err, errsz, conf->key_path,
		    ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED ?
		    "cannot parse key (encrypted keys are not supported)" :
		    "cannot parse key", ret);
		return IG_ECERT;
	}
	ret = mbedtls_pk_check_pair(&pair->chain.pk, &pair->key, mbedtls_ctr_drbg_random, drbg);
	if (ret != 0) {
		char what[128];
		snprintf(what, sizeof(what), "key does not belong to the certificate in %s",
		    conf->cert_path);
		store_set_mbedtls_err(err, errsz, conf->key_path, what, ret);
		return IG_ECERT;
	}

	if ((ret = store_collect_names(pair)) != 0) {
		store_set_err(err, errsz, conf->cert_path, "cannot load", "out of memory");
		return ret;
	}
	return 0;
}

int
ig_certstore_load(const struct ig_cert_pair_conf *pairs, size_t npairs,
    struct ig_certstore **out, char *err, size_t errsz)
{
	static const char pers[] = "imapguard certstore";
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	struct ig_certstore *store;
	int ret;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (out == NULL)
		return IG_EINVAL;
	*out = NULL;
	if (pairs == NULL || npairs == 0) {
		store_set_err(err, errsz, "certificates", "cannot load", "no certificate configured");
		return IG_ECERT;
	}

	if ((store = calloc(1, sizeof(*store))) == NULL ||
	    (store->pairs = calloc(npairs, sizeof(*store->pairs))) == NULL) {
		free(store);
		store_set_err(err, errsz, "certificates", "cannot load", "out of memory");
		return IG_ENOMEM;
	}

	/* Key parsing and the pair check need an RNG (RSA blinding). */
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
	    (const unsigned char *)pers, sizeof(pers) - 1);
	if (ret != 0) {
		store_set_mbedtls_err(err, errsz, "certificates", "cannot seed the RNG", ret);
		ret = IG_ECERT;
		goto done;
	}

	for (size_t i = 0; i < npairs; i++) {
		mbedtls_x509_crt_init(&store->pairs[i].chain);
		mbedtls_pk_init(&store->pairs[i].key);
		store->npairs = i + 1;
		ret = store_load_pair(&store->pairs[i], &pairs[i], &drbg, err, errsz);
		if (ret != 0)
			goto done;
	}
	ret = 0;

done:
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	if (ret != 0) {
		ig_certstore_free(store);
		return ret;
	}
	*out = store;
	return 0;
}

void
ig_certstore_free(struct ig_certstore *store)
{
	if (store == NULL)
		return;
	for (size_t i = 0; i < store->npairs; i++)
		store_pair_free(&store->pairs[i]);
	free(store->pairs);
	free(store);
}

size_t
ig_certstore_count(const struct ig_certstore *store)
{
	return store == NULL ? 0 : store->npairs;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's
   days_from_civil). */
static int64_t
store_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int
ig_certstore_not_after(const struct ig_certstore *store, size_t i, int64_t *unix_s)
{
	if (store == NULL || i >= store->npairs)
		return IG_ENOTFOUND;
	int64_t best = INT64_MAX;
	for (const mbedtls_x509_crt *c = &store->pairs[i].chain; c != NULL && c->raw.len > 0;
	    c = c->next) {
		const mbedtls_x509_time *t = &c->valid_to;
		int64_t s = store_days_from_civil(t->year, (unsigned)t->mon, (unsigned)t->day) *
		    86400 + t->hour * 3600 + t->min * 60 + t->sec;
		if (s < best)
			best = s;
	}
	*unix_s = best;
	return 0;
}

static bool
store_has_name(const struct store_pair *pair, const char *name)
{
	for (size_t i = 0; i < pair->nnames; i++) {
		if (strcmp(pair->names[i], name) == 0)
			return true;
	}
	return false;
}

/* Same name set (names are stored deduplicated and lower-cased). */
static bool
store_same_names(const struct store_pair *a, const struct store_pair *b)
{
	if (a->nnames != b->nnames)
		return false;
	for (size_t i = 0; i < a->nnames; i++) {
		if (!store_has_name(b, a->names[i]))
			return false;
	}
	return true;
}

static int
store_map_ssl_err(int ret)
{
	return ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? IG_ENOMEM : IG_ETLS;
}

int
ig_certstore_apply_default(const struct ig_certstore *store, mbedtls_ssl_config *conf)
{
	const struct store_pair *first;
	int ret;

	if (store == NULL || conf == NULL || store->npairs == 0)
		return IG_EINVAL;
	first = &store->pairs[0];
	for (size_t i = 0; i < store->npairs; i++) {
		struct store_pair *pair = &store->pairs[i];

		if (i > 0 && !store_same_names(first, pair))
			continue;
		ret = mbedtls_ssl_conf_own_cert(conf, &pair->chain, &pair->key);
		if (ret != 0)
			return store_map_ssl_err(ret);
	}
	return 0;
}

/*
 * Does pair carry a name matching host, among its exact names (wildcard
 * false) or among its "*." names (wildcard true)?
 */
static bool
store_pair_matches(const struct store_pair *pair, const char *host, size_t hlen,
    bool wildcard)
{
	for (size_t i = 0; i < pair->nnames; i++) {
		const char *name = pair->names[i];

		if ((name[0] == '*') != wildcard)
			continue;
		if (ig_cert_name_match(name, strlen(name), host, hlen))
			return true;
	}
	return false;
}

/* Has a pair of key type t been installed already (covered[0..n))? */
static bool
store_type_covered(const mbedtls_pk_type_t *covered, size_t n, mbedtls_pk_type_t t)
{
	for (size_t i = 0; i < n; i++) {
		if (covered[i] == t)
			return true;
	}
	return false;
}

int
ig_certstore_select(const struct ig_certstore *store, mbedtls_ssl_context *ssl,
    const unsigned char *name, size_t len)
{
	mbedtls_pk_type_t covered[8]; /* key types of the exact pairs installed */
	size_t ncovered = 0, installed = 0;
	int ret;

	if (store == NULL || ssl == NULL || name == NULL || len == 0)
		return IG_ENOTFOUND;
	/*
	 * Exact names first. mbedTLS picks by the client's signature
	 * algorithm preference first and installation order second (TLS 1.3
	 * ssl_tls13_pick_key_cert), so installing every wildcard pair too
	 * could let a wildcard certificate win over an exact one. A wildcard
	 * pair is therefore added only for a key type no exact pair offers:
	 * an RSA-only client still gets a valid certificate when the exact
	 * name exists only as ECDSA, and an exact match otherwise wins.
	 */
	for (size_t i = 0; i < store->npairs; i++) {
		struct store_pair *pair = &store->pairs[i];
		mbedtls_pk_type_t t = mbedtls_pk_get_type(&pair->key);

		if (!store_pair_matches(pair, (const char *)name, len, false))
			continue;
		ret = mbedtls_ssl_set_hs_own_cert(ssl, &pair->chain, &pair->key);
		if (ret != 0)
			return store_map_ssl_err(ret);
		installed++;
		if (!store_type_covered(covered, ncovered, t) &&
		    ncovered < sizeof(covered) / sizeof(covered[0]))
			covered[ncovered++] = t;
	}
	for (size_t i = 0; i < store->npairs; i++) {
		struct store_pair *pair = &store->pairs[i];

		if (store_type_covered(covered, ncovered, mbedtls_pk_get_type(&pair->key)) ||
		    store_pair_matches(pair, (const char *)name, len, false) ||
		    !store_pair_matches(pair, (const char *)name, len, true))
			continue;
		ret = mbedtls_ssl_set_hs_own_cert(ssl, &pair->chain, &pair->key);
		if (ret != 0)
			return store_map_ssl_err(ret);
		installed++;
	}
	return installed > 0 ? 0 : IG_ENOTFOUND;
}
