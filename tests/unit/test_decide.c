/*
 * Unit tests for policy/decide.c: layering (user over first group over
 * defaults, key by key), every check in order, monitor modes, decisions
 * before the user is known, ig_policy_possible() and the explanation.
 * Policies are built in C (no YAML loader): a row table of rule specs turns
 * into struct ig_rule values with netsets from ig_cidr_parse().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "policy/cidr.h"
#include "policy/policy_types.h"
#include "policy/decide.h"
#include "policy/explain.h"
#include "util/sasl.h"

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))
#define B(m) IG_MECH_BIT(IG_MECH_##m)
#define ALL_BITS (IG_RK_REQUIRE_TLS | IG_RK_MECHANISMS | IG_RK_LOGIN_COMMAND | \
    IG_RK_ALLOW_PLAINTEXT_FROM | IG_RK_ALLOW_FROM | IG_RK_DENY | IG_RK_MODE)
#define NO_CRAM (IG_MECH_ALL & ~B(CRAM_MD5))

/* One rule as written in a table. NULL netsets are empty (and only count
   when their bit is in set). */
struct rule_spec {
	const char *name;
	const char *patterns;        /* groups: comma-separated */
	unsigned set;
	bool require_tls;
	uint32_t mechs;
	bool login_command;
	const char *apf;             /* allow_plaintext_from, comma-separated */
	const char *allow_from;
	bool deny;
	bool monitor;
	unsigned line;
	enum ig_credentials cred;    /* password (0) unless given */
};

struct policy_spec {
	bool monitor;
	bool fold_case;
	struct rule_spec defaults;
	const struct rule_spec *groups;
	size_t ngroups;
	const struct rule_spec *users;
	size_t nusers;
};

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);
	assert_non_null(d);
	return d;
}

/* Splits a comma-separated list into a NULL-terminated count of strings. */
static char **
split(const char *list, size_t *n)
{
	*n = 0;
	if (list == NULL || *list == '\0')
		return NULL;
	size_t cap = 1;
	for (const char *c = list; *c; c++)
		cap += *c == ',';
	char **v = calloc(cap, sizeof(*v));
	assert_non_null(v);
	const char *s = list;
	for (;;) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		v[*n] = calloc(1, len + 1);
		assert_non_null(v[*n]);
		memcpy(v[*n], s, len);
		(*n)++;
		if (e == NULL)
			break;
		s = e + 1;
	}
	return v;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
build_netset(const char *list, struct ig_netset *set)
{
	size_t n;
	char **v = split(list, &n);
	set->n = n;
	set->v = n ? calloc(n, sizeof(*set->v)) : NULL;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ig_cidr_parse(v[i], &set->v[i]), 0);
	free_strv(v, n);
}

static void
build_rule(enum ig_rule_kind kind, const struct rule_spec *s, struct ig_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->name = xstrdup(s->name);
	r->users = split(s->patterns, &r->nusers);
	r->set = s->set;
	r->require_tls = s->require_tls;
	r->mechanisms = s->mechs;
	r->login_command = s->login_command;
	build_netset(s->apf, &r->allow_plaintext_from);
	build_netset(s->allow_from, &r->allow_from);
	r->deny = s->deny;
	r->monitor = s->monitor;
	r->credentials = s->cred;
	r->line = s->line;
	r->col = 3;
}

static void
free_rule(struct ig_rule *r)
{
	free(r->name);
	free_strv(r->users, r->nusers);
	free(r->allow_plaintext_from.v);
	free(r->allow_from.v);
}

static struct ig_policy_conf *
build_policy(const struct policy_spec *s)
{
	struct ig_policy_conf *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->monitor = s->monitor;
	p->fold_case = s->fold_case;
	build_rule(IG_RULE_DEFAULTS, &s->defaults, &p->defaults);
	p->require_tls = p->defaults.require_tls;
	p->ngroups = s->ngroups;
	p->groups = s->ngroups ? calloc(s->ngroups, sizeof(*p->groups)) : NULL;
	for (size_t i = 0; i < s->ngroups; i++)
		build_rule(IG_RULE_GROUP, &s->groups[i], &p->groups[i]);
	p->nusers = s->nusers;
	p->users = s->nusers ? calloc(s->nusers, sizeof(*p->users)) : NULL;
	for (size_t i = 0; i < s->nusers; i++)
		build_rule(IG_RULE_USER, &s->users[i], &p->users[i]);
	return p;
}

static void
free_policy(struct ig_policy_conf *p)
{
	free_rule(&p->defaults);
	for (size_t i = 0; i < p->ngroups; i++)
		free_rule(&p->groups[i]);
	for (size_t i = 0; i < p->nusers; i++)
		free_rule(&p->users[i]);
	free(p->groups);
	free(p->users);
	free(p);
}

static void
make_addr(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(s, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, s, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, s, &a->sin_addr), 1);
	}
}

/* The office policy most rows use. */
#define OFFICE_DEFAULTS { .name = "defaults", .set = ALL_BITS, .require_tls = true, \
	.mechs = NO_CRAM, .login_command = true, .line = 8 }

static const struct rule_spec office_groups[] = {
	{ .name = "modern-only", .patterns = "*@modern.example,carol@example.com",
	  .set = IG_RK_MECHANISMS | IG_RK_LOGIN_COMMAND,
	  .mechs = B(OAUTHBEARER) | B(XOAUTH2), .login_command = false, .line = 12 },
	{ .name = "legacy-scanners", .patterns = "scanner@example.com,*@Scan.Example",
	  .set = IG_RK_REQUIRE_TLS | IG_RK_ALLOW_PLAINTEXT_FROM, .require_tls = false,
	  .apf = "10.0.0.0/8,fd00::/8", .line = 18 },
	{ .name = "everyone-example", .patterns = "*@example.com",
	  .set = IG_RK_ALLOW_FROM, .allow_from = "192.0.2.0/24,2001:db8::/32", .line = 22 },
};

static const struct rule_spec office_users[] = {
	{ .name = "alice@example.com", .set = IG_RK_LOGIN_COMMAND, .login_command = false,
	  .line = 30 },
	{ .name = "bob@example.com", .set = IG_RK_DENY, .deny = true, .line = 34 },
	{ .name = "scanner@example.com", .set = IG_RK_MECHANISMS, .mechs = B(PLAIN),
	  .line = 38 },
	{ .name = "dave@modern.example", .set = IG_RK_LOGIN_COMMAND, .login_command = true,
	  .line = 42 },
	{ .name = "nowhere@example.com", .set = IG_RK_ALLOW_FROM, .allow_from = "",
	  .line = 46 },
	/* Sets a key to the same value as the group: the user entry still wins. */
	{ .name = "frank@example.com", .set = IG_RK_ALLOW_FROM | IG_RK_REQUIRE_TLS,
	  .allow_from = "198.51.100.0/24", .require_tls = true, .line = 50 },
};

