/*
 * Private to config/: the schema engine. Static tables (struct section of
 * struct field, after nginx's ngx_command_t) describe each section: every
 * key has a type, an offset into the struct it fills, a required flag,
 * bounds and an optional validate_fn; each section has an optional check_fn
 * for cross-field rules. ig_cfg_walk_map() walks the YAML tree (tree.h)
 * against them; defaults and freeing are driven by the same tables, so a
 * new key is one table row (plus a struct field).
 *
 * Messages go through one context (struct cfgctx): every problem is kept
 * as "FILE:LINE:COL: message" (1-based; libyaml's marks are 0-based) and
 * all are printed in file order at the end (ig_cfg_flush()).
 *
 * The sections live in files of their own: core.c (listeners, tls,
 * backend, limits), policy.c and policy_values.c, ratelimit.c (ratelimit,
 * admin), apppass.c (app_passwords); config.c has the root and the entry
 * points.
 */
#ifndef IG_CONFIG_SCHEMA_H
#define IG_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <yaml.h>

#include "config/config.h"
#include "config/parse.h"
#include "config/tree.h"
#include "policy/policy_types.h"

#define CFG_DEPTH_MAX 32          /* nesting levels in the YAML tree */
#define CFG_ERRORS_SHOWN 100      /* then "N more errors" */
#define CFG_PATH_MAX 4096         /* file names in the config */
#define CFG_KEYPATH_MAX 256       /* "listeners[3].max_sessions" */
#define CFG_SHOW_MAX 72           /* escaped user text in messages */

/* ---- messages ----------------------------------------------------------- */

struct cfgmsg;

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

#define config_error(c, m, ...) ig_cfg_report((c), false, (m), __VA_ARGS__)
#define config_warn(c, m, ...) ig_cfg_report((c), true, (m), __VA_ARGS__)

/* Reports a problem (or a warning) at m; printed by ig_cfg_flush(). */
void ig_cfg_report(struct cfgctx *c, bool warning, yaml_mark_t m, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Out of memory: said once, and the load fails. */
void ig_cfg_nomem(struct cfgctx *c);

/* Prints every message in file order (and how many more were not shown),
 * then frees them. */
void ig_cfg_flush(struct cfgctx *c);

/* User text, escaped and shortened for a message; returns buf. */
const char *ig_cfg_show(const char *s, size_t len, char buf[static CFG_SHOW_MAX]);

/* ---- the schema --------------------------------------------------------- */

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

/* base + off, for a field. */
void *ig_cfg_at(void *base, size_t off);

/* Stores the defaults of sec into base (its defaults hook, or every
 * field's def, nested sections included). */
void ig_cfg_apply_defaults(const struct section *sec, void *base);

/* Frees what the fields of sec own in base and leaves them empty. */
void ig_cfg_free_section(const struct section *sec, void *base);

/*
 * Walks one mapping against sec: every key must be known ("did you mean"
 * when it is close to one) and appear once, every required key must be
 * present. Values go into base. Keys are taken in file order, except that
 * fields marked early go first (highest first). path is the key path shown
 * in messages ("" at the root).
 */
void ig_cfg_walk_map(struct cfgctx *c, const struct cnode *map, const struct section *sec,
    void *base, const char *path);

/* True when v is a non-null scalar without NUL bytes; else reports why. */
bool ig_cfg_scalar_ok(struct cfgctx *c, const struct cnode *v, const char *path);

/* Decimal digits only (no sign, no YAML 1.1 0x/0o/_ forms), at most max.
 * Returns 0 or IG_EINVAL. */
int ig_cfg_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* The largest unit that divides ms exactly: 600000 -> "10m". */
const char *ig_cfg_fmt_duration(uint64_t ms, char *buf, size_t bufsz);

/* Bounded edit distance for "did you mean" (SIZE_MAX when too long). */
size_t ig_cfg_edit_distance(const char *a, size_t la, const char *b);

/* A node's place as 1-based line and column. */
void ig_cfg_set_pos(unsigned *line, unsigned *col, const struct cnode *n);

/* ---- the sections ------------------------------------------------------- */

/* core.c */
extern const struct section ig_cfg_listener_section;
extern const struct section ig_cfg_tls_section;      /* fills struct ig_config */
extern const struct section ig_cfg_backend_section;
extern const struct section ig_cfg_limits_section;
/* listeners: names and addresses unique (a list_check). */
void ig_cfg_check_listeners(struct cfgctx *c, const struct cnode *seq, void *base,
    const char *path);
/* workers: auto or a count. */
extern const struct custom_ops ig_cfg_workers_ops;
extern const struct section ig_cfg_log_section;      /* fills struct ig_config */

/* policy.c */
extern const struct section ig_cfg_policy_section;
/* policy_values.c: a list of network names and CIDRs into a struct
 * ig_netset (rules, limits.raised and the ratelimit section). */
extern const struct custom_ops ig_cfg_netset_ops;
/* After the whole file: the defaults carry every key, and their place. */
void ig_cfg_policy_finish(const struct cnode *root, struct ig_policy_conf *p);

/* ratelimit.c */
extern const struct section ig_cfg_rl_section;       /* fills struct ig_config */
extern const struct section ig_cfg_admin_section;    /* fills struct ig_config */
/*
 * A file the proxy creates later (v names it; path is the key): its
 * directory must exist now, the file itself need not; when it exists it
 * must be of type want (S_IFREG or S_IFSOCK). Reports its own errors.
 */
void ig_cfg_check_new_file(struct cfgctx *c, const struct cnode *v, const char *path,
    mode_t want);

/* apppass.c */
extern const struct section ig_cfg_apppass_section;  /* struct ig_apppass_conf */

#endif /* IG_CONFIG_SCHEMA_H */
