/*
 * Unit tests for the crypto backend (crypto/backend.c) and the PSA driver
 * over OpenSSL (crypto/driver/psa_ossl.c): known answers (RFC 7748 X25519,
 * RFC 6979 P-256 ECDSA, the GCM specification's AES-256 case 14) through
 * both backends, and differential tests on random inputs: what one backend
 * makes, the other accepts and computes alike (signatures verify both ways,
 * shared secrets, public keys, AEAD ciphertexts and SHA-384/512 digests are
 * equal). The driver's counters prove which backend did the work.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <mbedtls/build_info.h>
#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "crypto/backend.h"
#include "crypto/driver/psa_ossl.h"
#include "util/err.h"

#define ROUNDS 40 /* random inputs per differential test */

#if defined(IG_PSA_OSSL_DRIVER)

static void
unhex(const char *hex, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned int b;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
	assert_int_equal(hex[2 * len], '\0');
}

static psa_key_attributes_t
key_attrs(psa_key_type_t type, size_t bits, psa_key_usage_t usage, psa_algorithm_t alg)
{
	psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;

	psa_set_key_type(&attr, type);
	psa_set_key_bits(&attr, bits);
	psa_set_key_usage_flags(&attr, usage);
	psa_set_key_algorithm(&attr, alg);
	return attr;
}

static psa_key_id_t
import_key(psa_key_type_t type, size_t bits, psa_key_usage_t usage, psa_algorithm_t alg,
    const uint8_t *data, size_t len)
{
	psa_key_attributes_t attr = key_attrs(type, bits, usage, alg);
	psa_key_id_t key;

	assert_int_equal(psa_import_key(&attr, data, len, &key), PSA_SUCCESS);
	return key;
}

static psa_key_id_t
generate_key(psa_key_type_t type, size_t bits, psa_key_usage_t usage, psa_algorithm_t alg)
{
	psa_key_attributes_t attr = key_attrs(type, bits, usage, alg);
	psa_key_id_t key;

	assert_int_equal(psa_generate_key(&attr, &key), PSA_SUCCESS);
	return key;
}

/* The public key of key, imported as a key of its own (as a certificate's). */
static psa_key_id_t
public_of(psa_key_id_t key, psa_algorithm_t alg, size_t bits)
{
	uint8_t pub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE];
	size_t len;

	assert_int_equal(psa_export_public_key(key, pub, sizeof(pub), &len), PSA_SUCCESS);
	return import_key(PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1), bits,
	    PSA_KEY_USAGE_VERIFY_HASH, alg, pub, len);
}

/* The two backends, by name, for the tables below. */
static const bool backends[] = { true, false }; /* OpenSSL, mbedTLS */

static void
use_openssl(bool on)
{
	ig_psa_ossl_set_enabled(on);
}

static const char x25519_a[] =
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
static const char x25519_a_pub[] =
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
static const char x25519_b[] =
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
static const char x25519_b_pub[] =
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
static const char x25519_k[] =
    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

/* RFC 7748, section 6.1, both ways, through each backend. */
static void
test_x25519_rfc7748(void **state)
{
	(void)state;
	for (size_t b = 0; b < 2; b++) {
		static const char *const priv[] = { x25519_a, x25519_b };
		static const char *const pub[] = { x25519_a_pub, x25519_b_pub };
		static const char *const peer[] = { x25519_b_pub, x25519_a_pub };

		use_openssl(backends[b]);
		for (size_t side = 0; side < 2; side++) {
			uint8_t d[32], want_pub[32], their[32], k[32], out[32];
			size_t len;
			unsigned long agree = ig_psa_ossl_count(IG_PSA_OSSL_AGREE);
			unsigned long exp = ig_psa_ossl_count(IG_PSA_OSSL_EXPORT_PUBLIC);

			unhex(priv[side], d, 32);
			unhex(pub[side], want_pub, 32);
			unhex(peer[side], their, 32);
			unhex(x25519_k, k, 32);
			psa_key_id_t key = import_key(
			    PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255,
			    PSA_KEY_USAGE_DERIVE | PSA_KEY_USAGE_EXPORT, PSA_ALG_ECDH, d, 32);
			assert_int_equal(psa_raw_key_agreement(PSA_ALG_ECDH, key, their, 32, out,
			    sizeof(out), &len), PSA_SUCCESS);
			assert_int_equal(len, 32);
			assert_memory_equal(out, k, 32);
			assert_int_equal(psa_export_public_key(key, out, sizeof(out), &len),
			    PSA_SUCCESS);
			assert_int_equal(len, 32);
			assert_memory_equal(out, want_pub, 32);
			psa_destroy_key(key);
			/* The driver did the work with OpenSSL on, and only then. */
			assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AGREE), agree + backends[b]);
			assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_EXPORT_PUBLIC),
			    exp + backends[b]);
		}
	}
	use_openssl(true);
}

static const char p256_x[] =
    "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
static const char p256_q[] =
    "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
static const char sample_sha256[] =
    "af2bdbe1aa9b6ec1e2ade1d694f41fc71a831d0268e9891562113d8a62add1bf";
static const char p256_sig_sample[] =
    "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
    "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";

