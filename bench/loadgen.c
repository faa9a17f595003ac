/*
 * ig_loadgen: an IMAP-over-TLS load generator for comparing TLS-terminating
 * IMAP proxies (bench/run.py drives it; bench/README.md explains the modes).
 *
 * One thread, one epoll loop, N nonblocking clients, OpenSSL as the TLS
 * client so that the client side costs little next to the proxy under test.
 * Each client is a small state machine: connect, optional STARTTLS in
 * cleartext, TLS handshake, then tagged commands one at a time (as a real
 * client sends them), each answered by a tagged response. Responses are
 * parsed as a byte stream: lines, and literals ({N}) that are counted and
 * skipped, never stored.
 *
 * Modes:
 *   full     each client loops: connect, full handshake, LOGIN, SELECT INBOX,
 *            FETCH the small message, LOGOUT, wait for the server to close.
 *   resumed  the same, offering the TLS 1.3 ticket of the client's previous
 *            session; reports how many handshakes were resumed.
 *   bulk     logged-in clients FETCH the big message's BODY[] over and over.
 *   noop     logged-in clients send NOOP; latency percentiles.
 *   idle     K sessions log in and IDLE (or just hold; with --no-login,
 *            hold right after the greeting); prints
 *            "established N" on stdout once all are, holds, then logs out.
 *
 * Output: one JSON line on stdout, one human line on stderr. Exit status 0
 * when units completed and nothing failed, 1 on any failure, 2 on usage.
 *
 * With --cpu-pid (repeatable), the user+system CPU time of those processes
 * (/proc/PID/stat utime+stime) is taken over the measurement window: the
 * whole run for full and resumed; for bulk and noop from the moment every
 * client is logged in to the end of the last unit (logins and LOGOUT are
 * outside); for idle from the start until every session is established.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { M_FULL, M_RESUMED, M_BULK, M_NOOP, M_IDLE, M_COUNT };

static const char *const mode_names[M_COUNT] = {
	"full", "resumed", "bulk", "noop", "idle",
};

/* Client states. */
enum cstate {
	CS_WAIT,          /* not connected; waits for a start slot */
	CS_CONNECTING,    /* nonblocking connect() under way */
	CS_PLAIN,         /* STARTTLS: cleartext greeting, then STARTTLS */
	CS_HANDSHAKE,     /* TLS handshake */
	CS_TLS,           /* TLS up: greeting or a command's response */
	CS_READY,         /* logged in, waiting for every client (barrier) */
	CS_HOLD,          /* idle mode: established, holding */
	CS_CLOSING,       /* LOGOUT answered: waiting for the server to close */
	CS_DONE,          /* finished for good */
	CS_COUNT
};

/* What the client waits for in CS_PLAIN and CS_TLS. */
enum step {
	ST_GREETING, ST_STARTTLS, ST_LOGIN, ST_SELECT, ST_FETCH_SMALL, ST_FETCH_BIG,
	ST_NOOP, ST_IDLE, ST_IDLE_DONE, ST_LOGOUT, ST_COUNT
};

static const char *const step_names[ST_COUNT] = {
	"greeting", "STARTTLS", "LOGIN", "SELECT", "FETCH", "FETCH", "NOOP", "IDLE",
	"DONE", "LOGOUT",
};

enum errkind { E_CONNECT, E_TLS, E_IMAP, E_CLOSED, E_TIMEOUT, E_COUNT };

static const char *const errkind_names[E_COUNT] = {
	"connect", "tls", "imap", "closed", "timeout",
};

struct client {
	uint32_t idx;
	uint32_t gen;            /* bumped per connection: stale events are dropped */
	int fd;
	SSL *ssl;
	SSL_SESSION *ticket;     /* resumed mode: the newest ticket (owned) */
	enum cstate st;
	enum step step;
	uint32_t events;         /* registered epoll events, 0 if not registered */
	double deadline;         /* monotonic seconds; 0: none */
	uint64_t t_sent_ns;      /* when the current command was queued */
	unsigned tagno;
	char tag[16];
	char out[512];           /* the command being sent */
	size_t out_len, out_off;
	/* Response parser: one line prefix, the line's last bytes (to find a
	 * literal announcement), literal bytes still to skip. */
	char pre[128];
	size_t pre_len;
	char tail[24];
	size_t tail_len;
	bool line_start;         /* the segment being read starts a line */
	uint64_t lit_left;
	uint64_t lit_bytes;      /* literal bytes of the current response */
	bool pending;            /* between connect and LOGIN's OK (the ramp) */
	bool measuring;          /* bulk/noop: inside the measurement window */
	bool started_unit;       /* full/resumed: this session counts as launched */
	struct sockaddr_in src;
	bool bind_src;
};

struct opts {
	enum mode mode;
	const char *host;
	const char *port;
	const char *user;
	const char *password;
	const char *mailbox;
	const char *sni;
	const char *ca;
	const char *ciphersuites;
	const char *groups;
	const char *label;
	bool starttls;
	bool no_idle;
	bool no_login;   /* full/resumed: greeting, then LOGOUT; idle: hold
	                  * after the greeting (no backend either way) */
	unsigned clients;
	double duration;
	uint64_t count;
	double hold;
	double timeout;
	unsigned ramp;
	unsigned sources;
	struct in_addr src_base;
	unsigned small_seq;
	unsigned big_seq;
	unsigned max_errors;
	pid_t cpu_pids[64];
	size_t ncpu_pids;
};

static struct opts O = {
	.mode = M_FULL,
	.host = "127.0.0.1",
	.port = "993",
	.user = "user11",
	.password = "pass11",
	.mailbox = "INBOX",
	.sni = "localhost",
	.ciphersuites = "TLS_AES_256_GCM_SHA384",
	.groups = "X25519",
	.label = "",
	.clients = 0,
	.duration = 10.0,
	.hold = 5.0,
	.timeout = 30.0,
	.ramp = 128,
	.sources = 0,
	.small_seq = 1,
	.big_seq = 2,
	.max_errors = 1000,
};

