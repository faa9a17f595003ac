/*
 * Fuzz target for the limiter's state-file loader (policy/ratelimit.c):
 * the bytes are loaded as they are and again with the trailing SHA-256
 * fixed up, so the fuzzer gets past the checksum into the field checks.
 * Whatever is accepted must be usable: listing and lifting blocks,
 * checking, failing and succeeding logins, all within max_keys, and saving
 * again into an image that loads. Any violation abort()s, so the replay
 * build catches it too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <mbedtls/sha256.h>

#include "policy/ratelimit.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

#define FZ_NOW 1700000060000ull
#define FZ_MAX_KEYS 64

struct fz_blocks {
	unsigned n;
	char limit[8][32];
	char key[8][128];
};

static void
fz_collect(void *arg, const char *limit, const char *key, uint64_t until,
    unsigned count)
{
	struct fz_blocks *b = arg;
	(void)count;
	CHECK(limit != NULL && key != NULL);
	CHECK(until > FZ_NOW);
	CHECK(strlen(limit) < sizeof(b->limit[0]));
	CHECK(strlen(key) < sizeof(b->key[0]));
	if (b->n < 8) {
		strcpy(b->limit[b->n], limit);
		strcpy(b->key[b->n], key);
	}
	b->n++;
}

static void
fz_use(struct ig_rl *rl)
{
	struct fz_blocks b = { 0 };
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	const struct sockaddr *addrs[2] = { (const struct sockaddr *)&s4,
	    (const struct sockaddr *)&s6 };
	static const char *const users[] = { "alice", "bob", "s0", NULL };
	struct ig_rl_verdict v;

	s4.sin_addr.s_addr = htonl(0xc000020a); /* 192.0.2.10 */
	s6.sin6_addr.s6_addr[0] = 0x20;
	s6.sin6_addr.s6_addr[1] = 0x01;
	ig_rl_foreach_block(rl, FZ_NOW, fz_collect, &b);
	for (unsigned i = 0; i < b.n && i < 8; i++)
		CHECK(ig_rl_lift(rl, b.limit[i], b.key[i], FZ_NOW) == 0);
	for (unsigned u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
		for (unsigned a = 0; a < 2; a++) {
			struct ig_rl_attempt at = { users[u], addrs[a],
			    (const uint8_t *)"pw", 2, FZ_NOW + u, NULL };
			ig_rl_check(rl, &at, &v);
			CHECK(!v.refuse || v.limit != NULL);
			ig_rl_failure(rl, &at, &v);
			CHECK(v.delay_ms <= 10000);
			ig_rl_success(rl, &at);
		}
	}
	CHECK(ig_rl_count(rl) <= FZ_MAX_KEYS);
}

static void
fz_load(const struct ig_rl_conf *c, const uint8_t *data, size_t size)
{
	static const uint8_t key[32] = { 7 };
	struct ig_rl *rl = NULL;
	CHECK(ig_rl_new(c, key, &rl) == 0);
	int rc = ig_rl_load_buf(rl, data, size, FZ_NOW);
	CHECK(rc == 0 || rc == IG_EINVAL);
	if (rc != 0)
		CHECK(ig_rl_count(rl) == 0);
	CHECK(ig_rl_count(rl) <= FZ_MAX_KEYS);
	fz_use(rl);
	/* Whatever it holds now saves, and the image loads again. */
	struct ig_rl_snapshot *snap = NULL;
	CHECK(ig_rl_snapshot(rl, FZ_NOW, &snap) == 0);
	size_t len = 0;
	const uint8_t *img = ig_rl_snapshot_bytes(snap, &len);
	CHECK(img != NULL);
	struct ig_rl *again = NULL;
	CHECK(ig_rl_new(c, key, &again) == 0);
	CHECK(ig_rl_load_buf(again, img, len, FZ_NOW) == 0);
	CHECK(ig_rl_count(again) <= ig_rl_count(rl));
	ig_rl_free(again);
	ig_rl_snapshot_free(snap);
	ig_rl_free(rl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_rl_conf c;
	ig_rl_conf_defaults(&c);
	c.max_keys = FZ_MAX_KEYS;
	c.max_known = 8;
	fz_load(&c, data, size);
	if (size >= 32 && size <= (1u << 20)) {
		uint8_t *fixed = malloc(size);
		CHECK(fixed != NULL);
		memcpy(fixed, data, size);
		CHECK(mbedtls_sha256(fixed, size - 32, fixed + size - 32, 0) == 0);
		fz_load(&c, fixed, size);
		free(fixed);
	}
	return 0;
}
