/*
 * SASL helpers for the not-authenticated phase: mechanism names, base64, and
 * extracting the user name from a client response (RFC 4616 PLAIN, the LOGIN
 * mechanism, XOAUTH2, RFC 7628 OAUTHBEARER, RFC 5802/7677 SCRAM, RFC 2195
 * CRAM-MD5), plus user name normalisation. Pure functions: no allocation, no
 * I/O, no logging. Never log what passes through here.
 */
#ifndef IG_UTIL_SASL_H
#define IG_UTIL_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

enum ig_sasl_mech {
	IG_MECH_PLAIN,
	IG_MECH_LOGIN,
	IG_MECH_XOAUTH2,
	IG_MECH_OAUTHBEARER,
	IG_MECH_SCRAM_SHA_1,
	IG_MECH_SCRAM_SHA_256,
	IG_MECH_CRAM_MD5,
	IG_MECH_COUNT /* also "unknown mechanism" */
};

/* Bit for a mechanism in a uint32_t mechanism set. */
#define IG_MECH_BIT(m) (UINT32_C(1) << (unsigned)(m))
#define IG_MECH_ALL (IG_MECH_BIT(IG_MECH_COUNT) - 1u)
/* The mechanisms that prove the account password without sending it
   (the backend checks them; no app password can answer them). */
#define IG_MECH_CHALLENGE_RESPONSE (IG_MECH_BIT(IG_MECH_CRAM_MD5) | \
	IG_MECH_BIT(IG_MECH_SCRAM_SHA_1) | IG_MECH_BIT(IG_MECH_SCRAM_SHA_256))

/* Longest user name accepted (bytes, after normalisation). */
#define IG_USER_MAX 255

/* Canonical upper-case name ("SCRAM-SHA-256"); "?" for IG_MECH_COUNT. */
const char *ig_sasl_mech_str(enum ig_sasl_mech m);
/* Mechanism from its name, case-insensitive; IG_MECH_COUNT if unknown. */
enum ig_sasl_mech ig_sasl_mech_from_name(struct ig_span name);
/*
 * True for mechanisms that send a reusable secret (password or bearer
 * token) readable by anyone on the path: PLAIN, LOGIN, XOAUTH2, OAUTHBEARER.
 */
bool ig_sasl_mech_sends_secret(enum ig_sasl_mech m);
/*
 * True for mechanisms where the server speaks first (CRAM-MD5): no initial
 * response is allowed and the user name appears only in the client's answer
 * to the server's challenge.
 */
bool ig_sasl_mech_server_first(enum ig_sasl_mech m);

/*
 * Decodes base64 (RFC 4648, padding required as mbedTLS does) into out.
 * "=" alone (RFC 4959 empty initial response) decodes to zero bytes.
 * Returns 0 and sets *outlen, IG_EINVAL for bad base64, IG_ETOOLONG when out
 * is too small.
 */
int ig_sasl_b64_decode(struct ig_span in, uint8_t *out, size_t outsz, size_t *outlen);
/* Encodes into out (NUL-terminated). Returns 0, or IG_ETOOLONG. */
int ig_sasl_b64_encode(const uint8_t *in, size_t len, char *out, size_t outsz, size_t *outlen);

/*
 * Identities found in one decoded client response. authzid is empty when
 * absent. Names are copied (SCRAM/GS2 "=2C"/"=3D" escapes removed), not
 * normalised; each is NUL-terminated.
 */
struct ig_sasl_ident {
	char authcid[IG_USER_MAX + 1]; /* authentication identity */
	char authzid[IG_USER_MAX + 1]; /* authorization identity, "" if none */
	struct ig_span secret;         /* the reusable secret inside the message
	                                  (PLAIN password, XOAUTH2/OAUTHBEARER
	                                  bearer token), pointing into msg, not
	                                  copied; {NULL, 0} for the others */
};

/*
 * Extracts the identities from the decoded client response msg[0..len):
 * - PLAIN: the whole initial response "authzid NUL authcid NUL passwd".
 * - LOGIN: the first response (the user name).
 * - XOAUTH2: "user=U\x01auth=Bearer T\x01\x01" (authcid = U).
 * - OAUTHBEARER: GS2 header "n,a=U,..." (authzid = U; authcid empty).
 * - SCRAM-*: client-first "n,[a=Z],n=U,r=..." (authcid U, authzid Z).
 * - CRAM-MD5: the response to the challenge "U SP digest" (authcid U).
 * For the mechanisms that carry a reusable secret in the same message,
 * out->secret points at it inside msg (the caller wipes msg after use).
 * Returns 0; IG_EPROTO when msg is malformed for the mechanism (including a
 * NUL, CR or LF inside a name); IG_ENOTFOUND when it carries no user name
 * (OAUTHBEARER without a=); IG_ETOOLONG when a name exceeds IG_USER_MAX.
 */
int ig_sasl_extract_user(enum ig_sasl_mech m, const uint8_t *msg, size_t len,
    struct ig_sasl_ident *out);

/*
 * Returns the name that selects the mailbox: authzid when non-empty, else
 * authcid.
 */
const char *ig_sasl_mailbox_user(const struct ig_sasl_ident *id);

/*
 * Normalises a user name as the backend will see it: refuses empty names and
 * names with NUL, CR or LF (IG_EINVAL) or longer than IG_USER_MAX
 * (IG_ETOOLONG); with fold, lowers ASCII letters of the whole name (Dovecot's
 * default auth_username_format = %Lu). Nothing is trimmed. Writes a
 * NUL-terminated copy into out (outsz >= IG_USER_MAX + 1). Returns 0.
 */
int ig_user_normalize(const uint8_t *in, size_t len, bool fold, char *out, size_t outsz);

#endif /* IG_UTIL_SASL_H */
