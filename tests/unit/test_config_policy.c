/*
 * Unit tests for the policy section of config/: the structures the
 * rule engine reads (networks resolved into each rule's own CIDR set, groups
 * in file order, folded names, which keys each rule sets) and every error
 * and warning `imapguard -t` gives about a policy, with its exact text at its
 * FILE:LINE:COL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "policy/decide.h"
#include "config/config.h"
#include "config_fixture.h"
#include "util/err.h"
#include "util/sasl.h"

static int
setup(void **state)
{
	*state = cfgfix_enter("igpol");
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return cfgfix_leave(*state);
}


/* The example of the policy documentation, from line 11. */
static const char policy_example[] = CFGFIX_BASE
    "policy:\n"
    "  mode: enforce                  # enforce | monitor (log \"would refuse\", allow)\n"
    "  fold_case: true                # default true: names folded to lower case\n"
    "  networks:                      # named CIDR sets, IPv4 and IPv6\n"
    "    office: [10.20.0.0/16, \"2001:db8:20::/48\"]\n"
    "  defaults:\n"
    "    require_tls: true            # no credentials over cleartext\n"
    "    mechanisms: [PLAIN, LOGIN, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER]\n"
    "    login_command: true          # the IMAP LOGIN command\n"
    "  groups:\n"
    "    modern-only:                 # \"block legacy authentication\": tokens only\n"
    "      users: [\"*@Corp.Example.com\", CEO@example.com]\n"
    "      mechanisms: [xoauth2, OAUTHBEARER]\n"
    "      login_command: false\n"
    "    legacy-scanners:\n"
    "      users: [scanner@example.com]\n"
    "      require_tls: false\n"
    "      allow_plaintext_from: [office]   # cleartext only from these networks\n"
    "      allow_from: [office, 192.0.2.7, \"2001:db8::/32\"]\n"
    "      mode: monitor                    # report-only for this rule\n"
    "  users:\n"
    "    Alice@Example.com: { require_tls: true }\n"
    "    olduser@example.com: { deny: true }  # account blocked at the proxy\n"
    "    scanner@example.com: { allow_plaintext_from: [\"10.20.30.0/24\"] }\n";

