/*
 * Unit tests for proxy/sasl.c: mechanism names, base64, user name extraction
 * per mechanism and user name normalisation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/sasl.h"

/* A string literal with its length, NULs included. */
#define S(x) (x), (sizeof(x) - 1)

#define DIGEST "b913a602c7eda7a495b4e6e7334d3890"

/* ---- mechanism names ---- */

struct mech_row {
	const char *name;
	enum ig_sasl_mech want;
};

static const struct mech_row mech_rows[] = {
	{ "PLAIN", IG_MECH_PLAIN },
	{ "plain", IG_MECH_PLAIN },
	{ "Login", IG_MECH_LOGIN },
	{ "xoauth2", IG_MECH_XOAUTH2 },
	{ "OAuthBearer", IG_MECH_OAUTHBEARER },
	{ "SCRAM-SHA-1", IG_MECH_SCRAM_SHA_1 },
	{ "scram-sha-256", IG_MECH_SCRAM_SHA_256 },
	{ "CRAM-MD5", IG_MECH_CRAM_MD5 },
	{ "SCRAM-SHA-256-PLUS", IG_MECH_COUNT },
	{ "SCRAM-SHA", IG_MECH_COUNT },
	{ "GSSAPI", IG_MECH_COUNT },
	{ "PLAIN ", IG_MECH_COUNT },
	{ "", IG_MECH_COUNT },
};

static void
test_mech_names(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mech_rows) / sizeof(mech_rows[0]); i++) {
		struct ig_span sp = { (const uint8_t *)mech_rows[i].name,
			strlen(mech_rows[i].name) };
		assert_int_equal(ig_sasl_mech_from_name(sp), mech_rows[i].want);
	}
	/* A NUL inside the span must not match a prefix. */
	struct ig_span nul = { (const uint8_t *)"PLAIN\0X", 7 };
	assert_int_equal(ig_sasl_mech_from_name(nul), IG_MECH_COUNT);
	struct ig_span none = { NULL, 0 };
	assert_int_equal(ig_sasl_mech_from_name(none), IG_MECH_COUNT);

	/* Every name round-trips. */
	for (int m = 0; m < IG_MECH_COUNT; m++) {
		const char *n = ig_sasl_mech_str((enum ig_sasl_mech)m);
		struct ig_span sp = { (const uint8_t *)n, strlen(n) };
		assert_int_equal(ig_sasl_mech_from_name(sp), m);
	}
	assert_string_equal(ig_sasl_mech_str(IG_MECH_SCRAM_SHA_256), "SCRAM-SHA-256");
	assert_string_equal(ig_sasl_mech_str(IG_MECH_COUNT), "?");

	assert_true(ig_sasl_mech_sends_secret(IG_MECH_PLAIN));
	assert_true(ig_sasl_mech_sends_secret(IG_MECH_LOGIN));
	assert_true(ig_sasl_mech_sends_secret(IG_MECH_XOAUTH2));
	assert_true(ig_sasl_mech_sends_secret(IG_MECH_OAUTHBEARER));
	assert_false(ig_sasl_mech_sends_secret(IG_MECH_SCRAM_SHA_1));
	assert_false(ig_sasl_mech_sends_secret(IG_MECH_SCRAM_SHA_256));
	assert_false(ig_sasl_mech_sends_secret(IG_MECH_CRAM_MD5));
	assert_false(ig_sasl_mech_sends_secret(IG_MECH_COUNT));

	assert_true(ig_sasl_mech_server_first(IG_MECH_CRAM_MD5));
	for (int m = 0; m <= IG_MECH_COUNT; m++) {
		if (m != IG_MECH_CRAM_MD5)
			assert_false(ig_sasl_mech_server_first((enum ig_sasl_mech)m));
	}
}

/* ---- base64 ---- */

struct b64_row {
	const char *in;
	size_t outsz;
	int rc;
	const char *want;
	size_t wantlen;
};