static const struct policy_spec office = {
	.fold_case = true, .defaults = OFFICE_DEFAULTS,
	.groups = office_groups, .ngroups = NROWS(office_groups),
	.users = office_users, .nusers = NROWS(office_users),
};

/* Attempts in rows: an ig_sasl_mech, or LOGINCMD for the IMAP LOGIN command
   (IG_MECH_COUNT itself is an unknown SASL mechanism). */
#define LOGINCMD (-1)
#define MECH_UNKNOWN ((int)IG_MECH_COUNT)

static struct ig_login_facts
facts(const char *user, const struct sockaddr_storage *ss, bool tls, int mech)
{
	struct ig_login_facts f = {
		.user = user, .mech = mech < 0 ? IG_MECH_COUNT : (enum ig_sasl_mech)mech,
		.login_cmd = mech < 0, .tls = tls, .addr = (const struct sockaddr *)ss,
		.listener = "imap",
	};
	return f;
}

struct decide_row {
	const char *user;            /* NULL: not known yet */
	const char *addr;
	bool tls;
	int mech;                    /* LOGINCMD: the LOGIN command */
	enum ig_verdict verdict;
	bool would_deny;
	const char *code;            /* NULL when allowed */
	const char *reason;
	const char *rule;
};

static const char *
text_for(const char *reason)
{
	static const struct { const char *reason, *text; } t[] = {
		{ "allowed", "" },
		{ "account-blocked", "Account blocked by the administrator" },
		{ "address-not-allowed", "Authentication failed." },
		{ "tls-required", "TLS is required: use STARTTLS or port 993 first" },
		{ "plaintext-not-from-network", "TLS is required: use STARTTLS or port 993 first" },
		{ "login-command-blocked", "The LOGIN command is disabled for this account: "
		  "use a token-based mechanism" },
		{ "mechanism-blocked", "Authentication mechanism not allowed for this account" },
	};
	for (size_t i = 0; i < NROWS(t); i++)
		if (strcmp(t[i].reason, reason) == 0)
			return t[i].text;
	fail_msg("no text for reason %s", reason);
	return NULL;
}

static void
check_rows(const struct policy_spec *spec, const struct decide_row *rows, size_t n)
{
	struct ig_policy_conf *p = build_policy(spec);
	for (size_t i = 0; i < n; i++) {
		const struct decide_row *r = &rows[i];
		struct sockaddr_storage ss;
		make_addr(r->addr, &ss);
		struct ig_login_facts f = facts(r->user, &ss, r->tls, r->mech);
		struct ig_decision d;
		memset(&d, 0xa5, sizeof(d));
		enum ig_verdict v = ig_policy_decide(p, &f, &d);
		print_message("row %zu: %s from %s tls=%d %s -> %s %s %s %s\n", i,
		    r->user ? r->user : "(unknown)", r->addr, r->tls,
		    f.login_cmd ? "LOGIN" : ig_sasl_mech_str(f.mech), ig_verdict_str(v),
		    d.would_deny ? "would-deny" : "-", d.reason, d.rule_name);
		assert_int_equal(v, d.verdict);
		assert_int_equal(d.verdict, r->verdict);
		assert_int_equal(d.would_deny, r->would_deny);
		if (r->code == NULL)
			assert_null(d.code);
		else
			assert_string_equal(d.code, r->code);
		assert_string_equal(d.reason, r->reason);
		assert_string_equal(d.text, text_for(r->reason));
		assert_string_equal(d.rule_name, r->rule);
		assert_non_null(d.rule);

		/* The explanation reaches the same verdict. */
		char *buf = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&buf, &len);
		assert_non_null(out);
		assert_int_equal(ig_policy_explain(p, &f, NULL, out), v);
		fclose(out);
		assert_non_null(strstr(buf, "verdict: "));
		free(buf);
	}
	free_policy(p);
}

#define ALLOW(rule) IG_VERDICT_ALLOW, false, NULL, "allowed", rule
#define DENY(code, reason, rule) IG_VERDICT_DENY, false, code, reason, rule
#define WOULD(code, reason, rule) IG_VERDICT_ALLOW, true, code, reason, rule

