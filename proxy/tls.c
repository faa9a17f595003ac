/*
 * mbedTLS glue. One shared mbedtls_ssl_config per role and generation, one
 * mbedtls_ssl_context per connection over BIO callbacks that read from and
 * write to the connection's raw buffers (conn_raw.h). Starting TLS installs
 * this file's layer on the connection (struct ig_conn_layer), through which
 * ig_conn_read/_write/_shutdown/_close reach it: conn.c knows nothing of
 * TLS. WANT_READ/WANT_WRITE stay in here: callers see the tri-state of
 * proxy/conn.h.
 */
#include "proxy/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "certs/name.h"
#include "crypto/backend.h"
#include "proxy/conn_raw.h"
#include "util/err.h"
#include "util/log.h"

struct ig_tls_server {
	mbedtls_ssl_config conf;
	const struct ig_certstore *store;
	bool strict_sni;
	/*
	 * Session resumption, one per generation like the configuration (a
	 * reload starts new ticket keys and an empty cache, as nginx does
	 * without a ticket key file; with tls.ticket_key_file the new
	 * generation reads the same keys, and tickets survive it). Both lock
	 * themselves (MBEDTLS_THREADING_C): the generation is shared by every
	 * worker.
	 */
	bool tickets;
	bool cache_on;
	mbedtls_ssl_ticket_context ticket;
	mbedtls_ssl_cache_context cache;
	/*
	 * ticket_lock: the ticket callbacks (any worker) against the main
	 * thread's key changes. mbedTLS locks its context in write and parse
	 * but not in mbedtls_ssl_ticket_rotate(), which destroys the key it
	 * replaces: a parse must not run meanwhile, nor a write between the two
	 * rotations that install a pair.
	 */
	pthread_mutex_t ticket_lock;
	bool ticket_lock_on;
	/*
	 * With tls.ticket_key_file: the keys the context holds and the file
	 * they came from. Written on the main thread only (at load, by
	 * ig_tls_server_set_ticket_keys and _ticket_refresh), read there too.
	 */
	bool tk_file;
	struct ig_ticket_keys tk_keys;  /* wiped on change and at free */
	struct ig_file_id tk_id;        /* of what was read */
	time_t tk_applied;              /* mbedTLS's clock (time(NULL)) when
	                                   they were last installed; 0 = to be
	                                   installed again at the next refresh */
	uint32_t tk_lifetime_s;         /* tls.session_timeout */
};

/*
 * The connection whose handshake this thread is advancing: the ticket and
 * cache callbacks receive no SSL context, and mark it resumed through this.
 * Set only for the duration of one mbedtls_ssl_handshake() call.
 */
static _Thread_local struct ig_conn *tls_in_handshake;

/*
 * What the crypto backend keeps for a connection (the OpenSSL driver's AEAD
 * contexts for its traffic keys) is tagged with it: every call into mbedTLS
 * for c runs between tls_owner_enter(c) and tls_owner_leave() with what the
 * first returned, and tls_free() drops c's alone. The ticket callbacks,
 * which run inside such calls, set no owner: the ticket key serves every
 * connection.
 */
static const void *
tls_owner_enter(const void *owner)
{
	return ig_crypto_owner_set(owner);
}

static void
tls_owner_leave(const void *prev)
{
	ig_crypto_owner_set(prev);
}

struct ig_tls_client {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	char name[256];
	bool verify;
};

static const char *tls_alpn[] = { "imap", NULL };

/* AEAD suites with forward secrecy only (RFC 8996 / BCP 195). */
static const int tls_suites[] = {
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	0
};

/* TLS 1.2 AES-GCM: header 5, explicit nonce 8, tag 16 (TLS 1.3: 5 + 1 + 16). */
#define TLS_RECORD_EXPANSION 32

size_t
ig_tls_write_slack(size_t plain)
{
	return (plain / MBEDTLS_SSL_OUT_CONTENT_LEN + 1) * TLS_RECORD_EXPANSION;
}

int
ig_tls_global_init(void)
{
	return psa_crypto_init() == PSA_SUCCESS ? 0 : IG_ETLS;
}

