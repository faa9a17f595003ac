/*
 * The process's counters for /metrics (proxy/admin_http.c): one struct
 * ig_metrics per worker, written only by that worker's thread (single
 * writer: a relaxed load and store, no lock and no locked instruction on
 * the hot path), read by the main thread at scrape time, which adds the
 * workers up. Each worker's counters only grow, so their sum never goes
 * backwards between scrapes. Names, types and labels are documented in
 * docs/METRICS.md; the writer is ig_metrics_write().
 */
#ifndef IG_PROXY_METRICS_H
#define IG_PROXY_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sasl.h"

struct ig_expo;

/* TLS handshake failures (client side) by reason. */
enum ig_m_tls_fail {
	IG_MTF_CLOSED,       /* the client went away mid-handshake */
	IG_MTF_TIMEOUT,      /* limits.handshake_timeout */
	IG_MTF_ERROR,        /* a protocol error, refused ALPN or SNI, ... */
	IG_MTF_COUNT
};

/* Login attempts by result. */
enum ig_m_login {
	IG_ML_OK,            /* the backend accepted: relay */
	IG_ML_FAIL,          /* the backend refused the credentials */
	IG_ML_REFUSED,       /* refused by us before the backend (policy,
	                        rate limit) */
	IG_ML_TEMPFAIL,      /* backend unavailable */
	IG_ML_CANCELLED,     /* the client cancelled a SASL exchange */
	IG_ML_COUNT
};

/* Mechanism indices: the SASL ones, then the LOGIN command, then unknown. */
#define IG_M_MECH_LOGIN_CMD ((unsigned)IG_MECH_COUNT)
#define IG_M_MECH_UNKNOWN ((unsigned)IG_MECH_COUNT + 1u)
#define IG_M_MECHS ((unsigned)IG_MECH_COUNT + 2u)

/* Logins we refused, by reason. */
enum ig_m_refusal {
	IG_MR_PLAINTEXT,     /* no TLS (tls-required, plaintext-not-from-network) */
	IG_MR_MECHANISM,     /* LOGIN command or mechanism blocked or unavailable */
	IG_MR_DENY,          /* deny: true (account-blocked) */
	IG_MR_ALLOW_FROM,    /* address not in allow_from */
	IG_MR_AUTHZID,       /* a foreign authorization identity */
	IG_MR_RATELIMIT,     /* a rate-limit block (address, user, ...) */
	IG_MR_SPRAY,         /* a spraying block (spray-address, password-spray) */
	IG_MR_COUNT
};

/* Backend connection errors by kind. */
enum ig_m_backend_err {
	IG_MBE_CONNECT,      /* socket or TCP connect */
	IG_MBE_TIMEOUT,      /* backend.connect_timeout / timeout */
	IG_MBE_TLS,          /* TLS setup, handshake, identity, STARTTLS refused */
	IG_MBE_PROTOCOL,     /* greeting, capability, lines out of bounds */
	IG_MBE_IO,           /* read, write, closed, out of memory */
	IG_MBE_COUNT
};

/* App passwords (issue 17): logins by outcome, the account password under
   a credentials rule, sessions ended by a revocation. */
enum ig_m_apppass {
	IG_MAP_OK,               /* logged in with an app password */
	IG_MAP_WRONG,            /* the id is the user's, the secret is not */
	IG_MAP_UNKNOWN,          /* no such id for the user */
	IG_MAP_REVOKED,          /* a revoked id */
	IG_MAP_EXPIRED,          /* past its expiry */
	IG_MAP_NETWORK,          /* from outside its --from networks */
	IG_MAP_BUSY,             /* the verifications' cap was reached */
	IG_MAP_ACCOUNT_REFUSED,  /* credentials: app_passwords refused the
	                            account password */
	IG_MAP_ACCOUNT_USED,     /* credentials: both (or monitor) let the
	                            account password go to the backend */
	IG_MAP_SESSIONS_ENDED,   /* live sessions ended by a revocation */
	IG_MAP_COUNT
};

enum ig_m_hist {
	IG_MH_LOGIN,             /* login command to the result, seconds */
	IG_MH_BACKEND_CONNECT,   /* TCP connect to the backend, seconds */
	IG_MH_COUNT
};