/* Run-wide state. */
static struct client *C;
static int ep = -1;
static int sigfd = -1;
static SSL_CTX *ctx;
static struct addrinfo *dst;
static double t_start, t_stop_at;   /* t_stop_at 0: no time bound yet */
static bool stopping;               /* no new units; finish and log out */
static bool aborting;               /* second signal: drop everything */
static unsigned n_pending;          /* clients between connect and LOGIN OK */
static unsigned n_live;             /* clients not CS_DONE */
static unsigned n_ready;            /* clients in CS_READY or CS_HOLD */
static unsigned n_measuring;
static bool released;               /* barrier released (bulk, noop) */
static bool announced;              /* idle: "established" printed */
static double t_established;
static uint64_t units_started, units_done;
static uint64_t sessions, handshakes, resumed, bytes, logged_out;
static unsigned established;
static uint64_t errors[E_COUNT];
static uint64_t nerrors;
static char first_error[256];
static uint64_t *lat_ns;
static size_t lat_n, lat_cap;
static double win_t0, win_t1;       /* measurement window (monotonic s) */
static double cpu0 = -1, cpu1 = -1;
static bool cpu_lost;
static bool win_open, win_closed;

static void client_start(struct client *c);
static void client_run(struct client *c);

static double
mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ig_loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Sum of utime+stime of the --cpu-pid processes, in seconds; -1 when one
 * of them is gone. */
static double
proxy_cpu(void)
{
	long tck = sysconf(_SC_CLK_TCK);
	unsigned long long sum = 0;
	for (size_t i = 0; i < O.ncpu_pids; i++) {
		char path[64], buf[2048];
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)O.cpu_pids[i]);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			return -1;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* Fields after the command name, which may hold spaces: state is
		 * field 3; utime and stime are fields 14 and 15. */
		char *p = strrchr(buf, ')');
		if (p == NULL)
			return -1;
		unsigned long long ut, st;
		if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		    &ut, &st) != 2)
			return -1;
		sum += ut + st;
	}
	return (double)sum / (double)(tck > 0 ? tck : 100);
}

static void
window_open(void)
{
	if (win_open)
		return;
	win_open = true;
	win_t0 = mono();
	if (O.ncpu_pids > 0)
		cpu0 = proxy_cpu();
}

static void
window_close(void)
{
	if (!win_open || win_closed)
		return;
	win_closed = true;
	win_t1 = mono();
	if (O.ncpu_pids > 0) {
		cpu1 = proxy_cpu();
		if (cpu0 < 0 || cpu1 < 0)
			cpu_lost = true;
	}
}

/* ---------------------------------------------------------------------- */
/* epoll registration */

static void
set_events(struct client *c, uint32_t ev)
{
	if (c->events == ev)
		return;
	struct epoll_event e = { .events = ev };
	e.data.u64 = ((uint64_t)c->gen << 32) | c->idx;
	int op = c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(ep, op, c->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->events = ev;
}

static void
ssl_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		snprintf(buf, len, "%s", errno != 0 ? strerror(errno) : "unexpected EOF");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* ---------------------------------------------------------------------- */
/* Client lifecycle */

static void
set_state(struct client *c, enum cstate st)
{
	bool was_ready = c->st == CS_READY || c->st == CS_HOLD;
	bool is_ready = st == CS_READY || st == CS_HOLD;
	if (c->st == CS_DONE && st != CS_DONE)
		n_live++;
	else if (c->st != CS_DONE && st == CS_DONE)
		n_live--;
	if (was_ready && !is_ready)
		n_ready--;
	else if (!was_ready && is_ready)
		n_ready++;
	c->st = st;
}

static void
pending_end(struct client *c)
{
	if (c->pending) {
		c->pending = false;
		n_pending--;
	}
}

/* Clients waiting to be started, in order (a ring of indexes). */
static uint32_t *waitq;
static size_t waitq_head, waitq_len;

static void
waitq_push(struct client *c)
{
	waitq[(waitq_head + waitq_len) % O.clients] = c->idx;
	waitq_len++;
}

static struct client *
waitq_pop(void)
{
	if (waitq_len == 0)
		return NULL;
	struct client *c = &C[waitq[waitq_head]];
	waitq_head = (waitq_head + 1) % O.clients;
	waitq_len--;
	return c;
}

static void
client_close_fd(struct client *c)
{
	pending_end(c);
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);  /* also removes it from the epoll set */
		c->fd = -1;
	}
	c->events = 0;
	c->deadline = 0;
}

static void
measuring_end(struct client *c)
{
	if (!c->measuring)
		return;
	c->measuring = false;
	if (--n_measuring == 0 && released)
		window_close();
}

/* After a finished session or a failure: start again (full, resumed) or be
 * done. */
static void
client_next(struct client *c)
{
	client_close_fd(c);
	bool again = (O.mode == M_FULL || O.mode == M_RESUMED) && !stopping && !aborting &&
	    (O.count == 0 || units_started < O.count);
	if (again) {
		set_state(c, CS_WAIT);
		waitq_push(c);  /* the main loop starts it (ramp) */
		return;
	}
	set_state(c, CS_DONE);
}

