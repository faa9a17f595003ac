/*
 * PROXY protocol v1 and v2 (HAProxy's doc/proxy-protocol.txt): the parser
 * of the header in front of a client connection, and the formatter of ours
 * in front of the backend connection. See proxyproto.h.
 */
#include "proxy/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Section 2.2: the v2 signature, which no v1 header or protocol starts with. */
static const uint8_t pp_v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
static const char pp_v1_sig[] = "PROXY ";
#define PP_V1_SIG_LEN (sizeof(pp_v1_sig) - 1)
#define PP_V1_MIN 15 /* "PROXY UNKNOWN\r\n": the shortest header of either */

/* Lengths of the v2 address blocks (section 2.2). */
#define PP_V2_INET_LEN 12
#define PP_V2_INET6_LEN 36
#define PP_V2_UNIX_LEN 216

#define CASE(x, s) case x: return s
const char *
ig_pp_command_str(enum ig_pp_command c)
{
	switch (c) {
	CASE(IG_PP_CMD_PROXY, "proxy");
	CASE(IG_PP_CMD_LOCAL, "local");
	CASE(IG_PP_CMD_UNKNOWN, "unknown");
	case IG_PP_CMD_COUNT:
		break;
	}
	return "?";
}
#undef CASE

void
ig_pp_init(struct ig_pp_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static enum ig_parse_result
pp_fail(struct ig_pp_parser *p, enum ig_parse_result r, const char *why)
{
	p->error = why;
	p->done = true;
	p->result = r;
	return r;
}

static enum ig_parse_result
pp_ok(struct ig_pp_parser *p)
{
	p->done = true;
	p->result = IG_PARSE_OK;
	return IG_PARSE_OK;
}

/* "0".."65535", digits only. */
static bool
pp_v1_port(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;
	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* One v1 address of family af into sa (port set later). */
static bool
pp_v1_addr(int af, const char *s, size_t len, struct sockaddr_storage *sa)
{
	char tmp[INET6_ADDRSTRLEN];
	if (len == 0 || len >= sizeof(tmp))
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		/* inet_pton would stop at a NUL: only address characters. */
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		    (ch >= 'A' && ch <= 'F') || ch == '.' || ch == ':'))
			return false;
	}
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(sa, 0, sizeof(*sa));
	if (af == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)sa;
		a->sin_family = AF_INET;
		return inet_pton(AF_INET, tmp, &a->sin_addr) == 1;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
	a->sin6_family = AF_INET6;
	return inet_pton(AF_INET6, tmp, &a->sin6_addr) == 1;
}

static void
pp_set_port(struct sockaddr_storage *sa, uint16_t port)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

/*
 * The complete v1 line in p->buf[0..have), CRLF included: "PROXY TCP4 SRC
 * DST SPORT DPORT", "PROXY TCP6 ...", or "PROXY UNKNOWN" and anything up to
 * the CRLF (section 2.1). Fields are separated by exactly one space.
 */
static enum ig_parse_result
pp_v1_line(struct ig_pp_parser *p)
{
	if (p->have < 2 || p->buf[p->have - 2] != '\r')
		return pp_fail(p, IG_PARSE_BAD, "v1 line not ended by CRLF");
	const char *s = (const char *)p->buf + PP_V1_SIG_LEN;
	size_t len = p->have - 2 - PP_V1_SIG_LEN;
	p->version = IG_PP_V1;
	if (len >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (len == 7 || s[7] == ' ')) {
		/* The receiver ignores the rest of the line (section 2.1). */
		p->command = IG_PP_CMD_UNKNOWN;
		p->header_len = p->have;
		return pp_ok(p);
	}
	int af;
	if (len >= 5 && memcmp(s, "TCP4 ", 5) == 0)
		af = AF_INET;
	else if (len >= 5 && memcmp(s, "TCP6 ", 5) == 0)
		af = AF_INET6;
	else
		return pp_fail(p, IG_PARSE_BAD, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
	s += 5;
	len -= 5;
	const char *f[4];
	size_t fl[4];
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != ' ')
			continue;
		if (n == 4)
			return pp_fail(p, IG_PARSE_BAD, "v1 line has too many fields");
		f[n] = s + start;
		fl[n] = i - start;
		n++;
		start = i + 1;
	}
	if (n != 4)
		return pp_fail(p, IG_PARSE_BAD, "v1 line has too few fields");
	uint16_t sport, dport;
	if (!pp_v1_addr(af, f[0], fl[0], &p->src) || !pp_v1_addr(af, f[1], fl[1], &p->dst))
		return pp_fail(p, IG_PARSE_BAD, "v1 address invalid for its protocol");
	if (!pp_v1_port(f[2], fl[2], &sport) || !pp_v1_port(f[3], fl[3], &dport))
		return pp_fail(p, IG_PARSE_BAD, "v1 port invalid");
	pp_set_port(&p->src, sport);
	pp_set_port(&p->dst, dport);
	p->command = IG_PP_CMD_PROXY;
	p->header_len = p->have;
	return pp_ok(p);
}

