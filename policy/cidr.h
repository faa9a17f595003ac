/*
 * CIDR blocks and sets of them, IPv4 and IPv6. An IPv4-mapped IPv6 client
 * address (::ffff:a.b.c.d) is matched as the IPv4 address it carries.
 */
#ifndef IG_POLICY_CIDR_H
#define IG_POLICY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/cidr_types.h"

/*
 * Parses "a.b.c.d/n", "a.b.c.d" (a /32), "x:y::z/n" or "x:y::z" (a /128).
 * Host bits set below the prefix are an error ("10.0.0.1/8" is refused:
 * it is usually a typo). Returns 0 or IG_EINVAL.
 */
int ig_cidr_parse(const char *s, struct ig_cidr *out);

/* Formats c as "a.b.c.d/n" or "x::y/n" into out (size >= 50). */
void ig_cidr_format(const struct ig_cidr *c, char *out, size_t outsz);

/*
 * Clears every bit of the address a[0..nbytes) after the first prefix bits
 * (a network's address from a host's: the limiter's and the connection
 * counter's address groups).
 */
void ig_cidr_mask(uint8_t *a, unsigned nbytes, unsigned prefix);

/* True when addr (AF_INET or AF_INET6 sockaddr) lies in c. */
bool ig_cidr_contains(const struct ig_cidr *c, const struct sockaddr *addr);

/* True when addr lies in any block of set. */
bool ig_netset_contains(const struct ig_netset *set, const struct sockaddr *addr);

#endif /* IG_POLICY_CIDR_H */
