/*
 * Giving up root: the user and group the running proxy becomes after it
 * has bound its sockets and opened its files (top-level `user` and
 * `group`).
 */
#ifndef IG_UTIL_PRIV_H
#define IG_UTIL_PRIV_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Looks user up in the user database: *uid and its primary group *gid.
 * Returns 0, or IG_ENOTFOUND (no such user) or IG_EIO (the lookup failed:
 * err says why).
 */
int ig_priv_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errsz);
/* Looks group up: *gid. Same returns as ig_priv_user(). */
int ig_priv_group(const char *group, gid_t *gid, char *err, size_t errsz);

/*
 * Becomes user (uid, gid): supplementary groups are the user's own
 * (initgroups: e.g. ssl-cert, to read keys again on reload), then setgid,
 * setuid, a check that root cannot be regained (setuid(0) must fail) and
 * PR_SET_NO_NEW_PRIVS. Call as root before any thread is started (glibc
 * applies setuid to every thread, but nothing should run as root
 * meanwhile). Returns 0, or IG_EIO with err naming the step that failed
 * (the process must not go on then).
 */
int ig_priv_drop(const char *user, uid_t uid, gid_t gid, char *err, size_t errsz);

#endif /* IG_UTIL_PRIV_H */
