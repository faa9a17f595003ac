/*
 * The Prometheus text exposition writer (proxy/expo.h).
 */
#include "proxy/expo.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
ig_expo_init(struct ig_expo *e, size_t max)
{
	memset(e, 0, sizeof(*e));
	e->max = max;
}

void
ig_expo_free(struct ig_expo *e)
{
	free(e->p);
	memset(e, 0, sizeof(*e));
}

/* Room for n more bytes and a NUL; false (and overflow) when it cannot. */
static bool
expo_reserve(struct ig_expo *e, size_t n)
{
	if (e->overflow)
		return false;
	if (n > e->max || e->len + n + 1 > e->max) {
		e->overflow = true;
		return false;
	}
	if (e->len + n + 1 <= e->cap)
		return true;
	size_t cap = e->cap ? e->cap : 4096;
	while (cap < e->len + n + 1)
		cap *= 2;
	if (cap > e->max)
		cap = e->max;
	char *np = realloc(e->p, cap);
	if (np == NULL) {
		e->overflow = true;
		return false;
	}
	e->p = np;
	e->cap = cap;
	return true;
}

static void
expo_put(struct ig_expo *e, const char *s, size_t n)
{
	if (!expo_reserve(e, n))
		return;
	memcpy(e->p + e->len, s, n);
	e->len += n;
	e->p[e->len] = '\0';
}

static void
expo_puts(struct ig_expo *e, const char *s)
{
	expo_put(e, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
expo_printf(struct ig_expo *e, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		e->overflow = true;
		return;
	}
	expo_put(e, buf, (size_t)n);
}

size_t
ig_expo_escape_label(const char *s, char *out, size_t outsz)
{
	size_t need = 0;
	for (const char *q = s; *q != '\0'; q++) {
		const char *rep = NULL;
		char one[2] = { *q, '\0' };
		switch (*q) {
		case '\\':
			rep = "\\\\";
			break;
		case '"':
			rep = "\\\"";
			break;
		case '\n':
			rep = "\\n";
			break;
		default:
			rep = one;
			break;
		}
		for (const char *r = rep; *r != '\0'; r++, need++)
			if (outsz > 0 && need < outsz - 1)
				out[need] = *r;
	}
	if (outsz > 0)
		out[need < outsz - 1 ? need : outsz - 1] = '\0';
	return need;
}

/* A label value, escaped, straight into the text. */
static void
expo_label_value(struct ig_expo *e, const char *v)
{
	char small[256];
	size_t need = ig_expo_escape_label(v, small, sizeof(small));
	if (need < sizeof(small)) {
		expo_put(e, small, need);
		return;
	}
	char *big = malloc(need + 1);
	if (big == NULL) {
		e->overflow = true;
		return;
	}
	ig_expo_escape_label(v, big, need + 1);
	expo_put(e, big, need);
	free(big);
}

/* {a="x",b="y"[,le="..."]}, nothing when there are no labels. */
static void
expo_labels(struct ig_expo *e, const struct ig_expo_label *labels, size_t n, const char *le)
{
	if (n == 0 && le == NULL)
		return;
	expo_puts(e, "{");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			expo_puts(e, ",");
		expo_puts(e, labels[i].name);
		expo_puts(e, "=\"");
		expo_label_value(e, labels[i].value);
		expo_puts(e, "\"");
	}
	if (le != NULL) {
		if (n > 0)
			expo_puts(e, ",");
		expo_puts(e, "le=\"");
		expo_puts(e, le);
		expo_puts(e, "\"");
	}
	expo_puts(e, "}");
}

void
ig_expo_family(struct ig_expo *e, const char *name, const char *type, const char *help)
{
	expo_puts(e, "# HELP ");
	expo_puts(e, name);
	expo_puts(e, " ");
	/* In HELP only backslash and line feed are escaped. */
	for (const char *q = help; *q != '\0'; q++) {
		if (*q == '\\')
			expo_puts(e, "\\\\");
		else if (*q == '\n')
			expo_puts(e, "\\n");
		else
			expo_put(e, q, 1);
	}
	expo_puts(e, "\n# TYPE ");
	expo_puts(e, name);
	expo_puts(e, " ");
	expo_puts(e, type);
	expo_puts(e, "\n");
}

void
ig_expo_u64(struct ig_expo *e, const char *name, const struct ig_expo_label *labels,
    size_t nlabels, uint64_t v)
{
	expo_puts(e, name);
	expo_labels(e, labels, nlabels, NULL);
	expo_printf(e, " %llu\n", (unsigned long long)v);
}

/* A float as the format spells it. */
static void
expo_fmt_double(double v, char *out, size_t outsz)
{
	if (isnan(v))
		snprintf(out, outsz, "NaN");
	else if (isinf(v))
		snprintf(out, outsz, v > 0 ? "+Inf" : "-Inf");
	else {
		/* The shortest of 15 or 17 digits that reads back the same. */
		snprintf(out, outsz, "%.15g", v);
		if (strtod(out, NULL) != v)
			snprintf(out, outsz, "%.17g", v);
	}
}

void
ig_expo_double(struct ig_expo *e, const char *name, const struct ig_expo_label *labels,
    size_t nlabels, double v)
{
	char num[40];
	expo_fmt_double(v, num, sizeof(num));
	expo_puts(e, name);
	expo_labels(e, labels, nlabels, NULL);
	expo_printf(e, " %s\n", num);
}

void
ig_expo_histogram(struct ig_expo *e, const char *name, const struct ig_expo_label *labels,
    size_t nlabels, const double *bounds, const uint64_t *counts, size_t nbounds, double sum)
{
	uint64_t cum = 0;
	char le[40];
	for (size_t i = 0; i <= nbounds; i++) {
		cum += counts[i];
		if (i < nbounds)
			snprintf(le, sizeof(le), "%g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		expo_puts(e, name);
		expo_puts(e, "_bucket");
		expo_labels(e, labels, nlabels, le);
		expo_printf(e, " %llu\n", (unsigned long long)cum);
	}
	char num[40];
	expo_fmt_double(sum, num, sizeof(num));
	expo_puts(e, name);
	expo_puts(e, "_sum");
	expo_labels(e, labels, nlabels, NULL);
	expo_printf(e, " %s\n", num);
	expo_puts(e, name);
	expo_puts(e, "_count");
	expo_labels(e, labels, nlabels, NULL);
	expo_printf(e, " %llu\n", (unsigned long long)cum);
}
