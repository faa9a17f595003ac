/*
 * Unit tests for backend.master_login in config/: the documented shape and
 * its defaults, the password file (a private regular file whose first line
 * is the secret, read at load and wiped with the config), and every error
 * and warning with its exact text at its FILE:LINE:COL. No message ever
 * carries the secret. Also the policy key credentials, whose app_passwords
 * and both need backend.master_login.
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

#include "config/config.h"
#include "config_fixture.h"
#include "policy/policy_types.h"
#include "util/err.h"

CFGFIX_SETUP_TEARDOWN("igmst")

#define SECRET "s3cret-Master-pw"

/* Writes path with exactly len bytes of data, then sets mode. */
static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
write_secret(const char *path, const char *text, mode_t mode)
{
	write_file(path, text, strlen(text), mode);
}

/* backend.master_login from line 11 (the base's backend section goes on). */
#define MASTER(body) CFGFIX_BASE "  master_login:\n" body

static void
test_absent(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_master_login *m = &cfg->backend.master_login;
	assert_false(m->on);
	assert_null(m->secret);
	assert_int_equal(m->secret_len, 0);
	assert_null(m->password_file);
	ig_config_free(cfg);
	free(msgs);
}

/* The documented shape, and the defaults of style and separator. */
static void
test_good(void **state)
{
	(void)state;
	static const struct {
		const char *file;     /* the file's content */
		const char *yaml;
		enum ig_master_style style;
		char sep;
		const char *user;
	} rows[] = {
		{ SECRET "\n", MASTER(
		    "    user: imapguard-master\n"
		    "    password_file: master.secret\n"
		    "    style: separator\n"
		    "    separator: \"*\"\n"), IG_MASTER_SEPARATOR, '*', "imapguard-master" },
		/* Defaults: separator, "*". No newline at the end of the file. */
		{ SECRET, MASTER(
		    "    user: proxy\n"
		    "    password_file: master.secret\n"), IG_MASTER_SEPARATOR, '*', "proxy" },
		/* Only the first line counts. */
		{ SECRET "\nsecond line\n", MASTER(
		    "    user: proxy@example.com\n"
		    "    password_file: master.secret\n"
		    "    style: authzid\n"), IG_MASTER_AUTHZID, '*', "proxy@example.com" },
		{ SECRET "\n", MASTER(
		    "    user: m\n"
		    "    password_file: master.secret\n"
		    "    separator: \"%\"\n"), IG_MASTER_SEPARATOR, '%', "m" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		write_secret("master.secret", rows[i].file, 0600);
		int rc;
		struct ig_config *cfg;
		char *msgs = load(rows[i].yaml, &rc, &cfg);
		assert_string_equal(msgs, "");
		assert_int_equal(rc, 0);
		const struct ig_master_login *m = &cfg->backend.master_login;
		assert_true(m->on);
		assert_string_equal(m->user, rows[i].user);
		assert_string_equal(m->password_file, "master.secret");
		assert_int_equal(m->style, rows[i].style);
		assert_int_equal(m->separator[0], rows[i].sep);
		assert_int_equal(m->separator[1], '\0');
		assert_int_equal(m->secret_len, strlen(SECRET));
		assert_memory_equal(m->secret, SECRET, strlen(SECRET));
		ig_config_free(cfg);
		free(msgs);
	}
	/* Stricter than 0600 is fine too. */
	write_secret("master.secret", SECRET "\n", 0400);
	int rc;
	char *msgs = load(MASTER("    user: m\n    password_file: master.secret\n"), &rc, NULL);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	free(msgs);
	unlink("master.secret");
	assert_string_equal(ig_master_style_str(IG_MASTER_SEPARATOR), "separator");
	assert_string_equal(ig_master_style_str(IG_MASTER_AUTHZID), "authzid");
}

/* The file: each refusal at the password_file value (line 13, column 20). */
static void
test_file_errors(void **state)
{
	(void)state;
	static const struct {
		const char *content;   /* NULL: no file */
		size_t len;            /* 0: strlen(content) */
		mode_t mode;
		const char *msgs;
	} rows[] = {
		{ NULL, 0, 0600, "t.yaml:13:20: cannot read 'master.secret' for "
		    "'backend.master_login.password_file': No such file or directory\n" },
		{ SECRET "\n", 0, 0644, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': its mode 0644 lets other users read it; "
		    "it holds the master password: chmod 600 (the owner only)\n" },
		{ SECRET "\n", 0, 0604, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': its mode 0604 lets other users read it; "
		    "it holds the master password: chmod 600 (the owner only)\n" },
		{ SECRET "\n", 0, 0620, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': its mode 0620 lets other users write it; "
		    "it holds the master password: chmod 600 (the owner only)\n" },
		{ "", 0, 0600, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': it is empty (its first line is the "
		    "master password)\n" },
		{ "\n" SECRET "\n", 0, 0600, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': its first line is empty (it is the "
		    "master password)\n" },
		{ SECRET "\r\n", 0, 0600, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': its first line contains a carriage "
		    "return (CRLF line ends? the password would end in CR)\n" },
		{ "ab\0cd\n", 6, 0600, "t.yaml:13:20: cannot use 'master.secret' for "
		    "'backend.master_login.password_file': its first line contains a NUL byte\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].content != NULL)
			write_file("master.secret", rows[i].content,
			    rows[i].len ? rows[i].len : strlen(rows[i].content), rows[i].mode);
		int rc;
		char *msgs = load(MASTER("    user: m\n    password_file: master.secret\n"), &rc,
		    NULL);
		assert_string_equal(msgs, rows[i].msgs);
		assert_int_equal(rc, IG_ECONFIG);
		assert_null(strstr(msgs, SECRET));
		free(msgs);
		unlink("master.secret");
	}

	/* 1024 bytes is the longest secret; 1025 is refused. */
	char big[1100];
	memset(big, 'x', sizeof(big));
	big[1024] = '\n';
	write_file("master.secret", big, 1025, 0600);
	int rc;
	struct ig_config *cfg;
	char *msgs = load(MASTER("    user: m\n    password_file: master.secret\n"), &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->backend.master_login.secret_len, 1024);
	ig_config_free(cfg);
	free(msgs);
	big[1024] = 'x';
	write_file("master.secret", big, sizeof(big), 0600); /* no newline at all */
	msgs = load(MASTER("    user: m\n    password_file: master.secret\n"), &rc, NULL);
	assert_string_equal(msgs, "t.yaml:13:20: cannot use 'master.secret' for "
	    "'backend.master_login.password_file': its first line is longer than 1024 bytes\n");
	assert_int_equal(rc, IG_ECONFIG);
	free(msgs);
	unlink("master.secret");

	/* A directory, and a FIFO (which must not hang the load). */
	assert_int_equal(mkdir("master.d", 0700), 0);
	msgs = load(MASTER("    user: m\n    password_file: master.d\n"), &rc, NULL);
	assert_string_equal(msgs, "t.yaml:13:20: cannot use 'master.d' for "
	    "'backend.master_login.password_file': not a regular file\n");
	free(msgs);
	rmdir("master.d");
	assert_int_equal(mkfifo("master.fifo", 0600), 0);
	msgs = load(MASTER("    user: m\n    password_file: master.fifo\n"), &rc, NULL);
	assert_string_equal(msgs, "t.yaml:13:20: cannot use 'master.fifo' for "
	    "'backend.master_login.password_file': not a regular file\n");
	free(msgs);
	unlink("master.fifo");
}

/* The other keys, each error at its place. */
static void
test_key_errors(void **state)
{
	(void)state;
	write_secret("master.secret", SECRET "\n", 0600);
	static const struct {
		const char *yaml;
		const char *msgs;
	} rows[] = {
		{ MASTER("    user: m\n    password_file: master.secret\n    style: plain\n"),
		  "t.yaml:14:12: invalid value 'plain' for 'backend.master_login.style': "
		  "expected one of separator, authzid\n" },
		{ MASTER("    user: m\n    password_file: master.secret\n    separator: \"**\"\n"),
		  "t.yaml:14:16: invalid value '**' for 'backend.master_login.separator': "
		  "expected one printable character, not a space (Dovecot's "
		  "auth_master_user_separator, e.g. \"*\")\n" },
		{ MASTER("    user: m\n    password_file: master.secret\n    separator: \" \"\n"),
		  "t.yaml:14:16: invalid value ' ' for 'backend.master_login.separator': "
		  "expected one printable character, not a space (Dovecot's "
		  "auth_master_user_separator, e.g. \"*\")\n" },
		{ MASTER("    user: m\n    password_file: master.secret\n    separator: \"\\xe9\"\n"),
		  "t.yaml:14:16: invalid value '\\xc3\\xa9' for 'backend.master_login.separator': "
		  "expected one printable character, not a space (Dovecot's "
		  "auth_master_user_separator, e.g. \"*\")\n" },
		{ MASTER("    password_file: master.secret\n"),
		  "t.yaml:12:5: missing required key 'user' in 'backend.master_login'\n" },
		{ MASTER("    user: m\n"),
		  "t.yaml:12:5: missing required key 'password_file' in 'backend.master_login'\n" },
		{ MASTER("    user: \"m\\r\\n\"\n    password_file: master.secret\n"),
		  "t.yaml:12:11: invalid user name 'm\\x0d\\x0a' for 'backend.master_login.user': "
		  "it contains CR or LF\n" },
		{ MASTER("    user: m\n    pasword_file: master.secret\n"),
		  "t.yaml:12:5: missing required key 'password_file' in 'backend.master_login'\n"
		  "t.yaml:13:5: unknown key 'pasword_file' in 'backend.master_login' "
		  "(did you mean 'password_file'?)\n" },
		{ CFGFIX_BASE "  master_login:\n",
		  "t.yaml:11:16: 'backend.master_login' needs user and password_file (or remove "
		  "the key)\n" },
		{ CFGFIX_BASE "  master_login: imapguard-master\n",
		  "t.yaml:11:17: 'backend.master_login' must be a mapping, not a scalar\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc;
		char *msgs = load(rows[i].yaml, &rc, NULL);
		assert_string_equal(msgs, rows[i].msgs);
		assert_int_equal(rc, IG_ECONFIG);
		free(msgs);
	}

	/* A separator with style authzid does nothing: a warning. */
	int rc;
	struct ig_config *cfg;
	char *msgs = load(MASTER("    user: m\n    password_file: master.secret\n"
	    "    style: authzid\n    separator: \"*\"\n"), &rc, &cfg);
	assert_string_equal(msgs, "t.yaml:15:5: warning: 'backend.master_login.separator' has "
	    "no effect with style: authzid\n");
	assert_int_equal(rc, 0);
	ig_config_free(cfg);
	free(msgs);
	unlink("master.secret");
}

/* A master login from line 11 to 13, for the credentials rows. */
#define WITH_MASTER MASTER("    user: m\n    password_file: master.secret\n")
/* Where the app passwords are kept, at the end (no line numbers move). */
#define WITH_STORE "app_passwords:\n  store: apppass.db\n"

static void
test_credentials(void **state)
{
	(void)state;
	write_secret("master.secret", SECRET "\n", 0600);
	int rc;
	struct ig_config *cfg;
	char *msgs = load(WITH_MASTER
	    "policy:\n"
	    "  defaults:\n"
	    "    credentials: password\n"
	    "  groups:\n"
	    "    mfa:\n"
	    "      users: [\"*@example.com\"]\n"
	    "      credentials: app_passwords\n"
	    "    rest:\n"
	    "      users: [\"*@other.example\"]\n"
	    "  users:\n"
	    "    printer@example.com:\n"
	    "      credentials: both\n" WITH_STORE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_policy_conf *p = &cfg->policy;
	assert_int_equal(p->defaults.credentials, IG_CRED_PASSWORD);
	assert_true(p->defaults.set & IG_RK_CREDENTIALS);
	assert_int_equal(p->ngroups, 2);
	assert_int_equal(p->groups[0].credentials, IG_CRED_APP_PASSWORDS);
	assert_true(p->groups[0].set & IG_RK_CREDENTIALS);
	assert_int_equal(p->groups[1].credentials, IG_CRED_PASSWORD);
	assert_false(p->groups[1].set & IG_RK_CREDENTIALS);
	assert_int_equal(p->nusers, 1);
	assert_int_equal(p->users[0].credentials, IG_CRED_BOTH);
	ig_config_free(cfg);
	free(msgs);

	/* Everyone on app passwords, from the defaults. */
	msgs = load(WITH_MASTER "policy:\n  defaults:\n    credentials: app_passwords\n"
	    WITH_STORE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->policy.defaults.credentials, IG_CRED_APP_PASSWORDS);
	ig_config_free(cfg);
	free(msgs);

	/* A master login but no store: nothing could check an app password. */
	msgs = load(WITH_MASTER "policy:\n  defaults:\n    credentials: both\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs, "t.yaml:16:18: 'policy.defaults.credentials' is both, which "
	    "needs app_passwords.store: where the app passwords are kept\n");
	free(msgs);
	unlink("master.secret");

	/* Without backend.master_login: each rule that needs it, named, at its
	   value; a bad word at its place. */
	msgs = load(CFGFIX_BASE
	    "policy:\n"                                              /* 11 */
	    "  defaults:\n"
	    "    credentials: both\n"
	    "  groups:\n"
	    "    mfa:\n"                                             /* 15 */
	    "      users: [\"*@example.com\"]\n"
	    "      credentials: app_passwords\n"
	    "    typo:\n"
	    "      users: [\"*@typo.example\"]\n"
	    "      credentials: app_password\n"                      /* 20 */
	    "    fine:\n"
	    "      users: [\"*@fine.example\"]\n"
	    "      credentials: password\n"
	    "  users:\n"
	    "    Printer@Example.com:\n"                             /* 25 */
	    "      credentials: both\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:13:18: 'policy.defaults.credentials' is both, which needs "
	    "backend.master_login: the proxy checks the app password itself, then logs in to "
	    "the backend as the master user for this user\n"
	    "t.yaml:17:20: 'policy.groups.mfa.credentials' is app_passwords, which needs "
	    "backend.master_login: the proxy checks the app password itself, then logs in to "
	    "the backend as the master user for this user\n"
	    "t.yaml:20:20: invalid value 'app_password' for 'policy.groups.typo.credentials': "
	    "expected one of password, app_passwords, both\n"
	    "t.yaml:26:20: 'policy.users.printer@example.com.credentials' is both, which needs "
	    "backend.master_login: the proxy checks the app password itself, then logs in to "
	    "the backend as the master user for this user\n");
	free(msgs);

	/* A blocked user's credentials do nothing. */
	write_secret("master.secret", SECRET "\n", 0600);
	msgs = load(WITH_MASTER
	    "policy:\n"
	    "  users:\n"
	    "    eve@example.com:\n"
	    "      deny: true\n"
	    "      credentials: app_passwords\n" WITH_STORE, &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs, "t.yaml:18:7: warning: 'credentials' has no effect: this "
	    "entry has deny: true\n");
	ig_config_free(cfg);
	free(msgs);
	unlink("master.secret");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
