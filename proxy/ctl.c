#include "proxy/ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "policy/ratelimit.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "proxy/shared.h"

#define CTL_LINE_MAX 512
#define CTL_OUT_MAX (1024 * 1024) /* list output cap */

struct ctl_conn {
	uv_pipe_t pipe;
	struct ig_ctl *ctl;
	struct ctl_conn *next;
	char in[CTL_LINE_MAX];
	size_t inlen;
	char *out;
	size_t outlen, outcap;
	bool truncated;
	uv_write_t wr;
	bool closing;
};

struct ig_ctl {
	uv_pipe_t server;
	struct ig_shared *sh;          /* the limiter, session counts */
	const struct ig_ctl_ops *ops;  /* the owner's: stats, kick */
	void *owner;                   /* passed to ops */
	char *path;
	struct ctl_conn *conns;
	unsigned open; /* handles not yet closed: server + connections */
	bool stopping;
};

static void
ctl_maybe_free(struct ig_ctl *ctl)
{
	if (ctl->stopping && ctl->open == 0) {
		free(ctl->path);
		free(ctl);
	}
}

static void
ctl_conn_closed(uv_handle_t *h)
{
	struct ctl_conn *c = h->data;
	struct ig_ctl *ctl = c->ctl;
	for (struct ctl_conn **pp = &ctl->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	free(c->out);
	free(c);
	ctl->open--;
	ctl_maybe_free(ctl);
}

static void
ctl_conn_close(struct ctl_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->pipe, ctl_conn_closed);
}

