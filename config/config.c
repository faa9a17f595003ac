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
#include "config/config.h"

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
#include <sys/un.h>
#include <unistd.h>

#include <yaml.h>

#include "policy/cidr.h"
#include "policy/decide.h"
#include "util/err.h"
#include "util/sasl.h"

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
	struct ig_policy_conf *policy; /* the policy being built: network names,
	                                  fold_case, defaults and groups are
	                                  read back by later policy keys */
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

/* ig_parse_duration_ms() up to max milliseconds (uint64_t results). */
static int
config_parse_duration(const char *s, uint64_t max, uint64_t *out_ms)
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
		if (config_parse_u64(num, max, &v) != 0 || v > max / units[i].ms)
			return IG_EINVAL;
		*out_ms = v * units[i].ms;
		return 0;
	}
	return IG_EINVAL;
}

int
ig_parse_duration_ms(const char *s, unsigned *out_ms)
{
	uint64_t ms;
	if (config_parse_duration(s, UINT_MAX, &ms) != 0)
		return IG_EINVAL;
	*out_ms = (unsigned)ms;
	return 0;
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
	FT_DURATION64, /* uint64_t milliseconds, in [min, max] */
	FT_U8,       /* uint8_t, in [min, max] (max <= 255) */
	FT_ENUM,     /* int, from names[] */
	FT_SECTION,  /* a mapping walked with sub, into the struct at off */
	FT_LIST,     /* a sequence of mappings: pointer at off, count at count_off */
	FT_CUSTOM,   /* converted, defaulted and freed by the field's ops */
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

/* A value type of its own (the policy's lists and name mappings). */
struct custom_ops {
	/* Stores the default (optional; the struct starts zeroed). */
	void (*init)(const struct field *f, void *base);
	/* Converts and stores v, reporting its own errors; returns true when
	 * stored (then the field's validate_fn runs). May allocate even when it
	 * returns false: release() is called in every case. */
	bool (*store)(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
	    const char *path);
	/* Frees what store() allocated and leaves the field empty (optional). */
	void (*release)(const struct field *f, void *base);
};

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
	const struct custom_ops *ops;  /* FT_CUSTOM */
	unsigned bit;                  /* IG_RK_* added to the rule's set when
	                                  the key is present (rule sections) */
	unsigned early;                /* keys with a higher value are walked
	                                  first, whatever the file order (the
	                                  policy resolves names defined later) */
};

struct section {
	const struct field *fields;
	size_t nfields;
	check_fn check;                /* optional */
	bool rule;                     /* base is a struct ig_rule: present keys
	                                  set their bit in its set */
	void (*defaults)(void *base);  /* optional: stores every default of the
	                                  section (nested sections included)
	                                  instead of the fields' def values */
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
	if (sec->defaults != NULL) {
		sec->defaults(base);
		return;
	}
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
		case FT_DURATION64:
			*(uint64_t *)p = f->def;
			break;
		case FT_U8:
			*(uint8_t *)p = (uint8_t)f->def;
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
		case FT_CUSTOM:
			if (f->ops->init != NULL)
				f->ops->init(f, base);
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
		case FT_CUSTOM:
			if (f->ops->release != NULL)
				f->ops->release(f, base);
			break;
		case FT_STRBUF:
		case FT_UINT:
		case FT_SIZE:
		case FT_BOOL:
		case FT_DURATION:
		case FT_DURATION64:
		case FT_U8:
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

/* True when v is a non-null scalar without NUL bytes; else reports why. */
static bool
config_scalar_ok(struct cfgctx *c, const struct cnode *v, const char *path)
{
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
	return true;
}

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

	if (f->type == FT_CUSTOM)
		return f->ops->store(c, f, v, base, path);

	/* Scalars from here on. */
	if (!config_scalar_ok(c, v, path))
		return false;
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
	case FT_U8:
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
		else if (f->type == FT_U8)
			*(uint8_t *)p = (uint8_t)u;
		else
			*(size_t *)p = (size_t)u;
		return true;
	case FT_DURATION:
	case FT_DURATION64:
		if (f->type == FT_DURATION ? ig_parse_duration_ms(s, &ms) != 0 :
		    config_parse_duration(s, UINT64_MAX, &u) != 0) {
			config_error(c, v->mark,
			    "invalid duration '%s' for '%s': expected a number with ms, s, m or h",
			    config_show(s, v->len, sb), path);
			return false;
		}
		if (f->type == FT_DURATION64) {
			if (u < f->min || u > f->max) {
				char lo[24], hi[24];
				config_error(c, v->mark, "'%s' must be between %s and %s (got %s)", path,
				    config_fmt_duration(f->min, lo, sizeof(lo)),
				    config_fmt_duration(f->max, hi, sizeof(hi)), s);
				return false;
			}
			*(uint64_t *)p = u;
			return true;
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
	case FT_CUSTOM:
		break; /* handled above */
	}
	return false;
}

/*
 * Walks one mapping against sec: every key must be known and appear once,
 * every required key must be present. Values go into base. Keys are taken
 * in file order, except that fields marked early go first (highest first).
 */
