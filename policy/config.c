/*
 * The configuration loader: YAML text -> one immutable struct ig_config.
 *
 * Two passes over the input, one over the schema:
 *  1. libyaml's event parser builds a small tree of nodes that keep their
 *     yaml_mark_t (config_tree_build). Aliases are refused here, at their
 *     location, and nesting is bounded so hostile input cannot blow the stack.
 *  2. config_walk_map() walks that tree against static tables (struct
 *     section of struct field, after nginx's ngx_command_t): each key has a type, an
 *     offset into the struct it fills, a required flag, bounds and an
 *     optional validate_fn; each section has an optional check_fn for
 *     cross-field rules. Defaults and freeing are driven by the same tables,
 *     so a new key is one table row (plus a struct field).
 *
 * Every problem is printed as "FILE:LINE:COL: message" (1-based; libyaml's
 * marks are 0-based), all of them, and the load then fails as a whole.
 * Warnings ("FILE:LINE:COL: warning: message") do not fail the load.
 */
#include "policy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "proxy/err.h"

#define CFG_DEPTH_MAX 32          /* nesting levels in the YAML tree */
#define CFG_ERRORS_SHOWN 100      /* then "N more errors" */
#define CFG_FILE_MAX (16u << 20)  /* largest config file read */
#define CFG_PATH_MAX 4096         /* file names in the config */
#define CFG_KEYPATH_MAX 256       /* "listeners[3].max_sessions" */
#define CFG_SHOW_MAX 72           /* escaped user text in messages */
#define KIB 1024u
#define MIB (1024u * 1024u)
#define SEC 1000u
#define MIN (60u * SEC)
#define HOUR (60u * MIN)

_Static_assert(sizeof(enum ig_tls_mode) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ig_log_level) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ig_forward_addr) == sizeof(int), "enums are stored as int");

/* ---------------------------------------------------------------------- */
/* The YAML tree */

enum cnode_kind {
	CN_SCALAR,
	CN_SEQ,
	CN_MAP,   /* items: key, value, key, value... */
	CN_BAD,   /* stands for a refused alias: already reported, skipped */
};

struct cnode {
	enum cnode_kind kind;
	yaml_mark_t mark;     /* where the node starts */
	char *str;            /* CN_SCALAR: value, NUL-terminated (may hold NULs) */
	size_t len;
	bool plain;           /* CN_SCALAR: unquoted (for null detection) */
	struct cnode **items; /* CN_SEQ, CN_MAP */
	size_t n, cap;
};

/* One message, kept until the end so that all are printed in file order. */
struct cfgmsg {
	size_t line, column; /* 0-based, from yaml_mark_t */
	size_t seq;          /* order of discovery, for a stable sort */
	char *text;          /* "FILE:L:C: ..." without the newline */
};

struct cfgctx {
	const char *name;     /* file name shown in messages */
	FILE *errf;
	unsigned flags;       /* IG_CF_* */
	unsigned nerr;
	unsigned nwarn;
	bool nomem;
	yaml_mark_t end_mark; /* end of the stream, for "empty" */
	struct cfgmsg *msgs;
	size_t nmsgs, capmsgs;
};

static void
config_nomem(struct cfgctx *c)
{
	if (!c->nomem)
		fprintf(c->errf, "%s: out of memory\n", c->name);
	c->nomem = true;
}

static void config_report(struct cfgctx *c, bool warning, yaml_mark_t m, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
config_report(struct cfgctx *c, bool warning, yaml_mark_t m, const char *fmt, ...)
{
	char text[1024];
	if (warning)
		c->nwarn++;
	else
		c->nerr++;
	if (c->nmsgs >= CFG_ERRORS_SHOWN)
		return;
	int n = snprintf(text, sizeof(text), "%s:%zu:%zu: %s", c->name, m.line + 1,
	    m.column + 1, warning ? "warning: " : "");
	if (n < 0)
		return;
	if ((size_t)n < sizeof(text)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (c->nmsgs == c->capmsgs) {
		size_t cap = c->capmsgs ? c->capmsgs * 2 : 16;
		struct cfgmsg *msgs = realloc(c->msgs, cap * sizeof(*msgs));
		if (msgs == NULL) {
			config_nomem(c);
			return;
		}
		c->msgs = msgs;
		c->capmsgs = cap;
	}
	char *dup = strdup(text);
	if (dup == NULL) {
		config_nomem(c);
		return;
	}
	c->msgs[c->nmsgs] = (struct cfgmsg){ m.line, m.column, c->nmsgs, dup };
	c->nmsgs++;
}

#define config_error(c, m, ...) config_report((c), false, (m), __VA_ARGS__)
#define config_warn(c, m, ...) config_report((c), true, (m), __VA_ARGS__)

static int
config_msg_cmp(const void *a, const void *b)
{
	const struct cfgmsg *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Prints every message in file order, then frees them. */
static void
config_flush(struct cfgctx *c)
{
	if (c->nmsgs > 0)
		qsort(c->msgs, c->nmsgs, sizeof(*c->msgs), config_msg_cmp);
	for (size_t i = 0; i < c->nmsgs; i++) {
		fprintf(c->errf, "%s\n", c->msgs[i].text);
		free(c->msgs[i].text);
	}
	if (c->nerr + c->nwarn > c->nmsgs)
		fprintf(c->errf, "%s: %zu more errors or warnings not shown\n", c->name,
		    (size_t)(c->nerr + c->nwarn) - c->nmsgs);
	free(c->msgs);
	c->msgs = NULL;
	c->nmsgs = c->capmsgs = 0;
}

/* User text, escaped and shortened for a message. */
static const char *
config_show(const char *s, size_t len, char buf[static CFG_SHOW_MAX])
{
	return ig_log_escape((const uint8_t *)s, len, buf, CFG_SHOW_MAX);
}

static void
config_tree_free(struct cnode *n)
{
	/* Depth is bounded by CFG_DEPTH_MAX, so recursion is fine. */
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++)
		config_tree_free(n->items[i]);
	free(n->items);
	free(n->str);
	free(n);
}

static struct cnode *
config_node_new(enum cnode_kind kind, yaml_mark_t mark)
{
	struct cnode *n = calloc(1, sizeof(*n));
	if (n != NULL) {
		n->kind = kind;
		n->mark = mark;
	}
	return n;
}

/* Appends n to parent (or makes it the root). Takes n in all cases. */
static int
config_node_attach(struct cnode *parent, struct cnode **root, struct cnode *n)
{
	if (parent == NULL) {
		if (*root != NULL) { /* cannot happen: one document only */
			config_tree_free(n);
			return IG_EINVAL;
		}
		*root = n;
		return 0;
	}
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct cnode **items = realloc(parent->items, cap * sizeof(*items));
		if (items == NULL) {
			config_tree_free(n);
			return IG_ENOMEM;
		}
		parent->items = items;
		parent->cap = cap;
	}
	parent->items[parent->n++] = n;
	return 0;
}

static void
config_report_parser_error(struct cfgctx *c, const yaml_parser_t *p, const unsigned char *buf,
    size_t len)
{
	yaml_mark_t m = p->problem_mark;
	const char *problem = p->problem ? p->problem : "syntax error";
	if (p->error == YAML_MEMORY_ERROR) {
		config_nomem(c);
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		/* The reader has no mark: derive one from the byte offset. */
		memset(&m, 0, sizeof(m));
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (buf[i] == '\n') {
				m.line++;
				m.column = 0;
			} else {
				m.column++;
			}
		}
		config_error(c, m, "%s (byte offset %zu)", problem, p->problem_offset);
		return;
	}
	if (p->context != NULL)
		config_error(c, m, "%s (%s at %zu:%zu)", problem, p->context,
		    p->context_mark.line + 1, p->context_mark.column + 1);
	else
		config_error(c, m, "%s", problem);
}

