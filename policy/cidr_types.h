/*
 * CIDR blocks and sets of them: the types, embedded by the configuration
 * and by the rate limiter. Functions are in policy/cidr.h.
 */
#ifndef IG_POLICY_CIDR_TYPES_H
#define IG_POLICY_CIDR_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One CIDR block: IPv4 (family AF_INET, 4 bytes) or IPv6 (16 bytes). */
struct ig_cidr {
	sa_family_t family;
	uint8_t prefix;                  /* 0..32 or 0..128 */
	uint8_t addr[16];                /* network address, host bits zero */
};

/* A set of CIDR blocks (from network names and literals, resolved). */
struct ig_netset {
	struct ig_cidr *v;               /* owned */
	size_t n;
};

#endif /* IG_POLICY_CIDR_TYPES_H */
