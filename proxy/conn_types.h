/*
 * One side of a session (the client, or the backend): a TCP handle, a raw
 * inbound buffer the socket reads into, a raw outbound buffer the socket
 * writes from, and an optional TLS context running over them. Embedded in
 * struct ig_session; the buffers belong to the session's single allocation.
 */
#ifndef IG_PROXY_CONN_TYPES_H
#define IG_PROXY_CONN_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>
#include <uv.h>

struct ig_session;

struct ig_conn {
	uv_tcp_t tcp;            /* data = this conn */
	struct ig_session *s;    /* owner */
	const char *side;        /* "client" or "backend", for logs */

	uint8_t *rbuf;           /* raw bytes from the socket */
	size_t rcap;             /* capacity of rbuf */
	size_t roff, rlen;       /* unread bytes are rbuf[roff..rlen) */

	uint8_t *wbuf;           /* raw bytes for the socket */
	size_t wcap;             /* capacity of wbuf */
	size_t wflight;          /* wbuf[0..wflight) is in a pending uv_write */
	size_t wlen;             /* wbuf[wflight..wlen) is queued behind it */
	uv_write_t wreq;
	bool wipe_writes;        /* zeroize written bytes (credentials inside) */

	/*
	 * Ending our output (ig_conn_shutdown): no plaintext is written once
	 * shut_wanted is set; a TLS close_notify goes behind what is queued,
	 * and the TCP write side is shut down when everything has been written.
	 */
	bool shut_wanted;        /* our output is over */
	bool shut_notified;      /* close_notify queued in wbuf (or no TLS) */
	bool shut_sent;          /* uv_shutdown() issued: wbuf takes nothing more */
	bool shut_done;          /* its callback came */
	uv_shutdown_t sreq;      /* data = this conn; holds a session reference
	                            until its callback */

	bool open;               /* tcp initialised and not closed */
	bool closing;            /* uv_close() called, close_cb pending */
	bool connected;          /* usable for I/O */
	bool reading;            /* uv_read_start() active */
	bool eof;                /* the peer closed (or reset) its side */
	int error;               /* first socket error (IG_E*), 0 if none */
	uint64_t bytes_in;       /* raw bytes read from the socket */
	uint64_t bytes_out;      /* raw bytes written to the socket */

	bool tls;                /* ssl is set up and in use */
	bool tls_done;           /* handshake complete */
	bool tls_close_notify;   /* close_notify received */
	int tls_last_error;      /* mbedTLS code of the read or write that
	                            failed with IG_ETLS, 0 if none */
	size_t tls_wpending;     /* length of a plaintext write that returned
	                            WANT_WRITE: retried with the same length */
	char *sni;               /* server side: where the SNI name goes */
	size_t sni_size;
	const char *peer_name;   /* client side: name checked in the peer cert */
	bool verify_peer;        /* client side: certificate verification on */
	mbedtls_ssl_context ssl;
};

#endif /* IG_PROXY_CONN_TYPES_H */
