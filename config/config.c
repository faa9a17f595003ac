/*
 * The configuration loader: YAML text -> one immutable struct ig_config.
 *
 * Two passes over the input, one over the schema:
 *  1. libyaml's event parser builds a small tree of nodes that keep their
 *     yaml_mark_t (config/tree.c).
 *  2. ig_cfg_walk_map() walks that tree against static tables
 *     (config/schema.c); the root table below names the sections, which
 *     live in files of their own (core.c, policy.c and policy_values.c,
 *     ratelimit.c, apppass.c). Scalars and addresses are parsed in parse.c.
 *
 * Every problem is printed as "FILE:LINE:COL: message" (1-based; libyaml's
 * marks are 0-based), all of them, and the load then fails as a whole.
 * Warnings ("FILE:LINE:COL: warning: message") do not fail the load.
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/schema.h"
#include "policy/decide.h"
#include "util/err.h"
#include "util/priv.h"

#define CFG_FILE_MAX (16u << 20)  /* largest config file read */

_Static_assert(sizeof(enum ig_log_level) == sizeof(int), "enums are stored as int");

/*
 * credentials: app_passwords or both in a rule needs what the proxy logs
 * in with once it has checked an app password: backend.master_login.
 * Reported at the rule's credentials value, naming the rule.
 */
static void
config_check_credentials(struct cfgctx *c, const struct cnode *map, const struct ig_config *cfg)
{
	bool master = cfg->backend.master_login.on;
	bool store = cfg->apppass.store != NULL;
	if (master && store)
		return;
	const struct ig_policy_conf *p = &cfg->policy;
	const struct cnode *pol = ig_cfg_map_get(map, "policy");
	const struct cnode *groups = ig_cfg_map_get(pol, "groups");
	const struct cnode *users = ig_cfg_map_get(pol, "users");
	char sb[CFG_SHOW_MAX], rpath[CFG_KEYPATH_MAX];
	for (size_t i = 0; i < 1 + p->ngroups + p->nusers; i++) {
		const struct ig_rule *r;
		const struct cnode *rmap;
		if (i == 0) {
			r = &p->defaults;
			rmap = ig_cfg_map_get(pol, "defaults");
			snprintf(rpath, sizeof(rpath), "policy.defaults");
		} else if (i - 1 < p->ngroups) {
			r = &p->groups[i - 1];
			rmap = groups != NULL && groups->kind == CN_MAP && 2 * (i - 1) + 1 < groups->n ?
			    groups->items[2 * (i - 1) + 1] : NULL;
			snprintf(rpath, sizeof(rpath), "policy.groups.%s",
			    r->name != NULL ? ig_cfg_show(r->name, strlen(r->name), sb) : "?");
		} else {
			size_t j = i - 1 - p->ngroups;
			r = &p->users[j];
			rmap = users != NULL && users->kind == CN_MAP && 2 * j + 1 < users->n ?
			    users->items[2 * j + 1] : NULL;
			snprintf(rpath, sizeof(rpath), "policy.users.%s",
			    r->name != NULL ? ig_cfg_show(r->name, strlen(r->name), sb) : "?");
		}
		const struct cnode *v = ig_cfg_map_get(rmap, "credentials");
		if (r->credentials == IG_CRED_PASSWORD || v == NULL)
			continue;
		if (!master)
			config_error(c, v->mark, "'%s.credentials' is %s, which needs "
			    "backend.master_login: the proxy checks the app password itself, then "
			    "logs in to the backend as the master user for this user", rpath,
			    ig_credentials_str(r->credentials));
		else
			config_error(c, v->mark, "'%s.credentials' is %s, which needs "
			    "app_passwords.store: where the app passwords are kept", rpath,
			    ig_credentials_str(r->credentials));
	}
}

static void
config_check_root(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	struct ig_config *cfg = base;
	(void)path;
	if (cfg->nlisteners > 0 && cfg->ncerts == 0) {
		const struct cnode *tls = ig_cfg_map_get(map, "tls");
		const struct cnode *at_node = ig_cfg_map_get(tls, "certificates");
		if (at_node == NULL)
			at_node = tls != NULL ? tls : map;
		config_error(c, at_node->mark,
		    "'tls.certificates' needs at least one certificate (every listener uses TLS)");
	}
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].max_sessions == 0)
			cfg->listeners[i].max_sessions = cfg->limits.max_sessions;
	ig_cfg_policy_finish(map, &cfg->policy);
	config_check_credentials(c, map, cfg);
	const struct cnode *g = ig_cfg_map_get(map, "group");
	if (g != NULL && ig_cfg_map_get(map, "user") == NULL)
		config_error(c, g->mark, "'group' needs 'user': the proxy changes its group "
		    "only when it changes its user");
	const struct cnode *log = ig_cfg_map_get(map, "log");
	const struct cnode *level = ig_cfg_map_get(log, "level");
	if (level != NULL && ig_cfg_map_get(map, "log_level") != NULL)
		config_error(c, level->mark, "'log.level' and 'log_level' are the same setting: "
		    "keep one");
	/* "app_passwords:" alone would walk nothing, not even its required key. */
	const struct cnode *ap = ig_cfg_map_get(map, "app_passwords");
	if (ap != NULL && ig_cfg_node_is_null(ap))
		config_error(c, ap->mark, "missing required key 'store' in 'app_passwords'");
}

