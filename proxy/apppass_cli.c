/*
 * `imapguard apppass` (see proxy/apppass_cli.h): options, the commands
 * add, list and revoke over apppass/store.h, and their output.
 */
#include "proxy/apppass_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "apppass/hash.h"
#include "apppass/password.h"
#include "apppass/store.h"
#include "apppass/totp.h"
#include "config/config.h"
#include "policy/cidr.h"
#include "proxy/storecli.h"
#include "util/err.h"
#include "util/sasl.h"

#define CLI_OK IG_CLI_OK
#define CLI_NOTFOUND IG_CLI_NOTFOUND
#define CLI_ERROR IG_CLI_ERROR
#define CLI_SECOND_FACTOR IG_CLI_SECOND_FACTOR
/* --expires: at most ten years. */
#define CLI_EXPIRES_MAX_S (3650ll * 86400)

static const char cli_synopsis[] =
    "usage: imapguard apppass -c FILE add USER --label LABEL [--expires DURATION]\n"
    "                         [--from NETWORK]... [--totp CODE] [--quiet]\n"
    "       imapguard apppass -c FILE list [USER]\n"
    "       imapguard apppass -c FILE revoke ID\n"
    "       imapguard apppass -c FILE revoke --all USER\n";
static const char cli_help[] =
    "\n"
    "Issues, lists and revokes app passwords in the configuration's\n"
    "app_passwords.store.\n"
    "  -c, --config FILE      configuration file (YAML)\n"
    "      --label LABEL      what the password is for (\"iPhone\"), shown by list\n"
    "      --expires DURATION lifetime: a number with m, h, d or w (90d),\n"
    "                         or never (the default)\n"
    "      --from NETWORK     log in only from these addresses (a CIDR block or\n"
    "                         an address; repeat or separate with commas)\n"
    "      --totp CODE        the user's current TOTP code: required when the user\n"
    "                         is enrolled (imapguard totp enroll)\n"
    "  -q, --quiet            add prints only \"ID PASSWORD\" on one line\n"
    "      --all              revoke every app password of USER\n"
    "Exit status: 0 done, 1 not found, 2 usage, configuration or store error,\n"
    "3 TOTP code missing, wrong or used already (nothing issued).\n";

/* The synopsis (and with help, what each option does); returns rc. */
static int
cli_usage(FILE *f, bool help, int rc)
{
	fputs(cli_synopsis, f);
	if (help)
		fputs(cli_help, f);
	return rc;
}

struct cli_opts {
	const char *config;
	const char *label;
	const char *expires;
	const char **from;               /* --from values, in order */
	size_t nfrom;
	bool quiet;
	bool all;
	const char *totp;                /* --totp as typed; NULL when absent */
	char totp_buf[IG_TOTP_DIGITS + 1]; /* its digits (spaces dropped) */
	int64_t lifetime;                /* --expires, seconds; 0 = never */
	char nets[IG_APPPASS_NETWORKS_TEXT_MAX + 1]; /* --from, canonical */
};

/* ---- values ------------------------------------------------------------- */

/* "90d", "12h", "30m", "2w" or "never" (0) into seconds. */
static int
cli_parse_expires(const char *s, int64_t *out)
{
	static const struct { char unit; int64_t seconds; } units[] = {
		{ 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
	};
	if (strcmp(s, "never") == 0) {
		*out = 0;
		return 0;
	}
	size_t digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 9 || s[digits] == '\0' || s[digits + 1] != '\0')
		return IG_EINVAL;
	int64_t n = 0;
	for (size_t i = 0; i < digits; i++)
		n = n * 10 + (s[i] - '0');
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (s[digits] == units[i].unit) {
			n *= units[i].seconds;
			if (n == 0 || n > CLI_EXPIRES_MAX_S)
				return IG_EINVAL;
			*out = n;
			return 0;
		}
	return IG_EINVAL;
}

/*
 * The --from values (each a CIDR block or an address, or several separated
 * by commas) into canonical text "a/n,b/m" (the store's networks). Returns
 * 0, or IG_EINVAL with the message printed.
 */
