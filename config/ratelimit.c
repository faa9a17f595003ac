/*
 * The ratelimit section (the limiter's configuration, policy/ratelimit.h,
 * and its state file) and the admin section (the control socket, the
 * HTTP endpoint for metrics and health).
 */
#include "config/schema.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "config/parse.h"
#include "policy/ratelimit.h"

#define RL_CFG_THRESHOLD_MAX 65535u  /* the limiter's counters are 16-bit */
/* Tracked keys: memory is fixed at start, ig_rl_entry_size() bytes each
 * (about 300) per worker loop, so the cap is about 3 GB per worker. */
#define RL_CFG_KEYS_MAX 10000000u
#define RL_CFG_RAISED_MAX 256u
/* ratelimit.state_sync: how soon a change reaches the state file. */
#define RL_CFG_STATE_SYNC_MS (2u * SEC)
/* admin.ready_cert_days: /readyz fails this close to a certificate's end. */
#define ADMIN_READY_CERT_DAYS 7u
/* admin.probe_interval: how often the backend is probed for /readyz. */
#define ADMIN_PROBE_INTERVAL_MS (10u * SEC)

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
void
ig_cfg_check_new_file(struct cfgctx *c, const struct cnode *v, const char *path,
    mode_t want)
{
	char sb[CFG_SHOW_MAX], sb2[CFG_SHOW_MAX], dir[CFG_PATH_MAX];
	struct stat st;
	const char *slash = strrchr(v->str, '/');
	if (slash != NULL && slash[1] == '\0') {
		config_error(c, v->mark, "cannot use '%s' for '%s': it names a directory, not a file",
		    ig_cfg_show(v->str, v->len, sb), path);
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
		    ig_cfg_show(v->str, v->len, sb), path, ig_cfg_show(dir, strlen(dir), sb2), why);
		return;
	}
	if (lstat(v->str, &st) == 0 && (st.st_mode & S_IFMT) != want)
		config_error(c, v->mark, "cannot use '%s' for '%s': it exists and is not a %s",
		    ig_cfg_show(v->str, v->len, sb), path,
		    want == S_IFSOCK ? "socket" : "regular file");
}

static void
rl_v_state_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	(void)f;
	(void)base;
	ig_cfg_check_new_file(c, v, path, S_IFREG);
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
		    "bytes", ig_cfg_show(v->str, v->len, sb), path,
		    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return;
	}
	ig_cfg_check_new_file(c, v, path, S_IFSOCK);
}

static void
admin_v_listen(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_config *cfg = base;
	const char *why;
	char sb[CFG_SHOW_MAX];
	(void)f;
	if (ig_cfg_listen_parse(v->str, &cfg->admin_listen_addr, &cfg->admin_listen_addrlen,
	        &why) != 0) {
		config_error(c, v->mark, "invalid listen address '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, why);
		cfg->admin_listen_addrlen = 0;
	}
}

static void
rl_check_tarpit(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_rl_conf *rl = &((const struct ig_config *)base)->ratelimit;
	char a[24], b[24];
	(void)path;
	if (rl->tarpit_base_ms > rl->tarpit_max_ms)
		config_error(c, ig_cfg_node_or(map, ig_cfg_map_get(map, "base") ? "base" : "max")->mark,
		    "ratelimit.tarpit.base (%s) must not exceed ratelimit.tarpit.max (%s)",
		    ig_cfg_fmt_duration(rl->tarpit_base_ms, a, sizeof(a)),
		    ig_cfg_fmt_duration(rl->tarpit_max_ms, b, sizeof(b)));
}

/* One raised entry: at least one network, and something raised (a value
 * refused as out of range was reported already). */
static void
rl_check_raise(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_rl_raise *r = base;
	const struct cnode *nets = ig_cfg_map_get(map, "networks");
	const struct cnode *a = ig_cfg_map_get(map, "address"), *s = ig_cfg_map_get(map, "spray");
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
		config_error(c, ig_cfg_node_or(map, ig_cfg_map_get(map, "max_known") ? "max_known" :
		    "max_keys")->mark, "ratelimit.max_known (%zu) must be less than "
		    "ratelimit.max_keys (%zu)", rl->max_known, rl->max_keys);
	/* "raised" below the normal threshold makes the network stricter. */
	const struct cnode *seq = ig_cfg_map_get(map, "raised");
	for (size_t i = 0; seq != NULL && seq->kind == CN_SEQ && seq->n == rl->nraised &&
	    i < rl->nraised; i++) {
		static const char *const what[] = { "address", "spray" };
		const unsigned got[] = { rl->raised[i].address, rl->raised[i].spray };
		const unsigned thr[] = { rl->address.threshold, rl->spray_address.threshold };
		static const char *const base_key[] = { "address", "spray_address" };
		for (size_t j = 0; j < NFIELDS(what); j++) {
			const struct cnode *k = ig_cfg_map_key(seq->items[i], what[j]);
			if (k != NULL && got[j] != 0 && thr[j] != 0 && got[j] < thr[j])
				config_warn(c, k->mark, "ratelimit.raised[%zu].%s (%u) is below "
				    "ratelimit.%s.threshold (%u): these networks get a lower limit, "
				    "not a higher one", i, what[j], got[j], base_key[j], thr[j]);
		}
	}
}

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
	  .required = true, .ops = &ig_cfg_netset_ops },
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
	  .ops = &ig_cfg_netset_ops },
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
const struct section ig_cfg_rl_section = {
	rl_fields, NFIELDS(rl_fields), rl_check, false, rl_defaults
};

static const struct field admin_fields[] = {
	F_STR("socket", struct ig_config, admin_socket, false, admin_v_socket),
	F_STRBUF("listen", struct ig_config, admin_listen, false, admin_v_listen),
	F_NUM("ready_cert_days", FT_UINT, struct ig_config, admin_ready_cert_days,
	    ADMIN_READY_CERT_DAYS, 0, 3650),
	F_NUM("probe_interval", FT_DURATION, struct ig_config, admin_probe_interval_ms,
	    ADMIN_PROBE_INTERVAL_MS, 100, HOUR),
};
/* "admin" fills fields of struct ig_config (offset 0). */
const struct section ig_cfg_admin_section = {
	admin_fields, NFIELDS(admin_fields), NULL, false, NULL
};
