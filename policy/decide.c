/*
 * The policy decision engine: layers the user entry, the first matching
 * group and the defaults key by key, runs the checks in their fixed order
 * and says which rule decided and why. Pure: no I/O, no clock, no globals,
 * no allocation.
 *
 * One evaluation (ig_policy_layer, ig_policy_evaluate, in
 * policy/decide_internal.h) serves ig_policy_decide, ig_policy_possible and
 * ig_policy_explain (policy/explain.c), so the explanation can never
 * disagree with the decision.
 */
#include "policy/decide.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/cidr.h"
#include "policy/decide_internal.h"

#define CASE(x, s) case x: return s
const char *
ig_verdict_str(enum ig_verdict v)
{
	switch (v) {
	CASE(IG_VERDICT_ALLOW, "allow");
	CASE(IG_VERDICT_DENY, "deny");
	CASE(IG_VERDICT_TEMPFAIL, "tempfail");
	case IG_VERDICT_COUNT:
		break;
	}
	return "?";
}

const char *
ig_credentials_str(enum ig_credentials c)
{
	switch (c) {
	CASE(IG_CRED_PASSWORD, "password");
	CASE(IG_CRED_APP_PASSWORDS, "app_passwords");
	CASE(IG_CRED_BOTH, "both");
	case IG_CRED_COUNT:
		break;
	}
	return "?";
}
#undef CASE

/* The IG_RK_* bit of each layered key. */
static const unsigned policy_key_bit[PK_COUNT] = {
	[PK_DENY] = IG_RK_DENY,
	[PK_ALLOW_FROM] = IG_RK_ALLOW_FROM,
	[PK_REQUIRE_TLS] = IG_RK_REQUIRE_TLS,
	[PK_ALLOW_PLAINTEXT_FROM] = IG_RK_ALLOW_PLAINTEXT_FROM,
	[PK_LOGIN_COMMAND] = IG_RK_LOGIN_COMMAND,
	[PK_MECHANISMS] = IG_RK_MECHANISMS,
	[PK_CREDENTIALS] = IG_RK_CREDENTIALS,
};

bool
ig_policy_rule_monitored(const struct ig_policy_conf *p, const struct ig_rule *r)
{
	if (p->monitor)
		return true;
	return r != NULL && (r->set & IG_RK_MODE) != 0 && r->monitor;
}

static bool
policy_addr_in(const struct ig_netset *set, const struct sockaddr *addr)
{
	return addr != NULL && ig_netset_contains(set, addr);
}

static bool
policy_is_domain_pattern(const char *pattern)
{
	return pattern[0] == '*' && pattern[1] == '@';
}

bool
ig_policy_pattern_match(const char *pattern, const char *user, bool fold_case)
{
	if (pattern == NULL || user == NULL)
		return false;
	if (policy_is_domain_pattern(pattern)) {
		const char *dom = pattern + 1;     /* "@domain" */
		size_t dl = strlen(dom), ul = strlen(user);
		if (dl < 2 || ul <= dl)           /* empty domain or local part */
			return false;
		return strcasecmp(user + (ul - dl), dom) == 0;
	}
	return fold_case ? strcasecmp(pattern, user) == 0 : strcmp(pattern, user) == 0;
}

bool
ig_policy_pattern_covers(const char *q, const char *p, bool fold_case)
{
	if (q == NULL || p == NULL)
		return false;
	/* "*@d" matches every name ending in "@d" after a non-empty local
	 * part: only the same domain pattern matches all of them. */
	if (policy_is_domain_pattern(p))
		return policy_is_domain_pattern(q) && strcasecmp(q + 2, p + 2) == 0;
	/* An exact name stands for itself (and its case variants when
	 * folding, which match q exactly when it does). */
	return ig_policy_pattern_match(q, p, fold_case);
}

/* The user entry for user (names compared like exact patterns). */
static const struct ig_rule *
policy_user_entry(const struct ig_policy_conf *p, const char *user)
{
	for (size_t i = 0; i < p->nusers; i++) {
		const char *n = p->users[i].name;
		if (n != NULL && (p->fold_case ? strcasecmp(n, user) == 0 : strcmp(n, user) == 0))
			return &p->users[i];
	}
	return NULL;
}

