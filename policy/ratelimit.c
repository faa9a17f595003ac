/*
 * The brute-force and password-spraying limiter (see ratelimit.h for what is
 * counted and why): the keys of an attempt, sliding-window counters,
 * distinct sets, blocks and verdicts, the configuration and the operator
 * view. The table it keeps them in is rl_table.c, the keyed hashes rl_hash.c
 * and the state file rl_state.c (policy/rl_internal.h).
 */
#include "policy/ratelimit.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "policy/cidr.h"
#include "policy/rl_internal.h"
#include "util/err.h"


static const char *const rl_lim_names[RL_L_COUNT] = {
	[RL_L_NONE] = NULL,
	[RL_L_ADDRESS] = "address",
	[RL_L_SPRAY] = "spray-address",
	[RL_L_USER] = "user",
	[RL_L_USER_ADDRESS] = "user-address",
	[RL_L_CIRCUIT] = "user-circuit",
	[RL_L_PWSPRAY] = "password-spray",
};


/* ---- the keys of an attempt ------------------------------------------- */

static uint32_t
rl_secs(uint64_t ms)
{
	uint64_t s = ms / 1000;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* The address group of sa; family 0 when there is no usable address. */
static void
rl_group(const struct ig_rl_conf *c, const struct sockaddr *sa,
    struct rl_keys *k)
{
	memset(k->ga, 0, sizeof(k->ga));
	k->family = 0;
	k->plen = 0;
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(k->ga, &s4->sin_addr, 4);
		k->family = AF_INET;
		k->plen = c->ipv4_prefix;
		ig_cidr_mask(k->ga, 4, k->plen);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(k->ga, s6->sin6_addr.s6_addr + 12, 4);
			k->family = AF_INET;
			k->plen = c->ipv4_prefix;
			ig_cidr_mask(k->ga, 4, k->plen);
		} else {
			memcpy(k->ga, s6->sin6_addr.s6_addr, 16);
			k->family = AF_INET6;
			k->plen = c->ipv6_prefix;
			ig_cidr_mask(k->ga, 16, k->plen);
		}
	}
}

static void
rl_keys(const struct ig_rl *rl, const struct ig_rl_attempt *a, bool want_pw,
    struct rl_keys *k)
{
	memset(k, 0, sizeof(*k));
	rl_group(&rl->conf, a->addr, k);
	ig_rl_id(rl, RL_K_ADDR, k, true, false, NULL, 0, k->addr_id);
	k->has_user = a->user != NULL && a->user[0] != '\0';
	if (!k->has_user)
		return;
	k->user = a->user;
	k->ulen = strlen(a->user);
	ig_rl_id(rl, RL_K_USER, k, false, true, NULL, 0, k->user_id);
	ig_rl_id(rl, RL_K_USERADDR, k, true, true, NULL, 0, k->ua_id);
	k->known_id[0] = k->user_id[0];
	k->known_id[1] = k->user_id[1];
	if (want_pw && (a->secret_hash != NULL || a->secret != NULL)) {
		k->has_pw = true;
		if (a->secret_hash != NULL)
			memcpy(k->pw, a->secret_hash, sizeof(k->pw));
		else
			ig_rl_secret_hash(rl, a->secret, a->secret_len, k->pw);
		ig_rl_id(rl, RL_K_PASS, k, false, false, k->pw, sizeof(k->pw),
		    k->pass_id);
	}
}

static void
rl_keys_wipe(struct rl_keys *k)
{
	mbedtls_platform_zeroize(k, sizeof(*k));
}

/* Set fingerprints: independent of the bucket index (id[0]). */
static uint32_t
rl_fp32(const uint64_t id[2])
{
	return (uint32_t)(id[1] >> 32);
}

/* ---- counters and sets ------------------------------------------------ */

/* Sliding-window estimate of the failures in the last window_ms. */
static unsigned
rl_ctr_value(const struct rl_entry *e, uint64_t now, unsigned window)
{
	if (window == 0)
		return e->cur;
	uint64_t w = window;
	uint64_t el = now > e->win_start ? now - e->win_start : 0;
	if (el >= 2 * w)
		return 0;
	if (el >= w)
		return (unsigned)((uint64_t)e->cur * (2 * w - el) / w);
	return e->cur + (unsigned)((uint64_t)e->prev * (w - el) / w);
}