static const struct b64_row b64_rows[] = {
	{ "=", 0, 0, "", 0 },          /* RFC 4959 empty initial response */
	{ "", 0, 0, "", 0 },
	{ "AHVzZXIAcGFzcw==", 64, 0, S("\0user\0pass") },
	{ "dXNlcg==", 64, 0, S("user") },
	{ "dXNlcg==", 4, 0, S("user") },  /* exact fit */
	{ "dXNlcg==", 3, IG_ETOOLONG, "", 0 },
	{ "dXNlcjE=", 64, 0, S("user1") },
	{ "dXNlcjEy", 64, 0, S("user12") },
	{ "dXNlcjEy", 5, IG_ETOOLONG, "", 0 },
	{ "dXNlcg", 64, IG_EINVAL, "", 0 },      /* padding required */
	{ "dXNlcg=", 64, IG_EINVAL, "", 0 },
	{ "dXNl cg==", 64, IG_EINVAL, "", 0 },   /* no whitespace */
	{ "dXNl\r\ncg==", 64, IG_EINVAL, "", 0 },
	{ "dXNlcg==\r\n", 64, IG_EINVAL, "", 0 },
	{ "dX*lcg==", 64, IG_EINVAL, "", 0 },
	{ "dXNlcg-_", 64, IG_EINVAL, "", 0 },    /* no base64url */
	{ "d=Nlcg==", 64, IG_EINVAL, "", 0 },    /* '=' inside */
	{ "dXNl=g==", 64, IG_EINVAL, "", 0 },
	{ "dXN===", 64, IG_EINVAL, "", 0 },
	{ "====", 64, IG_EINVAL, "", 0 },
	{ "A===", 64, IG_EINVAL, "", 0 },
	{ "==", 64, IG_EINVAL, "", 0 },
	{ "dXNlcg==dXNlcg==", 64, IG_EINVAL, "", 0 },
	{ "QQ==", 64, 0, S("A") },
	{ "QR==", 64, IG_EINVAL, "", 0 },        /* non-zero pad bits */
	{ "QUI=", 64, 0, S("AB") },
	{ "QUJ=", 64, IG_EINVAL, "", 0 },
};

static void
test_b64_decode_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(b64_rows) / sizeof(b64_rows[0]); i++) {
		const struct b64_row *r = &b64_rows[i];
		uint8_t out[64];
		size_t outlen = 99;
		struct ig_span in = { (const uint8_t *)r->in, strlen(r->in) };
		int rc = ig_sasl_b64_decode(in, out, r->outsz, &outlen);
		if (rc != r->rc)
			fail_msg("row %zu (%s): rc %d, want %d", i, r->in, rc, r->rc);
		if (rc == 0) {
			assert_int_equal(outlen, r->wantlen);
			if (r->wantlen > 0)
				assert_memory_equal(out, r->want, r->wantlen);
		} else {
			assert_int_equal(outlen, 0);
		}
	}
}

struct b64e_row {
	const char *in;
	size_t len;
	size_t outsz;
	int rc;
	const char *want;
};

static const struct b64e_row b64e_rows[] = {
	{ S("\0user\0pass"), 64, 0, "AHVzZXIAcGFzcw==" },
	{ S("user"), 64, 0, "dXNlcg==" },
	{ S("user"), 9, 0, "dXNlcg==" },   /* exact fit with NUL */
	{ S("user"), 8, IG_ETOOLONG, "" },
	{ S("user12"), 9, 0, "dXNlcjEy" },
	{ "", 0, 1, 0, "" },
	{ "", 0, 0, IG_ETOOLONG, NULL },
};