/* The pattern of group g matching user, or NULL. */
const char *
ig_policy_group_match(const struct ig_policy_conf *p, const struct ig_rule *g, const char *user)
{
	for (size_t j = 0; j < g->nusers; j++)
		if (ig_policy_pattern_match(g->users[j], user, p->fold_case))
			return g->users[j];
	return NULL;
}

const struct ig_rule *
ig_policy_group_for(const struct ig_policy_conf *p, const char *user, const char **pattern)
{
	for (size_t i = 0; user != NULL && i < p->ngroups; i++) {
		const char *pat = ig_policy_group_match(p, &p->groups[i], user);
		if (pat != NULL) {
			if (pattern != NULL)
				*pattern = pat;
			return &p->groups[i];
		}
	}
	return NULL;
}

void
ig_policy_rules_for(const struct ig_policy_conf *p, const char *user,
    const struct ig_rule **user_rule, const struct ig_rule **group_rule)
{
	*user_rule = user != NULL ? policy_user_entry(p, user) : NULL;
	*group_rule = ig_policy_group_for(p, user, NULL);
}

const struct ig_rule *
ig_policy_key_source(const struct ig_policy_conf *p, const struct ig_rule *user,
    const struct ig_rule *group, unsigned bit)
{
	if (user != NULL && (user->set & bit) != 0)
		return user;
	if (group != NULL && (group->set & bit) != 0)
		return group;
	return &p->defaults;
}

/* Layers user over group over the defaults, key by key. */
void
ig_policy_layer(const struct ig_policy_conf *p, const struct ig_rule *user,
    const struct ig_rule *group, struct policy_eff *e)
{
	const struct ig_rule *d = &p->defaults;
	memset(e, 0, sizeof(*e));
	for (int k = 0; k < PK_COUNT; k++) {
		unsigned bit = policy_key_bit[k];
		e->src[k] = ig_policy_key_source(p, user, group, bit);
		e->builtin[k] = e->src[k] == d && (d->set & bit) == 0;
	}
	/*
	 * Built-in values where even the defaults are silent (a loader that
	 * fills only policy.require_tls): no block, TLS as the policy says,
	 * every method, no address restriction.
	 */
	e->deny = e->builtin[PK_DENY] ? false : e->src[PK_DENY]->deny;
	e->require_tls = e->builtin[PK_REQUIRE_TLS] ? p->require_tls :
	    e->src[PK_REQUIRE_TLS]->require_tls;
	e->login_command = e->builtin[PK_LOGIN_COMMAND] ? true :
	    e->src[PK_LOGIN_COMMAND]->login_command;
	e->mechanisms = e->builtin[PK_MECHANISMS] ? IG_MECH_ALL :
	    e->src[PK_MECHANISMS]->mechanisms;
	e->credentials = e->builtin[PK_CREDENTIALS] ? IG_CRED_PASSWORD :
	    e->src[PK_CREDENTIALS]->credentials;
	/*
	 * Address sets: a user or group that sets one restricts to it, even
	 * when empty ("nowhere"). In the defaults an empty set is the built-in
	 * "no restriction", since the defaults always carry every key.
	 */
	const struct ig_rule *r = e->src[PK_ALLOW_FROM];
	if (!e->builtin[PK_ALLOW_FROM] && (r != d || r->allow_from.n > 0))
		e->allow_from = &r->allow_from;
	r = e->src[PK_ALLOW_PLAINTEXT_FROM];
	if (!e->builtin[PK_ALLOW_PLAINTEXT_FROM] && (r != d || r->allow_plaintext_from.n > 0))
		e->allow_plaintext_from = &r->allow_plaintext_from;
}

static void
policy_fail(struct policy_check *c, enum policy_why why, const struct ig_rule *rule,
    const char *code, const char *reason, const char *text)
{
	c->fail = true;
	c->why = why;
	c->rule = rule;
	c->code = code;
	c->reason = reason;
	c->text = text;
}

static void
policy_pass(struct policy_check *c, enum policy_why why, const struct ig_rule *rule)
{
	c->fail = false;
	c->why = why;
	c->rule = rule;
}