static void
config_walk_map(struct cfgctx *c, const struct cnode *map, const struct section *sec, void *base,
    const char *path)
{
	const struct cnode *seen[64] = { NULL };
	char sb[CFG_SHOW_MAX];
	unsigned top = 0;

	if (sec->nfields > NFIELDS(seen)) /* a table bug, not a user error */
		abort();
	for (size_t fi = 0; fi < sec->nfields; fi++)
		if (sec->fields[fi].early > top)
			top = sec->fields[fi].early;
	for (unsigned pass = top + 1; pass-- > 0;) {
		for (size_t i = 0; i + 1 < map->n; i += 2) {
			const struct cnode *k = map->items[i], *v = map->items[i + 1];
			if (k->kind == CN_BAD)
				continue;
			if (k->kind != CN_SCALAR) {
				if (pass == 0)
					config_error(c, k->mark, "keys must be plain words, not %s",
					    config_kind_str(k));
				continue;
			}
			size_t fi;
			for (fi = 0; fi < sec->nfields; fi++)
				if (strlen(sec->fields[fi].key) == k->len &&
				    memcmp(sec->fields[fi].key, k->str, k->len) == 0)
					break;
			if ((fi < sec->nfields ? sec->fields[fi].early : 0) != pass)
				continue;
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
			const struct field *f = &sec->fields[fi];
			if (sec->rule)
				((struct ig_rule *)base)->set |= f->bit;
			if (v->kind == CN_BAD)
				continue;
			char kpath[CFG_KEYPATH_MAX];
			config_join_path(kpath, path, f->key);
			if (config_store_value(c, f, v, base, kpath) && f->validate != NULL)
				f->validate(c, f, v, base, kpath);
			if (c->nomem)
				return;
		}
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

/* One limits.raised entry: its networks list is not empty. */
static void
limits_check_raise(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	(void)base;
	const struct cnode *nets = config_map_get(map, "networks");
	if (nets != NULL && nets->kind == CN_SEQ && nets->n == 0)
		config_error(c, nets->mark, "'%s.networks' needs at least one entry", path);
}

static void
config_check_limits(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_limits *l = base;
	char a[24], b[24];
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
	if (l->preauth_lifetime_ms < l->preauth_timeout_ms)
		config_error(c, config_node_or(map, config_map_get(map, "preauth_lifetime") ?
		    "preauth_lifetime" : "preauth_timeout")->mark,
		    "limits.preauth_lifetime (%s) must be at least limits.preauth_timeout (%s): "
		    "the lifetime bounds the whole time before login, the timeout one idle "
		    "stretch of it",
		    config_fmt_duration(l->preauth_lifetime_ms, a, sizeof(a)),
		    config_fmt_duration(l->preauth_timeout_ms, b, sizeof(b)));
	/* A raised entry with no cap to raise, or one that lowers it. */
	const struct cnode *seq = config_map_get(map, "raised");
	if (seq != NULL && seq->kind == CN_SEQ && seq->n > 0 && l->max_conn_per_address == 0)
		config_warn(c, seq->mark, "limits.raised has no effect: "
		    "limits.max_connections_per_address is 0 (no cap)");
	for (size_t i = 0; seq != NULL && seq->kind == CN_SEQ && seq->n == l->nraised &&
	    l->max_conn_per_address != 0 && i < l->nraised; i++) {
		const struct cnode *v = config_map_get(seq->items[i], "max_connections_per_address");
		unsigned got = l->raised[i].max_conn_per_address;
		if (v != NULL && got != 0 && got < l->max_conn_per_address)
			config_warn(c, v->mark, "limits.raised[%zu].max_connections_per_address (%u) is "
			    "below limits.max_connections_per_address (%u): these networks get a "
			    "lower cap, not a higher one", i, got, l->max_conn_per_address);
	}
}

/* ---------------------------------------------------------------------- */
/* The policy: networks, rules (defaults, groups, user entries) */

#define POLICY_NAME_MAX IG_NAME_MAX /* network and group names */

/* Built-in values of policy.defaults; the rule's name is not allocated. */
static char policy_defaults_name[] = "defaults";

/* The key node (not the value) of key in map, or NULL. */
static const struct cnode *
config_map_key(const struct cnode *map, const char *key)
{
	if (map == NULL || map->kind != CN_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct cnode *k = map->items[i];
		if (k->kind == CN_SCALAR && strlen(key) == k->len && memcmp(k->str, key, k->len) == 0)
			return k;
	}
	return NULL;
}

/* The first earlier key in map (before item i) equal to map->items[i]. */
static const struct cnode *
config_map_earlier(const struct cnode *map, size_t i)
{
	const struct cnode *k = map->items[i];
	for (size_t j = 0; j < i; j += 2) {
		const struct cnode *pk = map->items[j];
		if (pk->kind == CN_SCALAR && pk->len == k->len && memcmp(pk->str, k->str, k->len) == 0)
			return pk;
	}
	return NULL;
}

static void
config_set_pos(unsigned *line, unsigned *col, const struct cnode *n)
{
	*line = n->mark.line < UINT_MAX ? (unsigned)n->mark.line + 1 : UINT_MAX;
	*col = n->mark.column < UINT_MAX ? (unsigned)n->mark.column + 1 : UINT_MAX;
}

/* A sequence is expected; a bare "key:" is refused rather than read as an
 * empty list, since an empty list means "nothing allowed" here. */
static bool
policy_want_seq(struct cfgctx *c, const struct cnode *v, const char *path)
{
	if (v->kind == CN_SEQ)
		return true;
	if (config_node_is_null(v))
		config_error(c, v->mark, "'%s' has no value (write [] for an empty list)", path);
	else
		config_error(c, v->mark, "'%s' must be a sequence, not %s", path, config_kind_str(v));
	return false;
}

/* A mapping of names is expected; a bare "key:" means none. */
static bool
policy_want_map(struct cfgctx *c, const struct cnode *v, const char *path, const char *what)
{
	if (v->kind == CN_MAP)
		return true;
	if (!config_node_is_null(v))
		config_error(c, v->mark, "'%s' must be a mapping of %s, not %s", path, what,
		    config_kind_str(v));
	return false;
}

/* Network and group names: written into logs ("group:NAME"), so plain. A
 * network name must start with a letter so that it never reads as an
 * address ("10.0.0.0/8", "::1", "fe80::/10" all contain a digit or ':'
 * first). */
static bool
policy_valid_name(struct cfgctx *c, const struct cnode *k, const char *path, bool letter_first)
{
	char sb[CFG_SHOW_MAX];
	bool ok = k->len > 0 && k->len <= POLICY_NAME_MAX && strlen(k->str) == k->len;
	for (size_t i = 0; ok && i < k->len; i++) {
		char ch = k->str[i];
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		if (!alpha && !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_' && ch != '.')
			ok = false;
		if (i == 0 && letter_first && !alpha)
			ok = false;
	}
	if (!ok)
		config_error(c, k->mark, "invalid name '%s' in '%s': use up to %d letters, digits, "
		    "'-', '_' and '.'%s", config_show(k->str, k->len, sb), path, POLICY_NAME_MAX,
		    letter_first ? ", starting with a letter" : "");
	return ok;
}

/* Parses one CIDR or address, explaining a refusal. */
static bool
policy_parse_cidr(struct cfgctx *c, const struct cnode *v, const char *path, struct ig_cidr *out)
{
	char sb[CFG_SHOW_MAX], addr[64], fixed[64];
	struct ig_cidr host;
	uint64_t prefix;
	if (ig_cidr_parse(v->str, out) == 0)
		return true;
	/* Say why when the address and the prefix are fine on their own. */
	const char *slash = strchr(v->str, '/');
	size_t hl = slash != NULL ? (size_t)(slash - v->str) : 0;
	if (slash != NULL && hl < sizeof(addr)) {
		memcpy(addr, v->str, hl);
		addr[hl] = '\0';
	}
	if (slash != NULL && hl < sizeof(addr) && ig_cidr_parse(addr, &host) == 0 &&
	    strlen(slash + 1) <= 3 && config_parse_u64(slash + 1, 999, &prefix) == 0) {
		if (prefix > host.prefix) {
			config_error(c, v->mark, "invalid CIDR '%s' in '%s': the prefix length must be "
			    "at most %u", config_show(v->str, v->len, sb), path, host.prefix);
			return false;
		}
		bool hostbits = false;
		for (unsigned i = 0; i < sizeof(host.addr); i++) {
			unsigned bit0 = i * 8;
			unsigned keep = bit0 >= prefix ? 0 :
			    prefix - bit0 >= 8 ? 8 : (unsigned)(prefix - bit0);
			uint8_t net = (uint8_t)(host.addr[i] & (0xff00u >> keep));
			hostbits |= net != host.addr[i];
			host.addr[i] = net;
		}
		host.prefix = (uint8_t)prefix;
		if (hostbits) {
			ig_cidr_format(&host, fixed, sizeof(fixed));
			config_error(c, v->mark, "invalid CIDR '%s' in '%s': host bits are set (did you "
			    "mean %s?)", config_show(v->str, v->len, sb), path, fixed);
			return false;
		}
	}
	config_error(c, v->mark, "invalid CIDR '%s' in '%s': expected an IPv4 or IPv6 address, "
	    "optionally with /prefix", config_show(v->str, v->len, sb), path);
	return false;
}

static bool
policy_netset_add(struct cfgctx *c, struct ig_netset *set, size_t *cap, const struct ig_cidr *v,
    size_t n)
{
	if (set->n + n > *cap) {
		size_t ncap = *cap ? *cap : 4;
		while (ncap < set->n + n)
			ncap *= 2;
		struct ig_cidr *nv = realloc(set->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			config_nomem(c);
			return false;
		}
		set->v = nv;
		*cap = ncap;
	}
	memcpy(set->v + set->n, v, n * sizeof(*v));
	set->n += n;
	return true;
}

static const struct ig_network *
policy_network_find(const struct ig_policy_conf *p, const char *name)
{
	for (size_t i = 0; p != NULL && i < p->nnetworks; i++)
		if (p->networks[i].name != NULL && strcmp(p->networks[i].name, name) == 0)
			return &p->networks[i];
	return NULL;
}

static const char *
policy_network_suggest(const struct ig_policy_conf *p, const struct cnode *k)
{
	const char *best = NULL;
	size_t bestd = 3; /* at most two edits, like unknown keys */
	for (size_t i = 0; p != NULL && i < p->nnetworks; i++) {
		if (p->networks[i].name == NULL)
			continue;
		size_t d = config_edit_distance(k->str, k->len, p->networks[i].name);
		if (d < bestd) {
			bestd = d;
			best = p->networks[i].name;
		}
	}
	return best;
}

/* policy.mode and a rule's mode: enforce | monitor, into a bool. */
static bool
policy_store_mode(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX];
	bool *monitor = config_at(base, f->off);
	if (!config_scalar_ok(c, v, path))
		return false;
	if (strcmp(v->str, "enforce") == 0 || strcmp(v->str, "monitor") == 0) {
		*monitor = v->str[0] == 'm';
		return true;
	}
	config_error(c, v->mark, "invalid value '%s' for '%s': expected one of enforce, monitor",
	    config_show(v->str, v->len, sb), path);
	return false;
}

static void
policy_init_mechs(const struct field *f, void *base)
{
	uint32_t m = (uint32_t)f->def;
	memcpy(config_at(base, f->off), &m, sizeof(m));
}

/* mechanisms: SASL names, any case; [] allows no SASL mechanism at all. */
static bool
policy_store_mechs(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX], epath[CFG_KEYPATH_MAX];
	uint32_t set = 0;
	if (!policy_want_seq(c, v, path))
		return false;
	for (size_t i = 0; i < v->n; i++) {
		const struct cnode *e = v->items[i];
		if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
			epath[0] = '\0';
		if (e->kind == CN_BAD || !config_scalar_ok(c, e, epath))
			continue;
		enum ig_sasl_mech m = ig_sasl_mech_from_name(
		    (struct ig_span){ (const uint8_t *)e->str, e->len });
		if (m == IG_MECH_COUNT) {
			char known[160];
			size_t off = 0;
			known[0] = '\0';
			for (int j = 0; j < IG_MECH_COUNT; j++) {
				int n = snprintf(known + off, sizeof(known) - off, "%s%s", j ? ", " : "",
				    ig_sasl_mech_str((enum ig_sasl_mech)j));
				if (n < 0 || (size_t)n >= sizeof(known) - off)
					break;
				off += (size_t)n;
			}
			config_error(c, e->mark, "unknown mechanism '%s' in '%s' (known: %s)",
			    config_show(e->str, e->len, sb), path, known);
			continue;
		}
		if (set & IG_MECH_BIT(m))
			config_warn(c, e->mark, "mechanism '%s' is listed twice in '%s'",
			    ig_sasl_mech_str(m), path);
		set |= IG_MECH_BIT(m);
	}
	memcpy(config_at(base, f->off), &set, sizeof(set));
	return true;
}

/* allow_plaintext_from, allow_from: network names and literal CIDRs, copied
 * into one set. [] is kept as an empty set (with the key's bit: nowhere). */
static bool
policy_store_netset(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX], epath[CFG_KEYPATH_MAX];
	struct ig_netset *set = config_at(base, f->off);
	size_t cap = 0;
	if (!policy_want_seq(c, v, path))
		return false;
	for (size_t i = 0; i < v->n; i++) {
		const struct cnode *e = v->items[i];
		if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
			epath[0] = '\0';
		if (e->kind == CN_BAD || !config_scalar_ok(c, e, epath))
			continue;
		bool alpha = (e->str[0] >= 'a' && e->str[0] <= 'z') ||
		    (e->str[0] >= 'A' && e->str[0] <= 'Z');
		if (alpha && strchr(e->str, ':') == NULL) {
			const struct ig_network *net = policy_network_find(c->policy, e->str);
			if (net == NULL) {
				const char *hint = policy_network_suggest(c->policy, e);
				config_error(c, e->mark, "unknown network '%s' in '%s'%s%s%s",
				    config_show(e->str, e->len, sb), path,
				    hint ? " (did you mean '" : " (not defined in policy.networks)",
				    hint ? hint : "", hint ? "'?)" : "");
				continue;
			}
			if (net->set.n > 0 && !policy_netset_add(c, set, &cap, net->set.v, net->set.n))
				return false;
			continue;
		}
		struct ig_cidr cidr;
		if (policy_parse_cidr(c, e, path, &cidr) && !policy_netset_add(c, set, &cap, &cidr, 1))
			return false;
	}
	return true;
}

