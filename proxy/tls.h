/*
 * mbedTLS glue: the shared configurations (one server configuration per
 * generation for the listeners, one client configuration for the backend) and
 * the per-connection TLS driven over the connection's buffers. TLS sits
 * above the connection: once started, plaintext goes through ig_conn_read()
 * and ig_conn_write() as before, which call this file's layer (struct
 * ig_conn_layer); the context is freed by ig_conn_close().
 * MBEDTLS_ERR_SSL_WANT_READ / WANT_WRITE never leave this file.
 */
#ifndef IG_PROXY_TLS_H
#define IG_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/ssl.h>

#include "certs/store.h"
#include "config/config.h"
#include "crypto/ticket_keys.h"
#include "proxy/conn_types.h"

/* Process-wide: psa_crypto_init(). Returns 0 or IG_ETLS. */
int ig_tls_global_init(void);

/*
 * Bytes that plain bytes of plaintext grow by as TLS records (at most: a
 * header, explicit nonce and tag per record, our suites being AEAD only).
 * A connection's output buffer has this much beyond limits.buffer_size, so
 * that a buffer's worth of plaintext goes out as whole records in one write
 * (a record that does not fit is split across two writes: correct, but one
 * system call more for a few bytes).
 */
size_t ig_tls_write_slack(size_t plain);

struct ig_tls_server;
struct ig_tls_client;

/*
 * Builds the listeners' server configuration: certificates from store
 * (which must outlive it), SNI selection (strict_sni refuses unknown names),
 * ALPN "imap" (a client offering ALPN without "imap" is refused: ALPACA),
 * TLS >= cfg->tls_min_version, AEAD suites with ECDHE only, session
 * resumption (tickets for TLS 1.3 and 1.2, a session cache for TLS 1.2
 * clients without tickets) as cfg->tls_tickets / tls_session_cache say,
 * the ticket keys read from cfg->tls_ticket_key_file when it is set.
 * Returns 0, or IG_ETLS with a reason in err.
 */
int ig_tls_server_new(const struct ig_config *cfg, const struct ig_certstore *store,
    struct ig_tls_server **out, char *err, size_t errsz);
void ig_tls_server_free(struct ig_tls_server *ts);

/*
 * Ticket keys shared by a fleet (tls.ticket_key_file). ig_tls_server_new()
 * installs the file's keys; these change them while the configuration is
 * in use. Main thread only: the workers' ticket callbacks take a lock of
 * the configuration's, these take it for the change.
 *
 * ig_tls_server_set_ticket_keys installs keys (read from the file whose
 * identity is id): the last encrypts new tickets, the one before decrypts
 * too. Returns 0; IG_EINVAL when ts has no session tickets; IG_ETLS (the
 * reason in err) when mbedTLS refused them, and then the keys held before
 * are installed again by the next ig_tls_server_ticket_refresh().
 */
int ig_tls_server_set_ticket_keys(struct ig_tls_server *ts, const struct ig_ticket_keys *keys,
    const struct ig_file_id *id, char *err, size_t errsz);
/*
 * Call every few seconds, at most a quarter of tls.session_timeout apart:
 * installs the file's keys again once half their lifetime has passed, so
 * that mbedTLS never replaces them with a random key of its own. Returns
 * 1 when it installed them, 0 when there was nothing to do (or no key
 * file), IG_ETLS with the reason in err.
 */
int ig_tls_server_ticket_refresh(struct ig_tls_server *ts, char *err, size_t errsz);
/*
 * True when ts's ticket keys come from a file: then *id (unless NULL) is
 * the identity of what was read, and enc and dec (unless NULL) the names
 * of the encrypting key and of the one that only decrypts ("none" when
 * the file holds one key), in hex. False without a key file.
 */
bool ig_tls_server_ticket_file(const struct ig_tls_server *ts, struct ig_file_id *id,
    char enc[IG_TICKET_KEY_NAME_HEX], char dec[IG_TICKET_KEY_NAME_HEX]);

/*
 * Builds the backend client configuration: CA file (or the system bundle),
 * verification required unless b->tls_verify is false. Returns 0, or IG_ETLS
 * / IG_ECERT with a reason in err.
 */
int ig_tls_client_new(const struct ig_backend_conf *b, struct ig_tls_client **out,
    char *err, size_t errsz);
void ig_tls_client_free(struct ig_tls_client *tc);

/*
 * Starts TLS on c as a server. sni_out (size sni_outsz) receives the server
 * name the client asked for, when the handshake runs. Returns 0 or IG_ETLS.
 */
int ig_tls_start_server(struct ig_conn *c, const struct ig_tls_server *ts,
    char *sni_out, size_t sni_outsz);
/* Starts TLS on c as the backend's client. Returns 0 or IG_ETLS. */
int ig_tls_start_client(struct ig_conn *c, const struct ig_tls_client *tc);

/*
 * Advances the handshake with the bytes available. Returns 1 when complete,
 * 0 when more I/O is needed, IG_ETLS (reason in err) or IG_ECERT (backend
 * identity) on failure, IG_EEOF when the peer went away.
 */
int ig_tls_handshake(struct ig_conn *c, char *err, size_t errsz);

/*
 * A TLS 1.3 server handshake that has written its flight and waits for the
 * client's Finished (no client certificate asked for): from now on, c's
 * writes go out as 0.5-RTT data (RFC 8446, section 2), under the server's
 * application keys, before the handshake completes. Returns true when that
 * is so (and c is switched to it), false when it cannot be (TLS 1.2, not
 * at that point, or mbedTLS without our patch 0005): then nothing changes.
 */
bool ig_tls_half_rtt_start(struct ig_conn *c);

/*
 * Queues a close_notify alert in c's output. Returns 1 when it has been
 * queued (or c has no established TLS session: nothing to send), 0 when the
 * output is full: call again once it has drained, which finishes the same
 * alert rather than sending a second one. Returns IG_ETLS (or c's socket
 * error) on failure. No plaintext write may be pending a retry.
 */
int ig_tls_close_notify(struct ig_conn *c);

/* Describes the negotiated connection: "TLSv1.3 TLS1-3-AES-256-GCM-SHA384". */
const char *ig_tls_version(const struct ig_conn *c);
const char *ig_tls_cipher(const struct ig_conn *c);
/* True when the completed handshake resumed a session (ticket or cache). */
bool ig_tls_resumed(const struct ig_conn *c);

/*
 * Describes the mbedTLS error behind the last IG_ETLS from ig_conn_read()
 * (text and code) into err.
 */
void ig_tls_last_error(const struct ig_conn *c, char *err, size_t errsz);

#endif /* IG_PROXY_TLS_H */