static void
tls_strerror(int ret, const char *what, char *err, size_t errsz)
{
	char buf[160];
	mbedtls_strerror(ret, buf, sizeof(buf));
	snprintf(err, errsz, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
}

static int
tls_sni_cb(void *p, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
	const struct ig_tls_server *ts = p;
	struct ig_conn *c = mbedtls_ssl_get_user_data_p(ssl);
	if (c != NULL && c->sni != NULL && c->sni_size > 0) {
		size_t n = len < c->sni_size - 1 ? len : c->sni_size - 1;
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = name[i];
			c->sni[i] = (ch > 0x20 && ch < 0x7f) ? (char)ch : '?';
		}
		c->sni[n] = '\0';
	}
	int rc = ig_certstore_select(ts->store, ssl, name, len);
	if (rc == IG_ENOTFOUND && ts->strict_sni)
		return -1;
	return 0;
}

/*
 * The index of the encrypting key in the ticket context. mbedTLS replaces a
 * key older than its lifetime by itself, inside a ticket write or parse
 * (ssl_ticket_update_keys(): the other key, destroyed, is made anew and
 * becomes the encrypting one), and has no accessor that would tell: the
 * index, read under ticket_lock before and after the call, changes then.
 */
static unsigned char
tls_ticket_active(const struct ig_tls_server *ts)
{
	return ts->ticket.MBEDTLS_PRIVATE(active);
}

/*
 * A ticket key was retired in that call (see above): the crypto backend
 * drops the contexts it keeps for it. Under ticket_lock.
 */
static void
tls_ticket_check_rotated(const struct ig_tls_server *ts, unsigned char active_before)
{
	if (tls_ticket_active(ts) != active_before)
		ig_crypto_ticket_keys_changed();
}

/* A new ticket, under the current encrypting key. */
static int
tls_ticket_write(void *p_ts, const mbedtls_ssl_session *session, unsigned char *start,
    const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
	struct ig_tls_server *ts = p_ts;
	const void *prev = tls_owner_enter(NULL);
	pthread_mutex_lock(&ts->ticket_lock);
	unsigned char active = tls_ticket_active(ts);
	int ret = mbedtls_ssl_ticket_write(&ts->ticket, session, start, end, tlen, lifetime);
	tls_ticket_check_rotated(ts, active);
	pthread_mutex_unlock(&ts->ticket_lock);
	tls_owner_leave(prev);
	return ret;
}

/* A ticket that decrypts and is still valid resumes the session. */
static int
tls_ticket_parse(void *p_ts, mbedtls_ssl_session *session, unsigned char *buf,
    size_t len)
{
	struct ig_tls_server *ts = p_ts;
	const void *prev = tls_owner_enter(NULL);
	pthread_mutex_lock(&ts->ticket_lock);
	unsigned char active = tls_ticket_active(ts);
	int ret = mbedtls_ssl_ticket_parse(&ts->ticket, session, buf, len);
	tls_ticket_check_rotated(ts, active);
	pthread_mutex_unlock(&ts->ticket_lock);
	tls_owner_leave(prev);
	if (ret == 0 && tls_in_handshake != NULL)
		tls_in_handshake->tls_resumed = true;
	return ret;
}

/*
 * Installs keys in the ticket context, oldest first, so that the last one
 * ends up active (encrypting) and the one before it in the other slot
 * (decrypting); a single key fills both slots. Each key gets lifetime_s,
 * which is also the lifetime of the tickets it writes. The caller holds
 * ticket_lock, or the configuration is not shared yet. Returns 0 or an
 * mbedTLS error (the context may then hold a slot without a key, which
 * decrypts nothing: install again). Either way the keys replaced are
 * destroyed, and the crypto backend drops what it kept for them.
 */
static int
tls_ticket_install(struct ig_tls_server *ts, const struct ig_ticket_keys *keys)
{
	int ret = 0;
	for (size_t i = 0; i < IG_TICKET_KEYS_MAX && ret == 0; i++) {
		const struct ig_ticket_key *k = &keys->k[keys->n == 1 ? 0 : i];
		ret = mbedtls_ssl_ticket_rotate(&ts->ticket, k->name, sizeof(k->name), k->key,
		    sizeof(k->key), ts->tk_lifetime_s);
	}
	ig_crypto_ticket_keys_changed();
	return ret;
}

