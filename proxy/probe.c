#include "proxy/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "certs/name.h"
#include "proxy/caps.h"
#include "util/err.h"
#include "util/span.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

struct probe {
	mbedtls_net_context net;
	mbedtls_ssl_context ssl;
	bool tls;
	char buf[4096];
	size_t len;
};

static int
probe_connect(struct probe *p, const struct ig_backend_conf *b, unsigned timeout_ms)
{
	int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return IG_EIO;
	p->net.fd = fd;
	if (connect(fd, (const struct sockaddr *)&b->addr, b->addrlen) != 0) {
		if (errno != EINPROGRESS)
			return IG_EIO;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, (int)timeout_ms) != 1)
			return IG_ETIMEDOUT;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr != 0)
			return IG_EIO;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

static int
probe_send(struct probe *p, const char *line)
{
	size_t len = strlen(line), off = 0;
	while (off < len) {
		int n = p->tls ? mbedtls_ssl_write(&p->ssl, (const unsigned char *)line + off, len - off) :
		    (int)write(p->net.fd, line + off, len - off);
		if (n <= 0)
			return IG_EIO;
		off += (size_t)n;
	}
	return 0;
}

/* Reads one line (without CRLF) into out. */
static int
probe_line(struct probe *p, char *out, size_t outsz)
{
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		if (nl != NULL) {
			size_t n = (size_t)(nl - p->buf) + 1;
			size_t l = n - 1;
			if (l > 0 && p->buf[l - 1] == '\r')
				l--;
			if (l >= outsz)
				l = outsz - 1;
			memcpy(out, p->buf, l);
			out[l] = '\0';
			memmove(p->buf, p->buf + n, p->len - n);
			p->len -= n;
			return 0;
		}
		if (p->len == sizeof(p->buf))
			return IG_ETOOLONG;
		int n = p->tls ? mbedtls_ssl_read(&p->ssl, (unsigned char *)p->buf + p->len,
		    sizeof(p->buf) - p->len) : (int)read(p->net.fd, p->buf + p->len,
		    sizeof(p->buf) - p->len);
		if (n <= 0)
			return IG_EIO;
		p->len += (size_t)n;
	}
}

static int
probe_tls(struct probe *p, const struct ig_gen *g, char *err, size_t errsz)
{
	mbedtls_ssl_init(&p->ssl);
	p->tls = true;
	const char *name = ig_tls_client_name(g->tls_client);
	if (mbedtls_ssl_setup(&p->ssl, ig_tls_client_conf(g->tls_client)) != 0 ||
	    mbedtls_ssl_set_hostname(&p->ssl, name) != 0)
		return IG_ETLS;
	mbedtls_ssl_set_bio(&p->ssl, &p->net, mbedtls_net_send, mbedtls_net_recv, NULL);
	int ret = mbedtls_ssl_handshake(&p->ssl);
	if (ret != 0) {
		snprintf(err, errsz, "TLS handshake with the backend failed (-0x%04x)",
		    (unsigned)-ret);
		return IG_ETLS;
	}
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&p->ssl);
	if (g->cfg->backend.tls_verify && (peer == NULL || ig_cert_check_host(peer, name) != 0)) {
		snprintf(err, errsz, "backend certificate does not match '%s'", name);
		return IG_ECERT;
	}
	return 0;
}

int
ig_backend_probe(const struct ig_gen *g, unsigned timeout_ms, char *caps, size_t capsz,
    char *err, size_t errsz)
{
	const struct ig_backend_conf *b = &g->cfg->backend;
	struct probe p;
	memset(&p, 0, sizeof(p));
	mbedtls_net_init(&p.net);
	char line[IG_CAPS_MAX + 256];
	caps[0] = '\0';
	snprintf(err, errsz, "unexpected answer");
	int rc = probe_connect(&p, b, timeout_ms);
	if (rc != 0) {
		snprintf(err, errsz, "cannot connect to %s: %s", b->address,
		    rc == IG_ETIMEDOUT ? "timed out" : strerror(errno));
		goto out;
	}
	if (b->tls == IG_TLS_IMPLICIT && (rc = probe_tls(&p, g, err, errsz)) != 0)
		goto out;
	if ((rc = probe_line(&p, line, sizeof(line))) != 0 || strncmp(line, "* OK", 4) != 0) {
		rc = IG_EPROTO;
		snprintf(err, errsz, "no IMAP greeting from %s", b->address);
		goto out;
	}
	if (b->tls == IG_TLS_STARTTLS) {
		if ((rc = probe_send(&p, "ig.1 STARTTLS\r\n")) != 0)
			goto out;
		do {
			if ((rc = probe_line(&p, line, sizeof(line))) != 0)
				goto out;
		} while (strncmp(line, "ig.1 ", 5) != 0);
		if (strncmp(line, "ig.1 OK", 7) != 0) {
			rc = IG_EPROTO;
			snprintf(err, errsz, "backend refused STARTTLS");
			goto out;
		}
		p.len = 0; /* nothing sent before TLS is kept */
		if ((rc = probe_tls(&p, g, err, errsz)) != 0)
			goto out;
	}
	if ((rc = probe_send(&p, "ig.2 CAPABILITY\r\n")) != 0)
		goto out;
	for (;;) {
		if ((rc = probe_line(&p, line, sizeof(line))) != 0)
			goto out;
		struct ig_span sp = { (const uint8_t *)line, strlen(line) };
		if (strncmp(line, "* CAPABILITY ", 13) == 0)
			ig_caps_from_response(sp, caps, capsz);
		if (strncmp(line, "ig.2 ", 5) == 0)
			break;
	}
	(void)probe_send(&p, "ig.3 LOGOUT\r\n");
	rc = caps[0] ? 0 : IG_EPROTO;
out:
	if (p.tls)
		mbedtls_ssl_free(&p.ssl);
	mbedtls_net_free(&p.net);
	return rc;
}
