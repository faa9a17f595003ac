/*
 * Unit tests for proxy/caps.c: filtering the backend's capability list for
 * one connection, finding the list in a response line, and the learned
 * list with its fallback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/caps.h"
#include "util/err.h"
#include "util/sasl.h"

/* Dovecot 2.3's pre-login list on a STARTTLS port, and after STARTTLS. */
#define DOVECOT_PRE "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN"
#define DOVECOT_PRE_LD "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED"
#define DOVECOT_TLS "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"
#define DOVECOT_TLS_MANY "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ " \
	"AUTH=PLAIN AUTH=LOGIN AUTH=GSSAPI AUTH=SCRAM-SHA-256 AUTH=XOAUTH2 AUTH=OAUTHBEARER"

#define MB(m) IG_MECH_BIT(IG_MECH_##m)
#define SECRET_MECHS (MB(PLAIN) | MB(LOGIN) | MB(XOAUTH2) | MB(OAUTHBEARER))

/* Cleartext on a STARTTLS listener, LOGIN refused, no secrets in the clear. */
static const struct ig_caps_view v_clear = { true, false, IG_MECH_ALL & ~SECRET_MECHS };
/* Same with nothing at all allowed before TLS. */
static const struct ig_caps_view v_clear_none = { true, false, 0 };
/* After STARTTLS, or on implicit TLS: everything allowed. */
static const struct ig_caps_view v_tls = { false, true, IG_MECH_ALL };
/* TLS, but only SCRAM-SHA-256 and OAUTHBEARER, LOGIN refused. */
static const struct ig_caps_view v_restricted = { false, false,
	MB(SCRAM_SHA_256) | MB(OAUTHBEARER) };
/* Cleartext on a STARTTLS listener where cleartext login is allowed. */
static const struct ig_caps_view v_clear_open = { true, true, IG_MECH_ALL };

struct filter_row {
	const char *backend;
	const struct ig_caps_view *v;
	size_t outsz;
	int rc;
	const char *want;
};

