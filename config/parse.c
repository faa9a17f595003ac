/*
 * Scalar parsers of the configuration (see config/parse.h): numbers,
 * durations, listen addresses (numeric only) and the backend's "host:port".
 */
#include "config/parse.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>

#include "config/config.h"
#include "util/err.h"

/* Decimal digits only (no sign, no YAML 1.1 0x/0o/_ forms). */
int
ig_cfg_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return IG_EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return IG_EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return IG_EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* ig_parse_duration_ms() up to max milliseconds (uint64_t results). */
int
ig_cfg_parse_duration(const char *s, uint64_t max, uint64_t *out_ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ "", SEC }, { "ms", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR },
	};
	if (s == NULL)
		return IG_EINVAL;
	size_t digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 20)
		return IG_EINVAL;
	char num[21];
	memcpy(num, s, digits);
	num[digits] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + digits, units[i].suffix) != 0)
			continue;
		uint64_t v;
		if (ig_cfg_parse_u64(num, max, &v) != 0 || v > max / units[i].ms)
			return IG_EINVAL;
		*out_ms = v * units[i].ms;
		return 0;
	}
	return IG_EINVAL;
}

int
ig_parse_duration_ms(const char *s, unsigned *out_ms)
{
	uint64_t ms;
	if (ig_cfg_parse_duration(s, UINT_MAX, &ms) != 0)
		return IG_EINVAL;
	*out_ms = (unsigned)ms;
	return 0;
}

static int
config_parse_port(const char *s, uint16_t *port, const char **why)
{
	uint64_t v;
	if (*s == '\0') {
		*why = "missing port";
		return IG_EINVAL;
	}
	if (strlen(s) > 5 || ig_cfg_parse_u64(s, 99999, &v) != 0) {
		*why = "the port must be a number between 1 and 65535";
		return IG_EINVAL;
	}
	if (v < 1 || v > 65535) {
		*why = "the port must be between 1 and 65535";
		return IG_EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

bool
ig_cfg_looks_like_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))
			return true;
	return false;
}

void
ig_cfg_set_inet(struct sockaddr_storage *ss, socklen_t *len, int af, const void *a, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a, sizeof(sin->sin_addr));
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a, sizeof(sin6->sin6_addr));
		*len = sizeof(*sin6);
	}
}

/*
 * Splits "host:port" or "[v6]:port" into host (without brackets) and port.
 * *bracketed tells which form was used. Returns 0, or IG_EINVAL with *why.
 */
int
ig_cfg_split_host_port(const char *s, char *host, size_t hostsz, uint16_t *port, bool *bracketed,
    const char **why)
{
	const char *h, *p;
	size_t hlen;
	static const char too_long[] = "the host part is too long";
	*bracketed = s[0] == '[';
	if (*bracketed) {
		const char *end = strchr(s, ']');
		if (end == NULL) {
			*why = "missing ']' after the IPv6 address";
			return IG_EINVAL;
		}
		h = s + 1;
		hlen = (size_t)(end - h);
		if (end[1] != ':') {
			*why = end[1] == '\0' ? "missing port" : "expected ':' and a port after ']'";
			return IG_EINVAL;
		}
		p = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL) {
			*why = "missing port";
			return IG_EINVAL;
		}
		h = s;
		hlen = (size_t)(colon - s);
		if (memchr(h, ':', hlen) != NULL) {
			*why = "IPv6 addresses must be in brackets, e.g. [::1]:993";
			return IG_EINVAL;
		}
		p = colon + 1;
	}
	if (hlen == 0) {
		*why = "missing address before the port";
		return IG_EINVAL;
	}
	if (hlen >= hostsz) {
		*why = too_long;
		return IG_EINVAL;
	}
	if (config_parse_port(p, port, why) != 0)
		return IG_EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

/* ig_parse_listen_addr() with a reason on failure. */
int
ig_cfg_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	uint16_t port;
	bool br;
	unsigned char a[sizeof(struct in6_addr)];
	if (ig_cfg_split_host_port(s, host, sizeof(host), &port, &br, why) != 0) {
		if (strstr(*why, "too long") != NULL) /* too long to be numeric */
			*why = ig_cfg_looks_like_name(s, strlen(s)) ?
			    "host names are not allowed here, use a numeric address" :
			    "not a numeric IPv4 or IPv6 address";
		return IG_EINVAL;
	}
	if (br) {
		if (inet_pton(AF_INET6, host, a) != 1) {
			*why = "not a numeric IPv6 address";
			return IG_EINVAL;
		}
		ig_cfg_set_inet(ss, len, AF_INET6, a, port);
		return 0;
	}
	if (inet_pton(AF_INET, host, a) != 1) {
		*why = ig_cfg_looks_like_name(host, strlen(host)) ?
		    "host names are not allowed here, use a numeric address" :
		    "not a numeric IPv4 address";
		return IG_EINVAL;
	}
	ig_cfg_set_inet(ss, len, AF_INET, a, port);
	return 0;
}

int
ig_parse_listen_addr(const char *s, struct sockaddr_storage *addr, socklen_t *len)
{
	const char *why;
	if (s == NULL)
		return IG_EINVAL;
	return ig_cfg_listen_parse(s, addr, len, &why);
}

/* RFC 1123 host name: labels of letters, digits, '-' (and '_', seen on
 * internal names), not all-numeric at the end (that would be an address). */
bool
ig_cfg_valid_hostname(const char *h)
{
	size_t len = strlen(h), label = 0;
	bool alpha_in_last = false;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = h[i];
		if (ch == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			if (i + 1 < len)
				alpha_in_last = false;
			label = 0;
			continue;
		}
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		if (!alpha && !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_')
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
		if (alpha || ch == '-' || ch == '_')
			alpha_in_last = true;
	}
	return h[len - 1] != '-' && alpha_in_last;
}

bool
ig_cfg_addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	return false;
}

bool
ig_cfg_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port &&
	    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}