static int
cli_networks(const struct cli_opts *o, char *out, size_t outsz)
{
	size_t len = 0, blocks = 0;
	out[0] = '\0';
	for (size_t i = 0; i < o->nfrom; i++) {
		char *copy = strdup(o->from[i]), *save = NULL;
		if (copy == NULL) {
			fprintf(stderr, "imapguard apppass: out of memory\n");
			return IG_EINVAL;
		}
		bool any = false;
		for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			struct ig_cidr c;
			char text[64];
			any = true;
			if (ig_cidr_parse(tok, &c) != 0) {
				fprintf(stderr, "imapguard apppass: --from %s: not an address or CIDR "
				    "block (a.b.c.d/n or x:y::z/n, without host bits below the "
				    "prefix)\n", tok);
				free(copy);
				return IG_EINVAL;
			}
			ig_cidr_format(&c, text, sizeof(text));
			int n = snprintf(out + len, outsz - len, "%s%s", len > 0 ? "," : "", text);
			if (++blocks > IG_APPPASS_NETWORKS_MAX || n < 0 || (size_t)n >= outsz - len) {
				fprintf(stderr, "imapguard apppass: --from: at most %d networks\n",
				    IG_APPPASS_NETWORKS_MAX);
				free(copy);
				return IG_EINVAL;
			}
			len += (size_t)n;
		}
		free(copy);
		if (!any) {
			fprintf(stderr, "imapguard apppass: --from needs a network\n");
			return IG_EINVAL;
		}
	}
	return 0;
}

/* 1..IG_APPPASS_LABEL_MAX bytes without control bytes. */
static bool
cli_label_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > IG_APPPASS_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/*
 * A code as typed ("123456", or "123 456" as apps show it) into its
 * IG_TOTP_DIGITS digits and a NUL. Returns 0, or IG_EINVAL for anything
 * else (the verifier would refuse it as well; this says so before the
 * configuration is even read).
 */
static int
cli_totp_code(const char *s, char out[IG_TOTP_DIGITS + 1])
{
	size_t n = 0;
	for (; *s != '\0'; s++) {
		if (*s == ' ')
			continue;
		if (*s < '0' || *s > '9' || n == IG_TOTP_DIGITS)
			return IG_EINVAL;
		out[n++] = *s;
	}
	out[n] = '\0';
	return n == IG_TOTP_DIGITS ? 0 : IG_EINVAL;
}

/* ---- commands ----------------------------------------------------------- */

/*
 * The second factor of add: for a user enrolled with `imapguard totp
 * enroll`, code (digits, or NULL when --totp was not given) must be the
 * current code of the user's authenticator (one step of drift either way)
 * and never used before. The step it matched is recorded before anything
 * is issued, in one UPDATE that only a greater step passes, so a code
 * issues at most one password, even to two commands racing with it. If the
 * add then fails, the code is spent all the same (the next one works).
 * Returns CLI_OK (go on: verified, or the user is not enrolled and gave no
 * code), CLI_SECOND_FACTOR (missing, wrong or used code), CLI_ERROR (a code
 * for a user who is not enrolled, or a store error). The secret is wiped.
 */
