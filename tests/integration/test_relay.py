"""After a successful login the session is Dovecot's, byte for byte: large
literals both ways, IDLE with another client's APPEND, literals that
would be refused before login, and a clean LOGOUT."""

import hashlib
import imaplib
import re
import threading
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status


@pytest.fixture(scope="module")
def ig(imapguard_mod, devcerts, dovecot):
    return imapguard_mod(igtest.base_config(devcerts, dovecot.address))


def imaps(ig, ca, timeout=30):
    return imaplib.IMAP4_SSL(*ig.addr("imaps"), ssl_context=igtest.client_context(ca),
                             timeout=timeout)


def read_to_tagged(f, tag, timeout=60):
    """Lines from the file object f up to the one starting with tag (bytes,
    with its trailing space). Fails at once when the connection ends
    first, and after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        line = f.readline()
        assert line, "connection closed before the %r answer" % tag
        if line.startswith(tag):
            return line
        assert time.monotonic() < deadline, "no %r answer in %ds" % (tag, timeout)


def test_append_fetch_5mb_byte_identical(ig, ca):
    msg = igtest.make_message(5 * 1024 * 1024, subject="five megabytes")
    m = imaps(ig, ca, timeout=60)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        typ, data = m.append("INBOX", None, None, msg)
        assert typ == "OK", data
        uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
        assert m.select("INBOX")[0] == "OK"
        typ, data = m.uid("FETCH", uid, "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        body = data[0][1]
        assert int(re.search(rb"RFC822.SIZE (\d+)", data[0][0]).group(1)) == len(msg)
        assert len(body) == len(msg)
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(msg).hexdigest()
    finally:
        m.logout()


def test_starttls_append_fetch_1mb(ig, ca):
    msg = igtest.make_message(1024 * 1024, subject="via starttls")
    m = imaplib.IMAP4(*ig.addr("imap"), timeout=30)
    try:
        m.starttls(igtest.client_context(ca))
        assert m.login("user11", "pass11")[0] == "OK"
        typ, data = m.append("INBOX", None, None, msg)
        uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
        m.select("INBOX")
        typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
        assert data[0][1] == msg
    finally:
        m.logout()


def test_literal_plus_after_login_not_limited(ig, ca):
    """max_literal bounds the pre-auth phase only; after login a 100 kB
    non-synchronizing literal is the backend's business."""
    msg = igtest.make_message(100 * 1024)
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca), timeout=20)
    try:
        c.readline()
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        c.send(b"b APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert status(c.read_until_tagged("b")[1]) == "OK"
    finally:
        c.close()


def test_idle_sees_other_clients_append(ig, ca):
    a = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca), timeout=15)
    try:
        a.readline()
        assert status(a.cmd("a1", "LOGIN bob@example.com bob-secret")[1]) == "OK"
        untagged, tagged = a.cmd("a2", "SELECT INBOX")
        assert status(tagged) == "OK"
        exists = [int(re.match(rb"\* (\d+) EXISTS", r).group(1))
                  for r in untagged if re.match(rb"\* \d+ EXISTS", r)][0]
        a.send("a3 IDLE\r\n")
        assert a.readline().startswith(b"+"), "no IDLE continuation"

        def append():
            m = imaps(ig, ca)
            try:
                m.login("bob@example.com", "bob-secret")
                m.append("INBOX", None, None, igtest.make_message(2000, "idle test"))
            finally:
                m.logout()
        t = threading.Thread(target=append)
        t.start()
        t.join(20)
        assert not t.is_alive()
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline and seen is None:
            line = a.readline()
            m = re.match(rb"\* (\d+) EXISTS", line)
            if m:
                seen = int(m.group(1))
        assert seen == exists + 1
        a.send("DONE\r\n")
        assert status(a.read_until_tagged("a3")[1]) == "OK"
        untagged, tagged = a.cmd("a4", "LOGOUT")
        assert any(r.startswith(b"* BYE") for r in untagged) and status(tagged) == "OK"
        a.expect_closed()
    finally:
        a.close()


