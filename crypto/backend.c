/*
 * The crypto backend under mbedTLS (backend.h): the start-up choice between
 * mbedTLS's own code and the OpenSSL driver, and the driver's self-test.
 */
#include "crypto/backend.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/build_info.h>
#include <psa/crypto.h>

#include "crypto/driver/psa_ossl.h"
#include "util/err.h"

static enum ig_crypto_backend crypto_requested = IG_CRYPTO_AUTO;

static const char *
crypto_backend_name(enum ig_crypto_backend b)
{
	switch (b) {
	case IG_CRYPTO_AUTO: return "auto";
	case IG_CRYPTO_OPENSSL: return "openssl";
	case IG_CRYPTO_MBEDTLS: return "mbedtls";
	case IG_CRYPTO_COUNT: break;
	}
	return "?";
}

const char *
ig_crypto_backend_str(enum ig_crypto_backend b)
{
	return crypto_backend_name(b);
}

bool
ig_crypto_openssl_built_in(void)
{
#if defined(IG_PSA_OSSL_DRIVER)
	return true;
#else
	return false;
#endif
}

const char *
ig_crypto_openssl_version(void)
{
#if defined(IG_PSA_OSSL_DRIVER)
	return ig_psa_ossl_version();
#else
	return NULL;
#endif
}

enum ig_crypto_backend
ig_crypto_requested(void)
{
	return crypto_requested;
}

enum ig_crypto_backend
ig_crypto_active(void)
{
#if defined(IG_PSA_OSSL_DRIVER)
	return ig_psa_ossl_enabled() ? IG_CRYPTO_OPENSSL : IG_CRYPTO_MBEDTLS;
#else
	return IG_CRYPTO_MBEDTLS;
#endif
}

#if !defined(IG_PSA_OSSL_DRIVER)
static _Thread_local const void *crypto_owner;
#endif

const void *
ig_crypto_owner_set(const void *owner)
{
#if defined(IG_PSA_OSSL_DRIVER)
	return ig_psa_ossl_owner_set(owner);
#else
	const void *prev = crypto_owner;
	crypto_owner = owner;
	return prev;
#endif
}

void
ig_crypto_forget_record_keys(const void *owner)
{
#if defined(IG_PSA_OSSL_DRIVER)
	ig_psa_ossl_forget(owner);
#else
	(void)owner;
#endif
}

void
ig_crypto_ticket_keys_changed(void)
{
#if defined(IG_PSA_OSSL_DRIVER)
	ig_psa_ossl_retire_unowned();
#endif
}

#if defined(IG_PSA_OSSL_DRIVER)

/* RFC 7748, section 6.1 */
static const uint8_t kat_x25519_a[32] = {
	0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
	0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
};
static const uint8_t kat_x25519_a_pub[32] = {
	0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
	0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a,
};
static const uint8_t kat_x25519_b_pub[32] = {
	0xde, 0x9e, 0xdb, 0x7d, 0x7b, 0x7d, 0xc1, 0xb4, 0xd3, 0x5b, 0x61, 0xc2, 0xec, 0xe4, 0x35, 0x37,
	0x3f, 0x83, 0x43, 0xc8, 0x5b, 0x78, 0x67, 0x4d, 0xad, 0xfc, 0x7e, 0x14, 0x6f, 0x88, 0x2b, 0x4f,
};
static const uint8_t kat_x25519_k[32] = {
	0x4a, 0x5d, 0x9d, 0x5b, 0xa4, 0xce, 0x2d, 0xe1, 0x72, 0x8e, 0x3b, 0xf4, 0x80, 0x35, 0x0f, 0x25,
	0xe0, 0x7e, 0x21, 0xc9, 0x47, 0xd1, 0x9e, 0x33, 0x76, 0xf0, 0x9b, 0x3c, 0x1e, 0x16, 0x17, 0x42,
};

