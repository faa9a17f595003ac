/*
 * Private to config/policy*.c: the policy's value types (policy_values.c)
 * for the rules' table and checks (policy.c).
 */
#ifndef IG_CONFIG_POLICY_VALUES_H
#define IG_CONFIG_POLICY_VALUES_H

#include <stdbool.h>

#include "config/schema.h"

/* policy.mode and a rule's mode: enforce | monitor, into a bool. */
extern const struct custom_ops ig_cfg_mode_ops;
/* mechanisms: SASL names, any case; [] allows no SASL mechanism at all. */
extern const struct custom_ops ig_cfg_mechs_ops;
/* policy.networks: NAME: [CIDR, ...], each list non-empty. */
extern const struct custom_ops ig_cfg_networks_ops;

/* A sequence is expected; a bare "key:" is refused rather than read as an
 * empty list, since an empty list means "nothing allowed" here. */
bool ig_cfg_policy_want_seq(struct cfgctx *c, const struct cnode *v, const char *path);

/* A mapping of names is expected; a bare "key:" means none. */
bool ig_cfg_policy_want_map(struct cfgctx *c, const struct cnode *v, const char *path,
    const char *what);

/* Network and group names: written into logs ("group:NAME"), so plain. A
 * network name must start with a letter so that it never reads as an
 * address ("10.0.0.0/8", "::1", "fe80::/10" all contain a digit or ':'
 * first). */
bool ig_cfg_policy_valid_name(struct cfgctx *c, const struct cnode *k, const char *path,
    bool letter_first);

#endif /* IG_CONFIG_POLICY_VALUES_H */
