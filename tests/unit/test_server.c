/*
 * Unit tests for proxy/server.c and proxy/worker.c on real loops: a server
 * with two worker threads started from a configuration file, reloaded with
 * SIGHUP and stopped with SIGTERM, ending with every loop closed
 * (ig_server_destroy() returns 0 only when every uv_loop_close() did).
 *
 * A refused reload must change nothing. The limiter is the last check that
 * can refuse a reload, and no configuration the loader accepts is refused
 * by it (its checks are a subset of the loader's): only a failed allocation
 * gets there. This test links with -Wl,--wrap=ig_rl_set_conf (see
 * tests/CMakeLists.txt) to make it refuse on demand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "policy/ratelimit.h"
#include "proxy/gen.h"
#include "proxy/tls.h"
#include "proxy/server.h"
#include "util/err.h"
#include "util/log.h"

int __real_ig_rl_set_conf(struct ig_rl *rl, const struct ig_rl_conf *conf);
int __wrap_ig_rl_set_conf(struct ig_rl *rl, const struct ig_rl_conf *conf);

static unsigned set_conf_calls;  /* reloads that reached the limiter */
static bool set_conf_refuse;     /* answer IG_ENOMEM, as a failed copy does */

int
__wrap_ig_rl_set_conf(struct ig_rl *rl, const struct ig_rl_conf *conf)
{
	set_conf_calls++;
	if (set_conf_refuse)
		return IG_ENOMEM;
	return __real_ig_rl_set_conf(rl, conf);
}

/* The dev certificates next to this file (see test_certstore.c). */
static const char *
fixture(const char *name)
{
	static char ring[8][PATH_MAX];
	static size_t next;
	char *out = ring[next++ % 8];
	const char *dir = getenv("IG_TEST_CERTS");
	int n;

	if (dir != NULL) {
		n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
	} else {
		const char *slash = strrchr(__FILE__, '/');
		int dlen = slash == NULL ? 1 : (int)(slash - __FILE__);
		n = snprintf(out, PATH_MAX, "%.*s/../data/certs/%s", dlen,
		    slash == NULL ? "." : __FILE__, name);
	}
	assert_true(n > 0 && n < PATH_MAX);
	return out;
}

/* A loopback port that was free a moment ago (the kernel picked it). */
static unsigned
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

struct wenv {
	char dir[64];
	char config[128];
	char state[128];
	char state_lock[160];
	unsigned port_imaps, port_imap, port_backend;
};

/*
 * Writes the configuration: listener imaps with max_sessions, imap with the
 * limits' default, the limiter with a state file saved every sync.
 */
static void
write_config(const struct wenv *e, const char *log_level, unsigned imaps_max,
    unsigned limits_max, const char *sync)
{
	FILE *f = fopen(e->config, "w");

	assert_non_null(f);
	fprintf(f,
	    "log_level: %s\n"
	    "workers: 2\n"
	    "listeners:\n"
	    "  - { name: imaps, listen: \"127.0.0.1:%u\", tls: implicit, max_sessions: %u }\n"
	    "  - { name: imap, listen: \"127.0.0.1:%u\", tls: starttls }\n"
	    "tls:\n"
	    "  certificates:\n"
	    "    - { cert: \"%s\", key: \"%s\" }\n"
	    "backend:\n"
	    "  address: \"127.0.0.1:%u\"\n"
	    "limits:\n"
	    "  max_sessions: %u\n"
	    "ratelimit:\n"
	    "  state_file: \"%s\"\n"
	    "  state_sync: %s\n",
	    log_level, e->port_imaps, imaps_max, e->port_imap,
	    fixture("dual-ecdsa.pem"), fixture("dual-ecdsa.key"), e->port_backend,
	    limits_max, e->state, sync);
	assert_int_equal(fclose(f), 0);
}