/* RFC 6979 A.2.5: the published signature verifies, a flipped bit does not. */
static void
test_ecdsa_rfc6979(void **state)
{
	const psa_algorithm_t alg = PSA_ALG_ECDSA(PSA_ALG_SHA_256);
	uint8_t q[65], hash[32], sig[64], x[32], pub[65];
	size_t len;

	(void)state;
	unhex(p256_q, q, sizeof(q));
	unhex(sample_sha256, hash, sizeof(hash));
	unhex(p256_sig_sample, sig, sizeof(sig));
	unhex(p256_x, x, sizeof(x));
	for (size_t b = 0; b < 2; b++) {
		unsigned long verify = ig_psa_ossl_count(IG_PSA_OSSL_VERIFY);

		use_openssl(backends[b]);
		psa_key_id_t key = import_key(PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1),
		    256, PSA_KEY_USAGE_VERIFY_HASH, alg, q, sizeof(q));
		assert_int_equal(psa_verify_hash(key, alg, hash, 32, sig, 64), PSA_SUCCESS);
		sig[63] ^= 1;
		assert_int_equal(psa_verify_hash(key, alg, hash, 32, sig, 64),
		    PSA_ERROR_INVALID_SIGNATURE);
		sig[63] ^= 1;
		hash[0] ^= 0x80;
		assert_int_equal(psa_verify_hash(key, alg, hash, 32, sig, 64),
		    PSA_ERROR_INVALID_SIGNATURE);
		hash[0] ^= 0x80;
		assert_int_equal(psa_verify_hash(key, alg, hash, 32, sig, 63),
		    PSA_ERROR_INVALID_SIGNATURE);
		psa_destroy_key(key);
		assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_VERIFY),
		    verify + (backends[b] ? 3 : 0));

		/* The RFC's private key gives the RFC's public key (mbedTLS). */
		key = import_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
		    PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_EXPORT, alg, x, sizeof(x));
		assert_int_equal(psa_export_public_key(key, pub, sizeof(pub), &len), PSA_SUCCESS);
		assert_int_equal(len, 65);
		assert_memory_equal(pub, q, 65);
		psa_destroy_key(key);
	}
	use_openssl(true);
}

/*
 * Signatures made by one backend verify with the other, on random keys and
 * hashes, for each secp curve the driver takes; a changed hash fails both.
 */
static void
test_ecdsa_differential(void **state)
{
	static const size_t curves[] = { 256, 384, 521 };
	const psa_algorithm_t alg = PSA_ALG_ECDSA(PSA_ALG_SHA_256);

	(void)state;
	for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++) {
		for (int i = 0; i < ROUNDS; i++) {
			bool signer = (i & 1) == 0; /* OpenSSL signs on even rounds */
			uint8_t hash[32], sig[PSA_SIGNATURE_MAX_SIZE];
			size_t len;
			unsigned long sign = ig_psa_ossl_count(IG_PSA_OSSL_SIGN);
			unsigned long verify = ig_psa_ossl_count(IG_PSA_OSSL_VERIFY);

			use_openssl(i % 4 < 2); /* either backend makes the key */
			psa_key_id_t key = generate_key(
			    PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), curves[c],
			    PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_EXPORT, alg);
			use_openssl(false);
			psa_key_id_t pub = public_of(key, alg, curves[c]);
			assert_int_equal(psa_generate_random(hash, sizeof(hash)), PSA_SUCCESS);

			use_openssl(signer);
			assert_int_equal(psa_sign_hash(key, alg, hash, 32, sig, sizeof(sig), &len),
			    PSA_SUCCESS);
			assert_int_equal(len, 2 * PSA_BITS_TO_BYTES(curves[c]));
			use_openssl(!signer);
			assert_int_equal(psa_verify_hash(pub, alg, hash, 32, sig, len), PSA_SUCCESS);
			hash[5] ^= 4;
			assert_int_equal(psa_verify_hash(pub, alg, hash, 32, sig, len),
			    PSA_ERROR_INVALID_SIGNATURE);
			assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_SIGN), sign + signer);
			assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_VERIFY),
			    verify + (signer ? 0 : 2));
			psa_destroy_key(key);
			psa_destroy_key(pub);
		}
	}
	use_openssl(true);
}

/*
 * Signing contexts kept per thread: n keys (P-256 and P-384 alternately)
 * taken in turn for signs signatures, each signed through OpenSSL and
 * checked by mbedTLS (and a changed hash refused). Returns the signing keys
 * the driver set up.
 */
static unsigned long
signing(size_t nkeys, size_t signs)
{
	const psa_algorithm_t alg = PSA_ALG_ECDSA(PSA_ALG_SHA_256);
	psa_key_id_t keys[8], pubs[8];
	unsigned long before = ig_psa_ossl_count(IG_PSA_OSSL_SIGN_KEY);

	assert_true(nkeys <= 8);
	for (size_t i = 0; i < nkeys; i++) {
		size_t bits = i % 2 == 0 ? 256 : 384;
		use_openssl(true);
		keys[i] = generate_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), bits,
		    PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_EXPORT, alg);
		use_openssl(false);
		pubs[i] = public_of(keys[i], alg, bits);
	}
	for (size_t j = 0; j < signs; j++) {
		uint8_t hash[32], sig[PSA_SIGNATURE_MAX_SIZE];
		size_t len;

		assert_int_equal(psa_generate_random(hash, sizeof(hash)), PSA_SUCCESS);
		use_openssl(true);
		assert_int_equal(psa_sign_hash(keys[j % nkeys], alg, hash, 32, sig, sizeof(sig),
		    &len), PSA_SUCCESS);
		use_openssl(false);
		assert_int_equal(psa_verify_hash(pubs[j % nkeys], alg, hash, 32, sig, len),
		    PSA_SUCCESS);
		hash[0] ^= 1;
		assert_int_equal(psa_verify_hash(pubs[j % nkeys], alg, hash, 32, sig, len),
		    PSA_ERROR_INVALID_SIGNATURE);
	}
	use_openssl(true);
	for (size_t i = 0; i < nkeys; i++) {
		psa_destroy_key(keys[i]);
		psa_destroy_key(pubs[i]);
	}
	return ig_psa_ossl_count(IG_PSA_OSSL_SIGN_KEY) - before;
}

/*
 * A signing key is set up once while it stays cached, whatever the
 * connections (ig_psa_ossl_forget keeps it, whatever the owner: a
 * long-term key); more keys
 * than the cache holds, taken in turn, are set up every time.
 */
static void
test_ecdsa_kept(void **state)
{
	(void)state;
	assert_int_equal(signing(2, 20), 2);
	/* 5 keys in turn through 4 slots */
	assert_int_equal(signing(5, 15), 15);
	/* kept across a connection's end */
	assert_int_equal(signing(1, 1), 1);
	{
		const psa_algorithm_t alg = PSA_ALG_ECDSA(PSA_ALG_SHA_256);
		uint8_t hash[32] = { 1 }, sig[PSA_SIGNATURE_MAX_SIZE];
		size_t len;
		psa_key_id_t k = generate_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1),
		    256, PSA_KEY_USAGE_SIGN_HASH, alg);
		unsigned long before = ig_psa_ossl_count(IG_PSA_OSSL_SIGN_KEY);

		assert_int_equal(psa_sign_hash(k, alg, hash, 32, sig, sizeof(sig), &len),
		    PSA_SUCCESS);
		ig_psa_ossl_forget(&k);
		ig_psa_ossl_forget(NULL);
		assert_int_equal(psa_sign_hash(k, alg, hash, 32, sig, sizeof(sig), &len),
		    PSA_SUCCESS);
		assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_SIGN_KEY), before + 1);
		psa_destroy_key(k);
	}
}

