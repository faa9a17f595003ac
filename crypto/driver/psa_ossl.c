/*
 * imapguard's PSA transparent driver over OpenSSL's libcrypto (psa_ossl.h).
 *
 * Keys arrive in PSA's export format: an ECC private key is its scalar
 * (big-endian for the secp curves, RFC 7748 bytes for X25519), a public key
 * the uncompressed point (or the 32 bytes of X25519). Each call builds
 * libcrypto's EVP_PKEY from those bytes, does one EVP operation and frees
 * everything; private key copies are cleansed. What a thread keeps is the
 * exception: AEAD contexts and signing contexts by key, and one X25519 key
 * (see "what a thread keeps" below).
 *
 * What is not handled here answers PSA_ERROR_NOT_SUPPORTED, and mbedTLS's own
 * code then does the operation, including every malformed input (its error
 * codes are then PSA's usual ones). When libcrypto fails where mbedTLS would
 * not, the operation also falls back (and IG_PSA_OSSL_FALLBACK counts it),
 * except in the middle of an AEAD operation, whose output may already have
 * overwritten its input (TLS works in place): that is an error.
 * Answers that are the driver's own: a bad signature
 * (PSA_ERROR_INVALID_SIGNATURE), an invalid peer key
 * (PSA_ERROR_INVALID_ARGUMENT, as mbedTLS), an AEAD tag mismatch
 * (PSA_ERROR_INVALID_SIGNATURE, the plaintext wiped) and output buffers too
 * small (PSA_ERROR_BUFFER_TOO_SMALL).
 *
 * Key generation: a PSA key pair is its private key alone, and
 * psa_export_public_key computes the public key afterwards. X25519 key
 * generation is random bytes, left to mbedTLS's DRBG; its public key is
 * computed here. For the secp curves OpenSSL 3.0 has no EVP call that derives
 * the public point from a private scalar, so generate_key keeps the point it
 * generated with the scalar in a one-entry, per-thread memo, which
 * export_public_key uses (and wipes) when it is asked for that very key: the
 * ECDHE sequence of TLS (generate, export, agree). Any other key's public
 * point is left to mbedTLS.
 *
 * X25519: OpenSSL computes the public key whenever it makes an EVP_PKEY
 * from a private key, so export_public_key's EVP_PKEY is kept (one per
 * thread, with the private key it was made from) and the agreement that
 * follows in TLS takes it, instead of a second one that would cost a second
 * scalar multiplication: two per exchange, not three. Only for that very
 * key, used once, and dropped by ig_psa_ossl_forget(). X25519 keys are made
 * with EVP_PKEY_fromdata through one EVP_PKEY_CTX per thread, made once:
 * EVP_PKEY_new_raw_private_key and _public_key look the algorithm up by
 * name in every call (OpenSSL 3.0 walks its whole name map), which cost
 * about twice as much.
 */
#include "psa_ossl.h"

#if defined(IG_PSA_OSSL_DRIVER)

#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <mbedtls/psa_util.h>
#include <mbedtls/sha512.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#define OSSL_EC_BYTES_MAX 66                   /* secp521r1 */
#define OSSL_EC_POINT_MAX (1 + 2 * OSSL_EC_BYTES_MAX)
#define OSSL_DER_SIG_MAX 160                   /* ECDSA-Sig-Value on secp521r1: 139 */
#define OSSL_AEAD_TAG 16
#define OSSL_AEAD_NONCE 12

static int ossl_on = 1;
static unsigned long ossl_counts[IG_PSA_OSSL_OP_COUNT];

static void ossl_counted(enum ig_psa_ossl_op op);

#if defined(IG_SHA512_BLOCK_HOOK)
/*
 * SHA-384/512 blocks through libcrypto's block function (its assembly:
 * SHA512_Transform, the one entry point that takes the state words as they
 * are; deprecated in OpenSSL 3.0, kept through 3.x). The copy of the state
 * on the stack is wiped: inside HMAC it is derived from the key.
 */
static int
ossl_sha512_blocks(uint64_t state[8], const unsigned char *data, size_t blocks)
{
	SHA512_CTX c;
	_Static_assert(sizeof(c.h) == 8 * sizeof(uint64_t), "SHA512_CTX state words");
	memcpy(c.h, state, sizeof(c.h));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	for (size_t i = 0; i < blocks; i++)
		SHA512_Transform(&c, data + i * SHA512_CBLOCK);
#pragma GCC diagnostic pop
	memcpy(state, c.h, sizeof(c.h));
	OPENSSL_cleanse(&c, sizeof(c));
	ossl_counted(IG_PSA_OSSL_SHA512_RUNS);
	return 0;
}
#endif

void
ig_psa_ossl_set_enabled(bool on)
{
	__atomic_store_n(&ossl_on, on ? 1 : 0, __ATOMIC_RELAXED);
#if defined(IG_SHA512_BLOCK_HOOK)
	mbedtls_sha512_block_hook = on ? ossl_sha512_blocks : NULL;
#endif
}

