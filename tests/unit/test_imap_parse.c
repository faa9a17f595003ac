/*
 * Unit tests for proxy/imap_parse.c. Every row is parsed twice: in one call,
 * and fed one byte at a time (the parser must give the same answer).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util/err.h"
#include "proxy/imap_parse.h"

static const struct ig_imap_limits lim = {
	.max_line = 200, .max_literal = 100, .max_command = 400, .max_tag = 16,
};

struct row {
	const char *in;
	size_t len;                 /* 0: strlen(in) */
	enum ig_parse_result want;  /* final result */
	unsigned conts;             /* NEED_CONTINUATION answers expected */
	size_t consumed;            /* 0: whole input */
	const char *tag, *name;     /* NULL: not checked */
	unsigned nargs;
	const char *args[6];        /* "A:x" atom, "Q:x" quoted raw, "L:x"
	                               literal, "N" NIL, "(" and ")" */
	bool literal_seen, literal_plus;
};

/* row.consumed: nothing may be consumed (an error that ends the session). */
#define NONE SIZE_MAX
#define X10 "xxxxxxxxxx"
#define X50 X10 X10 X10 X10 X10

static const struct row rows[] = {
	/* Commands and astring forms. */
	{ "a CAPABILITY\r\n", 0, IG_PARSE_OK, 0, 0, "a", "CAPABILITY", 0, {0}, 0, 0 },
	{ "a1 noop\n", 0, IG_PARSE_OK, 0, 0, "a1", "noop", 0, {0}, 0, 0 },
	{ "x LOGIN alice secret\r\n", 0, IG_PARSE_OK, 0, 0, "x", "LOGIN", 2,
	  { "A:alice", "A:secret" }, 0, 0 },
	{ "x LOGIN \"al ice\" \"p\\\"w\\\\d\"\r\n", 0, IG_PARSE_OK, 0, 0, "x", "LOGIN", 2,
	  { "Q:al ice", "Q:p\\\"w\\\\d" }, 0, 0 },
	{ "x LOGIN \"\" \"\"\r\n", 0, IG_PARSE_OK, 0, 0, "x", "LOGIN", 2, { "Q:", "Q:" }, 0, 0 },
	{ "x LOGIN {5}\r\nalice {3}\r\nabc\r\n", 0, IG_PARSE_OK, 2, 0, "x", "LOGIN", 2,
	  { "L:alice", "L:abc" }, 0, 0 },
	{ "x LOGIN {5+}\r\nalice {3+}\r\na\r\n\r\n", 0, IG_PARSE_OK, 0, 0, "x", "LOGIN", 2,
	  { "L:alice", "L:a\r\n" }, 0, 0 },
	{ "x LOGIN {0}\r\n {0+}\r\n\r\n", 0, IG_PARSE_OK, 1, 0, "x", "LOGIN", 2,
	  { "L:", "L:" }, 0, 0 },
	{ "x LOGIN \"user\xc3\xa9\" \"p\xc3\xa4ss\"\r\n", 0, IG_PARSE_OK, 0, 0, "x", "LOGIN", 2,
	  { "Q:user\xc3\xa9", "Q:p\xc3\xa4ss" }, 0, 0 },
	/* Atoms are ASCII (RFC 9051); 8-bit names need quotes or a literal. */
	{ "x LOGIN user\xc3\xa9 p\r\n", 0, IG_PARSE_BAD, 0, 0, "x", NULL, 0, {0}, 0, 0 },
	{ "t AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n", 0, IG_PARSE_OK, 0, 0, "t",
	  "AUTHENTICATE", 2, { "A:PLAIN", "A:AGFsaWNlAHNlY3JldA==" }, 0, 0 },
	{ "t AUTHENTICATE PLAIN =\r\n", 0, IG_PARSE_OK, 0, 0, "t", "AUTHENTICATE", 2,
	  { "A:PLAIN", "A:=" }, 0, 0 },
	{ "i ID (\"name\" \"mutt\" \"version\" NIL)\r\n", 0, IG_PARSE_OK, 0, 0, "i", "ID", 6,
	  { "(", "Q:name", "Q:mutt", "Q:version", "N", ")" }, 0, 0 },
	{ "i ID nil\r\n", 0, IG_PARSE_OK, 0, 0, "i", "ID", 1, { "N" }, 0, 0 },
	{ "i ID ()\r\n", 0, IG_PARSE_OK, 0, 0, "i", "ID", 2, { "(", ")" }, 0, 0 },
	{ "i X ((a) b)\r\n", 0, IG_PARSE_OK, 0, 0, "i", "X", 6,
	  { "(", "(", "A:a", ")", "A:b", ")" }, 0, 0 },
	{ "a] LOGIN a]b c\r\n", 0, IG_PARSE_OK, 0, 0, "a]", "LOGIN", 2, { "A:a]b", "A:c" }, 0, 0 },
	/* One trailing SP before the line end is tolerated (mutt's empty
	   initial response); two are not, nor a space after "(". */
	{ "a AUTHENTICATE CRAM-MD5 \r\n", 0, IG_PARSE_OK, 0, 0, "a", "AUTHENTICATE", 1,
	  { "A:CRAM-MD5" }, 0, 0 },
	{ "a NOOP \n", 0, IG_PARSE_OK, 0, 0, "a", "NOOP", 0, {0}, 0, 0 },
	{ "a NOOP  \r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a ID (\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	/* Pipelining: only the first command is consumed. */
	{ "a NOOP\r\nb NOOP\r\n", 0, IG_PARSE_OK, 0, 8, "a", "NOOP", 0, {0}, 0, 0 },
	{ "a LOGIN {1}\r\nx y\r\nb LOGOUT\r\n", 0, IG_PARSE_OK, 1, 18, "a", "LOGIN", 2,
	  { "L:x", "A:y" }, 0, 0 },
	/* Incomplete input. */
	{ "a LOGIN alice", 0, IG_PARSE_AGAIN, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	{ "a LOGIN {5}\r\nali", 0, IG_PARSE_AGAIN, 1, 0, NULL, NULL, 0, {0}, 0, 0 },
	{ "a LOGIN \"ali", 0, IG_PARSE_AGAIN, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	/* Bad input: BAD through the LF. */
	{ "\r\n", 0, IG_PARSE_BAD, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	{ " a NOOP\r\n", 0, IG_PARSE_BAD, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	{ "a\r\n", 0, IG_PARSE_BAD, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	{ "a+b NOOP\r\n", 0, IG_PARSE_BAD, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	{ "a  NOOP\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN  b c\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN \"b\\x\" c\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN \"bc\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN b\0c d\r\n", 15, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN \"b\0c\" d\r\n", 17, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN {5x}\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN {}\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN {5} x\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN b\rc\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a ID (\"x\"\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a ID \"x\")\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN a\"b c\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LIST * %\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN ~{5}\r\n", 0, IG_PARSE_BAD, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	/* A bad token after an accepted literal: the session must end. */
	{ "a LOGIN {1}\r\nx \"\\q\"\r\n", 0, IG_PARSE_BAD, 1, 0, "a", NULL, 0, {0}, 1, 0 },
	/* Limits. */
	{ "a LOGIN {101}\r\n", 0, IG_PARSE_TOO_LONG, 0, 0, "a", NULL, 0, {0}, 0, 0 },
	{ "a LOGIN {99999999999999999999999}\r\n", 0, IG_PARSE_TOO_LONG, 0, 0, "a", NULL, 0,
	  {0}, 0, 0 },
	{ "a LOGIN {101+}\r\n", 0, IG_PARSE_TOO_LONG, 0, 0, "a", NULL, 0, {0}, 0, 1 },
	{ "abcdefghijklmnopq NOOP\r\n", 0, IG_PARSE_TOO_LONG, 0, 0, NULL, NULL, 0, {0}, 0, 0 },
	/* A line over max_line (200) with no LF in reach: the position in the
	   stream is lost, nothing is consumed, the session must end. */
	{ "a NOOP " X50 X50 X50 X50, 0, IG_PARSE_TOO_LONG, 0, NONE, "a", NULL, 0, {0}, 0, 0 },
};

/* Parses in->len bytes, count-at-a-time; answers continuations. */
static enum ig_parse_result
parse_row(struct ig_imap_parser *p, const uint8_t *in, size_t len, size_t step,
    size_t *consumed, unsigned *conts)
{
	ig_imap_parser_init(p, &lim);
	*conts = 0;
	size_t have = step ? 0 : len;
	for (;;) {
		if (step && have < len)
			have += step;
		if (have > len)
			have = len;
		enum ig_parse_result r = ig_imap_parse(p, in, have, consumed);
		if (r == IG_PARSE_NEED_CONTINUATION) {
			(*conts)++;
			assert_int_equal(*consumed, 0);
			continue;
		}
		if (r != IG_PARSE_AGAIN || have == len)
			return r;
	}
}

static void
check_arg(const struct ig_imap_arg *a, const char *want)
{
	char what = want[0];
	const char *val = want[1] == ':' ? want + 2 : "";
	switch (what) {
	case 'A': assert_int_equal(a->type, IG_ARG_ATOM); break;
	case 'Q': assert_int_equal(a->type, IG_ARG_QUOTED); break;
	case 'L': assert_int_equal(a->type, IG_ARG_LITERAL); break;
	case 'N': assert_int_equal(a->type, IG_ARG_NIL); return;
	case '(': assert_int_equal(a->type, IG_ARG_LIST_BEGIN); return;
	case ')': assert_int_equal(a->type, IG_ARG_LIST_END); return;
	default: fail();
	}
	assert_int_equal(a->val.len, strlen(val));
	assert_memory_equal(a->val.p, val, a->val.len);
}

static void
test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		size_t len = r->len ? r->len : strlen(r->in);
		for (size_t step = 0; step <= 3; step++) {
			struct ig_imap_parser p;
			size_t consumed;
			unsigned conts;
			enum ig_parse_result got = parse_row(&p, (const uint8_t *)r->in, len, step,
			    &consumed, &conts);
			if (got != r->want)
				fail_msg("row %zu step %zu: %s, want %s", i, step,
				    ig_parse_result_str(got), ig_parse_result_str(r->want));
			if (conts != r->conts)
				fail_msg("row %zu step %zu: %u continuations, want %u", i, step,
				    conts, r->conts);
			if (got == IG_PARSE_AGAIN) {
				assert_int_equal(consumed, 0);
				continue;
			}
			size_t want_consumed = r->consumed == NONE ? 0 :
			    r->consumed ? r->consumed : len;
			if (consumed != want_consumed)
				fail_msg("row %zu step %zu: consumed %zu, want %zu", i, step,
				    consumed, want_consumed);
			if (got != IG_PARSE_OK) {
				/* The flags only mean something on errors. */
				if (p.literal_seen != r->literal_seen ||
				    p.literal_plus != r->literal_plus)
					fail_msg("row %zu step %zu: literal_seen %d plus %d", i,
					    step, p.literal_seen, p.literal_plus);
				assert_non_null(p.error);
				continue;
			}
			if (r->tag) {
				assert_int_equal(p.cmd.tag.len, strlen(r->tag));
				assert_memory_equal(p.cmd.tag.p, r->tag, p.cmd.tag.len);
			}
			if (r->name) {
				assert_int_equal(p.cmd.name.len, strlen(r->name));
				assert_memory_equal(p.cmd.name.p, r->name, p.cmd.name.len);
			}
			assert_int_equal(p.cmd.nargs, r->nargs);
			for (unsigned a = 0; a < r->nargs; a++)
				check_arg(&p.cmd.args[a], r->args[a]);
		}
	}
}

/* After BAD the caller drops the line and the next command parses. */
static void
test_resync(void **state)
{
	(void)state;
	const char *in = "a LOGIN \"x\\q\" y\r\nb NOOP\r\n";
	struct ig_imap_parser p;
	ig_imap_parser_init(&p, &lim);
	size_t consumed;
	assert_int_equal(ig_imap_parse(&p, (const uint8_t *)in, strlen(in), &consumed),
	    IG_PARSE_BAD);
	assert_true(p.has_tag);
	assert_int_equal(p.cmd.tag.len, 1);
	assert_int_equal(consumed, 17);
	ig_imap_parser_reset(&p);
	const char *rest = in + consumed;
	assert_int_equal(ig_imap_parse(&p, (const uint8_t *)rest, strlen(rest), &consumed),
	    IG_PARSE_OK);
	assert_true(ig_span_ieq(p.cmd.name, "noop"));
}

/* The pending bytes may move between calls: the parser keeps offsets. */
static void
test_buffer_moves(void **state)
{
	(void)state;
	const char *in = "a LOGIN {3}\r\nabc \"d e\"\r\n";
	uint8_t b1[64], b2[64];
	struct ig_imap_parser p;
	ig_imap_parser_init(&p, &lim);
	size_t consumed, n = 15;
	memcpy(b1, in, n);
	assert_int_equal(ig_imap_parse(&p, b1, n, &consumed), IG_PARSE_NEED_CONTINUATION);
	memcpy(b2, in, strlen(in));
	memset(b1, 'Z', sizeof(b1));
	assert_int_equal(ig_imap_parse(&p, b2, strlen(in), &consumed), IG_PARSE_OK);
	assert_ptr_equal(p.cmd.args[0].val.p, b2 + 13);
	assert_memory_equal(p.cmd.args[1].val.p, "d e", 3);
}

static void
test_line_too_long(void **state)
{
	(void)state;
	uint8_t buf[300];
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "a LOGIN ", 8);
	struct ig_imap_parser p;
	ig_imap_parser_init(&p, &lim);
	size_t consumed = 99;
	assert_int_equal(ig_imap_parse(&p, buf, sizeof(buf), &consumed), IG_PARSE_TOO_LONG);
	assert_int_equal(consumed, 0); /* no LF in sight: the session ends */
}

static void
test_too_many_args(void **state)
{
	(void)state;
	char in[400];
	size_t o = (size_t)snprintf(in, sizeof(in), "a X");
	for (int i = 0; i < IG_IMAP_MAX_ARGS + 1; i++)
		o += (size_t)snprintf(in + o, sizeof(in) - o, " a");
	snprintf(in + o, sizeof(in) - o, "\r\n");
	struct ig_imap_limits big = lim;
	big.max_line = big.max_command = sizeof(in);
	struct ig_imap_parser p;
	ig_imap_parser_init(&p, &big);
	size_t consumed;
	assert_int_equal(ig_imap_parse(&p, (const uint8_t *)in, strlen(in), &consumed),
	    IG_PARSE_BAD);
	assert_int_equal(consumed, strlen(in));
}

static void
test_parse_line(void **state)
{
	(void)state;
	struct ig_span line;
	size_t consumed;
	assert_int_equal(ig_imap_parse_line((const uint8_t *)"abc\r\nx", 6, 100, &line,
	    &consumed), IG_PARSE_OK);
	assert_int_equal(line.len, 3);
	assert_int_equal(consumed, 5);
	assert_int_equal(ig_imap_parse_line((const uint8_t *)"*\n", 2, 100, &line, &consumed),
	    IG_PARSE_OK);
	assert_int_equal(line.len, 1);
	assert_int_equal(ig_imap_parse_line((const uint8_t *)"abc", 3, 100, &line, &consumed),
	    IG_PARSE_AGAIN);
	assert_int_equal(ig_imap_parse_line((const uint8_t *)"abcdef\n", 7, 4, &line, &consumed),
	    IG_PARSE_TOO_LONG);
}

static void
test_unquote(void **state)
{
	(void)state;
	uint8_t out[8];
	struct ig_imap_arg q = { IG_ARG_QUOTED, { (const uint8_t *)"a\\\"b\\\\", 6 } };
	assert_int_equal(ig_imap_unquote(&q, out, sizeof(out)), 4);
	assert_memory_equal(out, "a\"b\\", 4);
	assert_int_equal(ig_imap_unquote(&q, out, 3), IG_ETOOLONG);
	struct ig_imap_arg l = { IG_ARG_LITERAL, { (const uint8_t *)"a\\b", 3 } };
	assert_int_equal(ig_imap_unquote(&l, out, sizeof(out)), 3);
	assert_memory_equal(out, "a\\b", 3);
	assert_true(ig_imap_arg_is_astring(&q));
	struct ig_imap_arg lb = { IG_ARG_LIST_BEGIN, { NULL, 0 } };
	assert_false(ig_imap_arg_is_astring(&lb));
}

/* The response scanner: rows fed in one call, one byte at a time, and in
   every split in two; the answer must not depend on how bytes arrive. */
struct resp_row {
	const char *in;
	bool boundary;
	bool bye; /* a whole "* BYE" response line was seen */
};

static const struct resp_row resp_rows[] = {
	{ "", true, false },
	{ "* OK done\r\n", true, false },
	{ "* OK done\r", false, false },
	{ "* OK done", false, false },
	{ "a1 OK done\n", true, false },
	{ "* 1 FETCH (BODY[] {5}\r\n", false, false },
	{ "* 1 FETCH (BODY[] {5}\r\nab\r\nc", false, false },
	{ "* 1 FETCH (BODY[] {5}\r\nab\r\nc)", false, false },
	{ "* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n", true, false },
	{ "* 1 FETCH (BODY[] {5}\r\n{3}\r\n)\r\n", true, false },
	{ "* 1 FETCH (A {2}\r\nxy B {0}\r\n)\r\n", true, false },
	{ "* 1 FETCH (A {2}\r\nxy B {0}\r\n", false, false },
	{ "* 1 FETCH (BINARY[] ~{4}\r\n\r\n\r\n)\r\n", true, false },
	{ "* 1 FETCH (X {3+}\r\nabc)\r\n", true, false },
	{ "* OK {x}\r\n", true, false },
	{ "* OK }\r\n", true, false },
	{ "* OK 12}\r\n", true, false },
	{ "* 1 FETCH (BODY[] {18446744073709551615}\r\n", false, false },
	{ "* 1 FETCH (BODY[] {18446744073709551616}\r\n* OK\r\n", false, false },
	{ "* 1 FETCH (BODY[] {123456789012345678901234567890}\r\n* OK\r\n", false, false },
	{ "* 1 FETCH (BODY[] {2}\r\n\r\n)\r\n* 2 EXISTS\r\n", true, false },
	{ "* 1 FETCH (BODY[] {2}\r\n\r\n)\r\n* 2 EXISTS", false, false },
	{ "* OK a long line well past the twenty-four bytes the tail keeps {1}\r\nx)\r\n",
	  true, false },
	{ "* OK a long line well past the twenty-four bytes the tail keeps {1}\r\n", false, false },
	{ "* BYE Logging out\r\na4 OK Logout completed.\r\n", true, true },
	{ "* BYE Logging out\r\n", true, true },
	{ "* bye\r\n", true, true },
	{ "* ByE\n", true, true },
	{ "* BYE", false, false },
	{ "* BYE Logging out", false, false },
	{ "* BYEX\r\n", true, false },
	{ "*  BYE\r\n", true, false },
	{ "a1 OK * BYE\r\n", true, false },
	{ "* 1 FETCH (BODY[] {7}\r\n* BYE\r\n)\r\n", true, false },
	{ "* 1 FETCH (A {8}\r\nx\r\n* BYE\r\n", true, false },
	{ "* OK {3}\r\nabc\r\n* BYE now\r\n", true, true },
	{ "* OK fine\r\n* BYE [UNAVAILABLE] shutting down\r\n", true, true },
};

static void
test_resp_scan(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof(resp_rows) / sizeof(resp_rows[0]); r++) {
		const uint8_t *in = (const uint8_t *)resp_rows[r].in;
		size_t len = strlen(resp_rows[r].in);
		for (size_t split = 0; split <= len; split++) {
			struct ig_imap_resp_scan sc;
			memset(&sc, 0, sizeof(sc));
			ig_imap_resp_scan(&sc, in, split);
			ig_imap_resp_scan(&sc, in + split, len - split);
			if (ig_imap_resp_at_boundary(&sc) != resp_rows[r].boundary ||
			    ig_imap_resp_bye(&sc) != resp_rows[r].bye)
				fail_msg("row %zu split %zu: %s", r, split, resp_rows[r].in);
		}
		struct ig_imap_resp_scan sc;
		memset(&sc, 0, sizeof(sc));
		for (size_t i = 0; i < len; i++)
			ig_imap_resp_scan(&sc, in + i, 1);
		if (ig_imap_resp_at_boundary(&sc) != resp_rows[r].boundary ||
		    ig_imap_resp_bye(&sc) != resp_rows[r].bye)
			fail_msg("row %zu byte by byte: %s", r, resp_rows[r].in);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_resync),
		cmocka_unit_test(test_buffer_moves),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_too_many_args),
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_unquote),
		cmocka_unit_test(test_resp_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
