/*
 * A QR code drawn with text: the otpauth:// URI of a TOTP enrolment shown
 * in a terminal, for an authenticator app to scan.
 *
 * The symbol is libqrencode's (Debian's libqrencode): error correction
 * level L (a screen is not a worn label, and the smaller symbol is easier
 * to scan from a terminal), the smallest version that holds the text, 8-bit
 * mode with numeric and alphanumeric segments where they are shorter, i.e.
 * QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1). It is drawn
 * with a quiet zone of IG_QR_QUIET modules on every side, one character
 * per module across and two modules per line down, with the Unicode half
 * blocks: U+2580 (upper half), U+2584 (lower half), U+2588 (full) and the
 * space, in UTF-8, each line ending in "\n". A symbol of width w modules
 * is therefore drawn as (w + 2 * IG_QR_QUIET + 1) / 2 lines of
 * w + 2 * IG_QR_QUIET characters; when that height is odd, the lower half
 * of the last line is left blank.
 *
 * The text is usually a secret (the URI carries the TOTP key) and so is the
 * drawing: neither is logged; this module wipes its own copies of the
 * module matrix and of each line (libqrencode's internal buffers are freed
 * without being wiped, which we cannot change), and the caller wipes a
 * buffer it had drawn into.
 */
#ifndef IG_APPPASS_QR_H
#define IG_APPPASS_QR_H

#include <stddef.h>
#include <stdio.h>

#define IG_QR_QUIET 4 /* modules of light border on each side (ISO/IEC 18004) */

/*
 * How the drawing's "ink" (the glyphs, in the terminal's foreground colour)
 * maps to the code's modules. A scanner wants dark modules on a light
 * ground; which one the terminal's foreground is depends on its theme.
 */
#define IG_QRF_INVERT 0x1u /* ink is the dark modules: for dark text on a light
                              background. Without it the ink is the light
                              modules (and the quiet zone), for the usual light
                              text on a dark background, as `qrencode -t UTF8`
                              draws */
#define IG_QRF_ANSI 0x2u   /* right on any theme: every line sets black on
                              bright white with SGR escapes ("\033[30;107m")
                              and resets them at its end ("\033[0m"); the ink
                              is the dark modules. IG_QRF_INVERT is then
                              ignored */

/*
 * Encodes text (NUL-terminated, non-empty) and draws it into f, as
 * described above (flags: IG_QRF_*). Returns 0, IG_EINVAL for an empty text
 * or unknown flags, IG_ETOOLONG when text does not fit the largest QR code,
 * IG_ENOMEM, or IG_EIO when writing to f fails (part may have been
 * written). Does not flush f.
 */
int ig_qr_render(FILE *f, const char *text, unsigned flags);

/*
 * The same drawing into out, NUL-terminated. Returns 0 and sets *outlen
 * (the NUL not counted); IG_ETOOLONG when text does not fit a QR code
 * (then *outlen is 0) or when out is too small (then *outlen is the length
 * the drawing needs, the NUL not counted, so a second call with a buffer of
 * *outlen + 1 bytes succeeds); IG_EINVAL or IG_ENOMEM as above. On failure
 * out, if outsz is not 0, holds the empty string and nothing else of the
 * drawing. out may be NULL when outsz is 0 (to learn the size).
 */
int ig_qr_render_buf(const char *text, unsigned flags, char *out, size_t outsz,
    size_t *outlen);

#endif /* IG_APPPASS_QR_H */
