/*
 * Live connections per client address group, across every listener of a
 * worker: the table behind limits.max_connections_per_address. A group is
 * an IPv4 address (/32) or an IPv6 prefix (/64 by default); an IPv4-mapped
 * IPv6 address counts as the IPv4 address it carries.
 *
 * Pure: no libuv, no clock, no logging. The worker owns one table; the
 * session adds its group at accept and removes it when it is freed. An
 * entry exists only while its count is above zero, so the table never holds
 * more entries than there are live connections. Its slots grow (doubling,
 * load at most one half) with them and stay at their peak (32 bytes a slot,
 * against some 150 KiB per session); the hash is SipHash under a random
 * key, so addresses chosen by an attacker cannot be made to collide.
 */
#ifndef IG_PROXY_CONNCOUNT_H
#define IG_PROXY_CONNCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"

/* An address group: the key of the table. */
struct ig_cc_key {
	uint8_t family;                  /* AF_INET or AF_INET6; 0: none */
	uint8_t plen;                    /* prefix length of the group */
	uint8_t addr[16];                /* group address, host bits zero (4
	                                    bytes used for IPv4) */
};

/*
 * The group of sa: IPv4 (and IPv4-mapped IPv6) as /32, IPv6 masked to
 * ipv6_prefix (0..128). Returns false, with out->family 0, when sa is NULL
 * or neither AF_INET nor AF_INET6.
 */
bool ig_cc_key_from_addr(const struct sockaddr *sa, uint8_t ipv6_prefix,
    struct ig_cc_key *out);

/* Formats k as "192.0.2.7" or "2001:db8:1:2::/64" (size >= 50). */
void ig_cc_key_format(const struct ig_cc_key *k, char *out, size_t outsz);

/*
 * The cap for a client at sa under lim: the first limits.raised entry whose
 * networks contain sa, else limits.max_connections_per_address. 0 means no
 * cap.
 */
unsigned ig_cc_limit(const struct ig_limits *lim, const struct sockaddr *sa);

struct ig_cc; /* opaque; one per worker loop; not thread-safe */

/*
 * Creates an empty table. hash_key (16 bytes, random per process) is
 * copied. Returns 0 and *out, or IG_ENOMEM.
 */
int ig_cc_new(const uint8_t hash_key[16], struct ig_cc **out);

/* Frees cc; NULL is a no-op. */
void ig_cc_free(struct ig_cc *cc);

/*
 * Counts one more connection for k (family must not be 0) and stores the
 * new count in *count. Returns 0, or IG_ENOMEM when the table had to grow
 * and could not (nothing changed then).
 */
int ig_cc_add(struct ig_cc *cc, const struct ig_cc_key *k, unsigned *count);

/*
 * Counts one connection less for k; the entry goes when its count reaches
 * zero. A key that is not in the table is ignored (returns false).
 */
bool ig_cc_remove(struct ig_cc *cc, const struct ig_cc_key *k);

/* Live connections counted for k (0 when absent). */
unsigned ig_cc_get(const struct ig_cc *cc, const struct ig_cc_key *k);

/* Entries (distinct groups with live connections). */
size_t ig_cc_entries(const struct ig_cc *cc);

/* Slots allocated (for tests: memory follows the live entries). */
size_t ig_cc_capacity(const struct ig_cc *cc);

#endif /* IG_PROXY_CONNCOUNT_H */