static const struct decide_row office_rows[] = {
	/* user entry over group over defaults, key by key */
	{ "alice@example.com", "192.0.2.5", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "user:alice@example.com") },
	{ "alice@example.com", "192.0.2.5", true, IG_MECH_PLAIN, ALLOW("user:alice@example.com") },
	{ "alice@example.com", "192.0.2.5", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ "alice@example.com", "192.0.2.5", true, IG_MECH_CRAM_MD5,
	  DENY("CONTACTADMIN", "mechanism-blocked", "defaults") },
	/* allow_from from the group: IPv4, IPv6, IPv4-mapped IPv6 */
	{ "alice@example.com", "198.51.100.1", true, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "group:everyone-example") },
	{ "alice@example.com", "::ffff:192.0.2.77", true, IG_MECH_PLAIN,
	  ALLOW("user:alice@example.com") },
	{ "alice@example.com", "::ffff:198.51.100.1", true, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "group:everyone-example") },
	{ "alice@example.com", "2001:db8:1::9", true, IG_MECH_XOAUTH2,
	  ALLOW("user:alice@example.com") },
	{ "alice@example.com", "2001:db9::1", true, IG_MECH_XOAUTH2,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "group:everyone-example") },
	/* allow_from is checked before TLS: no hint that TLS would help */
	{ "alice@example.com", "198.51.100.1", false, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "group:everyone-example") },
	/* deny comes first, wherever from and however */
	{ "bob@example.com", "192.0.2.5", true, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "account-blocked", "user:bob@example.com") },
	{ "bob@example.com", "203.0.113.9", false, LOGINCMD,
	  DENY("CONTACTADMIN", "account-blocked", "user:bob@example.com") },
	/* an explicit empty allow_from: from nowhere */
	{ "nowhere@example.com", "192.0.2.5", true, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "user:nowhere@example.com") },
	{ "nowhere@example.com", "::1", true, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "user:nowhere@example.com") },
	/* user allow_from replaces the group's */
	{ "frank@example.com", "198.51.100.7", true, IG_MECH_PLAIN, ALLOW("user:frank@example.com") },
	{ "frank@example.com", "192.0.2.5", true, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "user:frank@example.com") },
	{ "frank@example.com", "198.51.100.7", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "tls-required", "user:frank@example.com") },
	/* scanner: require_tls + allow_plaintext_from from the first group
	   (legacy-scanners, not everyone-example), mechanisms from the user,
	   login_command from the defaults */
	{ "scanner@example.com", "10.1.2.3", false, IG_MECH_PLAIN, ALLOW("user:scanner@example.com") },
	{ "scanner@example.com", "10.1.2.3", false, LOGINCMD, ALLOW("user:scanner@example.com") },
	{ "scanner@example.com", "10.1.2.3", false, IG_MECH_XOAUTH2,
	  DENY("CONTACTADMIN", "mechanism-blocked", "user:scanner@example.com") },
	{ "scanner@example.com", "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "plaintext-not-from-network", "group:legacy-scanners") },
	{ "scanner@example.com", "fd00::5", false, IG_MECH_PLAIN, ALLOW("user:scanner@example.com") },
	{ "scanner@example.com", "::ffff:10.9.9.9", false, IG_MECH_PLAIN,
	  ALLOW("user:scanner@example.com") },
	{ "scanner@example.com", "fe80::1", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "plaintext-not-from-network", "group:legacy-scanners") },
	/* with TLS, allow_plaintext_from does not matter; everyone-example's
	   allow_from does not apply (only the first group is layered) */
	{ "scanner@example.com", "203.0.113.9", true, IG_MECH_PLAIN, ALLOW("user:scanner@example.com") },
	/* *@domain: the domain compares case-insensitively */
	{ "x@scan.example", "10.0.0.1", false, LOGINCMD, ALLOW("group:legacy-scanners") },
	{ "x@scan.example", "11.0.0.1", false, LOGINCMD,
	  DENY("PRIVACYREQUIRED", "plaintext-not-from-network", "group:legacy-scanners") },
	/* first group wins: carol matches modern-only and everyone-example */
	{ "carol@example.com", "192.0.2.5", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "group:modern-only") },
	{ "carol@example.com", "198.51.100.1", true, IG_MECH_OAUTHBEARER, ALLOW("group:modern-only") },
	{ "carol@example.com", "192.0.2.5", true, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "mechanism-blocked", "group:modern-only") },
	/* user login_command over the group's; mechanisms still the group's */
	{ "dave@modern.example", "203.0.113.9", true, LOGINCMD, ALLOW("user:dave@modern.example") },
	{ "dave@modern.example", "203.0.113.9", true, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "mechanism-blocked", "group:modern-only") },
	{ "erin@modern.example", "203.0.113.9", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "group:modern-only") },
	/* no local part: not "*@modern.example" */
	{ "@modern.example", "203.0.113.9", true, LOGINCMD, ALLOW("defaults") },
	{ "x@sub.modern.example", "203.0.113.9", true, LOGINCMD, ALLOW("defaults") },
	/* no rule: the defaults */
	{ "zed@other.org", "203.0.113.9", true, IG_MECH_SCRAM_SHA_256, ALLOW("defaults") },
	{ "zed@other.org", "203.0.113.9", false, IG_MECH_SCRAM_SHA_256,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ "zed@other.org", "10.1.2.3", false, LOGINCMD,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ "zed@other.org", "203.0.113.9", true, IG_MECH_CRAM_MD5,
	  DENY("CONTACTADMIN", "mechanism-blocked", "defaults") },
	{ "zed@other.org", "203.0.113.9", true, MECH_UNKNOWN, DENY("CONTACTADMIN", "mechanism-blocked", "defaults") },
	/* fold_case: an unfolded name still meets its rules */
	{ "ALICE@Example.COM", "192.0.2.5", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "user:alice@example.com") },
	{ "Erin@MODERN.example", "192.0.2.5", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "group:modern-only") },
	/* user not known yet (AUTHENTICATE before the name) */
	{ NULL, "203.0.113.9", true, IG_MECH_PLAIN, ALLOW("defaults") },
	{ NULL, "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ NULL, "10.1.2.3", false, IG_MECH_PLAIN, ALLOW("defaults") },     /* legacy-scanners */
	{ NULL, "fd00::1", false, IG_MECH_XOAUTH2, ALLOW("defaults") },
	{ NULL, "203.0.113.9", true, IG_MECH_CRAM_MD5,
	  DENY("CONTACTADMIN", "mechanism-blocked", "defaults") },
	/* nobody may use CRAM-MD5: refused with the defaults' first failure */
	{ NULL, "10.1.2.3", false, IG_MECH_CRAM_MD5,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ NULL, "203.0.113.9", false, MECH_UNKNOWN,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
};

static void
test_office_rows(void **state)
{
	(void)state;
	check_rows(&office, office_rows, NROWS(office_rows));
}

/* policy.mode: monitor: every refusal becomes would_deny, same details. */
static const struct decide_row monitor_rows[] = {
	{ "alice@example.com", "192.0.2.5", false, IG_MECH_PLAIN,
	  WOULD("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ "alice@example.com", "192.0.2.5", true, LOGINCMD,
	  WOULD("CONTACTADMIN", "login-command-blocked", "user:alice@example.com") },
	{ "bob@example.com", "192.0.2.5", true, IG_MECH_PLAIN,
	  WOULD("CONTACTADMIN", "account-blocked", "user:bob@example.com") },
	{ "nowhere@example.com", "192.0.2.5", true, IG_MECH_PLAIN,
	  WOULD("AUTHENTICATIONFAILED", "address-not-allowed", "user:nowhere@example.com") },
	/* the first refusal is reported */
	{ "alice@example.com", "198.51.100.1", false, LOGINCMD,
	  WOULD("AUTHENTICATIONFAILED", "address-not-allowed", "group:everyone-example") },
	{ "alice@example.com", "192.0.2.5", true, IG_MECH_PLAIN, ALLOW("user:alice@example.com") },
	{ NULL, "203.0.113.9", false, IG_MECH_PLAIN,
	  WOULD("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ NULL, "203.0.113.9", true, IG_MECH_CRAM_MD5,
	  WOULD("CONTACTADMIN", "mechanism-blocked", "defaults") },
	{ NULL, "10.1.2.3", false, IG_MECH_PLAIN, ALLOW("defaults") },
};

static void
test_global_monitor(void **state)
{
	(void)state;
	struct policy_spec s = office;
	s.monitor = true;
	check_rows(&s, monitor_rows, NROWS(monitor_rows));
}

/*
 * Per-rule monitor: "trial" (a group trying out require_tls and no LOGIN
 * command) and one user entry are monitored while everything else enforces.
 */
static const struct rule_spec permon_groups[] = {
	{ .name = "trial", .patterns = "*@trial.example",
	  .set = IG_RK_REQUIRE_TLS | IG_RK_LOGIN_COMMAND | IG_RK_MODE,
	  .require_tls = true, .login_command = false, .monitor = true, .line = 10 },
	{ .name = "strict", .patterns = "*@strict.example",
	  .set = IG_RK_REQUIRE_TLS | IG_RK_LOGIN_COMMAND | IG_RK_MODE,
	  .require_tls = true, .login_command = false, .monitor = false, .line = 14 },
	{ .name = "office-only", .patterns = "*@office.example",
	  .set = IG_RK_ALLOW_FROM, .allow_from = "10.0.0.0/8", .line = 18 },
};

static const struct rule_spec permon_users[] = {
	/* monitored, but allow_from comes from an enforcing group */
	{ .name = "pat@office.example", .set = IG_RK_LOGIN_COMMAND | IG_RK_MODE,
	  .login_command = false, .monitor = true, .line = 24 },
	/* in the monitored group, but its own mechanisms enforce */
	{ .name = "tom@trial.example", .set = IG_RK_MECHANISMS, .mechs = B(XOAUTH2),
	  .line = 28 },
	/* monitor without IG_RK_MODE is not meaningful: enforced */
	{ .name = "ivy@trial.example", .set = IG_RK_LOGIN_COMMAND, .login_command = false,
	  .monitor = true, .line = 36 },
	/* mode: enforce explicitly in a monitored group */
	{ .name = "una@trial.example", .set = IG_RK_LOGIN_COMMAND | IG_RK_MODE,
	  .login_command = false, .monitor = false, .line = 32 },
};

static const struct policy_spec permon = {
	.fold_case = true,
	.defaults = { .name = "defaults", .set = ALL_BITS, .require_tls = false,
	  .mechs = IG_MECH_ALL, .login_command = true, .line = 4 },
	.groups = permon_groups, .ngroups = NROWS(permon_groups),
	.users = permon_users, .nusers = NROWS(permon_users),
};

static const struct decide_row permon_rows[] = {
	{ "ann@trial.example", "203.0.113.9", false, LOGINCMD,
	  WOULD("PRIVACYREQUIRED", "tls-required", "group:trial") },
	{ "ann@trial.example", "203.0.113.9", true, LOGINCMD,
	  WOULD("CONTACTADMIN", "login-command-blocked", "group:trial") },
	{ "ann@trial.example", "203.0.113.9", true, IG_MECH_PLAIN, ALLOW("group:trial") },
	{ "sam@strict.example", "203.0.113.9", false, LOGINCMD,
	  DENY("PRIVACYREQUIRED", "tls-required", "group:strict") },
	{ "sam@strict.example", "203.0.113.9", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "group:strict") },
	/* a monitored refusal does not open a later enforced one */
	{ "tom@trial.example", "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "mechanism-blocked", "user:tom@trial.example") },
	{ "tom@trial.example", "203.0.113.9", false, IG_MECH_XOAUTH2,
	  WOULD("PRIVACYREQUIRED", "tls-required", "group:trial") },
	{ "una@trial.example", "203.0.113.9", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "user:una@trial.example") },
	{ "una@trial.example", "203.0.113.9", false, IG_MECH_PLAIN,
	  WOULD("PRIVACYREQUIRED", "tls-required", "group:trial") },
	{ "ivy@trial.example", "203.0.113.9", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "user:ivy@trial.example") },
	{ "pat@office.example", "10.2.3.4", true, LOGINCMD,
	  WOULD("CONTACTADMIN", "login-command-blocked", "user:pat@office.example") },
	{ "pat@office.example", "192.0.2.1", true, LOGINCMD,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "group:office-only") },
	{ "pat@office.example", "192.0.2.1", true, IG_MECH_PLAIN,
	  DENY("AUTHENTICATIONFAILED", "address-not-allowed", "group:office-only") },
	{ "joe@office.example", "10.2.3.4", false, LOGINCMD, ALLOW("group:office-only") },
	{ NULL, "203.0.113.9", false, LOGINCMD, ALLOW("defaults") },
};

