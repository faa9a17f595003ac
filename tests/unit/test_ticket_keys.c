/*
 * Unit tests for crypto/ticket_keys.c (the key file's parser and formatter:
 * {input, expected} rows for good files and for every refusal with its
 * line, column and reason) and crypto/ticket_key_file.c (the file: modes
 * refused and accepted, its identity, the atomic write of new and rotate,
 * new keys).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <psa/crypto.h>

#include "crypto/ticket_keys.h"
#include "util/err.h"

/*
 * The key line for name n (4 bytes "NAMn"... as given) and a key of bytes
 * fill, fill+1, ... (base64, 48 characters).
 */
static const char *
key_line(const char name[4], uint8_t fill, char out[IG_TICKET_KEY_B64_LEN + 1])
{
	uint8_t raw[IG_TICKET_KEY_RAW_LEN];
	size_t n;
	memcpy(raw, name, 4);
	for (size_t i = 0; i < IG_TICKET_KEY_LEN; i++)
		raw[4 + i] = (uint8_t)(fill + i);
	assert_int_equal(mbedtls_base64_encode((unsigned char *)out, IG_TICKET_KEY_B64_LEN + 1,
	    &n, raw, sizeof(raw)), 0);
	assert_int_equal(n, IG_TICKET_KEY_B64_LEN);
	return out;
}

/* Fixed lines: key "AAAA" (bytes 1..32), "BBBB" (bytes 2..33), "CCCC". */
static char KA[49], KB[49], KC[49];

static int
group_setup(void **state)
{
	(void)state;
	key_line("AAAA", 1, KA);
	key_line("BBBB", 2, KB);
	key_line("CCCC", 3, KC);
	return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	mbedtls_psa_crypto_free();
	return 0;
}

/* Parses text (a printf format over the key lines). */
static int
parse_text(const char *text, struct ig_ticket_keys *k, struct ig_ticket_keys_error *e)
{
	return ig_ticket_keys_parse((const uint8_t *)text, strlen(text), k, e);
}

/* Builds a file's text: %A, %B, %C stand for the key lines. */
static char *
expand(const char *tmpl)
{
	static char buf[8192];
	size_t o = 0;
	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *ins = NULL;
		if (p[0] == '%' && (p[1] == 'A' || p[1] == 'B' || p[1] == 'C'))
			ins = p[1] == 'A' ? KA : p[1] == 'B' ? KB : KC;
		if (ins != NULL) {
			memcpy(buf + o, ins, strlen(ins));
			o += strlen(ins);
			p++;
		} else {
			buf[o++] = *p;
		}
		assert_true(o < sizeof(buf) - 64);
	}
	buf[o] = '\0';
	return buf;
}

struct good_row {
	const char *text;      /* %A %B %C: key lines */
	size_t n;
	const char *names;     /* the names, oldest first, concatenated */
};

static const struct good_row good_rows[] = {
	{ "%A\n", 1, "AAAA" },
	{ "%A", 1, "AAAA" },                                  /* no final LF */
	{ "%A\n%B\n", 2, "AAAABBBB" },
	{ "%A\r\n%B\r\n", 2, "AAAABBBB" },                    /* CRLF */
	{ "# keys\n\n  # indented comment\n\t%A  \n\n%B\t\n# end\n", 2, "AAAABBBB" },
	{ "#%A\n%B\n", 1, "BBBB" },                           /* a key commented out */
	{ "   \n%C\n   ", 1, "CCCC" },
};

static void
test_parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
		const struct good_row *r = &good_rows[i];
		struct ig_ticket_keys k;
		struct ig_ticket_keys_error e;
		int rc = parse_text(expand(r->text), &k, &e);
		if (rc != 0)
			fail_msg("row %zu: %d, line %u col %u: %s", i, rc, e.line, e.col, e.reason);
		assert_int_equal(k.n, r->n);
		for (size_t j = 0; j < k.n; j++) {
			assert_memory_equal(k.k[j].name, r->names + 4 * j, 4);
			/* The key bytes follow the name: fill, fill + 1, ... */
			uint8_t fill = (uint8_t)(r->names[4 * j] - 'A' + 1);
			for (size_t b = 0; b < IG_TICKET_KEY_LEN; b++)
				assert_int_equal(k.k[j].key[b], (uint8_t)(fill + b));
		}
		ig_ticket_keys_wipe(&k);
	}
}

struct bad_row {
	const char *text;
	int rc;
	unsigned line, col;
	const char *reason;
};

