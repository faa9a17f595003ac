/*
 * The policy decision: a pure function of the policy and the facts about a
 * login attempt (no I/O, no clock, no globals). It returns a verdict, the
 * IMAP response code to answer with, a stable reason, and the rule that
 * decided.
 *
 * Rule resolution: the settings for a user are taken key by key from the
 * user's entry (policy.users), else from the FIRST group (file order) with a
 * matching pattern, else from policy.defaults. A key counts in a rule only
 * when its IG_RK_* bit is set there. Where even the defaults leave a bit
 * clear, the built-in value applies: deny false, require_tls =
 * policy.require_tls, every mechanism, LOGIN allowed, no address
 * restriction, credentials password. An address set (allow_from, allow_plaintext_from) set by a
 * user or group restricts to its blocks, and an empty one means "from
 * nowhere"; in the defaults, which always carry every key, an empty set
 * means "no restriction" (to refuse everyone, use deny: true).
 *
 * Checks run in this order, each with the effective value and the rule it
 * came from:
 *  1. deny                 -> NO [CONTACTADMIN] "account-blocked"
 *  2. allow_from           -> NO [AUTHENTICATIONFAILED] "address-not-allowed",
 *     worded exactly like a wrong password ("Authentication failed.") so
 *     that an attacker elsewhere learns nothing about the account or rule
 *  3. cleartext (no TLS): refused unless require_tls is false and the
 *     address is in allow_plaintext_from (when set)
 *                          -> NO [PRIVACYREQUIRED] "tls-required" (rule of
 *     require_tls) or "plaintext-not-from-network" (rule of
 *     allow_plaintext_from)
 *  4. the LOGIN command (login_command) or the SASL mechanism (mechanisms)
 *                          -> NO [CONTACTADMIN] "login-command-blocked" or
 *     "mechanism-blocked"
 * Otherwise ALLOW "allowed", naming the most specific rule that matched
 * (user entry, else group, else defaults).
 *
 * The key credentials is no check here: whether the secret the client
 * sent is an app password is known only once the proxy has verified it.
 * The decision carries the effective value and its rule, and the login
 * attempt acts on it.
 *
 * Monitor mode: a failed check whose deciding rule has its own `mode:
 * monitor` (IG_RK_MODE set and monitor true; not inherited from the layers
 * below), or any failed check under policy.mode: monitor, is not enforced.
 * Evaluation then goes on: a later check refused by an enforcing rule still
 * refuses (a monitored rule never opens what an enforcing rule closes). When
 * only monitored checks fail, the verdict is ALLOW with would_deny and
 * code/reason/text/rule describing the first refusal that would have
 * happened.
 *
 * User names: with fold_case the names are folded by the caller; matching
 * is then case-insensitive anyway, so an unfolded name cannot dodge a rule.
 * Without fold_case, exact names compare case-sensitively. The domain of a
 * "*@domain" pattern always compares case-insensitively.
 */
#ifndef IG_POLICY_DECIDE_H
#define IG_POLICY_DECIDE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/policy_types.h"
#include "util/sasl.h"

enum ig_verdict {
	IG_VERDICT_ALLOW,
	IG_VERDICT_DENY,
	IG_VERDICT_TEMPFAIL,
	IG_VERDICT_COUNT
};
const char *ig_verdict_str(enum ig_verdict v);

/* "password", "app_passwords", "both" (the config's words). */
const char *ig_credentials_str(enum ig_credentials c);

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
	                                  "tls-required",
	                                  "plaintext-not-from-network",
	                                  "login-command-blocked",
	                                  "mechanism-blocked"; static storage */
	const char *text;              /* human text for the client ("" when
	                                  allowed); static storage */
	const struct ig_rule *rule;    /* the rule whose setting decided (points
	                                  into the policy: valid while it is) */
	char rule_name[300];           /* "defaults", "group:NAME", "user:NAME" */
	/*
	 * Which secret may log this user in (the key credentials, layered
	 * like every key), filled whatever the verdict: the attempt acts on
	 * it (an app password checked by the proxy, then the login as
	 * backend.master_login). Before the user is known (f->user NULL):
	 * the defaults' value, decided again once the user is.
	 */
	enum ig_credentials credentials;
	const struct ig_rule *credentials_rule; /* the rule it came from (into
	                                  the policy: valid while it is) */
	bool credentials_monitored;    /* that rule is in monitor mode (or the
	                                  policy is): a refusal for the
	                                  credentials is to be logged, not
	                                  enforced */
	char credentials_rule_name[300]; /* as rule_name, for that rule */
};

