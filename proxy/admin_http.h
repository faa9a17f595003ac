/*
 * The admin HTTP endpoint (admin.listen), on the main thread's loop:
 *   GET /metrics   the Prometheus text format 0.0.4 (proxy/metrics.h)
 *   GET /healthz   200 "ok" while the process answers
 *   GET /readyz    200 "ok" when the owner says ready, else 503 with a
 *                  one-line reason
 * One request per connection (HTTP/1.0 or 1.1, answered with
 * "Connection: close"). Hostile bytes are answered and closed: a request
 * head over IG_AH_MAX_REQUEST bytes gets 413, more than IG_AH_MAX_HEADERS
 * header fields 431, a malformed one 400, another method 405, another path
 * 404, another HTTP version 505, and a client that has not sent its head
 * within IG_AH_TIMEOUT_MS 408. At most IG_AH_MAX_CONNS connections are
 * open; more are closed at once.
 */
#ifndef IG_PROXY_ADMIN_HTTP_H
#define IG_PROXY_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <uv.h>

#define IG_AH_MAX_REQUEST 8192u
#define IG_AH_MAX_HEADERS 64u
#define IG_AH_TIMEOUT_MS 5000u
#define IG_AH_MAX_CONNS 32u
#define IG_AH_MAX_BODY (8u << 20) /* /metrics text cap */

struct ig_admin_http;
struct ig_expo;

/* What the endpoint asks its owner (the server). */
struct ig_admin_http_ops {
	/* Writes the metrics to e. */
	void (*metrics)(void *owner, struct ig_expo *e);
	/* True when ready; otherwise a one-line reason in why. */
	bool (*ready)(void *owner, char *why, size_t whysz);
};

/*
 * Binds and listens on addr (its text form in name, for logs) on loop.
 * Returns 0 and *out, or IG_EIO (after logging event=start-failed) or
 * IG_ENOMEM.
 */
int ig_admin_http_start(uv_loop_t *loop, const struct sockaddr *addr, const char *name,
    const struct ig_admin_http_ops *ops, void *owner, struct ig_admin_http **out);

/* Closes the socket and every connection; frees in the close callbacks.
   NULL is a no-op. */
void ig_admin_http_stop(struct ig_admin_http *h);

#endif /* IG_PROXY_ADMIN_HTTP_H */
