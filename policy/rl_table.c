/*
 * The limiter's table: one array of max_keys fixed-size entries (struct
 * rl_entry, 288 bytes on LP64) allocated by ig_rl_new(), a power-of-two
 * array of 32-bit bucket heads chained through the entries, and four doubly
 * linked lists through the same entries: FREE, FAIL (failure keys without an
 * active block, most recently used first), BLOCKED (failure keys that carry a
 * block) and KNOWN (users' known addresses). Eviction takes an expired
 * BLOCKED tail, else the FAIL tail, else the BLOCKED tail; KNOWN entries are
 * evicted only by other KNOWN entries once max_known are tracked. Entries
 * pinned by the current operation are never evicted under it. O(1) per
 * operation, no allocation.
 */
#include "policy/rl_internal.h"

#include <string.h>

static void
rl_list_unlink(struct ig_rl *rl, uint32_t i)
{
	struct rl_entry *e = &rl->e[i];
	struct rl_listhead *l = &rl->list[e->list];
	if (e->lprev != RL_NIL)
		rl->e[e->lprev].lnext = e->lnext;
	else
		l->head = e->lnext;
	if (e->lnext != RL_NIL)
		rl->e[e->lnext].lprev = e->lprev;
	else
		l->tail = e->lprev;
	e->lprev = e->lnext = RL_NIL;
	l->n--;
}

void
ig_rl_tab_push(struct ig_rl *rl, uint32_t i, enum rl_list which)
{
	struct rl_entry *e = &rl->e[i];
	struct rl_listhead *l = &rl->list[which];
	e->list = (uint8_t)which;
	e->lprev = RL_NIL;
	e->lnext = l->head;
	if (l->head != RL_NIL)
		rl->e[l->head].lprev = i;
	else
		l->tail = i;
	l->head = i;
	l->n++;
}

/* Moves entry i to the head of the list its state belongs to. */
void
ig_rl_tab_touch(struct ig_rl *rl, uint32_t i)
{
	struct rl_entry *e = &rl->e[i];
	enum rl_list want = e->kind == RL_K_KNOWN ? RL_KNOWN :
	    e->block_until != 0 ? RL_BLOCKED : RL_FAIL;
	rl_list_unlink(rl, i);
	ig_rl_tab_push(rl, i, want);
}

uint32_t
ig_rl_tab_find(const struct ig_rl *rl, enum rl_kind kind, const uint64_t id[2])
{
	for (uint32_t i = rl->bucket[id[0] & rl->mask]; i != RL_NIL;
	    i = rl->e[i].hnext) {
		const struct rl_entry *e = &rl->e[i];
		if (e->id[0] == id[0] && e->id[1] == id[1] && e->kind == kind)
			return i;
	}
	return RL_NIL;
}

void
ig_rl_tab_remove(struct ig_rl *rl, uint32_t i)
{
	struct rl_entry *e = &rl->e[i];
	uint32_t *pp = &rl->bucket[e->id[0] & rl->mask];
	while (*pp != i)
		pp = &rl->e[*pp].hnext;
	*pp = e->hnext;
	rl_list_unlink(rl, i);
	memset(e, 0, sizeof(*e));
	e->hnext = e->lprev = e->lnext = RL_NIL;
	ig_rl_tab_push(rl, i, RL_FREE);
}

static bool
rl_pinned(const struct ig_rl *rl, uint32_t i)
{
	for (unsigned p = 0; p < rl->npin; p++)
		if (rl->pin[p] == i)
			return true;
	return false;
}

/* The least recently used unpinned entry of a list, or RL_NIL. */
static uint32_t
rl_lru(const struct ig_rl *rl, enum rl_list which)
{
	uint32_t i = rl->list[which].tail;
	while (i != RL_NIL && rl_pinned(rl, i))
		i = rl->e[i].lprev;
	return i;
}