static void client_fail(struct client *c, enum errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
client_fail(struct client *c, enum errkind kind, const char *fmt, ...)
{
	errors[kind]++;
	nerrors++;
	if (first_error[0] == '\0') {
		char msg[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		snprintf(first_error, sizeof(first_error), "client %u: %s: %s", c->idx,
		    errkind_names[kind], msg);
	}
	measuring_end(c);
	c->started_unit = false;
	client_next(c);
	if (nerrors >= O.max_errors && !stopping) {
		fprintf(stderr, "ig_loadgen: %" PRIu64 " errors, stopping (first: %s)\n",
		    nerrors, first_error);
		stopping = true;
	}
}

static int queue_cmd(struct client *c, enum step step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
queue_cmd(struct client *c, enum step step, const char *fmt, ...)
{
	char body[400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(body))
		die("command too long");
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagno);
	n = snprintf(c->out, sizeof(c->out), "%s %s\r\n", c->tag, body);
	if (n < 0 || (size_t)n >= sizeof(c->out))
		die("command too long");
	c->out_len = (size_t)n;
	c->out_off = 0;
	c->step = step;
	c->lit_bytes = 0;
	c->t_sent_ns = mono_ns();
	c->deadline = mono() + O.timeout;
	return 0;
}

static void
queue_raw(struct client *c, enum step step, const char *text)
{
	size_t n = strlen(text);
	memcpy(c->out, text, n);
	c->out_len = n;
	c->out_off = 0;
	c->step = step;
	c->deadline = mono() + O.timeout;
}

/* An IMAP quoted string for LOGIN (user names and passwords of the bench
 * are plain; quotes and backslashes are escaped anyway). */
static void
quote(char *dst_, size_t len, const char *s)
{
	size_t j = 0;
	dst_[j++] = '"';
	for (; *s != '\0' && j + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			dst_[j++] = '\\';
		dst_[j++] = *s;
	}
	dst_[j++] = '"';
	dst_[j] = '\0';
}

static void
queue_login(struct client *c)
{
	char u[160], p[160];
	quote(u, sizeof(u), O.user);
	quote(p, sizeof(p), O.password);
	queue_cmd(c, ST_LOGIN, "LOGIN %s %s", u, p);
}

static void
queue_logout(struct client *c)
{
	measuring_end(c);
	queue_cmd(c, ST_LOGOUT, "LOGOUT");
}

/* The next unit of work of a logged-in bulk or noop client, or LOGOUT. */
static void
queue_work(struct client *c)
{
	if (stopping || aborting || (O.count > 0 && units_started >= O.count)) {
		queue_logout(c);
		return;
	}
	units_started++;
	if (O.mode == M_BULK)
		queue_cmd(c, ST_FETCH_BIG, "FETCH %u BODY[]", O.big_seq);
	else
		queue_cmd(c, ST_NOOP, "NOOP");
}

static void
lat_add(uint64_t ns)
{
	if (lat_n == lat_cap) {
		size_t cap = lat_cap ? lat_cap * 2 : 65536;
		uint64_t *p = realloc(lat_ns, cap * sizeof(*p));
		if (p == NULL)
			die("out of memory");
		lat_ns = p;
		lat_cap = cap;
	}
	lat_ns[lat_n++] = ns;
}

/* A tagged OK for the current step: move on. Returns -1 when the client
 * was closed or parked (stop parsing), 0 to go on. */
static int
step_ok(struct client *c)
{
	switch (c->step) {
	case ST_GREETING:
		if (O.starttls && c->ssl == NULL) {
			queue_cmd(c, ST_STARTTLS, "STARTTLS");
			return 0;
		}
		if (O.no_login && (O.mode == M_FULL || O.mode == M_RESUMED)) {
			pending_end(c);
			queue_logout(c);
			return 0;
		}
		if (O.no_login && O.mode == M_IDLE) {
			/* A not-authenticated session, held: the proxy's
			 * cost alone (handshake done, greeting sent). */
			pending_end(c);
			if (stopping) {
				queue_logout(c);
				return 0;
			}
			c->deadline = 0;
			set_state(c, CS_HOLD);
			return -1;
		}
		queue_login(c);
		return 0;
	case ST_STARTTLS:
		/* The handshake starts right after the tagged OK's CRLF. */
		c->out_len = c->out_off = 0;
		set_state(c, CS_HANDSHAKE);
		return -1;
	case ST_LOGIN:
		pending_end(c);
		queue_cmd(c, ST_SELECT, "SELECT %s", O.mailbox);
		return 0;
	case ST_SELECT:
		switch (O.mode) {
		case M_FULL:
		case M_RESUMED:
			queue_cmd(c, ST_FETCH_SMALL, "FETCH %u BODY[]", O.small_seq);
			return 0;
		case M_BULK:
		case M_NOOP:
			if (stopping) {
				queue_logout(c);
				return 0;
			}
			c->deadline = 0;
			set_state(c, CS_READY);
			return -1;
		case M_IDLE:
			if (stopping) {
				queue_logout(c);
				return 0;
			}
			if (O.no_idle) {
				c->deadline = 0;
				set_state(c, CS_HOLD);
				return -1;
			}
			queue_cmd(c, ST_IDLE, "IDLE");
			return 0;
		case M_COUNT:
			break;
		}
		return 0;
	case ST_FETCH_SMALL:
		bytes += c->lit_bytes;
		queue_logout(c);
		return 0;
	case ST_FETCH_BIG:
	case ST_NOOP:
		units_done++;
		if (c->step == ST_FETCH_BIG)
			bytes += c->lit_bytes;
		else
			lat_add(mono_ns() - c->t_sent_ns);
		queue_work(c);
		return 0;
	case ST_IDLE:       /* the server ended IDLE on its own */
		client_fail(c, E_IMAP, "IDLE ended by the server");
		return -1;
	case ST_IDLE_DONE:
		queue_logout(c);
		return 0;
	case ST_LOGOUT:
		c->deadline = mono() + O.timeout;
		set_state(c, CS_CLOSING);
		return -1;
	case ST_COUNT:
		break;
	}
	return 0;
}

/* One complete response line (its first bytes in c->pre). Returns -1 when
 * the client was closed or changed state (stop parsing), 0 to go on. */
static int
on_line(struct client *c)
{
	const char *l = c->pre;
	size_t n = c->pre_len;
	while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r'))
		n--;
	char line[sizeof(c->pre)];
	memcpy(line, l, n);
	line[n] = '\0';

	if (c->step == ST_GREETING) {
		if (strncmp(line, "* OK", 4) == 0)
			return step_ok(c);
		client_fail(c, E_IMAP, "greeting: %.100s", line);
		return -1;
	}
	if (c->step == ST_IDLE && line[0] == '+') {
		c->deadline = 0;
		set_state(c, CS_HOLD);
		return -1;
	}
	size_t tl = strlen(c->tag);
	if (strncmp(line, c->tag, tl) == 0 && line[tl] == ' ') {
		if (strncmp(line + tl + 1, "OK", 2) == 0)
			return step_ok(c);
		client_fail(c, E_IMAP, "%s: %.100s", step_names[c->step], line);
		return -1;
	}
	if (strncmp(line, "* BYE", 5) == 0 && c->step != ST_LOGOUT) {
		client_fail(c, E_CLOSED, "%s: %.100s", step_names[c->step], line);
		return -1;
	}
	/* Other untagged data: nothing to do. */
	return 0;
}

/* If the segment ending with LF announces a literal ("{N}\r\n" or
 * "{N+}\r\n"), returns true with its size. */
static bool
literal_at_end(const struct client *c, uint64_t *size)
{
	const char *t = c->tail;
	size_t n = c->tail_len;
	if (n < 4 || t[n - 1] != '\n' || t[n - 2] != '\r' || t[n - 3] != '}')
		return false;
	size_t i = n - 3;
	if (i > 0 && t[i - 1] == '+')
		i--;
	size_t end = i;
	while (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9')
		i--;
	if (i == 0 || t[i - 1] != '{' || i == end || end - i > 19)
		return false;
	uint64_t v = 0;
	for (size_t k = i; k < end; k++)
		v = v * 10 + (uint64_t)(t[k] - '0');
	*size = v;
	return true;
}

/* Feeds response bytes to the parser. Returns -1 when the client was closed
 * or changed state (the rest of buf is dropped), 0 otherwise. */
static int
feed(struct client *c, const unsigned char *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (c->lit_left > 0) {
			size_t m = len - i;
			if ((uint64_t)m > c->lit_left)
				m = (size_t)c->lit_left;
			c->lit_left -= m;
			c->lit_bytes += m;
			i += m;
			continue;
		}
		const unsigned char *lf = memchr(buf + i, '\n', len - i);
		size_t seg = lf != NULL ? (size_t)(lf - (buf + i)) + 1 : len - i;
		size_t room = sizeof(c->pre) - 1 - c->pre_len;
		size_t cp = seg < room ? seg : room;
		memcpy(c->pre + c->pre_len, buf + i, cp);
		c->pre_len += cp;
		/* Keep the last bytes of the line for the literal check. */
		if (seg >= sizeof(c->tail)) {
			memcpy(c->tail, buf + i + seg - sizeof(c->tail), sizeof(c->tail));
			c->tail_len = sizeof(c->tail);
		} else {
			size_t keep = sizeof(c->tail) - seg;
			if (c->tail_len > keep) {
				memmove(c->tail, c->tail + (c->tail_len - keep), keep);
				c->tail_len = keep;
			}
			memcpy(c->tail + c->tail_len, buf + i, seg);
			c->tail_len += seg;
		}
		i += seg;
		if (lf == NULL)
			break;
		uint64_t lit;
		bool start = c->line_start;
		if (literal_at_end(c, &lit)) {
			c->lit_left = lit;
			c->line_start = false;  /* the line goes on after the literal */
		} else {
			c->line_start = true;
		}
		int rc = 0;
		if (start && c->lit_left == 0)
			rc = on_line(c);
		c->pre_len = 0;
		c->tail_len = 0;
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* I/O steps. Each returns 1 on progress, 0 when blocked (events set), -1
 * when the client was closed or changed state. */

static int
ssl_want(struct client *c, int ret, const char *what)
{
	int err = SSL_get_error(c->ssl, ret);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		set_events(c, EPOLLIN);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		set_events(c, EPOLLOUT);
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		break;
	case SSL_ERROR_SYSCALL:
	case SSL_ERROR_SSL: {
		char msg[160];
		ssl_errstr(msg, sizeof(msg));
		if (c->st == CS_CLOSING) {
			/* After LOGOUT a reset or a bare FIN still ends the session. */
			break;
		}
		client_fail(c, c->st == CS_HANDSHAKE ? E_TLS : E_CLOSED, "%s: %s", what, msg);
		return -1;
	}
	default:
		client_fail(c, E_TLS, "%s: SSL error %d", what, err);
		return -1;
	}
	/* The server closed. */
	ERR_clear_error();
	if (c->st == CS_CLOSING) {
		/* A clean end: without this, SSL_free() marks the session (the
		 * newest ticket, in TLS 1.3) as not resumable. Nothing is sent:
		 * the server has closed already. */
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		logged_out++;
		if (O.mode == M_FULL || O.mode == M_RESUMED) {
			sessions++;
			if (c->started_unit)
				units_done++;
			c->started_unit = false;
		}
		client_next(c);
		return -1;
	}
	client_fail(c, E_CLOSED, "%s: connection closed by the server (waiting for %s)", what,
	    step_names[c->step]);
	return -1;
}

static unsigned char rbuf[65536];

static int
do_connecting(struct client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY) {
		set_events(c, EPOLLOUT);
		return 0;
	}
	if (err != 0) {
		client_fail(c, E_CONNECT, "connect: %s", strerror(err));
		return -1;
	}
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	if (getpeername(c->fd, (struct sockaddr *)&peer, &plen) < 0) {
		set_events(c, EPOLLOUT);  /* still connecting */
		return 0;
	}
	c->deadline = mono() + O.timeout;
	c->step = ST_GREETING;
	if (O.starttls) {
		set_state(c, CS_PLAIN);
	} else {
		set_state(c, CS_HANDSHAKE);
	}
	return 1;
}

static int
do_plain(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			set_events(c, EPOLLOUT);
			return 0;
		}
		if (n < 0) {
			client_fail(c, E_CLOSED, "send: %s", strerror(errno));
			return -1;
		}
		c->out_off += (size_t)n;
	}
	ssize_t n = recv(c->fd, rbuf, sizeof(rbuf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		set_events(c, EPOLLIN);
		return 0;
	}
	if (n <= 0) {
		client_fail(c, E_CLOSED, "cleartext %s: %s", step_names[c->step],
		    n == 0 ? "connection closed" : strerror(errno));
		return -1;
	}
	return feed(c, rbuf, (size_t)n) < 0 ? -1 : 1;
}

static int
do_handshake(struct client *c)
{
	if (c->ssl == NULL) {
		c->ssl = SSL_new(ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
			die("SSL_new failed");
		SSL_set_app_data(c->ssl, c);
		SSL_set_tlsext_host_name(c->ssl, O.sni);
		if (O.ca != NULL)
			SSL_set1_host(c->ssl, O.sni);
		if (O.mode == M_RESUMED && c->ticket != NULL)
			SSL_set_session(c->ssl, c->ticket);
		c->deadline = mono() + O.timeout;
	}
	ERR_clear_error();
	int r = SSL_connect(c->ssl);
	if (r != 1)
		return ssl_want(c, r, "handshake");
	handshakes++;
	if (SSL_session_reused(c->ssl))
		resumed++;
	c->line_start = true;
	c->pre_len = c->tail_len = 0;
	c->lit_left = 0;
	set_state(c, CS_TLS);
	if (O.starttls)
		queue_login(c);  /* no second greeting after STARTTLS */
	else
		c->step = ST_GREETING;
	return 1;
}

static int
do_tls(struct client *c)
{
	while (c->out_off < c->out_len) {
		ERR_clear_error();
		int r = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
		if (r <= 0)
			return ssl_want(c, r, step_names[c->step]);
		c->out_off += (size_t)r;
	}
	ERR_clear_error();
	int r = SSL_read(c->ssl, rbuf, (int)sizeof(rbuf));
	if (r <= 0)
		return ssl_want(c, r, step_names[c->step]);
	return feed(c, rbuf, (size_t)r) < 0 ? -1 : 1;
}

static void
client_run(struct client *c)
{
	for (;;) {
		int rc = 0; /* (every state is handled below) */
		switch (c->st) {
		case CS_CONNECTING:
			rc = do_connecting(c);
			break;
		case CS_PLAIN:
			rc = do_plain(c);
			break;
		case CS_HANDSHAKE:
			rc = do_handshake(c);
			break;
		case CS_TLS:
		case CS_READY:    /* read too: untagged data, or a close */
		case CS_HOLD:
		case CS_CLOSING:
			rc = do_tls(c);
			break;
		case CS_WAIT:
		case CS_DONE:
		case CS_COUNT:
			return;
		}
		if (rc == 0)
			return;
		/* rc -1: the state changed (parked, handshake next, closed):
		 * run again, the switch sorts it out. */
		if (c->fd < 0)
			return;
	}
}

static void
client_start(struct client *c)
{
	c->gen++;
	c->fd = socket(dst->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		client_fail(c, E_CONNECT, "socket: %s", strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->bind_src) {
		/* The port is chosen at connect() time, per destination. */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&c->src, sizeof(c->src)) < 0) {
			char a[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &c->src.sin_addr, a, sizeof(a));
			client_fail(c, E_CONNECT, "bind %s: %s", a, strerror(errno));
			return;
		}
	}
	c->ssl = NULL;
	c->out_len = c->out_off = 0;
	c->tagno = 0;
	c->tag[0] = '\0';
	c->line_start = true;
	c->pre_len = c->tail_len = 0;
	c->lit_left = 0;
	c->step = ST_GREETING;
	c->deadline = mono() + O.timeout;
	if (O.mode == M_FULL || O.mode == M_RESUMED) {
		units_started++;
		c->started_unit = true;
	}
	set_state(c, CS_CONNECTING);
	c->pending = true;
	n_pending++;
	if (connect(c->fd, dst->ai_addr, dst->ai_addrlen) < 0 && errno != EINPROGRESS) {
		client_fail(c, E_CONNECT, "connect: %s", strerror(errno));
		return;
	}
	set_events(c, EPOLLOUT);
}

/* Resumed mode: OpenSSL hands over each ticket the server sends. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct client *c = SSL_get_app_data(ssl);
	if (c == NULL || O.mode != M_RESUMED)
		return 0;
	if (c->ticket != NULL)
		SSL_SESSION_free(c->ticket);
	c->ticket = sess;
	return 1;  /* we keep the reference */
}

