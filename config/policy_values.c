/*
 * The policy's value types: policy.networks (named CIDR sets), the address
 * lists of rules (network names and CIDRs resolved into each rule's own
 * set), mechanisms and mode; and the name checks the rules share.
 */
#include "config/policy_values.h"

#include <stdlib.h>
#include <string.h>

#include "config/parse.h"
#include "policy/cidr.h"
#include "util/sasl.h"

#define POLICY_NAME_MAX IG_NAME_MAX /* network and group names */

/* A sequence is expected; a bare "key:" is refused rather than read as an
 * empty list, since an empty list means "nothing allowed" here. */
bool
ig_cfg_policy_want_seq(struct cfgctx *c, const struct cnode *v, const char *path)
{
	if (v->kind == CN_SEQ)
		return true;
	if (ig_cfg_node_is_null(v))
		config_error(c, v->mark, "'%s' has no value (write [] for an empty list)", path);
	else
		config_error(c, v->mark, "'%s' must be a sequence, not %s", path, ig_cfg_kind_str(v));
	return false;
}

/* A mapping of names is expected; a bare "key:" means none. */
bool
ig_cfg_policy_want_map(struct cfgctx *c, const struct cnode *v, const char *path, const char *what)
{
	if (v->kind == CN_MAP)
		return true;
	if (!ig_cfg_node_is_null(v))
		config_error(c, v->mark, "'%s' must be a mapping of %s, not %s", path, what,
		    ig_cfg_kind_str(v));
	return false;
}

/* Network and group names: written into logs ("group:NAME"), so plain. A
 * network name must start with a letter so that it never reads as an
 * address ("10.0.0.0/8", "::1", "fe80::/10" all contain a digit or ':'
 * first). */
bool
ig_cfg_policy_valid_name(struct cfgctx *c, const struct cnode *k, const char *path,
    bool letter_first)
{
	char sb[CFG_SHOW_MAX];
	bool ok = k->len > 0 && k->len <= POLICY_NAME_MAX && strlen(k->str) == k->len;
	for (size_t i = 0; ok && i < k->len; i++) {
		char ch = k->str[i];
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		if (!alpha && !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_' && ch != '.')
			ok = false;
		if (i == 0 && letter_first && !alpha)
			ok = false;
	}
	if (!ok)
		config_error(c, k->mark, "invalid name '%s' in '%s': use up to %d letters, digits, "
		    "'-', '_' and '.'%s", ig_cfg_show(k->str, k->len, sb), path, POLICY_NAME_MAX,
		    letter_first ? ", starting with a letter" : "");
	return ok;
}

/* Parses one CIDR or address, explaining a refusal. */
static bool
policy_parse_cidr(struct cfgctx *c, const struct cnode *v, const char *path, struct ig_cidr *out)
{
	char sb[CFG_SHOW_MAX], addr[64], fixed[64];
	struct ig_cidr host;
	uint64_t prefix;
	if (ig_cidr_parse(v->str, out) == 0)
		return true;
	/* Say why when the address and the prefix are fine on their own. */
	const char *slash = strchr(v->str, '/');
	size_t hl = slash != NULL ? (size_t)(slash - v->str) : 0;
	if (slash != NULL && hl < sizeof(addr)) {
		memcpy(addr, v->str, hl);
		addr[hl] = '\0';
	}
	if (slash != NULL && hl < sizeof(addr) && ig_cidr_parse(addr, &host) == 0 &&
	    strlen(slash + 1) <= 3 && ig_cfg_parse_u64(slash + 1, 999, &prefix) == 0) {
		if (prefix > host.prefix) {
			config_error(c, v->mark, "invalid CIDR '%s' in '%s': the prefix length must be "
			    "at most %u", ig_cfg_show(v->str, v->len, sb), path, host.prefix);
			return false;
		}
		bool hostbits = false;
		for (unsigned i = 0; i < sizeof(host.addr); i++) {
			unsigned bit0 = i * 8;
			unsigned keep = bit0 >= prefix ? 0 :
			    prefix - bit0 >= 8 ? 8 : (unsigned)(prefix - bit0);
			uint8_t net = (uint8_t)(host.addr[i] & (0xff00u >> keep));
			hostbits |= net != host.addr[i];
			host.addr[i] = net;
		}
		host.prefix = (uint8_t)prefix;
		if (hostbits) {
			ig_cidr_format(&host, fixed, sizeof(fixed));
			config_error(c, v->mark, "invalid CIDR '%s' in '%s': host bits are set (did you "
			    "mean %s?)", ig_cfg_show(v->str, v->len, sb), path, fixed);
			return false;
		}
	}
	config_error(c, v->mark, "invalid CIDR '%s' in '%s': expected an IPv4 or IPv6 address, "
	    "optionally with /prefix", ig_cfg_show(v->str, v->len, sb), path);
	return false;
}

static bool
policy_netset_add(struct cfgctx *c, struct ig_netset *set, size_t *cap, const struct ig_cidr *v,
    size_t n)
{
	if (set->n + n > *cap) {
		size_t ncap = *cap ? *cap : 4;
		while (ncap < set->n + n)
			ncap *= 2;
		struct ig_cidr *nv = realloc(set->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			ig_cfg_nomem(c);
			return false;
		}
		set->v = nv;
		*cap = ncap;
	}
	memcpy(set->v + set->n, v, n * sizeof(*v));
	set->n += n;
	return true;
}

static const struct ig_network *
policy_network_find(const struct ig_policy_conf *p, const char *name)
{
	for (size_t i = 0; p != NULL && i < p->nnetworks; i++)
		if (p->networks[i].name != NULL && strcmp(p->networks[i].name, name) == 0)
			return &p->networks[i];
	return NULL;
}

static const char *
policy_network_suggest(const struct ig_policy_conf *p, const struct cnode *k)
{
	const char *best = NULL;
	size_t bestd = 3; /* at most two edits, like unknown keys */
	for (size_t i = 0; p != NULL && i < p->nnetworks; i++) {
		if (p->networks[i].name == NULL)
			continue;
		size_t d = ig_cfg_edit_distance(k->str, k->len, p->networks[i].name);
		if (d < bestd) {
			bestd = d;
			best = p->networks[i].name;
		}
	}
	return best;
}

/* policy.mode and a rule's mode: enforce | monitor, into a bool. */
static bool
policy_store_mode(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX];
	bool *monitor = ig_cfg_at(base, f->off);
	if (!ig_cfg_scalar_ok(c, v, path))
		return false;
	if (strcmp(v->str, "enforce") == 0 || strcmp(v->str, "monitor") == 0) {
		*monitor = v->str[0] == 'm';
		return true;
	}
	config_error(c, v->mark, "invalid value '%s' for '%s': expected one of enforce, monitor",
	    ig_cfg_show(v->str, v->len, sb), path);
	return false;
}

