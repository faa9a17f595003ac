/*
 * Unit tests for proxy/proxyproto.c: the examples of HAProxy's
 * doc/proxy-protocol.txt, each fed whole, one byte at a time, in the
 * chunks ig_pp_want() asks for, and cut at every byte (AGAIN, never a
 * wrong answer); garbage and malformed headers; the bytes after a header
 * left to the caller; and the formatter read back by the parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy/proxyproto.h"

struct row {
	const char *name;
	const uint8_t *in;
	size_t len;
	enum ig_parse_result want;
	enum ig_pp_version version;     /* OK rows */
	enum ig_pp_command command;
	const char *src, *dst;          /* "ip" or NULL (not PROXY) */
	unsigned sport, dport;
};

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

#define SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"

/* v2 TCP4 192.168.0.1:56324 -> 192.168.0.11:443 */
#define V2_TCP4 SIG "\x21\x11\x00\x0C" "\xC0\xA8\x00\x01" "\xC0\xA8\x00\x0B" "\xDC\x04\x01\xBB"
/* v2 TCP6 2001:db8::1:40000 -> 2001:db8::2:993 */
#define V2_TCP6 SIG "\x21\x21\x00\x24" \
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" \
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02" \
	"\x9C\x40\x03\xE1"

#define FF4 "255.255.255.255"
#define FF6 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