int
ig_tls_server_set_ticket_keys(struct ig_tls_server *ts, const struct ig_ticket_keys *keys,
    const struct ig_file_id *id, char *err, size_t errsz)
{
	if (!ts->tickets || keys->n < 1 || keys->n > IG_TICKET_KEYS_MAX) {
		snprintf(err, errsz, "session tickets are off");
		return IG_EINVAL;
	}
	pthread_mutex_lock(&ts->ticket_lock);
	int ret = tls_ticket_install(ts, keys);
	if (ret == 0) {
		ts->tk_keys = *keys;
		ts->tk_id = *id;
		ts->tk_file = true;
		ts->tk_applied = time(NULL);
	} else {
		ts->tk_applied = 0; /* the keys held before, at the next refresh */
	}
	pthread_mutex_unlock(&ts->ticket_lock);
	if (ret != 0) {
		tls_strerror(ret, "installing the ticket keys", err, errsz);
		return IG_ETLS;
	}
	return 0;
}

int
ig_tls_server_ticket_refresh(struct ig_tls_server *ts, char *err, size_t errsz)
{
	if (!ts->tk_file)
		return 0;
	/*
	 * mbedTLS replaces an encrypting key older than its lifetime with a
	 * random one of its own (ssl_ticket_update_keys(), on its clock),
	 * which no other member of the fleet could decrypt: install the same
	 * keys again, which starts their lifetime anew, at half of it. (A
	 * ticket's own lifetime is checked against the time it was issued.)
	 */
	time_t now = time(NULL);
	if (ts->tk_applied != 0 && now >= ts->tk_applied &&
	    (uint64_t)(now - ts->tk_applied) < ts->tk_lifetime_s / 2)
		return 0;
	pthread_mutex_lock(&ts->ticket_lock);
	int ret = tls_ticket_install(ts, &ts->tk_keys);
	ts->tk_applied = ret == 0 ? now : 0;
	pthread_mutex_unlock(&ts->ticket_lock);
	if (ret != 0) {
		tls_strerror(ret, "installing the ticket keys again", err, errsz);
		return IG_ETLS;
	}
	return 1;
}

bool
ig_tls_server_ticket_file(const struct ig_tls_server *ts, struct ig_file_id *id,
    char enc[IG_TICKET_KEY_NAME_HEX], char dec[IG_TICKET_KEY_NAME_HEX])
{
	if (!ts->tk_file)
		return false;
	const struct ig_ticket_keys *k = &ts->tk_keys;
	if (id != NULL)
		*id = ts->tk_id;
	if (enc != NULL)
		ig_ticket_key_name_hex(k->k[k->n - 1].name, enc);
	if (dec != NULL) {
		if (k->n > 1)
			ig_ticket_key_name_hex(k->k[k->n - 2].name, dec);
		else
			snprintf(dec, IG_TICKET_KEY_NAME_HEX, "none");
	}
	return true;
}

/* A TLS 1.2 session id found in the cache resumes the session. */
static int
tls_cache_get(void *data, unsigned char const *id, size_t id_len, mbedtls_ssl_session *session)
{
	int ret = mbedtls_ssl_cache_get(data, id, id_len, session);
	if (ret == 0 && tls_in_handshake != NULL)
		tls_in_handshake->tls_resumed = true;
	return ret;
}

