"""Proves the harness: the private Dovecot the other tests use as backend,
talked to directly (no imapguard). Every mechanism the proxy must relay
works here, and the log counters see what the tests rely on them to see."""

import imaplib

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code


@pytest.fixture
def conn(dovecot):
    c = Raw(dovecot.host, dovecot.port)
    assert c.readline().startswith(b"* OK")
    yield c
    c.close()


def test_capabilities(conn):
    untagged, tagged = conn.cmd("a", "CAPABILITY")
    caps = igtest.capabilities(untagged)
    for want in ("IMAP4REV1", "SASL-IR", "LITERAL+", "IDLE", "ID", "AUTH=PLAIN",
                 "AUTH=LOGIN", "AUTH=CRAM-MD5", "AUTH=SCRAM-SHA-256",
                 "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"):
        assert want in caps
    assert "LOGINDISABLED" not in caps  # cleartext allowed from the proxy
    assert status(tagged) == "OK"


def test_imaplib_login_select(dovecot):
    m = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=10)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def test_login_counted(dovecot, conn):
    before = igtest.imap_login_count(dovecot)
    ok_before = igtest.imap_login_successes(dovecot, ALICE)
    assert status(conn.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    conn.cmd("b", "LOGOUT")
    igtest.wait_until(lambda: igtest.imap_login_count(dovecot) == before + 1, 5, "auth line")
    assert igtest.imap_login_successes(dovecot, ALICE) == ok_before + 1


def test_wrong_password_is_fast_and_counted(dovecot, conn):
    before = igtest.imap_login_count(dovecot)
    tagged = conn.cmd("a", "LOGIN %s wrong" % ALICE)[1]
    assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED"
    assert igtest.imap_login_count(dovecot) == before + 1
    assert status(conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"


def test_connection_count(dovecot):
    before = igtest.imap_connection_count(dovecot)
    c = Raw(dovecot.host, dovecot.port)
    c.readline()
    c.close()
    igtest.wait_until(lambda: igtest.imap_connection_count(dovecot) == before + 1, 5,
                      "disconnect line")


def test_username_folded(conn):
    assert status(conn.cmd("a", "LOGIN ALICE@EXAMPLE.COM %s" % ALICE_PW)[1]) == "OK"


def test_authenticate_plain_sasl_ir(conn):
    assert status(conn.cmd("a", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, ALICE_PW))[1]) == "OK"


def test_authenticate_plain_continuation(conn):
    conn.send("a AUTHENTICATE PLAIN\r\n")
    assert conn.readline() == b"+ \r\n"
    conn.send(igtest.plain_ir(ALICE, ALICE_PW) + "\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "OK"


def test_authenticate_login(conn):
    conn.send("a AUTHENTICATE LOGIN\r\n")
    igtest.continuation_data(conn.readline())
    conn.send(igtest.b64(ALICE) + "\r\n")
    igtest.continuation_data(conn.readline())
    conn.send(igtest.b64(ALICE_PW) + "\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "OK"


def test_cram_md5_imaplib(dovecot):
    m = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=10)
    try:
        assert m.login_cram_md5(ALICE, ALICE_PW)[0] == "OK"
    finally:
        m.logout()


def test_cram_md5_raw(conn):
    assert status(igtest.authenticate_cram(conn, "a", ALICE, ALICE_PW)) == "OK"


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
@pytest.mark.parametrize("ir", [False, True])
def test_scram(conn, mech, ir):
    tagged, verified = igtest.authenticate_scram(conn, "a", ALICE, ALICE_PW, mech, ir=ir)
    assert status(tagged) == "OK"
    assert verified, "server signature did not verify"


def test_scram_wrong_password(conn):
    tagged, _ = igtest.authenticate_scram(conn, "a", ALICE, "wrong")
    assert status(tagged) == "NO"


def test_xoauth2_token_is_passdb_password(conn):
    """Dovecot 2.3 verifies an XOAUTH2/OAUTHBEARER bearer token as a
    plaintext password through the passdb, so with passwd-file the user's
    password works as their token."""
    tagged = conn.cmd("a", "AUTHENTICATE XOAUTH2 " + igtest.xoauth2_ir(ALICE, ALICE_PW))[1]
    assert status(tagged) == "OK"


def test_xoauth2_bad_token(conn):
    conn.send("a AUTHENTICATE XOAUTH2 %s\r\n" % igtest.xoauth2_ir(ALICE, "bad-token"))
    line = conn.readline()
    if line.startswith(b"+"):  # error JSON as a challenge; client answers empty
        conn.send("\r\n")
        line = conn.read_until_tagged("a")[1].encode()
    assert status(line.decode()) == "NO"


def test_oauthbearer(conn, dovecot):
    ir = igtest.oauthbearer_ir(ALICE, ALICE_PW, port=dovecot.port)
    assert status(conn.cmd("a", "AUTHENTICATE OAUTHBEARER " + ir)[1]) == "OK"


def test_cancel_is_bad(conn):
    conn.send("a AUTHENTICATE PLAIN\r\n")
    assert conn.readline().startswith(b"+")
    conn.send("*\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "BAD"


def test_id_with_originating_ip_from_trusted_network(conn, dovecot):
    untagged, tagged = conn.cmd(
        "a", 'ID ("x-originating-ip" "192.0.2.7" "x-originating-port" "4711")')
    assert status(tagged) == "OK"
    assert status(conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    conn.cmd("c", "LOGOUT")
    igtest.wait_until(lambda: "rip=192.0.2.7" in dovecot.log_text(), 5,
                      "Dovecot logging the forwarded client address")


def test_tls_backend_variant(dovecot_tls, client_ctx):
    """The ssl = yes variant: STARTTLS on .port, implicit TLS on .ssl_port,
    both with the dev certificate for localhost."""
    m = imaplib.IMAP4_SSL(dovecot_tls.host, dovecot_tls.ssl_port, ssl_context=client_ctx,
                          timeout=10)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
    finally:
        m.logout()
    m = imaplib.IMAP4(dovecot_tls.host, dovecot_tls.port, timeout=10)
    try:
        assert "STARTTLS" in m.capabilities
        m.starttls(client_ctx)
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
    finally:
        m.logout()


def test_append_fetch_large(dovecot):
    msg = igtest.make_message(1 << 20)
    m = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=20)
    try:
        m.login("user12", "pass12")
        assert m.append("INBOX", None, None, msg)[0] == "OK"
        typ, data = m.select("INBOX")
        n = int(data[0])
        typ, data = m.fetch(str(n), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == msg
    finally:
        m.logout()
