"""Implicit TLS listener: the not-authenticated phase imapguard owns
(greeting, CAPABILITY, ID, NOOP, LOGOUT), every login form it must relay to
a real Dovecot (LOGIN atoms/quoted/literals, AUTHENTICATE PLAIN with and
without SASL-IR, LOGIN, CRAM-MD5, SCRAM-SHA-256, XOAUTH2, cancel), failure
and retry, pipelining, TLS hygiene, and real clients (imaplib, curl,
openssl s_client)."""

import imaplib
import os
import re
import signal
import socket
import ssl
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code


tls_conn = igtest.tls_client


@pytest.fixture
def conn(ig, ca):
    c = tls_conn(ig, ca)
    yield c
    c.close()


def assert_logged_in(c, tag="s"):
    """The session now belongs to Dovecot: SELECT INBOX works."""
    untagged, tagged = c.cmd(tag, "SELECT INBOX")
    assert status(tagged) == "OK", tagged
    assert any(re.match(rb"\* \d+ EXISTS", r) for r in untagged), untagged


# ---- not-authenticated state owned by the proxy ----------------------------

def test_capability_over_tls(conn):
    untagged, tagged = conn.cmd("a", "CAPABILITY")
    assert status(tagged) == "OK"
    caps = igtest.capabilities(untagged)
    assert "IMAP4REV1" in caps or "IMAP4REV2" in caps
    assert "AUTH=PLAIN" in caps
    assert "STARTTLS" not in caps, "STARTTLS offered inside TLS"
    assert "LOGINDISABLED" not in caps, "LOGIN must be allowed under TLS"


def test_tls13_negotiated(conn):
    assert conn.sock.version() == "TLSv1.3"


def test_tls12_still_accepted(ig, ca):
    ctx = igtest.client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c = tls_conn(ig, ca, ctx=ctx)
    try:
        assert c.sock.version() == "TLSv1.2"
        assert status(c.cmd("a", "NOOP")[1]) == "OK"
    finally:
        c.close()


def _handshake_bio(ig, ctx):
    """A TLS client over ssl.MemoryBIO, so that the test sees which socket
    read brought what. Runs the handshake; returns (socket, SSLObject,
    incoming BIO, outgoing BIO) with the client's Finished still unsent."""
    sock = socket.create_connection(ig.addr("imaps"), timeout=igtest.IO_TIMEOUT)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            tls.do_handshake()
            return sock, tls, inc, out
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                sock.sendall(data)
            data = sock.recv(1 << 16)
            assert data, "the proxy closed during the handshake"
            inc.write(data)


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_greeting_with_the_servers_flight(ig, ca, version):
    """TLS 1.3: the greeting comes as 0.5-RTT data in the same write as the
    server's Finished, so it is readable the moment the client's handshake
    completes, and a LOGIN can go with the client's Finished; the session
    ticket then comes with the LOGIN's answer and resumes. (TLS 1.2 ends
    with the server's Finished: the greeting follows it.)"""
    ctx = igtest.client_context(ca)
    ctx.maximum_version = getattr(ssl.TLSVersion, version.replace(".", "_"))
    sock, tls, inc, out = _handshake_bio(ig, ctx)
    try:
        assert tls.version() == version
        if version == "TLSv1.3":
            greeting = tls.read(1 << 16)  # no further socket read
        else:
            # The server's Finished ends a TLS 1.2 handshake; the greeting
            # follows it (in the same read or the next).
            greeting = b""
            while b"\n" not in greeting:
                try:
                    greeting += tls.read(1 << 16)
                except ssl.SSLWantReadError:
                    inc.write(sock.recv(1 << 16))
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1"), greeting
        assert b"STARTTLS" not in greeting and b"LOGINDISABLED" not in greeting, greeting
        tls.write(b"a LOGIN user11 pass11\r\n")
        sock.sendall(out.read())  # (TLS 1.3: the client's Finished and the LOGIN)
        answer = b""
        while b"\r\n" not in answer:
            try:
                answer += tls.read(1 << 16)
            except ssl.SSLWantReadError:
                data = sock.recv(1 << 16)
                assert data, "the proxy closed before answering: %r" % answer
                inc.write(data)
        assert answer.startswith(b"a OK"), answer
        session = tls.session
        assert session is not None and session.has_ticket
    finally:
        sock.close()
    # The ticket resumes.
    c = tls_conn(ig, ca, ctx=ctx, session=session)
    try:
        assert c.sock.session_reused
    finally:
        c.close()