static uint16_t
pp_be16(const uint8_t *b)
{
	return (uint16_t)((unsigned)b[0] << 8 | b[1]);
}

/*
 * The fixed v2 part is in: version, command, and the length (bounded).
 * Returns AGAIN to read the rest, or a final result.
 */
static enum ig_parse_result
pp_v2_fixed(struct ig_pp_parser *p)
{
	uint8_t vc = p->buf[12];
	if ((vc >> 4) != 2)
		return pp_fail(p, IG_PARSE_BAD, "v2 version is not 2");
	if ((vc & 0x0F) > 1)
		return pp_fail(p, IG_PARSE_BAD, "v2 command is neither LOCAL nor PROXY");
	size_t len = pp_be16(p->buf + 14);
	if (len > IG_PP_V2_MAX_LEN)
		return pp_fail(p, IG_PARSE_TOO_LONG, "v2 header longer than allowed");
	if ((vc & 0x0F) == 1) {
		/* PROXY: the address block of the family must fit. */
		uint8_t fam = p->buf[13] >> 4;
		size_t min = fam == 1 ? PP_V2_INET_LEN : fam == 2 ? PP_V2_INET6_LEN :
		    fam == 3 ? PP_V2_UNIX_LEN : 0;
		if (len < min)
			return pp_fail(p, IG_PARSE_BAD, "v2 length too short for its addresses");
	}
	p->need = IG_PP_V2_HDR + len;
	return IG_PARSE_AGAIN;
}

/* TLVs in buf[off..end): each must fit (section 2.2.7); their values are
   not used. */
static bool
pp_v2_tlvs_ok(const uint8_t *b, size_t off, size_t end)
{
	while (off < end) {
		if (end - off < 3)
			return false;
		size_t vlen = pp_be16(b + off + 1);
		if (end - off - 3 < vlen)
			return false;
		off += 3 + vlen;
	}
	return true;
}

/* The whole v2 header is in p->buf[0..need). */
static enum ig_parse_result
pp_v2_header(struct ig_pp_parser *p)
{
	const uint8_t *b = p->buf;
	p->version = IG_PP_V2;
	p->header_len = p->need;
	if ((b[12] & 0x0F) == 0) {
		/* LOCAL: the address block (whatever the family) is ignored. */
		p->command = IG_PP_CMD_LOCAL;
		return pp_ok(p);
	}
	const uint8_t *a = b + IG_PP_V2_HDR;
	switch (b[13]) {
	case 0x11: { /* TCP over IPv4 */
		struct sockaddr_in *s = (struct sockaddr_in *)&p->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&p->dst;
		memset(&p->src, 0, sizeof(p->src));
		memset(&p->dst, 0, sizeof(p->dst));
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		if (!pp_v2_tlvs_ok(b, IG_PP_V2_HDR + PP_V2_INET_LEN, p->need))
			return pp_fail(p, IG_PARSE_BAD, "v2 TLV overruns the header");
		p->command = IG_PP_CMD_PROXY;
		break;
	}
	case 0x21: { /* TCP over IPv6 */
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&p->dst;
		memset(&p->src, 0, sizeof(p->src));
		memset(&p->dst, 0, sizeof(p->dst));
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		if (!pp_v2_tlvs_ok(b, IG_PP_V2_HDR + PP_V2_INET6_LEN, p->need))
			return pp_fail(p, IG_PARSE_BAD, "v2 TLV overruns the header");
		p->command = IG_PP_CMD_PROXY;
		break;
	}
	default:
		/* UNSPEC, UNIX, UDP or an unassigned value: the receiver uses
		   the real endpoints (section 2.2, as HAProxy does). */
		p->command = IG_PP_CMD_UNKNOWN;
		break;
	}
	return pp_ok(p);
}

size_t
ig_pp_want(const struct ig_pp_parser *p)
{
	if (p->done)
		return 0;
	if (p->need > 0)
		return p->need - p->have;
	if (p->have < PP_V1_MIN)
		return PP_V1_MIN - p->have;
	if (p->buf[0] == pp_v2_sig[0])
		return IG_PP_V2_HDR - p->have; /* have < 16 here: need is unset */
	return 1; /* v1: one byte at a time up to the LF */
}

