/*
 * The policy decision engine: layers the user entry, the first matching
 * group and the defaults key by key, runs the checks in their fixed order
 * and says which rule decided and why. Pure: no I/O (except the explanation
 * written to the caller's FILE), no clock, no globals, no allocation.
 *
 * One evaluation (policy_eval) serves ig_policy_decide, ig_policy_possible
 * and ig_policy_explain, so the explanation can never disagree with the
 * decision.
 */
#include "policy/decide.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/cidr.h"

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
#undef CASE

/* The layered keys, in the order the explanation lists them. */
enum policy_key {
	PK_DENY,
	PK_ALLOW_FROM,
	PK_REQUIRE_TLS,
	PK_ALLOW_PLAINTEXT_FROM,
	PK_LOGIN_COMMAND,
	PK_MECHANISMS,
	PK_COUNT
};

static const unsigned policy_key_bit[PK_COUNT] = {
	[PK_DENY] = IG_RK_DENY,
	[PK_ALLOW_FROM] = IG_RK_ALLOW_FROM,
	[PK_REQUIRE_TLS] = IG_RK_REQUIRE_TLS,
	[PK_ALLOW_PLAINTEXT_FROM] = IG_RK_ALLOW_PLAINTEXT_FROM,
	[PK_LOGIN_COMMAND] = IG_RK_LOGIN_COMMAND,
	[PK_MECHANISMS] = IG_RK_MECHANISMS,
};

static const char *const policy_key_name[PK_COUNT] = {
	[PK_DENY] = "deny",
	[PK_ALLOW_FROM] = "allow_from",
	[PK_REQUIRE_TLS] = "require_tls",
	[PK_ALLOW_PLAINTEXT_FROM] = "allow_plaintext_from",
	[PK_LOGIN_COMMAND] = "login_command",
	[PK_MECHANISMS] = "mechanisms",
};

/* Effective settings for one user (or one candidate) and where each came from. */
struct policy_eff {
	const struct ig_rule *src[PK_COUNT];   /* layer providing the key */
	bool builtin[PK_COUNT];                /* defaults silent: built-in value */
	bool deny;
	bool require_tls;
	bool login_command;
	uint32_t mechanisms;
	const struct ig_netset *allow_from;    /* NULL: no restriction */
	const struct ig_netset *allow_plaintext_from; /* NULL: no restriction */
};

/* The checks, in the order they run. */
enum policy_check_id {
	PC_DENY,
	PC_ALLOW_FROM,
	PC_TLS,
	PC_METHOD,     /* the LOGIN command or the SASL mechanism */
	PC_COUNT
};

/* Why a check passed or failed (the explanation turns it into words). */
enum policy_why {
	PW_NOT_RUN,
	PW_DENY_FALSE,
	PW_DENY_TRUE,
	PW_FROM_ANY,
	PW_FROM_IN,
	PW_FROM_OUT,
	PW_FROM_EMPTY,
	PW_TLS_ACTIVE,
	PW_TLS_REQUIRED,
	PW_PLAIN_ANY,
	PW_PLAIN_IN,
	PW_PLAIN_OUT,
	PW_LOGIN_ON,
	PW_LOGIN_OFF,
	PW_MECH_ON,
	PW_MECH_OFF,
	PW_COUNT
};

struct policy_check {
	bool fail;
	bool monitored;               /* a failure here is not enforced */
	enum policy_why why;
	const struct ig_rule *rule;   /* the rule whose key decided the check */
	const char *code;             /* failures only */
	const char *reason;
	const char *text;
};

/* One evaluation: the checks and the one that decides. */
struct policy_run {
	struct policy_check c[PC_COUNT];
	int enforced;                 /* first failing enforced check, or -1 */
	int monitored;                /* first failing monitored check, or -1 */
};

static bool
policy_rule_monitored(const struct ig_policy_conf *p, const struct ig_rule *r)
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
static const char *
policy_group_match(const struct ig_policy_conf *p, const struct ig_rule *g, const char *user)
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
		const char *pat = policy_group_match(p, &p->groups[i], user);
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
static void
policy_layer(const struct ig_policy_conf *p, const struct ig_rule *user,
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
static void
policy_run(const struct ig_policy_conf *p, const struct policy_eff *e,
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
		c->monitored = policy_rule_monitored(p, c->rule);
		if (c->monitored && run->monitored < 0)
			run->monitored = i;
		if (!c->monitored && run->enforced < 0)
			run->enforced = i;
	}
}

