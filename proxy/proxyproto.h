/*
 * The PROXY protocol (HAProxy's doc/proxy-protocol.txt), versions 1 and 2:
 * a pure, resumable parser for the header a load balancer puts in front of
 * a connection, and the formatter for the header we put in front of the
 * backend connection.
 *
 * No allocation, no I/O, no logging, no clock. The parser copies the header
 * into its own bounded buffer (at most IG_PP_MAX bytes), so the caller may
 * feed it any chunks; it consumes only the header's bytes and never one
 * past its end: what follows (a TLS ClientHello, an IMAP command) stays
 * with the caller.
 */
#ifndef IG_PROXY_PROXYPROTO_H
#define IG_PROXY_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/imap_parse.h"

#define IG_PP_V1_MAX 107        /* longest v1 line, CRLF included (spec) */
#define IG_PP_V2_HDR 16         /* v2 fixed part: signature, ver/cmd,
                                   family, length */
#define IG_PP_V2_MAX_LEN 520    /* our cap on the v2 length field: the
                                   UNIX addresses (216) and room for TLVs
                                   (AWS, Azure and GCP send short ones) */
#define IG_PP_MAX (IG_PP_V2_HDR + IG_PP_V2_MAX_LEN) /* 536: longest header */

enum ig_pp_version {
	IG_PP_V1 = 1,
	IG_PP_V2 = 2,
};

/* What the header says about the connection's addresses. */
enum ig_pp_command {
	IG_PP_CMD_PROXY,   /* src and dst carry the client's connection */
	IG_PP_CMD_LOCAL,   /* v2 LOCAL: the proxy's own connection (a health
	                      check): use the real endpoints */
	IG_PP_CMD_UNKNOWN, /* v1 UNKNOWN, or v2 PROXY with a family or
	                      transport other than TCP over IPv4/IPv6 (UNSPEC,
	                      UNIX, UDP): use the real endpoints */
	IG_PP_CMD_COUNT
};
const char *ig_pp_command_str(enum ig_pp_command c);

struct ig_pp_parser {
	/* Outputs, valid after IG_PARSE_OK. */
	enum ig_pp_version version;
	enum ig_pp_command command;
	struct sockaddr_storage src;  /* IG_PP_CMD_PROXY only: AF_INET or
	                                 AF_INET6, with the port */
	struct sockaddr_storage dst;
	size_t header_len;            /* bytes the header took */
	const char *error;            /* static text after BAD or TOO_LONG */

	/* Private. */
	uint8_t buf[IG_PP_MAX];       /* the header so far */
	size_t have;                  /* bytes in buf */
	size_t need;                  /* v2: whole header length once known */
	bool done;                    /* a final result was returned */
	enum ig_parse_result result;  /* that result */
};

/* Prepares p for a new header. */
void ig_pp_init(struct ig_pp_parser *p);

/*
 * Feeds buf[0..len). Returns:
 * - IG_PARSE_AGAIN: everything was consumed (*consumed = len) and more is
 *   needed.
 * - IG_PARSE_OK: the header is complete; *consumed is how many bytes of buf
 *   it took (the bytes after them are not the header's). The outputs are
 *   set.
 * - IG_PARSE_BAD: not a PROXY header, or a malformed one; p->error says
 *   why. Detected at the first byte that cannot belong to a header.
 * - IG_PARSE_TOO_LONG: a v1 line without LF within IG_PP_V1_MAX bytes, or
 *   a v2 length over IG_PP_V2_MAX_LEN.
 * After a result other than AGAIN, further calls return the same result
 * with *consumed = 0.
 */
enum ig_parse_result ig_pp_parse(struct ig_pp_parser *p, const uint8_t *buf, size_t len,
    size_t *consumed);

/*
 * The most bytes that can be fed now without passing the header's end,
 * whatever they are (never 0 before a final result): for a caller that
 * reads from a stream and cannot give bytes back.
 */
size_t ig_pp_want(const struct ig_pp_parser *p);

/*
 * Formats a header into out (outsz bytes): version 1 or 2, PROXY with src
 * and dst (both AF_INET, or both AF_INET6; an IPv4-mapped IPv6 address is
 * sent as IPv4 when the other one is IPv4-mapped too), else v1 UNKNOWN or
 * v2 LOCAL. Returns the length, or 0 when out is too small (IG_PP_MAX is
 * always enough).
 */
size_t ig_pp_format(enum ig_pp_version v, const struct sockaddr *src,
    const struct sockaddr *dst, uint8_t *out, size_t outsz);

#endif /* IG_PROXY_PROXYPROTO_H */
