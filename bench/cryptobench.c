/*
 * cryptobench: times the public-key and record operations of one TLS
 * handshake through the PSA API, the way mbedTLS's TLS code calls them, so
 * that each change to the mbedTLS build or configuration can be measured
 * (bench/CRYPTO.md keeps the figures). Not a test: nothing runs it but you.
 *
 *   cryptobench [-t SECONDS] [-r RUNS] [-b openssl|mbedtls] [NAME...]
 *
 * Each operation runs for about SECONDS (default 0.5) of CPU time per run,
 * RUNS times (default 5); the median, fastest and slowest run are printed in
 * microseconds of CPU time per operation. NAMEs select operations by prefix. With our
 * own mbedTLS build, -b chooses the code under PSA (tls.crypto): OpenSSL's
 * libcrypto through the driver (the default) or mbedTLS's own.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/build_info.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/version.h>
#include <psa/crypto.h>

#include "crypto/driver/psa_ossl.h"

#define BENCH_RUNS_MAX 31
#define BENCH_RECORD 16384 /* a full TLS record */

struct bench_state {
	psa_key_id_t sign_key;   /* ECDSA P-256 key pair */
	psa_key_id_t verify_key; /* its public key, as a certificate's is used */
	mbedtls_pk_context pk;   /* the same key as mbedtls_pk_parse_key makes it */
	psa_key_id_t x25519_key; /* X25519 key pair (ours) */
	psa_key_id_t p256_key;   /* ECDH P-256 key pair (ours) */
	psa_key_id_t gcm_key;    /* AES-256-GCM */
	psa_key_id_t chacha_key; /* ChaCha20-Poly1305 */
	psa_key_id_t hmac_key;   /* HMAC-SHA-384, 48 bytes */
	psa_algorithm_t sign_alg;
	uint8_t hash[32];
	uint8_t sig[PSA_SIGNATURE_MAX_SIZE];
	size_t siglen;
	uint8_t x25519_peer[32];
	size_t x25519_peer_len;
	uint8_t p256_peer[65];
	size_t p256_peer_len;
	uint8_t record[BENCH_RECORD + 16];
	uint8_t out[BENCH_RECORD + 16];
};

typedef int (*bench_fn)(struct bench_state *);

static void
bench_die(const char *what, psa_status_t st)
{
	fprintf(stderr, "cryptobench: %s: PSA status %d\n", what, (int)st);
	exit(1);
}

/*
 * The thread's CPU time, not the wall clock: what an operation costs a
 * core, and much less sensitive to the other processes of a shared machine.
 */
static double
bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
bench_sign(struct bench_state *b)
{
	size_t len;
	return psa_sign_hash(b->sign_key, b->sign_alg, b->hash, sizeof(b->hash), b->sig,
	    sizeof(b->sig), &len) == PSA_SUCCESS ? 0 : -1;
}

