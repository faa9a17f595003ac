/*
 * Unit tests for config/: the full example loads with the right
 * values, defaults apply, and every kind of mistake is reported with its
 * exact text at its FILE:LINE:COL. Each test runs in a fresh temporary
 * directory holding cert.pem, key.pem and ca.pem, so configs name them
 * relatively.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "config/config.h"
#include "config_fixture.h"
#include "util/err.h"

static int
setup(void **state)
{
	struct cfgfix *t = cfgfix_enter("igcfg");
	if (t == NULL)
		return -1;
	touch("ca.pem", 0644);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	unlink("ca.pem");
	unlink("demo-run/certs/server-ecdsa.pem");
	unlink("demo-run/certs/server-ecdsa.key");
	unlink("demo-run/certs/server-rsa.pem");
	unlink("demo-run/certs/server-rsa.key");
	rmdir("demo-run/certs");
	rmdir("demo-run");
	return cfgfix_leave(*state);
}

static const char full_example[] =
    "log_level: info                 # error | warn | info | debug\n"
    "listeners:\n"
    "  - name: imaps\n"
    "    listen: \"0.0.0.0:993\"       # also \"[::]:993\"\n"
    "    tls: implicit               # implicit | starttls\n"
    "    max_sessions: 5000          # optional\n"
    "  - name: imap\n"
    "    listen: \"[::]:143\"\n"
    "    tls: starttls\n"
    "tls:\n"
    "  certificates:\n"
    "    - cert: cert.pem\n"
    "      key: key.pem\n"
    "  min_version: \"1.3\"\n"
    "  strict_sni: true\n"
    "  session_tickets: false\n"
    "  session_timeout: 10m\n"
    "  session_cache_size: 0\n"
    "  crypto: mbedtls\n"
    "backend:\n"
    "  address: \"127.0.0.1:1143\"\n"
    "  tls: starttls\n"
    "  ca: ca.pem\n"
    "  server_name: mail.internal\n"
    "  verify: true\n"
    "  forward_client_address: id\n"
    "  connect_timeout: 10s\n"
    "  auth_timeout: 2m\n"
    "limits:\n"
    "  max_line: 4096\n"
    "  max_literal: 2048\n"
    "  buffer_size: 32768\n"
    "  handshake_timeout: 30s\n"
    "  preauth_timeout: 45\n"
    "  idle_timeout: 1h\n"
    "  max_errors: 7\n"
    "  max_sessions: 20000\n"
    "policy:\n"
    "  defaults:\n"
    "    require_tls: true\n"
    "workers: 4                      # auto (default) | 1..256\n";

static void
test_full_example(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(full_example, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->path, "t.yaml");
	assert_int_equal(cfg->log_level, IG_LOG_INFO);
	assert_int_equal(cfg->workers, 4);

	assert_int_equal(cfg->nlisteners, 2);
	const struct ig_listener_conf *l = &cfg->listeners[0];
	assert_string_equal(l->name, "imaps");
	assert_string_equal(l->listen, "0.0.0.0:993");
	assert_int_equal(l->tls, IG_TLS_IMPLICIT);
	assert_int_equal(l->max_sessions, 5000);
	assert_int_equal(l->addr.ss_family, AF_INET);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((const struct sockaddr_in *)&l->addr)->sin_port), 993);
	l = &cfg->listeners[1];
	assert_string_equal(l->name, "imap");
	assert_int_equal(l->tls, IG_TLS_STARTTLS);
	assert_int_equal(l->addr.ss_family, AF_INET6);
	assert_int_equal(ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port), 143);
	assert_int_equal(l->max_sessions, 20000); /* filled from limits */

	assert_int_equal(cfg->ncerts, 1);
	assert_string_equal(cfg->certs[0].cert_path, "cert.pem");
	assert_string_equal(cfg->certs[0].key_path, "key.pem");
	assert_int_equal(cfg->tls_min_version, 13);
	assert_int_equal(cfg->tls_crypto, IG_CRYPTO_MBEDTLS);
	assert_true(cfg->strict_sni);
	assert_false(cfg->tls_tickets);
	assert_int_equal(cfg->tls_session_timeout_ms, 10 * 60 * 1000);
	assert_int_equal(cfg->tls_session_cache, 0);

	const struct ig_backend_conf *b = &cfg->backend;
	assert_string_equal(b->address, "127.0.0.1:1143");
	assert_string_equal(b->host, "127.0.0.1");
	assert_int_equal(b->port, 1143);
	assert_int_equal(b->addr.ss_family, AF_INET);
	assert_int_equal(b->addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((const struct sockaddr_in *)&b->addr)->sin_port), 1143);
	assert_int_equal(b->tls, IG_TLS_STARTTLS);
	assert_string_equal(b->ca, "ca.pem");
	assert_string_equal(b->server_name, "mail.internal");
	assert_true(b->tls_verify);
	assert_int_equal(b->forward_client_address, IG_FORWARD_ID);
	assert_int_equal(b->connect_timeout_ms, 10000);
	assert_int_equal(b->auth_timeout_ms, 120000);

	assert_int_equal(cfg->limits.max_line, 4096);
	assert_int_equal(cfg->limits.max_literal, 2048);
	assert_int_equal(cfg->limits.buffer_size, 32768);
	assert_int_equal(cfg->limits.handshake_timeout_ms, 30000);
	assert_int_equal(cfg->limits.preauth_timeout_ms, 45000);
	assert_int_equal(cfg->limits.idle_timeout_ms, 3600000);
	assert_int_equal(cfg->limits.max_errors, 7);
	assert_int_equal(cfg->limits.max_sessions, 20000);
	assert_true(cfg->policy.require_tls);
	ig_config_free(cfg);
	free(msgs);
}


