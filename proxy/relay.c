/*
 * After login: bytes move unchanged both ways through two buffers (cin:
 * client to backend, bin: backend to client), each taken from the pool for
 * a move and given back once empty, so an idle session holds none. A side
 * is read only while its buffer has room, so a slow reader stops the other
 * side's reads: memory per session stays bounded whatever the traffic.
 */
#include <string.h>

#include "proxy/conn.h"
#include "util/err.h"
#include "proxy/session_types.h"

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
 * Moves what it can from one connection through buf to the other; what
 * is written is fed to scan (when not NULL).
 * Returns >0 on progress, 0 for none, <0 (IG_E*) on a write error.
 * When the source's input ends, *ended records why (IG_EEOF, or a read
 * error) and the source is not read again; what buf holds still goes out.
 */
static int
relay_move(struct ig_session *s, struct ig_conn *from, struct ig_buf *buf,
    struct ig_conn *to, int *ended, struct ig_imap_resp_scan *scan)
{
	int progress = 0;
	if (buf->p == NULL && *ended != 0)
		return 0; /* nothing held, nothing more to read */
	if (!ig_session_buf_take(s, buf))
		return IG_ENOMEM;
	relay_compact(buf);
	if (buf->len < buf->cap && *ended == 0) {
		long n = ig_conn_read(from, buf->p + buf->len, buf->cap - buf->len);
		if (n > 0) {
			ig_buf_filled(buf, (size_t)n);
			s->last_activity_ms = ig_session_now(s);
			progress = 1;
		} else if (n < 0) {
			*ended = (int)n;
			progress = 1;
		}
	}
	if (buf->off < buf->len) {
		long n = ig_conn_write(to, buf->p + buf->off, buf->len - buf->off);
		if (n < 0)
			return (int)n;
		if (n > 0) {
			if (scan != NULL)
				ig_imap_resp_scan(scan, buf->p + buf->off, (size_t)n);
			buf->off += (size_t)n;
			progress = 1;
			if (to == &s->backend)
				IG_SESSION_METRIC(s, to_backend, (uint64_t)n);
			else
				IG_SESSION_METRIC(s, to_client, (uint64_t)n);
		}
	}
	relay_compact(buf);
	ig_session_buf_drop(s, buf); /* when everything went out */
	return progress;
}

/*
 * One pass of the relay: moves bytes both ways until neither side makes
 * progress. Returns NULL to go on, or the reason to close the session
 * (*graceful: after what was queued has gone out).
 */
static const char *
relay_pass(struct ig_session *s, bool *graceful)
{
	*graceful = false;
	for (;;) {
		int p1 = 0;
		if (s->end_reason != NULL) {
			/* Ending: nothing more goes to the backend. */
			s->cin.off = s->cin.len;
			ig_session_buf_drop(s, &s->cin);
			ig_conn_discard_input(&s->client);
		} else if (!s->backend.shut_wanted) {
			p1 = relay_move(s, &s->client, &s->cin, &s->backend, &s->client_end, NULL);
			if (p1 < 0)
				return "backend-write-error";
		}
		/* Our own last words (the forwarded tagged OK) go first. */
		int p2 = 0;
		if (s->reply.len > 0) {
			size_t before = s->reply.len - s->reply.off;
			if (ig_session_flush_reply(s) < 0)
				return "client-write-error";
			p2 = (s->reply.len - s->reply.off) != before;
		} else {
			p2 = relay_move(s, &s->backend, &s->bin, &s->client, &s->backend_end,
			    &s->to_client);
			if (p2 < 0)
				return "client-write-error";
		}
		if (p1 == 0 && p2 == 0)
			break;
	}
	if (s->client_end != 0 && s->client_end != IG_EEOF) {
		/* A broken client connection: nothing can reach it any more. */
		return "client-error";
	}
	if (s->end_reason != NULL && s->bin.off == s->bin.len && s->reply.len == 0 &&
	    ig_imap_resp_at_boundary(&s->to_client)) {
		/* Everything read from the backend has gone out, and it ends
		   with a whole response: our line cannot split one. */
		ig_session_reply(s, "* BYE [UNAVAILABLE] %s", s->end_text);
		*graceful = true;
		return s->end_reason;
	}
	if (s->backend_end != 0 && s->bin.off == s->bin.len && s->reply.len == 0) {
		*graceful = true;
		return s->client_end != 0 ? "client-closed" :
		    s->backend_end == IG_EEOF ? "backend-closed" : "backend-error";
	}
	return NULL;
}

