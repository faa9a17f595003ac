/*
 * One side of a session (the client, or the backend), or the backend probe's
 * connection: a TCP handle, a raw inbound buffer the socket reads into, a raw
 * outbound buffer the socket writes from, and an optional TLS context running
 * over them. Embedded in its owner (struct ig_session, struct ig_probe). The
 * buffers are either the owner's, fixed for the connection's life (the
 * probe), or taken from a buffer pool only while bytes are in them (a
 * session: ig_conn_use_pool()).
 */
#ifndef IG_PROXY_CONN_TYPES_H
#define IG_PROXY_CONN_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>
#include <uv.h>

#include "proxy/bufpool.h"

/*
 * What a connection tells its owner, set by the owner at ig_conn_init()
 * (as nginx's c->read->handler, or libuv's callbacks): the connection never
 * calls up into its owner by name. The owner counts references: each open
 * handle and each pending request holds one, and the owner is freed only
 * once the last one has called back (libuv's ownership contract).
 */
struct ig_conn_ops {
	/*
	 * Something happened: bytes arrived, a write or the shutdown
	 * completed, the peer closed or failed, the handle closed. The owner
	 * advances; it may close the connection, and may free itself when no
	 * reference is left.
	 */
	void (*on_io)(void *owner);
	/* A handle or request of the connection now refers to owner. */
	void (*ref)(void *owner);
	/*
	 * That handle or request has called back. Returns false when it held
	 * the last reference: owner has been freed and must not be touched.
	 */
	bool (*unref)(void *owner);
};

struct ig_conn;

/*
 * A layer between a connection's plaintext and its raw buffers: TLS, which
 * proxy/tls.c installs on the connection when it starts (as nginx's
 * ngx_ssl_handshake sets c->recv and c->send to ngx_ssl_recv and
 * ngx_ssl_write). conn.c calls it through these and names nothing of it;
 * the layer reads and writes the raw buffers through conn_raw.h.
 */
struct ig_conn_layer {
	/* Plaintext read and write: the contract of ig_conn_read/_write. */
	long (*read)(struct ig_conn *c, uint8_t *buf, size_t len);
	long (*write)(struct ig_conn *c, const uint8_t *buf, size_t len);
	/*
	 * Queues the layer's end of output (a close_notify). Returns 1 when
	 * queued (or nothing to send), 0 when the output is full (call again
	 * once it drains), or a negative IG_E*.
	 */
	int (*close_notify)(struct ig_conn *c);
	/*
	 * Everything written has left (a write completed, nothing more
	 * queued): the layer may free what it holds for output until its next
	 * write. Optional.
	 */
	void (*drained)(struct ig_conn *c);
	/* Frees the layer's state and removes it from c (c->layer = NULL). */
	void (*free)(struct ig_conn *c);
};

struct ig_conn {
	uv_tcp_t tcp;            /* data = this conn */
	const struct ig_conn_ops *ops; /* the owner's callbacks (static) */
	void *owner;             /* passed to ops */
	const char *side;        /* "client" or "backend", for logs */

	/*
	 * With a pool, rbuf is taken just before a read (the alloc callback)
	 * and given back once every byte in it has been consumed; wbuf is
	 * taken when bytes are queued and given back once they have all been
	 * written (never while a uv_write holds it). NULL while not held.
	 */
	struct ig_bufpool *pool; /* NULL: rbuf and wbuf are fixed */
	unsigned *pool_held;     /* the owner's count of pool buffers held
	                            (its first is an IG_BP_START request) */
	struct ig_bufpool_waiter pool_wait; /* a read waiting for a buffer */

	uint8_t *rbuf;           /* raw bytes from the socket */
	size_t rcap;             /* capacity of rbuf */
	size_t roff, rlen;       /* unread bytes are rbuf[roff..rlen) */
	size_t rdirty;           /* rbuf[0..rdirty) written since taken */

	uint8_t *wbuf;           /* raw bytes for the socket */
	size_t wcap;             /* capacity of wbuf */
	size_t wdirty;           /* wbuf[0..wdirty) written since taken */
	size_t wflight;          /* wbuf[0..wflight) is in a pending uv_write */
	size_t wlen;             /* wbuf[wflight..wlen) is queued behind it */
	uv_write_t wreq;
	bool wipe_writes;        /* zeroize written bytes (credentials inside) */
	bool corked;             /* ig_conn_write() queues only (ig_conn_cork) */
	bool wrote_sync;         /* a flush wrote everything at once: no callback
	                            comes for it (ig_conn_take_sync) */

	/*
	 * Ending our output (ig_conn_shutdown): no plaintext is written once
	 * shut_wanted is set; a TLS close_notify goes behind what is queued,
	 * and the TCP write side is shut down when everything has been written.
	 */
	bool shut_wanted;        /* our output is over */
	bool shut_notified;      /* close_notify queued in wbuf (or no TLS) */
	bool shut_done;          /* shutdown(2) made (the FIN is queued): wbuf
	                            takes nothing more */

	bool open;               /* tcp initialised and not closed */
	bool closing;            /* uv_close() called, close_cb pending */
	bool connected;          /* usable for I/O */
	bool reading;            /* uv_read_start() active */
	bool eof;                /* the peer closed (or reset) its side */
	int error;               /* first socket error (IG_E*), 0 if none */
	int sys_error;           /* the libuv error behind a read's IG_EIO, 0 if none */
	uint64_t bytes_in;       /* raw bytes read from the socket */
	uint64_t bytes_out;      /* raw bytes written to the socket */

	const struct ig_conn_layer *layer; /* TLS (set by proxy/tls.c), or NULL:
	                            plaintext goes to the raw buffers as is */
	bool tls;                /* ssl is set up and in use (tls.c's) */
	bool tls_done;           /* handshake complete */
	bool tls_close_notify;   /* close_notify received */
	bool tls_resumed;        /* the handshake resumed a session */
	bool tls_half_rtt;       /* writes before the handshake's end are 0.5-RTT
	                            data (ig_tls_half_rtt_start) */
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