static void
test_defaults(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->log_level, IG_LOG_INFO);
	assert_int_equal(cfg->listeners[0].max_sessions, 10000);
	assert_int_equal(cfg->workers, 0); /* auto */
	assert_int_equal(cfg->tls_min_version, 12);
	assert_false(cfg->strict_sni);
	assert_true(cfg->tls_tickets);
	assert_int_equal(cfg->tls_session_timeout_ms, 3600 * 1000);
	assert_int_equal(cfg->tls_session_cache, 10000);
	assert_int_equal(cfg->tls_crypto, IG_CRYPTO_AUTO);
	assert_int_equal(cfg->backend.tls, IG_TLS_NONE);
	assert_null(cfg->backend.ca);
	assert_null(cfg->backend.server_name);
	assert_true(cfg->backend.tls_verify);
	assert_int_equal(cfg->backend.forward_client_address, IG_FORWARD_ID);
	assert_int_equal(cfg->backend.connect_timeout_ms, 10000);
	assert_int_equal(cfg->backend.auth_timeout_ms, 60000);
	assert_int_equal(cfg->limits.max_line, 8192);
	assert_int_equal(cfg->limits.max_literal, 8192);
	assert_int_equal(cfg->limits.buffer_size, 16384);
	assert_int_equal(cfg->limits.handshake_timeout_ms, 30000);
	assert_int_equal(cfg->limits.preauth_timeout_ms, 60000);
	assert_int_equal(cfg->limits.idle_timeout_ms, 35 * 60000);
	assert_int_equal(cfg->limits.max_errors, 10);
	assert_int_equal(cfg->limits.max_sessions, 10000);
	assert_true(cfg->policy.require_tls);
	ig_config_free(cfg);
	free(msgs);

	/* Empty sections mean "all defaults". */
	msgs = load(CFGFIX_BASE "limits:\npolicy:\n  defaults:\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->limits.buffer_size, 16384);
	ig_config_free(cfg);
	free(msgs);
}

struct err_row {
	const char *yaml;
	int rc;
	const char *want; /* everything written to errf */
};

