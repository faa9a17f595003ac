/*
 * Unit tests for certs/store.c: loading certificate/key pairs, refusing bad
 * ones with a reason naming the file, and SNI selection, checked both on a
 * bare server context and through real TLS 1.2 and TLS 1.3 handshakes between
 * an mbedTLS client and server over in-memory BIO callbacks.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "certs/name.h"
#include "certs/store.h"
#include "crypto/driver/psa_ossl.h"
#include "util/err.h"

#define PATH_MAX_LEN 4096

/*
 * The fixtures live next to this file; ctest runs from the build tree, so
 * the path is derived from __FILE__ (absolute under CMake), or taken from
 * IG_TEST_CERTS when set.
 */
static const char *
fixture(const char *name)
{
	/* A small ring so several paths can be alive in one expression. */
	static char ring[16][PATH_MAX_LEN];
	static size_t next;
	char *out = ring[next++ % 16];
	const char *dir = getenv("IG_TEST_CERTS");
	int n;

	if (dir != NULL) {
		n = snprintf(out, PATH_MAX_LEN, "%s/%s", dir, name);
	} else {
		const char *slash = strrchr(__FILE__, '/');
		int dlen = slash == NULL ? 1 : (int)(slash - __FILE__);
		n = snprintf(out, PATH_MAX_LEN, "%.*s/../data/certs/%s", dlen,
		    slash == NULL ? "." : __FILE__, name);
	}
	assert_true(n > 0 && n < PATH_MAX_LEN);
	return out;
}

/* The store every selection test uses; dual-* first: they are the default. */
static const char *const store_files[][2] = {
	{ "dual-ecdsa.pem", "dual-ecdsa.key" }, /* dual.example.com, ECDSA */
	{ "dual-rsa.pem", "dual-rsa.key" },     /* dual.example.com, RSA */
	{ "multi.pem", "multi.key" },           /* mail., imap.example.com, ECDSA */
	{ "wildcard.pem", "wildcard.key" },     /* *.example.com, RSA */
	{ "cnonly.pem", "cnonly.key" },         /* CN legacy.example.com, RSA, DER key */
	{ "ip.pem", "ip.key" },                 /* IP SANs only: never chosen by SNI */
};
#define STORE_NFILES (sizeof(store_files) / sizeof(store_files[0]))

static struct ig_certstore *
load_test_store(void)
{
	struct ig_cert_pair_conf pairs[STORE_NFILES];
	struct ig_certstore *store = NULL;
	char err[512];

	for (size_t i = 0; i < STORE_NFILES; i++) {
		pairs[i].cert_path = fixture(store_files[i][0]);
		pairs[i].key_path = fixture(store_files[i][1]);
	}
	if (ig_certstore_load(pairs, STORE_NFILES, &store, err, sizeof(err)) != 0)
		fail_msg("load: %s", err);
	assert_non_null(store);
	return store;
}

static void
test_load_ok(void **state)
{
	struct ig_certstore *store;

	(void)state;
	store = load_test_store();
	assert_int_equal(ig_certstore_count(store), STORE_NFILES);
	ig_certstore_free(store);
	assert_int_equal(ig_certstore_count(NULL), 0);
	ig_certstore_free(NULL);
}

/* The end of validity: the earliest notAfter of the chain, Unix seconds
   (dual-ecdsa.pem's leaf ends 2046-11-18 21:46:44 UTC, its CA one second
   earlier). */
static void
test_not_after(void **state)
{
	(void)state;
	struct ig_certstore *store = load_test_store();
	int64_t t = 0;
	assert_int_equal(ig_certstore_not_after(store, 0, &t), 0);
	assert_true(t == INT64_C(2426190403));
	assert_int_equal(ig_certstore_not_after(store, 2, &t), 0);
	assert_true(t == INT64_C(2426190403));
	assert_int_equal(ig_certstore_not_after(store, STORE_NFILES, &t), IG_ENOTFOUND);
	assert_int_equal(ig_certstore_not_after(NULL, 0, &t), IG_ENOTFOUND);
	ig_certstore_free(store);
}