/* ---------------------------------------------------------------------- */

static void
setup_tls(void)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		die("SSL_CTX_new failed");
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
		die("TLS 1.3 not available");
	if (SSL_CTX_set_ciphersuites(ctx, O.ciphersuites) != 1)
		die("bad --ciphersuites %s", O.ciphersuites);
	if (SSL_CTX_set1_groups_list(ctx, O.groups) != 1)
		die("bad --groups %s", O.groups);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (O.ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, O.ca, NULL) != 1)
			die("cannot load --ca %s", O.ca);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (O.mode == M_RESUMED) {
		SSL_CTX_set_session_cache_mode(ctx,
		    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
}

static void
setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask: %s", strerror(errno));
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0)
		die("signalfd: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	struct epoll_event e = { .events = EPOLLIN };
	e.data.u64 = UINT32_MAX;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sigfd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void
raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)O.clients + 64)
		die("open files limit %llu is below --clients %u + 64",
		    (unsigned long long)rl.rlim_cur, O.clients);
}

/* Client i's source address: --src-base + i modulo --sources, over
 * 127.0.0.0/8 (last octets 0 and 255 skipped). */
static void
source_addr(unsigned i, struct sockaddr_in *sa)
{
	uint32_t base = ntohl(O.src_base.s_addr);
	uint32_t a = base;
	unsigned k = O.sources > 0 ? i % O.sources : 0;
	for (unsigned step = 0; step < k; step++) {
		a++;
		if ((a & 0xff) == 0xff)
			a += 2;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(a);
}

static void
handle_signal(void)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			stopping = true;
			continue;
		}
		if (stopping && si.ssi_signo != SIGUSR1)
			aborting = true;
		stopping = true;
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double
pct_us(double p)
{
	if (lat_n == 0)
		return 0;
	size_t k = (size_t)(p * (double)(lat_n - 1) + 0.5);
	return (double)lat_ns[k] / 1000.0;
}

