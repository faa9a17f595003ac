/*
 * Unit tests for apppass/password.c: the alphabet, the generated passwords
 * (length, groups, symbols, entropy, uniqueness), the printed form and the
 * parser of client input (separators, case, lengths, every byte value).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apppass/password.h"
#include "util/err.h"

static const char alphabet[] = IG_APPPASS_ALPHABET;

/* ---- the alphabet ---- */

static void
test_alphabet(void **state)
{
	(void)state;
	/* 32 distinct symbols (5 bits each), lower case and digits, none of
	   the look-alikes. */
	assert_int_equal(strlen(alphabet), 32);
	assert_int_equal(1u << IG_APPPASS_SYMBOL_BITS, 32);
	for (size_t i = 0; i < 32; i++) {
		char c = alphabet[i];
		assert_true((c >= 'a' && c <= 'z') || (c >= '2' && c <= '9'));
		assert_null(strchr("01ol", c));
		assert_ptr_equal(strchr(alphabet, c), &alphabet[i]);
	}
	/* The secret part alone carries at least 100 bits (the id is not
	   secret), and the whole is five groups of five. */
	assert_true(IG_APPPASS_SECRET_BITS >= 100);
	assert_int_equal(IG_APPPASS_SECRET_BITS, IG_APPPASS_SECRET_LEN * 5);
	assert_int_equal(IG_APPPASS_ID_LEN, 5);
	assert_int_equal(IG_APPPASS_TEXT_LEN, 29);
}

/* ---- generation ---- */

/* Asserts that text is the printed form of a password: groups of five
 * symbols of the alphabet separated by '-'. */
static void
assert_printed(const char *text)
{
	assert_int_equal(strlen(text), IG_APPPASS_TEXT_LEN);
	for (size_t i = 0; i < IG_APPPASS_TEXT_LEN; i++) {
		if (i % (IG_APPPASS_GROUP_LEN + 1) == IG_APPPASS_GROUP_LEN)
			assert_int_equal(text[i], '-');
		else
			assert_non_null(strchr(alphabet, text[i]));
	}
}

#define GEN_N 4000

static int
pw_cmp_secret(const void *a, const void *b)
{
	return strcmp(((const struct ig_apppass_pw *)a)->secret,
	    ((const struct ig_apppass_pw *)b)->secret);
}

static void
test_generate(void **state)
{
	static struct ig_apppass_pw seen[GEN_N];
	unsigned count[IG_APPPASS_SYMBOLS][32];
	(void)state;
	memset(count, 0, sizeof(count));
	for (size_t n = 0; n < GEN_N; n++) {
		struct ig_apppass_pw pw, back;
		char text[IG_APPPASS_TEXT_LEN + 1];
		assert_int_equal(ig_apppass_generate(&pw), 0);
		assert_int_equal(strlen(pw.id), IG_APPPASS_ID_LEN);
		assert_int_equal(strlen(pw.secret), IG_APPPASS_SECRET_LEN);
		assert_true(ig_apppass_id_valid(pw.id));
		ig_apppass_format(&pw, text);
		assert_printed(text);
		/* The id is the first group. */
		assert_memory_equal(text, pw.id, IG_APPPASS_ID_LEN);
		/* What is printed parses back to the same parts. */
		assert_int_equal(ig_apppass_parse((const uint8_t *)text, strlen(text), &back), 0);
		assert_string_equal(back.id, pw.id);
		assert_string_equal(back.secret, pw.secret);
		for (size_t i = 0; i < IG_APPPASS_SYMBOLS; i++) {
			char c = i < IG_APPPASS_ID_LEN ? pw.id[i] : pw.secret[i - IG_APPPASS_ID_LEN];
			count[i][strchr(alphabet, c) - alphabet]++;
		}
		seen[n] = pw;
	}
	/* 4000 draws of 125 bits: a repeat (of the secret) would mean broken
	   randomness, not chance. */
	qsort(seen, GEN_N, sizeof(seen[0]), pw_cmp_secret);
	for (size_t i = 1; i < GEN_N; i++)
		assert_string_not_equal(seen[i - 1].secret, seen[i].secret);
	/*
	 * Every position takes every symbol, about uniformly: 125 expected per
	 * cell; a uniform draw leaves [60, 200] with probability below 1e-9
	 * per cell. A position stuck on some symbols (a bit never set, a
	 * modulo bias of 2x) fails.
	 */
	for (size_t i = 0; i < IG_APPPASS_SYMBOLS; i++)
		for (size_t v = 0; v < 32; v++) {
			assert_true(count[i][v] >= 60);
			assert_true(count[i][v] <= 200);
		}
	for (size_t i = 0; i < GEN_N; i++)
		ig_apppass_wipe(&seen[i]);
}

static void
test_generate_id(void **state)
{
	char a[IG_APPPASS_ID_LEN + 1], b[IG_APPPASS_ID_LEN + 1];
	int same = 0;
	(void)state;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(ig_apppass_generate_id(a), 0);
		assert_int_equal(ig_apppass_generate_id(b), 0);
		assert_true(ig_apppass_id_valid(a));
		same += strcmp(a, b) == 0;
	}
	assert_true(same < 2); /* 25 bits: a repeat in 200 pairs is ~6e-6 */
}

static void
test_wipe(void **state)
{
	struct ig_apppass_pw pw, zero;
	(void)state;
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(ig_apppass_generate(&pw), 0);
	ig_apppass_wipe(&pw);
	assert_memory_equal(&pw, &zero, sizeof(pw));
}

/* ---- the parser ---- */

struct parse_row {
	const char *in;
	size_t len;                      /* 0: strlen(in) */
	bool ok;
	const char *id, *secret;         /* when ok */
};

