#include "util/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

/* The one process-wide setting: written at start-up and on reload only. */
static _Atomic int log_level = IG_LOG_INFO;

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
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long)(tv.tv_usec / 1000), ig_log_level_str(level));
	if (n < 0)
		return;
	size_t off = (size_t)n;
	int m = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	if (m < 0)
		return;
	off += (size_t)m;
	if (off > sizeof(line) - 2)
		off = sizeof(line) - 2;
	line[off++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, off);
	(void)w;
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
