/*
 * apppassbench: what an app password login costs the proxy. Times
 * ig_apppass_verify() (Argon2id through libargon2, the call the proxy makes
 * on libuv's thread pool for every app password login) against a hash made
 * with the given parameters, on 1 thread and on THREADS threads at once (as
 * max_concurrent_verifications lets the proxy), and prints verifications
 * per second and milliseconds per verification (median of the runs).
 * docs/APP_PASSWORDS.md keeps the figures. Not a test: nothing runs it but
 * you.
 *
 *   apppassbench [-n VERIFICATIONS] [-r RUNS] [-t THREADS]
 *                [-m MEMORY_KIB] [-i ITERATIONS] [-p PARALLELISM]
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apppass/hash.h"
#include "apppass/password.h"

#define RUNS_MAX 31

struct job {
	const char *phc;
	const char *secret;
	unsigned n;
	int failed;
};

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
run_job(void *arg)
{
	struct job *j = arg;
	for (unsigned i = 0; i < j->n; i++) {
		bool match = false;
		if (ig_apppass_verify(j->phc, j->secret, strlen(j->secret), &match) != 0 || !match)
			j->failed = 1;
	}
	return NULL;
}

/* n verifications spread over threads; returns the wall time. */
static double
timed(const char *phc, const char *secret, unsigned threads, unsigned n, bool *ok)
{
	pthread_t tid[64];
	struct job jobs[64];
	double t0 = now_s();
	for (unsigned i = 0; i < threads; i++) {
		jobs[i] = (struct job){ phc, secret, n / threads + (i < n % threads), 0 };
		if (pthread_create(&tid[i], NULL, run_job, &jobs[i]) != 0) {
			*ok = false;
			return 0;
		}
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		if (jobs[i].failed)
			*ok = false;
	}
	return now_s() - t0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
report(const char *what, unsigned threads, unsigned n, double *t, unsigned runs)
{
	qsort(t, runs, sizeof(*t), cmp_double);
	double med = t[runs / 2];
	printf("%-10s threads=%-3u verifications/s=%7.1f  ms/verification=%6.2f  "
	    "(runs %u, fastest %.1f/s, slowest %.1f/s)\n", what, threads, (double)n / med,
	    med * 1000.0 * threads / (double)n, runs, (double)n / t[0],
	    (double)n / t[runs - 1]);
}

int
main(int argc, char **argv)
{
	struct ig_apppass_hash_params p;
	ig_apppass_hash_defaults(&p);
	unsigned n = 40, runs = 5, threads = 4;
	int opt;
	while ((opt = getopt(argc, argv, "n:r:t:m:i:p:")) != -1) {
		unsigned long v = strtoul(optarg, NULL, 10);
		switch (opt) {
		case 'n': n = (unsigned)v; break;
		case 'r': runs = (unsigned)v; break;
		case 't': threads = (unsigned)v; break;
		case 'm': p.memory_kib = (uint32_t)v; break;
		case 'i': p.iterations = (uint32_t)v; break;
		case 'p': p.parallelism = (uint32_t)v; break;
		default:
			fprintf(stderr, "usage: apppassbench [-n N] [-r RUNS] [-t THREADS] "
			    "[-m MEMORY_KIB] [-i ITERATIONS] [-p PARALLELISM]\n");
			return 2;
		}
	}
	if (n == 0 || runs == 0 || runs > RUNS_MAX || threads == 0 || threads > 64 ||
	    !ig_apppass_hash_params_ok(&p)) {
		fprintf(stderr, "apppassbench: bad arguments\n");
		return 2;
	}
	struct ig_apppass_pw pw;
	char phc[IG_APPPASS_PHC_MAX + 1];
	if (ig_apppass_generate(&pw) != 0 ||
	    ig_apppass_hash(&p, pw.secret, strlen(pw.secret), phc, sizeof(phc)) != 0) {
		fprintf(stderr, "apppassbench: cannot make a hash\n");
		return 1;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("Argon2id m=%u KiB t=%u p=%u, %u verifications per run, %ld CPUs online\n",
	    p.memory_kib, p.iterations, p.parallelism, n, cpus);
	bool ok = true;
	double t[RUNS_MAX];
	(void)timed(phc, pw.secret, 1, 2, &ok); /* warm-up */
	for (unsigned r = 0; r < runs; r++)
		t[r] = timed(phc, pw.secret, 1, n, &ok);
	report("one", 1, n, t, runs);
	if (threads > 1) {
		for (unsigned r = 0; r < runs; r++)
			t[r] = timed(phc, pw.secret, threads, n, &ok);
		report("concurrent", threads, n, t, runs);
	}
	ig_apppass_wipe(&pw);
	if (!ok) {
		fprintf(stderr, "apppassbench: a verification failed\n");
		return 1;
	}
	return 0;
}
