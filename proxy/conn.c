/*
 * Socket side of a connection: reads only into the free space of a fixed
 * buffer (backpressure for free) and writes from a fixed buffer with at most
 * one uv_write in flight; bytes queued behind it wait in the same buffer.
 * With a buffer pool (a session's connections), each buffer is held only
 * while bytes are in it: the read buffer is taken in the alloc callback and
 * given back once consumed, the write buffer taken when bytes are queued and
 * given back once they have all been written. A read that cannot get a
 * buffer stops reading and waits in the pool's queue.
 */
#include "proxy/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "proxy/conn_raw.h"
#include "util/err.h"

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void conn_write_cb(uv_write_t *req, int status);
static void conn_written(struct ig_conn *c, size_t done);
static void conn_close_cb(uv_handle_t *h);
static void conn_pool_ready(struct ig_bufpool_waiter *w);

int
ig_conn_init(struct ig_conn *c, const struct ig_conn_ops *ops, void *owner,
    uv_loop_t *loop, const char *side, uint8_t *rbuf, size_t rcap, uint8_t *wbuf,
    size_t wcap)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->owner = owner;
	c->side = side;
	c->rbuf = rbuf;
	c->rcap = rcap;
	c->wbuf = wbuf;
	c->wcap = wcap;
	if (uv_tcp_init(loop, &c->tcp) != 0)
		return IG_EIO;
	c->tcp.data = c;
	c->open = true;
	c->ops->ref(c->owner); /* the handle holds the owner */
	return 0;
}

void
ig_conn_use_pool(struct ig_conn *c, struct ig_bufpool *pool, unsigned *held, size_t rcap)
{
	c->pool = pool;
	c->pool_held = held;
	c->rbuf = c->wbuf = NULL;
	c->wcap = ig_bufpool_buf_size(pool);
	c->rcap = rcap < c->wcap ? rcap : c->wcap;
	c->roff = c->rlen = c->rdirty = 0;
	c->wlen = c->wflight = c->wdirty = 0;
	c->pool_wait.fn = conn_pool_ready;
}

int
ig_conn_connect_greeted(struct ig_conn *c, const struct sockaddr *addr)
{
	socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Interrupted, a non-blocking connect goes on by itself. */
	if (connect(fd, addr, alen) != 0 && errno != EINPROGRESS && errno != EINTR) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (uv_tcp_open(&c->tcp, fd) != 0) {
		close(fd);
		return -EBADF;
	}
	c->connected = true;
	return 0;
}

/* Takes a pool buffer into *b. Returns false when none was given. */
static bool
conn_take(struct ig_conn *c, uint8_t **b, enum ig_bufpool_use use)
{
	*b = ig_bufpool_get(c->pool, use);
	if (*b == NULL)
		return false;
	(*c->pool_held)++;
	return true;
}

/* Gives *b back to the pool, wiping its first dirty bytes. */
static void
conn_give(struct ig_conn *c, uint8_t **b, size_t dirty)
{
	uint8_t *buf = *b;
	*b = NULL;
	(*c->pool_held)--;
	/* May restart other connections' reads (waiters): never this one's
	   state, which is consistent by now. */
	ig_bufpool_put(c->pool, buf, dirty);
}

/* A pooled read buffer goes back once every byte in it was consumed. */
static void
conn_drop_rbuf(struct ig_conn *c)
{
	if (c->pool == NULL || c->rbuf == NULL || c->roff != c->rlen)
		return;
	c->roff = c->rlen = 0;
	size_t dirty = c->rdirty;
	c->rdirty = 0;
	conn_give(c, &c->rbuf, dirty);
}

/* A pooled write buffer goes back once everything was written. */
static void
conn_drop_wbuf(struct ig_conn *c)
{
	if (c->pool == NULL || c->wbuf == NULL || c->wlen != 0 || c->wflight != 0)
		return;
	size_t dirty = c->wdirty;
	c->wdirty = 0;
	conn_give(c, &c->wbuf, dirty);
}

/* The pool has a buffer again: read if there is a reason to. */
static void
conn_pool_ready(struct ig_bufpool_waiter *w)
{
	struct ig_conn *c = (struct ig_conn *)(void *)((char *)w -
	    offsetof(struct ig_conn, pool_wait));
	ig_conn_update_read(c);
}

