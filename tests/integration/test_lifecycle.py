"""Lifecycle against the real Dovecot: the drain on SIGTERM (no new
connection, sessions before login told "* BYE [UNAVAILABLE]" at once,
logged-in sessions going on until limits.drain_timeout and then told the
same between two of the backend's responses), a drain that ends early when
the last session logs out, a second SIGTERM that ends it at once, and a
renewed certificate served after SIGHUP without a restart."""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status

BYE = b"* BYE [UNAVAILABLE] Server shutting down\r\n"


def login(ig, ca):
    c = igtest.tls_client(ig, ca)
    assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    return c


def drain_started(ig):
    igtest.wait_until(lambda: " event=drain-start " in ig.log_text(), igtest.IO_TIMEOUT,
                      "event=drain-start")


def refused(ig, name):
    try:
        with socket.create_connection(ig.addr(name), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_drain(imapguard, devcerts, dovecot, ca):
    """SIGTERM: at once, new connections are refused and the session before
    login is told "* BYE"; the logged-in ones (one idle, one in IDLE) go on
    (a NOOP is answered) until drain_timeout, then get the BYE; exit 0."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["drain_timeout"] = "3s"
    ig = imapguard(cfg)
    a = login(ig, ca)
    b = login(ig, ca)
    b.send("i IDLE\r\n")
    assert b.readline().startswith(b"+")
    pre = igtest.plain_client(ig)
    t0 = time.monotonic()
    ig.proc.send_signal(signal.SIGTERM)
    drain_started(ig)
    assert refused(ig, "imaps") and refused(ig, "imap")
    assert pre.expect_closed() == BYE
    # Still relaying, well before the drain's end.
    assert status(a.cmd("n", "NOOP")[1]) == "OK"
    assert time.monotonic() - t0 < 2.5, "the NOOP came too late to prove anything"
    for c in (a, b):
        got = c.expect_closed(timeout=igtest.IO_TIMEOUT)
        assert got.endswith(BYE), got
    waited = time.monotonic() - t0
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0
    assert waited >= 2.9, "the sessions ended after %.1fs, before drain_timeout" % waited
    ig.stop()
    log = ig.log_text()
    assert log.count(" event=accept-stopped ") == 1, log[-3000:]
    assert re.search(r"event=drain-start reason=SIGTERM sessions=3 ended_now=1 "
                     r"drain_timeout_ms=3000", log), log[-3000:]
    assert re.search(r"event=drain-end reason=timeout sessions_left=2 ", log), log[-3000:]
    assert log.count("event=close reason=shutdown state=RELAY") == 2, log[-3000:]


def test_logout_during_drain_ends_it_early(imapguard, devcerts, dovecot, ca):
    """The last session logs out during a 30 s drain: the process exits
    then, without waiting for drain_timeout."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["drain_timeout"] = "30s"
    ig = imapguard(cfg)
    a = login(ig, ca)
    t0 = time.monotonic()
    ig.proc.send_signal(signal.SIGTERM)
    drain_started(ig)
    untagged, tagged = a.cmd("z", "LOGOUT")
    assert status(tagged) == "OK" and untagged[0].startswith(b"* BYE"), (untagged, tagged)
    a.close()
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0
    assert time.monotonic() - t0 < 10
    ig.stop()
    assert re.search(r"event=drain-end reason=all-ended sessions_left=0 ", ig.log_text())


def test_second_sigterm_ends_the_drain_at_once(imapguard, devcerts, dovecot, ca):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["drain_timeout"] = "30s"
    ig = imapguard(cfg)
    a = login(ig, ca)
    ig.proc.send_signal(signal.SIGTERM)
    drain_started(ig)
    assert status(a.cmd("n", "NOOP")[1]) == "OK"
    t0 = time.monotonic()
    ig.proc.send_signal(signal.SIGTERM)
    assert a.expect_closed(timeout=igtest.IO_TIMEOUT) == BYE
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0
    assert time.monotonic() - t0 < 5
    ig.stop()
    assert re.search(r"event=drain-end reason=second-signal sessions_left=1 ", ig.log_text())


def test_no_drain_with_drain_timeout_0(imapguard, devcerts, dovecot, ca):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["drain_timeout"] = 0
    ig = imapguard(cfg)
    a = login(ig, ca)
    ig.proc.send_signal(signal.SIGTERM)
    assert a.expect_closed() == BYE
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0
    ig.stop()


def test_login_under_way_may_finish(imapguard, devcerts, dovecot, ca):
    """A login waiting for the backend when the drain begins is not cut
    short: it gets its answer (here the backend never greets: NO
    [UNAVAILABLE] after backend.connect_timeout), then the "* BYE", and the
    drain ends with it, well before drain_timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # never accepts: connections complete, nobody greets
    try:
        cfg = igtest.base_config(devcerts, dovecot.address)
        cfg["limits"]["drain_timeout"] = "20s"
        ig = imapguard(cfg)
        cfg = dict(ig.config)
        cfg["backend"] = dict(cfg["backend"], address="127.0.0.1:%d" % silent.getsockname()[1],
                              connect_timeout="2s")
        ig.reload(cfg)
        c = igtest.tls_client(ig, ca)
        n = ig.log_text().count("event=state from=PREAUTH to=BACKEND_CONNECT")
        c.send("a LOGIN %s %s\r\n" % (ALICE, ALICE_PW))
        igtest.wait_until(lambda: ig.log_text().count(
            "event=state from=PREAUTH to=BACKEND_CONNECT") > n, igtest.IO_TIMEOUT,
            "the login to reach the backend")
        t0 = time.monotonic()
        ig.proc.send_signal(signal.SIGTERM)
        drain_started(ig)
        assert re.search(r"event=drain-start reason=SIGTERM sessions=1 ended_now=0 ",
                         ig.log_text())
        got = c.expect_closed(timeout=igtest.IO_TIMEOUT)
        assert re.fullmatch(rb"a NO \[UNAVAILABLE\] [^\r\n]*\r\n" + re.escape(BYE), got), got
        assert ig.proc.wait(igtest.IO_TIMEOUT) == 0
        assert time.monotonic() - t0 < 10
        ig.stop()
        assert re.search(r"event=drain-end reason=all-ended ", ig.log_text())
    finally:
        silent.close()


def big_fetch_client(ig, ca, uid):
    """A TLS client with a small receive window, logged in, INBOX
    selected, that has asked for message uid and read the FETCH's first
    line: (socket, file, literal size)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    raw.settimeout(60)
    raw.connect(ig.addr("imaps"))
    s = igtest.client_context(ca).wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), ALICE_PW.encode()))
    assert f.readline().startswith(b"a OK")
    s.sendall(b"b SELECT INBOX\r\n")
    while not f.readline().startswith(b"b "):
        pass
    s.sendall(b"c UID FETCH %s (BODY.PEEK[])\r\n" % uid.encode())
    head = f.readline()
    m = re.search(rb"\{(\d+)\}\r\n$", head)
    assert m, head
    return s, f, int(m.group(1))


