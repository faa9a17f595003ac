/*
 * Unit test for the master secret (backend.master_login.password_file)
 * over a server's life, on real loops: read at start-up, read again by
 * every reload (a new secret applies), a reload whose file went bad (mode
 * 0644, empty, gone) refused with the old generation and its secret kept,
 * and the secret in no log line, at debug level, from start to stop.
 * stderr, where the lines and the loader's messages go, is read back from
 * a temporary file.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "proxy/gen.h"
#include "proxy/server.h"
#include "proxy/tls.h"
#include "util/log.h"

#define SECRET1 "first-Master-secret-7f3a"
#define SECRET2 "second-Master-secret-c41d"

/* The dev certificates (see test_certstore.c). */
static const char *
fixture(const char *name)
{
	static char ring[4][PATH_MAX];
	static size_t next;
	char *out = ring[next++ % 4];
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

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct env {
	char dir[64];
	char config[128];
	char secret[128];
	FILE *cap;        /* stands in for stderr */
	int saved_stderr;
};

static void
write_secret(const struct env *e, const char *text, mode_t mode)
{
	FILE *f = fopen(e->secret, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(e->secret, mode), 0);
}

/* Everything written to stderr so far. */
static char *
captured(const struct env *e)
{
	fflush(stderr);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fileno(e->cap));
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, out);
	fclose(f);
	fclose(out);
	return buf;
}

static unsigned
count(const char *text, const char *what)
{
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

/* Raises SIGHUP and runs the server's loop until one more line with what
   was logged (10 s at most). */
static void
reload(struct env *e, struct ig_server *sv, const char *what)
{
	char *before = captured(e);
	unsigned n = count(before, what);
	free(before);
	assert_int_equal(raise(SIGHUP), 0);
	uint64_t deadline = mono_ms() + 10000;
	for (;;) {
		uv_run(&sv->loop, UV_RUN_NOWAIT);
		char *now = captured(e);
		unsigned m = count(now, what);
		free(now);
		if (m > n)
			return;
		assert_true(mono_ms() < deadline);
		usleep(10000);
	}
}

static void
assert_secret(const struct ig_server *sv, const char *want)
{
	const struct ig_master_login *m = &sv->gen->cfg->backend.master_login;
	assert_true(m->on);
	assert_int_equal(m->secret_len, strlen(want));
	assert_memory_equal(m->secret, want, strlen(want));
}

static int
setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/igmsecXXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->config, sizeof(e->config), "%s/imapguard.yaml", e->dir);
	snprintf(e->secret, sizeof(e->secret), "%s/master.secret", e->dir);
	FILE *f = fopen(e->config, "w");
	assert_non_null(f);
	fprintf(f,
	    "log_level: debug\n"
	    "workers: 1\n"
	    "listeners:\n"
	    "  - { name: imaps, listen: \"127.0.0.1:%u\", tls: implicit }\n"
	    "tls:\n"
	    "  certificates:\n"
	    "    - { cert: \"%s\", key: \"%s\" }\n"
	    "backend:\n"
	    "  address: \"127.0.0.1:%u\"\n"
	    "  master_login:\n"
	    "    user: imapguard-master\n"
	    "    password_file: \"%s\"\n"
	    "policy:\n"
	    "  groups:\n"
	    "    mfa:\n"
	    "      users: [\"*@example.com\"]\n"
	    "      credentials: app_passwords\n"
	    "ratelimit:\n"
	    "  enabled: false\n",
	    free_port(), fixture("dual-ecdsa.pem"), fixture("dual-ecdsa.key"), free_port(),
	    e->secret);
	assert_int_equal(fclose(f), 0);
	/* stderr into a file for the whole test. */
	fflush(stderr);
	e->cap = tmpfile();
	assert_non_null(e->cap);
	e->saved_stderr = dup(STDERR_FILENO);
	assert_true(e->saved_stderr >= 0);
	assert_true(dup2(fileno(e->cap), STDERR_FILENO) >= 0);
	*state = e;
	return 0;
}

static int
teardown(void **state)
{
	struct env *e = *state;
	fflush(stderr);
	dup2(e->saved_stderr, STDERR_FILENO);
	close(e->saved_stderr);
	fclose(e->cap);
	unlink(e->config);
	unlink(e->secret);
	rmdir(e->dir);
	free(e);
	return 0;
}

static void
test_secret_over_reloads(void **state)
{
	struct env *e = *state;
	struct ig_server sv;

	write_secret(e, SECRET1 "\n", 0600);
	struct ig_gen *g = ig_gen_load(e->config, stderr);
	assert_non_null(g);
	ig_log_set_level(g->cfg->log_level);
	assert_int_equal(ig_server_init(&sv, g, e->config), 0);
	assert_secret(&sv, SECRET1);

	/* A new secret: read again by the reload. */
	write_secret(e, SECRET2 "\n", 0600);
	reload(e, &sv, "event=reload-done");
	assert_int_equal(sv.gen_seq, 1);
	assert_secret(&sv, SECRET2);
	const struct ig_gen *kept = sv.gen;

	/* The file went bad: each reload refused, the generation kept. */
	write_secret(e, SECRET1 "\n", 0644);
	reload(e, &sv, "event=reload-failed");
	write_secret(e, "", 0600);
	reload(e, &sv, "event=reload-failed");
	assert_int_equal(unlink(e->secret), 0);
	reload(e, &sv, "event=reload-failed");
	assert_ptr_equal(sv.gen, kept);
	assert_int_equal(sv.gen_seq, 1);
	assert_secret(&sv, SECRET2);

	assert_int_equal(raise(SIGTERM), 0);
	assert_int_equal(ig_server_run(&sv), 0);
	assert_int_equal(ig_server_destroy(&sv), 0);
	ig_log_set_level(IG_LOG_INFO);

	char *log = captured(e);
	/* Why each reload failed, at the password_file value (line 12). */
	assert_int_equal(count(log, "imapguard.yaml:12:20: cannot use"), 2);
	assert_non_null(strstr(log, "its mode 0644 lets other users read it"));
	assert_non_null(strstr(log, "it is empty"));
	assert_non_null(strstr(log, "imapguard.yaml:12:20: cannot read"));
	assert_int_equal(count(log, "event=reload-failed"), 3);
	assert_non_null(strstr(log, "event=reload-done"));
	/* The proof that debug lines were written, and no secret among them. */
	assert_non_null(strstr(log, " debug event="));
	assert_null(strstr(log, SECRET1));
	assert_null(strstr(log, SECRET2));
	assert_null(strstr(log, "Master-secret"));
	free(log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_secret_over_reloads, setup, teardown),
	};
	if (ig_tls_global_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