static void
conn_compact_rbuf(struct ig_conn *c)
{
	if (c->roff == 0 || c->rbuf == NULL)
		return;
	size_t n = c->rlen - c->roff;
	if (n > 0)
		memmove(c->rbuf, c->rbuf + c->roff, n);
	c->roff = 0;
	c->rlen = n;
}

void
ig_conn_update_read(struct ig_conn *c)
{
	if (!c->open || c->closing || !c->connected)
		return;
	if (c->rlen == c->rcap)
		conn_compact_rbuf(c);
	/* Without a buffer (pooled, none held) there is room: one is taken
	   when bytes arrive. While waiting for one, the pool restarts us. */
	bool room = c->rbuf == NULL ? c->pool != NULL : c->rlen < c->rcap;
	bool want = !c->eof && c->error == 0 && room && !c->pool_wait.queued;
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void
conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ig_conn *c = h->data;
	(void)suggested;
	if (c->rbuf == NULL && c->pool != NULL) {
		/* The first buffer of an owner holding none waits at the
		   pool's cap; one that already moves bytes gets its buffer. */
		enum ig_bufpool_use use = *c->pool_held == 0 ? IG_BP_START : IG_BP_CARRY;
		if (!conn_take(c, &c->rbuf, use)) {
			buf->base = NULL;
			buf->len = 0; /* the read callback gets UV_ENOBUFS */
			return;
		}
		c->roff = c->rlen = c->rdirty = 0;
	}
	if (c->rlen == c->rcap)
		conn_compact_rbuf(c);
	buf->base = (char *)c->rbuf + c->rlen;
	buf->len = c->rcap - c->rlen;
}

static void
conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct ig_conn *c = st->data;
	(void)buf;
	if (nread == UV_ENOBUFS && c->rbuf == NULL && c->pool != NULL) {
		/* No buffer: stop reading (the bytes wait in the socket) until
		   one comes back (conn_pool_ready). */
		uv_read_stop(st);
		c->reading = false;
		ig_bufpool_wait(c->pool, &c->pool_wait);
		return;
	}
	if (nread == 0 || nread == UV_ENOBUFS) {
		conn_drop_rbuf(c);
		ig_conn_update_read(c);
		return;
	}
	if (nread < 0) {
		if (nread == UV_EOF) {
			c->eof = true;
		} else {
			c->error = IG_EIO;
			c->sys_error = (int)nread;
		}
		uv_read_stop(st);
		c->reading = false;
		conn_drop_rbuf(c);
	} else {
		c->rlen += (size_t)nread;
		if (c->rlen > c->rdirty)
			c->rdirty = c->rlen;
		c->bytes_in += (uint64_t)nread;
		if (c->rlen == c->rcap)
			ig_conn_update_read(c);
	}
	/* may close the connection, or free the owner */
	c->ops->on_io(c->owner);
}

long
ig_conn_read_raw(struct ig_conn *c, uint8_t *buf, size_t len)
{
	size_t avail = c->rlen - c->roff;
	if (avail == 0) {
		if (c->error)
			return c->error;
		return c->eof ? IG_EEOF : 0;
	}
	size_t n = avail < len ? avail : len;
	memcpy(buf, c->rbuf + c->roff, n);
	c->roff += n;
	if (c->roff == c->rlen) {
		c->roff = c->rlen = 0;
		conn_drop_rbuf(c);
	}
	return (long)n;
}

long
ig_conn_read(struct ig_conn *c, uint8_t *buf, size_t len)
{
	if (c->layer != NULL)
		return c->layer->read(c, buf, len);
	long n = ig_conn_read_raw(c, buf, len);
	if (n > 0)
		ig_conn_update_read(c);
	return n;
}