/* RFC 6979, A.2.5: the P-256 key and SHA-256("sample") */
static const uint8_t kat_p256_x[32] = {
	0xc9, 0xaf, 0xa9, 0xd8, 0x45, 0xba, 0x75, 0x16, 0x6b, 0x5c, 0x21, 0x57, 0x67, 0xb1, 0xd6, 0x93,
	0x4e, 0x50, 0xc3, 0xdb, 0x36, 0xe8, 0x9b, 0x12, 0x7b, 0x8a, 0x62, 0x2b, 0x12, 0x0f, 0x67, 0x21,
};
static const uint8_t kat_p256_q[65] = {
	0x04,
	0x60, 0xfe, 0xd4, 0xba, 0x25, 0x5a, 0x9d, 0x31, 0xc9, 0x61, 0xeb, 0x74, 0xc6, 0x35, 0x6d, 0x68,
	0xc0, 0x49, 0xb8, 0x92, 0x3b, 0x61, 0xfa, 0x6c, 0xe6, 0x69, 0x62, 0x2e, 0x60, 0xf2, 0x9f, 0xb6,
	0x79, 0x03, 0xfe, 0x10, 0x08, 0xb8, 0xbc, 0x99, 0xa4, 0x1a, 0xe9, 0xe9, 0x56, 0x28, 0xbc, 0x64,
	0xf2, 0xf1, 0xb2, 0x0c, 0x2d, 0x7e, 0x9f, 0x51, 0x77, 0xa3, 0xc2, 0x94, 0xd4, 0x46, 0x22, 0x99,
};
static const uint8_t kat_sample_sha256[32] = {
	0xaf, 0x2b, 0xdb, 0xe1, 0xaa, 0x9b, 0x6e, 0xc1, 0xe2, 0xad, 0xe1, 0xd6, 0x94, 0xf4, 0x1f, 0xc7,
	0x1a, 0x83, 0x1d, 0x02, 0x68, 0xe9, 0x89, 0x15, 0x62, 0x11, 0x3d, 0x8a, 0x62, 0xad, 0xd1, 0xbf,
};
static const uint8_t kat_p256_sig[64] = {
	0xef, 0xd4, 0x8b, 0x2a, 0xac, 0xb6, 0xa8, 0xfd, 0x11, 0x40, 0xdd, 0x9c, 0xd4, 0x5e, 0x81, 0xd6,
	0x9d, 0x2c, 0x87, 0x7b, 0x56, 0xaa, 0xf9, 0x91, 0xc3, 0x4d, 0x0e, 0xa8, 0x4e, 0xaf, 0x37, 0x16,
	0xf7, 0xcb, 0x1c, 0x94, 0x2d, 0x65, 0x7c, 0x41, 0xd4, 0x36, 0xc7, 0xa1, 0xb6, 0xe2, 0x9f, 0x65,
	0xf3, 0xe9, 0x00, 0xdb, 0xb9, 0xaf, 0xf4, 0x06, 0x4d, 0xc4, 0xab, 0x2f, 0x84, 0x3a, 0xcd, 0xa8,
};

/* AES-256-GCM, zero key and nonce, 16 zero bytes (GCM spec, test case 14) */
static const uint8_t kat_gcm_ct[32] = {
	0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e, 0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18,
	0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0, 0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19,
};

#if defined(IG_SHA512_BLOCK_HOOK)
/* FIPS 180-2, SHA-384 of the two-block message (appendix D.2). */
static const char kat_sha384_msg[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
    "klmnopqrlmnopqrsmnopqrstnopqrstu";
static const uint8_t kat_sha384[48] = {
	0x09, 0x33, 0x0c, 0x33, 0xf7, 0x11, 0x47, 0xe8, 0x3d, 0x19, 0x2f, 0xc7, 0x82, 0xcd, 0x1b, 0x47,
	0x53, 0x11, 0x1b, 0x17, 0x3b, 0x3b, 0x05, 0xd2, 0x2f, 0xa0, 0x80, 0x86, 0xe3, 0xb0, 0xf7, 0x12,
	0xfc, 0xc7, 0xc7, 0x1a, 0x55, 0x7e, 0x2d, 0xb9, 0x66, 0xc3, 0xe9, 0xfa, 0x91, 0x74, 0x60, 0x39,
};
#endif

static psa_key_id_t
crypto_kat_key(psa_key_type_t type, size_t bits, psa_key_usage_t usage, psa_algorithm_t alg,
    const uint8_t *data, size_t len)
{
	psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
	psa_key_id_t key;

	psa_set_key_type(&attr, type);
	psa_set_key_bits(&attr, bits);
	psa_set_key_usage_flags(&attr, usage);
	psa_set_key_algorithm(&attr, alg);
	if (psa_import_key(&attr, data, len, &key) != PSA_SUCCESS)
		return PSA_KEY_ID_NULL;
	return key;
}

/* Did the driver do one more op of this kind? */
static bool
crypto_driver_did(enum ig_psa_ossl_op op, unsigned long before)
{
	return ig_psa_ossl_count(op) == before + 1;
}

/*
 * Runs the known answers through the driver (enabled by the caller);
 * returns NULL or what failed.
 */
static const char *
crypto_self_test(void)
{
	const psa_algorithm_t ecdsa = PSA_ALG_ECDSA(PSA_ALG_SHA_256);
	uint8_t out[64], zero[32] = { 0 }, ct[32];
	size_t len;
	unsigned long n;
	psa_key_id_t key, pub;
	const char *why = NULL;
	psa_status_t st;

	key = crypto_kat_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY), 255,
	    PSA_KEY_USAGE_DERIVE | PSA_KEY_USAGE_EXPORT, PSA_ALG_ECDH, kat_x25519_a,
	    sizeof(kat_x25519_a));
	if (key == PSA_KEY_ID_NULL)
		return "X25519 key import";
	n = ig_psa_ossl_count(IG_PSA_OSSL_AGREE);
	st = psa_raw_key_agreement(PSA_ALG_ECDH, key, kat_x25519_b_pub, sizeof(kat_x25519_b_pub),
	    out, sizeof(out), &len);
	if (st != PSA_SUCCESS || len != 32 || memcmp(out, kat_x25519_k, 32) != 0 ||
	    !crypto_driver_did(IG_PSA_OSSL_AGREE, n))
		why = "X25519 agreement (RFC 7748)";
	n = ig_psa_ossl_count(IG_PSA_OSSL_EXPORT_PUBLIC);
	st = psa_export_public_key(key, out, sizeof(out), &len);
	if (why == NULL && (st != PSA_SUCCESS || len != 32 ||
	    memcmp(out, kat_x25519_a_pub, 32) != 0 ||
	    !crypto_driver_did(IG_PSA_OSSL_EXPORT_PUBLIC, n)))
		why = "X25519 public key (RFC 7748)";
	psa_destroy_key(key);
	if (why != NULL)
		return why;

	key = crypto_kat_key(PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
	    PSA_KEY_USAGE_SIGN_HASH, ecdsa, kat_p256_x, sizeof(kat_p256_x));
	pub = crypto_kat_key(PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1), 256,
	    PSA_KEY_USAGE_VERIFY_HASH, ecdsa, kat_p256_q, sizeof(kat_p256_q));
	if (key == PSA_KEY_ID_NULL || pub == PSA_KEY_ID_NULL) {
		why = "P-256 key import";
		goto ecdsa_done;
	}
	n = ig_psa_ossl_count(IG_PSA_OSSL_VERIFY);
	if (psa_verify_hash(pub, ecdsa, kat_sample_sha256, 32, kat_p256_sig, 64) != PSA_SUCCESS ||
	    !crypto_driver_did(IG_PSA_OSSL_VERIFY, n)) {
		why = "ECDSA P-256 verification (RFC 6979)";
		goto ecdsa_done;
	}
	n = ig_psa_ossl_count(IG_PSA_OSSL_SIGN);
	st = psa_sign_hash(key, ecdsa, kat_sample_sha256, 32, out, sizeof(out), &len);
	if (st != PSA_SUCCESS || len != 64 || !crypto_driver_did(IG_PSA_OSSL_SIGN, n)) {
		why = "ECDSA P-256 signature";
		goto ecdsa_done;
	}
	/* The signature made by OpenSSL must convince mbedTLS's own code. */
	ig_psa_ossl_set_enabled(false);
	st = psa_verify_hash(pub, ecdsa, kat_sample_sha256, 32, out, len);
	ig_psa_ossl_set_enabled(true);
	if (st != PSA_SUCCESS)
		why = "ECDSA P-256 signature checked by mbedTLS";