/* What TLS calls to sign (ssl_tls13_generic.c, ssl_tls12_server.c). */
static int
bench_pk_sign(struct bench_state *b)
{
	uint8_t sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	size_t len;
	return mbedtls_pk_sign(&b->pk, MBEDTLS_MD_SHA256, b->hash, sizeof(b->hash), sig,
	    sizeof(sig), &len, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
}

static int
bench_verify(struct bench_state *b)
{
	return psa_verify_hash(b->verify_key, b->sign_alg, b->hash, sizeof(b->hash), b->sig,
	    b->siglen) == PSA_SUCCESS ? 0 : -1;
}

static int
bench_agree(psa_key_id_t key, const uint8_t *peer, size_t peerlen)
{
	uint8_t secret[66];
	size_t len;
	return psa_raw_key_agreement(PSA_ALG_ECDH, key, peer, peerlen, secret, sizeof(secret),
	    &len) == PSA_SUCCESS ? 0 : -1;
}

/*
 * What one side of an ECDHE exchange does in a TLS handshake (mbedTLS 3.6,
 * ssl_tls13_generic.c and ssl_tls12_*.c with MBEDTLS_USE_PSA_CRYPTO): a new
 * key pair, its public key exported for the key share, the agreement with
 * the peer's share, the key destroyed.
 */
static int
bench_ephemeral(psa_key_type_t type, size_t bits, const uint8_t *peer, size_t peerlen)
{
	psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
	psa_key_id_t key;
	uint8_t pub[65];
	size_t publen;
	int rc = -1;

	psa_set_key_type(&attr, type);
	psa_set_key_bits(&attr, bits);
	psa_set_key_usage_flags(&attr, PSA_KEY_USAGE_DERIVE);
	psa_set_key_algorithm(&attr, PSA_ALG_ECDH);
	if (psa_generate_key(&attr, &key) != PSA_SUCCESS)
		return -1;
	if (psa_export_public_key(key, pub, sizeof(pub), &publen) == PSA_SUCCESS &&
	    bench_agree(key, peer, peerlen) == 0)
		rc = 0;
	psa_destroy_key(key);
	return rc;
}

static int
bench_x25519_agree(struct bench_state *b)
{
	return bench_agree(b->x25519_key, b->x25519_peer, b->x25519_peer_len);
}

static int
bench_x25519_ephemeral(struct bench_state *b)
{
	return bench_ephemeral(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255,
	    b->x25519_peer, b->x25519_peer_len);
}

static int
bench_p256_agree(struct bench_state *b)
{
	return bench_agree(b->p256_key, b->p256_peer, b->p256_peer_len);
}

static int
bench_p256_ephemeral(struct bench_state *b)
{
	return bench_ephemeral(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
	    b->p256_peer, b->p256_peer_len);
}

static int
bench_aead(psa_key_id_t key, psa_algorithm_t alg, struct bench_state *b, size_t len)
{
	static const uint8_t nonce[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	static const uint8_t ad[13] = { 23, 3, 3, 0x40, 0x11 };
	size_t outlen;
	return psa_aead_encrypt(key, alg, nonce, sizeof(nonce), ad, sizeof(ad), b->record, len,
	    b->out, sizeof(b->out), &outlen) == PSA_SUCCESS ? 0 : -1;
}

static int
bench_gcm_16k(struct bench_state *b)
{
	return bench_aead(b->gcm_key, PSA_ALG_GCM, b, BENCH_RECORD);
}

static int
bench_gcm_1k(struct bench_state *b)
{
	return bench_aead(b->gcm_key, PSA_ALG_GCM, b, 1024);
}

static int
bench_chacha_16k(struct bench_state *b)
{
	return bench_aead(b->chacha_key, PSA_ALG_CHACHA20_POLY1305, b, BENCH_RECORD);
}

/* One step of TLS 1.3's key schedule (HKDF-Expand-Label's HMAC) with SHA-384. */
static int
bench_hmac_sha384(struct bench_state *b)
{
	uint8_t mac[48];
	size_t len;
	return psa_mac_compute(b->hmac_key, PSA_ALG_HMAC(PSA_ALG_SHA_384), b->record, 64, mac,
	    sizeof(mac), &len) == PSA_SUCCESS ? 0 : -1;
}

/* The handshake transcript: SHA-384 over 1 KiB. */
static int
bench_sha384_1k(struct bench_state *b)
{
	uint8_t md[48];
	size_t len;
	return psa_hash_compute(PSA_ALG_SHA_384, b->record, 1024, md, sizeof(md), &len) ==
	    PSA_SUCCESS ? 0 : -1;
}

static const struct bench_op {
	const char *name;
	bench_fn fn;
	size_t bytes; /* per operation, for MB/s; 0 for public-key operations */
} bench_ops[] = {
	{ "ecdsa-p256-sign", bench_sign, 0 },
	{ "ecdsa-p256-pk-sign", bench_pk_sign, 0 },
	{ "ecdsa-p256-verify", bench_verify, 0 },
	{ "x25519-agree", bench_x25519_agree, 0 },
	{ "x25519-ephemeral", bench_x25519_ephemeral, 0 },
	{ "ecdh-p256-agree", bench_p256_agree, 0 },
	{ "ecdh-p256-ephemeral", bench_p256_ephemeral, 0 },
	{ "aes256gcm-16k", bench_gcm_16k, BENCH_RECORD },
	{ "aes256gcm-1k", bench_gcm_1k, 1024 },
	{ "chachapoly-16k", bench_chacha_16k, BENCH_RECORD },
	{ "hmac-sha384", bench_hmac_sha384, 64 },
	{ "sha384-1k", bench_sha384_1k, 1024 },
};

static psa_key_id_t
bench_key(psa_key_type_t type, size_t bits, psa_key_usage_t usage, psa_algorithm_t alg)
{
	psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
	psa_key_id_t key;
	psa_status_t st;

	psa_set_key_type(&attr, type);
	psa_set_key_bits(&attr, bits);
	psa_set_key_usage_flags(&attr, usage);
	psa_set_key_algorithm(&attr, alg);
	if ((st = psa_generate_key(&attr, &key)) != PSA_SUCCESS)
		bench_die("generating a key", st);
	return key;
}

/* A peer's public key: generated, exported, destroyed. */
static void
bench_peer(psa_key_type_t type, size_t bits, uint8_t *pub, size_t pubsz, size_t *publen)
{
	psa_key_id_t key = bench_key(type, bits, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH);
	psa_status_t st = psa_export_public_key(key, pub, pubsz, publen);
	if (st != PSA_SUCCESS)
		bench_die("exporting a public key", st);
	psa_destroy_key(key);
}

static void
bench_setup(struct bench_state *b)
{
	psa_status_t st;

	memset(b, 0, sizeof(*b));
	if ((st = psa_crypto_init()) != PSA_SUCCESS)
		bench_die("psa_crypto_init", st);
#if defined(MBEDTLS_ECDSA_DETERMINISTIC)
	/* What TLS signs with in this build (pk_wrap.c) */
	b->sign_alg = PSA_ALG_DETERMINISTIC_ECDSA(PSA_ALG_SHA_256);
#else
	b->sign_alg = PSA_ALG_ECDSA(PSA_ALG_SHA_256);
#endif
	b->sign_key = bench_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
	    PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_VERIFY_HASH | PSA_KEY_USAGE_EXPORT,
	    b->sign_alg);
	{
		uint8_t d[32];
		size_t dlen;

		if ((st = psa_export_key(b->sign_key, d, sizeof(d), &dlen)) != PSA_SUCCESS)
			bench_die("exporting the private key", st);
		mbedtls_pk_init(&b->pk);
		if (mbedtls_pk_setup(&b->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
		    mbedtls_ecp_read_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(b->pk), d,
		    dlen) != 0)
			bench_die("making the PK key", PSA_ERROR_GENERIC_ERROR);
		mbedtls_platform_zeroize(d, sizeof(d));
	}
	{
		psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
		uint8_t pub[65];
		size_t publen;

		if ((st = psa_export_public_key(b->sign_key, pub, sizeof(pub), &publen)) !=
		    PSA_SUCCESS)
			bench_die("exporting the public key", st);
		psa_set_key_type(&attr, PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1));
		psa_set_key_usage_flags(&attr, PSA_KEY_USAGE_VERIFY_HASH);
		psa_set_key_algorithm(&attr, b->sign_alg);
		if ((st = psa_import_key(&attr, pub, publen, &b->verify_key)) != PSA_SUCCESS)
			bench_die("importing the public key", st);
	}
	for (size_t i = 0; i < sizeof(b->hash); i++)
		b->hash[i] = (uint8_t)(i * 7 + 1);
	if ((st = psa_sign_hash(b->sign_key, b->sign_alg, b->hash, sizeof(b->hash), b->sig,
	    sizeof(b->sig), &b->siglen)) != PSA_SUCCESS)
		bench_die("signing", st);
	b->x25519_key = bench_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255,
	    PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH);
	bench_peer(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255, b->x25519_peer,
	    sizeof(b->x25519_peer), &b->x25519_peer_len);
	b->p256_key = bench_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
	    PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH);
	bench_peer(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256, b->p256_peer,
	    sizeof(b->p256_peer), &b->p256_peer_len);
	b->gcm_key = bench_key(PSA_KEY_TYPE_AES, 256, PSA_KEY_USAGE_ENCRYPT, PSA_ALG_GCM);
	b->hmac_key = bench_key(PSA_KEY_TYPE_HMAC, 384, PSA_KEY_USAGE_SIGN_MESSAGE,
	    PSA_ALG_HMAC(PSA_ALG_SHA_384));
	b->chacha_key = bench_key(PSA_KEY_TYPE_CHACHA20, 256, PSA_KEY_USAGE_ENCRYPT,
	    PSA_ALG_CHACHA20_POLY1305);
}

