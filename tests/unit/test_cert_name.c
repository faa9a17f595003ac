/*
 * Unit tests for certs/name.c: the server identity check (RFC 6125, RFC 2595
 * section 2.4). Certificates come from tests/data/certs (make-fixtures.sh).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <mbedtls/x509_crt.h>

#include "certs/name.h"
#include "util/err.h"

/*
 * The fixtures live next to this file; ctest runs from the build tree, so
 * the path is derived from __FILE__ (absolute under CMake), or taken from
 * IG_TEST_CERTS when set.
 */
static void
fixture_path(const char *name, char *out, size_t outsz)
{
	const char *dir = getenv("IG_TEST_CERTS");
	int n;

	if (dir != NULL) {
		n = snprintf(out, outsz, "%s/%s", dir, name);
	} else {
		const char *slash = strrchr(__FILE__, '/');
		int dlen = slash == NULL ? 1 : (int)(slash - __FILE__);
		n = snprintf(out, outsz, "%.*s/../data/certs/%s", dlen,
		    slash == NULL ? "." : __FILE__, name);
	}
	assert_true(n > 0 && (size_t)n < outsz);
}

struct match_row {
	const char *pattern;
	const char *host;
	bool want;
};

static const struct match_row match_rows[] = {
	/* Exact names, case-insensitive (ASCII only). */
	{ "mail.example.com", "mail.example.com", true },
	{ "MAIL.Example.COM", "mail.example.com", true },
	{ "mail.example.com", "Mail.EXAMPLE.com", true },
	{ "mail.example.com", "imap.example.com", false },
	{ "mail.example.com", "mail.example.co", false },
	{ "mail.example.com", "ail.example.com", false },
	{ "mail.example.com", "xmail.example.com", false },
	{ "localhost", "localhost", true },
	{ "localhost", "LOCALHOST", true },
	/* One trailing dot on either side is ignored, not two. */
	{ "mail.example.com.", "mail.example.com", true },
	{ "mail.example.com", "mail.example.com.", true },
	{ "mail.example.com.", "mail.example.com.", true },
	{ "mail.example.com..", "mail.example.com", false },
	{ "mail.example.com", "mail.example.com..", false },
	{ "*.example.com.", "a.example.com", true },
	{ "*.example.com", "a.example.com.", true },
	/* Empty labels never match. */
	{ "", "", false },
	{ ".", ".", false },
	{ "mail..example.com", "mail..example.com", false },
	{ ".example.com", ".example.com", false },
	{ "*.example.com", ".example.com", false },
	{ "*..example.com", "a..example.com", false },
	{ "*.example..com", "a.example..com", false },
	{ "mail.example.com", "", false },
	/* Wildcard: the whole left-most label, exactly one host label. */
	{ "*.example.com", "a.example.com", true },
	{ "*.example.com", "IMAP.Example.Com", true },
	{ "*.EXAMPLE.com", "imap.example.COM", true },
	{ "*.example.com", "example.com", false },
	{ "*.example.com", "a.b.example.com", false },
	{ "*.example.com", "a.example.org", false },
	{ "*.example.com", "aexample.com", false },
	{ "*.b.example.com", "a.b.example.com", true },
	/* Too broad: fewer than two labels after "*.". */
	{ "*.com", "example.com", false },
	{ "*.com", "a.com", false },
	{ "*.", "a.", false },
	{ "*", "a", false },
	{ "*", "localhost", false },
	/* Partial and inner wildcards never match. */
	{ "f*.example.com", "foo.example.com", false },
	{ "*o.example.com", "foo.example.com", false },
	{ "f*o.example.com", "foo.example.com", false },
	{ "a.*.example.com", "a.b.example.com", false },
	{ "**.example.com", "a.example.com", false },
	{ "*.*.example.com", "a.b.example.com", false },
	{ "mail.example.*", "mail.example.com", false },
	/* A wildcard in the host is a literal '*', never a pattern. */
	{ "*.example.com", "*.example.com", false },
	{ "mail.example.com", "*.example.com", false },
	/* IP literals: exact text may match, a wildcard never does. */
	{ "*.0.0.1", "127.0.0.1", false },
	{ "*.168.1.1", "192.168.1.1", false },
	{ "127.0.0.1", "127.0.0.1", true },
	/* Bytes a hostile certificate might present. */
	{ "mail.example.com\x01", "mail.example.com\x01", false },
	{ "mail example.com", "mail example.com", false },
	{ "m\xc3\xa4il.example.com", "m\xc3\xa4il.example.com", false },
};

