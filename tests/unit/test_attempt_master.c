/*
 * Unit test for ig_attempt_use_master() (proxy/attempt.h), the one entry
 * to a login as backend.master_login: on a session built by hand (the only
 * fields it reads: the attempt, the backend state, the generation's
 * config), each refusal leaves everything as it was, and the success wipes
 * the client's secret and sets the attempt's as_master. This test includes
 * the session's private types (proxy/session_types.h) for that.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"
#include "proxy/attempt.h"
#include "proxy/gen.h"
#include "proxy/session_types.h"
#include "util/err.h"

#define CLIENT_SECRET "the-users-own-password"

struct fix {
	struct ig_config cfg;
	struct ig_gen gen;
	struct ig_session s;
	uint8_t cmd[256];
};

/* A LOGIN attempt by alice whose user and password are in cmd, judged and
   not yet sent; the generation has a master login of style sep. */
static struct fix *
fix_new(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	struct ig_master_login *m = &f->cfg.backend.master_login;
	m->on = true;
	snprintf(m->user, sizeof(m->user), "imapguard-master");
	m->style = IG_MASTER_SEPARATOR;
	m->separator[0] = '*';
	m->secret = (uint8_t *)(uintptr_t)"master-secret";
	m->secret_len = strlen("master-secret");
	f->gen.cfg = &f->cfg;
	f->s.gen = &f->gen;
	f->s.bstate = IG_BS_NONE;
	struct ig_attempt *a = &f->s.att;
	a->active = true;
	a->login_cmd = true;
	a->decided = true;
	snprintf(a->user, sizeof(a->user), "alice@example.com");
	a->user_known = true;
	a->cmd = f->cmd;
	a->cmd_cap = sizeof(f->cmd);
	size_t ul = strlen(a->user);
	/* As attempt.c's writers do: the extent first, then the bytes. */
	ig_attempt_cmd_dirty(a, ul + strlen(CLIENT_SECRET));
	memcpy(a->cmd, a->user, ul);
	memcpy(a->cmd + ul, CLIENT_SECRET, strlen(CLIENT_SECRET));
	a->ir_off = ul;
	a->ir_len = strlen(CLIENT_SECRET);
	a->cmd_len = ul + a->ir_len;
	return f;
}

static bool
holds_secret(const struct fix *f)
{
	return memmem(f->cmd, sizeof(f->cmd), CLIENT_SECRET, strlen(CLIENT_SECRET)) != NULL;
}

static void
test_use_master(void **state)
{
	(void)state;
	struct fix *f = fix_new();
	assert_int_equal(ig_attempt_use_master(&f->s), 0);
	assert_true(f->s.att.as_master);
	assert_false(holds_secret(f));
	assert_int_equal(f->s.att.cmd_len, 0);
	assert_int_equal(f->s.att.ir_len, 0);
	/* Once the backend connection is on its way, too (the login is
	   formatted when it is ready). */
	free(f);
	f = fix_new();
	f->s.bstate = IG_BS_CAPABILITY;
	assert_int_equal(ig_attempt_use_master(&f->s), 0);
	assert_true(f->s.att.as_master);
	free(f);
}

static void
test_refusals_change_nothing(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		int want;
	} rows[] = {
		{ "no attempt", IG_EINVAL },
		{ "user not known", IG_EINVAL },
		{ "not allowed by the policy", IG_EINVAL },
		{ "login already sent", IG_EINVAL },
		{ "no master_login", IG_ENOTFOUND },
		{ "separator in the name", IG_EINVAL },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fix *f = fix_new();
		switch (i) {
		case 0: f->s.att.active = false; break;
		case 1: f->s.att.user_known = false; break;
		case 2: f->s.att.decided = false; break;
		case 3: f->s.bstate = IG_BS_AUTH; break;
		case 4: f->cfg.backend.master_login.on = false; break;
		case 5: snprintf(f->s.att.user, sizeof(f->s.att.user), "a*b@example.com"); break;
		default: fail();
		}
		print_message("%s\n", rows[i].what);
		assert_int_equal(ig_attempt_use_master(&f->s), rows[i].want);
		assert_false(f->s.att.as_master);
		assert_true(holds_secret(f));
		assert_int_equal(f->s.att.ir_len, strlen(CLIENT_SECRET));
		free(f);
	}
	/* With style authzid the separator does not matter. */
	struct fix *f = fix_new();
	f->cfg.backend.master_login.style = IG_MASTER_AUTHZID;
	snprintf(f->s.att.user, sizeof(f->s.att.user), "a*b@example.com");
	assert_int_equal(ig_attempt_use_master(&f->s), 0);
	assert_true(f->s.att.as_master);
	free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_use_master),
		cmocka_unit_test(test_refusals_change_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
