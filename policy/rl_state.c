/*
 * The limiter's state file: ig_rl_snapshot() copies the table into a file
 * image, ig_rl_snapshot_write() seals and writes it atomically, and
 * ig_rl_load() validates every field of a saved image before adopting it.
 */
#include "policy/ratelimit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "policy/cidr.h"
#include "policy/rl_internal.h"
#include "util/err.h"

#define RL_BLOCK_HORIZON_MS (400ull * 24 * 3600 * 1000) /* load sanity */

/*
 * File: header, nentries raw entries (this build's layout, links zeroed),
 * SHA-256 of everything before it. Host byte order: the file belongs to
 * the host and build that wrote it, and anything else is refused.
 */
#define RL_MAGIC "IGRLSTAT"
#define RL_VERSION 1u
#define RL_HDR_SIZE 72

struct rl_hdr {
	uint32_t version, entry_size, set_slots, known_slots, pw_slots, nentries;
	uint64_t saved_ms;
	uint8_t tkey[32];
};

static void
rl_hdr_encode(const struct rl_hdr *h, uint8_t out[RL_HDR_SIZE])
{
	memcpy(out, RL_MAGIC, 8);
	memcpy(out + 8, &h->version, 4);
	memcpy(out + 12, &h->entry_size, 4);
	memcpy(out + 16, &h->set_slots, 4);
	memcpy(out + 20, &h->known_slots, 4);
	memcpy(out + 24, &h->pw_slots, 4);
	memcpy(out + 28, &h->nentries, 4);
	memcpy(out + 32, &h->saved_ms, 8);
	memcpy(out + 40, h->tkey, 32);
}

static bool
rl_hdr_decode(const uint8_t in[RL_HDR_SIZE], struct rl_hdr *h)
{
	if (memcmp(in, RL_MAGIC, 8) != 0)
		return false;
	memcpy(&h->version, in + 8, 4);
	memcpy(&h->entry_size, in + 12, 4);
	memcpy(&h->set_slots, in + 16, 4);
	memcpy(&h->known_slots, in + 20, 4);
	memcpy(&h->pw_slots, in + 24, 4);
	memcpy(&h->nentries, in + 28, 4);
	memcpy(&h->saved_ms, in + 32, 8);
	memcpy(h->tkey, in + 40, 32);
	return h->version == RL_VERSION &&
	    h->entry_size == sizeof(struct rl_entry) &&
	    h->set_slots == IG_RL_SET_SLOTS &&
	    h->known_slots == IG_RL_KNOWN_SLOTS &&
	    h->pw_slots == IG_RL_PW_SLOTS;
}

static bool
rl_saved_kind(const struct rl_entry *e)
{
	return e->kind != RL_K_PASS; /* password-derived: never saved */
}

/* The entry as saved: links cleared, password hashes dropped. */
static void
rl_save_copy(const struct rl_entry *e, struct rl_entry *o)
{
	*o = *e;
	o->hnext = o->lprev = o->lnext = 0;
	o->list = 0;
	if (o->kind == RL_K_USER) {
		memset(o->u.user.pw, 0, sizeof(o->u.user.pw));
		memset(o->u.user.pw_t, 0, sizeof(o->u.user.pw_t));
		o->n2 = 0;
	}
}

struct ig_rl_snapshot {
	uint8_t *buf;                   /* the whole file: header, entries,
	                                   checksum (ig_rl_snapshot_bytes()) */
	size_t len;
	bool sealed;                    /* the checksum is in place */
};

int
ig_rl_snapshot(const struct ig_rl *rl, uint64_t now_ms,
    struct ig_rl_snapshot **out)
{
	static const enum rl_list order[] = { RL_KNOWN, RL_FAIL, RL_BLOCKED };
	const size_t esz = sizeof(struct rl_entry);
	*out = NULL;
	struct rl_hdr h = { RL_VERSION, (uint32_t)esz, IG_RL_SET_SLOTS,
	    IG_RL_KNOWN_SLOTS, IG_RL_PW_SLOTS, 0, now_ms, { 0 } };
	for (size_t l = 0; l < sizeof(order) / sizeof(order[0]); l++)
		for (uint32_t i = rl->list[order[l]].head; i != RL_NIL; i = rl->e[i].lnext)
			if (rl_saved_kind(&rl->e[i]))
				h.nentries++;
	memcpy(h.tkey, rl->tkey, sizeof(h.tkey));

