/*
 * The schema engine (see config/schema.h): messages with their place,
 * scalar conversion with bounds, defaults, freeing, "did you mean", and the
 * walk of one mapping against a section's table.
 */
#include "config/schema.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/log.h"

/* One message, kept until the end so that all are printed in file order. */
struct cfgmsg {
	size_t line, column; /* 0-based, from yaml_mark_t */
	size_t seq;          /* order of discovery, for a stable sort */
	char *text;          /* "FILE:L:C: ..." without the newline */
};

void
ig_cfg_nomem(struct cfgctx *c)
{
	if (!c->nomem)
		fprintf(c->errf, "%s: out of memory\n", c->name);
	c->nomem = true;
}

void
ig_cfg_report(struct cfgctx *c, bool warning, yaml_mark_t m, const char *fmt, ...)
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
			ig_cfg_nomem(c);
			return;
		}
		c->msgs = msgs;
		c->capmsgs = cap;
	}
	char *dup = strdup(text);
	if (dup == NULL) {
		ig_cfg_nomem(c);
		return;
	}
	c->msgs[c->nmsgs] = (struct cfgmsg){ m.line, m.column, c->nmsgs, dup };
	c->nmsgs++;
}

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
void
ig_cfg_flush(struct cfgctx *c)
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
const char *
ig_cfg_show(const char *s, size_t len, char buf[static CFG_SHOW_MAX])
{
	return ig_log_escape((const uint8_t *)s, len, buf, CFG_SHOW_MAX);
}

void *
ig_cfg_at(void *base, size_t off)
{
	return (char *)base + off;
}

static char *
config_get_str(void *base, size_t off)
{
	char *s;
	memcpy(&s, ig_cfg_at(base, off), sizeof(s)); /* also for "const char *" fields */
	return s;
}

static void
config_set_str(void *base, size_t off, char *s)
{
	memcpy(ig_cfg_at(base, off), &s, sizeof(s));
}

static void
config_set_int(void *base, size_t off, int v)
{
	memcpy(ig_cfg_at(base, off), &v, sizeof(v));
}

