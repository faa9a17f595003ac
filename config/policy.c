/*
 * The policy section: its table and the rules (defaults, groups, user
 * entries) with their cross-key checks and shadowing warnings. Users are
 * matched to rules with the decision's own functions (policy/decide.h), so
 * a warning never disagrees with a decision. The values inside rules
 * (network lists, mechanisms, mode) are policy_values.c.
 */
#include "config/schema.h"

#include <stdlib.h>
#include <string.h>

#include "config/policy_values.h"
#include "policy/decide.h"
#include "util/err.h"
#include "util/sasl.h"

_Static_assert(sizeof(enum ig_credentials) == sizeof(int), "enums are stored as int");

static const struct enum_name credentials_names[] = {
	{ "password", IG_CRED_PASSWORD }, { "app_passwords", IG_CRED_APP_PASSWORDS },
	{ "both", IG_CRED_BOTH }, { NULL, 0 },
};

/* Built-in values of policy.defaults; the rule's name is not allocated. */
static char policy_defaults_name[] = "defaults";

/*
 * A user name as the backend sees it (ig_user_normalize: no NUL, CR, LF, at
 * most IG_USER_MAX bytes), folded when fold. Writes out; false after
 * reporting.
 */
static bool
policy_user_name(struct cfgctx *c, const struct cnode *v, const char *path, bool fold,
    char out[static IG_USER_MAX + 1])
{
	char sb[CFG_SHOW_MAX];
	int rc = ig_user_normalize((const uint8_t *)v->str, v->len, fold, out, IG_USER_MAX + 1);
	if (rc == IG_ETOOLONG)
		config_error(c, v->mark, "user name '%s' in '%s' is longer than %d bytes",
		    ig_cfg_show(v->str, v->len, sb), path, IG_USER_MAX);
	else if (rc != 0)
		config_error(c, v->mark, "invalid user name '%s' in '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path,
		    v->len == 0 ? "empty" : "it contains NUL, CR or LF");
	return rc == 0;
}

static bool
policy_is_domain_pattern(const char *pat)
{
	return pat[0] == '*' && pat[1] == '@';
}

