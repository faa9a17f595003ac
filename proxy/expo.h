/*
 * The Prometheus text exposition format, version 0.0.4: a writer into a
 * growing buffer (bounded), with label values escaped and histograms
 * written cumulative. Pure: no I/O, no clock, no globals.
 *
 * Every family is written as "# HELP", "# TYPE", then its samples, which
 * must follow their family before the next one starts (the format's rule).
 */
#ifndef IG_PROXY_EXPO_H
#define IG_PROXY_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ig_expo {
	char *p;                       /* the text (owned), NUL-terminated */
	size_t len;
	size_t cap;
	size_t max;                    /* p never grows past this */
	bool overflow;                 /* something did not fit (or no memory):
	                                  the text is incomplete */
};

struct ig_expo_label {
	const char *name;              /* [a-zA-Z_][a-zA-Z0-9_]* */
	const char *value;             /* any bytes; escaped when written */
};

/* An empty writer that may grow to max bytes. */
void ig_expo_init(struct ig_expo *e, size_t max);
/* Frees the text. */
void ig_expo_free(struct ig_expo *e);

/* "# HELP name help" (help escaped) and "# TYPE name type"; type is
   "counter", "gauge" or "histogram". */
void ig_expo_family(struct ig_expo *e, const char *name, const char *type, const char *help);

/* One sample: name{labels} value (an integer). */
void ig_expo_u64(struct ig_expo *e, const char *name, const struct ig_expo_label *labels,
    size_t nlabels, uint64_t v);
/* One sample with a floating-point value (NaN and infinities as the
   format spells them). */
void ig_expo_double(struct ig_expo *e, const char *name, const struct ig_expo_label *labels,
    size_t nlabels, double v);

/*
 * One histogram's samples: name_bucket{labels,le="b"} for each of the
 * nbounds upper bounds (ascending), then le="+Inf", name_sum and
 * name_count. counts holds nbounds + 1 per-bucket (not cumulative) counts,
 * the last one above every bound; the buckets are written cumulative and
 * both the +Inf bucket and _count are their total, so they always agree.
 * sum is the sum of the observations.
 */
void ig_expo_histogram(struct ig_expo *e, const char *name, const struct ig_expo_label *labels,
    size_t nlabels, const double *bounds, const uint64_t *counts, size_t nbounds, double sum);

/*
 * Writes s escaped as a label value (backslash, double quote and line feed
 * as \\, \" and \n) into out, NUL-terminated; returns the length the whole
 * escaped value needs (as snprintf does).
 */
size_t ig_expo_escape_label(const char *s, char *out, size_t outsz);

#endif /* IG_PROXY_EXPO_H */
