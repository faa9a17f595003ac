/*
 * A worker: a libuv loop in its own thread, its listening sockets and
 * sessions (proxy/worker.h). The server reaches it through the mailbox
 * only; nothing here is touched by another thread except the mailbox
 * (under mu) and what struct ig_shared guards itself.
 */
#include "proxy/worker.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/bufpool.h"
#include "proxy/gen.h"
#include "proxy/listener.h"
#include "proxy/session.h"
#include "proxy/tls.h"
#include "util/err.h"
#include "util/log.h"

/* Buffers kept on the pool's free list: enough for a few sessions moving
   bytes at once; the rest of a burst goes back to the allocator. */
#define IG_WORKER_BUFPOOL_FREE 64

static void
worker_handle_close_cb(uv_handle_t *h)
{
	(void)h;
}

/* Tells worker o (another thread) that a session ended elsewhere. */
static void
worker_nudge(struct ig_worker *o)
{
	pthread_mutex_lock(&o->mu);
	if (!o->closed && !o->resume_req) {
		o->resume_req = true;
		uv_async_send(&o->wake);
	}
	pthread_mutex_unlock(&o->mu);
}

/*
 * The session set's on_freed: a session's descriptors are closed. The
 * descriptor budget is the process's, so a worker paused for it resumes
 * when a session ends on any worker.
 */
static void
worker_session_freed(void *arg)
{
	struct ig_worker *w = arg;
	/* Draining: the server ends the drain when the last one has gone. */
	if (w->set.draining && w->drained != NULL && atomic_load(&w->set.sh->nsessions) == 0)
		uv_async_send(w->drained);
	ig_listener_session_freed(&w->gate);
	if (atomic_load(&w->set.sh->paused_gates) == 0)
		return;
	for (unsigned i = 0; i < w->nall; i++)
		if (&w->all[i] != w)
			worker_nudge(&w->all[i]);
}

/* Closes the listening sockets (uv_close closes the descriptor at once:
   from here a connection to them is refused) and the accept gate. */
static void
worker_close_listeners(struct ig_worker *w)
{
	for (size_t i = 0; i < w->gate.nlisteners; i++) {
		if (w->gate.listeners[i].open) {
			w->gate.listeners[i].open = false;
			uv_close((uv_handle_t *)&w->gate.listeners[i].tcp, worker_handle_close_cb);
		}
	}
	ig_listener_gate_close(&w->gate);
}

/* On the worker's thread: stop accepting, end every session, close the
   mailbox; the loop ends when the last session has gone. */