def test_post_login_capability_is_dovecots(ig, ca):
    """After login the proxy no longer answers for itself: CAPABILITY comes
    from Dovecot (which, for instance, lists ENABLE and IDLE)."""
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    try:
        c.readline()
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        untagged, tagged = c.cmd("b", "CAPABILITY")
        caps = igtest.capabilities(untagged)
        assert status(tagged) == "OK"
        assert "IDLE" in caps and "ENABLE" in caps
        assert not any(x.startswith("AUTH=") for x in caps)
        assert status(c.cmd("c", "ENABLE CONDSTORE")[1]) == "OK"
    finally:
        c.close()


def test_many_sessions_in_parallel(ig, ca):
    errors = []

    def session(i):
        try:
            m = imaps(ig, ca)
            try:
                assert m.login(ALICE, ALICE_PW)[0] == "OK"
                assert m.select("INBOX")[0] == "OK"
                assert m.noop()[0] == "OK"
            finally:
                m.logout()
        except Exception as e:  # reported below
            errors.append("%d: %r" % (i, e))
    threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


def test_client_disconnect_mid_session_is_clean(ig, ca, dovecot):
    """A client that vanishes while logged in: the proxy closes the backend
    side too (Dovecot logs the disconnect) and keeps serving."""
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    c.readline()
    assert status(c.cmd("a", "LOGIN user12 pass12")[1]) == "OK"
    c.send("b SELECT INBOX\r\n")
    c.close()
    igtest.wait_until(
        lambda: re.search(r"imap\(user12\).*Disconnected", dovecot.log_text()[-20000:]),
        10, "Dovecot seeing user12's session end")
    m = imaps(ig, ca)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
    finally:
        m.logout()


def test_slow_reader_large_fetch_memory_bounded(ig, ca):
    """A 20 MB FETCH to a client that stops reading: the proxy stops reading
    from Dovecot (backpressure) instead of buffering, so its memory stays
    flat; once the client reads again the body arrives byte for byte."""
    import socket
    import ssl
    msg = igtest.make_message(20 * 1024 * 1024, subject="slow reader")
    m = imaps(ig, ca, timeout=120)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        typ, data = m.append("INBOX", None, None, msg)
        assert typ == "OK", data
        uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
    finally:
        m.logout()

    host, port = ig.addr("imaps")
    raw = socket.create_connection((host, port), timeout=60)
    # A small receive window, so the kernel cannot absorb the message.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s = igtest.client_context(ca).wrap_socket(raw, server_hostname="localhost")
    try:
        f = s.makefile("rb")
        f.readline()  # greeting
        s.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), ALICE_PW.encode()))
        read_to_tagged(f, b"a ")
        s.sendall(b"b SELECT INBOX\r\n")
        read_to_tagged(f, b"b ")
        before = ig.rss_kb()
        s.sendall(b"c UID FETCH %s (BODY.PEEK[])\r\n" % uid.encode())
        peak = before
        for _ in range(30):  # 3 s of not reading at all
            time.sleep(0.1)
            peak = max(peak, ig.rss_kb())
        assert peak - before < 8 * 1024, "VmRSS grew by %d kB while the client " \
            "did not read a 20 MB FETCH" % (peak - before)
        head = f.readline()
        size = int(re.search(rb"\{(\d+)\}", head).group(1))
        assert size == len(msg)
        h = hashlib.sha256()
        left = size
        while left:
            chunk = f.read(min(left, 1 << 20))
            assert chunk, "connection closed mid-body"
            h.update(chunk)
            left -= len(chunk)
        assert h.hexdigest() == hashlib.sha256(msg).hexdigest()
        read_to_tagged(f, b"c ")
        s.sendall(b"d LOGOUT\r\n")
    finally:
        s.close()