static const struct err_row err_rows[] = {
	/* Empty and misshapen documents. */
	{ "", IG_ECONFIG, "t.yaml:1:1: the configuration is empty\n" },
	{ "# only a comment\n", IG_ECONFIG, "t.yaml:2:1: the configuration is empty\n" },
	{ "- a\n", IG_ECONFIG,
	  "t.yaml:1:1: the configuration must be a mapping of sections, not a sequence\n" },
	/* Syntax errors carry libyaml's problem mark. */
	{ "listeners: [a,\nbackend: 1\n", IG_ECONFIG,
	  "t.yaml:3:1: did not find expected ',' or ']' (while parsing a flow sequence at 1:12)\n" },
	{ "a: b\n c: d\n", IG_ECONFIG,
	  "t.yaml:2:3: mapping values are not allowed in this context\n" },
	{ "a: \"\\q\"\n", IG_ECONFIG,
	  "t.yaml:1:5: found unknown escape character (while parsing a quoted scalar at 1:4)\n" },
	{ "a: \xff\n", IG_ECONFIG, "t.yaml:1:4: invalid leading UTF-8 octet (byte offset 3)\n" },
	{ CFGFIX_BASE "---\nx: 1\n", IG_ECONFIG,
	  "t.yaml:11:1: only one YAML document is allowed in a configuration file\n" },
	/* Required keys. */
	{ "log_level: info\n", IG_ECONFIG,
	  "t.yaml:1:1: missing required key 'listeners'\n"
	  "t.yaml:1:1: missing required key 'backend'\n" },
	{ "listeners: []\nbackend:\n  tls: none\n", IG_ECONFIG,
	  "t.yaml:1:12: 'listeners' needs at least one entry\n"
	  "t.yaml:3:3: missing required key 'address' in 'backend'\n" },
	{ "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:1:1: 'tls.certificates' needs at least one certificate (every listener uses TLS)\n" },
	{ "listeners:\n  - listen: \"127.0.0.1:993\"\ntls:\n  certificates: []\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:2:5: missing required key 'name' in 'listeners[0]'\n"
	  "t.yaml:2:5: missing required key 'tls' in 'listeners[0]'\n"
	  "t.yaml:4:17: 'tls.certificates' needs at least one certificate (every listener uses TLS)\n" },
	{ CFGFIX_BASE "tls:\n  certificates:\n    - cert: cert.pem\n", IG_ECONFIG,
	  "t.yaml:11:1: duplicate key 'tls' (first at 5:1)\n" },
	/* Unknown keys, with a suggestion for typos. */
	{ CFGFIX_BASE "policy:\n  defaults:\n    requre_tls: false\n", IG_ECONFIG,
	  "t.yaml:13:5: unknown key 'requre_tls' in 'policy.defaults' (did you mean 'require_tls'?)\n" },
	{ CFGFIX_BASE "policy:\n  mode: strict\n", IG_ECONFIG,
	  "t.yaml:12:9: invalid value 'strict' for 'policy.mode': expected one of enforce, monitor\n" },
	{ CFGFIX_BASE "policy:\n  strict: true\n", IG_ECONFIG,
	  "t.yaml:12:3: unknown key 'strict' in 'policy'\n" },
	{ CFGFIX_BASE "backends:\n  x: 1\n", IG_ECONFIG,
	  "t.yaml:11:1: unknown key 'backends' (did you mean 'backend'?)\n" },
	{ CFGFIX_BASE "limits:\n  max_line: 1024\n  max_line: 2048\n", IG_ECONFIG,
	  "t.yaml:13:3: duplicate key 'max_line' in 'limits' (first at 12:3)\n" },
	{ CFGFIX_BASE "limits:\n  foo: 1\n  foo: 2\n", IG_ECONFIG,
	  "t.yaml:12:3: unknown key 'foo' in 'limits'\n"
	  "t.yaml:13:3: duplicate key 'foo' in 'limits' (first at 12:3)\n" },
	{ CFGFIX_BASE "? [a]\n: 1\n", IG_ECONFIG,
	  "t.yaml:11:3: keys must be plain words, not a sequence\n" },
	/* Types. */
	{ CFGFIX_BASE "log_level: verbose\n", IG_ECONFIG,
	  "t.yaml:11:12: invalid value 'verbose' for 'log_level': "
	  "expected one of error, warn, info, debug\n" },
	{ CFGFIX_BASE "limits:\n  max_line: 8k\n", IG_ECONFIG,
	  "t.yaml:12:13: invalid value '8k' for 'limits.max_line': expected a whole number\n" },
	{ CFGFIX_BASE "limits:\n  max_errors: -1\n", IG_ECONFIG,
	  "t.yaml:12:15: invalid value '-1' for 'limits.max_errors': expected a whole number\n" },
	{ CFGFIX_BASE "limits:\n  max_sessions: 99999999999999999999999\n", IG_ECONFIG,
	  "t.yaml:12:17: invalid value '99999999999999999999999' for 'limits.max_sessions': "
	  "expected a whole number\n" },
	{ CFGFIX_BASE "limits: [1]\n", IG_ECONFIG,
	  "t.yaml:11:9: 'limits' must be a mapping, not a sequence\n" },
	{ CFGFIX_BASE "workers: 0\n", IG_ECONFIG,
	  "t.yaml:11:10: invalid value '0' for 'workers': expected auto or a number of "
	  "workers from 1 to 256\n" },
	{ CFGFIX_BASE "workers: 257\n", IG_ECONFIG,
	  "t.yaml:11:10: invalid value '257' for 'workers': expected auto or a number of "
	  "workers from 1 to 256\n" },
	{ CFGFIX_BASE "workers: many\n", IG_ECONFIG,
	  "t.yaml:11:10: invalid value 'many' for 'workers': expected auto or a number of "
	  "workers from 1 to 256\n" },
	{ CFGFIX_BASE "workers: [2]\n", IG_ECONFIG,
	  "t.yaml:11:10: 'workers' must be a single value, not a sequence\n" },
	{ CFGFIX_BASE "log_level: [info]\n", IG_ECONFIG,
	  "t.yaml:11:12: 'log_level' must be a single value, not a sequence\n" },
	{ CFGFIX_BASE "log_level:\n", IG_ECONFIG, "t.yaml:11:11: 'log_level' has no value\n" },
	{ CFGFIX_BASE "tls:\n  strict_sni: yes\n", IG_ECONFIG,
	  "t.yaml:11:1: duplicate key 'tls' (first at 5:1)\n" },
	{ "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n  strict_sni: yes\n"
	  "  min_version: 1.1\nbackend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:7:15: invalid value 'yes' for 'tls.strict_sni': expected true or false\n"
	  "t.yaml:8:16: invalid value '1.1' for 'tls.min_version': expected one of 1.2, 1.3\n" },
	{ "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n  crypto: fast\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:7:11: invalid value 'fast' for 'tls.crypto': "
	  "expected one of auto, openssl, mbedtls\n" },
	{ CFGFIX_BASE "  connect_timeout: 10x\n", IG_ECONFIG,
	  "t.yaml:11:20: invalid duration '10x' for 'backend.connect_timeout': "
	  "expected a number with ms, s, m or h\n" },
	{ CFGFIX_BASE "listeners2: \"a\\0b\"\n", IG_ECONFIG,
	  "t.yaml:11:1: unknown key 'listeners2' (did you mean 'listeners'?)\n" },
	{ CFGFIX_BASE "  server_name: \"a\\0b\"\n", IG_ECONFIG,
	  "t.yaml:11:16: 'backend.server_name' must not contain NUL bytes\n"
	  "t.yaml:11:16: warning: 'backend.server_name' has no effect with backend.tls: none\n" },
	/* Ranges and cross-field rules. */
	{ CFGFIX_BASE "limits:\n  max_line: 100\n  handshake_timeout: 0\n  preauth_timeout: 2h\n",
	  IG_ECONFIG,
	  "t.yaml:12:13: 'limits.max_line' must be between 256 and 1048576 (got 100)\n"
	  "t.yaml:13:22: 'limits.handshake_timeout' must be between 1ms and 10m (got 0)\n"
	  "t.yaml:14:20: 'limits.preauth_timeout' must be between 1ms and 1h (got 2h)\n" },
	{ "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n  session_timeout: 200h\n"
	  "  session_cache_size: 1000001\n  session_tickets: 1\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:7:20: 'tls.session_timeout' must be between 10s and 168h (got 200h)\n"
	  "t.yaml:8:23: 'tls.session_cache_size' must be between 0 and 1000000 (got 1000001)\n"
	  "t.yaml:9:20: invalid value '1' for 'tls.session_tickets': expected true or false\n" },
	{ CFGFIX_BASE "limits:\n  buffer_size: 2000000\n", IG_ECONFIG,
	  "t.yaml:12:16: 'limits.buffer_size' must be between 1024 and 1048576 (got 2000000)\n" },
	{ CFGFIX_BASE "limits:\n  max_line: 8192\n  buffer_size: 4096\n", IG_ECONFIG,
	  "t.yaml:13:16: limits.buffer_size (4096) must be at least limits.max_line (8192)\n"
	  "t.yaml:13:16: limits.buffer_size (4096) must be at least limits.max_literal (8192)\n" },
	{ CFGFIX_BASE "limits:\n  max_line: 32768\n", IG_ECONFIG,
	  "t.yaml:12:13: limits.buffer_size (16384) must be at least limits.max_line (32768)\n" },
	/* Listeners. */
	{ "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: none\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:4:10: 'listeners[0].tls' cannot be none: imapguard only serves TLS "
	  "(use implicit or starttls)\n" },
	{ "listeners:\n"
	  "  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	  "  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: starttls\n"
	  "  - name: \"b c\"\n    listen: \"[::1]:993\"\n    tls: implicit\n"
	  "  - name: d\n    listen: \"[0:0::1]:993\"\n    tls: implicit\n    max_sessions: 0\n"
	  "  - 42\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:5:11: duplicate listener name 'a' in 'listeners' (first at 2:11)\n"
	  "t.yaml:6:13: duplicate listen address '127.0.0.1:993' in 'listeners' (first at 3:13)\n"
	  "t.yaml:8:11: invalid name 'b c' for 'listeners[2].name': "
	  "use letters, digits, '-', '_' and '.'\n"
	  "t.yaml:12:13: duplicate listen address '[0:0::1]:993' in 'listeners' (first at 9:13)\n"
	  "t.yaml:14:19: 'listeners[3].max_sessions' must be between 1 and 1000000 (got 0)\n"
	  "t.yaml:15:5: 'listeners[4]' must be a mapping, not a scalar\n" },
	{ "listeners:\n"
	  "  - {name: a, listen: \"0.0.0.0\", tls: implicit}\n"
	  "  - {name: b, listen: \"0.0.0.0:0\", tls: implicit}\n"
	  "  - {name: c, listen: \"0.0.0.0:65536\", tls: implicit}\n"
	  "  - {name: d, listen: \"mail.example.org:993\", tls: implicit}\n"
	  "  - {name: e, listen: \"::1:993\", tls: implicit}\n"
	  "  - {name: f, listen: \"[::1]993\", tls: implicit}\n"
	  "  - {name: g, listen: \"1.2.3:993\", tls: implicit}\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:2:23: invalid listen address '0.0.0.0' for 'listeners[0].listen': missing port\n"
	  "t.yaml:3:23: invalid listen address '0.0.0.0:0' for 'listeners[1].listen': "
	  "the port must be between 1 and 65535\n"
	  "t.yaml:4:23: invalid listen address '0.0.0.0:65536' for 'listeners[2].listen': "
	  "the port must be between 1 and 65535\n"
	  "t.yaml:5:23: invalid listen address 'mail.example.org:993' for 'listeners[3].listen': "
	  "host names are not allowed here, use a numeric address\n"
	  "t.yaml:6:23: invalid listen address '::1:993' for 'listeners[4].listen': "
	  "IPv6 addresses must be in brackets, e.g. [::1]:993\n"
	  "t.yaml:7:23: invalid listen address '[::1]993' for 'listeners[5].listen': "
	  "expected ':' and a port after ']'\n"
	  "t.yaml:8:23: invalid listen address '1.2.3:993' for 'listeners[6].listen': "
	  "not a numeric IPv4 address\n" },
	/* Files. */
	{ "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	  "tls:\n  certificates:\n    - cert: missing.pem\n      key: .\n    - key: key.pem\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n  tls: implicit\n  ca: nope.pem\n", IG_ECONFIG,
	  "t.yaml:7:13: cannot use 'missing.pem' for 'tls.certificates[0].cert': "
	  "No such file or directory\n"
	  "t.yaml:8:12: cannot use '.' for 'tls.certificates[0].key': not a regular file\n"
	  "t.yaml:9:7: missing required key 'cert' in 'tls.certificates[1]'\n"
	  "t.yaml:13:7: cannot use 'nope.pem' for 'backend.ca': No such file or directory\n" },
	/* Backend. */
	{ CFGFIX_BASE "  tls: tls\n", IG_ECONFIG,
	  "t.yaml:11:8: invalid value 'tls' for 'backend.tls': "
	  "expected one of none, starttls, implicit\n" },
	{ "listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"-bad-:143\"\n", IG_ECONFIG,
	  "t.yaml:6:12: invalid address '-bad-:143' for 'backend.address': "
	  "not a valid host name\n" },
	{ "listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"[127.0.0.1]:143\"\n", IG_ECONFIG,
	  "t.yaml:6:12: invalid address '[127.0.0.1]:143' for 'backend.address': "
	  "not a numeric IPv6 address\n" },
	{ "listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: mail.internal\n", IG_ECONFIG,
	  "t.yaml:6:12: invalid address 'mail.internal' for 'backend.address': missing port\n" },
	/* Aliases are refused where they are used. */
	{ "listeners:\n  - &l {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n  - *l\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"127.0.0.1:1143\"\n", IG_ECONFIG,
	  "t.yaml:3:5: aliases are not supported (*l)\n" },
	/* Warnings alone do not fail the load. */
	{ CFGFIX_BASE "  verify: false\n  ca: ca.pem\nlimits:\n  idle_timeout: 29m\n"
	  "policy:\n  defaults:\n    require_tls: false\n", 0,
	  "t.yaml:11:11: warning: 'backend.verify' has no effect with backend.tls: none\n"
	  "t.yaml:12:7: warning: 'backend.ca' has no effect with backend.tls: none\n"
	  "t.yaml:14:17: warning: limits.idle_timeout is below 30m: clients in IMAP IDLE "
	  "(RFC 2177) will be disconnected\n"
	  "t.yaml:17:18: warning: policy.defaults.require_tls is false: "
	  "passwords may be sent before STARTTLS\n" },
	{ "listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"[2001:db8::1]:143\"\n  tls: implicit\n  verify: false\n", 0,
	  "t.yaml:8:11: warning: backend certificate verification is disabled (verify: false)\n" },
	{ "listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	  "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	  "backend:\n  address: \"192.0.2.1:143\"\n", 0,
	  "t.yaml:6:3: warning: backend.tls is none but the backend is not on loopback: "
	  "passwords cross the network in clear\n" },
};