struct bad_row {
	const char *cert;   /* fixture name, or an absolute path */
	const char *key;
	int want;
	const char *file_in_err; /* the file the message must name */
	const char *reason;      /* a substring of the reason */
};

static const struct bad_row bad_rows[] = {
	/* A key that does not belong to the certificate. */
	{ "mismatch.pem", "mismatch.key", IG_ECERT, "mismatch.key", "does not belong" },
	{ "multi.pem", "dual-ecdsa.key", IG_ECERT, "dual-ecdsa.key", "multi.pem" },
	{ "dual-rsa.pem", "dual-ecdsa.key", IG_ECERT, "dual-ecdsa.key", "does not belong" },
	/* Missing files. */
	{ "nonexistent.pem", "multi.key", IG_ECERT, "nonexistent.pem", "No such file" },
	{ "multi.pem", "nonexistent.key", IG_ECERT, "nonexistent.key", "No such file" },
	/* The wrong kind of file on either side. */
	{ "multi.key", "multi.key", IG_ECERT, "multi.key", "cannot parse certificate" },
	{ "multi.pem", "multi.pem", IG_ECERT, "multi.pem", "cannot parse key" },
	{ "make-fixtures.sh", "multi.key", IG_ECERT, "make-fixtures.sh", "cannot parse" },
	/* A directory, and an empty file. */
	{ ".", "multi.key", IG_ECERT, "/.", "not a regular file" },
	{ "/dev/null", "multi.key", IG_ECERT, "/dev/null", "not a regular file" },
};

static void
test_load_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		const struct bad_row *r = &bad_rows[i];
		/* A good pair first: a later failure must drop it too. */
		struct ig_cert_pair_conf pairs[2] = {
			{ fixture("dual-ecdsa.pem"), fixture("dual-ecdsa.key") },
			{ r->cert[0] == '/' ? r->cert : fixture(r->cert),
			  r->key[0] == '/' ? r->key : fixture(r->key) },
		};
		struct ig_certstore *store = (struct ig_certstore *)&pairs; /* poison */
		char err[512];
		int ret;

		memset(err, 'X', sizeof(err));
		ret = ig_certstore_load(pairs, 2, &store, err, sizeof(err));
		if (ret != r->want || store != NULL || strstr(err, r->file_in_err) == NULL ||
		    strstr(err, r->reason) == NULL)
			fail_msg("row %zu: ret %d store %p err \"%.200s\"", i, ret,
			    (void *)store, err);
		assert_non_null(memchr(err, '\0', sizeof(err)));
		assert_null(strchr(err, '\n'));
	}
}

static void
test_load_edge_cases(void **state)
{
	struct ig_cert_pair_conf pair = { fixture("multi.pem"), fixture("multi.key") };
	struct ig_certstore *store = NULL;
	char err[16];

	(void)state;
	assert_int_equal(ig_certstore_load(NULL, 0, &store, err, sizeof(err)), IG_ECERT);
	assert_null(store);
	assert_int_equal(ig_certstore_load(&pair, 1, NULL, err, sizeof(err)), IG_EINVAL);
	/* A tiny or absent error buffer is truncated, never overrun. */
	pair.key_path = fixture("mismatch.key");
	assert_int_equal(ig_certstore_load(&pair, 1, &store, err, sizeof(err)), IG_ECERT);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(ig_certstore_load(&pair, 1, &store, NULL, 0), IG_ECERT);
	assert_null(store);
}

/* --- selection on a bare server context ------------------------------- */

struct rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

static void
rng_init(struct rng *r)
{
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
	    (const unsigned char *)"test", 4), 0);
}

