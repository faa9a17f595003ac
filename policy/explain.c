/*
 * The explanation behind `imapguard explain`: the rules considered, the
 * effective value of each key and the layer it came from, each check in
 * order, and the verdict. It prints the very evaluation the decision runs
 * (policy/decide_internal.h), so the two cannot disagree.
 */
#include "policy/explain.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "policy/cidr.h"
#include "policy/decide_internal.h"

static const char *const policy_key_name[PK_COUNT] = {
	[PK_DENY] = "deny",
	[PK_ALLOW_FROM] = "allow_from",
	[PK_REQUIRE_TLS] = "require_tls",
	[PK_ALLOW_PLAINTEXT_FROM] = "allow_plaintext_from",
	[PK_LOGIN_COMMAND] = "login_command",
	[PK_MECHANISMS] = "mechanisms",
	[PK_CREDENTIALS] = "credentials",
};

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
	return ig_policy_rule_monitored(p, r) ? "monitor" : "enforce";
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
		case PK_CREDENTIALS:
			fprintf(out, "%-24s", ig_credentials_str(e->credentials));
			break;
		case PK_COUNT:
			break;
		}
		ig_policy_rule_name(p, e->src[k], rn, sizeof(rn));
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
			ig_policy_rule_name(p, c->rule, rn, sizeof(rn));
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

/*
 * What the credentials rule means for this user's login, in one line:
 * "credentials: app_passwords (group mfa): the account password is
 * refused; only an app password logs in".
 */
static void
policy_print_credentials(FILE *out, const struct ig_policy_conf *p, const struct policy_eff *e)
{
	const struct ig_rule *r = e->src[PK_CREDENTIALS];
	const char *what = "?";
	switch (e->credentials) {
	case IG_CRED_PASSWORD:
		what = "the account password logs in, checked by the backend; app passwords "
		    "are not accepted";
		break;
	case IG_CRED_APP_PASSWORDS:
		what = "the account password is refused; only an app password logs in";
		break;
	case IG_CRED_BOTH:
		what = "an app password or the account password logs in (the log says which)";
		break;
	case IG_CRED_COUNT:
		break;
	}
	fprintf(out, "credentials: %s (", ig_credentials_str(e->credentials));
	if (e->builtin[PK_CREDENTIALS])
		fprintf(out, "built-in");
	else if (r == &p->defaults || r->kind == IG_RULE_DEFAULTS)
		fprintf(out, "defaults");
	else
		fprintf(out, "%s %s", r->kind == IG_RULE_GROUP ? "group" : "user",
		    r->name != NULL ? r->name : "?");
	fprintf(out, "): %s", what);
	if (e->credentials != IG_CRED_PASSWORD && ig_policy_rule_monitored(p, r))
		fprintf(out, " (monitor mode: a login with the account password is logged, "
		    "not refused)");
	fprintf(out, "\n");
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
		ig_policy_layer(p, NULL, NULL, &e);
		fprintf(out, "rules considered:\n  defaults ");
		policy_where(out, config_path, &p->defaults);
		fprintf(out, ", mode %s: the user is not known yet, so only what no rule "
		    "could allow is refused\n", policy_mode_str(p, &p->defaults));
		policy_print_settings(out, p, &e);
		enum policy_unknown pu = ig_policy_unknown(p, f, &run, &d);
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
		const char *pat = ig_policy_group_match(p, gi, f->user);
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
	ig_policy_layer(p, u, g, &e);
	policy_print_settings(out, p, &e);
	ig_policy_evaluate(p, &e, f, &run);
	policy_print_checks(out, p, &run, f, addr);
	ig_policy_conclude(p, &run, u != NULL ? u : g != NULL ? g : &p->defaults, &d);
	policy_print_credentials(out, p, &e);
	policy_print_verdict(out, &d);
	return d.verdict;
}