static void
test_b64_encode_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(b64e_rows) / sizeof(b64e_rows[0]); i++) {
		const struct b64e_row *r = &b64e_rows[i];
		char out[64];
		size_t outlen = 99;
		memset(out, 'X', sizeof(out));
		int rc = ig_sasl_b64_encode((const uint8_t *)r->in, r->len, out,
		    r->outsz, &outlen);
		assert_int_equal(rc, r->rc);
		if (r->want != NULL)
			assert_string_equal(out, r->want);
		if (rc == 0)
			assert_int_equal(outlen, strlen(r->want));
		else
			assert_int_equal(outlen, 0);
	}

	/* Round trip over every byte value and length 0..48. */
	uint8_t raw[48], back[48];
	char enc[80];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 37 + 200);
	for (size_t n = 0; n <= sizeof(raw); n++) {
		size_t el, dl;
		assert_int_equal(ig_sasl_b64_encode(raw, n, enc, sizeof(enc), &el), 0);
		struct ig_span sp = { (const uint8_t *)enc, el };
		assert_int_equal(ig_sasl_b64_decode(sp, back, sizeof(back), &dl), 0);
		assert_int_equal(dl, n);
		if (n > 0)
			assert_memory_equal(raw, back, n);
	}
}

/* ---- user name extraction ---- */

struct ext_row {
	enum ig_sasl_mech mech;
	const char *msg;
	size_t len;
	int rc;
	const char *authcid;
	const char *authzid;
};

