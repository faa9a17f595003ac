/* Minimal engine until the rule engine lands: require_tls only. */
#include "policy/decide.h"

#include <stdio.h>
#include <string.h>

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

enum ig_verdict
ig_policy_decide(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    struct ig_decision *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->rule_name, sizeof(out->rule_name), "defaults");
	out->rule = &p->defaults;
	if (p->require_tls && !f->tls) {
		out->verdict = IG_VERDICT_DENY;
		out->code = "PRIVACYREQUIRED";
		out->reason = "tls-required";
		out->text = "TLS is required: use STARTTLS or port 993 first";
		return out->verdict;
	}
	out->verdict = IG_VERDICT_ALLOW;
	out->reason = "allowed";
	out->text = "";
	return out->verdict;
}

uint32_t
ig_policy_possible(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    bool *login_ok)
{
	if (p->require_tls && !f->tls) {
		*login_ok = false;
		return 0;
	}
	*login_ok = true;
	return IG_MECH_ALL;
}

enum ig_verdict
ig_policy_explain(const struct ig_policy_conf *p, const struct ig_login_facts *f,
    const char *config_path, FILE *out)
{
	struct ig_decision d;
	(void)config_path;
	enum ig_verdict v = ig_policy_decide(p, f, &d);
	fprintf(out, "verdict: %s (reason %s, rule %s)\n", ig_verdict_str(v), d.reason,
	    d.rule_name);
	return v;
}