static const struct bad_row bad_rows[] = {
	/* too few */
	{ "", IG_EINVAL, 0, 0, "no key in it (make one with `imapguard ticket-key new`)" },
	{ "# only a comment\n\n", IG_EINVAL, 0, 0,
	  "no key in it (make one with `imapguard ticket-key new`)" },
	/* too many */
	{ "%A\n%B\n  %C\n", IG_EINVAL, 3, 3, "more than 2 keys: the file holds the key that "
	  "encrypts (last) and at most one before it that still decrypts" },
	/* bad base64 */
	{ "%A\nKkHpu8jF12D9KZpCrVHGAtq8Y!2DlNe4rWsv9+3/kqPoR2Bf\n", IG_EINVAL, 2, 26,
	  "'!' is not a base64 character" },
	{ "KkHpu8jF12D9KZpCrVHGAtq8YG2DlNe4rWsv9-3_kqPoR2Bf\n", IG_EINVAL, 1, 38,
	  "'-' is base64url, not base64: a key uses A-Z a-z 0-9 + /" },
	{ "KkHpu8jF12D9KZpC rVHGAtq8YG2DlNe4rWsv9+3/kqPoR2Bf\n", IG_EINVAL, 1, 17,
	  "a blank inside a key" },
	{ "KkHpu8jF12D9KZpC=VHGAtq8YG2DlNe4rWsv9+3/kqPoR2Bf\n", IG_EINVAL, 1, 17,
	  "'=' inside a key: base64 padding comes only at its end" },
	{ "KkHpu8jF12D9KZpC\"VHGAtq8YG2DlNe4rWsv9+3/kqPoR2Bf\n", IG_EINVAL, 1, 17,
	  "byte 0x22 is not a base64 character" },
	{ "KkHpu8jF12D9KZpC\xc3\xa9HGAtq8YG2DlNe4rWsv9+3/kqPoR2Bf\n", IG_EINVAL, 1, 17,
	  "byte 0xc3 is not a base64 character" },
	{ "%A\n\x01\n", IG_EINVAL, 2, 1, "control byte 0x01" },
	{ "KkHpu8jF12D9KZpCrVHGAtq8YG2DlNe4rWsv9+3/kqPoR2B\n", IG_EINVAL, 1, 1,
	  "not valid base64 (47 characters: a key is 48)" },
	/* wrong length */
	{ "KkHpu8jF12D9KZpCrVHGAtq8YG2DlNe4rWsv9+3/kqPo\n", IG_EINVAL, 1, 1,
	  "the key decodes to 33 bytes: a key is 36 (a 4-byte name, then a 32-byte AES-256 key)" },
	{ "KkHpu8jF12D9KZpCrVHGAtq8YG2DlNe4rWsv9+3/kqPoR2BfKkHp\n", IG_EINVAL, 1, 1,
	  "the key decodes to 39 bytes: a key is 36 (a 4-byte name, then a 32-byte AES-256 key)" },
	{ "QUFBQQ==\n", IG_EINVAL, 1, 1,
	  "the key decodes to 4 bytes: a key is 36 (a 4-byte name, then a 32-byte AES-256 key)" },
	/* HAProxy's 80-byte keys are not ours (and nor is their ticket format). */
	{ "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/"
	  "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVY=\n", IG_EINVAL, 1, 1,
	  "the key decodes to 80 bytes: a key is 36 (a 4-byte name, then a 32-byte AES-256 key)" },
	/* two keys, one name */
	{ "%A\n\n%A\n", IG_EINVAL, 3, 1, "same key name as the key on line 1: names select "
	  "the key that decrypts a ticket" },
	/* all zero */
	{ "QUFBQQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", IG_EINVAL, 1, 1,
	  "the key is all zero bytes (make keys with `imapguard ticket-key new`)" },
};

static void
test_parse_bad(void **state)
{
	(void)state;
	unsigned bad = 0;
	for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		const struct bad_row *r = &bad_rows[i];
		struct ig_ticket_keys k;
		struct ig_ticket_keys_error e;
		memset(&k, 0x5a, sizeof(k));
		int rc = parse_text(expand(r->text), &k, &e);
		if (rc != r->rc || e.line != r->line || e.col != r->col ||
		    strcmp(e.reason, r->reason) != 0) {
			print_error("row %zu: rc %d line %u col %u: %s\n want rc %d line %u col %u: "
			    "%s\n", i, rc, e.line, e.col, e.reason, r->rc, r->line, r->col, r->reason);
			bad++;
		}
		/* Refused: nothing of it is left in out. */
		static const struct ig_ticket_keys zero;
		assert_memory_equal(&k, &zero, sizeof(k));
	}
	assert_int_equal(bad, 0);
}