static void
ctl_out(struct ctl_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
ctl_out(struct ctl_conn *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (c->outlen + len > CTL_OUT_MAX) {
		c->truncated = true;
		return;
	}
	if (c->outlen + len > c->outcap) {
		size_t cap = c->outcap ? c->outcap * 2 : 4096;
		while (cap < c->outlen + len)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (p == NULL) {
			c->truncated = true;
			return;
		}
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, line, len);
	c->outlen += len;
}

struct ctl_list {
	struct ctl_conn *c;
	uint64_t now;
	unsigned n;
};

static void
ctl_list_cb(void *arg, const char *limit, const char *key, uint64_t until_ms, unsigned count)
{
	struct ctl_list *l = arg;
	time_t t = (time_t)(until_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	uint64_t left = until_ms > l->now ? (until_ms - l->now + 999) / 1000 : 0;
	ctl_out(l->c, "%s\t%s\tuntil=%s\tremaining_s=%llu\tcount=%u\n", limit, key, when,
	    (unsigned long long)left, count);
	l->n++;
}

static void
ctl_write_cb(uv_write_t *req, int status)
{
	(void)status;
	ctl_conn_close(req->data);
}

/* Runs one command line and answers. */
static void
ctl_exec(struct ctl_conn *c, char *line)
{
	struct ig_shared *sh = c->ctl->sh;
	struct ig_rl *rl = sh->rl;
	uint64_t now = ig_wall_ms();
	char *arg = strchr(line, ' ');
	if (arg != NULL)
		*arg++ = '\0';
	if (strcmp(line, "list") == 0 && arg == NULL) {
		if (rl == NULL) {
			ctl_out(c, "error rate limiting is disabled\n");
		} else {
			struct ctl_list l = { c, now, 0 };
			ig_shared_lock(sh);
			ig_rl_foreach_block(rl, now, ctl_list_cb, &l);
			ig_shared_unlock(sh);
			ctl_out(c, c->truncated ? "error output truncated\n" : "ok %u blocks\n", l.n);
		}
	} else if (strcmp(line, "lift") == 0 && arg != NULL) {
		char *key = strchr(arg, ' ');
		if (key == NULL || rl == NULL) {
			ctl_out(c, "error usage: lift LIMIT KEY\n");
		} else {
			*key++ = '\0';
			ig_shared_lock(sh);
			int rc = ig_rl_lift(rl, arg, key, now);
			ig_shared_unlock(sh);
			char esc[300];
			/* A user limit's key holds the user name: redacted like it. */
			if (strncmp(arg, "user", 4) == 0)
				ig_log_user(key, esc, sizeof(esc));
			else
				ig_log_escape((const uint8_t *)key, strlen(key), esc, sizeof(esc));
			if (rc == 0) {
				log_info("event=ratelimit-lifted limit=%s key=\"%s\" by=ctl", arg, esc);
				ctl_out(c, "ok lifted %s %s\n", arg, key);
			} else {
				ctl_out(c, "error no such block: %s %s\n", arg, key);
			}
		}
	} else if (strcmp(line, "kick") == 0 && arg != NULL) {
		unsigned n = 0;
		char esc[1100];
		ig_log_user(arg, esc, sizeof(esc));
		if (c->ctl->ops->kick(c->ctl->owner, arg, &n) != 0) {
			ctl_out(c, "error invalid user name\n");
		} else {
			log_info("event=kick user=%s sessions=%u by=ctl", esc, n);
			ctl_out(c, "ok kicked %u session%s\n", n, n == 1 ? "" : "s");
		}
	} else if (strcmp(line, "stats") == 0 && arg == NULL) {
		struct ig_ctl_stats st = { 0 };
		c->ctl->ops->stats(c->ctl->owner, &st);
		ig_shared_lock(sh);
		size_t keys = rl ? ig_rl_count(rl) : 0;
		uint64_t changes = rl ? ig_rl_changes(rl) : 0;
		ig_shared_unlock(sh);
		ctl_out(c, "sessions\t%u\n", atomic_load(&sh->nsessions));
		ctl_out(c, "workers\t%u\n", st.workers);
		ctl_out(c, "buffers_in_use\t%zu\n", st.buffers_in_use);
		ctl_out(c, "buffers_in_use_peak\t%zu\n", st.buffers_in_use_peak);
		ctl_out(c, "buffers_free\t%zu\n", st.buffers_free);
		ctl_out(c, "buffers_waiting\t%zu\n", st.buffers_waiting);
		ctl_out(c, "buffers_refused\t%llu\n", (unsigned long long)st.buffers_refused);
		ctl_out(c, "ratelimit_keys\t%zu\n", keys);
		ctl_out(c, "ratelimit_changes\t%llu\n", (unsigned long long)changes);
		if (st.state_file) {
			ctl_out(c, "ratelimit_state_saved_changes\t%llu\n",
			    (unsigned long long)st.state_saved_changes);
			ctl_out(c, "ratelimit_state_save_failures\t%u\n", st.state_save_failures);
		}
		if (st.apppass) {
			ctl_out(c, "app_passwords_loaded\t%u\n", st.apppass_loaded ? 1u : 0u);
			ctl_out(c, "app_passwords_active\t%zu\n", st.apppass_active);
			ctl_out(c, "app_passwords_revoked\t%zu\n", st.apppass_revoked);
			ctl_out(c, "app_password_verifications_outstanding\t%u\n",
			    st.apppass_outstanding);
		}
		ctl_out(c, "ok\n");
	} else {
		ctl_out(c, "error unknown command (list, lift LIMIT KEY, kick USER, stats)\n");
	}
	uv_buf_t b = uv_buf_init(c->out, (unsigned)c->outlen);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, ctl_write_cb) != 0)
		ctl_conn_close(c);
}

static void
ctl_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_conn *c = h->data;
	(void)suggested;
	buf->base = c->in + c->inlen;
	buf->len = sizeof(c->in) - c->inlen - 1;
}

static void
ctl_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_conn *c = st->data;
	(void)buf;
	if (nread < 0 || (nread == 0 && c->inlen == sizeof(c->in) - 1)) {
		ctl_conn_close(c);
		return;
	}
	c->inlen += (size_t)nread;
	c->in[c->inlen] = '\0';
	char *nl = strchr(c->in, '\n');
	if (nl == NULL) {
		if (c->inlen == sizeof(c->in) - 1)
			ctl_conn_close(c); /* line too long */
		return;
	}
	*nl = '\0';
	if (nl > c->in && nl[-1] == '\r')
		nl[-1] = '\0';
	uv_read_stop(st);
	ctl_exec(c, c->in);
}

static void
ctl_on_connection(uv_stream_t *server, int status)
{
	struct ig_ctl *ctl = server->data;
	if (status < 0 || ctl->stopping)
		return;
	struct ctl_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->ctl = ctl;
	uv_pipe_init(server->loop, &c->pipe, 0);
	c->pipe.data = c;
	ctl->open++;
	c->next = ctl->conns;
	ctl->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, ctl_alloc_cb, ctl_read_cb) != 0)
		ctl_conn_close(c);
}

