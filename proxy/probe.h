/*
 * The backend probe: at start-up and on reload, one short blocking
 * conversation with the backend (greeting, TLS as configured, CAPABILITY,
 * LOGOUT) learns the capabilities shown to clients before any of them
 * logs in. Runs before the loop starts serving, never per client.
 */
#ifndef IG_PROXY_PROBE_H
#define IG_PROXY_PROBE_H

#include <stddef.h>

struct ig_gen;

/*
 * Talks to g's backend with timeout_ms per step. On success returns 0 and
 * the capability list (as after "* CAPABILITY ") in caps; otherwise a
 * negative IG_E* with a one-line reason in err.
 */
int ig_backend_probe(const struct ig_gen *g, unsigned timeout_ms, char *caps,
    size_t capsz, char *err, size_t errsz);

#endif /* IG_PROXY_PROBE_H */
