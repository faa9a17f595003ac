/*
 * imapguard's mbedTLS 3.6 configuration (MBEDTLS_CONFIG_FILE), used when
 * CMake builds mbedTLS itself (the default; IG_SYSTEM_MBEDTLS=ON links the
 * system's library and its configuration instead). cmake/MbedTLS.cmake passes
 * this file to mbedTLS's build and to every target that includes its headers,
 * so the library and imapguard always see the same options.
 *
 * What is on is what proxy/tls.c, certs/ and util/ use: TLS 1.2 and 1.3,
 * server and client, ECDHE with ECDSA or RSA certificates, AES-GCM and
 * ChaCha20-Poly1305, X.509 certificates in PEM or DER, session tickets and the
 * session cache; everything else is off. Performance and memory options are
 * at the end; bench/CRYPTO.md has the measurements behind each of them, and
 * behind the OpenSSL driver (IG_PSA_OSSL_DRIVER).
 */
#ifndef IG_CRYPTO_MBEDTLS_CONFIG_H
#define IG_CRYPTO_MBEDTLS_CONFIG_H

/* Platform */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE          /* certificate validity */
#define MBEDTLS_FS_IO                   /* mbedtls_x509_crt_parse_file (backend CA) */
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_THREADING_C             /* the RSA blinding values of shared keys */
#define MBEDTLS_THREADING_PTHREAD
#define MBEDTLS_ERROR_C                 /* mbedtls_strerror in logs */

/* Randomness */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* Hashes: SHA-256/384 for TLS; SHA-1 and SHA-224/512 only to read the
   certificates that use them (the verification profile decides whether
   they are trusted) */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA224_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
#define MBEDTLS_HKDF_C                  /* TLS 1.3 key schedule */

/* Ciphers: AES-GCM and ChaCha20-Poly1305, the AEAD suites of proxy/tls.c */
#define MBEDTLS_AES_C
#define MBEDTLS_AESNI_C                 /* used when the CPU has AES-NI */
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_CIPHER_C

/* Public keys: ECDSA and RSA (PKCS#1 v1.5 and PSS) certificates, ECDHE */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDSA_C
/* No MBEDTLS_ECDSA_DETERMINISTIC: TLS then signs with randomized ECDSA
   (pk_wrap.c), which the OpenSSL driver does (OpenSSL 3.0 has no RFC 6979);
   mbedTLS's fallback draws its nonces from the PSA DRBG. */
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_SECP521R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21
#define MBEDTLS_OID_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PK_WRITE_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_BASE64_C                /* PEM, and util/sasl.c */

/* PSA Crypto: TLS 1.3 needs it; with MBEDTLS_USE_PSA_CRYPTO, TLS 1.2, X.509
   and PK go through it too (one code path for every handshake) */
#define MBEDTLS_PSA_CRYPTO_C
#define MBEDTLS_USE_PSA_CRYPTO
#define MBEDTLS_PSA_KEY_STORE_DYNAMIC
/* PSA runs in our process on our own buffers, never in memory shared with
   an untrusted party: no copy of every buffer on every call (two 16 KiB
   copies per TLS record, otherwise). TLS encrypts records in place, which
   mbedTLS's AEAD and the OpenSSL driver's both support. */
#define MBEDTLS_PSA_ASSUME_EXCLUSIVE_BUFFERS
/* imapguard's transparent driver over OpenSSL's libcrypto
   (crypto/driver/psa_ossl.h): ECDSA, ECDH, X25519 and AEAD, with mbedTLS's
   own code as the fallback */
#define MBEDTLS_PSA_CRYPTO_DRIVERS
#define IG_PSA_OSSL_DRIVER

/* X.509: certificates only (no CRL, CSR or writing) */
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT

/* TLS */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
/* resumption with a fresh ECDHE (forward secrecy, like the suites); pure
   PSK resumption stays off */
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_COMPATIBILITY_MODE
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_ALPN
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE /* the backend name check in tls.c */
#define MBEDTLS_SSL_ALL_ALERT_MESSAGES
#define MBEDTLS_SSL_SESSION_TICKETS
#define MBEDTLS_SSL_TICKET_C
#define MBEDTLS_SSL_CACHE_C

/*
 * Performance (bench/CRYPTO.md):
 * - Everest's X25519 (HACL*, 64-bit) instead of the generic Montgomery ladder;
 * - a window of 6 and precomputed tables for the fixed point (ECDSA signing,
 *   ECDHE key generation), at a few KiB of memory per curve in use.
 */
#define MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED
#define MBEDTLS_ECP_WINDOW_SIZE 6
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 1

/*
 * Memory per TLS connection (bench/CRYPTO.md, "Record buffers"):
 * - the output record buffer holds 8 KiB of plaintext, not 16: imapguard
 *   chooses its record sizes (proxy/tls.c writes at most this much per
 *   record). mbedTLS 3.6 never fragments an outgoing handshake message, so
 *   the server's Certificate message with the whole chain must fit: 8 KiB
 *   holds a chain of three RSA-4096 certificates with room to spare, and
 *   certs/store.c refuses, when the configuration is loaded, a chain that
 *   would not fit. The input buffer stays 16 KiB: a peer may send records
 *   of 2^14 bytes (no max_fragment_length).
 * - IG_SSL_RELEASE_IN_BUFFER: our patch to mbedTLS
 *   (crypto/patches/0001-ssl-release-in-buffer.patch) frees the input
 *   record buffer while no incoming data is buffered, and allocates it
 *   again when a read starts, as OpenSSL's SSL_MODE_RELEASE_BUFFERS does.
 * - IG_SSL_RELEASE_OUT_BUFFER: our patch
 *   (crypto/patches/0003-ssl-release-out-buffer.patch) lets proxy/tls.c free
 *   the output record buffer once its own raw output has drained; every
 *   mbedTLS call that may write allocates it again.
 * - With both, our patch crypto/patches/0007-ssl-release-wipe-written.patch
 *   wipes a released buffer only as far as it was written since it was
 *   allocated (a high-water mark kept by the record layer; the whole buffer
 *   after a handshake step), and allocates it again without zeroing it.
 */
#define MBEDTLS_SSL_OUT_CONTENT_LEN 8192
#define IG_SSL_RELEASE_IN_BUFFER
#define IG_SSL_RELEASE_OUT_BUFFER

/*
 * IG_SHA512_BLOCK_HOOK: our patch (crypto/patches/0004-sha512-block-hook.patch)
 * lets the OpenSSL driver give SHA-384/512 libcrypto's block function (twice
 * the C code's speed here) when tls.crypto selects it: the TLS 1.3
 * transcript and key schedule of TLS_AES_256_GCM_SHA384 (bench/CRYPTO.md).
 */
#define IG_SHA512_BLOCK_HOOK

/*
 * IG_SSL_HALF_RTT_DATA: our patch (crypto/patches/0005-tls13-half-rtt-data.patch)
 * lets a TLS 1.3 server write 0.5-RTT data; imapguard's greeting goes with
 * its handshake flight (proxy/session.c, session_handshake).
 */
#define IG_SSL_HALF_RTT_DATA

/*
 * Our patch crypto/patches/0006-psa-random-fork-check.patch (no option: it
 * applies where MBEDTLS_THREADING_PTHREAD is on, as above): the PSA RNG's fork
 * protection asks getpid() only after a fork (a pthread_atfork() generation),
 * not at every psa_generate_random(), a system call each time.
 */

#endif /* IG_CRYPTO_MBEDTLS_CONFIG_H */
