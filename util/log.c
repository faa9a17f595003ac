#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "util/err.h"

/* Process-wide settings: written at start-up and on reload only. */
static _Atomic int log_level = IG_LOG_INFO;
static _Atomic int log_format = IG_LOG_TEXT;

/*
 * The output. log_fd is fixed once ig_log_open() ran (on the main thread,
 * before any other thread exists); a reopen dup2()s the new file onto that
 * number, so writers never see a closed or reused descriptor.
 */
static int log_fd = STDERR_FILENO;
static bool log_syslog;
static char log_file[PATH_MAX];   /* "" unless the output is a file */

/* log.redact_users: the HMAC key is set before the flag is (release). */
static _Atomic bool log_redact;
static uint8_t log_key[IG_LOG_KEY_MAX];
static size_t log_key_len;
static _Atomic bool log_key_set;

#define LOG_LINE_MAX 4096 /* key=value text of one line */
#define LOG_JSON_MAX 8192 /* the same line as JSON (escapes grow it) */

void
ig_log_set_level(enum ig_log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum ig_log_level
ig_log_get_level(void)
{
	return (enum ig_log_level)atomic_load(&log_level);
}

#define CASE(x, s) case x: return s
const char *
ig_log_level_str(enum ig_log_level level)
{
	switch (level) {
	CASE(IG_LOG_ERROR, "error");
	CASE(IG_LOG_WARN, "warn");
	CASE(IG_LOG_INFO, "info");
	CASE(IG_LOG_DEBUG, "debug");
	case IG_LOG_LEVEL_COUNT:
		break;
	}
	return "?";
}
#undef CASE

#define CASE(x, s) case x: return s
const char *
ig_log_format_str(enum ig_log_format f)
{
	switch (f) {
	CASE(IG_LOG_TEXT, "text");
	CASE(IG_LOG_JSON, "json");
	case IG_LOG_FORMAT_COUNT:
		break;
	}
	return "?";
}
#undef CASE

void
ig_log_set_format(enum ig_log_format f)
{
	atomic_store(&log_format, (int)f);
}

static int
log_open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int
ig_log_open(const char *target)
{
	if (target == NULL || target[0] == '\0')
		return 0;
	if (strcmp(target, "syslog") == 0) {
		openlog("imapguard", LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_syslog = true;
		return 0;
	}
	if (strlen(target) >= sizeof(log_file)) {
		errno = ENAMETOOLONG;
		return IG_EIO;
	}
	int fd = log_open_file(target);
	if (fd < 0)
		return IG_EIO;
	snprintf(log_file, sizeof(log_file), "%s", target);
	log_fd = fd;
	return 0;
}

int
ig_log_reopen(void)
{
	if (log_file[0] == '\0')
		return 0;
	int fd = log_open_file(log_file);
	if (fd < 0)
		return IG_EIO;
	int rc = 0;
	if (fd != log_fd) {
		while ((rc = dup2(fd, log_fd)) < 0 && errno == EINTR)
			;
		int e = errno;
		close(fd);
		errno = e;
	}
	return rc < 0 ? IG_EIO : 0;
}

const char *
ig_log_path(void)
{
	return log_file[0] != '\0' ? log_file : NULL;
}

int
ig_log_set_redact(bool on, const uint8_t *key, size_t len)
{
	if (key != NULL) {
		if (len == 0 || len > sizeof(log_key))
			return IG_EINVAL;
		memcpy(log_key, key, len);
		log_key_len = len;
		atomic_store(&log_key_set, true);
	} else if (on && !atomic_load(&log_key_set)) {
		if (getrandom(log_key, 32, 0) != 32)
			return IG_EIO;
		log_key_len = 32;
		atomic_store(&log_key_set, true);
	}
	atomic_store(&log_redact, on);
	return 0;
}

/* A name printed bare cannot end its value early or start another field. */
static bool
log_bare_ok(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
			return false;
	}
	return true;
}

/* s bare when it can be, else quoted and escaped. */
static char *
log_show(const char *s, char *out, size_t outsz)
{
	if (log_bare_ok(s)) {
		snprintf(out, outsz, "%s", s);
		return out;
	}
	if (outsz < 3)
		return out;
	out[0] = '"';
	ig_log_escape((const uint8_t *)s, strlen(s), out + 1, outsz - 2);
	size_t n = strlen(out);
	out[n] = '"';
	out[n + 1] = '\0';
	return out;
}

char *
ig_log_user(const char *user, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	if (outsz == 0)
		return out;
	out[0] = '\0';
	if (atomic_load(&log_redact) && atomic_load(&log_key_set)) {
		uint8_t mac[32];
		const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
		if (md == NULL || mbedtls_md_hmac(md, log_key, log_key_len,
		    (const unsigned char *)user, strlen(user), mac) != 0) {
			snprintf(out, outsz, "h:?");
			return out;
		}
		char tok[2 + 16 + 1] = "h:";
		for (size_t i = 0; i < 8; i++) {
			tok[2 + 2 * i] = hex[mac[i] >> 4];
			tok[3 + 2 * i] = hex[mac[i] & 15];
		}
		tok[18] = '\0';
		mbedtls_platform_zeroize(mac, sizeof(mac));
		snprintf(out, outsz, "%s", tok);
		return out;
	}
	return log_show(user, out, outsz);
}

char *
ig_log_rule(const char *rule, char *out, size_t outsz)
{
	if (outsz < 8) {
		if (outsz > 0)
			out[0] = '\0';
		return out;
	}
	if (strncmp(rule, "user:", 5) == 0 && atomic_load(&log_redact)) {
		memcpy(out, "user:", 5);
		ig_log_user(rule + 5, out + 5, outsz - 5);
		return out;
	}
	return log_show(rule, out, outsz);
}

/* ---- JSON --------------------------------------------------------------- */

struct jbuf {
	char *p;
	size_t cap;    /* usable bytes (room for the closing kept apart) */
	size_t len;
};

static bool
jput(struct jbuf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len)
		return false;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return true;
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t k;
	unsigned min;
	unsigned cp;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 2; cp = c & 0x1fu; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 3; cp = c & 0x0fu; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4; cp = c & 0x07u; min = 0x10000;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

/* A JSON string, quotes included. */
static bool
jstr(struct jbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	if (!jput(b, "\"", 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i];
		char e[8];
		size_t k;
		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			k = 2;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			k = 6;
		} else if (c < 0x80) {
			e[0] = (char)c;
			k = 1;
		} else if ((k = utf8_len(u + i, n - i)) > 0) {
			if (!jput(b, s + i, k))
				return false;
			i += k - 1;
			continue;
		} else {
			/* Not UTF-8: the text \xHH, as ig_log_escape() writes it. */
			memcpy(e, "\\\\x", 3);
			e[3] = hex[c >> 4];
			e[4] = hex[c & 15];
			k = 5;
		}
		if (!jput(b, e, k))
			return false;
	}
	return jput(b, "\"", 1);
}