static int
cli_second_factor(struct ig_apppass_store *st, const char *user, const char *code)
{
	uint8_t secret[IG_APPPASS_TOTP_SECRET_MAX];
	size_t len = 0;
	uint64_t last = 0, step = 0, any;
	int rc = ig_apppass_store_totp_get(st, user, secret, &len, &last);
	if (rc == IG_ENOTFOUND && code == NULL)
		return CLI_OK;
	if (rc == IG_ENOTFOUND) {
		/* A help desk that believes it checked a second factor should
		   learn that there is none. */
		fprintf(stderr, "imapguard apppass: %s is not enrolled for TOTP: --totp is not "
		    "needed (or enroll the user first: imapguard totp enroll)\n", user);
		return CLI_ERROR;
	}
	if (rc != 0) {
		fprintf(stderr, "imapguard apppass: cannot read the TOTP enrolment: %s\n",
		    ig_apppass_store_error(st));
		return CLI_ERROR;
	}
	if (code == NULL) {
		mbedtls_platform_zeroize(secret, sizeof(secret));
		fprintf(stderr, "imapguard apppass: %s is enrolled for TOTP: add needs --totp CODE "
		    "(the 6 digits the user's authenticator app shows now); nothing was issued\n",
		    user);
		return CLI_SECOND_FACTOR;
	}
	uint64_t now = (uint64_t)time(NULL);
	struct ig_span sp = { (const uint8_t *)code, strlen(code) };
	rc = ig_totp_verify(secret, len, sp, now, last, &step);
	/* Wrong, or right but used: the operator may know which (the verifier
	   answers both alike; the command line can afford to ask again). */
	bool used = rc == IG_ENOTFOUND && ig_totp_verify(secret, len, sp, now, 0, &any) == 0;
	mbedtls_platform_zeroize(secret, sizeof(secret));
	if (rc == 0) {
		rc = ig_apppass_store_totp_accept(st, user, step);
		used = rc == IG_EEXIST; /* another command took it meanwhile */
		if (rc == 0)
			return CLI_OK;
		if (rc == IG_ENOTFOUND) {
			fprintf(stderr, "imapguard apppass: the TOTP enrolment of %s was removed "
			    "meanwhile; nothing was issued\n", user);
			return CLI_SECOND_FACTOR;
		}
		if (!used) {
			fprintf(stderr, "imapguard apppass: cannot record the TOTP code: %s\n",
			    ig_apppass_store_error(st));
			return CLI_ERROR;
		}
	} else if (rc != IG_ENOTFOUND && rc != IG_EINVAL) {
		fprintf(stderr, "imapguard apppass: cannot check the TOTP code: %s\n",
		    ig_strerror(rc));
		return CLI_ERROR;
	}
	if (used)
		fprintf(stderr, "imapguard apppass: that TOTP code was used already: wait for the "
		    "next one (every %d s); nothing was issued\n", IG_TOTP_PERIOD);
	else
		fprintf(stderr, "imapguard apppass: wrong TOTP code for %s (is the device's clock "
		    "right?); nothing was issued\n", user);
	return CLI_SECOND_FACTOR;
}

