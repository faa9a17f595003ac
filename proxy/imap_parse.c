/*
 * Resumable, zero-copy IMAP command parser for the not-authenticated state.
 * One byte at a time through an explicit state machine; the parser keeps
 * only offsets, so a command may arrive in any number of pieces.
 */
#include "proxy/imap_parse.h"

#include <string.h>

#include "util/err.h"

enum {
	ST_TAG,        /* reading the tag */
	ST_NAME,       /* reading the command name */
	ST_AFTER,      /* after a token: SP, CR, LF or ")" */
	ST_ARG,        /* start of an argument (after SP or "(") */
	ST_ATOM,
	ST_QUOTED,
	ST_QUOTED_ESC,
	ST_LIT_LEN,    /* digits after "{" */
	ST_LIT_PLUS,   /* after "+": expect "}" */
	ST_LIT_CRLF,   /* after "}": expect CR or LF */
	ST_LIT_LF,     /* after CR: expect LF */
	ST_LIT_DATA,
	ST_LF          /* after CR at the end of the command: expect LF */
};

#define CASE(x) case x: return #x
const char *
ig_parse_result_str(enum ig_parse_result r)
{
	switch (r) {
	CASE(IG_PARSE_AGAIN);
	CASE(IG_PARSE_OK);
	CASE(IG_PARSE_NEED_CONTINUATION);
	CASE(IG_PARSE_BAD);
	CASE(IG_PARSE_TOO_LONG);
	case IG_PARSE_RESULT_COUNT:
		break;
	}
	return "?";
}
#undef CASE

void
ig_imap_parser_init(struct ig_imap_parser *p, const struct ig_imap_limits *limits)
{
	memset(p, 0, sizeof(*p));
	p->limits = *limits;
	p->state = ST_TAG;
}

void
ig_imap_parser_reset(struct ig_imap_parser *p)
{
	struct ig_imap_limits l = p->limits;
	ig_imap_parser_init(p, &l);
}

/* ATOM-CHAR plus "]" (astrings), minus list wildcards and flags' "\". */
static bool
imap_is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '{': case '"': case '\\': case '%': case '*':
		return false;
	default:
		return true;
	}
}

static bool
imap_is_tag_char(uint8_t c)
{
	return imap_is_atom_char(c) && c != '+';
}

/* Records an error and starts skipping to the end of the line. */
static void
imap_fail(struct ig_imap_parser *p, enum ig_parse_result r, const char *why)
{
	if (p->skipping)
		return;
	p->skipping = true;
	p->err_result = r;
	p->error = why;
}

static void
imap_fill_spans(struct ig_imap_parser *p, const uint8_t *buf)
{
	struct ig_imap_cmd *c = &p->cmd;
	if (p->has_tag) {
		c->tag.p = buf;
		c->tag.len = p->tag_end;
	}
	if (p->name_end > p->name_start) {
		c->name.p = buf + p->name_start;
		c->name.len = p->name_end - p->name_start;
	}
	for (unsigned i = 0; i < c->nargs; i++)
		c->args[i].val.p = buf + p->arg_off[i];
}

/* Adds an argument that starts at off. Returns false when there are too many. */
static bool
imap_add_arg(struct ig_imap_parser *p, enum ig_imap_arg_type t, size_t off, size_t len)
{
	struct ig_imap_cmd *c = &p->cmd;
	if (c->nargs >= IG_IMAP_MAX_ARGS) {
		imap_fail(p, IG_PARSE_BAD, "Too many arguments");
		return false;
	}
	c->args[c->nargs].type = t;
	c->args[c->nargs].val.p = NULL;
	c->args[c->nargs].val.len = len;
	p->arg_off[c->nargs] = off;
	c->nargs++;
	return true;
}

