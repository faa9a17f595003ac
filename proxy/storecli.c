/*
 * The command lines over the app password store: configuration, privilege
 * drop, user, store, and display helpers (see proxy/storecli.h).
 */
#include "proxy/storecli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apppass/store.h"
#include "config/config.h"
#include "util/err.h"
#include "util/priv.h"

/* How long a command waits for the proxy (or another command) to finish
 * its write before it gives up. */
#define STORECLI_BUSY_MS 5000u

int
ig_storecli_open(struct ig_storecli *c, const char *prog, const char *config,
    const char *user, bool create)
{
	char err[IG_APPPASS_ERR_MAX];
	memset(c, 0, sizeof(*c));
	c->prog = prog;
	if (ig_config_load(config, &c->cfg, stderr) != 0) {
		fprintf(stderr, "imapguard: configuration %s is invalid\n", config);
		goto fail;
	}
	if (c->cfg->apppass.store == NULL) {
		fprintf(stderr, "%s: %s has no app_passwords.store: add an app_passwords "
		    "section naming the store's file (imapguard.yaml(5))\n", prog, config);
		goto fail;
	}
	/* The proxy's user owns the store: root works on it as that user. */
	if (geteuid() == 0 && c->cfg->user != NULL &&
	    ig_priv_drop(c->cfg->user, c->cfg->user_uid, c->cfg->user_gid, err,
	        sizeof(err)) != 0) {
		fprintf(stderr, "%s: cannot become %s: %s\n", prog, c->cfg->user, err);
		goto fail;
	}
	if (user != NULL && ig_user_normalize((const uint8_t *)user, strlen(user),
	        c->cfg->policy.fold_case, c->user, sizeof(c->user)) != 0) {
		fprintf(stderr, "%s: invalid user name (empty, too long, or with NUL, CR or "
		    "LF)\n", prog);
		goto fail;
	}
	int rc = ig_apppass_store_open(c->cfg->apppass.store, create ? IG_APS_CREATE : 0,
	    STORECLI_BUSY_MS, &c->st, err, sizeof(err));
	/* A store not created yet is an empty one. */
	if (rc != 0 && !(rc == IG_ENOTFOUND && !create)) {
		fprintf(stderr, "%s: %s: %s\n", prog, c->cfg->apppass.store, err);
		goto fail;
	}
	return 0;
fail:
	ig_storecli_close(c);
	return IG_CLI_ERROR;
}

void
ig_storecli_close(struct ig_storecli *c)
{
	ig_apppass_store_close(c->st);
	ig_config_free(c->cfg);
	c->st = NULL;
	c->cfg = NULL;
}

int
ig_storecli_finish(const struct ig_storecli *c, int rc)
{
	if (fflush(stdout) != 0 && rc == IG_CLI_OK) {
		fprintf(stderr, "%s: cannot write: %s\n", c->prog, strerror(errno));
		rc = IG_CLI_ERROR;
	}
	return rc;
}

const char *
ig_storecli_time(int64_t t, const char *none, char *buf, size_t bufsz)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return none;
	return buf;
}

const char *
ig_storecli_show(const char *s, char *buf, size_t bufsz)
{
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0' && o + 1 < bufsz; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == 0xc2 && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			buf[o++] = '?';
			i++;
		} else {
			buf[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
		}
	}
	buf[o] = '\0';
	return buf;
}

int
ig_storecli_write_out(const char *buf, size_t len)
{
	if (fflush(stdout) != 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

bool
ig_storecli_words(const char *prog, int argc, char **argv, const char *config,
    const char **name, char ***words, int *nwords)
{
	if (optind >= argc || config == NULL) {
		fprintf(stderr, "%s: %s\n", prog, optind >= argc ? "no command" :
		    "-c FILE is required (the configuration naming app_passwords.store)");
		return false;
	}
	*name = argv[optind];
	*words = argv + optind + 1;
	*nwords = argc - optind - 1;
	return true;
}