bool
ig_psa_ossl_enabled(void)
{
	return __atomic_load_n(&ossl_on, __ATOMIC_RELAXED) != 0;
}

unsigned long
ig_psa_ossl_count(enum ig_psa_ossl_op op)
{
	if ((unsigned)op >= IG_PSA_OSSL_OP_COUNT)
		return 0;
	return __atomic_load_n(&ossl_counts[op], __ATOMIC_RELAXED);
}

static void
ossl_counted(enum ig_psa_ossl_op op)
{
	__atomic_fetch_add(&ossl_counts[op], 1, __ATOMIC_RELAXED);
}

/* libcrypto failed where mbedTLS may not: leave the operation to it. */
static psa_status_t
ossl_fallback(void)
{
	ERR_clear_error();
	ossl_counted(IG_PSA_OSSL_FALLBACK);
	return PSA_ERROR_NOT_SUPPORTED;
}

const char *
ig_psa_ossl_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

/* The secp curves we hand over, by size; NULL for any other. */
static const char *
ossl_secp_group(psa_key_type_t type, size_t bits)
{
	if (PSA_KEY_TYPE_ECC_GET_FAMILY(type) != PSA_ECC_FAMILY_SECP_R1)
		return NULL;
	switch (bits) {
	case 256: return "prime256v1";
	case 384: return "secp384r1";
	case 521: return "secp521r1";
	default: return NULL;
	}
}

static bool
ossl_is_x25519(psa_key_type_t type, size_t bits)
{
	return PSA_KEY_TYPE_ECC_GET_FAMILY(type) == PSA_ECC_FAMILY_MONTGOMERY && bits == 255;
}

/* An EVP_PKEY from the parameters, or NULL. */
static EVP_PKEY *
ossl_fromdata(const char *name, int selection, OSSL_PARAM *params)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
	EVP_PKEY *pkey = NULL;

	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, selection, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* An EC key pair from a big-endian private scalar (no public point). */
static EVP_PKEY *
ossl_ec_private(const char *group, const uint8_t *d, size_t dlen)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	BIGNUM *bn = BN_secure_new();
	EVP_PKEY *pkey = NULL;

	if (bld == NULL || bn == NULL || dlen > INT_MAX ||
	    BN_bin2bn(d, (int)dlen, bn) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto done;
	pkey = ossl_fromdata("EC", EVP_PKEY_KEYPAIR, params);
done:
	OSSL_PARAM_free(params); /* clears the secure part, the scalar */
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(bn);
	return pkey;
}

/* An EC public key from an uncompressed point (checked to be on the curve). */
static EVP_PKEY *
ossl_ec_public(const char *group, const uint8_t *q, size_t qlen)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	    (char *)(uintptr_t)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)(uintptr_t)q, qlen);
	params[2] = OSSL_PARAM_construct_end();
	return ossl_fromdata("EC", EVP_PKEY_PUBLIC_KEY, params);
}

/* ---- what a thread keeps ---- */

/*
 * AEAD contexts, kept per thread and keyed by the key's bytes. A TLS
 * connection encrypts every record with one key, and setting a key up in
 * libcrypto (a fresh EVP_CIPHER_CTX, the AES key schedule and GHASH table,
 * parameter lookups) cost about a third as much as encrypting an 8 KiB record
 * does. A record whose key is in the cache only sets its nonce. An entry
 * matches the same bytes at the same place (PSA's key slot keeps a key at one
 * address for its life; the bytes are compared too, so a slot reused for
 * another key is a miss, and that entry, whose key is gone, is replaced).
 *
 * One thread serves many connections at once, each with its own keys (two
 * per direction over a TLS 1.3 handshake), their records interleaved: the
 * cache holds OSSL_AEAD_SLOTS entries, enough for some 60 connections
 * moving data at once, a fixed bound (an entry is under 100 bytes here and
 * about 1 KiB in libcrypto, allocated when first used). The place of each
 * entry's key is kept in an array of its own, which a lookup scans; a miss
 * takes an empty entry or the least recently used one.
 *
 * Each entry has an owner (ig_psa_ossl_owner_set: the TLS connection whose
 * call into mbedTLS made it), and ig_psa_ossl_forget(owner) (called when
 * that connection is freed) drops that owner's entries only, so that no
 * traffic key outlives its connection and the others' stay. Entries made
 * with no owner (the session ticket key's, used by every connection) are
 * long-lived, until ig_psa_ossl_retire_unowned() (the ticket keys were
 * replaced) bumps the process-wide generation: each thread drops its
 * unowned entries at its next AEAD operation. Entries are freed with
 * EVP_CIPHER_CTX_free, which cleanses libcrypto's copy; ours is cleansed
 * too. A thread's cache is freed when it exits (a pthread key's destructor).
 */
