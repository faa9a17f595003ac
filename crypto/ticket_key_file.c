/*
 * The ticket key file itself (crypto/ticket_keys.h): its checks and read,
 * its identity, new keys and the atomic write. The bytes go through the
 * pure parser and formatter of ticket_keys.c.
 */
#include "crypto/ticket_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#include "util/err.h"

static void
tkf_id_of(const struct stat *st, struct ig_file_id *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	id->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

bool
ig_file_id_equal(const struct ig_file_id *a, const struct ig_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

int
ig_ticket_keys_stat(const char *path, struct ig_file_id *id)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return IG_EIO;
	tkf_id_of(&st, id);
	return 0;
}

/*
 * A regular file that its group and others cannot write and others cannot
 * read. Returns true, or false with the reason in err.
 */
static bool
tkf_acceptable(const struct stat *st, char *err, size_t errsz)
{
	mode_t m = st->st_mode;
	if (!S_ISREG(m)) {
		snprintf(err, errsz, "not a regular file");
		return false;
	}
	if ((m & (S_IRWXO | S_IWGRP)) == 0)
		return true;
	snprintf(err, errsz, "mode %04o: %s; ticket keys decrypt every resumed session, so "
	    "the file must be neither readable by other users nor writable by its group or "
	    "others (chmod 600, or 640 with the group imapguard runs as)",
	    (unsigned)(m & 07777), (m & S_IROTH) ? "other users can read it" :
	    (m & S_IWOTH) ? "other users can write it" : (m & S_IWGRP) ?
	    "its group can write it" : "other users have access to it");
	return false;
}

int
ig_ticket_keys_load(const char *path, struct ig_ticket_keys *out, struct ig_file_id *id,
    char *err, size_t errsz)
{
	struct stat st;
	memset(out, 0, sizeof(*out));
	/* stat first: opening a FIFO or a device could block or have effects. */
	if (stat(path, &st) != 0) {
		snprintf(err, errsz, "%s", strerror(errno));
		return IG_EIO;
	}
	if (!tkf_acceptable(&st, err, errsz))
		return IG_EINVAL;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsz, "%s", strerror(errno));
		return IG_EIO;
	}
	/* What was opened is what counts (it may have been replaced since). */
	if (fstat(fd, &st) != 0) {
		snprintf(err, errsz, "%s", strerror(errno));
		close(fd);
		return IG_EIO;
	}
	if (!tkf_acceptable(&st, err, errsz)) {
		close(fd);
		return IG_EINVAL;
	}
	uint8_t buf[IG_TICKET_KEY_FILE_MAX + 1];
	size_t n = 0;
	int rc = 0;
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errsz, "%s", strerror(errno));
			rc = IG_EIO;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (rc == 0 && n > IG_TICKET_KEY_FILE_MAX) {
		snprintf(err, errsz, "larger than %d bytes: not a key file", IG_TICKET_KEY_FILE_MAX);
		rc = IG_EINVAL;
	}
	if (rc == 0) {
		struct ig_ticket_keys_error pe;
		rc = ig_ticket_keys_parse(buf, n, out, &pe);
		if (rc != 0) {
			ig_ticket_keys_strerror(&pe, err, errsz);
			rc = IG_EINVAL;
		}
	}
	mbedtls_platform_zeroize(buf, sizeof(buf));
	if (rc == 0)
		tkf_id_of(&st, id);
	return rc;
}

int
ig_ticket_key_generate(struct ig_ticket_key *out, const struct ig_ticket_keys *avoid)
{
	for (;;) {
		if (psa_generate_random(out->name, sizeof(out->name)) != PSA_SUCCESS ||
		    psa_generate_random(out->key, sizeof(out->key)) != PSA_SUCCESS) {
			mbedtls_platform_zeroize(out, sizeof(*out));
			return IG_EIO;
		}
		bool taken = false;
		for (size_t i = 0; avoid != NULL && i < avoid->n; i++)
			taken |= memcmp(avoid->k[i].name, out->name, sizeof(out->name)) == 0;
		if (!taken)
			return 0; /* (32 zero bytes from a working generator: never) */
	}
}

/* Makes a rename or link in path's directory durable; best effort (some
 * file systems refuse fsync on a directory). */
static void
tkf_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)fsync(fd);
	close(fd);
}

static int
tkf_write_all(int fd, const char *b, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, b, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return IG_EIO;
		b += w;
		len -= (size_t)w;
	}
	return 0;
}

int
ig_ticket_keys_write(const char *path, const struct ig_ticket_keys *keys, mode_t mode,
    uid_t uid, gid_t gid, bool excl, char *err, size_t errsz)
{
	char tmp[PATH_MAX];
	struct stat st;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		snprintf(err, errsz, "%s", strerror(ENAMETOOLONG));
		return IG_EIO;
	}
	if (excl && lstat(path, &st) == 0) {
		snprintf(err, errsz, "it exists already (use rotate to replace its keys)");
		return IG_EINVAL;
	}
	char buf[IG_TICKET_KEY_FILE_MAX];
	size_t len = 0;
	int rc = ig_ticket_keys_format(keys, buf, sizeof(buf), &len);
	if (rc != 0) {
		snprintf(err, errsz, "cannot format the keys: %s", ig_strerror(rc));
		return rc;
	}
	/* mkostemp creates it 0600, ours alone, and never follows a link. */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsz, "cannot create a temporary file beside it: %s", strerror(errno));
		mbedtls_platform_zeroize(buf, sizeof(buf));
		return IG_EIO;
	}
	const char *step = "";
	if (fchmod(fd, mode) != 0)
		step = "setting its mode";
	else if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0)
		step = "keeping the owner and group";
	else if (tkf_write_all(fd, buf, len) != 0)
		step = "writing";
	else if (fsync(fd) != 0)
		step = "syncing";
	int e = errno;
	mbedtls_platform_zeroize(buf, sizeof(buf));
	if (close(fd) != 0 && step[0] == '\0') {
		step = "closing";
		e = errno;
	}
	if (step[0] == '\0') {
		if (excl && link(tmp, path) != 0) {
			step = "linking it into place";
			e = errno;
		} else if (!excl && rename(tmp, path) != 0) {
			step = "renaming it into place";
			e = errno;
		}
	}
	if (excl || step[0] != '\0')
		unlink(tmp);
	if (step[0] != '\0') {
		if (excl && e == EEXIST) {
			snprintf(err, errsz, "it exists already (use rotate to replace its keys)");
			return IG_EINVAL;
		}
		snprintf(err, errsz, "%s (temporary file %s): %s", step, tmp, strerror(e));
		return IG_EIO;
	}
	tkf_sync_dir(path);
	return 0;
}
