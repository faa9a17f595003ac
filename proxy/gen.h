/*
 * Configuration generations: the config, the certificates and the TLS
 * configurations built from them, loaded together and swapped whole on
 * reload (STYLE.md 9). A generation is immutable once loaded; it is
 * refcounted because mbedTLS forbids freeing a configuration that a live
 * connection uses: the worker holds the current one, and every session and
 * backend probe holds the one it started with.
 */
#ifndef IG_PROXY_GEN_H
#define IG_PROXY_GEN_H

#include <stdatomic.h>
#include <stdio.h>

struct ig_certstore;
struct ig_config;
struct ig_tls_client;
struct ig_tls_server;

struct ig_gen {
	atomic_uint refs;
	struct ig_config *cfg;
	struct ig_certstore *certs;
	struct ig_tls_server *tls_server;
	struct ig_tls_client *tls_client; /* NULL when the backend is cleartext */
};

/*
 * Loads path into a new generation (refcount 1): config, certificates, TLS
 * configurations. Reports every problem to errf (stderr when NULL) as
 * "file:line:col: ..." or "file: ..." and returns NULL on failure.
 */
struct ig_gen *ig_gen_load(const char *path, FILE *errf);
/* Takes one more reference on g. */
void ig_gen_ref(struct ig_gen *g);
/* Drops one reference; the last one frees g. NULL is a no-op. */
void ig_gen_unref(struct ig_gen *g);

#endif /* IG_PROXY_GEN_H */