/* A free entry, evicting if needed; RL_NIL only when everything is pinned. */
uint32_t
ig_rl_tab_alloc(struct ig_rl *rl, bool known_class, uint64_t now)
{
	uint32_t v;
	if (known_class && rl->list[RL_KNOWN].n >= rl->conf.max_known &&
	    (v = rl_lru(rl, RL_KNOWN)) != RL_NIL)
		ig_rl_tab_remove(rl, v);
	if (rl->list[RL_FREE].head != RL_NIL) {
		v = rl->list[RL_FREE].head;
		rl_list_unlink(rl, v);
		return v;
	}
	v = rl_lru(rl, RL_BLOCKED);
	if (v == RL_NIL || rl->e[v].block_until > now)
		v = rl_lru(rl, RL_FAIL);
	if (v == RL_NIL)
		v = rl_lru(rl, RL_BLOCKED);
	if (v == RL_NIL)
		v = rl_lru(rl, RL_KNOWN); /* only after max_known shrank */
	if (v == RL_NIL)
		return RL_NIL;
	ig_rl_tab_remove(rl, v);
	rl_list_unlink(rl, v);
	return v;
}

static void
rl_pin(struct ig_rl *rl, uint32_t i)
{
	if (i != RL_NIL && rl->npin < RL_PINS)
		rl->pin[rl->npin++] = i;
}

/* Clears a block that has run out; true when a block is still active. */
bool
ig_rl_tab_block_active(struct ig_rl *rl, uint32_t i, uint64_t now)
{
	struct rl_entry *e = &rl->e[i];
	if (e->block_until == 0)
		return false;
	if (e->block_until > now)
		return true;
	e->block_until = 0;
	e->limit = RL_L_NONE;
	e->block_count = e->block_thr = 0;
	ig_rl_tab_touch(rl, i);
	return false;
}

/* Finds or creates (and touches) the entry; RL_NIL if none can be had. */
uint32_t
ig_rl_tab_get(struct ig_rl *rl, enum rl_kind kind, const uint64_t id[2],
    const struct rl_keys *k, uint64_t now)
{
	uint32_t i = ig_rl_tab_find(rl, kind, id);
	if (i != RL_NIL) {
		ig_rl_tab_block_active(rl, i, now);
		ig_rl_tab_touch(rl, i);
		rl_pin(rl, i);
		return i;
	}
	i = ig_rl_tab_alloc(rl, kind == RL_K_KNOWN, now);
	if (i == RL_NIL)
		return RL_NIL;
	struct rl_entry *e = &rl->e[i];
	memset(e, 0, sizeof(*e));
	e->id[0] = id[0];
	e->id[1] = id[1];
	e->kind = (uint8_t)kind;
	if (kind == RL_K_ADDR || kind == RL_K_USERADDR) {
		e->family = k->family;
		e->plen = k->plen;
		memcpy(e->addr, k->ga, sizeof(e->addr));
	} else if (kind == RL_K_PASS) {
		memcpy(e->addr, k->pw, sizeof(e->addr));
	}
	if (kind == RL_K_USER || kind == RL_K_USERADDR || kind == RL_K_KNOWN) {
		size_t n = k->ulen;
		if (n >= sizeof(e->user)) {
			n = sizeof(e->user) - 1;
			e->flags |= RL_EF_USER_CUT;
		}
		memcpy(e->user, k->user, n);
	}
	e->hnext = rl->bucket[id[0] & rl->mask];
	rl->bucket[id[0] & rl->mask] = i;
	ig_rl_tab_push(rl, i, kind == RL_K_KNOWN ? RL_KNOWN : RL_FAIL);
	rl_pin(rl, i);
	return i;
}


void
ig_rl_tab_reset(struct ig_rl *rl)
{
	memset(rl->e, 0, rl->cap * sizeof(*rl->e));
	for (size_t b = 0; b <= rl->mask; b++)
		rl->bucket[b] = RL_NIL;
	for (int l = 0; l < RL_LIST_COUNT; l++)
		rl->list[l] = (struct rl_listhead){ RL_NIL, RL_NIL, 0 };
	for (size_t i = rl->cap; i-- > 0;) {
		rl->e[i].hnext = rl->e[i].lprev = rl->e[i].lnext = RL_NIL;
		ig_rl_tab_push(rl, (uint32_t)i, RL_FREE);
	}
}

size_t
ig_rl_count(const struct ig_rl *rl)
{
	return rl->cap - rl->list[RL_FREE].n;
}

size_t
ig_rl_entry_size(void)
{
	/* Buckets are the next power of two: at most two heads per key. */
	return sizeof(struct rl_entry) + 2 * sizeof(uint32_t);
}