long
ig_conn_write_raw(struct ig_conn *c, const uint8_t *buf, size_t len)
{
	if (c->error)
		return c->error;
	if (!c->open || c->closing)
		return IG_EIO;
	if (c->shut_done)
		return IG_EINVAL; /* nothing goes out after the shutdown */
	if (len == 0)
		return 0;
	if (c->wbuf == NULL) {
		/* Bytes to carry out: never refused at the pool's cap. */
		if (c->pool == NULL || !conn_take(c, &c->wbuf, IG_BP_CARRY))
			return IG_ENOMEM;
		c->wlen = c->wflight = c->wdirty = 0;
	}
	size_t room = c->wcap - c->wlen;
	size_t n = room < len ? room : len;
	if (n > 0) {
		memcpy(c->wbuf + c->wlen, buf, n);
		c->wlen += n;
		if (c->wlen > c->wdirty)
			c->wdirty = c->wlen;
	}
	return (long)n;
}

long
ig_conn_write(struct ig_conn *c, const uint8_t *buf, size_t len)
{
	long n;
	if (c->shut_wanted)
		return IG_EINVAL;
	if (c->layer != NULL)
		n = c->layer->write(c, buf, len);
	else
		n = ig_conn_write_raw(c, buf, len);
	if (n < 0)
		return n;
	if (c->corked)
		return n;
	int rc = ig_conn_flush(c);
	if (rc < 0)
		return rc;
	return n;
}

void
ig_conn_cork(struct ig_conn *c)
{
	c->corked = true;
}

int
ig_conn_uncork(struct ig_conn *c)
{
	c->corked = false;
	return ig_conn_flush(c);
}

void
ig_conn_cork_end(struct ig_conn *c)
{
	c->corked = false;
}

/*
 * The last bytes, with no write in flight: sent with MSG_MORE, so that they
 * wait for the FIN of the shutdown that follows and leave in one segment
 * with it. What the socket does not take goes through ig_conn_flush (a
 * write without MSG_MORE, which pushes the rest out). Returns 0 or IG_E*.
 */
static int
conn_send_last(struct ig_conn *c)
{
	uv_os_fd_t fd;
	if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0) {
		c->error = IG_EIO;
		return IG_EIO;
	}
	ssize_t n;
	do
		n = send(fd, c->wbuf, c->wlen, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		conn_written(c, (size_t)n);
	} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		c->error = IG_EIO;
		return IG_EIO;
	}
	return ig_conn_flush(c);
}

/*
 * Advances a requested shutdown: queues the close_notify (retried while the
 * output is full), then shuts the write side down once everything queued
 * has been written. The shutdown is the system call itself, made here: no
 * write is in flight then, so libuv has nothing queued (uv_shutdown would
 * only defer it to the next loop iteration and re-arm the poll). Returns 0
 * or a negative IG_E*.
 */
static int
conn_shutdown_step(struct ig_conn *c)
{
	if (!c->shut_wanted || c->shut_done || !c->open || c->closing || !c->connected)
		return 0;
	if (c->error)
		return c->error;
	if (!c->shut_notified) {
		int rc = c->layer != NULL ? c->layer->close_notify(c) : 1;
		if (rc < 0)
			return rc;
		c->shut_notified = rc > 0;
		if (!c->shut_notified) {
			rc = ig_conn_flush(c);
			return rc < 0 ? rc : 0; /* the write callback calls again */
		}
	}
	if (c->wflight == 0 && c->wlen > 0) {
		int rc = conn_send_last(c);
		if (rc < 0)
			return rc;
	}
	if (!ig_conn_drained(c))
		return 0; /* the write callback calls again */
	uv_os_fd_t fd;
	if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0 || shutdown(fd, SHUT_WR) != 0) {
		c->error = IG_EIO;
		return IG_EIO;
	}
	c->shut_done = true;
	return 0;
}

int
ig_conn_shutdown(struct ig_conn *c)
{
	if (!c->open || c->closing || !c->connected)
		return IG_EIO;
	if (c->error)
		return c->error;
	if (!c->shut_wanted) {
		if (c->layer != NULL && c->tls_wpending > 0)
			return IG_EINVAL;
		c->shut_wanted = true;
	}
	return conn_shutdown_step(c);
}