/* A group's users: exact names or "*@domain" (the domain lower-cased). */
static bool
policy_store_patterns(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_rule *r = base;
	char sb[CFG_SHOW_MAX], epath[CFG_KEYPATH_MAX], norm[IG_USER_MAX + 1];
	(void)f;
	if (!ig_cfg_policy_want_seq(c, v, path))
		return false;
	if (v->n == 0) {
		config_error(c, v->mark, "'%s' needs at least one entry", path);
		return false;
	}
	r->users = calloc(v->n, sizeof(*r->users));
	if (r->users == NULL) {
		ig_cfg_nomem(c);
		return false;
	}
	r->nusers = v->n;
	for (size_t i = 0; i < v->n; i++) {
		const struct cnode *e = v->items[i];
		if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
			epath[0] = '\0';
		if (e->kind == CN_BAD || !ig_cfg_scalar_ok(c, e, epath))
			continue;
		if (!policy_user_name(c, e, path, false, norm))
			continue;
		const char *star = strchr(norm, '*');
		if (star != NULL) {
			if (strcmp(norm, "*") == 0) {
				config_error(c, e->mark, "invalid user pattern '*' in '%s': it would match "
				    "every user; put those settings in policy.defaults", path);
				continue;
			}
			if (!policy_is_domain_pattern(norm) || norm[2] == '\0' ||
			    strpbrk(norm + 2, "*@") != NULL) {
				config_error(c, e->mark, "invalid user pattern '%s' in '%s': use an exact "
				    "name or *@domain", ig_cfg_show(e->str, e->len, sb), path);
				continue;
			}
		}
		/* The domain is always compared without case; an exact name is
		 * folded like the names it is matched against. */
		bool fold_all = star == NULL && c->policy->fold_case;
		for (char *q = star != NULL ? norm + 2 : norm; *q; q++)
			if ((star != NULL || fold_all) && *q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		for (size_t j = 0; j < i; j++) {
			if (r->users[j] != NULL && strcmp(r->users[j], norm) == 0) {
				config_warn(c, e->mark, "'%s' is listed twice in '%s' (first at %zu:%zu)",
				    ig_cfg_show(norm, strlen(norm), sb), path,
				    v->items[j]->mark.line + 1, v->items[j]->mark.column + 1);
				break;
			}
		}
		r->users[i] = strdup(norm);
		if (r->users[i] == NULL) {
			ig_cfg_nomem(c);
			return false;
		}
	}
	return true;
}

static void
policy_release_patterns(const struct field *f, void *base)
{
	struct ig_rule *r = base;
	(void)f;
	for (size_t i = 0; i < r->nusers; i++)
		free(r->users[i]);
	free(r->users);
	r->users = NULL;
	r->nusers = 0;
}

/*
 * Cross-key rules of one rule (defaults, group or user entry), run after its
 * keys were read. Values a rule does not set are those the engine would use,
 * found by the engine's own functions (policy/decide.h): a user entry's come
 * from its first matching group (groups are read before user entries), else
 * from policy.defaults (read before both).
 */
static void
policy_check_rule(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_rule *r = base;
	const struct ig_policy_conf *p = c->policy;
	const struct ig_rule *g = r->kind == IG_RULE_USER ?
	    ig_policy_group_for(p, r->name, NULL) : NULL;
	const struct cnode *k;
	char sb[CFG_SHOW_MAX];
	(void)path;

	if (r->kind == IG_RULE_DEFAULTS && !r->require_tls)
		config_warn(c, ig_cfg_node_or(map, "require_tls")->mark,
		    "policy.defaults.require_tls is false: passwords may be sent before STARTTLS");

	/* In the defaults, n == 0 is "no restriction": "[]" would silently
	 * mean the opposite of what it says. */
	bool empty_apf = false;
	if (r->kind == IG_RULE_DEFAULTS) {
		static const char *const lists[] = { "allow_plaintext_from", "allow_from" };
		for (size_t i = 0; i < NFIELDS(lists); i++) {
			k = ig_cfg_map_key(map, lists[i]);
			const struct cnode *lv = ig_cfg_map_get(map, lists[i]);
			if (k == NULL || lv->kind != CN_SEQ || lv->n != 0)
				continue;
			config_error(c, k->mark, "%s: [] is not allowed in policy.defaults (there "
			    "an empty list means no restriction); remove the key, or use deny: true "
			    "to refuse everyone", lists[i]);
			empty_apf |= i == 0;
		}
	}

	const struct ig_rule *tls = ig_policy_key_source(p, r, g, IG_RK_REQUIRE_TLS);
	if (!empty_apf && (r->set & IG_RK_ALLOW_PLAINTEXT_FROM) && tls->require_tls &&
	    (k = ig_cfg_map_key(map, "allow_plaintext_from")) != NULL) {
		if (tls == r)
			config_error(c, k->mark,
			    "allow_plaintext_from has no effect while require_tls is true");
		else if (tls == g)
			config_error(c, k->mark,
			    "allow_plaintext_from has no effect while require_tls is true "
			    "(from group '%s'; add require_tls: false here)",
			    ig_cfg_show(g->name, strlen(g->name), sb));
		else
			config_error(c, k->mark,
			    "allow_plaintext_from has no effect while require_tls is true "
			    "(from policy.defaults; add require_tls: false here)");
	}

	bool deny = ig_policy_key_source(p, r, g, IG_RK_DENY)->deny;
	/* Nothing overrides a user entry, so its other keys are dead; a mode
	 * still matters (deny + monitor: report the account, do not block). */
	if (r->kind == IG_RULE_USER && r->deny) {
		static const char *const dead[] = {
			"require_tls", "mechanisms", "login_command", "allow_plaintext_from",
			"allow_from", "credentials",
		};
		for (size_t i = 0; i + 1 < map->n; i += 2) {
			k = map->items[i];
			for (size_t j = 0; k->kind == CN_SCALAR && j < NFIELDS(dead); j++)
				if (strcmp(k->str, dead[j]) == 0)
					config_warn(c, k->mark, "'%s' has no effect: this entry has "
					    "deny: true", dead[j]);
		}
	}
	if (deny)
		return;
	if ((r->set & (IG_RK_LOGIN_COMMAND | IG_RK_MECHANISMS)) &&
	    !ig_policy_key_source(p, r, g, IG_RK_LOGIN_COMMAND)->login_command &&
	    ig_policy_key_source(p, r, g, IG_RK_MECHANISMS)->mechanisms == 0) {
		k = ig_cfg_map_key(map, (r->set & IG_RK_MECHANISMS) ? "mechanisms" : "login_command");
		if (k != NULL)
			config_warn(c, k->mark, "nobody can log in under this rule (no LOGIN command, "
			    "no mechanism); use deny: true");
	}
	const struct cnode *af = ig_cfg_map_get(map, "allow_from");
	if (r->kind != IG_RULE_DEFAULTS && af != NULL && af->kind == CN_SEQ && af->n == 0 &&
	    (k = ig_cfg_map_key(map, "allow_from")) != NULL)
		config_warn(c, k->mark, "allow_from is empty: nobody can log in under this rule; "
		    "use deny: true");
}

static const struct section group_section;
static const struct section user_section;

/* The first group before groups[i] that matches every user pattern does
 * (as the decisions match: ig_policy_pattern_covers()), with the covering
 * pattern in *by_pattern; NULL when none (or no pattern). */
static const struct ig_rule *
policy_shadowed_by(const struct ig_policy_conf *p, size_t i, const char *pattern,
    const char **by_pattern)
{
	for (size_t gi = 0; pattern != NULL && gi < i; gi++) {
		const struct ig_rule *g = &p->groups[gi];
		for (size_t j = 0; j < g->nusers; j++) {
			if (ig_policy_pattern_covers(g->users[j], pattern, p->fold_case)) {
				*by_pattern = g->users[j];
				return g;
			}
		}
	}
	return NULL;
}

/* policy.groups: NAME: { users: [...], rule keys }, file order kept. */
static bool
policy_store_groups(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_policy_conf *p = base;
	char sb[CFG_SHOW_MAX], sb2[CFG_SHOW_MAX], gpath[CFG_KEYPATH_MAX];
	(void)f;
	if (!ig_cfg_policy_want_map(c, v, path, "group names"))
		return ig_cfg_node_is_null(v);
	if (v->n < 2)
		return true;
	p->groups = calloc(v->n / 2, sizeof(*p->groups));
	if (p->groups == NULL) {
		ig_cfg_nomem(c);
		return false;
	}
	p->ngroups = v->n / 2;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct cnode *k = v->items[i], *e = v->items[i + 1];
		struct ig_rule *r = &p->groups[i / 2];
		ig_cfg_apply_defaults(&group_section, r);
		r->kind = IG_RULE_GROUP;
		ig_cfg_set_pos(&r->line, &r->col, k);
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", ig_cfg_kind_str(k));
			continue;
		}
		const struct cnode *first = ig_cfg_map_earlier(v, i);
		if (first != NULL) {
			config_error(c, k->mark, "duplicate group '%s' in '%s' (first at %zu:%zu)",
			    ig_cfg_show(k->str, k->len, sb), path, first->mark.line + 1,
			    first->mark.column + 1);
			continue;
		}
		if (!ig_cfg_policy_valid_name(c, k, path, false))
			continue;
		r->name = strdup(k->str);
		if (r->name == NULL) {
			ig_cfg_nomem(c);
			return false;
		}
		if (snprintf(gpath, sizeof(gpath), "%s.%s", path, r->name) < 0)
			gpath[0] = '\0';
		if (e->kind == CN_BAD)
			continue;
		if (e->kind != CN_MAP) {
			config_error(c, e->mark, "'%s' must be a mapping, not %s", gpath,
			    ig_cfg_kind_str(e));
			continue;
		}
		ig_cfg_walk_map(c, e, &group_section, r, gpath);
		if (c->nomem)
			return false;
	}

	/* The first matching group wins: a pattern that an earlier group
	 * already covers never selects this one. */
	for (size_t i = 0; i < p->ngroups; i++) {
		const struct ig_rule *r = &p->groups[i];
		const struct cnode *seq = ig_cfg_map_get(v->items[2 * i + 1], "users");
		const char *q;
		size_t valid = 0, shadowed = 0;
		if (r->name == NULL || seq == NULL || seq->kind != CN_SEQ || seq->n != r->nusers)
			continue;
		for (size_t j = 0; j < r->nusers; j++) {
			valid += r->users[j] != NULL;
			shadowed += policy_shadowed_by(p, i, r->users[j], &q) != NULL;
		}
		if (shadowed > 0 && shadowed == valid) {
			config_warn(c, v->items[2 * i]->mark, "group '%s' never applies: every user it "
			    "lists is matched first by an earlier group", r->name);
			continue;
		}
		for (size_t j = 0; shadowed > 0 && j < r->nusers; j++) {
			const struct ig_rule *by = policy_shadowed_by(p, i, r->users[j], &q);
			if (by != NULL)
				config_warn(c, seq->items[j]->mark, "'%s' never selects group '%s': group "
				    "'%s' (at %u:%u) matches it first with '%s'",
				    ig_cfg_show(r->users[j], strlen(r->users[j]), sb), r->name, by->name,
				    by->line, by->col, ig_cfg_show(q, strlen(q), sb2));
		}
	}
	return true;
}