static void
test_name_match_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
		const struct match_row *r = &match_rows[i];
		bool got = ig_cert_name_match(r->pattern, strlen(r->pattern), r->host,
		    strlen(r->host));
		if (got != r->want)
			fail_msg("row %zu: pattern \"%s\" host \"%s\": got %d, want %d", i,
			    r->pattern, r->host, got, r->want);
	}
}

static void
test_name_match_lengths(void **state)
{
	(void)state;
	/* Lengths are honoured: no NUL terminator is needed or looked for. */
	assert_true(ig_cert_name_match("mail.example.comXYZ", 16, "mail.example.com!", 16));
	assert_false(ig_cert_name_match("mail.example.com", 16, "mail.example.com", 15));
	/* An embedded NUL is a mismatch, not a terminator. */
	assert_false(ig_cert_name_match("mail.example.com\0.evil", 22, "mail.example.com", 16));
	assert_false(ig_cert_name_match("*.example.com", 13, "a\0.example.com", 14));
	assert_false(ig_cert_name_match(NULL, 0, "a", 1));
	assert_false(ig_cert_name_match("a", 1, NULL, 0));
}

struct host_row {
	const char *file;
	const char *host;
	int want;
};

static const struct host_row host_rows[] = {
	/* Several SAN dNSNames: any one may match. */
	{ "multi.pem", "mail.example.com", 0 },
	{ "multi.pem", "imap.example.com", 0 },
	{ "multi.pem", "IMAP.EXAMPLE.COM.", 0 },
	{ "multi.pem", "pop.example.com", IG_ECERT },
	/* dNSName SANs present: the CN is ignored. */
	{ "multi.pem", "subject-cn.example.com", IG_ECERT },
	/* Wildcard SAN. */
	{ "wildcard.pem", "imap.example.com", 0 },
	{ "wildcard.pem", "example.com", IG_ECERT },
	{ "wildcard.pem", "a.imap.example.com", IG_ECERT },
	{ "wildcard.pem", "127.0.0.1", IG_ECERT },
	/* No SAN at all: CN fallback. */
	{ "cnonly.pem", "legacy.example.com", 0 },
	{ "cnonly.pem", "Legacy.Example.Com", 0 },
	{ "cnonly.pem", "other.example.com", IG_ECERT },
	/* iPAddress SANs, 4 and 16 bytes; never the CN for an IP literal. */
	{ "ip.pem", "127.0.0.1", 0 },
	{ "ip.pem", "::1", 0 },
	{ "ip.pem", "0:0:0:0:0:0:0:1", 0 },
	{ "ip.pem", "127.0.0.2", IG_ECERT },
	{ "ip.pem", "::2", IG_ECERT },
	{ "ip.pem", "::ffff:127.0.0.1", IG_ECERT },
	/* Only iPAddress SANs, no dNSName: a DNS host falls back to the CN. */
	{ "ip.pem", "ip.example.com", 0 },
	/* A dNSName SAN never answers for an IP literal. */
	{ "multi.pem", "127.0.0.1", IG_ECERT },
	{ "dual-ecdsa.pem", "dual.example.com", 0 },
	{ "dual-rsa.pem", "dual.example.com", 0 },
	{ "dual-rsa.pem", "", IG_ECERT },
};

static void
test_check_host_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(host_rows) / sizeof(host_rows[0]); i++) {
		const struct host_row *r = &host_rows[i];
		mbedtls_x509_crt crt;
		char path[4096];
		int got;

		fixture_path(r->file, path, sizeof(path));
		mbedtls_x509_crt_init(&crt);
		assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
		got = ig_cert_check_host(&crt, r->host);
		mbedtls_x509_crt_free(&crt);
		if (got != r->want)
			fail_msg("row %zu: %s host \"%s\": got %d, want %d", i, r->file,
			    r->host, got, r->want);
	}
}

static void
test_check_host_bad_args(void **state)
{
	mbedtls_x509_crt empty;

	(void)state;
	mbedtls_x509_crt_init(&empty);
	assert_int_equal(ig_cert_check_host(NULL, "a.example.com"), IG_ECERT);
	assert_int_equal(ig_cert_check_host(&empty, "a.example.com"), IG_ECERT);
	mbedtls_x509_crt_free(&empty);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_match_rows),
		cmocka_unit_test(test_name_match_lengths),
		cmocka_unit_test(test_check_host_rows),
		cmocka_unit_test(test_check_host_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
