/*
 * Logging: one line per event, "key=value" style, to stderr (the service
 * manager or the demo script redirects it). Safe to call from any thread: each
 * line is formatted into a local buffer and written with a single write(2).
 *
 * Never pass a secret (password, token, SASL payload) to these functions.
 * Client bytes must go through ig_log_escape() first.
 */
#ifndef IG_UTIL_LOG_H
#define IG_UTIL_LOG_H

#include <stdarg.h>
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