/* tls.crypto: openssl needs the OpenSSL driver (our own mbedTLS build). */
static void
test_tls_crypto_openssl(void **state)
{
	static const char yaml[] =
	    "listeners:\n  - name: a\n    listen: \"127.0.0.1:993\"\n    tls: implicit\n"
	    "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n  crypto: openssl\n"
	    "backend:\n  address: \"127.0.0.1:1143\"\n";
	struct ig_config *cfg = NULL;
	int rc;
	char *msgs;

	(void)state;
	msgs = load(yaml, &rc, ig_crypto_openssl_built_in() ? &cfg : NULL);
	if (ig_crypto_openssl_built_in()) {
		assert_string_equal(msgs, "");
		assert_int_equal(rc, 0);
		assert_int_equal(cfg->tls_crypto, IG_CRYPTO_OPENSSL);
		ig_config_free(cfg);
	} else {
		assert_int_equal(rc, IG_ECONFIG);
		assert_string_equal(msgs, "t.yaml:7:11: 'tls.crypto' cannot be openssl: this "
		    "imapguard has no OpenSSL driver (it was built with the system's mbedTLS, "
		    "IG_SYSTEM_MBEDTLS=ON); use auto or mbedtls\n");
	}
	free(msgs);
}

static void
test_error_rows(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		int rc;
		char *msgs = load(err_rows[i].yaml, &rc, NULL);
		if (strcmp(msgs, err_rows[i].want) != 0 || rc != err_rows[i].rc) {
			print_error("row %zu: rc %d, got:\n%swant:\n%s\n", i, rc, msgs,
			    err_rows[i].want);
			bad++;
		}
		free(msgs);
	}
	assert_int_equal(bad, 0);
}

