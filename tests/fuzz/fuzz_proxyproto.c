/*
 * Fuzz target for the PROXY protocol parser. The first byte picks how the
 * rest is fed: in chunks of 1..16 bytes, or (0) in the chunks
 * ig_pp_want() asks for, as the session does. The parser's contract is
 * checked after every call (nothing consumed past the input, AGAIN takes
 * everything, a final result is bounded and stays), and a header that
 * carried addresses is formatted again, in both versions, and must parse
 * back to the same addresses; abort() flags a violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "proxy/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
roundtrip(const struct ig_pp_parser *p)
{
	for (int v = 1; v <= 2; v++) {
		uint8_t out[IG_PP_MAX];
		size_t n = ig_pp_format((enum ig_pp_version)v, (const struct sockaddr *)&p->src,
		    (const struct sockaddr *)&p->dst, out, sizeof(out));
		if (n == 0 || n > sizeof(out))
			abort();
		struct ig_pp_parser q;
		size_t c = 0;
		ig_pp_init(&q);
		if (ig_pp_parse(&q, out, n, &c) != IG_PARSE_OK || c != n ||
		    q.command != IG_PP_CMD_PROXY)
			abort();
		if (q.src.ss_family != p->src.ss_family) {
			/* Only an IPv4-mapped IPv6 pair changes: it is sent as IPv4. */
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&p->src;
			const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)&p->dst;
			if (q.src.ss_family != AF_INET || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ||
			    !IN6_IS_ADDR_V4MAPPED(&d6->sin6_addr))
				abort();
			continue;
		}
		size_t alen = p->src.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6);
		if (memcmp(&q.src, &p->src, alen) != 0 || memcmp(&q.dst, &p->dst, alen) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] % 17);
	data++;
	size--;
	struct ig_pp_parser p;
	ig_pp_init(&p);
	size_t off = 0;
	enum ig_parse_result r = IG_PARSE_AGAIN;
	while (off < size) {
		size_t want = ig_pp_want(&p);
		if (want == 0 || want > IG_PP_MAX)
			abort();
		size_t n = step ? step : want;
		if (n > size - off)
			n = size - off;
		size_t c = 0;
		r = ig_pp_parse(&p, data + off, n, &c);
		if (c > n)
			abort();
		if (step == 0 && c != n && (r == IG_PARSE_AGAIN || r == IG_PARSE_OK))
			abort(); /* want() never asks past the header */
		off += c;
		if (r == IG_PARSE_AGAIN) {
			if (c != n)
				abort();
			continue;
		}
		break;
	}
	if (off > IG_PP_MAX || p.have > IG_PP_MAX)
		abort();
	switch (r) {
	case IG_PARSE_AGAIN:
		if (ig_pp_want(&p) == 0)
			abort();
		break;
	case IG_PARSE_OK:
		if (p.header_len != off || ig_pp_want(&p) != 0)
			abort();
		if (p.version == IG_PP_V1 && p.header_len > IG_PP_V1_MAX)
			abort();
		if (p.command == IG_PP_CMD_PROXY)
			roundtrip(&p);
		break;
	case IG_PARSE_BAD:
	case IG_PARSE_TOO_LONG:
		if (p.error == NULL)
			abort();
		break;
	case IG_PARSE_NEED_CONTINUATION:
	case IG_PARSE_RESULT_COUNT:
		abort();
	}
	if (r != IG_PARSE_AGAIN) {
		size_t c = 1;
		if (ig_pp_parse(&p, (const uint8_t *)"x", 1, &c) != r || c != 0)
			abort();
	}
	return 0;
}