static void
policy_release_netset(const struct field *f, void *base)
{
	struct ig_netset *set = config_at(base, f->off);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

/* policy.networks: NAME: [CIDR, ...], each list non-empty. */
static bool
policy_store_networks(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_policy_conf *p = base;
	char sb[CFG_SHOW_MAX], npath[CFG_KEYPATH_MAX];
	(void)f;
	if (!policy_want_map(c, v, path, "network names"))
		return config_node_is_null(v);
	if (v->n < 2)
		return true;
	p->networks = calloc(v->n / 2, sizeof(*p->networks));
	if (p->networks == NULL) {
		config_nomem(c);
		return false;
	}
	p->nnetworks = v->n / 2;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct cnode *k = v->items[i], *e = v->items[i + 1];
		struct ig_network *net = &p->networks[i / 2];
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", config_kind_str(k));
			continue;
		}
		config_set_pos(&net->line, &net->col, k);
		const struct cnode *first = config_map_earlier(v, i);
		if (first != NULL) {
			config_error(c, k->mark, "duplicate network '%s' in '%s' (first at %zu:%zu)",
			    config_show(k->str, k->len, sb), path, first->mark.line + 1,
			    first->mark.column + 1);
			continue;
		}
		if (!policy_valid_name(c, k, path, true))
			continue;
		net->name = strdup(k->str);
		if (net->name == NULL) {
			config_nomem(c);
			return false;
		}
		if (snprintf(npath, sizeof(npath), "%s.%s", path, net->name) < 0)
			npath[0] = '\0';
		if (e->kind == CN_BAD || !policy_want_seq(c, e, npath))
			continue;
		if (e->n == 0) {
			config_error(c, e->mark, "'%s' needs at least one entry", npath);
			continue;
		}
		net->set.v = calloc(e->n, sizeof(*net->set.v));
		if (net->set.v == NULL) {
			config_nomem(c);
			return false;
		}
		for (size_t j = 0; j < e->n; j++) {
			const struct cnode *a = e->items[j];
			char epath[CFG_KEYPATH_MAX];
			if (snprintf(epath, sizeof(epath), "%s[%zu]", npath, j) < 0)
				epath[0] = '\0';
			if (a->kind == CN_BAD || !config_scalar_ok(c, a, epath))
				continue;
			if (policy_parse_cidr(c, a, npath, &net->set.v[net->set.n]))
				net->set.n++;
		}
	}
	return true;
}

