/*
 * `imapguard totp` (see proxy/totp_cli.h): options, the commands enroll,
 * remove and status over apppass/store.h, and the enrolment's one showing
 * of the secret (apppass/totp.h's URI, apppass/qr.h's drawing).
 */
#include "proxy/totp_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "apppass/base32.h"
#include "apppass/qr.h"
#include "apppass/store.h"
#include "apppass/totp.h"
#include "config/config.h"
#include "proxy/storecli.h"
#include "util/err.h"

#define CLI_OK IG_CLI_OK
#define CLI_NOTFOUND IG_CLI_NOTFOUND
#define CLI_ERROR IG_CLI_ERROR
#define CLI_PROG "imapguard totp"
#define CLI_ISSUER_DEFAULT "imapguard"
#define CLI_ISSUER_MAX 64                /* bytes of --issuer */

static const char cli_synopsis[] =
    "usage: imapguard totp -c FILE enroll USER [--issuer NAME] [--force]\n"
    "                      [--qr auto|ansi|plain|inverted|none]\n"
    "       imapguard totp -c FILE remove USER\n"
    "       imapguard totp -c FILE status [USER]\n";
static const char cli_help[] =
    "\n"
    "Enrols users for the second factor that `imapguard apppass add` asks for\n"
    "(--totp CODE) before it issues them an app password.\n"
    "  -c, --config FILE   configuration file (YAML)\n"
    "      --issuer NAME   the name the authenticator app shows (default\n"
    "                      imapguard; 1 to 64 bytes, no ':')\n"
    "      --force         enroll a user who is enrolled already: a new secret\n"
    "                      replaces the old one, whose codes stop working\n"
    "      --qr MODE       the QR code: ansi (black on white, any terminal),\n"
    "                      plain (light text on a dark background), inverted\n"
    "                      (dark text on a light background), none; auto (the\n"
    "                      default) is ansi on a terminal, plain otherwise\n"
    "Exit status: 0 done, 1 not enrolled, 2 usage, configuration or store error\n"
    "(enroll of an enrolled user without --force included).\n";

static int
cli_usage(FILE *f, bool help, int rc)
{
	fputs(cli_synopsis, f);
	if (help)
		fputs(cli_help, f);
	return rc;
}

enum cli_qr { CLI_QR_AUTO, CLI_QR_ANSI, CLI_QR_PLAIN, CLI_QR_INVERTED, CLI_QR_NONE,
	CLI_QR_COUNT };

static const char *const cli_qr_names[CLI_QR_COUNT] = {
	[CLI_QR_AUTO] = "auto", [CLI_QR_ANSI] = "ansi", [CLI_QR_PLAIN] = "plain",
	[CLI_QR_INVERTED] = "inverted", [CLI_QR_NONE] = "none",
};

struct cli_opts {
	const char *config;
	const char *issuer;              /* NULL: CLI_ISSUER_DEFAULT */
	const char *qr;                  /* --qr as given */
	enum cli_qr qr_mode;
	bool force;
};

/* A name for the otpauth URI's label: 1..CLI_ISSUER_MAX bytes, no ':'
 * (the label's separator) and no control byte. */
static bool
cli_issuer_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CLI_ISSUER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == ':')
			return false;
	return true;
}

/* ---- enroll ------------------------------------------------------------- */

/* The drawing flags of a --qr mode (not CLI_QR_NONE). */
static unsigned
cli_qr_flags(enum cli_qr mode)
{
	switch (mode) {
	case CLI_QR_AUTO:
		return isatty(STDOUT_FILENO) ? IG_QRF_ANSI : 0u;
	case CLI_QR_ANSI:
		return IG_QRF_ANSI;
	case CLI_QR_INVERTED:
		return IG_QRF_INVERT;
	case CLI_QR_PLAIN:
	case CLI_QR_NONE:
	case CLI_QR_COUNT:
		break;
	}
	return 0u;
}

/*
 * Draws uri as a QR code into a buffer of its own (*out, *outlen; NULL and
 * 0 for --qr none). The caller wipes and frees it. Returns 0 or an IG_E*
 * code.
 */