void
ig_cfg_apply_defaults(const struct section *sec, void *base)
{
	if (sec->defaults != NULL) {
		sec->defaults(base);
		return;
	}
	for (size_t i = 0; i < sec->nfields; i++) {
		const struct field *f = &sec->fields[i];
		void *p = ig_cfg_at(base, f->off);
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
			ig_cfg_apply_defaults(f->sub, p);
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

void
ig_cfg_free_section(const struct section *sec, void *base)
{
	for (size_t i = 0; i < sec->nfields; i++) {
		const struct field *f = &sec->fields[i];
		switch (f->type) {
		case FT_STR:
			free(config_get_str(base, f->off));
			config_set_str(base, f->off, NULL);
			break;
		case FT_SECTION:
			ig_cfg_free_section(f->sub, ig_cfg_at(base, f->off));
			break;
		case FT_LIST: {
			char *arr = config_get_str(base, f->off);
			size_t n = *(size_t *)ig_cfg_at(base, f->count_off);
			for (size_t j = 0; arr != NULL && j < n; j++)
				ig_cfg_free_section(f->sub, arr + j * f->elem_size);
			free(arr);
			config_set_str(base, f->off, NULL);
			*(size_t *)ig_cfg_at(base, f->count_off) = 0;
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
size_t
ig_cfg_edit_distance(const char *a, size_t la, const char *b)
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
		size_t d = ig_cfg_edit_distance(key->str, key->len, sec->fields[i].key);
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
const char *
ig_cfg_fmt_duration(uint64_t ms, char *buf, size_t bufsz)
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

/* True when v is a non-null scalar without NUL bytes; else reports why. */
bool
ig_cfg_scalar_ok(struct cfgctx *c, const struct cnode *v, const char *path)
{
	if (v->kind != CN_SCALAR) {
		config_error(c, v->mark, "'%s' must be a single value, not %s", path, ig_cfg_kind_str(v));
		return false;
	}
	if (ig_cfg_node_is_null(v)) {
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
	void *p = ig_cfg_at(base, f->off);

	if (f->type == FT_SECTION) {
		if (ig_cfg_node_is_null(v))
			return true; /* "limits:" alone: every default */
		if (v->kind != CN_MAP) {
			config_error(c, v->mark, "'%s' must be a mapping, not %s", path, ig_cfg_kind_str(v));
			return false;
		}
		ig_cfg_walk_map(c, v, f->sub, p, path);
		return true;
	}
	if (f->type == FT_LIST) {
		size_t n = v->kind == CN_SEQ ? v->n : 0;
		if (v->kind != CN_SEQ && !ig_cfg_node_is_null(v)) {
			config_error(c, v->mark, "'%s' must be a sequence, not %s", path, ig_cfg_kind_str(v));
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
			ig_cfg_nomem(c);
			return false;
		}
		config_set_str(base, f->off, arr);
		*(size_t *)ig_cfg_at(base, f->count_off) = n;
		for (size_t i = 0; i < n; i++) {
			char epath[CFG_KEYPATH_MAX];
			const struct cnode *e = v->items[i];
			/* Schema paths are short: truncation would only cut a message. */
			if (snprintf(epath, sizeof(epath), "%s[%zu]", path, i) < 0)
				epath[0] = '\0';
			ig_cfg_apply_defaults(f->sub, arr + i * f->elem_size);
			if (e->kind == CN_BAD)
				continue;
			if (e->kind != CN_MAP) {
				config_error(c, e->mark, "'%s' must be a mapping, not %s", epath,
				    ig_cfg_kind_str(e));
				continue;
			}
			ig_cfg_walk_map(c, e, f->sub, arr + i * f->elem_size, epath);
		}
		if (f->list_check != NULL)
			f->list_check(c, v, base, path);
		return true;
	}

	if (f->type == FT_CUSTOM)
		return f->ops->store(c, f, v, base, path);

	/* Scalars from here on. */
	if (!ig_cfg_scalar_ok(c, v, path))
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
			ig_cfg_nomem(c);
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
		if (ig_cfg_parse_u64(s, UINT64_MAX, &u) != 0) {
			config_error(c, v->mark, "invalid value '%s' for '%s': expected a whole number",
			    ig_cfg_show(s, v->len, sb), path);
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
		    ig_cfg_parse_duration(s, UINT64_MAX, &u) != 0) {
			config_error(c, v->mark,
			    "invalid duration '%s' for '%s': expected a number with ms, s, m or h",
			    ig_cfg_show(s, v->len, sb), path);
			return false;
		}
		if (f->type == FT_DURATION64) {
			if (u < f->min || u > f->max) {
				char lo[24], hi[24];
				config_error(c, v->mark, "'%s' must be between %s and %s (got %s)", path,
				    ig_cfg_fmt_duration(f->min, lo, sizeof(lo)),
				    ig_cfg_fmt_duration(f->max, hi, sizeof(hi)), s);
				return false;
			}
			*(uint64_t *)p = u;
			return true;
		}
		if (ms < f->min || ms > f->max) {
			char lo[24], hi[24];
			config_error(c, v->mark, "'%s' must be between %s and %s (got %s)", path,
			    ig_cfg_fmt_duration(f->min, lo, sizeof(lo)), ig_cfg_fmt_duration(f->max, hi, sizeof(hi)),
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
		    ig_cfg_show(s, v->len, sb), path);
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
		    ig_cfg_show(s, v->len, sb), path, config_enum_names(f->names, names, sizeof(names)));
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
void
ig_cfg_walk_map(struct cfgctx *c, const struct cnode *map, const struct section *sec, void *base,
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
					    ig_cfg_kind_str(k));
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
				    ig_cfg_show(k->str, k->len, sb), *path ? " in '" : "", path, *path ? "'" : "",
				    first->mark.line + 1, first->mark.column + 1);
				continue;
			}
			if (fi == sec->nfields) {
				const char *hint = config_suggest(sec, k);
				config_error(c, k->mark, "unknown key '%s'%s%s%s%s%s%s",
				    ig_cfg_show(k->str, k->len, sb), *path ? " in '" : "", path, *path ? "'" : "",
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

void
ig_cfg_set_pos(unsigned *line, unsigned *col, const struct cnode *n)
{
	*line = n->mark.line < UINT_MAX ? (unsigned)n->mark.line + 1 : UINT_MAX;
	*col = n->mark.column < UINT_MAX ? (unsigned)n->mark.column + 1 : UINT_MAX;
}