static void
policy_release_networks(const struct field *f, void *base)
{
	struct ig_policy_conf *p = base;
	(void)f;
	for (size_t i = 0; i < p->nnetworks; i++) {
		free(p->networks[i].name);
		free(p->networks[i].set.v);
	}
	free(p->networks);
	p->networks = NULL;
	p->nnetworks = 0;
}

/*
 * A user name as the backend sees it (ig_user_normalize: no NUL, CR, LF, at
 * most IG_USER_MAX bytes), folded when fold. Writes out; false after
 * reporting.
 */
static bool
policy_user_name(struct cfgctx *c, const struct cnode *v, const char *path, bool fold,
    char out[static IG_USER_MAX + 1])
{
	char sb[CFG_SHOW_MAX];
	int rc = ig_user_normalize((const uint8_t *)v->str, v->len, fold, out, IG_USER_MAX + 1);
	if (rc == IG_ETOOLONG)
		config_error(c, v->mark, "user name '%s' in '%s' is longer than %d bytes",
		    config_show(v->str, v->len, sb), path, IG_USER_MAX);
	else if (rc != 0)
		config_error(c, v->mark, "invalid user name '%s' in '%s': %s",
		    config_show(v->str, v->len, sb), path,
		    v->len == 0 ? "empty" : "it contains NUL, CR or LF");
	return rc == 0;
}

static bool
policy_is_domain_pattern(const char *pat)
{
	return pat[0] == '*' && pat[1] == '@';
}

