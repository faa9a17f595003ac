"""The backend side: a backend that is down answers [UNAVAILABLE]; TLS to
the backend (STARTTLS and implicit) with the server identity checked
against the configured name (RFC 2595 2.4, RFC 6125), and refused on a
mismatch or an untrusted certificate."""

import re
import socket
import threading

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code


def login_over_tls(ig, ca, user=ALICE, pw=ALICE_PW):
    """LOGIN on the implicit TLS listener; returns (untagged, tagged, conn)."""
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca), timeout=20)
    assert c.readline().startswith(b"* OK")
    c.send("a LOGIN %s %s\r\n" % (user, pw))
    untagged = []
    while True:
        try:
            r = c.read_response()
        except igtest.Closed:
            return untagged, None, c
        if r.startswith(b"a "):
            return untagged, r.decode().rstrip(), c
        untagged.append(r)
        if r.startswith(b"* BYE"):
            c.expect_closed()
            return untagged, None, c


def assert_unavailable(untagged, tagged):
    """Tagged NO [UNAVAILABLE], or * BYE [UNAVAILABLE] and close."""
    if tagged is not None:
        assert status(tagged) == "NO", tagged
        assert resp_code(tagged) == "UNAVAILABLE", tagged
    else:
        byes = [r for r in untagged if r.startswith(b"* BYE")]
        assert byes, "no tagged answer and no BYE: %r" % untagged
        assert resp_code(byes[0]) == "UNAVAILABLE", byes[0]


def closed_port():
    """A loopback port nothing listens on."""
    return igtest.free_port()


def test_backend_down_unavailable(imapguard, devcerts, ca):
    ig = imapguard(igtest.base_config(devcerts, "127.0.0.1:%d" % closed_port()))
    untagged, tagged, c = login_over_tls(ig, ca)
    c.close()
    assert_unavailable(untagged, tagged)
    # the proxy itself is still up
    assert igtest.can_connect(*ig.addr("imaps"))


def test_backend_down_authenticate_unavailable(imapguard, devcerts, ca):
    ig = imapguard(igtest.base_config(devcerts, "127.0.0.1:%d" % closed_port()))
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca), timeout=20)
    try:
        c.readline()
        c.send("a AUTHENTICATE PLAIN %s\r\n" % igtest.plain_ir(ALICE, ALICE_PW))
        r = c.read_response()
        if r.startswith(b"* BYE"):
            assert resp_code(r) == "UNAVAILABLE"
        else:
            assert r.startswith(b"a NO") and resp_code(r) == "UNAVAILABLE", r
    finally:
        c.close()


def test_backend_not_speaking_imap(imapguard, devcerts, ca):
    """A backend that accepts and closes at once: [UNAVAILABLE], no hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def slam():
        while not stop.is_set():
            try:
                s, _ = srv.accept()
                s.close()
            except OSError:
                pass
    t = threading.Thread(target=slam, daemon=True)
    t.start()
    try:
        ig = imapguard(igtest.base_config(devcerts, "127.0.0.1:%d" % srv.getsockname()[1]))
        untagged, tagged, c = login_over_tls(ig, ca)
        c.close()
        assert_unavailable(untagged, tagged)
    finally:
        stop.set()
        t.join(2)
        srv.close()


def tls_backend_config(devcerts, dovecot_tls, mode, server_name="localhost", ca=True):
    port = dovecot_tls.port if mode == "starttls" else dovecot_tls.ssl_port
    cfg = igtest.base_config(devcerts, "127.0.0.1:%d" % port, backend_tls=mode)
    if ca:
        cfg["backend"]["ca"] = devcerts + "/ca.pem"
    cfg["backend"]["server_name"] = server_name
    return cfg


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_backend_tls_login(imapguard, devcerts, ca, dovecot_tls, mode):
    ig = imapguard(tls_backend_config(devcerts, dovecot_tls, mode))
    untagged, tagged, c = login_over_tls(ig, ca, "bob@example.com", "bob-secret")
    try:
        assert tagged and status(tagged) == "OK", (untagged, tagged)
        untagged, tagged = c.cmd("b", "SELECT INBOX")
        assert status(tagged) == "OK"
    finally:
        c.close()
    # Dovecot saw bob's login over TLS
    igtest.wait_until(
        lambda: re.search(r"Login: user=<bob@example.com>.*\bTLS\b", dovecot_tls.log_text()),
        5, "a TLS login for bob in Dovecot's log")


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_backend_name_mismatch_refused(imapguard, devcerts, ca, dovecot_tls, mode):
    """The dev certificate is for localhost: a configured server_name of
    mail.example.org must not match, and no credentials are sent."""
    auths = igtest.imap_login_count(dovecot_tls)
    ig = imapguard(tls_backend_config(devcerts, dovecot_tls, mode,
                                      server_name="mail.example.org"))
    untagged, tagged, c = login_over_tls(ig, ca)
    c.close()
    assert_unavailable(untagged, tagged)
    assert igtest.imap_login_count(dovecot_tls) == auths, "credentials reached an unverified backend"


def test_backend_untrusted_ca_refused(imapguard, devcerts, ca, dovecot_tls, tmp_path):
    """A backend CA file that does not hold the backend's issuer: refused."""
    other = igtest.make_devcerts(None, str(tmp_path / "other"))  # a different CA
    auths = igtest.imap_login_count(dovecot_tls)
    cfg = tls_backend_config(devcerts, dovecot_tls, "implicit", ca=False)
    cfg["backend"]["ca"] = other + "/ca.pem"
    ig = imapguard(cfg)
    untagged, tagged, c = login_over_tls(ig, ca)
    c.close()
    assert_unavailable(untagged, tagged)
    assert igtest.imap_login_count(dovecot_tls) == auths

