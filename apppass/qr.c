/*
 * A QR code drawn with Unicode half blocks, into a FILE or a buffer, over
 * libqrencode. See qr.h.
 */
#include "apppass/qr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <qrencode.h>

#include "util/err.h"

#define QR_WIDTH_MAX 177 /* modules across a version 40 symbol */
#define QR_ANSI_ON "\033[30;107m"
#define QR_ANSI_OFF "\033[0m"
/* One line: the colours, 3 UTF-8 bytes per column, the reset, "\n". */
#define QR_LINE_MAX \
	(sizeof(QR_ANSI_ON) + 3 * (QR_WIDTH_MAX + 2 * IG_QR_QUIET) + sizeof(QR_ANSI_OFF) + 1)

/* Where the drawing goes: a FILE, or a buffer (len counts every byte of
 * the drawing, also those past cap, so that it ends as the size needed). */
struct qr_out {
	FILE *f;    /* the FILE, or NULL for the buffer */
	char *buf;  /* the caller's buffer (may be NULL when cap is 0) */
	size_t cap; /* its size in bytes, the NUL's included */
	size_t len; /* bytes of the drawing so far */
	bool failed; /* a write to f failed */
};

static void
qr_emit(struct qr_out *o, const char *s, size_t n)
{
	if (o->f != NULL) {
		if (!o->failed && fwrite(s, 1, n, o->f) != n)
			o->failed = true;
	} else if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

/* Whether the module at (x, y) of the drawing (quiet zone included) is
 * dark; outside the symbol it is light. */
static bool
qr_dark(const QRcode *qr, int x, int y)
{
	x -= IG_QR_QUIET;
	y -= IG_QR_QUIET;
	if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
		return false;
	return (qr->data[(size_t)y * (size_t)qr->width + (size_t)x] & 1u) != 0;
}

/* Draws qr, line by line. */
static void
qr_draw(const QRcode *qr, unsigned flags, struct qr_out *o)
{
	static const char *const glyph[4] = {
		" ",            /* no ink */
		"\xe2\x96\x80", /* U+2580 upper half: ink above */
		"\xe2\x96\x84", /* U+2584 lower half: ink below */
		"\xe2\x96\x88", /* U+2588 full block: ink in both */
	};
	bool ansi = (flags & IG_QRF_ANSI) != 0;
	bool ink_dark = ansi || (flags & IG_QRF_INVERT) != 0;
	int size = qr->width + 2 * IG_QR_QUIET;
	char line[QR_LINE_MAX];

	for (int y = 0; y < size; y += 2) {
		size_t n = 0;
		if (ansi) {
			memcpy(line, QR_ANSI_ON, sizeof(QR_ANSI_ON) - 1);
			n += sizeof(QR_ANSI_ON) - 1;
		}
		for (int x = 0; x < size; x++) {
			/* ink where the module's colour is the ink's; the half
			   line below the drawing (odd height) gets none */
			bool up = qr_dark(qr, x, y) == ink_dark;
			bool down = y + 1 < size && qr_dark(qr, x, y + 1) == ink_dark;
			const char *g = glyph[(up ? 1 : 0) | (down ? 2 : 0)];
			size_t gl = strlen(g);
			memcpy(line + n, g, gl);
			n += gl;
		}
		if (ansi) {
			memcpy(line + n, QR_ANSI_OFF, sizeof(QR_ANSI_OFF) - 1);
			n += sizeof(QR_ANSI_OFF) - 1;
		}
		line[n++] = '\n';
		qr_emit(o, line, n);
	}
	mbedtls_platform_zeroize(line, sizeof(line));
}

/* Encodes text as qr.h says; returns 0 or an IG_E* and sets *qr. */
static int
qr_encode(const char *text, unsigned flags, QRcode **qr)
{
	*qr = NULL;
	if (text == NULL || text[0] == '\0' || (flags & ~(IG_QRF_INVERT | IG_QRF_ANSI)) != 0)
		return IG_EINVAL;
	errno = 0;
	*qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	if (*qr == NULL)
		return errno == ERANGE ? IG_ETOOLONG : errno == ENOMEM ? IG_ENOMEM : IG_EINVAL;
	if ((*qr)->width < 21 || (*qr)->width > QR_WIDTH_MAX) {
		/* not a QR code libqrencode documents: refuse, not overrun */
		QRcode_free(*qr);
		*qr = NULL;
		return IG_EINVAL;
	}
	return 0;
}

/* Wipes the module matrix (it spells the text) and frees qr. */
static void
qr_free(QRcode *qr)
{
	mbedtls_platform_zeroize(qr->data, (size_t)qr->width * (size_t)qr->width);
	QRcode_free(qr);
}

int
ig_qr_render(FILE *f, const char *text, unsigned flags)
{
	QRcode *qr;
	int rc = qr_encode(text, flags, &qr);
	if (rc != 0)
		return rc;
	struct qr_out o = { .f = f };
	qr_draw(qr, flags, &o);
	qr_free(qr);
	return o.failed ? IG_EIO : 0;
}

int
ig_qr_render_buf(const char *text, unsigned flags, char *out, size_t outsz,
    size_t *outlen)
{
	*outlen = 0;
	if (outsz > 0)
		out[0] = '\0';
	QRcode *qr;
	int rc = qr_encode(text, flags, &qr);
	if (rc != 0)
		return rc;
	struct qr_out o = { .buf = out, .cap = outsz };
	qr_draw(qr, flags, &o);
	qr_free(qr);
	if (o.len >= outsz) {
		if (outsz > 0)
			mbedtls_platform_zeroize(out, outsz);
		*outlen = o.len;
		return IG_ETOOLONG;
	}
	out[o.len] = '\0';
	*outlen = o.len;
	return 0;
}