static void
rl_ctr_add(struct rl_entry *e, uint64_t now, unsigned window)
{
	uint64_t w = window;
	uint64_t el = now > e->win_start ? now - e->win_start : 0;
	if (e->win_start == 0 || w == 0 || el >= 2 * w) {
		e->cur = e->prev = 0;
		e->win_start = now;
	} else if (el >= w) {
		e->prev = e->cur;
		e->cur = 0;
		e->win_start += w;
	}
	if (e->cur < UINT16_MAX)
		e->cur++;
}

static void
rl_ctr_clear(struct rl_entry *e)
{
	e->cur = e->prev = 0;
	e->win_start = 0;
}

static void
rl_set_purge(struct rl_set *s, uint8_t *n, uint64_t now, unsigned window)
{
	unsigned j = 0;
	for (unsigned i = 0; i < *n; i++) {
		if ((uint64_t)s->t[i] * 1000 + window > now) {
			s->fp[j] = s->fp[i];
			s->t[j] = s->t[i];
			j++;
		}
	}
	*n = (uint8_t)j;
}

/*
 * Adds fp (k-minimum-values: when full, keep the smallest fingerprints) and
 * returns the distinct count in the window: exact below IG_RL_SET_SLOTS,
 * estimated from the largest kept fingerprint at and above it.
 */
static unsigned
rl_set_add(struct rl_set *s, uint8_t *n, uint32_t fp, uint64_t now,
    unsigned window)
{
	rl_set_purge(s, n, now, window);
	uint32_t t = rl_secs(now);
	unsigned i, max = 0;
	for (i = 0; i < *n; i++) {
		if (s->fp[i] == fp) {
			s->t[i] = t;
			break;
		}
		if (s->fp[i] > s->fp[max])
			max = i;
	}
	if (i == *n) {
		if (*n < IG_RL_SET_SLOTS) {
			s->fp[*n] = fp;
			s->t[*n] = t;
			(*n)++;
		} else if (fp < s->fp[max]) {
			s->fp[max] = fp;
			s->t[max] = t;
		}
	}
	if (*n < IG_RL_SET_SLOTS)
		return *n;
	uint32_t top = 0;
	for (i = 0; i < *n; i++)
		if (s->fp[i] > top)
			top = s->fp[i];
	uint64_t est = ((uint64_t)(IG_RL_SET_SLOTS - 1) << 32) / ((uint64_t)top + 1);
	if (est < IG_RL_SET_SLOTS)
		est = IG_RL_SET_SLOTS;
	return est > UINT_MAX ? UINT_MAX : (unsigned)est;
}

/* Records a failed password for a user; true when it is a recent repeat. */
static bool
rl_pw_repeat(struct rl_entry *u, uint32_t fp, uint64_t now, unsigned window)
{
	uint32_t t = rl_secs(now);
	for (unsigned i = 0; i < u->n2; i++) {
		bool alive = (uint64_t)u->u.user.pw_t[i] * 1000 + window > now;
		if (u->u.user.pw[i] == fp) {
			u->u.user.pw_t[i] = t;
			return alive;
		}
	}
	/* First in, first out: the oldest distinct password leaves. */
	if (u->n2 == IG_RL_PW_SLOTS) {
		memmove(u->u.user.pw, u->u.user.pw + 1,
		    sizeof(u->u.user.pw[0]) * (IG_RL_PW_SLOTS - 1));
		memmove(u->u.user.pw_t, u->u.user.pw_t + 1,
		    sizeof(u->u.user.pw_t[0]) * (IG_RL_PW_SLOTS - 1));
		u->n2--;
	}
	u->u.user.pw[u->n2] = fp;
	u->u.user.pw_t[u->n2] = t;
	u->n2++;
	return false;
}

/*
 * How far a known address's last success must move before the change is
 * worth saving: a sixteenth of known_ttl_ms, at most an hour. Every other
 * success at a known address changes nothing that a crash could lose.
 */
static uint64_t
rl_known_refresh(const struct ig_rl_conf *c)
{
	uint64_t r = c->known_ttl_ms / 16;
	return r < 3600u * 1000u ? r : 3600u * 1000u;
}