static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static int
report(void)
{
	double wall = win_closed ? win_t1 - win_t0 : mono() - t_start;
	double cpu = (cpu0 >= 0 && cpu1 >= 0 && !cpu_lost) ? cpu1 - cpu0 : -1;
	uint64_t units = units_done;
	if (O.mode == M_IDLE)
		units = established;
	double mib = (double)bytes / (1024.0 * 1024.0);
	if (lat_n > 0)
		qsort(lat_ns, lat_n, sizeof(*lat_ns), cmp_u64);

	FILE *f = stdout;
	fprintf(f, "{\"mode\":\"%s\",\"label\":", mode_names[O.mode]);
	json_str(f, O.label);
	fprintf(f, ",\"host\":");
	json_str(f, O.host);
	fprintf(f, ",\"port\":");
	json_str(f, O.port);
	fprintf(f, ",\"starttls\":%s,\"clients\":%u,\"wall_s\":%.3f,\"units\":%" PRIu64
	    ",\"units_per_s\":%.1f,\"sessions\":%" PRIu64 ",\"handshakes\":%" PRIu64
	    ",\"resumed\":%" PRIu64 ",\"resumed_pct\":%.1f,\"logged_out\":%" PRIu64
	    ",\"bytes\":%" PRIu64 ",\"mib\":%.1f",
	    O.starttls ? "true" : "false", O.clients, wall, units,
	    wall > 0 ? (double)units / wall : 0.0, sessions, handshakes, resumed,
	    handshakes > 0 ? 100.0 * (double)resumed / (double)handshakes : 0.0, logged_out,
	    bytes, mib);
	if (O.mode == M_NOOP)
		fprintf(f, ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f", pct_us(0.50),
		    pct_us(0.90), pct_us(0.99));
	if (O.mode == M_IDLE)
		fprintf(f, ",\"established\":%u,\"establish_s\":%.3f", established,
		    announced ? t_established - t_start : -1.0);
	if (O.ncpu_pids > 0) {
		fprintf(f, ",\"proxy_cpu_s\":%.2f", cpu);
		if (cpu > 0)
			fprintf(f, ",\"units_per_cpu_s\":%.1f", (double)units / cpu);
		if (cpu > 0 && O.mode == M_BULK)
			fprintf(f, ",\"mib_per_cpu_s\":%.1f", mib / cpu);
	}
	fprintf(f, ",\"errors\":%" PRIu64 ",\"error_kinds\":{", nerrors);
	for (int k = 0; k < E_COUNT; k++)
		fprintf(f, "%s\"%s\":%" PRIu64, k ? "," : "", errkind_names[k], errors[k]);
	fprintf(f, "},\"first_error\":");
	json_str(f, first_error);
	fprintf(f, "}\n");
	fflush(f);

	fprintf(stderr, "ig_loadgen %s %s%s:%s: %" PRIu64 " units in %.2fs (%.1f/s)", mode_names[O.mode],
	    O.starttls ? "starttls " : "", O.host, O.port, units, wall,
	    wall > 0 ? (double)units / wall : 0.0);
	if (O.mode == M_RESUMED)
		fprintf(stderr, ", %" PRIu64 "/%" PRIu64 " handshakes resumed", resumed, handshakes);
	if (O.mode == M_BULK)
		fprintf(stderr, ", %.1f MiB (%.1f MiB/s)", mib, wall > 0 ? mib / wall : 0.0);
	if (O.mode == M_NOOP)
		fprintf(stderr, ", p50 %.1fus p90 %.1fus p99 %.1fus", pct_us(0.5), pct_us(0.9),
		    pct_us(0.99));
	if (cpu >= 0)
		fprintf(stderr, ", proxy CPU %.2fs", cpu);
	fprintf(stderr, ", %" PRIu64 " errors%s%s\n", nerrors, nerrors ? ": " : "", first_error);

	bool ok = nerrors == 0 && units > 0 && !cpu_lost;
	if (O.mode == M_IDLE)
		ok = nerrors == 0 && announced && logged_out == established && !cpu_lost;
	return ok ? 0 : 1;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: ig_loadgen MODE [options]     MODE: full | resumed | bulk | noop | idle\n"
	    "  -H, --host ADDR          server address (default 127.0.0.1)\n"
	    "  -p, --port PORT          server port (default 993)\n"
	    "      --starttls           cleartext greeting, then STARTTLS (default implicit TLS)\n"
	    "  -u, --user NAME          (default user11)\n"
	    "  -w, --password PASS      (default pass11)\n"
	    "  -c, --clients N          concurrent clients; idle: sessions (default 50;\n"
	    "                           noop 1; idle 1000)\n"
	    "  -d, --duration SECONDS   run time for full, resumed, bulk, noop (default 10)\n"
	    "  -n, --count N            stop after N units instead (sessions, fetches, NOOPs)\n"
	    "      --hold SECONDS       idle: hold after all are established (default 5;\n"
	    "                           0 = until SIGUSR1, SIGINT or SIGTERM)\n"
	    "      --no-idle            idle: hold without sending IDLE\n"
	    "      --no-login           full, resumed: greeting, then LOGOUT: the proxy's\n"
	    "                           handshakes alone, no backend work; idle: hold\n"
	    "                           not-authenticated sessions after the greeting\n"
	    "      --sources N          bind clients to N source addresses from --src-base\n"
	    "                           (default: one per client for idle, 0 = no bind otherwise)\n"
	    "      --src-base ADDR      first source address (default 127.1.0.1)\n"
	    "      --ramp N             at most N clients connecting or logging in (default 128)\n"
	    "      --timeout SECONDS    per step (default 30)\n"
	    "      --small SEQ          message FETCHed by full/resumed (default 1)\n"
	    "      --big SEQ            message FETCHed by bulk (default 2)\n"
	    "      --mailbox NAME       (default INBOX)\n"
	    "      --sni NAME           (default localhost)\n"
	    "      --ca FILE            verify the server certificate against FILE\n"
	    "      --ciphersuites LIST  TLS 1.3 suites (default TLS_AES_256_GCM_SHA384)\n"
	    "      --groups LIST        key exchange groups (default X25519)\n"
	    "      --cpu-pid PID        measure this process's CPU time (repeatable)\n"
	    "      --max-errors N       stop after N errors (default 1000)\n"
	    "      --label TEXT         copied into the JSON line\n");
	exit(2);
}

