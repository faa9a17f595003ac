"""Hostile input before login: overlong lines, huge literals (synchronizing
and LITERAL+), insane user names, idle connections. Each is refused with
the RFC-mandated status, bounded memory (VmRSS), and without costing the
backend a connection."""

import select
import ssl
import threading
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status

MB = 1024 * 1024
# How much the proxy's resident memory may grow while being flooded; the
# floods below carry 30 MB and more, which a buffering proxy would hold.
RSS_SLACK_KB = 8 * 1024


def connect(ig, ca, listener):
    ctx = igtest.client_context(ca) if listener == "imaps" else None
    c = Raw(*ig.addr(listener), tls_ctx=ctx, timeout=15)
    assert c.readline().startswith(b"* OK")
    return c


def _readable(c):
    if isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
        return True
    return bool(select.select([c.sock], [], [], 0)[0])


def flood(c, chunks):
    """Send chunks until the server answers or closes; then read to EOF.
    Returns everything the server sent. Fails if the server neither
    answers nor closes (bounded by the socket timeout)."""
    got = b""
    for chunk in chunks:
        try:
            if _readable(c):
                data = c.sock.recv(65536)
                if not data:
                    return got
                got += data
                break
            c.sock.sendall(chunk)
        except (OSError, ssl.SSLError):
            break
    try:
        return got + c.expect_closed()
    except (OSError, ssl.SSLError):
        return got