/*
 * Parses the whole stream into *root (NULL for an empty stream). Returns 0
 * when a tree was built (possibly with reported errors such as aliases),
 * IG_ECONFIG after a syntax error (nothing to walk), IG_ENOMEM.
 */
static int
config_tree_build(struct cfgctx *c, const unsigned char *buf, size_t len, struct cnode **root)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct cnode *stack[CFG_DEPTH_MAX];
	size_t depth = 0;
	unsigned ndocs = 0;
	int rc = 0;
	bool done = false;

	*root = NULL;
	if (!yaml_parser_initialize(&p)) {
		config_nomem(c);
		return IG_ENOMEM;
	}
	yaml_parser_set_input_string(&p, buf, len);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			config_report_parser_error(c, &p, buf, len);
			rc = c->nomem ? IG_ENOMEM : IG_ECONFIG;
			break;
		}
		struct cnode *n = NULL;
		struct cnode *parent = depth ? stack[depth - 1] : NULL;
		switch (ev.type) {
		case YAML_NO_EVENT:
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			c->end_mark = ev.start_mark;
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (ndocs++ > 0) {
				config_error(c, ev.start_mark,
				    "only one YAML document is allowed in a configuration file");
				done = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			/* Refused: they serve no purpose in this schema, and the
			 * "billion laughs" expansion is a denial of service. */
			config_error(c, ev.start_mark, "aliases are not supported (*%s)",
			    (const char *)ev.data.alias.anchor);
			n = config_node_new(CN_BAD, ev.start_mark);
			break;
		case YAML_SCALAR_EVENT:
			n = config_node_new(CN_SCALAR, ev.start_mark);
			if (n == NULL)
				break;
			n->str = malloc(ev.data.scalar.length + 1);
			if (n->str == NULL) {
				free(n);
				n = NULL;
				break;
			}
			memcpy(n->str, ev.data.scalar.value, ev.data.scalar.length);
			n->str[ev.data.scalar.length] = '\0';
			n->len = ev.data.scalar.length;
			n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == CFG_DEPTH_MAX) {
				config_error(c, ev.start_mark, "nesting deeper than %d levels",
				    CFG_DEPTH_MAX);
				rc = IG_ECONFIG;
				done = true;
				break;
			}
			n = config_node_new(ev.type == YAML_SEQUENCE_START_EVENT ? CN_SEQ : CN_MAP,
			    ev.start_mark);
			if (n == NULL)
				break;
			if (config_node_attach(parent, root, n) != 0) {
				n = NULL;
				break;
			}
			stack[depth++] = n;
			yaml_event_delete(&ev);
			continue;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		}
		bool want_node = ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
		    ((ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) &&
		    !done);
		yaml_event_delete(&ev);
		if (want_node) {
			if (n == NULL || config_node_attach(parent, root, n) != 0) {
				config_nomem(c);
				rc = IG_ENOMEM;
				break;
			}
		}
	}
	yaml_parser_delete(&p);
	if (rc != 0) {
		config_tree_free(*root);
		*root = NULL;
	}
	return rc;
}

static bool
config_node_is_null(const struct cnode *n)
{
	return n->kind == CN_SCALAR && n->plain &&
	    (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
	    strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
}

/* The value of key in map, or NULL. */
static const struct cnode *
config_map_get(const struct cnode *map, const char *key)
{
	if (map == NULL || map->kind != CN_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct cnode *k = map->items[i];
		if (k->kind == CN_SCALAR && strlen(key) == k->len && memcmp(k->str, key, k->len) == 0)
			return map->items[i + 1];
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Scalar parsers */

/* Decimal digits only (no sign, no YAML 1.1 0x/0o/_ forms). */
static int
config_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return IG_EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return IG_EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return IG_EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
ig_parse_duration_ms(const char *s, unsigned *out_ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ "", SEC }, { "ms", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR },
	};
	if (s == NULL)
		return IG_EINVAL;
	size_t digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 20)
		return IG_EINVAL;
	char num[21];
	memcpy(num, s, digits);
	num[digits] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + digits, units[i].suffix) != 0)
			continue;
		uint64_t v;
		if (config_parse_u64(num, UINT_MAX, &v) != 0 || v > UINT_MAX / units[i].ms)
			return IG_EINVAL;
		*out_ms = (unsigned)(v * units[i].ms);
		return 0;
	}
	return IG_EINVAL;
}

static int
config_parse_port(const char *s, uint16_t *port, const char **why)
{
	uint64_t v;
	if (*s == '\0') {
		*why = "missing port";
		return IG_EINVAL;
	}
	if (strlen(s) > 5 || config_parse_u64(s, 99999, &v) != 0) {
		*why = "the port must be a number between 1 and 65535";
		return IG_EINVAL;
	}
	if (v < 1 || v > 65535) {
		*why = "the port must be between 1 and 65535";
		return IG_EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

static bool
config_looks_like_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))
			return true;
	return false;
}

static void
config_set_inet(struct sockaddr_storage *ss, socklen_t *len, int af, const void *a, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a, sizeof(sin->sin_addr));
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a, sizeof(sin6->sin6_addr));
		*len = sizeof(*sin6);
	}
}

