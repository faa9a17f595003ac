/*
 * Private to config/: the YAML document as a small tree of nodes that keep
 * their libyaml marks (line and column), so every message can point at the
 * place in the file. Built in one pass over libyaml's events.
 */
#ifndef IG_CONFIG_TREE_H
#define IG_CONFIG_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

struct cfgctx;

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

/*
 * Parses the whole stream into *root (NULL for an empty stream). Aliases are
 * refused at their place and nesting is bounded (CFG_DEPTH_MAX), so hostile
 * input cannot blow the stack. Returns 0 when a tree was built (possibly
 * with reported errors such as aliases), IG_ECONFIG after a syntax error
 * (nothing to walk), IG_ENOMEM. Problems are reported to c.
 */
int ig_cfg_tree_build(struct cfgctx *c, const unsigned char *buf, size_t len,
    struct cnode **root);

/* Frees n and everything under it; NULL is a no-op. */
void ig_cfg_tree_free(struct cnode *n);

/* True for a plain "", "~" or "null" scalar (YAML's null). */
bool ig_cfg_node_is_null(const struct cnode *n);

/* The value of key in map, or NULL (also when map is NULL or no mapping). */
const struct cnode *ig_cfg_map_get(const struct cnode *map, const char *key);

/* The key node (not the value) of key in map, or NULL. */
const struct cnode *ig_cfg_map_key(const struct cnode *map, const char *key);

/* The first earlier key in map (before item i) equal to map->items[i]. */
const struct cnode *ig_cfg_map_earlier(const struct cnode *map, size_t i);

/* The value of key in map, else map itself: where to point a message. */
const struct cnode *ig_cfg_node_or(const struct cnode *map, const char *key);

/* "a scalar", "nothing", "a sequence", "a mapping", "an alias". */
const char *ig_cfg_kind_str(const struct cnode *n);

#endif /* IG_CONFIG_TREE_H */