static const struct row rows[] = {
	/* Section 2.1's examples. */
	{ "v1 tcp4 worst case", S("PROXY TCP4 " FF4 " " FF4 " 65535 65535\r\n"), IG_PARSE_OK,
	  IG_PP_V1, IG_PP_CMD_PROXY, FF4, FF4, 65535, 65535 },
	{ "v1 tcp6 worst case", S("PROXY TCP6 " FF6 " " FF6 " 65535 65535\r\n"), IG_PARSE_OK,
	  IG_PP_V1, IG_PP_CMD_PROXY, FF6, FF6, 65535, 65535 },
	{ "v1 unknown", S("PROXY UNKNOWN\r\n"), IG_PARSE_OK, IG_PP_V1, IG_PP_CMD_UNKNOWN,
	  NULL, NULL, 0, 0 },
	{ "v1 unknown worst case (107 bytes)",
	  S("PROXY UNKNOWN " FF6 " " FF6 " 65535 65535\r\n"), IG_PARSE_OK, IG_PP_V1,
	  IG_PP_CMD_UNKNOWN, NULL, NULL, 0, 0 },
	{ "v1 tcp4", S("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), IG_PARSE_OK,
	  IG_PP_V1, IG_PP_CMD_PROXY, "192.168.0.1", "192.168.0.11", 56324, 443 },
	{ "v1 tcp6 short", S("PROXY TCP6 ::1 ::2 0 1\r\n"), IG_PARSE_OK,
	  IG_PP_V1, IG_PP_CMD_PROXY, "::1", "::2", 0, 1 },
	/* Section 2.2: v2. */
	{ "v2 tcp4", S(V2_TCP4), IG_PARSE_OK, IG_PP_V2, IG_PP_CMD_PROXY,
	  "192.168.0.1", "192.168.0.11", 56324, 443 },
	{ "v2 tcp6", S(V2_TCP6), IG_PARSE_OK, IG_PP_V2, IG_PP_CMD_PROXY,
	  "2001:db8::1", "2001:db8::2", 40000, 993 },
	{ "v2 tcp4 with TLVs (ALPN, authority, NOOP)",
	  S(SIG "\x21\x11\x00\x22" "\x7F\x00\x00\x03" "\x7F\x00\x00\x01" "\x30\x39\x03\xE1"
	    "\x01\x00\x04" "imap" "\x02\x00\x07" "a.b.com" "\x04\x00\x02" "\x00\x00"),
	  IG_PARSE_OK, IG_PP_V2, IG_PP_CMD_PROXY, "127.0.0.3", "127.0.0.1", 12345, 993 },
	{ "v2 local, no addresses", S(SIG "\x20\x00\x00\x00"), IG_PARSE_OK, IG_PP_V2,
	  IG_PP_CMD_LOCAL, NULL, NULL, 0, 0 },
	{ "v2 local with an address block (ignored)", S(SIG "\x20\x11\x00\x0C"
	  "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01\x00\x02"), IG_PARSE_OK, IG_PP_V2,
	  IG_PP_CMD_LOCAL, NULL, NULL, 0, 0 },
	{ "v2 local, short block (addresses not read)", S(SIG "\x20\x11\x00\x02" "\x00\x00"),
	  IG_PARSE_OK, IG_PP_V2, IG_PP_CMD_LOCAL, NULL, NULL, 0, 0 },
	{ "v2 proxy unspec", S(SIG "\x21\x00\x00\x00"), IG_PARSE_OK, IG_PP_V2,
	  IG_PP_CMD_UNKNOWN, NULL, NULL, 0, 0 },
	{ "v2 proxy udp4 (real endpoints)", S(SIG "\x21\x12\x00\x0C"
	  "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01\x00\x02"), IG_PARSE_OK, IG_PP_V2,
	  IG_PP_CMD_UNKNOWN, NULL, NULL, 0, 0 },
	/* Garbage, and malformed headers. */
	{ "imap command", S("a1 LOGIN u p\r\n"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "tls clienthello", S("\x16\x03\x01\x02\x00\x01"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "lower case", S("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), IG_PARSE_BAD, 0, 0, NULL,
	  NULL, 0, 0 },
	{ "v1 no space after PROXY", S("PROXYTCP4"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v1 bare LF", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), IG_PARSE_BAD, 0, 0, NULL,
	  NULL, 0, 0 },
	{ "v1 tcp5", S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), IG_PARSE_BAD, 0, 0, NULL,
	  NULL, 0, 0 },
	{ "v1 unknownx", S("PROXY UNKNOWNX\r\n"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v1 v6 address in tcp4", S("PROXY TCP4 ::1 ::2 1 2\r\n"), IG_PARSE_BAD, 0, 0, NULL,
	  NULL, 0, 0 },
	{ "v1 v4 address in tcp6", S("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 port over 65535", S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 signed port", S("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 double space", S("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 too few fields", S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 too many fields", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 NUL inside an address", S("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), IG_PARSE_BAD,
	  0, 0, NULL, NULL, 0, 0 },
	{ "v1 trailing space", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), IG_PARSE_BAD, 0, 0,
	  NULL, NULL, 0, 0 },
	{ "v1 108 bytes", S("PROXY UNKNOWN " FF6 " " FF6 " 65535 655351\r\n"),
	  IG_PARSE_TOO_LONG, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 bad signature", S("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0B"),
	  IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 version 1", S(SIG "\x11\x11\x00\x0C"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 command 2", S(SIG "\x22\x11\x00\x0C"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 tcp4 length 11", S(SIG "\x21\x11\x00\x0B"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 tcp6 length 35", S(SIG "\x21\x21\x00\x23"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 unix length 215", S(SIG "\x21\x31\x00\xD7"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 length over the cap", S(SIG "\x21\x11\x02\x09"), IG_PARSE_TOO_LONG, 0, 0, NULL,
	  NULL, 0, 0 },
	{ "v2 length 65535", S(SIG "\x21\x11\xFF\xFF"), IG_PARSE_TOO_LONG, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 TLV overrun", S(SIG "\x21\x11\x00\x10" "\x01\x02\x03\x04" "\x05\x06\x07\x08"
	  "\x00\x01\x00\x02" "\x01\x00\x05" "a"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
	{ "v2 TLV header cut", S(SIG "\x21\x11\x00\x0E" "\x01\x02\x03\x04" "\x05\x06\x07\x08"
	  "\x00\x01\x00\x02" "\x01\x00"), IG_PARSE_BAD, 0, 0, NULL, NULL, 0, 0 },
};

static void
check_addr(const struct sockaddr_storage *sa, const char *ip, unsigned port)
{
	char got[INET6_ADDRSTRLEN] = "";
	unsigned gport;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, got, sizeof(got));
		gport = ntohs(a->sin_port);
	} else {
		assert_int_equal(sa->ss_family, AF_INET6);
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, got, sizeof(got));
		gport = ntohs(a->sin6_port);
	}
	/* Compare in canonical form. */
	char want[INET6_ADDRSTRLEN];
	uint8_t bin[16];
	int af = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(af, ip, bin), 1);
	inet_ntop(af, bin, want, sizeof(want));
	assert_string_equal(got, want);
	assert_int_equal(gport, port);
}

static void
check_ok(const struct row *r, const struct ig_pp_parser *p)
{
	assert_int_equal(p->version, r->version);
	assert_int_equal(p->command, r->command);
	assert_int_equal(p->header_len, r->len);
	if (r->src != NULL) {
		check_addr(&p->src, r->src, r->sport);
		check_addr(&p->dst, r->dst, r->dport);
	}
}

/* Feeds in chunks of step bytes (0: as ig_pp_want() says); returns the
   result and the total consumed. */
static enum ig_parse_result
feed(const uint8_t *in, size_t len, size_t step, struct ig_pp_parser *p, size_t *total)
{
	ig_pp_init(p);
	*total = 0;
	enum ig_parse_result r = IG_PARSE_AGAIN;
	while (*total < len) {
		size_t n = step ? step : ig_pp_want(p);
		assert_true(n > 0);
		if (n > len - *total)
			n = len - *total;
		size_t c = 0;
		r = ig_pp_parse(p, in + *total, n, &c);
		assert_true(c <= n);
		*total += c;
		if (r != IG_PARSE_AGAIN)
			return r;
		assert_int_equal(c, n);
	}
	return r;
}

static void
test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		static const size_t steps[] = { SIZE_MAX, 1, 0, 3, 7 };
		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			struct ig_pp_parser p;
			size_t total;
			enum ig_parse_result got = feed(r->in, r->len,
			    steps[k] == SIZE_MAX ? r->len : steps[k], &p, &total);
			if (got != r->want)
				print_error("%s (step %zu): %d\n", r->name, steps[k], (int)got);
			assert_int_equal(got, r->want);
			if (got == IG_PARSE_OK) {
				assert_int_equal(total, r->len);
				check_ok(r, &p);
			} else {
				assert_non_null(p.error);
			}
			/* A final result stays. */
			size_t c = 1;
			assert_int_equal(ig_pp_parse(&p, (const uint8_t *)"x", 1, &c), got);
			assert_int_equal(c, 0);
			assert_int_equal(ig_pp_want(&p), 0);
		}
	}
}