/*
 * Splits "host:port" or "[v6]:port" into host (without brackets) and port.
 * *bracketed tells which form was used. Returns 0, or IG_EINVAL with *why.
 */
static int
config_split_host_port(const char *s, char *host, size_t hostsz, uint16_t *port, bool *bracketed,
    const char **why)
{
	const char *h, *p;
	size_t hlen;
	static const char too_long[] = "the host part is too long";
	*bracketed = s[0] == '[';
	if (*bracketed) {
		const char *end = strchr(s, ']');
		if (end == NULL) {
			*why = "missing ']' after the IPv6 address";
			return IG_EINVAL;
		}
		h = s + 1;
		hlen = (size_t)(end - h);
		if (end[1] != ':') {
			*why = end[1] == '\0' ? "missing port" : "expected ':' and a port after ']'";
			return IG_EINVAL;
		}
		p = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL) {
			*why = "missing port";
			return IG_EINVAL;
		}
		h = s;
		hlen = (size_t)(colon - s);
		if (memchr(h, ':', hlen) != NULL) {
			*why = "IPv6 addresses must be in brackets, e.g. [::1]:993";
			return IG_EINVAL;
		}
		p = colon + 1;
	}
	if (hlen == 0) {
		*why = "missing address before the port";
		return IG_EINVAL;
	}
	if (hlen >= hostsz) {
		*why = too_long;
		return IG_EINVAL;
	}
	if (config_parse_port(p, port, why) != 0)
		return IG_EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

/* ig_parse_listen_addr() with a reason on failure. */
static int
config_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	uint16_t port;
	bool br;
	unsigned char a[sizeof(struct in6_addr)];
	if (config_split_host_port(s, host, sizeof(host), &port, &br, why) != 0) {
		if (strstr(*why, "too long") != NULL) /* too long to be numeric */
			*why = config_looks_like_name(s, strlen(s)) ?
			    "host names are not allowed here, use a numeric address" :
			    "not a numeric IPv4 or IPv6 address";
		return IG_EINVAL;
	}
	if (br) {
		if (inet_pton(AF_INET6, host, a) != 1) {
			*why = "not a numeric IPv6 address";
			return IG_EINVAL;
		}
		config_set_inet(ss, len, AF_INET6, a, port);
		return 0;
	}
	if (inet_pton(AF_INET, host, a) != 1) {
		*why = config_looks_like_name(host, strlen(host)) ?
		    "host names are not allowed here, use a numeric address" :
		    "not a numeric IPv4 address";
		return IG_EINVAL;
	}
	config_set_inet(ss, len, AF_INET, a, port);
	return 0;
}

int
ig_parse_listen_addr(const char *s, struct sockaddr_storage *addr, socklen_t *len)
{
	const char *why;
	if (s == NULL)
		return IG_EINVAL;
	return config_listen_parse(s, addr, len, &why);
}

/* RFC 1123 host name: labels of letters, digits, '-' (and '_', seen on
 * internal names), not all-numeric at the end (that would be an address). */
static bool
config_valid_hostname(const char *h)
{
	size_t len = strlen(h), label = 0;
	bool alpha_in_last = false;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = h[i];
		if (ch == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			if (i + 1 < len)
				alpha_in_last = false;
			label = 0;
			continue;
		}
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		if (!alpha && !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_')
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
		if (alpha || ch == '-' || ch == '_')
			alpha_in_last = true;
	}
	return h[len - 1] != '-' && alpha_in_last;
}

static bool
config_addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	return false;
}

static bool
config_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port &&
	    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* ---------------------------------------------------------------------- */
/* The schema */

enum ftype {
	FT_STR,      /* char * (malloc'd), NULL when absent */
	FT_STRBUF,   /* char[size] */
	FT_UINT,     /* unsigned, in [min, max] */
	FT_SIZE,     /* size_t, in [min, max] */
	FT_BOOL,     /* bool: true/false */
	FT_DURATION, /* unsigned milliseconds, in [min, max] */
	FT_ENUM,     /* int, from names[] */
	FT_SECTION,  /* a mapping walked with sub, into the struct at off */
	FT_LIST,     /* a sequence of mappings: pointer at off, count at count_off */
};

struct field;
struct section;

/* Called after a value was converted and stored; reports its own errors. */
typedef void (*validate_fn)(struct cfgctx *c, const struct field *f, const struct cnode *val,
    void *base, const char *path);
/* Called after all keys of a section (or all elements of a list) were
 * walked, for rules across keys. node is the mapping (or the sequence). */
typedef void (*check_fn)(struct cfgctx *c, const struct cnode *node, void *base,
    const char *path);

struct enum_name {
	const char *name;
	int value;
};

struct field {
	const char *key;
	enum ftype type;
	size_t off;                    /* into the section's struct */
	bool required;
	validate_fn validate;          /* optional */
	uint64_t def;                  /* default for numbers, bools, enums */
	uint64_t min, max;             /* bounds for numbers and durations;
	                                  entries for lists */
	size_t size;                   /* FT_STRBUF capacity (NUL included) */
	const struct enum_name *names; /* FT_ENUM, NULL-terminated */
	const struct section *sub;     /* FT_SECTION, FT_LIST element */
	size_t count_off;              /* FT_LIST: size_t count in base */
	size_t elem_size;              /* FT_LIST */
	check_fn list_check;           /* FT_LIST: after every element */
};

