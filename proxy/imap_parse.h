/*
 * Pure, resumable, zero-copy parser for IMAP commands in the
 * not-authenticated state (RFC 9051 section 9, RFC 7888 LITERAL+).
 *
 * No allocation, no I/O, no logging, no clock. Limits come in as arguments.
 *
 * The caller keeps the bytes of the command being parsed at the start of one
 * buffer and calls ig_imap_parse() with (buf, len) every time more bytes have
 * been appended; buf must be the same start every time (bytes before it are
 * never looked at again, bytes already passed are not re-scanned). After a
 * result other than IG_PARSE_AGAIN / IG_PARSE_NEED_CONTINUATION the caller
 * drops *consumed bytes from the front of the buffer and calls
 * ig_imap_parser_reset() before the next command.
 */
#ifndef IG_PROXY_IMAP_PARSE_H
#define IG_PROXY_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/span.h"

enum ig_parse_result {
	IG_PARSE_AGAIN,             /* need more bytes; *consumed is 0 */
	IG_PARSE_OK,                /* complete command in parser->cmd */
	IG_PARSE_NEED_CONTINUATION, /* a synchronizing literal {n} was announced
	                               and is within limits: send "+ ..." and call
	                               again when more bytes arrive; *consumed 0 */
	IG_PARSE_BAD,               /* syntax error; see struct ig_imap_parser */
	IG_PARSE_TOO_LONG,          /* a limit was exceeded; see the parser */
	IG_PARSE_RESULT_COUNT
};

const char *ig_parse_result_str(enum ig_parse_result r);

/* Upper bound on the tokens of one command (ID carries up to 30 pairs). */
#define IG_IMAP_MAX_ARGS 72

enum ig_imap_arg_type {
	IG_ARG_ATOM,       /* atom or number; span is the atom's bytes */
	IG_ARG_QUOTED,     /* quoted string; span is the raw content between the
	                      quotes, escapes NOT removed: use ig_imap_unquote() */
	IG_ARG_LITERAL,    /* {n} or {n+} literal; span is the n data bytes */
	IG_ARG_NIL,        /* the atom NIL (case-insensitive) */
	IG_ARG_LIST_BEGIN, /* "(" */
	IG_ARG_LIST_END,   /* ")" */
	IG_ARG_TYPE_COUNT
};

struct ig_imap_arg {
	enum ig_imap_arg_type type;
	struct ig_span val;
};

struct ig_imap_limits {
	size_t max_line;    /* longest line (bytes, CRLF included) of a command */
	size_t max_literal; /* largest literal {n} accepted */
	size_t max_command; /* whole command: lines + literal data + CRLFs */
	size_t max_tag;     /* longest tag */
};

struct ig_imap_cmd {
	struct ig_span tag;  /* valid for OK, and for BAD/TOO_LONG when has_tag */
	struct ig_span name; /* command name as sent; compare case-insensitively */
	struct ig_imap_arg args[IG_IMAP_MAX_ARGS]; /* arguments after the name */
	unsigned nargs;
};

struct ig_imap_parser {
	/* Outputs, valid after a non-AGAIN result. */
	struct ig_imap_cmd cmd;
	bool has_tag;        /* a tag was parsed before an error */
	bool literal_seen;   /* the command announced a literal before an error;
	                        the caller must end the session, because it cannot
	                        tell literal data from commands */
	bool literal_plus;   /* TOO_LONG was a non-synchronizing {n+} literal:
	                        its data is on its way and must not be acted on */
	const char *error;   /* static text for BAD/TOO_LONG, for the reply */

	/* Private resumable state: offsets only, never pointers, so the caller
	   may move the pending bytes as a block between calls. */
	size_t pos;          /* bytes of buf already scanned */
	size_t line_start;   /* offset where the current line started */
	size_t tok_start;    /* offset where the current token started */
	size_t lit_len;      /* announced literal length */
	size_t lit_remaining;/* literal bytes still expected */
	size_t tag_end;
	size_t name_start, name_end;
	size_t arg_off[IG_IMAP_MAX_ARGS];
	int state;
	int depth;           /* parenthesis depth */
	bool skipping;       /* error seen: skipping to LF */
	bool lit_plus_cur;   /* the literal being read is {n+} */
	enum ig_parse_result err_result; /* BAD or TOO_LONG, while skipping */
	struct ig_imap_limits limits;
};

/* Initialises (or re-initialises) a parser with the given limits. */
void ig_imap_parser_init(struct ig_imap_parser *p, const struct ig_imap_limits *limits);
/* Prepares the parser for the next command; keeps the limits. */
void ig_imap_parser_reset(struct ig_imap_parser *p);

