/*
 * The configuration: one immutable snapshot built in one pass from a YAML
 * file. Every problem is reported as "FILE:LINE:COL: message" (1-based) and
 * the whole load fails; nothing is half-built.
 */
#ifndef IG_CONFIG_CONFIG_H
#define IG_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "apppass/hash.h"
#include "certs/store.h"
#include "crypto/backend.h"
#include "policy/cidr_types.h"
#include "policy/policy_types.h"
#include "policy/ratelimit.h"
#include "util/log.h"
#include "util/sasl.h"

enum ig_tls_mode {
	IG_TLS_NONE,     /* "none": cleartext only (backend side only) */
	IG_TLS_STARTTLS, /* "starttls" */
	IG_TLS_IMPLICIT, /* "implicit" */
	IG_TLS_MODE_COUNT
};
const char *ig_tls_mode_str(enum ig_tls_mode m);

#define IG_NAME_MAX 63 /* listener names */

struct ig_listener_conf {
	char name[IG_NAME_MAX + 1];      /* unique */
	char listen[128];                /* as written, e.g. "[::]:993" */
	struct sockaddr_storage addr;    /* parsed numeric address and port */
	socklen_t addrlen;
	enum ig_tls_mode tls;            /* implicit | starttls (not none) */
	unsigned max_sessions;           /* concurrent sessions; 0 = default
	                                    (the loader fills in
	                                    limits.max_sessions, so a loaded
	                                    config never holds 0) */
	bool proxy_protocol;             /* a PROXY v1/v2 header comes first
	                                    (behind a load balancer) */
	struct ig_netset trusted_proxies; /* who may send it (network names
	                                    and CIDRs resolved); owned.
	                                    Required with proxy_protocol */
};

enum ig_forward_addr {
	IG_FORWARD_NONE, /* backend sees the proxy's address */
	IG_FORWARD_ID,   /* ID ("x-originating-ip" ...) before login (Dovecot:
	                    login_trusted_networks must include the proxy) */
	IG_FORWARD_COUNT
};

/* backend.send_proxy_protocol: a PROXY header in front of the backend
   connection (Dovecot: haproxy_trusted_networks). */
enum ig_send_proxy {
	IG_SEND_PROXY_OFF,
	IG_SEND_PROXY_V1,
	IG_SEND_PROXY_V2,
	IG_SEND_PROXY_COUNT
};

/* backend.master_login.style: how the proxy logs in for a user. */
enum ig_master_style {
	IG_MASTER_SEPARATOR, /* LOGIN "user<separator>master" "secret" (Dovecot's
	                        auth_master_user_separator) */
	IG_MASTER_AUTHZID,   /* AUTHENTICATE PLAIN, authzid = the user, authcid =
	                        the master user (Dovecot, Cyrus, SASL proxy
	                        authorization) */
	IG_MASTER_STYLE_COUNT
};
const char *ig_master_style_str(enum ig_master_style st);

/* Longest master secret (the first line of password_file), bytes. */
#define IG_MASTER_SECRET_MAX 1024

/*
 * backend.master_login: the credential the proxy logs in with for a user
 * whose own secret it checked itself (app passwords), so that the user's
 * secret never reaches the backend. Absent (on false) unless configured.
 */
struct ig_master_login {
	bool on;                         /* the section is in the file */
	char user[IG_USER_MAX + 1];      /* the master user (authcid) */
	char *password_file;             /* as written; owned */
	enum ig_master_style style;      /* separator (default) | authzid */
	char separator[2];               /* style separator: one printable
	                                    character ("*") */
	uint8_t *secret;                 /* the file's first line, without its
	                                    newline: read at load (start-up and
	                                    every reload), never logged; owned,
	                                    wiped when the config is freed */
	size_t secret_len;               /* 1..IG_MASTER_SECRET_MAX */
};

struct ig_backend_conf {
	char address[300];               /* as written: "host:port", "[v6]:port" */
	char host[256];                  /* host part (name or literal) */
	uint16_t port;
	struct sockaddr_storage addr;    /* resolved once at load time */
	socklen_t addrlen;               /* 0 only when loaded with
	                                    IG_CF_NO_RESOLVE and host is a name */
	enum ig_tls_mode tls;            /* none | starttls | implicit */
	char *ca;                        /* CA file for backend TLS; NULL = system
	                                    bundle /etc/ssl/certs/ca-certificates.crt */
	char *server_name;               /* name checked in the backend's
	                                    certificate; NULL = host */
	bool tls_verify;                 /* default true; false only with an
	                                    explicit "verify: false" */
	enum ig_forward_addr forward_client_address;
	enum ig_send_proxy send_proxy_protocol; /* off (default), v1, v2 */
	unsigned connect_timeout_ms;     /* TCP connect + greeting + TLS */
	unsigned auth_timeout_ms;        /* waiting for the login result */
	struct ig_master_login master_login; /* backend.master_login */
};