static const struct ext_row ext_rows[] = {
	/* PLAIN (RFC 4616) */
	{ IG_MECH_PLAIN, S("\0alice\0secret"), 0, "alice", "" },
	{ IG_MECH_PLAIN, S("bob\0alice\0secret"), 0, "alice", "bob" },
	{ IG_MECH_PLAIN, S("\0Alice@Example.COM\0p w\r\nd"), 0, "Alice@Example.COM", "" },
	{ IG_MECH_PLAIN, S("\0j\xc3\xb6rg\0pw"), 0, "j\xc3\xb6rg", "" },
	{ IG_MECH_PLAIN, S("\0a b\0pw"), 0, "a b", "" },
	{ IG_MECH_PLAIN, S("alice\0secret"), IG_EPROTO, "", "" },     /* one NUL */
	{ IG_MECH_PLAIN, S("alicesecret"), IG_EPROTO, "", "" },       /* no NUL */
	{ IG_MECH_PLAIN, S("\0alice\0sec\0ret"), IG_EPROTO, "", "" }, /* three NULs */
	{ IG_MECH_PLAIN, S("\0alice\0secret\0"), IG_EPROTO, "", "" },
	{ IG_MECH_PLAIN, S("\0\0secret"), IG_EPROTO, "", "" },        /* empty authcid */
	{ IG_MECH_PLAIN, S("bob\0\0secret"), IG_EPROTO, "", "" },
	{ IG_MECH_PLAIN, S("\0alice\0"), IG_EPROTO, "", "" },         /* empty password */
	{ IG_MECH_PLAIN, S(""), IG_EPROTO, "", "" },
	{ IG_MECH_PLAIN, S("\0ali\rce\0pw"), IG_EPROTO, "", "" },
	{ IG_MECH_PLAIN, S("\0alice\n\0pw"), IG_EPROTO, "", "" },
	{ IG_MECH_PLAIN, S("b\rob\0alice\0pw"), IG_EPROTO, "", "" },  /* CR in authzid */

	/* LOGIN: the first response is the name */
	{ IG_MECH_LOGIN, S("alice"), 0, "alice", "" },
	{ IG_MECH_LOGIN, S("USER11"), 0, "USER11", "" },
	{ IG_MECH_LOGIN, S(""), IG_EPROTO, "", "" },
	{ IG_MECH_LOGIN, S("ali\0ce"), IG_EPROTO, "", "" },
	{ IG_MECH_LOGIN, S("alice\r\n"), IG_EPROTO, "", "" },

	/* XOAUTH2 */
	{ IG_MECH_XOAUTH2, S("user=alice@example.com\1auth=Bearer ya29.tok\1\1"), 0,
	    "alice@example.com", "" },
	{ IG_MECH_XOAUTH2, S("auth=Bearer tok\1user=alice\1\1"), 0, "alice", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=bearer tok\1\1"), 0, "alice", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=BEARER tok\1host=imap.example.com\1\1"), 0,
	    "alice", "" },
	{ IG_MECH_XOAUTH2, S("user=a=b\1auth=Bearer tok\1\1"), 0, "a=b", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Bearer tok\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Bearer tok"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Bearer tok\1\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1\1auth=Bearer tok\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1\1"), IG_EPROTO, "", "" },   /* no auth */
	{ IG_MECH_XOAUTH2, S("auth=Bearer tok\1\1"), IG_EPROTO, "", "" }, /* no user */
	{ IG_MECH_XOAUTH2, S("user=\1auth=Bearer tok\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Basic dG9r\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Bearer \1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1user=bob\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("User=alice\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1junk\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=al\rice\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Bearer t\0k\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_XOAUTH2, S(""), IG_EPROTO, "", "" },

	/* OAUTHBEARER (RFC 7628) */
	{ IG_MECH_OAUTHBEARER,
	    S("n,a=user@example.com,\1host=server.example.com\1port=143\1"
	      "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\1\1"),
	    0, "", "user@example.com" },
	{ IG_MECH_OAUTHBEARER, S("y,a=alice,\1auth=Bearer t\1\1"), 0, "", "alice" },
	{ IG_MECH_OAUTHBEARER, S("n,a=a=2Cb=3Dc,\1auth=Bearer t\1\1"), 0, "", "a,b=c" },
	{ IG_MECH_OAUTHBEARER, S("n,,\1auth=Bearer t\1\1"), IG_ENOTFOUND, "", "" },
	{ IG_MECH_OAUTHBEARER, S("\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("p=tls-unique,a=alice,\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=alice,\1\1"), IG_EPROTO, "", "" },  /* no auth */
	{ IG_MECH_OAUTHBEARER, S("n,a=alice,\1auth=Bearer t\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=alice,auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=alice\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=,\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=ali=41ce,\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("x,a=alice,\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("F,n,a=alice,\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=alice,\1auth=Bearer t\1auth=Bearer u\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=alice,\1auth=Bearer t\x7f\1\1"), IG_EPROTO, "", "" },
	{ IG_MECH_OAUTHBEARER, S("n,a=ali\rce,\1auth=Bearer t\1\1"), IG_EPROTO, "", "" },

	/* SCRAM (RFC 5802 / 7677) */
	{ IG_MECH_SCRAM_SHA_1, S("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), 0, "user", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), 0, "user", "" },
	{ IG_MECH_SCRAM_SHA_256, S("y,,n=user,r=abc"), 0, "user", "" },
	{ IG_MECH_SCRAM_SHA_256, S("p=tls-server-end-point,,n=user,r=abc"), 0, "user", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,a=admin,n=user,r=abc"), 0, "user", "admin" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=a=2Cb=3Dc,r=abc"), 0, "a,b=c", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,a==3D=2C,n==2C,r=abc"), 0, ",", "=," },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r=abc,x=ext,y=more"), 0, "user", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=j\xc3\xb6rg,r=abc"), 0, "j\xc3\xb6rg", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=us=41er,r=abc"), IG_EPROTO, "", "" },  /* bad escape */
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=us=2cer,r=abc"), IG_EPROTO, "", "" },  /* lower-case */
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user=,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user=2,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=,r=abc"), IG_EPROTO, "", "" },         /* empty user */
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user"), IG_EPROTO, "", "" },           /* no nonce */
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r="), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r=a b"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r=abc,"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r=abc,x="), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,m=ext,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,r=abc,n=user"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,n=user,r=abc"), IG_EPROTO, "", "" },      /* bad gs2 */
	{ IG_MECH_SCRAM_SHA_256, S("n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S(",,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("q,,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("p=,,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("p=tls unique,,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,a=,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,b=x,n=user,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=us\ner,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=us\0er,r=abc"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=user,r=abc\0"), IG_EPROTO, "", "" },
	{ IG_MECH_SCRAM_SHA_1, S(""), IG_EPROTO, "", "" },

	/* CRAM-MD5 (RFC 2195): user is everything before the last space */
	{ IG_MECH_CRAM_MD5, S("tim " DIGEST), 0, "tim", "" },
	{ IG_MECH_CRAM_MD5, S("tim smith " DIGEST), 0, "tim smith", "" },
	{ IG_MECH_CRAM_MD5, S("tim  " DIGEST), 0, "tim ", "" },
	{ IG_MECH_CRAM_MD5, S(" " DIGEST), IG_EPROTO, "", "" },              /* empty user */
	{ IG_MECH_CRAM_MD5, S(DIGEST), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("tim " DIGEST "0"), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("tim b913a602c7eda7a495b4e6e7334d389"), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("tim B913A602C7EDA7A495B4E6E7334D3890"), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("tim b913a602c7eda7a495b4e6e7334d389g"), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("tim " DIGEST " "), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("t\rim " DIGEST), IG_EPROTO, "", "" },
	{ IG_MECH_CRAM_MD5, S("t\0im " DIGEST), IG_EPROTO, "", "" },

	{ IG_MECH_COUNT, S("alice"), IG_EINVAL, "", "" },
};

static void
test_extract_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ext_rows) / sizeof(ext_rows[0]); i++) {
		const struct ext_row *r = &ext_rows[i];
		struct ig_sasl_ident id;
		memset(&id, 'X', sizeof(id));
		int rc = ig_sasl_extract_user(r->mech, (const uint8_t *)r->msg, r->len, &id);
		if (rc != r->rc)
			fail_msg("row %zu (%s): rc %d, want %d", i,
			    ig_sasl_mech_str(r->mech), rc, r->rc);
		if (strcmp(id.authcid, r->authcid) != 0 || strcmp(id.authzid, r->authzid) != 0)
			fail_msg("row %zu (%s): got authcid '%s' authzid '%s'", i,
			    ig_sasl_mech_str(r->mech), id.authcid, id.authzid);
	}
}