static void
test_parse_too_large(void **state)
{
	(void)state;
	static uint8_t big[IG_TICKET_KEY_FILE_MAX + 1];
	memset(big, '#', sizeof(big));
	struct ig_ticket_keys k;
	struct ig_ticket_keys_error e;
	assert_int_equal(ig_ticket_keys_parse(big, sizeof(big), &k, &e), IG_ETOOLONG);
	assert_string_equal(e.reason, "larger than 4096 bytes");
	/* The largest allowed size is parsed (a comment, then a key). */
	big[IG_TICKET_KEY_FILE_MAX - 50] = '\n';
	memcpy(big + IG_TICKET_KEY_FILE_MAX - 49, KA, 48);
	big[IG_TICKET_KEY_FILE_MAX - 1] = '\n';
	assert_int_equal(ig_ticket_keys_parse(big, IG_TICKET_KEY_FILE_MAX, &k, &e), 0);
	assert_int_equal(k.n, 1);
}

static void
test_parse_nul(void **state)
{
	(void)state;
	static const char text[] = "# a NUL \0 in a comment\n";
	struct ig_ticket_keys k;
	struct ig_ticket_keys_error e;
	assert_int_equal(ig_ticket_keys_parse((const uint8_t *)text, sizeof(text) - 1, &k, &e),
	    IG_EINVAL);
	assert_int_equal(e.line, 1);
	assert_int_equal(e.col, 9);
	assert_string_equal(e.reason, "control byte 0x00");
}

static void
test_strerror(void **state)
{
	(void)state;
	char buf[256];
	struct ig_ticket_keys_error e = { 3, 7, "bad" };
	ig_ticket_keys_strerror(&e, buf, sizeof(buf));
	assert_string_equal(buf, "line 3, column 7: bad");
	e.col = 0;
	ig_ticket_keys_strerror(&e, buf, sizeof(buf));
	assert_string_equal(buf, "line 3: bad");
	e.line = 0;
	ig_ticket_keys_strerror(&e, buf, sizeof(buf));
	assert_string_equal(buf, "bad");
}

static void
test_format_roundtrip(void **state)
{
	(void)state;
	struct ig_ticket_keys k, back;
	struct ig_ticket_keys_error e;
	char buf[IG_TICKET_KEY_FILE_MAX], hex[IG_TICKET_KEY_NAME_HEX];
	size_t len;
	assert_int_equal(parse_text(expand("%A\n%B\n"), &k, &e), 0);
	assert_int_equal(ig_ticket_keys_format(&k, buf, sizeof(buf), &len), 0);
	assert_int_equal(strlen(buf), len);
	/* It says which key does what, by name. */
	assert_non_null(strstr(buf, "# key 41414141: decrypts only\n"));
	assert_non_null(strstr(buf, "# key 42424242: encrypts and decrypts\n"));
	assert_int_equal(ig_ticket_keys_parse((const uint8_t *)buf, len, &back, &e), 0);
	assert_memory_equal(&k, &back, sizeof(k));
	/* Too small a buffer, and a wrong count. */
	assert_int_equal(ig_ticket_keys_format(&k, buf, 100, &len), IG_ETOOLONG);
	k.n = 0;
	assert_int_equal(ig_ticket_keys_format(&k, buf, sizeof(buf), &len), IG_EINVAL);
	k.n = 3;
	assert_int_equal(ig_ticket_keys_format(&k, buf, sizeof(buf), &len), IG_EINVAL);
	assert_string_equal(ig_ticket_key_name_hex((const uint8_t *)"\x00\x1a\xff\x80", hex),
	    "001aff80");
}

/* ---- the file ---------------------------------------------------------- */

struct dir {
	char path[64];
};

static int
dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/igtkXXXXXX");
	if (mkdtemp(d->path) == NULL) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