static void
policy_init_mechs(const struct field *f, void *base)
{
	uint32_t m = (uint32_t)f->def;
	memcpy(ig_cfg_at(base, f->off), &m, sizeof(m));
}

/* mechanisms: SASL names, any case; [] allows no SASL mechanism at all. */
static bool
policy_store_mechs(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX], epath[CFG_KEYPATH_MAX];
	uint32_t set = 0;
	if (!ig_cfg_policy_want_seq(c, v, path))
		return false;
	for (size_t i = 0; i < v->n; i++) {
		const struct cnode *e = v->items[i];
		if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
			epath[0] = '\0';
		if (e->kind == CN_BAD || !ig_cfg_scalar_ok(c, e, epath))
			continue;
		enum ig_sasl_mech m = ig_sasl_mech_from_name(
		    (struct ig_span){ (const uint8_t *)e->str, e->len });
		if (m == IG_MECH_COUNT) {
			char known[160];
			size_t off = 0;
			known[0] = '\0';
			for (int j = 0; j < IG_MECH_COUNT; j++) {
				int n = snprintf(known + off, sizeof(known) - off, "%s%s", j ? ", " : "",
				    ig_sasl_mech_str((enum ig_sasl_mech)j));
				if (n < 0 || (size_t)n >= sizeof(known) - off)
					break;
				off += (size_t)n;
			}
			config_error(c, e->mark, "unknown mechanism '%s' in '%s' (known: %s)",
			    ig_cfg_show(e->str, e->len, sb), path, known);
			continue;
		}
		if (set & IG_MECH_BIT(m))
			config_warn(c, e->mark, "mechanism '%s' is listed twice in '%s'",
			    ig_sasl_mech_str(m), path);
		set |= IG_MECH_BIT(m);
	}
	memcpy(ig_cfg_at(base, f->off), &set, sizeof(set));
	return true;
}

/* allow_plaintext_from, allow_from: network names and literal CIDRs, copied
 * into one set. [] is kept as an empty set (with the key's bit: nowhere). */
