"""After a successful login the session is Dovecot's, byte for byte: large
literals both ways, IDLE with another client's APPEND, literals that
would be refused before login, a clean LOGOUT, and a client that
half-closes (ends its side, with or without a TLS close_notify) still
getting every answer."""

import ctypes
import hashlib
import imaplib
import os
import re
import socket
import ssl
import threading
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Closed, Raw, status


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


class HalfCloser:
    """An IMAP client that ends its side of the connection and then reads
    until the server ends its side. TLS runs through ssl.MemoryBIO so the
    test decides what goes out before the FIN: an ssl.SSLSocket cannot do
    this (its shutdown() drops the TLS layer, unwrap() waits for the
    peer's close_notify)."""

    def __init__(self, host, port, ctx=None, timeout=igtest.IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.tls = None
        self.buf = b""
        self.close_notify_seen = False  # the server ended TLS cleanly
        if ctx is not None:
            self.starttls(ctx)

    def starttls(self, ctx):
        assert not self.buf, "unread bytes before the TLS handshake: %r" % self.buf
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._push(tls)
                if not self._feed(deadline):
                    raise Closed("EOF during the TLS handshake")
        self._push(tls)
        self.tls = tls

    def _push(self, tls):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _feed(self, deadline):
        """Raw bytes from the socket into the TLS layer; False at EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("nothing from the server in %.0fs; have %r" %
                                 (self.timeout, self.buf[-300:]))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise AssertionError("nothing from the server in %.0fs; have %r" %
                                 (self.timeout, self.buf[-300:]))
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()
        return bool(data)

    def _more(self, deadline):
        """Reads more plaintext into buf. False at the server's EOF."""
        if self.tls is None:
            left = deadline - time.monotonic()
            assert left > 0, "nothing from the server in time; have %r" % self.buf[-300:]
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                raise AssertionError("nothing from the server in time; have %r" %
                                     self.buf[-300:])
            self.buf += data
            return bool(data)
        while True:
            try:
                data = self.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                self._feed(deadline)
                continue
            except ssl.SSLZeroReturnError:  # close_notify, after ours
                self.close_notify_seen = True
                return False
            except ssl.SSLEOFError:  # a FIN without close_notify
                return False
            if not data:  # close_notify (we had not sent ours)
                self.close_notify_seen = True
                return False
            self.buf += data
            return True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.tls is None:
            self.sock.sendall(data)
        else:
            self.tls.write(data)
            self._push(self.tls)

    def readline(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            if not self._more(deadline):
                raise Closed("connection closed by peer; unread %r" % self.buf)
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_to_tagged(self, tag):
        while True:
            line = self.readline()
            if line.startswith(tag.encode() + b" "):
                return line.decode().rstrip()

    def half_close(self, close_notify):
        """Ends our side: a TLS close_notify first if asked, then the FIN
        (shutdown of the socket's write side). Reading goes on."""
        if close_notify:
            try:
                self.tls.unwrap()  # sends close_notify; the peer's is not awaited
            except ssl.SSLWantReadError:
                pass
            self._push(self.tls)
        self.sock.shutdown(socket.SHUT_WR)

    def read_to_eof(self, timeout):
        """Everything the server sends until it ends its side (bytes).
        Fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        while self._more(deadline):
            pass
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


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
        # Dovecot may first repeat the count it had (a sync as IDLE
        # starts): wait for a count above it.
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline and seen is None:
            line = a.readline()
            m = re.match(rb"\* (\d+) EXISTS", line)
            if m and int(m.group(1)) > exists:
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
    def session(i):
        m = imaps(ig, ca)
        try:
            assert m.login(ALICE, ALICE_PW)[0] == "OK"
            assert m.select("INBOX")[0] == "OK"
            assert m.noop()[0] == "OK"
        finally:
            m.logout()
    igtest.in_threads(session, 20, 30)


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


# --------------------------------------------------------------------------
# Half-close: a client that ends its side still reads every answer.

@pytest.fixture(scope="module")
def ig_clear(imapguard_mod, devcerts, dovecot):
    """A proxy that takes logins over cleartext (require_tls off), for the
    plain TCP half-close."""
    cfg = igtest.base_config(devcerts, dovecot.address, listeners=("imap",))
    cfg["policy"]["defaults"]["require_tls"] = False
    return imapguard_mod(cfg)


def half_closer(request, kind, ca):
    """A greeted HalfCloser. kind: "imaps" (implicit TLS), "starttls" (after
    STARTTLS), "clear" (plain TCP to a proxy that allows it) or "dovecot"
    (Dovecot itself, the reference). Returns (client, proxy or None)."""
    ctx = igtest.client_context(ca)
    ig = None
    if kind == "dovecot":
        dv = request.getfixturevalue("dovecot")
        c = HalfCloser(dv.host, dv.port)
    elif kind == "clear":
        ig = request.getfixturevalue("ig_clear")
        c = HalfCloser(*ig.addr("imap"))
    else:
        ig = request.getfixturevalue("ig")
        c = HalfCloser(*ig.addr(kind if kind == "imaps" else "imap"),
                       ctx=ctx if kind == "imaps" else None)
    assert c.readline().startswith(b"* OK")
    if kind == "starttls":
        c.send("s STARTTLS\r\n")
        assert status(c.read_to_tagged("s")) == "OK"
        c.starttls(ctx)
    return c, ig


def close_count(ig, reason):
    return ig.log_text().count(" event=close reason=%s " % reason)


def tagged(data, tag):
    """The tagged line for tag in data (bytes), or None."""
    m = re.search(rb"^%s (OK|NO|BAD)\b[^\r\n]*" % re.escape(tag.encode()), data, re.M)
    return m.group(0).decode() if m else None


HALF_CLOSE_KINDS = [
    ("imaps", False), ("imaps", True),
    ("starttls", False), ("starttls", True),
    ("clear", False),
    ("dovecot", False),
]
HALF_CLOSE_IDS = ["%s-%s" % (k, "close_notify+fin" if cn else "fin")
                  for k, cn in HALF_CLOSE_KINDS]


@pytest.mark.parametrize("kind,close_notify", HALF_CLOSE_KINDS, ids=HALF_CLOSE_IDS)
def test_half_close_after_login_gets_every_answer(request, ca, kind, close_notify):
    """Logged in, two commands in one write, then the client ends its side
    (a FIN, with or without a close_notify before it): both answers
    arrive, then the proxy ends its side too (close_notify first over TLS)
    and logs client-closed. Dovecot itself answers both the same way."""
    c, ig = half_closer(request, kind, ca)
    try:
        c.send("a LOGIN user11 pass11\r\n")
        assert status(c.read_to_tagged("a")) == "OK"
        before = ig and close_count(ig, "client-closed")
        c.send("a1 NOOP\r\na2 SELECT INBOX\r\n")
        c.half_close(close_notify)
        rest = c.read_to_eof(20)
    finally:
        c.close()
    assert status(tagged(rest, "a1") or "a1 none") == "OK", rest
    assert status(tagged(rest, "a2") or "a2 none") == "OK", rest
    if kind in ("imaps", "starttls"):
        assert c.close_notify_seen, "the proxy ended TLS without close_notify"
    if ig is not None:
        igtest.wait_until(lambda: close_count(ig, "client-closed") > before, 10,
                          "event=close reason=client-closed")


def _proxy_nodelay(pid, want):
    """TCP_NODELAY of each of the process's connected TCP sockets whose
    (local, peer) addresses want() accepts, read from a duplicate of the
    socket taken with pidfd_getfd(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    found = []
    try:
        for name in os.listdir("/proc/%d/fd" % pid):
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
                    continue
            except FileNotFoundError:
                continue  # closed meanwhile
            fd = libc.syscall(438, pidfd, int(name), 0)  # SYS_pidfd_getfd
            if fd < 0:
                err = ctypes.get_errno()
                if err == 9:  # EBADF: closed meanwhile
                    continue
                raise OSError(err, "pidfd_getfd: %s" % os.strerror(err))
            s = socket.socket(fileno=fd)
            try:
                if s.family not in (socket.AF_INET, socket.AF_INET6) or \
                        s.type != socket.SOCK_STREAM:
                    continue
                try:
                    peer = s.getpeername()
                except OSError:
                    continue  # a listener
                if want(s.getsockname()[:2], peer[:2]):
                    found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            finally:
                s.close()  # the duplicate only
    finally:
        os.close(pidfd)
    return found


def test_both_connections_have_nodelay(ig, ca, dovecot):
    """Answers leave as soon as they are written, on both of a session's
    connections: the client's (TCP_NODELAY comes from the listening
    socket, which the kernel copies to every accepted connection) and the
    backend's."""
    m = imaps(ig, ca)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        mine = m.sock.getsockname()[:2]
        client = _proxy_nodelay(ig.pid, lambda local, peer: peer == mine)
        assert client == [1], "the proxy's end of our connection: %r" % client
        backend = (dovecot.host, dovecot.port)
        to_dovecot = _proxy_nodelay(ig.pid, lambda local, peer: peer == backend)
        assert to_dovecot and all(v == 1 for v in to_dovecot), to_dovecot
    finally:
        m.logout()


def test_later_deadlines_replace_earlier_ones(imapguard, devcerts, dovecot, ca):
    """The session timer keeps one deadline at a time. When a later one
    replaces an earlier one (the 1 s handshake timeout, then the 3 s
    pre-login timeout once greeted; the pre-login timeout, then the 3 s
    idle timeout once logged in), the timer may fire at the earlier time:
    it must then wait for what is left, not end the session. Each silent
    session ends at its own timeout, with its reason."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["handshake_timeout"] = "1s"
    cfg["limits"]["preauth_timeout"] = "3s"
    cfg["limits"]["idle_timeout"] = "3s"
    ig2 = imapguard(cfg)

    def silent_until_closed(c):
        t0 = time.monotonic()
        try:
            c.expect_closed(timeout=30)
        finally:
            c.close()
        return time.monotonic() - t0

    c = Raw(*ig2.addr("imaps"), tls_ctx=igtest.client_context(ca))
    assert c.readline().startswith(b"* OK")
    elapsed = silent_until_closed(c)
    assert elapsed >= 2.5, "greeted, closed after %.2fs" % elapsed
    igtest.wait_until(lambda: "reason=preauth-idle" in ig2.log_text(), 10,
                      "the pre-login timeout's close")

    c = Raw(*ig2.addr("imaps"), tls_ctx=igtest.client_context(ca))
    assert c.readline().startswith(b"* OK")
    assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    elapsed = silent_until_closed(c)
    assert elapsed >= 2.5, "logged in, closed after %.2fs" % elapsed
    igtest.wait_until(lambda: "reason=idle-timeout" in ig2.log_text(), 10,
                      "the idle timeout's close")


def test_logout_last_words_leave_together(ig, ca):
    """Dovecot answers LOGOUT with "* BYE" and the tagged OK, then closes.
    The proxy holds what follows the BYE until that close, so the answer,
    the close_notify and the FIN leave in one segment: one read of the
    socket holds all of it, and the next one sees the end. (If Dovecot took
    longer than the hold's 200 ms to close, the log says so and the answer
    went ahead alone.)"""
    c = HalfCloser(*ig.addr("imaps"), ctx=igtest.client_context(ca))
    try:
        assert c.readline().startswith(b"* OK")
        c.send("a LOGIN user11 pass11\r\n")
        assert status(c.read_to_tagged("a")) == "OK"
        assert not c.buf
        c.send("z LOGOUT\r\n")
        c.sock.settimeout(igtest.IO_TIMEOUT)
        first = c.sock.recv(1 << 16)
        assert first, "the proxy closed without an answer"
        c.inc.write(first)
        plain, ended = b"", False
        while True:  # only what that one read brought
            try:
                data = c.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                ended = True
                break
            if not data:
                ended = True
                break
            plain += data
        if not ended and "event=bye-hold-over" in ig.log_text():
            pytest.skip("Dovecot took longer than the hold to close")
        assert plain.startswith(b"* BYE "), plain
        assert status(tagged(plain, "z") or "z none") == "OK", plain
        assert ended, "no close_notify in the read with the answer: %r" % plain
        assert c.sock.recv(1 << 16) == b"", "the FIN did not follow"
    finally:
        c.close()


@pytest.mark.parametrize("kind,close_notify", HALF_CLOSE_KINDS, ids=HALF_CLOSE_IDS)
def test_half_close_with_pipelined_login_gets_every_answer(request, ca, kind, close_notify):
    """Before login: LOGIN and two commands in one write, then the client
    ends its side. As Dovecot does, the login still goes through and the
    commands pipelined behind it are answered by the backend."""
    c, ig = half_closer(request, kind, ca)
    try:
        c.send("a LOGIN user11 pass11\r\na1 NOOP\r\na2 SELECT INBOX\r\n")
        c.half_close(close_notify)
        rest = c.read_to_eof(20)
    finally:
        c.close()
    for tag in ("a", "a1", "a2"):
        assert status(tagged(rest, tag) or tag + " none") == "OK", rest
    if kind in ("imaps", "starttls"):
        assert c.close_notify_seen, "the proxy ended TLS without close_notify"


@pytest.mark.parametrize("script,want", [
    ("a1 CAPABILITY\r\na2 NOOP\r\n", {"a1": "OK", "a2": "OK"}),
    ("a LOGIN user11 wrong-password\r\na1 NOOP\r\n", {"a": "NO", "a1": "OK"}),
    ("a1 NOOP\r\na2 LOGIN user11", {"a1": "OK"}),
], ids=["commands", "failed-login", "unfinished-command"])
def test_half_close_before_login_answers_then_closes(ig, ca, script, want):
    """Commands the proxy answers itself, then the end of the client's
    input: every complete command is answered (a failed login included,
    after the backend's NO), then the proxy closes (client-closed)."""
    before = close_count(ig, "client-closed")
    c = HalfCloser(*ig.addr("imaps"), ctx=igtest.client_context(ca))
    try:
        assert c.readline().startswith(b"* OK")
        c.send(script)
        c.half_close(False)
        rest = c.read_to_eof(20)
    finally:
        c.close()
    for tag, st in want.items():
        assert status(tagged(rest, tag) or tag + " none") == st, rest
    assert tagged(rest, "a2") is None or "a2" in want, rest
    assert c.close_notify_seen
    igtest.wait_until(lambda: close_count(ig, "client-closed") > before, 10,
                      "event=close reason=client-closed")


def test_half_close_large_fetch_arrives_complete(ig, ca):
    """A FETCH of a 1 MB message (64 times the proxy's relay buffer) sent
    just before the client's FIN: the whole body and the tagged OK arrive,
    byte for byte, before the proxy closes. Not much larger: Dovecot itself
    aborts a command blocked on output once it has seen its client's FIN
    (state=wait-output), which happens directly as through the proxy once
    more than its socket buffers (measured: about 4 MB on loopback) wait."""
    msg = igtest.make_message(1024 * 1024, subject="half-close fetch")
    m = imaps(ig, ca, timeout=60)
    try:
        assert m.login("user12", "pass12")[0] == "OK"
        typ, data = m.append("INBOX", None, None, msg)
        assert typ == "OK", data
        uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
    finally:
        m.logout()
    c = HalfCloser(*ig.addr("imaps"), ctx=igtest.client_context(ca), timeout=30)
    try:
        assert c.readline().startswith(b"* OK")
        c.send("a LOGIN user12 pass12\r\n")
        assert status(c.read_to_tagged("a")) == "OK"
        c.send("b SELECT INBOX\r\nc UID FETCH %s (BODY.PEEK[])\r\n" % uid)
        c.half_close(False)
        rest = c.read_to_eof(60)
    finally:
        c.close()
    head = re.search(rb"\* \d+ FETCH \(UID %s BODY\[\] \{(\d+)\}\r\n" % uid.encode(), rest)
    assert head, rest[:2000]
    size = int(head.group(1))
    body = rest[head.end():head.end() + size]
    assert size == len(msg) and len(body) == size, (size, len(body), len(msg))
    assert hashlib.sha256(body).digest() == hashlib.sha256(msg).digest()
    assert status(tagged(rest[head.end() + size:], "c") or "c none") == "OK", rest[-500:]
    assert c.close_notify_seen


@pytest.mark.parametrize("close_notify", [False, True], ids=["fin", "close_notify+fin"])
@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_half_close_to_tls_backend(imapguard, devcerts, ca, dovecot_tls, mode, close_notify):
    """With TLS to the backend, the client's half-close goes on to Dovecot
    as a close_notify and a FIN; Dovecot closes, and the proxy ends the
    client side cleanly. The answers are read before the half-close:
    Dovecot over TLS, unlike over plaintext, drops the answers to commands
    that arrive together with the end of its input (its TLS layer closes
    both ways), directly as through the proxy."""
    port = dovecot_tls.port if mode == "starttls" else dovecot_tls.ssl_port
    cfg = igtest.base_config(devcerts, "127.0.0.1:%d" % port, backend_tls=mode)
    cfg["backend"]["ca"] = devcerts + "/ca.pem"
    cfg["backend"]["server_name"] = "localhost"
    ig = imapguard(cfg)
    c = HalfCloser(*ig.addr("imaps"), ctx=igtest.client_context(ca))
    try:
        assert c.readline().startswith(b"* OK")
        c.send("a LOGIN user11 pass11\r\n")
        assert status(c.read_to_tagged("a")) == "OK"
        c.send("a1 NOOP\r\na2 SELECT INBOX\r\n")
        assert status(c.read_to_tagged("a2")) == "OK"
        c.half_close(close_notify)
        rest = c.read_to_eof(20)
    finally:
        c.close()
    assert rest == b"", rest
    assert c.close_notify_seen
    igtest.wait_until(lambda: " event=half-close from=client" in ig.log_text() and
                      close_count(ig, "client-closed") == 1, 10,
                      "event=half-close, then event=close reason=client-closed")


def test_backend_ends_first_client_side_ended_cleanly(ig, ca):
    """LOGOUT: Dovecot answers and closes first; the proxy delivers all of
    it, then ends the client side with close_notify and a FIN (the client
    has not closed anything) and logs backend-closed."""
    before = close_count(ig, "backend-closed")
    c = HalfCloser(*ig.addr("imaps"), ctx=igtest.client_context(ca))
    try:
        assert c.readline().startswith(b"* OK")
        c.send("a LOGIN user11 pass11\r\n")
        assert status(c.read_to_tagged("a")) == "OK"
        c.send("b NOOP\r\nz LOGOUT\r\n")
        rest = c.read_to_eof(20)
    finally:
        c.close()
    assert status(tagged(rest, "b") or "b none") == "OK", rest
    assert re.search(rb"^\* BYE", rest, re.M), rest
    assert status(tagged(rest, "z") or "z none") == "OK", rest
    assert c.close_notify_seen
    igtest.wait_until(lambda: close_count(ig, "backend-closed") > before, 10,
                      "event=close reason=backend-closed")


@pytest.fixture
def ctl_dir():
    # Unix socket paths must stay short.
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="igbp-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def pool_stats(ig):
    """The admin socket's `stats`, as a dict of ints."""
    import subprocess
    r = subprocess.run([ig.binary, "ctl", "-s", ig.config["admin"]["socket"], "stats"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return {k: int(v) for k, v in (line.split("\t", 1) for line in r.stdout.splitlines()
                                    if "\t" in line)}


def pool_config(devcerts, dovecot, ctl_dir, pool_max=None):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["log_level"] = "info"
    cfg["admin"] = {"socket": ctl_dir + "/ctl.sock"}
    if pool_max is not None:
        cfg["limits"]["buffer_pool_max"] = pool_max
    return cfg


def test_idle_logged_in_sessions_hold_no_buffers(imapguard, devcerts, dovecot, ca, ctl_dir):
    """Buffers are held only while bytes are in flight: logged-in sessions
    that have exchanged commands (one in IDLE, one after a FETCH, one over
    STARTTLS) and sit idle hold none, and neither does a session before
    login; buffers in use come back to zero while all of them stay open."""
    ig = imapguard(pool_config(devcerts, dovecot, ctl_dir))
    ctx = igtest.client_context(ca)
    conns = []
    try:
        a = Raw(*ig.addr("imaps"), tls_ctx=ctx, timeout=15)
        conns.append(a)
        a.readline()
        assert status(a.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(a.cmd("a2", "SELECT INBOX")[1]) == "OK"
        a.send("a3 IDLE\r\n")
        assert a.readline().startswith(b"+")
        b = imaps(ig, ca)
        assert b.login("user11", "pass11")[0] == "OK"
        assert b.append("INBOX", None, None, igtest.make_message(40000))[0] == "OK"
        assert b.select("INBOX")[0] == "OK"
        assert b.fetch("1:*", "(FLAGS BODY.PEEK[])")[0] == "OK"
        m = imaplib.IMAP4(*ig.addr("imap"), timeout=30)
        m.starttls(ctx)
        assert m.login("user12", "pass12")[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
        c = Raw(*ig.addr("imaps"), tls_ctx=ctx, timeout=15)
        conns.append(c)
        c.readline()
        assert status(c.cmd("c1", "CAPABILITY")[1]) == "OK"
        igtest.wait_until(lambda: pool_stats(ig)["sessions"] == 4, 10, "4 sessions")
        igtest.wait_until(lambda: pool_stats(ig)["buffers_in_use"] == 0, 10,
                          "no buffer held by idle sessions: %r" % (pool_stats(ig),))
        st = pool_stats(ig)
        assert st["sessions"] == 4 and st["buffers_in_use_peak"] > 0, st
        # Still alive and relaying after holding nothing.
        a.send("DONE\r\n")
        assert status(a.read_until_tagged("a3")[1]) == "OK"
        assert b.noop()[0] == "OK"
        b.logout()
        assert m.noop()[0] == "OK"
        m.logout()
    finally:
        for x in conns:
            x.close()


def test_tiny_buffer_pool_sessions_wait_and_complete(imapguard, devcerts, dovecot, ca,
                                                     ctl_dir):
    """limits.buffer_pool_max of one buffer: sessions that hold no buffer
    wait for one (reads stop, they do not fail) while another holds the
    pool: a client that asked for an 8 MB message and reads none of it.
    Eight parallel sessions start then, each to APPEND and FETCH back
    300 kB byte for byte; once some wait, the holder reads its message;
    every session completes and the pool has every buffer back."""
    cfg = pool_config(devcerts, dovecot, ctl_dir, pool_max=16384)
    cfg["workers"] = 1  # (one pool: every session meets the holder)
    ig = imapguard(cfg)
    big = igtest.make_message(8 * 1024 * 1024, subject="holder")
    m = imaps(ig, ca, timeout=60)
    try:
        assert m.login(ALICE, ALICE_PW)[0] == "OK"
        typ, data = m.append("INBOX", None, None, big)
        assert typ == "OK", data
        big_uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
    finally:
        m.logout()
    # A small receive window from the start (set before connecting): the
    # proxy's socket send buffer stays small too, and the message waits in
    # the proxy's own buffers.
    holder = Raw.__new__(Raw)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect(ig.addr("imaps"))
    holder.sock, holder.buf, holder.tls = sock, b"", False
    holder.starttls(igtest.client_context(ca))
    holder.readline()
    assert status(holder.cmd("h1", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    assert status(holder.cmd("h2", "SELECT INBOX")[1]) == "OK"
    holder.send("h3 UID FETCH %s (BODY.PEEK[])\r\n" % big_uid)
    igtest.wait_until(lambda: pool_stats(ig)["buffers_in_use"] >= 1, 30,
                      "the stalled reader holds the pool's buffer")

    def session(i):
        msg = igtest.make_message(300 * 1024 + i, subject="pool %d" % i)
        m = imaps(ig, ca, timeout=60)
        try:
            assert m.login(ALICE, ALICE_PW)[0] == "OK"
            typ, data = m.append("INBOX", None, None, msg)
            assert typ == "OK", data
            uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
            assert m.select("INBOX")[0] == "OK"
            typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK", data
            assert hashlib.sha256(data[0][1]).digest() == hashlib.sha256(msg).digest()
        finally:
            m.logout()
    done = {}
    def run_all():
        try:
            igtest.in_threads(session, 8, 120)
            done["ok"] = True
        except BaseException as e:  # reported below
            done["error"] = e
    t = threading.Thread(target=run_all)
    t.start()
    try:
        igtest.wait_until(lambda: pool_stats(ig)["buffers_waiting"] > 0 or done, 60,
                          "sessions waiting for a buffer")
        assert not done, done  # none could finish while the pool was held
        # The holder reads its message: the pool moves again.
        got = b""
        while not re.search(rb"(^|\n)h3 (OK|NO|BAD)[^\n]*\r\n$", got[-300:]):
            holder._fill()
            got += holder.buf
            holder.buf = b""
        assert status(tagged(got, "h3")) == "OK"
        assert big in got
    finally:
        t.join(150)
        holder.close()
    assert done.get("ok"), done
    igtest.wait_until(lambda: pool_stats(ig)["sessions"] == 0, 10, "sessions closed")
    st = pool_stats(ig)
    assert st["buffers_in_use"] == 0 and st["buffers_waiting"] == 0, st
    # Sessions did wait: first buffers were refused at the cap.
    assert st["buffers_refused"] > 0, st