/*
 * limits.raised: a higher (or lower) per-address connection cap for networks
 * many users share (an office behind NAT, a webmail server).
 */
struct ig_conn_raise {
	struct ig_netset nets;           /* names resolved, blocks owned */
	unsigned max_conn_per_address;   /* the cap there (>= 1) */
};

struct ig_limits {
	size_t max_line;                 /* pre-auth line, bytes (default 8192) */
	size_t max_literal;              /* pre-auth literal (default 8192) */
	size_t buffer_size;              /* per direction relay buffer and the
	                                    pre-auth command buffer (default
	                                    16384); >= max_line */
	size_t buffer_pool_max;          /* bytes of buffers a worker hands out
	                                    before a session that holds none
	                                    waits for one (default 0: no cap);
	                                    0 or >= buffer_size */
	unsigned handshake_timeout_ms;   /* TLS handshake (default 30 s) */
	unsigned preauth_timeout_ms;     /* idle before login (default 60 s) */
	unsigned idle_timeout_ms;        /* idle after login, both directions
	                                    (default 35 min: IDLE needs >= 30) */
	unsigned max_errors;             /* BAD answers before "* BYE" (10) */
	unsigned max_sessions;           /* per listener default (10000) */
	unsigned preauth_lifetime_ms;    /* absolute time to log in, however
	                                    active the client (default 5 min);
	                                    >= preauth_timeout */
	unsigned max_preauth_commands;   /* commands before login (100) */
	unsigned max_conn_per_address;   /* live connections per client
	                                    address group, all listeners
	                                    together (100); 0 = no cap */
	uint8_t conn_ipv6_prefix;        /* that group for IPv6 (64); IPv4 is
	                                    always one address */
	struct ig_conn_raise *raised;    /* first match wins; owned */
	size_t nraised;
	unsigned drain_timeout_ms;       /* SIGTERM: how long sessions may go
	                                    on ending by themselves before the
	                                    rest are told "* BYE" (default 30 s;
	                                    0 = at once) */
};

/*
 * app_passwords: the store of per-device passwords (apppass/store.h) and
 * the cost of their hash (apppass/hash.h). Off unless the section is
 * written; store is then required.
 */
struct ig_apppass_conf {
	char *store;                     /* app_passwords.store: the SQLite file;
	                                    NULL = no app passwords; owned */
	struct ig_apppass_hash_params hash; /* app_passwords.hash: Argon2id's
	                                    memory (KiB), iterations and
	                                    parallelism for new passwords
	                                    (default 19 MiB, 2, 1) */
	char *hint;                      /* app_passwords.hint: said as "* NO
	                                    [ALERT] <hint>" when the account
	                                    password is refused; NULL = none;
	                                    owned */
	unsigned max_concurrent_verifications; /* hashes computed at once by the
	                                    proxy (default 4); up to 4 times
	                                    as many may be queued, more are
	                                    told NO [UNAVAILABLE] (read at
	                                    start) */
};

/* Most workers "workers" accepts. */
#define IG_WORKERS_MAX 256

struct ig_config {
	char *path;                      /* file it was loaded from */
	enum ig_log_level log_level;     /* "log_level" or log.level (info) */
	enum ig_log_format log_format;   /* log.format (text) */
	char *log_file;                  /* log.file: NULL = stderr, "syslog",
	                                    or a file; opened at start-up */
	bool log_redact_users;           /* log.redact_users (false) */
	char *log_redact_key_file;       /* log.redact_key_file: the HMAC key
	                                    (read at start-up); NULL = a random
	                                    key per process */
	unsigned workers;                /* "workers": event loops, one thread
	                                    each; 0 = auto (default: one per
	                                    CPU the process may run on) */

	struct ig_listener_conf *listeners;
	size_t nlisteners;

