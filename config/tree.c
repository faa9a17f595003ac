/*
 * The YAML tree: libyaml's event parser builds a small tree of nodes that
 * keep their yaml_mark_t. Aliases are refused here, at their location, and
 * nesting is bounded so hostile input cannot blow the stack.
 */
#include "config/tree.h"

#include <stdlib.h>
#include <string.h>

#include "config/schema.h"
#include "util/err.h"

void
ig_cfg_tree_free(struct cnode *n)
{
	/* Depth is bounded by CFG_DEPTH_MAX, so recursion is fine. */
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++)
		ig_cfg_tree_free(n->items[i]);
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
			ig_cfg_tree_free(n);
			return IG_EINVAL;
		}
		*root = n;
		return 0;
	}
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct cnode **items = realloc(parent->items, cap * sizeof(*items));
		if (items == NULL) {
			ig_cfg_tree_free(n);
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
		ig_cfg_nomem(c);
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
int
ig_cfg_tree_build(struct cfgctx *c, const unsigned char *buf, size_t len, struct cnode **root)
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
		ig_cfg_nomem(c);
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
				ig_cfg_nomem(c);
				rc = IG_ENOMEM;
				break;
			}
		}
	}
	yaml_parser_delete(&p);
	if (rc != 0) {
		ig_cfg_tree_free(*root);
		*root = NULL;
	}
	return rc;
}

bool
ig_cfg_node_is_null(const struct cnode *n)
{
	return n->kind == CN_SCALAR && n->plain &&
	    (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
	    strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
}

/* The value of key in map, or NULL. */
const struct cnode *
ig_cfg_map_get(const struct cnode *map, const char *key)
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

const char *
ig_cfg_kind_str(const struct cnode *n)
{
	switch (n->kind) {
	case CN_SCALAR: return ig_cfg_node_is_null(n) ? "nothing" : "a scalar";
	case CN_SEQ: return "a sequence";
	case CN_MAP: return "a mapping";
	case CN_BAD: return "an alias";
	}
	return "?";
}

const struct cnode *
ig_cfg_node_or(const struct cnode *map, const char *key)
{
	const struct cnode *v = ig_cfg_map_get(map, key);
	return v != NULL ? v : map;
}

/* The key node (not the value) of key in map, or NULL. */
const struct cnode *
ig_cfg_map_key(const struct cnode *map, const char *key)
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
const struct cnode *
ig_cfg_map_earlier(const struct cnode *map, size_t i)
{
	const struct cnode *k = map->items[i];
	for (size_t j = 0; j < i; j += 2) {
		const struct cnode *pk = map->items[j];
		if (pk->kind == CN_SCALAR && pk->len == k->len && memcmp(pk->str, k->str, k->len) == 0)
			return pk;
	}
	return NULL;
}
