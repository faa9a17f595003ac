/*
 * Unit tests for our mbedTLS build's record buffers (crypto/mbedtls_config.h,
 * crypto/patches/0001-ssl-release-in-buffer.patch): a client and a server
 * context talk over in-memory pipes, TLS 1.2 and 1.3. With
 * IG_SSL_RELEASE_IN_BUFFER, a context's input buffer is freed while no
 * incoming data is buffered and allocated again when a read starts: these
 * tests check when it is and is not released (never with a partial record or
 * unread application data), and that thousands of records across releases
 * still decrypt (the record counter survives) in both directions, with the
 * data delivered byte for byte in every chunking. With
 * IG_SSL_RELEASE_OUT_BUFFER (crypto/patches/0003-ssl-release-out-buffer.patch),
 * the application frees the output buffer between writes: never while output
 * is left to flush, and every call that writes gets it back.
 *
 * crypto/patches/0007-ssl-release-wipe-written.patch wipes a released buffer
 * only as far as it was written since it was allocated, and allocates it
 * again with malloc(): this test links with --wrap=malloc,free
 * (tests/CMakeLists.txt), fills every large malloc()ed block (only the
 * buffers' acquire calls malloc() in mbedTLS; the rest is calloc()) with a
 * poison byte, and checks each at its free: zeros (the wipe) then poison up to
 * its end. A byte written beyond the mark, or one the wipe missed, breaks that
 * shape; a byte read before it was written would be poison, not zero.
 */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <mbedtls/build_info.h>
#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

