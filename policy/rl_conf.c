/*
 * The limiter's configuration: the defaults, the validation ig_rl_new() and
 * ig_rl_set_conf() apply, and the deep copy the limiter keeps.
 */
#include "policy/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "policy/rl_internal.h"
#include "util/err.h"

#define RL_MAX_KEYS ((size_t)1 << 26)
#define RL_THRESHOLD_MAX 65535u     /* counters are 16-bit, saturating */

void
ig_rl_conf_defaults(struct ig_rl_conf *c)
{
	const unsigned min = 60u * 1000u;
	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->address = (struct ig_rl_limit){ 10, 10 * min, 15 * min };
	c->spray_address = (struct ig_rl_limit){ 10, 10 * min, 15 * min };
	c->user = (struct ig_rl_limit){ 10, 10 * min, 15 * min };
	c->user_address = (struct ig_rl_limit){ 5, 10 * min, 15 * min };
	c->user_circuit = (struct ig_rl_limit){ 16, 60 * min, 15 * min };
	c->password_spray = (struct ig_rl_limit){ 10, 10 * min, 60 * min };
	c->ipv4_prefix = 32;
	c->ipv6_prefix = 64;
	c->known_ttl_ms = 30ull * 24 * 3600 * 1000;
	c->tarpit_base_ms = 1000;
	c->tarpit_max_ms = 10000;
	c->max_conn_failures = 3;
	c->max_keys = 100000;
	c->max_known = 25000;
}

static bool
rl_limit_ok(const struct ig_rl_limit *l)
{
	return l->threshold <= RL_THRESHOLD_MAX &&
	    (l->threshold == 0 || l->window_ms > 0);
}

bool
ig_rl_conf_ok(const struct ig_rl_conf *c)
{
	if (!rl_limit_ok(&c->address) || !rl_limit_ok(&c->spray_address) ||
	    !rl_limit_ok(&c->user) || !rl_limit_ok(&c->user_address) ||
	    !rl_limit_ok(&c->user_circuit) || !rl_limit_ok(&c->password_spray))
		return false;
	if (c->ipv4_prefix > 32 || c->ipv6_prefix > 128)
		return false;
	if (c->max_keys < 16 || c->max_keys > RL_MAX_KEYS ||
	    c->max_known >= c->max_keys)
		return false;
	if ((c->exempt.n > 0 && c->exempt.v == NULL) ||
	    (c->nraised > 0 && c->raised == NULL))
		return false;
	for (size_t i = 0; i < c->nraised; i++)
		if (c->raised[i].address > RL_THRESHOLD_MAX ||
		    c->raised[i].spray > RL_THRESHOLD_MAX ||
		    (c->raised[i].nets.n > 0 && c->raised[i].nets.v == NULL))
			return false;
	return true;
}

void
ig_rl_conf_release(struct ig_rl_conf *c)
{
	free(c->exempt.v);
	for (size_t i = 0; i < c->nraised; i++)
		free(c->raised[i].nets.v);
	free((void *)c->raised);
	memset(c, 0, sizeof(*c));
}

static int
rl_netset_dup(struct ig_netset *dst, const struct ig_netset *src)
{
	dst->v = NULL;
	dst->n = 0;
	if (src->n == 0)
		return 0;
	dst->v = calloc(src->n, sizeof(*src->v));
	if (dst->v == NULL)
		return IG_ENOMEM;
	memcpy(dst->v, src->v, src->n * sizeof(*src->v));
	dst->n = src->n;
	return 0;
}

/* Deep copy: exempt and raised become owned by dst. */
int
ig_rl_conf_copy(struct ig_rl_conf *dst, const struct ig_rl_conf *src)
{
	*dst = *src;
	dst->raised = NULL;
	dst->nraised = 0;
	if (rl_netset_dup(&dst->exempt, &src->exempt) != 0)
		goto fail;
	if (src->nraised > 0) {
		struct ig_rl_raise *r = calloc(src->nraised, sizeof(*r));
		if (r == NULL)
			goto fail;
		dst->raised = r;
		for (size_t i = 0; i < src->nraised; i++) {
			r[i] = src->raised[i];
			r[i].nets.v = NULL;
			r[i].nets.n = 0;
			dst->nraised = i + 1;
			if (rl_netset_dup(&r[i].nets, &src->raised[i].nets) != 0)
				goto fail;
		}
	}
	return 0;
fail:
	ig_rl_conf_release(dst);
	return IG_ENOMEM;
}
