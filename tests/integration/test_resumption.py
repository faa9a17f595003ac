"""TLS session resumption on the client side: TLS 1.3 tickets, TLS 1.2
tickets, the TLS 1.2 session cache for clients without tickets, their
switches (tls.session_tickets, tls.session_cache_size), and a reload that
starts new ticket keys. Checked with Python's ssl (session_reused) and
openssl s_client -sess_out / -sess_in ("Reused"), and in imapguard's log
(event=tls ... resumed=yes|no)."""

import copy
import os
import re
import ssl
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW, status


def ctx_for(ca, version, tickets=True):
    ctx = igtest.client_context(ca)
    ctx.minimum_version = version
    ctx.maximum_version = version
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def first_session(ig, ca, ctx):
    """A full handshake, a login and a logout; returns the session the
    client keeps (for TLS 1.3 the ticket arrives after the handshake, so the
    session is taken after the server has written)."""
    c = igtest.tls_client(ig, ca, ctx=ctx)
    try:
        assert not c.sock.session_reused
        assert status(c.cmd("a", "NOOP")[1]) == "OK"
        return c.sock.session
    finally:
        c.close()


def resumed_session(ig, ca, ctx, session):
    """A second connection offering session; returns whether the server
    resumed it, after checking the session works (login, SELECT)."""
    c = igtest.tls_client(ig, ca, ctx=ctx, session=session)
    try:
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(c.cmd("b", "SELECT INBOX")[1]) == "OK"
        return c.sock.session_reused
    finally:
        c.close()


def resumed_lines(ig):
    return re.findall(r"event=tls version=\S+ cipher=\S+ resumed=(yes|no)", ig.log_text())


CASES = [
    ("tls13-ticket", ssl.TLSVersion.TLSv1_3, True),
    ("tls12-ticket", ssl.TLSVersion.TLSv1_2, True),
    ("tls12-cache", ssl.TLSVersion.TLSv1_2, False),
]


@pytest.mark.parametrize("version,tickets", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_session_resumed(ig, ca, version, tickets):
    ctx = ctx_for(ca, version, tickets)
    sess = first_session(ig, ca, ctx)
    assert sess is not None
    if tickets:
        assert sess.has_ticket, "no ticket sent"
    n = len(resumed_lines(ig))
    assert resumed_session(ig, ca, ctx, sess), "the server did a full handshake"
    igtest.wait_until(lambda: len(resumed_lines(ig)) > n, 5, "event=tls line")
    assert resumed_lines(ig)[n] == "yes"


@pytest.mark.parametrize("version,tickets", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_resumption_switched_off(imapguard, devcerts, dovecot, ca, version, tickets):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["tls"]["session_tickets"] = False
    cfg["tls"]["session_cache_size"] = 0
    ig = imapguard(cfg)
    ctx = ctx_for(ca, version, tickets)
    sess = first_session(ig, ca, ctx)
    if sess is not None:
        assert not sess.has_ticket, "a ticket was sent with session_tickets: false"
    assert not resumed_session(ig, ca, ctx, sess)
    igtest.wait_until(lambda: len(resumed_lines(ig)) >= 2, 5, "two event=tls lines")
    assert resumed_lines(ig) == ["no", "no"]


def test_reload_starts_new_ticket_keys(imapguard, devcerts, dovecot, ca):
    """A reload builds a new generation with new ticket keys, as nginx does
    without ssl_session_ticket_key: an old ticket gives a full handshake,
    which works; the next ticket resumes again."""
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))
    ctx = ctx_for(ca, ssl.TLSVersion.TLSv1_3)
    sess = first_session(ig, ca, ctx)
    assert resumed_session(ig, ca, ctx, sess)
    ig.reload()
    assert not resumed_session(ig, ca, ctx, sess)
    sess2 = first_session(ig, ca, ctx)
    assert resumed_session(ig, ca, ctx, sess2)


@pytest.mark.parametrize("proto", ["-tls1_3", "-tls1_2"])
def test_openssl_s_client_reused(ig, ca, tmp_path, proto):
    """openssl s_client -sess_out, then -sess_in: "Reused" the second time."""
    host, port = ig.addr("imaps")
    sess = os.path.join(str(tmp_path), "sess.pem")

    def s_client(*extra):
        r = subprocess.run(
            ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-CAfile", ca,
             "-verify_return_error", "-servername", "localhost", "-crlf", "-ign_eof",
             proto] + list(extra),
            input=b"a NOOP\nb LOGOUT\n", capture_output=True, timeout=30)
        out = r.stdout.decode(errors="replace")
        assert re.search(r"^b OK", out, re.M), out + r.stderr.decode(errors="replace")
        return out

    out = s_client("-sess_out", sess)
    assert re.search(r"^New, TLSv1\.[23]", out, re.M), out
    assert os.path.getsize(sess) > 0
    out = s_client("-sess_in", sess)
    assert re.search(r"^Reused, TLSv1\.[23]", out, re.M), out
