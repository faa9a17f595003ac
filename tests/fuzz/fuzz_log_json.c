/*
 * Fuzz target for util/log.c's JSON line format and user names: the bytes
 * are a key=value line as a call site writes it (client bytes end up in its
 * values), given whole and cut at every output size that matters. Every
 * output must be one strict JSON object on one line (tests/unit/
 * json_check.h); ig_log_user() must give one bare word or one quoted
 * escaped word. Any violation abort()s, so the replay build catches it too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/json_check.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void
fz_json(const uint8_t *data, size_t size, size_t outsz)
{
	static char out[16384];
	size_t len = ig_log_json(out, outsz, "2026-01-01T00:00:00.000Z", IG_LOG_INFO,
	    (const char *)data, size);
	CHECK(len < outsz);
	CHECK(out[len] == '\0');
	CHECK(json_check_line(out, len));
}

static void
fz_user(const uint8_t *data, size_t size)
{
	char name[256];
	char out[4 * sizeof(name) + 8];
	size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
	memcpy(name, data, n);
	name[n] = '\0';
	ig_log_user(name, out, sizeof(out));
	size_t l = strlen(out);
	if (name[0] == '\0')
		return;
	CHECK(l > 0);
	for (size_t i = 0; i < l; i++) {
		unsigned char c = (unsigned char)out[i];
		CHECK(c > 0x20 || (c == ' ' && out[0] == '"'));
		CHECK(c < 0x7f);
		if (c == '"')
			CHECK(i == 0 || i == l - 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 6000)
		return 0;
	fz_json(data, size, 16384);
	fz_json(data, size, 128);
	fz_json(data, size, 128 + size % 512);
	fz_user(data, size);
	return 0;
}