	struct ig_rl_snapshot *snap = calloc(1, sizeof(*snap));
	if (snap == NULL)
		return IG_ENOMEM;
	snap->len = RL_HDR_SIZE + (size_t)h.nentries * esz + 32;
	snap->buf = malloc(snap->len);
	if (snap->buf == NULL) {
		free(snap);
		mbedtls_platform_zeroize(&h, sizeof(h));
		return IG_ENOMEM;
	}
	rl_hdr_encode(&h, snap->buf);
	mbedtls_platform_zeroize(&h, sizeof(h));
	/* Oldest first, so that loading (which pushes at the head) keeps the
	 * recency order and drops the oldest when the capacity is smaller. */
	uint8_t *p = snap->buf + RL_HDR_SIZE;
	for (size_t l = 0; l < sizeof(order) / sizeof(order[0]); l++) {
		for (uint32_t i = rl->list[order[l]].tail; i != RL_NIL;
		    i = rl->e[i].lprev) {
			struct rl_entry o;
			if (!rl_saved_kind(&rl->e[i]))
				continue;
			rl_save_copy(&rl->e[i], &o);
			memcpy(p, &o, esz);
			p += esz;
		}
	}
	memset(p, 0, 32);
	*out = snap;
	return 0;
}

const uint8_t *
ig_rl_snapshot_bytes(struct ig_rl_snapshot *snap, size_t *len)
{
	if (!snap->sealed) {
		if (mbedtls_sha256(snap->buf, snap->len - 32,
		    snap->buf + snap->len - 32, 0) != 0)
			return NULL;
		snap->sealed = true;
	}
	*len = snap->len;
	return snap->buf;
}

static int
rl_write_all(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0)
			errno = EIO;
		if (w <= 0)
			return IG_EIO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Makes a rename in path's directory durable; best effort (some file
 * systems refuse fsync on a directory, and the rename is done anyway). */
static void
rl_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		snprintf(dir, sizeof(dir), ".");
	} else if (slash == path) {
		snprintf(dir, sizeof(dir), "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof(dir))
			return;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)fsync(fd);
	close(fd);
}