static void
policy_release_rules(struct ig_rule *v, size_t n, const struct section *sec)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		ig_cfg_free_section(sec, &v[i]);
	}
	free(v);
}

static void
policy_release_groups(const struct field *f, void *base)
{
	struct ig_policy_conf *p = base;
	(void)f;
	policy_release_rules(p->groups, p->ngroups, &group_section);
	p->groups = NULL;
	p->ngroups = 0;
}

struct policy_name_ref {
	const char *name;
	size_t i; /* index in policy.users */
};

static int
policy_name_ref_cmp(const void *a, const void *b)
{
	const struct policy_name_ref *x = a, *y = b;
	int d = strcmp(x->name, y->name);
	if (d != 0)
		return d;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* policy.users: exact NAME: { rule keys }; unique after folding. */
static bool
policy_store_users(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_policy_conf *p = base;
	char sb[CFG_SHOW_MAX], sb2[CFG_SHOW_MAX], upath[CFG_KEYPATH_MAX], norm[IG_USER_MAX + 1];
	(void)f;
	if (!ig_cfg_policy_want_map(c, v, path, "user names"))
		return ig_cfg_node_is_null(v);
	if (v->n < 2)
		return true;
	p->users = calloc(v->n / 2, sizeof(*p->users));
	if (p->users == NULL) {
		ig_cfg_nomem(c);
		return false;
	}
	p->nusers = v->n / 2;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct cnode *k = v->items[i], *e = v->items[i + 1];
		struct ig_rule *r = &p->users[i / 2];
		ig_cfg_apply_defaults(&user_section, r);
		r->kind = IG_RULE_USER;
		ig_cfg_set_pos(&r->line, &r->col, k);
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", ig_cfg_kind_str(k));
			continue;
		}
		if (!policy_user_name(c, k, path, p->fold_case, norm))
			continue;
		if (strchr(norm, '*') != NULL) {
			config_error(c, k->mark, "user entry '%s' in '%s' is a pattern: entries are "
			    "exact names; put patterns in a group's users",
			    ig_cfg_show(k->str, k->len, sb), path);
			continue;
		}
		r->name = strdup(norm);
		if (r->name == NULL) {
			ig_cfg_nomem(c);
			return false;
		}
		if (snprintf(upath, sizeof(upath), "%s.%s", path,
		    ig_cfg_show(r->name, strlen(r->name), sb)) < 0)
			upath[0] = '\0';
		if (e->kind == CN_BAD)
			continue;
		if (e->kind != CN_MAP) {
			config_error(c, e->mark, "'%s' must be a mapping, not %s", upath,
			    ig_cfg_kind_str(e));
			continue;
		}
		ig_cfg_walk_map(c, e, &user_section, r, upath);
		if (c->nomem)
			return false;
	}

	/* Duplicates after folding ("Alice@x" and "alice@x" are one account
	 * for the backend): sort, then compare neighbours. */
	struct policy_name_ref *refs = calloc(p->nusers, sizeof(*refs));
	size_t nrefs = 0;
	if (refs == NULL) {
		ig_cfg_nomem(c);
		return false;
	}
	for (size_t i = 0; i < p->nusers; i++)
		if (p->users[i].name != NULL)
			refs[nrefs++] = (struct policy_name_ref){ p->users[i].name, i };
	qsort(refs, nrefs, sizeof(*refs), policy_name_ref_cmp);
	for (size_t i = 1, first = 0; i < nrefs; i++) {
		if (strcmp(refs[i].name, refs[first].name) != 0) {
			first = i;
			continue;
		}
		const struct cnode *k = v->items[2 * refs[i].i];
		const struct cnode *fk = v->items[2 * refs[first].i];
		if (k->len == fk->len && memcmp(k->str, fk->str, k->len) == 0)
			config_error(c, k->mark, "duplicate user entry '%s' in '%s' (first at %zu:%zu)",
			    ig_cfg_show(k->str, k->len, sb), path, fk->mark.line + 1,
			    fk->mark.column + 1);
		else
			config_error(c, k->mark, "duplicate user entry '%s' in '%s': the same user as "
			    "'%s' at %zu:%zu once folded to lower case (fold_case)",
			    ig_cfg_show(k->str, k->len, sb), path, ig_cfg_show(fk->str, fk->len, sb2),
			    fk->mark.line + 1, fk->mark.column + 1);
	}
	free(refs);
	return true;
}