static void
test_key_mode_warning(void **state)
{
	(void)state;
	int rc;
	assert_int_equal(chmod("key.pem", 0644), 0);
	char *msgs = load(CFGFIX_BASE, &rc, NULL);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs,
	    "t.yaml:8:12: warning: private key 'key.pem' is readable by every user (mode 644)\n");
	free(msgs);
}

/* tls.ticket_key_file: the file is read at load; a refusal points at the key. */
#define TK_YAML(extra) \
    "listeners:\n" \
    "  - name: imaps\n" \
    "    listen: \"127.0.0.1:993\"\n" \
    "    tls: implicit\n" \
    "tls:\n" \
    "  ticket_key_file: tk\n" \
    "  certificates:\n" \
    "    - cert: cert.pem\n" \
    "      key: key.pem\n" extra \
    "backend:\n" \
    "  address: \"127.0.0.1:1143\"\n"

static void
tk_put(const char *text, mode_t mode)
{
	FILE *f = fopen("tk", "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod("tk", mode), 0);
}

static void
test_ticket_key_file(void **state)
{
	(void)state;
	/* base64 of "AAAA" and bytes 1..32; of "BBBB" and bytes 2..33 */
	static const char ka[] = "QUFBQQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g";
	static const char kb[] = "QkJCQgIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh";
	char text[256];
	int rc;
	struct ig_config *cfg;

	snprintf(text, sizeof(text), "# keys\n%s\n%s\n", ka, kb);
	tk_put(text, 0600);
	char *msgs = load(TK_YAML(""), &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->tls_ticket_key_file, "tk");
	ig_config_free(cfg);
	free(msgs);

	/* No effect without tickets: a warning. */
	msgs = load(TK_YAML("  session_tickets: false\n"), &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs, "t.yaml:6:20: warning: 'tls.ticket_key_file' has no effect "
	    "with tls.session_tickets: false\n");
	ig_config_free(cfg);
	free(msgs);

	static const struct {
		const char *text; /* NULL: no file */
		mode_t mode;
		const char *want;
	} rows[] = {
		{ NULL, 0600, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': No such file "
		  "or directory\n" },
		{ "ka", 0644, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': mode 0644: "
		  "other users can read it; ticket keys decrypt every resumed session, so the file "
		  "must be neither readable by other users nor writable by its group or others "
		  "(chmod 600, or 640 with the group imapguard runs as)\n" },
		{ "ka", 0660, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': mode 0660: "
		  "its group can write it; ticket keys decrypt every resumed session, so the file "
		  "must be neither readable by other users nor writable by its group or others "
		  "(chmod 600, or 640 with the group imapguard runs as)\n" },
		{ "# nothing\n", 0600, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': no "
		  "key in it (make one with `imapguard ticket-key new`)\n" },
		{ "ka!", 0600, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': line 1, "
		  "column 49: '!' is not a base64 character\n" },
		{ "kaka", 0600, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': line 2, "
		  "column 1: same key name as the key on line 1: names select the key that "
		  "decrypts a ticket\n" },
		{ "kakbka", 0600, "t.yaml:6:20: cannot use 'tk' for 'tls.ticket_key_file': line 3, "
		  "column 1: more than 2 keys: the file holds the key that encrypts (last) and at "
		  "most one before it that still decrypts\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unlink("tk");
		if (rows[i].text != NULL) {
			/* "ka", "kb": the key lines; anything else is kept. */
			size_t o = 0;
			for (const char *p = rows[i].text; *p != '\0'; p++) {
				if (p[0] == 'k' && (p[1] == 'a' || p[1] == 'b')) {
					o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s",
					    p[1] == 'a' ? ka : kb, p[2] == '!' ? "" : "\n");
					p++;
				} else {
					text[o++] = *p;
					text[o] = '\0';
				}
			}
			tk_put(text, rows[i].mode);
		}
		msgs = load(TK_YAML(""), &rc, NULL);
		if (strcmp(msgs, rows[i].want) != 0 || rc != IG_ECONFIG)
			fail_msg("row %zu: rc %d, got:\n%swant:\n%s", i, rc, msgs, rows[i].want);
		free(msgs);
	}
	unlink("tk");
}

static void
test_many_errors_capped(void **state)
{
	(void)state;
	/* 150 unknown keys: 100 are shown, then a count. */
	char *yaml = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&yaml, &size);
	assert_non_null(f);
	fputs(CFGFIX_BASE, f);
	for (int i = 0; i < 150; i++)
		fprintf(f, "k%d: 1\n", i);
	fclose(f);
	int rc;
	char *msgs = load(yaml, &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	size_t lines = 0;
	for (const char *p = msgs; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 101);
	assert_non_null(strstr(msgs, "t.yaml:11:1: unknown key 'k0'\n"));
	assert_non_null(strstr(msgs, "t.yaml: 50 more errors or warnings not shown\n"));
	free(msgs);
	free(yaml);
}

static void
test_no_resolve(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	const char *yaml =
	    "listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	    "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	    "backend:\n  address: \"imap.invalid:143\"\n  tls: implicit\n";
	char *msgs = load_flags(yaml, IG_CF_NO_RESOLVE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->backend.host, "imap.invalid");
	assert_int_equal(cfg->backend.port, 143);
	assert_int_equal(cfg->backend.addrlen, 0);
	ig_config_free(cfg);
	free(msgs);

	/* localhost comes from /etc/hosts: resolved without DNS. */
	msgs = load("listeners:\n  - {name: a, listen: \"127.0.0.1:993\", tls: implicit}\n"
	    "tls:\n  certificates: [{cert: cert.pem, key: key.pem}]\n"
	    "backend:\n  address: \"localhost:143\"\n", &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->backend.host, "localhost");
	assert_int_not_equal(cfg->backend.addrlen, 0);
	ig_config_free(cfg);
	free(msgs);
}

/* The source tree, from this file's path (CMake passes absolute paths). */
static void
source_path(char *out, size_t outsz, const char *rel)
{
	const char *me = __FILE__;
	const char *cut = strstr(me, "tests/unit/test_config.c");
	assert_non_null(cut);
	snprintf(out, outsz, "%.*s%s", (int)(cut - me), me, rel);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void
test_examples(void **state)
{
	(void)state;
	char path[4096];
	int rc;
	struct ig_config *cfg = NULL;

	/* dev.yaml loads as is once its demo certificates exist. */
	assert_int_equal(mkdir("demo-run", 0700), 0);
	assert_int_equal(mkdir("demo-run/certs", 0700), 0);
	touch("demo-run/certs/server-ecdsa.pem", 0644);
	touch("demo-run/certs/server-ecdsa.key", 0600);
	touch("demo-run/certs/server-rsa.pem", 0644);
	touch("demo-run/certs/server-rsa.key", 0600);
	source_path(path, sizeof(path), "examples/dev.yaml");
	char *msgs = NULL;
	size_t size = 0;
	FILE *ef = open_memstream(&msgs, &size);
	assert_non_null(ef);
	rc = ig_config_load(path, &cfg, ef);
	fclose(ef);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->path, path);
	assert_int_equal(cfg->nlisteners, 2);
	assert_int_equal(cfg->backend.tls, IG_TLS_NONE);
	assert_int_equal(cfg->log_level, IG_LOG_DEBUG);
	ig_config_free(cfg);
	free(msgs);

	/* imapguard.yaml is valid but for its (absent) production files, and
	   its user where the package has not created it. */
	source_path(path, sizeof(path), "examples/imapguard.yaml");
	msgs = load_flags(slurp(path), IG_CF_NO_RESOLVE, &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	char want[1024];
	snprintf(want, sizeof(want), "%s"
	    "t.yaml:58:13: cannot use '/etc/imapguard/mail.example.org.pem' for "
	    "'tls.certificates[0].cert': No such file or directory\n"
	    "t.yaml:59:12: cannot use '/etc/imapguard/mail.example.org.key' for "
	    "'tls.certificates[0].key': No such file or directory\n",
	    getpwnam("imapguard") != NULL ? "" :
	    "t.yaml:27:7: cannot use 'imapguard' for 'user': no such user\n");
	assert_string_equal(msgs, want);
	free(msgs);

	/* A missing file is an I/O error. */
	msgs = NULL;
	ef = open_memstream(&msgs, &size);
	assert_non_null(ef);
	rc = ig_config_load("nonexistent.yaml", &cfg, ef);
	fclose(ef);
	assert_int_equal(rc, IG_EIO);
	assert_null(cfg);
	assert_string_equal(msgs, "nonexistent.yaml: cannot open: No such file or directory\n");
	free(msgs);
}

struct dur_row {
	const char *in;
	int rc;
	unsigned ms;
};

static const struct dur_row dur_rows[] = {
	{ "0", 0, 0 },
	{ "10", 0, 10000 },
	{ "250ms", 0, 250 },
	{ "30s", 0, 30000 },
	{ "35m", 0, 2100000 },
	{ "1h", 0, 3600000 },
	{ "007s", 0, 7000 },
	{ "4294967295ms", 0, 4294967295u },
	{ "4294967296ms", IG_EINVAL, 0 },
	{ "4294967s", 0, 4294967000u },
	{ "4294968s", IG_EINVAL, 0 },
	{ "1193h", 0, 4294800000u },
	{ "1194h", IG_EINVAL, 0 },
	{ "99999999999999999999999h", IG_EINVAL, 0 },
	{ "18446744073709551617", IG_EINVAL, 0 },
	{ "", IG_EINVAL, 0 },
	{ "s", IG_EINVAL, 0 },
	{ "-1s", IG_EINVAL, 0 },
	{ "+1s", IG_EINVAL, 0 },
	{ "1.5s", IG_EINVAL, 0 },
	{ "10 s", IG_EINVAL, 0 },
	{ "10S", IG_EINVAL, 0 },
	{ "10d", IG_EINVAL, 0 },
	{ "10sec", IG_EINVAL, 0 },
	{ "1h30m", IG_EINVAL, 0 },
	{ " 10s", IG_EINVAL, 0 },
};

static void
test_duration_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dur_rows) / sizeof(dur_rows[0]); i++) {
		unsigned ms = 12345;
		int rc = ig_parse_duration_ms(dur_rows[i].in, &ms);
		if (rc != dur_rows[i].rc)
			print_error("row %zu '%s'\n", i, dur_rows[i].in);
		assert_int_equal(rc, dur_rows[i].rc);
		assert_int_equal(ms, rc == 0 ? dur_rows[i].ms : 12345);
	}
	assert_int_equal(ig_parse_duration_ms(NULL, NULL), IG_EINVAL);
}