#define OSSL_AEAD_SLOTS 128
#define OSSL_AEAD_KEY_MAX 32

struct ossl_aead_slot {
	EVP_CIPHER_CTX *ctx;      /* NULL: the slot is empty */
	const EVP_CIPHER *cipher;
	const void *owner;        /* ig_psa_ossl_owner_set's when it was made */
	unsigned long used;       /* the cache's clock at the last use */
	size_t keylen;
	int enc;
	uint8_t key[OSSL_AEAD_KEY_MAX];
};

/*
 * Signing contexts, kept per thread and keyed by the private key: a server
 * signs every full handshake with the same key or two, and making libcrypto's
 * EVP_PKEY and signing context from the scalar (parameters, name lookups,
 * the method fetch) cost as much as the signature. Long-term keys, which
 * the key store holds for the process's life anyway: kept until replaced
 * (least recently used) or the thread exits, not dropped with a connection.
 */
#define OSSL_SIGN_SLOTS 4

struct ossl_sign_slot {
	EVP_PKEY_CTX *ctx;             /* sign-initialized; NULL: empty */
	const char *group;             /* ossl_secp_group's */
	unsigned long used;
	size_t dlen;
	uint8_t d[OSSL_EC_BYTES_MAX];  /* the private scalar */
};

/*
 * What a thread keeps: its AEAD contexts, signing contexts, the X25519
 * key of its latest exchange and the context X25519 keys are made with
 * (see "X25519" at the top).
 */
struct ossl_thread {
	unsigned long clock;
	unsigned long unowned_gen;             /* ossl_unowned_gen when this
	                                          thread last looked */
	const uint8_t *kptr[OSSL_AEAD_SLOTS];  /* where PSA's key slot keeps
	                                          slot[i]'s key; NULL: empty */
	struct ossl_aead_slot slot[OSSL_AEAD_SLOTS];
	struct ossl_sign_slot sign[OSSL_SIGN_SLOTS];
	EVP_PKEY *x25519;              /* NULL: none */
	uint8_t x25519_d[32];          /* its private key */
	EVP_PKEY_CTX *x25519_make;     /* ossl_x25519_key's; NULL: not yet */
};

static pthread_once_t ossl_thread_once = PTHREAD_ONCE_INIT;
static pthread_key_t ossl_thread_key;
static bool ossl_thread_key_ok;
static __thread struct ossl_thread *ossl_thr;
static __thread const void *ossl_owner;   /* ig_psa_ossl_owner_set's */
static unsigned long ossl_unowned_gen;    /* ig_psa_ossl_retire_unowned's count */

/* Empties c's AEAD entry s. */
static void
ossl_slot_drop(struct ossl_thread *c, struct ossl_aead_slot *s)
{
	c->kptr[s - c->slot] = NULL;
	EVP_CIPHER_CTX_free(s->ctx);
	OPENSSL_cleanse(s, sizeof(*s));
}

/* Empties c's AEAD entries made for owner. */
static void
ossl_aead_forget(struct ossl_thread *c, const void *owner)
{
	for (size_t i = 0; i < OSSL_AEAD_SLOTS; i++)
		if (c->kptr[i] != NULL && c->slot[i].owner == owner)
			ossl_slot_drop(c, &c->slot[i]);
}

static void
ossl_sign_drop(struct ossl_sign_slot *s)
{
	EVP_PKEY_CTX_free(s->ctx);
	OPENSSL_cleanse(s, sizeof(*s));
}

static void
ossl_x25519_drop(struct ossl_thread *c)
{
	EVP_PKEY_free(c->x25519);
	c->x25519 = NULL;
	OPENSSL_cleanse(c->x25519_d, sizeof(c->x25519_d));
}

static void
ossl_thread_free(void *p)
{
	struct ossl_thread *c = p;

	if (c == NULL)
		return;
	for (size_t i = 0; i < OSSL_AEAD_SLOTS; i++)
		ossl_slot_drop(c, &c->slot[i]);
	for (size_t i = 0; i < OSSL_SIGN_SLOTS; i++)
		ossl_sign_drop(&c->sign[i]);
	ossl_x25519_drop(c);
	EVP_PKEY_CTX_free(c->x25519_make);
	OPENSSL_free(c);
	/* run by the exiting thread itself: its pointer, not another's */
	ossl_thr = NULL;
}

static void
ossl_thread_key_create(void)
{
	ossl_thread_key_ok = pthread_key_create(&ossl_thread_key, ossl_thread_free) == 0;
}