/* A group's users: exact names or "*@domain" (the domain lower-cased). */
static bool
policy_store_patterns(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_rule *r = base;
	char sb[CFG_SHOW_MAX], epath[CFG_KEYPATH_MAX], norm[IG_USER_MAX + 1];
	(void)f;
	if (!policy_want_seq(c, v, path))
		return false;
	if (v->n == 0) {
		config_error(c, v->mark, "'%s' needs at least one entry", path);
		return false;
	}
	r->users = calloc(v->n, sizeof(*r->users));
	if (r->users == NULL) {
		config_nomem(c);
		return false;
	}
	r->nusers = v->n;
	for (size_t i = 0; i < v->n; i++) {
		const struct cnode *e = v->items[i];
		if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
			epath[0] = '\0';
		if (e->kind == CN_BAD || !config_scalar_ok(c, e, epath))
			continue;
		if (!policy_user_name(c, e, path, false, norm))
			continue;
		const char *star = strchr(norm, '*');
		if (star != NULL) {
			if (strcmp(norm, "*") == 0) {
				config_error(c, e->mark, "invalid user pattern '*' in '%s': it would match "
				    "every user; put those settings in policy.defaults", path);
				continue;
			}
			if (!policy_is_domain_pattern(norm) || norm[2] == '\0' ||
			    strpbrk(norm + 2, "*@") != NULL) {
				config_error(c, e->mark, "invalid user pattern '%s' in '%s': use an exact "
				    "name or *@domain", config_show(e->str, e->len, sb), path);
				continue;
			}
		}
		/* The domain is always compared without case; an exact name is
		 * folded like the names it is matched against. */
		bool fold_all = star == NULL && c->policy->fold_case;
		for (char *q = star != NULL ? norm + 2 : norm; *q; q++)
			if ((star != NULL || fold_all) && *q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		for (size_t j = 0; j < i; j++) {
			if (r->users[j] != NULL && strcmp(r->users[j], norm) == 0) {
				config_warn(c, e->mark, "'%s' is listed twice in '%s' (first at %zu:%zu)",
				    config_show(norm, strlen(norm), sb), path,
				    v->items[j]->mark.line + 1, v->items[j]->mark.column + 1);
				break;
			}
		}
		r->users[i] = strdup(norm);
		if (r->users[i] == NULL) {
			config_nomem(c);
			return false;
		}
	}
	return true;
}

static void
policy_release_patterns(const struct field *f, void *base)
{
	struct ig_rule *r = base;
	(void)f;
	for (size_t i = 0; i < r->nusers; i++)
		free(r->users[i]);
	free(r->users);
	r->users = NULL;
	r->nusers = 0;
}

/*
 * Cross-key rules of one rule (defaults, group or user entry), run after its
 * keys were read. Values a rule does not set are those the engine would use,
 * found by the engine's own functions (policy/decide.h): a user entry's come
 * from its first matching group (groups are read before user entries), else
 * from policy.defaults (read before both).
 */
static void
policy_check_rule(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_rule *r = base;
	const struct ig_policy_conf *p = c->policy;
	const struct ig_rule *g = r->kind == IG_RULE_USER ?
	    ig_policy_group_for(p, r->name, NULL) : NULL;
	const struct cnode *k;
	char sb[CFG_SHOW_MAX];
	(void)path;

	if (r->kind == IG_RULE_DEFAULTS && !r->require_tls)
		config_warn(c, config_node_or(map, "require_tls")->mark,
		    "policy.defaults.require_tls is false: passwords may be sent before STARTTLS");

	/* In the defaults, n == 0 is "no restriction": "[]" would silently
	 * mean the opposite of what it says. */
	bool empty_apf = false;
	if (r->kind == IG_RULE_DEFAULTS) {
		static const char *const lists[] = { "allow_plaintext_from", "allow_from" };
		for (size_t i = 0; i < NFIELDS(lists); i++) {
			k = config_map_key(map, lists[i]);
			const struct cnode *lv = config_map_get(map, lists[i]);
			if (k == NULL || lv->kind != CN_SEQ || lv->n != 0)
				continue;
			config_error(c, k->mark, "%s: [] is not allowed in policy.defaults (there "
			    "an empty list means no restriction); remove the key, or use deny: true "
			    "to refuse everyone", lists[i]);
			empty_apf |= i == 0;
		}
	}

	const struct ig_rule *tls = ig_policy_key_source(p, r, g, IG_RK_REQUIRE_TLS);
	if (!empty_apf && (r->set & IG_RK_ALLOW_PLAINTEXT_FROM) && tls->require_tls &&
	    (k = config_map_key(map, "allow_plaintext_from")) != NULL) {
		if (tls == r)
			config_error(c, k->mark,
			    "allow_plaintext_from has no effect while require_tls is true");
		else if (tls == g)
			config_error(c, k->mark,
			    "allow_plaintext_from has no effect while require_tls is true "
			    "(from group '%s'; add require_tls: false here)",
			    config_show(g->name, strlen(g->name), sb));
		else
			config_error(c, k->mark,
			    "allow_plaintext_from has no effect while require_tls is true "
			    "(from policy.defaults; add require_tls: false here)");
	}

	bool deny = ig_policy_key_source(p, r, g, IG_RK_DENY)->deny;
	/* Nothing overrides a user entry, so its other keys are dead; a mode
	 * still matters (deny + monitor: report the account, do not block). */
	if (r->kind == IG_RULE_USER && r->deny) {
		static const char *const dead[] = {
			"require_tls", "mechanisms", "login_command", "allow_plaintext_from",
			"allow_from",
		};
		for (size_t i = 0; i + 1 < map->n; i += 2) {
			k = map->items[i];
			for (size_t j = 0; k->kind == CN_SCALAR && j < NFIELDS(dead); j++)
				if (strcmp(k->str, dead[j]) == 0)
					config_warn(c, k->mark, "'%s' has no effect: this entry has "
					    "deny: true", dead[j]);
		}
	}
	if (deny)
		return;
	if ((r->set & (IG_RK_LOGIN_COMMAND | IG_RK_MECHANISMS)) &&
	    !ig_policy_key_source(p, r, g, IG_RK_LOGIN_COMMAND)->login_command &&
	    ig_policy_key_source(p, r, g, IG_RK_MECHANISMS)->mechanisms == 0) {
		k = config_map_key(map, (r->set & IG_RK_MECHANISMS) ? "mechanisms" : "login_command");
		if (k != NULL)
			config_warn(c, k->mark, "nobody can log in under this rule (no LOGIN command, "
			    "no mechanism); use deny: true");
	}
	const struct cnode *af = config_map_get(map, "allow_from");
	if (r->kind != IG_RULE_DEFAULTS && af != NULL && af->kind == CN_SEQ && af->n == 0 &&
	    (k = config_map_key(map, "allow_from")) != NULL)
		config_warn(c, k->mark, "allow_from is empty: nobody can log in under this rule; "
		    "use deny: true");
}

static const struct section group_section;
static const struct section user_section;

/* The first group before groups[i] that matches every user pattern does
 * (as the decisions match: ig_policy_pattern_covers()), with the covering
 * pattern in *by_pattern; NULL when none (or no pattern). */
static const struct ig_rule *
policy_shadowed_by(const struct ig_policy_conf *p, size_t i, const char *pattern,
    const char **by_pattern)
{
	for (size_t gi = 0; pattern != NULL && gi < i; gi++) {
		const struct ig_rule *g = &p->groups[gi];
		for (size_t j = 0; j < g->nusers; j++) {
			if (ig_policy_pattern_covers(g->users[j], pattern, p->fold_case)) {
				*by_pattern = g->users[j];
				return g;
			}
		}
	}
	return NULL;
}


/* policy.groups: NAME: { users: [...], rule keys }, file order kept. */
static bool
policy_store_groups(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_policy_conf *p = base;
	char sb[CFG_SHOW_MAX], sb2[CFG_SHOW_MAX], gpath[CFG_KEYPATH_MAX];
	(void)f;
	if (!policy_want_map(c, v, path, "group names"))
		return config_node_is_null(v);
	if (v->n < 2)
		return true;
	p->groups = calloc(v->n / 2, sizeof(*p->groups));
	if (p->groups == NULL) {
		config_nomem(c);
		return false;
	}
	p->ngroups = v->n / 2;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct cnode *k = v->items[i], *e = v->items[i + 1];
		struct ig_rule *r = &p->groups[i / 2];
		config_apply_defaults(&group_section, r);
		r->kind = IG_RULE_GROUP;
		config_set_pos(&r->line, &r->col, k);
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", config_kind_str(k));
			continue;
		}
		const struct cnode *first = config_map_earlier(v, i);
		if (first != NULL) {
			config_error(c, k->mark, "duplicate group '%s' in '%s' (first at %zu:%zu)",
			    config_show(k->str, k->len, sb), path, first->mark.line + 1,
			    first->mark.column + 1);
			continue;
		}
		if (!policy_valid_name(c, k, path, false))
			continue;
		r->name = strdup(k->str);
		if (r->name == NULL) {
			config_nomem(c);
			return false;
		}
		if (snprintf(gpath, sizeof(gpath), "%s.%s", path, r->name) < 0)
			gpath[0] = '\0';
		if (e->kind == CN_BAD)
			continue;
		if (e->kind != CN_MAP) {
			config_error(c, e->mark, "'%s' must be a mapping, not %s", gpath,
			    config_kind_str(e));
			continue;
		}
		config_walk_map(c, e, &group_section, r, gpath);
		if (c->nomem)
			return false;
	}

	/* The first matching group wins: a pattern that an earlier group
	 * already covers never selects this one. */
	for (size_t i = 0; i < p->ngroups; i++) {
		const struct ig_rule *r = &p->groups[i];
		const struct cnode *seq = config_map_get(v->items[2 * i + 1], "users");
		const char *q;
		size_t valid = 0, shadowed = 0;
		if (r->name == NULL || seq == NULL || seq->kind != CN_SEQ || seq->n != r->nusers)
			continue;
		for (size_t j = 0; j < r->nusers; j++) {
			valid += r->users[j] != NULL;
			shadowed += policy_shadowed_by(p, i, r->users[j], &q) != NULL;
		}
		if (shadowed > 0 && shadowed == valid) {
			config_warn(c, v->items[2 * i]->mark, "group '%s' never applies: every user it "
			    "lists is matched first by an earlier group", r->name);
			continue;
		}
		for (size_t j = 0; shadowed > 0 && j < r->nusers; j++) {
			const struct ig_rule *by = policy_shadowed_by(p, i, r->users[j], &q);
			if (by != NULL)
				config_warn(c, seq->items[j]->mark, "'%s' never selects group '%s': group "
				    "'%s' (at %u:%u) matches it first with '%s'",
				    config_show(r->users[j], strlen(r->users[j]), sb), r->name, by->name,
				    by->line, by->col, config_show(q, strlen(q), sb2));
		}
	}
	return true;
}

static void
policy_release_rules(struct ig_rule *v, size_t n, const struct section *sec)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		config_free_section(sec, &v[i]);
	}
	free(v);
}

static void
policy_release_groups(const struct field *f, void *base)
{
	struct ig_policy_conf *p = base;
	(void)f;
	policy_release_rules(p->groups, p->ngroups, &group_section);
	p->groups = NULL;
	p->ngroups = 0;
}

struct policy_name_ref {
	const char *name;
	size_t i; /* index in policy.users */
};

