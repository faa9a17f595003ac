/*
 * The process's counters and their exposition (proxy/metrics.h).
 */
#include "proxy/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/expo.h"

const double ig_metrics_bounds[IG_M_NBOUNDS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

const char *const ig_metrics_rl_limits[IG_M_RL_LIMITS] = {
	"address", "spray-address", "user", "user-address", "user-circuit", "password-spray",
};

static const char *const m_tls_fail_names[IG_MTF_COUNT] = { "closed", "timeout", "error" };
static const char *const m_login_names[IG_ML_COUNT] = {
	"ok", "fail", "refused", "tempfail", "cancelled",
};
static const char *const m_refusal_names[IG_MR_COUNT] = {
	"plaintext", "mechanism", "deny", "allow_from", "authzid", "ratelimit", "spray",
};
static const char *const m_backend_err_names[IG_MBE_COUNT] = {
	"connect", "timeout", "tls", "protocol", "io",
};

struct ig_metrics *
ig_metrics_new(size_t n, size_t nlisteners)
{
	size_t sz = (n * sizeof(struct ig_metrics) + 63) & ~(size_t)63;
	struct ig_metrics *m = aligned_alloc(64, sz ? sz : 64);
	if (m == NULL)
		return NULL;
	memset(m, 0, sz ? sz : 64);
	for (size_t i = 0; i < n; i++) {
		m[i].nlisteners = nlisteners;
		m[i].conns = calloc(nlisteners ? nlisteners : 1, sizeof(*m[i].conns));
		if (m[i].conns == NULL) {
			ig_metrics_free(m, i);
			return NULL;
		}
	}
	return m;
}

void
ig_metrics_free(struct ig_metrics *m, size_t n)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(m[i].conns);
	free(m);
}

void
ig_metrics_observe(struct ig_metrics *m, enum ig_m_hist h, uint64_t ns)
{
	struct ig_metrics_hist *hs = &m->hist[h];
	double s = (double)ns / 1e9;
	unsigned b = 0;
	while (b < IG_M_NBOUNDS && s > ig_metrics_bounds[b])
		b++;
	ig_metric_add(&hs->bucket[b], 1);
	ig_metric_add(&hs->sum_ns, ns);
}

enum ig_m_refusal
ig_metrics_refusal_of(const char *r)
{
	if (r == NULL)
		return IG_MR_COUNT;
	if (strcmp(r, "tls-required") == 0 || strcmp(r, "plaintext-not-from-network") == 0)
		return IG_MR_PLAINTEXT;
	if (strcmp(r, "login-command-blocked") == 0 || strcmp(r, "mechanism-blocked") == 0)
		return IG_MR_MECHANISM;
	if (strcmp(r, "account-blocked") == 0)
		return IG_MR_DENY;
	if (strcmp(r, "address-not-allowed") == 0)
		return IG_MR_ALLOW_FROM;
	return IG_MR_COUNT;
}

enum ig_m_refusal
ig_metrics_refusal_of_limit(const char *limit)
{
	if (limit != NULL && (strcmp(limit, "spray-address") == 0 ||
	    strcmp(limit, "password-spray") == 0))
		return IG_MR_SPRAY;
	return IG_MR_RATELIMIT;
}

enum ig_m_backend_err
ig_metrics_backend_err_of(const char *r)
{
	static const struct {
		const char *reason;
		enum ig_m_backend_err kind;
	} map[] = {
		{ "socket", IG_MBE_CONNECT },
		{ "connect", IG_MBE_CONNECT },
		{ "connect-failed", IG_MBE_CONNECT },
		{ "timeout", IG_MBE_TIMEOUT },
		{ "tls-setup", IG_MBE_TLS },
		{ "tls", IG_MBE_TLS },
		{ "tls-identity", IG_MBE_TLS },
		{ "starttls-refused", IG_MBE_TLS },
		{ "bad-greeting", IG_MBE_PROTOCOL },
		{ "capability-refused", IG_MBE_PROTOCOL },
		{ "line-too-long", IG_MBE_PROTOCOL },
		{ "sasl-line-too-long", IG_MBE_PROTOCOL },
		{ "master-login", IG_MBE_PROTOCOL },
		{ "master-login-refused", IG_MBE_PROTOCOL },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(r, map[i].reason) == 0)
			return map[i].kind;
	return IG_MBE_IO; /* write, read, closed, out-of-memory */
}