/* This thread's cache, made on first use; NULL when it cannot be. */
static struct ossl_thread *
ossl_thread_get(void)
{
	if (ossl_thr != NULL)
		return ossl_thr;
	pthread_once(&ossl_thread_once, ossl_thread_key_create);
	if (!ossl_thread_key_ok)
		return NULL;
	if ((ossl_thr = OPENSSL_zalloc(sizeof(*ossl_thr))) == NULL)
		return NULL;
	ossl_thr->unowned_gen = __atomic_load_n(&ossl_unowned_gen, __ATOMIC_ACQUIRE);
	if (pthread_setspecific(ossl_thread_key, ossl_thr) != 0) {
		OPENSSL_free(ossl_thr);
		ossl_thr = NULL;
	}
	return ossl_thr;
}

const void *
ig_psa_ossl_owner_set(const void *owner)
{
	const void *prev = ossl_owner;

	ossl_owner = owner;
	return prev;
}

void
ig_psa_ossl_retire_unowned(void)
{
	__atomic_fetch_add(&ossl_unowned_gen, 1, __ATOMIC_RELEASE);
}

void
ig_psa_ossl_forget(const void *owner)
{
	if (ossl_thr == NULL)
		return;
	ossl_aead_forget(ossl_thr, owner);
	ossl_x25519_drop(ossl_thr);
}

/* ---- ECDSA ---- */

/* This thread's signing context for the key (see "Signing contexts"). */
static struct ossl_sign_slot *
ossl_sign_ctx(const char *group, const uint8_t *d, size_t dlen)
{
	struct ossl_thread *c = ossl_thread_get();
	struct ossl_sign_slot *s, *victim;
	EVP_PKEY *pkey;

	if (c == NULL || dlen > OSSL_EC_BYTES_MAX)
		return NULL;
	c->clock++;
	victim = &c->sign[0];
	for (size_t i = 0; i < OSSL_SIGN_SLOTS; i++) {
		s = &c->sign[i];
		if (s->ctx == NULL) {
			if (victim->ctx != NULL)
				victim = s;
			continue;
		}
		if (s->group == group && s->dlen == dlen &&
		    CRYPTO_memcmp(s->d, d, dlen) == 0) {
			s->used = c->clock;
			return s;
		}
		if (victim->ctx != NULL && s->used < victim->used)
			victim = s;
	}
	s = victim;
	ossl_sign_drop(s);
	if ((pkey = ossl_ec_private(group, d, dlen)) == NULL)
		return NULL;
	s->ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	EVP_PKEY_free(pkey); /* the context holds its own reference */
	if (s->ctx == NULL || EVP_PKEY_sign_init(s->ctx) <= 0) {
		ossl_sign_drop(s);
		return NULL;
	}
	s->group = group;
	s->dlen = dlen;
	memcpy(s->d, d, dlen);
	s->used = c->clock;
	ossl_counted(IG_PSA_OSSL_SIGN_KEY);
	return s;
}

psa_status_t
ig_psa_ossl_transparent_sign_hash(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *hash, size_t hash_length, uint8_t *signature, size_t signature_size,
    size_t *signature_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	size_t bits = psa_get_key_bits(attributes), n = PSA_BITS_TO_BYTES(bits);
	const char *group = ossl_secp_group(type, bits);
	uint8_t der[OSSL_DER_SIG_MAX];
	size_t derlen = sizeof(der);
	struct ossl_sign_slot *slot;

	/* OpenSSL 3.0 has no deterministic ECDSA: that stays with mbedTLS. */
	if (!ig_psa_ossl_enabled() || !PSA_ALG_IS_RANDOMIZED_ECDSA(alg) || group == NULL ||
	    !PSA_KEY_TYPE_IS_ECC_KEY_PAIR(type) || key_buffer_size != n)
		return PSA_ERROR_NOT_SUPPORTED;
	if (signature_size < 2 * n)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	if ((slot = ossl_sign_ctx(group, key_buffer, key_buffer_size)) == NULL)
		return ossl_fallback();
	if (EVP_PKEY_sign(slot->ctx, der, &derlen, hash, hash_length) <= 0) {
		ossl_sign_drop(slot);
		return ossl_fallback();
	}
	if (mbedtls_ecdsa_der_to_raw(bits, der, derlen, signature, signature_size,
	    signature_length) != 0)
		return ossl_fallback();
	ossl_counted(IG_PSA_OSSL_SIGN);
	return PSA_SUCCESS;
}

