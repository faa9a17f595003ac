/*
 * The crypto backend under mbedTLS (tls.crypto): which code does the
 * handshake's public-key operations (ECDSA, ECDH, X25519) and the records'
 * AEAD. mbedTLS always keeps the TLS state machine, X.509 and the keys; with
 * our own mbedTLS build, a PSA driver (crypto/driver/psa_ossl.h) can hand
 * those operations to OpenSSL's libcrypto, mbedTLS's own code staying the
 * fallback. The choice is made once at start-up, after psa_crypto_init().
 */
#ifndef IG_CRYPTO_BACKEND_H
#define IG_CRYPTO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

enum ig_crypto_backend {
	IG_CRYPTO_AUTO,    /* OpenSSL when built in and its self-test passes, else mbedTLS */
	IG_CRYPTO_OPENSSL, /* OpenSSL's libcrypto through the PSA driver */
	IG_CRYPTO_MBEDTLS, /* mbedTLS's own code */
	IG_CRYPTO_COUNT
};

/* "auto", "openssl" or "mbedtls"; never NULL. */
const char *ig_crypto_backend_str(enum ig_crypto_backend b);

/* Does this build have the OpenSSL driver (our own mbedTLS build)? */
bool ig_crypto_openssl_built_in(void);

/* libcrypto's version when the driver is built in, else NULL. */
const char *ig_crypto_openssl_version(void);

/*
 * Selects the backend for the whole process; call after psa_crypto_init()
 * and before any TLS. Choosing OpenSSL (openssl, or auto when the driver is
 * built in) first runs a known-answer self-test through it (RFC 7748 X25519,
 * RFC 6979 P-256 ECDSA checked by mbedTLS, AES-256-GCM, FIPS 180-2 SHA-384
 * through the block hook). Returns 0 with the
 * backend active, or IG_EINVAL (openssl without the driver) or IG_ETLS (its
 * self-test failed) with err filled in and mbedTLS active. With auto, a
 * failed self-test is not an error: it returns 0 with mbedTLS active and the
 * reason in err; otherwise err is set to "" on success.
 */
int ig_crypto_select(enum ig_crypto_backend want, char *err, size_t errsz);

/* What the last ig_crypto_select asked for (auto before any call). */
enum ig_crypto_backend ig_crypto_requested(void);

/* What does the work now: IG_CRYPTO_OPENSSL or IG_CRYPTO_MBEDTLS. */
enum ig_crypto_backend ig_crypto_active(void);

/*
 * The owner of what the OpenSSL driver keeps for the calling thread from now
 * on (its AEAD contexts): proxy/tls.c sets it to the connection around each
 * of its calls into mbedTLS, and to NULL around the session ticket
 * callbacks (the ticket key's contexts, made with no owner, serve every
 * connection). owner is never dereferenced. Returns the previous owner, to
 * be restored after the call (calls nest). Without the driver nothing is
 * kept, and the owner is only remembered.
 */
const void *ig_crypto_owner_set(const void *owner);

/*
 * A TLS connection of the calling thread was freed: what the OpenSSL driver
 * keeps for this thread on owner's behalf (its AEAD contexts: the
 * connection's traffic keys) is wiped, and so is the X25519 key kept between
 * its export and the agreement; other connections' contexts and those made
 * with no owner stay. Nothing to do under mbedTLS's own code.
 */
void ig_crypto_forget_record_keys(const void *owner);

/*
 * The session ticket keys were replaced or destroyed (installed, rotated,
 * their context freed): what the OpenSSL driver keeps with no owner (the
 * ticket keys' AEAD contexts) is wiped by every thread at its next AEAD
 * operation, so that a retired key does not stay in memory. Any thread may
 * call it. Nothing to do under mbedTLS's own code.
 */
void ig_crypto_ticket_keys_changed(void);

#endif /* IG_CRYPTO_BACKEND_H */