static int
cli_add(struct ig_apppass_store *st, const struct ig_config *cfg, const char *user,
    const struct cli_opts *o)
{
	char phc[IG_APPPASS_PHC_MAX + 1];
	const char *nets = o->nets;
	int64_t lifetime = o->lifetime, now = (int64_t)time(NULL);
	struct ig_apppass_pw pw;
	if (ig_apppass_generate(&pw) != 0) {
		fprintf(stderr, "imapguard apppass: no randomness from the kernel: %s\n",
		    strerror(errno));
		return CLI_ERROR;
	}
	int rc = ig_apppass_hash(&cfg->apppass.hash, pw.secret, IG_APPPASS_SECRET_LEN, phc,
	    sizeof(phc));
	if (rc != 0) {
		ig_apppass_wipe(&pw);
		fprintf(stderr, "imapguard apppass: cannot hash the password: %s\n",
		    ig_strerror(rc));
		return CLI_ERROR;
	}
	struct ig_apppass_new n = {
		.user = user, .label = o->label, .networks = nets, .phc = phc,
		.created = now, .expires = lifetime != 0 ? now + lifetime : 0,
	};
	rc = ig_apppass_store_add(st, &n, pw.id);
	if (rc != 0) {
		ig_apppass_wipe(&pw);
		fprintf(stderr, "imapguard apppass: %s: cannot add: %s\n", cfg->apppass.store,
		    ig_apppass_store_error(st));
		return CLI_ERROR;
	}
	/* The one place a password is shown: built here, written, wiped. */
	char text[IG_APPPASS_TEXT_LEN + 1], out[1024 + IG_APPPASS_NETWORKS_TEXT_MAX];
	char tb[32], ub[IG_USER_MAX + 1], lb[IG_APPPASS_LABEL_MAX + 1];
	ig_apppass_format(&pw, text);
	int len;
	if (o->quiet)
		len = snprintf(out, sizeof(out), "%s %s\n", pw.id, text);
	else
		len = snprintf(out, sizeof(out),
		    "id:        %s\n"
		    "user:      %s\n"
		    "label:     %s\n"
		    "expires:   %s\n"
		    "from:      %s\n"
		    "password:  %s\n"
		    "\n"
		    "The password is shown only this once: enter it on the device now.\n",
		    pw.id, ig_storecli_show(user, ub, sizeof(ub)),
		    ig_storecli_show(o->label, lb, sizeof(lb)),
		    ig_storecli_time(n.expires, "never", tb, sizeof(tb)),
		    nets[0] != '\0' ? nets : "anywhere", text);
	int wrc = len > 0 && (size_t)len < sizeof(out) ? ig_storecli_write_out(out, (size_t)len) :
	    -1;
	int werr = errno;
	char id[IG_APPPASS_ID_LEN + 1];
	memcpy(id, pw.id, sizeof(id));
	explicit_bzero(out, sizeof(out));
	explicit_bzero(text, sizeof(text));
	ig_apppass_wipe(&pw);
	if (wrc != 0) {
		/* Stored but never seen: useless, so revoked at once. */
		rc = ig_apppass_store_revoke(st, id, now, NULL, NULL);
		fprintf(stderr, "imapguard apppass: cannot write the password (%s): app "
		    "password %s %s\n", strerror(werr), id, rc == 0 ? "revoked" :
		    "NOT revoked: revoke it");
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* One row of `list`, formatted (columns but the last are one word). */
struct cli_row {
	char *col[9];
};
enum { CLI_COLS = 9 };
static const char *const cli_heads[CLI_COLS] = {
	"ID", "USER", "CREATED", "EXPIRES", "LAST-USED", "LAST-ADDRESS", "FROM", "REVOKED", "LABEL",
};

struct cli_list {
	struct cli_row *rows;
	size_t n, cap;
};

static int
cli_list_row(const struct ig_apppass_entry *e, void *arg)
{
	struct cli_list *l = arg;
	char b[4][32], sb[IG_APPPASS_NETWORKS_TEXT_MAX + 1];
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct cli_row *r = realloc(l->rows, cap * sizeof(*r));
		if (r == NULL)
			return IG_ENOMEM;
		l->rows = r;
		l->cap = cap;
	}
	const char *v[CLI_COLS] = {
		e->id, NULL, ig_storecli_time(e->created, "-", b[0], sizeof(b[0])),
		ig_storecli_time(e->expires, "never", b[1], sizeof(b[1])),
		ig_storecli_time(e->last_used, "-", b[2], sizeof(b[2])),
		e->last_address[0] != '\0' ? e->last_address : "-",
		e->networks[0] != '\0' ? e->networks : "anywhere",
		ig_storecli_time(e->revoked, "-", b[3], sizeof(b[3])), NULL,
	};
	struct cli_row *r = &l->rows[l->n];
	for (int i = 0; i < CLI_COLS; i++) {
		const char *text = v[i];
		if (i == 1)
			text = e->user;
		else if (i == CLI_COLS - 1)
			text = e->label;
		r->col[i] = strdup(ig_storecli_show(text, sb, sizeof(sb)));
		if (r->col[i] == NULL) {
			while (i-- > 0)
				free(r->col[i]);
			return IG_ENOMEM;
		}
	}
	l->n++;
	return 0;
}

static int
cli_list(struct ig_apppass_store *st, const char *user)
{
	struct cli_list l = { NULL, 0, 0 };
	size_t width[CLI_COLS];
	int rc = st != NULL ? ig_apppass_store_list(st, user, cli_list_row, &l, NULL) : 0;
	if (rc != 0) {
		fprintf(stderr, "imapguard apppass: cannot list: %s\n", rc == IG_ENOMEM ?
		    "out of memory" : ig_apppass_store_error(st));
	} else if (user != NULL && l.n == 0) {
		fprintf(stderr, "imapguard apppass: no app password for %s\n", user);
	} else {
		for (int i = 0; i < CLI_COLS; i++) {
			width[i] = strlen(cli_heads[i]);
			for (size_t j = 0; j < l.n; j++)
				if (strlen(l.rows[j].col[i]) > width[i])
					width[i] = strlen(l.rows[j].col[i]);
		}
		for (size_t j = 0; j <= l.n; j++) {
			for (int i = 0; i < CLI_COLS; i++) {
				const char *t = j == 0 ? cli_heads[i] : l.rows[j - 1].col[i];
				if (i == CLI_COLS - 1)
					printf("%s\n", t);
				else
					printf("%-*s  ", (int)width[i], t);
			}
		}
	}
	for (size_t j = 0; j < l.n; j++)
		for (int i = 0; i < CLI_COLS; i++)
			free(l.rows[j].col[i]);
	free(l.rows);
	if (rc != 0)
		return CLI_ERROR;
	return user != NULL && l.n == 0 ? CLI_NOTFOUND : CLI_OK;
}

static int
cli_revoke(struct ig_apppass_store *st, const char *id)
{
	char tb[32];
	int64_t at = 0;
	/* Ids are printed in lower case; one typed in capitals is the same. */
	char norm[IG_APPPASS_ID_LEN + 1] = "";
	size_t n = strlen(id);
	for (size_t i = 0; i < n && i < IG_APPPASS_ID_LEN; i++)
		norm[i] = (char)(id[i] >= 'A' && id[i] <= 'Z' ? id[i] - 'A' + 'a' : id[i]);
	if (n != IG_APPPASS_ID_LEN || !ig_apppass_id_valid(norm)) {
		fprintf(stderr, "imapguard apppass: '%s' is not an app password id (%d symbols "
		    "of %s)\n", id, IG_APPPASS_ID_LEN, IG_APPPASS_ALPHABET);
		return CLI_ERROR;
	}
	bool already = false;
	int rc = st != NULL ? ig_apppass_store_revoke(st, norm, (int64_t)time(NULL), &at,
	    &already) : IG_ENOTFOUND;
	if (rc == IG_ENOTFOUND) {
		fprintf(stderr, "imapguard apppass: no app password with id %s\n", norm);
		return CLI_NOTFOUND;
	}
	if (rc != 0) {
		fprintf(stderr, "imapguard apppass: cannot revoke: %s\n",
		    ig_apppass_store_error(st));
		return CLI_ERROR;
	}
	printf("%s %s at %s\n", already ? "already revoked:" : "revoked", norm,
	    ig_storecli_time(at, "-", tb, sizeof(tb)));
	return CLI_OK;
}

static int
cli_revoke_all(struct ig_apppass_store *st, const char *user)
{
	size_t count = 0;
	int rc = st != NULL ? ig_apppass_store_revoke_user(st, user, (int64_t)time(NULL), &count) :
	    IG_ENOTFOUND;
	if (rc == IG_ENOTFOUND) {
		fprintf(stderr, "imapguard apppass: no app password for %s\n", user);
		return CLI_NOTFOUND;
	}
	if (rc != 0) {
		fprintf(stderr, "imapguard apppass: cannot revoke: %s\n",
		    ig_apppass_store_error(st));
		return CLI_ERROR;
	}
	printf("revoked %zu app password%s of %s\n", count, count == 1 ? "" : "s", user);
	return CLI_OK;
}

/* ---- main --------------------------------------------------------------- */

enum cli_cmd { CLI_ADD, CLI_LIST, CLI_REVOKE, CLI_CMD_COUNT };

/* Parses the command line into o, the command and its words. Returns
 * CLI_PROCEED, or an exit status (usage printed). */
#define CLI_PROCEED (-1)
static int
cli_parse(int argc, char **argv, struct cli_opts *o, enum cli_cmd *cmd, char ***words,
    int *nwords)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "label", required_argument, NULL, 'L' },
		{ "expires", required_argument, NULL, 'E' },
		{ "from", required_argument, NULL, 'F' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "all", no_argument, NULL, 'A' },
		{ "totp", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'L': o->label = optarg; break;
		case 'E': o->expires = optarg; break;
		case 'F': o->from[o->nfrom++] = optarg; break;
		case 'q': o->quiet = true; break;
		case 'A': o->all = true; break;
		case 'T': o->totp = optarg; break;
		case 'h': return cli_usage(stdout, true, CLI_OK);
		default: return cli_usage(stderr, false, CLI_ERROR);
		}
	}
	const char *name;
	if (!ig_storecli_words("imapguard apppass", argc, argv, o->config, &name, words, nwords))
		return cli_usage(stderr, false, CLI_ERROR);
	bool add_opts = o->label != NULL || o->expires != NULL || o->nfrom > 0 || o->quiet ||
	    o->totp != NULL;
	const char *bad = NULL;
	if (strcmp(name, "add") == 0) {
		*cmd = CLI_ADD;
		if (*nwords != 1 || o->all)
			bad = "add takes one USER (and not --all)";
		else if (o->label == NULL)
			bad = "add needs --label (what the password is for: \"iPhone\")";
		else if (!cli_label_ok(o->label))
			bad = "--label takes 1 to 64 bytes without control characters";
		else if (o->expires != NULL && cli_parse_expires(o->expires, &o->lifetime) != 0) {
			fprintf(stderr, "imapguard apppass: --expires %s: expected never or a number "
			    "with m, h, d or w, up to 3650d (e.g. 90d)\n", o->expires);
			return CLI_ERROR;
		} else if (cli_networks(o, o->nets, sizeof(o->nets)) != 0)
			return CLI_ERROR;
		else if (o->totp != NULL && cli_totp_code(o->totp, o->totp_buf) != 0)
			bad = "--totp takes the 6 digits the user's authenticator app shows";
	} else if (strcmp(name, "list") == 0) {
		*cmd = CLI_LIST;
		if (*nwords > 1 || add_opts || o->all)
			bad = "list takes at most one USER and no option but -c";
	} else if (strcmp(name, "revoke") == 0) {
		*cmd = CLI_REVOKE;
		if (*nwords != 1 || add_opts)
			bad = o->all ? "revoke --all takes one USER" : "revoke takes one ID "
			    "(or --all USER)";
	} else {
		bad = "unknown command (add, list or revoke)";
	}
	if (bad != NULL) {
		fprintf(stderr, "imapguard apppass: %s\n", bad);
		return cli_usage(stderr, false, CLI_ERROR);
	}
	return CLI_PROCEED;
}