struct section {
	const struct field *fields;
	size_t nfields;
	check_fn check;                /* optional */
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static void *
config_at(void *base, size_t off)
{
	return (char *)base + off;
}

static char *
config_get_str(void *base, size_t off)
{
	char *s;
	memcpy(&s, config_at(base, off), sizeof(s)); /* also for "const char *" fields */
	return s;
}

static void
config_set_str(void *base, size_t off, char *s)
{
	memcpy(config_at(base, off), &s, sizeof(s));
}

static void
config_set_int(void *base, size_t off, int v)
{
	memcpy(config_at(base, off), &v, sizeof(v));
}

static void
config_apply_defaults(const struct section *sec, void *base)
{
	for (size_t i = 0; i < sec->nfields; i++) {
		const struct field *f = &sec->fields[i];
		void *p = config_at(base, f->off);
		switch (f->type) {
		case FT_UINT:
		case FT_DURATION:
			*(unsigned *)p = (unsigned)f->def;
			break;
		case FT_SIZE:
			*(size_t *)p = (size_t)f->def;
			break;
		case FT_BOOL:
			*(bool *)p = f->def != 0;
			break;
		case FT_ENUM:
			config_set_int(base, f->off, (int)f->def);
			break;
		case FT_SECTION:
			config_apply_defaults(f->sub, p);
			break;
		case FT_STR:
		case FT_STRBUF:
		case FT_LIST:
			break; /* zeroed by calloc */
		}
	}
}

static void
config_free_section(const struct section *sec, void *base)
{
	for (size_t i = 0; i < sec->nfields; i++) {
		const struct field *f = &sec->fields[i];
		switch (f->type) {
		case FT_STR:
			free(config_get_str(base, f->off));
			config_set_str(base, f->off, NULL);
			break;
		case FT_SECTION:
			config_free_section(f->sub, config_at(base, f->off));
			break;
		case FT_LIST: {
			char *arr = config_get_str(base, f->off);
			size_t n = *(size_t *)config_at(base, f->count_off);
			for (size_t j = 0; arr != NULL && j < n; j++)
				config_free_section(f->sub, arr + j * f->elem_size);
			free(arr);
			config_set_str(base, f->off, NULL);
			*(size_t *)config_at(base, f->count_off) = 0;
			break;
		}
		case FT_STRBUF:
		case FT_UINT:
		case FT_SIZE:
		case FT_BOOL:
		case FT_DURATION:
		case FT_ENUM:
			break;
		}
	}
}

/* Bounded edit distance for "did you mean". */
static size_t
config_edit_distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b);
	size_t row[CFG_KEYPATH_MAX];
	if (la >= CFG_KEYPATH_MAX || lb >= CFG_KEYPATH_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static const char *
config_suggest(const struct section *sec, const struct cnode *key)
{
	const char *best = NULL;
	size_t bestd = 3; /* at most two edits */
	for (size_t i = 0; i < sec->nfields; i++) {
		size_t d = config_edit_distance(key->str, key->len, sec->fields[i].key);
		if (d < bestd) {
			bestd = d;
			best = sec->fields[i].key;
		}
	}
	return best;
}

static void
config_join_path(char *out, const char *path, const char *key)
{
	snprintf(out, CFG_KEYPATH_MAX, "%s%s%s", path, *path ? "." : "", key);
}

static const char *
config_kind_str(const struct cnode *n)
{
	switch (n->kind) {
	case CN_SCALAR: return config_node_is_null(n) ? "nothing" : "a scalar";
	case CN_SEQ: return "a sequence";
	case CN_MAP: return "a mapping";
	case CN_BAD: return "an alias";
	}
	return "?";
}

static const char *
config_enum_names(const struct enum_name *names, char *buf, size_t bufsz)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; names[i].name != NULL; i++) {
		int n = snprintf(buf + off, bufsz - off, "%s%s", i ? ", " : "", names[i].name);
		if (n < 0 || (size_t)n >= bufsz - off)
			break;
		off += (size_t)n;
	}
	return buf;
}

/* The largest unit that divides ms exactly: 600000 -> "10m". */
static const char *
config_fmt_duration(uint64_t ms, char *buf, size_t bufsz)
{
	if (ms != 0 && ms % HOUR == 0)
		snprintf(buf, bufsz, "%lluh", (unsigned long long)(ms / HOUR));
	else if (ms != 0 && ms % MIN == 0)
		snprintf(buf, bufsz, "%llum", (unsigned long long)(ms / MIN));
	else if (ms != 0 && ms % SEC == 0)
		snprintf(buf, bufsz, "%llus", (unsigned long long)(ms / SEC));
	else
		snprintf(buf, bufsz, "%llums", (unsigned long long)ms);
	return buf;
}

static void config_walk_map(struct cfgctx *c, const struct cnode *map, const struct section *sec,
    void *base, const char *path);

