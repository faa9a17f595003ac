/*
 * The byte pipe of one side of a session (or of the backend probe):
 * plaintext in and out, whether the socket carries TLS or not. Functions
 * never close anything themselves; they return errors and the owner
 * decides. Events reach the owner through the callbacks it gave
 * ig_conn_init() (struct ig_conn_ops).
 */
#ifndef IG_PROXY_CONN_H
#define IG_PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/conn_types.h"

/*
 * Prepares c (buffers given by the caller, owned by owner) and initialises
 * its TCP handle on loop. ops (which must outlive c: a static table) gets
 * owner in every call; the handle takes one reference (ops->ref) until its
 * close callback. The caller connects the handle or accepts into it, then
 * sets c->connected. Returns 0, or IG_EIO (no reference taken).
 */
int ig_conn_init(struct ig_conn *c, const struct ig_conn_ops *ops, void *owner,
    uv_loop_t *loop, const char *side, uint8_t *rbuf, size_t rcap, uint8_t *wbuf,
    size_t wcap);

/*
 * Makes c take its raw buffers from pool (of which it must be the only
 * user of c's buffers), only while bytes are in them, instead of the fixed
 * ones given to ig_conn_init() (pass NULL and 0 there). held is the owner's
 * count of pool buffers held, shared by its connections and its other
 * buffers: an owner holding none waits at the pool's cap for the first,
 * reading stopped meanwhile. A read takes at most rcap bytes (at most the
 * pool's buffer size: the owner's plaintext buffers' size, so that one read
 * fills one of them); writes may use the whole buffer (a little more, for
 * TLS records: ig_tls_write_slack). Call right after ig_conn_init(). The
 * pool must outlive c's close callback.
 */
void ig_conn_use_pool(struct ig_conn *c, struct ig_bufpool *pool, unsigned *held,
    size_t rcap);

/*
 * Connects c (just initialised) to addr for a peer that speaks first, such
 * as an IMAP server's greeting, without waiting to learn when the
 * connection is made: its first read event brings the peer's first bytes,
 * or the connection's failure (an IG_EIO read, c->sys_error saying which).
 * That spares the wait for writability, its poll changes and the SO_ERROR
 * query of uv_tcp_connect(), and a loop iteration. TCP_NODELAY is set. Sets
 * c->connected; start reading with ig_conn_update_read(). Returns 0, or a
 * negative errno when the connection failed at once (c stays open: close
 * it).
 */
int ig_conn_connect_greeted(struct ig_conn *c, const struct sockaddr *addr);

/*
 * Starts or stops reading from the socket according to the free space in
 * rbuf: reading is on exactly while rbuf has room (or none is held: a
 * pooled one is taken when bytes arrive), the peer is open and the
 * connection is not waiting for a pool buffer.
 */
void ig_conn_update_read(struct ig_conn *c);

/*
 * Reads up to len plaintext bytes. Returns >0 bytes read, 0 when nothing is
 * available yet, IG_EEOF when the peer has closed, or another negative IG_E*.
 */
long ig_conn_read(struct ig_conn *c, uint8_t *buf, size_t len);

/*
 * Writes up to len plaintext bytes. Returns >0 bytes accepted, 0 when the
 * output is full (call again with the same bytes once it drains), or a
 * negative IG_E* (IG_EINVAL after ig_conn_shutdown(), IG_ENOMEM when no
 * pool buffer could be allocated). A TLS write that
 * returned 0 must be retried with the same buf and at least the same len.
 */
long ig_conn_write(struct ig_conn *c, const uint8_t *buf, size_t len);

/*
 * Ends our output on c, keeping its input open (a half-close): plaintext
 * writes are refused from now on (IG_EINVAL); a TLS close_notify is queued
 * behind the bytes already queued, and once everything has been written the
 * TCP write side is shut down (the last bytes and the FIN in one segment
 * when the socket takes them at once). The remaining steps run from the
 * write callbacks; c->shut_done says when the shutdown has been made (on
 * return already, when nothing had to wait), and the owner is told through
 * ops->on_io when a write callback made it. Idempotent. Returns 0, or a
 * negative IG_E*: IG_EINVAL when a TLS write still waits to be retried (end
 * the plaintext first), IG_EIO or IG_ETLS on failure.
 */
int ig_conn_shutdown(struct ig_conn *c);

/*
 * Writes queued bytes if no write is in flight: straight to the socket when
 * it takes them all (then no callback follows: see ig_conn_take_sync), else
 * through a uv_write whose callback calls ops->on_io. Returns 0 or IG_EIO.
 */
int ig_conn_flush(struct ig_conn *c);

/*
 * True (once) when a flush since the last call wrote everything at once.
 * An owner that stops for room in the output, or for the output to drain,
 * goes round its pump again when this says so: no on_io comes for it.
 */
bool ig_conn_take_sync(struct ig_conn *c);

/*
 * While corked, ig_conn_write() queues without starting a write, so that a
 * burst of writes (the relay's records) leaves in one system call;
 * ig_conn_uncork() ends that and flushes (its return as ig_conn_flush's).
 * Writes the conn makes itself (close_notify, the write callback's next
 * write) are not held.
 */
void ig_conn_cork(struct ig_conn *c);
int ig_conn_uncork(struct ig_conn *c);
/* Ends the cork without writing: what is queued goes with the next write,
   flush or shutdown. */
void ig_conn_cork_end(struct ig_conn *c);

/* True when nothing is queued or in flight towards the socket. */
bool ig_conn_drained(const struct ig_conn *c);

/* Drops every unread raw byte (STARTTLS: pipelined plaintext is discarded). */
void ig_conn_discard_input(struct ig_conn *c);

/*
 * Closes the handle (idempotent) and frees the TLS context. The handle's
 * reference on the owner is dropped in the close callback (ops->unref),
 * which then calls ops->on_io unless the owner was freed.
 */
void ig_conn_close(struct ig_conn *c);

/* Bytes of unread raw input. */
static inline size_t
ig_conn_pending_in(const struct ig_conn *c)
{
	return c->rlen - c->roff;
}

#endif /* IG_PROXY_CONN_H */