static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One run: as many operations as fit in about `seconds`; µs per operation. */
static double
bench_run(const struct bench_op *op, struct bench_state *b, double seconds)
{
	unsigned long n = 0, batch = 1;
	double start = bench_now(), elapsed;

	for (;;) {
		for (unsigned long i = 0; i < batch; i++) {
			if (op->fn(b) != 0) {
				fprintf(stderr, "cryptobench: %s failed\n", op->name);
				exit(1);
			}
		}
		n += batch;
		elapsed = bench_now() - start;
		if (elapsed >= seconds)
			break;
		if (batch < 1024)
			batch *= 2;
	}
	return elapsed * 1e6 / (double)n;
}

static bool
bench_selected(const char *name, int argc, char **argv)
{
	if (argc == 0)
		return true;
	for (int i = 0; i < argc; i++) {
		if (strncmp(name, argv[i], strlen(argv[i])) == 0)
			return true;
	}
	return false;
}

int
main(int argc, char **argv)
{
	static struct bench_state b;
	double seconds = 0.5;
	int runs = 5, i;
	const char *backend = NULL;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
			backend = argv[++i];
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "usage: cryptobench [-t SECONDS] [-r RUNS] "
			    "[-b openssl|mbedtls] [NAME...]\n");
			return 2;
		} else {
			break;
		}
	}
	if (runs < 1 || runs > BENCH_RUNS_MAX || !(seconds > 0)) {
		fprintf(stderr, "cryptobench: -r 1..%d, -t > 0\n", BENCH_RUNS_MAX);
		return 2;
	}
	const char *under = "mbedTLS";
