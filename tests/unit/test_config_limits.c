/*
 * Unit tests for the connection and pre-login limits of config/:
 * limits.max_connections_per_address with its IPv6 group and raised
 * networks (names from policy.networks, wherever policy is written),
 * limits.preauth_lifetime (never below preauth_timeout) and
 * limits.max_preauth_commands, limits.buffer_pool_max, limits.drain_timeout:
 * defaults, the
 * documented shape, and every error and warning with its exact text at its
 * FILE:LINE:COL.
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
#include <sys/socket.h>
#include <cmocka.h>

#include "config/config.h"
#include "config_fixture.h"
#include "proxy/conncount.h"
#include "util/err.h"

CFGFIX_SETUP_TEARDOWN("iglim")


static void
test_defaults(void **state)
{
	(void)state;
	static const char *const yamls[] = {
		CFGFIX_BASE,
		CFGFIX_BASE "limits:\n",
		CFGFIX_BASE "limits:\n  raised: []\n",
	};
	for (size_t i = 0; i < sizeof(yamls) / sizeof(yamls[0]); i++) {
		int rc;
		struct ig_config *cfg;
		char *msgs = load(yamls[i], &rc, &cfg);
		assert_string_equal(msgs, "");
		assert_int_equal(rc, 0);
		const struct ig_limits *l = &cfg->limits;
		assert_int_equal(l->preauth_lifetime_ms, 5 * 60 * 1000);
		assert_int_equal(l->max_preauth_commands, 100);
		assert_int_equal(l->buffer_pool_max, 0); /* no cap */
		assert_int_equal(l->drain_timeout_ms, 30 * 1000);
		assert_int_equal(l->max_conn_per_address, 100);
		assert_int_equal(l->conn_ipv6_prefix, 64);
		assert_int_equal(l->nraised, 0);
		assert_null(l->raised);
		ig_config_free(cfg);
		free(msgs);
	}
}

/* The documented shape; policy comes after limits and its names resolve. */
static void
test_example(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE
	    "limits:\n"
	    "  preauth_timeout: 30s\n"
	    "  preauth_lifetime: 2m\n"
	    "  max_preauth_commands: 40\n"
	    "  max_connections_per_address: 20\n"
	    "  address_ipv6_prefix: 56\n"
	    "  raised:\n"
	    "    - { networks: [office, 192.0.2.10], max_connections_per_address: 500 }\n"
	    "    - networks: [\"2001:db8:99::/48\"]\n"
	    "      max_connections_per_address: 50\n"
	    "policy:\n"
	    "  networks:\n"
	    "    office: [10.20.0.0/16, \"2001:db8:20::/48\"]\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_limits *l = &cfg->limits;
	assert_int_equal(l->preauth_timeout_ms, 30000);
	assert_int_equal(l->preauth_lifetime_ms, 120000);
	assert_int_equal(l->max_preauth_commands, 40);
	assert_int_equal(l->max_conn_per_address, 20);
	assert_int_equal(l->conn_ipv6_prefix, 56);
	assert_int_equal(l->nraised, 2);
	assert_int_equal(l->raised[0].nets.n, 3);
	assert_cidr(&l->raised[0].nets.v[0], "10.20.0.0/16");
	assert_cidr(&l->raised[0].nets.v[1], "2001:db8:20::/48");
	assert_cidr(&l->raised[0].nets.v[2], "192.0.2.10/32");
	assert_int_equal(l->raised[0].max_conn_per_address, 500);
	assert_ptr_not_equal(l->raised[0].nets.v, cfg->policy.networks[0].set.v);
	assert_int_equal(l->raised[1].nets.n, 1);
	assert_cidr(&l->raised[1].nets.v[0], "2001:db8:99::/48");
	assert_int_equal(l->raised[1].max_conn_per_address, 50);

	/* What the session asks at accept. */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.20.3.4", &sin.sin_addr);
	assert_int_equal(ig_cc_limit(l, (struct sockaddr *)&sin), 500);
	inet_pton(AF_INET, "192.0.2.11", &sin.sin_addr);
	assert_int_equal(ig_cc_limit(l, (struct sockaddr *)&sin), 20);
	ig_config_free(cfg);
	free(msgs);
}

