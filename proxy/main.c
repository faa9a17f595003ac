/*
 * imapguard: command line, start-up and shutdown.
 *   imapguard -c FILE        run in the foreground, log to stderr
 *                            (as root only with `user`, or --allow-root)
 *   imapguard -t -c FILE     check the configuration (and certificates)
 *   imapguard explain -c FILE --user U --from ADDR [--listener NAME]
 *                     [--tls yes|no] [--mechanism M]
 *                            what the policy would decide, and why
 *   imapguard ticket-key new|rotate FILE
 *                            write tls.ticket_key_file (proxy/ticketkey.c)
 *   imapguard apppass -c FILE add|list|revoke ...
 *                            app passwords (proxy/apppass_cli.c)
 *   imapguard totp -c FILE enroll|remove|status ...
 *                            the second factor for issuing them
 *                            (proxy/totp_cli.c)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>
#include <uv.h>

#include "crypto/backend.h"
#include "policy/decide.h"
#include "policy/explain.h"
#include "proxy/apppass_cli.h"
#include "proxy/ctl.h"
#include "proxy/gen.h"
#include "util/err.h"
#include "util/log.h"
#include "proxy/tls.h"
#include "proxy/server.h"
#include "proxy/ticketkey.h"
#include "proxy/totp_cli.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: imapguard [-t] [-d] [--allow-root] -c FILE\n"
	    "       imapguard explain -c FILE --user U --from ADDR [...]\n"
	    "       imapguard ctl [-c FILE | -s SOCKET] list | lift LIMIT KEY | kick USER | stats\n"
	    "       imapguard ticket-key new | rotate FILE\n"
	    "       imapguard apppass -c FILE add USER --label LABEL [--expires DURATION]\n"
	    "                         [--from NETWORK]... [--totp CODE] [--quiet]\n"
	    "       imapguard apppass -c FILE list [USER] | revoke ID | revoke --all USER\n"
	    "       imapguard totp -c FILE enroll USER [--issuer NAME] [--force] [--qr MODE]\n"
	    "       imapguard totp -c FILE remove USER | status [USER]\n"
	    "\n"
	    "  -c, --config FILE   configuration file (YAML)\n"
	    "  -t, --test          check the configuration and certificates, then exit\n"
	    "  -d, --debug         log at debug level (overrides log_level)\n"
	    "      --allow-root    run as root without 'user' (refused otherwise)\n"
	    "  -V, --version       print the version\n"
	    "  -h, --help          this text\n");
}

static void
explain_usage(FILE *f)
{
	fprintf(f,
	    "usage: imapguard explain -c FILE --user USER --from ADDRESS\n"
	    "                         [--listener NAME] [--tls yes|no] [--mechanism M]\n"
	    "\n"
	    "Prints the policy decision for one login attempt, the deciding rule and\n"
	    "the chain of rules considered, without starting anything.\n"
	    "  --listener NAME   default: the first listener; its TLS mode sets --tls\n"
	    "  --tls yes|no      TLS active when the credentials are sent\n"
	    "                    (default: yes for implicit TLS listeners, else no)\n"
	    "  --mechanism M     a SASL mechanism (PLAIN, XOAUTH2, ...), or 'command'\n"
	    "                    for the IMAP LOGIN command (default)\n"
	    "Exit status: 0 allowed, 1 refused, 2 usage or configuration error.\n");
}

/* imapguard explain ...: the what-if command. */
static int
explain_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "from", required_argument, NULL, 'f' },
		{ "listener", required_argument, NULL, 'l' },
		{ "tls", required_argument, NULL, 's' },
		{ "mechanism", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *user = NULL, *from = NULL, *lname = NULL;
	const char *tls = NULL, *mech = "command";
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:u:f:l:s:m:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'u': user = optarg; break;
		case 'f': from = optarg; break;
		case 'l': lname = optarg; break;
		case 's': tls = optarg; break;
		case 'm': mech = optarg; break;
		case 'h': explain_usage(stdout); return 0;
		default: explain_usage(stderr); return 2;
		}
	}
	if (path == NULL || user == NULL || from == NULL || optind != argc) {
		explain_usage(stderr);
		return 2;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, from, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, from, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
	} else {
		fprintf(stderr, "imapguard explain: --from %s is not an IP address\n", from);
		return 2;
	}
	struct ig_config *cfg = NULL;
	if (ig_config_load(path, &cfg, stderr) != 0) {
		fprintf(stderr, "imapguard: configuration %s is invalid\n", path);
		return 2;
	}
	int rc = 2;
	const struct ig_listener_conf *l = NULL;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (lname == NULL || strcmp(cfg->listeners[i].name, lname) == 0) {
			l = &cfg->listeners[i];
			break;
		}
	if (l == NULL) {
		fprintf(stderr, "imapguard explain: no listener named '%s'\n", lname);
		goto out;
	}
	bool tls_on = l->tls == IG_TLS_IMPLICIT;
	if (tls != NULL) {
		if (strcmp(tls, "yes") != 0 && strcmp(tls, "no") != 0) {
			fprintf(stderr, "imapguard explain: --tls takes yes or no\n");
			goto out;
		}
		tls_on = strcmp(tls, "yes") == 0;
	}
	if (l->tls == IG_TLS_IMPLICIT && !tls_on) {
		fprintf(stderr, "imapguard explain: listener %s is implicit TLS: --tls no "
		    "cannot happen there\n", l->name);
		goto out;
	}
	struct ig_login_facts f = {
		.listener = l->name,
		.tls = tls_on,
		.addr = (const struct sockaddr *)&ss,
	};
	if (strcasecmp(mech, "command") == 0) {
		f.login_cmd = true;
		f.mech = IG_MECH_COUNT;
	} else {
		struct ig_span ms = { (const uint8_t *)mech, strlen(mech) };
		f.mech = ig_sasl_mech_from_name(ms);
		if (f.mech == IG_MECH_COUNT) {
			fprintf(stderr, "imapguard explain: unknown mechanism '%s'\n", mech);
			goto out;
		}
	}
	char norm[IG_USER_MAX + 1];
	if (ig_user_normalize((const uint8_t *)user, strlen(user), cfg->policy.fold_case,
	        norm, sizeof(norm)) != 0) {
		fprintf(stderr, "imapguard explain: invalid user name\n");
		goto out;
	}
	f.user = norm;
	rc = ig_policy_explain(&cfg->policy, &f, path, stdout) == IG_VERDICT_ALLOW ? 0 : 1;