/* Histogram upper bounds (seconds); one more bucket above them. */
#define IG_M_NBOUNDS 14u
extern const double ig_metrics_bounds[IG_M_NBOUNDS];

typedef atomic_uint_fast64_t ig_mctr;

struct ig_metrics_hist {
	ig_mctr bucket[IG_M_NBOUNDS + 1]; /* per bucket, not cumulative */
	ig_mctr sum_ns;
};

struct ig_metrics {
	_Alignas(64) ig_mctr tls_ok;       /* completed handshakes */
	ig_mctr tls_fail[IG_MTF_COUNT];
	ig_mctr logins[IG_M_MECHS][IG_ML_COUNT];
	ig_mctr refusals[IG_MR_COUNT];
	ig_mctr tarpit_ms;                 /* tarpit delays scheduled */
	ig_mctr backend_err[IG_MBE_COUNT];
	ig_mctr to_backend;                /* relayed bytes, client to backend */
	ig_mctr to_client;                 /* relayed bytes, backend to client */
	ig_mctr relay_in, relay_out;       /* sessions that entered / left relay */
	ig_mctr apppass[IG_MAP_COUNT];
	struct ig_metrics_hist hist[IG_MH_COUNT];
	ig_mctr *conns;                    /* accepted, per listener (nlisteners) */
	size_t nlisteners;
};

/* Adds n to a counter of the calling thread's own struct ig_metrics. */
static inline void
ig_metric_add(ig_mctr *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

/*
 * Allocates n zeroed structs (cache-line aligned, one per worker) with
 * their per-listener counters. Returns NULL when out of memory.
 */
struct ig_metrics *ig_metrics_new(size_t n, size_t nlisteners);
void ig_metrics_free(struct ig_metrics *m, size_t n);

/* Records one observation of ns nanoseconds in histogram h of m. */
void ig_metrics_observe(struct ig_metrics *m, enum ig_m_hist h, uint64_t ns);

/* The refusal reason for a policy decision's reason (policy/decide.h);
   IG_MR_COUNT for one that is not a refusal. */
enum ig_m_refusal ig_metrics_refusal_of(const char *decision_reason);
/* The refusal reason for a limiter's refusing limit (ig_rl_verdict.limit). */
enum ig_m_refusal ig_metrics_refusal_of_limit(const char *limit);
/* The kind of a backend error as backend.c logs its reason. */
enum ig_m_backend_err ig_metrics_backend_err_of(const char *reason);

/* Rate-limit limit names, as the limiter spells them (ig_rl_verdict.limit). */
#define IG_M_RL_LIMITS 6u
extern const char *const ig_metrics_rl_limits[IG_M_RL_LIMITS];

/* One served certificate, for its expiry metric. */
struct ig_metrics_cert {
	const char *name;              /* its file, as configured */
	int64_t not_after;             /* earliest end of validity in its chain,
	                                  Unix seconds */
};

/* What the scrape adds to the workers' counters: the server's view now. */
struct ig_metrics_view {
	const struct ig_metrics *workers;   /* nworkers structs */
	unsigned nworkers;
	const char *const *listener_names;  /* nlisteners */
	const unsigned *listener_current;   /* live sessions per listener */
	size_t nlisteners;
	const char *version;
	const char *mbedtls_version;
	const char *crypto;                 /* the crypto backend in use */
	double start_time;                  /* Unix seconds */
	bool rl_enabled;
	unsigned rl_blocks[IG_M_RL_LIMITS]; /* active blocks per limit */
	bool backend_up;                    /* the last probe succeeded */
	uint64_t reloads_ok, reloads_failed;
	const struct ig_metrics_cert *certs;
	size_t ncerts;
	/* App passwords (proxy/apprt.h): written when apppass_on. */
	bool apppass_on;
	bool apppass_loaded;                /* a snapshot is in force */
	uint64_t apppass_active, apppass_revoked, apppass_invalid;
	uint64_t apppass_reloads, apppass_load_errors;
	uint64_t apppass_verifications, apppass_verify_ns;
	unsigned apppass_outstanding;
	/* The process (negative when unknown: not written). */
	double open_fds, max_fds, rss_bytes, vsize_bytes, cpu_seconds;
};

/* Writes every family to e, the workers' counters added up. */
void ig_metrics_write(struct ig_expo *e, const struct ig_metrics_view *v);

#endif /* IG_PROXY_METRICS_H */