static bool
rl_is_known(const struct ig_rl *rl, const struct rl_keys *k, uint64_t now)
{
	if (!k->has_user || k->family == 0)
		return false;
	uint32_t i = ig_rl_tab_find(rl, RL_K_KNOWN, k->known_id);
	if (i == RL_NIL)
		return false;
	const struct rl_entry *e = &rl->e[i];
	for (unsigned s = 0; s < e->n2 && s < IG_RL_KNOWN_SLOTS; s++)
		if (e->u.known.fp[s] == k->addr_id[1] &&
		    rl_add_sat(e->u.known.t[s], rl->conf.known_ttl_ms) > now)
			return true;
	return false;
}

/* ---- blocks and verdicts ---------------------------------------------- */

/* Starts a block on entry i unless one is active; true when it started. */
static bool
rl_block(struct ig_rl *rl, uint32_t i, enum rl_lim lim, unsigned count,
    unsigned thr, unsigned block_ms, uint64_t now)
{
	struct rl_entry *e = &rl->e[i];
	if (ig_rl_tab_block_active(rl, i, now) || block_ms == 0)
		return false;
	e->block_until = now + block_ms;
	e->limit = (uint8_t)lim;
	e->block_count = count;
	e->block_thr = thr;
	ig_rl_tab_touch(rl, i);
	return true;
}

static void
rl_fill(const struct rl_entry *e, struct ig_rl_verdict *v)
{
	v->refuse = true;
	v->limit = rl_lim_names[e->limit];
	v->until_ms = e->block_until;
	v->count = e->block_count;
	v->threshold = e->block_thr;
}

/* The block that applies to this attempt, in a fixed order; true if any. */
static bool
rl_eval(struct ig_rl *rl, const struct rl_keys *k, bool known, uint64_t now,
    struct ig_rl_verdict *v)
{
	uint32_t i = ig_rl_tab_find(rl, RL_K_ADDR, k->addr_id);
	if (i != RL_NIL && ig_rl_tab_block_active(rl, i, now)) {
		rl_fill(&rl->e[i], v);
		return true;
	}
	if (!k->has_user)
		return false;
	i = ig_rl_tab_find(rl, RL_K_USERADDR, k->ua_id);
	if (i != RL_NIL && ig_rl_tab_block_active(rl, i, now)) {
		rl_fill(&rl->e[i], v);
		return true;
	}
	if (known)
		return false;
	i = ig_rl_tab_find(rl, RL_K_USER, k->user_id);
	if (i != RL_NIL && ig_rl_tab_block_active(rl, i, now)) {
		rl_fill(&rl->e[i], v);
		return true;
	}
	if (k->has_pw) {
		i = ig_rl_tab_find(rl, RL_K_PASS, k->pass_id);
		if (i != RL_NIL && ig_rl_tab_block_active(rl, i, now)) {
			rl_fill(&rl->e[i], v);
			return true;
		}
	}
	return false;
}

static const struct ig_rl_raise *
rl_raised(const struct ig_rl *rl, const struct sockaddr *sa)
{
	for (size_t i = 0; i < rl->conf.nraised; i++)
		if (ig_netset_contains(&rl->conf.raised[i].nets, sa))
			return &rl->conf.raised[i];
	return NULL;
}

static bool
rl_exempt(const struct ig_rl *rl, const struct sockaddr *sa)
{
	return sa != NULL && rl->conf.exempt.n > 0 &&
	    ig_netset_contains(&rl->conf.exempt, sa);
}

static unsigned
rl_tarpit(const struct ig_rl_conf *c, unsigned n)
{
	if (n <= 1 || c->tarpit_base_ms == 0)
		return 0;
	unsigned shift = n - 2 > 20 ? 20 : n - 2;
	uint64_t d = (uint64_t)c->tarpit_base_ms << shift;
	return d > c->tarpit_max_ms ? c->tarpit_max_ms : (unsigned)d;
}

/* ---- public: lifecycle ------------------------------------------------ */

