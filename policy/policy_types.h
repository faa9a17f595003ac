/*
 * The policy's rule types: named networks, rules (defaults, groups, user
 * entries) and the policy they make up. The configuration loader
 * (config/config.h) fills them; the decision (policy/decide.h) reads them.
 */
#ifndef IG_POLICY_POLICY_TYPES_H
#define IG_POLICY_POLICY_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/cidr_types.h"

/* policy.networks: a named CIDR set. */
struct ig_network {
	char *name;                      /* owned */
	struct ig_netset set;
	unsigned line, col;              /* where it was defined (1-based) */
};

enum ig_rule_kind {
	IG_RULE_DEFAULTS,                /* policy.defaults */
	IG_RULE_GROUP,                   /* policy.groups.NAME */
	IG_RULE_USER,                    /* policy.users.NAME */
	IG_RULE_KIND_COUNT
};

/* Which keys a rule sets (a rule refines the layers under it key by key). */
enum {
	IG_RK_REQUIRE_TLS = 1u << 0,
	IG_RK_MECHANISMS = 1u << 1,
	IG_RK_LOGIN_COMMAND = 1u << 2,
	IG_RK_ALLOW_PLAINTEXT_FROM = 1u << 3,
	IG_RK_ALLOW_FROM = 1u << 4,
	IG_RK_DENY = 1u << 5,
	IG_RK_MODE = 1u << 6,
	IG_RK_CREDENTIALS = 1u << 7,
	IG_RK_ALL = (1u << 8) - 1u,      /* every key: policy.defaults */
};

/*
 * credentials: which secret logs a user in (issue 17, app passwords). The
 * decision carries it (struct ig_decision); the login attempt acts on it.
 */
enum ig_credentials {
	IG_CRED_PASSWORD,                /* the account password, checked by
	                                    the backend (the default) */
	IG_CRED_APP_PASSWORDS,           /* only an app password, checked by the
	                                    proxy, which then logs in with
	                                    backend.master_login; the account
	                                    password is refused */
	IG_CRED_BOTH,                    /* either (a migration period); the
	                                    proxy logs which one was used */
	IG_CRED_COUNT
};

/*
 * One policy rule: the defaults, a group or a user entry. Only the keys in
 * `set` are meaningful; the others come from the layer below (user entry
 * over the first matching group over the defaults). The defaults have every
 * bit (IG_RK_ALL): built-in values where the file is silent.
 *
 * The two address lists distinguish absent from empty in groups and user
 * entries:
 *  - bit clear: the key is not in this rule (the layer below decides);
 *  - bit set and n == 0 (written "[]"): allow_from allows NO address (the
 *    rule's users cannot log in from anywhere), allow_plaintext_from allows
 *    cleartext from nowhere;
 *  - bit set and n > 0: only from these blocks (network names are resolved
 *    and their blocks copied: each rule owns its sets).
 * In policy.defaults every bit is set and n == 0 means "no restriction";
 * the loader refuses an explicit "[]" there, which would read the same.
 *
 * Ownership: name, users and the sets are owned by the config, except the
 * defaults' name, which is static storage. line/col are those of the rule's
 * key (0 for defaults not written in the file).
 */
struct ig_rule {
	enum ig_rule_kind kind;
	char *name;                      /* group or user name (user folded when
	                                    fold_case); "defaults" */
	char **users;                    /* group: patterns, exact names or
	                                    "*@domain" (folded when fold_case) */
	size_t nusers;
	unsigned set;                    /* IG_RK_* present in the file */
	bool require_tls;                /* no credentials over cleartext */
	uint32_t mechanisms;             /* IG_MECH_BIT() set of SASL
	                                    mechanisms allowed */
	bool login_command;              /* the IMAP LOGIN command allowed */
	struct ig_netset allow_plaintext_from; /* cleartext credentials only
	                                    from these (with require_tls false) */
	struct ig_netset allow_from;     /* logins only from these */
	bool deny;                       /* account blocked at the proxy */
	bool monitor;                    /* mode: monitor: refusals by this
	                                    rule are logged, not enforced */
	enum ig_credentials credentials; /* password | app_passwords | both */
	unsigned line, col;              /* where the rule starts (1-based) */
};

struct ig_policy_conf {
	bool require_tls;                /* = defaults.require_tls (kept for
	                                    code that predates rules) */
	bool monitor;                    /* policy.mode: monitor (default
	                                    enforce) */
	bool fold_case;                  /* policy.fold_case: match and count on
	                                    the lower-cased name (default true,
	                                    Dovecot's %Lu) */
	struct ig_network *networks;
	size_t nnetworks;
	struct ig_rule defaults;         /* every key set (built-in defaults
	                                    where the file is silent) */
	struct ig_rule *groups;          /* file order: the first match wins */
	size_t ngroups;
	struct ig_rule *users;           /* exact user names */
	size_t nusers;
};

#endif /* IG_POLICY_POLICY_TYPES_H */