out:
	ig_config_free(cfg);
	return rc;
}

/* imapguard ctl [-c FILE | -s SOCKET] COMMAND...: talk to admin.socket. */
static int
ctl_main(int argc, char **argv)
{
	const char *path = NULL, *sock = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt(argc, argv, "+c:s:h")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 's': sock = optarg; break;
		default:
			fprintf(ch == 'h' ? stdout : stderr,
			    "usage: imapguard ctl [-c FILE | -s SOCKET] list | lift LIMIT KEY | kick USER | stats\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc || (path == NULL) == (sock == NULL)) {
		fprintf(stderr, "usage: imapguard ctl [-c FILE | -s SOCKET] list | lift LIMIT KEY | kick USER | stats\n");
		return 2;
	}
	struct ig_config *cfg = NULL;
	if (path != NULL) {
		if (ig_config_load(path, &cfg, stderr) != 0)
			return 2;
		if (cfg->admin_socket == NULL) {
			fprintf(stderr, "imapguard ctl: %s has no admin.socket\n", path);
			ig_config_free(cfg);
			return 2;
		}
		sock = cfg->admin_socket;
	}
	char cmd[512] = "";
	size_t o = 0;
	for (int i = optind; i < argc; i++) {
		int n = snprintf(cmd + o, sizeof(cmd) - o, "%s%s", i > optind ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(cmd) - o) {
			fprintf(stderr, "imapguard ctl: command too long\n");
			ig_config_free(cfg);
			return 2;
		}
		o += (size_t)n;
	}
	int rc = ig_ctl_client(sock, cmd);
	ig_config_free(cfg);
	return rc;
}

/*
 * The log output and format, at start-up, before anything is logged (and
 * before privileges are dropped: the file and the key file are opened
 * now). Returns 0, or 1 with the reason on stderr.
 */
