/*
 * TLS session ticket keys shared through a file (tls.ticket_key_file), so
 * that every imapguard of a fleet resumes the tickets of the others.
 *
 * The file is text: one key a line, each the base64 (RFC 4648, 48
 * characters) of 36 bytes: a 4-byte key name, which travels in every
 * ticket in clear and selects the key that decrypts it, then a 32-byte
 * AES-256-GCM key. Blank lines and lines starting with '#' are ignored. It
 * holds one or two keys, oldest first: the last one encrypts new tickets,
 * the one before it only decrypts (mbedTLS's ticket context holds two).
 * Rotation appends a new key and drops the oldest: a ticket lives through
 * one rotation, not two.
 *
 * Two halves:
 *  - ticket_keys.c is pure (no I/O, no allocation, no clock): the parser
 *    (file bytes -> keys, with the line and column of a problem) and the
 *    formatter (keys -> file bytes). It is fuzzed.
 *  - ticket_key_file.c is the file: the checks (a regular file, neither
 *    writable by group or others nor readable by others), the read, the
 *    identity that tells a changed file, the atomic write and new keys.
 * Key bytes are wiped (mbedtls_platform_zeroize) wherever they pass.
 */
#ifndef IG_CRYPTO_TICKET_KEYS_H
#define IG_CRYPTO_TICKET_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IG_TICKET_KEY_NAME_LEN 4   /* mbedTLS's MBEDTLS_SSL_TICKET_KEY_NAME_BYTES */
#define IG_TICKET_KEY_LEN 32       /* AES-256-GCM (MBEDTLS_CIPHER_AES_256_GCM) */
#define IG_TICKET_KEY_RAW_LEN (IG_TICKET_KEY_NAME_LEN + IG_TICKET_KEY_LEN) /* 36 */
#define IG_TICKET_KEY_B64_LEN 48   /* base64 of 36 bytes: no padding */
#define IG_TICKET_KEYS_MAX 2       /* the keys of one mbedTLS ticket context */
#define IG_TICKET_KEY_FILE_MAX 4096 /* bytes: keys, comments and blank lines */
#define IG_TICKET_KEY_NAME_HEX 9   /* "1a2b3c4d" and its NUL */

struct ig_ticket_key {
	uint8_t name[IG_TICKET_KEY_NAME_LEN]; /* in every ticket, in clear */
	uint8_t key[IG_TICKET_KEY_LEN];       /* secret */
};

struct ig_ticket_keys {
	struct ig_ticket_key k[IG_TICKET_KEYS_MAX]; /* oldest first */
	size_t n;                                   /* 1 or 2 once parsed;
	                                               k[n - 1] encrypts */
};

/* Where and why a key file was refused. */
struct ig_ticket_keys_error {
	unsigned line;    /* 1-based line of the file; 0: the file as a whole */
	unsigned col;     /* 1-based byte column in that line; 0: none */
	char reason[160]; /* what is wrong, for a person */
};

/*
 * Parses the bytes of a key file (len at most IG_TICKET_KEY_FILE_MAX).
 * Lines end in LF (a CR before it is allowed; the last LF may be missing);
 * blanks (space, tab) around a key are allowed; any other control byte, a
 * character outside base64's alphabet, a key that does not decode to 36
 * bytes, two keys with one name, a key of zero bytes only, no key or more
 * than IG_TICKET_KEYS_MAX are refused. Returns 0 with out filled, or
 * IG_EINVAL (IG_ETOOLONG when len is over the maximum) with *err filled
 * and out wiped. Pure: no I/O, no allocation.
 */
int ig_ticket_keys_parse(const uint8_t *buf, size_t len, struct ig_ticket_keys *out,
    struct ig_ticket_keys_error *err);

/*
 * Writes keys as a key file (a comment saying what it is and which key does
 * what, then the keys, oldest first) into buf. Returns 0 with *outlen set,
 * IG_EINVAL when keys->n is not 1..IG_TICKET_KEYS_MAX, or IG_ETOOLONG when
 * bufsz is too small (IG_TICKET_KEY_FILE_MAX is always enough). buf holds
 * key bytes: the caller wipes it.
 */
int ig_ticket_keys_format(const struct ig_ticket_keys *keys, char *buf, size_t bufsz,
    size_t *outlen);

/* A key's name as 8 lower-case hex digits, for logs and messages (names
   are not secret). Returns out. */
const char *ig_ticket_key_name_hex(const uint8_t name[IG_TICKET_KEY_NAME_LEN],
    char out[IG_TICKET_KEY_NAME_HEX]);

/* "line 3, column 7: reason", "line 3: reason" or "reason". */
void ig_ticket_keys_strerror(const struct ig_ticket_keys_error *err, char *buf, size_t bufsz);

/* Zeroes keys (mbedtls_platform_zeroize). */
void ig_ticket_keys_wipe(struct ig_ticket_keys *keys);

/* ---- the file (ticket_key_file.c) ---------------------------------------- */

/* What tells a replaced or rewritten file from the one read before. */
struct ig_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
	int64_t ctime_ns; /* a chmod or chown changes it too */
};

bool ig_file_id_equal(const struct ig_file_id *a, const struct ig_file_id *b);

/*
 * The identity of path now (stat(2), following symbolic links). Returns 0,
 * or IG_EIO with errno set.
 */
int ig_ticket_keys_stat(const char *path, struct ig_file_id *id);

/*
 * Reads and parses the key file at path: it must be a regular file (a
 * symbolic link to one is followed) of at most IG_TICKET_KEY_FILE_MAX
 * bytes, neither writable by its group or others nor readable by others
 * (modes 600, 400, 640 and 440 are fine). Returns 0 with out and *id (the
 * identity of what was read, from the open descriptor) filled; IG_EIO when
 * it cannot be read (err says why, with strerror), IG_EINVAL when it is
 * refused (its type, mode or content: err says why, with the line and
 * column of a bad key). err is a sentence without the path.
 */
int ig_ticket_keys_load(const char *path, struct ig_ticket_keys *out, struct ig_file_id *id,
    char *err, size_t errsz);

/*
 * A new random key (PSA's generator: psa_crypto_init() first) whose name
 * differs from the names of the keys in avoid (NULL: none). Returns 0 or
 * IG_EIO.
 */
int ig_ticket_key_generate(struct ig_ticket_key *out, const struct ig_ticket_keys *avoid);

/*
 * Writes keys to path atomically: a temporary file in the same directory
 * (mode, then owner uid and group gid unless they are (uid_t)-1 /
 * (gid_t)-1), written, fsync'ed, then renamed over path (excl: linked to
 * path, refused when path exists, and the temporary removed), and the
 * directory fsync'ed. Returns 0, or IG_EIO (IG_EINVAL when excl and path
 * exists) with err saying why; nothing is left behind on failure.
 */
int ig_ticket_keys_write(const char *path, const struct ig_ticket_keys *keys, mode_t mode,
    uid_t uid, gid_t gid, bool excl, char *err, size_t errsz);

#endif /* IG_CRYPTO_TICKET_KEYS_H */