int
ig_rl_new(const struct ig_rl_conf *conf, const uint8_t hash_key[32],
    struct ig_rl **out)
{
	*out = NULL;
	if (conf == NULL || hash_key == NULL || !ig_rl_conf_ok(conf))
		return IG_EINVAL;
	struct ig_rl *rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return IG_ENOMEM;
	if (ig_rl_conf_copy(&rl->conf, conf) != 0) {
		free(rl);
		return IG_ENOMEM;
	}
	size_t nb = 16;
	while (nb < conf->max_keys)
		nb <<= 1;
	rl->cap = conf->max_keys;
	rl->mask = (uint32_t)(nb - 1);
	rl->e = calloc(rl->cap, sizeof(*rl->e));
	rl->bucket = calloc(nb, sizeof(*rl->bucket));
	if (rl->e == NULL || rl->bucket == NULL) {
		ig_rl_free(rl);
		return IG_ENOMEM;
	}
	ig_rl_tab_reset(rl);

	ig_rl_hash_init(rl, hash_key);
	*out = rl;
	return 0;
}

void
ig_rl_free(struct ig_rl *rl)
{
	if (rl == NULL)
		return;
	ig_rl_conf_release(&rl->conf);
	free(rl->e);
	free(rl->bucket);
	mbedtls_sha256_free(&rl->hm_in);
	mbedtls_sha256_free(&rl->hm_out);
	mbedtls_platform_zeroize(rl, sizeof(*rl));
	free(rl);
}

int
ig_rl_set_conf(struct ig_rl *rl, const struct ig_rl_conf *conf)
{
	struct ig_rl_conf c;
	if (conf == NULL || !ig_rl_conf_ok(conf))
		return IG_EINVAL;
	if (ig_rl_conf_copy(&c, conf) != 0)
		return IG_ENOMEM;
	c.max_keys = rl->cap;
	if (c.max_known >= c.max_keys)
		c.max_known = c.max_keys - 1;
	ig_rl_conf_release(&rl->conf);
	rl->conf = c;
	return 0;
}

unsigned
ig_rl_max_conn_failures(const struct ig_rl *rl)
{
	return rl->conf.max_conn_failures;
}

uint64_t
ig_rl_changes(const struct ig_rl *rl)
{
	return rl->changes;
}

/* ---- public: attempts ------------------------------------------------- */

void
ig_rl_check(struct ig_rl *rl, const struct ig_rl_attempt *a,
    struct ig_rl_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (!rl->conf.enabled || rl_exempt(rl, a->addr))
		return;
	struct rl_keys k;
	rl_keys(rl, a, true, &k);
	bool known = rl_is_known(rl, &k, a->now_ms);
	v->known_address = known;
	if (rl_eval(rl, &k, known, a->now_ms, v))
		v->delay_ms = rl->conf.tarpit_max_ms;
	rl_keys_wipe(&k);
}

void
ig_rl_failure(struct ig_rl *rl, const struct ig_rl_attempt *a,
    struct ig_rl_verdict *v)
{
	const struct ig_rl_conf *c = &rl->conf;
	memset(v, 0, sizeof(*v));
	if (!c->enabled || rl_exempt(rl, a->addr))
		return;
	uint64_t now = a->now_ms;
	struct rl_keys k;
	rl_keys(rl, a, true, &k);
	rl->npin = 0;
	rl->changes++; /* counters at least */
	bool known = rl_is_known(rl, &k, now);
	v->known_address = known;

	const struct ig_rl_raise *r = rl_raised(rl, a->addr);
	unsigned thr_addr = r != NULL && r->address ? r->address : c->address.threshold;
	unsigned thr_spray = r != NULL && r->spray ? r->spray : c->spray_address.threshold;
	enum rl_lim started = RL_L_NONE;
	unsigned n_addr = 0, n_user = 0, n_ua = 0;

	/* A recent repeat of the same wrong password counts once. */
	bool repeat = false;
	uint32_t ue = RL_NIL;
	if (k.has_user) {
		ue = ig_rl_tab_get(rl, RL_K_USER, k.user_id, &k, now);
		if (ue != RL_NIL && k.has_pw)
			repeat = rl_pw_repeat(&rl->e[ue], (uint32_t)ig_rl_le64(k.pw + 8),
			    now, c->user.window_ms);
	}

