/*
 * The backend probe: at start-up and after each reload, one short
 * conversation with the backend (connect, greeting, STARTTLS or implicit TLS
 * as configured, CAPABILITY, LOGOUT) learns the capabilities shown to
 * clients before any of them logs in. It runs on the worker's loop like any
 * backend connection (a struct ig_conn of its own, TLS through proxy/tls.c
 * with the generation's backend configuration and identity check), each
 * step bounded by a timer: a slow or dead backend stalls nobody.
 */
#ifndef IG_PROXY_PROBE_H
#define IG_PROXY_PROBE_H

#include <stddef.h>

#include <uv.h>

/* How long each step (connect, TLS, each answer) may take. */
#define IG_PROBE_STEP_MS 3000u

struct ig_gen;
struct ig_probe;

/*
 * The result, called once unless the probe was cancelled first: rc 0 and
 * the capability list (as after "* CAPABILITY "), or a negative IG_E*
 * (IG_ETIMEDOUT when a step took too long) and a one-line reason. Both
 * strings live until the callback returns. The probe is closing by then
 * and frees itself: forget the pointer.
 */
typedef void ig_probe_done_fn(void *arg, int rc, const char *caps, const char *reason);

/*
 * Starts probing g's backend (the probe holds a reference on g until it is
 * freed) on loop. done(arg, ...) is called later, never from here. Returns
 * 0 and *out, or a negative IG_E* with a reason in err (nothing is left to
 * wait for then; handles already opened close on their own).
 */
int ig_probe_start(uv_loop_t *loop, struct ig_gen *g, unsigned step_ms,
    ig_probe_done_fn *done, void *arg, struct ig_probe **out, char *err, size_t errsz);

/*
 * Abandons p before its result: done is not called, every handle is
 * closed, and p frees itself in the last close callback (run the loop).
 * p must not have called done yet.
 */
void ig_probe_cancel(struct ig_probe *p);

#endif /* IG_PROXY_PROBE_H */