static int
env_setup(void **state)
{
	struct wenv *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/igworkerXXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->config, sizeof(e->config), "%s/imapguard.yaml", e->dir);
	snprintf(e->state, sizeof(e->state), "%s/rl.state", e->dir);
	snprintf(e->state_lock, sizeof(e->state_lock), "%s.lock", e->state);
	e->port_imaps = free_port();
	e->port_imap = free_port();
	/* Nothing listens there: the start-up probe is refused at once. */
	e->port_backend = free_port();
	*state = e;
	return 0;
}

static int
env_teardown(void **state)
{
	struct wenv *e = *state;

	unlink(e->config);
	unlink(e->state);
	unlink(e->state_lock);
	rmdir(e->dir);
	free(e);
	return 0;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sends sig to ourselves and runs the server's loop until its handler has
   run (reload: the limiter was asked; stop: every loop ended), 10 s at
   most. */
static void
signal_and_run(struct ig_server *sv, int sig, unsigned want_calls)
{
	uint64_t deadline = mono_ms() + 10000;

	assert_int_equal(raise(sig), 0);
	if (sig == SIGTERM) {
		assert_int_equal(ig_server_run(sv), 0);
		return;
	}
	while (set_conf_calls < want_calls) {
		assert_true(mono_ms() < deadline);
		uv_run(&sv->loop, UV_RUN_ONCE);
	}
}

/* Every worker has generation g with number seq, and the caps given. */
static void
assert_workers(const struct ig_server *sv, const struct ig_gen *g, uint64_t seq,
    unsigned imaps_max, unsigned imap_max)
{
	assert_int_equal(sv->nworkers, 2);
	for (unsigned i = 0; i < sv->nworkers; i++) {
		const struct ig_worker *w = &sv->workers[i];
		assert_ptr_equal(w->set.gen, g);
		assert_int_equal(w->set.gen_seq, seq);
		assert_ptr_equal(w->set.sh, &sv->sh);
		assert_int_equal(w->gate.nlisteners, 2);
		assert_int_equal(w->gate.listeners[0].info.max_sessions, imaps_max);
		assert_int_equal(w->gate.listeners[1].info.max_sessions, imap_max);
		/* The per-listener counts are the shared ones. */
		assert_ptr_equal(w->gate.listeners[0].info.nsessions,
		    &sv->sh.listener_sessions[0]);
	}
}

static void
test_refused_reload_changes_nothing(void **state)
{
	struct wenv *e = *state;
	struct ig_server sv;

	write_config(e, "info", 7, 11, "10s");
	struct ig_gen *g = ig_gen_load(e->config, stderr);
	assert_non_null(g);
	ig_log_set_level(g->cfg->log_level);
	assert_int_equal(ig_server_init(&sv, g, e->config), 0);
	assert_workers(&sv, g, 0, 7, 11);
	assert_int_equal(sv.rl_sync_ms, 10000);
	assert_non_null(sv.sh.rl);

	/* Every value that a reload applies changes in the new file. */
	write_config(e, "debug", 2, 3, "20s");
	set_conf_calls = 0;
	set_conf_refuse = true;
	signal_and_run(&sv, SIGHUP, 1);
	assert_ptr_equal(sv.gen, g);
	assert_int_equal(sv.gen_seq, 0);
	assert_workers(&sv, g, 0, 7, 11);
	assert_int_equal(sv.rl_sync_ms, 10000);
	assert_int_equal(ig_log_get_level(), IG_LOG_INFO);

	/* The same file, accepted this time: all of it applies. */
	set_conf_refuse = false;
	signal_and_run(&sv, SIGHUP, 2);
	assert_ptr_not_equal(sv.gen, g);
	assert_int_equal(sv.gen_seq, 1);
	assert_workers(&sv, sv.gen, 1, 2, 3);
	assert_int_equal(sv.rl_sync_ms, 20000);
	assert_int_equal(ig_log_get_level(), IG_LOG_DEBUG);

	signal_and_run(&sv, SIGTERM, 0);
	assert_int_equal(ig_server_destroy(&sv), 0);
	ig_log_set_level(IG_LOG_INFO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refused_reload_changes_nothing,
		    env_setup, env_teardown),
	};
	if (ig_tls_global_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