/* A lifetime equal to the idle timeout is allowed; 0 turns the cap off. */
static void
test_edges(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE
	    "limits:\n"
	    "  preauth_timeout: 2s\n"
	    "  preauth_lifetime: 2s\n"
	    "  max_connections_per_address: 0\n"
	    "  address_ipv6_prefix: 128\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_int_equal(cfg->limits.preauth_lifetime_ms, 2000);
	assert_int_equal(cfg->limits.max_conn_per_address, 0);
	assert_int_equal(cfg->limits.conn_ipv6_prefix, 128);
	ig_config_free(cfg);
	free(msgs);
}

/* limits.buffer_pool_max: 0 is no cap; else a byte count of at least one
   buffer, at most 1 TiB. */
static void
test_buffer_pool_max(void **state)
{
	(void)state;
	static const struct {
		const char *yaml;
		size_t want;           /* when valid */
		const char *msgs;      /* "" when valid */
	} rows[] = {
		{ "  buffer_pool_max: 0\n", 0, "" },
		{ "  buffer_pool_max: 16384\n", 16384, "" },
		{ "  buffer_pool_max: 67108864\n", 67108864, "" },
		{ "  max_line: 4096\n  max_literal: 4096\n  buffer_size: 4096\n"
		  "  buffer_pool_max: 4096\n", 4096, "" },
		{ "  buffer_pool_max: 1099511627776\n", 1099511627776u, "" },
		{ "  buffer_pool_max: 16383\n", 0,
		  "t.yaml:12:20: limits.buffer_pool_max (16383) must be 0 (no cap) or at least "
		  "limits.buffer_size (16384)\n" },
		{ "  buffer_size: 32768\n  buffer_pool_max: 20000\n", 0,
		  "t.yaml:13:20: limits.buffer_pool_max (20000) must be 0 (no cap) or at least "
		  "limits.buffer_size (32768)\n" },
		{ "  buffer_pool_max: 1099511627777\n", 0,
		  "t.yaml:12:20: 'limits.buffer_pool_max' must be between 0 and 1099511627776 "
		  "(got 1099511627777)\n" },
		{ "  buffer_pool_max: -1\n", 0,
		  "t.yaml:12:20: invalid value '-1' for 'limits.buffer_pool_max': "
		  "expected a whole number\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char yaml[512];
		snprintf(yaml, sizeof(yaml), "%slimits:\n%s", CFGFIX_BASE, rows[i].yaml);
		int rc;
		struct ig_config *cfg = NULL;
		char *msgs = load(yaml, &rc, rows[i].msgs[0] ? NULL : &cfg);
		assert_string_equal(msgs, rows[i].msgs);
		if (rows[i].msgs[0] == '\0') {
			assert_int_equal(rc, 0);
			assert_int_equal(cfg->limits.buffer_pool_max, rows[i].want);
			ig_config_free(cfg);
		} else {
			assert_int_equal(rc, IG_ECONFIG);
		}
		free(msgs);
	}
}

/* limits.drain_timeout: a duration from 0 (stop at once) to 1 h. */
static void
test_drain_timeout(void **state)
{
	(void)state;
	static const struct {
		const char *yaml;
		unsigned want;         /* when valid */
		const char *msgs;      /* "" when valid */
	} rows[] = {
		{ "  drain_timeout: 0\n", 0, "" },
		{ "  drain_timeout: 2s\n", 2000, "" },
		{ "  drain_timeout: 250ms\n", 250, "" },
		{ "  drain_timeout: 1h\n", 3600000, "" },
		{ "  drain_timeout: 61m\n", 0,
		  "t.yaml:12:18: 'limits.drain_timeout' must be between 0ms and 1h (got 61m)\n" },
		{ "  drain_timeout: soon\n", 0,
		  "t.yaml:12:18: invalid duration 'soon' for 'limits.drain_timeout': "
		  "expected a number with ms, s, m or h\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char yaml[512];
		snprintf(yaml, sizeof(yaml), "%slimits:\n%s", CFGFIX_BASE, rows[i].yaml);
		int rc;
		struct ig_config *cfg = NULL;
		char *msgs = load(yaml, &rc, rows[i].msgs[0] ? NULL : &cfg);
		assert_string_equal(msgs, rows[i].msgs);
		if (rows[i].msgs[0] == '\0') {
			assert_int_equal(rc, 0);
			assert_int_equal(cfg->limits.drain_timeout_ms, rows[i].want);
			ig_config_free(cfg);
		} else {
			assert_int_equal(rc, IG_ECONFIG);
		}
		free(msgs);
	}
}

/* Every error at its place. */
static void
test_errors(void **state)
{
	(void)state;
	int rc;
	char *msgs = load(CFGFIX_BASE
	    "limits:\n"                                                  /* 11 */
	    "  preauth_timeout: 10m\n"
	    "  preauth_lifetime: 5m\n"
	    "  max_preauth_commands: 0\n"
	    "  max_connections_per_address: -1\n"                        /* 15 */
	    "  address_ipv6_prefix: 129\n"
	    "  raised:\n"
	    "    - { networks: [ofice], max_connections_per_address: 500 }\n"
	    "    - { networks: [], max_connections_per_address: 500 }\n"
	    "    - { networks: [10.0.0.0/8] }\n"                         /* 20 */
	    "    - { networks: [10.0.0.0/8], max_connections_per_address: 0 }\n"
	    "    - { networks: [10.0.0.1/8], max_conections_per_address: 7 }\n"
	    "policy:\n"
	    "  networks:\n"
	    "    office: [10.20.0.0/16]\n", &rc, NULL);                  /* 25 */
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:13:21: limits.preauth_lifetime (5m) must be at least "
	    "limits.preauth_timeout (10m): the lifetime bounds the whole time before login, "
	    "the timeout one idle stretch of it\n"
	    "t.yaml:14:25: 'limits.max_preauth_commands' must be between 1 and 100000 (got 0)\n"
	    "t.yaml:15:32: invalid value '-1' for 'limits.max_connections_per_address': "
	    "expected a whole number\n"
	    "t.yaml:16:24: 'limits.address_ipv6_prefix' must be between 0 and 128 (got 129)\n"
	    "t.yaml:18:20: unknown network 'ofice' in 'limits.raised[0].networks' "
	    "(did you mean 'office'?)\n"
	    "t.yaml:19:19: 'limits.raised[1].networks' needs at least one entry\n"
	    "t.yaml:20:7: missing required key 'max_connections_per_address' in "
	    "'limits.raised[2]'\n"
	    "t.yaml:21:62: 'limits.raised[3].max_connections_per_address' must be between 1 "
	    "and 1000000 (got 0)\n"
	    "t.yaml:22:7: missing required key 'max_connections_per_address' in "
	    "'limits.raised[4]'\n"
	    "t.yaml:22:20: invalid CIDR '10.0.0.1/8' in 'limits.raised[4].networks': "
	    "host bits are set (did you mean 10.0.0.0/8?)\n"
	    "t.yaml:22:33: unknown key 'max_conections_per_address' in 'limits.raised[4]' "
	    "(did you mean 'max_connections_per_address'?)\n");
	free(msgs);

	/* The lifetime left at its default, the timeout raised above it. */
	msgs = load(CFGFIX_BASE "limits:\n  preauth_timeout: 10m\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:20: limits.preauth_lifetime (5m) must be at least "
	    "limits.preauth_timeout (10m): the lifetime bounds the whole time before login, "
	    "the timeout one idle stretch of it\n");
	free(msgs);
}

/* Doubtful but valid: a "raised" cap below the normal one, or with no cap
 * to raise. */
static void
test_warnings(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE
	    "limits:\n"
	    "  max_connections_per_address: 50\n"
	    "  raised:\n"
	    "    - { networks: [10.0.0.0/8], max_connections_per_address: 10 }\n"
	    "    - { networks: [192.0.2.0/24], max_connections_per_address: 500 }\n",
	    &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs,
	    "t.yaml:14:62: warning: limits.raised[0].max_connections_per_address (10) is below "
	    "limits.max_connections_per_address (50): these networks get a lower cap, not a "
	    "higher one\n");
	ig_config_free(cfg);
	free(msgs);

	msgs = load(CFGFIX_BASE
	    "limits:\n"
	    "  max_connections_per_address: 0\n"
	    "  raised:\n"
	    "    - { networks: [10.0.0.0/8], max_connections_per_address: 10 }\n",
	    &rc, &cfg);
	assert_int_equal(rc, 0);
	assert_string_equal(msgs,
	    "t.yaml:14:5: warning: limits.raised has no effect: "
	    "limits.max_connections_per_address is 0 (no cap)\n");
	ig_config_free(cfg);
	free(msgs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffer_pool_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warnings, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