psa_status_t
ig_psa_ossl_transparent_verify_hash(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *hash, size_t hash_length, const uint8_t *signature,
    size_t signature_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	size_t bits = psa_get_key_bits(attributes), n = PSA_BITS_TO_BYTES(bits);
	const char *group = ossl_secp_group(type, bits);
	uint8_t der[OSSL_DER_SIG_MAX];
	size_t derlen;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	psa_status_t st;
	int rc;

	/* A key pair's buffer holds the private scalar only: mbedTLS's. */
	if (!ig_psa_ossl_enabled() || !PSA_ALG_IS_ECDSA(alg) || group == NULL ||
	    !PSA_KEY_TYPE_IS_ECC_PUBLIC_KEY(type) || key_buffer_size != 1 + 2 * n ||
	    key_buffer[0] != 0x04)
		return PSA_ERROR_NOT_SUPPORTED;
	if (signature_length != 2 * n)
		return PSA_ERROR_INVALID_SIGNATURE; /* as mbedTLS */
	if (mbedtls_ecdsa_raw_to_der(bits, signature, signature_length, der, sizeof(der),
	    &derlen) != 0)
		return PSA_ERROR_NOT_SUPPORTED;
	if ((pkey = ossl_ec_public(group, key_buffer, key_buffer_size)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_verify_init(ctx) <= 0) {
		st = ossl_fallback();
		goto done;
	}
	rc = EVP_PKEY_verify(ctx, der, derlen, hash, hash_length);
	if (rc < 0) {
		st = ossl_fallback();
		goto done;
	}
	ERR_clear_error();
	ossl_counted(IG_PSA_OSSL_VERIFY);
	st = rc == 1 ? PSA_SUCCESS : PSA_ERROR_INVALID_SIGNATURE;
done:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return st;
}

/* ---- key generation and public keys ---- */

/* The last secp key pair this thread generated (see the top of the file). */
static __thread struct {
	size_t dlen, qlen;             /* 0: empty */
	uint8_t d[OSSL_EC_BYTES_MAX];  /* private scalar, big-endian */
	uint8_t q[OSSL_EC_POINT_MAX];  /* its uncompressed public point */
} ossl_memo;

static void
ossl_memo_clear(void)
{
	OPENSSL_cleanse(&ossl_memo, sizeof(ossl_memo));
}

psa_status_t
ig_psa_ossl_transparent_generate_key(const psa_key_attributes_t *attributes,
    uint8_t *key_buffer, size_t key_buffer_size, size_t *key_buffer_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	size_t bits = psa_get_key_bits(attributes), n = PSA_BITS_TO_BYTES(bits), qlen = 0;
	const char *group = ossl_secp_group(type, bits);
	uint8_t q[OSSL_EC_POINT_MAX];
	EVP_PKEY *pkey = NULL;
	BIGNUM *d = NULL;
	psa_status_t st;

	if (!ig_psa_ossl_enabled() || group == NULL || !PSA_KEY_TYPE_IS_ECC_KEY_PAIR(type))
		return PSA_ERROR_NOT_SUPPORTED;
	if (key_buffer_size < n)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group)) == NULL ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
	    BN_bn2binpad(d, key_buffer, (int)n) != (int)n ||
	    !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, q, sizeof(q), &qlen) ||
	    qlen != 1 + 2 * n || q[0] != 0x04) {
		OPENSSL_cleanse(key_buffer, key_buffer_size);
		st = ossl_fallback();
		goto done;
	}
	*key_buffer_length = n;
	ossl_memo_clear();
	memcpy(ossl_memo.d, key_buffer, n);
	memcpy(ossl_memo.q, q, qlen);
	ossl_memo.dlen = n;
	ossl_memo.qlen = qlen;
	ossl_counted(IG_PSA_OSSL_GENERATE);
	st = PSA_SUCCESS;
done:
	BN_clear_free(d);
	EVP_PKEY_free(pkey);
	return st;
}

/*
 * An X25519 key from its 32 bytes: a key pair (its public key computed)
 * from a private key, or a public key, made through this thread's context
 * (see "X25519" at the top); NULL when libcrypto failed.
 */
static EVP_PKEY *
ossl_x25519_key(int selection, const uint8_t *k)
{
	struct ossl_thread *c = ossl_thread_get();
	OSSL_PARAM params[2];
	EVP_PKEY *pkey = NULL;

	if (c == NULL)
		return NULL;
	if (c->x25519_make == NULL &&
	    (c->x25519_make = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL)) == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_octet_string(selection == EVP_PKEY_KEYPAIR ?
	    OSSL_PKEY_PARAM_PRIV_KEY : OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)k, 32);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_fromdata_init(c->x25519_make) <= 0 ||
	    EVP_PKEY_fromdata(c->x25519_make, &pkey, selection, params) <= 0)
		pkey = NULL;
	return pkey;
}