/* Removes the directory and whatever the test left in it. */
static int
dir_teardown(void **state)
{
	struct dir *d = *state;
	DIR *dh = opendir(d->path);
	if (dh != NULL) {
		struct dirent *de;
		char p[64 + 256 + 2];
		while ((de = readdir(dh)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", d->path, de->d_name);
			unlink(p);
		}
		closedir(dh);
	}
	int rc = rmdir(d->path);
	free(d);
	return rc;
}

static void
put_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* Files in the directory now (the temporary files must not stay). */
static unsigned
count_files(const struct dir *d)
{
	unsigned n = 0;
	DIR *dh = opendir(d->path);
	assert_non_null(dh);
	for (struct dirent *de; (de = readdir(dh)) != NULL;)
		n += de->d_name[0] != '.';
	closedir(dh);
	return n;
}

struct mode_row {
	mode_t mode;
	int rc;
	const char *err; /* prefix */
};

static const struct mode_row mode_rows[] = {
	{ 0600, 0, "" },
	{ 0400, 0, "" },
	{ 0640, 0, "" },
	{ 0440, 0, "" },
	{ 0700, 0, "" },
	{ 0644, IG_EINVAL, "mode 0644: other users can read it; ticket keys decrypt every "
	  "resumed session, so the file must be neither readable by other users nor writable "
	  "by its group or others (chmod 600, or 640 with the group imapguard runs as)" },
	{ 0604, IG_EINVAL, "mode 0604: other users can read it;" },
	{ 0602, IG_EINVAL, "mode 0602: other users can write it;" },
	{ 0660, IG_EINVAL, "mode 0660: its group can write it;" },
	{ 0620, IG_EINVAL, "mode 0620: its group can write it;" },
	{ 0601, IG_EINVAL, "mode 0601: other users have access to it;" },
	{ 0666, IG_EINVAL, "mode 0666: other users can read it;" },
};

static void
test_load_modes(void **state)
{
	struct dir *d = *state;
	char path[128], err[512];
	snprintf(path, sizeof(path), "%s/keys", d->path);
	for (size_t i = 0; i < sizeof(mode_rows) / sizeof(mode_rows[0]); i++) {
		const struct mode_row *r = &mode_rows[i];
		struct ig_ticket_keys k;
		struct ig_file_id id;
		put_file(path, expand("%A\n%B\n"), r->mode);
		err[0] = '\0';
		int rc = ig_ticket_keys_load(path, &k, &id, err, sizeof(err));
		if (rc != r->rc || strncmp(err, r->err, strlen(r->err)) != 0)
			fail_msg("mode %04o: rc %d, %s", (unsigned)r->mode, rc, err);
		assert_int_equal(k.n, rc == 0 ? 2 : 0);
		ig_ticket_keys_wipe(&k);
		unlink(path);
	}
}

static void
test_load_errors(void **state)
{
	struct dir *d = *state;
	char path[128], link[128], err[512];
	struct ig_ticket_keys k;
	struct ig_file_id id, id2;
	snprintf(path, sizeof(path), "%s/keys", d->path);
	snprintf(link, sizeof(link), "%s/link", d->path);

	/* Missing, a directory, a FIFO (never opened: it would block). */
	assert_int_equal(ig_ticket_keys_load(path, &k, &id, err, sizeof(err)), IG_EIO);
	assert_string_equal(err, strerror(ENOENT));
	assert_int_equal(ig_ticket_keys_load(d->path, &k, &id, err, sizeof(err)), IG_EINVAL);
	assert_string_equal(err, "not a regular file");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(ig_ticket_keys_load(path, &k, &id, err, sizeof(err)), IG_EINVAL);
	assert_string_equal(err, "not a regular file");
	unlink(path);

	/* Bad content: the line and column. */
	put_file(path, expand("# keys\n%A\n\n%B x\n"), 0600);
	assert_int_equal(ig_ticket_keys_load(path, &k, &id, err, sizeof(err)), IG_EINVAL);
	assert_string_equal(err, "line 4, column 49: a blank inside a key");

	/* Too large. */
	static char big[IG_TICKET_KEY_FILE_MAX + 2];
	memset(big, '#', sizeof(big) - 1);
	put_file(path, big, 0600);
	assert_int_equal(ig_ticket_keys_load(path, &k, &id, err, sizeof(err)), IG_EINVAL);
	assert_string_equal(err, "larger than 4096 bytes: not a key file");

	/* A symbolic link to a good file is followed; its mode is the file's. */
	put_file(path, expand("%C\n"), 0600);
	assert_int_equal(symlink("keys", link), 0);
	assert_int_equal(ig_ticket_keys_load(link, &k, &id, err, sizeof(err)), 0);
	assert_int_equal(k.n, 1);
	assert_memory_equal(k.k[0].name, "CCCC", 4);
	ig_ticket_keys_wipe(&k);

	/* The identity: the same file, then one replaced by rename. */
	assert_int_equal(ig_ticket_keys_stat(path, &id2), 0);
	assert_true(ig_file_id_equal(&id, &id2));
	char other[128];
	snprintf(other, sizeof(other), "%s/other", d->path);
	put_file(other, expand("%C\n"), 0600);
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(ig_ticket_keys_stat(path, &id2), 0);
	assert_false(ig_file_id_equal(&id, &id2));
	/* A chmod alone changes it too (a refused mode, fixed, is read again). */
	assert_int_equal(ig_ticket_keys_stat(path, &id), 0);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL); /* (the inode's ctime has a clock tick's grain) */
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(ig_ticket_keys_stat(path, &id2), 0);
	assert_false(ig_file_id_equal(&id, &id2));
	assert_int_equal(ig_ticket_keys_stat(other, &id2), IG_EIO);
	unlink(link);
	unlink(path);
}

