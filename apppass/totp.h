/*
 * TOTP (RFC 6238) over HOTP (RFC 4226) with HMAC-SHA1: the second factor
 * asked before an app password is issued to a user who enrolled.
 *
 * The parameters are the ones every authenticator app defaults to: SHA-1,
 * 6 digits, 30-second steps counted from the Unix epoch. A code is accepted
 * for its own step and one step either side (clock drift), and never twice:
 * the caller stores the step that matched and passes it back as
 * last_used_step next time.
 *
 * The secret is 20 random bytes (160 bits, RFC 4226's recommended length),
 * shown to the user once as base32 inside an otpauth:// URI (and its QR
 * code, qr.h). Secrets and codes are never logged; callers wipe them
 * (mbedtls_platform_zeroize()) once used. No allocation, I/O, logging or
 * clock here but ig_totp_secret_new(), which reads getrandom(2): "now" is
 * an argument.
 */
#ifndef IG_APPPASS_TOTP_H
#define IG_APPPASS_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

#define IG_TOTP_SECRET_LEN 20  /* bytes a new secret has (160 bits) */
#define IG_TOTP_SECRET_MIN 16  /* shortest secret taken (RFC 4226 R6: 128 bits) */
#define IG_TOTP_SECRET_MAX 64  /* longest (HMAC-SHA1's block; longer would be hashed) */
#define IG_TOTP_DIGITS 6       /* digits of a code */
#define IG_TOTP_PERIOD 30      /* seconds per step */
#define IG_TOTP_DRIFT 1        /* steps accepted either side of the current one */
#define IG_HOTP_DIGITS_MIN 6   /* RFC 4226 section 5.3 */
#define IG_HOTP_DIGITS_MAX 8

/* Longest otpauth URI ig_totp_uri() writes for an issuer of i bytes and a
 * user of u bytes (every byte of both percent-encoded), NUL included. */
#define IG_TOTP_URI_MAX(i, u) \
	(sizeof("otpauth://totp/:?secret=&issuer=&algorithm=SHA1&digits=6&period=30") + \
	    6 * (i) + 3 * (u) + (IG_TOTP_SECRET_MAX * 8 + 4) / 5)

/*
 * Fills secret with IG_TOTP_SECRET_LEN bytes from the kernel's random
 * source (getrandom(2), blocking until it is seeded). Returns 0, or IG_EIO
 * when the kernel fails us; then secret holds zeroes.
 */
int ig_totp_secret_new(uint8_t secret[IG_TOTP_SECRET_LEN]);

/* The TOTP step (RFC 6238's T) of now, in seconds since the Unix epoch. */
uint64_t ig_totp_step(uint64_t now);

/*
 * HOTP (RFC 4226 section 5): HMAC-SHA1 of the 8-byte big-endian counter
 * under key, dynamically truncated to 31 bits, modulo 10^digits. digits is
 * IG_HOTP_DIGITS_MIN..IG_HOTP_DIGITS_MAX (TOTP uses IG_TOTP_DIGITS; 8 is
 * there for the RFCs' test vectors); keylen is IG_TOTP_SECRET_MIN..
 * IG_TOTP_SECRET_MAX. Returns 0 and sets *code, IG_EINVAL for a bad
 * argument, or IG_EIO if mbedTLS fails. Nothing of the key stays behind on
 * the stack.
 */
int ig_hotp(const uint8_t *key, size_t keylen, uint64_t counter, unsigned digits,
    uint32_t *code);

/*
 * The code of the step of now under secret, as IG_TOTP_DIGITS ASCII digits
 * (leading zeroes kept) and a NUL in out. Returns 0, or what ig_hotp()
 * returns (then out is the empty string). For enrolment checks and tests;
 * a server only verifies.
 */
int ig_totp_code(const uint8_t *secret, size_t secret_len, uint64_t now,
    char out[IG_TOTP_DIGITS + 1]);

/*
 * Verifies code, as typed, against secret at time now (seconds since the
 * Unix epoch). It must be exactly IG_TOTP_DIGITS ASCII digits. It is
 * compared, in constant time, with the code of every step from
 * step(now) - IG_TOTP_DRIFT to step(now) + IG_TOTP_DRIFT that is greater
 * than last_used_step (0 when none was used: step 0 is 1970); all of them
 * are computed and compared, whatever matches.
 *
 * Returns 0 when one matched and sets *matched_step to it (the latest, in
 * the one-in-a-million case that two did): the caller stores it, and passes
 * it as last_used_step from then on, so this code, and any of an earlier
 * step, is never accepted again. Returns IG_EINVAL when code is malformed
 * (length, a non-digit), IG_ENOTFOUND when it is well-formed but matches no
 * step of the window, or only used ones (a replay answers exactly as a
 * wrong code does), and what ig_hotp() returns for a bad secret or an
 * mbedTLS failure. *matched_step is touched only on success.
 */
int ig_totp_verify(const uint8_t *secret, size_t secret_len, struct ig_span code,
    uint64_t now, uint64_t last_used_step, uint64_t *matched_step);

/*
 * Writes the key URI an authenticator app imports (Google Authenticator's
 * Key Uri Format) into out, NUL-terminated:
 *
 *   otpauth://totp/ISSUER:USER?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 *
 * ISSUER and USER are percent-encoded (RFC 3986: every byte but the
 * unreserved characters A-Z a-z 0-9 - . _ ~ and, for readability, '@'
 * becomes %XX, a space %20); the secret is base32 without padding. issuer
 * and user are NUL-terminated, non-empty, and contain neither ':' (the
 * format forbids it in both) nor control characters. The URI carries the
 * secret: the caller wipes out once it is shown. Returns 0 and sets
 * *outlen (the NUL not counted), IG_EINVAL for a bad argument, or
 * IG_ETOOLONG when out is too small (IG_TOTP_URI_MAX() is always enough);
 * on failure *outlen is 0 and out, if outsz is not 0, holds the empty
 * string.
 */
int ig_totp_uri(const char *issuer, const char *user, const uint8_t *secret,
    size_t secret_len, char *out, size_t outsz, size_t *outlen);

#endif /* IG_APPPASS_TOTP_H */