/* The reusable secret each mechanism's message carries, as a span into it. */
struct secret_row {
	enum ig_sasl_mech mech;
	const char *msg;
	size_t len;
	const char *secret; /* NULL: none */
};

static const struct secret_row secret_rows[] = {
	{ IG_MECH_PLAIN, S("\0alice\0secret"), "secret" },
	{ IG_MECH_PLAIN, S("bob\0alice\0p w\r\nd"), "p w\r\nd" },
	{ IG_MECH_PLAIN, S("alice\0secret"), NULL },               /* malformed */
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Bearer ya29.tok\1\1"), "ya29.tok" },
	{ IG_MECH_XOAUTH2, S("auth=bearer T0K\1user=alice\1\1"), "T0K" },
	{ IG_MECH_XOAUTH2, S("user=alice\1auth=Basic abc\1\1"), NULL },
	{ IG_MECH_OAUTHBEARER, S("n,a=alice,\1host=h\1auth=Bearer tok-1\1\1"), "tok-1" },
	{ IG_MECH_OAUTHBEARER, S("n,,\1auth=Bearer tok-1\1\1"), NULL }, /* no user */
	{ IG_MECH_LOGIN, S("alice"), NULL },        /* the password is a later step */
	{ IG_MECH_SCRAM_SHA_256, S("n,,n=alice,r=abcdefgh"), NULL },
	{ IG_MECH_CRAM_MD5, S("tim " DIGEST), NULL },
};

static void
test_extract_secret(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(secret_rows) / sizeof(secret_rows[0]); i++) {
		const struct secret_row *r = &secret_rows[i];
		struct ig_sasl_ident id;
		memset(&id, 'X', sizeof(id));
		(void)ig_sasl_extract_user(r->mech, (const uint8_t *)r->msg, r->len, &id);
		if (r->secret == NULL) {
			if (id.secret.p != NULL || id.secret.len != 0)
				fail_msg("row %zu: a secret where none is expected", i);
			continue;
		}
		const uint8_t *m = (const uint8_t *)r->msg;
		if (id.secret.p < m || id.secret.p + id.secret.len > m + r->len)
			fail_msg("row %zu: secret does not point into the message", i);
		if (id.secret.len != strlen(r->secret) ||
		    memcmp(id.secret.p, r->secret, id.secret.len) != 0)
			fail_msg("row %zu: secret '%.*s', want '%s'", i, (int)id.secret.len,
			    (const char *)id.secret.p, r->secret);
	}
}