/* user: an existing user, not root. Its primary group is the default. */
static void
config_v_user(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_config *cfg = base;
	char sb[CFG_SHOW_MAX], err[128];
	gid_t primary = 0;
	(void)f;
	int rc = ig_priv_user(v->str, &cfg->user_uid, &primary, err, sizeof(err));
	if (rc != 0) {
		config_error(c, v->mark, "cannot use '%s' for '%s': %s", ig_cfg_show(v->str,
		    v->len, sb), path, err);
		return;
	}
	if (cfg->user_uid == 0) {
		config_error(c, v->mark, "'%s' cannot be root (uid 0): name the unprivileged "
		    "user the proxy runs as after binding", path);
		return;
	}
	if (cfg->group == NULL)
		cfg->user_gid = primary;
}

static void
config_v_group(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_config *cfg = base;
	char sb[CFG_SHOW_MAX], err[128];
	(void)f;
	if (ig_priv_group(v->str, &cfg->user_gid, err, sizeof(err)) != 0)
		config_error(c, v->mark, "cannot use '%s' for '%s': %s", ig_cfg_show(v->str,
		    v->len, sb), path, err);
}

static const struct enum_name log_level_names[] = {
	{ "error", IG_LOG_ERROR }, { "warn", IG_LOG_WARN },
	{ "info", IG_LOG_INFO }, { "debug", IG_LOG_DEBUG }, { NULL, 0 },
};

static const struct field root_fields[] = {
	F_ENUM("log_level", struct ig_config, log_level, false, IG_LOG_INFO, log_level_names, NULL),
	{ .key = "workers", .type = FT_CUSTOM, .off = offsetof(struct ig_config, workers),
	  .ops = &ig_cfg_workers_ops },
	F_LIST("listeners", struct ig_config, listeners, nlisteners, true, 1, 64,
	    &ig_cfg_listener_section, ig_cfg_check_listeners),
	{ .key = "tls", .type = FT_SECTION, .off = 0, .sub = &ig_cfg_tls_section },
	F_SECTION("backend", struct ig_config, backend, true, &ig_cfg_backend_section),
	F_SECTION("limits", struct ig_config, limits, false, &ig_cfg_limits_section),
	/* Early: ratelimit refers to policy.networks. */
	{ .key = "policy", .type = FT_SECTION, .off = offsetof(struct ig_config, policy),
	  .sub = &ig_cfg_policy_section, .early = 1 },
	{ .key = "ratelimit", .type = FT_SECTION, .off = 0, .sub = &ig_cfg_rl_section },
	{ .key = "admin", .type = FT_SECTION, .off = 0, .sub = &ig_cfg_admin_section },
	/* In either order: user sets the primary group only when no group was stored. */
	F_STR("group", struct ig_config, group, false, config_v_group),
	F_STR("user", struct ig_config, user, false, config_v_user),
	{ .key = "log", .type = FT_SECTION, .off = 0, .sub = &ig_cfg_log_section },
	F_SECTION("app_passwords", struct ig_config, apppass, false, &ig_cfg_apppass_section),
};
static const struct section root_section = {
	root_fields, NFIELDS(root_fields), config_check_root, false, NULL
};

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
	ig_cfg_free_section(&root_section, cfg);
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
	int rc = ig_cfg_tree_build(&c, (const unsigned char *)(yaml ? yaml : ""), len, &root);
	if (rc != 0)
		goto done;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		ig_cfg_nomem(&c);
		goto done;
	}
	ig_cfg_apply_defaults(&root_section, cfg);
	c.policy = &cfg->policy;
	if (root == NULL || ig_cfg_node_is_null(root))
		config_error(&c, root != NULL ? root->mark : c.end_mark, "the configuration is empty");
	else if (root->kind != CN_MAP)
		config_error(&c, root->mark, "the configuration must be a mapping of sections, not %s",
		    ig_cfg_kind_str(root));
	else
		ig_cfg_walk_map(&c, root, &root_section, cfg, "");
	if (!c.nomem && c.nerr == 0) {
		cfg->path = strdup(c.name);
		if (cfg->path == NULL)
			ig_cfg_nomem(&c);
	}
done:
	ig_cfg_tree_free(root);
	ig_cfg_flush(&c);
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