static uint64_t
m_load(const ig_mctr *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* The sum of one counter (at offset off in struct ig_metrics) over workers. */
static uint64_t
m_sum(const struct ig_metrics_view *v, size_t off)
{
	uint64_t t = 0;
	for (unsigned w = 0; w < v->nworkers; w++)
		t += m_load((const ig_mctr *)((const char *)&v->workers[w] + off));
	return t;
}
#define M_SUM(v, field) m_sum((v), offsetof(struct ig_metrics, field))

static void
m_labelled(struct ig_expo *e, const struct ig_metrics_view *v, const char *name,
    const char *label, const char *const *names, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++) {
		struct ig_expo_label l = { label, names[i] };
		ig_expo_u64(e, name, &l, 1, m_sum(v, off + i * sizeof(ig_mctr)));
	}
}

static const char *
m_mech_name(unsigned i)
{
	if (i == IG_M_MECH_LOGIN_CMD)
		return "LOGIN-command";
	if (i == IG_M_MECH_UNKNOWN)
		return "unknown";
	return ig_sasl_mech_str((enum ig_sasl_mech)i);
}

static void
m_histogram(struct ig_expo *e, const struct ig_metrics_view *v, const char *name,
    const char *help, enum ig_m_hist h)
{
	uint64_t counts[IG_M_NBOUNDS + 1] = { 0 };
	uint64_t sum_ns = 0;
	for (unsigned w = 0; w < v->nworkers; w++) {
		const struct ig_metrics_hist *hs = &v->workers[w].hist[h];
		for (unsigned b = 0; b <= IG_M_NBOUNDS; b++)
			counts[b] += m_load(&hs->bucket[b]);
		sum_ns += m_load(&hs->sum_ns);
	}
	ig_expo_family(e, name, "histogram", help);
	ig_expo_histogram(e, name, NULL, 0, ig_metrics_bounds, counts, IG_M_NBOUNDS,
	    (double)sum_ns / 1e9);
}

