/*
 * One error convention for the whole program: functions return 0 on success
 * and a negative IG_E* code on failure. libuv and mbedTLS codes are mapped
 * once, at the boundary, and described by ig_strerror().
 */
#ifndef IG_UTIL_ERR_H
#define IG_UTIL_ERR_H

enum {
	IG_OK = 0,
	IG_ENOMEM = -1,    /* allocation failed */
	IG_EINVAL = -2,    /* invalid argument or input */
	IG_ECONFIG = -3,   /* configuration error (already reported) */
	IG_EIO = -4,       /* I/O or socket error */
	IG_ETLS = -5,      /* TLS failure (handshake, alert, bad record) */
	IG_EPROTO = -6,    /* peer violated the protocol */
	IG_ETOOLONG = -7,  /* a limit was exceeded */
	IG_ENOTFOUND = -8, /* no such entry */
	IG_EEOF = -9,      /* peer closed the connection */
	IG_ETIMEDOUT = -10,
	IG_ECERT = -11,    /* certificate or key problem, or identity mismatch */
	IG_EEXIST = -12,   /* already there (an entry, a use already recorded) */
	IG_ERR_COUNT = 13  /* number of codes, 0 included */
};

/*
 * Returns a static, human readable description of an IG_E* code; never NULL.
 */
const char *ig_strerror(int err);

#endif /* IG_UTIL_ERR_H */