def _openssl_driver_built_in(binary):
    out = subprocess.run([binary, "-V"], capture_output=True, timeout=10, text=True).stdout
    return "OpenSSL" in out


@pytest.mark.parametrize("crypto", ["auto", "openssl", "mbedtls"])
def test_crypto_backend(imapguard, imapguard_bin, devcerts, dovecot, ca, crypto):
    """tls.crypto chooses, at start-up, the code under mbedTLS (OpenSSL's
    libcrypto through the PSA driver, or mbedTLS's own): the start line names
    it, and logins work over TLS 1.3 and over TLS 1.2 with either certificate
    type. Without the driver (IG_SYSTEM_MBEDTLS=ON) openssl is refused."""
    built_in = _openssl_driver_built_in(imapguard_bin)
    cfg = igtest.base_config(devcerts, dovecot.address, listeners=("imaps",))
    cfg["tls"]["crypto"] = crypto
    if crypto == "openssl" and not built_in:
        path = os.path.join(os.path.dirname(devcerts), "crypto-openssl.yaml")
        with open(path, "w") as f:
            f.write(igtest.to_yaml(cfg) + "\n")
        r = subprocess.run([imapguard_bin, "-t", "-c", path], capture_output=True,
                           timeout=30, text=True)
        assert r.returncode != 0
        assert "'tls.crypto' cannot be openssl" in r.stderr, r.stderr
        return
    ig = imapguard(cfg)
    want = "mbedtls" if crypto == "mbedtls" or not built_in else "openssl"
    assert re.search(r" event=start .* crypto=%s\b" % want, ig.log_text()), ig.log_text()
    ctxs = [igtest.client_context(ca)]
    for cipher in ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"):
        ctx = igtest.client_context(ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
        ctxs.append(ctx)
    for i, ctx in enumerate(ctxs):
        c = tls_conn(ig, ca, ctx=ctx)
        try:
            assert c.sock.version() == ("TLSv1.3" if i == 0 else "TLSv1.2")
            assert status(c.cmd("l", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
            assert_logged_in(c)
        finally:
            c.close()


def test_crypto_backend_changes_at_restart(imapguard, devcerts, dovecot, ca):
    """A reload that changes tls.crypto says it takes effect at restart, and
    the running choice stays."""
    cfg = igtest.base_config(devcerts, dovecot.address, listeners=("imaps",))
    cfg["tls"]["crypto"] = "mbedtls"
    ig = imapguard(cfg)
    ig.config["tls"]["crypto"] = "auto"
    with open(ig.config_path, "w") as f:
        f.write(igtest.to_yaml(ig.config) + "\n")
    n = ig.log_text().count("event=reload-done")
    ig.proc.send_signal(signal.SIGHUP)
    igtest.wait_until(lambda: ig.log_text().count("event=reload-done") > n, 10, "reload-done")
    assert 'event=reload-note reason="tls.crypto changes at restart"' in ig.log_text()
    assert ig.log_text().count(" crypto=mbedtls") == 1
    c = tls_conn(ig, ca)
    try:
        assert status(c.cmd("l", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    finally:
        c.close()


@pytest.mark.parametrize("cipher,keytype", [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "id-ecPublicKey"),
    ("ECDHE-RSA-AES128-GCM-SHA256", "rsaEncryption"),
])
def test_certificate_chosen_by_client_capability(ig, ca, cipher, keytype):
    """Both configured certificates are used: a TLS 1.2 client that can only
    do RSA (or only ECDSA) gets the matching one."""
    ctx = igtest.client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    c = tls_conn(ig, ca, ctx=ctx)
    try:
        der = c.sock.getpeercert(binary_form=True)
        out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"],
                             input=der, capture_output=True, timeout=10).stdout.decode()
        assert "Public Key Algorithm: " + keytype in out
    finally:
        c.close()


def test_alpn_imap_accepted(ig, ca):
    ctx = igtest.client_context(ca)
    ctx.set_alpn_protocols(["imap"])
    c = tls_conn(ig, ca, ctx=ctx)
    try:
        assert c.sock.selected_alpn_protocol() in ("imap", None)
    finally:
        c.close()


def test_alpn_without_imap_refused(ig, ca):
    """ALPACA: a client that offers ALPN without "imap" is refused at the
    handshake (no_application_protocol), never reaches IMAP."""
    ctx = igtest.client_context(ca)
    ctx.set_alpn_protocols(["http/1.1", "h2"])
    with pytest.raises((ssl.SSLError, ConnectionError, igtest.Closed)):
        c = Raw(*ig.addr("imaps"), tls_ctx=ctx)
        c.readline()


def test_untrusted_cleartext_on_tls_port_is_not_imap(ig):
    """Cleartext IMAP on the implicit TLS port gets no IMAP greeting."""
    s = socket.create_connection(ig.addr("imaps"), timeout=5)
    try:
        s.sendall(b"a CAPABILITY\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        assert b"* OK" not in data and b"CAPABILITY" not in data
    finally:
        s.close()


def test_noop_and_id_before_login(conn):
    assert status(conn.cmd("a", "NOOP")[1]) == "OK"
    untagged, tagged = conn.cmd("b", 'ID ("name" "igtest" "version" "1")')
    assert status(tagged) == "OK"
    assert any(r.upper().startswith(b"* ID ") for r in untagged), untagged
    untagged, tagged = conn.cmd("c", "ID NIL")
    assert status(tagged) == "OK"


def test_logout_before_login(conn):
    untagged, tagged = conn.cmd("a", "LOGOUT")
    assert any(r.startswith(b"* BYE") for r in untagged), untagged
    assert status(tagged) == "OK"
    conn.expect_closed()


def test_unknown_and_authenticated_commands_before_login_are_bad(conn, dovecot):
    before = igtest.imap_login_count(dovecot)
    assert status(conn.cmd("a", "FROBNICATE")[1]) == "BAD"
    assert status(conn.cmd("b", "SELECT INBOX")[1]) in ("BAD", "NO")
    assert status(conn.cmd("c", "NOOP")[1]) == "OK"
    assert igtest.imap_login_count(dovecot) == before


# ---- LOGIN forms ---------------------------------------------------------

def test_imaplib_login_select(ig, client_ctx):
    m = imaplib.IMAP4_SSL(*ig.addr("imaps"), ssl_context=client_ctx, timeout=10)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and data[0].isdigit()
    finally:
        m.logout()


def test_login_quoted(conn):
    assert status(conn.cmd("a", 'LOGIN "%s" "%s"' % (ALICE, ALICE_PW))[1]) == "OK"
    assert_logged_in(conn)


def test_login_synchronizing_literal(conn):
    conn.send("a LOGIN %s {%d}\r\n" % (ALICE, len(ALICE_PW)))
    assert conn.readline().startswith(b"+")
    conn.send(ALICE_PW + "\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "OK"
    assert_logged_in(conn)


def test_login_nonsynchronizing_literals(conn):
    conn.send("a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(ALICE), ALICE, len(ALICE_PW), ALICE_PW))
    untagged, tagged = conn.read_until_tagged("a")
    assert status(tagged) == "OK"
    assert not any(r.startswith(b"+") for r in untagged), "LITERAL+ must not get a continuation"
    assert_logged_in(conn)


def test_login_username_case_folded(conn, dovecot):
    assert status(conn.cmd("a", "LOGIN USER11 pass11")[1]) == "OK"
    assert_logged_in(conn)


def test_wrong_password_then_retry(conn, dovecot):
    before = igtest.imap_login_count(dovecot)
    tagged = conn.cmd("a", "LOGIN %s wrong-password" % ALICE)[1]
    assert status(tagged) == "NO"
    assert resp_code(tagged) == "AUTHENTICATIONFAILED"
    assert igtest.imap_login_count(dovecot) == before + 1, "Dovecot judged the attempt"
    tagged = conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]
    assert status(tagged) == "OK"
    assert_logged_in(conn)


def test_unknown_user(conn):
    tagged = conn.cmd("a", "LOGIN nobody@example.com whatever")[1]
    assert status(tagged) == "NO"
    assert resp_code(tagged) == "AUTHENTICATIONFAILED"


# ---- AUTHENTICATE ----------------------------------------------------------

def test_authenticate_plain_sasl_ir(conn):
    tagged = conn.cmd("a", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, ALICE_PW))[1]
    assert status(tagged) == "OK"
    assert_logged_in(conn)


def test_authenticate_plain_continuation(conn):
    conn.send("a AUTHENTICATE PLAIN\r\n")
    assert conn.readline().startswith(b"+"), "expected '+ ' before the response"
    conn.send(igtest.plain_ir(ALICE, ALICE_PW) + "\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "OK"
    assert_logged_in(conn)


def test_authenticate_plain_imaplib(ig, client_ctx):
    """imaplib sends AUTHENTICATE without an initial response."""
    m = imaplib.IMAP4_SSL(*ig.addr("imaps"), ssl_context=client_ctx, timeout=10)
    try:
        typ, _ = m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (ALICE, ALICE_PW)).encode())
        assert typ == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def test_authenticate_plain_wrong_password(conn):
    tagged = conn.cmd("a", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, "nope"))[1]
    assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED"
    assert status(conn.cmd("b", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, ALICE_PW))[1]) == "OK"


def test_authenticate_login(conn):
    conn.send("a AUTHENTICATE LOGIN\r\n")
    igtest.continuation_data(conn.readline())
    conn.send(igtest.b64(ALICE) + "\r\n")
    igtest.continuation_data(conn.readline())
    conn.send(igtest.b64(ALICE_PW) + "\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "OK"
    assert_logged_in(conn)


def test_cram_md5_imaplib(ig, client_ctx):
    m = imaplib.IMAP4_SSL(*ig.addr("imaps"), ssl_context=client_ctx, timeout=10)
    try:
        assert m.login_cram_md5(ALICE, ALICE_PW)[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def test_cram_md5_wrong_password(conn):
    tagged = igtest.authenticate_cram(conn, "a", ALICE, "wrong")
    assert status(tagged) == "NO"


@pytest.mark.parametrize("ir", [False, True], ids=["no-ir", "sasl-ir"])
def test_scram_sha_256_step_by_step(conn, ir):
    """Each SCRAM step is relayed; the server signature (computed by Dovecot
    from the salted password) verifies, so the proxy did not tamper."""
    tagged, verified = igtest.authenticate_scram(conn, "a", ALICE, ALICE_PW, ir=ir)
    assert status(tagged) == "OK"
    assert verified
    assert_logged_in(conn)


def test_scram_sha_256_wrong_password(conn):
    tagged, _ = igtest.authenticate_scram(conn, "a", ALICE, "wrong")
    assert status(tagged) == "NO"


def test_xoauth2(conn):
    tagged = conn.cmd("a", "AUTHENTICATE XOAUTH2 " + igtest.xoauth2_ir(ALICE, ALICE_PW))[1]
    assert status(tagged) == "OK"
    assert_logged_in(conn)


def test_authenticate_cancel_is_bad(conn, dovecot):
    conn.send("a AUTHENTICATE PLAIN\r\n")
    assert conn.readline().startswith(b"+")
    conn.send("*\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "BAD"
    # the connection stays usable
    assert status(conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"


def test_authenticate_unknown_mechanism(conn):
    assert status(conn.cmd("a", "AUTHENTICATE X-NO-SUCH-MECH")[1]) in ("NO", "BAD")


def test_authenticate_invalid_base64_is_bad(conn):
    assert status(conn.cmd("a", "AUTHENTICATE PLAIN %%%notbase64")[1]) in ("BAD", "NO")
    assert status(conn.cmd("b", "NOOP")[1]) == "OK"


# ---- pipelining ------------------------------------------------------------

def test_pipelined_login_select(conn):
    conn.send("a LOGIN %s %s\r\nb SELECT INBOX\r\n" % (ALICE, ALICE_PW))
    _, tagged_a = conn.read_until_tagged("a")
    assert status(tagged_a) == "OK"
    untagged, tagged_b = conn.read_until_tagged("b")
    assert status(tagged_b) == "OK", tagged_b
    assert any(re.match(rb"\* \d+ EXISTS", r) for r in untagged)


def test_pipelined_authenticate_select_logout(conn):
    conn.send("a AUTHENTICATE PLAIN %s\r\nb SELECT INBOX\r\nc LOGOUT\r\n"
              % igtest.plain_ir(ALICE, ALICE_PW))
    assert status(conn.read_until_tagged("a")[1]) == "OK"
    assert status(conn.read_until_tagged("b")[1]) == "OK"
    untagged, tagged = conn.read_until_tagged("c")
    assert status(tagged) == "OK" and any(r.startswith(b"* BYE") for r in untagged)
    conn.expect_closed()


def test_pipelined_failed_login_then_good(conn):
    conn.send("a LOGIN %s bad\r\nb LOGIN %s %s\r\nc SELECT INBOX\r\n" % (ALICE, ALICE, ALICE_PW))
    assert status(conn.read_until_tagged("a")[1]) == "NO"
    assert status(conn.read_until_tagged("b")[1]) == "OK"
    assert status(conn.read_until_tagged("c")[1]) == "OK"


# ---- backend learns the client ----------------------------------------------

def test_backend_sees_client_address(ig, ca, dovecot):
    """The real client address (127.0.0.2 here) reaches Dovecot's log,
    forwarded by ID x-originating-ip or the PROXY protocol."""
    c = tls_conn(ig, ca, source="127.0.0.2")
    try:
        assert status(c.cmd("a", "LOGIN bob@example.com bob-secret")[1]) == "OK"
    finally:
        c.close()
    igtest.wait_until(
        lambda: re.search(r"Login: user=<bob@example.com>.*rip=127\.0\.0\.2", dovecot.log_text()),
        5, "Dovecot logging rip=127.0.0.2 for bob")


# ---- real clients ------------------------------------------------------------

def run(argv, input=None, timeout=30):
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout)


@pytest.mark.parametrize("login_opts", [None, "AUTH=PLAIN", "AUTH=LOGIN"],
                         ids=["default", "auth-plain", "auth-login-ir"])
def test_curl_imaps_list(ig, ca, login_opts):
    host, port = ig.addr("imaps")
    argv = ["curl", "-sS", "--max-time", "20", "--cacert", ca,
            "-u", "%s:%s" % (ALICE, ALICE_PW), "imaps://%s:%d/" % (host, port)]
    if login_opts:
        argv[1:1] = ["--login-options", login_opts]
    r = run(argv)
    assert r.returncode == 0, r.stderr.decode()
    assert b"INBOX" in r.stdout


def test_curl_imaps_wrong_password(ig, ca):
    host, port = ig.addr("imaps")
    r = run(["curl", "-sS", "--max-time", "20", "--cacert", ca,
             "-u", "%s:wrong" % ALICE, "imaps://%s:%d/" % (host, port)])
    assert r.returncode == 67, (r.returncode, r.stderr)  # CURLE_LOGIN_DENIED


def test_openssl_s_client_implicit(ig, ca):
    host, port = ig.addr("imaps")
    r = run(["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-CAfile", ca,
             "-verify_return_error", "-verify_hostname", "localhost", "-servername", "localhost",
             "-quiet", "-crlf"],
            input=("a LOGIN %s %s\nb SELECT INBOX\nc LOGOUT\n" % (ALICE, ALICE_PW)).encode())
    out = r.stdout.decode(errors="replace")
    assert re.search(r"^a OK", out, re.M), out + r.stderr.decode()
    assert re.search(r"^b OK", out, re.M), out
    assert re.search(r"^\* BYE", out, re.M) and re.search(r"^c OK", out, re.M), out


def test_tls13_keyupdate_ends_the_session_with_a_reason(ig, ca):
    """mbedTLS 3.6 does not implement TLS 1.3 KeyUpdate (README, TLS): a
    client that sends one (openssl s_client's "k") has its connection
    closed, and the log says why. This pins the documented limitation: if a
    later mbedTLS answers KeyUpdate, this test fails and the README changes."""
    import select
    import time
    host, port = ig.addr("imaps")
    p = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (host, port),
                          "-CAfile", ca, "-servername", "localhost", "-tls1_3", "-crlf"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b""

    def read_until(pattern, timeout=igtest.IO_TIMEOUT):
        nonlocal out
        deadline = time.monotonic() + timeout
        while not re.search(pattern, out, re.M):
            left = deadline - time.monotonic()
            assert left > 0, "no %r from s_client: %r" % (pattern, out)
            r, _, _ = select.select([p.stdout], [], [], left)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                assert chunk, "s_client ended early: %r" % out
                out += chunk
    try:
        read_until(rb"^\* OK")
        p.stdin.write(b"a NOOP\n")
        p.stdin.flush()
        read_until(rb"^a OK")
        p.stdin.write(b"k\n")  # KeyUpdate, update_requested
        p.stdin.flush()
        p.wait(igtest.IO_TIMEOUT)  # the proxy closes the connection
    finally:
        p.kill()
        p.wait()
    igtest.wait_until(lambda: "reason=client-tls-error" in ig.log_text(), igtest.IO_TIMEOUT,
                      "the close line")
    assert re.search(r'event=tls-error side=client reason="after the handshake '
                     r'\(a TLS 1\.3 KeyUpdate\? mbedTLS 3\.6 does not support it\)',
                     ig.log_text()), ig.log_text()[-3000:]


def test_scram_cancel_mid_exchange_is_bad(conn):
    """'*' after the server-first message (which came from Dovecot) ends the
    exchange with a tagged BAD, and the session can still log in."""
    sc = igtest.ScramClient(ALICE, ALICE_PW)
    conn.send("a AUTHENTICATE SCRAM-SHA-256 %s\r\n" % sc.first())
    assert conn.readline().startswith(b"+")
    conn.send("*\r\n")
    assert status(conn.read_until_tagged("a")[1]) == "BAD"
    assert status(conn.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    assert_logged_in(conn)


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no ::1 on this machine")
def test_ipv6_listener(imapguard, devcerts, dovecot, ca):
    cfg = igtest.base_config(devcerts, dovecot.address, listeners=("imaps",))
    cfg["listeners"][0]["listen"] = "[::1]:0"
    ig6 = imapguard(cfg)
    c = Raw("::1", ig6.ports["imaps"], tls_ctx=igtest.client_context(ca),
            server_hostname="localhost")
    try:
        assert c.readline().startswith(b"* OK")
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert_logged_in(c)
    finally:
        c.close()
