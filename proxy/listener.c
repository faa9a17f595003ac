/*
 * Accepting client connections: the descriptor limit and budget, pausing a
 * listener when one more session would not fit (or could not be
 * allocated), resuming when a session has gone, and accept errors logged at
 * a bounded rate.
 */
#include "proxy/listener.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "util/err.h"
#include "util/log.h"
#include "proxy/session.h"

#define LISTENER_PAUSE_LOG_MS 10000u /* at most one accept-paused line */
#define LISTENER_ERROR_LOG_MS 5000u  /* at most one accept-error line */
#define LISTENER_NOMEM_RETRY_MS 1000u

#define CASE(x, s) case x: return s
const char *
ig_pause_reason_str(enum ig_pause_reason r)
{
	switch (r) {
	CASE(IG_PAUSE_FD_LIMIT, "fd-limit");
	CASE(IG_PAUSE_NO_MEMORY, "no-memory");
	case IG_PAUSE_REASON_COUNT:
		break;
	}
	return "?";
}
#undef CASE

/* fs.nr_open: the most a process may raise RLIMIT_NOFILE to (Linux). */
static rlim_t
listener_nr_open(void)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	unsigned long long v = 0;
	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return (rlim_t)v;
}

void
ig_listener_raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("event=fd-limit error=\"getrlimit: %s\"", strerror(errno));
		return;
	}
	rlim_t was = rl.rlim_cur;
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit want = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
		int rc = setrlimit(RLIMIT_NOFILE, &want);
		if (rc != 0 && rl.rlim_max == RLIM_INFINITY) {
			/* Linux refuses "unlimited": fs.nr_open is the ceiling. */
			rlim_t nr = listener_nr_open();
			if (nr > rl.rlim_cur) {
				want.rlim_cur = nr;
				rc = setrlimit(RLIMIT_NOFILE, &want);
			}
		}
		if (rc != 0)
			log_warn("event=fd-limit error=\"cannot raise the soft limit to the hard "
			    "limit: %s\"", strerror(errno));
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
			return;
	}
	char hard[32];
	if (rl.rlim_max == RLIM_INFINITY)
		snprintf(hard, sizeof(hard), "unlimited");
	else
		snprintf(hard, sizeof(hard), "%llu", (unsigned long long)rl.rlim_max);
	log_info("event=fd-limit soft=%llu hard=%s raised_from=%llu",
	    (unsigned long long)rl.rlim_cur, hard, (unsigned long long)was);
}

static bool
listener_fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* Descriptors open now (the directory's own one not counted). */
static unsigned
listener_fds_open(uint64_t limit)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		return n > 0 ? n - 1 : 0;
	}
	/* No /proc: ask each descriptor up to the limit (the first 65536: at
	   start, the ones in use are the lowest). */
	uint64_t top = limit < 65536 ? limit : 65536;
	for (uint64_t fd = 0; fd < top; fd++)
		if (listener_fd_is_open((int)fd))
			n++;
	return n;
}

static void
listener_timer_cb(uv_timer_t *t);

void
ig_listener_gate_init(struct ig_accept_gate *g, struct ig_session_set *set)
{
	memset(g, 0, sizeof(*g));
	g->set = set;
	uv_timer_init(set->loop, &g->timer);
	g->timer.data = g;
	g->timer_open = true;
}

static void
listener_timer_close_cb(uv_handle_t *h)
{
	(void)h;
}

void
ig_listener_gate_close(struct ig_accept_gate *g)
{
	if (!g->timer_open)
		return;
	g->timer_open = false;
	uv_close((uv_handle_t *)&g->timer, listener_timer_close_cb);
}

int
ig_listener_fd_budget(struct ig_accept_gate *g)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		rl.rlim_cur = 1024;
	g->fd_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	g->fd_in_use = listener_fds_open(g->fd_limit);
	/* Each listener may hold one accepted connection while paused. */
	uint64_t apart = (uint64_t)g->fd_in_use + IG_FD_RESERVE + g->nlisteners;
	uint64_t n = g->fd_limit > apart ? (g->fd_limit - apart) / IG_FD_PER_SESSION : 0;
	g->max_sessions = n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
	uint64_t configured = 0;
	for (size_t i = 0; i < g->nlisteners; i++)
		configured += g->listeners[i].info.max_sessions;
	if (g->max_sessions == 0) {
		log_error("event=start-failed reason=fd-limit limit=%" PRIu64 " in_use=%u "
		    "reserve=%u error=\"no descriptor left for a session (raise the open files "
		    "limit, ulimit -n or LimitNOFILE=)\"", g->fd_limit, g->fd_in_use, IG_FD_RESERVE);
		return IG_EIO;
	}
	if (g->set->worker != 0)
		return 0; /* every worker has the same budget: said once */
	if (g->max_sessions < configured)
		log_warn("event=fd-budget limit=%" PRIu64 " in_use=%u reserve=%u max_sessions=%u "
		    "configured_sessions=%" PRIu64 " note=\"the open files limit allows fewer "
		    "sessions than the listeners' max_sessions: accepting pauses there\"",
		    g->fd_limit, g->fd_in_use, IG_FD_RESERVE, g->max_sessions, configured);
	else
		log_info("event=fd-budget limit=%" PRIu64 " in_use=%u reserve=%u max_sessions=%u",
		    g->fd_limit, g->fd_in_use, IG_FD_RESERVE, g->max_sessions);
	return 0;
}

/* Live sessions of the process: the budget is the process's descriptors. */
static unsigned
listener_sessions(const struct ig_accept_gate *g)
{
	return atomic_load(&g->set->sh->nsessions);
}

static bool
listener_has_room(const struct ig_accept_gate *g)
{
	return listener_sessions(g) < g->max_sessions;
}

