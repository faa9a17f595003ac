/*
 * imapguard: command line, start-up and shutdown.
 *   imapguard -c FILE        run in the foreground, log to stderr
 *   imapguard -t -c FILE     check the configuration (and certificates)
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/version.h>
#include <uv.h>

#include "proxy/err.h"
#include "proxy/log.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: imapguard [-t] -c FILE\n"
	    "\n"
	    "  -c, --config FILE   configuration file (YAML)\n"
	    "  -t, --test          check the configuration and certificates, then exit\n"
	    "  -d, --debug         log at debug level (overrides log_level)\n"
	    "  -V, --version       print the version\n"
	    "  -h, --help          this text\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool test = false, debug = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:tdVh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 't': test = true; break;
		case 'd': debug = true; break;
		case 'V':
			printf("imapguard %s (%s, libuv %s)\n", IG_VERSION,
			    MBEDTLS_VERSION_STRING_FULL, uv_version_string());
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (ig_tls_global_init() != 0) {
		fprintf(stderr, "imapguard: PSA crypto initialisation failed\n");
		return 1;
	}
	struct ig_gen *g = ig_gen_load(path, stderr);
	if (g == NULL) {
		fprintf(stderr, "imapguard: configuration %s is invalid\n", path);
		return 1;
	}
	if (test) {
		printf("%s: configuration OK\n", path);
		ig_gen_unref(g);
		return 0;
	}
	ig_log_set_level(debug ? IG_LOG_DEBUG : g->cfg->log_level);
	log_info("event=start version=%s config=%s", IG_VERSION, path);
	struct ig_worker w;
	if (ig_worker_init(&w, g, path) != 0)
		return 1;
	ig_worker_run(&w);
	int rc = ig_worker_destroy(&w);
	log_info("event=stopped");
	mbedtls_psa_crypto_free();
	return rc == 0 ? 0 : 1;
}