enum ig_parse_result
ig_pp_parse(struct ig_pp_parser *p, const uint8_t *buf, size_t len, size_t *consumed)
{
	*consumed = 0;
	if (p->done)
		return p->result;
	size_t i = 0;
	while (i < len) {
		if (p->need > 0) {
			/* v2, length known: copy up to the end of the header. */
			size_t n = p->need - p->have;
			if (n > len - i)
				n = len - i;
			memcpy(p->buf + p->have, buf + i, n);
			p->have += n;
			i += n;
			*consumed = i;
			if (p->have == p->need)
				return pp_v2_header(p);
			continue;
		}
		uint8_t ch = buf[i++];
		size_t k = p->have;
		p->buf[p->have++] = ch;
		*consumed = i;
		if (p->buf[0] == pp_v2_sig[0]) {
			if (k < sizeof(pp_v2_sig)) {
				if (ch != pp_v2_sig[k])
					return pp_fail(p, IG_PARSE_BAD, "not a PROXY protocol header");
				continue;
			}
			if (p->have == IG_PP_V2_HDR) {
				enum ig_parse_result r = pp_v2_fixed(p);
				if (r != IG_PARSE_AGAIN)
					return r;
				if (p->have == p->need)
					return pp_v2_header(p);
			}
			continue;
		}
		if (k < PP_V1_SIG_LEN) {
			if (ch != (uint8_t)pp_v1_sig[k])
				return pp_fail(p, IG_PARSE_BAD, "not a PROXY protocol header");
			continue;
		}
		if (ch == '\n')
			return pp_v1_line(p);
		if (p->have == IG_PP_V1_MAX)
			return pp_fail(p, IG_PARSE_TOO_LONG, "v1 line longer than 107 bytes");
	}
	return IG_PARSE_AGAIN;
}

/* A mapped IPv4 address (::ffff:a.b.c.d) into a (4 bytes). */
static bool
pp_unmap(const struct sockaddr_in6 *s6, uint8_t a[4])
{
	if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return false;
	memcpy(a, s6->sin6_addr.s6_addr + 12, 4);
	return true;
}

/* src and dst as one family: 4 (IPv4), 6 (IPv6), or 0 (neither). */
static int
pp_pair(const struct sockaddr *src, const struct sockaddr *dst, uint8_t sa[16], uint8_t da[16],
    uint16_t *sp, uint16_t *dp)
{
	if (src == NULL || dst == NULL)
		return 0;
	if (src->sa_family == AF_INET || dst->sa_family == AF_INET) {
		for (int i = 0; i < 2; i++) {
			const struct sockaddr *x = i == 0 ? src : dst;
			uint8_t *out = i == 0 ? sa : da;
			uint16_t *port = i == 0 ? sp : dp;
			if (x->sa_family == AF_INET) {
				const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)x;
				memcpy(out, &a->sin_addr, 4);
				*port = ntohs(a->sin_port);
			} else if (x->sa_family == AF_INET6) {
				const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)x;
				if (!pp_unmap(a, out))
					return 0;
				*port = ntohs(a->sin6_port);
			} else {
				return 0;
			}
		}
		return 4;
	}
	if (src->sa_family != AF_INET6 || dst->sa_family != AF_INET6)
		return 0;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)src;
	const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)(const void *)dst;
	*sp = ntohs(s6->sin6_port);
	*dp = ntohs(d6->sin6_port);
	if (pp_unmap(s6, sa) && pp_unmap(d6, da))
		return 4;
	memcpy(sa, &s6->sin6_addr, 16);
	memcpy(da, &d6->sin6_addr, 16);
	return 6;
}

size_t
ig_pp_format(enum ig_pp_version v, const struct sockaddr *src, const struct sockaddr *dst,
    uint8_t *out, size_t outsz)
{
	uint8_t sa[16], da[16];
	uint16_t sp = 0, dp = 0;
	int fam = pp_pair(src, dst, sa, da, &sp, &dp);
	if (v == IG_PP_V1) {
		char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
		char line[IG_PP_V1_MAX + 1];
		int n;
		if (fam == 0) {
			n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
		} else {
			int af = fam == 4 ? AF_INET : AF_INET6;
			inet_ntop(af, sa, s, sizeof(s));
			inet_ntop(af, da, d, sizeof(d));
			n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
			    fam == 4 ? "TCP4" : "TCP6", s, d, (unsigned)sp, (unsigned)dp);
		}
		if (n < 0 || (size_t)n >= sizeof(line) || (size_t)n > outsz)
			return 0;
		memcpy(out, line, (size_t)n);
		return (size_t)n;
	}
	size_t alen = fam == 4 ? PP_V2_INET_LEN : fam == 6 ? PP_V2_INET6_LEN : 0;
	size_t total = IG_PP_V2_HDR + alen;
	if (outsz < total)
		return 0;
	memcpy(out, pp_v2_sig, sizeof(pp_v2_sig));
	out[12] = fam == 0 ? 0x20 : 0x21;      /* version 2, LOCAL or PROXY */
	out[13] = fam == 4 ? 0x11 : fam == 6 ? 0x21 : 0x00;
	out[14] = (uint8_t)(alen >> 8);
	out[15] = (uint8_t)(alen & 0xFF);
	size_t w = fam == 4 ? 4 : 16;
	if (fam != 0) {
		uint8_t *a = out + IG_PP_V2_HDR;
		memcpy(a, sa, w);
		memcpy(a + w, da, w);
		a[2 * w] = (uint8_t)(sp >> 8);
		a[2 * w + 1] = (uint8_t)(sp & 0xFF);
		a[2 * w + 2] = (uint8_t)(dp >> 8);
		a[2 * w + 3] = (uint8_t)(dp & 0xFF);
	}
	return total;
}