static int
cli_qr_draw(const char *uri, enum cli_qr mode, char **out, size_t *outlen)
{
	size_t need = 0;
	*out = NULL;
	*outlen = 0;
	if (mode == CLI_QR_NONE)
		return 0;
	unsigned flags = cli_qr_flags(mode);
	int rc = ig_qr_render_buf(uri, flags, NULL, 0, &need);
	if (rc != IG_ETOOLONG || need == 0)
		return rc != 0 ? rc : IG_EINVAL;
	char *buf = malloc(need + 1);
	if (buf == NULL)
		return IG_ENOMEM;
	if ((rc = ig_qr_render_buf(uri, flags, buf, need + 1, outlen)) != 0) {
		mbedtls_platform_zeroize(buf, need + 1);
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/*
 * Draws a secret, stores the enrolment and shows the secret once: the
 * otpauth URI (which an app imports), the secret in base32 groups of four
 * (which a person types), and the URI as a QR code. Everything is built
 * before the store is touched; if the output cannot be written, the
 * enrolment is removed again (a secret nobody saw would lock the user out
 * of new app passwords).
 */
static int
cli_enroll(const struct ig_storecli *c, const struct cli_opts *o)
{
	const char *issuer = o->issuer != NULL ? o->issuer : CLI_ISSUER_DEFAULT;
	uint8_t secret[IG_TOTP_SECRET_LEN];
	char uri[IG_TOTP_URI_MAX(CLI_ISSUER_MAX, IG_USER_MAX)];
	char b32[IG_BASE32_ENC_LEN(IG_TOTP_SECRET_LEN) + 1];
	char groups[sizeof(b32) + sizeof(b32) / 4 + 1];
	char head[sizeof(uri) + sizeof(groups) + 2 * IG_USER_MAX + 256];
	char ub[IG_USER_MAX + 1];
	char *qr = NULL;
	size_t urilen = 0, b32len = 0, qrlen = 0;
	int rc = CLI_ERROR, len = 0, hlen = 0;

	ig_storecli_show(c->user, ub, sizeof(ub));
	if (ig_totp_secret_new(secret) != 0) {
		fprintf(stderr, CLI_PROG ": no randomness from the kernel: %s\n", strerror(errno));
		return CLI_ERROR;
	}
	int urc = ig_totp_uri(issuer, c->user, secret, sizeof(secret), uri, sizeof(uri), &urilen);
	if (urc != 0) {
		/* The issuer was checked: the user name has a ':' (the label's
		   separator) or a control byte. */
		fprintf(stderr, CLI_PROG ": %s cannot go into an otpauth URI (a user name with "
		    "':' or a control character)\n", ub);
		goto out;
	}
	(void)ig_base32_encode(secret, sizeof(secret), b32, sizeof(b32), &b32len);
	size_t g = 0;
	for (size_t i = 0; i < b32len; i++) {
		if (i > 0 && i % 4 == 0)
			groups[g++] = ' ';
		groups[g++] = b32[i];
	}
	groups[g] = '\0';
	int qrc = cli_qr_draw(uri, o->qr_mode, &qr, &qrlen);
	if (qrc != 0) {
		fprintf(stderr, CLI_PROG ": cannot draw the QR code: %s (--qr none leaves it "
		    "out)\n", ig_strerror(qrc));
		goto out;
	}
	hlen = snprintf(head, sizeof(head),
	    "user:      %s\n"
	    "issuer:    %s\n"
	    "secret:    %s\n"
	    "uri:       %s\n"
	    "\n", ub, issuer, groups, uri);
	if (hlen < 0 || (size_t)hlen >= sizeof(head)) {
		fprintf(stderr, CLI_PROG ": internal error: output too long\n");
		goto out;
	}

	int src = ig_apppass_store_totp_enroll(c->st, c->user, secret, sizeof(secret),
	    (int64_t)time(NULL), o->force);
	if (src == IG_EEXIST) {
		fprintf(stderr, CLI_PROG ": %s is enrolled already: --force replaces the secret "
		    "(the authenticator app's entry stops working; scan the new one)\n", ub);
		goto out;
	}
	if (src != 0) {
		fprintf(stderr, CLI_PROG ": %s: cannot enroll: %s\n", c->cfg->apppass.store,
		    ig_apppass_store_error(c->st));
		goto out;
	}

	/* The one place the secret is shown: written, then wiped (out:). */
	char foot[512 + IG_USER_MAX];
	len = snprintf(foot, sizeof(foot),
	    "%s"
	    "Scan the QR code with the user's authenticator app, or type the secret\n"
	    "(time-based, SHA-1, 6 digits, 30 s). It is shown only this once.\n"
	    "From now on, imapguard apppass add %s needs --totp CODE.\n",
	    qrlen > 0 ? "\n" : "", ub);
	int wrc = ig_storecli_write_out(head, (size_t)hlen);
	if (wrc == 0 && qrlen > 0)
		wrc = ig_storecli_write_out(qr, qrlen);
	if (wrc == 0 && len > 0 && (size_t)len < sizeof(foot))
		wrc = ig_storecli_write_out(foot, (size_t)len);
	if (wrc != 0) {
		int werr = errno;
		/* Stored but never seen: removed at once. */
		int rrc = ig_apppass_store_totp_remove(c->st, c->user);
		fprintf(stderr, CLI_PROG ": cannot write the secret (%s): the enrolment of %s "
		    "%s\n", strerror(werr), ub, rrc == 0 ? "was removed: enroll again" :
		    "was NOT removed: remove it");
		goto out;
	}
	rc = CLI_OK;
out:
	mbedtls_platform_zeroize(secret, sizeof(secret));
	mbedtls_platform_zeroize(uri, sizeof(uri));
	mbedtls_platform_zeroize(b32, sizeof(b32));
	mbedtls_platform_zeroize(groups, sizeof(groups));
	mbedtls_platform_zeroize(head, sizeof(head));
	if (qr != NULL) {
		mbedtls_platform_zeroize(qr, qrlen);
		free(qr);
	}
	return rc;
}

/* ---- remove, status ----------------------------------------------------- */

static int
cli_remove(const struct ig_storecli *c)
{
	char ub[IG_USER_MAX + 1];
	int rc = c->st != NULL ? ig_apppass_store_totp_remove(c->st, c->user) : IG_ENOTFOUND;
	ig_storecli_show(c->user, ub, sizeof(ub));
	if (rc == IG_ENOTFOUND) {
		fprintf(stderr, CLI_PROG ": %s is not enrolled\n", ub);
		return CLI_NOTFOUND;
	}
	if (rc != 0) {
		fprintf(stderr, CLI_PROG ": cannot remove: %s\n", ig_apppass_store_error(c->st));
		return CLI_ERROR;
	}
	printf("removed the TOTP enrolment of %s: apppass add no longer asks for a code\n", ub);
	return CLI_OK;
}

/* One line of status. */
static int
cli_status_row(const struct ig_apppass_totp_entry *e, void *arg)
{
	char ub[IG_USER_MAX + 1], t1[32], t2[32];
	int *width = arg;
	uint64_t last = e->last_step;
	/* The start of the step accepted last: when that code was shown. */
	int64_t at = last > 0 && last <= (uint64_t)INT64_MAX / IG_TOTP_PERIOD ?
	    (int64_t)(last * IG_TOTP_PERIOD) : 0;
	printf("%-*s  %-20s  %s\n", *width, ig_storecli_show(e->user, ub, sizeof(ub)),
	    ig_storecli_time(e->created, "-", t1, sizeof(t1)),
	    ig_storecli_time(at, "-", t2, sizeof(t2)));
	return 0;
}

/* The widest user name, for the first column. */
static int
cli_status_width(const struct ig_apppass_totp_entry *e, void *arg)
{
	int *width = arg;
	int n = (int)strlen(e->user);
	if (n > *width)
		*width = n;
	return 0;
}

static int
cli_status(const struct ig_storecli *c, bool one)
{
	const char *user = one ? c->user : NULL;
	char ub[IG_USER_MAX + 1];
	int width = (int)strlen("USER");
	size_t count = 0;
	/* Two passes: the widths, then the lines. */
	int rc = c->st != NULL ? ig_apppass_store_totp_list(c->st, user, cli_status_width,
	    &width, &count) : 0;
	if (rc == 0 && one && count == 0) {
		fprintf(stderr, CLI_PROG ": %s is not enrolled\n",
		    ig_storecli_show(c->user, ub, sizeof(ub)));
		return CLI_NOTFOUND;
	}
	if (rc == 0) {
		printf("%-*s  %-20s  %s\n", width, "USER", "ENROLLED", "LAST-CODE");
		if (count > 0)
			rc = ig_apppass_store_totp_list(c->st, user, cli_status_row, &width, NULL);
	}
	if (rc != 0) {
		fprintf(stderr, CLI_PROG ": cannot list: %s\n", ig_apppass_store_error(c->st));
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* ---- main --------------------------------------------------------------- */

enum cli_cmd { CLI_ENROLL, CLI_REMOVE, CLI_STATUS, CLI_CMD_COUNT };

#define CLI_PROCEED (-1)
/* Parses the command line into o, the command and its words. Returns
 * CLI_PROCEED, or an exit status (usage printed). */
static int
cli_parse(int argc, char **argv, struct cli_opts *o, enum cli_cmd *cmd, char ***words,
    int *nwords)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "issuer", required_argument, NULL, 'I' },
		{ "force", no_argument, NULL, 'f' },
		{ "qr", required_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'I': o->issuer = optarg; break;
		case 'f': o->force = true; break;
		case 'Q': o->qr = optarg; break;
		case 'h': return cli_usage(stdout, true, CLI_OK);
		default: return cli_usage(stderr, false, CLI_ERROR);
		}
	}
	const char *name;
	if (!ig_storecli_words(CLI_PROG, argc, argv, o->config, &name, words, nwords))
		return cli_usage(stderr, false, CLI_ERROR);
	bool enroll_opts = o->issuer != NULL || o->force || o->qr != NULL;
	const char *bad = NULL;
	o->qr_mode = CLI_QR_COUNT;
	for (int i = 0; i < CLI_QR_COUNT; i++)
		if (strcmp(o->qr != NULL ? o->qr : "auto", cli_qr_names[i]) == 0)
			o->qr_mode = (enum cli_qr)i;
	if (strcmp(name, "enroll") == 0) {
		*cmd = CLI_ENROLL;
		if (*nwords != 1)
			bad = "enroll takes one USER";
		else if (o->issuer != NULL && !cli_issuer_ok(o->issuer))
			bad = "--issuer takes 1 to 64 bytes without ':' or control characters";
		else if (o->qr_mode == CLI_QR_COUNT)
			bad = "--qr takes auto, ansi, plain, inverted or none";
	} else if (strcmp(name, "remove") == 0) {
		*cmd = CLI_REMOVE;
		if (*nwords != 1 || enroll_opts)
			bad = "remove takes one USER and no option but -c";
	} else if (strcmp(name, "status") == 0) {
		*cmd = CLI_STATUS;
		if (*nwords > 1 || enroll_opts)
			bad = "status takes at most one USER and no option but -c";
	} else {
		bad = "unknown command (enroll, remove or status)";
	}
	if (bad != NULL) {
		fprintf(stderr, CLI_PROG ": %s\n", bad);
		return cli_usage(stderr, false, CLI_ERROR);
	}
	return CLI_PROCEED;
}

int
ig_totp_cli_main(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	enum cli_cmd cmd = CLI_CMD_COUNT;
	char **words = NULL;
	int nwords = 0;
	int rc = cli_parse(argc, argv, &o, &cmd, &words, &nwords);
	if (rc != CLI_PROCEED)
		return rc;
	struct ig_storecli c;
	/* Only enroll creates the store: a missing one has nobody enrolled. */
	rc = ig_storecli_open(&c, CLI_PROG, o.config, nwords == 1 ? words[0] : NULL,
	    cmd == CLI_ENROLL);
	if (rc != 0)
		return rc;
	switch (cmd) {
	case CLI_ENROLL:
		rc = cli_enroll(&c, &o);
		break;
	case CLI_REMOVE:
		rc = cli_remove(&c);
		break;
	case CLI_STATUS:
		rc = cli_status(&c, nwords == 1);
		break;
	case CLI_CMD_COUNT:
		break;
	}
	rc = ig_storecli_finish(&c, rc);
	ig_storecli_close(&c);
	return rc;
}