static void
test_rule_monitor(void **state)
{
	(void)state;
	check_rows(&permon, permon_rows, NROWS(permon_rows));
}

/*
 * User not known yet, where the defaults refuse: allowed when some group or
 * user entry could allow (even only in monitor mode), refused otherwise.
 */
static const struct rule_spec unk_groups[] = {
	{ .name = "pilot", .patterns = "*@pilot.example",
	  .set = IG_RK_REQUIRE_TLS | IG_RK_MODE, .require_tls = true, .monitor = true,
	  .line = 10 },
};

static const struct rule_spec unk_users[] = {
	{ .name = "ok@example.com", .set = IG_RK_DENY, .deny = false, .line = 20 },
};

static const struct policy_spec unk = {
	.fold_case = true,
	.defaults = { .name = "defaults", .set = ALL_BITS, .require_tls = true, .deny = true,
	  .mechs = IG_MECH_ALL, .login_command = true, .line = 4 },
	.groups = unk_groups, .ngroups = NROWS(unk_groups),
	.users = unk_users, .nusers = NROWS(unk_users),
};

static const struct decide_row unk_rows[] = {
	/* deny in the defaults, but ok@example.com may log in (with TLS) */
	{ NULL, "203.0.113.9", true, IG_MECH_PLAIN, ALLOW("defaults") },
	/* pilot members could, in cleartext, be let through by a monitored
	   rule... but the defaults' deny still applies to them */
	{ NULL, "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "account-blocked", "defaults") },
	{ "ok@example.com", "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ "ok@example.com", "203.0.113.9", true, IG_MECH_PLAIN, ALLOW("user:ok@example.com") },
	{ "x@pilot.example", "203.0.113.9", true, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "account-blocked", "defaults") },
};

static void
test_unknown_user(void **state)
{
	(void)state;
	check_rows(&unk, unk_rows, NROWS(unk_rows));
}

/* Only a monitored group lets cleartext through: allowed before the user. */
static const struct policy_spec unk_mon = {
	.fold_case = true,
	.defaults = { .name = "defaults", .set = ALL_BITS, .require_tls = true,
	  .mechs = IG_MECH_ALL, .login_command = true, .line = 4 },
	.groups = unk_groups, .ngroups = NROWS(unk_groups),
};

static const struct decide_row unk_mon_rows[] = {
	{ NULL, "203.0.113.9", false, IG_MECH_PLAIN, ALLOW("defaults") },
	{ "x@pilot.example", "203.0.113.9", false, IG_MECH_PLAIN,
	  WOULD("PRIVACYREQUIRED", "tls-required", "group:pilot") },
	{ "y@example.com", "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
};

static void
test_unknown_user_monitored_rule(void **state)
{
	(void)state;
	check_rows(&unk_mon, unk_mon_rows, NROWS(unk_mon_rows));
}

/* Defaults silent (a loader filling only policy.require_tls): built-ins. */
static const struct decide_row builtin_rows[] = {
	{ "a@b.c", "203.0.113.9", false, IG_MECH_PLAIN,
	  DENY("PRIVACYREQUIRED", "tls-required", "defaults") },
	{ "a@b.c", "203.0.113.9", true, IG_MECH_CRAM_MD5, ALLOW("defaults") },
	{ "a@b.c", "203.0.113.9", true, LOGINCMD, ALLOW("defaults") },
	{ NULL, "203.0.113.9", true, IG_MECH_PLAIN, ALLOW("defaults") },
};

static void
test_builtin_defaults(void **state)
{
	(void)state;
	struct policy_spec s = {
		.fold_case = true,
		.defaults = { .name = "defaults", .set = 0, .require_tls = true },
	};
	check_rows(&s, builtin_rows, NROWS(builtin_rows));
}

/* fold_case false: exact names are case-sensitive, domains are not. */
static const struct rule_spec cs_groups[] = {
	{ .name = "corp", .patterns = "*@Corp.Example,Mixed@Host", .set = IG_RK_LOGIN_COMMAND,
	  .login_command = false, .line = 10 },
};

static const struct rule_spec cs_users[] = {
	{ .name = "Alice@Example.com", .set = IG_RK_DENY, .deny = true, .line = 20 },
};

static const struct policy_spec cs = {
	.fold_case = false,
	.defaults = { .name = "defaults", .set = ALL_BITS, .require_tls = true,
	  .mechs = IG_MECH_ALL, .login_command = true, .line = 4 },
	.groups = cs_groups, .ngroups = NROWS(cs_groups),
	.users = cs_users, .nusers = NROWS(cs_users),
};

static const struct decide_row cs_rows[] = {
	{ "Alice@Example.com", "192.0.2.1", true, IG_MECH_PLAIN,
	  DENY("CONTACTADMIN", "account-blocked", "user:Alice@Example.com") },
	{ "alice@example.com", "192.0.2.1", true, IG_MECH_PLAIN, ALLOW("defaults") },
	{ "x@corp.EXAMPLE", "192.0.2.1", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "group:corp") },
	{ "Mixed@Host", "192.0.2.1", true, LOGINCMD,
	  DENY("CONTACTADMIN", "login-command-blocked", "group:corp") },
	{ "mixed@host", "192.0.2.1", true, LOGINCMD, ALLOW("defaults") },
};

static void
test_fold_case_off(void **state)
{
	(void)state;
	check_rows(&cs, cs_rows, NROWS(cs_rows));
}

struct pattern_row {
	const char *pattern, *user;
	bool fold_case, want;
};

static const struct pattern_row pattern_rows[] = {
	{ "alice@example.com", "alice@example.com", true, true },
	{ "alice@example.com", "alice@example.com", false, true },
	{ "alice@example.com", "ALICE@example.com", false, false },
	{ "alice@example.com", "ALICE@example.com", true, true },
	{ "alice@example.com", "alice@example.co", true, false },
	{ "*@example.com", "bob@example.com", true, true },
	{ "*@example.com", "bob@EXAMPLE.COM", false, true },
	{ "*@Example.Com", "bob@example.com", false, true },
	{ "*@example.com", "Bob@example.com", false, true },
	{ "*@example.com", "@example.com", true, false },
	{ "*@example.com", "example.com", true, false },
	{ "*@example.com", "bobexample.com", true, false },
	{ "*@example.com", "bob@sub.example.com", true, false },
	{ "*@example.com", "bob@example.com.evil", true, false },
	{ "*@example.com", "a@b@example.com", true, true },
	{ "*@", "a@", true, false },
	{ "*", "anyone", true, false },
	{ "*@example.com", "*@example.com", true, true },
	{ "", "", true, true },
	{ "a", "", true, false },
};

static void
test_pattern_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS(pattern_rows); i++) {
		const struct pattern_row *r = &pattern_rows[i];
		print_message("pattern row %zu: %s ~ %s\n", i, r->pattern, r->user);
		assert_int_equal(ig_policy_pattern_match(r->pattern, r->user, r->fold_case),
		    r->want);
	}
}