def append(ig, ca, msg):
    c = login(ig, ca)
    c.send(b"p APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    _, tagged = c.read_until_tagged("p")
    c.close()
    m = re.search(r"\[APPENDUID \d+ (\d+)\]", tagged)
    assert m, tagged
    return m.group(1)


def rest(f):
    """Everything until the connection ends."""
    out = b""
    try:
        while True:
            chunk = f.read1(1 << 20)
            if not chunk:
                return out
            out += chunk
    except (ConnectionResetError, ssl.SSLError):
        return out


@pytest.fixture
def ig_big(imapguard, devcerts, dovecot, ca):
    """imapguard with drain_timeout 0 and an 8 MB message in INBOX."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["drain_timeout"] = 0
    ig = imapguard(cfg)
    msg = igtest.make_message(8 * 1024 * 1024, subject="drain")
    return ig, msg, append(ig, ca, msg)


def test_bye_waits_for_the_end_of_a_response(ig_big, ca):
    """The stop comes while a large FETCH is on its way to a client that
    has stopped reading: no "* BYE" inside the literal; once the client
    reads again the whole body arrives, then the BYE."""
    ig, msg, uid = ig_big
    s, f, size = big_fetch_client(ig, ca, uid)
    try:
        assert size == len(msg)
        ig.proc.send_signal(signal.SIGTERM)
        igtest.wait_until(lambda: " event=drain-end " in ig.log_text(), igtest.IO_TIMEOUT,
                          "event=drain-end")
        body = f.read(size)
        assert hashlib.sha256(body).digest() == hashlib.sha256(msg).digest()
        tail = rest(f)
    finally:
        s.close()
    assert tail.endswith(b")\r\n" + BYE) or tail.endswith(b"c OK Fetch completed.\r\n" + BYE) \
        or re.search(rb"\r\nc OK [^\r\n]*\r\n" + re.escape(BYE) + b"$", tail), tail[-300:]
    assert tail.count(b"* BYE") == 1, tail[-300:]
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0


def test_no_bye_into_a_response_cut_short(ig_big, ca):
    """The same client never reads again: after IG_RELAY_END_MS (5 s) the
    connection closes without the BYE, which could only land inside the
    literal."""
    ig, msg, uid = ig_big
    s, f, size = big_fetch_client(ig, ca, uid)
    try:
        ig.proc.send_signal(signal.SIGTERM)
        igtest.wait_until(lambda: "event=bye-skipped reason=mid-response" in ig.log_text(),
                          15, "event=bye-skipped")
        data = rest(f)
    finally:
        s.close()
    assert len(data) < size
    assert data == msg[:len(data)], "the bytes received are not the body's first ones"
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0


def test_renewed_certificate_served_after_sighup(imapguard, devcerts, dovecot, ca, tmp_path):
    """Same paths, new files (as certbot renews): after SIGHUP new
    connections get the new certificate; the running process stays."""
    d = tmp_path / "tls"
    d.mkdir()
    cert, key = str(d / "mail.pem"), str(d / "mail.key")
    shutil.copy(os.path.join(devcerts, "server-ecdsa.pem"), cert)
    shutil.copy(os.path.join(devcerts, "server-ecdsa.key"), key)
    os.chmod(key, 0o600)
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["tls"]["certificates"] = [{"cert": cert, "key": key}]
    ig = imapguard(cfg)

    def served():
        c = igtest.tls_client(ig, ca)
        der = c.sock.getpeercert(binary_form=True)
        c.close()
        return hashlib.sha256(der).hexdigest()

    old = served()
    # A new key and certificate from the same CA, written as new files
    # renamed over the old ones.
    ca_key = os.path.join(devcerts, "ca.key")
    if not os.path.exists(ca_key):
        pytest.skip("the dev CA's key is not kept in %s" % devcerts)
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                   "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")

    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, timeout=60, cwd=str(d),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "new.key", "-out", "new.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "new.csr", "-CA", os.path.join(devcerts, "ca.pem"),
            "-CAkey", ca_key, "-CAcreateserial", "-CAserial", str(d / "ca.srl"),
            "-days", "30", "-extfile", str(ext), "-out", "new.pem")
    os.chmod(str(d / "new.key"), 0o600)
    os.rename(str(d / "new.key"), key)
    os.rename(str(d / "new.pem"), cert)
    assert served() == old, "the new certificate was served before the reload"
    pid = ig.pid
    ig.reload()
    new = served()
    assert new != old
    with open(cert, "rb") as fh:
        want = ssl.PEM_cert_to_DER_cert(fh.read().decode())
    assert new == hashlib.sha256(want).hexdigest()
    assert ig.proc.poll() is None and ig.pid == pid


# --------------------------------------------------------------------------
# Privilege: bind as root, then run as `user`.

root_only = pytest.mark.skipif(os.geteuid() != 0,
                               reason="needs root: the test starts imapguard as root to "
                                      "see it drop to another user")


@pytest.fixture
def priv_dir():
    """A short directory (Unix socket paths) owned by nobody:nogroup, for
    the limiter's state file and the admin socket."""
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="igpv-", dir="/tmp")
    os.chmod(d, 0o755)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