/* Builds a name of n bytes ("aaa...") into buf. */
static void
fill_name(char *buf, size_t n)
{
	memset(buf, 'a', n);
	buf[n] = '\0';
}

static void
test_extract_lengths(void **state)
{
	(void)state;
	char name[IG_USER_MAX + 2];
	char msg[1024];
	size_t len;
	struct ig_sasl_ident id;

	for (size_t n = IG_USER_MAX; n <= IG_USER_MAX + 1; n++) {
		int want = n == IG_USER_MAX ? 0 : IG_ETOOLONG;
		fill_name(name, n);

		len = (size_t)snprintf(msg, sizeof(msg), "%c%s%cpw", 0, name, 0);
		assert_int_equal(ig_sasl_extract_user(IG_MECH_PLAIN, (uint8_t *)msg, len, &id), want);
		assert_int_equal(strlen(id.authcid), want == 0 ? n : 0);

		len = (size_t)snprintf(msg, sizeof(msg), "%s%cu%cpw", name, 0, 0);
		assert_int_equal(ig_sasl_extract_user(IG_MECH_PLAIN, (uint8_t *)msg, len, &id), want);
		assert_string_equal(id.authcid, want == 0 ? "u" : "");

		assert_int_equal(ig_sasl_extract_user(IG_MECH_LOGIN, (uint8_t *)name, n, &id), want);

		len = (size_t)snprintf(msg, sizeof(msg), "user=%s\1auth=Bearer t\1\1", name);
		assert_int_equal(ig_sasl_extract_user(IG_MECH_XOAUTH2, (uint8_t *)msg, len, &id), want);

		len = (size_t)snprintf(msg, sizeof(msg), "n,a=%s,\1auth=Bearer t\1\1", name);
		assert_int_equal(ig_sasl_extract_user(IG_MECH_OAUTHBEARER, (uint8_t *)msg, len, &id), want);
		assert_int_equal(strlen(id.authzid), want == 0 ? n : 0);

		len = (size_t)snprintf(msg, sizeof(msg), "n,,n=%s,r=abc", name);
		assert_int_equal(ig_sasl_extract_user(IG_MECH_SCRAM_SHA_256, (uint8_t *)msg, len, &id), want);

		len = (size_t)snprintf(msg, sizeof(msg), "%s %s", name, DIGEST);
		assert_int_equal(ig_sasl_extract_user(IG_MECH_CRAM_MD5, (uint8_t *)msg, len, &id), want);
	}

	/* The limit applies after unescaping: 255 "=2C" make 255 bytes. */
	len = (size_t)snprintf(msg, sizeof(msg), "n,,n=");
	for (size_t i = 0; i < IG_USER_MAX; i++)
		len += (size_t)snprintf(msg + len, sizeof(msg) - len, "=2C");
	len += (size_t)snprintf(msg + len, sizeof(msg) - len, ",r=abc");
	assert_int_equal(ig_sasl_extract_user(IG_MECH_SCRAM_SHA_1, (uint8_t *)msg, len, &id), 0);
	assert_int_equal(strlen(id.authcid), IG_USER_MAX);
	assert_int_equal(id.authcid[0], ',');

	/* A long name with a CR is malformed first, long second. */
	fill_name(name, IG_USER_MAX + 1);
	name[3] = '\r';
	assert_int_equal(ig_sasl_extract_user(IG_MECH_LOGIN, (uint8_t *)name,
	    IG_USER_MAX + 1, &id), IG_EPROTO);

	/* An empty message with a NULL pointer is just malformed. */
	assert_int_equal(ig_sasl_extract_user(IG_MECH_LOGIN, NULL, 0, &id), IG_EPROTO);
}