static bool
policy_store_netset(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX], epath[CFG_KEYPATH_MAX];
	struct ig_netset *set = ig_cfg_at(base, f->off);
	size_t cap = 0;
	if (!ig_cfg_policy_want_seq(c, v, path))
		return false;
	for (size_t i = 0; i < v->n; i++) {
		const struct cnode *e = v->items[i];
		if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
			epath[0] = '\0';
		if (e->kind == CN_BAD || !ig_cfg_scalar_ok(c, e, epath))
			continue;
		bool alpha = (e->str[0] >= 'a' && e->str[0] <= 'z') ||
		    (e->str[0] >= 'A' && e->str[0] <= 'Z');
		if (alpha && strchr(e->str, ':') == NULL) {
			const struct ig_network *net = policy_network_find(c->policy, e->str);
			if (net == NULL) {
				const char *hint = policy_network_suggest(c->policy, e);
				config_error(c, e->mark, "unknown network '%s' in '%s'%s%s%s",
				    ig_cfg_show(e->str, e->len, sb), path,
				    hint ? " (did you mean '" : " (not defined in policy.networks)",
				    hint ? hint : "", hint ? "'?)" : "");
				continue;
			}
			if (net->set.n > 0 && !policy_netset_add(c, set, &cap, net->set.v, net->set.n))
				return false;
			continue;
		}
		struct ig_cidr cidr;
		if (policy_parse_cidr(c, e, path, &cidr) && !policy_netset_add(c, set, &cap, &cidr, 1))
			return false;
	}
	return true;
}

static void
policy_release_netset(const struct field *f, void *base)
{
	struct ig_netset *set = ig_cfg_at(base, f->off);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

/* policy.networks: NAME: [CIDR, ...], each list non-empty. */
static bool
policy_store_networks(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_policy_conf *p = base;
	char sb[CFG_SHOW_MAX], npath[CFG_KEYPATH_MAX];
	(void)f;
	if (!ig_cfg_policy_want_map(c, v, path, "network names"))
		return ig_cfg_node_is_null(v);
	if (v->n < 2)
		return true;
	p->networks = calloc(v->n / 2, sizeof(*p->networks));
	if (p->networks == NULL) {
		ig_cfg_nomem(c);
		return false;
	}
	p->nnetworks = v->n / 2;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct cnode *k = v->items[i], *e = v->items[i + 1];
		struct ig_network *net = &p->networks[i / 2];
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", ig_cfg_kind_str(k));
			continue;
		}
		ig_cfg_set_pos(&net->line, &net->col, k);
		const struct cnode *first = ig_cfg_map_earlier(v, i);
		if (first != NULL) {
			config_error(c, k->mark, "duplicate network '%s' in '%s' (first at %zu:%zu)",
			    ig_cfg_show(k->str, k->len, sb), path, first->mark.line + 1,
			    first->mark.column + 1);
			continue;
		}
		if (!ig_cfg_policy_valid_name(c, k, path, true))
			continue;
		net->name = strdup(k->str);
		if (net->name == NULL) {
			ig_cfg_nomem(c);
			return false;
		}
		if (snprintf(npath, sizeof(npath), "%s.%s", path, net->name) < 0)
			npath[0] = '\0';
		if (e->kind == CN_BAD || !ig_cfg_policy_want_seq(c, e, npath))
			continue;
		if (e->n == 0) {
			config_error(c, e->mark, "'%s' needs at least one entry", npath);
			continue;
		}
		net->set.v = calloc(e->n, sizeof(*net->set.v));
		if (net->set.v == NULL) {
			ig_cfg_nomem(c);
			return false;
		}
		for (size_t j = 0; j < e->n; j++) {
			const struct cnode *a = e->items[j];
			char epath[CFG_KEYPATH_MAX];
			if (snprintf(epath, sizeof(epath), "%s[%zu]", npath, j) < 0)
				epath[0] = '\0';
			if (a->kind == CN_BAD || !ig_cfg_scalar_ok(c, a, epath))
				continue;
			if (policy_parse_cidr(c, a, npath, &net->set.v[net->set.n]))
				net->set.n++;
		}
	}
	return true;
}

static void
policy_release_networks(const struct field *f, void *base)
{
	struct ig_policy_conf *p = base;
	(void)f;
	for (size_t i = 0; i < p->nnetworks; i++) {
		free(p->networks[i].name);
		free(p->networks[i].set.v);
	}
	free(p->networks);
	p->networks = NULL;
	p->nnetworks = 0;
}

const struct custom_ops ig_cfg_mode_ops = { NULL, policy_store_mode, NULL };
const struct custom_ops ig_cfg_mechs_ops = { policy_init_mechs, policy_store_mechs, NULL };
const struct custom_ops ig_cfg_netset_ops = { NULL, policy_store_netset, policy_release_netset };
const struct custom_ops ig_cfg_networks_ops = {
	NULL, policy_store_networks, policy_release_networks
};