/* Every valid header cut at every byte: AGAIN, everything consumed, and
   want() never asks past the header's end. */
static void
test_truncation(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		if (r->want != IG_PARSE_OK)
			continue;
		for (size_t cut = 0; cut < r->len; cut++) {
			struct ig_pp_parser p;
			ig_pp_init(&p);
			size_t c = 0;
			assert_int_equal(ig_pp_parse(&p, r->in, cut, &c), IG_PARSE_AGAIN);
			assert_int_equal(c, cut);
			size_t want = ig_pp_want(&p);
			assert_true(want > 0);
			assert_true(want <= r->len - cut);
			/* The rest completes it. */
			assert_int_equal(ig_pp_parse(&p, r->in + cut, r->len - cut, &c), IG_PARSE_OK);
			assert_int_equal(c, r->len - cut);
			check_ok(r, &p);
		}
	}
}

/* Bytes after the header (a TLS ClientHello in the same read) are not
   consumed. */
static void
test_trailing_bytes(void **state)
{
	(void)state;
	static const uint8_t v2[] = V2_TCP4 "\x16\x03\x01\x00\x05hello";
	static const uint8_t v1[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\na1 NOOP\r\n";
	struct ig_pp_parser p;
	size_t c = 0;
	ig_pp_init(&p);
	assert_int_equal(ig_pp_parse(&p, v2, sizeof(v2) - 1, &c), IG_PARSE_OK);
	assert_int_equal(c, 28);
	ig_pp_init(&p);
	assert_int_equal(ig_pp_parse(&p, v1, sizeof(v1) - 1, &c), IG_PARSE_OK);
	assert_int_equal(c, sizeof(v1) - 1 - strlen("a1 NOOP\r\n"));
	/* Split inside the header, then header end + trailing in one chunk. */
	ig_pp_init(&p);
	assert_int_equal(ig_pp_parse(&p, v2, 10, &c), IG_PARSE_AGAIN);
	assert_int_equal(ig_pp_parse(&p, v2 + 10, sizeof(v2) - 11, &c), IG_PARSE_OK);
	assert_int_equal(c, 18);
}

/* v1 without an LF: TOO_LONG at byte 107, not before. */
static void
test_v1_bound(void **state)
{
	(void)state;
	uint8_t in[200];
	memcpy(in, "PROXY UNKNOWN ", 14);
	memset(in + 14, 'x', sizeof(in) - 14);
	struct ig_pp_parser p;
	ig_pp_init(&p);
	size_t c = 0;
	assert_int_equal(ig_pp_parse(&p, in, IG_PP_V1_MAX - 1, &c), IG_PARSE_AGAIN);
	assert_int_equal(ig_pp_parse(&p, in + IG_PP_V1_MAX - 1, 1, &c), IG_PARSE_TOO_LONG);
	/* v2 at the cap exactly is fine. */
	uint8_t v2[IG_PP_MAX];
	memcpy(v2, SIG "\x20\x00", 14);
	v2[14] = (uint8_t)(IG_PP_V2_MAX_LEN >> 8);
	v2[15] = (uint8_t)(IG_PP_V2_MAX_LEN & 0xFF);
	memset(v2 + 16, 0, sizeof(v2) - 16);
	ig_pp_init(&p);
	assert_int_equal(ig_pp_parse(&p, v2, sizeof(v2), &c), IG_PARSE_OK);
	assert_int_equal(c, IG_PP_MAX);
	assert_int_equal(p.command, IG_PP_CMD_LOCAL);
}

static void
sa4(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a->sin_addr);
	a->sin_port = htons((uint16_t)port);
}