static const struct filter_row filter_rows[] = {
	/* Cleartext STARTTLS listener, login not allowed. */
	{ DOVECOT_PRE, &v_clear, IG_CAPS_MAX, 0,
	  "IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED" },
	{ DOVECOT_PRE_LD, &v_clear_none, IG_CAPS_MAX, 0,
	  "IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED" },
	/* The backend's post-STARTTLS list shown on cleartext keeps SCRAM only. */
	{ DOVECOT_TLS_MANY, &v_clear, IG_CAPS_MAX, 0,
	  "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	  "AUTH=SCRAM-SHA-256 STARTTLS LOGINDISABLED" },
	/* After STARTTLS: no STARTTLS, AUTH=PLAIN shown. */
	{ DOVECOT_PRE, &v_tls, IG_CAPS_MAX, 0, DOVECOT_TLS },
	/* No AUTH= left, so no SASL-IR either. */
	{ DOVECOT_PRE_LD, &v_tls, IG_CAPS_MAX, 0,
	  "IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+" },
	/* Implicit TLS: the backend's TLS list passes (GSSAPI is unknown). */
	{ DOVECOT_TLS, &v_tls, IG_CAPS_MAX, 0, DOVECOT_TLS },
	{ DOVECOT_TLS_MANY, &v_tls, IG_CAPS_MAX, 0,
	  "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	  "AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256 AUTH=XOAUTH2 AUTH=OAUTHBEARER" },
	/* Restricted mechanism set. */
	{ DOVECOT_TLS_MANY, &v_restricted, IG_CAPS_MAX, 0,
	  "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	  "AUTH=SCRAM-SHA-256 AUTH=OAUTHBEARER LOGINDISABLED" },
	{ DOVECOT_TLS, &v_restricted, IG_CAPS_MAX, 0,
	  "IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ LOGINDISABLED" },
	/* Cleartext allowed by configuration. */
	{ DOVECOT_PRE, &v_clear_open, IG_CAPS_MAX, 0,
	  "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN STARTTLS" },
	/* Unknown mechanisms are dropped, and SASL-IR with them. */
	{ "IMAP4rev1 SASL-IR AUTH=GSSAPI AUTH=NTLM AUTH= AUTH=SCRAM-SHA-256-PLUS", &v_tls,
	  IG_CAPS_MAX, 0, "IMAP4rev1" },
	/* Duplicates go, in any case; the first spelling stays. */
	{ "IMAP4rev1 IDLE idle AUTH=PLAIN auth=plain Auth=Plain IDLE imap4rev1", &v_tls,
	  IG_CAPS_MAX, 0, "IMAP4rev1 IDLE AUTH=PLAIN" },
	/* Lower-case input: control tokens recognised, others kept verbatim. */
	{ "imap4rev1 sasl-ir starttls logindisabled auth=plain auth=scram-sha-1 literal+",
	  &v_clear, IG_CAPS_MAX, 0,
	  "imap4rev1 sasl-ir AUTH=SCRAM-SHA-1 literal+ STARTTLS LOGINDISABLED" },
	{ "imap4rev1 sasl-ir starttls logindisabled auth=plain literal+", &v_tls,
	  IG_CAPS_MAX, 0, "imap4rev1 sasl-ir AUTH=PLAIN literal+" },
	/* IMAP4rev1 added first when missing. */
	{ "IDLE AUTH=PLAIN", &v_tls, IG_CAPS_MAX, 0, "IMAP4rev1 IDLE AUTH=PLAIN" },
	{ "IMAP4rev2 IDLE", &v_tls, IG_CAPS_MAX, 0, "IMAP4rev1 IMAP4rev2 IDLE" },
	{ "IDLE IMAP4rev1", &v_tls, IG_CAPS_MAX, 0, "IDLE IMAP4rev1" },
	{ "", &v_tls, IG_CAPS_MAX, 0, "IMAP4rev1" },
	{ "", &v_clear, IG_CAPS_MAX, 0, "IMAP4rev1 STARTTLS LOGINDISABLED" },
	/* Extra spaces are tolerated. */
	{ "  IMAP4rev1   IDLE  ", &v_tls, IG_CAPS_MAX, 0, "IMAP4rev1 IDLE" },
	/* Non-atoms never reach the client. */
	{ "IMAP4rev1 ID\r\n* BYE x IDLE X]Y \"Q\" \xc3\xa9 (A) {5} a*b", &v_tls, IG_CAPS_MAX, 0,
	  "IMAP4rev1 BYE x IDLE" },
	{ "IMAP4rev1 IDLE\tX", &v_tls, IG_CAPS_MAX, 0, "IMAP4rev1" },
	/* Output too small: exact fit passes, one byte less fails. */
	{ DOVECOT_TLS, &v_tls, sizeof(DOVECOT_TLS), 0, DOVECOT_TLS },
	{ DOVECOT_TLS, &v_tls, sizeof(DOVECOT_TLS) - 1, IG_ETOOLONG, "" },
	{ DOVECOT_PRE, &v_clear, 10, IG_ETOOLONG, "" },
	{ "IDLE", &v_tls, 10, IG_ETOOLONG, "" },
	{ "IDLE", &v_tls, 15, 0, "IMAP4rev1 IDLE" },
	{ "", &v_clear, 9, IG_ETOOLONG, "" },
	{ "", &v_tls, 10, 0, "IMAP4rev1" },
	{ "", &v_tls, 9, IG_ETOOLONG, "" },
	{ "", &v_tls, 1, IG_ETOOLONG, "" },
};

static void
test_filter_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(filter_rows) / sizeof(filter_rows[0]); i++) {
		const struct filter_row *r = &filter_rows[i];
		char out[IG_CAPS_MAX];
		memset(out, 'X', sizeof(out));
		int rc = ig_caps_filter(r->backend, r->v, out, r->outsz);
		if (rc != r->rc)
			fail_msg("row %zu: rc %d, want %d", i, rc, r->rc);
		if (strcmp(out, r->want) != 0)
			fail_msg("row %zu: got '%s'\n want '%s'", i, out, r->want);
		/* Filtering is idempotent. */
		if (rc == 0) {
			char again[IG_CAPS_MAX];
			assert_int_equal(ig_caps_filter(out, r->v, again, sizeof(again)), 0);
			assert_string_equal(again, out);
		}
	}
}

static void
test_filter_args(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(ig_caps_filter("IMAP4rev1", NULL, out, sizeof(out)), IG_EINVAL);
	assert_string_equal(out, "");
	assert_int_equal(ig_caps_filter(NULL, &v_tls, out, sizeof(out)), 0);
	assert_string_equal(out, "IMAP4rev1");
	assert_int_equal(ig_caps_filter("IMAP4rev1", &v_tls, NULL, 0), IG_ETOOLONG);
	assert_int_equal(ig_caps_filter("IMAP4rev1", &v_tls, out, 0), IG_ETOOLONG);
}

struct has_row {
	const char *caps;
	const char *cap;
	bool want;
};

static const struct has_row has_rows[] = {
	{ DOVECOT_PRE, "STARTTLS", true },
	{ DOVECOT_PRE, "starttls", true },
	{ DOVECOT_PRE, "auth=plain", true },
	{ DOVECOT_PRE, "IMAP4rev1", true },
	{ DOVECOT_PRE, "LOGINDISABLED", false },
	{ DOVECOT_PRE, "AUTH", false },
	{ DOVECOT_PRE, "LITERAL", false },
	{ DOVECOT_PRE, "IMAP4", false },
	{ "LITERAL+", "LITERAL+", true },
	{ "  IDLE  ", "IDLE", true },
	{ "", "IDLE", false },
	{ "IDLE", "", false },
	{ NULL, "IDLE", false },
	{ "IDLE", NULL, false },
};

static void
test_has_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(has_rows) / sizeof(has_rows[0]); i++) {
		if (ig_caps_has(has_rows[i].caps, has_rows[i].cap) != has_rows[i].want)
			fail_msg("row %zu: %s in %s", i, has_rows[i].cap, has_rows[i].caps);
	}
}

