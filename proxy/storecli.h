/*
 * What the command lines over the app password store share: `imapguard
 * apppass` (proxy/apppass_cli.c) and `imapguard totp` (proxy/totp_cli.c)
 * load the configuration, become the proxy's user, normalise the user
 * named on the command line and open app_passwords.store the same way, and
 * show times and stored text the same way.
 */
#ifndef IG_PROXY_STORECLI_H
#define IG_PROXY_STORECLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sasl.h"

struct ig_config;
struct ig_apppass_store;

/* Exit statuses of both commands (each documents which it uses). */
#define IG_CLI_OK 0
#define IG_CLI_NOTFOUND 1                /* no such id, user or enrolment */
#define IG_CLI_ERROR 2                   /* usage, configuration or store */
#define IG_CLI_SECOND_FACTOR 3           /* apppass add: --totp missing, wrong
                                            or already used */

/* What ig_storecli_open() sets up; release with ig_storecli_close(). */
struct ig_storecli {
	const char *prog;                /* "imapguard apppass": message prefix */
	struct ig_config *cfg;           /* owned */
	struct ig_apppass_store *st;     /* owned; NULL when the store does not
	                                    exist yet and create was false (an
	                                    empty store) */
	char user[IG_USER_MAX + 1];      /* the user argument normalised as the
	                                    policy does (fold_case); "" if none */
};

/*
 * Loads the configuration at config (a broken one is reported with
 * FILE:LINE:COL), requires app_passwords.store, and, started as root with
 * `user:` in it, becomes that user (the privilege drop of the proxy) so
 * that the store and SQLite's -wal and -shm files belong to the proxy.
 * Then normalises user (NULL: none) into c->user and opens the store,
 * creating it (mode 0600) when create is true; without create a missing
 * store leaves c->st NULL. Every failure is reported on stderr, prefixed
 * with prog. Returns 0, or IG_CLI_ERROR (then c holds nothing to release,
 * though ig_storecli_close() is harmless).
 */
int ig_storecli_open(struct ig_storecli *c, const char *prog, const char *config,
    const char *user, bool create);

/* Closes the store and frees the configuration; c may be zeroed. */
void ig_storecli_close(struct ig_storecli *c);

/*
 * After getopt_long(): the command (argv[optind]) and the words after it.
 * Returns false, having said why on stderr as prog, when there is no
 * command or no -c (config NULL): the caller prints its usage.
 */
bool ig_storecli_words(const char *prog, int argc, char **argv, const char *config,
    const char **name, char ***words, int *nwords);

/*
 * Flushes stdout: returns rc, or IG_CLI_ERROR (with a message) when rc was
 * IG_CLI_OK and the flush failed (a full disk, a closed pipe).
 */
int ig_storecli_finish(const struct ig_storecli *c, int rc);

/* t as "2025-05-03T10:00:00Z" (UTC) in buf, or none when t <= 0. */
const char *ig_storecli_time(int64_t t, const char *none, char *buf, size_t bufsz);

/*
 * s for a terminal, in buf (truncated to bufsz): control bytes (C0, DEL,
 * and C1 as UTF-8) become '?', so that a row edited by hand cannot drive
 * the terminal.
 */
const char *ig_storecli_show(const char *s, char *buf, size_t bufsz);

/*
 * Writes all of buf to standard output with write(2), after what stdio
 * holds: for text holding a secret, which the caller then wipes (stdio's
 * buffer would keep a copy). Returns 0, or -1 with errno set.
 */
int ig_storecli_write_out(const char *buf, size_t len);

#endif /* IG_PROXY_STORECLI_H */
