/*
 * App passwords at run time (issue 17): the proxy's side of the store
 * (apppass/store.h). One struct ig_apprt per process, owned by the server
 * (proxy/server.c) and reached by every worker through struct ig_shared.
 *
 *  - The store is read on libuv's thread pool, never on a loop: every
 *    IG_APPRT_POLL_MS the main loop queues one poll (one at a time) that
 *    opens the store when it exists, writes the uses recorded since the
 *    last poll, asks whether the store changed and, when it did, loads a
 *    new snapshot. The main loop then swaps it in and calls the owner's
 *    changed callback (which ends the sessions of revoked passwords on
 *    every worker). A store that cannot be read (missing, bad mode,
 *    corrupt) is logged once per distinct reason and the last good
 *    snapshot stays in force.
 *  - A login's hash (Argon2id, tens of milliseconds) runs on the pool
 *    too (ig_apprt_verify()), behind a process-wide cap: at most
 *    max_concurrent_verifications compute at once (a pool thread waits
 *    for a slot), at most IG_APPRT_QUEUE_FACTOR times that are
 *    outstanding; beyond it a login is told to try again later.
 *  - A successful login's use (time and address) is queued here
 *    (ig_apprt_record_use()) and written by the next poll.
 *
 * Locking: snap_mu guards the snapshot pointer, the queued uses and the
 * counters (held for microseconds, from any thread); store_mu guards the
 * SQLite connection (held by pool threads only, across I/O). Slots:
 * slot_mu and slot_cv.
 */
#ifndef IG_PROXY_APPRT_H
#define IG_PROXY_APPRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "apppass/store.h"

struct ig_apppass_conf;
struct ig_apprt;

/* How often the store is polled (the issue: a change seen within a second). */
#define IG_APPRT_POLL_MS 500u
/* Outstanding verifications (queued or computing), per concurrent slot. */
#define IG_APPRT_QUEUE_FACTOR 4u
/* Uses queued between two polls; more are dropped (and counted). */
#define IG_APPRT_USES_MAX 4096u
/* How long a store call waits for a writer (SQLite's busy timeout). */
#define IG_APPRT_BUSY_MS 2000u

/*
 * Called on the main loop after a new snapshot was swapped in: old is the
 * one it replaced (NULL at the first load), new the current one. Both are
 * valid during the call only.
 */
typedef void ig_apprt_changed_fn(void *arg, const struct ig_apppass_snapshot *old_snap,
    const struct ig_apppass_snapshot *new_snap);

/*
 * Creates the run-time state for the store c->store on loop (the main
 * loop) and starts polling it (the first poll is queued now). Returns 0
 * with *out, or IG_ENOMEM / IG_EIO after logging.
 */
int ig_apprt_start(uv_loop_t *loop, const struct ig_apppass_conf *c, ig_apprt_changed_fn *cb,
    void *arg, struct ig_apprt **out);

/*
 * Stops polling (on the main loop, once the workers have ended: no
 * verification is outstanding), writes the uses still queued, closes the
 * store. The timer is closed with the loop's other handles: call
 * ig_apprt_free() after the loop has run them.
 */
void ig_apprt_stop(struct ig_apprt *r);
void ig_apprt_free(struct ig_apprt *r);

/* True once the first poll has had its result (a snapshot, or an error
   logged): the server waits for it before accepting clients. */
bool ig_apprt_polled(const struct ig_apprt *r);

/* The current snapshot with one reference (drop it with
   ig_apppass_snapshot_unref()), or NULL when none was ever loaded. Any
   thread. */
struct ig_apppass_snapshot *ig_apprt_snapshot(struct ig_apprt *r);

/* One verification's outcome. */
struct ig_apprt_verify {
	uv_work_t req;                   /* data: the caller's */
	struct ig_apprt *rt;
	const char *phc;                 /* into snap */
	struct ig_apppass_snapshot *snap;/* a reference, dropped by
	                                    ig_apprt_verify_release() */
	char secret[IG_APPPASS_SECRET_LEN + 1];
	int rc;                          /* 0, or an IG_E* from the hash */
	bool match;
	uint64_t queued_ns, started_ns, done_ns; /* uv_hrtime() */
};

/*
 * Reserves an outstanding verification. Returns false when the process
 * already has max_concurrent_verifications (as at start: the thread
 * pool's size follows it) * IG_APPRT_QUEUE_FACTOR of them (the caller
 * answers "try again later"). Any thread.
 */
bool ig_apprt_verify_reserve(struct ig_apprt *r);

/*
 * Queues the hash of v->secret against e->phc on loop's thread pool (v
 * takes a reference of snap; the reservation is v's). cb runs on loop
 * when it is done; it must call ig_apprt_verify_release(). Returns 0, or
 * IG_EIO when libuv refused the work (released already).
 */
int ig_apprt_verify(struct ig_apprt *r, uv_loop_t *loop, struct ig_apprt_verify *v,
    struct ig_apppass_snapshot *snap, const struct ig_apppass_snap_entry *e,
    const struct ig_apppass_pw *pw, uv_after_work_cb cb);

/* Wipes v's secret, drops its snapshot and its reservation. */
void ig_apprt_verify_release(struct ig_apprt_verify *v);

/*
 * Queues the record of a login with id from address at when (seconds),
 * written by the next poll. Any thread; never blocks on the store.
 */
void ig_apprt_record_use(struct ig_apprt *r, const char *id, int64_t when,
    const char *address);

/* Numbers for /metrics. */
struct ig_apprt_stats {
	bool loaded;                     /* a snapshot is in force */
	size_t active, revoked, invalid; /* its rows */
	uint64_t reloads;                /* snapshots swapped in */
	uint64_t load_errors;            /* polls that could not read the store */
	unsigned outstanding;            /* verifications queued or running */
	uint64_t verify_ns;              /* hash time, every verification */
	uint64_t verifications;
	uint64_t uses_dropped;
};
void ig_apprt_stats(struct ig_apprt *r, struct ig_apprt_stats *st);

#endif /* IG_PROXY_APPRT_H */