struct resp_row {
	const char *line;
	size_t outsz;
	int rc;
	const char *want;
};

static const struct resp_row resp_rows[] = {
	{ "* CAPABILITY " DOVECOT_PRE, IG_CAPS_MAX, 0, DOVECOT_PRE },
	{ "* OK [CAPABILITY " DOVECOT_PRE "] Dovecot ready.", IG_CAPS_MAX, 0, DOVECOT_PRE },
	{ "a1 OK [CAPABILITY " DOVECOT_TLS "] Logged in", IG_CAPS_MAX, 0, DOVECOT_TLS },
	{ "A0001 OK [CAPABILITY IMAP4rev1 IDLE]", IG_CAPS_MAX, 0, "IMAP4rev1 IDLE" },
	{ "* ok [capability IMAP4rev1 IDLE] hi", IG_CAPS_MAX, 0, "IMAP4rev1 IDLE" },
	{ "* capability imap4rev1", IG_CAPS_MAX, 0, "imap4rev1" },
	{ "* CAPABILITY  IMAP4rev1  IDLE ", IG_CAPS_MAX, 0, "IMAP4rev1 IDLE" },
	{ "a]b OK [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, 0, "IMAP4rev1" },
	/* Output too small. */
	{ "* CAPABILITY IMAP4rev1 IDLE", 15, 0, "IMAP4rev1 IDLE" },
	{ "* CAPABILITY IMAP4rev1 IDLE", 14, IG_ETOOLONG, "" },
	{ "* OK [CAPABILITY IMAP4rev1 IDLE] x", 10, IG_ETOOLONG, "" },
	/* No capabilities here. */
	{ "* OK Dovecot ready.", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* OK [ALERT] CAPABILITY IMAP4rev1", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* CAPABILITY", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* CAPABILITY ", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* CAPABILITYX IMAP4rev1", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* OK [CAPABILITY]", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* OK [CAPABILITY ] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* OK [CAPABILITY IMAP4rev1 IDLE", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* OK [CAPABILITY IMAP4rev1]x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* NO [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* BYE [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* PREAUTH [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "a1 NO [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "a1 BAD [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "+ OK [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "a+ OK [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ " OK [CAPABILITY IMAP4rev1] x", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "a1 OK", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "a1", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "*", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* CAPABILITY IMAP4rev1 ID\r", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* CAPABILITY IMAP4rev1 X]", IG_CAPS_MAX, IG_ENOTFOUND, "" },
	{ "* CAPABILITY IMAP4rev1\tIDLE", IG_CAPS_MAX, IG_ENOTFOUND, "" },
};

static void
test_from_response_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(resp_rows) / sizeof(resp_rows[0]); i++) {
		const struct resp_row *r = &resp_rows[i];
		char out[IG_CAPS_MAX];
		memset(out, 'X', sizeof(out));
		struct ig_span line = { (const uint8_t *)r->line, strlen(r->line) };
		int rc = ig_caps_from_response(line, out, r->outsz);
		if (rc != r->rc)
			fail_msg("row %zu (%s): rc %d, want %d", i, r->line, rc, r->rc);
		if (strcmp(out, r->want) != 0)
			fail_msg("row %zu (%s): got '%s'", i, r->line, out);
	}

	/* The span is honoured: no reading past len, NULs are not special. */
	char out[64];
	struct ig_span cut = { (const uint8_t *)"* CAPABILITY IMAP4rev1 IDLE", 22 };
	assert_int_equal(ig_caps_from_response(cut, out, sizeof(out)), 0);
	assert_string_equal(out, "IMAP4rev1");
	struct ig_span nul = { (const uint8_t *)"* CAPABILITY IMAP4rev1\0IDLE", 27 };
	assert_int_equal(ig_caps_from_response(nul, out, sizeof(out)), IG_ENOTFOUND);
	struct ig_span none = { NULL, 0 };
	assert_int_equal(ig_caps_from_response(none, out, sizeof(out)), IG_ENOTFOUND);
	assert_int_equal(ig_caps_from_response(cut, NULL, 0), IG_ETOOLONG);
}

/* From the backend's greeting to what the client sees. */
static void
test_greeting_to_client(void **state)
{
	(void)state;
	const char *greet = "* OK [CAPABILITY " DOVECOT_PRE "] Dovecot ready.";
	struct ig_span line = { (const uint8_t *)greet, strlen(greet) };
	char backend[IG_CAPS_MAX], shown[IG_CAPS_MAX];
	assert_int_equal(ig_caps_from_response(line, backend, sizeof(backend)), 0);
	assert_int_equal(ig_caps_filter(backend, &v_clear, shown, sizeof(shown)), 0);
	assert_true(ig_caps_has(shown, "STARTTLS"));
	assert_true(ig_caps_has(shown, "LOGINDISABLED"));
	assert_false(ig_caps_has(shown, "AUTH=PLAIN"));
	assert_false(ig_caps_has(shown, "SASL-IR"));
	assert_int_equal(ig_caps_filter(backend, &v_tls, shown, sizeof(shown)), 0);
	assert_false(ig_caps_has(shown, "STARTTLS"));
	assert_false(ig_caps_has(shown, "LOGINDISABLED"));
	assert_true(ig_caps_has(shown, "AUTH=PLAIN"));
	assert_true(ig_caps_has(shown, "SASL-IR"));
}

/* The learned list: the fallback first, what the backend says once said. */
/*
 * The memo gives back a list only for the version and the view it was
 * kept for, replaces the entry of the same view when a version is newer,
 * the oldest one otherwise, and never writes past outsz.
 */
static void
test_memo(void **state)
{
	(void)state;
	static struct ig_caps_memo m; /* zeroed: empty */
	char out[64];
	struct ig_caps_view v_other = v_tls;
	v_other.mechs_allowed = 0;

	assert_false(ig_caps_memo_get(&m, 0, &v_tls, out, sizeof(out)));
	ig_caps_memo_put(&m, 1, &v_tls, "IMAP4rev1 AUTH=PLAIN");
	assert_true(ig_caps_memo_get(&m, 1, &v_tls, out, sizeof(out)));
	assert_string_equal(out, "IMAP4rev1 AUTH=PLAIN");
	assert_false(ig_caps_memo_get(&m, 2, &v_tls, out, sizeof(out)));
	assert_false(ig_caps_memo_get(&m, 1, &v_clear, out, sizeof(out)));
	assert_false(ig_caps_memo_get(&m, 1, &v_other, out, sizeof(out)));

	/* A newer version for the same view takes its entry. */
	ig_caps_memo_put(&m, 2, &v_tls, "IMAP4rev1 ID");
	assert_false(ig_caps_memo_get(&m, 1, &v_tls, out, sizeof(out)));
	assert_true(ig_caps_memo_get(&m, 2, &v_tls, out, sizeof(out)));
	assert_string_equal(out, "IMAP4rev1 ID");

	/* Other views fill the rest; past IG_CAPS_MEMO the oldest goes. */
	ig_caps_memo_put(&m, 2, &v_clear, "IMAP4rev1 STARTTLS LOGINDISABLED");
	ig_caps_memo_put(&m, 2, &v_other, "IMAP4rev1");
	struct ig_caps_view extra[IG_CAPS_MEMO];
	for (unsigned i = 0; i < IG_CAPS_MEMO; i++) {
		extra[i] = v_tls;
		extra[i].mechs_allowed = 1u << (20 + i);
	}
	for (unsigned i = 0; i + 3 < IG_CAPS_MEMO; i++)
		ig_caps_memo_put(&m, 2, &extra[i], "IMAP4rev1 X");
	assert_true(ig_caps_memo_get(&m, 2, &v_tls, out, sizeof(out)));
	ig_caps_memo_put(&m, 2, &extra[IG_CAPS_MEMO - 1], "IMAP4rev1 Y");
	assert_false(ig_caps_memo_get(&m, 2, &v_tls, out, sizeof(out)));
	assert_true(ig_caps_memo_get(&m, 2, &extra[IG_CAPS_MEMO - 1], out, sizeof(out)));
	assert_string_equal(out, "IMAP4rev1 Y");

	/* Too long for the caller's buffer: not given, nothing written. */
	memset(out, 'z', sizeof(out));
	assert_false(ig_caps_memo_get(&m, 2, &v_clear, out, 10));
	assert_int_equal(out[0], 'z');
	assert_true(ig_caps_memo_get(&m, 2, &v_clear, out, sizeof(out)));
	assert_string_equal(out, "IMAP4rev1 STARTTLS LOGINDISABLED");
}

static void
test_learned(void **state)
{
	(void)state;
	struct ig_caps_learned l;
	memset(&l, 0, sizeof(l));
	char shown[IG_CAPS_MAX];

	/* Nothing learned: the fallback, filtered like any list. */
	assert_false(l.known);
	assert_string_equal(ig_caps_backend(&l), IG_CAPS_FALLBACK);
	ig_caps_shown(&l, &v_tls, shown, sizeof(shown));
	assert_string_equal(shown, "IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN AUTH=LOGIN");
	ig_caps_shown(&l, &v_clear, shown, sizeof(shown));
	assert_string_equal(shown, "IMAP4rev1 LITERAL+ ID STARTTLS LOGINDISABLED");

	/* A line without capabilities teaches nothing and keeps the list. */
	const char *bare = "* OK Dovecot ready.";
	struct ig_span line = { (const uint8_t *)bare, strlen(bare) };
	assert_int_equal(ig_caps_learn_line(&l, line), IG_ENOTFOUND);
	assert_false(l.known);

	const char *greet = "* OK [CAPABILITY " DOVECOT_PRE "] Dovecot ready.";
	line = (struct ig_span){ (const uint8_t *)greet, strlen(greet) };
	assert_int_equal(ig_caps_learn_line(&l, line), 0);
	assert_true(l.known);
	assert_string_equal(ig_caps_backend(&l), DOVECOT_PRE);
	ig_caps_shown(&l, &v_tls, shown, sizeof(shown));
	assert_string_equal(shown, DOVECOT_TLS);
	assert_int_equal(ig_caps_learn_line(&l, (struct ig_span){
	    (const uint8_t *)bare, strlen(bare) }), IG_ENOTFOUND);
	assert_string_equal(ig_caps_backend(&l), DOVECOT_PRE);

	/* An empty or oversized list is refused and changes nothing. */
	assert_int_equal(ig_caps_learn(&l, ""), IG_ENOTFOUND);
	assert_int_equal(ig_caps_learn(&l, NULL), IG_ENOTFOUND);
	static char big[IG_CAPS_MAX + 1];
	memset(big, 'A', sizeof(big) - 1);
	assert_int_equal(ig_caps_learn(&l, big), IG_ETOOLONG);
	assert_string_equal(ig_caps_backend(&l), DOVECOT_PRE);
	assert_int_equal(ig_caps_learn(&l, "IMAP4rev1 ID AUTH=PLAIN"), 0);
	assert_string_equal(ig_caps_backend(&l), "IMAP4rev1 ID AUTH=PLAIN");

	/* A list that does not fit the caller's buffer: IMAP4rev1 alone. */
	char small[16];
	ig_caps_shown(&l, &v_tls, small, sizeof(small));
	assert_string_equal(small, "IMAP4rev1");

	/* Forgotten: the fallback again. */
	ig_caps_forget(&l);
	assert_false(l.known);
	assert_string_equal(ig_caps_backend(&l), IG_CAPS_FALLBACK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_rows),
		cmocka_unit_test(test_filter_args),
		cmocka_unit_test(test_has_rows),
		cmocka_unit_test(test_from_response_rows),
		cmocka_unit_test(test_greeting_to_client),
		cmocka_unit_test(test_learned),
		cmocka_unit_test(test_memo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