/* Stores one value; returns true when it was stored (then validate runs). */
static bool
config_store_value(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX];
	void *p = config_at(base, f->off);

	if (f->type == FT_SECTION) {
		if (config_node_is_null(v))
			return true; /* "limits:" alone: every default */
		if (v->kind != CN_MAP) {
			config_error(c, v->mark, "'%s' must be a mapping, not %s", path, config_kind_str(v));
			return false;
		}
		config_walk_map(c, v, f->sub, p, path);
		return true;
	}
	if (f->type == FT_LIST) {
		size_t n = v->kind == CN_SEQ ? v->n : 0;
		if (v->kind != CN_SEQ && !config_node_is_null(v)) {
			config_error(c, v->mark, "'%s' must be a sequence, not %s", path, config_kind_str(v));
			return false;
		}
		if (n < f->min || n > f->max) {
			if (f->min == 1 && n == 0)
				config_error(c, v->mark, "'%s' needs at least one entry", path);
			else
				config_error(c, v->mark, "'%s' must have between %llu and %llu entries",
				    path, (unsigned long long)f->min, (unsigned long long)f->max);
			return false;
		}
		if (n == 0)
			return true;
		char *arr = calloc(n, f->elem_size);
		if (arr == NULL) {
			config_nomem(c);
			return false;
		}
		config_set_str(base, f->off, arr);
		*(size_t *)config_at(base, f->count_off) = n;
		for (size_t i = 0; i < n; i++) {
			char epath[CFG_KEYPATH_MAX];
			const struct cnode *e = v->items[i];
			/* Schema paths are short: truncation would only cut a message. */
			if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
				epath[0] = '\0';
			config_apply_defaults(f->sub, arr + i * f->elem_size);
			if (e->kind == CN_BAD)
				continue;
			if (e->kind != CN_MAP) {
				config_error(c, e->mark, "'%s' must be a mapping, not %s", epath,
				    config_kind_str(e));
				continue;
			}
			config_walk_map(c, e, f->sub, arr + i * f->elem_size, epath);
		}
		if (f->list_check != NULL)
			f->list_check(c, v, base, path);
		return true;
	}

	/* Scalars from here on. */
	if (v->kind != CN_SCALAR) {
		config_error(c, v->mark, "'%s' must be a single value, not %s", path, config_kind_str(v));
		return false;
	}
	if (config_node_is_null(v)) {
		config_error(c, v->mark, "'%s' has no value", path);
		return false;
	}
	if (strlen(v->str) != v->len) {
		config_error(c, v->mark, "'%s' must not contain NUL bytes", path);
		return false;
	}
	const char *s = v->str;
	uint64_t u;
	unsigned ms;
	switch (f->type) {
	case FT_STR: {
		if (v->len == 0 || v->len >= CFG_PATH_MAX) {
			config_error(c, v->mark, "'%s' must be between 1 and %d characters", path,
			    CFG_PATH_MAX - 1);
			return false;
		}
		char *dup = strdup(s);
		if (dup == NULL) {
			config_nomem(c);
			return false;
		}
		free(config_get_str(base, f->off));
		config_set_str(base, f->off, dup);
		return true;
	}
	case FT_STRBUF:
		if (v->len == 0 || v->len >= f->size) {
			config_error(c, v->mark, "'%s' must be between 1 and %zu characters", path,
			    f->size - 1);
			return false;
		}
		memcpy(p, s, v->len + 1);
		return true;
	case FT_UINT:
	case FT_SIZE:
		if (config_parse_u64(s, UINT64_MAX, &u) != 0) {
			config_error(c, v->mark, "invalid value '%s' for '%s': expected a whole number",
			    config_show(s, v->len, sb), path);
			return false;
		}
		if (u < f->min || u > f->max) {
			config_error(c, v->mark, "'%s' must be between %llu and %llu (got %s)", path,
			    (unsigned long long)f->min, (unsigned long long)f->max, s);
			return false;
		}
		if (f->type == FT_UINT)
			*(unsigned *)p = (unsigned)u;
		else
			*(size_t *)p = (size_t)u;
		return true;
	case FT_DURATION:
		if (ig_parse_duration_ms(s, &ms) != 0) {
			config_error(c, v->mark,
			    "invalid duration '%s' for '%s': expected a number with ms, s, m or h",
			    config_show(s, v->len, sb), path);
			return false;
		}
		if (ms < f->min || ms > f->max) {
			char lo[24], hi[24];
			config_error(c, v->mark, "'%s' must be between %s and %s (got %s)", path,
			    config_fmt_duration(f->min, lo, sizeof(lo)), config_fmt_duration(f->max, hi, sizeof(hi)),
			    s);
			return false;
		}
		*(unsigned *)p = ms;
		return true;
	case FT_BOOL:
		/* YAML 1.2 core booleans only; "yes"/"on" are too easy to misread. */
		if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
			*(bool *)p = true;
			return true;
		}
		if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
			*(bool *)p = false;
			return true;
		}
		config_error(c, v->mark, "invalid value '%s' for '%s': expected true or false",
		    config_show(s, v->len, sb), path);
		return false;
	case FT_ENUM:
		for (size_t i = 0; f->names[i].name != NULL; i++) {
			if (strcmp(s, f->names[i].name) == 0) {
				config_set_int(base, f->off, f->names[i].value);
				return true;
			}
		}
		char names[256];
		config_error(c, v->mark, "invalid value '%s' for '%s': expected one of %s",
		    config_show(s, v->len, sb), path, config_enum_names(f->names, names, sizeof(names)));
		return false;
	case FT_SECTION:
	case FT_LIST:
		break; /* handled above */
	}
	return false;
}

/*
 * Walks one mapping against sec: every key must be known and appear once,
 * every required key must be present. Values go into base.
 */
static void
config_walk_map(struct cfgctx *c, const struct cnode *map, const struct section *sec, void *base,
    const char *path)
{
	const struct cnode *seen[64] = { NULL };
	char sb[CFG_SHOW_MAX];

	if (sec->nfields > NFIELDS(seen)) /* a table bug, not a user error */
		abort();
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct cnode *k = map->items[i], *v = map->items[i + 1];
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", config_kind_str(k));
			continue;
		}
		size_t fi;
		for (fi = 0; fi < sec->nfields; fi++)
			if (strlen(sec->fields[fi].key) == k->len &&
			    memcmp(sec->fields[fi].key, k->str, k->len) == 0)
				break;
		/* Duplicates first: libyaml accepts them and the last would win. */
		const struct cnode *first = NULL;
		if (fi < sec->nfields) {
			first = seen[fi];
		} else {
			for (size_t j = 0; j < i && first == NULL; j += 2) {
				const struct cnode *pk = map->items[j];
				if (pk->kind == CN_SCALAR && pk->len == k->len &&
				    memcmp(pk->str, k->str, k->len) == 0)
					first = pk;
			}
		}
		if (first != NULL) {
			config_error(c, k->mark, "duplicate key '%s'%s%s%s (first at %zu:%zu)",
			    config_show(k->str, k->len, sb), *path ? " in '" : "", path, *path ? "'" : "",
			    first->mark.line + 1, first->mark.column + 1);
			continue;
		}
		if (fi == sec->nfields) {
			const char *hint = config_suggest(sec, k);
			config_error(c, k->mark, "unknown key '%s'%s%s%s%s%s%s",
			    config_show(k->str, k->len, sb), *path ? " in '" : "", path, *path ? "'" : "",
			    hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
			continue;
		}
		seen[fi] = k;
		if (v->kind == CN_BAD)
			continue;
		const struct field *f = &sec->fields[fi];
		char kpath[CFG_KEYPATH_MAX];
		config_join_path(kpath, path, f->key);
		if (config_store_value(c, f, v, base, kpath) && f->validate != NULL)
			f->validate(c, f, v, base, kpath);
		if (c->nomem)
			return;
	}
	for (size_t fi = 0; fi < sec->nfields; fi++) {
		if (sec->fields[fi].required && seen[fi] == NULL) {
			if (*path)
				config_error(c, map->mark, "missing required key '%s' in '%s'",
				    sec->fields[fi].key, path);
			else
				config_error(c, map->mark, "missing required key '%s'",
				    sec->fields[fi].key);
		}
	}
	if (sec->check != NULL)
		sec->check(c, map, base, path);
}

/* ---------------------------------------------------------------------- */
/* Validators (run after a value was stored) and section checks */