#define ID "k7dq2"
#define SECRET "xm9vhpt4wae3nbzr8fcu"

static const struct parse_row parse_rows[] = {
	{ "k7dq2-xm9vh-pt4wa-e3nbz-r8fcu", 0, true, ID, SECRET },
	/* Without dashes, in capitals, with spaces instead, mixed. */
	{ "k7dq2xm9vhpt4wae3nbzr8fcu", 0, true, ID, SECRET },
	{ "K7DQ2-XM9VH-PT4WA-E3NBZ-R8FCU", 0, true, ID, SECRET },
	{ "k7dq2 xm9vh pt4wa e3nbz r8fcu", 0, true, ID, SECRET },
	{ "K7dq2 - Xm9vh--pt4wA  e3nbz-r8fcu", 0, true, ID, SECRET },
	{ "  k7dq2xm9vhpt4wae3nbzr8fcu--", 0, true, ID, SECRET },
	{ "k-7-d-q-2-x-m-9-v-h-p-t-4-w-a-e-3-n-b-z-r-8-f-c-u", 0, true, ID, SECRET },
	/* One symbol short or long. */
	{ "k7dq2-xm9vh-pt4wa-e3nbz-r8fc", 0, false, NULL, NULL },
	{ "k7dq2-xm9vh-pt4wa-e3nbz-r8fcuu", 0, false, NULL, NULL },
	/* Look-alikes and other bytes are not symbols. */
	{ "k7dq0-xm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dqo-xm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dq1-xm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dql-xm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dqL-xm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dq2_xm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dq2\txm9vh-pt4wa-e3nbz-r8fcu", 0, false, NULL, NULL },
	{ "k7dq2-xm9vh-pt4wa-e3nbz-r8fcu\n", 0, false, NULL, NULL },
	{ "k7dq2-xm9vh-pt4wa-e3nbz-r8fc\xc3\xbc", 0, false, NULL, NULL },
	/* A NUL inside (an IMAP literal may carry one) is not skipped. */
	{ "k7dq2-xm9vh-pt4wa-e3nbz-r8f\0cu", 30, false, NULL, NULL },
	/* An ordinary password. */
	{ "correct horse battery staple", 0, false, NULL, NULL },
	{ "", 0, false, NULL, NULL },
	{ "-----", 0, false, NULL, NULL },
};

static void
test_parse_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
		const struct parse_row *r = &parse_rows[i];
		struct ig_apppass_pw pw;
		size_t len = r->len ? r->len : strlen(r->in);
		memset(&pw, 0x5a, sizeof(pw));
		int rc = ig_apppass_parse((const uint8_t *)r->in, len, &pw);
		if (!r->ok) {
			struct ig_apppass_pw zero;
			memset(&zero, 0, sizeof(zero));
			assert_int_equal(rc, IG_EINVAL);
			/* Nothing of the input is left behind. */
			assert_memory_equal(&pw, &zero, sizeof(pw));
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(pw.id, r->id);
		assert_string_equal(pw.secret, r->secret);
	}
	struct ig_apppass_pw pw;
	assert_int_equal(ig_apppass_parse(NULL, 0, &pw), IG_EINVAL);
}

/* Separators beyond IG_APPPASS_INPUT_MAX bytes make it "not ours". */
static void
test_parse_length(void **state)
{
	char buf[IG_APPPASS_INPUT_MAX + 2];
	struct ig_apppass_pw pw;
	(void)state;
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, ID SECRET, IG_APPPASS_SYMBOLS);
	assert_int_equal(ig_apppass_parse((const uint8_t *)buf, IG_APPPASS_INPUT_MAX, &pw), 0);
	assert_int_equal(ig_apppass_parse((const uint8_t *)buf, IG_APPPASS_INPUT_MAX + 1, &pw),
	    IG_EINVAL);
}

/*
 * Every byte value: 25 copies of it parse exactly when it is a symbol of
 * the alphabet in either case, and give that symbol in lower case (the
 * parser's table agrees with IG_APPPASS_ALPHABET).
 */
static void
test_parse_every_byte(void **state)
{
	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		uint8_t in[IG_APPPASS_SYMBOLS];
		struct ig_apppass_pw pw;
		memset(in, (int)b, sizeof(in));
		char lower = (char)(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
		bool symbol = b != 0 && strchr(alphabet, lower) != NULL;
		int rc = ig_apppass_parse(in, sizeof(in), &pw);
		assert_int_equal(rc, symbol ? 0 : IG_EINVAL);
		if (symbol) {
			for (size_t i = 0; i < IG_APPPASS_ID_LEN; i++)
				assert_int_equal(pw.id[i], lower);
			for (size_t i = 0; i < IG_APPPASS_SECRET_LEN; i++)
				assert_int_equal(pw.secret[i], lower);
		}
	}
}

struct id_row {
	const char *id;
	bool valid;
};

static const struct id_row id_rows[] = {
	{ "k7dq2", true }, { "22222", true }, { "zzzzz", true },
	{ "K7DQ2", false }, { "k7dq", false }, { "k7dq22", false }, { "k7dq0", false },
	{ "k7-q2", false }, { "", false }, { "k7dq ", false },
};

static void
test_id_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(id_rows) / sizeof(id_rows[0]); i++)
		assert_int_equal(ig_apppass_id_valid(id_rows[i].id), id_rows[i].valid);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alphabet),
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_generate_id),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_parse_rows),
		cmocka_unit_test(test_parse_length),
		cmocka_unit_test(test_parse_every_byte),
		cmocka_unit_test(test_id_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