/* l keeps the connection libuv accepted; polling it stops until resumed. */
static void
listener_pause(struct ig_accept_gate *g, struct ig_listener *l, enum ig_pause_reason why)
{
	l->paused = true;
	/* Memory is retried on a clock; descriptors come back with sessions. */
	if (why == IG_PAUSE_NO_MEMORY && g->timer_open && !uv_is_active((uv_handle_t *)&g->timer))
		uv_timer_start(&g->timer, listener_timer_cb, LISTENER_NOMEM_RETRY_MS, 0);
	if (g->npaused++ > 0)
		return; /* already paused: one line per pause */
	/* One line per pause of the process (the first worker that pauses),
	   at most one per LISTENER_PAUSE_LOG_MS. */
	struct ig_shared *sh = g->set->sh;
	ig_shared_lock(sh);
	if (atomic_fetch_add(&sh->paused_gates, 1) == 0) {
		uint64_t now = uv_hrtime() / 1000000u;
		sh->pause_reason = (int)why;
		sh->paused_at_ms = now;
		sh->pause_logged = sh->pause_log_ms == 0 ||
		    now - sh->pause_log_ms >= LISTENER_PAUSE_LOG_MS;
		if (!sh->pause_logged) {
			sh->pauses_unlogged++;
		} else {
			log_warn("event=accept-paused reason=%s listener=%s sessions=%u "
			    "max_sessions=%u fd_limit=%" PRIu64 " pauses_not_logged=%u",
			    ig_pause_reason_str(why), l->info.name, listener_sessions(g),
			    g->max_sessions, g->fd_limit, sh->pauses_unlogged);
			sh->pause_log_ms = now;
			sh->pauses_unlogged = 0;
		}
	}
	ig_shared_unlock(sh);
}

/*
 * Starts a session for the connection l holds. A session that could not be
 * allocated leaves the connection held (ig_session_accept() takes it only
 * once it has memory): pause, retry later.
 */
static void
listener_accept(struct ig_accept_gate *g, struct ig_listener *l)
{
	int rc = ig_session_accept(g->set, (uv_stream_t *)&l->tcp, &l->info);
	if (rc == IG_ENOMEM)
		listener_pause(g, l, IG_PAUSE_NO_MEMORY);
	else if (rc != 0)
		log_warn("listener=%s event=accept-failed error=\"%s\"", l->info.name,
		    ig_strerror(rc));
}

/* Paused listeners take their held connection while there is room. */
static void
listener_resume(struct ig_accept_gate *g)
{
	size_t n = g->nlisteners;
	if (g->npaused == 0 || n == 0 || g->set->stopping)
		return;
	bool nomem = false;
	for (size_t k = 0; k < n && listener_has_room(g) && !nomem; k++) {
		struct ig_listener *l = &g->listeners[(g->next + k) % n];
		if (!l->paused || !l->open)
			continue;
		l->paused = false;
		g->npaused--;
		/* From here libuv polls l again (uv_accept restarts it). */
		listener_accept(g, l);
		nomem = l->paused;
	}
	g->next = (g->next + 1) % n;
	if (g->npaused > 0)
		return;
	struct ig_shared *sh = g->set->sh;
	ig_shared_lock(sh);
	if (atomic_fetch_sub(&sh->paused_gates, 1) == 1) {
		if (sh->pause_logged)
			log_info("event=accept-resumed reason=%s paused_ms=%" PRIu64 " sessions=%u "
			    "max_sessions=%u", ig_pause_reason_str(
			        (enum ig_pause_reason)sh->pause_reason),
			    uv_hrtime() / 1000000u - sh->paused_at_ms, listener_sessions(g),
			    g->max_sessions);
		sh->pause_logged = false;
	}
	ig_shared_unlock(sh);
}

static void
listener_timer_cb(uv_timer_t *t)
{
	listener_resume(t->data);
}

void
ig_listener_session_freed(struct ig_accept_gate *g)
{
	if (g->npaused == 0 || !g->timer_open || g->set->stopping || !listener_has_room(g))
		return;
	/* Not from here: this runs inside a session's teardown. */
	uv_timer_start(&g->timer, listener_timer_cb, 0, 0);
}

/*
 * Accept errors, one line per few seconds with the number left out. EMFILE
 * and ENFILE arrive here only when libuv's reserve-descriptor trick could
 * not run (uv__server_io: when it drains the backlog it says nothing); a
 * busy loop of them must not flood the log.
 */
static void
listener_accept_error(struct ig_accept_gate *g, struct ig_listener *l, int status)
{
	uint64_t now = uv_now(g->set->loop);
	if (g->error_log_ms != 0 && now - g->error_log_ms < LISTENER_ERROR_LOG_MS) {
		g->errors_unlogged++;
		return;
	}
	bool fds = status == UV_EMFILE || status == UV_ENFILE;
	log_warn("listener=%s event=accept-error error=\"%s\"%s sessions=%u fd_limit=%" PRIu64
	    " not_logged=%u", l->info.name, uv_strerror(status),
	    fds ? " note=\"out of descriptors: pending connections were reset\"" : "",
	    listener_sessions(g), g->fd_limit, g->errors_unlogged);
	g->error_log_ms = now;
	g->errors_unlogged = 0;
}

void
ig_listener_on_connection(uv_stream_t *server, int status)
{
	struct ig_listener *l = server->data;
	struct ig_accept_gate *g = l->gate;
	if (status < 0) {
		listener_accept_error(g, l, status);
		return;
	}
	if (g->set->stopping)
		return; /* the listener is closing: libuv closes what it holds */
	if (!listener_has_room(g)) {
		listener_pause(g, l, IG_PAUSE_FD_LIMIT);
		return;
	}
	listener_accept(g, l);
}