/* One side's key share: a key pair made by one backend, its public key. */
static psa_key_id_t
key_share(psa_key_type_t type, size_t bits, bool openssl, uint8_t *pub, size_t *publen)
{
	use_openssl(openssl);
	psa_key_id_t key = generate_key(type, bits, PSA_KEY_USAGE_DERIVE | PSA_KEY_USAGE_EXPORT,
	    PSA_ALG_ECDH);
	assert_int_equal(psa_export_public_key(key, pub, PSA_EXPORT_PUBLIC_KEY_MAX_SIZE, publen),
	    PSA_SUCCESS);
	return key;
}

/*
 * ECDHE as TLS does it, on random keys: each side's key share made by one
 * backend (public keys compared with the other backend's computation), the
 * agreement computed by each side with a different backend: equal secrets.
 */
static void
ecdh_differential(psa_key_type_t type, size_t bits)
{
	for (int i = 0; i < ROUNDS; i++) {
		bool a_ossl = (i & 1) == 0, b_ossl = (i & 2) == 0;
		uint8_t apub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE], bpub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE];
		uint8_t again[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE];
		uint8_t ka[PSA_RAW_KEY_AGREEMENT_OUTPUT_MAX_SIZE];
		uint8_t kb[PSA_RAW_KEY_AGREEMENT_OUTPUT_MAX_SIZE];
		size_t alen, blen, len, kalen, kblen;

		psa_key_id_t a = key_share(type, bits, a_ossl, apub, &alen);
		psa_key_id_t b = key_share(type, bits, b_ossl, bpub, &blen);
		/* The other backend computes the same public keys. */
		use_openssl(!a_ossl);
		assert_int_equal(psa_export_public_key(a, again, sizeof(again), &len), PSA_SUCCESS);
		assert_int_equal(len, alen);
		assert_memory_equal(again, apub, alen);

		use_openssl(a_ossl);
		assert_int_equal(psa_raw_key_agreement(PSA_ALG_ECDH, a, bpub, blen, ka, sizeof(ka),
		    &kalen), PSA_SUCCESS);
		use_openssl(!a_ossl);
		assert_int_equal(psa_raw_key_agreement(PSA_ALG_ECDH, b, apub, alen, kb, sizeof(kb),
		    &kblen), PSA_SUCCESS);
		assert_int_equal(kalen, PSA_BITS_TO_BYTES(bits));
		assert_int_equal(kalen, kblen);
		assert_memory_equal(ka, kb, kalen);
		psa_destroy_key(a);
		psa_destroy_key(b);
	}
	use_openssl(true);
}

static void
test_x25519_differential(void **state)
{
	unsigned long agree = ig_psa_ossl_count(IG_PSA_OSSL_AGREE);

	(void)state;
	ecdh_differential(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AGREE), agree + ROUNDS);
}

static void
test_ecdh_secp_differential(void **state)
{
	unsigned long generate = ig_psa_ossl_count(IG_PSA_OSSL_GENERATE);

	(void)state;
	ecdh_differential(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256);
	ecdh_differential(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 384);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_GENERATE), generate + ROUNDS * 2);
}

/*
 * A peer's key that is not on the curve, or an X25519 point of small order
 * (whose secret is all zeros), is refused by both backends.
 */
static void
test_ecdh_bad_peer(void **state)
{
	uint8_t pub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE], out[66], zero[32] = { 0 };
	size_t len;

	(void)state;
	for (size_t b = 0; b < 2; b++) {
		psa_key_id_t k = key_share(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
		    true, pub, &len);
		use_openssl(backends[b]);
		pub[64] ^= 1; /* y changed: off the curve */
		assert_int_equal(psa_raw_key_agreement(PSA_ALG_ECDH, k, pub, len, out,
		    sizeof(out), &len), PSA_ERROR_INVALID_ARGUMENT);
		psa_destroy_key(k);

		k = key_share(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255, true, pub,
		    &len);
		use_openssl(backends[b]);
		assert_int_not_equal(psa_raw_key_agreement(PSA_ALG_ECDH, k, zero, 32, out,
		    sizeof(out), &len), PSA_SUCCESS);
		psa_destroy_key(k);
	}
	use_openssl(true);
}

/* X25519 through OpenSSL: ECDH with a from b's public key, the secret. */
static void
agree(psa_key_id_t a, const uint8_t *bpub, size_t blen, uint8_t *k)
{
	size_t len;

	assert_int_equal(psa_raw_key_agreement(PSA_ALG_ECDH, a, bpub, blen, k, 32, &len),
	    PSA_SUCCESS);
	assert_int_equal(len, 32);
}

/* a's agreement with b equals ref, and kept agreements are now want. */
static void
agree_is(psa_key_id_t a, const uint8_t *bpub, size_t blen, const uint8_t *ref,
    unsigned long want)
{
	uint8_t k[32];

	agree(a, bpub, blen, k);
	assert_memory_equal(k, ref, 32);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AGREE_KEPT), want);
}

/*
 * The key export_public_key made is taken by the agreement that follows,
 * for that key only, once, and not after ig_psa_ossl_forget(); every
 * secret equals the one mbedTLS computes from the other side.
 */
