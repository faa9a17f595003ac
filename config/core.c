/*
 * The core sections: listeners, tls, backend and limits, with their
 * validators (files that must be readable now, listen and backend
 * addresses, the backend resolved once) and cross-key checks.
 */
#include "config/schema.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "config/parse.h"
#include "crypto/ticket_keys.h"

_Static_assert(sizeof(enum ig_tls_mode) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ig_forward_addr) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ig_crypto_backend) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ig_send_proxy) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ig_master_style) == sizeof(int), "enums are stored as int");

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
static const struct enum_name tls_crypto_names[] = {
	{ "auto", IG_CRYPTO_AUTO }, { "openssl", IG_CRYPTO_OPENSSL },
	{ "mbedtls", IG_CRYPTO_MBEDTLS }, { NULL, 0 },
};
static const struct enum_name forward_names[] = {
	{ "none", IG_FORWARD_NONE }, { "id", IG_FORWARD_ID }, { NULL, 0 },
};
static const struct enum_name send_proxy_names[] = {
	{ "off", IG_SEND_PROXY_OFF }, { "v1", IG_SEND_PROXY_V1 }, { "v2", IG_SEND_PROXY_V2 },
	{ NULL, 0 },
};
static const struct enum_name master_style_names[] = {
	{ "separator", IG_MASTER_SEPARATOR }, { "authzid", IG_MASTER_AUTHZID }, { NULL, 0 },
};