static void
imap_end_atom(struct ig_imap_parser *p, const uint8_t *buf)
{
	size_t len = p->pos - p->tok_start;
	bool nil = len == 3 && (buf[p->tok_start] | 0x20) == 'n' &&
	    (buf[p->tok_start + 1] | 0x20) == 'i' && (buf[p->tok_start + 2] | 0x20) == 'l';
	imap_add_arg(p, nil ? IG_ARG_NIL : IG_ARG_ATOM, p->tok_start, len);
}

/*
 * The end of the command line (LF seen at p->pos). Returns OK, or BAD for
 * unbalanced parentheses.
 */
static enum ig_parse_result
imap_line_end(struct ig_imap_parser *p, const uint8_t *buf, size_t *consumed)
{
	p->pos++;
	*consumed = p->pos;
	if (p->depth != 0) {
		p->error = "Unbalanced parentheses";
		imap_fill_spans(p, buf);
		return IG_PARSE_BAD;
	}
	imap_fill_spans(p, buf);
	return IG_PARSE_OK;
}

enum ig_parse_result
ig_imap_parse(struct ig_imap_parser *p, const uint8_t *buf, size_t len, size_t *consumed)
{
	const struct ig_imap_limits *lim = &p->limits;
	*consumed = 0;
	while (p->pos < len) {
		if (p->skipping) {
			const uint8_t *lf = memchr(buf + p->pos, '\n', len - p->pos);
			if (lf == NULL) {
				p->pos = len;
				if (p->pos - p->line_start > lim->max_line) {
					p->error = "Line too long";
					imap_fill_spans(p, buf);
					return IG_PARSE_TOO_LONG; /* *consumed 0: fatal */
				}
				return IG_PARSE_AGAIN;
			}
			p->pos = (size_t)(lf - buf) + 1;
			*consumed = p->pos;
			imap_fill_spans(p, buf);
			return p->err_result;
		}
		if (p->state == ST_LIT_DATA) {
			size_t n = len - p->pos;
			if (n > p->lit_remaining)
				n = p->lit_remaining;
			p->pos += n;
			p->lit_remaining -= n;
			if (p->lit_remaining > 0)
				return IG_PARSE_AGAIN;
			/* A literal's data does not count towards the line. */
			p->line_start = p->pos;
			p->state = ST_AFTER;
			continue;
		}
		uint8_t ch = buf[p->pos];
		if (p->pos - p->line_start >= lim->max_line) {
			imap_fail(p, IG_PARSE_TOO_LONG, "Line too long");
			continue;
		}
		if (p->pos >= lim->max_command) {
			imap_fail(p, IG_PARSE_TOO_LONG, "Command too long");
			continue;
		}
		switch (p->state) {
		case ST_TAG:
			if (imap_is_tag_char(ch)) {
				if (p->pos >= lim->max_tag) {
					imap_fail(p, IG_PARSE_TOO_LONG, "Tag too long");
					continue;
				}
				break;
			}
			if (ch == ' ' && p->pos > 0) {
				p->tag_end = p->pos;
				p->has_tag = true;
				p->name_start = p->pos + 1;
				p->state = ST_NAME;
				break;
			}
			if (p->pos > 0 && !(ch == '\r' || ch == '\n')) {
				p->tag_end = p->pos;
				p->has_tag = false;
			}
			imap_fail(p, IG_PARSE_BAD, p->pos == 0 ? "Missing tag" : "Invalid tag");
			if (ch == '\n')
				continue; /* the skip loop consumes it */
			continue;
		case ST_NAME:
			if (imap_is_atom_char(ch) && ch != ']' && ch != '[') {
				break;
			}
			if (p->pos == p->name_start) {
				imap_fail(p, IG_PARSE_BAD, "Missing command name");
				continue;
			}
			/* The delimiter after the name is examined in ST_AFTER. */
			p->name_end = p->pos;
			p->state = ST_AFTER;
			continue;
		case ST_AFTER:
			if (ch == ' ') {
				p->state = ST_ARG;
				break;
			}
			if (ch == ')') {
				if (p->depth == 0) {
					imap_fail(p, IG_PARSE_BAD, "Unbalanced parentheses");
					continue;
				}
				p->depth--;
				if (!imap_add_arg(p, IG_ARG_LIST_END, p->pos, 1))
					continue;
				break;
			}
			if (ch == '\r') {
				p->state = ST_LF;
				break;
			}
			if (ch == '\n')
				return imap_line_end(p, buf, consumed);
			imap_fail(p, IG_PARSE_BAD, "Expected a space between arguments");
			continue;
		case ST_ARG:
			if (ch == '"') {
				p->tok_start = p->pos + 1;
				p->state = ST_QUOTED;
			} else if (ch == '{') {
				p->tok_start = p->pos;
				p->lit_len = 0;
				p->lit_plus_cur = false;
				p->state = ST_LIT_LEN;
			} else if (ch == '(') {
				if (p->depth >= 8) {
					imap_fail(p, IG_PARSE_BAD, "Lists nested too deeply");
					continue;
				}
				p->depth++;
				if (!imap_add_arg(p, IG_ARG_LIST_BEGIN, p->pos, 1))
					continue;
				p->state = ST_ARG;
			} else if (ch == ')' && p->cmd.nargs > 0 &&
			    p->cmd.args[p->cmd.nargs - 1].type == IG_ARG_LIST_BEGIN &&
			    p->arg_off[p->cmd.nargs - 1] == p->pos - 1) {
				/* "()" */
				p->depth--;
				if (!imap_add_arg(p, IG_ARG_LIST_END, p->pos, 1))
					continue;
				p->state = ST_AFTER;
			} else if (imap_is_atom_char(ch)) {
				p->tok_start = p->pos;
				p->state = ST_ATOM;
			} else if ((ch == '\r' || ch == '\n') && buf[p->pos - 1] == ' ') {
				/*
				 * One trailing SP before the line end: Debian's mutt
				 * sends "AUTHENTICATE CRAM-MD5 \r\n" for an empty
				 * initial response and Dovecot accepts it.
				 */
				if (ch == '\n')
					return imap_line_end(p, buf, consumed);
				p->state = ST_LF;
			} else {
				imap_fail(p, IG_PARSE_BAD, ch == ' ' ? "Unexpected space" :
				    "Invalid character in argument");
				continue;
			}
			break;
		case ST_ATOM:
			if (imap_is_atom_char(ch))
				break;
			imap_end_atom(p, buf);
			if (p->skipping)
				continue;
			p->state = ST_AFTER;
			continue; /* the delimiter is examined in ST_AFTER */
		case ST_QUOTED:
			if (ch == '"') {
				imap_add_arg(p, IG_ARG_QUOTED, p->tok_start, p->pos - p->tok_start);
				if (p->skipping)
					continue;
				p->state = ST_AFTER;
			} else if (ch == '\\') {
				p->state = ST_QUOTED_ESC;
			} else if (ch == '\r' || ch == '\n' || ch == '\0') {
				imap_fail(p, IG_PARSE_BAD, "Invalid character in quoted string");
				continue;
			}
			break;
		case ST_QUOTED_ESC:
			if (ch != '"' && ch != '\\') {
				imap_fail(p, IG_PARSE_BAD, "Invalid escape in quoted string");
				continue;
			}
			p->state = ST_QUOTED;
			break;
		case ST_LIT_LEN:
			if (ch >= '0' && ch <= '9') {
				size_t d = (size_t)(ch - '0');
				if (p->lit_len > (lim->max_literal - d) / 10 ||
				    p->lit_len * 10 + d > lim->max_literal) {
					/* Keep reading the header to learn {n} or {n+}. */
					p->lit_len = lim->max_literal + 1;
				} else {
					p->lit_len = p->lit_len * 10 + d;
				}
				break;
			}
			if (p->pos == p->tok_start + 1) {
				imap_fail(p, IG_PARSE_BAD, "Invalid literal");
				continue;
			}
			if (ch == '+') {
				p->lit_plus_cur = true;
				p->state = ST_LIT_PLUS;
				break;
			}
			if (ch == '}') {
				p->state = ST_LIT_CRLF;
				break;
			}
			imap_fail(p, IG_PARSE_BAD, "Invalid literal");
			continue;
		case ST_LIT_PLUS:
			if (ch != '}') {
				imap_fail(p, IG_PARSE_BAD, "Invalid literal");
				continue;
			}
			p->state = ST_LIT_CRLF;
			break;
		case ST_LIT_CRLF:
		case ST_LIT_LF:
			if (ch == '\r' && p->state == ST_LIT_CRLF) {
				p->state = ST_LIT_LF;
				break;
			}
			if (ch != '\n') {
				imap_fail(p, IG_PARSE_BAD, "Literal must end the line");
				continue;
			}
			/* The literal header is complete. */
			if (p->lit_len > lim->max_literal ||
			    p->pos + 1 + p->lit_len > lim->max_command) {
				p->literal_plus = p->lit_plus_cur;
				imap_fail(p, IG_PARSE_TOO_LONG, "Literal too large");
				continue; /* the skip loop ends at this LF */
			}
			p->pos++;
			p->literal_seen = true;
			if (!imap_add_arg(p, IG_ARG_LITERAL, p->pos, p->lit_len)) {
				/* Its data follows and cannot be told from commands. */
				p->error = "Too many arguments";
				imap_fill_spans(p, buf);
				*consumed = 0;
				return IG_PARSE_BAD;
			}
			p->lit_remaining = p->lit_len;
			p->line_start = p->pos;
			p->state = ST_LIT_DATA;
			if (!p->lit_plus_cur)
				return IG_PARSE_NEED_CONTINUATION;
			continue;
		case ST_LF:
			if (ch != '\n') {
				imap_fail(p, IG_PARSE_BAD, "Expected LF after CR");
				continue;
			}
			return imap_line_end(p, buf, consumed);
		}
		p->pos++;
	}
	return IG_PARSE_AGAIN;
}