static int
tls_resumption_setup(struct ig_tls_server *ts, const struct ig_config *cfg, char *err,
    size_t errsz)
{
	uint32_t lifetime_s = cfg->tls_session_timeout_ms / 1000u;
	if (cfg->tls_tickets) {
		mbedtls_ssl_ticket_init(&ts->ticket);
		ts->tickets = true;
		if (pthread_mutex_init(&ts->ticket_lock, NULL) != 0) {
			snprintf(err, errsz, "TLS session tickets: cannot create a lock");
			return IG_ETLS;
		}
		ts->ticket_lock_on = true;
		ts->tk_lifetime_s = lifetime_s;
		/*
		 * Random keys rotate every lifetime; a ticket stays valid for one
		 * lifetime. Keys from tls.ticket_key_file replace them at once.
		 */
		int ret = mbedtls_ssl_ticket_setup(&ts->ticket, mbedtls_psa_get_random,
		    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM, lifetime_s);
		if (ret != 0) {
			tls_strerror(ret, "TLS session tickets", err, errsz);
			return IG_ETLS;
		}
		if (cfg->tls_ticket_key_file != NULL) {
			struct ig_ticket_keys keys;
			struct ig_file_id id;
			char why[256];
			int rc = ig_ticket_keys_load(cfg->tls_ticket_key_file, &keys, &id, why,
			    sizeof(why));
			if (rc == 0)
				rc = ig_tls_server_set_ticket_keys(ts, &keys, &id, why, sizeof(why));
			ig_ticket_keys_wipe(&keys);
			if (rc != 0) {
				snprintf(err, errsz, "tls.ticket_key_file %s: %s",
				    cfg->tls_ticket_key_file, why);
				return IG_ETLS;
			}
		}
		mbedtls_ssl_conf_session_tickets_cb(&ts->conf, tls_ticket_write,
		    tls_ticket_parse, ts);
		mbedtls_ssl_conf_session_tickets(&ts->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	} else {
		mbedtls_ssl_conf_session_tickets(&ts->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
		mbedtls_ssl_conf_new_session_tickets(&ts->conf, 0);
#endif
	}
	if (cfg->tls_session_cache > 0) {
		mbedtls_ssl_cache_init(&ts->cache);
		ts->cache_on = true;
		mbedtls_ssl_cache_set_max_entries(&ts->cache, (int)cfg->tls_session_cache);
		mbedtls_ssl_cache_set_timeout(&ts->cache, (int)lifetime_s);
		mbedtls_ssl_conf_session_cache(&ts->conf, &ts->cache, tls_cache_get,
		    mbedtls_ssl_cache_set);
	}
	return 0;
}

static void
tls_conf_common(mbedtls_ssl_config *conf, int min_version)
{
	mbedtls_ssl_conf_rng(conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_min_tls_version(conf, min_version >= 13 ?
	    MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(conf, tls_suites);
#if defined(MBEDTLS_SSL_RENEGOTIATION)
	/* (Our own mbedTLS build has no renegotiation code at all.) */
	mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
}

int
ig_tls_server_new(const struct ig_config *cfg, const struct ig_certstore *store,
    struct ig_tls_server **out, char *err, size_t errsz)
{
	struct ig_tls_server *ts = calloc(1, sizeof(*ts));
	if (ts == NULL)
		return IG_ENOMEM;
	mbedtls_ssl_config_init(&ts->conf);
	ts->store = store;
	ts->strict_sni = cfg->strict_sni;
	int ret = mbedtls_ssl_config_defaults(&ts->conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0) {
		tls_strerror(ret, "TLS server defaults", err, errsz);
		goto fail;
	}
	tls_conf_common(&ts->conf, cfg->tls_min_version);
	mbedtls_ssl_conf_authmode(&ts->conf, MBEDTLS_SSL_VERIFY_NONE);
	ret = mbedtls_ssl_conf_alpn_protocols(&ts->conf, tls_alpn);
	if (ret != 0) {
		tls_strerror(ret, "TLS ALPN", err, errsz);
		goto fail;
	}
	ret = ig_certstore_apply_default(store, &ts->conf);
	if (ret != 0) {
		snprintf(err, errsz, "installing the default certificates: %s", ig_strerror(ret));
		goto fail;
	}
	mbedtls_ssl_conf_sni(&ts->conf, tls_sni_cb, ts);
	if (tls_resumption_setup(ts, cfg, err, errsz) != 0)
		goto fail;
	*out = ts;
	return 0;
fail:
	ig_tls_server_free(ts);
	return IG_ETLS;
}

void
ig_tls_server_free(struct ig_tls_server *ts)
{
	if (ts == NULL)
		return;
	mbedtls_ssl_config_free(&ts->conf);
	if (ts->tickets) {
		mbedtls_ssl_ticket_free(&ts->ticket);
		ig_crypto_ticket_keys_changed();
	}
	if (ts->ticket_lock_on)
		pthread_mutex_destroy(&ts->ticket_lock);
	ig_ticket_keys_wipe(&ts->tk_keys);
	if (ts->cache_on)
		mbedtls_ssl_cache_free(&ts->cache);
	free(ts);
}

int
ig_tls_client_new(const struct ig_backend_conf *b, struct ig_tls_client **out,
    char *err, size_t errsz)
{
	struct ig_tls_client *tc = calloc(1, sizeof(*tc));
	if (tc == NULL)
		return IG_ENOMEM;
	mbedtls_ssl_config_init(&tc->conf);
	mbedtls_x509_crt_init(&tc->ca);
	snprintf(tc->name, sizeof(tc->name), "%s", b->server_name ? b->server_name : b->host);
	int ret = mbedtls_ssl_config_defaults(&tc->conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0) {
		tls_strerror(ret, "TLS client defaults", err, errsz);
		goto fail;
	}
	tls_conf_common(&tc->conf, 12);
	tc->verify = b->tls_verify;
	if (b->tls_verify) {
		const char *ca = b->ca ? b->ca : "/etc/ssl/certs/ca-certificates.crt";
		ret = mbedtls_x509_crt_parse_file(&tc->ca, ca);
		if (ret < 0) {
			char what[300];
			snprintf(what, sizeof(what), "backend CA file %s", ca);
			tls_strerror(ret, what, err, errsz);
			goto fail;
		}
		mbedtls_ssl_conf_ca_chain(&tc->conf, &tc->ca, NULL);
		mbedtls_ssl_conf_authmode(&tc->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	} else {
		mbedtls_ssl_conf_authmode(&tc->conf, MBEDTLS_SSL_VERIFY_NONE);
	}
	*out = tc;
	return 0;
fail:
	mbedtls_ssl_config_free(&tc->conf);
	mbedtls_x509_crt_free(&tc->ca);
	free(tc);
	return IG_ETLS;
}

void
ig_tls_client_free(struct ig_tls_client *tc)
{
	if (tc == NULL)
		return;
	mbedtls_ssl_config_free(&tc->conf);
	mbedtls_x509_crt_free(&tc->ca);
	free(tc);
}

static int
tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct ig_conn *c = ctx;
	long n = ig_conn_write_raw(c, buf, len);
	if (n < 0)
		return MBEDTLS_ERR_NET_SEND_FAILED;
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return (int)n;
}

static int
tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct ig_conn *c = ctx;
	long n = ig_conn_read_raw(c, buf, len < INT32_MAX ? len : INT32_MAX);
	if (n == IG_EEOF)
		return 0; /* mbedTLS: EOF */
	if (n < 0)
		return MBEDTLS_ERR_NET_RECV_FAILED;
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	return (int)n;
}

static long tls_read(struct ig_conn *c, uint8_t *buf, size_t len);
static long tls_write(struct ig_conn *c, const uint8_t *buf, size_t len);
static void tls_free(struct ig_conn *c);
static void tls_drained(struct ig_conn *c);

/* What conn.c calls once TLS is on (c->layer). */
static const struct ig_conn_layer tls_layer = {
	.read = tls_read,
	.write = tls_write,
	.close_notify = ig_tls_close_notify,
	.drained = tls_drained,
	.free = tls_free,
};

static int
tls_setup(struct ig_conn *c, const mbedtls_ssl_config *conf)
{
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, conf) != 0) {
		mbedtls_ssl_free(&c->ssl);
		return IG_ETLS;
	}
	mbedtls_ssl_set_bio(&c->ssl, c, tls_bio_send, tls_bio_recv, NULL);
	c->layer = &tls_layer;
	c->tls = true;
	c->tls_done = false;
	c->tls_resumed = false;
	c->tls_wpending = 0;
	return 0;
}

int
ig_tls_start_server(struct ig_conn *c, const struct ig_tls_server *ts,
    char *sni_out, size_t sni_outsz)
{
	int rc = tls_setup(c, &ts->conf);
	if (rc != 0)
		return rc;
	c->sni = sni_out;
	c->sni_size = sni_outsz;
	if (sni_out != NULL && sni_outsz > 0)
		sni_out[0] = '\0';
	mbedtls_ssl_set_user_data_p(&c->ssl, c);
	return 0;
}

int
ig_tls_start_client(struct ig_conn *c, const struct ig_tls_client *tc)
{
	int rc = tls_setup(c, &tc->conf);
	if (rc != 0)
		return rc;
	c->peer_name = tc->name;
	if (mbedtls_ssl_set_hostname(&c->ssl, tc->name) != 0) {
		tls_free(c);
		return IG_ETLS;
	}
	c->verify_peer = tc->verify;
	return 0;
}

/*
 * Our mbedTLS build frees a connection's input record buffer (16 KiB) while
 * no incoming data is buffered (crypto/patches/0001-ssl-release-in-buffer.patch):
 * by itself when a read finds nothing more, and through this when the raw
 * input is drained after a read that returned data (a session's last read
 * before it idles returns its command) or after the handshake. mbedTLS
 * checks that no record, part of one or unread data remains.
 */
static void
tls_release_in_buffer(struct ig_conn *c)
{
#if defined(IG_SSL_RELEASE_IN_BUFFER)
	if (c->rlen == c->roff)
		mbedtls_ssl_ig_in_buf_release(&c->ssl);
#else
	(void)c;
#endif
}

/*
 * And its output record buffer (8 KiB) once our raw output has drained
 * (crypto/patches/0003-ssl-release-out-buffer.patch): every record
 * mbedtls_ssl_write() made was already copied into the raw buffer by our
 * BIO, so between writes the buffer holds nothing of use; an idle session
 * keeps neither. mbedTLS checks that nothing is left to flush, and
 * allocates the buffer again in any call that may write.
 */
static void
tls_drained(struct ig_conn *c)
{
#if defined(IG_SSL_RELEASE_OUT_BUFFER)
	mbedtls_ssl_ig_out_buf_release(&c->ssl);
#else
	(void)c;
#endif
}

int
ig_tls_handshake(struct ig_conn *c, char *err, size_t errsz)
{
	if (c->tls_done)
		return 1;
	const void *prev = tls_owner_enter(c);
	tls_in_handshake = c;
	int ret = mbedtls_ssl_handshake(&c->ssl);
	tls_in_handshake = NULL;
	tls_owner_leave(prev);
	if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE ||
	    ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
		if (c->eof || c->error)
			goto eof;
		return 0;
	}
	if (ret != 0) {
		if (ret == MBEDTLS_ERR_SSL_CONN_EOF || (c->eof && c->rlen == c->roff))
			goto eof;
		tls_strerror(ret, "handshake failed", err, errsz);
		if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
			char vb[256];
			uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
			if (mbedtls_x509_crt_verify_info(vb, sizeof(vb), "", flags) > 0) {
				size_t l = strlen(vb);
				while (l > 0 && (vb[l - 1] == '\n' || vb[l - 1] == ' '))
					vb[--l] = '\0';
				for (size_t i = 0; i < l; i++)
					if (vb[i] == '\n')
						vb[i] = ';';
				size_t el = strlen(err);
				snprintf(err + el, errsz - el, ": %s", vb);
			}
			return IG_ECERT;
		}
		return IG_ETLS;
	}
	/*
	 * Defence in depth for the backend: mbedTLS checked the chain and the
	 * name; check the name again with our own RFC 6125 matcher.
	 */
	if (c->peer_name != NULL && c->verify_peer) {
		const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
		if (peer == NULL || ig_cert_check_host(peer, c->peer_name) != 0) {
			snprintf(err, errsz, "backend certificate does not match '%s'",
			    c->peer_name);
			return IG_ECERT;
		}
	}
	c->tls_done = true;
	tls_release_in_buffer(c);
	return 1;