static void
test_x25519_kept(void **state)
{
	psa_key_type_t t = PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY);
	uint8_t apub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE], bpub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE];
	uint8_t cpub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE];
	uint8_t ref_a[32], ref_c[32];
	size_t alen, blen, clen;
	unsigned long kept;

	(void)state;
	psa_key_id_t b = key_share(t, 255, false, bpub, &blen);
	psa_key_id_t c = key_share(t, 255, true, cpub, &clen);
	psa_key_id_t a = key_share(t, 255, true, apub, &alen); /* kept: a's */
	use_openssl(false);
	agree(b, apub, alen, ref_a);
	agree(b, cpub, clen, ref_c);
	use_openssl(true);
	kept = ig_psa_ossl_count(IG_PSA_OSSL_AGREE_KEPT);

	agree_is(a, bpub, blen, ref_a, kept + 1);
	/* once: the next agreement makes its own */
	agree_is(a, bpub, blen, ref_a, kept + 1);
	/* for that key only: a's kept, c's agreement makes its own */
	assert_int_equal(psa_export_public_key(a, apub, sizeof(apub), &alen), PSA_SUCCESS);
	agree_is(c, bpub, blen, ref_c, kept + 1);
	agree_is(a, bpub, blen, ref_a, kept + 2);
	/* forgotten when a TLS connection is freed, whichever it is */
	assert_int_equal(psa_export_public_key(a, apub, sizeof(apub), &alen), PSA_SUCCESS);
	ig_psa_ossl_forget(&c);
	agree_is(a, bpub, blen, ref_a, kept + 2);
	psa_destroy_key(a);
	psa_destroy_key(b);
	psa_destroy_key(c);
}

/* An X25519 key pair from d (imported, as mbedTLS's key exchange does). */
static psa_key_id_t
x25519_import(const uint8_t d[32])
{
	return import_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255,
	    PSA_KEY_USAGE_DERIVE | PSA_KEY_USAGE_EXPORT, PSA_ALG_ECDH, d, 32);
}

/* key's agreement with peer through the backend given: its status, the secret in k. */
static psa_status_t
x25519_agree_with(bool openssl, psa_key_id_t key, const uint8_t peer[32], uint8_t k[32])
{
	size_t len = 0;
	psa_status_t st;

	use_openssl(openssl);
	st = psa_raw_key_agreement(PSA_ALG_ECDH, key, peer, 32, k, 32, &len);
	use_openssl(true);
	if (st == PSA_SUCCESS)
		assert_int_equal(len, 32);
	return st;
}

/*
 * X25519 keys made by the driver from their bytes (its per-thread context,
 * not the key export_public_key kept): on random private keys and random
 * peer values (every 32 bytes are a u-coordinate; the top bit is ignored),
 * the public keys and shared secrets are mbedTLS's; the points of small
 * order (RFC 7748's all-zero secret), in their canonical and other
 * encodings, are refused by both.
 */
static void
test_x25519_fromdata(void **state)
{
	static const char *const small_order[] = {
		"0000000000000000000000000000000000000000000000000000000000000000", /* 0 */
		"0100000000000000000000000000000000000000000000000000000000000000", /* 1 */
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", /* order 8 */
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", /* order 8 */
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p - 1 */
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p: 0 */
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p + 1: 1 */
		"0000000000000000000000000000000000000000000000000000000000000080", /* 0, top bit */
	};
	unsigned long agree = ig_psa_ossl_count(IG_PSA_OSSL_AGREE);
	unsigned long kept = ig_psa_ossl_count(IG_PSA_OSSL_AGREE_KEPT);
	unsigned long exp = ig_psa_ossl_count(IG_PSA_OSSL_EXPORT_PUBLIC);

	(void)state;
	for (int i = 0; i < ROUNDS; i++) {
		uint8_t d[32], e[32], dpub[32], epub[32], ref[32], peer[32], k[32], kref[32];
		size_t len;

		assert_int_equal(psa_generate_random(d, sizeof(d)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(e, sizeof(e)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(peer, sizeof(peer)), PSA_SUCCESS);
		psa_key_id_t a = x25519_import(d), b = x25519_import(e);
		/* b's public key by mbedTLS; a's by each */
		use_openssl(false);
		assert_int_equal(psa_export_public_key(b, epub, sizeof(epub), &len), PSA_SUCCESS);
		assert_int_equal(psa_export_public_key(a, ref, sizeof(ref), &len), PSA_SUCCESS);
		use_openssl(true);
		ig_psa_ossl_forget(NULL); /* no kept key: the agreement makes its own */
		assert_int_equal(x25519_agree_with(true, a, epub, k), PSA_SUCCESS);
		assert_int_equal(x25519_agree_with(false, b, ref, kref), PSA_SUCCESS);
		assert_memory_equal(k, kref, 32);
		assert_int_equal(psa_export_public_key(a, dpub, sizeof(dpub), &len), PSA_SUCCESS);
		assert_int_equal(len, 32);
		assert_memory_equal(dpub, ref, 32);
		ig_psa_ossl_forget(NULL);
		/* any peer value, top bit set or not */
		peer[31] = (uint8_t)(peer[31] | (i & 1 ? 0x80 : 0));
		psa_status_t st = x25519_agree_with(true, a, peer, k);
		assert_int_equal(x25519_agree_with(false, a, peer, kref), st);
		if (st == PSA_SUCCESS)
			assert_memory_equal(k, kref, 32);
		psa_destroy_key(a);
		psa_destroy_key(b);
	}
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AGREE), agree + 2 * ROUNDS);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AGREE_KEPT), kept);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_EXPORT_PUBLIC), exp + ROUNDS);

	for (size_t j = 0; j < sizeof(small_order) / sizeof(small_order[0]); j++) {
		uint8_t d[32], peer[32], k[32];

		assert_int_equal(psa_generate_random(d, sizeof(d)), PSA_SUCCESS);
		unhex(small_order[j], peer, 32);
		psa_key_id_t a = x25519_import(d);
		assert_int_equal(x25519_agree_with(true, a, peer, k), PSA_ERROR_INVALID_ARGUMENT);
		assert_int_not_equal(x25519_agree_with(false, a, peer, k), PSA_SUCCESS);
		psa_destroy_key(a);
	}
}