enum ig_parse_result
ig_imap_parse_line(const uint8_t *buf, size_t len, size_t max_line, struct ig_span *line,
    size_t *consumed)
{
	size_t scan = len < max_line ? len : max_line;
	const uint8_t *lf = memchr(buf, '\n', scan);
	*consumed = 0;
	if (lf == NULL)
		return len >= max_line ? IG_PARSE_TOO_LONG : IG_PARSE_AGAIN;
	size_t n = (size_t)(lf - buf);
	*consumed = n + 1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	line->p = buf;
	line->len = n;
	return IG_PARSE_OK;
}

/* Keeps the last sizeof(sc->tail) bytes of the current line. */
static void
resp_tail_push(struct ig_imap_resp_scan *sc, const uint8_t *p, size_t n)
{
	size_t cap = sizeof(sc->tail);
	if (n >= cap) {
		memcpy(sc->tail, p + n - cap, cap);
		sc->tail_len = (uint8_t)cap;
		return;
	}
	size_t keep = sc->tail_len;
	if (keep + n > cap) {
		memmove(sc->tail, sc->tail + (keep + n - cap), cap - n);
		keep = cap - n;
	}
	memcpy(sc->tail + keep, p, n);
	sc->tail_len = (uint8_t)(keep + n);
}

/*
 * The line that just ended (its last bytes in sc->tail, LF excluded):
 * 1 and *n when it announces a literal ("{n}" or "{n+}" at its end, CR
 * optional), 0 when not, -1 when the size does not fit 64 bits.
 */