static void
policy_rule_name(const struct ig_policy_conf *p, const struct ig_rule *r, char *out,
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
	policy_rule_name(p, rule, out->rule_name, sizeof(out->rule_name));
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
	policy_rule_name(p, c->rule, out->rule_name, sizeof(out->rule_name));
}

/* The decision of a finished run; allow_rule is reported on success. */
static void
policy_conclude(const struct ig_policy_conf *p, const struct policy_run *run,
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
		if (c[i].fail && !(honor_monitor && policy_rule_monitored(p, c[i].rule)))
			return 0;
	policy_check_method(e, true, IG_MECH_COUNT, &c[PC_METHOD]);
	*login_ok = !c[PC_METHOD].fail ||
	    (honor_monitor && policy_rule_monitored(p, c[PC_METHOD].rule));
	uint32_t mechs = 0;
	for (unsigned m = 0; m < IG_MECH_COUNT; m++) {
		policy_check_method(e, false, (enum ig_sasl_mech)m, &c[PC_METHOD]);
		if (!c[PC_METHOD].fail ||
		    (honor_monitor && policy_rule_monitored(p, c[PC_METHOD].rule)))
			mechs |= IG_MECH_BIT(m);
	}
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
		policy_layer(p, u, g, &e);
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

/* How an attempt by a not-yet-known user is judged (see decide.h). */
enum policy_unknown {
	PU_ALLOW,          /* the defaults alone allow it */
	PU_SOME_RULE,      /* refused by the defaults, allowed by another rule */
	PU_MONITOR,        /* would be refused everywhere; the refusal is monitored */
	PU_MONITORED_RULE, /* allowed only by a rule in monitor mode */
	PU_DENY,           /* no rule could allow it */
};

static enum policy_unknown
policy_unknown(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    struct policy_run *run, struct ig_decision *out)
{
	struct policy_eff e;
	policy_layer(p, NULL, NULL, &e);
	policy_run(p, &e, f, run);
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
	if (f->user == NULL) {
		policy_unknown(p, f, &run, out);
		return out->verdict;
	}
	const struct ig_rule *u, *g;
	struct policy_eff e;
	ig_policy_rules_for(p, f->user, &u, &g);
	policy_layer(p, u, g, &e);
	policy_run(p, &e, f, &run);
	policy_conclude(p, &run, u != NULL ? u : g != NULL ? g : &p->defaults, out);
	return out->verdict;
}

/* The explanation. */

static void
policy_addr_str(const struct sockaddr *sa, char *out, size_t outsz)
{
	const void *a = NULL;
	if (sa != NULL && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)outsz) == NULL)
		snprintf(out, outsz, "?");
}

static void
policy_where(FILE *out, const char *config_path, const struct ig_rule *r)
{
	if (r->line == 0)
		fprintf(out, "(built-in)");
	else if (config_path != NULL)
		fprintf(out, "(%s:%u)", config_path, r->line);
	else
		fprintf(out, "(line %u)", r->line);
}

static const char *
policy_mode_str(const struct ig_policy_conf *p, const struct ig_rule *r)
{
	return policy_rule_monitored(p, r) ? "monitor" : "enforce";
}

static void
policy_print_netset(FILE *out, const struct ig_netset *set)
{
	if (set == NULL) {
		fprintf(out, "%-24s", "-");
		return;
	}
	if (set->n == 0) {
		fprintf(out, "%-24s", "[] (nowhere)");
		return;
	}
	char buf[512];
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < set->n && len < sizeof(buf); i++) {
		char c[64];
		ig_cidr_format(&set->v[i], c, sizeof(c));
		int n = snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "," : "", c);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	fprintf(out, "%-24s", buf);
}

static void
policy_print_mechs(FILE *out, uint32_t mechs)
{
	char buf[256];
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned m = 0; m < IG_MECH_COUNT; m++) {
		if ((mechs & IG_MECH_BIT(m)) == 0)
			continue;
		int n = snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "",
		    ig_sasl_mech_str((enum ig_sasl_mech)m));
		if (n < 0 || (size_t)n >= sizeof(buf) - len)
			break;
		len += (size_t)n;
	}
	fprintf(out, "%-24s", len ? buf : "[] (none)");
}