eof:
	snprintf(err, errsz, "peer closed the connection during the handshake");
	return IG_EEOF;
}

bool
ig_tls_half_rtt_start(struct ig_conn *c)
{
#if defined(IG_SSL_HALF_RTT_DATA)
	if (!c->tls || c->tls_done || !mbedtls_ssl_ig_half_rtt_ready(&c->ssl))
		return false;
	c->tls_half_rtt = true;
	return true;
#else
	(void)c;
	return false;
#endif
}

/* ig_conn_read() over TLS. */
static long
tls_read(struct ig_conn *c, uint8_t *buf, size_t len)
{
	if (c->tls_close_notify)
		return IG_EEOF;
	/*
	 * No raw input and nothing buffered in mbedTLS (at most part of a
	 * record): a read cannot make progress, and would only take the
	 * released input buffer again (16 KiB allocated and freed each time
	 * the relay polls this side while the other one moves data).
	 */
	if (c->tls_done && c->rlen == c->roff && mbedtls_ssl_get_bytes_avail(&c->ssl) == 0 &&
	    !mbedtls_ssl_check_pending(&c->ssl)) {
		if (c->error)
			return c->error;
		return c->eof ? IG_EEOF : 0;
	}
	for (;;) {
		const void *prev = tls_owner_enter(c);
		int ret = mbedtls_ssl_read(&c->ssl, buf, len);
		tls_owner_leave(prev);
		if (ret > 0) {
			tls_release_in_buffer(c);
			return ret;
		}
		if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			if (c->error)
				return c->error;
			if (c->eof && c->rlen == c->roff)
				return IG_EEOF;
			return 0;
		}
		if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			c->tls_close_notify = true;
			return IG_EEOF;
		}
		if (ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == MBEDTLS_ERR_NET_CONN_RESET)
			return IG_EEOF;
		c->tls_last_error = ret;
		return IG_ETLS;
	}
}