/* AEAD: the GCM spec's case 14, then random records both ways. */
static void
aead_differential(psa_key_type_t type, psa_algorithm_t alg)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 255, 1024, 16384 };
	static uint8_t pt[16384], ct[16384 + 16], ct2[16384 + 16], back[16384];
	uint8_t key[32], nonce[12], ad[13];

	for (int i = 0; i < ROUNDS; i++) {
		size_t n = sizes[(size_t)i % (sizeof(sizes) / sizeof(sizes[0]))];
		size_t adlen = (size_t)i % 14, ctlen, ct2len, backlen;
		bool enc = (i & 1) == 0;
		unsigned long aead = ig_psa_ossl_count(IG_PSA_OSSL_AEAD);

		assert_int_equal(psa_generate_random(key, sizeof(key)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(nonce, sizeof(nonce)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(ad, sizeof(ad)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(pt, n), PSA_SUCCESS);
		psa_key_id_t k = import_key(type, 256, PSA_KEY_USAGE_ENCRYPT |
		    PSA_KEY_USAGE_DECRYPT, alg, key, sizeof(key));

		use_openssl(enc);
		assert_int_equal(psa_aead_encrypt(k, alg, nonce, 12, ad, adlen, pt, n, ct,
		    sizeof(ct), &ctlen), PSA_SUCCESS);
		assert_int_equal(ctlen, n + 16);
		use_openssl(!enc);
		assert_int_equal(psa_aead_encrypt(k, alg, nonce, 12, ad, adlen, pt, n, ct2,
		    sizeof(ct2), &ct2len), PSA_SUCCESS);
		assert_int_equal(ct2len, ctlen);
		assert_memory_equal(ct2, ct, ctlen);
		assert_int_equal(psa_aead_decrypt(k, alg, nonce, 12, ad, adlen, ct, ctlen, back,
		    sizeof(back), &backlen), PSA_SUCCESS);
		assert_int_equal(backlen, n);
		assert_memory_equal(back, pt, n);
		/* A changed tag or ciphertext is refused by both. */
		for (size_t b = 0; b < 2; b++) {
			use_openssl(backends[b]);
			ct[(size_t)i % ctlen] ^= 0x10;
			assert_int_equal(psa_aead_decrypt(k, alg, nonce, 12, ad, adlen, ct, ctlen,
			    back, sizeof(back), &backlen), PSA_ERROR_INVALID_SIGNATURE);
			ct[(size_t)i % ctlen] ^= 0x10;
		}
		/* OpenSSL did one encryption, one bad decryption, and the good
		   decryption when it did not make the first ciphertext */
		assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AEAD), aead + (enc ? 2 : 3));
		psa_destroy_key(k);
	}
	use_openssl(true);
}

/*
 * In place, as TLS calls it (MBEDTLS_PSA_ASSUME_EXCLUSIVE_BUFFERS: PSA does
 * not copy): the record buffer is both input and output, both ways.
 */