static void
policy_release_users(const struct field *f, void *base)
{
	struct ig_policy_conf *p = base;
	(void)f;
	policy_release_rules(p->users, p->nusers, &user_section);
	p->users = NULL;
	p->nusers = 0;
}

/* After the whole file: the defaults carry every key, and their place. */
void
ig_cfg_policy_finish(const struct cnode *root, struct ig_policy_conf *p)
{
	const struct cnode *k = ig_cfg_map_key(ig_cfg_map_get(root, "policy"), "defaults");
	p->defaults.kind = IG_RULE_DEFAULTS;
	p->defaults.name = policy_defaults_name;
	p->defaults.set = IG_RK_ALL;
	if (k != NULL)
		ig_cfg_set_pos(&p->defaults.line, &p->defaults.col, k);
	p->require_tls = p->defaults.require_tls;
}

static const struct custom_ops patterns_ops = {
	NULL, policy_store_patterns, policy_release_patterns
};
static const struct custom_ops groups_ops = { NULL, policy_store_groups, policy_release_groups };
static const struct custom_ops users_ops = { NULL, policy_store_users, policy_release_users };

#define F_RULE(k, t, m, d, o, b) \
	{ .key = k, .type = t, .off = offsetof(struct ig_rule, m), .def = d, .ops = o, .bit = b }