/* Keys whose value is a JSON number when it is all digits (else a string). */
static const char *const log_numeric_keys[] = {
	"backend_in", "backend_out", "bytes", "bytes_per_key", "changes", "client_in",
	"client_out", "client_port", "commands", "configured_sessions", "count", "delay_ms",
	"duration_ms", "errors", "failures", "fd_limit", "holder_pid", "in_use", "keys",
	"lifetime_ms", "listeners", "max_bytes", "max_keys", "max_sessions", "ms", "name_len",
	"not_logged", "paused_ms", "pauses_not_logged", "pid", "raised_from", "remaining_s",
	"reserve", "revoked", "sessions", "soft", "step_ms", "threshold", "until_s",
	"worker", "workers",
};

static bool
log_key_numeric(const char *k, size_t n)
{
	for (size_t i = 0; i < sizeof(log_numeric_keys) / sizeof(log_numeric_keys[0]); i++)
		if (strlen(log_numeric_keys[i]) == n && memcmp(log_numeric_keys[i], k, n) == 0)
			return true;
	return false;
}

static bool
log_all_digits(const char *v, size_t n)
{
	if (n == 0 || n > 19 || (n > 1 && v[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	return true;
}

#define JKEYS_MAX 64
#define JKEY_MAX 48

struct jobj {
	struct jbuf b;
	char keys[JKEYS_MAX][JKEY_MAX + 8]; /* emitted so far (repeats) */
	size_t nkeys;
	bool truncated;
};

static bool
jobj_has(const struct jobj *o, const char *key)
{
	for (size_t i = 0; i < o->nkeys; i++)
		if (strcmp(o->keys[i], key) == 0)
			return true;
	return false;
}

/* Emits "key":value (a number when numeric), rolling back if it does not fit. */
static void
jfield(struct jobj *o, const char *k, size_t kn, const char *v, size_t vn, bool numeric)
{
	if (o->truncated)
		return;
	if (o->nkeys >= JKEYS_MAX) {
		o->truncated = true; /* (repeats could no longer be told apart) */
		return;
	}
	char key[JKEY_MAX + 8];
	memcpy(key, k, kn);
	key[kn] = '\0';
	/* A repeated key becomes key_2 ... key_9, whichever is still free. */
	for (unsigned n = 2; jobj_has(o, key); n++) {
		if (n > 9)
			return; /* (dropped) */
		snprintf(key + kn, sizeof(key) - kn, "_%u", n);
	}
	size_t mark = o->b.len;
	bool ok = jput(&o->b, ",", 1) && jstr(&o->b, key, strlen(key)) && jput(&o->b, ":", 1) &&
	    (numeric ? jput(&o->b, v, vn) : jstr(&o->b, v, vn));
	if (!ok) {
		o->b.len = mark;
		o->truncated = true;
		return;
	}
	snprintf(o->keys[o->nkeys++], sizeof(o->keys[0]), "%s", key);
}

static bool
log_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-' || c == '.';
}

static void
jvalue(struct jobj *o, const char *k, size_t kn, const char *v, size_t vn, bool quoted)
{
	if (!quoted && kn == 6 && memcmp(k, "client", 6) == 0) {
		const char *colon = NULL;
		for (size_t i = vn; i > 0; i--) {
			if (v[i - 1] == ':') {
				colon = v + i - 1;
				break;
			}
		}
		if (colon != NULL) {
			size_t an = (size_t)(colon - v);
			size_t pn = vn - an - 1;
			if (an > 0 && log_all_digits(colon + 1, pn)) {
				jfield(o, "client_ip", 9, v, an, false);
				jfield(o, "client_port", 11, colon + 1, pn, true);
				return;
			}
		}
	}
	jfield(o, k, kn, v, vn, !quoted && log_key_numeric(k, kn) && log_all_digits(v, vn));
}

size_t
ig_log_json(char *out, size_t outsz, const char *time, enum ig_log_level level,
    const char *kv, size_t kvlen)
{
	static const char tail[] = ",\"truncated\":true}\n";
	struct jobj o;
	if (outsz < 128) {
		if (outsz > 0)
			out[0] = '\0';
		return 0;
	}
	o.b = (struct jbuf){ out, outsz - sizeof(tail), 0 };
	o.nkeys = 0;
	o.truncated = false;
	(void)(jput(&o.b, "{\"time\":", 8) && jstr(&o.b, time, strlen(time)) &&
	    jput(&o.b, ",\"level\":", 9) &&
	    jstr(&o.b, ig_log_level_str(level), strlen(ig_log_level_str(level))));
	snprintf(o.keys[o.nkeys++], sizeof(o.keys[0]), "time");
	snprintf(o.keys[o.nkeys++], sizeof(o.keys[0]), "level");
	/* Reserved for the tail: a "truncated" in the text becomes truncated_2. */
	snprintf(o.keys[o.nkeys++], sizeof(o.keys[0]), "truncated");

	/* Text that is not key=value, kept in order for "msg". */
	char msg[LOG_LINE_MAX];
	size_t mlen = 0;
	size_t i = 0;
	while (i < kvlen) {
		while (i < kvlen && kv[i] == ' ')
			i++;
		if (i >= kvlen)
			break;
		size_t ks = i;
		while (i < kvlen && log_key_char(kv[i]))
			i++;
		size_t kn = i - ks;
		if (kn > 0 && kn <= JKEY_MAX && i < kvlen && kv[i] == '=' &&
		    !(kn == 3 && memcmp(kv + ks, "msg", 3) == 0)) {
			i++;
			if (i < kvlen && kv[i] == '"') {
				size_t vs = ++i;
				size_t ve = kvlen;
				for (size_t j = vs; j < kvlen; j++) {
					if (kv[j] == '"' && (j + 1 == kvlen || kv[j + 1] == ' ')) {
						ve = j;
						break;
					}
				}
				jvalue(&o, kv + ks, kn, kv + vs, ve - vs, true);
				i = ve < kvlen ? ve + 1 : kvlen;
			} else {
				size_t vs = i;
				while (i < kvlen && kv[i] != ' ')
					i++;
				jvalue(&o, kv + ks, kn, kv + vs, i - vs, false);
			}
			continue;
		}
		/* Not a field: the whole word goes to msg. */
		i = ks;
		while (i < kvlen && kv[i] != ' ')
			i++;
		size_t wn = i - ks;
		if (mlen > 0 && mlen < sizeof(msg))
			msg[mlen++] = ' ';
		if (wn > sizeof(msg) - mlen)
			wn = sizeof(msg) - mlen;
		memcpy(msg + mlen, kv + ks, wn);
		mlen += wn;
	}
	if (mlen > 0)
		jfield(&o, "msg", 3, msg, mlen, false);
	/* The room for tail was kept apart: this always fits. */
	o.b.cap = outsz - 1;
	if (o.truncated)
		(void)jput(&o.b, tail, sizeof(tail) - 1);
	else
		(void)jput(&o.b, "}\n", 2);
	out[o.b.len] = '\0';
	return o.b.len;
}

int
ig_log_level_parse(const char *s, enum ig_log_level *out)
{
	for (int i = 0; i < IG_LOG_LEVEL_COUNT; i++) {
		if (strcasecmp(s, ig_log_level_str((enum ig_log_level)i)) == 0) {
			*out = (enum ig_log_level)i;
			return 0;
		}
	}
	return IG_EINVAL;
}

void
ig_logv(enum ig_log_level level, const char *fmt, va_list ap)
{
	if ((int)level > atomic_load(&log_level))
		return;
	char ts[80];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long)(tv.tv_usec / 1000));

	char kv[LOG_LINE_MAX];
	int m = vsnprintf(kv, sizeof(kv), fmt, ap);
	if (m < 0)
		return;
	size_t kvlen = (size_t)m < sizeof(kv) ? (size_t)m : sizeof(kv) - 1;
	/* A line never spans lines: our own values have no CR or LF, but a
	   stray one (a strerror text, a path) must not start a fake line. */
	for (size_t i = 0; i < kvlen; i++)
		if (kv[i] == '\n' || kv[i] == '\r')
			kv[i] = ' ';

	char line[LOG_JSON_MAX];
	size_t off;
	if (atomic_load(&log_format) == IG_LOG_JSON) {
		off = ig_log_json(line, sizeof(line), ts, level, kv, kvlen);
		if (off == 0)
			return;
	} else {
		int n = snprintf(line, sizeof(line), "%s %s %.*s\n", ts, ig_log_level_str(level),
		    (int)kvlen, kv);
		if (n < 0)
			return;
		off = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
		line[off - 1] = '\n';
	}
	if (log_syslog) {
		static const int prio[IG_LOG_LEVEL_COUNT] = {
			[IG_LOG_ERROR] = LOG_ERR, [IG_LOG_WARN] = LOG_WARNING,
			[IG_LOG_INFO] = LOG_INFO, [IG_LOG_DEBUG] = LOG_DEBUG,
		};
		/* syslog stamps the time itself: text goes without ours. */
		const char *p = line;
		if (atomic_load(&log_format) != IG_LOG_JSON)
			p += strlen(ts) + 1;
		syslog(prio[level], "%.*s", (int)(off - 1 - (size_t)(p - line)), p);
		return;
	}
	ssize_t w;
	while ((w = write(log_fd, line, off)) < 0 && errno == EINTR)
		;
}

void
ig_log(enum ig_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ig_logv(level, fmt, ap);
	va_end(ap);
}

char *
ig_log_escape(const uint8_t *in, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (outsz == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];
		size_t need = (c == ' ' || (c > 0x20 && c < 0x7f && c != '\\' && c != '"')) ? 1 : 4;
		if (o + need + 4 > outsz) {
			if (o + 4 <= outsz) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o < outsz ? o : outsz - 1] = '\0';
	return out;
}