	uint32_t ae = ig_rl_tab_get(rl, RL_K_ADDR, k.addr_id, &k, now);
	if (ae != RL_NIL) {
		struct rl_entry *e = &rl->e[ae];
		if (!repeat)
			rl_ctr_add(e, now, c->address.window_ms);
		n_addr = rl_ctr_value(e, now, c->address.window_ms);
		if (thr_addr != 0 && n_addr >= thr_addr &&
		    rl_block(rl, ae, RL_L_ADDRESS, n_addr, thr_addr, c->address.block_ms, now))
			started = RL_L_ADDRESS;
		if (k.has_user) {
			unsigned d = rl_set_add(&e->u.set, &e->nset, rl_fp32(k.user_id),
			    now, c->spray_address.window_ms);
			if (thr_spray != 0 && d >= thr_spray &&
			    rl_block(rl, ae, RL_L_SPRAY, d, thr_spray,
			    c->spray_address.block_ms, now))
				started = RL_L_SPRAY;
		}
	}

	if (k.has_user) {
		uint32_t ua = ig_rl_tab_get(rl, RL_K_USERADDR, k.ua_id, &k, now);
		if (ua != RL_NIL) {
			struct rl_entry *e = &rl->e[ua];
			if (!repeat)
				rl_ctr_add(e, now, c->user_address.window_ms);
			n_ua = rl_ctr_value(e, now, c->user_address.window_ms);
			unsigned t = c->user_address.threshold;
			if (t != 0 && n_ua >= t &&
			    rl_block(rl, ua, RL_L_USER_ADDRESS, n_ua, t,
			    c->user_address.block_ms, now))
				started = RL_L_USER_ADDRESS;
		}
	}

	if (ue != RL_NIL && !known) {
		struct rl_entry *e = &rl->e[ue];
		if (!repeat)
			rl_ctr_add(e, now, c->user.window_ms);
		n_user = rl_ctr_value(e, now, c->user.window_ms);
		unsigned t = c->user.threshold;
		if (t != 0 && n_user >= t &&
		    rl_block(rl, ue, RL_L_USER, n_user, t, c->user.block_ms, now))
			started = RL_L_USER;
		if (k.family != 0) {
			unsigned d = rl_set_add(&e->u.user.addrs, &e->nset,
			    rl_fp32(k.addr_id), now, c->user_circuit.window_ms);
			t = c->user_circuit.threshold;
			if (t != 0 && d >= t &&
			    rl_block(rl, ue, RL_L_CIRCUIT, d, t,
			    c->user_circuit.block_ms, now))
				started = RL_L_CIRCUIT;
		}
	}

	if (k.has_pw && k.has_user) {
		uint32_t pe = ig_rl_tab_get(rl, RL_K_PASS, k.pass_id, &k, now);
		if (pe != RL_NIL) {
			struct rl_entry *e = &rl->e[pe];
			unsigned d = rl_set_add(&e->u.set, &e->nset, rl_fp32(k.user_id),
			    now, c->password_spray.window_ms);
			unsigned t = c->password_spray.threshold;
			if (t != 0 && d >= t &&
			    rl_block(rl, pe, RL_L_PWSPRAY, d, t,
			    c->password_spray.block_ms, now))
				started = RL_L_PWSPRAY;
		}
	}

	/* Tarpit from the largest relevant counter. */
	unsigned n = n_ua, thr = c->user_address.threshold;
	if (r == NULL && n_addr > n) {
		n = n_addr;
		thr = thr_addr;
	}
	if (!known && n_user > n) {
		n = n_user;
		thr = c->user.threshold;
	}
	v->delay_ms = rl_tarpit(c, n);
	if (rl_eval(rl, &k, known, now, v)) {
		v->started = started != RL_L_NONE && v->limit == rl_lim_names[started];
	} else {
		v->count = n;
		v->threshold = thr;
	}
	rl->npin = 0;
	rl_keys_wipe(&k);
}

