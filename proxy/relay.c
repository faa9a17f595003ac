/*
 * After login: bytes move unchanged both ways through two fixed buffers
 * (cin: client to backend, bin: backend to client). A side is read only while
 * its buffer has room, so a slow reader stops the other side's reads:
 * memory per session stays fixed whatever the traffic.
 */
#include <string.h>

#include "proxy/conn.h"
#include "proxy/err.h"
#include "proxy/session_types.h"
#include "proxy/worker.h"

static void
relay_compact(struct ig_buf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->len == b->cap && b->off > 0) {
		size_t n = b->len - b->off;
		memmove(b->p, b->p + b->off, n);
		b->off = 0;
		b->len = n;
	}
}

/*
 * Moves what it can from one connection through buf to the other.
 * Returns >0 on progress, 0 for none, <0 (IG_E*) on a write error.
 * *in_eof is set when the source has closed.
 */
static int
relay_move(struct ig_session *s, struct ig_conn *from, struct ig_buf *buf,
    struct ig_conn *to, bool *in_eof)
{
	int progress = 0;
	relay_compact(buf);
	if (buf->len < buf->cap && !*in_eof) {
		long n = ig_conn_read(from, buf->p + buf->len, buf->cap - buf->len);
		if (n > 0) {
			buf->len += (size_t)n;
			s->last_activity_ms = ig_session_now(s);
			progress = 1;
		} else if (n < 0) {
			*in_eof = true;
		}
	}
	if (buf->off < buf->len) {
		long n = ig_conn_write(to, buf->p + buf->off, buf->len - buf->off);
		if (n < 0)
			return (int)n;
		if (n > 0) {
			buf->off += (size_t)n;
			progress = 1;
		}
	}
	relay_compact(buf);
	return progress;
}

void
ig_relay_pump(struct ig_session *s)
{
	bool cl_eof = false, be_eof = false;
	for (;;) {
		int p1 = relay_move(s, &s->client, &s->cin, &s->backend, &cl_eof);
		if (p1 < 0) {
			ig_session_close(s, "backend-write-error", false);
			return;
		}
		/* Our own last words (the forwarded tagged OK) go first. */
		int p2 = 0;
		if (s->reply.len > 0) {
			size_t before = s->reply.len - s->reply.off;
			if (ig_session_flush_reply(s) < 0) {
				ig_session_close(s, "client-write-error", false);
				return;
			}
			p2 = (s->reply.len - s->reply.off) != before;
		} else {
			p2 = relay_move(s, &s->backend, &s->bin, &s->client, &be_eof);
			if (p2 < 0) {
				ig_session_close(s, "client-write-error", false);
				return;
			}
		}
		if (p1 == 0 && p2 == 0)
			break;
	}
	if (be_eof && s->bin.off == s->bin.len && s->reply.len == 0) {
		ig_session_close(s, "backend-closed", true);
		return;
	}
	if (cl_eof && s->cin.off == s->cin.len) {
		ig_session_close(s, "client-closed", false);
		return;
	}
	ig_conn_update_read(&s->client);
	ig_conn_update_read(&s->backend);
}