static void
policy_print_settings(FILE *out, const struct ig_policy_conf *p, const struct policy_eff *e)
{
	fprintf(out, "effective settings:\n");
	for (int k = 0; k < PK_COUNT; k++) {
		char rn[300];
		fprintf(out, "  %-21s ", policy_key_name[k]);
		switch ((enum policy_key)k) {
		case PK_DENY:
			fprintf(out, "%-24s", e->deny ? "true" : "false");
			break;
		case PK_ALLOW_FROM:
			policy_print_netset(out, e->allow_from);
			break;
		case PK_REQUIRE_TLS:
			fprintf(out, "%-24s", e->require_tls ? "true" : "false");
			break;
		case PK_ALLOW_PLAINTEXT_FROM:
			policy_print_netset(out, e->allow_plaintext_from);
			break;
		case PK_LOGIN_COMMAND:
			fprintf(out, "%-24s", e->login_command ? "true" : "false");
			break;
		case PK_MECHANISMS:
			policy_print_mechs(out, e->mechanisms);
			break;
		case PK_COUNT:
			break;
		}
		policy_rule_name(p, e->src[k], rn, sizeof(rn));
		fprintf(out, " from %s%s\n", rn, e->builtin[k] ? " (built-in)" : "");
	}
}

static const char *const policy_check_name[PC_COUNT] = {
	[PC_DENY] = "deny",
	[PC_ALLOW_FROM] = "allow_from",
	[PC_TLS] = "tls",
	[PC_METHOD] = "method",
};

static void
policy_print_why(FILE *out, const struct policy_check *c, const struct ig_login_facts *f,
    const char *addr)
{
	const char *mech = ig_sasl_mech_str(f->mech);
	switch (c->why) {
	case PW_NOT_RUN:
		fprintf(out, "not run");
		break;
	case PW_DENY_FALSE:
		fprintf(out, "pass");
		break;
	case PW_DENY_TRUE:
		fprintf(out, "FAIL deny is true");
		break;
	case PW_FROM_ANY:
		fprintf(out, "pass (no restriction)");
		break;
	case PW_FROM_IN:
		fprintf(out, "pass (%s is in allow_from)", addr);
		break;
	case PW_FROM_OUT:
		fprintf(out, "FAIL %s is not in allow_from", addr);
		break;
	case PW_FROM_EMPTY:
		fprintf(out, "FAIL allow_from is empty (logins from nowhere)");
		break;
	case PW_TLS_ACTIVE:
		fprintf(out, "pass (TLS is active)");
		break;
	case PW_TLS_REQUIRED:
		fprintf(out, "FAIL require_tls is true and TLS is not active");
		break;
	case PW_PLAIN_ANY:
		fprintf(out, "pass (require_tls is false: cleartext allowed from anywhere)");
		break;
	case PW_PLAIN_IN:
		fprintf(out, "pass (require_tls is false and %s is in allow_plaintext_from)", addr);
		break;
	case PW_PLAIN_OUT:
		fprintf(out, "FAIL TLS is not active and %s is not in allow_plaintext_from", addr);
		break;
	case PW_LOGIN_ON:
		fprintf(out, "pass (login_command is true)");
		break;
	case PW_LOGIN_OFF:
		fprintf(out, "FAIL login_command is false");
		break;
	case PW_MECH_ON:
		fprintf(out, "pass (%s is in mechanisms)", mech);
		break;
	case PW_MECH_OFF:
		fprintf(out, "FAIL %s is not in mechanisms", mech);
		break;
	case PW_COUNT:
		break;
	}
}

static void
policy_print_checks(FILE *out, const struct ig_policy_conf *p, const struct policy_run *run,
    const struct ig_login_facts *f, const char *addr)
{
	fprintf(out, "checks:\n");
	for (int i = 0; i < PC_COUNT; i++) {
		const struct policy_check *c = &run->c[i];
		const char *name = i != PC_METHOD ? policy_check_name[i] :
		    f->login_cmd ? "login_command" : "mechanism";
		fprintf(out, "  %s: ", name);
		policy_print_why(out, c, f, addr);
		if (c->fail) {
			char rn[300];
			policy_rule_name(p, c->rule, rn, sizeof(rn));
			fprintf(out, "  -> NO [%s] by %s", c->code, rn);
			if (c->monitored)
				fprintf(out, " (monitor mode: not enforced)");
		}
		fprintf(out, "\n");
		if (i == run->enforced && i + 1 < PC_COUNT) {
			fprintf(out, "  (later checks not needed)\n");
			break;
		}
	}
}