struct addr_row {
	const char *in;
	int rc;
	int family;
	unsigned port;
	const char *addr; /* inet_ntop form */
};

static const struct addr_row addr_rows[] = {
	{ "0.0.0.0:993", 0, AF_INET, 993, "0.0.0.0" },
	{ "127.0.0.1:1", 0, AF_INET, 1, "127.0.0.1" },
	{ "192.0.2.7:65535", 0, AF_INET, 65535, "192.0.2.7" },
	{ "[::]:993", 0, AF_INET6, 993, "::" },
	{ "[::1]:143", 0, AF_INET6, 143, "::1" },
	{ "[2001:db8::a:1]:10143", 0, AF_INET6, 10143, "2001:db8::a:1" },
	{ "[::ffff:192.0.2.1]:993", 0, AF_INET6, 993, "::ffff:192.0.2.1" },
	{ "0.0.0.0", IG_EINVAL, 0, 0, NULL },         /* missing port */
	{ "0.0.0.0:", IG_EINVAL, 0, 0, NULL },
	{ "[::1]", IG_EINVAL, 0, 0, NULL },
	{ "[::1]:", IG_EINVAL, 0, 0, NULL },
	{ "0.0.0.0:0", IG_EINVAL, 0, 0, NULL },       /* port 0 */
	{ "0.0.0.0:65536", IG_EINVAL, 0, 0, NULL },   /* port 65536 */
	{ "0.0.0.0:099999", IG_EINVAL, 0, 0, NULL },
	{ "0.0.0.0:+993", IG_EINVAL, 0, 0, NULL },
	{ "0.0.0.0:99a", IG_EINVAL, 0, 0, NULL },
	{ "localhost:993", IG_EINVAL, 0, 0, NULL },   /* host names refused */
	{ "mail.example.org:993", IG_EINVAL, 0, 0, NULL },
	{ "[localhost]:993", IG_EINVAL, 0, 0, NULL },
	{ "*:993", IG_EINVAL, 0, 0, NULL },
	{ ":993", IG_EINVAL, 0, 0, NULL },
	{ "::1:993", IG_EINVAL, 0, 0, NULL },         /* IPv6 needs brackets */
	{ "[::1:993", IG_EINVAL, 0, 0, NULL },
	{ "[fe80::1%eth0]:993", IG_EINVAL, 0, 0, NULL },
	{ "[127.0.0.1]:993", IG_EINVAL, 0, 0, NULL },
	{ "127.1:993", IG_EINVAL, 0, 0, NULL },       /* inet_aton forms */
	{ "0x7f.0.0.1:993", IG_EINVAL, 0, 0, NULL },
	{ "256.0.0.1:993", IG_EINVAL, 0, 0, NULL },
	{ "", IG_EINVAL, 0, 0, NULL },
};