static double
parse_num(const char *s, const char *what, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("bad %s: %s", what, s);
	return v;
}

static void
parse_args(int argc, char **argv)
{
	enum {
		OPT_STARTTLS = 256, OPT_HOLD, OPT_NOIDLE, OPT_SOURCES, OPT_SRCBASE, OPT_RAMP,
		OPT_TIMEOUT, OPT_SMALL, OPT_BIG, OPT_MAILBOX, OPT_SNI, OPT_CA, OPT_SUITES,
		OPT_GROUPS, OPT_CPUPID, OPT_MAXERR, OPT_LABEL, OPT_NOLOGIN,
	};
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "starttls", no_argument, NULL, OPT_STARTTLS },
		{ "user", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'w' },
		{ "clients", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'n' },
		{ "hold", required_argument, NULL, OPT_HOLD },
		{ "no-idle", no_argument, NULL, OPT_NOIDLE },
		{ "no-login", no_argument, NULL, OPT_NOLOGIN },
		{ "sources", required_argument, NULL, OPT_SOURCES },
		{ "src-base", required_argument, NULL, OPT_SRCBASE },
		{ "ramp", required_argument, NULL, OPT_RAMP },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "small", required_argument, NULL, OPT_SMALL },
		{ "big", required_argument, NULL, OPT_BIG },
		{ "mailbox", required_argument, NULL, OPT_MAILBOX },
		{ "sni", required_argument, NULL, OPT_SNI },
		{ "ca", required_argument, NULL, OPT_CA },
		{ "ciphersuites", required_argument, NULL, OPT_SUITES },
		{ "groups", required_argument, NULL, OPT_GROUPS },
		{ "cpu-pid", required_argument, NULL, OPT_CPUPID },
		{ "max-errors", required_argument, NULL, OPT_MAXERR },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2 || argv[1][0] == '-')
		usage();
	int m;
	for (m = 0; m < M_COUNT; m++)
		if (strcmp(argv[1], mode_names[m]) == 0)
			break;
	if (m == M_COUNT)
		usage();
	O.mode = (enum mode)m;
	int sources = -1;
	inet_pton(AF_INET, "127.1.0.1", &O.src_base);
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "H:p:u:w:c:d:n:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': O.host = optarg; break;
		case 'p': O.port = optarg; break;
		case 'u': O.user = optarg; break;
		case 'w': O.password = optarg; break;
		case 'c': O.clients = (unsigned)parse_num(optarg, "--clients", 1, 1000000); break;
		case 'd': O.duration = parse_num(optarg, "--duration", 0.01, 86400); break;
		case 'n': O.count = (uint64_t)parse_num(optarg, "--count", 1, 1e15); break;
		case OPT_STARTTLS: O.starttls = true; break;
		case OPT_HOLD: O.hold = parse_num(optarg, "--hold", 0, 86400); break;
		case OPT_NOIDLE: O.no_idle = true; break;
		case OPT_NOLOGIN: O.no_login = true; break;
		case OPT_SOURCES: sources = (int)parse_num(optarg, "--sources", 0, 16000000); break;
		case OPT_SRCBASE:
			if (inet_pton(AF_INET, optarg, &O.src_base) != 1 ||
			    (ntohl(O.src_base.s_addr) >> 24) != 127)
				die("--src-base must be an address in 127.0.0.0/8");
			break;
		case OPT_RAMP: O.ramp = (unsigned)parse_num(optarg, "--ramp", 1, 1000000); break;
		case OPT_TIMEOUT: O.timeout = parse_num(optarg, "--timeout", 0.1, 3600); break;
		case OPT_SMALL: O.small_seq = (unsigned)parse_num(optarg, "--small", 1, 1e9); break;
		case OPT_BIG: O.big_seq = (unsigned)parse_num(optarg, "--big", 1, 1e9); break;
		case OPT_MAILBOX: O.mailbox = optarg; break;
		case OPT_SNI: O.sni = optarg; break;
		case OPT_CA: O.ca = optarg; break;
		case OPT_SUITES: O.ciphersuites = optarg; break;
		case OPT_GROUPS: O.groups = optarg; break;
		case OPT_CPUPID:
			if (O.ncpu_pids == sizeof(O.cpu_pids) / sizeof(O.cpu_pids[0]))
				die("too many --cpu-pid");
			O.cpu_pids[O.ncpu_pids++] = (pid_t)parse_num(optarg, "--cpu-pid", 1, INT_MAX);
			break;
		case OPT_MAXERR: O.max_errors = (unsigned)parse_num(optarg, "--max-errors", 1, 1e9); break;
		case OPT_LABEL: O.label = optarg; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (O.clients == 0)
		O.clients = O.mode == M_NOOP ? 1 : O.mode == M_IDLE ? 1000 : 50;
	if (sources < 0)
		sources = O.mode == M_IDLE ? (int)O.clients : 0;
	O.sources = (unsigned)sources;
	if (strlen(O.mailbox) > 200 || strpbrk(O.mailbox, " \r\n\"") != NULL)
		die("--mailbox must be an atom");
}