/* A file given in the config must be a readable regular file now. */
static bool
config_check_file(struct cfgctx *c, const struct cnode *v, const char *path, struct stat *st)
{
	char sb[CFG_SHOW_MAX];
	/* stat first: opening a FIFO or a device could block or have effects. */
	if (stat(v->str, st) != 0) {
		config_error(c, v->mark, "cannot use '%s' for '%s': %s", config_show(v->str, v->len, sb),
		    path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st->st_mode)) {
		config_error(c, v->mark, "cannot use '%s' for '%s': not a regular file",
		    config_show(v->str, v->len, sb), path);
		return false;
	}
	int fd = open(v->str, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		config_error(c, v->mark, "cannot read '%s' for '%s': %s", config_show(v->str, v->len, sb),
		    path, strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

static void
config_v_readable_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct stat st;
	(void)f;
	(void)base;
	config_check_file(c, v, path, &st);
}

static void
config_v_key_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct stat st;
	char sb[CFG_SHOW_MAX];
	(void)f;
	(void)base;
	if (config_check_file(c, v, path, &st) && (st.st_mode & S_IROTH))
		config_warn(c, v->mark, "private key '%s' is readable by every user (mode %03o)",
		    config_show(v->str, v->len, sb), (unsigned)(st.st_mode & 0777));
}

static void
config_v_listener_name(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX];
	(void)f;
	(void)base;
	/* It is written into every log line as listener=NAME. */
	for (size_t i = 0; i < v->len; i++) {
		char ch = v->str[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.')) {
			config_error(c, v->mark,
			    "invalid name '%s' for '%s': use letters, digits, '-', '_' and '.'",
			    config_show(v->str, v->len, sb), path);
			return;
		}
	}
}

static void
config_v_listen(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_listener_conf *l = base;
	const char *why;
	char sb[CFG_SHOW_MAX];
	(void)f;
	if (config_listen_parse(v->str, &l->addr, &l->addrlen, &why) != 0) {
		config_error(c, v->mark, "invalid listen address '%s' for '%s': %s",
		    config_show(v->str, v->len, sb), path, why);
		l->addrlen = 0;
	}
}

static void
config_v_listener_tls(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_listener_conf *l = base;
	(void)f;
	if (l->tls == IG_TLS_NONE)
		config_error(c, v->mark,
		    "'%s' cannot be none: imapguard only serves TLS (use implicit or starttls)",
		    path);
}

static void
config_v_backend_address(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_backend_conf *b = base;
	const char *why;
	char sb[CFG_SHOW_MAX];
	bool br;
	unsigned char a[sizeof(struct in6_addr)];
	(void)f;
	b->addrlen = 0;
	if (config_split_host_port(v->str, b->host, sizeof(b->host), &b->port, &br, &why) != 0) {
		b->host[0] = '\0';
		config_error(c, v->mark, "invalid address '%s' for '%s': %s",
		    config_show(v->str, v->len, sb), path, why);
		return;
	}
	if (br) {
		if (inet_pton(AF_INET6, b->host, a) != 1) {
			config_error(c, v->mark, "invalid address '%s' for '%s': %s",
			    config_show(v->str, v->len, sb), path, "not a numeric IPv6 address");
			return;
		}
		config_set_inet(&b->addr, &b->addrlen, AF_INET6, a, b->port);
		return;
	}
	if (inet_pton(AF_INET, b->host, a) == 1) {
		config_set_inet(&b->addr, &b->addrlen, AF_INET, a, b->port);
		return;
	}
	if (!config_valid_hostname(b->host)) {
		config_error(c, v->mark, "invalid address '%s' for '%s': %s",
		    config_show(v->str, v->len, sb), path,
		    config_looks_like_name(b->host, strlen(b->host)) ? "not a valid host name" :
		    "not a numeric IPv4 address");
		return;
	}
	if (c->flags & IG_CF_NO_RESOLVE)
		return;
	/* Resolved once, now: a name that does not resolve is a config error,
	 * and the proxy never blocks on DNS later. The first answer is used. */
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	int gai = getaddrinfo(b->host, NULL, &hints, &res);
	if (gai != 0 || res == NULL) {
		config_error(c, v->mark, "cannot resolve '%s' for '%s': %s", config_show(b->host,
		    strlen(b->host), sb), path, gai == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(gai));
		if (res != NULL)
			freeaddrinfo(res);
		return;
	}
	if (res->ai_family == AF_INET)
		config_set_inet(&b->addr, &b->addrlen, AF_INET,
		    &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, b->port);
	else if (res->ai_family == AF_INET6)
		config_set_inet(&b->addr, &b->addrlen, AF_INET6,
		    &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, b->port);
	else
		config_error(c, v->mark, "cannot resolve '%s' for '%s': no IPv4 or IPv6 address",
		    config_show(b->host, strlen(b->host), sb), path);
	freeaddrinfo(res);
}

static const struct cnode *
config_node_or(const struct cnode *map, const char *key)
{
	const struct cnode *v = config_map_get(map, key);
	return v != NULL ? v : map;
}

static void
config_check_listeners(struct cfgctx *c, const struct cnode *seq, void *base, const char *path)
{
	const struct ig_config *cfg = base;
	char sb[CFG_SHOW_MAX];
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *l = &cfg->listeners[i];
		const struct cnode *e = seq->items[i];
		for (size_t j = 0; j < i; j++) {
			const struct ig_listener_conf *o = &cfg->listeners[j];
			if (l->name[0] && strcmp(l->name, o->name) == 0) {
				const struct cnode *fn = config_node_or(seq->items[j], "name");
				config_error(c, config_node_or(e, "name")->mark,
				    "duplicate listener name '%s' in '%s' (first at %zu:%zu)",
				    config_show(l->name, strlen(l->name), sb), path,
				    fn->mark.line + 1, fn->mark.column + 1);
			}
			if (l->addrlen && o->addrlen && config_same_addr(&l->addr, &o->addr)) {
				const struct cnode *fl = config_node_or(seq->items[j], "listen");
				config_error(c, config_node_or(e, "listen")->mark,
				    "duplicate listen address '%s' in '%s' (first at %zu:%zu)",
				    config_show(l->listen, strlen(l->listen), sb), path,
				    fl->mark.line + 1, fl->mark.column + 1);
			}
		}
	}
}

static void
config_check_backend(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_backend_conf *b = base;
	(void)path;
	if (b->tls == IG_TLS_NONE) {
		static const char *const tls_only[] = { "ca", "server_name", "verify" };
		for (size_t i = 0; i < NFIELDS(tls_only); i++) {
			const struct cnode *v = config_map_get(map, tls_only[i]);
			if (v != NULL)
				config_warn(c, v->mark, "'backend.%s' has no effect with backend.tls: none",
				    tls_only[i]);
		}
		if (b->addrlen != 0 && !config_addr_is_loopback(&b->addr))
			config_warn(c, config_node_or(map, "tls")->mark,
			    "backend.tls is none but the backend is not on loopback: "
			    "passwords cross the network in clear");
	} else if (!b->tls_verify) {
		config_warn(c, config_node_or(map, "verify")->mark,
		    "backend certificate verification is disabled (verify: false)");
	}
}

