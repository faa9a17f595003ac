/*
 * Unit tests for proxy/expo.c (the Prometheus text format writer) and the
 * metrics writer over it (proxy/metrics.c): label values escaped, HELP
 * escaped, histogram buckets cumulative with +Inf equal to _count, the
 * size cap, and the workers' counters added up at scrape time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/expo.h"
#include "proxy/metrics.h"

/* {label value, as written} */
static const struct {
	const char *in;
	const char *out;
} escape_rows[] = {
	{ "plain", "plain" },
	{ "", "" },
	{ "a\"b", "a\\\"b" },
	{ "back\\slash", "back\\\\slash" },
	{ "line\nfeed", "line\\nfeed" },
	{ "\\\"\n", "\\\\\\\"\\n" },
	{ "tab\tand utf-8 \xc3\xa9", "tab\tand utf-8 \xc3\xa9" },
};

static void
test_escape_label(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(escape_rows) / sizeof(escape_rows[0]); i++) {
		char out[64];
		size_t n = ig_expo_escape_label(escape_rows[i].in, out, sizeof(out));
		assert_string_equal(out, escape_rows[i].out);
		assert_int_equal(n, strlen(escape_rows[i].out));
	}
	/* Truncated output still NUL-terminated; the length needed returned. */
	char small[4];
	assert_int_equal(ig_expo_escape_label("a\"bcdef", small, sizeof(small)), 8);
	assert_string_equal(small, "a\\\"");
}

static void
test_samples(void **state)
{
	(void)state;
	struct ig_expo e;
	ig_expo_init(&e, 1 << 20);
	ig_expo_family(&e, "x_total", "counter", "Help with \\ and\nnewline.");
	struct ig_expo_label l[2] = { { "a", "q\"v" }, { "b", "x\ny" } };
	ig_expo_u64(&e, "x_total", l, 2, 42);
	ig_expo_u64(&e, "x_total", NULL, 0, 0);
	ig_expo_double(&e, "g", NULL, 0, 0.5);
	ig_expo_double(&e, "g", NULL, 0, 1.0 / 0.0);
	assert_false(e.overflow);
	assert_string_equal(e.p,
	    "# HELP x_total Help with \\\\ and\\nnewline.\n"
	    "# TYPE x_total counter\n"
	    "x_total{a=\"q\\\"v\",b=\"x\\ny\"} 42\n"
	    "x_total 0\n"
	    "g 0.5\n"
	    "g +Inf\n");
	ig_expo_free(&e);
}

static void
test_histogram(void **state)
{
	(void)state;
	struct ig_expo e;
	ig_expo_init(&e, 1 << 20);
	const double bounds[3] = { 0.1, 1, 2.5 };
	const uint64_t counts[4] = { 2, 0, 3, 5 }; /* per bucket; last is above 2.5 */
	struct ig_expo_label l = { "k", "v" };
	ig_expo_histogram(&e, "h_seconds", &l, 1, bounds, counts, 3, 12.25);
	assert_false(e.overflow);
	assert_string_equal(e.p,
	    "h_seconds_bucket{k=\"v\",le=\"0.1\"} 2\n"
	    "h_seconds_bucket{k=\"v\",le=\"1\"} 2\n"
	    "h_seconds_bucket{k=\"v\",le=\"2.5\"} 5\n"
	    "h_seconds_bucket{k=\"v\",le=\"+Inf\"} 10\n"
	    "h_seconds_sum{k=\"v\"} 12.25\n"
	    "h_seconds_count{k=\"v\"} 10\n");
	ig_expo_free(&e);
}

static void
test_cap(void **state)
{
	(void)state;
	struct ig_expo e;
	ig_expo_init(&e, 64);
	for (int i = 0; i < 10; i++)
		ig_expo_u64(&e, "a_long_metric_name_total", NULL, 0, (uint64_t)i);
	assert_true(e.overflow);
	assert_true(e.len < 64);
	ig_expo_free(&e);
}

/* Finds "name value\n" (name with its labels) in text; returns the value. */
static double
sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; (p = strstr(p, name)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	fail_msg("no sample %s", name);
	return -1;
}