static int
main_log_setup(const struct ig_config *cfg)
{
	ig_log_set_format(cfg->log_format);
	if (ig_log_open(cfg->log_file) != 0) {
		fprintf(stderr, "imapguard: cannot open log.file %s: %s\n", cfg->log_file,
		    strerror(errno));
		return 1;
	}
	uint8_t key[IG_LOG_KEY_MAX + 1];
	size_t n = 0;
	if (cfg->log_redact_key_file != NULL) {
		int fd = open(cfg->log_redact_key_file, O_RDONLY | O_CLOEXEC);
		ssize_t r = fd >= 0 ? read(fd, key, sizeof(key)) : -1;
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (r < IG_LOG_KEY_MIN || r > IG_LOG_KEY_MAX) {
			fprintf(stderr, "imapguard: cannot use log.redact_key_file %s: %s\n",
			    cfg->log_redact_key_file, r < 0 ? strerror(e) : "it must hold 16 to 64 "
			    "bytes");
			mbedtls_platform_zeroize(key, sizeof(key));
			return 1;
		}
		n = (size_t)r;
	}
	int rc = ig_log_set_redact(cfg->log_redact_users, n > 0 ? key : NULL, n);
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc != 0) {
		fprintf(stderr, "imapguard: log.redact_users: no random key: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/*
 * libuv's thread pool (started at its first use, its size fixed then)
 * computes the app passwords' hashes: as many threads as
 * app_passwords.max_concurrent_verifications (proxy/apprt.c holds the
 * hashes to that many at once) and two more for the rest (the store's
 * poll, the limiter's state file), which wait at most for the hashes
 * queued before them. An explicit UV_THREADPOOL_SIZE in the environment
 * wins.
 */
static void
main_threadpool(const struct ig_config *cfg)
{
	if (cfg->apppass.store == NULL || getenv("UV_THREADPOOL_SIZE") != NULL)
		return;
	char n[16];
	snprintf(n, sizeof(n), "%u", cfg->apppass.max_concurrent_verifications + 2u);
	setenv("UV_THREADPOOL_SIZE", n, 1);
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "explain") == 0)
		return explain_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "ticket-key") == 0)
		return ig_ticketkey_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "apppass") == 0)
		return ig_apppass_cli_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "totp") == 0)
		return ig_totp_cli_main(argc - 1, argv + 1);

	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "allow-root", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool test = false, debug = false, allow_root = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:tdVh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 't': test = true; break;
		case 'd': debug = true; break;
		case 'R': allow_root = true; break;
		case 'V': {
			const char *ossl = ig_crypto_openssl_version();
			printf("imapguard %s (%s, libuv %s, crypto: %s%s)\n", IG_VERSION,
			    MBEDTLS_VERSION_STRING_FULL, uv_version_string(),
			    ossl != NULL ? ossl : "mbedTLS only",
			    ossl != NULL ? " or mbedTLS, see tls.crypto" : "");
			return 0;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/*
	 * SIGTERM, SIGINT and SIGHUP wait (blocked) until the server's handlers
	 * exist: a stop requested during start-up is then a clean stop, never
	 * the default action.
	 */
	sigset_t stopsigs, oldmask;
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	sigaddset(&stopsigs, SIGHUP);
	sigaddset(&stopsigs, SIGUSR1); /* (its default action ends the process) */
	sigprocmask(SIG_BLOCK, &stopsigs, &oldmask);
	if (ig_tls_global_init() != 0) {
		fprintf(stderr, "imapguard: PSA crypto initialisation failed\n");
		return 1;
	}
	struct ig_gen *g = ig_gen_load(path, stderr);
	if (g == NULL) {
		fprintf(stderr, "imapguard: configuration %s is invalid\n", path);
		return 1;
	}
	/* The crypto under mbedTLS, once for the process (tls.crypto). */
	char crypto_note[256];
	if (ig_crypto_select(g->cfg->tls_crypto, crypto_note, sizeof(crypto_note)) != 0) {
		fprintf(stderr, "imapguard: %s\n", crypto_note);
		ig_gen_unref(g);
		return 1;
	}
	if (test) {
		if (crypto_note[0] != '\0')
			fprintf(stderr, "imapguard: %s\n", crypto_note);
		printf("%s: configuration OK\n", path);
		ig_gen_unref(g);
		return 0;
	}
	/* Root for the whole run only when asked for (before anything starts). */
	if (geteuid() == 0 && g->cfg->user == NULL && !allow_root) {
		fprintf(stderr, "imapguard: refusing to run as root: set 'user' in %s (the "
		    "proxy drops to it once its sockets and files are open), or start with "
		    "--allow-root to keep root for the whole run\n", path);
		ig_gen_unref(g);
		return 1;
	}
	ig_log_set_level(debug ? IG_LOG_DEBUG : g->cfg->log_level);
	if (main_log_setup(g->cfg) != 0) {
		ig_gen_unref(g);
		return 1;
	}
	log_info("event=start version=%s config=%s crypto=%s", IG_VERSION, path,
	    ig_crypto_backend_str(ig_crypto_active()));
	if (crypto_note[0] != '\0')
		log_warn("event=crypto-fallback reason=\"%s\"", crypto_note);
	main_threadpool(g->cfg);
	struct ig_server sv;
	if (ig_server_init(&sv, g, path) != 0)
		return 1; /* (signals stay blocked: the exit status is ours) */
	sigprocmask(SIG_SETMASK, &oldmask, NULL); /* pending signals arrive now */
	ig_server_run(&sv);
	int rc = ig_server_destroy(&sv);
	log_info("event=stopped");
	mbedtls_psa_crypto_free();
	return rc == 0 ? 0 : 1;
}