/* wbuf[0..done) has reached the socket: account, wipe, move the rest up. */
static void
conn_written(struct ig_conn *c, size_t done)
{
	if (c->wipe_writes)
		mbedtls_platform_zeroize(c->wbuf, done);
	c->bytes_out += (uint64_t)done;
	size_t rest = c->wlen - done;
	if (rest > 0)
		memmove(c->wbuf, c->wbuf + done, rest);
	c->wlen = rest;
	conn_drop_wbuf(c); /* when everything was written */
	if (c->wlen == 0 && c->layer != NULL && c->layer->drained != NULL)
		c->layer->drained(c);
}

/*
 * The socket is tried first (uv_try_write): most writes go whole, and then
 * no request, callback or poll change follows (libuv 1.44 re-arms epoll
 * with unchanged events after every completed uv_write, one system call
 * per write). What does not fit goes through uv_write, whose callback
 * tells the owner. A write that went whole sets c->wrote_sync instead:
 * the owner's pump looks at it and goes round again (ig_conn_take_sync).
 */
int
ig_conn_flush(struct ig_conn *c)
{
	if (c->wflight > 0 || c->wlen == 0 || !c->connected || c->closing)
		return 0;
	uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n > 0) {
		conn_written(c, (size_t)n);
		if (c->wlen == 0) {
			c->wrote_sync = true;
			return 0;
		}
	} else if (n != UV_EAGAIN && n != UV_ENOSYS) {
		c->error = IG_EIO;
		return IG_EIO;
	}
	c->wflight = c->wlen;
	b = uv_buf_init((char *)c->wbuf, (unsigned)c->wflight);
	c->wreq.data = c;
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
	if (rc != 0) {
		c->wflight = 0;
		c->error = IG_EIO;
		return IG_EIO;
	}
	c->ops->ref(c->owner); /* the write request holds the owner */
	return 0;
}

static void
conn_write_cb(uv_write_t *req, int status)
{
	struct ig_conn *c = req->data;
	size_t done = c->wflight;
	c->wflight = 0;
	conn_written(c, done);
	if (status < 0 && c->error == 0)
		c->error = IG_EIO;
	if (status == 0 && !c->closing) {
		ig_conn_flush(c);
		if (conn_shutdown_step(c) < 0 && c->error == 0)
			c->error = IG_EIO;
	}
	if (!c->ops->unref(c->owner)) /* false: the owner, c with it, was freed */
		return;
	/* may close the connection, or free the owner */
	c->ops->on_io(c->owner);
}

bool
ig_conn_take_sync(struct ig_conn *c)
{
	bool was = c->wrote_sync;
	c->wrote_sync = false;
	return was;
}

bool
ig_conn_drained(const struct ig_conn *c)
{
	return c->wlen == 0 && c->wflight == 0;
}

void
ig_conn_discard_input(struct ig_conn *c)
{
	if (c->rbuf != NULL)
		mbedtls_platform_zeroize(c->rbuf, c->rlen);
	c->roff = c->rlen = 0;
	conn_drop_rbuf(c);
	ig_conn_update_read(c);
}

void
ig_conn_close(struct ig_conn *c)
{
	if (!c->open || c->closing)
		return;
	c->closing = true;
	c->connected = false;
	c->reading = false;
	if (c->pool != NULL)
		ig_bufpool_cancel(c->pool, &c->pool_wait);
	if (c->layer != NULL)
		c->layer->free(c);
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void
conn_close_cb(uv_handle_t *h)
{
	struct ig_conn *c = h->data;
	c->open = false;
	c->closing = false;
	if (c->pool != NULL) {
		/* Every write callback has run (libuv calls them before this). */
		if (c->rbuf != NULL)
			conn_give(c, &c->rbuf, c->rdirty);
		if (c->wbuf != NULL)
			conn_give(c, &c->wbuf, c->wdirty);
		c->rdirty = c->wdirty = 0;
	} else {
		mbedtls_platform_zeroize(c->rbuf, c->rcap);
		mbedtls_platform_zeroize(c->wbuf, c->wcap);
	}
	c->roff = c->rlen = c->wlen = c->wflight = 0;
	if (!c->ops->unref(c->owner)) /* false: the owner, c with it, was freed */
		return;
	/* The owner may be waiting for this handle to close (a login that
	   connects again). */
	c->ops->on_io(c->owner);
}
