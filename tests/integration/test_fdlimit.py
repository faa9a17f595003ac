"""Running out of file descriptors is neither silent nor a reset (issue 12,
finding 9). imapguard runs with a small RLIMIT_NOFILE; clients connect until
the proxy pauses accepting (event=accept-paused reason=fd-limit, logged
once). The next clients are not reset: they wait, accepted by the kernel,
and get their greeting once sessions close (event=accept-resumed), and can
log in."""

import re
import resource
import socket
import time

import igtest
from igtest import ALICE, ALICE_PW, Raw, status

NOFILE = 64


def greeting_or_pause(ig, c, timeout=igtest.IO_TIMEOUT):
    """Waits for c's greeting or for the proxy to log a pause. Returns the
    greeting line, or None when the proxy paused first. A reset or EOF
    fails the test: that is what running out of descriptors used to do."""
    deadline = time.monotonic() + timeout
    c.sock.settimeout(0.1)
    try:
        while time.monotonic() < deadline:
            try:
                return c.readline()
            except socket.timeout:
                if "event=accept-paused" in ig.log_text():
                    return None
            except (igtest.Closed, OSError) as e:
                raise AssertionError("a client was dropped (%r); log tail:\n%s"
                                     % (e, ig.log_text()[-3000:]))
        raise AssertionError("neither a greeting nor a pause after %.0fs" % timeout)
    finally:
        c.sock.settimeout(igtest.IO_TIMEOUT)


def assert_waiting(c, secs=1.0):
    """c stays connected and silent: not greeted, not closed, not reset."""
    c.sock.settimeout(secs)
    try:
        data = c.sock.recv(1)
        raise AssertionError("expected to wait, got %r" % data)
    except socket.timeout:
        pass
    finally:
        c.sock.settimeout(igtest.IO_TIMEOUT)


def test_fd_limit_pauses_accepting_instead_of_resetting(imapguard, devcerts, dovecot, ca):
    ig = imapguard(igtest.base_config(devcerts, dovecot.address),
                   rlimits={resource.RLIMIT_NOFILE: (NOFILE, NOFILE)})
    log = ig.log_text()
    assert "event=fd-limit soft=%d hard=%d" % (NOFILE, NOFILE) in log, log
    held, waiting = [], []
    try:
        # Connect until the proxy pauses; every earlier one is greeted.
        while True:
            assert len(held) < 200, "no pause after 200 sessions"
            c = Raw(*ig.addr("imap"))
            line = greeting_or_pause(ig, c)
            if line is None:
                waiting.append(c)
                break
            assert line.startswith(b"* OK"), line
            held.append(c)
        m = re.search(r"event=fd-budget limit=%d in_use=\d+ reserve=\d+ max_sessions=(\d+)"
                      % NOFILE, ig.log_text())
        assert m, ig.log_text()
        assert len(held) == int(m.group(1)), (len(held), m.group(0))
        # One more waits in the kernel's backlog.
        waiting.append(Raw(*ig.addr("imap")))
        for c in waiting:
            assert_waiting(c)
        text = ig.log_text()
        assert text.count("event=accept-paused") == 1, text[-3000:]
        assert "event=accept-paused reason=fd-limit listener=imap" in text
        assert "event=accept-error" not in text, text[-3000:]

        # Two sessions go: both waiting clients are served, in order.
        for _ in range(2):
            held.pop().close()
        for c in waiting:
            line = c.readline()
            assert line.startswith(b"* OK"), line
        igtest.wait_until(lambda: "event=accept-resumed reason=fd-limit" in ig.log_text(),
                          igtest.IO_TIMEOUT, "event=accept-resumed")

        # And log in (STARTTLS first: require_tls).
        c = waiting[0]
        assert status(c.cmd("s", "STARTTLS")[1]) == "OK"
        c.starttls(igtest.client_context(ca))
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(c.cmd("b", "NOOP")[1]) == "OK"
        assert "event=accept-error" not in ig.log_text()
    finally:
        for c in held + waiting:
            c.close()