int
main(int argc, char **argv)
{
	parse_args(argc, argv);
	raise_nofile();

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	int gai = getaddrinfo(O.host, O.port, &hints, &dst);
	if (gai != 0)
		die("%s:%s: %s", O.host, O.port, gai_strerror(gai));
	if (O.sources > 0 && dst->ai_family != AF_INET)
		die("--sources needs an IPv4 server address");

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	setup_signals();
	setup_tls();

	C = calloc(O.clients, sizeof(*C));
	waitq = calloc(O.clients, sizeof(*waitq));
	if (C == NULL || waitq == NULL)
		die("out of memory");
	for (unsigned i = 0; i < O.clients; i++) {
		C[i].idx = i;
		C[i].fd = -1;
		C[i].st = CS_WAIT;
		if (O.sources > 0) {
			source_addr(i, &C[i].src);
			C[i].bind_src = true;
		}
		waitq_push(&C[i]);
	}
	n_live = O.clients;

	t_start = mono();
	if (O.mode == M_FULL || O.mode == M_RESUMED || O.mode == M_IDLE)
		window_open();
	if (O.count == 0 && (O.mode == M_FULL || O.mode == M_RESUMED))
		t_stop_at = t_start + O.duration;

	struct epoll_event evs[256];
	double next_scan = 0;
	bool aborted = false;
	while (n_live > 0) {
		/* Start waiting clients, at most --ramp between connect and login. */
		while (!stopping && n_pending < O.ramp) {
			if (O.count > 0 && (O.mode == M_FULL || O.mode == M_RESUMED) &&
			    units_started >= O.count)
				break;
			struct client *c = waitq_pop();
			if (c == NULL)
				break;
			client_start(c);  /* runs once connect() is done (EPOLLOUT) */
		}
		int n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 20);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			if (d == UINT32_MAX) {
				handle_signal();
				continue;
			}
			struct client *c = &C[(uint32_t)d];
			if ((uint32_t)(d >> 32) != c->gen || c->fd < 0)
				continue;  /* an event for a connection already closed */
			client_run(c);
		}
		double now = mono();

		/* Barrier (bulk, noop): everyone logged in, measure from here. */
		if ((O.mode == M_BULK || O.mode == M_NOOP) && !released && !stopping &&
		    n_ready > 0 && n_ready == n_live) {
			released = true;
			window_open();
			t_stop_at = O.count == 0 ? now + O.duration : 0;
			for (unsigned i = 0; i < O.clients; i++) {
				struct client *c = &C[i];
				if (c->st != CS_READY)
					continue;
				c->measuring = true;
				n_measuring++;
				set_state(c, CS_TLS);
				queue_work(c);
				client_run(c);
			}
			if (n_measuring == 0)
				window_close();
		}
		/* Idle: everyone in; say so once, then hold. */
		if (O.mode == M_IDLE && !announced && !stopping && n_ready > 0 &&
		    n_ready == n_live) {
			announced = true;
			established = n_ready;
			t_established = now;
			window_close();
			printf("established %u\n", n_ready);
			fflush(stdout);
			if (O.hold > 0)
				t_stop_at = now + O.hold;
		}
		if (t_stop_at > 0 && now >= t_stop_at)
			stopping = true;

		if (stopping) {
			/* Nobody new starts; parked clients leave IDLE or log out. */
			while (waitq_pop() != NULL)
				;
			for (unsigned i = 0; i < O.clients && n_ready > 0; i++) {
				struct client *c = &C[i];
				if (c->st != CS_READY && c->st != CS_HOLD)
					continue;
				set_state(c, CS_TLS);
				if (c->step == ST_IDLE)
					queue_raw(c, ST_IDLE_DONE, "DONE\r\n");
				else
					queue_logout(c);
				client_run(c);
			}
			for (unsigned i = 0; i < O.clients; i++)
				if (C[i].st == CS_WAIT)
					set_state(&C[i], CS_DONE);
		}
		if (aborting && !aborted) {
			aborted = true;
			for (unsigned i = 0; i < O.clients; i++) {
				struct client *c = &C[i];
				if (c->fd >= 0)
					client_fail(c, E_TIMEOUT, "aborted by a second signal");
			}
		}
		if (now >= next_scan) {
			next_scan = now + 0.1;
			for (unsigned i = 0; i < O.clients; i++) {
				struct client *c = &C[i];
				if (c->fd >= 0 && c->deadline > 0 && now > c->deadline)
					client_fail(c, E_TIMEOUT, "no answer within %.1fs (%s)", O.timeout,
					    step_names[c->step]);
			}
		}
	}
	window_close();

	int rc = report();
	for (unsigned i = 0; i < O.clients; i++)
		if (C[i].ticket != NULL)
			SSL_SESSION_free(C[i].ticket);
	free(C);
	free(waitq);
	free(lat_ns);
	SSL_CTX_free(ctx);
	freeaddrinfo(dst);
	close(sigfd);
	close(ep);
	return rc;
}
