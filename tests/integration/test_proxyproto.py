"""The PROXY protocol both ways, with a real HAProxy (TCP mode) in front and
the real Dovecot behind: on listeners with proxy_protocol: true the header
is read first, only from trusted_proxies, and the address it carries is the
client's for the policy (allow_from), the rate limiter, the per-address
connection cap and the logs; with backend.send_proxy_protocol Dovecot
(haproxy = yes, haproxy_trusted_networks) logs the real client (rip=).
A peer outside trusted_proxies, a missing or malformed header, and silence
are refused. A TCP6 header carries an IPv6 client; a reload turns the
listener option off for new connections. Clients come from 127.0.0.2,
127.0.0.3, ... through HAProxy,
which connects to imapguard from 127.0.0.1 (the only trusted proxy)."""

import copy
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import shutil

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code

HAPROXY = "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY),
                                reason="haproxy is not installed (scripts/install-deps.sh)")

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, sport, dst="127.0.0.1", dport=993):
    return (SIG + b"\x21\x11\x00\x0c" + socket.inet_aton(src) + socket.inet_aton(dst) +
            sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


class HAProxy:
    """HAProxy in TCP mode, in the foreground (-db), config in d: one
    frontend per (name, target port, server option) on a free loopback
    port. ports: name -> frontend port."""

    def __init__(self, d, fronts):
        self.dir = d
        self.ports = {}
        conf = ["global", "    maxconn 200", "defaults", "    mode tcp",
                "    timeout connect 5s", "    timeout client 60s", "    timeout server 60s"]
        for name, target, opt in fronts:
            port = igtest.free_port()
            self.ports[name] = port
            conf += ["frontend fe_%s" % name, "    bind 127.0.0.1:%d" % port,
                     "    default_backend be_%s" % name,
                     "backend be_%s" % name,
                     "    server ig 127.0.0.1:%d %s" % (target, opt)]
        self.conf = os.path.join(d, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.log_path = os.path.join(d, "haproxy.log")
        self.proc = None

    def start(self):
        r = subprocess.run([HAPROXY, "-c", "-f", self.conf], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        self.proc = igtest.spawn([HAPROXY, "-db", "-f", self.conf], self.log_path)
        for port in self.ports.values():
            igtest.wait_until(lambda: self.proc.poll() is None and
                              igtest.can_connect("127.0.0.1", port),
                              igtest.START_TIMEOUT, "haproxy on port %d" % port)
        return self

    def stop(self):
        if self.proc is not None:
            igtest.reap(self.proc, signal.SIGTERM, 10)
            self.proc = None


@pytest.fixture
def tmpdir_pp():
    d = tempfile.mkdtemp(prefix="igpp-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot_pp(request):
    """A Dovecot that wants a PROXY header on its plain port."""
    d = tempfile.mkdtemp(prefix="igpp-dovecot-", dir="/tmp")
    dv = igtest.Dovecot(d, haproxy=True).start()

    def fin():
        dv.stop()
        shutil.rmtree(d, ignore_errors=True)
    request.addfinalizer(fin)
    return dv


def pp_config(devcerts, dovecot, send="off", trusted=("127.0.0.1/32",), **limits):
    cfg = igtest.base_config(devcerts, dovecot.address)
    for lst in cfg["listeners"]:
        lst["proxy_protocol"] = True
        lst["trusted_proxies"] = list(trusted)
    # The client's address reaches Dovecot only through our PROXY header
    # (when sent): no ID with x-originating-ip.
    cfg["backend"]["forward_client_address"] = "none"
    cfg["backend"]["send_proxy_protocol"] = send
    cfg["limits"].update(limits)
    return cfg


@pytest.fixture
def stack(request, imapguard, devcerts, tmpdir_pp):
    """start(cfg) -> (imapguard, haproxy): HAProxy frontends "v2" (implicit
    TLS listener, send-proxy-v2) and "v1" (STARTTLS listener, send-proxy)."""
    started = []

    def start(cfg):
        ig = imapguard(cfg)
        hp = HAProxy(tmpdir_pp, [("v2", ig.ports["imaps"], "send-proxy-v2"),
                                 ("v1", ig.ports["imap"], "send-proxy")])
        started.append(hp)
        hp.start()
        return ig, hp

    def fin():
        for hp in started:
            hp.stop()
    request.addfinalizer(fin)
    return start


def via_tls(hp, ca, source):
    c = Raw("127.0.0.1", hp.ports["v2"], tls_ctx=igtest.client_context(ca), source=source)
    greeting = c.readline()
    assert greeting.startswith(b"* OK"), greeting
    return c


def via_starttls(hp, ca, source):
    c = Raw("127.0.0.1", hp.ports["v1"], source=source)
    greeting = c.readline()
    assert greeting.startswith(b"* OK"), greeting
    _, tagged = c.cmd("s", "STARTTLS")
    assert status(tagged) == "OK", tagged
    c.starttls(igtest.client_context(ca))
    return c


def login(c, user=ALICE, pw=ALICE_PW):
    try:
        return c.cmd("a", "LOGIN %s %s" % (user, pw))[1]
    finally:
        c.close()


def lines_with(log, *needles):
    return [ln for ln in log.splitlines() if all(n in ln for n in needles)]


@pytest.mark.parametrize("send", ["v2", "v1"])
def test_real_client_address_reaches_logs_and_dovecot(stack, devcerts, dovecot_pp, ca, send):
    ig, hp = stack(pp_config(devcerts, dovecot_pp, send=send))
    # The start-up probe's connection carries a LOCAL (v1: UNKNOWN) header.
    igtest.wait_until(lambda: "event=backend-probe result=" in ig.log_text(), 10,
                      "the backend probe's result")
    assert "event=backend-probe result=ok" in ig.log_text()
    assert status(login(via_tls(hp, ca, "127.0.0.3"))) == "OK"
    assert status(login(via_starttls(hp, ca, "127.0.0.2"))) == "OK"
    log = ig.log_text()
    assert lines_with(log, "client=127.0.0.3:", "listener=imaps", "event=proxy-header version=2 "
                      "command=proxy proxy=127.0.0.1:"), log[-3000:]
    assert lines_with(log, "client=127.0.0.3:", "event=connect tls=implicit")
    assert lines_with(log, "client=127.0.0.2:", "listener=imap ", "event=proxy-header "
                      "version=1 command=proxy proxy=127.0.0.1:"), log[-3000:]
    assert lines_with(log, "client=127.0.0.2:", "event=connect tls=starttls")
    # Every session began with the header (HAProxy's readiness probes
    # included: they come from 127.0.0.1 themselves).
    sid = lambda ln: ln.split(" sid=", 1)[1].split(" ", 1)[0]
    headers = {sid(ln) for ln in lines_with(log, "event=proxy-header")}
    connects = {sid(ln) for ln in lines_with(log, "event=connect ")}
    assert connects and connects <= headers
    # Dovecot learned the client's address from our header (no ID was sent).
    dl = dovecot_pp.log_text()
    igtest.wait_until(lambda: len(lines_with(dovecot_pp.log_text(), "imap-login:",
                                             "Login: user=<%s>" % ALICE, "rip=127.0.0.2")) > 0,
                      5, "Dovecot login line with rip=127.0.0.2")
    dl = dovecot_pp.log_text()
    assert lines_with(dl, "imap-login:", "Login: user=<%s>" % ALICE, "rip=127.0.0.3"), dl[-3000:]


def test_allow_from_sees_the_carried_address(stack, devcerts, dovecot_pp, ca):
    cfg = pp_config(devcerts, dovecot_pp, send="v2")
    cfg["policy"]["networks"] = {"office": ["127.0.0.3/32"]}
    cfg["policy"]["users"] = {ALICE: {"allow_from": ["office"]}}
    ig, hp = stack(cfg)
    tagged = login(via_tls(hp, ca, "127.0.0.2"))
    assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED", tagged
    assert status(login(via_tls(hp, ca, "127.0.0.3"))) == "OK"
    assert status(login(via_starttls(hp, ca, "127.0.0.3"))) == "OK"
    assert lines_with(ig.log_text(), "client=127.0.0.2:", "reason=address-not-allowed")


def test_rate_limit_blocks_the_client_not_the_balancer(stack, devcerts, dovecot_pp, ca,
                                                       tmpdir_pp):
    cfg = pp_config(devcerts, dovecot_pp, send="v2")
    cfg["ratelimit"] = {"tarpit": {"base": "50ms", "max": "200ms"},
                        "max_connection_failures": 100,
                        "user_address": {"threshold": 0}, "user": {"threshold": 0}}
    ig, hp = stack(cfg)
    for i in range(10):
        tagged = login(via_tls(hp, ca, "127.0.0.4"), pw="wrong-%d" % i)
        assert resp_code(tagged) == "AUTHENTICATIONFAILED", (i, tagged)
    tagged = igtest.backend_untouched(dovecot_pp, lambda: login(via_tls(hp, ca, "127.0.0.4")))
    assert status(tagged) == "NO" and resp_code(tagged) == "UNAVAILABLE", tagged
    # Behind the same HAProxy, another client is not blocked.
    assert status(login(via_tls(hp, ca, "127.0.0.5"))) == "OK"
    assert status(login(via_starttls(hp, ca, "127.0.0.5"))) == "OK"
    log = ig.log_text()
    assert lines_with(log, "client=127.0.0.4:", "event=ratelimit-block limit=address")
    assert not lines_with(log, "client=127.0.0.5:", "reason=ratelimit")


def test_connection_cap_counts_the_carried_address(stack, devcerts, dovecot_pp, ca):
    ig, hp = stack(pp_config(devcerts, dovecot_pp, max_connections_per_address=2))
    held = [via_tls(hp, ca, "127.0.0.6"), via_starttls(hp, ca, "127.0.0.6")]
    try:
        third = Raw("127.0.0.1", hp.ports["v1"], source="127.0.0.6")
        assert b"Too many connections from your address" in third.expect_closed()
        third.close()
        # HAProxy's own address is not what is counted.
        held.append(via_tls(hp, ca, "127.0.0.7"))
        assert lines_with(ig.log_text(), "client=127.0.0.6:",
                          "reason=max-connections-per-address address=127.0.0.6")
    finally:
        for c in held:
            c.close()


def test_peer_outside_trusted_proxies_is_refused(stack, devcerts, dovecot_pp, ca):
    ig, hp = stack(pp_config(devcerts, dovecot_pp))
    for name in ("imaps", "imap"):
        # A forged header straight from an untrusted address: closed unread.
        c = Raw(*ig.addr(name), source="127.0.0.2")
        c.send(b"PROXY TCP4 127.0.0.9 127.0.0.1 5555 993\r\n")
        assert c.expect_closed() == b""
        c.close()
    log = ig.log_text()
    refused = lines_with(log, "client=127.0.0.2:", "event=refused reason=untrusted-proxy")
    assert len(refused) == 2, log[-3000:]
    assert "127.0.0.9" not in log


def test_missing_or_bad_header_is_refused(stack, devcerts, dovecot_pp, ca):
    ig, hp = stack(pp_config(devcerts, dovecot_pp, handshake_timeout="1s"))
    # A client that talks IMAP (or TLS) straight away, from a trusted address.
    c = Raw(*ig.addr("imap"))
    c.send(b"a1 CAPABILITY\r\n")
    assert c.expect_closed() == b""
    c.close()
    ctx = igtest.client_context(ca)
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        Raw(*ig.addr("imaps"), tls_ctx=ctx)
    # A v1 line that never ends within 107 bytes.
    c = Raw(*ig.addr("imap"))
    c.send(b"PROXY UNKNOWN " + b"x" * 200)
    assert c.expect_closed() == b""
    c.close()
    # A peer that closes inside the header.
    c = Raw(*ig.addr("imap"))
    c.send(b"PROXY TCP4 1.2.3.4")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.expect_closed() == b""
    c.close()
    # Silence: refused at the header deadline (limits.handshake_timeout here).
    c = Raw(*ig.addr("imaps"))
    c.send(SIG[:5])
    assert c.expect_closed(timeout=10) == b""
    c.close()
    log = ig.log_text()
    bad = lines_with(log, "event=refused reason=bad-proxy-header")
    assert len(bad) == 3, log[-3000:]
    assert any('detail="not a PROXY protocol header" start="a1 CAPABILITY' in ln for ln in bad)
    assert any("v1 line longer than 107 bytes" in ln for ln in bad)
    assert lines_with(log, "event=refused reason=proxy-header-timeout got_bytes=5")
    assert lines_with(log, "event=refused reason=proxy-header-missing detail=\"the connection "
                      "closed before the header ended\" got_bytes=18")


def test_header_and_first_bytes_in_one_segment(stack, devcerts, dovecot_pp, ca):
    """The header and the ClientHello (or the first command) in one write:
    nothing after the header is lost."""
    ig, hp = stack(pp_config(devcerts, dovecot_pp, send="v2"))
    # Implicit TLS: header + ClientHello together, then the handshake.
    s = socket.create_connection(ig.addr("imaps"), timeout=igtest.IO_TIMEOUT)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = igtest.client_context(ca).wrap_bio(inc, out, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s.sendall(v2_header("127.0.0.8", 40000) + out.read())
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                s.sendall(pending)
            data = s.recv(65536)
            assert data, "closed during the handshake"
            inc.write(data)
    s.sendall(out.read())
    buf = b""
    while b"\r\n" not in buf:
        try:
            buf += tls.read(4096)
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                s.sendall(pending)
            data = s.recv(65536)
            assert data, "closed before the greeting"
            inc.write(data)
    assert buf.startswith(b"* OK"), buf
    s.close()
    # STARTTLS listener: header + a command together.
    c = Raw(*ig.addr("imap"))
    c.send(b"PROXY TCP4 127.0.0.9 127.0.0.1 5555 143\r\na1 NOOP\r\n")
    assert c.readline().startswith(b"* OK")
    assert c.readline().startswith(b"a1 OK")
    c.close()
    log = ig.log_text()
    assert lines_with(log, "client=127.0.0.8:40000", "event=tls ")
    assert lines_with(log, "client=127.0.0.9:5555", "event=connect tls=starttls")


def test_local_command_keeps_the_real_address(stack, devcerts, dovecot_pp, ca):
    """A v2 LOCAL header (a balancer's health check) and v1 UNKNOWN: the
    connection is the balancer's own, under its address."""
    ig, hp = stack(pp_config(devcerts, dovecot_pp, send="v1"))
    for hdr in (igtest.PROXY_V2_LOCAL, b"PROXY UNKNOWN\r\n"):
        c = Raw(*ig.addr("imap"))
        c.send(hdr)
        assert c.readline().startswith(b"* OK")
        _, tagged = c.cmd("z", "LOGOUT")
        assert status(tagged) == "OK"
        c.close()
    log = ig.log_text()
    assert lines_with(log, "client=127.0.0.1:", "event=proxy-header version=2 command=local")
    assert lines_with(log, "client=127.0.0.1:", "event=proxy-header version=1 command=unknown")


def test_ipv6_client_behind_an_ipv4_balancer(stack, devcerts, dovecot_pp, ca):
    """A TCP6 header on an IPv4 connection: the IPv6 client is the one
    logged, counted (its /64) and told to Dovecot."""
    ig, hp = stack(pp_config(devcerts, dovecot_pp, send="v2"))
    src = "2001:db8:7::9"
    hdr = (SIG + b"\x21\x21\x00\x24" + socket.inet_pton(socket.AF_INET6, src) +
           socket.inet_pton(socket.AF_INET6, "2001:db8:7::1") +
           (40000).to_bytes(2, "big") + (143).to_bytes(2, "big"))
    c = Raw(*ig.addr("imap"))
    c.send(hdr)
    assert c.readline().startswith(b"* OK")
    _, tagged = c.cmd("s", "STARTTLS")
    assert status(tagged) == "OK"
    c.starttls(igtest.client_context(ca))
    assert status(login(c)) == "OK"
    assert lines_with(ig.log_text(), "client=%s:40000" % src, "event=login-result result=ok")
    igtest.wait_until(lambda: lines_with(dovecot_pp.log_text(), "Login: user=<%s>" % ALICE,
                                         "rip=%s" % src), 5, "Dovecot login from " + src)


def test_reload_turns_proxy_protocol_off_for_new_connections(stack, devcerts, dovecot_pp, ca):
    cfg = pp_config(devcerts, dovecot_pp)
    ig, hp = stack(cfg)
    c = Raw(*ig.addr("imap"))
    c.send(b"a1 CAPABILITY\r\n")
    assert c.expect_closed() == b""
    c.close()
    cfg = copy.deepcopy(ig.config)  # with the ports it listens on
    for lst in cfg["listeners"]:
        lst["proxy_protocol"] = False
        del lst["trusted_proxies"]
    ig.reload(cfg)
    c = Raw(*ig.addr("imap"), source="127.0.0.2")
    assert c.readline().startswith(b"* OK")
    c.close()
    assert lines_with(ig.log_text(), "client=127.0.0.2:", "event=connect tls=starttls")