static void
sa6(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &a->sin6_addr);
	a->sin6_port = htons((uint16_t)port);
}

/* What we send is what we parse. */
static void
test_format(void **state)
{
	(void)state;
	struct sockaddr_storage s, d;
	uint8_t out[IG_PP_MAX];
	struct ig_pp_parser p;
	size_t c, n;
	const struct sockaddr *ss = (const struct sockaddr *)&s;
	const struct sockaddr *ds = (const struct sockaddr *)&d;

	sa4(&s, "127.0.0.3", 40001);
	sa4(&d, "127.0.0.1", 993);
	n = ig_pp_format(IG_PP_V1, ss, ds, out, sizeof(out));
	assert_int_equal(n, strlen("PROXY TCP4 127.0.0.3 127.0.0.1 40001 993\r\n"));
	assert_memory_equal(out, "PROXY TCP4 127.0.0.3 127.0.0.1 40001 993\r\n", n);
	for (int v = 1; v <= 2; v++) {
		n = ig_pp_format((enum ig_pp_version)v, ss, ds, out, sizeof(out));
		ig_pp_init(&p);
		assert_int_equal(ig_pp_parse(&p, out, n, &c), IG_PARSE_OK);
		assert_int_equal(c, n);
		assert_int_equal(p.command, IG_PP_CMD_PROXY);
		check_addr(&p.src, "127.0.0.3", 40001);
		check_addr(&p.dst, "127.0.0.1", 993);
	}
	assert_int_equal(ig_pp_format(IG_PP_V2, ss, ds, out, sizeof(out)), 28);

	sa6(&s, "2001:db8::5", 1);
	sa6(&d, "2001:db8::6", 2);
	for (int v = 1; v <= 2; v++) {
		n = ig_pp_format((enum ig_pp_version)v, ss, ds, out, sizeof(out));
		ig_pp_init(&p);
		assert_int_equal(ig_pp_parse(&p, out, n, &c), IG_PARSE_OK);
		check_addr(&p.src, "2001:db8::5", 1);
		check_addr(&p.dst, "2001:db8::6", 2);
	}
	/* Mapped IPv4 on a dual-stack socket goes as IPv4, also mixed. */
	sa6(&s, "::ffff:10.0.0.7", 5);
	sa4(&d, "10.0.0.1", 143);
	n = ig_pp_format(IG_PP_V2, ss, ds, out, sizeof(out));
	assert_int_equal(n, 28);
	ig_pp_init(&p);
	assert_int_equal(ig_pp_parse(&p, out, n, &c), IG_PARSE_OK);
	check_addr(&p.src, "10.0.0.7", 5);
	/* No pair: LOCAL and UNKNOWN. */
	sa6(&s, "2001:db8::5", 1);
	n = ig_pp_format(IG_PP_V2, ss, ds, out, sizeof(out));
	assert_int_equal(n, 16);
	ig_pp_init(&p);
	assert_int_equal(ig_pp_parse(&p, out, n, &c), IG_PARSE_OK);
	assert_int_equal(p.command, IG_PP_CMD_LOCAL);
	n = ig_pp_format(IG_PP_V1, NULL, NULL, out, sizeof(out));
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", n);
	/* Too small. */
	sa4(&s, "127.0.0.3", 1);
	assert_int_equal(ig_pp_format(IG_PP_V2, ss, ds, out, 20), 0);
	assert_int_equal(ig_pp_format(IG_PP_V1, ss, ds, out, 10), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_v1_bound),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