/* The keys of a rule: in policy.defaults, each group and each user entry.
 * The defaults are the built-in ones of policy.defaults. */
#define RULE_FIELDS \
	F_RULE("require_tls", FT_BOOL, require_tls, true, NULL, IG_RK_REQUIRE_TLS), \
	F_RULE("mechanisms", FT_CUSTOM, mechanisms, IG_MECH_ALL, &ig_cfg_mechs_ops, IG_RK_MECHANISMS), \
	F_RULE("login_command", FT_BOOL, login_command, true, NULL, IG_RK_LOGIN_COMMAND), \
	F_RULE("allow_plaintext_from", FT_CUSTOM, allow_plaintext_from, 0, &ig_cfg_netset_ops, \
	    IG_RK_ALLOW_PLAINTEXT_FROM), \
	F_RULE("allow_from", FT_CUSTOM, allow_from, 0, &ig_cfg_netset_ops, IG_RK_ALLOW_FROM), \
	F_RULE("deny", FT_BOOL, deny, false, NULL, IG_RK_DENY), \
	F_RULE("mode", FT_CUSTOM, monitor, false, &ig_cfg_mode_ops, IG_RK_MODE), \
	{ .key = "credentials", .type = FT_ENUM, .off = offsetof(struct ig_rule, credentials), \
	  .def = IG_CRED_PASSWORD, .names = credentials_names, .bit = IG_RK_CREDENTIALS }

static const struct field rule_fields[] = { RULE_FIELDS };
static const struct field group_fields[] = {
	{ .key = "users", .type = FT_CUSTOM, .required = true, .ops = &patterns_ops },
	RULE_FIELDS,
};
static const struct section defaults_section = {
	rule_fields, NFIELDS(rule_fields), policy_check_rule, true, NULL
};
static const struct section group_section = {
	group_fields, NFIELDS(group_fields), policy_check_rule, true, NULL
};
static const struct section user_section = {
	rule_fields, NFIELDS(rule_fields), policy_check_rule, true, NULL
};

/*
 * Names are resolved while reading, so the keys that others refer to are
 * read first whatever their place in the file: fold_case and networks, then
 * the defaults, then the groups (a user entry inherits from its group).
 */
static const struct field policy_fields[] = {
	{ .key = "mode", .type = FT_CUSTOM, .off = offsetof(struct ig_policy_conf, monitor),
	  .ops = &ig_cfg_mode_ops },
	{ .key = "fold_case", .type = FT_BOOL, .off = offsetof(struct ig_policy_conf, fold_case),
	  .def = true, .early = 3 },
	{ .key = "networks", .type = FT_CUSTOM, .ops = &ig_cfg_networks_ops, .early = 3 },
	{ .key = "defaults", .type = FT_SECTION, .off = offsetof(struct ig_policy_conf, defaults),
	  .sub = &defaults_section, .early = 2 },
	{ .key = "groups", .type = FT_CUSTOM, .ops = &groups_ops, .early = 1 },
	{ .key = "users", .type = FT_CUSTOM, .ops = &users_ops },
};
const struct section ig_cfg_policy_section = {
	policy_fields, NFIELDS(policy_fields), NULL, false, NULL
};