static void
aead_in_place(psa_key_type_t type, psa_algorithm_t alg)
{
	static uint8_t pt[4096], buf[4096 + 16], ref[4096 + 16];
	uint8_t key[32], nonce[12], ad[13];
	size_t len, reflen;

	for (size_t b = 0; b < 2; b++) {
		assert_int_equal(psa_generate_random(key, sizeof(key)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(nonce, sizeof(nonce)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(ad, sizeof(ad)), PSA_SUCCESS);
		assert_int_equal(psa_generate_random(pt, sizeof(pt)), PSA_SUCCESS);
		psa_key_id_t k = import_key(type, 256, PSA_KEY_USAGE_ENCRYPT |
		    PSA_KEY_USAGE_DECRYPT, alg, key, sizeof(key));
		use_openssl(!backends[b]);
		assert_int_equal(psa_aead_encrypt(k, alg, nonce, 12, ad, sizeof(ad), pt,
		    sizeof(pt), ref, sizeof(ref), &reflen), PSA_SUCCESS);
		use_openssl(backends[b]);
		memcpy(buf, pt, sizeof(pt));
		assert_int_equal(psa_aead_encrypt(k, alg, nonce, 12, ad, sizeof(ad), buf,
		    sizeof(pt), buf, sizeof(buf), &len), PSA_SUCCESS);
		assert_int_equal(len, reflen);
		assert_memory_equal(buf, ref, len);
		assert_int_equal(psa_aead_decrypt(k, alg, nonce, 12, ad, sizeof(ad), buf, len,
		    buf, sizeof(buf), &len), PSA_SUCCESS);
		assert_int_equal(len, sizeof(pt));
		assert_memory_equal(buf, pt, len);
		psa_destroy_key(k);
	}
	use_openssl(true);
}

static void
test_aead(void **state)
{
	uint8_t zero[32] = { 0 }, ct[32], want[32];
	size_t len;

	(void)state;
	unhex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919", want, 32);
	for (size_t b = 0; b < 2; b++) {
		use_openssl(backends[b]);
		psa_key_id_t k = import_key(PSA_KEY_TYPE_AES, 256, PSA_KEY_USAGE_ENCRYPT,
		    PSA_ALG_GCM, zero, sizeof(zero));
		assert_int_equal(psa_aead_encrypt(k, PSA_ALG_GCM, zero, 12, NULL, 0, zero, 16, ct,
		    sizeof(ct), &len), PSA_SUCCESS);
		assert_int_equal(len, 32);
		assert_memory_equal(ct, want, 32);
		psa_destroy_key(k);
	}
	aead_differential(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	aead_differential(PSA_KEY_TYPE_CHACHA20, PSA_ALG_CHACHA20_POLY1305);
	aead_in_place(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	aead_in_place(PSA_KEY_TYPE_CHACHA20, PSA_ALG_CHACHA20_POLY1305);
}

/* One record with key k through the backend given, for the cache tests. */
static void
seal(psa_key_id_t k, psa_algorithm_t alg, bool openssl, uint32_t seq, const uint8_t *pt,
    size_t n, uint8_t *ct, size_t *ctlen)
{
	uint8_t nonce[12] = { 0 }, ad[13] = { 0x17, 0x03, 0x03 };

	memcpy(nonce + 8, &seq, sizeof(seq));
	ad[12] = (uint8_t)seq;
	use_openssl(openssl);
	assert_int_equal(psa_aead_encrypt(k, alg, nonce, 12, ad, sizeof(ad), pt, n, ct,
	    n + 16, ctlen), PSA_SUCCESS);
	use_openssl(true);
}

static psa_status_t
unseal(psa_key_id_t k, psa_algorithm_t alg, uint32_t seq, const uint8_t *ct, size_t ctlen,
    uint8_t *pt, size_t *len)
{
	uint8_t nonce[12] = { 0 }, ad[13] = { 0x17, 0x03, 0x03 };

	memcpy(nonce + 8, &seq, sizeof(seq));
	ad[12] = (uint8_t)seq;
	return psa_aead_decrypt(k, alg, nonce, 12, ad, sizeof(ad), ct, ctlen, pt, ctlen, len);
}

static psa_key_id_t
random_key(psa_key_type_t type, psa_algorithm_t alg)
{
	uint8_t key[32];
	psa_key_id_t k;

	assert_int_equal(psa_generate_random(key, sizeof(key)), PSA_SUCCESS);
	k = import_key(type, 256, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT, alg, key,
	    sizeof(key));
	mbedtls_platform_zeroize(key, sizeof(key));
	return k;
}

/* The bound of the driver's AEAD cache (OSSL_AEAD_SLOTS in psa_ossl.c). */
#define AEAD_SLOTS 128

/*
 * Records with nkeys keys taken in turn, each sealed through OpenSSL (a
 * cached context when its key was seen) and through mbedTLS, equal, and
 * opened again through OpenSSL, all for one owner, whose contexts are
 * forgotten at the end. Returns the key set-ups the driver did.
 */
static unsigned long
interleaved(psa_key_type_t type, psa_algorithm_t alg, size_t nkeys, size_t records)
{
	static uint8_t pt[8192], ct[8192 + 16], ref[8192 + 16], back[8192 + 16];
	psa_key_id_t keys[AEAD_SLOTS];
	unsigned long before, setups;
	const void *prev;
	size_t len, reflen;

	assert_true(nkeys <= AEAD_SLOTS);
	for (size_t i = 0; i < nkeys; i++)
		keys[i] = random_key(type, alg);
	prev = ig_psa_ossl_owner_set(keys);
	before = ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY);
	for (size_t r = 0; r < records; r++) {
		psa_key_id_t k = keys[r % nkeys];
		size_t n = (r * 613) % sizeof(pt);

		assert_int_equal(psa_generate_random(pt, n), PSA_SUCCESS);
		seal(k, alg, true, (uint32_t)r, pt, n, ct, &len);
		seal(k, alg, false, (uint32_t)r, pt, n, ref, &reflen);
		assert_int_equal(len, reflen);
		assert_memory_equal(ct, ref, len);
		assert_int_equal(unseal(k, alg, (uint32_t)r, ct, len, back, &len), PSA_SUCCESS);
		assert_int_equal(len, n);
		assert_memory_equal(back, pt, n);
	}
	setups = ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY) - before;
	ig_psa_ossl_forget(keys);
	assert_ptr_equal(ig_psa_ossl_owner_set(prev), keys);
	for (size_t i = 0; i < nkeys; i++)
		psa_destroy_key(keys[i]);
	return setups;
}

/*
 * The driver's per-thread AEAD contexts: a key is set up once for as long
 * as it stays in the cache (one for sealing, one for opening), so 64
 * connections' keys in turn fill it and are set up once; more keys than
 * the cache holds are each set up again (least recently used out), and
 * every record is the same as mbedTLS's either way.
 */
static void
test_aead_cache(void **state)
{
	(void)state;
	/* 3 keys, 60 records: 3 set-ups to seal and 3 to open. */
	assert_int_equal(interleaved(PSA_KEY_TYPE_AES, PSA_ALG_GCM, 3, 60), 6);
	assert_int_equal(interleaved(PSA_KEY_TYPE_CHACHA20, PSA_ALG_CHACHA20_POLY1305, 3,
	    60), 6);
	/* 64 keys, each used three times in turn: 128 contexts, each made once. */
	assert_int_equal(interleaved(PSA_KEY_TYPE_AES, PSA_ALG_GCM, AEAD_SLOTS / 2,
	    3 * AEAD_SLOTS / 2), AEAD_SLOTS);
	/* 80 keys in turn, 160 contexts through 128: every record sets its keys up. */
	assert_int_equal(interleaved(PSA_KEY_TYPE_AES, PSA_ALG_GCM, 80, 160), 320);
}

/* Seals one record with key k (through OpenSSL) for owner; returns the set-ups it did. */
static unsigned long
seal_for(const void *owner, psa_key_id_t k, uint32_t seq)
{
	static uint8_t pt[100], ct[116];
	unsigned long before = ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY);
	const void *prev = ig_psa_ossl_owner_set(owner);
	size_t len;

	seal(k, PSA_ALG_GCM, true, seq, pt, sizeof(pt), ct, &len);
	ig_psa_ossl_owner_set(prev);
	return ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY) - before;
}

/*
 * Forgetting an owner (a TLS connection freed) drops its contexts only:
 * its key is set up again when used again, another connection's and the
 * ones made with no owner (the ticket key's) are not. Contexts are matched
 * whoever uses them.
 */
