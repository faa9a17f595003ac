/*
 * Fuzz target for the pre-auth parser (and the response scanner). The first
 * byte picks the chunk size the rest is fed in, so the resumable paths are
 * exercised; the parser's contract is checked after every call and abort()
 * flags a violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_span(struct ig_span sp, const uint8_t *buf, size_t len)
{
	if (sp.len == 0)
		return;
	if (sp.p < buf || sp.p + sp.len > buf + len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] % 17) + 1;
	data++;
	size--;
	static const struct ig_imap_limits lim = {
		.max_line = 512, .max_literal = 256, .max_command = 1024, .max_tag = 32,
	};
	uint8_t *buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	struct ig_imap_parser p;
	ig_imap_parser_init(&p, &lim);
	size_t off = 0, have = 0;
	unsigned rounds = 0;
	while (off < size && rounds++ < 100000) {
		have = have + step > size - off ? size - off : have + step;
		size_t consumed = 0;
		enum ig_parse_result r = ig_imap_parse(&p, buf + off, have, &consumed);
		if (consumed > have)
			abort();
		switch (r) {
		case IG_PARSE_AGAIN:
		case IG_PARSE_NEED_CONTINUATION:
			if (consumed != 0)
				abort();
			if (have == size - off)
				goto out;
			continue;
		case IG_PARSE_OK:
			check_span(p.cmd.tag, buf + off, have);
			check_span(p.cmd.name, buf + off, have);
			if (p.cmd.nargs > IG_IMAP_MAX_ARGS)
				abort();
			for (unsigned i = 0; i < p.cmd.nargs; i++) {
				check_span(p.cmd.args[i].val, buf + off, have);
				uint8_t tmp[1024];
				if (ig_imap_unquote(&p.cmd.args[i], tmp, sizeof(tmp)) >
				    (long)p.cmd.args[i].val.len)
					abort();
			}
			__attribute__((fallthrough)); /* to the common consume path */
		case IG_PARSE_BAD:
		case IG_PARSE_TOO_LONG:
			if (r != IG_PARSE_OK && p.error == NULL)
				abort();
			if (consumed == 0 || p.literal_seen || p.literal_plus)
				goto out; /* the session would end here */
			off += consumed;
			have = 0;
			ig_imap_parser_reset(&p);
			continue;
		case IG_PARSE_RESULT_COUNT:
			abort();
		}
	}
out:
	{
		/* The response scanner: fed whole or in step-sized chunks, the
		   same answers. */
		struct ig_imap_resp_scan whole, chunked;
		memset(&whole, 0, sizeof(whole));
		memset(&chunked, 0, sizeof(chunked));
		ig_imap_resp_scan(&whole, buf, size);
		for (size_t i = 0; i < size; i += step)
			ig_imap_resp_scan(&chunked, buf + i, size - i < step ? size - i : step);
		if (ig_imap_resp_at_boundary(&whole) != ig_imap_resp_at_boundary(&chunked) ||
		    ig_imap_resp_bye(&whole) != ig_imap_resp_bye(&chunked))
			abort();
	}
	{
		struct ig_span line;
		size_t consumed = 0;
		if (ig_imap_parse_line(buf, size, 128, &line, &consumed) == IG_PARSE_OK) {
			if (consumed > size || line.len >= consumed)
				abort();
		}
	}
	free(buf);
	return 0;
}
