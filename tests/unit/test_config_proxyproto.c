/*
 * Unit tests for the PROXY protocol keys: listeners[].proxy_protocol and
 * trusted_proxies (policy network names and CIDRs), and
 * backend.send_proxy_protocol; their defaults, and every mistake reported
 * at its FILE:LINE:COL.
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

#include "config/config.h"
#include "config_fixture.h"
#include "policy/cidr.h"
#include "util/err.h"

CFGFIX_SETUP_TEARDOWN("igcfgpp")

static bool
has(const struct ig_netset *set, const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return ig_netset_contains(set, (const struct sockaddr *)&ss);
}

static void
test_defaults(void **state)
{
	(void)state;
	struct ig_config *cfg = NULL;
	int rc;
	char *msgs = load(CFGFIX_BASE, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_false(cfg->listeners[0].proxy_protocol);
	assert_int_equal(cfg->listeners[0].trusted_proxies.n, 0);
	assert_int_equal(cfg->backend.send_proxy_protocol, IG_SEND_PROXY_OFF);
	ig_config_free(cfg);
	free(msgs);
}

static void
test_values(void **state)
{
	static const char yaml[] =
	    "listeners:\n"
	    "  - name: imaps\n"
	    "    listen: \"127.0.0.1:993\"\n"
	    "    tls: implicit\n"
	    "    proxy_protocol: true\n"
	    "    trusted_proxies: [lb, \"192.168.7.7\", \"2001:db8::/32\"]\n"
	    "  - name: imap\n"
	    "    listen: \"127.0.0.1:143\"\n"
	    "    tls: starttls\n"
	    "tls:\n"
	    "  certificates: [{cert: cert.pem, key: key.pem}]\n"
	    "backend:\n"
	    "  address: \"127.0.0.1:1143\"\n"
	    "  send_proxy_protocol: v2\n"
	    "policy:\n"
	    "  networks:\n"
	    "    lb: [\"10.1.0.0/16\"]\n";
	(void)state;
	struct ig_config *cfg = NULL;
	int rc;
	char *msgs = load(yaml, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_listener_conf *l = &cfg->listeners[0];
	assert_true(l->proxy_protocol);
	assert_true(has(&l->trusted_proxies, "10.1.2.3"));
	assert_true(has(&l->trusted_proxies, "192.168.7.7"));
	assert_true(has(&l->trusted_proxies, "2001:db8::1"));
	assert_false(has(&l->trusted_proxies, "10.2.0.1"));
	assert_false(has(&l->trusted_proxies, "192.168.7.8"));
	assert_false(cfg->listeners[1].proxy_protocol);
	assert_int_equal(cfg->backend.send_proxy_protocol, IG_SEND_PROXY_V2);
	ig_config_free(cfg);
	free(msgs);

	static const char v1[] = CFGFIX_BASE "  send_proxy_protocol: v1\n";
	msgs = load(v1, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(cfg->backend.send_proxy_protocol, IG_SEND_PROXY_V1);
	ig_config_free(cfg);
	free(msgs);
}

struct err_row {
	const char *yaml;
	int rc;
	const char *want;
};

#define LISTENER_HEAD \
    "listeners:\n" \
    "  - name: imaps\n" \
    "    listen: \"127.0.0.1:993\"\n" \
    "    tls: implicit\n"
#define REST \
    "tls:\n" \
    "  certificates: [{cert: cert.pem, key: key.pem}]\n" \
    "backend:\n" \
    "  address: \"127.0.0.1:1143\"\n"

static const struct err_row err_rows[] = {
	{ LISTENER_HEAD "    proxy_protocol: true\n" REST, IG_ECONFIG,
	  "t.yaml:5:21: 'listeners[0].trusted_proxies' needs at least one network with "
	  "proxy_protocol: true (only load balancers there may send the header)\n" },
	{ LISTENER_HEAD "    proxy_protocol: true\n    trusted_proxies: []\n" REST, IG_ECONFIG,
	  "t.yaml:6:22: 'listeners[0].trusted_proxies' needs at least one network with "
	  "proxy_protocol: true (only load balancers there may send the header)\n" },
	{ LISTENER_HEAD "    trusted_proxies: [\"10.0.0.1\"]\n" REST, 0,
	  "t.yaml:5:22: warning: 'listeners[0].trusted_proxies' has no effect without "
	  "proxy_protocol: true\n" },
	{ LISTENER_HEAD "    proxy_protocol: true\n    trusted_proxies: [lbb]\n" REST, IG_ECONFIG,
	  "t.yaml:6:23: unknown network 'lbb' in 'listeners[0].trusted_proxies' "
	  "(not defined in policy.networks)\n" },
	{ LISTENER_HEAD "    proxy_protocol: true\n    trusted_proxies: [\"10.0.0.300\"]\n" REST,
	  IG_ECONFIG, NULL },
	{ LISTENER_HEAD "    proxy_protocol: yes please\n" REST, IG_ECONFIG, NULL },
	{ CFGFIX_BASE "  send_proxy_protocol: v3\n", IG_ECONFIG, NULL },
};

static void
test_errors(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		int rc;
		char *msgs = load(err_rows[i].yaml, &rc, NULL);
		bool ok = rc == err_rows[i].rc && msgs[0] != '\0' &&
		    (err_rows[i].want == NULL || strcmp(msgs, err_rows[i].want) == 0) &&
		    strncmp(msgs, "t.yaml:", 7) == 0;
		if (!ok) {
			print_error("row %zu: rc %d, got:\n%swant:\n%s\n", i, rc, msgs,
			    err_rows[i].want ? err_rows[i].want : "(an error)");
			bad++;
		}
		free(msgs);
	}
	assert_int_equal(bad, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
