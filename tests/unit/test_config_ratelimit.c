/*
 * Unit tests for the ratelimit and admin sections of config/: the
 * documented example loads into struct ig_rl_conf with the right values,
 * defaults match ig_rl_conf_defaults(), network names resolve from
 * policy.networks wherever it is written, and every error and warning is
 * given with its exact text at its FILE:LINE:COL.
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config_fixture.h"
#include "policy/ratelimit.h"
#include "util/err.h"

#define MIN_MS (60u * 1000u)

static int
setup(void **state)
{
	struct cfgfix *t = cfgfix_enter("igrl");
	if (t == NULL)
		return -1;
	if (mkdir("state", 0700) != 0 || mkdir("run", 0700) != 0) {
		cfgfix_leave(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	unlink("state/file");
	unlink("run/ctl.sock");
	rmdir("state");
	rmdir("run");
	return cfgfix_leave(*state);
}


/* The documented shape, every key, from line 11; policy comes after it. */
static const char rl_example[] = CFGFIX_BASE
    "ratelimit:\n"
    "  enabled: true\n"
    "  address:        { threshold: 11, window: 9m, block: 14m }\n"
    "  spray_address:  { threshold: 12, window: 8m, block: 13m }\n"
    "  user:           { threshold: 13, window: 7m, block: 12m }\n"
    "  user_address:   { threshold: 6,  window: 6m, block: 11m }\n"
    "  user_circuit:   { threshold: 17, window: 2h,  block: 10m }\n"
    "  password_spray: { threshold: 0, window: 5m, block: 2h }\n"
    "  ipv4_prefix: 24\n"
    "  ipv6_prefix: 56\n"
    "  exempt: [office, 192.0.2.0/24]\n"
    "  raised:\n"
    "    - { networks: [webmail], address: 200, spray: 100 }\n"
    "    - { networks: [\"2001:db8:99::/48\"], spray: 50 }\n"
    "  known_address_ttl: 2000h\n"
    "  tarpit: { base: 500ms, max: 8s }\n"
    "  max_connection_failures: 4\n"
    "  max_keys: 200000\n"
    "  max_known: 50000\n"
    "  state_file: state/file\n"
    "  state_sync: 5s\n"
    "admin:\n"
    "  socket: run/ctl.sock\n"
    "policy:\n"
    "  networks:\n"
    "    office: [10.20.0.0/16, \"2001:db8:20::/48\"]\n"
    "    webmail: [198.51.100.10, 198.51.100.11]\n";

static void
assert_limit(const struct ig_rl_limit *l, unsigned thr, unsigned win, unsigned blk)
{
	assert_int_equal(l->threshold, thr);
	assert_int_equal(l->window_ms, win);
	assert_int_equal(l->block_ms, blk);
}