static void
test_policy_example(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(policy_example, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_policy_conf *p = &cfg->policy;
	assert_false(p->monitor);
	assert_true(p->fold_case);
	assert_true(p->require_tls);

	assert_int_equal(p->nnetworks, 1);
	assert_string_equal(p->networks[0].name, "office");
	assert_int_equal(p->networks[0].line, 15);
	assert_int_equal(p->networks[0].col, 5);
	assert_int_equal(p->networks[0].set.n, 2);
	assert_cidr(&p->networks[0].set.v[0], "10.20.0.0/16");
	assert_cidr(&p->networks[0].set.v[1], "2001:db8:20::/48");

	const struct ig_rule *d = &p->defaults;
	assert_int_equal(d->kind, IG_RULE_DEFAULTS);
	assert_string_equal(d->name, "defaults");
	assert_int_equal(d->set, IG_RK_ALL);
	assert_int_equal(d->line, 16);
	assert_int_equal(d->col, 3);
	assert_true(d->require_tls);
	assert_int_equal(d->mechanisms, IG_MECH_BIT(IG_MECH_PLAIN) | IG_MECH_BIT(IG_MECH_LOGIN) |
	    IG_MECH_BIT(IG_MECH_SCRAM_SHA_256) | IG_MECH_BIT(IG_MECH_XOAUTH2) |
	    IG_MECH_BIT(IG_MECH_OAUTHBEARER));
	assert_true(d->login_command);
	assert_int_equal(d->allow_plaintext_from.n, 0);
	assert_int_equal(d->allow_from.n, 0);
	assert_false(d->deny);
	assert_false(d->monitor);

	assert_int_equal(p->ngroups, 2);
	const struct ig_rule *g = &p->groups[0];
	assert_int_equal(g->kind, IG_RULE_GROUP);
	assert_string_equal(g->name, "modern-only");
	assert_int_equal(g->line, 21);
	assert_int_equal(g->col, 5);
	assert_int_equal(g->nusers, 2);
	assert_string_equal(g->users[0], "*@corp.example.com");
	assert_string_equal(g->users[1], "ceo@example.com");
	assert_int_equal(g->set, IG_RK_MECHANISMS | IG_RK_LOGIN_COMMAND);
	assert_int_equal(g->mechanisms, IG_MECH_BIT(IG_MECH_XOAUTH2) |
	    IG_MECH_BIT(IG_MECH_OAUTHBEARER));
	assert_false(g->login_command);
	assert_false(g->monitor);

	g = &p->groups[1];
	assert_string_equal(g->name, "legacy-scanners");
	assert_int_equal(g->line, 25);
	assert_int_equal(g->nusers, 1);
	assert_string_equal(g->users[0], "scanner@example.com");
	assert_int_equal(g->set, IG_RK_REQUIRE_TLS | IG_RK_ALLOW_PLAINTEXT_FROM |
	    IG_RK_ALLOW_FROM | IG_RK_MODE);
	assert_false(g->require_tls);
	assert_true(g->monitor);
	assert_int_equal(g->allow_plaintext_from.n, 2);
	assert_cidr(&g->allow_plaintext_from.v[0], "10.20.0.0/16");
	assert_cidr(&g->allow_plaintext_from.v[1], "2001:db8:20::/48");
	/* A copy: the rule owns its set. */
	assert_ptr_not_equal(g->allow_plaintext_from.v, p->networks[0].set.v);
	assert_int_equal(g->allow_from.n, 4);
	assert_cidr(&g->allow_from.v[0], "10.20.0.0/16");
	assert_cidr(&g->allow_from.v[1], "2001:db8:20::/48");
	assert_cidr(&g->allow_from.v[2], "192.0.2.7/32");
	assert_cidr(&g->allow_from.v[3], "2001:db8::/32");

	assert_int_equal(p->nusers, 3);
	const struct ig_rule *u = &p->users[0];
	assert_int_equal(u->kind, IG_RULE_USER);
	assert_string_equal(u->name, "alice@example.com");
	assert_int_equal(u->line, 32);
	assert_int_equal(u->col, 5);
	assert_int_equal(u->set, IG_RK_REQUIRE_TLS);
	assert_true(u->require_tls);
	assert_null(u->users);
	u = &p->users[1];
	assert_string_equal(u->name, "olduser@example.com");
	assert_int_equal(u->set, IG_RK_DENY);
	assert_true(u->deny);
	assert_false(u->monitor);
	/* scanner@ inherits require_tls: false from its group: no contradiction. */
	u = &p->users[2];
	assert_string_equal(u->name, "scanner@example.com");
	assert_int_equal(u->set, IG_RK_ALLOW_PLAINTEXT_FROM);
	assert_int_equal(u->allow_plaintext_from.n, 1);
	assert_cidr(&u->allow_plaintext_from.v[0], "10.20.30.0/24");
	ig_config_free(cfg);
	free(msgs);
}

static void
test_policy_builtin(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	/* No policy section at all. */
	char *msgs = load(CFGFIX_BASE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_policy_conf *p = &cfg->policy;
	assert_false(p->monitor);
	assert_true(p->fold_case);
	assert_true(p->require_tls);
	assert_int_equal(p->nnetworks, 0);
	assert_int_equal(p->ngroups, 0);
	assert_int_equal(p->nusers, 0);
	assert_null(p->groups);
	assert_null(p->users);
	const struct ig_rule *d = &p->defaults;
	assert_int_equal(d->kind, IG_RULE_DEFAULTS);
	assert_string_equal(d->name, "defaults");
	assert_int_equal(d->set, IG_RK_ALL);
	assert_int_equal(d->line, 0);
	assert_true(d->require_tls);
	assert_int_equal(d->mechanisms, IG_MECH_ALL);
	assert_true(d->login_command);
	assert_int_equal(d->allow_plaintext_from.n, 0);
	assert_null(d->allow_from.v);
	assert_false(d->deny);
	assert_false(d->monitor);
	ig_config_free(cfg);
	free(msgs);

	/* Empty sections, policy-wide monitor, an empty mechanism list. */
	msgs = load(CFGFIX_BASE "policy:\n  mode: monitor\n  networks:\n  groups:\n  users:\n"
	    "  defaults:\n    mechanisms: []\n    require_tls: false\n    mode: monitor\n",
	    &rc, &cfg);
	assert_string_equal(msgs, "t.yaml:18:18: warning: policy.defaults.require_tls is false: "
	    "passwords may be sent before STARTTLS\n");
	assert_int_equal(rc, 0);
	p = &cfg->policy;
	assert_true(p->monitor);
	assert_false(p->require_tls);
	assert_int_equal(p->ngroups + p->nusers + p->nnetworks, 0);
	assert_int_equal(p->defaults.mechanisms, 0);
	assert_true(p->defaults.login_command);
	assert_true(p->defaults.monitor);
	assert_int_equal(p->defaults.set, IG_RK_ALL);
	ig_config_free(cfg);
	free(msgs);
}

/* Keys are resolved whatever their order in the file. */
static void
test_policy_file_order(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE "policy:\n"
	    "  users:\n"
	    "    Bob@Example.COM: {allow_from: [lab]}\n"
	    "    eve@example.com: {allow_plaintext_from: [lab]}\n"
	    "  groups:\n"
	    "    cleartext:\n"
	    "      users: [eve@example.com]\n"
	    "      allow_from: [lab]\n"
	    "  defaults:\n"
	    "    require_tls: false\n"
	    "    allow_from: [lab, \"::1\"]\n"
	    "  fold_case: false\n"
	    "  networks:\n"
	    "    lab: [\"2001:db8::/64\", 198.51.100.0/24]\n", &rc, &cfg);
	assert_string_equal(msgs, "t.yaml:20:18: warning: policy.defaults.require_tls is false: "
	    "passwords may be sent before STARTTLS\n");
	assert_int_equal(rc, 0);
	const struct ig_policy_conf *p = &cfg->policy;
	assert_false(p->fold_case);
	assert_int_equal(p->nusers, 2);
	assert_string_equal(p->users[0].name, "Bob@Example.COM");
	assert_int_equal(p->users[0].allow_from.n, 2);
	assert_cidr(&p->users[0].allow_from.v[1], "198.51.100.0/24");
	assert_int_equal(p->groups[0].allow_from.n, 2);
	assert_int_equal(p->defaults.allow_from.n, 3);
	assert_cidr(&p->defaults.allow_from.v[2], "::1/128");
	ig_config_free(cfg);
	free(msgs);
}

/* fold_case: false keeps exact names as written; domains still fold. */
static void
test_policy_fold_case_false(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE "policy:\n"
	    "  fold_case: false\n"
	    "  groups:\n"
	    "    g:\n"
	    "      users: [\"*@Example.COM\", Carol@Example.COM]\n"
	    "      deny: true\n"
	    "  users:\n"
	    "    Alice@X: {deny: true}\n"
	    "    alice@x: {mode: monitor}\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_policy_conf *p = &cfg->policy;
	assert_string_equal(p->groups[0].users[0], "*@example.com");
	assert_string_equal(p->groups[0].users[1], "Carol@Example.COM");
	assert_int_equal(p->nusers, 2);
	assert_string_equal(p->users[0].name, "Alice@X");
	assert_string_equal(p->users[1].name, "alice@x");
	assert_int_equal(p->users[1].set, IG_RK_MODE);
	assert_true(p->users[1].monitor);
	ig_config_free(cfg);
	free(msgs);

	/* The same with fold_case (the default): one user, twice. */
	msgs = load(CFGFIX_BASE "policy:\n"
	    "  users:\n"
	    "    Alice@X: {deny: true}\n"
	    "    alice@x: {mode: monitor}\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs, "t.yaml:14:5: duplicate user entry 'alice@x' in 'policy.users': "
	    "the same user as 'Alice@X' at 13:5 once folded to lower case (fold_case)\n");
	free(msgs);
}

struct err_row {
	const char *yaml; /* appended to CFGFIX_BASE "policy:\n": its first line is 12 */
	int rc;
	const char *want; /* everything written to errf */
};

static const struct err_row err_rows[] = {
	/* Shapes and unknown keys. */
	{ "  mode: strict\n  fold_case: maybe\n  defaults: []\n", IG_ECONFIG,
	  "t.yaml:12:9: invalid value 'strict' for 'policy.mode': expected one of enforce, monitor\n"
	  "t.yaml:13:14: invalid value 'maybe' for 'policy.fold_case': expected true or false\n"
	  "t.yaml:14:13: 'policy.defaults' must be a mapping, not a sequence\n" },
	{ "  group:\n    g: {users: [a]}\n", IG_ECONFIG,
	  "t.yaml:12:3: unknown key 'group' in 'policy' (did you mean 'groups'?)\n" },
	{ "  defaults:\n    mechanism: [PLAIN]\n    allow: []\n", IG_ECONFIG,
	  "t.yaml:13:5: unknown key 'mechanism' in 'policy.defaults' (did you mean 'mechanisms'?)\n"
	  "t.yaml:14:5: unknown key 'allow' in 'policy.defaults'\n" },
	{ "  groups:\n    g:\n      users: [a@x]\n      require_tsl: false\n      user: [b@x]\n",
	  IG_ECONFIG,
	  "t.yaml:15:7: unknown key 'require_tsl' in 'policy.groups.g' (did you mean "
	  "'require_tls'?)\n"
	  "t.yaml:16:7: unknown key 'user' in 'policy.groups.g' (did you mean 'users'?)\n" },
	{ "  users:\n    a@x: {login_comand: false, users: [b@x]}\n", IG_ECONFIG,
	  "t.yaml:13:11: unknown key 'login_comand' in 'policy.users.a@x' (did you mean "
	  "'login_command'?)\n"
	  "t.yaml:13:32: unknown key 'users' in 'policy.users.a@x'\n" },
	{ "  networks: [10.0.0.0/8]\n  groups: x\n  users: [a]\n", IG_ECONFIG,
	  "t.yaml:12:13: 'policy.networks' must be a mapping of network names, not a sequence\n"
	  "t.yaml:13:11: 'policy.groups' must be a mapping of group names, not a scalar\n"
	  "t.yaml:14:10: 'policy.users' must be a mapping of user names, not a sequence\n" },
	{ "  defaults:\n    deny: false\n    deny: true\n", IG_ECONFIG,
	  "t.yaml:14:5: duplicate key 'deny' in 'policy.defaults' (first at 13:5)\n" },
	/* Modes. */
	{ "  users:\n    a@x: {mode: report}\n    b@x: {mode: [monitor]}\n", IG_ECONFIG,
	  "t.yaml:13:17: invalid value 'report' for 'policy.users.a@x.mode': "
	  "expected one of enforce, monitor\n"
	  "t.yaml:14:17: 'policy.users.b@x.mode' must be a single value, not a sequence\n" },
	/* Networks and CIDRs. */
	{ "  networks:\n"
	  "    office: [10.0.0.1/8, \"2001:db8::1/32\", \"10.0.0.0/33\", nonsense, \"::/129\"]\n"
	  "    empty: []\n"
	  "    lab:\n"
	  "    1bad: [10.0.0.0/8]\n"
	  "    office: [10.0.0.0/8]\n"
	  "    \"a:b\": [10.0.0.0/8]\n", IG_ECONFIG,
	  "t.yaml:13:14: invalid CIDR '10.0.0.1/8' in 'policy.networks.office': host bits are set "
	  "(did you mean 10.0.0.0/8?)\n"
	  "t.yaml:13:26: invalid CIDR '2001:db8::1/32' in 'policy.networks.office': host bits are "
	  "set (did you mean 2001:db8::/32?)\n"
	  "t.yaml:13:44: invalid CIDR '10.0.0.0/33' in 'policy.networks.office': the prefix length "
	  "must be at most 32\n"
	  "t.yaml:13:59: invalid CIDR 'nonsense' in 'policy.networks.office': expected an IPv4 or "
	  "IPv6 address, optionally with /prefix\n"
	  "t.yaml:13:69: invalid CIDR '::/129' in 'policy.networks.office': the prefix length must "
	  "be at most 128\n"
	  "t.yaml:14:12: 'policy.networks.empty' needs at least one entry\n"
	  "t.yaml:15:9: 'policy.networks.lab' has no value (write [] for an empty list)\n"
	  "t.yaml:16:5: invalid name '1bad' in 'policy.networks': use up to 63 letters, digits, "
	  "'-', '_' and '.', starting with a letter\n"
	  "t.yaml:17:5: duplicate network 'office' in 'policy.networks' (first at 13:5)\n"
	  "t.yaml:18:5: invalid name 'a:b' in 'policy.networks': use up to 63 letters, digits, "
	  "'-', '_' and '.', starting with a letter\n" },
	{ "  networks:\n    office: [10.20.0.0/16]\n"
	  "  defaults:\n    require_tls: false\n"
	  "    allow_from: [ofice, lab, 192.0.2.7, \"2001:db8::/32\", \"192.0.2.1/24\", [x]]\n",
	  IG_ECONFIG,
	  "t.yaml:15:18: warning: policy.defaults.require_tls is false: passwords may be sent "
	  "before STARTTLS\n"
	  "t.yaml:16:18: unknown network 'ofice' in 'policy.defaults.allow_from' (did you mean "
	  "'office'?)\n"
	  "t.yaml:16:25: unknown network 'lab' in 'policy.defaults.allow_from' (not defined in "
	  "policy.networks)\n"
	  "t.yaml:16:58: invalid CIDR '192.0.2.1/24' in 'policy.defaults.allow_from': host bits are "
	  "set (did you mean 192.0.2.0/24?)\n"
	  "t.yaml:16:74: 'policy.defaults.allow_from[5]' must be a single value, not a sequence\n" },
	{ "  users:\n    a@x: {allow_from: }\n    b@x: {allow_from: office}\n", IG_ECONFIG,
	  "t.yaml:13:23: 'policy.users.a@x.allow_from' has no value (write [] for an empty list)\n"
	  "t.yaml:14:23: 'policy.users.b@x.allow_from' must be a sequence, not a scalar\n" },
	/* Mechanisms. */
	{ "  defaults:\n    mechanisms: [plain, PLAIN, NTLM, \"\"]\n", IG_ECONFIG,
	  "t.yaml:13:25: warning: mechanism 'PLAIN' is listed twice in 'policy.defaults.mechanisms'\n"
	  "t.yaml:13:32: unknown mechanism 'NTLM' in 'policy.defaults.mechanisms' (known: PLAIN, "
	  "LOGIN, XOAUTH2, OAUTHBEARER, SCRAM-SHA-1, SCRAM-SHA-256, CRAM-MD5)\n"
	  "t.yaml:13:38: unknown mechanism '' in 'policy.defaults.mechanisms' (known: PLAIN, "
	  "LOGIN, XOAUTH2, OAUTHBEARER, SCRAM-SHA-1, SCRAM-SHA-256, CRAM-MD5)\n" },
	{ "  defaults:\n    mechanisms:\n", IG_ECONFIG,
	  "t.yaml:13:16: 'policy.defaults.mechanisms' has no value (write [] for an empty list)\n" },
	/* Groups. */
	{ "  groups:\n"
	  "    nousers: {deny: true}\n"
	  "    emptyusers: {users: []}\n"
	  "    bare:\n"
	  "    \"bad name\": {users: [a@x]}\n"
	  "    nousers: {users: [a@x]}\n", IG_ECONFIG,
	  "t.yaml:13:14: missing required key 'users' in 'policy.groups.nousers'\n"
	  "t.yaml:14:25: 'policy.groups.emptyusers.users' needs at least one entry\n"
	  "t.yaml:15:10: 'policy.groups.bare' must be a mapping, not nothing\n"
	  "t.yaml:16:5: invalid name 'bad name' in 'policy.groups': use up to 63 letters, digits, "
	  "'-', '_' and '.'\n"
	  "t.yaml:17:5: duplicate group 'nousers' in 'policy.groups' (first at 13:5)\n" },
	{ "  groups:\n"
	  "    g:\n"
	  "      users: [\"*\", \"a*@x\", \"*@\", \"*@a@b\", \"*x@y\", \"\", \"a\\rb\", b@x, B@X]\n",
	  IG_ECONFIG,
	  "t.yaml:14:15: invalid user pattern '*' in 'policy.groups.g.users': it would match "
	  "every user; put those settings in policy.defaults\n"
	  "t.yaml:14:20: invalid user pattern 'a*@x' in 'policy.groups.g.users': use an exact name "
	  "or *@domain\n"
	  "t.yaml:14:28: invalid user pattern '*@' in 'policy.groups.g.users': use an exact name "
	  "or *@domain\n"
	  "t.yaml:14:34: invalid user pattern '*@a@b' in 'policy.groups.g.users': use an exact "
	  "name or *@domain\n"
	  "t.yaml:14:43: invalid user pattern '*x@y' in 'policy.groups.g.users': use an exact name "
	  "or *@domain\n"
	  "t.yaml:14:51: invalid user name '' in 'policy.groups.g.users': empty\n"
	  "t.yaml:14:55: invalid user name 'a\\x0db' in 'policy.groups.g.users': it contains NUL, CR "
	  "or LF\n"
	  "t.yaml:14:68: warning: 'b@x' is listed twice in 'policy.groups.g.users' (first at "
	  "14:63)\n" },
	/* Shadowed groups and patterns: the first matching group wins. */
	{ "  groups:\n"
	  "    corp:\n"
	  "      users: [\"*@corp.example\", boss@example.com]\n"
	  "      mechanisms: [XOAUTH2]\n"
	  "    scanners:\n"
	  "      users: [Scanner@Corp.Example, printer@example.com]\n"
	  "      mechanisms: [PLAIN]\n"
	  "    again:\n"
	  "      users: [\"*@CORP.example\", boss@example.com, printer@example.com]\n"
	  "      login_command: false\n", 0,
	  "t.yaml:17:15: warning: 'scanner@corp.example' never selects group 'scanners': "
	  "group 'corp' (at 13:5) matches it first with '*@corp.example'\n"
	  "t.yaml:19:5: warning: group 'again' never applies: every user it lists is matched "
	  "first by an earlier group\n" },
	/* User entries. */
	{ "  users:\n"
	  "    \"*@x\": {deny: true}\n"
	  "    \"*\": {deny: true}\n"
	  "    a@x: {}\n"
	  "    a@x: {deny: true}\n"
	  "    A@X: {deny: true}\n"
	  "    b@x:\n"
	  "    c@x: [deny]\n"
	  "    \"\": {deny: true}\n", IG_ECONFIG,
	  "t.yaml:13:5: user entry '*@x' in 'policy.users' is a pattern: entries are exact names; "
	  "put patterns in a group's users\n"
	  "t.yaml:14:5: user entry '*' in 'policy.users' is a pattern: entries are exact names; "
	  "put patterns in a group's users\n"
	  "t.yaml:16:5: duplicate user entry 'a@x' in 'policy.users' (first at 15:5)\n"
	  "t.yaml:17:5: duplicate user entry 'A@X' in 'policy.users': the same user as 'a@x' at "
	  "15:5 once folded to lower case (fold_case)\n"
	  "t.yaml:18:9: 'policy.users.b@x' must be a mapping, not nothing\n"
	  "t.yaml:19:10: 'policy.users.c@x' must be a mapping, not a sequence\n"
	  "t.yaml:20:5: invalid user name '' in 'policy.users': empty\n" },
	/* Contradictions: allow_plaintext_from under require_tls. */
	{ "  defaults:\n    allow_plaintext_from: [10.0.0.0/8]\n", IG_ECONFIG,
	  "t.yaml:13:5: allow_plaintext_from has no effect while require_tls is true\n" },
	{ "  groups:\n"
	  "    g:\n"
	  "      users: [a@x]\n"
	  "      allow_plaintext_from: [10.0.0.0/8]\n"
	  "    h:\n"
	  "      users: [b@x]\n"
	  "      require_tls: true\n"
	  "      allow_plaintext_from: [10.0.0.0/8]\n"
	  "    i:\n"
	  "      users: [c@x]\n"
	  "      require_tls: false\n"
	  "      allow_plaintext_from: [10.0.0.0/8]\n"
	  "  users:\n"
	  "    d@x: {allow_plaintext_from: [10.0.0.0/8]}\n"
	  "    c@x: {allow_plaintext_from: [10.0.0.0/8]}\n"
	  "    b@x: {require_tls: false, allow_plaintext_from: [10.0.0.0/8]}\n"
	  "    a@x: {allow_plaintext_from: [10.0.0.0/8]}\n", IG_ECONFIG,
	  "t.yaml:15:7: allow_plaintext_from has no effect while require_tls is true (from "
	  "policy.defaults; add require_tls: false here)\n"
	  "t.yaml:19:7: allow_plaintext_from has no effect while require_tls is true\n"
	  "t.yaml:25:11: allow_plaintext_from has no effect while require_tls is true (from "
	  "policy.defaults; add require_tls: false here)\n"
	  "t.yaml:28:11: allow_plaintext_from has no effect while require_tls is true (from "
	  "policy.defaults; add require_tls: false here)\n" },
	{ "  defaults:\n    require_tls: false\n"
	  "  groups:\n    strict: {users: [\"*@x\"], require_tls: true}\n"
	  "  users:\n    a@x: {allow_plaintext_from: [10.0.0.0/8]}\n"
	  "    a@y: {allow_plaintext_from: [10.0.0.0/8]}\n", IG_ECONFIG,
	  "t.yaml:13:18: warning: policy.defaults.require_tls is false: passwords may be sent "
	  "before STARTTLS\n"
	  "t.yaml:17:11: allow_plaintext_from has no effect while require_tls is true (from group "
	  "'strict'; add require_tls: false here)\n" },
	/* "[]" in the defaults would read as "no restriction". */
	{ "  defaults:\n    require_tls: false\n    allow_plaintext_from: []\n    allow_from: []\n",
	  IG_ECONFIG,
	  "t.yaml:13:18: warning: policy.defaults.require_tls is false: passwords may be sent "
	  "before STARTTLS\n"
	  "t.yaml:14:5: allow_plaintext_from: [] is not allowed in policy.defaults (there an empty "
	  "list means no restriction); remove the key, or use deny: true to refuse everyone\n"
	  "t.yaml:15:5: allow_from: [] is not allowed in policy.defaults (there an empty list "
	  "means no restriction); remove the key, or use deny: true to refuse everyone\n" },
	/* Warnings: deny with other keys, nobody can log in. */
	{ "  users:\n"
	  "    gone@x: {deny: true, mechanisms: [], require_tls: false, mode: monitor}\n"
	  "    ok@x: {deny: false, mechanisms: []}\n", 0,
	  "t.yaml:13:26: warning: 'mechanisms' has no effect: this entry has deny: true\n"
	  "t.yaml:13:42: warning: 'require_tls' has no effect: this entry has deny: true\n" },
	{ "  defaults:\n    login_command: false\n"
	  "  groups:\n"
	  "    g:\n      users: [a@x]\n      mechanisms: []\n"
	  "    h:\n      users: [b@x]\n      mechanisms: []\n      deny: true\n"
	  "  users:\n"
	  "    c@x: {mechanisms: [], login_command: true}\n"
	  "    d@x: {login_command: false}\n"
	  "    e@x: {allow_from: []}\n"
	  "    f@x: {allow_from: [], deny: true}\n", 0,
	  "t.yaml:17:7: warning: nobody can log in under this rule (no LOGIN command, no "
	  "mechanism); use deny: true\n"
	  "t.yaml:25:11: warning: allow_from is empty: nobody can log in under this rule; use "
	  "deny: true\n"
	  "t.yaml:26:11: warning: 'allow_from' has no effect: this entry has deny: true\n" },
	{ "  defaults:\n    mechanisms: []\n    login_command: false\n", 0,
	  "t.yaml:13:5: warning: nobody can log in under this rule (no LOGIN command, no "
	  "mechanism); use deny: true\n" },
	/* Aliases are still refused inside the policy. */
	{ "  networks:\n    a: &n [10.0.0.0/8]\n  defaults:\n    allow_from: *n\n", IG_ECONFIG,
	  "t.yaml:15:17: aliases are not supported (*n)\n" },
};

static void
test_policy_error_rows(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		char yaml[4096];
		int rc;
		snprintf(yaml, sizeof(yaml), "%spolicy:\n%s", CFGFIX_BASE, err_rows[i].yaml);
		char *msgs = load(yaml, &rc, NULL);
		if (strcmp(msgs, err_rows[i].want) != 0 || rc != err_rows[i].rc) {
			print_error("row %zu: rc %d, got:\n%swant:\n%s\n", i, rc, msgs,
			    err_rows[i].want);
			bad++;
		}
		free(msgs);
	}
	assert_int_equal(bad, 0);
}