/* q covers p: every user p matches, q matches (the loader's shadowing). */
static const struct pattern_row covers_rows[] = {
	{ "*@example.com", "*@example.com", true, true },
	{ "*@example.com", "*@EXAMPLE.com", false, true },
	{ "*@example.com", "*@sub.example.com", true, false },
	{ "*@example.com", "bob@example.com", true, true },
	{ "*@example.com", "@example.com", true, false },
	{ "*@example.com", "a@b@example.com", true, true },
	{ "bob@example.com", "*@example.com", true, false },
	{ "bob@example.com", "bob@example.com", false, true },
	{ "bob@example.com", "Bob@example.com", false, false },
	{ "bob@example.com", "Bob@example.com", true, true },
	{ "@example.com", "@example.com", true, true },
	{ NULL, "bob@example.com", true, false },
};

static void
test_pattern_covers(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS(covers_rows); i++) {
		const struct pattern_row *r = &covers_rows[i];
		print_message("covers row %zu: %s covers %s\n", i, r->pattern ? r->pattern : "(null)",
		    r->user);
		assert_int_equal(ig_policy_pattern_covers(r->pattern, r->user, r->fold_case),
		    r->want);
	}
}

static void
test_rules_for(void **state)
{
	(void)state;
	struct ig_policy_conf *p = build_policy(&office);
	static const struct { const char *user, *urule, *grule; } rows[] = {
		{ "alice@example.com", "alice@example.com", "everyone-example" },
		{ "scanner@example.com", "scanner@example.com", "legacy-scanners" },
		{ "carol@example.com", NULL, "modern-only" },
		{ "dave@modern.example", "dave@modern.example", "modern-only" },
		{ "zed@other.org", NULL, NULL },
		{ NULL, NULL, NULL },
	};
	for (size_t i = 0; i < NROWS(rows); i++) {
		const struct ig_rule *u = (const void *)1, *g = (const void *)1;
		ig_policy_rules_for(p, rows[i].user, &u, &g);
		if (rows[i].urule == NULL) {
			assert_null(u);
		} else {
			assert_non_null(u);
			assert_string_equal(u->name, rows[i].urule);
		}
		if (rows[i].grule == NULL) {
			assert_null(g);
		} else {
			assert_non_null(g);
			assert_string_equal(g->name, rows[i].grule);
		}
		/* The same group, and the pattern that selected it. */
		const char *pat = NULL;
		assert_ptr_equal(ig_policy_group_for(p, rows[i].user, &pat), g);
		if (g != NULL)
			assert_true(ig_policy_pattern_match(pat, rows[i].user, p->fold_case));
		else
			assert_null(pat);
	}
	free_policy(p);
}

