/*
 * Giving up root (util/priv.h).
 */
#include "util/priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "util/err.h"

#define PRIV_BUF 16384 /* getpwnam_r / getgrnam_r scratch */

int
ig_priv_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errsz)
{
	struct passwd pw, *res = NULL;
	char *buf = malloc(PRIV_BUF);
	if (buf == NULL) {
		snprintf(err, errsz, "out of memory");
		return IG_EIO;
	}
	int rc = getpwnam_r(user, &pw, buf, PRIV_BUF, &res);
	if (res != NULL) {
		*uid = pw.pw_uid;
		*gid = pw.pw_gid;
	}
	free(buf);
	if (res != NULL)
		return 0;
	if (rc == 0 || rc == ENOENT || rc == ESRCH) {
		snprintf(err, errsz, "no such user");
		return IG_ENOTFOUND;
	}
	snprintf(err, errsz, "user lookup failed: %s", strerror(rc));
	return IG_EIO;
}

int
ig_priv_group(const char *group, gid_t *gid, char *err, size_t errsz)
{
	struct group gr, *res = NULL;
	char *buf = malloc(PRIV_BUF);
	if (buf == NULL) {
		snprintf(err, errsz, "out of memory");
		return IG_EIO;
	}
	int rc = getgrnam_r(group, &gr, buf, PRIV_BUF, &res);
	if (res != NULL)
		*gid = gr.gr_gid;
	free(buf);
	if (res != NULL)
		return 0;
	if (rc == 0 || rc == ENOENT || rc == ESRCH) {
		snprintf(err, errsz, "no such group");
		return IG_ENOTFOUND;
	}
	snprintf(err, errsz, "group lookup failed: %s", strerror(rc));
	return IG_EIO;
}

int
ig_priv_drop(const char *user, uid_t uid, gid_t gid, char *err, size_t errsz)
{
	if (initgroups(user, gid) != 0) {
		snprintf(err, errsz, "initgroups: %s", strerror(errno));
		return IG_EIO;
	}
	if (setgid(gid) != 0) {
		snprintf(err, errsz, "setgid(%lu): %s", (unsigned long)gid, strerror(errno));
		return IG_EIO;
	}
	if (setuid(uid) != 0) {
		snprintf(err, errsz, "setuid(%lu): %s", (unsigned long)uid, strerror(errno));
		return IG_EIO;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
		snprintf(err, errsz, "the ids did not change as asked");
		return IG_EIO;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errsz, "root could be regained after setuid");
		return IG_EIO;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errsz, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return IG_EIO;
	}
	return 0;
}