static void
policy_print_verdict(FILE *out, const struct ig_decision *d)
{
	if (d->verdict == IG_VERDICT_ALLOW && d->would_deny)
		fprintf(out, "verdict: would deny (monitor mode), allowed (reason %s, rule %s, "
		    "would answer NO [%s] %s)\n", d->reason, d->rule_name,
		    d->code != NULL ? d->code : "", d->text);
	else if (d->verdict == IG_VERDICT_ALLOW)
		fprintf(out, "verdict: allow (reason %s, rule %s)\n", d->reason, d->rule_name);
	else
		fprintf(out, "verdict: %s (reason %s, rule %s, answer NO [%s] %s)\n",
		    ig_verdict_str(d->verdict), d->reason, d->rule_name,
		    d->code != NULL ? d->code : "", d->text);
}

enum ig_verdict
ig_policy_explain(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    const char *config_path, FILE *out)
{
	char addr[INET6_ADDRSTRLEN];
	policy_addr_str(f->addr, addr, sizeof(addr));
	struct ig_decision d;
	struct policy_run run;

	fprintf(out, "user %s from %s on listener %s, TLS %s, command %s%s\n",
	    f->user != NULL ? f->user : "(not known yet)", addr,
	    f->listener != NULL ? f->listener : "?", f->tls ? "yes" : "no",
	    f->login_cmd ? "LOGIN" : "AUTHENTICATE ",
	    f->login_cmd ? "" : ig_sasl_mech_str(f->mech));
	if (p->monitor)
		fprintf(out, "policy mode: monitor (no refusal is enforced)\n");

	if (f->user == NULL) {
		struct policy_eff e;
		policy_layer(p, NULL, NULL, &e);
		fprintf(out, "rules considered:\n  defaults ");
		policy_where(out, config_path, &p->defaults);
		fprintf(out, ", mode %s: the user is not known yet, so only what no rule "
		    "could allow is refused\n", policy_mode_str(p, &p->defaults));
		policy_print_settings(out, p, &e);
		enum policy_unknown pu = policy_unknown(p, f, &run, &d);
		policy_print_checks(out, p, &run, f, addr);
		switch (pu) {
		case PU_ALLOW:
			break;
		case PU_SOME_RULE:
			fprintf(out, "other rules: some group or user entry could allow this "
			    "attempt; decided again when the user is known\n");
			break;
		case PU_MONITOR:
			fprintf(out, "other rules: none could allow this attempt\n");
			break;
		case PU_MONITORED_RULE:
			fprintf(out, "other rules: only a rule in monitor mode could allow "
			    "this attempt; decided again when the user is known\n");
			break;
		case PU_DENY:
			fprintf(out, "other rules: none could allow this attempt\n");
			break;
		}
		policy_print_verdict(out, &d);
		return d.verdict;
	}

	const struct ig_rule *u, *g;
	ig_policy_rules_for(p, f->user, &u, &g);
	fprintf(out, "rules considered:\n");
	if (u != NULL) {
		fprintf(out, "  user %s ", u->name);
		policy_where(out, config_path, u);
		fprintf(out, ": matches, mode %s\n", policy_mode_str(p, u));
	} else {
		fprintf(out, "  user %s: no user entry\n", f->user);
	}
	for (size_t i = 0; i < p->ngroups; i++) {
		const struct ig_rule *gi = &p->groups[i];
		const char *pat = policy_group_match(p, gi, f->user);
		fprintf(out, "  group %s ", gi->name != NULL ? gi->name : "?");
		policy_where(out, config_path, gi);
		if (pat == NULL)
			fprintf(out, ": no pattern matches\n");
		else if (gi == g)
			fprintf(out, ": matches (pattern %s), mode %s\n", pat,
			    policy_mode_str(p, gi));
		else
			fprintf(out, ": matches (pattern %s) but an earlier group wins\n", pat);
	}
	fprintf(out, "  defaults ");
	policy_where(out, config_path, &p->defaults);
	fprintf(out, ", mode %s\n", policy_mode_str(p, &p->defaults));

	struct policy_eff e;
	policy_layer(p, u, g, &e);
	policy_print_settings(out, p, &e);
	policy_run(p, &e, f, &run);
	policy_print_checks(out, p, &run, f, addr);
	policy_conclude(p, &run, u != NULL ? u : g != NULL ? g : &p->defaults, &d);
	policy_print_verdict(out, &d);
	return d.verdict;
}