/* ig_policy_possible(): LOGINDISABLED and the AUTH= list per connection. */
struct possible_row {
	const struct policy_spec *spec;
	bool monitor;                /* policy.mode: monitor on top of spec */
	const char *addr;
	bool tls;
	bool login_ok;
	uint32_t mechs;
};

/* defaults: TLS, XOAUTH2 only, no LOGIN; group corp: cleartext allowed;
   user u@corp.example (on corp): PLAIN only; user v@x.example (no group):
   login_command. */
static const struct rule_spec lay_groups[] = {
	{ .name = "corp", .patterns = "*@corp.example", .set = IG_RK_REQUIRE_TLS,
	  .require_tls = false, .line = 10 },
};
static const struct rule_spec lay_users[] = {
	{ .name = "u@corp.example", .set = IG_RK_MECHANISMS, .mechs = B(PLAIN), .line = 20 },
	{ .name = "v@x.example", .set = IG_RK_LOGIN_COMMAND, .login_command = true, .line = 24 },
};
static const struct policy_spec lay = {
	.fold_case = true,
	.defaults = { .name = "defaults", .set = ALL_BITS, .require_tls = true,
	  .mechs = B(XOAUTH2), .login_command = false, .line = 4 },
	.groups = lay_groups, .ngroups = NROWS(lay_groups),
	.users = lay_users, .nusers = NROWS(lay_users),
};

/* defaults restricted to an office network (a non-empty defaults set). */
static const struct policy_spec officenet = {
	.fold_case = true,
	.defaults = { .name = "defaults", .set = ALL_BITS, .require_tls = false,
	  .mechs = IG_MECH_ALL, .login_command = true, .allow_from = "192.0.2.0/24",
	  .apf = "192.0.2.0/28", .line = 4 },
};

/* office group with cleartext, but no LOGIN command and PLAIN only */
static const struct rule_spec plainonly_groups[] = {
	{ .name = "printers", .patterns = "*@printers.example",
	  .set = IG_RK_REQUIRE_TLS | IG_RK_ALLOW_PLAINTEXT_FROM | IG_RK_LOGIN_COMMAND |
	  IG_RK_MECHANISMS, .require_tls = false, .apf = "10.0.0.0/8",
	  .login_command = false, .mechs = B(PLAIN), .line = 10 },
};
static const struct policy_spec plainonly = {
	.fold_case = true, .defaults = OFFICE_DEFAULTS,
	.groups = plainonly_groups, .ngroups = NROWS(plainonly_groups),
};

static const struct possible_row possible_rows[] = {
	/* office policy: TLS anywhere = the defaults */
	{ &office, false, "203.0.113.9", true, true, NO_CRAM },
	/* cleartext from elsewhere: LOGINDISABLED, no AUTH= */
	{ &office, false, "203.0.113.9", false, false, 0 },
	{ &office, false, "2001:db8::1", false, false, 0 },
	/* cleartext from the scanners' networks (group on the defaults) */
	{ &office, false, "10.1.2.3", false, true, NO_CRAM },
	{ &office, false, "::ffff:10.1.2.3", false, true, NO_CRAM },
	{ &office, false, "fd00::1", false, true, NO_CRAM },
	/* monitor mode restricts nothing */
	{ &office, true, "203.0.113.9", false, true, IG_MECH_ALL },
	/* user entries layer on their first group */
	{ &lay, false, "203.0.113.9", false, false, B(XOAUTH2) | B(PLAIN) },
	{ &lay, false, "203.0.113.9", true, true, B(XOAUTH2) | B(PLAIN) },
	/* a non-empty defaults allow_from / allow_plaintext_from restricts */
	{ &officenet, false, "192.0.2.5", false, true, IG_MECH_ALL },
	{ &officenet, false, "192.0.2.200", false, false, 0 },
	{ &officenet, false, "192.0.2.200", true, true, IG_MECH_ALL },
	{ &officenet, false, "198.51.100.1", true, false, 0 },
	/* cleartext only for a group without the LOGIN command */
	{ &plainonly, false, "10.1.2.3", false, false, B(PLAIN) },
	{ &plainonly, false, "192.0.2.1", false, false, 0 },
	{ &plainonly, false, "192.0.2.1", true, true, NO_CRAM },
	/* per-rule monitor: the monitored trial group restricts nothing it decides */
	{ &permon, false, "203.0.113.9", false, true, IG_MECH_ALL },
	{ &unk, false, "203.0.113.9", false, false, 0 },
	{ &unk, false, "203.0.113.9", true, true, IG_MECH_ALL },
	{ &unk_mon, false, "203.0.113.9", false, true, IG_MECH_ALL },
};

static void
test_possible(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS(possible_rows); i++) {
		const struct possible_row *r = &possible_rows[i];
		struct policy_spec s = *r->spec;
		s.monitor = s.monitor || r->monitor;
		struct ig_policy_conf *p = build_policy(&s);
		struct sockaddr_storage ss;
		make_addr(r->addr, &ss);
		struct ig_login_facts f = {
			.user = NULL, .mech = IG_MECH_COUNT, .tls = r->tls,
			.addr = (const struct sockaddr *)&ss, .listener = "imap",
		};
		bool login_ok = !r->login_ok;
		uint32_t m = ig_policy_possible(p, &f, &login_ok);
		print_message("possible row %zu: %s tls=%d -> login=%d mechs=%#x\n", i,
		    r->addr, r->tls, login_ok, m);
		assert_int_equal(login_ok, r->login_ok);
		assert_int_equal(m, r->mechs);
		free_policy(p);
	}
}

/* The explanation: captured, checked line by line. */
static char *
explain(const struct policy_spec *s, const char *user, const char *addr, bool tls,
    int mech, const char *path, enum ig_verdict *v)
{
	struct ig_policy_conf *p = build_policy(s);
	struct sockaddr_storage ss;
	make_addr(addr, &ss);
	struct ig_login_facts f = facts(user, &ss, tls, mech);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	*v = ig_policy_explain(p, &f, path, out);
	fclose(out);
	free_policy(p);
	fputs(buf, stdout);
	fputs("--\n", stdout);
	return buf;
}

/* True when some line of text starts with start and contains every other
   string given (NULL-terminated). */
static bool
has_line(const char *text, const char *start, ...)
{
	for (const char *l = text; l != NULL && *l; ) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		char line[1024];
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, l, len);
		line[len] = '\0';
		if (strncmp(line, start, strlen(start)) == 0) {
			bool all = true;
			va_list ap;
			va_start(ap, start);
			for (const char *s = va_arg(ap, const char *); s != NULL;
			    s = va_arg(ap, const char *))
				if (strstr(line, s) == NULL)
					all = false;
			va_end(ap);
			if (all)
				return true;
		}
		l = nl ? nl + 1 : NULL;
	}
	return false;
}

