"""One address must not lock everyone out (issue 12, finding 1), against the
real Dovecot:
  - limits.max_connections_per_address caps the live connections of one
    client address across all listeners: the next one is refused (STARTTLS
    listener: "* BYE [UNAVAILABLE]"; implicit TLS: closed before the
    handshake) while another address is served and logs in; closing one
    frees a slot; a limits.raised network gets its own cap;
  - limits.preauth_lifetime ends a session that never logs in, however
    busy it keeps the connection;
  - limits.max_preauth_commands ends a session that only chatters.
Each refusal is logged with event=refused and its reason."""

import ssl
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status

CAP_BYE = b"* BYE [UNAVAILABLE] Too many connections from your address"


def caps_config(devcerts, dovecot, **limits):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"].update(limits)
    return cfg


def plain(ig, source):
    """A connection to the STARTTLS listener; returns (conn, first line)."""
    c = Raw(*ig.addr("imap"), source=source)
    try:
        return c, c.readline()
    except (igtest.Closed, OSError):
        return c, b""


def tls(ig, ca, source):
    """A TLS connection to the implicit listener, greeting read."""
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca), source=source)
    line = c.readline()
    assert line.startswith(b"* OK"), line
    return c


def assert_tls_refused(ig, ca, source):
    """An implicit-TLS connection from source is closed before any TLS."""
    with pytest.raises((ssl.SSLError, OSError, igtest.Closed)):
        c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca), source=source)
        try:
            c.readline()
        finally:
            c.close()


def refusals(ig, reason):
    return ig.log_text().count("event=refused reason=%s " % reason)