static void
m_process(struct ig_expo *e, const struct ig_metrics_view *v)
{
	ig_expo_family(e, "process_start_time_seconds", "gauge",
	    "Start time of the process since the Unix epoch in seconds.");
	ig_expo_double(e, "process_start_time_seconds", NULL, 0, v->start_time);
	if (v->cpu_seconds >= 0) {
		ig_expo_family(e, "process_cpu_seconds_total", "counter",
		    "Total user and system CPU time spent in seconds.");
		ig_expo_double(e, "process_cpu_seconds_total", NULL, 0, v->cpu_seconds);
	}
	if (v->open_fds >= 0) {
		ig_expo_family(e, "process_open_fds", "gauge", "Number of open file descriptors.");
		ig_expo_double(e, "process_open_fds", NULL, 0, v->open_fds);
	}
	if (v->max_fds >= 0) {
		ig_expo_family(e, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		ig_expo_double(e, "process_max_fds", NULL, 0, v->max_fds);
	}
	if (v->rss_bytes >= 0) {
		ig_expo_family(e, "process_resident_memory_bytes", "gauge",
		    "Resident memory size in bytes.");
		ig_expo_double(e, "process_resident_memory_bytes", NULL, 0, v->rss_bytes);
	}
	if (v->vsize_bytes >= 0) {
		ig_expo_family(e, "process_virtual_memory_bytes", "gauge",
		    "Virtual memory size in bytes.");
		ig_expo_double(e, "process_virtual_memory_bytes", NULL, 0, v->vsize_bytes);
	}
}

static const char *const m_apppass_login_names[] = {
	"ok", "wrong", "unknown", "revoked", "expired", "network", "busy",
};
_Static_assert(sizeof(m_apppass_login_names) / sizeof(m_apppass_login_names[0]) ==
    IG_MAP_ACCOUNT_REFUSED, "an outcome name per app password login outcome");

/* App passwords (issue 17): logins, the account password, the store. */
static void
m_apppass(struct ig_expo *e, const struct ig_metrics_view *v)
{
	ig_expo_family(e, "imapguard_app_password_logins_total", "counter",
	    "Logins with an app password, by outcome (busy: the verifications' cap).");
	m_labelled(e, v, "imapguard_app_password_logins_total", "result", m_apppass_login_names,
	    IG_MAP_ACCOUNT_REFUSED, offsetof(struct ig_metrics, apppass));
	ig_expo_family(e, "imapguard_account_password_logins_total", "counter",
	    "Logins with the account password under a credentials rule: refused "
	    "(app_passwords) or passed to the backend (both, or monitor mode).");
	struct ig_expo_label l = { "result", "refused" };
	ig_expo_u64(e, "imapguard_account_password_logins_total", &l, 1,
	    M_SUM(v, apppass[IG_MAP_ACCOUNT_REFUSED]));
	l.value = "passed";
	ig_expo_u64(e, "imapguard_account_password_logins_total", &l, 1,
	    M_SUM(v, apppass[IG_MAP_ACCOUNT_USED]));
	ig_expo_family(e, "imapguard_app_password_sessions_ended_total", "counter",
	    "Live sessions ended because their app password was revoked.");
	ig_expo_u64(e, "imapguard_app_password_sessions_ended_total", NULL, 0,
	    M_SUM(v, apppass[IG_MAP_SESSIONS_ENDED]));
	ig_expo_family(e, "imapguard_app_passwords", "gauge",
	    "App passwords in the snapshot in force, by state (invalid: rows left out).");
	l.name = "state";
	l.value = "active";
	ig_expo_u64(e, "imapguard_app_passwords", &l, 1, v->apppass_active);
	l.value = "revoked";
	ig_expo_u64(e, "imapguard_app_passwords", &l, 1, v->apppass_revoked);
	l.value = "invalid";
	ig_expo_u64(e, "imapguard_app_passwords", &l, 1, v->apppass_invalid);
	ig_expo_family(e, "imapguard_app_password_store_loaded", "gauge",
	    "1 when a snapshot of the app password store is in force, else 0.");
	ig_expo_u64(e, "imapguard_app_password_store_loaded", NULL, 0, v->apppass_loaded ? 1 : 0);
	ig_expo_family(e, "imapguard_app_password_store_reloads_total", "counter",
	    "Snapshots of the app password store loaded (each change: issued, revoked).");
	ig_expo_u64(e, "imapguard_app_password_store_reloads_total", NULL, 0,
	    v->apppass_reloads);
	ig_expo_family(e, "imapguard_app_password_store_errors_total", "counter",
	    "Polls of the app password store that could not read it.");
	ig_expo_u64(e, "imapguard_app_password_store_errors_total", NULL, 0,
	    v->apppass_load_errors);
	ig_expo_family(e, "imapguard_app_password_verifications_total", "counter",
	    "Argon2id verifications computed.");
	ig_expo_u64(e, "imapguard_app_password_verifications_total", NULL, 0,
	    v->apppass_verifications);
	ig_expo_family(e, "imapguard_app_password_verify_seconds_total", "counter",
	    "Time spent computing Argon2id verifications, in seconds.");
	ig_expo_double(e, "imapguard_app_password_verify_seconds_total", NULL, 0,
	    (double)v->apppass_verify_ns / 1e9);
	ig_expo_family(e, "imapguard_app_password_verifications_outstanding", "gauge",
	    "Verifications queued or computing now.");
	ig_expo_u64(e, "imapguard_app_password_verifications_outstanding", NULL, 0,
	    v->apppass_outstanding);
}

void
ig_metrics_write(struct ig_expo *e, const struct ig_metrics_view *v)
{
	struct ig_expo_label bl[3] = {
		{ "version", v->version },
		{ "mbedtls_version", v->mbedtls_version },
		{ "crypto", v->crypto },
	};
	ig_expo_family(e, "imapguard_build_info", "gauge",
	    "Build information: version, mbedTLS version and the crypto backend in use; "
	    "always 1.");
	ig_expo_u64(e, "imapguard_build_info", bl, 3, 1);
	m_process(e, v);
	ig_expo_family(e, "imapguard_workers", "gauge", "Worker threads.");
	ig_expo_u64(e, "imapguard_workers", NULL, 0, v->nworkers);

	ig_expo_family(e, "imapguard_current_connections", "gauge",
	    "Client connections open now, by listener.");
	for (size_t i = 0; i < v->nlisteners; i++) {
		struct ig_expo_label l = { "listener", v->listener_names[i] };
		ig_expo_u64(e, "imapguard_current_connections", &l, 1, v->listener_current[i]);
	}
	ig_expo_family(e, "imapguard_connections_total", "counter",
	    "Client connections accepted, by listener.");
	for (size_t i = 0; i < v->nlisteners; i++) {
		uint64_t t = 0;
		for (unsigned w = 0; w < v->nworkers; w++)
			if (i < v->workers[w].nlisteners)
				t += m_load(&v->workers[w].conns[i]);
		struct ig_expo_label l = { "listener", v->listener_names[i] };
		ig_expo_u64(e, "imapguard_connections_total", &l, 1, t);
	}

	ig_expo_family(e, "imapguard_tls_handshakes_total", "counter",
	    "Client TLS handshakes completed (implicit TLS and STARTTLS).");
	ig_expo_u64(e, "imapguard_tls_handshakes_total", NULL, 0, M_SUM(v, tls_ok));
	ig_expo_family(e, "imapguard_tls_handshake_failures_total", "counter",
	    "Client TLS handshakes that failed, by reason.");
	m_labelled(e, v, "imapguard_tls_handshake_failures_total", "reason", m_tls_fail_names,
	    IG_MTF_COUNT, offsetof(struct ig_metrics, tls_fail));

	ig_expo_family(e, "imapguard_login_attempts_total", "counter",
	    "Login attempts (LOGIN and AUTHENTICATE), by mechanism and result.");
	for (unsigned m = 0; m < IG_M_MECHS; m++)
		for (unsigned r = 0; r < IG_ML_COUNT; r++) {
			struct ig_expo_label l[2] = {
				{ "mechanism", m_mech_name(m) }, { "result", m_login_names[r] },
			};
			ig_expo_u64(e, "imapguard_login_attempts_total", l, 2,
			    M_SUM(v, logins[m][r]));
		}
	ig_expo_family(e, "imapguard_login_refusals_total", "counter",
	    "Logins refused by imapguard before the backend, by reason.");
	m_labelled(e, v, "imapguard_login_refusals_total", "reason", m_refusal_names,
	    IG_MR_COUNT, offsetof(struct ig_metrics, refusals));
	m_histogram(e, v, "imapguard_login_duration_seconds",
	    "Time from a login command to the backend's answer, for logins that reached "
	    "the backend.", IG_MH_LOGIN);

	if (v->rl_enabled) {
		ig_expo_family(e, "imapguard_ratelimit_blocks", "gauge",
		    "Rate-limit blocks active now, by limit.");
		for (unsigned i = 0; i < IG_M_RL_LIMITS; i++) {
			struct ig_expo_label l = { "limit", ig_metrics_rl_limits[i] };
			ig_expo_u64(e, "imapguard_ratelimit_blocks", &l, 1, v->rl_blocks[i]);
		}
	}
	ig_expo_family(e, "imapguard_tarpit_seconds_total", "counter",
	    "Delays imposed on answers to failed logins (tarpit), in seconds.");
	ig_expo_double(e, "imapguard_tarpit_seconds_total", NULL, 0,
	    (double)M_SUM(v, tarpit_ms) / 1000.0);

	ig_expo_family(e, "imapguard_backend_up", "gauge",
	    "1 when the last backend probe succeeded, else 0.");
	ig_expo_u64(e, "imapguard_backend_up", NULL, 0, v->backend_up ? 1 : 0);
	m_histogram(e, v, "imapguard_backend_connect_duration_seconds",
	    "Time to open a TCP connection to the backend for a login (to a backend that "
	    "speaks first, cleartext without a PROXY header: until its first bytes).",
	    IG_MH_BACKEND_CONNECT);
	ig_expo_family(e, "imapguard_backend_connection_errors_total", "counter",
	    "Backend connections for logins that failed before the login's answer, by "
	    "reason.");
	m_labelled(e, v, "imapguard_backend_connection_errors_total", "reason",
	    m_backend_err_names, IG_MBE_COUNT, offsetof(struct ig_metrics, backend_err));

	ig_expo_family(e, "imapguard_relayed_bytes_total", "counter",
	    "Bytes relayed after login, by direction.");
	struct ig_expo_label dl = { "direction", "client_to_backend" };
	ig_expo_u64(e, "imapguard_relayed_bytes_total", &dl, 1, M_SUM(v, to_backend));
	dl.value = "backend_to_client";
	ig_expo_u64(e, "imapguard_relayed_bytes_total", &dl, 1, M_SUM(v, to_client));
	/* Read "out" first: a session counted out is always counted in. */
	uint64_t out = M_SUM(v, relay_out), in = M_SUM(v, relay_in);
	ig_expo_family(e, "imapguard_relay_sessions", "gauge",
	    "Sessions logged in and relaying now.");
	ig_expo_u64(e, "imapguard_relay_sessions", NULL, 0, in > out ? in - out : 0);

	ig_expo_family(e, "imapguard_reloads_total", "counter",
	    "Configuration reloads (SIGHUP), by result.");
	struct ig_expo_label rl = { "result", "success" };
	ig_expo_u64(e, "imapguard_reloads_total", &rl, 1, v->reloads_ok);
	rl.value = "failure";
	ig_expo_u64(e, "imapguard_reloads_total", &rl, 1, v->reloads_failed);

	if (v->apppass_on)
		m_apppass(e, v);

	ig_expo_family(e, "imapguard_tls_certificate_expiry_timestamp_seconds", "gauge",
	    "End of validity of each served certificate chain (its earliest), Unix seconds.");
	for (size_t i = 0; i < v->ncerts; i++) {
		struct ig_expo_label l = { "certificate", v->certs[i].name };
		ig_expo_double(e, "imapguard_tls_certificate_expiry_timestamp_seconds", &l, 1,
		    (double)v->certs[i].not_after);
	}
}
