/*
 * Configuration generations: built in one pass, aside from the running
 * one, and freed with their last reference.
 */
#include "proxy/gen.h"

#include <stdlib.h>

#include "certs/store.h"
#include "config/config.h"
#include "proxy/tls.h"

struct ig_gen *
ig_gen_load(const char *path, FILE *errf)
{
	if (errf == NULL)
		errf = stderr;
	struct ig_config *cfg = NULL;
	if (ig_config_load(path, &cfg, errf) != 0)
		return NULL;
	struct ig_gen *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		ig_config_free(cfg);
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->cfg = cfg;
	char err[512] = "";
	if (ig_certstore_load(cfg->certs, cfg->ncerts, &g->certs, err, sizeof(err)) != 0) {
		fprintf(errf, "%s: %s\n", path, err);
		goto fail;
	}
	if (ig_tls_server_new(cfg, g->certs, &g->tls_server, err, sizeof(err)) != 0) {
		fprintf(errf, "%s: %s\n", path, err);
		goto fail;
	}
	if (cfg->backend.tls != IG_TLS_NONE &&
	    ig_tls_client_new(&cfg->backend, &g->tls_client, err, sizeof(err)) != 0) {
		fprintf(errf, "%s: backend: %s\n", path, err);
		goto fail;
	}
	return g;
fail:
	ig_gen_unref(g);
	return NULL;
}

void
ig_gen_ref(struct ig_gen *g)
{
	atomic_fetch_add(&g->refs, 1);
}

void
ig_gen_unref(struct ig_gen *g)
{
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	ig_tls_client_free(g->tls_client);
	ig_tls_server_free(g->tls_server);
	ig_certstore_free(g->certs);
	ig_config_free(g->cfg);
	free(g);
}
