#include "policy/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int
ig_cidr_parse(const char *s, struct ig_cidr *out)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return IG_EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	unsigned max;
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return IG_EINVAL;
	}
	unsigned prefix = max;
	if (slash != NULL) {
		const char *d = slash + 1;
		if (*d == '\0' || strlen(d) > 3)
			return IG_EINVAL;
		prefix = 0;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return IG_EINVAL;
			prefix = prefix * 10 + (unsigned)(*d - '0');
		}
		if (prefix > max || (slash[1] == '0' && slash[2] != '\0'))
			return IG_EINVAL;
	}
	out->prefix = (uint8_t)prefix;
	/* Host bits must be zero. */
	unsigned bytes = max / 8;
	for (unsigned i = 0; i < bytes; i++) {
		unsigned bit0 = i * 8;
		unsigned m = bit0 >= prefix ? 0u : prefix - bit0 >= 8 ? 0xffu :
		    (0xffu << (8 - (prefix - bit0))) & 0xffu;
		uint8_t mask = (uint8_t)m;
		if ((out->addr[i] & (uint8_t)~mask) != 0)
			return IG_EINVAL;
	}
	return 0;
}

void
ig_cidr_format(const struct ig_cidr *c, char *out, size_t outsz)
{
	char host[INET6_ADDRSTRLEN];
	inet_ntop(c->family, c->addr, host, sizeof(host));
	snprintf(out, outsz, "%s/%u", host, (unsigned)c->prefix);
}

static bool
cidr_match_bytes(const uint8_t *net, const uint8_t *a, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(net, a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)((0xffu << (8 - rest)) & 0xffu);
	return (net[full] & mask) == (a[full] & mask);
}

void
ig_cidr_mask(uint8_t *a, unsigned nbytes, unsigned prefix)
{
	for (unsigned i = 0; i < nbytes; i++) {
		unsigned bit = i * 8;
		if (prefix >= bit + 8)
			continue;
		if (prefix <= bit)
			a[i] = 0;
		else
			a[i] &= (uint8_t)(0xffu << (8 - (prefix - bit)));
	}
}

bool
ig_cidr_contains(const struct ig_cidr *c, const struct sockaddr *addr)
{
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)addr;
		return c->family == AF_INET &&
		    cidr_match_bytes(c->addr, (const uint8_t *)&a->sin_addr, c->prefix);
	}
	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;
		const uint8_t *b = a->sin6_addr.s6_addr;
		if (c->family == AF_INET6)
			return cidr_match_bytes(c->addr, b, c->prefix);
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			return cidr_match_bytes(c->addr, b + 12, c->prefix);
	}
	return false;
}

bool
ig_netset_contains(const struct ig_netset *set, const struct sockaddr *addr)
{
	for (size_t i = 0; i < set->n; i++)
		if (ig_cidr_contains(&set->v[i], addr))
			return true;
	return false;
}
