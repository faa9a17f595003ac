"""The admin HTTP endpoint (admin.listen): /metrics in the Prometheus text
format, checked by a real parser (promtool check metrics, from Debian's
prometheus package) and shown to move through a full session against the
real Dovecot; /healthz; /readyz following the backend (Dovecot stopped and
started again) and the certificates (one that expires within
admin.ready_cert_days); and hostile requests answered with 4xx."""

import copy
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import conftest
import igtest
from igtest import ALICE, ALICE_PW, status, resp_code


# scripts/install-deps.sh unpacks it from Debian's prometheus package into
# .deps/ (installing the package would start a Prometheus server).
PROMTOOL = os.path.join(os.environ.get("IMAPGUARD_SRC", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")), ".deps", "prometheus", "usr",
    "bin", "promtool")
if not os.path.exists(PROMTOOL):
    PROMTOOL = shutil.which("promtool") or PROMTOOL


def admin_config(cfg, interval="200ms", days=None):
    port = igtest.free_port()
    cfg["admin"] = {"listen": "127.0.0.1:%d" % port, "probe_interval": interval}
    if days is not None:
        cfg["admin"]["ready_cert_days"] = days
    return cfg


def admin_addr(ig):
    host, port = ig.config["admin"]["listen"].rsplit(":", 1)
    return host, int(port)


def http_raw(addr, data, timeout=15.0, shut=False):
    """Sends data, reads until the server closes; returns (status, headers
    text, body bytes)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert m, "no HTTP status line in %r" % out[:200]
    return int(m.group(1)), head.decode("latin-1"), body


def get(ig, path):
    return http_raw(admin_addr(ig), b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())


def scrape_text(ig):
    code, head, body = get(ig, "/metrics")
    assert code == 200, (code, body)
    assert "text/plain; version=0.0.4" in head, head
    return body.decode()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels)): value} for every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "unparsable sample line %r" % line
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def scrape(ig):
    return parse(scrape_text(ig))


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def promtool_check(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (
        "promtool check metrics complained (exit %d):\n%s%s" % (r.returncode, r.stdout,
                                                                r.stderr))


@pytest.fixture(scope="module")
def mig(imapguard_mod, devcerts, dovecot):
    return imapguard_mod(admin_config(igtest.base_config(devcerts, dovecot.address)))


def test_promtool_accepts_metrics(mig):
    assert os.path.exists(PROMTOOL), "promtool missing: run scripts/install-deps.sh"
    text = scrape_text(mig)
    promtool_check(text)
    s = parse(text)
    info = [k for k in s if k[0] == "imapguard_build_info"]
    assert len(info) == 1 and s[info[0]] == 1
    labels = dict(info[0][1])
    assert set(labels) == {"version", "mbedtls_version", "crypto"}, labels
    assert labels["mbedtls_version"].startswith("3.6")
    assert val(s, "process_open_fds") > 0
    assert val(s, "process_resident_memory_bytes") > 1e6
    assert abs(val(s, "process_start_time_seconds") - time.time()) < 3600
    assert val(s, "imapguard_workers") >= 1
    # Every served certificate's end of validity, from the chain itself.
    certs = [k for k in s if k[0] == "imapguard_tls_certificate_expiry_timestamp_seconds"]
    assert len(certs) == 2, certs
    for k in certs:
        assert s[k] > time.time()


def test_healthz(mig):
    code, head, body = get(mig, "/healthz")
    assert code == 200 and body == b"ok\n"
    assert "Connection: close" in head
    code, _, body = get(mig, "/healthz?verbose=1")
    assert code == 200


def _deltas(before, after, keys):
    return {k: val(after, *k[:1], **dict(k[1:])) - val(before, *k[:1], **dict(k[1:]))
            for k in keys}


def test_counters_move_through_a_session(mig, ca):
    """A refused plaintext LOGIN, a wrong password and a successful TLS
    login with SELECT, APPEND, FETCH and LOGOUT move the counters they
    should, and nothing goes backwards."""
    before = scrape(mig)

    # Plaintext LOGIN on the STARTTLS listener: refused by the policy.
    p = igtest.plain_client(mig)
    _, tagged = p.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert status(tagged) == "NO" and resp_code(tagged) == "PRIVACYREQUIRED", tagged
    p.cmd("z", "LOGOUT")
    p.close()

    c = igtest.tls_client(mig, ca)
    _, tagged = c.cmd("b", "LOGIN %s wrong-password" % ALICE)
    assert status(tagged) == "NO", tagged
    _, tagged = c.cmd("c", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert status(tagged) == "OK", tagged
    _, tagged = c.cmd("d", "SELECT INBOX")
    assert status(tagged) == "OK", tagged
    msg = igtest.make_message(2000, subject="metrics")
    c.send(b"e APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert status(c.read_until_tagged("e")[1]) == "OK"
    untagged, tagged = c.cmd("f", "FETCH 1:* (BODY.PEEK[])")
    assert status(tagged) == "OK", tagged

    during = scrape(mig)
    assert val(during, "imapguard_relay_sessions") >= 1
    assert val(during, "imapguard_current_connections", listener="imaps") >= 1

    c.cmd("g", "LOGOUT")
    c.close()

    def moved():
        after = scrape(mig)
        d = lambda name, **lb: val(after, name, **lb) - val(before, name, **lb)
        ok = (d("imapguard_connections_total", listener="imap") >= 1 and
              d("imapguard_connections_total", listener="imaps") >= 1 and
              d("imapguard_login_attempts_total", mechanism="LOGIN-command",
                result="refused") >= 1 and
              d("imapguard_login_attempts_total", mechanism="LOGIN-command",
                result="fail") >= 1 and
              d("imapguard_login_attempts_total", mechanism="LOGIN-command",
                result="ok") >= 1 and
              d("imapguard_login_refusals_total", reason="plaintext") >= 1 and
              d("imapguard_tls_handshakes_total") >= 1 and
              d("imapguard_login_duration_seconds_count") >= 2 and
              d("imapguard_backend_connect_duration_seconds_count") >= 2 and
              d("imapguard_relayed_bytes_total", direction="client_to_backend") > len(msg) and
              d("imapguard_relayed_bytes_total", direction="backend_to_client") > len(msg) and
              val(after, "imapguard_relay_sessions") == 0 and
              val(after, "imapguard_current_connections", listener="imaps") == 0)
        return after if ok else None
    after = igtest.wait_until(moved, 15, "the session's counters in /metrics")

    # Monotonic: no counter went backwards, and histograms agree with
    # themselves (+Inf bucket equals _count, buckets cumulative).
    types = {}
    for line in scrape_text(mig).splitlines():
        if line.startswith("# TYPE "):
            _, _, name, t = line.split()
            types[name] = t
    for (name, labels), v in before.items():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if types.get(name) == "counter" or types.get(base) == "histogram":
            assert val(after, name, **dict(labels)) >= v, (name, labels)
    for h in ("imapguard_login_duration_seconds", "imapguard_backend_connect_duration_seconds"):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in after.items()
                          if k[0] == h + "_bucket"))
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (h, buckets)
        assert buckets[-1][0] == float("inf") and buckets[-1][1] == val(after, h + "_count")
    promtool_check(scrape_text(mig))


def test_bad_requests_get_4xx(mig):
    addr = admin_addr(mig)
    code, head, _ = http_raw(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 405 and "Allow: GET" in head
    assert http_raw(addr, b"HEAD /healthz HTTP/1.0\r\n\r\n")[0] == 405
    assert http_raw(addr, b"GET /nope HTTP/1.1\r\n\r\n")[0] == 404
    assert http_raw(addr, b"GET /metrics/ HTTP/1.1\r\n\r\n")[0] == 404
    assert http_raw(addr, b"\x00\x01\x02\xff garbage\r\n\r\n")[0] == 400
    assert http_raw(addr, b"GET http://x/metrics HTTP/1.1\r\n\r\n")[0] == 400
    assert http_raw(addr, b"GET /metrics HTTP/1.1\r\n bad fold\r\n\r\n")[0] == 400
    assert http_raw(addr, b"GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n")[0] == 400
    assert http_raw(addr, b"GET /metrics HTTP/1.1\rX\r\n\r\n")[0] == 400
    assert http_raw(addr, b"GET /metrics HTTP/2.0\r\n\r\n")[0] == 505
    assert http_raw(addr, b"GET /metrics\r\n\r\n")[0] == 400  # HTTP/0.9
    many = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n"
    assert http_raw(addr, many)[0] == 431
    # A half-open request that ends early is closed without an answer
    # (nothing to answer); the server keeps serving.
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(b"GET /metr")
    assert get(mig, "/healthz")[0] == 200


def test_oversized_request_refused(mig):
    addr = admin_addr(mig)
    big = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    code, _, body = http_raw(addr, big)
    assert code == 413, (code, body)
    # Far more than the buffer: the answer still arrives whole (the rest is
    # drained, not answered with a reset).
    huge = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    assert http_raw(addr, huge)[0] == 413
    long_target = b"GET /" + b"m" * 9000 + b" HTTP/1.1\r\n\r\n"
    assert http_raw(addr, long_target)[0] == 413
    assert get(mig, "/healthz")[0] == 200


def test_silent_client_gets_408(mig):
    t0 = time.monotonic()
    code, _, _ = http_raw(admin_addr(mig), b"GET /metrics HTTP/1.1\r\n", timeout=30)
    assert code == 408
    assert time.monotonic() - t0 < 25
    assert "status=408" in mig.log_text()


def test_readyz_follows_the_backend(request, imapguard, devcerts):
    """The periodic probe (admin.probe_interval) makes /readyz 503 while
    Dovecot is down, and 200 again once it is back; /healthz stays 200."""
    dv = conftest._dovecot(request)  # our own: this test stops it
    try:
        ig = imapguard(admin_config(igtest.base_config(devcerts, dv.address)))
        igtest.wait_until(lambda: get(ig, "/readyz")[0] == 200, 15, "/readyz 200")
        assert val(scrape(ig), "imapguard_backend_up") == 1
        dv.stop()
        igtest.wait_until(lambda: get(ig, "/readyz")[0] == 503, 15, "/readyz 503")
        code, _, body = get(ig, "/readyz")
        assert code == 503 and b"backend" in body and body.endswith(b"\n")
        assert body.count(b"\n") == 1, body
        assert get(ig, "/healthz")[0] == 200
        assert val(scrape(ig), "imapguard_backend_up") == 0
        dv.start()
        igtest.wait_until(lambda: get(ig, "/readyz")[0] == 200, 15, "/readyz 200 again")
        assert get(ig, "/readyz")[2] == b"ok\n"
    finally:
        dv.stop()


def test_readyz_closed_backend_port(imapguard, devcerts):
    ig = imapguard(admin_config(igtest.base_config(
        devcerts, "127.0.0.1:%d" % igtest.free_port())))
    code, _, body = get(ig, "/readyz")
    assert code == 503 and b"backend probe failed" in body, body


def _short_cert(d, days):
    """A self-signed localhost certificate valid for `days` days."""
    cert, key = os.path.join(d, "short.pem"), os.path.join(d, "short.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", str(days), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, timeout=60, capture_output=True)
    return cert, key


def test_readyz_expiring_certificate(imapguard, devcerts, dovecot, tmp_path):
    """A certificate that ends within ready_cert_days makes /readyz 503,
    naming it; a smaller window (reloaded) makes it ready."""
    cert, key = _short_cert(str(tmp_path), 3)
    cfg = admin_config(igtest.base_config(devcerts, dovecot.address), days=7)
    cfg["tls"]["certificates"] = [{"cert": cert, "key": key}]
    ig = imapguard(cfg)
    igtest.wait_until(lambda: get(ig, "/readyz")[0] == 503 and
                      b"expires" in get(ig, "/readyz")[2], 15, "/readyz 503 for the cert")
    code, _, body = get(ig, "/readyz")
    assert cert.encode() in body, body
    s = scrape(ig)
    exp = val(s, "imapguard_tls_certificate_expiry_timestamp_seconds", certificate=cert)
    assert 2 * 86400 < exp - time.time() <= 3 * 86400 + 60, exp
    before = val(s, "imapguard_reloads_total", result="success")
    cfg = copy.deepcopy(ig.config)  # with the listeners' ports
    cfg["admin"]["ready_cert_days"] = 1
    ig.reload(cfg)
    igtest.wait_until(lambda: get(ig, "/readyz")[0] == 200, 15, "/readyz 200 after reload")
    assert val(scrape(ig), "imapguard_reloads_total", result="success") == before + 1
    # A refused reload counts as a failure, and changes nothing.
    bad = copy.deepcopy(cfg)
    bad["admin"]["ready_cert_days"] = 99999
    ig.reload(bad, what="event=reload-failed")
    s = scrape(ig)
    assert val(s, "imapguard_reloads_total", result="failure") == 1
    assert val(s, "imapguard_reloads_total", result="success") == before + 1
    assert get(ig, "/readyz")[0] == 200


def test_admin_listen_in_use_fails_start(imapguard, devcerts, dovecot):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        cfg = igtest.base_config(devcerts, dovecot.address)
        cfg["admin"] = {"listen": "127.0.0.1:%d" % blocker.getsockname()[1]}
        with pytest.raises(RuntimeError, match="admin-listen"):
            imapguard(cfg)


def _login(ig, ca, source, user, pw):
    c = igtest.tls_client(ig, ca, source)
    try:
        return c.cmd("a", "LOGIN %s %s" % (user, pw))[1]
    finally:
        c.close()


def test_ratelimit_metrics(imapguard, devcerts, dovecot, ca):
    """With the limiter on: failures cost tarpit time, an address block
    shows in imapguard_ratelimit_blocks and its refusals count as
    ratelimit; a spraying block counts as spray."""
    cfg = admin_config(igtest.base_config(devcerts, dovecot.address))
    cfg["ratelimit"] = {"tarpit": {"base": "50ms", "max": "200ms"},
                        "max_connection_failures": 100,
                        "address": {"threshold": 3}, "user": {"threshold": 0},
                        "user_address": {"threshold": 0},
                        "spray_address": {"threshold": 2}}
    ig = imapguard(cfg)
    s0 = scrape(ig)
    assert val(s0, "imapguard_ratelimit_blocks", limit="address") == 0
    for i in range(3):
        assert resp_code(_login(ig, ca, "127.0.0.6", ALICE, "wrong-%d" % i)) == \
            "AUTHENTICATIONFAILED"
    tagged = _login(ig, ca, "127.0.0.6", ALICE, ALICE_PW)
    assert resp_code(tagged) == "UNAVAILABLE", tagged
    # Two distinct users from another address: the spraying limit.
    for i in range(2):
        _login(ig, ca, "127.0.0.7", "victim%d@example.com" % i, "pw-%d" % i)
    tagged = _login(ig, ca, "127.0.0.7", "victim9@example.com", "pw-9")
    assert resp_code(tagged) == "UNAVAILABLE", tagged

    def moved():
        s = scrape(ig)
        d = lambda name, **lb: val(s, name, **lb) - val(s0, name, **lb)
        return (val(s, "imapguard_ratelimit_blocks", limit="address") >= 1 and
                val(s, "imapguard_ratelimit_blocks", limit="spray-address") >= 1 and
                d("imapguard_login_refusals_total", reason="ratelimit") >= 1 and
                d("imapguard_login_refusals_total", reason="spray") >= 1 and
                d("imapguard_tarpit_seconds_total") >= 0.05 and
                d("imapguard_login_attempts_total", mechanism="LOGIN-command",
                  result="fail") >= 5)
    igtest.wait_until(moved, 15, "rate-limit metrics")
    promtool_check(scrape_text(ig))


def test_connection_cap(mig):
    """More than 32 connections at once: the extra ones are closed at once,
    the first ones still get their answer, and once they are gone the
    endpoint serves again."""
    addr = admin_addr(mig)
    held = [socket.create_connection(addr, timeout=10) for _ in range(32)]
    try:
        extra = socket.create_connection(addr, timeout=10)
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        except OSError:
            pass
        try:
            got = extra.recv(100)
        except (ConnectionResetError, OSError):
            got = b""
        extra.close()
        assert got == b"", got
        held[0].sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert held[0].recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in held:
            s.close()
    def healthz_ok():
        # Until the endpoint has seen the held connections close, a new
        # one may still be over the cap: closed without an answer.
        try:
            return get(mig, "/healthz")[0] == 200
        except AssertionError:
            return False
    igtest.wait_until(healthz_ok, 15, "/healthz after the cap")
    assert "reason=too-many-connections" in mig.log_text()


def test_policy_refusals_by_reason(imapguard, devcerts, dovecot, ca):
    """deny, allow_from and a blocked LOGIN command or mechanism each count
    under their own reason, and as refused attempts of their mechanism."""
    cfg = admin_config(igtest.base_config(devcerts, dovecot.address))
    cfg["policy"] = {
        "networks": {"office": ["10.20.0.0/16"]},
        "defaults": {"require_tls": True},
        "groups": {"tokens": {"users": ["bob@example.com"],
                              "mechanisms": ["XOAUTH2"], "login_command": False}},
        "users": {"user11": {"deny": True}, "user12": {"allow_from": ["office"]}},
    }
    ig = imapguard(cfg)
    s0 = scrape(ig)
    c = igtest.tls_client(ig, ca)
    try:
        assert resp_code(c.cmd("a", "LOGIN user11 pass11")[1]) == "CONTACTADMIN"
        assert resp_code(c.cmd("b", "LOGIN user12 pass12")[1]) == "AUTHENTICATIONFAILED"
        assert resp_code(c.cmd("c", "LOGIN bob@example.com bob-secret")[1]) == "CONTACTADMIN"
        ir = igtest.plain_ir("bob@example.com", "bob-secret")
        assert status(c.cmd("d", "AUTHENTICATE PLAIN " + ir)[1]) == "NO"
    finally:
        c.close()

    def moved():
        s = scrape(ig)
        d = lambda name, **lb: val(s, name, **lb) - val(s0, name, **lb)
        return (d("imapguard_login_refusals_total", reason="deny") == 1 and
                d("imapguard_login_refusals_total", reason="allow_from") == 1 and
                d("imapguard_login_refusals_total", reason="mechanism") == 2 and
                d("imapguard_login_attempts_total", mechanism="LOGIN-command",
                  result="refused") == 3 and
                d("imapguard_login_attempts_total", mechanism="PLAIN",
                  result="refused") == 1 and
                d("imapguard_login_duration_seconds_count") == 0)
    igtest.wait_until(moved, 15, "policy refusals in /metrics")
