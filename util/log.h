/*
 * Logging: one line per event. Call sites write "key=value" text (values
 * with spaces in double quotes); the line goes out as that text (format
 * text, the default) or as one JSON object (format json, built from the
 * key=value text by ig_log_json(); docs/LOGGING.md has the schema). The
 * output is stderr (default), a file (log.file, reopened by
 * ig_log_reopen() on SIGUSR1) or syslog(3) with facility mail. Safe to call
 * from any thread: each line is formatted into a local buffer and written
 * with a single write(2) (or one syslog(3) call).
 *
 * Never pass a secret (password, token, SASL payload) to these functions.
 * Client bytes must go through ig_log_escape() first, user names through
 * ig_log_user().
 */
#ifndef IG_UTIL_LOG_H
#define IG_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ig_log_level {
	IG_LOG_ERROR,
	IG_LOG_WARN,
	IG_LOG_INFO,
	IG_LOG_DEBUG,
	IG_LOG_LEVEL_COUNT
};

/* Sets the most verbose level that is written (default IG_LOG_INFO). */
void ig_log_set_level(enum ig_log_level level);
/* Returns the level set by ig_log_set_level(). */
enum ig_log_level ig_log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns 0 or IG_EINVAL. */
int ig_log_level_parse(const char *s, enum ig_log_level *out);
const char *ig_log_level_str(enum ig_log_level level);

enum ig_log_format {
	IG_LOG_TEXT,     /* "text": time level key=value... (default) */
	IG_LOG_JSON,     /* "json": one JSON object per line */
	IG_LOG_FORMAT_COUNT
};
const char *ig_log_format_str(enum ig_log_format f);

/* Sets the line format (default IG_LOG_TEXT); any thread, any time. */
void ig_log_set_format(enum ig_log_format f);

/*
 * Chooses the output, once at start-up (main thread, before any other
 * thread logs): NULL or "" keeps stderr, "syslog" opens syslog(3) (ident
 * imapguard, facility mail, connected now), anything else is a file opened
 * for appending (created 0640). Returns 0, or IG_EIO with errno set (the
 * output stays stderr).
 */
int ig_log_open(const char *target);

/*
 * Opens the file again by name and puts it in place of the old one with
 * dup2(2) onto the same descriptor number, so a line written by another
 * thread meanwhile goes whole to the old or the new file (logrotate:
 * rename, SIGUSR1, the new file appears). Returns 0 (also when the output
 * is not a file: nothing to do) or IG_EIO with errno set (the old file
 * stays in use).
 */
int ig_log_reopen(void);

/* The file ig_log_open() opened, or NULL (stderr or syslog). */
const char *ig_log_path(void);

/* Sizes of a log.redact_key_file, bytes. */
#define IG_LOG_KEY_MIN 16
#define IG_LOG_KEY_MAX 64

/*
 * log.redact_users: when on, ig_log_user() gives a keyed hash instead of
 * the name. key (len bytes, at most IG_LOG_KEY_MAX) is the HMAC key; NULL draws a
 * random one for this process (kept across reloads). Returns 0 or IG_EIO
 * (no randomness; redaction stays as it was).
 */
int ig_log_set_redact(bool on, const uint8_t *key, size_t len);

/*
 * A user name as it may appear in a log line, into out (outsz >= 64):
 * with redaction on, "h:" and the first 16 hex digits of
 * HMAC-SHA256(key, user); otherwise the name itself when it is printable
 * ASCII without spaces, quotes or backslashes, else "\"" + ig_log_escape()
 * + "\"" (so a hostile name cannot add fields to the line). Returns out.
 */
char *ig_log_user(const char *user, char *out, size_t outsz);

/*
 * A policy rule's name (policy/decide.h: "defaults", "built-in",
 * "group:NAME", "user:NAME") as it may appear in a log line, into out
 * (outsz >= 64): "user:" + the ig_log_user() token when redaction is on,
 * else the name, quoted and escaped when it needs it. Returns out.
 */
char *ig_log_rule(const char *rule, char *out, size_t outsz);

/*
 * Turns one key=value line (kv, kvlen bytes; what the call sites write)
 * into a JSON object followed by '\n' in out (outsz >= 128), with "time"
 * (time, an RFC 3339 string) and "level" first. Any input gives valid JSON
 * on one line: strings are escaped (control bytes as \u00XX, bytes that
 * are not UTF-8 as the text \xHH), numeric keys (docs/LOGGING.md) become
 * numbers, "client=ip:port" becomes "client_ip" and "client_port", a
 * repeated key gets "_2", "_3"..., text that is not key=value goes into
 * "msg", and a line too long for out ends with "truncated":true. Pure.
 * Returns the length written (NUL-terminated, not counted).
 */
size_t ig_log_json(char *out, size_t outsz, const char *time, enum ig_log_level level,
    const char *kv, size_t kvlen);

void ig_log(enum ig_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ig_logv(enum ig_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_error(...) ig_log(IG_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) ig_log(IG_LOG_WARN, __VA_ARGS__)
#define log_info(...) ig_log(IG_LOG_INFO, __VA_ARGS__)
#define log_debug(...) ig_log(IG_LOG_DEBUG, __VA_ARGS__)

/*
 * Copies at most len bytes of untrusted input into out (size outsz > 0) as
 * printable ASCII: bytes outside 0x21..0x7e (and '\\', '"') become \xHH, a
 * space stays a space. Always NUL-terminates; truncates with "..." when out is
 * too small. Returns out.
 */
char *ig_log_escape(const uint8_t *in, size_t len, char *out, size_t outsz);

#endif /* IG_UTIL_LOG_H */