psa_status_t
ig_psa_ossl_transparent_export_public_key(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, uint8_t *data, size_t data_size,
    size_t *data_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	size_t bits = psa_get_key_bits(attributes), len;
	struct ossl_thread *c;
	EVP_PKEY *pkey;

	if (!ig_psa_ossl_enabled() || !PSA_KEY_TYPE_IS_ECC_KEY_PAIR(type))
		return PSA_ERROR_NOT_SUPPORTED;
	if (ossl_secp_group(type, bits) != NULL) {
		/* The memo of generate_key, for that key only. */
		if (ossl_memo.dlen == 0 || ossl_memo.dlen != key_buffer_size ||
		    CRYPTO_memcmp(ossl_memo.d, key_buffer, key_buffer_size) != 0)
			return PSA_ERROR_NOT_SUPPORTED;
		if (data_size < ossl_memo.qlen)
			return PSA_ERROR_BUFFER_TOO_SMALL;
		memcpy(data, ossl_memo.q, ossl_memo.qlen);
		*data_length = ossl_memo.qlen;
		ossl_memo_clear();
		ossl_counted(IG_PSA_OSSL_EXPORT_PUBLIC);
		return PSA_SUCCESS;
	}
	if (!ossl_is_x25519(type, bits) || key_buffer_size != 32)
		return PSA_ERROR_NOT_SUPPORTED;
	if (data_size < 32)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	pkey = ossl_x25519_key(EVP_PKEY_KEYPAIR, key_buffer);
	len = data_size;
	if (pkey == NULL || EVP_PKEY_get_raw_public_key(pkey, data, &len) <= 0 || len != 32) {
		EVP_PKEY_free(pkey);
		return ossl_fallback();
	}
	/* Kept for the agreement that follows in TLS (see "X25519"). */
	if ((c = ossl_thread_get()) != NULL) {
		ossl_x25519_drop(c);
		c->x25519 = pkey;
		memcpy(c->x25519_d, key_buffer, 32);
	} else {
		EVP_PKEY_free(pkey);
	}
	*data_length = len;
	ossl_counted(IG_PSA_OSSL_EXPORT_PUBLIC);
	return PSA_SUCCESS;
}

/* ---- ECDH and X25519 ---- */

psa_status_t
ig_psa_ossl_transparent_key_agreement(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *peer_key, size_t peer_key_length, uint8_t *shared_secret,
    size_t shared_secret_size, size_t *shared_secret_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	size_t bits = psa_get_key_bits(attributes), n = PSA_BITS_TO_BYTES(bits), len;
	const char *group = ossl_secp_group(type, bits);
	EVP_PKEY *ours = NULL, *theirs = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	psa_status_t st;

	if (!ig_psa_ossl_enabled() || alg != PSA_ALG_ECDH || !PSA_KEY_TYPE_IS_ECC_KEY_PAIR(type) ||
	    key_buffer_size != n)
		return PSA_ERROR_NOT_SUPPORTED;
	if (group != NULL) {
		if (peer_key_length != 1 + 2 * n || peer_key[0] != 0x04)
			return PSA_ERROR_NOT_SUPPORTED;
		ours = ossl_ec_private(group, key_buffer, key_buffer_size);
		theirs = ossl_ec_public(group, peer_key, peer_key_length);
	} else if (ossl_is_x25519(type, bits)) {
		if (peer_key_length != 32)
			return PSA_ERROR_NOT_SUPPORTED;
		struct ossl_thread *c = ossl_thr;

		if (c != NULL && c->x25519 != NULL &&
		    CRYPTO_memcmp(c->x25519_d, key_buffer, 32) == 0) {
			/* export_public_key's: taken, used once */
			ours = c->x25519;
			c->x25519 = NULL;
			OPENSSL_cleanse(c->x25519_d, sizeof(c->x25519_d));
			ossl_counted(IG_PSA_OSSL_AGREE_KEPT);
		} else {
			ours = ossl_x25519_key(EVP_PKEY_KEYPAIR, key_buffer);
		}
		theirs = ossl_x25519_key(EVP_PKEY_PUBLIC_KEY, peer_key);
	} else {
		return PSA_ERROR_NOT_SUPPORTED;
	}
	if (shared_secret_size < n) {
		st = PSA_ERROR_BUFFER_TOO_SMALL;
		goto done;
	}
	if (ours == NULL || (ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ours, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) <= 0) {
		st = ossl_fallback();
		goto done;
	}
	/*
	 * A peer point off the curve (refused by EVP_PKEY_fromdata), or one
	 * that yields the all-zero X25519 secret (refused by derive, as
	 * Everest does), is the peer's fault: mbedTLS answers
	 * PSA_ERROR_INVALID_ARGUMENT for it too.
	 */
	len = shared_secret_size;
	if (theirs == NULL || EVP_PKEY_derive_set_peer_ex(ctx, theirs, 1) <= 0 ||
	    EVP_PKEY_derive(ctx, shared_secret, &len) <= 0 || len != n) {
		OPENSSL_cleanse(shared_secret, shared_secret_size);
		ERR_clear_error();
		st = PSA_ERROR_INVALID_ARGUMENT;
		goto done;
	}
	*shared_secret_length = len;
	ossl_counted(IG_PSA_OSSL_AGREE);
	st = PSA_SUCCESS;
done:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(ours);
	EVP_PKEY_free(theirs);
	return st;
}

/* ---- AEAD: AES-GCM and ChaCha20-Poly1305, one-shot, 16-byte tags ---- */

static pthread_once_t ossl_ciphers_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *ossl_gcm[3];   /* AES-128/192/256-GCM */
static EVP_CIPHER *ossl_chachapoly;