ecdsa_done:
	psa_destroy_key(key);
	psa_destroy_key(pub);
	if (why != NULL)
		return why;

	key = crypto_kat_key(PSA_KEY_TYPE_AES, 256, PSA_KEY_USAGE_ENCRYPT, PSA_ALG_GCM, zero,
	    sizeof(zero));
	if (key == PSA_KEY_ID_NULL)
		return "AES key import";
	n = ig_psa_ossl_count(IG_PSA_OSSL_AEAD);
	st = psa_aead_encrypt(key, PSA_ALG_GCM, zero, 12, NULL, 0, zero, 16, ct, sizeof(ct), &len);
	if (st != PSA_SUCCESS || len != 32 || memcmp(ct, kat_gcm_ct, 32) != 0 ||
	    !crypto_driver_did(IG_PSA_OSSL_AEAD, n))
		why = "AES-256-GCM (test case 14)";
	psa_destroy_key(key);
	if (why != NULL)
		return why;

#if defined(IG_SHA512_BLOCK_HOOK)
	n = ig_psa_ossl_count(IG_PSA_OSSL_SHA512_RUNS);
	st = psa_hash_compute(PSA_ALG_SHA_384, (const uint8_t *)kat_sha384_msg,
	    sizeof(kat_sha384_msg) - 1, out, sizeof(out), &len);
	if (st != PSA_SUCCESS || len != 48 || memcmp(out, kat_sha384, 48) != 0 ||
	    ig_psa_ossl_count(IG_PSA_OSSL_SHA512_RUNS) != n + 2)
		why = "SHA-384 (FIPS 180-2)";
#endif
	return why;
}

#endif /* IG_PSA_OSSL_DRIVER */

int
ig_crypto_select(enum ig_crypto_backend want, char *err, size_t errsz)
{
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	crypto_requested = want;
#if defined(IG_PSA_OSSL_DRIVER)
	if (want == IG_CRYPTO_MBEDTLS) {
		ig_psa_ossl_set_enabled(false);
		return 0;
	}
	ig_psa_ossl_set_enabled(true);
	const char *why = crypto_self_test();
	if (why == NULL)
		return 0;
	ig_psa_ossl_set_enabled(false);
	if (err != NULL)
		snprintf(err, errsz, "the OpenSSL driver (%s) failed its self-test: %s; "
		    "mbedTLS's own code does the crypto", ig_psa_ossl_version(), why);
	return want == IG_CRYPTO_AUTO ? 0 : IG_ETLS;
#else
	if (want != IG_CRYPTO_OPENSSL)
		return 0;
	if (err != NULL)
		snprintf(err, errsz, "tls.crypto openssl: this imapguard has no OpenSSL driver "
		    "(built with the system's mbedTLS, IG_SYSTEM_MBEDTLS=ON)");
	return IG_EINVAL;
#endif
}