static void
ctl_server_closed(uv_handle_t *h)
{
	struct ig_ctl *ctl = h->data;
	ctl->open--;
	ctl_maybe_free(ctl);
}

/*
 * Does a process answer on the socket at path? 0: nobody (no file, or a
 * stale socket left by a process that died), 1: somebody is listening
 * (even with a full backlog), or a negative errno when we cannot tell.
 */
static int
ctl_probe(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		rc = errno == ECONNREFUSED || errno == ENOENT ? 0 :
		    errno == EAGAIN ? 1 : -errno;
	close(fd);
	return rc;
}

int
ig_ctl_start(uv_loop_t *loop, struct ig_shared *sh, const char *path,
    const struct ig_ctl_ops *ops, void *owner, struct ig_ctl **out)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* Replaced only when nobody answers: taking a running
		 * instance's socket would leave it unreachable. */
		int live = ctl_probe(path);
		if (live > 0) {
			log_error("event=start-failed reason=admin-socket-in-use path=%s "
			    "error=\"another process answers on it (is imapguard already "
			    "running?)\"", path);
			return IG_EIO;
		}
		if (live < 0) {
			log_error("event=start-failed reason=admin-socket path=%s error=\"cannot "
			    "tell whether a process answers on it: %s\"", path, strerror(-live));
			return IG_EIO;
		}
		unlink(path); /* stale socket from an earlier run */
	}
	struct ig_ctl *ctl = calloc(1, sizeof(*ctl));
	if (ctl == NULL || (ctl->path = strdup(path)) == NULL) {
		free(ctl);
		log_error("event=start-failed reason=admin-socket path=%s error=\"%s\"", path,
		    ig_strerror(IG_ENOMEM));
		return IG_ENOMEM;
	}
	ctl->sh = sh;
	ctl->ops = ops;
	ctl->owner = owner;
	uv_pipe_init(loop, &ctl->server, 0);
	ctl->server.data = ctl;
	ctl->open = 1;
	mode_t old = umask(0177);
	int rc = uv_pipe_bind(&ctl->server, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ctl->server, 16, ctl_on_connection);
	if (rc != 0) {
		log_error("event=start-failed reason=admin-socket path=%s error=\"%s\"", path,
		    uv_strerror(rc));
		ctl->stopping = true;
		uv_close((uv_handle_t *)&ctl->server, ctl_server_closed);
		return IG_EIO;
	}
	chmod(path, 0600);
	log_info("event=admin-socket path=%s", path);
	*out = ctl;
	return 0;
}

void
ig_ctl_stop(struct ig_ctl *ctl)
{
	if (ctl == NULL || ctl->stopping)
		return;
	ctl->stopping = true;
	unlink(ctl->path);
	for (struct ctl_conn *c = ctl->conns; c != NULL; c = c->next)
		ctl_conn_close(c);
	uv_close((uv_handle_t *)&ctl->server, ctl_server_closed);
}

int
ig_ctl_client(const char *path, const char *command)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "imapguard ctl: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "imapguard ctl: cannot reach %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	char line[CTL_LINE_MAX];
	int n = snprintf(line, sizeof(line), "%s\n", command);
	if (n < 0 || (size_t)n >= sizeof(line) || write(fd, line, (size_t)n) != n) {
		fprintf(stderr, "imapguard ctl: command too long or write failed\n");
		close(fd);
		return 2;
	}
	/* Echo the answer; keep its tail to find the last line. */
	char buf[4096], tail[1024];
	size_t tlen = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			break;
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		fwrite(buf, 1, (size_t)r, stdout);
		size_t got = (size_t)r;
		if (got >= sizeof(tail)) {
			memcpy(tail, buf + got - sizeof(tail), sizeof(tail));
			tlen = sizeof(tail);
		} else {
			if (tlen + got > sizeof(tail)) {
				size_t drop = tlen + got - sizeof(tail);
				memmove(tail, tail + drop, tlen - drop);
				tlen -= drop;
			}
			memcpy(tail + tlen, buf, got);
			tlen += got;
		}
	}
	while (tlen > 0 && tail[tlen - 1] == '\n')
		tlen--;
	size_t start = tlen;
	while (start > 0 && tail[start - 1] != '\n')
		start--;
	bool ok = tlen - start >= 2 && memcmp(tail + start, "ok", 2) == 0;
	close(fd);
	return ok ? 0 : 1;
}