static void
config_check_limits(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_limits *l = base;
	(void)path;
	/* Point at buffer_size when it was written, else at the other key. */
	const char *bs = config_map_get(map, "buffer_size") != NULL ? "buffer_size" : NULL;
	if (l->buffer_size < l->max_line)
		config_error(c, config_node_or(map, bs ? bs : "max_line")->mark,
		    "limits.buffer_size (%zu) must be at least limits.max_line (%zu)",
		    l->buffer_size, l->max_line);
	if (l->buffer_size < l->max_literal)
		config_error(c, config_node_or(map, bs ? bs : "max_literal")->mark,
		    "limits.buffer_size (%zu) must be at least limits.max_literal (%zu)",
		    l->buffer_size, l->max_literal);
	if (l->idle_timeout_ms < 30 * MIN)
		config_warn(c, config_node_or(map, "idle_timeout")->mark,
		    "limits.idle_timeout is below 30m: clients in IMAP IDLE (RFC 2177) "
		    "will be disconnected");
}

static void
config_check_policy_defaults(struct cfgctx *c, const struct cnode *map, void *base,
    const char *path)
{
	const struct ig_policy_conf *p = base;
	(void)path;
	if (!p->require_tls)
		config_warn(c, config_node_or(map, "require_tls")->mark,
		    "policy.defaults.require_tls is false: passwords may be sent before STARTTLS");
}

static void
config_check_root(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	struct ig_config *cfg = base;
	(void)path;
	if (cfg->nlisteners > 0 && cfg->ncerts == 0) {
		const struct cnode *tls = config_map_get(map, "tls");
		const struct cnode *at_node = config_map_get(tls, "certificates");
		if (at_node == NULL)
			at_node = tls != NULL ? tls : map;
		config_error(c, at_node->mark,
		    "'tls.certificates' needs at least one certificate (every listener uses TLS)");
	}
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].max_sessions == 0)
			cfg->listeners[i].max_sessions = cfg->limits.max_sessions;
}

/* The tables. */

static const struct enum_name log_level_names[] = {
	{ "error", IG_LOG_ERROR }, { "warn", IG_LOG_WARN },
	{ "info", IG_LOG_INFO }, { "debug", IG_LOG_DEBUG }, { NULL, 0 },
};
static const struct enum_name tls_mode_names[] = {
	{ "none", IG_TLS_NONE }, { "starttls", IG_TLS_STARTTLS },
	{ "implicit", IG_TLS_IMPLICIT }, { NULL, 0 },
};
static const struct enum_name listener_tls_names[] = {
	{ "implicit", IG_TLS_IMPLICIT }, { "starttls", IG_TLS_STARTTLS },
	{ "none", IG_TLS_NONE }, /* parsed to refuse it with a reason */
	{ NULL, 0 },
};
static const struct enum_name tls_version_names[] = {
	{ "1.2", 12 }, { "1.3", 13 }, { NULL, 0 },
};
static const struct enum_name forward_names[] = {
	{ "none", IG_FORWARD_NONE }, { "id", IG_FORWARD_ID }, { NULL, 0 },
};

#define F_STR(k, st, m, req, fn) \
	{ .key = k, .type = FT_STR, .off = offsetof(st, m), .required = req, .validate = fn }
#define F_STRBUF(k, st, m, req, fn) \
	{ .key = k, .type = FT_STRBUF, .off = offsetof(st, m), .required = req, \
	  .validate = fn, .size = sizeof(((st *)0)->m) }
#define F_NUM(k, t, st, m, d, lo, hi) \
	{ .key = k, .type = t, .off = offsetof(st, m), .def = d, .min = lo, .max = hi }
#define F_BOOL(k, st, m, d) \
	{ .key = k, .type = FT_BOOL, .off = offsetof(st, m), .def = d }
#define F_ENUM(k, st, m, req, d, n, fn) \
	{ .key = k, .type = FT_ENUM, .off = offsetof(st, m), .required = req, .def = d, \
	  .names = n, .validate = fn }
#define F_SECTION(k, st, m, req, s) \
	{ .key = k, .type = FT_SECTION, .off = offsetof(st, m), .required = req, .sub = s }
#define F_LIST(k, st, m, cnt, req, lo, hi, s, chk) \
	{ .key = k, .type = FT_LIST, .off = offsetof(st, m), .count_off = offsetof(st, cnt), \
	  .required = req, .min = lo, .max = hi, .sub = s, \
	  .elem_size = sizeof(*((st *)0)->m), .list_check = chk }

static const struct field listener_fields[] = {
	F_STRBUF("name", struct ig_listener_conf, name, true, config_v_listener_name),
	F_STRBUF("listen", struct ig_listener_conf, listen, true, config_v_listen),
	F_ENUM("tls", struct ig_listener_conf, tls, true, IG_TLS_IMPLICIT, listener_tls_names,
	    config_v_listener_tls),
	F_NUM("max_sessions", FT_UINT, struct ig_listener_conf, max_sessions, 0, 1, 1000000),
};
static const struct section listener_section = { listener_fields, NFIELDS(listener_fields), NULL };

static const struct field cert_fields[] = {
	F_STR("cert", struct ig_cert_pair_conf, cert_path, true, config_v_readable_file),
	F_STR("key", struct ig_cert_pair_conf, key_path, true, config_v_key_file),
};
static const struct section cert_section = { cert_fields, NFIELDS(cert_fields), NULL };

static const struct field tls_fields[] = {
	F_LIST("certificates", struct ig_config, certs, ncerts, false, 0, 256, &cert_section, NULL),
	F_ENUM("min_version", struct ig_config, tls_min_version, false, 12, tls_version_names, NULL),
	F_BOOL("strict_sni", struct ig_config, strict_sni, false),
};
/* "tls" fills fields of struct ig_config itself (offset 0). */
static const struct section tls_section = { tls_fields, NFIELDS(tls_fields), NULL };

static const struct field backend_fields[] = {
	F_STRBUF("address", struct ig_backend_conf, address, true, config_v_backend_address),
	F_ENUM("tls", struct ig_backend_conf, tls, false, IG_TLS_NONE, tls_mode_names, NULL),
	F_STR("ca", struct ig_backend_conf, ca, false, config_v_readable_file),
	F_STR("server_name", struct ig_backend_conf, server_name, false, NULL),
	F_BOOL("verify", struct ig_backend_conf, tls_verify, true),
	F_ENUM("forward_client_address", struct ig_backend_conf, forward_client_address, false,
	    IG_FORWARD_ID, forward_names, NULL),
	F_NUM("connect_timeout", FT_DURATION, struct ig_backend_conf, connect_timeout_ms,
	    10 * SEC, 1, 10 * MIN),
	F_NUM("auth_timeout", FT_DURATION, struct ig_backend_conf, auth_timeout_ms,
	    60 * SEC, 1, 10 * MIN),
};
static const struct section backend_section = {
	backend_fields, NFIELDS(backend_fields), config_check_backend
};