static void
rng_free(struct rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

struct select_row {
	const char *name;
	size_t len; /* 0: strlen(name) */
	int want;
};

static const struct select_row select_rows[] = {
	{ "dual.example.com", 0, 0 },
	{ "mail.example.com", 0, 0 },
	{ "IMAP.Example.COM", 0, 0 },
	{ "imap.example.com.", 0, 0 },
	{ "legacy.example.com", 0, 0 },       /* from the CN */
	{ "anything.example.com", 0, 0 },     /* the wildcard */
	{ "example.com", 0, IG_ENOTFOUND },
	{ "a.b.example.com", 0, IG_ENOTFOUND },
	{ "*.example.com", 0, IG_ENOTFOUND }, /* an SNI is never a pattern */
	{ "subject-cn.example.com", 0, 0 },   /* only via the wildcard */
	{ "unknown.test", 0, IG_ENOTFOUND },
	{ "127.0.0.1", 0, IG_ENOTFOUND },     /* IP SANs are not SNI names */
	{ "mail.example.com\0", 17, IG_ENOTFOUND },
	{ "", 0, IG_ENOTFOUND },
};

static void
test_select_bare(void **state)
{
	struct ig_certstore *store = load_test_store();
	mbedtls_ssl_config conf;
	struct rng rng;

	(void)state;
	rng_init(&rng);
	mbedtls_ssl_config_init(&conf);
	assert_int_equal(mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &rng.drbg);
	assert_int_equal(ig_certstore_apply_default(store, &conf), 0);

	for (size_t i = 0; i < sizeof(select_rows) / sizeof(select_rows[0]); i++) {
		const struct select_row *r = &select_rows[i];
		size_t len = r->len != 0 ? r->len : strlen(r->name);
		mbedtls_ssl_context ssl;
		int got;

		mbedtls_ssl_init(&ssl);
		assert_int_equal(mbedtls_ssl_setup(&ssl, &conf), 0);
		got = ig_certstore_select(store, &ssl, (const unsigned char *)r->name, len);
		mbedtls_ssl_free(&ssl);
		if (got != r->want)
			fail_msg("row %zu \"%s\": got %d, want %d", i, r->name, got, r->want);
	}
	assert_int_equal(ig_certstore_apply_default(NULL, &conf), IG_EINVAL);
	mbedtls_ssl_config_free(&conf);
	rng_free(&rng);
	ig_certstore_free(store);
}

/* --- in-memory handshakes --------------------------------------------- */

struct bq {
	unsigned char buf[65536];
	size_t len;
};

struct bio {
	struct bq *in;
	struct bq *out;
};

static int
bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct bio *b = ctx;
	size_t room = sizeof(b->out->buf) - b->out->len;

	if (room == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (len > room)
		len = room;
	memcpy(b->out->buf + b->out->len, buf, len);
	b->out->len += len;
	return (int)len;
}

static int
bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct bio *b = ctx;

	if (b->in->len == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (len > b->in->len)
		len = b->in->len;
	memcpy(buf, b->in->buf, len);
	memmove(b->in->buf, b->in->buf + len, b->in->len - len);
	b->in->len -= len;
	return (int)len;
}

struct sni_probe {
	const struct ig_certstore *store;
	int calls;
	int last;
};

/* What the TLS glue does: an unknown name keeps the defaults, no alert. */
static int
sni_cb(void *ctx, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
	struct sni_probe *p = ctx;

	p->calls++;
	p->last = ig_certstore_select(p->store, ssl, name, len);
	return p->last == IG_ENOTFOUND ? 0 : p->last;
}

enum sigs { SIGS_ANY, SIGS_ECDSA, SIGS_RSA };

static const uint16_t sigs_ecdsa[] = {
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP256R1_SHA256,
	MBEDTLS_TLS1_3_SIG_NONE,
};
static const uint16_t sigs_rsa[] = {
	MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA256,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
	MBEDTLS_TLS1_3_SIG_NONE,
};

struct hs_row {
	const char *sni;    /* NULL: no server_name extension */
	enum sigs sigs;
	const char *want;   /* fixture whose leaf the client must see */
	/*
	 * Also acceptable in TLS 1.2 for an unrestricted client: there the
	 * server picks the ciphersuite (hence the key type) first, in
	 * mbedTLS's suite order, and only then a certificate of that type.
	 */
	const char *alt12;
	int want_select;    /* last ig_certstore_select() result, if called */
};

static const struct hs_row hs_rows[] = {
	/* Same name, two key types: the client's algorithms decide. */
	{ "dual.example.com", SIGS_ANY, "dual-ecdsa.pem", "dual-rsa.pem", 0 },
	{ "dual.example.com", SIGS_ECDSA, "dual-ecdsa.pem", NULL, 0 },
	{ "dual.example.com", SIGS_RSA, "dual-rsa.pem", NULL, 0 },
	/* Exact beats wildcard; a wildcard fills a key type exact lacks. */
	{ "mail.example.com", SIGS_ANY, "multi.pem", "wildcard.pem", 0 },
	{ "imap.example.com", SIGS_ECDSA, "multi.pem", NULL, 0 },
	{ "mail.example.com", SIGS_RSA, "wildcard.pem", NULL, 0 },
	{ "pop.example.com", SIGS_ANY, "wildcard.pem", NULL, 0 },
	{ "pop.example.com", SIGS_RSA, "wildcard.pem", NULL, 0 },
	/* CN-only certificate with a DER key. */
	{ "legacy.example.com", SIGS_ANY, "cnonly.pem", NULL, 0 },
	/* Unknown name or none: the defaults, by key type. */
	{ "unknown.test", SIGS_ECDSA, "dual-ecdsa.pem", NULL, IG_ENOTFOUND },
	{ "unknown.test", SIGS_RSA, "dual-rsa.pem", NULL, IG_ENOTFOUND },
	{ NULL, SIGS_ANY, "dual-ecdsa.pem", "dual-rsa.pem", 0 },
	{ NULL, SIGS_RSA, "dual-rsa.pem", NULL, 0 },
};

struct hs_env {
	struct rng rng;
	struct ig_certstore *store;
	mbedtls_x509_crt ca;
	mbedtls_ssl_config srv_conf;
	struct sni_probe probe;
};

static int
hs_setup(void **state)
{
	struct hs_env *env = calloc(1, sizeof(*env));

	assert_non_null(env);
	rng_init(&env->rng);
	env->store = load_test_store();
	mbedtls_x509_crt_init(&env->ca);
	assert_int_equal(mbedtls_x509_crt_parse_file(&env->ca, fixture("ca.pem")), 0);

	mbedtls_ssl_config_init(&env->srv_conf);
	assert_int_equal(mbedtls_ssl_config_defaults(&env->srv_conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&env->srv_conf, mbedtls_ctr_drbg_random, &env->rng.drbg);
	assert_int_equal(ig_certstore_apply_default(env->store, &env->srv_conf), 0);
	env->probe.store = env->store;
	mbedtls_ssl_conf_sni(&env->srv_conf, sni_cb, &env->probe);
	*state = env;
	return 0;
}

static int
hs_teardown(void **state)
{
	struct hs_env *env = *state;

	mbedtls_ssl_config_free(&env->srv_conf);
	mbedtls_x509_crt_free(&env->ca);
	ig_certstore_free(env->store);
	rng_free(&env->rng);
	free(env);
	return 0;
}

/* Runs one handshake to completion; returns 0 or the first hard error. */
static int
hs_pump(mbedtls_ssl_context *cli, mbedtls_ssl_context *srv)
{
	bool cdone = false, sdone = false;

	for (int round = 0; round < 1000 && !(cdone && sdone); round++) {
		int ret;

		if (!cdone) {
			ret = mbedtls_ssl_handshake(cli);
			if (ret == 0)
				cdone = true;
			else if (ret != MBEDTLS_ERR_SSL_WANT_READ &&
			    ret != MBEDTLS_ERR_SSL_WANT_WRITE)
				return ret;
		}
		if (!sdone) {
			ret = mbedtls_ssl_handshake(srv);
			if (ret == 0)
				sdone = true;
			else if (ret != MBEDTLS_ERR_SSL_WANT_READ &&
			    ret != MBEDTLS_ERR_SSL_WANT_WRITE)
				return ret;
		}
	}
	return cdone && sdone ? 0 : MBEDTLS_ERR_SSL_TIMEOUT;
}

/* Is peer the leaf certificate of fixture file? */
static bool
is_leaf_of(const mbedtls_x509_crt *peer, const char *file)
{
	mbedtls_x509_crt want;
	bool same;

	mbedtls_x509_crt_init(&want);
	assert_int_equal(mbedtls_x509_crt_parse_file(&want, fixture(file)), 0);
	same = peer->raw.len == want.raw.len &&
	    memcmp(peer->raw.p, want.raw.p, want.raw.len) == 0;
	mbedtls_x509_crt_free(&want);
	return same;
}

static void
hs_run_rows(struct hs_env *env, mbedtls_ssl_protocol_version version)
{
	for (size_t i = 0; i < sizeof(hs_rows) / sizeof(hs_rows[0]); i++) {
		const struct hs_row *r = &hs_rows[i];
		static struct bq c2s, s2c;
		struct bio cbio = { &s2c, &c2s }, sbio = { &c2s, &s2c };
		mbedtls_ssl_config cli_conf;
		mbedtls_ssl_context cli, srv;
		const mbedtls_x509_crt *peer;
		uint32_t flags;
		int ret;

#if defined(IG_PSA_OSSL_DRIVER)
		unsigned long sign0 = ig_psa_ossl_count(IG_PSA_OSSL_SIGN);
		unsigned long verify0 = ig_psa_ossl_count(IG_PSA_OSSL_VERIFY);
		unsigned long agree0 = ig_psa_ossl_count(IG_PSA_OSSL_AGREE);
#endif
		c2s.len = s2c.len = 0;
		env->probe.calls = 0;
		env->probe.last = 0;

		mbedtls_ssl_config_init(&cli_conf);
		assert_int_equal(mbedtls_ssl_config_defaults(&cli_conf, MBEDTLS_SSL_IS_CLIENT,
		    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
		mbedtls_ssl_conf_rng(&cli_conf, mbedtls_ctr_drbg_random, &env->rng.drbg);
		mbedtls_ssl_conf_min_tls_version(&cli_conf, version);
		mbedtls_ssl_conf_max_tls_version(&cli_conf, version);
		mbedtls_ssl_conf_ca_chain(&cli_conf, &env->ca, NULL);
		/* Verify, but judge the outcome here rather than abort. */
		mbedtls_ssl_conf_authmode(&cli_conf, r->sni != NULL ?
		    MBEDTLS_SSL_VERIFY_OPTIONAL : MBEDTLS_SSL_VERIFY_NONE);
		if (r->sigs == SIGS_ECDSA)
			mbedtls_ssl_conf_sig_algs(&cli_conf, sigs_ecdsa);
		else if (r->sigs == SIGS_RSA)
			mbedtls_ssl_conf_sig_algs(&cli_conf, sigs_rsa);

		mbedtls_ssl_init(&cli);
		mbedtls_ssl_init(&srv);
		assert_int_equal(mbedtls_ssl_setup(&cli, &cli_conf), 0);
		assert_int_equal(mbedtls_ssl_setup(&srv, &env->srv_conf), 0);
		if (r->sni != NULL)
			assert_int_equal(mbedtls_ssl_set_hostname(&cli, r->sni), 0);
		mbedtls_ssl_set_bio(&cli, &cbio, bio_send, bio_recv, NULL);
		mbedtls_ssl_set_bio(&srv, &sbio, bio_send, bio_recv, NULL);

		ret = hs_pump(&cli, &srv);
		if (ret != 0)
			fail_msg("row %zu (%s, sigs %d): handshake -0x%04x", i,
			    r->sni ? r->sni : "no SNI", (int)r->sigs, (unsigned int)-ret);
		assert_int_equal(mbedtls_ssl_get_version_number(&cli), version);
		assert_int_equal(env->probe.calls, r->sni != NULL ? 1 : 0);
		assert_int_equal(env->probe.last, r->want_select);

		peer = mbedtls_ssl_get_peer_cert(&cli);
		assert_non_null(peer);
		if (!is_leaf_of(peer, r->want) && !(version == MBEDTLS_SSL_VERSION_TLS1_2 &&
		    r->alt12 != NULL && is_leaf_of(peer, r->alt12)))
			fail_msg("row %zu (%s, sigs %d): not the leaf of %s", i,
			    r->sni ? r->sni : "no SNI", (int)r->sigs, r->want);
		/* The chain verifies; only an unknown name fails the name check. */
		flags = mbedtls_ssl_get_verify_result(&cli);
		if (r->sni != NULL && r->want_select == 0) {
			assert_int_equal(flags, 0);
			assert_int_equal(ig_cert_check_host(peer, r->sni), 0);
		} else if (r->sni != NULL) {
			assert_int_equal(flags, MBEDTLS_X509_BADCERT_CN_MISMATCH);
			assert_int_equal(ig_cert_check_host(peer, r->sni), IG_ECERT);
		}
#if defined(IG_PSA_OSSL_DRIVER)
		/*
		 * The handshake's crypto went through the OpenSSL driver: both
		 * sides' ECDHE, and with an ECDSA certificate the server's
		 * signature (the key parsed by mbedtls_pk_parse_key, signed
		 * through psa_sign_hash) and the client's check of it.
		 */
		assert_true(ig_psa_ossl_count(IG_PSA_OSSL_AGREE) >= agree0 + 2);
		if (mbedtls_pk_can_do(&peer->pk, MBEDTLS_PK_ECDSA)) {
			assert_true(ig_psa_ossl_count(IG_PSA_OSSL_SIGN) >= sign0 + 1);
			assert_true(ig_psa_ossl_count(IG_PSA_OSSL_VERIFY) >= verify0 + 1);
		}
#endif
		if (r->sigs == SIGS_ECDSA)
			assert_true(mbedtls_pk_can_do(&peer->pk, MBEDTLS_PK_ECDSA));
		if (r->sigs == SIGS_RSA)
			assert_int_equal(mbedtls_pk_get_type(&peer->pk), MBEDTLS_PK_RSA);

		mbedtls_ssl_free(&cli);
		mbedtls_ssl_free(&srv);
		mbedtls_ssl_config_free(&cli_conf);
	}
}

static void
test_handshake_tls13(void **state)
{
	hs_run_rows(*state, MBEDTLS_SSL_VERSION_TLS1_3);
}

static void
test_handshake_tls12(void **state)
{
	hs_run_rows(*state, MBEDTLS_SSL_VERSION_TLS1_2);
}

int
main(void)
{
	const struct CMUnitTest load_tests[] = {
		cmocka_unit_test(test_load_ok),
		cmocka_unit_test(test_not_after),
		cmocka_unit_test(test_load_refused),
		cmocka_unit_test(test_load_edge_cases),
		cmocka_unit_test(test_select_bare),
	};
	const struct CMUnitTest hs_tests[] = {
		cmocka_unit_test(test_handshake_tls13),
		cmocka_unit_test(test_handshake_tls12),
	};
	int failed;

	/* Key parsing and TLS 1.3 go through PSA even without USE_PSA_CRYPTO. */
	if (psa_crypto_init() != PSA_SUCCESS)
		return 1;
	failed = cmocka_run_group_tests(load_tests, NULL, NULL);
	failed += cmocka_run_group_tests(hs_tests, hs_setup, hs_teardown);
	mbedtls_psa_crypto_free();
	return failed;
}