static void
test_write_new_and_rotate(void **state)
{
	struct dir *d = *state;
	char path[128], err[512];
	struct ig_ticket_keys k, got, two;
	struct ig_file_id id;
	struct stat st;
	snprintf(path, sizeof(path), "%s/keys", d->path);

	/* new: one key, mode 600, refused over an existing file. */
	memset(&k, 0, sizeof(k));
	k.n = 1;
	assert_int_equal(ig_ticket_key_generate(&k.k[0], NULL), 0);
	assert_int_equal(ig_ticket_keys_write(path, &k, 0600, (uid_t)-1, (gid_t)-1, true, err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ig_ticket_keys_load(path, &got, &id, err, sizeof(err)), 0);
	assert_memory_equal(&got, &k, sizeof(k));
	assert_int_equal(ig_ticket_keys_write(path, &k, 0600, (uid_t)-1, (gid_t)-1, true, err,
	    sizeof(err)), IG_EINVAL);
	assert_string_equal(err, "it exists already (use rotate to replace its keys)");
	assert_int_equal(count_files(d), 1);

	/* rotate: two keys, a new inode, the mode asked for (640 kept). */
	two = k;
	two.n = 2;
	assert_int_equal(ig_ticket_key_generate(&two.k[1], &k), 0);
	assert_memory_not_equal(two.k[1].name, k.k[0].name, 4);
	assert_int_equal(ig_ticket_keys_write(path, &two, 0640, (uid_t)-1, (gid_t)-1, false,
	    err, sizeof(err)), 0);
	struct ig_file_id id2;
	assert_int_equal(ig_ticket_keys_stat(path, &id2), 0);
	assert_false(ig_file_id_equal(&id, &id2));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(ig_ticket_keys_load(path, &got, &id, err, sizeof(err)), 0);
	assert_memory_equal(&got, &two, sizeof(two));
	assert_int_equal(count_files(d), 1); /* no temporary left behind */

	/* A directory that does not exist: nothing is written. */
	char nodir[160];
	snprintf(nodir, sizeof(nodir), "%s/no/keys", d->path);
	assert_int_equal(ig_ticket_keys_write(nodir, &two, 0600, (uid_t)-1, (gid_t)-1, false,
	    err, sizeof(err)), IG_EIO);
	assert_string_equal(err, "cannot create a temporary file beside it: No such file or "
	    "directory");
	ig_ticket_keys_wipe(&k);
	ig_ticket_keys_wipe(&two);
	ig_ticket_keys_wipe(&got);
	unlink(path);
}

static void
test_generate_avoids_names(void **state)
{
	(void)state;
	struct ig_ticket_keys avoid;
	memset(&avoid, 0, sizeof(avoid));
	avoid.n = 2;
	for (unsigned i = 0; i < 200; i++) {
		struct ig_ticket_key k;
		assert_int_equal(ig_ticket_key_generate(&k, &avoid), 0);
		assert_memory_not_equal(k.name, avoid.k[0].name, 4);
		assert_memory_not_equal(k.name, avoid.k[1].name, 4);
		static const uint8_t zero[IG_TICKET_KEY_LEN];
		assert_memory_not_equal(k.key, zero, sizeof(zero));
		avoid.k[i % 2] = k;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_too_large),
		cmocka_unit_test(test_parse_nul),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test_setup_teardown(test_load_modes, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_load_errors, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_write_new_and_rotate, dir_setup, dir_teardown),
		cmocka_unit_test(test_generate_avoids_names),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
