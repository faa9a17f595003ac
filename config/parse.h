/*
 * Private to config/: the scalar parsers, with no schema and no messages
 * (the callers report): whole numbers, durations and the address forms
 * ("ipv4:port", "[ipv6]:port", "host:port"). ig_parse_duration_ms() and
 * ig_parse_listen_addr() (config/config.h) are built on them.
 */
#ifndef IG_CONFIG_PARSE_H
#define IG_CONFIG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define KIB 1024u
#define MIB (1024u * 1024u)
#define SEC 1000u
#define MIN (60u * SEC)
#define HOUR (60u * MIN)

/* Decimal digits only (no sign, no YAML 1.1 0x/0o/_ forms), at most max.
 * Returns 0 or IG_EINVAL. */
int ig_cfg_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* ig_parse_duration_ms() up to max milliseconds (uint64_t results). */
int ig_cfg_parse_duration(const char *s, uint64_t max, uint64_t *out_ms);

/*
 * Splits "host:port" or "[v6]:port" into host (without brackets, hostsz
 * bytes at most with the NUL) and port (1..65535). *bracketed tells which
 * form was used. Returns 0, or IG_EINVAL with *why (static text).
 */
int ig_cfg_split_host_port(const char *s, char *host, size_t hostsz, uint16_t *port,
    bool *bracketed, const char **why);

/* ig_parse_listen_addr() with a reason on failure (static text in *why). */
int ig_cfg_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    const char **why);

/* Fills ss and *len with address a of family af (AF_INET or AF_INET6). */
void ig_cfg_set_inet(struct sockaddr_storage *ss, socklen_t *len, int af, const void *a,
    uint16_t port);

/* True when s[0..len) has a letter: a name, not a numeric address. */
bool ig_cfg_looks_like_name(const char *s, size_t len);

/* RFC 1123 host name: labels of letters, digits, '-' (and '_', seen on
 * internal names), not all-numeric at the end (that would be an address). */
bool ig_cfg_valid_hostname(const char *h);

/* True for 127.0.0.0/8 and ::1. */
bool ig_cfg_addr_is_loopback(const struct sockaddr_storage *ss);

/* Same family, address and port. */
bool ig_cfg_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif /* IG_CONFIG_PARSE_H */