static void
test_example(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(rl_example, &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_rl_conf *rl = &cfg->ratelimit;
	assert_true(rl->enabled);
	assert_limit(&rl->address, 11, 9 * MIN_MS, 14 * MIN_MS);
	assert_limit(&rl->spray_address, 12, 8 * MIN_MS, 13 * MIN_MS);
	assert_limit(&rl->user, 13, 7 * MIN_MS, 12 * MIN_MS);
	assert_limit(&rl->user_address, 6, 6 * MIN_MS, 11 * MIN_MS);
	assert_limit(&rl->user_circuit, 17, 120 * MIN_MS, 10 * MIN_MS);
	assert_limit(&rl->password_spray, 0, 5 * MIN_MS, 120 * MIN_MS);
	assert_int_equal(rl->ipv4_prefix, 24);
	assert_int_equal(rl->ipv6_prefix, 56);
	/* exempt: the office network's blocks, then the literal. */
	assert_int_equal(rl->exempt.n, 3);
	assert_cidr(&rl->exempt.v[0], "10.20.0.0/16");
	assert_cidr(&rl->exempt.v[1], "2001:db8:20::/48");
	assert_cidr(&rl->exempt.v[2], "192.0.2.0/24");
	assert_int_equal(rl->nraised, 2);
	assert_int_equal(rl->raised[0].nets.n, 2);
	assert_cidr(&rl->raised[0].nets.v[0], "198.51.100.10/32");
	assert_cidr(&rl->raised[0].nets.v[1], "198.51.100.11/32");
	assert_int_equal(rl->raised[0].address, 200);
	assert_int_equal(rl->raised[0].spray, 100);
	assert_int_equal(rl->raised[1].nets.n, 1);
	assert_cidr(&rl->raised[1].nets.v[0], "2001:db8:99::/48");
	assert_int_equal(rl->raised[1].address, 0);
	assert_int_equal(rl->raised[1].spray, 50);
	/* 2000h does not fit in 32 bits of milliseconds. */
	assert_true(rl->known_ttl_ms == 2000ull * 3600 * 1000);
	assert_int_equal(rl->tarpit_base_ms, 500);
	assert_int_equal(rl->tarpit_max_ms, 8000);
	assert_int_equal(rl->max_conn_failures, 4);
	assert_int_equal(rl->max_keys, 200000);
	assert_int_equal(rl->max_known, 50000);
	assert_string_equal(cfg->ratelimit_state_file, "state/file");
	assert_int_equal(cfg->ratelimit_state_sync_ms, 5000);
	assert_string_equal(cfg->admin_socket, "run/ctl.sock");

	/* The limiter takes it as is. */
	static const uint8_t key[32];
	struct ig_rl *lim = NULL;
	assert_int_equal(ig_rl_new(rl, key, &lim), 0);
	ig_rl_free(lim);
	ig_config_free(cfg);
	free(msgs);
}

static void
assert_defaults(const struct ig_config *cfg)
{
	struct ig_rl_conf d;
	ig_rl_conf_defaults(&d);
	const struct ig_rl_conf *rl = &cfg->ratelimit;
	assert_true(rl->enabled == d.enabled);
	assert_memory_equal(&rl->address, &d.address, sizeof(d.address));
	assert_memory_equal(&rl->spray_address, &d.spray_address, sizeof(d.address));
	assert_memory_equal(&rl->user, &d.user, sizeof(d.address));
	assert_memory_equal(&rl->user_address, &d.user_address, sizeof(d.address));
	assert_memory_equal(&rl->user_circuit, &d.user_circuit, sizeof(d.address));
	assert_memory_equal(&rl->password_spray, &d.password_spray, sizeof(d.address));
	assert_int_equal(rl->ipv4_prefix, d.ipv4_prefix);
	assert_int_equal(rl->ipv6_prefix, d.ipv6_prefix);
	assert_int_equal(rl->exempt.n, 0);
	assert_null(rl->exempt.v);
	assert_int_equal(rl->nraised, 0);
	assert_null(rl->raised);
	assert_true(rl->known_ttl_ms == d.known_ttl_ms);
	assert_int_equal(rl->tarpit_base_ms, d.tarpit_base_ms);
	assert_int_equal(rl->tarpit_max_ms, d.tarpit_max_ms);
	assert_int_equal(rl->max_conn_failures, d.max_conn_failures);
	assert_int_equal(rl->max_keys, d.max_keys);
	assert_int_equal(rl->max_known, d.max_known);
	assert_null(cfg->ratelimit_state_file);
	assert_int_equal(cfg->ratelimit_state_sync_ms, 2000);
	assert_null(cfg->admin_socket);
	assert_string_equal(cfg->admin_listen, "");
	assert_int_equal(cfg->admin_listen_addrlen, 0);
	assert_int_equal(cfg->admin_ready_cert_days, 7);
	assert_int_equal(cfg->admin_probe_interval_ms, 10000);
}

static void
test_defaults(void **state)
{
	(void)state;
	static const char *const yamls[] = {
		CFGFIX_BASE,
		CFGFIX_BASE "ratelimit:\nadmin:\n",
		CFGFIX_BASE "ratelimit: {}\nadmin: {}\n",
		CFGFIX_BASE "ratelimit:\n  address:\n  tarpit: {}\n  raised: []\n",
	};
	for (size_t i = 0; i < sizeof(yamls) / sizeof(yamls[0]); i++) {
		int rc;
		struct ig_config *cfg;
		char *msgs = load(yamls[i], &rc, &cfg);
		assert_string_equal(msgs, "");
		assert_int_equal(rc, 0);
		assert_defaults(cfg);
		ig_config_free(cfg);
		free(msgs);
	}
}

/* A partial limit keeps the defaults of its other fields; 0 disables. */
static void
test_partial(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE
	    "ratelimit:\n"
	    "  enabled: false\n"
	    "  user_address: { threshold: 0 }\n"
	    "  user_circuit: { block: 30m }\n"
	    "  password_spray:\n"
	    "    window: 20m\n"
	    "  tarpit: { max: 20s }\n"
	    "  max_known: 0\n"
	    "  exempt: []\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_rl_conf *rl = &cfg->ratelimit;
	assert_false(rl->enabled);
	assert_limit(&rl->address, 10, 10 * MIN_MS, 15 * MIN_MS);
	assert_limit(&rl->user_address, 0, 10 * MIN_MS, 15 * MIN_MS);
	assert_limit(&rl->user_circuit, 16, 60 * MIN_MS, 30 * MIN_MS);
	assert_limit(&rl->password_spray, 10, 20 * MIN_MS, 60 * MIN_MS);
	assert_int_equal(rl->tarpit_base_ms, 1000);
	assert_int_equal(rl->tarpit_max_ms, 20000);
	assert_int_equal(rl->max_known, 0);
	assert_int_equal(rl->max_keys, 100000);
	assert_int_equal(rl->exempt.n, 0);
	ig_config_free(cfg);
	free(msgs);
}

/* Names resolve from policy.networks wherever it is in the file, and each
 * set is a copy: the config owns it apart from the policy's. */
static void
test_raised_policy_network(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE
	    "policy:\n"
	    "  networks:\n"
	    "    webmail: [198.51.100.0/28, \"2001:db8:1::/64\"]\n"
	    "  defaults:\n"
	    "    allow_from: [webmail, 10.0.0.0/8]\n"
	    "ratelimit:\n"
	    "  raised:\n"
	    "    - networks: [webmail, 203.0.113.5]\n"
	    "      address: 300\n"
	    "  exempt: [webmail]\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	const struct ig_rl_conf *rl = &cfg->ratelimit;
	assert_int_equal(rl->nraised, 1);
	assert_int_equal(rl->raised[0].nets.n, 3);
	assert_cidr(&rl->raised[0].nets.v[0], "198.51.100.0/28");
	assert_cidr(&rl->raised[0].nets.v[1], "2001:db8:1::/64");
	assert_cidr(&rl->raised[0].nets.v[2], "203.0.113.5/32");
	assert_int_equal(rl->raised[0].address, 300);
	assert_int_equal(rl->raised[0].spray, 0);
	assert_int_equal(rl->exempt.n, 2);
	assert_ptr_not_equal(rl->exempt.v, cfg->policy.networks[0].set.v);
	assert_ptr_not_equal(rl->raised[0].nets.v, cfg->policy.networks[0].set.v);
	assert_int_equal(cfg->policy.defaults.allow_from.n, 3);

	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(0xc633640au); /* 198.51.100.10 */
	assert_true(ig_netset_contains(&rl->raised[0].nets, (struct sockaddr *)&sin));
	ig_config_free(cfg);
	free(msgs);
}

/* Every error at its place: values, ranges, names, cross-field rules. */
static void
test_errors(void **state)
{
	(void)state;
	int rc;
	char *msgs = load(CFGFIX_BASE
	    "ratelimit:\n"                                               /* 11 */
	    "  enabeld: true\n"
	    "  address: { threshold: 70000, window: 0, block: 1d }\n"
	    "  spray_address: { treshold: 3 }\n"
	    "  user: 5\n"                                                /* 15 */
	    "  user_address: { window: 25h, block: 721h }\n"
	    "  ipv4_prefix: 33\n"
	    "  ipv6_prefix: 129\n"
	    "  exempt: [ofice, 10.0.0.1/8, \"::1/200\"]\n"
	    "  raised:\n"                                                /* 20 */
	    "    - { networks: [webmial], address: 70000 }\n"
	    "    - { address: 5 }\n"
	    "    - { networks: [] , spray: 1}\n"
	    "    - networks: [192.0.2.0/24]\n"
	    "    - 7\n"                                                  /* 25 */
	    "  known_address_ttl: 9000h\n"
	    "  tarpit: { base: 2m, max: 5s, maxx: 1s }\n"
	    "  max_connection_failures: 0\n"
	    "  max_keys: 15\n"
	    "  max_known: -1\n"                                          /* 30 */
	    "  state_file: nodir/state\n"
	    "admin:\n"
	    "  socket: nodir/ctl.sock\n"
	    "  sokcet: x\n"
	    "policy:\n"                                                  /* 35 */
	    "  networks:\n"
	    "    office: [10.20.0.0/16]\n"
	    "    webmail: [198.51.100.10]\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:3: unknown key 'enabeld' in 'ratelimit' (did you mean 'enabled'?)\n"
	    "t.yaml:13:25: 'ratelimit.address.threshold' must be between 0 and 65535 (got "
	    "70000)\n"
	    "t.yaml:13:40: 'ratelimit.address.window' must be between 1s and 24h (got 0)\n"
	    "t.yaml:13:50: invalid duration '1d' for 'ratelimit.address.block': expected a "
	    "number with ms, s, m or h\n"
	    "t.yaml:14:20: unknown key 'treshold' in 'ratelimit.spray_address' (did you mean "
	    "'threshold'?)\n"
	    "t.yaml:15:9: 'ratelimit.user' must be a mapping, not a scalar\n"
	    "t.yaml:16:27: 'ratelimit.user_address.window' must be between 1s and 24h (got 25h)\n"
	    "t.yaml:16:39: 'ratelimit.user_address.block' must be between 1s and 720h (got "
	    "721h)\n"
	    "t.yaml:17:16: 'ratelimit.ipv4_prefix' must be between 0 and 32 (got 33)\n"
	    "t.yaml:18:16: 'ratelimit.ipv6_prefix' must be between 0 and 128 (got 129)\n"
	    "t.yaml:19:12: unknown network 'ofice' in 'ratelimit.exempt' (did you mean "
	    "'office'?)\n"
	    "t.yaml:19:19: invalid CIDR '10.0.0.1/8' in 'ratelimit.exempt': host bits are set "
	    "(did you mean 10.0.0.0/8?)\n"
	    "t.yaml:19:31: invalid CIDR '::1/200' in 'ratelimit.exempt': the prefix length must "
	    "be at most 128\n"
	    "t.yaml:21:20: unknown network 'webmial' in 'ratelimit.raised[0].networks' (did you "
	    "mean 'webmail'?)\n"
	    "t.yaml:21:39: 'ratelimit.raised[0].address' must be between 0 and 65535 (got "
	    "70000)\n"
	    "t.yaml:22:7: missing required key 'networks' in 'ratelimit.raised[1]'\n"
	    "t.yaml:22:9: warning: ratelimit.raised[1].address (5) is below "
	    "ratelimit.address.threshold (10): these networks get a lower limit, not a higher "
	    "one\n"
	    "t.yaml:23:19: 'ratelimit.raised[2].networks' needs at least one entry\n"
	    "t.yaml:23:24: warning: ratelimit.raised[2].spray (1) is below "
	    "ratelimit.spray_address.threshold (10): these networks get a lower limit, not a "
	    "higher one\n"
	    "t.yaml:24:7: warning: 'ratelimit.raised[3]' has no effect: set address or spray (or "
	    "both)\n"
	    "t.yaml:25:7: 'ratelimit.raised[4]' must be a mapping, not a scalar\n"
	    "t.yaml:26:22: 'ratelimit.known_address_ttl' must be between 1m and 8760h (got "
	    "9000h)\n"
	    "t.yaml:27:19: 'ratelimit.tarpit.base' must be between 0ms and 1m (got 2m)\n"
	    "t.yaml:27:32: unknown key 'maxx' in 'ratelimit.tarpit' (did you mean 'max'?)\n"
	    "t.yaml:28:28: 'ratelimit.max_connection_failures' must be between 1 and 1000 (got "
	    "0)\n"
	    "t.yaml:29:13: 'ratelimit.max_keys' must be between 16 and 10000000 (got 15)\n"
	    "t.yaml:30:14: invalid value '-1' for 'ratelimit.max_known': expected a whole "
	    "number\n"
	    "t.yaml:31:15: cannot use 'nodir/state' for 'ratelimit.state_file': directory "
	    "'nodir': No such file or directory\n"
	    "t.yaml:33:11: cannot use 'nodir/ctl.sock' for 'admin.socket': directory 'nodir': No "
	    "such file or directory\n"
	    "t.yaml:34:3: unknown key 'sokcet' in 'admin' (did you mean 'socket'?)\n");
	free(msgs);
}

/* Cross-field rules and the files the proxy creates later. */
static void
test_checks(void **state)
{
	(void)state;
	int rc;
	char long_name[200];
	memset(long_name, 'a', sizeof(long_name));
	memcpy(long_name, "run/", 4);
	long_name[sizeof(long_name) - 1] = '\0';
	touch("state/file", 0600);

	char *msgs = load(CFGFIX_BASE
	    "ratelimit:\n"
	    "  tarpit: { base: 5s, max: 2s }\n"
	    "  max_keys: 1000\n"
	    "  max_known: 1000\n"
	    "  state_file: state\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:19: ratelimit.tarpit.base (5s) must not exceed ratelimit.tarpit.max (2s)\n"
	    "t.yaml:14:14: ratelimit.max_known (1000) must be less than ratelimit.max_keys "
	    "(1000)\n"
	    "t.yaml:15:15: cannot use 'state' for 'ratelimit.state_file': it exists and is not a "
	    "regular file\n");
	free(msgs);

	/* The other key of the pair when only it was written. */
	msgs = load(CFGFIX_BASE
	    "ratelimit:\n"
	    "  tarpit: { max: 500ms }\n"
	    "  max_keys: 16\n"
	    "  state_file: state/\n"
	    "admin:\n"
	    "  socket: state/file\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:18: ratelimit.tarpit.base (1s) must not exceed ratelimit.tarpit.max (500ms)\n"
	    "t.yaml:13:13: ratelimit.max_known (25000) must be less than ratelimit.max_keys (16)\n"
	    "t.yaml:14:15: cannot use 'state/' for 'ratelimit.state_file': it names a directory, "
	    "not a file\n"
	    "t.yaml:16:11: cannot use 'state/file' for 'admin.socket': it exists and is not a "
	    "socket\n");
	free(msgs);

	/* A socket name longer than sun_path; a file's "directory" that is a
	 * file; an existing state file and socket are fine. */
	char yaml[1024];
	snprintf(yaml, sizeof(yaml), CFGFIX_BASE
	    "ratelimit:\n"
	    "  state_file: cert.pem/x\n"
	    "admin:\n"
	    "  socket: %s\n", long_name);
	msgs = load(yaml, &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	char want[1024];
	snprintf(want, sizeof(want),
	    "t.yaml:12:15: cannot use 'cert.pem/x' for 'ratelimit.state_file': directory "
	    "'cert.pem': not a directory\n"
	    "t.yaml:14:11: cannot use '%.*s...' for 'admin.socket': a socket name has at most "
	    "%zu bytes\n", 68, long_name, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	assert_string_equal(msgs, want);
	free(msgs);

	/* state_sync: from 100ms to 1h. */
	msgs = load(CFGFIX_BASE
	    "ratelimit:\n"
	    "  state_sync: 50ms\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:15: 'ratelimit.state_sync' must be between 100ms and 1h (got 50ms)\n");
	free(msgs);
	msgs = load(CFGFIX_BASE "ratelimit: { state_sync: 61m }\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:11:26: 'ratelimit.state_sync' must be between 100ms and 1h (got 61m)\n");
	free(msgs);

	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "run/ctl.sock");
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	struct ig_config *cfg;
	msgs = load(CFGFIX_BASE
	    "ratelimit:\n"
	    "  state_file: state/file\n"
	    "  known_address_ttl: 1193h\n"
	    "admin:\n"
	    "  socket: run/ctl.sock\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_true(cfg->ratelimit.known_ttl_ms == 1193ull * 3600 * 1000);
	ig_config_free(cfg);
	free(msgs);
}

/* Shapes that are not what the schema expects, and duplicates. */
static void
test_shapes(void **state)
{
	(void)state;
	int rc;
	char *msgs = load(CFGFIX_BASE
	    "ratelimit: [1]\n"
	    "admin: x\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:11:12: 'ratelimit' must be a mapping, not a sequence\n"
	    "t.yaml:12:8: 'admin' must be a mapping, not a scalar\n");
	free(msgs);

	msgs = load(CFGFIX_BASE
	    "ratelimit:\n"
	    "  exempt:\n"
	    "  raised: {}\n"
	    "  address: { threshold: 1, threshold: 2 }\n"
	    "  enabled: yes\n"
	    "  state_file: \"\"\n"
	    "  exempt: [1.2.3.4]\n"
	    "ratelimit: {}\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_string_equal(msgs,
	    "t.yaml:12:10: 'ratelimit.exempt' has no value (write [] for an empty list)\n"
	    "t.yaml:13:11: 'ratelimit.raised' must be a sequence, not a mapping\n"
	    "t.yaml:14:28: duplicate key 'threshold' in 'ratelimit.address' (first at 14:14)\n"
	    "t.yaml:15:12: invalid value 'yes' for 'ratelimit.enabled': expected true or false\n"
	    "t.yaml:16:15: 'ratelimit.state_file' must be between 1 and 4095 characters\n"
	    "t.yaml:17:3: duplicate key 'exempt' in 'ratelimit' (first at 12:3)\n"
	    "t.yaml:18:1: duplicate key 'ratelimit' (first at 11:1)\n");
	free(msgs);
}

/* admin.listen, admin.ready_cert_days, admin.probe_interval. */
static void
test_admin_http(void **state)
{
	(void)state;
	int rc;
	struct ig_config *cfg;
	char *msgs = load(CFGFIX_BASE "admin:\n"
	    "  listen: \"[::1]:9143\"\n"
	    "  ready_cert_days: 30\n"
	    "  probe_interval: 250ms\n", &rc, &cfg);
	assert_string_equal(msgs, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->admin_listen, "[::1]:9143");
	assert_int_equal(cfg->admin_listen_addr.ss_family, AF_INET6);
	assert_true(cfg->admin_listen_addrlen > 0);
	assert_int_equal(cfg->admin_ready_cert_days, 30);
	assert_int_equal(cfg->admin_probe_interval_ms, 250);
	ig_config_free(cfg);
	free(msgs);

	msgs = load(CFGFIX_BASE "admin:\n"
	    "  listen: localhost:9143\n"
	    "  ready_cert_days: 4000\n"
	    "  probe_interval: 10ms\n", &rc, NULL);
	assert_int_equal(rc, IG_ECONFIG);
	assert_non_null(strstr(msgs, "t.yaml:12:11: invalid listen address 'localhost:9143' for "
	    "'admin.listen'"));
	assert_non_null(strstr(msgs, "t.yaml:13:20: "));
	assert_non_null(strstr(msgs, "'admin.ready_cert_days'"));
	assert_non_null(strstr(msgs, "t.yaml:14:19: "));
	assert_non_null(strstr(msgs, "'admin.probe_interval'"));
	free(msgs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raised_policy_network, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_http, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