/*
 * The loader and the decisions match users to rules with the same functions
 * (policy/decide.c): a group pattern the loader calls shadowed ("never
 * selects", "never applies") is one whose users ig_policy_decide() gives to
 * an earlier group, and no other. "@corp.example" (an empty local part) is
 * no user of "*@corp.example", so it still selects the later group.
 */
static const char shadow_yaml[] = CFGFIX_BASE
    "policy:\n"
    "  groups:\n"
    "    corp:\n"
    "      users: [\"*@corp.example\", boss@example.com]\n"
    "      login_command: false\n"
    "    later:\n"
    "      users: [printer@corp.example, \"@corp.example\", other@example.com]\n"
    "      login_command: false\n"
    "    never:\n"
    "      users: [\"*@CORP.example\", boss@example.com]\n"
    "      login_command: false\n";

/* The group ig_policy_decide() names for user (AUTHENTICATE PLAIN over TLS). */
static const char *
decided_rule(const struct ig_policy_conf *p, const char *user, char *buf, size_t bufsz)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr), 1);
	struct ig_login_facts f = {
		.user = user, .mech = IG_MECH_PLAIN, .tls = true,
		.addr = (const struct sockaddr *)&sin, .listener = "imaps",
	};
	struct ig_decision d;
	assert_int_equal(ig_policy_decide(p, &f, &d), IG_VERDICT_ALLOW);
	snprintf(buf, bufsz, "%s", d.rule_name);
	return buf;
}