static void
test_aead_cache_owners(void **state)
{
	static const char conn_a, conn_b;
	psa_key_id_t ka = random_key(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	psa_key_id_t kb = random_key(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	psa_key_id_t ku = random_key(PSA_KEY_TYPE_AES, PSA_ALG_GCM);

	(void)state;
	assert_int_equal(seal_for(&conn_a, ka, 1), 1);
	assert_int_equal(seal_for(&conn_b, kb, 1), 1);
	assert_int_equal(seal_for(NULL, ku, 1), 1);
	assert_int_equal(seal_for(&conn_a, ka, 2), 0);
	assert_int_equal(seal_for(&conn_a, ku, 2), 0); /* the ticket key inside A's call */
	ig_psa_ossl_forget(&conn_a);
	assert_int_equal(seal_for(&conn_b, kb, 3), 0);
	assert_int_equal(seal_for(NULL, ku, 3), 0);
	assert_int_equal(seal_for(&conn_a, ka, 3), 1);
	/* forgetting B leaves A's new one */
	ig_psa_ossl_forget(&conn_b);
	assert_int_equal(seal_for(&conn_a, ka, 4), 0);
	assert_int_equal(seal_for(&conn_b, kb, 4), 1);
	ig_psa_ossl_forget(&conn_a);
	ig_psa_ossl_forget(&conn_b);
	ig_psa_ossl_forget(NULL);
	assert_int_equal(seal_for(NULL, ku, 4), 1);
	ig_psa_ossl_forget(NULL);
	psa_destroy_key(ka);
	psa_destroy_key(kb);
	psa_destroy_key(ku);
}

static void *
ticket_keys_changed(void *arg)
{
	(void)arg;
	ig_crypto_ticket_keys_changed();
	return NULL;
}

/*
 * The ticket keys replaced (on any thread: the main one installs them):
 * the contexts made with no owner (a ticket key's) are made again at their
 * next use, a connection's are not.
 */
static void
test_aead_cache_ticket_keys(void **state)
{
	static const char conn;
	psa_key_id_t kc = random_key(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	psa_key_id_t ku = random_key(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	pthread_t t;

	(void)state;
	assert_int_equal(seal_for(&conn, kc, 1), 1);
	assert_int_equal(seal_for(NULL, ku, 1), 1);
	ig_crypto_ticket_keys_changed();
	assert_int_equal(seal_for(&conn, kc, 2), 0);
	assert_int_equal(seal_for(NULL, ku, 2), 1);
	assert_int_equal(seal_for(NULL, ku, 3), 0);
	assert_int_equal(pthread_create(&t, NULL, ticket_keys_changed, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(seal_for(NULL, ku, 4), 1);
	assert_int_equal(seal_for(&conn, kc, 4), 0);
	ig_psa_ossl_forget(&conn);
	ig_psa_ossl_forget(NULL);
	psa_destroy_key(kc);
	psa_destroy_key(ku);
}

/* A bad record's context is dropped; the next good one opens; forget. */
static void
test_aead_cache_bad_tag(void **state)
{
	static uint8_t pt[1000], ct[1016], back[1016];
	psa_key_id_t k = random_key(PSA_KEY_TYPE_AES, PSA_ALG_GCM);
	const void *prev = ig_psa_ossl_owner_set(&k);
	unsigned long before;
	size_t len, n;

	(void)state;
	assert_int_equal(psa_generate_random(pt, sizeof(pt)), PSA_SUCCESS);
	seal(k, PSA_ALG_GCM, true, 1, pt, sizeof(pt), ct, &len);
	assert_int_equal(unseal(k, PSA_ALG_GCM, 1, ct, len, back, &n), PSA_SUCCESS);
	before = ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY);
	ct[5] ^= 1;
	assert_int_equal(unseal(k, PSA_ALG_GCM, 1, ct, len, back, &n),
	    PSA_ERROR_INVALID_SIGNATURE);
	ct[5] ^= 1;
	assert_int_equal(unseal(k, PSA_ALG_GCM, 1, ct, len, back, &n), PSA_SUCCESS);
	assert_int_equal(n, sizeof(pt));
	assert_memory_equal(back, pt, n);
	/* the mismatch dropped the opening context: set up again */
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY), before + 1);
	/* sealing kept its own */
	seal(k, PSA_ALG_GCM, true, 2, pt, sizeof(pt), ct, &len);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY), before + 1);
	ig_psa_ossl_forget(&k);
	seal(k, PSA_ALG_GCM, true, 3, pt, sizeof(pt), ct, &len);
	assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_AEAD_KEY), before + 2);
	assert_int_equal(unseal(k, PSA_ALG_GCM, 3, ct, len, back, &n), PSA_SUCCESS);
	assert_memory_equal(back, pt, sizeof(pt));
	ig_psa_ossl_forget(&k);
	ig_psa_ossl_owner_set(prev);
	psa_destroy_key(k);
}

/* A thread with a cache of its own, freed when it ends (LeakSanitizer). */
static void *
cache_thread(void *arg)
{
	unsigned long *setups = arg;
	uint8_t pub[PSA_EXPORT_PUBLIC_KEY_MAX_SIZE];
	size_t len;

	*setups = interleaved(PSA_KEY_TYPE_AES, PSA_ALG_GCM, 2, 10);
	/* a signing context and an X25519 key kept too, freed with the rest */
	assert_int_equal(signing(1, 2), 1);
	psa_key_id_t k = key_share(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255,
	    true, pub, &len);
	psa_destroy_key(k);
	return NULL;
}

static void
test_aead_cache_thread(void **state)
{
	unsigned long setups = 0;
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, cache_thread, &setups), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(setups, 4);
}

#if defined(IG_SHA512_BLOCK_HOOK)
/* hash of msg in chunks of at most step bytes (0: one update) */
static size_t
hash_chunks(psa_algorithm_t alg, const uint8_t *msg, size_t len, size_t step, uint8_t *out)
{
	psa_hash_operation_t op = PSA_HASH_OPERATION_INIT;
	size_t olen;

	assert_int_equal(psa_hash_setup(&op, alg), PSA_SUCCESS);
	for (size_t off = 0; off < len;) {
		size_t n = step == 0 || len - off < step ? len - off : step;
		assert_int_equal(psa_hash_update(&op, msg + off, n), PSA_SUCCESS);
		off += n;
	}
	assert_int_equal(psa_hash_finish(&op, out, PSA_HASH_MAX_SIZE, &olen), PSA_SUCCESS);
	return olen;
}

/*
 * SHA-384 and SHA-512 through libcrypto's block function (mbedTLS's block
 * hook, our patch 0004) and through mbedTLS's C code: FIPS 180-2's known
 * answers through each, equal digests and HMACs on random messages fed in
 * random chunks (single blocks and runs of blocks), a hash begun through one
 * and finished through the other, and the driver's counter showing which
 * did the work.
 */