/*
 * The backend said BYE at the end of a whole response, so its close comes
 * next: what went to the client stays queued until then (or until the
 * hold's time runs out), and leaves with the close_notify and the FIN.
 */
static bool
relay_hold_for_close(struct ig_session *s)
{
	if (s->bye_hold_over || s->end_reason != NULL || s->backend_end != 0 ||
	    !ig_imap_resp_bye(&s->to_client) || !ig_imap_resp_at_boundary(&s->to_client) ||
	    s->bin.off != s->bin.len || s->reply.len > 0)
		return false;
	if (!s->bye_held) {
		s->bye_held = true;
		ig_session_timer(s, IG_RELAY_BYE_HOLD_MS);
	}
	return true;
}

int
ig_relay_bye_hold_over(struct ig_session *s)
{
	s->bye_hold_over = true;
	ig_session_log(s, IG_LOG_DEBUG, "event=bye-hold-over waited_ms=%u",
	    IG_RELAY_BYE_HOLD_MS);
	return ig_conn_flush(&s->client);
}

/*
 * Half-close: a client whose input ends (a TCP FIN, with or without a TLS
 * close_notify) still gets every answer. What it sent goes to the backend,
 * then the backend's side is ended the same way (close_notify when it is
 * TLS, then a TCP shutdown), and the backend's bytes keep flowing to the
 * client until the backend closes too (or the idle timeout). When the
 * backend ends first, what it sent is delivered, and the session closes
 * gracefully: close_notify and a shutdown to the client, then the close.
 *
 * Both connections are corked for the pass: the records of one burst leave
 * in one write (up to buffer_size), not one write per record. On a graceful
 * end the client's last bytes are not written here but by the close, with
 * the close_notify and the FIN (conn.c, conn_shutdown_step).
 */
void
ig_relay_pump(struct ig_session *s)
{
	bool graceful;
	ig_conn_cork(&s->client);
	ig_conn_cork(&s->backend);
	const char *why = relay_pass(s, &graceful);
	int rc1 = 0;
	if ((why != NULL && graceful) || (why == NULL && relay_hold_for_close(s)))
		ig_conn_cork_end(&s->client); /* queued; written by what comes next */
	else
		rc1 = ig_conn_uncork(&s->client);
	int rc2 = ig_conn_uncork(&s->backend);
	if (why == NULL && rc1 < 0)
		why = "client-write-error";
	if (why == NULL && rc2 < 0)
		why = "backend-write-error";
	if (why != NULL) {
		ig_session_close(s, why, graceful && rc1 >= 0);
		return;
	}
	if (s->client_end != 0 && s->cin.off == s->cin.len && !s->backend.shut_wanted) {
		ig_session_log(s, IG_LOG_INFO, "event=half-close from=client");
		if (ig_conn_shutdown(&s->backend) < 0) {
			ig_session_close(s, "backend-write-error", false);
			return;
		}
	}
	ig_conn_update_read(&s->client);
	ig_conn_update_read(&s->backend);
}

void
ig_relay_end(struct ig_session *s, const char *reason, const char *text)
{
	if (s->closing || s->end_reason != NULL)
		return;
	s->end_reason = reason;
	s->end_text = text;
	/* The session timer bounds the wait for a boundary (the idle timeout
	   no longer matters). */
	ig_session_timer(s, IG_RELAY_END_MS);
	/* The session's pump: it goes round again after a write that went
	   out whole (no callback comes for it). */
	ig_session_on_io(s);
}
