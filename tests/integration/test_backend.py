"""The backend side: a backend that is down answers [UNAVAILABLE]; TLS to
the backend (STARTTLS and implicit) with the server identity checked
against the configured name (RFC 2595 2.4, RFC 6125), and refused on a
mismatch or an untrusted certificate; the backend probe (start-up and
reload) runs on the loop and stalls no session."""

import re
import signal
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
    # The log says why, also when the proxy learns it from the first read
    # (a cleartext backend is connected to without waiting for it).
    igtest.wait_until(lambda: re.search(r"event=backend-error reason=connect-failed "
                                        r"state=CONNECTING detail=\"connection refused\"",
                                        ig.log_text(), re.I), 10,
                      "event=backend-error reason=connect-failed ... connection refused")
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



# ---- the backend probe (start-up and reload) -------------------------------------

class SilentBackend:
    """A backend that accepts TCP connections and never says a word. Keeps
    every accepted socket open until close(); .accepted counts them."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.srv.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.srv.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                s, _ = self.srv.accept()
            except OSError:
                continue
            with self.lock:
                self.conns.append(s)

    @property
    def accepted(self):
        with self.lock:
            return len(self.conns)

    def conn(self, i):
        with self.lock:
            return self.conns[i]

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.srv.close()
        with self.lock:
            for s in self.conns:
                s.close()


@pytest.fixture
def silent_backend():
    sb = SilentBackend()
    yield sb
    sb.close()


def reload_with_backend(ig, address):
    """Rewrites ig's configuration with another backend address and sends
    SIGHUP (without waiting: the reload waits for the probe)."""
    ig.config["backend"]["address"] = address
    ig.reload(ig.config, what=None)


PROBE_TIMEOUT = "event=backend-probe result=fail backend=%s reason=\"timed out after 3000 ms " \
    "waiting for the greeting"


def test_reload_probe_does_not_stall_live_sessions(imapguard, devcerts, dovecot, ca,
                                                   silent_backend):
    """A reload whose backend accepts and never greets: the probe waits for
    the greeting on the loop, and a session logged in before the reload is
    answered meanwhile (the blocking probe held every session for the whole
    step timeout, and answered only after its failure was logged). The probe
    then times out, logs why and closes its connection; the capabilities
    learned from the old backend stay."""
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    try:
        c.readline()
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(c.cmd("b", "NOOP")[1]) == "OK"

        reload_with_backend(ig, silent_backend.address)
        # The probe has connected: from here it waits for a greeting that
        # never comes.
        igtest.wait_until(lambda: silent_backend.accepted >= 1, igtest.IO_TIMEOUT,
                          "the reload's probe to connect to the silent backend")
        assert status(c.cmd("c", "NOOP")[1]) == "OK"
        assert "event=backend-probe result=fail" not in ig.log_text(), \
            "the live session was answered only after the probe gave up"
        assert "event=reload-done" in ig.log_text()
        timeout_line = PROBE_TIMEOUT % silent_backend.address

        igtest.wait_until(lambda: timeout_line in ig.log_text(), igtest.IO_TIMEOUT,
                          "the probe's timeout")
        # The probe's connection is closed, not left behind.
        probe_conn = silent_backend.conn(0)
        probe_conn.settimeout(igtest.IO_TIMEOUT)
        assert probe_conn.recv(4096) == b""
        assert status(c.cmd("d", "NOOP")[1]) == "OK"
    finally:
        c.close()

    # What the old backend said is still what clients are shown.
    n = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    try:
        n.readline()
        caps = igtest.capabilities(n.cmd("e", "CAPABILITY")[0])
        assert "AUTH=SCRAM-SHA-256" in caps, caps
    finally:
        n.close()


def test_shutdown_during_the_probe(imapguard, devcerts, dovecot, silent_backend):
    """SIGTERM while a reload's probe waits for a greeting: the probe is
    abandoned, the process exits 0 at once with every handle closed (no
    sanitizer report, the loop closed)."""
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))
    reload_with_backend(ig, silent_backend.address)
    igtest.wait_until(lambda: silent_backend.accepted >= 1, igtest.IO_TIMEOUT,
                      "the reload's probe to connect to the silent backend")
    ig.proc.send_signal(signal.SIGTERM)
    code = ig.proc.wait(igtest.IO_TIMEOUT)
    ig.stop(check=False)
    log = ig.log_text()
    assert code == 0, log[-4000:]
    assert not ig.sanitizer_errors(), log[-4000:]
    assert "event=backend-probe result=cancelled reason=shutdown" in log, log[-4000:]
    assert "event=backend-probe result=fail" not in log, log[-4000:]


def test_ready_after_the_first_probe(imapguard, devcerts, ca, silent_backend):
    """At start-up, ready waits for the first probe's result: against a
    silent backend, its timeout. Clients are then shown the fallback list."""
    ig = imapguard(igtest.base_config(devcerts, silent_backend.address))
    log = ig.log_text()
    timeout_line = PROBE_TIMEOUT % silent_backend.address
    assert timeout_line in log
    assert log.index(timeout_line) < log.index(" event=ready "), log
    c = Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    try:
        c.readline()
        caps = igtest.capabilities(c.cmd("a", "CAPABILITY")[0])
        assert caps == {"IMAP4REV1", "SASL-IR", "LITERAL+", "ID", "AUTH=PLAIN",
                        "AUTH=LOGIN"}, caps
    finally:
        c.close()