static void
test_policy_shadowed_is_decided(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(shadow_yaml, &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs,
	    "t.yaml:17:15: warning: 'printer@corp.example' never selects group 'later': group "
	    "'corp' (at 13:5) matches it first with '*@corp.example'\n"
	    "t.yaml:19:5: warning: group 'never' never applies: every user it lists is matched "
	    "first by an earlier group\n");
	const struct ig_policy_conf *p = &cfg->policy;
	char rn[300];

	static const struct { const char *user, *rule; } rows[] = {
		{ "printer@corp.example", "group:corp" },
		{ "x@corp.example", "group:corp" },
		{ "boss@example.com", "group:corp" },
		{ "@corp.example", "group:later" },
		{ "other@example.com", "group:later" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_string_equal(decided_rule(p, rows[i].user, rn, sizeof(rn)), rows[i].rule);

	/* Every pattern: warned about exactly when the decision for a user it
	 * names (a sample user for "*@domain") goes to an earlier group. */
	assert_int_equal(p->ngroups, 3);
	for (size_t i = 0; i < p->ngroups; i++) {
		const struct ig_rule *g = &p->groups[i];
		char never[128];
		snprintf(never, sizeof(never), "group '%s' never applies", g->name);
		for (size_t j = 0; j < g->nusers; j++) {
			char user[128], warn[256];
			const char *pat = g->users[j];
			if (pat[0] == '*')
				snprintf(user, sizeof(user), "u%s", pat + 1);
			else
				snprintf(user, sizeof(user), "%s", pat);
			snprintf(warn, sizeof(warn), "'%s' never selects group '%s'", pat, g->name);
			bool warned = strstr(msgs, warn) != NULL || strstr(msgs, never) != NULL;
			const struct ig_rule *u, *first;
			ig_policy_rules_for(p, user, &u, &first);
			assert_non_null(first);
			print_message("group %s pattern %s: warned %d, decided by %s\n", g->name, pat,
			    warned, first->name);
			assert_int_equal(warned, first != g);
			assert_true(first <= g);
			snprintf(warn, sizeof(warn), "group:%s", first->name);
			assert_string_equal(decided_rule(p, user, rn, sizeof(rn)), warn);
		}
	}
	ig_config_free(cfg);
	free(msgs);

	/* A user entry inherits from the group the decisions give it: none
	 * for "@x", so allow_plaintext_from works under the defaults'
	 * require_tls: false, and the loader does not call it dead. */
	msgs = load(CFGFIX_BASE
	    "policy:\n"
	    "  defaults:\n    require_tls: false\n"
	    "  groups:\n    strict: {users: [\"*@x\"], require_tls: true}\n"
	    "  users:\n    \"@x\": {allow_plaintext_from: [10.0.0.0/8]}\n", &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs,
	    "t.yaml:13:18: warning: policy.defaults.require_tls is false: passwords may be sent "
	    "before STARTTLS\n");
	struct sockaddr_in sin = { .sin_family = AF_INET };
	assert_int_equal(inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr), 1);
	struct ig_login_facts f = {
		.user = "@x", .login_cmd = true, .mech = IG_MECH_COUNT, .tls = false,
		.addr = (const struct sockaddr *)&sin, .listener = "imap",
	};
	struct ig_decision d;
	assert_int_equal(ig_policy_decide(&cfg->policy, &f, &d), IG_VERDICT_ALLOW);
	assert_string_equal(d.rule_name, "user:@x");
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr), 1);
	assert_int_equal(ig_policy_decide(&cfg->policy, &f, &d), IG_VERDICT_DENY);
	assert_string_equal(d.reason, "plaintext-not-from-network");
	f.user = "a@x";
	assert_int_equal(ig_policy_decide(&cfg->policy, &f, &d), IG_VERDICT_DENY);
	assert_string_equal(d.reason, "tls-required");
	assert_string_equal(d.rule_name, "group:strict");
	ig_config_free(cfg);
	free(msgs);
}

/* Many user entries: duplicates are found without comparing every pair,
 * and a name over IG_USER_MAX bytes is refused. */
static void
test_policy_many_users(void **state)
{
	(void)state;
	char *yaml = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&yaml, &size);
	assert_non_null(f);
	fputs(CFGFIX_BASE "policy:\n  users:\n", f);
	for (int i = 0; i < 5000; i++)
		fprintf(f, "    u%d@example.com: {deny: true}\n", i);
	fputs("    U17@Example.com: {deny: true}\n", f);         /* line 5013 */
	fprintf(f, "    %0256d: {deny: true}\n", 0);                /* line 5014 */
	fclose(f);
	int rc;
	struct ig_config *cfg;
	char *msgs = load(yaml, &rc, &cfg);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:5013:5: duplicate user entry 'U17@Example.com' in 'policy.users': the same user "
	    "as 'u17@example.com' at 30:5 once folded to lower case (fold_case)\n"
	    "t.yaml:5014:5: user name '0000000000000000000000000000000000000000000000000000000000"
	    "0000000000...' in 'policy.users' is longer than 255 bytes\n");
	free(msgs);
	free(yaml);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_policy_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_builtin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_file_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_fold_case_false, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_error_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_many_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_shadowed_is_decided, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