#if defined(IG_PSA_OSSL_DRIVER)
	if (backend != NULL && strcmp(backend, "mbedtls") != 0 &&
	    strcmp(backend, "openssl") != 0) {
		fprintf(stderr, "cryptobench: -b openssl or -b mbedtls\n");
		return 2;
	}
	ig_psa_ossl_set_enabled(backend == NULL || strcmp(backend, "openssl") == 0);
	if (ig_psa_ossl_enabled())
		under = ig_psa_ossl_version();
#else
	if (backend != NULL && strcmp(backend, "mbedtls") != 0) {
		fprintf(stderr, "cryptobench: this build has no OpenSSL driver\n");
		return 2;
	}
#endif
	bench_setup(&b);
	printf("# %s, crypto: %s, ECDSA %s, %d runs of %.2fs, CPU microseconds per operation\n",
	    MBEDTLS_VERSION_STRING_FULL, under, PSA_ALG_IS_DETERMINISTIC_ECDSA(b.sign_alg) ?
	    "deterministic" : "randomized", runs, seconds);
	printf("%-22s %10s %10s %10s %10s\n", "operation", "median", "min", "max", "ops/s");
	for (size_t k = 0; k < sizeof(bench_ops) / sizeof(bench_ops[0]); k++) {
		const struct bench_op *op = &bench_ops[k];
		double t[BENCH_RUNS_MAX];

		if (!bench_selected(op->name, argc - i, argv + i))
			continue;
		for (int r = 0; r < runs; r++)
			t[r] = bench_run(op, &b, seconds);
		qsort(t, (size_t)runs, sizeof(t[0]), bench_cmp);
		double med = t[runs / 2];
		printf("%-22s %10.2f %10.2f %10.2f %10.0f", op->name, med, t[0], t[runs - 1],
		    1e6 / med);
		if (op->bytes > 0)
			printf("  %.0f MB/s", (double)op->bytes / med);
		printf("\n");
		fflush(stdout);
	}
	mbedtls_pk_free(&b.pk);
	mbedtls_psa_crypto_free();
	return 0;
}