def test_per_address_cap_across_listeners(imapguard, devcerts, dovecot, ca):
    ig = imapguard(caps_config(devcerts, dovecot, max_connections_per_address=5))
    held = []
    try:
        # Five from 127.0.0.2, on both listeners: the cap counts them all.
        for _ in range(3):
            c, line = plain(ig, "127.0.0.2")
            assert line.startswith(b"* OK"), line
            held.append(c)
        for _ in range(2):
            held.append(tls(ig, ca, "127.0.0.2"))

        # The sixth is refused on either listener.
        c, line = plain(ig, "127.0.0.2")
        try:
            assert line.rstrip() == CAP_BYE, line
            c.expect_closed()
        finally:
            c.close()
        assert_tls_refused(ig, ca, "127.0.0.2")
        igtest.wait_until(lambda: refusals(ig, "max-connections-per-address") >= 2, 10,
                          "two refusals logged")
        log = ig.log_text()
        assert ("event=refused reason=max-connections-per-address address=127.0.0.2 "
                "count=6 limit=5") in log, log[-3000:]

        # Meanwhile another address is served and logs in.
        other = tls(ig, ca, "127.0.0.3")
        try:
            assert status(other.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
            assert status(other.cmd("b", "NOOP")[1]) == "OK"
        finally:
            other.close()

        # The held ones still work.
        assert status(held[0].cmd("n", "NOOP")[1]) == "OK"

        # Closing one frees a slot (once the proxy has seen the close).
        held.pop(0).close()

        def slot_free():
            c, line = plain(ig, "127.0.0.2")
            if line.startswith(b"* OK"):
                held.append(c)
                return True
            c.close()
            return False
        igtest.wait_until(slot_free, 10, "a slot for 127.0.0.2 after a close", interval=0.2)
        c, line = plain(ig, "127.0.0.2")
        c.close()
        assert line.rstrip() == CAP_BYE, line
    finally:
        for c in held:
            c.close()


def test_raised_network_gets_its_cap(imapguard, devcerts, dovecot, ca):
    cfg = caps_config(devcerts, dovecot, max_connections_per_address=2,
                      raised=[{"networks": ["lab"], "max_connections_per_address": 4}])
    cfg["policy"]["networks"] = {"lab": ["127.0.0.4/32"]}
    ig = imapguard(cfg)
    held = []
    try:
        for _ in range(4):
            c, line = plain(ig, "127.0.0.4")
            held.append(c)
            assert line.startswith(b"* OK"), line
        c, line = plain(ig, "127.0.0.4")
        held.append(c)
        assert line.rstrip() == CAP_BYE, line
        for _ in range(2):
            c, line = plain(ig, "127.0.0.2")
            held.append(c)
            assert line.startswith(b"* OK"), line
        c, line = plain(ig, "127.0.0.2")
        held.append(c)
        assert line.rstrip() == CAP_BYE, line
        log = ig.log_text()
        assert "address=127.0.0.4 count=5 limit=4" in log
        assert "address=127.0.0.2 count=3 limit=2" in log
    finally:
        for c in held:
            c.close()


def busy_until_closed(c, t0, timeout):
    """NOOP every 0.2 s, each answered OK, until the server closes; returns
    (NOOPs answered OK, the last line, seconds since t0)."""
    ok = 0
    last = b""
    n = 0
    while time.monotonic() - t0 < timeout:
        n += 1
        try:
            c.send("n%d NOOP\r\n" % n)
            while True:
                line = c.readline()
                if line.startswith(b"* BYE"):
                    last = line
                    c.expect_closed()
                    return ok, last, time.monotonic() - t0
                if line.startswith(b"n%d " % n):
                    assert status(line.decode()) == "OK", line
                    ok += 1
                    break
        except (igtest.Closed, OSError, ssl.SSLError):
            return ok, last, time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError("still open after %.0fs of NOOPs (%d answered)" % (timeout, ok))


@pytest.mark.parametrize("listener", ["imap", "imaps"])
def test_preauth_lifetime_ends_a_busy_session(imapguard, devcerts, dovecot, ca, listener):
    ig = imapguard(caps_config(devcerts, dovecot, preauth_timeout="2s",
                               preauth_lifetime="3s"))
    ctx = igtest.client_context(ca) if listener == "imaps" else None
    t0 = time.monotonic()  # before the proxy's accept: the lifetime starts there
    c = Raw(*ig.addr(listener), tls_ctx=ctx)
    try:
        assert c.readline().startswith(b"* OK")
        ok, last, secs = busy_until_closed(c, t0, 20)
    finally:
        c.close()
    # Busy past the 2 s idle timeout, closed at the 3 s lifetime.
    assert ok >= 5, (ok, last, secs)
    assert last.rstrip() == b"* BYE [UNAVAILABLE] Too long without logging in", last
    assert 3.0 <= secs <= 15, secs
    igtest.wait_until(lambda: refusals(ig, "preauth-lifetime") == 1, 10,
                      "event=refused reason=preauth-lifetime")


def test_preauth_lifetime_cuts_a_tarpit(imapguard, devcerts, dovecot, ca):
    """A tarpit holding a failed login's answer past the lifetime does not
    extend it: the session ends at the lifetime (the held answer, then the
    BYE), not when the tarpit would have."""
    cfg = caps_config(devcerts, dovecot, preauth_timeout="3s", preauth_lifetime="3s")
    cfg["ratelimit"] = {"enabled": True, "tarpit": {"base": "8s", "max": "10s"},
                        "max_connection_failures": 100}
    ig = imapguard(cfg)
    t0 = time.monotonic()
    c = tls(ig, ca, "127.0.0.5")
    try:
        assert status(c.cmd("a", "LOGIN %s wrong-1" % ALICE)[1]) == "NO"
        # The second failure's answer would wait 8 s.
        c.send("b LOGIN %s wrong-2\r\n" % ALICE)
        line = c.readline()
        secs = time.monotonic() - t0
        if line.startswith(b"b "):
            assert status(line.decode()) == "NO", line
            line = c.readline()
        assert line.rstrip() == b"* BYE [UNAVAILABLE] Too long without logging in", line
        c.expect_closed()
    finally:
        c.close()
    assert 3.0 <= secs < 8, secs
    igtest.wait_until(lambda: refusals(ig, "preauth-lifetime") == 1, 10,
                      "event=refused reason=preauth-lifetime")


def test_preauth_lifetime_spares_logged_in_sessions(imapguard, devcerts, dovecot, ca):
    ig = imapguard(caps_config(devcerts, dovecot, preauth_timeout="1s",
                               preauth_lifetime="2s"))
    t0 = time.monotonic()
    c = tls(ig, ca, None)
    try:
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        n = 0
        while time.monotonic() - t0 < 4:
            n += 1
            assert status(c.cmd("n%d" % n, "NOOP")[1]) == "OK"
            time.sleep(0.2)
    finally:
        c.close()
    assert refusals(ig, "preauth-lifetime") == 0


@pytest.mark.parametrize("listener", ["imap", "imaps"])
def test_command_cap(imapguard, devcerts, dovecot, ca, listener):
    ig = imapguard(caps_config(devcerts, dovecot, max_preauth_commands=5))
    ctx = igtest.client_context(ca) if listener == "imaps" else None
    c = Raw(*ig.addr(listener), tls_ctx=ctx)
    try:
        assert c.readline().startswith(b"* OK")
        for i in range(5):
            assert status(c.cmd("c%d" % i, "NOOP" if i % 2 else "CAPABILITY")[1]) == "OK"
        c.send("c5 NOOP\r\n")
        assert c.readline().rstrip() == b"* BYE [CLIENTBUG] Too many commands before login"
        c.expect_closed()
    finally:
        c.close()
    igtest.wait_until(lambda: "event=refused reason=too-many-commands count=6 limit=5"
                      in ig.log_text(), 10, "the refusal logged")

    # A usual client needs a handful: CAPABILITY, ID, LOGIN.
    c = tls(ig, ca, None)
    try:
        assert status(c.cmd("a", "CAPABILITY")[1]) == "OK"
        assert status(c.cmd("b", 'ID ("name" "igtest")')[1]) == "OK"
        assert status(c.cmd("c", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(c.cmd("d", "NOOP")[1]) == "OK"
    finally:
        c.close()