static void
test_listen_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(addr_rows) / sizeof(addr_rows[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		int rc = ig_parse_listen_addr(addr_rows[i].in, &ss, &len);
		if (rc != addr_rows[i].rc)
			print_error("row %zu '%s'\n", i, addr_rows[i].in);
		assert_int_equal(rc, addr_rows[i].rc);
		if (rc != 0)
			continue;
		char buf[INET6_ADDRSTRLEN];
		assert_int_equal(ss.ss_family, addr_rows[i].family);
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
			assert_int_equal(len, sizeof(*sin));
			assert_int_equal(ntohs(sin->sin_port), addr_rows[i].port);
			assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
			assert_int_equal(len, sizeof(*sin6));
			assert_int_equal(ntohs(sin6->sin6_port), addr_rows[i].port);
			assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
		}
		assert_string_equal(buf, addr_rows[i].addr);
	}
}

static void
test_tls_mode_str(void **state)
{
	(void)state;
	assert_string_equal(ig_tls_mode_str(IG_TLS_NONE), "none");
	assert_string_equal(ig_tls_mode_str(IG_TLS_STARTTLS), "starttls");
	assert_string_equal(ig_tls_mode_str(IG_TLS_IMPLICIT), "implicit");
	assert_string_equal(ig_tls_mode_str(IG_TLS_MODE_COUNT), "?");
	ig_config_free(NULL);
}