/* A file given in the config must be a readable regular file now. */
static bool
config_check_file(struct cfgctx *c, const struct cnode *v, const char *path, struct stat *st)
{
	char sb[CFG_SHOW_MAX];
	/* stat first: opening a FIFO or a device could block or have effects. */
	if (stat(v->str, st) != 0) {
		config_error(c, v->mark, "cannot use '%s' for '%s': %s", ig_cfg_show(v->str, v->len, sb),
		    path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st->st_mode)) {
		config_error(c, v->mark, "cannot use '%s' for '%s': not a regular file",
		    ig_cfg_show(v->str, v->len, sb), path);
		return false;
	}
	int fd = open(v->str, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		config_error(c, v->mark, "cannot read '%s' for '%s': %s", ig_cfg_show(v->str, v->len, sb),
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
		    ig_cfg_show(v->str, v->len, sb), (unsigned)(st.st_mode & 0777));
}

/* tls.ticket_key_file: a private file of one or two keys, read now. */
static void
config_v_ticket_key_file(struct cfgctx *c, const struct field *f, const struct cnode *v,
    void *base, const char *path)
{
	char sb[CFG_SHOW_MAX], why[256];
	struct ig_ticket_keys keys;
	struct ig_file_id id;
	(void)f;
	(void)base;
	if (ig_ticket_keys_load(v->str, &keys, &id, why, sizeof(why)) != 0)
		config_error(c, v->mark, "cannot use '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, why);
	ig_ticket_keys_wipe(&keys);
}

/* tls: cross-key rules. */
static void
config_check_tls(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_config *cfg = base;
	const struct cnode *v = ig_cfg_map_get(map, "ticket_key_file");
	(void)path;
	if (v != NULL && !cfg->tls_tickets)
		config_warn(c, v->mark, "'tls.ticket_key_file' has no effect with "
		    "tls.session_tickets: false");
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
			    ig_cfg_show(v->str, v->len, sb), path);
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
	if (ig_cfg_listen_parse(v->str, &l->addr, &l->addrlen, &why) != 0) {
		config_error(c, v->mark, "invalid listen address '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, why);
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

/* tls.crypto: openssl only where the driver is built in. */
static void
config_v_tls_crypto(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	const struct ig_config *cfg = base;
	(void)f;
	if (cfg->tls_crypto == IG_CRYPTO_OPENSSL && !ig_crypto_openssl_built_in())
		config_error(c, v->mark,
		    "'%s' cannot be openssl: this imapguard has no OpenSSL driver (it was "
		    "built with the system's mbedTLS, IG_SYSTEM_MBEDTLS=ON); use auto or mbedtls",
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
	if (ig_cfg_split_host_port(v->str, b->host, sizeof(b->host), &b->port, &br, &why) != 0) {
		b->host[0] = '\0';
		config_error(c, v->mark, "invalid address '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, why);
		return;
	}
	if (br) {
		if (inet_pton(AF_INET6, b->host, a) != 1) {
			config_error(c, v->mark, "invalid address '%s' for '%s': %s",
			    ig_cfg_show(v->str, v->len, sb), path, "not a numeric IPv6 address");
			return;
		}
		ig_cfg_set_inet(&b->addr, &b->addrlen, AF_INET6, a, b->port);
		return;
	}
	if (inet_pton(AF_INET, b->host, a) == 1) {
		ig_cfg_set_inet(&b->addr, &b->addrlen, AF_INET, a, b->port);
		return;
	}
	if (!ig_cfg_valid_hostname(b->host)) {
		config_error(c, v->mark, "invalid address '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path,
		    ig_cfg_looks_like_name(b->host, strlen(b->host)) ? "not a valid host name" :
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
		config_error(c, v->mark, "cannot resolve '%s' for '%s': %s", ig_cfg_show(b->host,
		    strlen(b->host), sb), path, gai == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(gai));
		if (res != NULL)
			freeaddrinfo(res);
		return;
	}
	if (res->ai_family == AF_INET)
		ig_cfg_set_inet(&b->addr, &b->addrlen, AF_INET,
		    &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, b->port);
	else if (res->ai_family == AF_INET6)
		ig_cfg_set_inet(&b->addr, &b->addrlen, AF_INET6,
		    &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, b->port);
	else
		config_error(c, v->mark, "cannot resolve '%s' for '%s': no IPv4 or IPv6 address",
		    ig_cfg_show(b->host, strlen(b->host), sb), path);
	freeaddrinfo(res);
}

/* ---- backend.master_login ---------------------------------------------- */

/* master_login.user: a name the backend can take (no NUL, CR or LF). */
static void
master_v_user(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX], norm[IG_USER_MAX + 1];
	(void)f;
	(void)base;
	if (ig_user_normalize((const uint8_t *)v->str, v->len, false, norm, sizeof(norm)) != 0)
		config_error(c, v->mark, "invalid user name '%s' for '%s': it contains CR or LF",
		    ig_cfg_show(v->str, v->len, sb), path);
	mbedtls_platform_zeroize(norm, sizeof(norm));
}

/*
 * Reads the master secret from the file v names: a regular file that only
 * its owner may read or write (mode 0600 or stricter), whose first line
 * (the newline stripped) is the secret: 1..IG_MASTER_SECRET_MAX bytes, no
 * CR or NUL. Checked on the open descriptor, so the file checked is the
 * file read. Stores a copy in m; false after reporting. Nothing of the
 * file's content is ever put in a message.
 */
static bool
master_read_secret(struct cfgctx *c, const struct cnode *v, const char *path,
    struct ig_master_login *m)
{
	char sb[CFG_SHOW_MAX];
	uint8_t buf[IG_MASTER_SECRET_MAX + 2]; /* the line, its newline, one more */
	const char *bad = NULL;
	size_t n = 0, len = 0;
	struct stat st;
	/* O_NONBLOCK: a FIFO put there must not hang the load (it is then
	   refused as not a regular file). */
	int fd = open(v->str, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		config_error(c, v->mark, "cannot read '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0) {
		config_error(c, v->mark, "cannot use '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, strerror(errno));
		close(fd);
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		config_error(c, v->mark, "cannot use '%s' for '%s': not a regular file",
		    ig_cfg_show(v->str, v->len, sb), path);
		close(fd);
		return false;
	}
	if ((st.st_mode & 077) != 0) {
		config_error(c, v->mark, "cannot use '%s' for '%s': its mode %04o lets other "
		    "users %s it; it holds the master password: chmod 600 (the owner only)",
		    ig_cfg_show(v->str, v->len, sb), path, (unsigned)(st.st_mode & 07777),
		    (st.st_mode & 044) != 0 ? "read" : "write");
		close(fd);
		return false;
	}
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			config_error(c, v->mark, "cannot read '%s' for '%s': %s",
			    ig_cfg_show(v->str, v->len, sb), path, strerror(errno));
			close(fd);
			mbedtls_platform_zeroize(buf, sizeof(buf));
			return false;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	const uint8_t *nl = memchr(buf, '\n', n);
	len = nl != NULL ? (size_t)(nl - buf) : n;
	if (len > IG_MASTER_SECRET_MAX)
		bad = "its first line is longer than 1024 bytes";
	else if (len == 0)
		bad = n == 0 ? "it is empty (its first line is the master password)" :
		    "its first line is empty (it is the master password)";
	else if (memchr(buf, '\r', len) != NULL)
		bad = "its first line contains a carriage return (CRLF line ends? the "
		    "password would end in CR)";
	else if (memchr(buf, '\0', len) != NULL)
		bad = "its first line contains a NUL byte";
	if (bad != NULL) {
		config_error(c, v->mark, "cannot use '%s' for '%s': %s",
		    ig_cfg_show(v->str, v->len, sb), path, bad);
		mbedtls_platform_zeroize(buf, sizeof(buf));
		return false;
	}
	m->secret = malloc(len);
	if (m->secret == NULL) {
		mbedtls_platform_zeroize(buf, sizeof(buf));
		ig_cfg_nomem(c);
		return false;
	}
	memcpy(m->secret, buf, len);
	m->secret_len = len;
	mbedtls_platform_zeroize(buf, sizeof(buf));
	return true;
}

_Static_assert(IG_MASTER_SECRET_MAX == 1024, "the message above says 1024");

/* master_login.password_file: the name, and the secret read from it. */
static bool
master_store_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct ig_master_login *m = base;
	(void)f;
	if (!ig_cfg_scalar_ok(c, v, path))
		return false;
	if (v->len == 0 || v->len >= CFG_PATH_MAX) {
		config_error(c, v->mark, "'%s' must be between 1 and %d characters", path,
		    CFG_PATH_MAX - 1);
		return false;
	}
	m->password_file = strdup(v->str);
	if (m->password_file == NULL) {
		ig_cfg_nomem(c);
		return false;
	}
	return master_read_secret(c, v, path, m);
}

/* The secret is wiped before it is freed (a reload frees the old one). */
static void
master_release_file(const struct field *f, void *base)
{
	struct ig_master_login *m = base;
	(void)f;
	if (m->secret != NULL) {
		mbedtls_platform_zeroize(m->secret, m->secret_len);
		free(m->secret);
	}
	m->secret = NULL;
	m->secret_len = 0;
	free(m->password_file);
	m->password_file = NULL;
}

static const struct custom_ops master_file_ops = {
	NULL, master_store_file, master_release_file
};

static void
master_init_separator(const struct field *f, void *base)
{
	char *sep = ig_cfg_at(base, f->off);
	sep[0] = '*'; /* Dovecot's usual auth_master_user_separator */
	sep[1] = '\0';
}

/* master_login.separator: one printable ASCII character, not a space. */
static bool
master_store_separator(struct cfgctx *c, const struct field *f, const struct cnode *v,
    void *base, const char *path)
{
	char sb[CFG_SHOW_MAX];
	char *sep = ig_cfg_at(base, f->off);
	if (!ig_cfg_scalar_ok(c, v, path))
		return false;
	if (v->len != 1 || v->str[0] <= ' ' || v->str[0] > '~') {
		config_error(c, v->mark, "invalid value '%s' for '%s': expected one printable "
		    "character, not a space (Dovecot's auth_master_user_separator, e.g. \"*\")",
		    ig_cfg_show(v->str, v->len, sb), path);
		return false;
	}
	sep[0] = v->str[0];
	sep[1] = '\0';
	return true;
}

static const struct custom_ops master_separator_ops = {
	master_init_separator, master_store_separator, NULL
};

static void
master_check(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	struct ig_master_login *m = base;
	const struct cnode *k;
	m->on = true;
	if (m->style != IG_MASTER_SEPARATOR && (k = ig_cfg_map_key(map, "separator")) != NULL)
		config_warn(c, k->mark, "'%s.separator' has no effect with style: %s", path,
		    ig_master_style_str(m->style));
}

static const struct field master_fields[] = {
	F_STRBUF("user", struct ig_master_login, user, true, master_v_user),
	{ .key = "password_file", .type = FT_CUSTOM, .required = true,
	  .off = offsetof(struct ig_master_login, password_file), .ops = &master_file_ops },
	F_ENUM("style", struct ig_master_login, style, false, IG_MASTER_SEPARATOR,
	    master_style_names, NULL),
	{ .key = "separator", .type = FT_CUSTOM,
	  .off = offsetof(struct ig_master_login, separator), .ops = &master_separator_ops },
};
static const struct section master_section = {
	master_fields, NFIELDS(master_fields), master_check, false, NULL
};

#define CASE(x, s) case x: return s
const char *
ig_master_style_str(enum ig_master_style st)
{
	switch (st) {
	CASE(IG_MASTER_SEPARATOR, "separator");
	CASE(IG_MASTER_AUTHZID, "authzid");
	case IG_MASTER_STYLE_COUNT:
		break;
	}
	return "?";
}
#undef CASE

void
ig_cfg_check_listeners(struct cfgctx *c, const struct cnode *seq, void *base, const char *path)
{
	const struct ig_config *cfg = base;
	char sb[CFG_SHOW_MAX];
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct ig_listener_conf *l = &cfg->listeners[i];
		const struct cnode *e = seq->items[i];
		for (size_t j = 0; j < i; j++) {
			const struct ig_listener_conf *o = &cfg->listeners[j];
			if (l->name[0] && strcmp(l->name, o->name) == 0) {
				const struct cnode *fn = ig_cfg_node_or(seq->items[j], "name");
				config_error(c, ig_cfg_node_or(e, "name")->mark,
				    "duplicate listener name '%s' in '%s' (first at %zu:%zu)",
				    ig_cfg_show(l->name, strlen(l->name), sb), path,
				    fn->mark.line + 1, fn->mark.column + 1);
			}
			if (l->addrlen && o->addrlen && ig_cfg_same_addr(&l->addr, &o->addr)) {
				const struct cnode *fl = ig_cfg_node_or(seq->items[j], "listen");
				config_error(c, ig_cfg_node_or(e, "listen")->mark,
				    "duplicate listen address '%s' in '%s' (first at %zu:%zu)",
				    ig_cfg_show(l->listen, strlen(l->listen), sb), path,
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
	/* "master_login:" alone would read as no master login at all. */
	const struct cnode *ml = ig_cfg_map_get(map, "master_login");
	if (ml != NULL && ig_cfg_node_is_null(ml))
		config_error(c, ml->mark, "'backend.master_login' needs user and password_file "
		    "(or remove the key)");
	if (b->tls == IG_TLS_NONE) {
		static const char *const tls_only[] = { "ca", "server_name", "verify" };
		for (size_t i = 0; i < NFIELDS(tls_only); i++) {
			const struct cnode *v = ig_cfg_map_get(map, tls_only[i]);
			if (v != NULL)
				config_warn(c, v->mark, "'backend.%s' has no effect with backend.tls: none",
				    tls_only[i]);
		}
		if (b->addrlen != 0 && !ig_cfg_addr_is_loopback(&b->addr))
			config_warn(c, ig_cfg_node_or(map, "tls")->mark,
			    "backend.tls is none but the backend is not on loopback: "
			    "passwords cross the network in clear");
	} else if (!b->tls_verify) {
		config_warn(c, ig_cfg_node_or(map, "verify")->mark,
		    "backend certificate verification is disabled (verify: false)");
	}
}

/* One limits.raised entry: its networks list is not empty. */
static void
limits_check_raise(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	(void)base;
	const struct cnode *nets = ig_cfg_map_get(map, "networks");
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
	const char *bs = ig_cfg_map_get(map, "buffer_size") != NULL ? "buffer_size" : NULL;
	if (l->buffer_size < l->max_line)
		config_error(c, ig_cfg_node_or(map, bs ? bs : "max_line")->mark,
		    "limits.buffer_size (%zu) must be at least limits.max_line (%zu)",
		    l->buffer_size, l->max_line);
	if (l->buffer_size < l->max_literal)
		config_error(c, ig_cfg_node_or(map, bs ? bs : "max_literal")->mark,
		    "limits.buffer_size (%zu) must be at least limits.max_literal (%zu)",
		    l->buffer_size, l->max_literal);
	if (l->buffer_pool_max != 0 && l->buffer_pool_max < l->buffer_size)
		config_error(c, ig_cfg_node_or(map, "buffer_pool_max")->mark,
		    "limits.buffer_pool_max (%zu) must be 0 (no cap) or at least "
		    "limits.buffer_size (%zu)", l->buffer_pool_max, l->buffer_size);
	if (l->idle_timeout_ms < 30 * MIN)
		config_warn(c, ig_cfg_node_or(map, "idle_timeout")->mark,
		    "limits.idle_timeout is below 30m: clients in IMAP IDLE (RFC 2177) "
		    "will be disconnected");
	if (l->preauth_lifetime_ms < l->preauth_timeout_ms)
		config_error(c, ig_cfg_node_or(map, ig_cfg_map_get(map, "preauth_lifetime") ?
		    "preauth_lifetime" : "preauth_timeout")->mark,
		    "limits.preauth_lifetime (%s) must be at least limits.preauth_timeout (%s): "
		    "the lifetime bounds the whole time before login, the timeout one idle "
		    "stretch of it",
		    ig_cfg_fmt_duration(l->preauth_lifetime_ms, a, sizeof(a)),
		    ig_cfg_fmt_duration(l->preauth_timeout_ms, b, sizeof(b)));
	/* A raised entry with no cap to raise, or one that lowers it. */
	const struct cnode *seq = ig_cfg_map_get(map, "raised");
	if (seq != NULL && seq->kind == CN_SEQ && seq->n > 0 && l->max_conn_per_address == 0)
		config_warn(c, seq->mark, "limits.raised has no effect: "
		    "limits.max_connections_per_address is 0 (no cap)");
	for (size_t i = 0; seq != NULL && seq->kind == CN_SEQ && seq->n == l->nraised &&
	    l->max_conn_per_address != 0 && i < l->nraised; i++) {
		const struct cnode *v = ig_cfg_map_get(seq->items[i], "max_connections_per_address");
		unsigned got = l->raised[i].max_conn_per_address;
		if (v != NULL && got != 0 && got < l->max_conn_per_address)
			config_warn(c, v->mark, "limits.raised[%zu].max_connections_per_address (%u) is "
			    "below limits.max_connections_per_address (%u): these networks get a "
			    "lower cap, not a higher one", i, got, l->max_conn_per_address);
	}
}

/* workers: "auto" (stored as 0) or a count, 1..IG_WORKERS_MAX. */
static bool
config_store_workers(struct cfgctx *c, const struct field *f, const struct cnode *v,
    void *base, const char *path)
{
	char sb[CFG_SHOW_MAX];
	unsigned *out = ig_cfg_at(base, f->off);
	uint64_t n = 0;
	if (!ig_cfg_scalar_ok(c, v, path))
		return false;
	if (strcmp(v->str, "auto") == 0) {
		*out = 0;
		return true;
	}
	if (ig_cfg_parse_u64(v->str, IG_WORKERS_MAX, &n) != 0 || n == 0) {
		config_error(c, v->mark, "invalid value '%s' for '%s': expected auto or a number "
		    "of workers from 1 to %u", ig_cfg_show(v->str, v->len, sb), path,
		    IG_WORKERS_MAX);
		return false;
	}
	*out = (unsigned)n;
	return true;
}
const struct custom_ops ig_cfg_workers_ops = { NULL, config_store_workers, NULL };

/* proxy_protocol needs trusted_proxies: without it anyone could claim any
   address. trusted_proxies alone does nothing. */
static void
config_check_listener(struct cfgctx *c, const struct cnode *map, void *base, const char *path)
{
	const struct ig_listener_conf *l = base;
	const struct cnode *tp = ig_cfg_map_get(map, "trusted_proxies");
	if (l->proxy_protocol && (tp == NULL || (tp->kind == CN_SEQ && tp->n == 0)))
		config_error(c, ig_cfg_node_or(map, tp != NULL ? "trusted_proxies" :
		    "proxy_protocol")->mark, "'%s.trusted_proxies' needs at least one network "
		    "with proxy_protocol: true (only load balancers there may send the header)",
		    path);
	else if (!l->proxy_protocol && tp != NULL)
		config_warn(c, tp->mark, "'%s.trusted_proxies' has no effect without "
		    "proxy_protocol: true", path);
}

static const struct field listener_fields[] = {
	F_STRBUF("name", struct ig_listener_conf, name, true, config_v_listener_name),
	F_STRBUF("listen", struct ig_listener_conf, listen, true, config_v_listen),
	F_ENUM("tls", struct ig_listener_conf, tls, true, IG_TLS_IMPLICIT, listener_tls_names,
	    config_v_listener_tls),
	F_NUM("max_sessions", FT_UINT, struct ig_listener_conf, max_sessions, 0, 1, 1000000),
	F_BOOL("proxy_protocol", struct ig_listener_conf, proxy_protocol, false),
	{ .key = "trusted_proxies", .type = FT_CUSTOM,
	  .off = offsetof(struct ig_listener_conf, trusted_proxies), .ops = &ig_cfg_netset_ops },
};
const struct section ig_cfg_listener_section = {
	listener_fields, NFIELDS(listener_fields), config_check_listener, false, NULL
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
	F_BOOL("session_tickets", struct ig_config, tls_tickets, true),
	F_NUM("session_timeout", FT_DURATION, struct ig_config, tls_session_timeout_ms,
	    HOUR, 10 * SEC, 7 * 24 * HOUR),
	F_NUM("session_cache_size", FT_UINT, struct ig_config, tls_session_cache,
	    10000, 0, 1000000),
	F_STR("ticket_key_file", struct ig_config, tls_ticket_key_file, false,
	    config_v_ticket_key_file),
	F_ENUM("crypto", struct ig_config, tls_crypto, false, IG_CRYPTO_AUTO, tls_crypto_names,
	    config_v_tls_crypto),
};
/* "tls" fills fields of struct ig_config itself (offset 0). */
const struct section ig_cfg_tls_section = {
	tls_fields, NFIELDS(tls_fields), config_check_tls, false, NULL
};

static const struct field backend_fields[] = {
	F_STRBUF("address", struct ig_backend_conf, address, true, config_v_backend_address),
	F_ENUM("tls", struct ig_backend_conf, tls, false, IG_TLS_NONE, tls_mode_names, NULL),
	F_STR("ca", struct ig_backend_conf, ca, false, config_v_readable_file),
	F_STR("server_name", struct ig_backend_conf, server_name, false, NULL),
	F_BOOL("verify", struct ig_backend_conf, tls_verify, true),
	F_ENUM("forward_client_address", struct ig_backend_conf, forward_client_address, false,
	    IG_FORWARD_ID, forward_names, NULL),
	F_ENUM("send_proxy_protocol", struct ig_backend_conf, send_proxy_protocol, false,
	    IG_SEND_PROXY_OFF, send_proxy_names, NULL),
	F_NUM("connect_timeout", FT_DURATION, struct ig_backend_conf, connect_timeout_ms,
	    10 * SEC, 1, 10 * MIN),
	F_NUM("auth_timeout", FT_DURATION, struct ig_backend_conf, auth_timeout_ms,
	    60 * SEC, 1, 10 * MIN),
	F_SECTION("master_login", struct ig_backend_conf, master_login, false, &master_section),
};
const struct section ig_cfg_backend_section = {
	backend_fields, NFIELDS(backend_fields), config_check_backend, false, NULL
};

#define LIMITS_RAISED_MAX 256u

static const struct field conn_raise_fields[] = {
	{ .key = "networks", .type = FT_CUSTOM, .off = offsetof(struct ig_conn_raise, nets),
	  .required = true, .ops = &ig_cfg_netset_ops },
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
	F_NUM("buffer_pool_max", FT_SIZE, struct ig_limits, buffer_pool_max, 0, 0,
	    UINT64_C(1) << 40),
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
	F_NUM("drain_timeout", FT_DURATION, struct ig_limits, drain_timeout_ms, 30 * SEC, 0,
	    1 * HOUR),
};
const struct section ig_cfg_limits_section = {
	limits_fields, NFIELDS(limits_fields), config_check_limits, false, NULL
};

/* ---- log ---------------------------------------------------------------- */

static const struct enum_name log_format_names[] = {
	{ "text", IG_LOG_TEXT }, { "json", IG_LOG_JSON }, { NULL, 0 },
};

static const struct enum_name log_level_names[] = {
	{ "error", IG_LOG_ERROR }, { "warn", IG_LOG_WARN },
	{ "info", IG_LOG_INFO }, { "debug", IG_LOG_DEBUG }, { NULL, 0 },
};

/* log.file: "syslog", or a file in a directory that exists. */
static void
log_v_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	char sb[CFG_SHOW_MAX];
	struct stat st;
	(void)f;
	(void)base;
	if (strcmp(v->str, "syslog") == 0)
		return;
	if (v->len == 0 || v->len >= CFG_PATH_MAX) {
		config_error(c, v->mark, "invalid value '%s' for '%s': expected syslog or a file "
		    "name", ig_cfg_show(v->str, v->len, sb), path);
		return;
	}
	const char *slash = strrchr(v->str, '/');
	char dir[CFG_PATH_MAX];
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == v->str)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - v->str), v->str);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		config_error(c, v->mark, "cannot use '%s' for '%s': directory '%s' does not exist",
		    ig_cfg_show(v->str, v->len, sb), path, dir);
		return;
	}
	if (lstat(v->str, &st) == 0 && !S_ISREG(st.st_mode))
		config_error(c, v->mark, "cannot use '%s' for '%s': it exists and is not a regular "
		    "file", ig_cfg_show(v->str, v->len, sb), path);
}

/* log.redact_key_file: a private file of IG_LOG_KEY_MIN..IG_LOG_KEY_MAX bytes. */
static void
log_v_key_file(struct cfgctx *c, const struct field *f, const struct cnode *v, void *base,
    const char *path)
{
	struct stat st;
	char sb[CFG_SHOW_MAX];
	(void)f;
	(void)base;
	if (!config_check_file(c, v, path, &st))
		return;
	if (st.st_size < IG_LOG_KEY_MIN || st.st_size > IG_LOG_KEY_MAX)
		config_error(c, v->mark, "cannot use '%s' for '%s': a key file holds %d to %d "
		    "bytes, not %lld", ig_cfg_show(v->str, v->len, sb), path, IG_LOG_KEY_MIN,
		    IG_LOG_KEY_MAX, (long long)st.st_size);
	else if (st.st_mode & S_IROTH)
		config_warn(c, v->mark, "key file '%s' is readable by every user (mode %03o)",
		    ig_cfg_show(v->str, v->len, sb), (unsigned)(st.st_mode & 0777));
}

static const struct field log_fields[] = {
	F_ENUM("format", struct ig_config, log_format, false, IG_LOG_TEXT, log_format_names,
	    NULL),
	F_STR("file", struct ig_config, log_file, false, log_v_file),
	F_BOOL("redact_users", struct ig_config, log_redact_users, false),
	F_STR("redact_key_file", struct ig_config, log_redact_key_file, false, log_v_key_file),
	/* The same setting as the top-level log_level (both: an error). */
	F_ENUM("level", struct ig_config, log_level, false, IG_LOG_INFO, log_level_names, NULL),
};
/* "log" fills fields of struct ig_config (offset 0). */
const struct section ig_cfg_log_section = {
	log_fields, NFIELDS(log_fields), NULL, false, NULL
};