@root_only
def test_runs_as_user_after_binding(imapguard, devcerts, dovecot, ca, priv_dir):
    """user: nobody (group: its primary, nogroup): the running process has
    nobody's ids in all four slots, its supplementary groups only,
    NoNewPrivs and no capability; a full session works, the admin socket
    answers, and the limiter's state file is saved on exit (by rename in a
    directory nobody owns)."""
    import grp
    import pwd
    nobody = pwd.getpwnam("nobody")
    state = os.path.join(priv_dir, "rl.state")
    sock = os.path.join(priv_dir, "ctl.sock")
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["user"] = "nobody"
    cfg["ratelimit"] = {"enabled": True, "state_file": state}
    cfg["admin"] = {"socket": sock}
    ig = imapguard(cfg)
    st = proc_status(ig.pid)
    uid, gid = str(nobody.pw_uid), str(nobody.pw_gid)
    assert st["Uid"] == [uid] * 4, st["Uid"]
    assert st["Gid"] == [gid] * 4, st["Gid"]
    want_groups = sorted(str(g.gr_gid) for g in grp.getgrall() if "nobody" in g.gr_mem)
    want_groups = sorted(set(want_groups) | {gid})
    assert sorted(st["Groups"]) == want_groups, st["Groups"]
    assert st["NoNewPrivs"] == ["1"]
    assert st["CapEff"] == ["0000000000000000"] and st["CapPrm"] == ["0000000000000000"]
    assert re.search(r"event=privileges-dropped user=nobody uid=%s gid=%s " % (uid, gid),
                     ig.log_text())
    # Every thread too (the workers and libuv's pool start after the drop).
    for tid in os.listdir("/proc/%d/task" % ig.pid):
        with open("/proc/%d/task/%s/status" % (ig.pid, tid)) as f:
            assert "Uid:\t%s\t%s\t%s\t%s\n" % ((uid,) * 4) in f.read(), tid

    c = igtest.tls_client(ig, ca)
    assert status(c.cmd("a", "LOGIN %s wrong" % ALICE)[1]) == "NO"  # the limiter changes
    assert status(c.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    assert status(c.cmd("c", "SELECT INBOX")[1]) == "OK"
    untagged, tagged = c.cmd("d", "LOGOUT")
    assert status(tagged) == "OK"
    c.close()
    r = subprocess.run([ig.binary, "ctl", "-s", sock, "stats"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert ig.stop() == 0
    log = ig.log_text()
    assert "event=ratelimit-state-saved" in log and "trigger=shutdown" in log, log[-3000:]
    assert os.stat(state).st_uid == nobody.pw_uid


def write_config(tmp_path, cfg):
    """cfg written to tmp_path/ig.yaml, listeners on free ports."""
    for lst in cfg["listeners"]:
        lst["listen"] = "127.0.0.1:%d" % igtest.free_port()
    path = str(tmp_path / "ig.yaml")
    with open(path, "w") as f:
        f.write(igtest.to_yaml(cfg) + "\n")
    return path


@root_only
def test_state_directory_not_writable_by_user_fails_the_start(imapguard_bin, devcerts,
                                                              dovecot, tmp_path):
    """The state is saved by rename in its directory: one the user cannot
    write fails the start with a message saying so (not a save failing
    later)."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["user"] = "nobody"
    cfg["ratelimit"] = {"enabled": True, "state_file": str(tmp_path / "rl.state")}
    path = write_config(tmp_path, cfg)
    r = subprocess.run([imapguard_bin, "-c", path], capture_output=True, text=True,
                       timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "event=start-failed reason=state-file-directory" in out, out
    assert "make it writable by nobody" in out, out
    assert "event=ready" not in out


@root_only
def test_root_without_user_is_refused(imapguard_bin, devcerts, dovecot, tmp_path):
    path = write_config(tmp_path, igtest.base_config(devcerts, dovecot.address))
    r = subprocess.run([imapguard_bin, "-c", path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert ("imapguard: refusing to run as root: set 'user' in %s" % path) in r.stderr
    assert "--allow-root" in r.stderr
    assert "event=start" not in r.stdout + r.stderr  # nothing started


@pytest.mark.parametrize("extra,want", [
    ("user: no-such-user-igt\n",
     "%s:%d:7: cannot use 'no-such-user-igt' for 'user': no such user"),
    ("user: nobody\ngroup: no-such-group-igt\n",
     "%s:%d:8: cannot use 'no-such-group-igt' for 'group': no such group"),
    ("user: root\n",
     "%s:%d:7: 'user' cannot be root (uid 0)"),
    ("group: nogroup\n",
     "%s:%d:8: 'group' needs 'user'"),
], ids=["unknown-user", "unknown-group", "root", "group-alone"])
def test_check_reports_user_and_group(imapguard_bin, devcerts, dovecot, tmp_path, extra, want):
    cfg = igtest.base_config(devcerts, dovecot.address)
    text = igtest.to_yaml(cfg) + "\n"
    line = text.count("\n") + 1 + extra.count("\n") - 1  # the last line of extra
    path = str(tmp_path / "ig.yaml")
    with open(path, "w") as f:
        f.write(text + extra)
    r = subprocess.run([imapguard_bin, "-t", "-c", path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (want % (path, line)) in r.stderr, r.stderr
