/*
 * The local control socket (admin.socket): a Unix socket, mode 0600, that
 * `imapguard ctl` talks to. One command line per connection, answered with
 * text lines and a last line "ok ..." or "error ...":
 *   list                     active rate-limit blocks, one per line
 *   lift LIMIT KEY           lift one block (as shown by list)
 *   kick USER                end USER's sessions ("* BYE [UNAVAILABLE]")
 *   stats                    sessions, workers, session buffers (in use, peak,
 *                            free, waiting, refused), tracked keys, limiter changes, and
 *                            with a state file how many of them it holds
 *                            and the failed saves since the last good one
 */
#ifndef IG_PROXY_CTL_H
#define IG_PROXY_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct ig_ctl;
struct ig_shared;

/* What `stats` reports that its owner keeps: workers, the state file. */
struct ig_ctl_stats {
	unsigned workers;              /* worker threads running */
	/* The session buffers, every worker's pool added up. */
	size_t buffers_in_use;
	size_t buffers_in_use_peak;    /* each pool's peak, added up */
	size_t buffers_free;
	size_t buffers_waiting;
	uint64_t buffers_refused;
	bool state_file;               /* the limiter saves to a state file */
	uint64_t state_saved_changes;  /* ig_rl_changes() the file holds */
	unsigned state_save_failures;  /* failed saves since the last good one */
	/* App passwords (app_passwords.store): the snapshot in force. */
	bool apppass;
	bool apppass_loaded;
	size_t apppass_active, apppass_revoked;
	unsigned apppass_outstanding;  /* verifications queued or running */
};
/* What the admin socket asks its owner (the server) for. */
struct ig_ctl_ops {
	/* Fills st with the owner's numbers now. */
	void (*stats)(void *owner, struct ig_ctl_stats *st);
	/* Ends USER's sessions on every worker; *count: how many. Returns 0,
	   or IG_EINVAL for a user name that cannot be normalised. */
	int (*kick)(void *owner, const char *user, unsigned *count);
};

/*
 * Binds path on loop; list and lift act on sh's limiter (under its lock),
 * stats reads sh's counts and asks ops->stats for the rest, kick asks
 * ops->kick. A socket file
 * there is replaced only when it is stale (connecting to it is refused);
 * when a process answers on it (a running instance), nothing is touched and
 * IG_EIO is returned. Returns 0 and *out, or IG_EIO or IG_ENOMEM after
 * logging why.
 */
int ig_ctl_start(uv_loop_t *loop, struct ig_shared *sh, const char *path,
    const struct ig_ctl_ops *ops, void *owner, struct ig_ctl **out);

/* Closes the socket and every open control connection; frees in callbacks. */
void ig_ctl_stop(struct ig_ctl *ctl);

/*
 * Client side, for `imapguard ctl`: sends one command to the socket at path
 * and copies the answer to stdout. Returns 0 when the answer ends in "ok",
 * 1 for "error", 2 when the socket cannot be reached.
 */
int ig_ctl_client(const char *path, const char *command);

#endif /* IG_PROXY_CTL_H */
