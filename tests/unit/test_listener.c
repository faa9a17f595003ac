/*
 * Unit tests for the parts of proxy/listener.c that need no session: the
 * soft descriptor limit raised to the hard one, the session budget from the
 * descriptors open (two per session, a reserve, one per listener), a start
 * refused when not one session fits, and accept errors logged at most once
 * per interval with the number left out. Log lines are read back from a
 * file standing in for stderr; the loop must close cleanly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/err.h"
#include "proxy/listener.h"
#include "util/log.h"
#include "proxy/sessions.h"

/* stderr goes to a temporary file while a test reads what was logged. */
struct capture {
	FILE *f;
	int saved;
};

static void
capture_start(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

/* Restores stderr; returns what was logged (free it). */
static char *
capture_end(struct capture *c)
{
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	long n = ftell(c->f);
	assert_true(n >= 0);
	char *buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	rewind(c->f);
	size_t got = fread(buf, 1, (size_t)n, c->f);
	buf[got] = '\0';
	fclose(c->f);
	return buf;
}

static unsigned
count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static unsigned
fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/*
 * What a worker gives its listeners, and no worker: a loop, an empty
 * session set, the accept state and two listeners; nothing bound.
 */
struct lenv {
	uv_loop_t loop;
	struct ig_shared sh;
	struct ig_session_set set;
	struct ig_accept_gate gate;
	struct ig_listener listeners[2];
};

static struct lenv *
lenv_new(void)
{
	struct lenv *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	assert_int_equal(uv_loop_init(&e->loop), 0);
	e->set.loop = &e->loop;
	assert_int_equal(ig_shared_init(&e->sh, 2), 0);
	e->set.sh = &e->sh;
	ig_listener_gate_init(&e->gate, &e->set);
	e->gate.listeners = e->listeners;
	e->gate.nlisteners = 2;
	for (size_t i = 0; i < 2; i++) {
		struct ig_listener *l = &e->listeners[i];
		l->gate = &e->gate;
		l->index = i;
		snprintf(l->info.name, sizeof(l->info.name), "%s", i == 0 ? "imaps" : "imap");
		l->info.max_sessions = 10000;
		l->tcp.data = l; /* the error path reads only this */
	}
	return e;
}

static void
lenv_free(struct lenv *e)
{
	ig_listener_gate_close(&e->gate);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	ig_shared_destroy(&e->sh);
	free(e);
}

static void
set_soft(rlim_t soft)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = soft;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void
test_raise_to_hard(void **state)
{
	(void)state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 128)
		skip();
	set_soft(100);
	struct capture c;
	capture_start(&c);
	ig_listener_raise_fd_limit();
	char *log = capture_end(&c);
	struct rlimit now;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	if (rl.rlim_max != RLIM_INFINITY)
		assert_true(now.rlim_cur == rl.rlim_max);
	else
		assert_true(now.rlim_cur > 100);
	char want[96];
	snprintf(want, sizeof(want), "event=fd-limit soft=%llu ", (unsigned long long)now.rlim_cur);
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, " raised_from=100"));
	free(log);
}

/* {soft limit above the descriptors open, sessions expected} */
static const struct {
	unsigned above;
	unsigned sessions;
} budget_rows[] = {
	{ 32 + 2 + 2, 1 },           /* reserve, a held connection per listener */
	{ 32 + 2 + 3, 1 },           /* an odd descriptor is of no use */
	{ 32 + 2 + 20, 10 },
	{ 32 + 2 + 2001, 1000 },
};

static void
test_budget(void **state)
{
	(void)state;
	struct rlimit saved;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 4096)
		skip();
	struct lenv *e = lenv_new();
	for (size_t i = 0; i < sizeof(budget_rows) / sizeof(budget_rows[0]); i++) {
		set_soft(fds_open() + budget_rows[i].above);
		struct capture c;
		capture_start(&c);
		/* the capture file is open now: counted by both */
		set_soft(fds_open() + budget_rows[i].above);
		int rc = ig_listener_fd_budget(&e->gate);
		char *log = capture_end(&c);
		assert_int_equal(rc, 0);
		assert_int_equal(e->gate.max_sessions, budget_rows[i].sessions);
		assert_non_null(strstr(log, "event=fd-budget"));
		/* Below the listeners' 2 x 10000 sessions: said so. */
		assert_non_null(strstr(log, "accepting pauses there"));
		free(log);
	}
	/* Not one session: a start failure that names the fix. */
	struct capture c;
	capture_start(&c);
	set_soft(fds_open() + 32 + 2 + 1);
	int rc = ig_listener_fd_budget(&e->gate);
	char *log = capture_end(&c);
	assert_int_equal(rc, IG_EIO);
	assert_int_equal(e->gate.max_sessions, 0);
	assert_non_null(strstr(log, "event=start-failed reason=fd-limit"));
	assert_non_null(strstr(log, "LimitNOFILE"));
	free(log);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	lenv_free(e);
}

static void
test_accept_errors_rate_limited(void **state)
{
	(void)state;
	struct lenv *e = lenv_new();
	uv_stream_t *srv = (uv_stream_t *)&e->listeners[1].tcp;
	struct capture c;
	capture_start(&c);
	for (int i = 0; i < 5; i++)
		ig_listener_on_connection(srv, UV_EMFILE);
	ig_listener_on_connection(srv, UV_ENFILE);
	char *log = capture_end(&c);
	assert_int_equal(count(log, "event=accept-error"), 1);
	assert_non_null(strstr(log, "listener=imap event=accept-error error=\"too many open "
	    "files\" note=\"out of descriptors: pending connections were reset\""));
	assert_non_null(strstr(log, "not_logged=0"));
	free(log);

	/* The interval has passed: the next line counts those left out. */
	e->gate.error_log_ms = uv_now(&e->loop) - 5000;
	capture_start(&c);
	ig_listener_on_connection(srv, UV_ECONNRESET);
	ig_listener_on_connection(srv, UV_EMFILE);
	log = capture_end(&c);
	assert_int_equal(count(log, "event=accept-error"), 1);
	assert_non_null(strstr(log, "not_logged=5"));
	assert_null(strstr(log, "out of descriptors"));
	free(log);
	assert_int_equal(e->gate.errors_unlogged, 1);
	lenv_free(e);
}

static void
test_pause_reason_names(void **state)
{
	(void)state;
	assert_string_equal(ig_pause_reason_str(IG_PAUSE_FD_LIMIT), "fd-limit");
	assert_string_equal(ig_pause_reason_str(IG_PAUSE_NO_MEMORY), "no-memory");
	assert_string_equal(ig_pause_reason_str(IG_PAUSE_REASON_COUNT), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raise_to_hard),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_accept_errors_rate_limited),
		cmocka_unit_test(test_pause_reason_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
