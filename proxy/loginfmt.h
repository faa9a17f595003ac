/*
 * The login command as the backend gets it, formatted into a buffer the
 * caller owns: astrings (a quoted string, a LITERAL+ literal, or a
 * synchronizing literal whose data starts a new segment, sent only after
 * the server's "+"), SASL response lines, and the login as
 * backend.master_login for a user. Pure: no I/O, no allocation, no
 * logging, no clock. backend.c formats the client's login with these and
 * sends the segments; the formatted bytes may hold a secret, and the
 * caller wipes the buffer.
 */
#ifndef IG_PROXY_LOGINFMT_H
#define IG_PROXY_LOGINFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Most segments a login command is sent in (the LOGIN command with two
   synchronizing literals: the command, then each literal's data after a
   "+"). */
#define IG_LOGINFMT_SEGMENTS 3

struct ig_loginfmt {
	uint8_t *buf;                 /* cap bytes, the caller's (not owned) */
	size_t cap;
	size_t len;                   /* buf[0..len) formatted */
	size_t hi;                    /* buf[0..hi) written since the buffer
	                                 was last wiped (len at its highest):
	                                 what a wipe must cover */
	size_t seg_off[IG_LOGINFMT_SEGMENTS]; /* where each segment starts */
	unsigned nseg;                /* segments begun */
	bool literal_plus;            /* the server has LITERAL+ (RFC 7888) */
};

/*
 * Starts a new command in f (whose buf and cap the caller set): nothing
 * formatted, the first segment begun; hi stays (what an earlier command
 * wrote is still to be wiped). literal_plus: whether the server
 * advertised LITERAL+.
 */
void ig_loginfmt_start(struct ig_loginfmt *f, bool literal_plus);

/* Appends len bytes. Each append returns false when it does not fit (f
   is then to be thrown away). */
bool ig_loginfmt_add(struct ig_loginfmt *f, const void *p, size_t len);
bool ig_loginfmt_addf(struct ig_loginfmt *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What is appended from here on is a new segment, sent after the server's
   next "+". False when there are too many. */
bool ig_loginfmt_segment(struct ig_loginfmt *f);

/* Where segment i (< f->nseg) ends: the next one's start, or f->len. */
size_t ig_loginfmt_seg_end(const struct ig_loginfmt *f, unsigned i);

/*
 * Appends one astring (RFC 9051): a quoted string when the bytes are
 * printable ASCII (at most 1024 of them; '"' and '\' escaped), else a
 * literal: "{n+}" when the server has LITERAL+, else "{n}" with the data
 * (and what follows) in a new segment.
 */
bool ig_loginfmt_astring(struct ig_loginfmt *f, const uint8_t *p, size_t len);

/*
 * Whether user can be logged in for by master login m: not empty, and for
 * style separator without the separator (the backend splits the login name
 * at the first one: "a*b" + "*master" would log in as "a"). Returns 0 or
 * IG_EINVAL.
 */
int ig_loginfmt_master_check(const struct ig_master_login *m, const char *user);

/*
 * Formats the login as m->user for user (a normalised name) under tag,
 * from the start of f (ig_loginfmt_start() is called here):
 *  - style separator: tag LOGIN "user<separator>master" "secret" (astrings:
 *    quoted, or literals for other bytes);
 *  - style authzid: tag AUTHENTICATE PLAIN with the base64 of
 *    "user NUL master NUL secret" (RFC 4616: authzid = the user, authcid =
 *    the master user) as the initial response when sasl_ir (the server has
 *    SASL-IR), else as the response line after "+" (a second segment).
 * f->literal_plus is taken from literal_plus. Returns 0, IG_EINVAL when
 * ig_loginfmt_master_check() refuses (nothing formatted), or IG_ETOOLONG
 * when it does not fit. The secret is in f->buf afterwards (the caller
 * wipes it); the temporary copies made here are wiped.
 */
int ig_loginfmt_master(struct ig_loginfmt *f, const char *tag, const char *user,
    const struct ig_master_login *m, bool sasl_ir, bool literal_plus);

#endif /* IG_PROXY_LOGINFMT_H */