/* user and group: looked up at load (nobody and nogroup exist on Debian). */
static void
test_user_group(void **state)
{
	(void)state;
	static const struct {
		const char *yaml;
		const char *msgs;      /* "" when valid */
		bool user;             /* user set (nobody) */
	} rows[] = {
		{ "", "", false },
		{ "user: nobody\n", "", true },
		{ "user: nobody\ngroup: nogroup\n", "", true },
		{ "group: nogroup\nuser: nobody\n", "", true },
		{ "user: no-such-user-igt\n",
		  "t.yaml:11:7: cannot use 'no-such-user-igt' for 'user': no such user\n", false },
		{ "user: nobody\ngroup: no-such-group-igt\n",
		  "t.yaml:12:8: cannot use 'no-such-group-igt' for 'group': no such group\n", false },
		{ "user: root\n",
		  "t.yaml:11:7: 'user' cannot be root (uid 0): name the unprivileged user the "
		  "proxy runs as after binding\n", false },
		{ "group: nogroup\n",
		  "t.yaml:11:8: 'group' needs 'user': the proxy changes its group only when it "
		  "changes its user\n", false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char yaml[1024];
		snprintf(yaml, sizeof(yaml), "%s%s", CFGFIX_BASE, rows[i].yaml);
		int rc;
		struct ig_config *cfg = NULL;
		char *msgs = load(yaml, &rc, rows[i].msgs[0] ? NULL : &cfg);
		assert_string_equal(msgs, rows[i].msgs);
		if (rows[i].msgs[0] == '\0') {
			assert_int_equal(rc, 0);
			if (rows[i].user) {
				assert_string_equal(cfg->user, "nobody");
				assert_int_equal(cfg->user_uid, 65534);
				assert_int_equal(cfg->user_gid, 65534);
			} else {
				assert_null(cfg->user);
			}
			ig_config_free(cfg);
		} else {
			assert_int_equal(rc, IG_ECONFIG);
		}
		free(msgs);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_crypto_openssl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_mode_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ticket_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_errors_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_examples, setup, teardown),
		cmocka_unit_test(test_duration_rows),
		cmocka_unit_test(test_listen_rows),
		cmocka_unit_test(test_tls_mode_str),
		cmocka_unit_test_setup_teardown(test_user_group, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
