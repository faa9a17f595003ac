/*
 * The raw side of a connection: the bytes exactly as they travel on the
 * socket, before TLS or without it. Shared by proxy/conn.c (its plaintext
 * path) and the TLS glue's BIO callbacks in proxy/tls.c; nothing else
 * reads or writes the raw buffers.
 */
#ifndef IG_PROXY_CONN_RAW_H
#define IG_PROXY_CONN_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/conn_types.h"

/*
 * Appends to the outbound buffer what fits of buf (ig_conn_flush() sends
 * it), taking a pool buffer first if c uses a pool and holds none. Returns
 * the bytes taken (0 when the buffer is full), c's socket error, IG_EIO
 * when c is not open, IG_EINVAL after the TCP shutdown, or IG_ENOMEM when
 * no buffer could be allocated.
 */
long ig_conn_write_raw(struct ig_conn *c, const uint8_t *buf, size_t len);

/*
 * Takes up to len unread bytes from the inbound buffer (a pooled one goes
 * back once every byte in it has been taken). Returns the bytes copied, 0
 * when none are there yet, c's socket error, or IG_EEOF once the peer has
 * closed and everything has been read. Does not restart reading: the
 * caller calls ig_conn_update_read() when it has made room.
 */
long ig_conn_read_raw(struct ig_conn *c, uint8_t *buf, size_t len);

#endif /* IG_PROXY_CONN_RAW_H */