static const char policy_tls_text[] = "TLS is required: use STARTTLS or port 993 first";

/* Checks 1-3: they depend on the settings and the connection only. */
static void
policy_check_conn(const struct policy_eff *e, const struct ig_login_facts *f,
    struct policy_check c[PC_COUNT])
{
	if (e->deny)
		policy_fail(&c[PC_DENY], PW_DENY_TRUE, e->src[PK_DENY], "CONTACTADMIN",
		    "account-blocked", "Account blocked by the administrator");
	else
		policy_pass(&c[PC_DENY], PW_DENY_FALSE, e->src[PK_DENY]);

	/*
	 * Refused like a wrong password: an attacker elsewhere learns nothing
	 * about the account or the rule.
	 */
	if (e->allow_from == NULL)
		policy_pass(&c[PC_ALLOW_FROM], PW_FROM_ANY, e->src[PK_ALLOW_FROM]);
	else if (policy_addr_in(e->allow_from, f->addr))
		policy_pass(&c[PC_ALLOW_FROM], PW_FROM_IN, e->src[PK_ALLOW_FROM]);
	else
		policy_fail(&c[PC_ALLOW_FROM], e->allow_from->n == 0 ? PW_FROM_EMPTY :
		    PW_FROM_OUT, e->src[PK_ALLOW_FROM], "AUTHENTICATIONFAILED",
		    "address-not-allowed", "Authentication failed.");

	if (f->tls)
		policy_pass(&c[PC_TLS], PW_TLS_ACTIVE, e->src[PK_REQUIRE_TLS]);
	else if (e->require_tls)
		policy_fail(&c[PC_TLS], PW_TLS_REQUIRED, e->src[PK_REQUIRE_TLS],
		    "PRIVACYREQUIRED", "tls-required", policy_tls_text);
	else if (e->allow_plaintext_from == NULL)
		policy_pass(&c[PC_TLS], PW_PLAIN_ANY, e->src[PK_REQUIRE_TLS]);
	else if (policy_addr_in(e->allow_plaintext_from, f->addr))
		policy_pass(&c[PC_TLS], PW_PLAIN_IN, e->src[PK_ALLOW_PLAINTEXT_FROM]);
	else
		policy_fail(&c[PC_TLS], PW_PLAIN_OUT, e->src[PK_ALLOW_PLAINTEXT_FROM],
		    "PRIVACYREQUIRED", "plaintext-not-from-network", policy_tls_text);
}

/* Check 4 for one method: the LOGIN command, or SASL mechanism mech. */
static void
policy_check_method(const struct policy_eff *e, bool login_cmd, enum ig_sasl_mech mech,
    struct policy_check *c)
{
	if (login_cmd) {
		if (e->login_command)
			policy_pass(c, PW_LOGIN_ON, e->src[PK_LOGIN_COMMAND]);
		else
			policy_fail(c, PW_LOGIN_OFF, e->src[PK_LOGIN_COMMAND], "CONTACTADMIN",
			    "login-command-blocked", "The LOGIN command is disabled for this "
			    "account: use a token-based mechanism");
		return;
	}
	if ((unsigned)mech < (unsigned)IG_MECH_COUNT && (e->mechanisms & IG_MECH_BIT(mech)) != 0)
		policy_pass(c, PW_MECH_ON, e->src[PK_MECHANISMS]);
	else
		policy_fail(c, PW_MECH_OFF, e->src[PK_MECHANISMS], "CONTACTADMIN",
		    "mechanism-blocked", "Authentication mechanism not allowed for this account");
}

/*
 * Runs every check. A monitored failure does not stop the evaluation: a
 * later check refused by an enforcing rule still refuses (a rule in monitor
 * mode must not open what another rule closes).
 */