static int
policy_name_ref_cmp(const void *a, const void *b)
{
	const struct policy_name_ref *x = a, *y = b;
	int d = strcmp(x->name, y->name);
	if (d != 0)
		return d;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* policy.users: exact NAME: { rule keys }; unique after folding. */
static bool
policy_store_users(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_policy_conf *p = base;
	char sb[CFG_SHOW_MAX], sb2[CFG_SHOW_MAX], upath[CFG_KEYPATH_MAX], norm[IG_USER_MAX + 1];
	(void)f;
	if (!policy_want_map(c, v, path, "user names"))
		return config_node_is_null(v);
	if (v->n < 2)
		return true;
	p->users = calloc(v->n / 2, sizeof(*p->users));
	if (p->users == NULL) {
		config_nomem(c);
		return false;
	}
	p->nusers = v->n / 2;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct cnode *k = v->items[i], *e = v->items[i + 1];
		struct ig_rule *r = &p->users[i / 2];
		config_apply_defaults(&user_section, r);
		r->kind = IG_RULE_USER;
		config_set_pos(&r->line, &r->col, k);
		if (k->kind == CN_BAD)
			continue;
		if (k->kind != CN_SCALAR) {
			config_error(c, k->mark, "keys must be plain words, not %s", config_kind_str(k));
			continue;
		}
		if (!policy_user_name(c, k, path, p->fold_case, norm))
			continue;
		if (strchr(norm, '*') != NULL) {
			config_error(c, k->mark, "user entry '%s' in '%s' is a pattern: entries are "
			    "exact names; put patterns in a group's users",
			    config_show(k->str, k->len, sb), path);
			continue;
		}
		r->name = strdup(norm);
		if (r->name == NULL) {
			config_nomem(c);
			return false;
		}
		if (snprintf(upath, sizeof(upath), "%s.%s", path,
		    config_show(r->name, strlen(r->name), sb)) < 0)
			upath[0] = '\0';
		if (e->kind == CN_BAD)
			continue;
		if (e->kind != CN_MAP) {
			config_error(c, e->mark, "'%s' must be a mapping, not %s", upath,
			    config_kind_str(e));
			continue;
		}
		config_walk_map(c, e, &user_section, r, upath);
		if (c->nomem)
			return false;
	}

	/* Duplicates after folding ("Alice@x" and "alice@x" are one account
	 * for the backend): sort, then compare neighbours. */
	struct policy_name_ref *refs = calloc(p->nusers, sizeof(*refs));
	size_t nrefs = 0;
	if (refs == NULL) {
		config_nomem(c);
		return false;
	}
	for (size_t i = 0; i < p->nusers; i++)
		if (p->users[i].name != NULL)
			refs[nrefs++] = (struct policy_name_ref){ p->users[i].name, i };
	qsort(refs, nrefs, sizeof(*refs), policy_name_ref_cmp);
	for (size_t i = 1, first = 0; i < nrefs; i++) {
		if (strcmp(refs[i].name, refs[first].name) != 0) {
			first = i;
			continue;
		}
		const struct cnode *k = v->items[2 * refs[i].i];
		const struct cnode *fk = v->items[2 * refs[first].i];
		if (k->len == fk->len && memcmp(k->str, fk->str, k->len) == 0)
			config_error(c, k->mark, "duplicate user entry '%s' in '%s' (first at %zu:%zu)",
			    config_show(k->str, k->len, sb), path, fk->mark.line + 1,
			    fk->mark.column + 1);
		else
			config_error(c, k->mark, "duplicate user entry '%s' in '%s': the same user as "
			    "'%s' at %zu:%zu once folded to lower case (fold_case)",
			    config_show(k->str, k->len, sb), path, config_show(fk->str, fk->len, sb2),
			    fk->mark.line + 1, fk->mark.column + 1);
	}
	free(refs);
	return true;
}

static void
policy_release_users(const struct field *f, void *base)
{
	struct ig_policy_conf *p = base;
	(void)f;
	policy_release_rules(p->users, p->nusers, &user_section);
	p->users = NULL;
	p->nusers = 0;
}

/* After the whole file: the defaults carry every key, and their place. */
static void
policy_finish(const struct cnode *root, struct ig_policy_conf *p)
{
	const struct cnode *k = config_map_key(config_map_get(root, "policy"), "defaults");
	p->defaults.kind = IG_RULE_DEFAULTS;
	p->defaults.name = policy_defaults_name;
	p->defaults.set = IG_RK_ALL;
	if (k != NULL)
		config_set_pos(&p->defaults.line, &p->defaults.col, k);
	p->require_tls = p->defaults.require_tls;
}

/* ---------------------------------------------------------------------- */
/* The rate limiter (ratelimit:) and the control socket (admin:) */

#define RL_CFG_THRESHOLD_MAX 65535u  /* the limiter's counters are 16-bit */
/* Tracked keys: memory is fixed at start, ig_rl_entry_size() bytes each
 * (about 300) per worker loop, so the cap is about 3 GB per worker. */
#define RL_CFG_KEYS_MAX 10000000u
#define RL_CFG_RAISED_MAX 256u
/* ratelimit.state_sync: how soon a change reaches the state file. */
#define RL_CFG_STATE_SYNC_MS (2u * SEC)

/* The whole section's defaults are those of policy/ratelimit.h. */
static void
rl_defaults(void *base)
{
	struct ig_config *cfg = base;
	ig_rl_conf_defaults(&cfg->ratelimit);
	cfg->ratelimit_state_file = NULL;
	cfg->ratelimit_state_sync_ms = RL_CFG_STATE_SYNC_MS;
}

/*
 * A file the proxy creates later (the limiter's state, the control socket):
 * its directory must exist now, the file itself need not. When it exists it
 * must be of type want (S_IFREG or S_IFSOCK): a stale socket is replaced,
 * anything else is refused rather than overwritten.
 */
static void
config_check_new_file(struct cfgctx *c, const struct cnode *v, const char *path, mode_t want)
{
	char sb[CFG_SHOW_MAX], sb2[CFG_SHOW_MAX], dir[CFG_PATH_MAX];
	struct stat st;
	const char *slash = strrchr(v->str, '/');
	if (slash != NULL && slash[1] == '\0') {
		config_error(c, v->mark, "cannot use '%s' for '%s': it names a directory, not a file",
		    config_show(v->str, v->len, sb), path);
		return;
	}
	/* FT_STR keeps names shorter than CFG_PATH_MAX, so dir fits. */
	size_t n = slash == NULL ? 0 : slash == v->str ? 1 : (size_t)(slash - v->str);
	if (n == 0)
		memcpy(dir, ".", 2);
	else {
		memcpy(dir, v->str, n);
		dir[n] = '\0';
	}
	const char *why = stat(dir, &st) != 0 ? strerror(errno) :
	    !S_ISDIR(st.st_mode) ? "not a directory" : NULL;
	if (why != NULL) {
		config_error(c, v->mark, "cannot use '%s' for '%s': directory '%s': %s",
		    config_show(v->str, v->len, sb), path, config_show(dir, strlen(dir), sb2), why);
		return;
	}
	if (lstat(v->str, &st) == 0 && (st.st_mode & S_IFMT) != want)
		config_error(c, v->mark, "cannot use '%s' for '%s': it exists and is not a %s",
		    config_show(v->str, v->len, sb), path,
		    want == S_IFSOCK ? "socket" : "regular file");
}

static void
rl_v_state_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	(void)f;
	(void)base;
	config_check_new_file(c, v, path, S_IFREG);
}

static void
admin_v_socket(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX];
	(void)f;
	(void)base;
	if (v->len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		config_error(c, v->mark, "cannot use '%s' for '%s': a socket name has at most %zu "
		    "bytes", config_show(v->str, v->len, sb), path,
		    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return;
	}
	config_check_new_file(c, v, path, S_IFSOCK);
}

static void
rl_check_tarpit(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_rl_conf *rl = &((const struct ig_config *)base)->ratelimit;
	char a[24], b[24];
	(void)path;
	if (rl->tarpit_base_ms > rl->tarpit_max_ms)
		config_error(c, config_node_or(map, config_map_get(map, "base") ? "base" : "max")->mark,
		    "ratelimit.tarpit.base (%s) must not exceed ratelimit.tarpit.max (%s)",
		    config_fmt_duration(rl->tarpit_base_ms, a, sizeof(a)),
		    config_fmt_duration(rl->tarpit_max_ms, b, sizeof(b)));
}