static void
ossl_ciphers_fetch(void)
{
	ossl_gcm[0] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	ossl_gcm[1] = EVP_CIPHER_fetch(NULL, "AES-192-GCM", NULL);
	ossl_gcm[2] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	ossl_chachapoly = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	ERR_clear_error();
}

/* The cipher for this key and algorithm, or NULL when it is not ours. */
static const EVP_CIPHER *
ossl_aead_cipher(const psa_key_attributes_t *attributes, size_t key_buffer_size,
    psa_algorithm_t alg, size_t nonce_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	size_t bits = psa_get_key_bits(attributes);

	if (!ig_psa_ossl_enabled() || nonce_length != OSSL_AEAD_NONCE ||
	    key_buffer_size != PSA_BITS_TO_BYTES(bits) ||
	    PSA_AEAD_TAG_LENGTH(type, bits, alg) != OSSL_AEAD_TAG)
		return NULL;
	pthread_once(&ossl_ciphers_once, ossl_ciphers_fetch);
	if (type == PSA_KEY_TYPE_AES &&
	    PSA_ALG_AEAD_WITH_DEFAULT_LENGTH_TAG(alg) == PSA_ALG_GCM) {
		switch (bits) {
		case 128: return ossl_gcm[0];
		case 192: return ossl_gcm[1];
		case 256: return ossl_gcm[2];
		default: return NULL;
		}
	}
	if (type == PSA_KEY_TYPE_CHACHA20 && bits == 256 &&
	    PSA_ALG_AEAD_WITH_DEFAULT_LENGTH_TAG(alg) == PSA_ALG_CHACHA20_POLY1305)
		return ossl_chachapoly;
	return NULL;
}


/* An entry of c for a key not in it: an empty one, else the least recently used. */
static struct ossl_aead_slot *
ossl_aead_victim(struct ossl_thread *c)
{
	struct ossl_aead_slot *victim = &c->slot[0];

	for (size_t i = 0; i < OSSL_AEAD_SLOTS; i++) {
		if (c->kptr[i] == NULL)
			return &c->slot[i];
		if (c->slot[i].used < victim->used)
			victim = &c->slot[i];
	}
	return victim;
}

/*
 * A context for (cipher, enc, key) with this nonce set, ready for the AAD;
 * *slot is its cache entry (for ossl_slot_drop when the operation fails).
 * NULL when libcrypto failed: nothing has been written.
 */
static EVP_CIPHER_CTX *
ossl_aead_ctx(const EVP_CIPHER *cipher, int enc, const uint8_t *key, size_t keylen,
    const uint8_t *nonce, struct ossl_aead_slot **slot)
{
	struct ossl_thread *c = ossl_thread_get();
	struct ossl_aead_slot *s, *victim = NULL;
	unsigned long gen;

	if (c == NULL || keylen > OSSL_AEAD_KEY_MAX)
		return NULL;
	/* the ticket keys were replaced: their contexts go */
	gen = __atomic_load_n(&ossl_unowned_gen, __ATOMIC_ACQUIRE);
	if (gen != c->unowned_gen) {
		ossl_aead_forget(c, NULL);
		c->unowned_gen = gen;
	}
	c->clock++;
	/* the key's place first: one comparison of bytes per record */
	for (size_t i = 0; i < OSSL_AEAD_SLOTS; i++) {
		if (c->kptr[i] != key)
			continue;
		s = &c->slot[i];
		if (s->cipher != cipher || s->enc != enc || s->keylen != keylen)
			continue;
		if (CRYPTO_memcmp(s->key, key, keylen) != 0) {
			victim = s; /* the key it was made for is gone */
			break;
		}
		if (EVP_CipherInit_ex2(s->ctx, NULL, NULL, nonce, enc, NULL) <= 0) {
			ossl_slot_drop(c, s);
			return NULL;
		}
		s->used = c->clock;
		*slot = s;
		return s->ctx;
	}
	s = victim != NULL ? victim : ossl_aead_victim(c);
	if (s->ctx != NULL)
		ossl_slot_drop(c, s);
	if ((s->ctx = EVP_CIPHER_CTX_new()) == NULL)
		return NULL;
	if (EVP_CipherInit_ex2(s->ctx, cipher, key, nonce, enc, NULL) <= 0) {
		ossl_slot_drop(c, s);
		return NULL;
	}
	c->kptr[s - c->slot] = key;
	s->cipher = cipher;
	s->owner = ossl_owner;
	s->enc = enc;
	s->keylen = keylen;
	memcpy(s->key, key, keylen);
	s->used = c->clock;
	ossl_counted(IG_PSA_OSSL_AEAD_KEY);
	*slot = s;
	return s->ctx;
}