static void
test_metrics_sum(void **state)
{
	(void)state;
	struct ig_metrics *m = ig_metrics_new(3, 2);
	assert_non_null(m);
	assert_int_equal((uintptr_t)&m[1] % 64, 0);
	for (unsigned w = 0; w < 3; w++) {
		ig_metric_add(&m[w].conns[1], w + 1);
		ig_metric_add(&m[w].logins[IG_M_MECH_LOGIN_CMD][IG_ML_OK], 1);
		ig_metric_add(&m[w].refusals[IG_MR_PLAINTEXT], 2);
		ig_metric_add(&m[w].relay_in, 2);
		ig_metric_add(&m[w].relay_out, 1);
		ig_metric_add(&m[w].tarpit_ms, 1500);
		ig_metrics_observe(&m[w], IG_MH_LOGIN, 3000000);      /* 3 ms */
		ig_metrics_observe(&m[w], IG_MH_LOGIN, 20000000000);  /* 20 s */
	}
	const char *names[2] = { "imaps", "we\"ird" };
	const unsigned current[2] = { 4, 0 };
	struct ig_metrics_cert cert = { "/etc/x.pem", 1700000000 };
	struct ig_metrics_view v = {
		.workers = m, .nworkers = 3, .listener_names = names, .listener_current = current,
		.nlisteners = 2, .version = "0.1.0", .mbedtls_version = "3.6.6",
		.crypto = "openssl", .start_time = 1.5e9, .rl_enabled = true,
		.rl_blocks = { 1, 0, 0, 0, 0, 2 }, .backend_up = true, .reloads_ok = 3,
		.certs = &cert, .ncerts = 1,
		.open_fds = 12, .max_fds = 1024, .rss_bytes = 4096, .vsize_bytes = -1,
		.cpu_seconds = 0.25,
	};
	struct ig_expo e;
	ig_expo_init(&e, 1 << 20);
	ig_metrics_write(&e, &v);
	assert_false(e.overflow);
	const char *t = e.p;
	assert_true(sample(t, "imapguard_build_info{version=\"0.1.0\",mbedtls_version=\"3.6.6\","
	    "crypto=\"openssl\"}") == 1);
	assert_true(sample(t, "imapguard_connections_total{listener=\"we\\\"ird\"}") == 6);
	assert_true(sample(t, "imapguard_connections_total{listener=\"imaps\"}") == 0);
	assert_true(sample(t, "imapguard_current_connections{listener=\"imaps\"}") == 4);
	assert_true(sample(t, "imapguard_login_attempts_total{mechanism=\"LOGIN-command\","
	    "result=\"ok\"}") == 3);
	assert_true(sample(t, "imapguard_login_attempts_total{mechanism=\"PLAIN\","
	    "result=\"fail\"}") == 0);
	assert_true(sample(t, "imapguard_login_refusals_total{reason=\"plaintext\"}") == 6);
	assert_true(sample(t, "imapguard_relay_sessions") == 3);
	assert_true(sample(t, "imapguard_tarpit_seconds_total") == 4.5);
	assert_true(sample(t, "imapguard_login_duration_seconds_bucket{le=\"0.0025\"}") == 0);
	assert_true(sample(t, "imapguard_login_duration_seconds_bucket{le=\"0.005\"}") == 3);
	assert_true(sample(t, "imapguard_login_duration_seconds_bucket{le=\"10\"}") == 3);
	assert_true(sample(t, "imapguard_login_duration_seconds_bucket{le=\"+Inf\"}") == 6);
	assert_true(sample(t, "imapguard_login_duration_seconds_count") == 6);
	assert_true(sample(t, "imapguard_login_duration_seconds_sum") == 60.009);
	assert_true(sample(t, "imapguard_ratelimit_blocks{limit=\"password-spray\"}") == 2);
	assert_true(sample(t, "imapguard_reloads_total{result=\"success\"}") == 3);
	assert_true(sample(t, "imapguard_tls_certificate_expiry_timestamp_seconds{"
	    "certificate=\"/etc/x.pem\"}") == 1700000000);
	assert_true(sample(t, "process_open_fds") == 12);
	assert_null(strstr(t, "process_virtual_memory_bytes")); /* unknown: left out */
	/* Every family once, each sample after its TYPE line. */
	assert_non_null(strstr(t, "# TYPE imapguard_login_duration_seconds histogram\n"));
	ig_expo_free(&e);
	ig_metrics_free(m, 3);
}

/* {decision or limiter reason, refusal} */
static void
test_reason_maps(void **state)
{
	(void)state;
	assert_int_equal(ig_metrics_refusal_of("tls-required"), IG_MR_PLAINTEXT);
	assert_int_equal(ig_metrics_refusal_of("plaintext-not-from-network"), IG_MR_PLAINTEXT);
	assert_int_equal(ig_metrics_refusal_of("login-command-blocked"), IG_MR_MECHANISM);
	assert_int_equal(ig_metrics_refusal_of("mechanism-blocked"), IG_MR_MECHANISM);
	assert_int_equal(ig_metrics_refusal_of("account-blocked"), IG_MR_DENY);
	assert_int_equal(ig_metrics_refusal_of("address-not-allowed"), IG_MR_ALLOW_FROM);
	assert_int_equal(ig_metrics_refusal_of("allowed"), IG_MR_COUNT);
	assert_int_equal(ig_metrics_refusal_of(NULL), IG_MR_COUNT);
	assert_int_equal(ig_metrics_refusal_of_limit("spray-address"), IG_MR_SPRAY);
	assert_int_equal(ig_metrics_refusal_of_limit("password-spray"), IG_MR_SPRAY);
	assert_int_equal(ig_metrics_refusal_of_limit("address"), IG_MR_RATELIMIT);
	assert_int_equal(ig_metrics_refusal_of_limit("user-circuit"), IG_MR_RATELIMIT);
	assert_int_equal(ig_metrics_backend_err_of("connect-failed"), IG_MBE_CONNECT);
	assert_int_equal(ig_metrics_backend_err_of("tls-identity"), IG_MBE_TLS);
	assert_int_equal(ig_metrics_backend_err_of("bad-greeting"), IG_MBE_PROTOCOL);
	assert_int_equal(ig_metrics_backend_err_of("write"), IG_MBE_IO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_label),
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_metrics_sum),
		cmocka_unit_test(test_reason_maps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