/* One raised entry: at least one network, and something raised (a value
 * refused as out of range was reported already). */
static void
rl_check_raise(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_rl_raise *r = base;
	const struct cnode *nets = config_map_get(map, "networks");
	const struct cnode *a = config_map_get(map, "address"), *s = config_map_get(map, "spray");
	if (nets != NULL && nets->kind == CN_SEQ && nets->n == 0)
		config_error(c, nets->mark, "'%s.networks' needs at least one entry", path);
	if (r->address == 0 && r->spray == 0 &&
	    (a == NULL || (a->kind == CN_SCALAR && strcmp(a->str, "0") == 0)) &&
	    (s == NULL || (s->kind == CN_SCALAR && strcmp(s->str, "0") == 0)))
		config_warn(c, map->mark, "'%s' has no effect: set address or spray (or both)", path);
}

static void
rl_check(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_config *cfg = base;
	const struct ig_rl_conf *rl = &cfg->ratelimit;
	(void)path;
	if (rl->max_known >= rl->max_keys)
		config_error(c, config_node_or(map, config_map_get(map, "max_known") ? "max_known" :
		    "max_keys")->mark, "ratelimit.max_known (%zu) must be less than "
		    "ratelimit.max_keys (%zu)", rl->max_known, rl->max_keys);
	/* "raised" below the normal threshold makes the network stricter. */
	const struct cnode *seq = config_map_get(map, "raised");
	for (size_t i = 0; seq != NULL && seq->kind == CN_SEQ && seq->n == rl->nraised &&
	    i < rl->nraised; i++) {
		static const char *const what[] = { "address", "spray" };
		const unsigned got[] = { rl->raised[i].address, rl->raised[i].spray };
		const unsigned thr[] = { rl->address.threshold, rl->spray_address.threshold };
		static const char *const base_key[] = { "address", "spray_address" };
		for (size_t j = 0; j < NFIELDS(what); j++) {
			const struct cnode *k = config_map_key(seq->items[i], what[j]);
			if (k != NULL && got[j] != 0 && thr[j] != 0 && got[j] < thr[j])
				config_warn(c, k->mark, "ratelimit.raised[%zu].%s (%u) is below "
				    "ratelimit.%s.threshold (%u): these networks get a lower limit, "
				    "not a higher one", i, what[j], got[j], base_key[j], thr[j]);
		}
	}
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
	policy_finish(map, &cfg->policy);
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
static const struct section listener_section = {
	listener_fields, NFIELDS(listener_fields), NULL, false, NULL
};

static const struct field cert_fields[] = {
	F_STR("cert", struct ig_cert_pair_conf, cert_path, true, config_v_readable_file),
	F_STR("key", struct ig_cert_pair_conf, key_path, true, config_v_key_file),
};
static const struct section cert_section = {
	cert_fields, NFIELDS(cert_fields), NULL, false, NULL
};

static const struct field tls_fields[] = {
	F_LIST("certificates", struct ig_config, certs, ncerts, false, 0, 256, &cert_section, NULL),
	F_ENUM("min_version", struct ig_config, tls_min_version, false, 12, tls_version_names, NULL),
	F_BOOL("strict_sni", struct ig_config, strict_sni, false),
};
/* "tls" fills fields of struct ig_config itself (offset 0). */
static const struct section tls_section = {
	tls_fields, NFIELDS(tls_fields), NULL, false, NULL
};

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
	backend_fields, NFIELDS(backend_fields), config_check_backend, false, NULL
};

#define LIMITS_RAISED_MAX 256u

/* Defined with the policy's value types below. */
static const struct custom_ops netset_ops;

static const struct field conn_raise_fields[] = {
	{ .key = "networks", .type = FT_CUSTOM, .off = offsetof(struct ig_conn_raise, nets),
	  .required = true, .ops = &netset_ops },
	{ .key = "max_connections_per_address", .type = FT_UINT, .required = true,
	  .off = offsetof(struct ig_conn_raise, max_conn_per_address), .min = 1, .max = 1000000 },
};
static const struct section conn_raise_section = {
	conn_raise_fields, NFIELDS(conn_raise_fields), limits_check_raise, false, NULL
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
	F_NUM("preauth_lifetime", FT_DURATION, struct ig_limits, preauth_lifetime_ms,
	    5 * MIN, 1 * SEC, 24 * HOUR),
	F_NUM("max_preauth_commands", FT_UINT, struct ig_limits, max_preauth_commands, 100, 1,
	    100000),
	F_NUM("max_connections_per_address", FT_UINT, struct ig_limits, max_conn_per_address,
	    100, 0, 1000000),
	F_NUM("address_ipv6_prefix", FT_U8, struct ig_limits, conn_ipv6_prefix, 64, 0, 128),
	F_LIST("raised", struct ig_limits, raised, nraised, false, 0, LIMITS_RAISED_MAX,
	    &conn_raise_section, NULL),
};
static const struct section limits_section = {
	limits_fields, NFIELDS(limits_fields), config_check_limits, false, NULL
};

static const struct custom_ops mode_ops = { NULL, policy_store_mode, NULL };
static const struct custom_ops mechs_ops = { policy_init_mechs, policy_store_mechs, NULL };
static const struct custom_ops netset_ops = { NULL, policy_store_netset, policy_release_netset };
static const struct custom_ops patterns_ops = {
	NULL, policy_store_patterns, policy_release_patterns
};
static const struct custom_ops networks_ops = {
	NULL, policy_store_networks, policy_release_networks
};
static const struct custom_ops groups_ops = { NULL, policy_store_groups, policy_release_groups };
static const struct custom_ops users_ops = { NULL, policy_store_users, policy_release_users };

#define F_RULE(k, t, m, d, o, b) \
	{ .key = k, .type = t, .off = offsetof(struct ig_rule, m), .def = d, .ops = o, .bit = b }
/* The keys of a rule: in policy.defaults, each group and each user entry.
 * The defaults are the built-in ones of policy.defaults. */
#define RULE_FIELDS \
	F_RULE("require_tls", FT_BOOL, require_tls, true, NULL, IG_RK_REQUIRE_TLS), \
	F_RULE("mechanisms", FT_CUSTOM, mechanisms, IG_MECH_ALL, &mechs_ops, IG_RK_MECHANISMS), \
	F_RULE("login_command", FT_BOOL, login_command, true, NULL, IG_RK_LOGIN_COMMAND), \
	F_RULE("allow_plaintext_from", FT_CUSTOM, allow_plaintext_from, 0, &netset_ops, \
	    IG_RK_ALLOW_PLAINTEXT_FROM), \
	F_RULE("allow_from", FT_CUSTOM, allow_from, 0, &netset_ops, IG_RK_ALLOW_FROM), \
	F_RULE("deny", FT_BOOL, deny, false, NULL, IG_RK_DENY), \
	F_RULE("mode", FT_CUSTOM, monitor, false, &mode_ops, IG_RK_MODE)

static const struct field rule_fields[] = { RULE_FIELDS };
static const struct field group_fields[] = {
	{ .key = "users", .type = FT_CUSTOM, .required = true, .ops = &patterns_ops },
	RULE_FIELDS,
};
static const struct section defaults_section = {
	rule_fields, NFIELDS(rule_fields), policy_check_rule, true, NULL
};
static const struct section group_section = {
	group_fields, NFIELDS(group_fields), policy_check_rule, true, NULL
};
static const struct section user_section = {
	rule_fields, NFIELDS(rule_fields), policy_check_rule, true, NULL
};