static const struct field limits_fields[] = {
	F_NUM("max_line", FT_SIZE, struct ig_limits, max_line, 8192, 256, MIB),
	F_NUM("max_literal", FT_SIZE, struct ig_limits, max_literal, 8192, 256, MIB),
	F_NUM("buffer_size", FT_SIZE, struct ig_limits, buffer_size, 16384, 1 * KIB, MIB),
	F_NUM("handshake_timeout", FT_DURATION, struct ig_limits, handshake_timeout_ms,
	    30 * SEC, 1, 10 * MIN),
	F_NUM("preauth_timeout", FT_DURATION, struct ig_limits, preauth_timeout_ms,
	    60 * SEC, 1, 1 * HOUR),
	F_NUM("idle_timeout", FT_DURATION, struct ig_limits, idle_timeout_ms,
	    35 * MIN, 1, 24 * HOUR),
	F_NUM("max_errors", FT_UINT, struct ig_limits, max_errors, 10, 1, 1000),
	F_NUM("max_sessions", FT_UINT, struct ig_limits, max_sessions, 10000, 1, 1000000),
};
static const struct section limits_section = {
	limits_fields, NFIELDS(limits_fields), config_check_limits
};

static const struct field policy_defaults_fields[] = {
	F_BOOL("require_tls", struct ig_policy_conf, require_tls, true),
};
static const struct section policy_defaults_section = {
	policy_defaults_fields, NFIELDS(policy_defaults_fields), config_check_policy_defaults
};

/* "defaults" fills struct ig_policy_conf itself (offset 0). */
static const struct field policy_fields[] = {
	{ .key = "defaults", .type = FT_SECTION, .off = 0, .sub = &policy_defaults_section },
};
static const struct section policy_section = { policy_fields, NFIELDS(policy_fields), NULL };

static const struct field root_fields[] = {
	F_ENUM("log_level", struct ig_config, log_level, false, IG_LOG_INFO, log_level_names, NULL),
	F_LIST("listeners", struct ig_config, listeners, nlisteners, true, 1, 64,
	    &listener_section, config_check_listeners),
	{ .key = "tls", .type = FT_SECTION, .off = 0, .sub = &tls_section },
	F_SECTION("backend", struct ig_config, backend, true, &backend_section),
	F_SECTION("limits", struct ig_config, limits, false, &limits_section),
	F_SECTION("policy", struct ig_config, policy, false, &policy_section),
};
static const struct section root_section = { root_fields, NFIELDS(root_fields), config_check_root };

/* ---------------------------------------------------------------------- */
/* Entry points */

#define CASE(x, s) case x: return s
const char *
ig_tls_mode_str(enum ig_tls_mode m)
{
	switch (m) {
	CASE(IG_TLS_NONE, "none");
	CASE(IG_TLS_STARTTLS, "starttls");
	CASE(IG_TLS_IMPLICIT, "implicit");
	case IG_TLS_MODE_COUNT:
		break;
	}
	return "?";
}
#undef CASE

void
ig_config_free(struct ig_config *cfg)
{
	if (cfg == NULL)
		return;
	config_free_section(&root_section, cfg);
	free(cfg->path);
	free(cfg);
}

int
ig_config_load_string_flags(const char *name, const char *yaml, size_t len, unsigned flags,
    struct ig_config **out, FILE *errf)
{
	struct cfgctx c = {
		.name = name != NULL ? name : "(config)",
		.errf = errf != NULL ? errf : stderr,
		.flags = flags,
	};
	struct cnode *root = NULL;
	struct ig_config *cfg = NULL;

	*out = NULL;
	if (yaml == NULL && len > 0)
		return IG_EINVAL;
	int rc = config_tree_build(&c, (const unsigned char *)(yaml ? yaml : ""), len, &root);
	if (rc != 0)
		goto done;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		config_nomem(&c);
		goto done;
	}
	config_apply_defaults(&root_section, cfg);
	if (root == NULL || config_node_is_null(root))
		config_error(&c, root != NULL ? root->mark : c.end_mark, "the configuration is empty");
	else if (root->kind != CN_MAP)
		config_error(&c, root->mark, "the configuration must be a mapping of sections, not %s",
		    config_kind_str(root));
	else
		config_walk_map(&c, root, &root_section, cfg, "");
	if (!c.nomem && c.nerr == 0) {
		cfg->path = strdup(c.name);
		if (cfg->path == NULL)
			config_nomem(&c);
	}
done:
	config_tree_free(root);
	config_flush(&c);
	if (c.nomem) {
		ig_config_free(cfg);
		return IG_ENOMEM;
	}
	if (c.nerr > 0 || rc != 0) {
		ig_config_free(cfg);
		return IG_ECONFIG;
	}
	*out = cfg;
	return 0;
}

int
ig_config_load_string(const char *name, const char *yaml, size_t len, struct ig_config **out,
    FILE *errf)
{
	return ig_config_load_string_flags(name, yaml, len, 0, out, errf);
}

int
ig_config_load(const char *path, struct ig_config **out, FILE *errf)
{
	FILE *ef = errf != NULL ? errf : stderr;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(ef, "%s: cannot open: %s\n", path, strerror(errno));
		return IG_EIO;
	}
	struct stat st;
	const char *bad = NULL;
	if (fstat(fd, &st) != 0)
		bad = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		bad = "not a regular file";
	else if (st.st_size > (off_t)CFG_FILE_MAX)
		bad = "larger than 16 MiB";
	if (bad != NULL) {
		fprintf(ef, "%s: %s\n", path, bad);
		close(fd);
		return IG_EIO;
	}
	size_t size = (size_t)st.st_size, len = 0;
	char *buf = malloc(size + 1);
	if (buf == NULL) {
		close(fd);
		fprintf(ef, "%s: out of memory\n", path);
		return IG_ENOMEM;
	}
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(ef, "%s: cannot read: %s\n", path, n < 0 ? strerror(errno) :
			    "file shrank while reading");
			free(buf);
			close(fd);
			return IG_EIO;
		}
		len += (size_t)n;
	}
	close(fd);
	int rc = ig_config_load_string(path, buf, len, out, errf);
	free(buf);
	return rc;
}