static void
worker_do_stop(struct ig_worker *w)
{
	if (w->set.stopping)
		return;
	w->set.stopping = true;
	log_debug("event=worker-stop worker=%u sessions=%u", w->index, w->set.nsessions);
	worker_close_listeners(w);
	ig_session_shutdown_all(&w->set);
	pthread_mutex_lock(&w->mu);
	w->closed = true;
	if (w->call_fn != NULL) { /* posted meanwhile: it runs nothing */
		w->call_done = true;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (w->wake_on) {
		w->wake_on = false;
		uv_close((uv_handle_t *)&w->wake, worker_handle_close_cb);
	}
}

/* The mailbox: a call to run, a stop to carry out. */
static void
worker_wake_cb(uv_async_t *a)
{
	struct ig_worker *w = a->data;
	pthread_mutex_lock(&w->mu);
	ig_worker_fn *fn = w->call_done ? NULL : w->call_fn;
	void *arg = w->call_arg;
	bool stop = w->stop_req;
	bool resume = w->resume_req;
	w->resume_req = false;
	pthread_mutex_unlock(&w->mu);
	if (resume)
		ig_listener_session_freed(&w->gate);
	if (fn != NULL) {
		fn(w, arg);
		pthread_mutex_lock(&w->mu);
		w->call_done = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
	if (stop)
		worker_do_stop(w);
}

int
ig_worker_init(struct ig_worker *w, unsigned index, unsigned nworkers,
    struct ig_shared *sh, struct ig_gen *g, int *fds, size_t nlisteners)
{
	memset(w, 0, sizeof(*w));
	w->index = index;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	ig_gen_ref(g);
	w->set.gen = g;
	w->set.sh = sh;
	w->set.metrics = index < sh->nmetrics ? &sh->metrics[index] : NULL;
	w->set.loop = &w->loop;
	w->set.worker = index;
	w->set.on_freed = worker_session_freed;
	w->set.owner = w;
	int rc = uv_loop_init(&w->loop);
	if (rc != 0) {
		log_error("event=start-failed reason=loop-init worker=%u error=\"%s\"", index,
		    uv_strerror(rc));
		for (size_t i = 0; i < nlisteners; i++)
			close(fds[i]);
		return IG_EIO;
	}
	w->loop_on = true;
	/*
	 * The sessions' buffers. limits.buffer_pool_max is the process's:
	 * each worker's pool gets its share. A few buffers stay on the free
	 * list (the rest of a burst goes back to the allocator).
	 */
	const struct ig_limits *lim = &g->cfg->limits;
	size_t cap = lim->buffer_pool_max / nworkers;
	if (lim->buffer_pool_max != 0 && cap < lim->buffer_size)
		cap = lim->buffer_size;
	w->set.buf_size = lim->buffer_size;
	rc = ig_bufpool_new(lim->buffer_size + ig_tls_write_slack(lim->buffer_size), cap,
	    IG_WORKER_BUFPOOL_FREE, &w->set.bufpool);
	if (rc != 0) {
		log_error("event=start-failed reason=buffer-pool worker=%u error=\"%s\"", index,
		    ig_strerror(rc));
		for (size_t i = 0; i < nlisteners; i++)
			close(fds[i]);
		return rc;
	}
	ig_listener_gate_init(&w->gate, &w->set);
	uv_async_init(&w->loop, &w->wake, worker_wake_cb);
	w->wake.data = w;
	w->wake_on = true;

	const struct ig_config *cfg = g->cfg;
	w->gate.listeners = calloc(nlisteners, sizeof(*w->gate.listeners));
	if (w->gate.listeners == NULL) {
		for (size_t i = 0; i < nlisteners; i++)
			close(fds[i]);
		return IG_ENOMEM;
	}
	w->gate.nlisteners = nlisteners;
	for (size_t i = 0; i < nlisteners; i++) {
		const struct ig_listener_conf *lc = &cfg->listeners[i];
		struct ig_listener *l = &w->gate.listeners[i];
		l->gate = &w->gate;
		l->index = i;
		snprintf(l->info.name, sizeof(l->info.name), "%s", lc->name);
		l->info.tls = lc->tls;
		l->info.index = (unsigned)i;
		l->info.max_sessions = lc->max_sessions;
		l->info.nsessions = &sh->listener_sessions[i];
		uv_tcp_init(&w->loop, &l->tcp);
		l->tcp.data = l;
		l->open = true;
		rc = uv_tcp_open(&l->tcp, fds[i]);
		if (rc != 0) {
			log_error("event=start-failed listener=%s listen=%s worker=%u error=\"%s\"",
			    lc->name, lc->listen, index, uv_strerror(rc));
			for (size_t j = i; j < nlisteners; j++)
				close(fds[j]);
			return IG_EIO;
		}
	}
	return 0;
}

int
ig_worker_listen(struct ig_worker *w)
{
	if (ig_listener_fd_budget(&w->gate) != 0)
		return IG_EIO;
	const struct ig_config *cfg = w->set.gen->cfg;
	for (size_t i = 0; i < w->gate.nlisteners; i++) {
		int rc = uv_listen((uv_stream_t *)&w->gate.listeners[i].tcp, 511,
		    ig_listener_on_connection);
		if (rc != 0) {
			log_error("event=start-failed listener=%s listen=%s worker=%u error=\"%s\"",
			    cfg->listeners[i].name, cfg->listeners[i].listen, w->index,
			    uv_strerror(rc));
			return IG_EIO;
		}
	}
	return 0;
}

static void *
worker_thread(void *arg)
{
	struct ig_worker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

int
ig_worker_start(struct ig_worker *w, struct ig_worker *all, unsigned nall)
{
	w->all = all;
	w->nall = nall;
	/* Signals are the main thread's (the server's handlers). */
	sigset_t none, old;
	sigfillset(&none);
	pthread_sigmask(SIG_SETMASK, &none, &old);
	int rc = pthread_create(&w->thread, NULL, worker_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("event=start-failed reason=thread worker=%u error=\"%s\"", w->index,
		    strerror(rc));
		return IG_EIO;
	}
	w->thread_on = true;
	return 0;
}

bool
ig_worker_call(struct ig_worker *w, ig_worker_fn *fn, void *arg)
{
	if (!w->thread_on) {
		if (!w->loop_on || w->set.stopping)
			return false;
		fn(w, arg);
		return true;
	}
	pthread_mutex_lock(&w->mu);
	if (w->closed) {
		pthread_mutex_unlock(&w->mu);
		return false;
	}
	w->call_fn = fn;
	w->call_arg = arg;
	w->call_done = false;
	uv_async_send(&w->wake);
	while (!w->call_done)
		pthread_cond_wait(&w->cv, &w->mu);
	w->call_fn = NULL;
	w->call_arg = NULL;
	pthread_mutex_unlock(&w->mu);
	return true;
}

void
ig_worker_stop(struct ig_worker *w)
{
	if (!w->loop_on)
		return;
	if (!w->thread_on) {
		worker_do_stop(w);
		return;
	}
	pthread_mutex_lock(&w->mu);
	if (!w->closed && !w->stop_req) {
		w->stop_req = true;
		uv_async_send(&w->wake);
	}
	pthread_mutex_unlock(&w->mu);
}

void
ig_worker_join(struct ig_worker *w)
{
	if (!w->thread_on)
		return;
	pthread_join(w->thread, NULL);
	w->thread_on = false;
}

static void
worker_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, worker_handle_close_cb);
}

int
ig_worker_destroy(struct ig_worker *w)
{
	ig_worker_join(w); /* (a thread that runs was asked to stop) */
	int rc = 0;
	if (w->loop_on) {
		/* Anything still open (a failed start) is closed and run out. */
		ig_listener_gate_close(&w->gate);
		w->wake_on = false;
		uv_walk(&w->loop, worker_walk_close, NULL);
		uv_run(&w->loop, UV_RUN_DEFAULT);
		rc = uv_loop_close(&w->loop);
		if (rc != 0)
			log_error("event=loop-close-failed worker=%u error=\"%s\"", w->index,
			    uv_strerror(rc));
		w->loop_on = false;
	}
	free(w->gate.listeners);
	w->gate.listeners = NULL;
	ig_bufpool_free(w->set.bufpool); /* every buffer is back by now */
	w->set.bufpool = NULL;
	ig_gen_unref(w->set.gen);
	w->set.gen = NULL;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	return rc == 0 ? 0 : IG_EIO;
}

unsigned
ig_worker_drain(struct ig_worker *w)
{
	if (w->set.stopping || w->set.draining)
		return 0;
	worker_close_listeners(w);
	unsigned n = ig_session_drain_all(&w->set);
	log_debug("event=worker-drain worker=%u sessions=%u ended_now=%u", w->index,
	    w->set.nsessions, n);
	return n;
}

unsigned
ig_worker_apply_gen(struct ig_worker *w, struct ig_gen *g)
{
	const struct ig_config *nc = g->cfg;
	for (size_t i = 0; i < w->gate.nlisteners; i++)
		w->gate.listeners[i].info.max_sessions = nc->listeners[i].max_sessions;
	ig_gen_ref(g);
	struct ig_gen *old = w->set.gen;
	w->set.gen = g;
	w->set.gen_seq++;
	ig_gen_unref(old);
	/* A user the new policy refuses loses the sessions it has open. */
	return ig_session_recheck_all(&w->set);
}

void
ig_worker_buffer_stats(struct ig_worker *w, struct ig_bufpool_stats *st)
{
	ig_bufpool_stats(w->set.bufpool, st);
}

int
ig_worker_kick(struct ig_worker *w, const char *user, unsigned *count)
{
	return ig_session_kick_user(&w->set, user, count);
}

unsigned
ig_worker_apppass_sweep(struct ig_worker *w, const struct ig_apppass_snapshot *snap)
{
	return ig_session_apppass_sweep(&w->set, snap);
}