void
ig_tls_last_error(const struct ig_conn *c, char *err, size_t errsz)
{
	int ret = c->tls_last_error;
	/* mbedTLS 3.6 has no TLS 1.3 KeyUpdate: it refuses one as an
	   unexpected message (Mbed-TLS/mbedtls#10881). Say so. */
	bool keyupdate = ret == MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE &&
	    mbedtls_ssl_get_version_number(&c->ssl) == MBEDTLS_SSL_VERSION_TLS1_3;
	tls_strerror(ret, keyupdate ? "after the handshake (a TLS 1.3 KeyUpdate? "
	    "mbedTLS 3.6 does not support it)" : "after the handshake", err, errsz);
}

/* ig_conn_write() over TLS. */
static long
tls_write(struct ig_conn *c, const uint8_t *buf, size_t len)
{
	/*
	 * mbedTLS requires a write that returned WANT_WRITE to be repeated with
	 * the same arguments: it answers with the length of the record it had
	 * already built. Pass exactly that length again.
	 */
	if (c->tls_wpending > 0) {
		if (len < c->tls_wpending)
			return IG_EINVAL;
		len = c->tls_wpending;
	} else if (len > MBEDTLS_SSL_OUT_CONTENT_LEN) {
		len = MBEDTLS_SSL_OUT_CONTENT_LEN;
	}
	const void *prev = tls_owner_enter(c);
#if defined(IG_SSL_HALF_RTT_DATA)
	int ret = !c->tls_done && c->tls_half_rtt ?
	    mbedtls_ssl_ig_write_half_rtt(&c->ssl, buf, len) :
	    mbedtls_ssl_write(&c->ssl, buf, len);
#else
	int ret = mbedtls_ssl_write(&c->ssl, buf, len);
#endif
	tls_owner_leave(prev);
	if (ret >= 0) {
		c->tls_wpending = 0;
		return ret;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) {
		c->tls_wpending = len;
		return 0;
	}
	return c->error ? c->error : IG_ETLS;
}

