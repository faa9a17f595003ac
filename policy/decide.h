/*
 * The policy decision: a pure function of the policy and the facts about a
 * login attempt (no I/O, no clock, no globals). It returns a verdict, the
 * IMAP response code to answer with, a stable reason, and the rule that
 * decided.
 *
 * Rule resolution: the settings for a user are taken key by key from the
 * user's entry (policy.users), else from the FIRST group (file order) with a
 * matching pattern, else from policy.defaults. Checks run in this order:
 * deny, allow_from, TLS (require_tls / allow_plaintext_from), the LOGIN
 * command or the SASL mechanism. A refusal by a rule in monitor mode (or
 * with policy.mode: monitor) is reported as would_deny and not enforced.
 */
#ifndef IG_POLICY_DECIDE_H
#define IG_POLICY_DECIDE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "policy/config.h"
#include "proxy/sasl.h"

enum ig_verdict {
	IG_VERDICT_ALLOW,
	IG_VERDICT_DENY,
	IG_VERDICT_TEMPFAIL,
	IG_VERDICT_COUNT
};
const char *ig_verdict_str(enum ig_verdict v);

struct ig_login_facts {
	const char *user;              /* normalised (folded when the policy
	                                  folds); NULL before it is known */
	enum ig_sasl_mech mech;        /* IG_MECH_COUNT for the LOGIN command */
	bool login_cmd;                /* the IMAP LOGIN command */
	bool tls;                      /* TLS active on the client side */
	const struct sockaddr *addr;   /* client address */
	const char *listener;          /* listener name */
};

struct ig_decision {
	enum ig_verdict verdict;       /* what is enforced */
	bool would_deny;               /* ALLOW only because the refusing rule
	                                  (or the policy) is in monitor mode */
	const char *code;              /* response code without brackets, e.g.
	                                  "PRIVACYREQUIRED"; NULL for none */
	const char *reason;            /* stable reason for logs: "allowed",
	                                  "account-blocked", "address-not-allowed",
	                                  "tls-required", "login-command-blocked",
	                                  "mechanism-blocked" */
	const char *text;              /* human text for the client */
	const struct ig_rule *rule;    /* the rule whose setting decided, NULL
	                                  for built-in behaviour */
	char rule_name[300];           /* "defaults", "group:NAME", "user:NAME" */
};

/* Decides one attempt. Always fills *out; returns out->verdict. */
enum ig_verdict ig_policy_decide(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, struct ig_decision *out);

/*
 * Before the user is known: the SASL mechanisms (IG_MECH_BIT set) that could
 * succeed for SOME user on a connection with these facts (f->user NULL),
 * considering the defaults, every group and every user entry; *login_ok says
 * whether the LOGIN command could. Rules in monitor mode do not restrict.
 * Drives LOGINDISABLED and the AUTH= list.
 */
uint32_t ig_policy_possible(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, bool *login_ok);

/*
 * Which rules apply to user: its entry (or NULL) and the first matching
 * group (or NULL).
 */
void ig_policy_rules_for(const struct ig_policy_conf *p, const char *user,
    const struct ig_rule **user_rule, const struct ig_rule **group_rule);

/* True when user matches pattern (exact, or "*@domain" with the domain
   compared case-insensitively). */
bool ig_policy_pattern_match(const char *pattern, const char *user, bool fold_case);

/*
 * Writes a human explanation of the decision to out: the rules considered
 * (which matched and why not), the value of each key and the layer it came
 * from, each check in order, and the verdict. Used by `imapguard explain`.
 * Returns the verdict.
 */
enum ig_verdict ig_policy_explain(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, const char *config_path, FILE *out);

#endif /* IG_POLICY_DECIDE_H */
