/*
 * The app_passwords section: the store's file, the hash's cost for new
 * passwords and the cap on verifications the proxy computes at once.
 *
 *   app_passwords:
 *     store: /var/lib/imapguard/app-passwords.db
 *     hash: { memory: 19MiB, iterations: 2, parallelism: 1 }
 *     max_concurrent_verifications: 4
 *     hint: "Use an app password: https://mail.example.com/app-passwords"
 */
#include "config/schema.h"

#include <string.h>
#include <sys/stat.h>

#include "apppass/hash.h"
#include "config/parse.h"

/* app_passwords.hash.memory: from the lowest of OWASP's Argon2id rows
 * (7 MiB with 5 passes) to what apppass/hash.h lets a stored hash ask. */
#define APPPASS_MEMORY_MIN_KIB (7u * 1024u)
/* app_passwords.max_concurrent_verifications. */
#define APPPASS_VERIFY_DEFAULT 4u
#define APPPASS_VERIFY_MAX 256u
/* app_passwords.hint: bytes (one IMAP line with room to spare). */
#define APPPASS_HINT_MAX 200u

_Static_assert(_Generic((uint32_t)0, unsigned: 1, default: 0),
    "FT_UINT stores the hash parameters (uint32_t) as unsigned");

static void
apppass_defaults(void *base)
{
	struct ig_apppass_conf *ap = base;
	ap->store = NULL;
	ig_apppass_hash_defaults(&ap->hash);
	ap->max_concurrent_verifications = APPPASS_VERIFY_DEFAULT;
}

/* store: a file the proxy and `imapguard apppass` open (and the command
 * line creates): its directory must exist. */
static void
apppass_v_store(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	(void)f;
	(void)base;
	ig_cfg_check_new_file(c, v, path, S_IFREG);
}

/*
 * hash.memory: a whole number with a binary unit, KiB, MiB or GiB ("19MiB",
 * "65536KiB"); a bare number is refused (bytes or KiB? Argon2 counts KiB,
 * people count MiB). Stored in KiB, within the section's bounds.
 */
static bool
apppass_store_memory(struct cfgctx *c, const struct field *f, const struct cnode *v,
    void *base, const char *path)
{
	static const struct { const char *suffix; uint64_t kib; } units[] = {
		{ "KiB", 1 }, { "MiB", 1024 }, { "GiB", 1024 * 1024 },
	};
	char sb[CFG_SHOW_MAX], num[24];
	uint32_t *out = ig_cfg_at(base, f->off);
	uint64_t n, kib = 0;
	if (!ig_cfg_scalar_ok(c, v, path))
		return false;
	size_t digits = strspn(v->str, "0123456789");
	for (size_t i = 0; i < NFIELDS(units) && kib == 0; i++)
		if (digits > 0 && digits < sizeof(num) && strcmp(v->str + digits, units[i].suffix) == 0)
			kib = units[i].kib;
	if (kib != 0) {
		memcpy(num, v->str, digits);
		num[digits] = '\0';
	}
	if (kib == 0 || ig_cfg_parse_u64(num, UINT64_MAX / kib, &n) != 0) {
		config_error(c, v->mark, "invalid size '%s' for '%s': expected a whole number with "
		    "KiB, MiB or GiB (e.g. 19MiB)", ig_cfg_show(v->str, v->len, sb), path);
		return false;
	}
	n *= kib;
	if (n < APPPASS_MEMORY_MIN_KIB || n > IG_APPPASS_HASH_MEMORY_MAX_KIB) {
		config_error(c, v->mark, "'%s' must be between %uMiB and %uGiB (got %s)", path,
		    APPPASS_MEMORY_MIN_KIB / 1024u, IG_APPPASS_HASH_MEMORY_MAX_KIB / (1024u * 1024u),
		    ig_cfg_show(v->str, v->len, sb));
		return false;
	}
	*out = (uint32_t)n;
	return true;
}
static const struct custom_ops apppass_memory_ops = { NULL, apppass_store_memory, NULL };

/*
 * Below OWASP's minimum for Argon2id (Password Storage Cheat Sheet: one of
 * m = 46 MiB t = 1, 19 MiB t = 2, 12 MiB t = 3, 9 MiB t = 4, 7 MiB t = 5):
 * a warning, not an error. App passwords carry 100 random bits, so a
 * stolen store stays out of reach of guessing even with a cheap hash; the
 * cost buys a margin, and the operator may trade it for logins per second.
 */
static void
apppass_check_hash(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	static const uint32_t owasp_mib[] = { 46, 19, 12, 9, 7 }; /* by t = 1..5 */
	const struct ig_apppass_hash_params *h = base;
	uint32_t t = h->iterations < 1 ? 1 : h->iterations;
	uint32_t need = owasp_mib[(t > NFIELDS(owasp_mib) ? NFIELDS(owasp_mib) : t) - 1] * 1024u;
	if (h->memory_kib < need)
		config_warn(c, ig_cfg_node_or(map, ig_cfg_map_get(map, "memory") ? "memory" :
		    "iterations")->mark, "'%s' is below OWASP's minimum for Argon2id (%u passes "
		    "need at least %uMiB): cheaper to attack if the store is stolen", path, t,
		    need / 1024u);
}

static const struct field apppass_hash_fields[] = {
	{ .key = "memory", .type = FT_CUSTOM,
	  .off = offsetof(struct ig_apppass_hash_params, memory_kib), .ops = &apppass_memory_ops },
	F_NUM("iterations", FT_UINT, struct ig_apppass_hash_params, iterations,
	    IG_APPPASS_HASH_ITERATIONS, 1, IG_APPPASS_HASH_ITERATIONS_MAX),
	F_NUM("parallelism", FT_UINT, struct ig_apppass_hash_params, parallelism,
	    IG_APPPASS_HASH_PARALLELISM, 1, IG_APPPASS_HASH_PARALLELISM_MAX),
};
/* Defaults: the enclosing section's (a partial mapping keeps the rest). */
static const struct section apppass_hash_section = {
	apppass_hash_fields, NFIELDS(apppass_hash_fields), apppass_check_hash, false, NULL
};

/*
 * hint: what a client is told, beside the usual tagged NO, when it sent
 * the account password where an app password is required: one line of
 * printable ASCII (a sentence, a URL), sent as "* NO [ALERT] <hint>".
 */
static void
apppass_v_hint(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	(void)f;
	(void)base;
	bool ok = v->len >= 1 && v->len <= APPPASS_HINT_MAX;
	for (size_t i = 0; ok && i < v->len; i++)
		ok = v->str[i] >= 0x20 && v->str[i] <= 0x7e;
	if (!ok) {
		char sb[CFG_SHOW_MAX];
		config_error(c, v->mark, "invalid value '%s' for '%s': expected 1 to %u characters "
		    "of printable ASCII (no control or non-ASCII characters)",
		    ig_cfg_show(v->str, v->len, sb), path, APPPASS_HINT_MAX);
	}
}

static const struct field apppass_fields[] = {
	F_STR("store", struct ig_apppass_conf, store, true, apppass_v_store),
	F_STR("hint", struct ig_apppass_conf, hint, false, apppass_v_hint),
	F_SECTION("hash", struct ig_apppass_conf, hash, false, &apppass_hash_section),
	F_NUM("max_concurrent_verifications", FT_UINT, struct ig_apppass_conf,
	    max_concurrent_verifications, APPPASS_VERIFY_DEFAULT, 1, APPPASS_VERIFY_MAX),
};
const struct section ig_cfg_apppass_section = {
	apppass_fields, NFIELDS(apppass_fields), NULL, false, apppass_defaults
};