/* A self-signed P-256 test certificate for localhost (valid until 2126). */
static const char test_crt[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlTCCATugAwIBAgIUM/hRHte+v1hO583PdV70d+Cmw5swCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNjAzMTEwN1oYDzIxMjYxMTEy\n"
    "MDMxMTA3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAATK9O7GNXxASOuilkUgw716AFEbC7tp01eQhs5r5R/l6q66TnbT0KxY\n"
    "uhvarzcKQIp0pG54jxTd3u0lLhPiF3JBo2kwZzAdBgNVHQ4EFgQUDO/zbofEagrh\n"
    "MjU7CB4jWXpPm3swHwYDVR0jBBgwFoAUDO/zbofEagrhMjU7CB4jWXpPm3swDwYD\n"
    "VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID\n"
    "SAAwRQIhANcjU5h6Xig3dmkTn9sZ6gtiSaX3eEleBJToEvbBDjU6AiABO2LGA7Eh\n"
    "wwZLZPgUtkuzoUCDa+dmOPkzaKFiOielLw==\n"
    "-----END CERTIFICATE-----\n";
static const char test_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg25jnA+eliYSVm2Rv\n"
    "O/WPSDIXsl4qQhzI9lV+Qu7OX3uhRANCAATK9O7GNXxASOuilkUgw716AFEbC7tp\n"
    "01eQhs5r5R/l6q66TnbT0KxYuhvarzcKQIp0pG54jxTd3u0lLhPiF3JB\n"
    "-----END PRIVATE KEY-----\n";

/* The malloc()ed blocks watched for their wipe (see the top). */
#define POISON 0xa5
#define WATCH_MIN 4096  /* the record buffers are 8 KiB and more */
#define WATCH_MAX 64

void *__real_malloc(size_t n);
void __real_free(void *ptr);
void *__wrap_malloc(size_t n);
void __wrap_free(void *ptr);

static struct watched {
	unsigned char *p;
	size_t n;
} watched[WATCH_MAX];
static unsigned wipes_checked; /* watched blocks freed */
static unsigned wipes_bad;     /* of which not zeros then poison */
static size_t last_zeros;      /* the last one's zero prefix */

void *
__wrap_malloc(size_t n)
{
	unsigned char *p = __real_malloc(n);
	if (p == NULL || n < WATCH_MIN)
		return p;
	memset(p, POISON, n);
	for (size_t i = 0; i < WATCH_MAX; i++) {
		if (watched[i].p == NULL) {
			watched[i] = (struct watched){ p, n };
			break;
		}
	}
	return p;
}

void
__wrap_free(void *ptr)
{
	for (size_t i = 0; ptr != NULL && i < WATCH_MAX; i++) {
		if (watched[i].p != ptr)
			continue;
		size_t n = watched[i].n, z = 0;
		while (z < n && watched[i].p[z] == 0)
			z++;
		for (size_t j = z; j < n; j++) {
			if (watched[i].p[j] != POISON) {
				fprintf(stderr, "freed block of %zu: byte %zu is 0x%02x after "
				    "%zu zeros\n", n, j, watched[i].p[j], z);
				wipes_bad++;
				break;
			}
		}
		last_zeros = z;
		wipes_checked++;
		watched[i].p = NULL;
		break;
	}
	__real_free(ptr);
}

/* One direction of the connection: what was sent and not yet received. The
   reader gets at most `limit` bytes in all (SIZE_MAX: everything), so that
   a record can be cut anywhere. */
struct pipe {
	uint8_t buf[1 << 18];
	size_t len;
	size_t off;
	size_t limit;
	size_t room; /* bytes the sender may still write (SIZE_MAX: any) */
};

static int
pipe_send(void *p, const unsigned char *data, size_t len)
{
	struct pipe *pp = p;
	if (pp->off == pp->len)
		pp->off = pp->len = 0;
	if (len > sizeof(pp->buf) - pp->len)
		len = sizeof(pp->buf) - pp->len;
	if (len > pp->room)
		len = pp->room;
	if (pp->room != SIZE_MAX)
		pp->room -= len;
	if (len == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	memcpy(pp->buf + pp->len, data, len);
	pp->len += len;
	return (int)len;
}

static int
pipe_recv(void *p, unsigned char *data, size_t len)
{
	struct pipe *pp = p;
	size_t n = pp->len - pp->off;
	if (n > pp->limit)
		n = pp->limit;
	if (n > len)
		n = len;
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	memcpy(data, pp->buf + pp->off, n);
	pp->off += n;
	if (pp->limit != SIZE_MAX)
		pp->limit -= n;
	return (int)n;
}

struct peers {
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
	mbedtls_ssl_ticket_context ticket;
	mbedtls_ssl_config sconf, cconf;
	mbedtls_ssl_context srv, cli;
	struct pipe to_srv, to_cli;
};

/* Both sides of a TLS connection of the given version, handshake done. */
static struct peers *
peers_new(mbedtls_ssl_protocol_version version)
{
	struct peers *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->to_srv.limit = p->to_cli.limit = SIZE_MAX;
	p->to_srv.room = p->to_cli.room = SIZE_MAX;
	mbedtls_x509_crt_init(&p->crt);
	mbedtls_pk_init(&p->key);
	mbedtls_ssl_ticket_init(&p->ticket);
	mbedtls_ssl_config_init(&p->sconf);
	mbedtls_ssl_config_init(&p->cconf);
	mbedtls_ssl_init(&p->srv);
	mbedtls_ssl_init(&p->cli);
	assert_int_equal(mbedtls_x509_crt_parse(&p->crt, (const unsigned char *)test_crt,
	    sizeof(test_crt)), 0);
	assert_int_equal(mbedtls_pk_parse_key(&p->key, (const unsigned char *)test_key,
	    sizeof(test_key), NULL, 0, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE), 0);

	assert_int_equal(mbedtls_ssl_config_defaults(&p->sconf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	assert_int_equal(mbedtls_ssl_config_defaults(&p->cconf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_config *confs[] = { &p->sconf, &p->cconf };
	for (size_t i = 0; i < 2; i++) {
		mbedtls_ssl_conf_rng(confs[i], mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
		mbedtls_ssl_conf_min_tls_version(confs[i], version);
		mbedtls_ssl_conf_max_tls_version(confs[i], version);
		mbedtls_ssl_conf_authmode(confs[i], MBEDTLS_SSL_VERIFY_NONE);
	}
	assert_int_equal(mbedtls_ssl_conf_own_cert(&p->sconf, &p->crt, &p->key), 0);
	/* Session tickets: the TLS 1.3 client receives a NewSessionTicket
	   after the handshake, a post-handshake message. */
	assert_int_equal(mbedtls_ssl_ticket_setup(&p->ticket, mbedtls_psa_get_random,
	    MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM, 3600), 0);
	mbedtls_ssl_conf_session_tickets_cb(&p->sconf, mbedtls_ssl_ticket_write,
	    mbedtls_ssl_ticket_parse, &p->ticket);

	assert_int_equal(mbedtls_ssl_setup(&p->srv, &p->sconf), 0);
	assert_int_equal(mbedtls_ssl_setup(&p->cli, &p->cconf), 0);
	assert_int_equal(mbedtls_ssl_set_hostname(&p->cli, "localhost"), 0);
	return p;
}

/* BIO callbacks that know which pipe is whose. */
static int
srv_send(void *p, const unsigned char *d, size_t n)
{
	return pipe_send(&((struct peers *)p)->to_cli, d, n);
}

static int
srv_recv(void *p, unsigned char *d, size_t n)
{
	return pipe_recv(&((struct peers *)p)->to_srv, d, n);
}

static int
cli_send(void *p, const unsigned char *d, size_t n)
{
	return pipe_send(&((struct peers *)p)->to_srv, d, n);
}

static int
cli_recv(void *p, unsigned char *d, size_t n)
{
	return pipe_recv(&((struct peers *)p)->to_cli, d, n);
}

static void
handshake(struct peers *p)
{
	mbedtls_ssl_set_bio(&p->srv, p, srv_send, srv_recv, NULL);
	mbedtls_ssl_set_bio(&p->cli, p, cli_send, cli_recv, NULL);
	bool sdone = false, cdone = false;
	for (int i = 0; i < 100 && !(sdone && cdone); i++) {
		if (!cdone) {
			int ret = mbedtls_ssl_handshake(&p->cli);
			if (ret == 0)
				cdone = true;
			else if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
				fail_msg("client handshake: -0x%04x", (unsigned)-ret);
		}
		if (!sdone) {
			int ret = mbedtls_ssl_handshake(&p->srv);
			if (ret == 0)
				sdone = true;
			else if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
				fail_msg("server handshake: -0x%04x", (unsigned)-ret);
		}
	}
	assert_true(sdone && cdone);
}

static void
peers_free(struct peers *p)
{
	mbedtls_ssl_free(&p->srv);
	mbedtls_ssl_free(&p->cli);
	mbedtls_ssl_config_free(&p->sconf);
	mbedtls_ssl_config_free(&p->cconf);
	mbedtls_ssl_ticket_free(&p->ticket);
	mbedtls_pk_free(&p->key);
	mbedtls_x509_crt_free(&p->crt);
	free(p);
}

/* Reads what is there: returns the bytes read (into buf, up to cap, in
   reads of at most chunk bytes), stops at WANT_READ. */
static size_t
drain(mbedtls_ssl_context *ssl, uint8_t *buf, size_t cap, size_t chunk)
{
	size_t got = 0;
	for (;;) {
		size_t want = cap - got < chunk ? cap - got : chunk;
		int ret = mbedtls_ssl_read(ssl, buf + got, want);
		if (ret > 0) {
			got += (size_t)ret;
			assert_true(got <= cap);
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		if (ret == MBEDTLS_ERR_SSL_WANT_READ)
			return got;
		fail_msg("read: -0x%04x", (unsigned)-ret);
	}
}

/* Writes all of len (the pipe has room). */
static void
send_all(mbedtls_ssl_context *ssl, const uint8_t *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		int ret = mbedtls_ssl_write(ssl, buf + off, len - off);
		if (ret <= 0)
			fail_msg("write: -0x%04x", (unsigned)-ret);
		off += (size_t)ret;
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static size_t
rnd(size_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (size_t)(rng_state % n);
}

#if defined(IG_SSL_RELEASE_IN_BUFFER)

static bool
released(mbedtls_ssl_context *ssl)
{
	return ssl->MBEDTLS_PRIVATE(in_buf) == NULL;
}

static void
released_when_idle(mbedtls_ssl_protocol_version version)
{
	struct peers *p = peers_new(version);
	handshake(p);
	uint8_t buf[256];

	/* Idle after the handshake: a read that finds nothing releases. */
	assert_int_equal(drain(&p->srv, buf, sizeof(buf), sizeof(buf)), 0);
	assert_true(released(&p->srv));
	/* (the TLS 1.3 client takes the NewSessionTicket first) */
	assert_int_equal(drain(&p->cli, buf, sizeof(buf), sizeof(buf)), 0);
	assert_true(released(&p->cli));

	/* Writing, alerts aside, never needs the input buffer. */
	send_all(&p->srv, (const uint8_t *)"* OK hello\r\n", 12);
	assert_true(released(&p->srv));
	assert_int_equal(drain(&p->cli, buf, sizeof(buf), sizeof(buf)), 12);
	assert_memory_equal(buf, "* OK hello\r\n", 12);
	assert_true(released(&p->cli));

	/* A partial record keeps the buffer, whichever byte it stops at. */
	send_all(&p->cli, (const uint8_t *)"a NOOP\r\n", 8);
	size_t reclen = p->to_srv.len - p->to_srv.off;
	for (size_t cut = 1; cut < reclen; cut++) {
		p->to_srv.limit = 1;
		assert_int_equal(drain(&p->srv, buf, sizeof(buf), sizeof(buf)), 0);
		assert_false(released(&p->srv));
	}
	p->to_srv.limit = SIZE_MAX;
	/* Application data not yet read keeps it too. */
	assert_int_equal(mbedtls_ssl_read(&p->srv, buf, 3), 3);
	assert_false(released(&p->srv));
	assert_int_equal(mbedtls_ssl_get_bytes_avail(&p->srv), 5);
	assert_int_equal(drain(&p->srv, buf + 3, sizeof(buf) - 3, sizeof(buf)), 5);
	assert_memory_equal(buf, "a NOOP\r\n", 8);
	assert_true(released(&p->srv));

	/* close_notify while released; the peer sees it. */
	assert_int_equal(mbedtls_ssl_close_notify(&p->srv), 0);
	assert_int_equal(mbedtls_ssl_read(&p->cli, buf, sizeof(buf)),
	    MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	peers_free(p);
}

static void
test_released_when_idle_tls13(void **state)
{
	(void)state;
	released_when_idle(MBEDTLS_SSL_VERSION_TLS1_3);
}

static void
test_released_when_idle_tls12(void **state)
{
	(void)state;
	released_when_idle(MBEDTLS_SSL_VERSION_TLS1_2);
}

#endif /* IG_SSL_RELEASE_IN_BUFFER */

#if defined(IG_SSL_RELEASE_OUT_BUFFER)

static bool
out_released(mbedtls_ssl_context *ssl)
{
	return ssl->MBEDTLS_PRIVATE(out_buf) == NULL;
}

static void
out_released_when_drained(mbedtls_ssl_protocol_version version)
{
	struct peers *p = peers_new(version);
	uint8_t buf[256];

	/* Not during the handshake. */
	mbedtls_ssl_ig_out_buf_release(&p->srv);
	assert_false(out_released(&p->srv));
	handshake(p);
	assert_int_equal(drain(&p->cli, buf, sizeof(buf), sizeof(buf)), 0);

	/* After it, with nothing to flush: released; a write takes it back. */
	mbedtls_ssl_ig_out_buf_release(&p->srv);
	assert_true(out_released(&p->srv));
	send_all(&p->srv, (const uint8_t *)"* OK hello\r\n", 12);
	assert_false(out_released(&p->srv));
	assert_int_equal(drain(&p->cli, buf, sizeof(buf), sizeof(buf)), 12);
	assert_memory_equal(buf, "* OK hello\r\n", 12);

	/* A record the transport took only part of stays: no release until
	   it is flushed. */
	p->to_cli.room = 5;
	assert_int_equal(mbedtls_ssl_write(&p->srv, (const uint8_t *)"* 1 EXISTS\r\n", 12),
	    MBEDTLS_ERR_SSL_WANT_WRITE);
	mbedtls_ssl_ig_out_buf_release(&p->srv);
	assert_false(out_released(&p->srv));
	p->to_cli.room = SIZE_MAX;
	assert_int_equal(mbedtls_ssl_write(&p->srv, (const uint8_t *)"* 1 EXISTS\r\n", 12), 12);
	mbedtls_ssl_ig_out_buf_release(&p->srv);
	assert_true(out_released(&p->srv));
	assert_int_equal(drain(&p->cli, buf, sizeof(buf), sizeof(buf)), 12);
	assert_memory_equal(buf, "* 1 EXISTS\r\n", 12);

	/* Reading while released (it may have to send an alert), then
	   close_notify while released; the peer sees both sides right. */
	send_all(&p->cli, (const uint8_t *)"a NOOP\r\n", 8);
	assert_int_equal(drain(&p->srv, buf, sizeof(buf), sizeof(buf)), 8);
	mbedtls_ssl_ig_out_buf_release(&p->srv);
	assert_true(out_released(&p->srv));
	assert_int_equal(mbedtls_ssl_close_notify(&p->srv), 0);
	assert_int_equal(mbedtls_ssl_read(&p->cli, buf, sizeof(buf)),
	    MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	peers_free(p);
}

static void
test_out_released_when_drained_tls13(void **state)
{
	(void)state;
	out_released_when_drained(MBEDTLS_SSL_VERSION_TLS1_3);
}

static void
test_out_released_when_drained_tls12(void **state)
{
	(void)state;
	out_released_when_drained(MBEDTLS_SSL_VERSION_TLS1_2);
}

#endif /* IG_SSL_RELEASE_OUT_BUFFER */

#if defined(IG_SSL_RELEASE_IN_BUFFER) && defined(IG_SSL_RELEASE_OUT_BUFFER)

/*
 * A release wipes what the buffer held, as far as it was written: after
 * one record of each size, the marks are the record counter (8 bytes) and
 * the record as it went on the wire, and the freed block is that many zeros
 * then poison (never written).
 */
static void
wipe_written(mbedtls_ssl_protocol_version version)
{
	struct peers *p = peers_new(version);
	uint8_t buf[4096];
	static const size_t sizes[] = { 1, 12, 100, 1000, 4000 };

	handshake(p);
	assert_int_equal(drain(&p->cli, buf, sizeof(buf), sizeof(buf)), 0);
	assert_int_equal(drain(&p->srv, buf, sizeof(buf), sizeof(buf)), 0);
	assert_true(released(&p->srv));
	mbedtls_ssl_ig_out_buf_release(&p->cli);
	assert_true(out_released(&p->cli));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(buf, 'x', sizes[i]);
		unsigned checked = wipes_checked;

		/* The client writes one record into a fresh output buffer. */
		send_all(&p->cli, buf, sizes[i]);
		size_t wire = p->to_srv.len - p->to_srv.off;
		assert_true(wire > sizes[i]);
		assert_int_equal(p->cli.MBEDTLS_PRIVATE(ig_out_used), 8 + wire);
		mbedtls_ssl_ig_out_buf_release(&p->cli);
		assert_true(out_released(&p->cli));
		assert_int_equal(wipes_checked, checked + 1);
		assert_int_equal(last_zeros, 8 + wire);

		/* The server reads it into a fresh input buffer: released at the
		   WANT_READ that follows. */
		assert_int_equal(mbedtls_ssl_read(&p->srv, buf, sizeof(buf)), (int)sizes[i]);
		assert_int_equal(p->srv.MBEDTLS_PRIVATE(ig_in_used), 8 + wire);
		assert_int_equal(drain(&p->srv, buf, sizeof(buf), sizeof(buf)), 0);
		assert_true(released(&p->srv));
		assert_int_equal(wipes_checked, checked + 2);
		assert_int_equal(last_zeros, 8 + wire);
		assert_int_equal(wipes_bad, 0);
	}
	peers_free(p);
}

static void
test_wipe_written_tls13(void **state)
{
	(void)state;
	wipe_written(MBEDTLS_SSL_VERSION_TLS1_3);
}

static void
test_wipe_written_tls12(void **state)
{
	(void)state;
	wipe_written(MBEDTLS_SSL_VERSION_TLS1_2);
}

#endif

/*
 * Random traffic both ways: writes of random sizes (up to several records),
 * delivered in random slices, read in random chunks; after each exchange
 * both input buffers are released (with the patch), and every byte arrived
 * in order. A lost record counter would fail the next record's decryption.
 */
static void
traffic(mbedtls_ssl_protocol_version version)
{
	struct peers *p = peers_new(version);
	handshake(p);
	static uint8_t out[40000], in[40000];
	for (int round = 0; round < 400; round++) {
		bool up = round % 2 == 0;
		mbedtls_ssl_context *w = up ? &p->cli : &p->srv;
		mbedtls_ssl_context *r = up ? &p->srv : &p->cli;
		struct pipe *pp = up ? &p->to_srv : &p->to_cli;
		size_t len = 1 + (round % 7 == 0 ? rnd(sizeof(out)) : rnd(300));
		for (size_t i = 0; i < len; i++)
			out[i] = (uint8_t)rnd(256);
		send_all(w, out, len);
#if defined(IG_SSL_RELEASE_OUT_BUFFER)
		/* the writer's output buffer freed between most writes: the
		   record counter must survive it */
		if (round % 3 != 0) {
			mbedtls_ssl_ig_out_buf_release(w);
			assert_true(out_released(w));
		}
#endif
		size_t got = 0;
		while (got < len) {
			pp->limit = 1 + rnd(round % 3 == 0 ? 40 : 20000);
			got += drain(r, in + got, sizeof(in) - got, 1 + rnd(round % 5 == 0 ? 7 : 20000));
#if defined(IG_SSL_RELEASE_IN_BUFFER)
			/* released when everything sent was read (and maybe
			   before, when a slice ended on a record boundary) */
			if (pp->off == pp->len)
				assert_true(released(r));
#endif
		}
		pp->limit = SIZE_MAX;
		assert_int_equal(got, len);
		assert_memory_equal(in, out, len);
		assert_int_equal(wipes_bad, 0);
		assert_int_equal(drain(r, in, sizeof(in), sizeof(in)), 0);
#if defined(IG_SSL_RELEASE_IN_BUFFER)
		assert_true(released(r));
#endif
	}
	peers_free(p);
}

static void
test_traffic_tls13(void **state)
{
	(void)state;
	traffic(MBEDTLS_SSL_VERSION_TLS1_3);
}

static void
test_traffic_tls12(void **state)
{
	(void)state;
	traffic(MBEDTLS_SSL_VERSION_TLS1_2);
}

int
main(void)
{
	if (psa_crypto_init() != PSA_SUCCESS)
		return 1;
	const struct CMUnitTest tests[] = {
#if defined(IG_SSL_RELEASE_IN_BUFFER)
		cmocka_unit_test(test_released_when_idle_tls13),
		cmocka_unit_test(test_released_when_idle_tls12),
#endif
#if defined(IG_SSL_RELEASE_OUT_BUFFER)
		cmocka_unit_test(test_out_released_when_drained_tls13),
		cmocka_unit_test(test_out_released_when_drained_tls12),
#endif
#if defined(IG_SSL_RELEASE_IN_BUFFER) && defined(IG_SSL_RELEASE_OUT_BUFFER)
		cmocka_unit_test(test_wipe_written_tls13),
		cmocka_unit_test(test_wipe_written_tls12),
#endif
		cmocka_unit_test(test_traffic_tls13),
		cmocka_unit_test(test_traffic_tls12),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	/* Every released buffer of every test was wiped where written, and
	   only there. */
	printf("%u released buffers checked at free, %u not wiped as written\n",
	    wipes_checked, wipes_bad);
	return failed || wipes_bad != 0 || wipes_checked == 0;
}
