/*
 * Capabilities, one owner for all of them: the backend's list as learned
 * (by the start-up and reload probe, and by every backend connection a
 * login opens), the list assumed before anything is learned, and the list
 * shown before login on one connection, which is the backend's filtered
 * for that connection (RFC 2595, RFC 9051 6.2.1, PROTOCOL.md). No I/O and
 * no loop: the callers hand in what they read and keep the state.
 */
#ifndef IG_PROXY_CAPS_H
#define IG_PROXY_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

/* Longest capability string kept (bytes, NUL included). */
#define IG_CAPS_MAX 2048

/*
 * Assumed before the backend has told its list (it is down at start-up,
 * say): what any IMAP4rev1 server with SASL offers, filtered as the
 * learned list would be.
 */
#define IG_CAPS_FALLBACK "IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN AUTH=LOGIN"

/*
 * A backend capability list as learned: the session set's (what clients
 * are shown, kept across connections; proxy/sessions.h), or one backend
 * connection's (what that connection's login command may use). Zeroed:
 * nothing learned yet.
 */
struct ig_caps_learned {
	char list[IG_CAPS_MAX];  /* tokens as after "* CAPABILITY " */
	bool known;              /* list holds something learned */
};

/*
 * Records caps (a list as ig_caps_from_response() writes it) in l. Returns
 * 0, or IG_ENOTFOUND for an empty list and IG_ETOOLONG for one that does
 * not fit: l is unchanged then.
 */
int ig_caps_learn(struct ig_caps_learned *l, const char *caps);

/*
 * Records the capabilities carried by one backend response line (as
 * ig_caps_from_response() reads them) in l. Returns 0, or IG_ENOTFOUND /
 * IG_ETOOLONG with l unchanged (a line without capabilities is no news).
 */
int ig_caps_learn_line(struct ig_caps_learned *l, struct ig_span line);

/* Forgets what l learned (what a backend said before TLS is not kept). */
void ig_caps_forget(struct ig_caps_learned *l);

/* The learned list, or IG_CAPS_FALLBACK when nothing is learned yet. */
const char *ig_caps_backend(const struct ig_caps_learned *l);

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
 * What a worker showed lately, for each view: the list ig_caps_shown()
 * made from version `version` of the learned list (proxy/shared.h counts
 * the versions). Filtering the list again for every greeting and
 * CAPABILITY cost more than the rest of the greeting. Zeroed: empty.
 */
#define IG_CAPS_MEMO 4

struct ig_caps_memo {
	struct {
		uint64_t version;
		struct ig_caps_view view;
		bool used;
		char list[IG_CAPS_MAX];
	} e[IG_CAPS_MEMO];
	unsigned next;           /* the entry the next put replaces */
};

/* Copies the list kept for (version, v) into out: true, or false when
   none is kept or it does not fit outsz. */
bool ig_caps_memo_get(const struct ig_caps_memo *m, uint64_t version,
    const struct ig_caps_view *v, char *out, size_t outsz);

/* Keeps list as what (version, v) shows, in place of the oldest entry
   (or of the one kept for v). A list too long is not kept. */
void ig_caps_memo_put(struct ig_caps_memo *m, uint64_t version,
    const struct ig_caps_view *v, const char *list);

/*
 * The list one connection is shown: ig_caps_backend(l) filtered by v
 * (ig_caps_filter()). Never fails: when the filtered list does not fit in
 * out, the connection is shown "IMAP4rev1" alone. outsz must be at least
 * 10.
 */
void ig_caps_shown(const struct ig_caps_learned *l, const struct ig_caps_view *v,
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