psa_status_t
ig_psa_ossl_transparent_aead_encrypt(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *nonce, size_t nonce_length, const uint8_t *additional_data,
    size_t additional_data_length, const uint8_t *plaintext, size_t plaintext_length,
    uint8_t *ciphertext, size_t ciphertext_size, size_t *ciphertext_length)
{
	const EVP_CIPHER *cipher = ossl_aead_cipher(attributes, key_buffer_size, alg,
	    nonce_length);
	struct ossl_aead_slot *slot = NULL;
	EVP_CIPHER_CTX *ctx;
	int outl, finl;

	if (cipher == NULL || plaintext_length > INT_MAX - OSSL_AEAD_TAG ||
	    additional_data_length > INT_MAX)
		return PSA_ERROR_NOT_SUPPORTED;
	if (ciphertext_size < plaintext_length + OSSL_AEAD_TAG)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	if ((ctx = ossl_aead_ctx(cipher, 1, key_buffer, key_buffer_size, nonce,
	    &slot)) == NULL)
		return ossl_fallback();
	if (additional_data_length > 0 && EVP_EncryptUpdate(ctx, NULL, &outl,
	    additional_data, (int)additional_data_length) <= 0) {
		ossl_slot_drop(ossl_thr, slot);
		return ossl_fallback(); /* nothing written yet */
	}
	/*
	 * From here on the output may have overwritten the input (TLS
	 * encrypts in place): a failure cannot be left to mbedTLS.
	 */
	if (EVP_EncryptUpdate(ctx, ciphertext, &outl, plaintext, (int)plaintext_length) <= 0 ||
	    EVP_EncryptFinal_ex(ctx, ciphertext + outl, &finl) <= 0 ||
	    (size_t)outl + (size_t)finl != plaintext_length ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, OSSL_AEAD_TAG,
	    ciphertext + plaintext_length) <= 0) {
		ossl_slot_drop(ossl_thr, slot);
		ERR_clear_error();
		return PSA_ERROR_GENERIC_ERROR;
	}
	*ciphertext_length = plaintext_length + OSSL_AEAD_TAG;
	ossl_counted(IG_PSA_OSSL_AEAD);
	return PSA_SUCCESS;
}

psa_status_t
ig_psa_ossl_transparent_aead_decrypt(const psa_key_attributes_t *attributes,
    const uint8_t *key_buffer, size_t key_buffer_size, psa_algorithm_t alg,
    const uint8_t *nonce, size_t nonce_length, const uint8_t *additional_data,
    size_t additional_data_length, const uint8_t *ciphertext, size_t ciphertext_length,
    uint8_t *plaintext, size_t plaintext_size, size_t *plaintext_length)
{
	const EVP_CIPHER *cipher = ossl_aead_cipher(attributes, key_buffer_size, alg,
	    nonce_length);
	struct ossl_aead_slot *slot = NULL;
	EVP_CIPHER_CTX *ctx;
	size_t len;
	int outl, finl, rc;

	if (cipher == NULL || ciphertext_length < OSSL_AEAD_TAG ||
	    ciphertext_length > INT_MAX || additional_data_length > INT_MAX)
		return PSA_ERROR_NOT_SUPPORTED;
	len = ciphertext_length - OSSL_AEAD_TAG;
	if (plaintext_size < len)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	if ((ctx = ossl_aead_ctx(cipher, 0, key_buffer, key_buffer_size, nonce,
	    &slot)) == NULL)
		return ossl_fallback();
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, OSSL_AEAD_TAG,
	    (void *)(uintptr_t)(ciphertext + len)) <= 0 ||
	    (additional_data_length > 0 && EVP_DecryptUpdate(ctx, NULL, &outl,
	    additional_data, (int)additional_data_length) <= 0)) {
		ossl_slot_drop(ossl_thr, slot);
		return ossl_fallback(); /* nothing written yet */
	}
	/* In place, as for encryption: no fallback once output is written. */
	if (EVP_DecryptUpdate(ctx, plaintext, &outl, ciphertext, (int)len) <= 0) {
		ossl_slot_drop(ossl_thr, slot);
		OPENSSL_cleanse(plaintext, plaintext_size);
		ERR_clear_error();
		return PSA_ERROR_GENERIC_ERROR;
	}
	/*
	 * Final checks the tag: 0 is a mismatch, not a failure. A mismatch
	 * ends the TLS connection; its context is not kept.
	 */
	rc = EVP_DecryptFinal_ex(ctx, plaintext + outl, &finl);
	ERR_clear_error();
	if (rc <= 0 || (size_t)outl + (size_t)finl != len) {
		ossl_slot_drop(ossl_thr, slot);
		OPENSSL_cleanse(plaintext, plaintext_size);
		ossl_counted(IG_PSA_OSSL_AEAD);
		return PSA_ERROR_INVALID_SIGNATURE;
	}
	*plaintext_length = len;
	ossl_counted(IG_PSA_OSSL_AEAD);
	return PSA_SUCCESS;
}

#endif /* IG_PSA_OSSL_DRIVER */