int
ig_apppass_cli_main(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	enum cli_cmd cmd = CLI_CMD_COUNT;
	char **words = NULL;
	int nwords = 0;
	/* At most one --from per argument. */
	o.from = calloc((size_t)argc + 1, sizeof(*o.from));
	if (o.from == NULL) {
		fprintf(stderr, "imapguard apppass: out of memory\n");
		return CLI_ERROR;
	}
	int rc = cli_parse(argc, argv, &o, &cmd, &words, &nwords);
	if (rc != CLI_PROCEED) {
		free(o.from);
		return rc;
	}
	struct ig_storecli c;
	const char *uarg = cmd == CLI_ADD || (cmd == CLI_LIST && nwords == 1) ||
	    (cmd == CLI_REVOKE && o.all) ? words[0] : NULL;
	/* Only add creates the store: a missing one is an empty one. */
	rc = ig_storecli_open(&c, "imapguard apppass", o.config, uarg, cmd == CLI_ADD);
	if (rc != 0)
		goto out;
	switch (cmd) {
	case CLI_ADD:
		rc = cli_second_factor(c.st, c.user, o.totp != NULL ? o.totp_buf : NULL);
		if (rc == CLI_OK)
			rc = cli_add(c.st, c.cfg, c.user, &o);
		break;
	case CLI_LIST:
		rc = cli_list(c.st, uarg != NULL ? c.user : NULL);
		break;
	case CLI_REVOKE:
		rc = o.all ? cli_revoke_all(c.st, c.user) : cli_revoke(c.st, words[0]);
		break;
	case CLI_CMD_COUNT:
		break;
	}
	rc = ig_storecli_finish(&c, rc);
	ig_storecli_close(&c);
out:
	mbedtls_platform_zeroize(o.totp_buf, sizeof(o.totp_buf));
	free(o.from);
	return rc;
}