static void
test_mailbox_user(void **state)
{
	(void)state;
	struct ig_sasl_ident id;
	assert_int_equal(ig_sasl_extract_user(IG_MECH_PLAIN, (const uint8_t *)S("\0alice\0pw"), &id), 0);
	assert_string_equal(ig_sasl_mailbox_user(&id), "alice");
	assert_int_equal(ig_sasl_extract_user(IG_MECH_PLAIN, (const uint8_t *)S("bob\0alice\0pw"), &id), 0);
	assert_string_equal(ig_sasl_mailbox_user(&id), "bob");
	assert_int_equal(ig_sasl_extract_user(IG_MECH_SCRAM_SHA_256,
	    (const uint8_t *)S("n,a=boss,n=alice,r=x"), &id), 0);
	assert_string_equal(ig_sasl_mailbox_user(&id), "boss");
	assert_int_equal(ig_sasl_extract_user(IG_MECH_OAUTHBEARER,
	    (const uint8_t *)S("n,a=carol,\1auth=Bearer t\1\1"), &id), 0);
	assert_string_equal(ig_sasl_mailbox_user(&id), "carol");
}

/* ---- normalisation ---- */

struct norm_row {
	const char *in;
	size_t len;
	bool fold;
	int rc;
	const char *want;
};

static const struct norm_row norm_rows[] = {
	{ S("USER11"), true, 0, "user11" },
	{ S("Alice@Example.COM"), true, 0, "alice@example.com" },
	{ S("Alice@Example.COM"), false, 0, "Alice@Example.COM" },
	{ S("J\xc3\x96RG"), true, 0, "j\xc3\x96rg" },      /* UTF-8 bytes untouched */
	{ S("\xc3\x80"), true, 0, "\xc3\x80" },
	{ S(" alice "), true, 0, " alice " },               /* nothing trimmed */
	{ S("a\tb"), true, 0, "a\tb" },
	{ S("[@Z`{"), true, 0, "[@z`{" },                   /* only A-Z fold */
	{ S(""), true, IG_EINVAL, "" },
	{ S("ali\0ce"), true, IG_EINVAL, "" },
	{ S("alice\r"), true, IG_EINVAL, "" },
	{ S("ali\nce"), false, IG_EINVAL, "" },
};

static void
test_normalize_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(norm_rows) / sizeof(norm_rows[0]); i++) {
		const struct norm_row *r = &norm_rows[i];
		char out[IG_USER_MAX + 1];
		memset(out, 'X', sizeof(out));
		int rc = ig_user_normalize((const uint8_t *)r->in, r->len, r->fold, out,
		    sizeof(out));
		if (rc != r->rc)
			fail_msg("row %zu: rc %d, want %d", i, rc, r->rc);
		assert_string_equal(out, r->want);
	}
}

static void
test_normalize_lengths(void **state)
{
	(void)state;
	char in[IG_USER_MAX + 2];
	char out[IG_USER_MAX + 1];

	memset(in, 'A', sizeof(in));
	assert_int_equal(ig_user_normalize((uint8_t *)in, IG_USER_MAX, true, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), IG_USER_MAX);
	assert_int_equal(out[0], 'a');
	assert_int_equal(ig_user_normalize((uint8_t *)in, IG_USER_MAX + 1, true, out,
	    sizeof(out)), IG_ETOOLONG);
	assert_string_equal(out, "");
	/* A smaller buffer than the contract asks for is refused, not overrun. */
	assert_int_equal(ig_user_normalize((uint8_t *)in, 8, true, out, 8), IG_ETOOLONG);
	assert_int_equal(ig_user_normalize((uint8_t *)in, 7, true, out, 8), 0);
	assert_string_equal(out, "aaaaaaa");
	assert_int_equal(ig_user_normalize(NULL, 0, true, out, sizeof(out)), IG_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mech_names),
		cmocka_unit_test(test_b64_decode_rows),
		cmocka_unit_test(test_b64_encode_rows),
		cmocka_unit_test(test_extract_rows),
		cmocka_unit_test(test_extract_lengths),
		cmocka_unit_test(test_extract_secret),
		cmocka_unit_test(test_mailbox_user),
		cmocka_unit_test(test_normalize_rows),
		cmocka_unit_test(test_normalize_lengths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