void
ig_policy_evaluate(const struct ig_policy_conf *p, const struct policy_eff *e,
    const struct ig_login_facts *f, struct policy_run *run)
{
	memset(run, 0, sizeof(*run));
	policy_check_conn(e, f, run->c);
	policy_check_method(e, f->login_cmd, f->mech, &run->c[PC_METHOD]);
	run->enforced = run->monitored = -1;
	for (int i = 0; i < PC_COUNT; i++) {
		struct policy_check *c = &run->c[i];
		if (!c->fail)
			continue;
		c->monitored = ig_policy_rule_monitored(p, c->rule);
		if (c->monitored && run->monitored < 0)
			run->monitored = i;
		if (!c->monitored && run->enforced < 0)
			run->enforced = i;
	}
}

void
ig_policy_rule_name(const struct ig_policy_conf *p, const struct ig_rule *r, char *out,
    size_t outsz)
{
	if (r == NULL)
		snprintf(out, outsz, "built-in");
	else if (r == &p->defaults || r->kind == IG_RULE_DEFAULTS)
		snprintf(out, outsz, "defaults");
	else
		snprintf(out, outsz, "%s:%s", r->kind == IG_RULE_GROUP ? "group" : "user",
		    r->name != NULL ? r->name : "?");
}

static void
policy_allow(const struct ig_policy_conf *p, const struct ig_rule *rule,
    struct ig_decision *out)
{
	memset(out, 0, sizeof(*out));
	out->verdict = IG_VERDICT_ALLOW;
	out->reason = "allowed";
	out->text = "";
	out->rule = rule;
	ig_policy_rule_name(p, rule, out->rule_name, sizeof(out->rule_name));
}

/* Fills out from a failed check; enforced says whether it is a refusal. */
static void
policy_refuse(const struct ig_policy_conf *p, const struct policy_check *c, bool enforced,
    struct ig_decision *out)
{
	memset(out, 0, sizeof(*out));
	out->verdict = enforced ? IG_VERDICT_DENY : IG_VERDICT_ALLOW;
	out->would_deny = !enforced;
	out->code = c->code;
	out->reason = c->reason;
	out->text = c->text;
	out->rule = c->rule;
	ig_policy_rule_name(p, c->rule, out->rule_name, sizeof(out->rule_name));
}

void
ig_policy_credentials(const struct ig_policy_conf *p, const struct policy_eff *e,
    struct ig_decision *out)
{
	const struct ig_rule *r = e->src[PK_CREDENTIALS];
	out->credentials = e->credentials;
	out->credentials_rule = r;
	out->credentials_monitored = ig_policy_rule_monitored(p, r);
	ig_policy_rule_name(p, r, out->credentials_rule_name, sizeof(out->credentials_rule_name));
}

/* The decision of a finished run; allow_rule is reported on success. */
void
ig_policy_conclude(const struct ig_policy_conf *p, const struct policy_run *run,
    const struct ig_rule *allow_rule, struct ig_decision *out)
{
	if (run->enforced >= 0)
		policy_refuse(p, &run->c[run->enforced], true, out);
	else if (run->monitored >= 0)
		policy_refuse(p, &run->c[run->monitored], false, out);
	else
		policy_allow(p, allow_rule, out);
}

/*
 * Candidate i of the settings some user could end up with: 0 is the
 * defaults alone, then each group on the defaults, then each user entry on
 * its first matching group (or the defaults).
 */
static size_t
policy_ncand(const struct ig_policy_conf *p)
{
	return 1 + p->ngroups + p->nusers;
}

static void
policy_cand(const struct ig_policy_conf *p, size_t i, const struct ig_rule **user,
    const struct ig_rule **group)
{
	*user = *group = NULL;
	if (i == 0)
		return;
	if (i - 1 < p->ngroups) {
		*group = &p->groups[i - 1];
		return;
	}
	*user = &p->users[i - 1 - p->ngroups];
	if ((*user)->name != NULL)
		*group = ig_policy_group_for(p, (*user)->name, NULL);
}

/*
 * What one candidate lets through on this connection. With honor_monitor,
 * a monitored failure counts as a pass.
 */