struct explain_row {
	const struct policy_spec *spec;
	bool monitor;
	const char *user, *addr;
	bool tls;
	int mech;
	const char *path;
	enum ig_verdict verdict;
	const char *lines[8][5];     /* { start, contains..., NULL } */
};

static const struct explain_row explain_rows[] = {
	{ &office, false, "alice@example.com", "192.0.2.2", false, LOGINCMD, "/etc/ig.yaml",
	  IG_VERDICT_DENY, {
	  { "user alice@example.com from 192.0.2.2 on listener imap, TLS no, command LOGIN",
	    NULL },
	  { "  user alice@example.com (/etc/ig.yaml:30): matches", NULL },
	  { "  group modern-only (/etc/ig.yaml:12): no pattern matches", NULL },
	  { "  group everyone-example (/etc/ig.yaml:22): matches", "*@example.com", NULL },
	  { "  defaults (/etc/ig.yaml:8)", NULL },
	  { "  login_command ", "false", "from user:alice@example.com", NULL },
	  { "  tls: FAIL require_tls is true and TLS is not active  -> NO [PRIVACYREQUIRED]",
	    "defaults", NULL },
	  { "verdict: deny (reason tls-required, rule defaults", NULL } } },
	{ &office, false, "scanner@example.com", "10.1.2.3", false, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_ALLOW, {
	  { "user scanner@example.com from 10.1.2.3 on listener imap, TLS no, "
	    "command AUTHENTICATE PLAIN", NULL },
	  { "  group legacy-scanners (line 18): matches", NULL },
	  { "  group everyone-example (line 22): matches", "earlier group", NULL },
	  { "  require_tls ", "false", "from group:legacy-scanners", NULL },
	  { "  allow_plaintext_from ", "10.0.0.0/8,fd00::/8", "from group:legacy-scanners",
	    NULL },
	  { "  mechanisms ", "PLAIN ", "from user:scanner@example.com", NULL },
	  { "  allow_from: pass (no restriction)", NULL },
	  { "verdict: allow (reason allowed, rule user:scanner@example.com)", NULL } } },
	{ &office, false, "nowhere@example.com", "2001:db8::7", true, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_DENY, {
	  { "  user nowhere@example.com (line 46): matches", NULL },
	  { "  allow_from ", "[] (nowhere)", "from user:nowhere@example.com", NULL },
	  { "  deny: pass", NULL },
	  { "  allow_from: FAIL", "-> NO [AUTHENTICATIONFAILED]", NULL },
	  { "verdict: deny (reason address-not-allowed, rule user:nowhere@example.com", NULL },
	  { NULL } } },
	{ &office, true, "alice@example.com", "192.0.2.2", false, LOGINCMD, NULL,
	  IG_VERDICT_ALLOW, {
	  { "policy mode: monitor", NULL },
	  { "  tls: FAIL", "monitor mode: not enforced", NULL },
	  { "  login_command: FAIL login_command is false", "monitor mode", NULL },
	  { "verdict: would deny (monitor mode), allowed", "tls-required", NULL },
	  { NULL } } },
	{ &permon, false, "tom@trial.example", "203.0.113.9", false, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_DENY, {
	  { "  group trial (line 10): matches", "mode monitor", NULL },
	  { "  tls: FAIL", "by group:trial (monitor mode: not enforced)", NULL },
	  { "  mechanism: FAIL PLAIN is not in mechanisms", "CONTACTADMIN", NULL },
	  { "verdict: deny (reason mechanism-blocked, rule user:tom@trial.example", NULL },
	  { NULL } } },
	{ &permon, false, "ann@trial.example", "203.0.113.9", false, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_ALLOW, {
	  { "verdict: would deny (monitor mode), allowed (reason tls-required, rule group:trial",
	    NULL },
	  { NULL } } },
	{ &office, false, NULL, "203.0.113.9", false, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_DENY, {
	  { "user (not known yet) from 203.0.113.9", "AUTHENTICATE PLAIN", NULL },
	  { "other rules: none could allow", NULL },
	  { "verdict: deny (reason tls-required, rule defaults", NULL },
	  { NULL } } },
	{ &office, false, NULL, "10.1.2.3", false, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_ALLOW, {
	  { "other rules: some group or user entry could allow", NULL },
	  { "verdict: allow", NULL },
	  { NULL } } },
	{ &office, false, "zed@other.org", "::ffff:203.0.113.9", true, IG_MECH_PLAIN, NULL,
	  IG_VERDICT_ALLOW, {
	  { "user zed@other.org from ::ffff:203.0.113.9", "TLS yes", NULL },
	  { "  user zed@other.org: no user entry", NULL },
	  { "  tls: pass (TLS is active)", NULL },
	  { "verdict: allow (reason allowed, rule defaults)", NULL },
	  { NULL } } },
};

static void
test_explain(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS(explain_rows); i++) {
		const struct explain_row *r = &explain_rows[i];
		struct policy_spec s = *r->spec;
		s.monitor = s.monitor || r->monitor;
		enum ig_verdict v;
		char *buf = explain(&s, r->user, r->addr, r->tls, r->mech, r->path, &v);
		assert_int_equal(v, r->verdict);
		for (size_t j = 0; j < 8 && r->lines[j][0] != NULL; j++) {
			const char *const *l = r->lines[j];
			bool ok = has_line(buf, l[0], l[1], l[2], l[3], l[4]);
			if (!ok)
				print_message("explain row %zu: no line \"%s\"...\n", i, l[0]);
			assert_true(ok);
		}
		free(buf);
	}
}

/* credentials: layered like every key, carried by the decision whatever
 * the verdict, explained in one line. */
static const struct rule_spec cred_groups[] = {
	{ .name = "mfa", .patterns = "*@example.com", .set = IG_RK_CREDENTIALS,
	  .cred = IG_CRED_APP_PASSWORDS, .line = 12 },
	{ .name = "migrating", .patterns = "*@old.example",
	  .set = IG_RK_CREDENTIALS | IG_RK_MODE, .cred = IG_CRED_BOTH, .monitor = true,
	  .line = 16 },
	{ .name = "trial", .patterns = "*@trial.example",
	  .set = IG_RK_CREDENTIALS | IG_RK_MODE, .cred = IG_CRED_APP_PASSWORDS,
	  .monitor = true, .line = 20 },
	{ .name = "blocked", .patterns = "*@blocked.example", .set = IG_RK_DENY, .deny = true,
	  .line = 24 },
};
static const struct rule_spec cred_users[] = {
	{ .name = "printer@example.com", .set = IG_RK_CREDENTIALS, .cred = IG_CRED_BOTH,
	  .line = 30 },
	{ .name = "eve@blocked.example", .set = IG_RK_CREDENTIALS,
	  .cred = IG_CRED_APP_PASSWORDS, .line = 34 },
};
static const struct policy_spec cred_policy = {
	.fold_case = true, .defaults = OFFICE_DEFAULTS,
	.groups = cred_groups, .ngroups = NROWS(cred_groups),
	.users = cred_users, .nusers = NROWS(cred_users),
};

