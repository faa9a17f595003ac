"""STARTTLS listener (RFC 2595, RFC 9051 6.2.1): LOGINDISABLED and
PRIVACYREQUIRED in cleartext, capabilities re-announced after TLS,
STARTTLS syntax and state rules, and the plaintext command injection
(CVE-2011-0411 class): bytes pipelined after STARTTLS are never executed."""

import imaplib
import re
import ssl
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code


def plain_conn(ig):
    c = Raw(*ig.addr("imap"))
    greeting = c.readline()
    assert greeting.startswith(b"* OK"), greeting
    return c


@pytest.fixture
def conn(ig):
    c = plain_conn(ig)
    yield c
    c.close()


def starttls(c, ca, tag="t"):
    """STARTTLS on c: tagged OK, then the handshake right after its CRLF."""
    c.send("%s STARTTLS\r\n" % tag)
    untagged, tagged = c.read_until_tagged(tag)
    assert status(tagged) == "OK", tagged
    c.starttls(igtest.client_context(ca))


# ---- cleartext -------------------------------------------------------------

def test_cleartext_capabilities(conn):
    untagged, tagged = conn.cmd("a", "CAPABILITY")
    assert status(tagged) == "OK"
    caps = igtest.capabilities(untagged)
    assert "STARTTLS" in caps
    assert "LOGINDISABLED" in caps
    assert "AUTH=PLAIN" not in caps and "AUTH=LOGIN" not in caps, caps


def test_greeting_capabilities_if_any_match(ig):
    """A greeting that carries [CAPABILITY] must say the same as CAPABILITY."""
    c = Raw(*ig.addr("imap"))
    try:
        greeting = c.readline()
        caps = igtest.capabilities([greeting])
        if caps:
            assert "STARTTLS" in caps and "LOGINDISABLED" in caps
            assert "AUTH=PLAIN" not in caps
    finally:
        c.close()


def test_cleartext_login_refused_without_backend(conn, dovecot):
    conns = igtest.quiet_connection_count(dovecot)
    auths = igtest.imap_login_count(dovecot)
    tagged = conn.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]
    assert status(tagged) == "NO"
    assert resp_code(tagged) == "PRIVACYREQUIRED"
    tagged = conn.cmd("b", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, ALICE_PW))[1]
    assert status(tagged) in ("NO", "BAD")
    assert resp_code(tagged) == "PRIVACYREQUIRED"
    # still usable, and STARTTLS then works
    assert status(conn.cmd("c", "NOOP")[1]) == "OK"
    conn.close()
    assert igtest.imap_login_count(dovecot) == auths, "Dovecot saw an authentication"
    assert igtest.quiet_connection_count(dovecot) == conns, "proxy connected to Dovecot"


def test_cleartext_authenticate_without_ir_refused_before_secret(conn):
    """No '+' continuation in cleartext: the client must not be invited to
    send the password."""
    conn.send("a AUTHENTICATE PLAIN\r\n")
    line = conn.readline()
    assert not line.startswith(b"+"), line
    tagged = line.decode().rstrip()
    assert tagged.startswith("a ") and status(tagged) in ("NO", "BAD")
    assert resp_code(tagged) == "PRIVACYREQUIRED"


def test_imaplib_cleartext_login_refused(ig):
    m = imaplib.IMAP4(*ig.addr("imap"), timeout=10)
    try:
        assert "LOGINDISABLED" in m.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            m.login(ALICE, ALICE_PW)
    finally:
        m.shutdown()


# ---- STARTTLS rules ----------------------------------------------------------

def test_starttls_reannounces_capabilities(conn, ca):
    starttls(conn, ca)
    untagged, tagged = conn.cmd("a", "CAPABILITY")
    assert status(tagged) == "OK"
    caps = igtest.capabilities(untagged)
    assert "STARTTLS" not in caps
    assert "LOGINDISABLED" not in caps
    assert "AUTH=PLAIN" in caps
    assert "IMAP4REV1" in caps or "IMAP4REV2" in caps


def test_starttls_then_login_select(conn, ca):
    starttls(conn, ca)
    assert status(conn.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    untagged, tagged = conn.cmd("b", "SELECT INBOX")
    assert status(tagged) == "OK"


def test_starttls_then_authenticate_plain(conn, ca):
    starttls(conn, ca)
    tagged = conn.cmd("a", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, ALICE_PW))[1]
    assert status(tagged) == "OK"
    assert status(conn.cmd("b", "SELECT INBOX")[1]) == "OK"