int
ig_tls_close_notify(struct ig_conn *c)
{
	if (!c->tls || !c->tls_done)
		return 1;
	/*
	 * A record that did not fit is kept by mbedTLS (out_left); the next
	 * call flushes it instead of building another alert.
	 */
	const void *prev = tls_owner_enter(c);
	int ret = mbedtls_ssl_close_notify(&c->ssl);
	tls_owner_leave(prev);
	if (ret == 0)
		return 1;
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ)
		return 0;
	return c->error ? c->error : IG_ETLS;
}

/*
 * ig_conn_close(): frees the per-connection context and what the crypto
 * backend keeps for it, its traffic keys (idempotent).
 */
static void
tls_free(struct ig_conn *c)
{
	if (!c->tls)
		return;
	const void *prev = tls_owner_enter(c);
	mbedtls_ssl_free(&c->ssl);
	tls_owner_leave(prev);
	ig_crypto_forget_record_keys(c);
	c->layer = NULL;
	c->tls = false;
	c->tls_done = false;
	c->tls_wpending = 0;
}

const char *
ig_tls_version(const struct ig_conn *c)
{
	return c->tls ? mbedtls_ssl_get_version(&c->ssl) : "none";
}

bool
ig_tls_resumed(const struct ig_conn *c)
{
	return c->tls && c->tls_resumed;
}

const char *
ig_tls_cipher(const struct ig_conn *c)
{
	return c->tls ? mbedtls_ssl_get_ciphersuite(&c->ssl) : "none";
}