static void
test_credentials(void **state)
{
	(void)state;
	static const struct {
		const struct policy_spec *spec;
		const char *user;
		enum ig_verdict verdict;
		enum ig_credentials cred;
		const char *rule;
		bool monitored;
	} rows[] = {
		{ &cred_policy, "alice@example.com", IG_VERDICT_ALLOW, IG_CRED_APP_PASSWORDS,
		  "group:mfa", false },
		{ &cred_policy, "ALICE@EXAMPLE.COM", IG_VERDICT_ALLOW, IG_CRED_APP_PASSWORDS,
		  "group:mfa", false },
		{ &cred_policy, "printer@example.com", IG_VERDICT_ALLOW, IG_CRED_BOTH,
		  "user:printer@example.com", false },
		{ &cred_policy, "joe@old.example", IG_VERDICT_ALLOW, IG_CRED_BOTH,
		  "group:migrating", true },
		{ &cred_policy, "tom@trial.example", IG_VERDICT_ALLOW, IG_CRED_APP_PASSWORDS,
		  "group:trial", true },
		{ &cred_policy, "zed@other.org", IG_VERDICT_ALLOW, IG_CRED_PASSWORD,
		  "defaults", false },
		/* Carried with a refusal too. */
		{ &cred_policy, "eve@blocked.example", IG_VERDICT_DENY, IG_CRED_APP_PASSWORDS,
		  "user:eve@blocked.example", false },
		{ &cred_policy, "mallory@blocked.example", IG_VERDICT_DENY, IG_CRED_PASSWORD,
		  "defaults", false },
		/* Not known yet: the defaults' (decided again once it is). */
		{ &cred_policy, NULL, IG_VERDICT_ALLOW, IG_CRED_PASSWORD, "defaults", false },
		/* The office policy never sets it: the built-in password. */
		{ &office, "zed@other.org", IG_VERDICT_ALLOW, IG_CRED_PASSWORD, "defaults",
		  false },
	};
	for (size_t i = 0; i < NROWS(rows); i++) {
		struct ig_policy_conf *p = build_policy(rows[i].spec);
		struct sockaddr_storage ss;
		make_addr("192.0.2.2", &ss);
		struct ig_login_facts f = facts(rows[i].user, &ss, true, IG_MECH_PLAIN);
		struct ig_decision d;
		memset(&d, 0xa5, sizeof(d));
		print_message("credentials row %zu: %s\n", i, rows[i].user ? rows[i].user : "-");
		assert_int_equal(ig_policy_decide(p, &f, &d), rows[i].verdict);
		assert_int_equal(d.credentials, rows[i].cred);
		assert_non_null(d.credentials_rule);
		assert_string_equal(d.credentials_rule_name, rows[i].rule);
		assert_int_equal(d.credentials_monitored, rows[i].monitored);
		free_policy(p);
	}

	/* Under policy.mode: monitor every credentials rule is monitored. */
	struct policy_spec mon = cred_policy;
	mon.monitor = true;
	struct ig_policy_conf *p = build_policy(&mon);
	struct sockaddr_storage ss;
	make_addr("192.0.2.2", &ss);
	struct ig_login_facts f = facts("alice@example.com", &ss, true, LOGINCMD);
	struct ig_decision d;
	ig_policy_decide(p, &f, &d);
	assert_int_equal(d.credentials, IG_CRED_APP_PASSWORDS);
	assert_true(d.credentials_monitored);
	free_policy(p);

	assert_string_equal(ig_credentials_str(IG_CRED_PASSWORD), "password");
	assert_string_equal(ig_credentials_str(IG_CRED_APP_PASSWORDS), "app_passwords");
	assert_string_equal(ig_credentials_str(IG_CRED_BOTH), "both");
	assert_string_equal(ig_credentials_str(IG_CRED_COUNT), "?");
}

static void
test_explain_credentials(void **state)
{
	(void)state;
	static const struct {
		const char *user;
		const char *setting;   /* the effective settings row */
		const char *line;      /* the credentials line */
	} rows[] = {
		{ "alice@example.com", "from group:mfa",
		  "credentials: app_passwords (group mfa): the account password is refused; only "
		  "an app password logs in" },
		{ "printer@example.com", "from user:printer@example.com",
		  "credentials: both (user printer@example.com): an app password or the account "
		  "password logs in (the log says which)" },
		{ "tom@trial.example", "from group:trial",
		  "credentials: app_passwords (group trial): the account password is refused; only "
		  "an app password logs in (monitor mode: a login with the account password is "
		  "logged, not refused)" },
		{ "zed@other.org", "from defaults (built-in)",
		  "credentials: password (built-in): the account password logs in, checked by the "
		  "backend; app passwords are not accepted" },
	};
	for (size_t i = 0; i < NROWS(rows); i++) {
		enum ig_verdict v;
		char *buf = explain(&cred_policy, rows[i].user, "192.0.2.2", true, LOGINCMD, NULL,
		    &v);
		assert_int_equal(v, IG_VERDICT_ALLOW);
		assert_true(has_line(buf, "  credentials ", rows[i].setting, NULL));
		assert_true(has_line(buf, rows[i].line, NULL));
		/* Just before the verdict. */
		const char *at = strstr(buf, rows[i].line);
		assert_non_null(at);
		assert_non_null(strstr(at, "\nverdict: "));
		free(buf);
	}
}

static void
test_verdict_str(void **state)
{
	(void)state;
	assert_string_equal(ig_verdict_str(IG_VERDICT_ALLOW), "allow");
	assert_string_equal(ig_verdict_str(IG_VERDICT_DENY), "deny");
	assert_string_equal(ig_verdict_str(IG_VERDICT_TEMPFAIL), "tempfail");
	assert_string_equal(ig_verdict_str(IG_VERDICT_COUNT), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_office_rows),
		cmocka_unit_test(test_global_monitor),
		cmocka_unit_test(test_rule_monitor),
		cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_unknown_user_monitored_rule),
		cmocka_unit_test(test_builtin_defaults),
		cmocka_unit_test(test_fold_case_off),
		cmocka_unit_test(test_pattern_match),
		cmocka_unit_test(test_pattern_covers),
		cmocka_unit_test(test_rules_for),
		cmocka_unit_test(test_possible),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_credentials),
		cmocka_unit_test(test_explain_credentials),
		cmocka_unit_test(test_verdict_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