static int
resp_tail_literal(const struct ig_imap_resp_scan *sc, uint64_t *n)
{
	size_t i = sc->tail_len;
	if (i > 0 && sc->tail[i - 1] == '\r')
		i--;
	if (i == 0 || sc->tail[i - 1] != '}')
		return 0;
	i--;
	if (i > 0 && sc->tail[i - 1] == '+')
		i--;
	size_t end = i;
	while (i > 0 && sc->tail[i - 1] >= '0' && sc->tail[i - 1] <= '9')
		i--;
	if (i == end)
		return 0;
	if (i == 0 || sc->tail[i - 1] != '{')
		return i == 0 && sc->tail_len == sizeof(sc->tail) ? -1 : 0;
	uint64_t v = 0;
	for (size_t k = i; k < end; k++) {
		unsigned d = (unsigned)(sc->tail[k] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*n = v;
	return 1;
}

/* The first bytes of a line that begins a response. */
static void
resp_head_push(struct ig_imap_resp_scan *sc, const uint8_t *p, size_t n)
{
	if (!sc->line_first)
		return;
	size_t room = sizeof(sc->head) - sc->head_len;
	size_t k = n < room ? n : room;
	memcpy(sc->head + sc->head_len, p, k);
	sc->head_len = (uint8_t)(sc->head_len + k);
}

/* The line that just ended began "* BYE", then a space, CR or nothing. */
static bool
resp_head_is_bye(const struct ig_imap_resp_scan *sc)
{
	const uint8_t *h = sc->head;
	if (sc->head_len < 5 || h[0] != '*' || h[1] != ' ' ||
	    (h[2] | 0x20) != 'b' || (h[3] | 0x20) != 'y' || (h[4] | 0x20) != 'e')
		return false;
	return sc->head_len == 5 || h[5] == ' ' || h[5] == '\r';
}

void
ig_imap_resp_scan(struct ig_imap_resp_scan *sc, const uint8_t *p, size_t len)
{
	while (len > 0 && !sc->lost) {
		if (sc->literal_left > 0) {
			size_t n = sc->literal_left < len ? (size_t)sc->literal_left : len;
			sc->literal_left -= n;
			p += n;
			len -= n;
			continue;
		}
		const uint8_t *lf = memchr(p, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - p) : len;
		if (!sc->mid_line) {
			sc->line_first = true;
			sc->head_len = 0;
		}
		resp_head_push(sc, p, n);
		resp_tail_push(sc, p, n);
		if (lf == NULL) {
			sc->mid_line = true;
			return;
		}
		if (sc->line_first && resp_head_is_bye(sc))
			sc->bye = true;
		sc->line_first = false;
		uint64_t lit = 0;
		int r = resp_tail_literal(sc, &lit);
		sc->tail_len = 0;
		p += n + 1;
		len -= n + 1;
		/* After literal data the same response goes on. */
		sc->mid_line = r != 0;
		sc->literal_left = lit;
		sc->lost = r < 0;
	}
}

bool
ig_imap_resp_at_boundary(const struct ig_imap_resp_scan *sc)
{
	return !sc->lost && !sc->mid_line && sc->literal_left == 0;
}

bool
ig_imap_resp_bye(const struct ig_imap_resp_scan *sc)
{
	return sc->bye;
}

long
ig_imap_unquote(const struct ig_imap_arg *arg, uint8_t *out, size_t outsz)
{
	const uint8_t *in = arg->val.p;
	size_t o = 0;
	for (size_t i = 0; i < arg->val.len; i++) {
		uint8_t c = in[i];
		if (arg->type == IG_ARG_QUOTED && c == '\\' && i + 1 < arg->val.len)
			c = in[++i];
		if (o == outsz)
			return IG_ETOOLONG;
		out[o++] = c;
	}
	return (long)o;
}

bool
ig_imap_arg_is_astring(const struct ig_imap_arg *arg)
{
	switch (arg->type) {
	case IG_ARG_ATOM:
	case IG_ARG_QUOTED:
	case IG_ARG_LITERAL:
	case IG_ARG_NIL:
		return true;
	case IG_ARG_LIST_BEGIN:
	case IG_ARG_LIST_END:
	case IG_ARG_TYPE_COUNT:
		break;
	}
	return false;
}

void
ig_imap_tag_copy(const struct ig_imap_cmd *c, char *out, size_t outsz)
{
	size_t n = c->tag.len < outsz - 1 ? c->tag.len : outsz - 1;
	memcpy(out, c->tag.p, n);
	out[n] = '\0';
}