def repeat(block, total, chunk=16384):
    """Generator of `total` bytes made of `block`, in chunk-sized pieces."""
    data = (block * (chunk // len(block) + 1))[:chunk]
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield data[:n]
        sent += n


@pytest.fixture
def quiet_backend(dovecot):
    """Asserts that the test cost Dovecot no connection and no auth."""
    conns = igtest.quiet_connection_count(dovecot)
    auths = igtest.imap_login_count(dovecot)
    yield
    assert igtest.imap_login_count(dovecot) == auths, "Dovecot saw an authentication"
    assert igtest.quiet_connection_count(dovecot) == conns, "the proxy connected to Dovecot"


@pytest.mark.parametrize("listener", ["imaps", "imap"])
def test_overlong_line_closed(ig, ca, listener, quiet_backend):
    """100 kB without CRLF (max_line is 8192): the position in the stream is
    lost, so * BYE [TOOBIG] and close, never a BAD and go on."""
    c = connect(ig, ca, listener)
    try:
        got = flood(c, repeat(b"a LOGIN " + b"x" * 100, 100 * 1024))
    finally:
        c.close()
    assert got.startswith(b"* BYE [TOOBIG]"), got[:300]
    assert b" BAD" not in got, got[:300]


def test_overlong_line_with_crlf_later_not_executed(ig, ca, quiet_backend):
    """A line that overflows and then ends in a valid-looking command: the
    tail of the overlong line is not executed as a command."""
    c = connect(ig, ca, "imaps")
    try:
        payload = b"a NOOP " + b"y" * (20 * 1024) + b"\r\nb LOGIN %s %s\r\n" % (
            ALICE.encode(), ALICE_PW.encode())
        got = flood(c, [payload])
    finally:
        c.close()
    assert b"b OK" not in got and b"b NO" not in got
    assert got.startswith(b"* BYE [TOOBIG]"), got[:300]


@pytest.mark.parametrize("cmd", [
    "a LOGIN {10000000}",
    "a LOGIN %s {10000000}" % ALICE,
    "a AUTHENTICATE PLAIN {10000000}",
])
def test_huge_synchronizing_literal_refused_without_continuation(ig, ca, cmd, quiet_backend):
    """A synchronizing literal over max_literal is refused before "+": the
    client will not send it, so the stream is intact: tagged BAD [TOOBIG]
    and the session goes on (documented in imap_parse.h)."""
    c = connect(ig, ca, "imaps")
    try:
        c.send(cmd + "\r\n")
        try:
            line = c.readline()
        except igtest.Closed:
            pytest.fail("closed without a response")
        assert not line.startswith(b"+"), "a continuation invites 10 MB: %r" % line
        assert line.startswith(b"a BAD [TOOBIG]"), line
        assert status(c.cmd("b", "NOOP")[1]) == "OK"
    finally:
        c.close()


def test_literal_over_max_literal_refused(ig, ca, quiet_backend):
    c = connect(ig, ca, "imaps")
    try:
        c.send("a LOGIN %s {9000}\r\n" % ALICE)
        line = c.readline()
        assert not line.startswith(b"+"), line
        assert line.startswith(b"a BAD [TOOBIG]"), line
        assert status(c.cmd("b", "NOOP")[1]) == "OK"
    finally:
        c.close()


def test_huge_nonsynchronizing_literal_bye_and_not_executed(ig, ca, quiet_backend):
    """'{10000000+}': * BYE and close. The literal body is full of commands
    (NOOP, LOGIN): none may be executed."""
    c = connect(ig, ca, "imaps")
    try:
        c.send("a LOGIN %s {10000000+}\r\n" % ALICE)
        body = ("x NOOP\r\nb LOGIN %s %s\r\n" % (ALICE, ALICE_PW)).encode()
        got = flood(c, repeat(body, 10 * MB))
    finally:
        c.close()
    assert got.startswith(b"* BYE [TOOBIG]"), got[:300]
    assert b"x OK" not in got and b"b OK" not in got and b"b NO" not in got


def test_rss_bounded_under_floods(ig, ca, dovecot):
    """Memory stays flat while 6 clients push 10 MB LITERAL+ bodies and
    100 kB lines at once (warm-up first, so TLS setup is not counted)."""
    closed = ig.log_text().count(" event=close ")
    for _ in range(3):
        c = connect(ig, ca, "imaps")
        c.cmd("w", "NOOP")
        c.close()
    igtest.wait_until(lambda: ig.log_text().count(" event=close ") >= closed + 3,
                      igtest.IO_TIMEOUT, "the warm-up sessions to close")
    before = ig.rss_kb()
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], ig.rss_kb())
            except (OSError, AssertionError):
                return
            time.sleep(0.02)
    sampler = threading.Thread(target=sample)
    sampler.start()
    results = []

    def attack(kind):
        c = connect(ig, ca, "imaps" if kind % 2 == 0 else "imap")
        try:
            if kind < 4:
                c.send("a LOGIN %s {10000000+}\r\n" % ALICE)
                results.append(flood(c, repeat(b"z" * 1000, 10 * MB)))
            else:
                results.append(flood(c, repeat(b"q" * 1000, 10 * MB)))
        finally:
            c.close()
    try:
        threads = [threading.Thread(target=attack, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a flood did not end"
    finally:
        stop.set()
        sampler.join(5)
    assert len(results) == 6
    assert all(r.startswith(b"* BYE [TOOBIG]") for r in results), [r[:100] for r in results]
    growth = peak[0] - before
    assert growth < RSS_SLACK_KB, "VmRSS grew by %d kB (from %d kB)" % (growth, before)
    # still serving
    c = connect(ig, ca, "imaps")
    try:
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    finally:
        c.close()


def test_long_user_name_refused_before_backend(ig, ca, quiet_backend):
    """PROTOCOL.md: refuse names over a sane length, without a backend
    round trip."""
    c = connect(ig, ca, "imaps")
    try:
        tagged = c.cmd("a", "LOGIN %s %s" % ("u" * 4000 + "@example.com", ALICE_PW))[1]
        assert status(tagged) in ("NO", "BAD"), tagged
        assert status(c.cmd("b", "NOOP")[1]) == "OK"
    finally:
        c.close()


def test_escaped_quote_in_user_name_is_not_alice(ig, ca):
    """'al\\"ice' is one quoted string holding a quote: it must not be
    mis-parsed into another user (nor log anyone in)."""
    c = connect(ig, ca, "imaps")
    try:
        tagged = c.cmd("a", 'LOGIN "al\\"ice@example.com" %s' % ALICE_PW)[1]
        assert status(tagged) in ("NO", "BAD"), tagged
    finally:
        c.close()


def test_nul_in_user_name_refused(ig, ca, quiet_backend):
    """A NUL inside a literal user name is refused by the proxy."""
    c = connect(ig, ca, "imaps")
    try:
        user = ALICE.encode() + b"\0x"
        c.send(b"a LOGIN {%d+}\r\n" % len(user) + user + b" " + ALICE_PW.encode() + b"\r\n")
        untagged, tagged = c.read_until_tagged("a")
        assert status(tagged) in ("NO", "BAD"), tagged
    finally:
        c.close()


def test_bad_syntax_answered_bad(ig, ca, quiet_backend):
    c = connect(ig, ca, "imaps")
    try:
        assert status(c.cmd("a", "LOGIN")[1]) == "BAD"
        assert status(c.cmd("b", "LOGIN onlyuser")[1]) == "BAD"
        assert status(c.cmd("c", 'LOGIN "unterminated')[1]) == "BAD"
        assert status(c.cmd("d", "NOOP")[1]) == "OK"
    finally:
        c.close()


def test_preauth_timeout(imapguard, devcerts, dovecot, ca):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["preauth_timeout"] = "2s"
    ig2 = imapguard(cfg)
    for listener in ("imaps", "imap"):
        c = connect(ig2, ca, listener)
        t0 = time.monotonic()
        try:
            got = c.expect_closed(timeout=12)
        finally:
            c.close()
        elapsed = time.monotonic() - t0
        assert 1.5 <= elapsed <= 12, elapsed
        assert got == b"" or got.startswith(b"* BYE"), got
