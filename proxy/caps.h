/*
 * Capability filtering: the capabilities shown before login are the
 * backend's, learned from it, filtered for one connection (RFC 2595,
 * RFC 9051 6.2.1, PROTOCOL.md). Pure functions.
 */
#ifndef IG_PROXY_CAPS_H
#define IG_PROXY_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

/* Longest capability string kept (bytes, NUL included). */
#define IG_CAPS_MAX 2048

/* What the proxy allows on one connection at the moment caps are shown. */
struct ig_caps_view {
	bool starttls_offered; /* cleartext on a STARTTLS listener */
	bool login_allowed;    /* the LOGIN command may succeed here */
	uint32_t mechs_allowed;/* IG_MECH_BIT() set of AUTH= that may be shown */
};

/*
 * Builds this connection's capability list from the backend's
 * (space-separated tokens, as after "* CAPABILITY "):
 * - STARTTLS and LOGINDISABLED from the backend are dropped; STARTTLS is
 *   added when v->starttls_offered; LOGINDISABLED when !v->login_allowed.
 * - AUTH=<mech> is kept only for mechanisms the proxy knows (ig_sasl_mech)
 *   that are in v->mechs_allowed; unknown AUTH= mechanisms are dropped.
 * - SASL-IR is kept only if at least one AUTH= remains (the proxy handles it
 *   itself), ID and LITERAL+ and everything else pass through unchanged.
 * - IMAP4rev1 is added first if the backend did not list it.
 * Tokens are compared case-insensitively and kept in the backend's order,
 * duplicates removed. Writes a NUL-terminated string into out. Returns 0, or
 * IG_ETOOLONG when out is too small.
 */
int ig_caps_filter(const char *backend_caps, const struct ig_caps_view *v,
    char *out, size_t outsz);

/*
 * Extracts the capability list from one response line (without CRLF):
 * "* CAPABILITY a b c", "* OK [CAPABILITY a b c] text" or
 * "tag OK [CAPABILITY a b c] text". Writes the tokens, space-separated and
 * NUL-terminated, into out. Returns 0, IG_ENOTFOUND when the line carries no
 * capabilities, IG_ETOOLONG when out is too small.
 */
int ig_caps_from_response(struct ig_span line, char *out, size_t outsz);

/* True when the space-separated list caps contains the token cap (any case). */
bool ig_caps_has(const char *caps, const char *cap);

#endif /* IG_PROXY_CAPS_H */