/*
 * Parses one command from buf[0..len). Returns:
 * - IG_PARSE_AGAIN: more bytes needed; *consumed = 0.
 * - IG_PARSE_NEED_CONTINUATION: once per synchronizing literal, when its
 *   "{n}CRLF" has been read and n <= max_literal; *consumed = 0.
 * - IG_PARSE_OK: p->cmd holds spans into buf; *consumed is the length of the
 *   whole command including its final CRLF (a bare LF is accepted too).
 * - IG_PARSE_BAD: syntax error. *consumed covers the bad line through its LF,
 *   so the caller answers "tag BAD" and resynchronises; if the LF has not
 *   arrived yet the parser keeps returning AGAIN while it skips. If
 *   p->literal_seen, the caller must end the session instead.
 * - IG_PARSE_TOO_LONG: a line, tag, literal or the command exceeded its
 *   limit. A synchronizing literal over the limit is refused before "+"
 *   (the client will not send it): *consumed covers its line through the
 *   LF, the caller answers BAD and goes on. The session must end instead
 *   when *consumed is 0 (a line over max_line: no LF in reach, the stream
 *   position is lost), or p->literal_plus (a {n+} literal over the limit:
 *   its data is on its way), or p->literal_seen.
 *
 * The rule for the caller, for BAD and TOO_LONG alike: go on (answer BAD,
 * drop *consumed bytes) only when *consumed > 0 and neither literal_seen nor
 * literal_plus is set; otherwise answer "* BYE" and end the session.
 * literal_seen is also set after an OK for a command that had literals; it
 * only means something after an error.
 */
enum ig_parse_result ig_imap_parse(struct ig_imap_parser *p, const uint8_t *buf,
    size_t len, size_t *consumed);

/*
 * Copies the tag of a parsed command into out as a NUL-terminated string,
 * cut to outsz - 1 bytes (outsz > 0).
 */
void ig_imap_tag_copy(const struct ig_imap_cmd *c, char *out, size_t outsz);

/*
 * Finds one CRLF- (or LF-) terminated line in buf[0..len), as used for
 * AUTHENTICATE continuation responses. On IG_PARSE_OK, *line is the line
 * without its line ending and *consumed includes the ending. Returns AGAIN
 * when no LF yet and len < max_line, TOO_LONG when max_line is exceeded.
 */
enum ig_parse_result ig_imap_parse_line(const uint8_t *buf, size_t len,
    size_t max_line, struct ig_span *line, size_t *consumed);

/*
 * Where a stream of server responses stands, fed every byte in order (the
 * backend's bytes as they are written to the client, after login): at a
 * boundary between two responses, or inside one (a line not yet ended, or
 * literal data announced by a line ending in {n}, {n+} or ~{n}, RFC 9051
 * 4.3 and RFC 3516). A line of our own ("* BYE ...") may go into the
 * stream only at a boundary. All zero is the start of a stream: a boundary.
 */
struct ig_imap_resp_scan {
	uint64_t literal_left;      /* literal bytes still to come */
	bool mid_line;              /* a line has begun and not ended (also
	                               while its literal data passes) */
	bool lost;                  /* a literal size past 2^64: the position
	                               is unknown from here, never a boundary */
	uint8_t tail_len;
	uint8_t tail[24];           /* the current line's last bytes, for a
	                               "{n}" at its end: "{" 20 digits "+}\r" */
	bool line_first;            /* the current line begins a response */
	uint8_t head_len;
	uint8_t head[6];            /* that line's first bytes */
	bool bye;                   /* a response was "* BYE": the server is
	                               about to close (RFC 9051 7.1.5) */
};

/* Feeds len bytes that follow those fed before. Pure; O(len) with memchr. */
void ig_imap_resp_scan(struct ig_imap_resp_scan *sc, const uint8_t *p, size_t len);

/* True when everything fed so far ends with a complete response. */
bool ig_imap_resp_at_boundary(const struct ig_imap_resp_scan *sc);

/* True once a whole response line "* BYE" (any case, text optional) has
   been fed: the server says it is closing the connection. */
bool ig_imap_resp_bye(const struct ig_imap_resp_scan *sc);

/*
 * Removes the backslash escapes of a quoted string's raw content (as returned
 * for IG_ARG_QUOTED) into out (size outsz). For other argument types copies
 * the bytes. Returns the decoded length, or IG_ETOOLONG when out is too small.
 * out is not NUL-terminated.
 */
long ig_imap_unquote(const struct ig_imap_arg *arg, uint8_t *out, size_t outsz);

/*
 * True if arg is an astring (atom, quoted string or literal; NIL counts as
 * the atom "NIL").
 */
bool ig_imap_arg_is_astring(const struct ig_imap_arg *arg);

#endif /* IG_PROXY_IMAP_PARSE_H */