int
ig_rl_snapshot_write(struct ig_rl_snapshot *snap, const char *path)
{
	char tmp[PATH_MAX];
	size_t len;
	const uint8_t *b = ig_rl_snapshot_bytes(snap, &len);
	if (b == NULL) {
		errno = EIO;
		return IG_EIO;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return IG_EIO;
	}
	/* One fixed temporary name: a save cut short by a crash leaves at
	 * most one stale file, which the next save replaces. Never followed
	 * if something else put a link there. */
	if (unlink(tmp) != 0 && errno != ENOENT)
		return IG_EIO;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return IG_EIO;
	int rc = fchmod(fd, 0600) == 0 ? 0 : IG_EIO;
	if (rc == 0)
		rc = rl_write_all(fd, b, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = IG_EIO;
	if (close(fd) != 0 && rc == 0)
		rc = IG_EIO;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = IG_EIO;
	if (rc != 0) {
		int e = errno; /* the reason, for the caller's log */
		unlink(tmp);
		errno = e;
	} else {
		rl_sync_dir(path);
	}
	return rc;
}

void
ig_rl_snapshot_free(struct ig_rl_snapshot *snap)
{
	if (snap == NULL)
		return;
	mbedtls_platform_zeroize(snap->buf, snap->len);
	free(snap->buf);
	free(snap);
}

int
ig_rl_save(const struct ig_rl *rl, const char *path, uint64_t now_ms)
{
	struct ig_rl_snapshot *snap;
	int rc = ig_rl_snapshot(rl, now_ms, &snap);
	if (rc != 0)
		return rc;
	rc = ig_rl_snapshot_write(snap, path);
	ig_rl_snapshot_free(snap);
	return rc;
}

static bool
rl_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* Validates one saved entry; fills the keys its id is recomputed from. */
static bool
rl_entry_valid(const struct ig_rl *rl, const struct rl_entry *e, uint64_t now)
{
	const void *uend = memchr(e->user, '\0', sizeof(e->user));
	size_t ulen = uend == NULL ? 0 : (size_t)((const char *)uend - e->user);
	bool has_addr = e->kind == RL_K_ADDR || e->kind == RL_K_USERADDR;
	bool has_user = e->kind == RL_K_USER || e->kind == RL_K_USERADDR ||
	    e->kind == RL_K_KNOWN;

	if (e->kind != RL_K_ADDR && e->kind != RL_K_USER &&
	    e->kind != RL_K_USERADDR && e->kind != RL_K_KNOWN)
		return false;
	if (uend == NULL || (e->flags & ~RL_EF_USER_CUT) != 0)
		return false;
	if (!rl_zero(e->user + ulen, sizeof(e->user) - ulen))
		return false;
	if (e->hnext != 0 || e->lprev != 0 || e->lnext != 0 || e->list != 0)
		return false;
	if (has_user ? ulen == 0 : (ulen != 0 || e->flags != 0))
		return false;
	if ((e->flags & RL_EF_USER_CUT) && ulen != sizeof(e->user) - 1)
		return false;
	if (has_addr) {
		if (e->family == AF_INET) {
			if (e->plen > 32 || !rl_zero(e->addr + 4, 12))
				return false;
		} else if (e->family == AF_INET6) {
			if (e->plen > 128)
				return false;
		} else if (e->family != 0 || e->plen != 0 ||
		    !rl_zero(e->addr, sizeof(e->addr))) {
			return false;
		}
		uint8_t m[16];
		memcpy(m, e->addr, sizeof(m));
		ig_cidr_mask(m, e->family == AF_INET ? 4 : 16, e->plen);
		if (memcmp(m, e->addr, sizeof(m)) != 0)
			return false;
	} else if (e->family != 0 || e->plen != 0 ||
	    !rl_zero(e->addr, sizeof(e->addr))) {
		return false;
	}

	/* Blocks: a limit that belongs to the kind, within a sane horizon. */
	if (e->block_until == 0) {
		if (e->limit != RL_L_NONE || e->block_count != 0 || e->block_thr != 0)
			return false;
	} else {
		bool ok = false;
		switch ((enum rl_lim)e->limit) {
		case RL_L_ADDRESS:
		case RL_L_SPRAY:
			ok = e->kind == RL_K_ADDR;
			break;
		case RL_L_USER:
		case RL_L_CIRCUIT:
			ok = e->kind == RL_K_USER;
			break;
		case RL_L_USER_ADDRESS:
			ok = e->kind == RL_K_USERADDR;
			break;
		case RL_L_PWSPRAY:
		case RL_L_NONE:
		case RL_L_COUNT:
			ok = false;
			break;
		}
		if (!ok || e->block_until > rl_add_sat(now, RL_BLOCK_HORIZON_MS))
			return false;
	}
	if (e->kind == RL_K_KNOWN) {
		if (e->nset != 0 || e->n2 > IG_RL_KNOWN_SLOTS ||
		    e->cur != 0 || e->prev != 0 || e->win_start != 0)
			return false;
	} else if (e->kind == RL_K_ADDR || e->kind == RL_K_USER) {
		if (e->nset > IG_RL_SET_SLOTS || e->n2 != 0)
			return false;
	} else if (e->nset != 0 || e->n2 != 0) {
		return false;
	}

	/* The identity must be the one this material hashes to (a cut user
	 * name cannot be rehashed: its id is taken as saved). */
	if (!(has_user && (e->flags & RL_EF_USER_CUT))) {
		struct rl_keys k;
		uint64_t id[2];
		memset(&k, 0, sizeof(k));
		k.family = e->family;
		k.plen = e->plen;
		memcpy(k.ga, e->addr, sizeof(k.ga));
		k.user = e->user;
		k.ulen = ulen;
		ig_rl_id(rl, (enum rl_kind)e->kind, &k, has_addr, has_user, NULL, 0, id);
		if (id[0] != e->id[0] || id[1] != e->id[1])
			return false;
	}
	return true;
}

int
ig_rl_load_buf(struct ig_rl *rl, const uint8_t *buf, size_t len,
    uint64_t now_ms)
{
	struct rl_hdr h;
	const size_t esz = sizeof(struct rl_entry);
	if (ig_rl_count(rl) != 0)
		return IG_EINVAL;
	if (buf == NULL || len < RL_HDR_SIZE + 32 || !rl_hdr_decode(buf, &h))
		return IG_EINVAL;
	if ((len - RL_HDR_SIZE - 32) % esz != 0 ||
	    (len - RL_HDR_SIZE - 32) / esz != h.nentries)
		return IG_EINVAL;
	uint8_t digest[32];
	if (mbedtls_sha256(buf, len - 32, digest, 0) != 0 ||
	    memcmp(digest, buf + len - 32, 32) != 0)
		return IG_EINVAL;

	uint8_t old_key[32];
	memcpy(old_key, rl->tkey, sizeof(old_key));
	memcpy(rl->tkey, h.tkey, sizeof(rl->tkey));
	int rc = 0;
	for (uint32_t n = 0; n < h.nentries; n++) {
		struct rl_entry e;
		memcpy(&e, buf + RL_HDR_SIZE + (size_t)n * esz, esz);
		if (!rl_entry_valid(rl, &e, now_ms) ||
		    ig_rl_tab_find(rl, (enum rl_kind)e.kind, e.id) != RL_NIL) {
			rc = IG_EINVAL;
			break;
		}
		rl->npin = 0;
		uint32_t i = ig_rl_tab_alloc(rl, e.kind == RL_K_KNOWN, now_ms);
		if (i == RL_NIL) {
			rc = IG_EINVAL;
			break;
		}
		e.hnext = rl->bucket[e.id[0] & rl->mask];
		rl->bucket[e.id[0] & rl->mask] = i;
		e.lprev = e.lnext = RL_NIL;
		rl->e[i] = e;
		ig_rl_tab_push(rl, i, e.kind == RL_K_KNOWN ? RL_KNOWN :
		    e.block_until > now_ms ? RL_BLOCKED : RL_FAIL);
		if (e.block_until != 0 && e.block_until <= now_ms)
			ig_rl_tab_block_active(rl, i, now_ms);
	}
	rl->npin = 0;
	if (rc != 0) {
		ig_rl_tab_reset(rl);
		memcpy(rl->tkey, old_key, sizeof(rl->tkey));
	}
	mbedtls_platform_zeroize(old_key, sizeof(old_key));
	return rc;
}

size_t
ig_rl_state_max_size(const struct ig_rl *rl)
{
	return RL_HDR_SIZE + rl->cap * sizeof(struct rl_entry) + 32;
}

int
ig_rl_load(struct ig_rl *rl, const char *path, uint64_t now_ms)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? IG_ENOTFOUND : IG_EIO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return IG_EIO;
	}
	/* Checked before reading: a file larger than any this limiter could
	 * have written is refused without costing its size in time or memory. */
	if (st.st_size < 0 || (uint64_t)st.st_size > ig_rl_state_max_size(rl)) {
		close(fd);
		return IG_ETOOLONG;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len > 0 ? len : 1);
	if (buf == NULL) {
		close(fd);
		return IG_ENOMEM;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	int rc = got == len ? ig_rl_load_buf(rl, buf, len, now_ms) : IG_EIO;
	mbedtls_platform_zeroize(buf, len);
	free(buf);
	return rc;
}