/*
 * Decides one attempt. Always fills *out; returns out->verdict (never
 * TEMPFAIL today: rate limits are decided elsewhere).
 *
 * With f->user NULL (AUTHENTICATE before the name is seen) only what cannot
 * depend on the user is judged: the attempt is evaluated on the defaults
 * alone and refused only when no rule at all could allow it on this
 * connection (the same candidates as ig_policy_possible(), monitored rules
 * counting as allowing); the refusal then reports the defaults' failing
 * check. When the defaults refuse but some group or user entry could allow,
 * the verdict is ALLOW ("allowed", rule defaults) and the caller decides
 * again once the user is known. When every rule would refuse and the
 * defaults' refusal is monitored, the verdict is ALLOW with would_deny.
 */
enum ig_verdict ig_policy_decide(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, struct ig_decision *out);

/*
 * Before the user is known: the SASL mechanisms (IG_MECH_BIT set) that could
 * succeed for SOME user on a connection with these facts (f->user NULL),
 * considering the defaults, every group and every user entry; *login_ok says
 * whether the LOGIN command could. Rules in monitor mode do not restrict.
 * Drives LOGINDISABLED and the AUTH= list.
 *
 * The candidates are: the defaults alone; each group on the defaults; each
 * user entry on its first matching group (else the defaults). For each,
 * checks 1-4 run with f->addr and f->tls; a failure by a monitored rule (or
 * under policy.mode: monitor) counts as a pass. Only f->addr and f->tls are
 * read (f->user, f->mech and f->login_cmd are ignored).
 */
uint32_t ig_policy_possible(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, bool *login_ok);

/*
 * Which rules apply to user: its entry (or NULL) and the first matching
 * group in file order (or NULL). Both NULL when user is NULL. The pointers
 * point into p.
 */
void ig_policy_rules_for(const struct ig_policy_conf *p, const char *user,
    const struct ig_rule **user_rule, const struct ig_rule **group_rule);

/*
 * The first group (file order) with a pattern matching user, or NULL (also
 * when user is NULL); *pattern (when pattern is not NULL) gets the matching
 * pattern. Groups and patterns that are NULL (a loader still building p)
 * match nothing. The pointers point into p.
 */
const struct ig_rule *ig_policy_group_for(const struct ig_policy_conf *p, const char *user,
    const char **pattern);

/*
 * The rule a key's value comes from, the layering of every decision: user
 * when it sets bit (an IG_RK_* value), else group when it sets it, else
 * p->defaults. user and group may be NULL. (Whether the defaults' value is
 * the built-in one is the caller's business: see the top of this file.)
 */
const struct ig_rule *ig_policy_key_source(const struct ig_policy_conf *p,
    const struct ig_rule *user, const struct ig_rule *group, unsigned bit);

/*
 * True when user matches pattern: an exact name (case-insensitive with
 * fold_case, case-sensitive without), or "*@domain": user ends in "@domain"
 * (domain compared case-insensitively) after a non-empty local part. "*@"
 * with an empty domain matches nothing. "@domain" (empty local part) is not
 * matched by "*@domain".
 */
bool ig_policy_pattern_match(const char *pattern, const char *user, bool fold_case);

/*
 * True when every user that pattern p matches is also matched by pattern q
 * (so a group listing q before a group listing p leaves p nothing to
 * select): q is p's own "*@domain" when p is one, else q matches p as a
 * user name.
 */
bool ig_policy_pattern_covers(const char *q, const char *p, bool fold_case);

#endif /* IG_POLICY_DECIDE_H */