static uint32_t
policy_cand_possible(const struct ig_policy_conf *p, const struct policy_eff *e,
    const struct ig_login_facts *f, bool honor_monitor, bool *login_ok)
{
	struct policy_check c[PC_COUNT];
	memset(c, 0, sizeof(c));
	*login_ok = false;
	policy_check_conn(e, f, c);
	for (int i = 0; i < PC_METHOD; i++)
		if (c[i].fail && !(honor_monitor && ig_policy_rule_monitored(p, c[i].rule)))
			return 0;
	policy_check_method(e, true, IG_MECH_COUNT, &c[PC_METHOD]);
	*login_ok = !c[PC_METHOD].fail ||
	    (honor_monitor && ig_policy_rule_monitored(p, c[PC_METHOD].rule));
	uint32_t mechs = 0;
	for (unsigned m = 0; m < IG_MECH_COUNT; m++) {
		policy_check_method(e, false, (enum ig_sasl_mech)m, &c[PC_METHOD]);
		if (!c[PC_METHOD].fail ||
		    (honor_monitor && ig_policy_rule_monitored(p, c[PC_METHOD].rule)))
			mechs |= IG_MECH_BIT(m);
	}
	/* credentials: app_passwords (enforced): a challenge-response over the
	   account password can never log in, so it is not offered. */
	if (e->credentials == IG_CRED_APP_PASSWORDS &&
	    !(honor_monitor && ig_policy_rule_monitored(p, e->src[PK_CREDENTIALS])))
		mechs &= ~IG_MECH_CHALLENGE_RESPONSE;
	return mechs;
}

static uint32_t
policy_possible(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    bool honor_monitor, bool *login_ok)
{
	uint32_t mechs = 0;
	*login_ok = false;
	for (size_t i = 0; i < policy_ncand(p); i++) {
		const struct ig_rule *u, *g;
		struct policy_eff e;
		bool lok;
		policy_cand(p, i, &u, &g);
		ig_policy_layer(p, u, g, &e);
		mechs |= policy_cand_possible(p, &e, f, honor_monitor, &lok);
		*login_ok = *login_ok || lok;
	}
	return mechs;
}

uint32_t
ig_policy_possible(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    bool *login_ok)
{
	return policy_possible(p, f, true, login_ok);
}

static bool
policy_possible_has(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    bool honor_monitor)
{
	bool login_ok;
	uint32_t mechs = policy_possible(p, f, honor_monitor, &login_ok);
	if (f->login_cmd)
		return login_ok;
	return (unsigned)f->mech < (unsigned)IG_MECH_COUNT && (mechs & IG_MECH_BIT(f->mech)) != 0;
}

enum policy_unknown
ig_policy_unknown(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    struct policy_run *run, struct ig_decision *out)
{
	struct policy_eff e;
	ig_policy_layer(p, NULL, NULL, &e);
	ig_policy_evaluate(p, &e, f, run);
	/* The defaults alone: which of their checks fail, enforced or not. */
	int first = -1;
	for (int i = 0; i < PC_COUNT && first < 0; i++)
		if (run->c[i].fail)
			first = i;
	if (first < 0) {
		policy_allow(p, &p->defaults, out);
		return PU_ALLOW;
	}
	if (policy_possible_has(p, f, false)) {
		policy_allow(p, &p->defaults, out);
		return PU_SOME_RULE;
	}
	if (run->enforced < 0) {
		policy_refuse(p, &run->c[run->monitored], false, out);
		return PU_MONITOR;
	}
	if (policy_possible_has(p, f, true)) {
		policy_allow(p, &p->defaults, out);
		return PU_MONITORED_RULE;
	}
	policy_refuse(p, &run->c[run->enforced], true, out);
	return PU_DENY;
}

enum ig_verdict
ig_policy_decide(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    struct ig_decision *out)
{
	struct policy_run run;
	struct policy_eff e;
	if (f->user == NULL) {
		ig_policy_unknown(p, f, &run, out);
		ig_policy_layer(p, NULL, NULL, &e);
		ig_policy_credentials(p, &e, out);
		return out->verdict;
	}
	const struct ig_rule *u, *g;
	ig_policy_rules_for(p, f->user, &u, &g);
	ig_policy_layer(p, u, g, &e);
	ig_policy_evaluate(p, &e, f, &run);
	ig_policy_conclude(p, &run, u != NULL ? u : g != NULL ? g : &p->defaults, out);
	ig_policy_credentials(p, &e, out);
	return out->verdict;
}