def test_starttls_then_authenticate_plain_continuation(conn, ca):
    starttls(conn, ca)
    conn.send("a AUTHENTICATE PLAIN\r\n")
    assert conn.readline().startswith(b"+")
    conn.send(igtest.plain_ir(ALICE, ALICE_PW) + "\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "OK"


def test_starttls_with_argument_is_bad(conn, ca):
    tagged = conn.cmd("a", "STARTTLS x")[1]
    assert status(tagged) == "BAD"
    # still cleartext and usable: a real STARTTLS works afterwards
    starttls(conn, ca)
    assert status(conn.cmd("b", "NOOP")[1]) == "OK"


def test_second_starttls_is_bad(conn, ca):
    starttls(conn, ca)
    tagged = conn.cmd("a", "STARTTLS")[1]
    assert status(tagged) == "BAD"
    assert status(conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"


def test_wrong_password_after_starttls_then_retry(conn, ca):
    starttls(conn, ca)
    tagged = conn.cmd("a", "LOGIN %s wrong" % ALICE)[1]
    assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED"
    assert status(conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"


# ---- plaintext command injection -----------------------------------------------

@pytest.mark.parametrize("injected", [
    "b LOGIN %s %s" % (ALICE, ALICE_PW),
    "b CAPABILITY",
    "b NOOP",
])
def test_starttls_injection_discarded(ig, ca, dovecot, injected):
    """'a STARTTLS' and an injected command in ONE write: the injected one
    is thrown away, never answered (before or after the handshake) and
    never reaches Dovecot."""
    auths = igtest.imap_login_count(dovecot)
    c = plain_conn(ig)
    try:
        c.send("a STARTTLS\r\n%s\r\n" % injected)
        line = c.readline()  # byte-exact: nothing after the OK line is consumed
        assert line.startswith(b"a OK"), line
        # A handshake that succeeds proves nothing cleartext followed the OK.
        c.starttls(igtest.client_context(ca))
        untagged, tagged = c.cmd("c", "NOOP")
        assert status(tagged) == "OK"
        assert not any(r.startswith(b"b ") for r in untagged), untagged
        # not logged in: the session is still the proxy's pre-auth state
        assert "LOGINDISABLED" not in igtest.capabilities(c.cmd("d", "CAPABILITY")[0])
        assert status(c.cmd("e", "SELECT INBOX")[1]) in ("BAD", "NO")
        # and nothing tagged b shows up late
        c.send("f NOOP\r\n")
        untagged, tagged = c.read_until_tagged("f")
        assert not any(r.startswith(b"b ") for r in untagged)
    finally:
        c.close()
    assert igtest.imap_login_count(dovecot) == auths, "the injected LOGIN reached Dovecot"


def test_starttls_injection_split_across_writes(ig, ca, dovecot):
    """Same with the injected bytes in a second write just after STARTTLS.
    Depending on timing they reach the proxy before it switched to TLS
    (then they are discarded and the session goes on) or after (then they
    are a broken TLS record and the session ends). Either way they are never
    executed."""
    auths = igtest.imap_login_count(dovecot)
    c = plain_conn(ig)
    try:
        c.send("a STARTTLS\r\n")
        c.send("b LOGIN %s %s\r\n" % (ALICE, ALICE_PW))
        assert c.readline().startswith(b"a OK")
        try:
            c.starttls(igtest.client_context(ca))
            untagged, tagged = c.cmd("c", "NOOP")
        except (ssl.SSLError, OSError, igtest.Closed):
            pass  # the injected bytes broke the handshake: also safe
        else:
            assert status(tagged) == "OK"
            assert not any(r.startswith(b"b ") for r in untagged)
            assert status(c.cmd("d", "SELECT INBOX")[1]) in ("BAD", "NO")
    finally:
        c.close()
    assert igtest.imap_login_count(dovecot) == auths


# ---- real clients --------------------------------------------------------------

def test_imaplib_starttls_login_select(ig, client_ctx):
    m = imaplib.IMAP4(*ig.addr("imap"), timeout=10)
    try:
        assert "STARTTLS" in m.capabilities
        assert m.starttls(client_ctx)[0] == "OK"
        assert "STARTTLS" not in m.capabilities
        assert "LOGINDISABLED" not in m.capabilities
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def test_imaplib_starttls_authenticate_plain(ig, client_ctx):
    m = imaplib.IMAP4(*ig.addr("imap"), timeout=10)
    try:
        m.starttls(client_ctx)
        typ, _ = m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (ALICE, ALICE_PW)).encode())
        assert typ == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def test_curl_ssl_reqd(ig, ca):
    host, port = ig.addr("imap")
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", ca,
                        "-u", "%s:%s" % (ALICE, ALICE_PW), "imap://%s:%d/" % (host, port)],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    assert b"INBOX" in r.stdout


def test_openssl_s_client_starttls(ig, ca):
    host, port = ig.addr("imap")
    r = subprocess.run(
        ["openssl", "s_client", "-starttls", "imap", "-connect", "%s:%d" % (host, port),
         "-CAfile", ca, "-verify_return_error", "-verify_hostname", "localhost",
         "-quiet", "-crlf"],
        input=("a LOGIN %s %s\nb SELECT INBOX\nc LOGOUT\n" % (ALICE, ALICE_PW)).encode(),
        capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert re.search(r"^a OK", out, re.M), out + r.stderr.decode()
    assert re.search(r"^b OK", out, re.M), out
    assert re.search(r"^c OK", out, re.M), out
