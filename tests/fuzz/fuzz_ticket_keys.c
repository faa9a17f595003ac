/*
 * Fuzz target for the ticket key file parser (crypto/ticket_keys.c), on
 * any bytes. A refusal must say where (a line that exists, a column inside
 * it or just past it) and leave nothing of the keys behind; an acceptance
 * must hold 1..IG_TICKET_KEYS_MAX keys with distinct names and no all-zero
 * key, be formatted again and parse back to the same keys. abort() flags
 * a violation, so the replay build checks the corpus too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/ticket_keys.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* The length of line n (1-based) of data, without its LF; false when the
   data has fewer lines. */
static bool
fz_line_len(const uint8_t *data, size_t size, unsigned n, size_t *len)
{
	size_t p = 0;
	for (unsigned i = 1; p < size || (i == 1 && size == 0); i++) {
		const uint8_t *nl = memchr(data + p, '\n', size - p);
		size_t l = nl != NULL ? (size_t)(nl - (data + p)) : size - p;
		if (i == n) {
			*len = l;
			return true;
		}
		p += l + (nl != NULL);
	}
	return false;
}

static void
fz_refused(const uint8_t *data, size_t size, int rc, const struct ig_ticket_keys *k,
    const struct ig_ticket_keys_error *e)
{
	static const struct ig_ticket_keys zero;
	CHECK(rc == IG_EINVAL || rc == IG_ETOOLONG);
	CHECK((rc == IG_ETOOLONG) == (size > IG_TICKET_KEY_FILE_MAX));
	CHECK(memcmp(k, &zero, sizeof(zero)) == 0);
	CHECK(memchr(e->reason, '\0', sizeof(e->reason)) != NULL && e->reason[0] != '\0');
	/* A quoted log value carries it. */
	CHECK(strchr(e->reason, '"') == NULL && strchr(e->reason, '\\') == NULL);
	CHECK(e->col == 0 || e->line > 0);
	if (e->line > 0) {
		size_t len = 0;
		CHECK(fz_line_len(data, size, e->line, &len));
		CHECK(e->col <= len + 1);
	}
	char small[12];
	ig_ticket_keys_strerror(e, small, sizeof(small));
	CHECK(strlen(small) < sizeof(small));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ig_ticket_keys k, back;
	struct ig_ticket_keys_error e;
	int rc = ig_ticket_keys_parse(data, size, &k, &e);
	if (rc != 0) {
		fz_refused(data, size, rc, &k, &e);
		return 0;
	}
	CHECK(size <= IG_TICKET_KEY_FILE_MAX);
	CHECK(k.n >= 1 && k.n <= IG_TICKET_KEYS_MAX);
	for (size_t i = 0; i < k.n; i++) {
		uint8_t any = 0;
		for (size_t b = 0; b < IG_TICKET_KEY_LEN; b++)
			any |= k.k[i].key[b];
		CHECK(any != 0);
		for (size_t j = 0; j < i; j++)
			CHECK(memcmp(k.k[i].name, k.k[j].name, IG_TICKET_KEY_NAME_LEN) != 0);
	}
	char buf[IG_TICKET_KEY_FILE_MAX];
	size_t len = 0;
	CHECK(ig_ticket_keys_format(&k, buf, sizeof(buf), &len) == 0);
	CHECK(len == strlen(buf));
	CHECK(ig_ticket_keys_parse((const uint8_t *)buf, len, &back, &e) == 0);
	CHECK(memcmp(&k, &back, sizeof(k)) == 0);
	ig_ticket_keys_wipe(&k);
	ig_ticket_keys_wipe(&back);
	return 0;
}
