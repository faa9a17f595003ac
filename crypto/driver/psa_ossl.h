/*
 * imapguard's PSA transparent driver over OpenSSL's libcrypto.
 *
 * mbedTLS keeps the TLS state machine, X.509 and the key store; the driver
 * takes the operations a handshake pays for (ECDSA, ECDH, X25519) and the
 * records' AEAD, and does each with libcrypto's EVP API: no cryptography of
 * our own. It is compiled into mbedTLS's libmbedcrypto (cmake/MbedTLS.cmake,
 * cmake/MbedTLSDriver.cmake) and called by PSA's driver wrappers, which
 * crypto/driver/driver_wrappers.py generates from psa_ossl.json. Every entry
 * point returns PSA_ERROR_NOT_SUPPORTED for what it does not handle and while
 * the driver is switched off, and mbedTLS's own code then does the operation:
 * it is the fallback, chosen at start-up by crypto/backend.c.
 *
 * IG_PSA_OSSL_DRIVER (crypto/mbedtls_config.h) says the driver is built in.
 */
#ifndef IG_CRYPTO_DRIVER_PSA_OSSL_H
#define IG_CRYPTO_DRIVER_PSA_OSSL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <psa/crypto.h>

#if defined(IG_PSA_OSSL_DRIVER)
#ifndef PSA_CRYPTO_ACCELERATOR_DRIVER_PRESENT
#define PSA_CRYPTO_ACCELERATOR_DRIVER_PRESENT
#endif

/* What the driver did, for tests and the start-up self-test. */
enum ig_psa_ossl_op {
	IG_PSA_OSSL_SIGN,          /* ECDSA signatures made */
	IG_PSA_OSSL_SIGN_KEY,      /* signing keys set up (the others used a cached context) */
	IG_PSA_OSSL_VERIFY,        /* ECDSA signatures checked (good or bad) */
	IG_PSA_OSSL_GENERATE,      /* ECC key pairs generated */
	IG_PSA_OSSL_EXPORT_PUBLIC, /* public keys computed */
	IG_PSA_OSSL_AGREE,         /* ECDH / X25519 agreements */
	IG_PSA_OSSL_AGREE_KEPT,    /* X25519 agreements with export_public_key's key */
	IG_PSA_OSSL_AEAD,          /* AEAD encryptions and decryptions */
	IG_PSA_OSSL_AEAD_KEY,      /* AEAD keys set up (the others used a cached context) */
	IG_PSA_OSSL_FALLBACK,      /* operations libcrypto failed and left to mbedTLS */
	IG_PSA_OSSL_SHA512_RUNS,   /* runs of SHA-384/512 blocks hashed (one or more
	                              blocks each: mbedTLS's block hook) */
	IG_PSA_OSSL_OP_COUNT
};

/*
 * Switches the driver on or off for the whole process (it starts on). Off,
 * every entry point returns PSA_ERROR_NOT_SUPPORTED. Operations are one-shot,
 * so switching between two of them is safe.
 *
 * SHA-384 and SHA-512 are not a driver entry point: our patch to mbedTLS
 * (crypto/patches/0004-sha512-block-hook.patch) lets a block function replace
 * its portable C one, and this switch sets it to OpenSSL's (on) or takes it
 * away (off); it is not set before the first call (ig_crypto_select's). Both work on the same state words, so even a hash in progress
 * may cross the switch; still, switch only while no other thread hashes.
 */
void ig_psa_ossl_set_enabled(bool on);
bool ig_psa_ossl_enabled(void);

/* Operations of kind op done since start-up (all threads). */
unsigned long ig_psa_ossl_count(enum ig_psa_ossl_op op);

/*
 * The owner of what the calling thread's AEAD cache makes from now on (an
 * opaque pointer, never dereferenced: imapguard's TLS connection), until
 * the next call; NULL (the start) makes long-lived entries (the session
 * ticket key's). Returns the previous owner, for the caller to restore so
 * that calls nest. Entries are matched whatever their owner.
 */
const void *ig_psa_ossl_owner_set(const void *owner);

/*
 * Drops, wiping them, the calling thread's AEAD contexts made for owner (a
 * TLS connection's traffic keys; NULL: those made with no owner), and the
 * X25519 key kept between export_public_key and the agreement. Call when a
 * TLS connection is freed, with the owner it set: no traffic key then stays
 * in memory after its connection. The other owners' contexts, those made
 * with no owner and the signing contexts (certificate keys, long-term)
 * stay.
 */
void ig_psa_ossl_forget(const void *owner);

/*
 * The contexts made with no owner (the session ticket keys') are to go:
 * every thread drops its own at its next AEAD operation (a process-wide
 * generation, which each thread compares with the one it last saw). Call
 * when the keys they were made for are replaced or destroyed, so that a
 * retired key does not stay in memory. Any thread may call it.
 */
void ig_psa_ossl_retire_unowned(void);

/* libcrypto's version, e.g. "OpenSSL 3.0.17 1 Jul 2025"; never NULL. */
const char *ig_psa_ossl_version(void);

/* The entry points, with the signatures of PSA's driver wrappers. */
psa_status_t ig_psa_ossl_transparent_sign_hash(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *hash, size_t hash_length, uint8_t *signature, size_t signature_size,
    size_t *signature_length);
psa_status_t ig_psa_ossl_transparent_verify_hash(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *hash, size_t hash_length, const uint8_t *signature,
    size_t signature_length);
psa_status_t ig_psa_ossl_transparent_generate_key(const psa_key_attributes_t *attributes,
    uint8_t *key_buffer, size_t key_buffer_size, size_t *key_buffer_length);
psa_status_t ig_psa_ossl_transparent_export_public_key(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, uint8_t *data, size_t data_size,
    size_t *data_length);
psa_status_t ig_psa_ossl_transparent_key_agreement(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *peer_key, size_t peer_key_length, uint8_t *shared_secret,
    size_t shared_secret_size, size_t *shared_secret_length);
psa_status_t ig_psa_ossl_transparent_aead_encrypt(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *nonce, size_t nonce_length, const uint8_t *additional_data,
    size_t additional_data_length, const uint8_t *plaintext, size_t plaintext_length,
    uint8_t *ciphertext, size_t ciphertext_size, size_t *ciphertext_length);
psa_status_t ig_psa_ossl_transparent_aead_decrypt(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *nonce, size_t nonce_length, const uint8_t *additional_data,
    size_t additional_data_length, const uint8_t *ciphertext, size_t ciphertext_length,
    uint8_t *plaintext, size_t plaintext_size, size_t *plaintext_length);

#endif /* IG_PSA_OSSL_DRIVER */
#endif /* IG_CRYPTO_DRIVER_PSA_OSSL_H */
