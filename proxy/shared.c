/*
 * The state every worker shares (proxy/shared.h).
 */
#include "proxy/shared.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "policy/ratelimit.h"
#include "proxy/conncount.h"
#include "util/err.h"

int
ig_shared_init(struct ig_shared *sh, size_t nlisteners)
{
	memset(sh, 0, sizeof(*sh));
	if (pthread_mutex_init(&sh->lock, NULL) != 0)
		return IG_ENOMEM;
	sh->nlisteners = nlisteners;
	sh->listener_sessions = calloc(nlisteners ? nlisteners : 1,
	    sizeof(*sh->listener_sessions));
	uint8_t cc_key[16];
	psa_generate_random(cc_key, sizeof(cc_key));
	int rc = sh->listener_sessions == NULL ? IG_ENOMEM : ig_cc_new(cc_key, &sh->cc);
	mbedtls_platform_zeroize(cc_key, sizeof(cc_key));
	if (rc != 0) {
		free(sh->listener_sessions);
		pthread_mutex_destroy(&sh->lock);
		memset(sh, 0, sizeof(*sh));
		return rc;
	}
	for (size_t i = 0; i < nlisteners; i++)
		atomic_init(&sh->listener_sessions[i], 0);
	atomic_init(&sh->nsessions, 0);
	atomic_init(&sh->paused_gates, 0);
	uint64_t r = 0;
	psa_generate_random((uint8_t *)&r, sizeof(r));
	sh->sid_base = r & ~UINT64_C(0xffffff);
	atomic_init(&sh->sid_next, 0);
	return 0;
}

void
ig_shared_destroy(struct ig_shared *sh)
{
	if (sh->listener_sessions == NULL)
		return; /* never set up */
	ig_cc_free(sh->cc);
	ig_rl_free(sh->rl);
	ig_metrics_free(sh->metrics, sh->nmetrics);
	free(sh->listener_sessions);
	pthread_mutex_destroy(&sh->lock);
	memset(sh, 0, sizeof(*sh));
}

int
ig_shared_metrics_init(struct ig_shared *sh, unsigned n)
{
	sh->metrics = ig_metrics_new(n, sh->nlisteners);
	sh->nmetrics = sh->metrics != NULL ? n : 0;
	return sh->metrics != NULL ? 0 : IG_ENOMEM;
}

void
ig_shared_lock(struct ig_shared *sh)
{
	pthread_mutex_lock(&sh->lock);
}

void
ig_shared_unlock(struct ig_shared *sh)
{
	pthread_mutex_unlock(&sh->lock);
}

uint64_t
ig_shared_next_sid(struct ig_shared *sh)
{
	return sh->sid_base + atomic_fetch_add(&sh->sid_next, 1);
}

int
ig_shared_caps_learn(struct ig_shared *sh, const char *caps)
{
	ig_shared_lock(sh);
	int rc = 0;
	/* Every login learns the list again: only a change is news. */
	if (!sh->caps.known || caps == NULL || strcmp(sh->caps.list, caps) != 0) {
		rc = ig_caps_learn(&sh->caps, caps);
		if (rc == 0)
			atomic_fetch_add(&sh->caps_version, 1);
	}
	ig_shared_unlock(sh);
	return rc;
}

void
ig_shared_caps_shown(struct ig_shared *sh, const struct ig_caps_view *v, char *out,
    size_t outsz, uint64_t *version)
{
	ig_shared_lock(sh);
	ig_caps_shown(&sh->caps, v, out, outsz);
	*version = atomic_load(&sh->caps_version);
	ig_shared_unlock(sh);
}
