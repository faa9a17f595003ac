/*
 * The policy decision: a pure function of the policy and the facts about a
 * login attempt. It returns a verdict, the IMAP response code to answer
 * with, a stable reason and the rule that decided.
 */
#ifndef IG_POLICY_DECIDE_H
#define IG_POLICY_DECIDE_H

#include <stdbool.h>
#include <stdint.h>
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
	const char *user;              /* normalised; NULL before it is known */
	enum ig_sasl_mech mech;        /* IG_MECH_COUNT for the LOGIN command */
	bool login_cmd;                /* the IMAP LOGIN command */
	bool tls;                      /* TLS active on the client side */
	const struct sockaddr *addr;   /* client address */
	const char *listener;          /* listener name */
};

struct ig_decision {
	enum ig_verdict verdict;
	const char *code;              /* response code without brackets, e.g.
	                                  "PRIVACYREQUIRED"; NULL for none */
	const char *reason;            /* stable reason for logs, e.g.
	                                  "tls-required" */
	const char *text;              /* human text for the client */
	int rule;                      /* deciding rule index, -1 = defaults */
};

/* Decides one attempt. Always fills *out; returns out->verdict. */
enum ig_verdict ig_policy_decide(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, struct ig_decision *out);

/*
 * Whether credentials could be accepted at all on a connection with these
 * facts (user unknown): drives LOGINDISABLED and the AUTH= list.
 * Returns the set of SASL mechanisms (IG_MECH_BIT) that may succeed, and
 * sets *login_ok for the LOGIN command.
 */
uint32_t ig_policy_possible(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, bool *login_ok);

#endif /* IG_POLICY_DECIDE_H */
