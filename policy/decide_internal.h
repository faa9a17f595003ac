/*
 * Private to policy/decide.c and policy/explain.c: one evaluation of the
 * rules, which the decision concludes and the explanation prints, so the two
 * can never disagree. Nothing outside policy/ includes this.
 */
#ifndef IG_POLICY_DECIDE_INTERNAL_H
#define IG_POLICY_DECIDE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/decide.h"
#include "policy/policy_types.h"

/* The layered keys, in the order the explanation lists them. */
enum policy_key {
	PK_DENY,
	PK_ALLOW_FROM,
	PK_REQUIRE_TLS,
	PK_ALLOW_PLAINTEXT_FROM,
	PK_LOGIN_COMMAND,
	PK_MECHANISMS,
	PK_CREDENTIALS,
	PK_COUNT
};

/* Effective settings for one user (or one candidate) and where each came from. */
struct policy_eff {
	const struct ig_rule *src[PK_COUNT];   /* layer providing the key */
	bool builtin[PK_COUNT];                /* defaults silent: built-in value */
	bool deny;
	bool require_tls;
	bool login_command;
	uint32_t mechanisms;
	enum ig_credentials credentials;
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

/* How an attempt by a not-yet-known user is judged (see decide.h). */
enum policy_unknown {
	PU_ALLOW,          /* the defaults alone allow it */
	PU_SOME_RULE,      /* refused by the defaults, allowed by another rule */
	PU_MONITOR,        /* would be refused everywhere; the refusal is monitored */
	PU_MONITORED_RULE, /* allowed only by a rule in monitor mode */
	PU_DENY,           /* no rule could allow it */
};

/* True when a refusal by rule r is not enforced (its own mode: monitor, or
 * policy.mode: monitor). */
bool ig_policy_rule_monitored(const struct ig_policy_conf *p, const struct ig_rule *r);

/* The pattern of group g matching user, or NULL. */
const char *ig_policy_group_match(const struct ig_policy_conf *p, const struct ig_rule *g,
    const char *user);

/* Layers user over group over the defaults, key by key, into *e (user and
 * group may be NULL; *e points into p). */
void ig_policy_layer(const struct ig_policy_conf *p, const struct ig_rule *user,
    const struct ig_rule *group, struct policy_eff *e);

/*
 * Runs every check on the effective settings e into *run. A monitored
 * failure does not stop the evaluation: a later check refused by an
 * enforcing rule still refuses.
 */
void ig_policy_evaluate(const struct ig_policy_conf *p, const struct policy_eff *e,
    const struct ig_login_facts *f, struct policy_run *run);

/* "built-in" (r NULL), "defaults", "group:NAME" or "user:NAME" into out. */
void ig_policy_rule_name(const struct ig_policy_conf *p, const struct ig_rule *r, char *out,
    size_t outsz);

/* Copies the credentials setting of e (and where it came from) into out. */
void ig_policy_credentials(const struct ig_policy_conf *p, const struct policy_eff *e,
    struct ig_decision *out);

/* The decision of a finished run; allow_rule is reported on success. */
void ig_policy_conclude(const struct ig_policy_conf *p, const struct policy_run *run,
    const struct ig_rule *allow_rule, struct ig_decision *out);

/*
 * Judges an attempt whose user is not known yet (f->user NULL, see
 * ig_policy_decide()): *run gets the defaults' checks, *out the decision,
 * and the return value says how it was reached.
 */
enum policy_unknown ig_policy_unknown(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, struct policy_run *run, struct ig_decision *out);

#endif /* IG_POLICY_DECIDE_INTERNAL_H */