static void
test_sha512_blocks(void **state)
{
	static const struct {
		psa_algorithm_t alg;
		const char *msg, *want;
	} kat[] = {
		{ PSA_ALG_SHA_384, "abc",
		  "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
		  "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7" },
		{ PSA_ALG_SHA_512, "abc",
		  "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
		  "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
		{ PSA_ALG_SHA_384, "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "09330c33f71147e83d192fc782cd1b4753111b173b3b05d2"
		  "2fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039" },
	};
	static uint8_t msg[2048];
	uint8_t a[PSA_HASH_MAX_SIZE], b[PSA_HASH_MAX_SIZE], want[64], key[48];
	size_t alen, blen;

	(void)state;
	for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		size_t wlen = strlen(kat[i].want) / 2;
		unhex(kat[i].want, want, wlen);
		for (size_t be = 0; be < 2; be++) {
			use_openssl(backends[be]);
			unsigned long runs = ig_psa_ossl_count(IG_PSA_OSSL_SHA512_RUNS);
			alen = hash_chunks(kat[i].alg, (const uint8_t *)kat[i].msg,
			    strlen(kat[i].msg), 0, a);
			assert_int_equal(alen, wlen);
			assert_memory_equal(a, want, wlen);
			if (backends[be])
				assert_true(ig_psa_ossl_count(IG_PSA_OSSL_SHA512_RUNS) > runs);
			else
				assert_int_equal(ig_psa_ossl_count(IG_PSA_OSSL_SHA512_RUNS), runs);
		}
	}
	for (size_t r = 0; r < ROUNDS; r++) {
		psa_algorithm_t alg = r % 2 ? PSA_ALG_SHA_512 : PSA_ALG_SHA_384;
		uint8_t rnd[4];
		assert_int_equal(psa_generate_random(rnd, sizeof(rnd)), PSA_SUCCESS);
		size_t len = ((size_t)rnd[0] << 8 | rnd[1]) % sizeof(msg);
		size_t step = rnd[2] % 3 == 0 ? 0 : (size_t)rnd[3] + 1; /* runs of blocks too */
		assert_int_equal(psa_generate_random(msg, len), PSA_SUCCESS);
		use_openssl(true);
		alen = hash_chunks(alg, msg, len, step, a);
		use_openssl(false);
		blen = hash_chunks(alg, msg, len, 0, b);
		assert_int_equal(alen, blen);
		assert_memory_equal(a, b, alen);

		/* Begun through one, finished through the other. */
		psa_hash_operation_t op = PSA_HASH_OPERATION_INIT;
		assert_int_equal(psa_hash_setup(&op, alg), PSA_SUCCESS);
		assert_int_equal(psa_hash_update(&op, msg, len / 2), PSA_SUCCESS);
		use_openssl(true);
		assert_int_equal(psa_hash_update(&op, msg + len / 2, len - len / 2), PSA_SUCCESS);
		assert_int_equal(psa_hash_finish(&op, b, sizeof(b), &blen), PSA_SUCCESS);
		assert_memory_equal(a, b, alen);

		/* HMAC, which TLS 1.3's key schedule is made of. */
		assert_int_equal(psa_generate_random(key, sizeof(key)), PSA_SUCCESS);
		psa_key_id_t k = import_key(PSA_KEY_TYPE_HMAC, 8 * sizeof(key),
		    PSA_KEY_USAGE_SIGN_MESSAGE, PSA_ALG_HMAC(alg), key, sizeof(key));
		assert_int_equal(psa_mac_compute(k, PSA_ALG_HMAC(alg), msg, len, a, sizeof(a),
		    &alen), PSA_SUCCESS);
		use_openssl(false);
		assert_int_equal(psa_mac_compute(k, PSA_ALG_HMAC(alg), msg, len, b, sizeof(b),
		    &blen), PSA_SUCCESS);
		assert_int_equal(alen, blen);
		assert_memory_equal(a, b, alen);
		psa_destroy_key(k);
	}
	use_openssl(true);
}
#endif

/* tls.crypto: each choice is what then does the work. */
static void
test_select(void **state)
{
	char err[256];

	(void)state;
	assert_true(ig_crypto_openssl_built_in());
	assert_non_null(ig_crypto_openssl_version());
	assert_int_equal(ig_crypto_select(IG_CRYPTO_MBEDTLS, err, sizeof(err)), 0);
	assert_int_equal(ig_crypto_active(), IG_CRYPTO_MBEDTLS);
	assert_false(ig_psa_ossl_enabled());
	assert_int_equal(ig_crypto_select(IG_CRYPTO_OPENSSL, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(ig_crypto_active(), IG_CRYPTO_OPENSSL);
	assert_int_equal(ig_crypto_select(IG_CRYPTO_AUTO, err, sizeof(err)), 0);
	assert_int_equal(ig_crypto_active(), IG_CRYPTO_OPENSSL);
	assert_int_equal(ig_crypto_requested(), IG_CRYPTO_AUTO);
	assert_string_equal(ig_crypto_backend_str(ig_crypto_active()), "openssl");
}

#else /* !IG_PSA_OSSL_DRIVER: the system's mbedTLS */

static void
test_select(void **state)
{
	char err[256];

	(void)state;
	assert_false(ig_crypto_openssl_built_in());
	assert_null(ig_crypto_openssl_version());
	assert_int_equal(ig_crypto_select(IG_CRYPTO_OPENSSL, err, sizeof(err)), IG_EINVAL);
	assert_non_null(strstr(err, "no OpenSSL driver"));
	assert_int_equal(ig_crypto_select(IG_CRYPTO_AUTO, err, sizeof(err)), 0);
	assert_int_equal(ig_crypto_active(), IG_CRYPTO_MBEDTLS);
}

#endif

int
main(void)
{
	const struct CMUnitTest tests[] = {
#if defined(IG_PSA_OSSL_DRIVER)
		cmocka_unit_test(test_x25519_rfc7748),
		cmocka_unit_test(test_ecdsa_rfc6979),
		cmocka_unit_test(test_ecdsa_differential),
		cmocka_unit_test(test_ecdsa_kept),
		cmocka_unit_test(test_x25519_differential),
		cmocka_unit_test(test_ecdh_secp_differential),
		cmocka_unit_test(test_ecdh_bad_peer),
		cmocka_unit_test(test_x25519_kept),
		cmocka_unit_test(test_x25519_fromdata),
		cmocka_unit_test(test_aead),
		cmocka_unit_test(test_aead_cache),
		cmocka_unit_test(test_aead_cache_owners),
		cmocka_unit_test(test_aead_cache_ticket_keys),
		cmocka_unit_test(test_aead_cache_bad_tag),
		cmocka_unit_test(test_aead_cache_thread),
#if defined(IG_SHA512_BLOCK_HOOK)
		cmocka_unit_test(test_sha512_blocks),
#endif
#endif
		cmocka_unit_test(test_select),
	};
	int failed;

	if (psa_crypto_init() != PSA_SUCCESS)
		return 1;
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	mbedtls_psa_crypto_free();
	return failed;
}