/*
 * Names are resolved while reading, so the keys that others refer to are
 * read first whatever their place in the file: fold_case and networks, then
 * the defaults, then the groups (a user entry inherits from its group).
 */
static const struct field policy_fields[] = {
	{ .key = "mode", .type = FT_CUSTOM, .off = offsetof(struct ig_policy_conf, monitor),
	  .ops = &mode_ops },
	{ .key = "fold_case", .type = FT_BOOL, .off = offsetof(struct ig_policy_conf, fold_case),
	  .def = true, .early = 3 },
	{ .key = "networks", .type = FT_CUSTOM, .ops = &networks_ops, .early = 3 },
	{ .key = "defaults", .type = FT_SECTION, .off = offsetof(struct ig_policy_conf, defaults),
	  .sub = &defaults_section, .early = 2 },
	{ .key = "groups", .type = FT_CUSTOM, .ops = &groups_ops, .early = 1 },
	{ .key = "users", .type = FT_CUSTOM, .ops = &users_ops },
};
static const struct section policy_section = {
	policy_fields, NFIELDS(policy_fields), NULL, false, NULL
};

static const struct field rl_limit_fields[] = {
	F_NUM("threshold", FT_UINT, struct ig_rl_limit, threshold, 0, 0, RL_CFG_THRESHOLD_MAX),
	F_NUM("window", FT_DURATION, struct ig_rl_limit, window_ms, 0, 1 * SEC, 24 * HOUR),
	F_NUM("block", FT_DURATION, struct ig_rl_limit, block_ms, 0, 1 * SEC, 720 * HOUR),
};
/* Defaults: the enclosing ratelimit section's (a partial limit keeps the
 * other fields). */
static const struct section rl_limit_section = {
	rl_limit_fields, NFIELDS(rl_limit_fields), NULL, false, NULL
};

static const struct field rl_tarpit_fields[] = {
	F_NUM("base", FT_DURATION, struct ig_config, ratelimit.tarpit_base_ms, 0, 0, 60 * SEC),
	F_NUM("max", FT_DURATION, struct ig_config, ratelimit.tarpit_max_ms, 0, 0, 60 * SEC),
};
/* "tarpit" fills fields of struct ig_config (offset 0), like "tls". */
static const struct section rl_tarpit_section = {
	rl_tarpit_fields, NFIELDS(rl_tarpit_fields), rl_check_tarpit, false, NULL
};

static const struct field rl_raise_fields[] = {
	{ .key = "networks", .type = FT_CUSTOM, .off = offsetof(struct ig_rl_raise, nets),
	  .required = true, .ops = &netset_ops },
	F_NUM("address", FT_UINT, struct ig_rl_raise, address, 0, 0, RL_CFG_THRESHOLD_MAX),
	F_NUM("spray", FT_UINT, struct ig_rl_raise, spray, 0, 0, RL_CFG_THRESHOLD_MAX),
};
static const struct section rl_raise_section = {
	rl_raise_fields, NFIELDS(rl_raise_fields), rl_check_raise, false, NULL
};

#define F_RL_LIMIT(k, m) \
	F_SECTION(k, struct ig_config, ratelimit.m, false, &rl_limit_section)
/*
 * "ratelimit" fills struct ig_config (offset 0): the limiter's conf and the
 * state file next to it. Every default is ig_rl_conf_defaults()'s (the F_NUM
 * defaults below are not used). Network names need policy.networks, which
 * the root walks first.
 */
static const struct field rl_fields[] = {
	F_BOOL("enabled", struct ig_config, ratelimit.enabled, true),
	F_RL_LIMIT("address", address),
	F_RL_LIMIT("spray_address", spray_address),
	F_RL_LIMIT("user", user),
	F_RL_LIMIT("user_address", user_address),
	F_RL_LIMIT("user_circuit", user_circuit),
	F_RL_LIMIT("password_spray", password_spray),
	F_NUM("ipv4_prefix", FT_U8, struct ig_config, ratelimit.ipv4_prefix, 0, 0, 32),
	F_NUM("ipv6_prefix", FT_U8, struct ig_config, ratelimit.ipv6_prefix, 0, 0, 128),
	{ .key = "exempt", .type = FT_CUSTOM, .off = offsetof(struct ig_config, ratelimit.exempt),
	  .ops = &netset_ops },
	F_LIST("raised", struct ig_config, ratelimit.raised, ratelimit.nraised, false, 0,
	    RL_CFG_RAISED_MAX, &rl_raise_section, NULL),
	F_NUM("known_address_ttl", FT_DURATION64, struct ig_config, ratelimit.known_ttl_ms, 0,
	    1 * MIN, 8760ull * HOUR),
	{ .key = "tarpit", .type = FT_SECTION, .off = 0, .sub = &rl_tarpit_section },
	F_NUM("max_connection_failures", FT_UINT, struct ig_config, ratelimit.max_conn_failures,
	    0, 1, 1000),
	F_NUM("max_keys", FT_SIZE, struct ig_config, ratelimit.max_keys, 0, 16, RL_CFG_KEYS_MAX),
	F_NUM("max_known", FT_SIZE, struct ig_config, ratelimit.max_known, 0, 0,
	    RL_CFG_KEYS_MAX - 1),
	F_STR("state_file", struct ig_config, ratelimit_state_file, false, rl_v_state_file),
	F_NUM("state_sync", FT_DURATION, struct ig_config, ratelimit_state_sync_ms,
	    RL_CFG_STATE_SYNC_MS, 100, HOUR),
};
static const struct section rl_section = {
	rl_fields, NFIELDS(rl_fields), rl_check, false, rl_defaults
};

static const struct field admin_fields[] = {
	F_STR("socket", struct ig_config, admin_socket, false, admin_v_socket),
};
/* "admin" fills fields of struct ig_config (offset 0). */
static const struct section admin_section = {
	admin_fields, NFIELDS(admin_fields), NULL, false, NULL
};

static const struct field root_fields[] = {
	F_ENUM("log_level", struct ig_config, log_level, false, IG_LOG_INFO, log_level_names, NULL),
	F_LIST("listeners", struct ig_config, listeners, nlisteners, true, 1, 64,
	    &listener_section, config_check_listeners),
	{ .key = "tls", .type = FT_SECTION, .off = 0, .sub = &tls_section },
	F_SECTION("backend", struct ig_config, backend, true, &backend_section),
	F_SECTION("limits", struct ig_config, limits, false, &limits_section),
	/* Early: ratelimit refers to policy.networks. */
	{ .key = "policy", .type = FT_SECTION, .off = offsetof(struct ig_config, policy),
	  .sub = &policy_section, .early = 1 },
	{ .key = "ratelimit", .type = FT_SECTION, .off = 0, .sub = &rl_section },
	{ .key = "admin", .type = FT_SECTION, .off = 0, .sub = &admin_section },
};
static const struct section root_section = {
	root_fields, NFIELDS(root_fields), config_check_root, false, NULL
};

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
	c.policy = &cfg->policy;
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