	struct ig_cert_pair_conf *certs; /* tls.certificates; strings owned */
	size_t ncerts;
	int tls_min_version;             /* tls.min_version: 12 or 13 (12) */
	bool strict_sni;                 /* tls.strict_sni: refuse unknown SNI */
	bool tls_tickets;                /* tls.session_tickets (true) */
	unsigned tls_session_timeout_ms; /* tls.session_timeout (1h): ticket and
	                                    cache lifetime, ticket key rotation */
	unsigned tls_session_cache;      /* tls.session_cache_size (10000; 0 = off) */
	char *tls_ticket_key_file;       /* tls.ticket_key_file: ticket keys shared
	                                    by a fleet (crypto/ticket_keys.h),
	                                    checked and parsed at load, read again
	                                    by the TLS configuration and when it
	                                    changes; NULL = random keys per
	                                    generation, rotated every
	                                    session_timeout */
	enum ig_crypto_backend tls_crypto; /* tls.crypto: auto, openssl or mbedtls
	                                    (auto); applied at start-up */

	struct ig_backend_conf backend;
	struct ig_limits limits;
	struct ig_policy_conf policy;

	/*
	 * ratelimit: brute force and spraying defence (policy/ratelimit.h).
	 * Defaults from ig_rl_conf_defaults() when the section is absent; the
	 * exempt and raised netsets and the raised array are owned here.
	 */
	struct ig_rl_conf ratelimit;
	char *ratelimit_state_file;      /* ratelimit.state_file; NULL = none */
	unsigned ratelimit_state_sync_ms;/* ratelimit.state_sync: a change is
	                                    saved within this (2 s) */
	char *admin_socket;              /* admin.socket: `imapguard ctl`;
	                                    NULL = no control socket */
	char *user;                      /* "user": who the proxy becomes after
	                                    binding (started as root); NULL =
	                                    stays who it was started as */
	char *group;                     /* "group" (needs user); NULL = the
	                                    user's primary group */
	uid_t user_uid;                  /* user's, looked up at load */
	gid_t user_gid;                  /* group's, or user's primary group */
	char admin_listen[128];          /* admin.listen: HTTP /metrics,
	                                    /healthz, /readyz; "" = off */
	struct sockaddr_storage admin_listen_addr; /* parsed */
	socklen_t admin_listen_addrlen;  /* 0 when off */
	unsigned admin_ready_cert_days;  /* admin.ready_cert_days (7): /readyz
	                                    fails when a certificate ends
	                                    within this many days */
	unsigned admin_probe_interval_ms;/* admin.probe_interval (10 s): the
	                                    backend probe's period while
	                                    admin.listen is set */
	struct ig_apppass_conf apppass;  /* app_passwords */
};

/*
 * Loads and validates path. On success returns 0 and *out (free with
 * ig_config_free()). On failure writes every problem found, one per line as
 * "path:line:col: message", to errf (stderr when NULL) and returns
 * IG_ECONFIG (or IG_EIO when the file cannot be read); *out is NULL.
 * Certificates are not loaded here (see certs/store.h), but their files must
 * be named; unknown keys, bad values and missing required keys are errors.
 */
int ig_config_load(const char *path, struct ig_config **out, FILE *errf);

/* Same, from a string in memory (name is used in messages). */
int ig_config_load_string(const char *name, const char *yaml, size_t len,
    struct ig_config **out, FILE *errf);

/* Flags for ig_config_load_string_flags(). */
enum {
	IG_CF_NO_RESOLVE = 1u << 0, /* backend host names are checked for syntax
	                               but not resolved (no DNS; backend.addrlen
	                               stays 0): for the fuzzer and for tools */
};

/*
 * ig_config_load_string() with IG_CF_* flags (0 gives the same behaviour).
 * Same return values and ownership.
 */
int ig_config_load_string_flags(const char *name, const char *yaml, size_t len,
    unsigned flags, struct ig_config **out, FILE *errf);

void ig_config_free(struct ig_config *cfg);

/*
 * Parses a duration: an integer (seconds) or an integer with one of the
 * suffixes ms, s, m, h ("250ms", "30s", "35m", "1h"). Returns 0 or IG_EINVAL
 * (also when the result does not fit in an unsigned int of milliseconds).
 * "0" is accepted here; the schema decides whether zero makes sense.
 */
int ig_parse_duration_ms(const char *s, unsigned *out_ms);

/*
 * Parses "ipv4:port", "[ipv6]:port" (numeric only, port 1..65535) into addr.
 * Returns 0 or IG_EINVAL.
 */
int ig_parse_listen_addr(const char *s, struct sockaddr_storage *addr, socklen_t *len);

#endif /* IG_CONFIG_CONFIG_H */