void
ig_rl_success(struct ig_rl *rl, const struct ig_rl_attempt *a)
{
	if (!rl->conf.enabled)
		return;
	struct rl_keys k;
	rl_keys(rl, a, false, &k);
	uint64_t now = a->now_ms;
	bool changed = false;
	rl->npin = 0;
	if (k.has_user && k.family != 0 && rl->conf.max_known > 0) {
		uint32_t i = ig_rl_tab_get(rl, RL_K_KNOWN, k.known_id, &k, now);
		if (i != RL_NIL) {
			struct rl_entry *e = &rl->e[i];
			unsigned s, oldest = 0;
			for (s = 0; s < e->n2; s++) {
				if (e->u.known.fp[s] == k.addr_id[1])
					break;
				if (e->u.known.t[s] < e->u.known.t[oldest])
					oldest = s;
			}
			if (s == e->n2) {
				s = e->n2 < IG_RL_KNOWN_SLOTS ? e->n2++ : oldest;
				changed = true; /* a new known address */
			} else if (now > e->u.known.t[s] &&
			    now - e->u.known.t[s] >= rl_known_refresh(&rl->conf)) {
				changed = true;
			}
			e->u.known.fp[s] = k.addr_id[1];
			e->u.known.t[s] = now;
		}
	}
	if (k.has_user) {
		uint32_t i = ig_rl_tab_find(rl, RL_K_USERADDR, k.ua_id);
		if (i != RL_NIL) {
			ig_rl_tab_remove(rl, i);
			changed = true; /* forgiven */
		}
	}
	if (changed)
		rl->changes++;
	rl->npin = 0;
	rl_keys_wipe(&k);
}

/* ---- public: operator view -------------------------------------------- */

static void
rl_addr_text(const struct rl_entry *e, char *buf, size_t sz)
{
	char a[INET6_ADDRSTRLEN];
	unsigned full = e->family == AF_INET ? 32 : 128;
	if (e->family == 0 ||
	    inet_ntop(e->family, e->addr, a, sizeof(a)) == NULL) {
		snprintf(buf, sz, "unknown");
		return;
	}
	if (e->plen < full)
		snprintf(buf, sz, "%s/%u", a, (unsigned)e->plen);
	else
		snprintf(buf, sz, "%s", a);
}

static void
rl_key_text(const struct rl_entry *e, char *buf, size_t sz)
{
	char a[64];
	switch ((enum rl_kind)e->kind) {
	case RL_K_ADDR:
		rl_addr_text(e, buf, sz);
		return;
	case RL_K_USERADDR:
		rl_addr_text(e, a, sizeof(a));
		snprintf(buf, sz, "%s %s", e->user, a);
		return;
	case RL_K_USER:
	case RL_K_KNOWN:
		snprintf(buf, sz, "%s", e->user);
		return;
	case RL_K_PASS:
		snprintf(buf, sz, "pw:");
		for (size_t i = 0; i < 8 && 3 + 2 * i + 2 < sz; i++)
			snprintf(buf + 3 + 2 * i, sz - 3 - 2 * i, "%02x", e->addr[i]);
		return;
	case RL_K_NONE:
	case RL_K_COUNT:
		break;
	}
	snprintf(buf, sz, "?");
}

void
ig_rl_foreach_block(const struct ig_rl *rl, uint64_t now_ms,
    ig_rl_block_fn *fn, void *arg)
{
	char text[128];
	for (uint32_t i = rl->list[RL_BLOCKED].head; i != RL_NIL;) {
		const struct rl_entry *e = &rl->e[i];
		uint32_t next = e->lnext;
		if (e->block_until > now_ms && e->limit < RL_L_COUNT &&
		    e->limit != RL_L_NONE) {
			rl_key_text(e, text, sizeof(text));
			fn(arg, rl_lim_names[e->limit], text, e->block_until,
			    e->block_count);
		}
		i = next;
	}
}

int
ig_rl_lift(struct ig_rl *rl, const char *limit, const char *key_text,
    uint64_t now_ms)
{
	char text[128];
	if (limit == NULL || key_text == NULL)
		return IG_ENOTFOUND;
	for (uint32_t i = rl->list[RL_BLOCKED].head; i != RL_NIL;) {
		struct rl_entry *e = &rl->e[i];
		uint32_t next = e->lnext;
		if (e->block_until > now_ms && e->limit != RL_L_NONE &&
		    e->limit < RL_L_COUNT &&
		    strcmp(rl_lim_names[e->limit], limit) == 0) {
			rl_key_text(e, text, sizeof(text));
			if (strcmp(text, key_text) == 0) {
				e->block_until = 0;
				e->limit = RL_L_NONE;
				e->block_count = e->block_thr = 0;
				rl_ctr_clear(e);
				if (e->kind == RL_K_ADDR || e->kind == RL_K_USER ||
				    e->kind == RL_K_PASS)
					e->nset = 0;
				ig_rl_tab_touch(rl, i);
				rl->changes++;
				return 0;
			}
		}
		i = next;
	}
	return IG_ENOTFOUND;
}

