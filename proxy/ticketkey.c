/*
 * imapguard ticket-key new FILE     a key file with one new key
 * imapguard ticket-key rotate FILE  a new key encrypts, the newest before
 *                                   it still decrypts, the oldest goes
 */
#include "proxy/ticketkey.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <psa/crypto.h>

#include "crypto/ticket_keys.h"

static void
ticketkey_usage(FILE *f)
{
	fprintf(f,
	    "usage: imapguard ticket-key new FILE\n"
	    "       imapguard ticket-key rotate FILE\n"
	    "\n"
	    "Writes a TLS session ticket key file (tls.ticket_key_file) atomically:\n"
	    "a temporary file beside FILE, fsync, then rename.\n"
	    "  new FILE     one new random key; refused when FILE exists. Mode 600,\n"
	    "               owned by whoever runs this.\n"
	    "  rotate FILE  a new random key that encrypts from now on, after the\n"
	    "               newest key of FILE, which still decrypts older tickets;\n"
	    "               the oldest key is dropped. Owner, group and mode (600 or\n"
	    "               640) are kept.\n"
	    "Then copy FILE to every imapguard that shares it: each one reads it\n"
	    "again within seconds of a change (or at SIGHUP), without a reload.\n"
	    "Exit status: 0 written, 1 failed (FILE unchanged), 2 usage.\n");
}

int
ig_ticketkey_main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		ticketkey_usage(stdout);
		return 0;
	}
	if (argc != 3 || (strcmp(argv[1], "new") != 0 && strcmp(argv[1], "rotate") != 0)) {
		ticketkey_usage(stderr);
		return 2;
	}
	bool rotate = strcmp(argv[1], "rotate") == 0;
	const char *path = argv[2];
	if (psa_crypto_init() != PSA_SUCCESS) {
		fprintf(stderr, "imapguard ticket-key: PSA crypto initialisation failed\n");
		return 1;
	}
	struct ig_ticket_keys old, keys;
	struct ig_file_id id;
	char err[300], enc[IG_TICKET_KEY_NAME_HEX], dec[IG_TICKET_KEY_NAME_HEX];
	char gone[IG_TICKET_KEY_NAME_HEX] = "", target[PATH_MAX];
	mode_t mode = 0600;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int status = 1;
	memset(&old, 0, sizeof(old));
	memset(&keys, 0, sizeof(keys));
	if (rotate) {
		/* The same checks as the proxy's: a file it would refuse is not
		   rotated (fix it first). */
		if (ig_ticket_keys_load(path, &old, &id, err, sizeof(err)) != 0) {
			fprintf(stderr, "imapguard ticket-key: cannot rotate %s: %s\n", path, err);
			goto out;
		}
		/* Through a symbolic link, the file it points to is replaced
		   (beside it), and the link stays. */
		if (realpath(path, target) == NULL) {
			fprintf(stderr, "imapguard ticket-key: cannot rotate %s: %s\n", path,
			    strerror(errno));
			goto out;
		}
		struct stat st;
		if (stat(target, &st) != 0) {
			fprintf(stderr, "imapguard ticket-key: cannot rotate %s: %s\n", path,
			    strerror(errno));
			goto out;
		}
		/* Whoever the proxy runs as must still read it. */
		mode = st.st_mode & 0640;
		if (st.st_uid != geteuid())
			uid = st.st_uid;
		if (st.st_gid != getegid())
			gid = st.st_gid;
		keys.k[0] = old.k[old.n - 1];
		if (old.n > 1)
			ig_ticket_key_name_hex(old.k[0].name, gone);
		keys.n = 2;
	} else {
		keys.n = 1;
	}
	if (ig_ticket_key_generate(&keys.k[keys.n - 1], &old) != 0) {
		fprintf(stderr, "imapguard ticket-key: no random bytes for a key\n");
		goto out;
	}
	if (ig_ticket_keys_write(rotate ? target : path, &keys, mode, uid, gid, !rotate, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "imapguard ticket-key: cannot write %s: %s\n", path, err);
		goto out;
	}
	ig_ticket_key_name_hex(keys.k[keys.n - 1].name, enc);
	if (rotate)
		printf("%s: key %s encrypts, key %s decrypts%s%s%s\n", path, enc,
		    ig_ticket_key_name_hex(keys.k[0].name, dec), gone[0] ? ", key " : "", gone,
		    gone[0] ? " dropped" : "");
	else
		printf("%s: key %s encrypts (mode %03o)\n", path, enc, (unsigned)mode);
	printf("copy it to every imapguard that shares it: each reads it within seconds "
	    "(or at SIGHUP)\n");
	status = 0;
out:
	ig_ticket_keys_wipe(&old);
	ig_ticket_keys_wipe(&keys);
	mbedtls_psa_crypto_free();
	return status;
}
