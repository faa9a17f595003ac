"""App passwords checked at the proxy (issue 17), end to end: the real
binary in front of a real Dovecot with a master passdb, passwords issued
and revoked with the real `imapguard apppass` while the proxy runs.

Shown here, with imaplib, curl, fetchmail and raw IMAP:
- an app password logs in (LOGIN, AUTHENTICATE PLAIN with and without
  SASL-IR, AUTHENTICATE LOGIN) and the backend sees the master login, never
  the app password; the use is recorded (list shows time and address);
- the account password is refused (credentials: app_passwords), a wrong
  secret, an unknown id, an expired password, one from outside its --from
  networks: the same tagged NO [AUTHENTICATIONFAILED], logged with a reason;
- `revoke` ends a live IDLE session within seconds with
  "* BYE [UNAVAILABLE]", leaves the user's other sessions alone, and the
  password cannot come back by reconnecting; `revoke --all` ends them all;
- `both` takes either credential and logs which;
- the store is seen without a reload: created after the start, and a
  corrupt store keeps the last good snapshot in force;
- the metrics count all of it.
"""

import imaplib
import os
import re
import sqlite3
import ssl
import subprocess
import time
import urllib.request

import pytest

import igtest
import test_master_login
from igtest import ALICE, ALICE_PW, MASTER_USER, b64, resp_code, status
from test_apppass_cli import run

SECRET = igtest.MASTER_PW  # what Dovecot's master passdb has
PW_RE = re.compile(r"^([2-9a-km-np-z]{5}) ([2-9a-km-np-z]{5}(?:-[2-9a-km-np-z]{5}){4})$")


def write_secret(path):
    test_master_login.write_secret(path, SECRET + "\n")


class Setup:
    """imapguard with app passwords for ALICE (app_passwords) and user12
    (both), everybody else on account passwords."""

    def __init__(self, imapguard_bin, ig, store):
        self.bin, self.ig, self.store = imapguard_bin, ig, store

    def apppass(self, *args):
        return run([self.bin, "apppass", "-c", self.ig.config_path] + list(args))

    def add(self, user=ALICE, *extra):
        """Issues one; returns (id, password) once the proxy has loaded it."""
        r = self.apppass("add", user, "--label", "test device", "--quiet", *extra)
        assert r.returncode == 0, r.stdout + r.stderr
        m = PW_RE.match(r.stdout.strip())
        assert m, r.stdout
        self.wait_log("event=apppass-issued id=%s " % m.group(1))
        return m.group(1), m.group(2)

    def wait_log(self, needle, count=1):
        igtest.wait_until(lambda: self.ig.log_text().count(needle) >= count, igtest.IO_TIMEOUT,
                          "%r in imapguard's log" % needle)


def config(devcerts, backend, tmp_path, admin=False):
    secret = tmp_path / "master.secret"
    write_secret(secret)
    cfg = igtest.base_config(devcerts, backend)
    cfg["backend"]["master_login"] = {"user": MASTER_USER, "password_file": str(secret)}
    store = tmp_path / "lib" / "app-passwords.db"
    store.parent.mkdir(exist_ok=True)
    cfg["app_passwords"] = {"store": str(store)}
    cfg["policy"]["groups"] = {
        "mfa": {"users": [ALICE], "credentials": "app_passwords"},
        "migrating": {"users": ["user12"], "credentials": "both"},
    }
    if admin:
        cfg["admin"] = {"listen": "127.0.0.1:%d" % igtest.free_port()}
    return cfg, store


@pytest.fixture
def setup(imapguard, imapguard_bin, devcerts, dovecot_master, tmp_path):
    cfg, store = config(devcerts, dovecot_master.address, tmp_path)
    ig = imapguard(cfg)
    return Setup(imapguard_bin, ig, store)


@pytest.fixture(params=["separator", "authzid"])
def setup_style(request, imapguard, imapguard_bin, devcerts, dovecot_master, tmp_path):
    """setup, with each style of master login."""
    cfg, store = config(devcerts, dovecot_master.address, tmp_path)
    cfg["backend"]["master_login"]["style"] = request.param
    ig = imapguard(cfg)
    return Setup(imapguard_bin, ig, store)


def master_logins(dovecot, user=ALICE):
    return dovecot.log_text().count("Master user logging in as %s" % user)


def imaps(ig, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    host, port = ig.addr("imaps")
    return imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=igtest.IO_TIMEOUT)


def bye(m):
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def raw_login(ig, ca, user, password, how="login", source=None):
    """Logs in on a new TLS connection; returns (client, tagged line)."""
    c = igtest.tls_client(ig, ca, source=source)
    if how == "login":
        _, tagged = c.cmd("a", 'LOGIN "%s" "%s"' % (user, password))
    elif how == "plain-ir":
        _, tagged = c.cmd("a", "AUTHENTICATE PLAIN %s" % b64("\0%s\0%s" % (user, password)))
    elif how == "plain":
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.readline().startswith(b"+")
        c.send(b64("\0%s\0%s" % (user, password)) + "\r\n")
        _, tagged = c.read_until_tagged("a")
    else:
        c.send("a AUTHENTICATE LOGIN\r\n")
        assert c.readline().startswith(b"+")
        c.send(b64(user) + "\r\n")
        assert c.readline().startswith(b"+")
        c.send(b64(password) + "\r\n")
        _, tagged = c.read_until_tagged("a")
    if isinstance(tagged, bytes):
        tagged = tagged.decode()
    return c, tagged


def assert_refused(ig, ca, user, password, reason, how="login", source=None):
    before = ig.log_text().count("reason=%s" % reason)
    c, tagged = raw_login(ig, ca, user, password, how, source)
    try:
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED", tagged
        assert "Authentication failed." in tagged
    finally:
        c.close()
    assert ig.log_text().count("reason=%s" % reason) == before + 1, ig.log_text()[-3000:]


# ---- logging in -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["login", "plain-ir", "plain", "auth-login"])
def test_an_app_password_logs_in_as_the_master_user(setup_style, dovecot_master, ca, how):
    setup = setup_style
    pid, pw = setup.add()
    before = master_logins(dovecot_master)
    c, tagged = raw_login(setup.ig, ca, ALICE, pw, how)
    try:
        assert status(tagged) == "OK", tagged
        _, tagged = c.cmd("b", "SELECT INBOX")
        assert status(tagged) == "OK", tagged
    finally:
        c.close()
    assert master_logins(dovecot_master) == before + 1
    log = setup.ig.log_text()
    assert "event=login-credential credential=app-password apppass_id=%s" % pid in log
    assert pw not in log and pw.replace("-", "") not in log
    assert SECRET not in log
    # Dovecot never saw the app password: its auth log has the master login
    # for alice and nothing with the password.
    assert pw not in dovecot_master.log_text()


def test_imaplib_and_curl_log_in_and_the_use_is_recorded(setup, dovecot_master, ca):
    pid, pw = setup.add()
    m = imaps(setup.ig, ca)
    try:
        typ, _ = m.login(ALICE, pw)
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK", data
    finally:
        bye(m)
    # curl picks CRAM-MD5 when offered (user12 is on account passwords, so
    # it is): told to use PLAIN, as a user of app passwords must be.
    r = curl(setup.ig, ca, ALICE, pw, "--login-options", "AUTH=PLAIN")
    assert r.returncode == 0, r.stderr
    assert "INBOX" in r.stdout
    # curl with the account password: refused (curl's exit 67: login denied).
    r = curl(setup.ig, ca, ALICE, ALICE_PW, "--login-options", "AUTH=PLAIN")
    assert r.returncode == 67, (r.returncode, r.stderr)

    def used():
        out = setup.apppass("list", ALICE).stdout
        row = [line for line in out.splitlines() if line.startswith(pid + " ")]
        return row and "127.0.0.1" in row[0].split()[5]
    igtest.wait_until(used, igtest.IO_TIMEOUT, "the use in `apppass list`")


def curl(ig, ca, user, password, *extra):
    host, port = ig.addr("imaps")
    return subprocess.run(["curl", "-sS", "--cacert", ca, "--max-time", "20",
                           "imaps://localhost:%d/" % port, "--resolve",
                           "localhost:%d:%s" % (port, host), "-u", "%s:%s" % (user, password)]
                          + list(extra), capture_output=True, text=True, timeout=30)


def test_everybody_on_app_passwords_hides_challenge_response(
        imapguard, imapguard_bin, devcerts, dovecot_master, ca, tmp_path):
    """With credentials: app_passwords for everybody, CRAM-MD5 and SCRAM
    (which only the account password can answer) are not offered, so curl's
    default choice works."""
    cfg, store = config(devcerts, dovecot_master.address, tmp_path)
    cfg["policy"]["defaults"]["credentials"] = "app_passwords"
    cfg["policy"]["groups"] = {}
    ig = imapguard(cfg)
    s = Setup(imapguard_bin, ig, store)
    _, pw = s.add()
    c = igtest.tls_client(ig, ca)
    try:
        responses, tagged = c.cmd("c", "CAPABILITY")
        caps = igtest.capabilities(responses)
    finally:
        c.close()
    assert "AUTH=PLAIN" in caps and "AUTH=LOGIN" in caps, caps
    assert not [x for x in caps if x.startswith(("AUTH=CRAM", "AUTH=SCRAM"))], caps
    r = curl(ig, ca, ALICE, pw)
    assert r.returncode == 0, r.stderr
    assert "INBOX" in r.stdout
    assert "event=login-credential credential=app-password" in ig.log_text()


def test_fetchmail_fetches_with_an_app_password(setup, dovecot_master, ca, tmp_path):
    """fetchmail with `auth password` (fetchmail's own preference is CRAM-MD5,
    which no app password can answer: see docs/APP_PASSWORDS.md)."""
    m = imaplib.IMAP4(dovecot_master.host, dovecot_master.port, timeout=igtest.IO_TIMEOUT)
    try:
        m.login(ALICE, ALICE_PW)
        assert m.append("INBOX", None, None, igtest.make_message(500, "fetched-by-app-pw"))[0] \
            == "OK"
    finally:
        bye(m)
    _, pw = setup.add()
    home = tmp_path / "home"
    home.mkdir()
    rc = home / "fetchmailrc"
    port = setup.ig.addr("imaps")[1]
    rc.write_text("""\
set no syslog
poll 127.0.0.1 service {port} protocol IMAP auth password timeout 20
  user "{user}" there with password "{pw}" is "x" here
  ssl sslcertck sslcertfile {ca} sslcommonname localhost
  keep fetchall
  mda "/bin/sh -c 'cat >> {home}/out.mbox'"
""".format(port=port, user=ALICE, pw=pw, ca=ca, home=home))
    os.chmod(str(rc), 0o600)
    r = subprocess.run(["fetchmail", "-f", str(rc), "-v", "-N", "--nosyslog",
                        "--pidfile", str(home / "fm.pid"), "-i", str(home / "fm.ids")],
                       capture_output=True, text=True, timeout=60, cwd=str(home),
                       env={"HOME": str(home), "FETCHMAILHOME": str(home),
                            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fetched-by-app-pw" in (home / "out.mbox").read_text()


# ---- refusals ---------------------------------------------------------------------------

def test_refusals_look_like_a_wrong_password(setup, dovecot_master, ca):
    pid, pw = setup.add()
    seen = igtest.imap_login_count(dovecot_master)
    ig = setup.ig
    # The account password.
    assert_refused(ig, ca, ALICE, ALICE_PW, "app-password-required")
    assert_refused(ig, ca, ALICE, ALICE_PW, "app-password-required", how="plain-ir")
    # The right id with a wrong secret, and an id nobody has.
    wrong = pid + "-" + "2" * 5 + "-" + "3" * 5 + "-" + "4" * 5 + "-" + "5" * 5
    assert_refused(ig, ca, ALICE, wrong, "app-password-wrong", how="auth-login")
    assert_refused(ig, ca, ALICE, "zzzzz-" + pw.split("-", 1)[1], "app-password-unknown")
    # Another user's app password.
    _, other = setup.add("user12")
    assert_refused(ig, ca, ALICE, other, "app-password-unknown")
    # An app password typed into the user field is not logged.
    c, tagged = raw_login(ig, ca, pw, ALICE)
    c.close()
    assert status(tagged) == "NO"
    log = ig.log_text()
    assert pw not in log and pw.replace("-", "") not in log
    assert other not in log
    # None of them reached the backend (the barrier: a real login does).
    c, tagged = raw_login(ig, ca, ALICE, pw)
    c.close()
    assert status(tagged) == "OK", tagged
    assert igtest.imap_login_count(dovecot_master) == seen + 1


def test_an_expired_app_password_is_refused(setup, ca):
    pid, pw = setup.add()
    pid2, pw2 = setup.add()
    # Its expiry moved into the past, as time would (the store's own
    # triggers count the change: the proxy reloads within a second).
    now = int(time.time())
    loaded = setup.ig.log_text().count("event=apppass-store-loaded")
    with sqlite3.connect(str(setup.store)) as db:
        db.execute("UPDATE app_passwords SET created = ?, expires = ? WHERE id = ?",
                   (now - 100, now - 10, pid))
    setup.wait_log("event=apppass-store-loaded", loaded + 1)
    assert_refused(setup.ig, ca, ALICE, pw, "app-password-expired")
    assert "apppass_id=%s" % pid in setup.ig.log_text()
    c, tagged = raw_login(setup.ig, ca, ALICE, pw2)
    c.close()
    assert status(tagged) == "OK", tagged


def test_from_restricts_by_network(setup, dovecot_master, ca):
    _, pw = setup.add(ALICE, "--from", "127.0.0.2/32")
    assert_refused(setup.ig, ca, ALICE, pw, "app-password-network", source="127.0.0.1")
    assert_refused(setup.ig, ca, ALICE, pw, "app-password-network", source="127.0.0.3")
    c, tagged = raw_login(setup.ig, ca, ALICE, pw, source="127.0.0.2")
    c.close()
    assert status(tagged) == "OK", tagged
    # The client's address reached Dovecot (ID from a trusted network).
    igtest.wait_until(lambda: re.search(r"Login: user=<%s>.*rip=127\.0\.0\.2" % re.escape(ALICE),
                                        dovecot_master.log_text()), igtest.IO_TIMEOUT,
                      "alice's login from 127.0.0.2 in Dovecot's log")


def test_both_takes_either_credential_and_says_which(setup, ca):
    pid, pw = setup.add("user12")
    for secret, cred in ((pw, "credential=app-password apppass_id=%s" % pid),
                         (igtest.USERS["user12"], "credential=password")):
        c, tagged = raw_login(setup.ig, ca, "user12", secret)
        c.close()
        assert status(tagged) == "OK", tagged
        assert "event=login-credential " + cred in setup.ig.log_text()
    # A wrong app password under `both` is an app password refused, not an
    # account password sent to the backend.
    assert_refused(setup.ig, ca, "user12", pid + "-22222-33333-44444-55555",
                   "app-password-wrong")


# ---- revocation -------------------------------------------------------------------------

def idle(ig, ca, password, user=ALICE):
    c, tagged = raw_login(ig, ca, user, password)
    assert status(tagged) == "OK", tagged
    _, tagged = c.cmd("s", "SELECT INBOX")
    assert status(tagged) == "OK", tagged
    c.send("i IDLE\r\n")
    assert c.readline().startswith(b"+ "), "no IDLE continuation"
    return c


def expect_bye(c):
    """The session ends with "* BYE [UNAVAILABLE] ...", then the connection
    closes. Before it, the backend's untagged responses may still come:
    Dovecot says "* OK Still here" every 2 s of IDLE (the private
    Dovecot's imap_idle_notify_interval), which can beat the revocation on
    a busy machine (the store is polled every 500 ms)."""
    while True:
        line = c.readline()
        if not line.startswith(b"* OK Still here"):
            break
    assert line.startswith(b"* BYE [UNAVAILABLE]"), line
    c.expect_closed()
    return line


def still_alive(c):
    c.send("DONE\r\n")
    _, tagged = c.read_until_tagged("i")
    assert status(tagged) == "OK", tagged
    _, tagged = c.cmd("n", "NOOP")
    assert status(tagged) == "OK", tagged


def test_revoke_ends_a_live_idle_session_and_it_cannot_come_back(setup, ca):
    pid, pw = setup.add()
    _, pw2 = setup.add()
    doomed = idle(setup.ig, ca, pw)
    other = idle(setup.ig, ca, pw2)
    try:
        t0 = time.monotonic()
        r = setup.apppass("revoke", pid)
        assert r.returncode == 0, r.stderr
        line = expect_bye(doomed)
        assert b"App password revoked" in line
        # Within seconds (the store is polled every 500 ms).
        assert time.monotonic() - t0 < igtest.IO_TIMEOUT
        still_alive(other)
    finally:
        doomed.close()
        other.close()
    log = setup.ig.log_text()
    assert "event=session-revoked by=app-password apppass_id=%s reason=revoked" % pid in log
    assert "event=apppass-revoked id=%s user=%s" % (pid, ALICE) in log
    # Reconnecting with it: refused.
    assert_refused(setup.ig, ca, ALICE, pw, "app-password-revoked")


def test_revoke_all_ends_every_session_of_the_user(setup, ca):
    _, pw = setup.add()
    _, pw2 = setup.add()
    _, pw3 = setup.add("user12")
    a, b = idle(setup.ig, ca, pw), idle(setup.ig, ca, pw2)
    other = idle(setup.ig, ca, pw3, "user12")
    try:
        r = setup.apppass("revoke", "--all", ALICE)
        assert r.returncode == 0, r.stderr
        expect_bye(a)
        expect_bye(b)
        still_alive(other)
    finally:
        for c in (a, b, other):
            c.close()
    setup.wait_log("event=apppass-sweep sessions_ended=2")


# ---- the store ----------------------------------------------------------------------------

def test_a_store_created_after_the_start_is_seen_without_a_reload(setup, ca):
    assert not setup.store.exists()
    setup.wait_log("event=apppass-store-error")
    assert "no store yet" in setup.ig.log_text()
    _, pw = setup.add()  # creates the store
    setup.wait_log("event=apppass-store-ok")

    def logs_in():
        c, tagged = raw_login(setup.ig, ca, ALICE, pw)
        c.close()
        return status(tagged) == "OK"
    igtest.wait_until(logs_in, igtest.IO_TIMEOUT, "a login with the new store")
    assert "event=reload" not in setup.ig.log_text()


def test_a_corrupt_store_keeps_the_last_good_one(setup, ca):
    """A damaged file put in the store's place (a bad restore): refused with
    a log line, the last good snapshot stays in force, and the good file
    put back is read again without a reload."""
    _, pw = setup.add()

    def logs_in():
        c, tagged = raw_login(setup.ig, ca, ALICE, pw)
        c.close()
        return status(tagged) == "OK"
    assert logs_in()
    good = str(setup.store) + ".good"
    with sqlite3.connect(str(setup.store)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.rename(str(setup.store), good)
    bad = str(setup.store) + ".bad"
    with open(good, "rb") as f:
        data = bytearray(f.read())
    data[100:4096] = os.urandom(3996)  # the header survives, the schema not
    with open(bad, "wb") as f:
        f.write(data)
    os.chmod(bad, 0o600)
    errors = setup.ig.log_text().count("event=apppass-store-error")
    oks = setup.ig.log_text().count("event=apppass-store-ok")
    os.rename(bad, str(setup.store))
    setup.wait_log("event=apppass-store-error", errors + 1)
    log = setup.ig.log_text()
    assert "in_force=last-good" in log, log[-2000:]
    assert logs_in()
    os.rename(good, str(setup.store))
    setup.wait_log("event=apppass-store-ok", oks + 1)
    assert logs_in()
    assert "event=reload" not in setup.ig.log_text()


# ---- metrics ------------------------------------------------------------------------------

def test_metrics_count_app_password_logins(imapguard, imapguard_bin, devcerts, dovecot_master,
                                           ca, tmp_path):
    cfg, store = config(devcerts, dovecot_master.address, tmp_path, admin=True)
    ig = imapguard(cfg)
    s = Setup(imapguard_bin, ig, store)
    pid, pw = s.add()
    s.wait_log("event=apppass-store-loaded")
    c = idle(ig, ca, pw)
    assert_refused(ig, ca, ALICE, ALICE_PW, "app-password-required")
    assert_refused(ig, ca, ALICE, pid + "-22222-33333-44444-55555", "app-password-wrong")
    assert s.apppass("revoke", pid).returncode == 0
    expect_bye(c)
    c.close()
    url = "http://%s/metrics" % cfg["admin"]["listen"]

    def metric(text, name):
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None

    def scraped():
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        return (metric(text, 'imapguard_app_password_logins_total{result="ok"}') == 1 and
                metric(text, 'imapguard_app_password_sessions_ended_total') == 1 and
                metric(text, 'imapguard_app_passwords{state="revoked"}') == 1, text)
    igtest.wait_until(lambda: scraped()[0], igtest.IO_TIMEOUT, "the metrics")
    text = scraped()[1]
    assert metric(text, 'imapguard_app_password_logins_total{result="wrong"}') == 1
    assert metric(text, 'imapguard_account_password_logins_total{result="refused"}') == 1
    assert metric(text, 'imapguard_app_password_verifications_total') == 2
    assert metric(text, 'imapguard_app_password_store_loaded') == 1


# ---- the rate limiter ---------------------------------------------------------------------

def test_wrong_app_passwords_count_in_the_rate_limiter(imapguard, imapguard_bin, devcerts,
                                                       dovecot_master, ca, tmp_path):
    """Failures of app passwords are failures like any other: three wrong
    ones (three different secrets, as a guesser sends) block the (user,
    address) pair before a fourth is hashed, the right one included."""
    cfg, store = config(devcerts, dovecot_master.address, tmp_path)
    cfg["ratelimit"] = {"tarpit": {"base": "50ms", "max": "200ms"},
                        "max_connection_failures": 100,
                        "user_address": {"threshold": 3, "window": "10m", "block": "15m"}}
    ig = imapguard(cfg)
    s = Setup(imapguard_bin, ig, store)
    pid, pw = s.add()
    for i in range(3):
        assert_refused(ig, ca, ALICE, "%s-%s-33333-44444-55555" % (pid, str(i + 2) * 5),
                       "app-password-wrong")
    hashed = ig.log_text().count("event=login-credential credential=app-password")
    c, tagged = raw_login(ig, ca, ALICE, pw)
    c.close()
    assert status(tagged) == "NO" and resp_code(tagged) == "UNAVAILABLE", tagged
    assert "Too many failed logins" in tagged
    assert "reason=ratelimit limit=user-address" in ig.log_text()
    # Refused before any hash: no verification of the fourth.
    assert ig.log_text().count("event=login-credential credential=app-password") == hashed


# ---- a flood --------------------------------------------------------------------------------

def test_a_flood_of_logins_is_bounded_and_nothing_hangs(imapguard, imapguard_bin, devcerts,
                                                       dovecot_master, ca, tmp_path):
    """With one verification at a time (and so four outstanding) and a
    slow hash, twelve logins at once: at most four are hashed, the others
    are told NO [UNAVAILABLE] at once; clients that leave while their hash
    runs do not disturb anything; every connection gets its answer."""
    cfg, store = config(devcerts, dovecot_master.address, tmp_path)
    cfg["app_passwords"]["hash"] = {"memory": "64MiB", "iterations": 16}
    cfg["app_passwords"]["max_concurrent_verifications"] = 1
    ig = imapguard(cfg)
    s = Setup(imapguard_bin, ig, store)
    _, pw = s.add()
    # The logins go out together: TLS first, then LOGIN all at once.
    n = 12
    clients = [igtest.tls_client(ig, ca) for _ in range(n)]
    answers = [None] * n
    try:
        for i, c in enumerate(clients):
            c.send('a LOGIN "%s" "%s"\r\n' % (ALICE, pw))
        # Two leave while their hash runs (or waits).
        for c in clients[:2]:
            c.close()

        def answer(i):
            if i >= 2:
                _, tagged = clients[i].read_until_tagged("a")
                answers[i] = tagged.decode() if isinstance(tagged, bytes) else tagged
        igtest.in_threads(answer, n, 120)
    finally:
        for c in clients:
            c.close()
    got = answers[2:]
    ok = [a for a in got if status(a) == "OK"]
    busy = [a for a in got if status(a) == "NO" and resp_code(a) == "UNAVAILABLE"]
    assert len(ok) + len(busy) == n - 2, got
    assert 1 <= len(ok) <= 4, got
    assert len(busy) >= n - 2 - 4, got
    assert all("Server busy, try again later" in a for a in busy)
    log = ig.log_text()
    # (the two that left may have been among them)
    assert len(busy) <= log.count("reason=verifications-busy") <= len(busy) + 2
    # Every verification came back (none outstanding, none leaked: ASan
    # checks at the stop).
    igtest.wait_until(lambda: ig.log_text().count("hash_ms=") >= len(ok), 60, "the hashes")


# ---- the hint ---------------------------------------------------------------------------------

def test_a_hint_says_an_app_password_is_needed(imapguard, imapguard_bin, devcerts,
                                               dovecot_master, ca, tmp_path):
    """app_passwords.hint: the account password's refusal comes with an
    untagged "* NO [ALERT] <hint>" (which clients show their user), then the
    same tagged NO; a wrong app password gets no hint. imaplib sees both."""
    hint = "Use an app password: https://mail.example.com/app-passwords"
    cfg, store = config(devcerts, dovecot_master.address, tmp_path)
    cfg["app_passwords"]["hint"] = hint
    ig = imapguard(cfg)
    s = Setup(imapguard_bin, ig, store)
    pid, pw = s.add()
    c = igtest.tls_client(ig, ca)
    try:
        untagged, tagged = c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))
        assert [u.rstrip(b"\r\n") for u in untagged] == [("* NO [ALERT] " + hint).encode()]
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED", tagged
        untagged, tagged = c.cmd("b", "LOGIN %s %s-22222-33333-44444-55555" % (ALICE, pid))
        assert untagged == [] and resp_code(tagged) == "AUTHENTICATIONFAILED", (untagged, tagged)
    finally:
        c.close()
    m = imaps(ig, ca)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE, ALICE_PW)
        assert m.untagged_responses.get("NO") == [("[ALERT] " + hint).encode()]
    finally:
        bye(m)


def test_a_bad_hint_is_refused_at_line_col(imapguard_bin, devcerts, tmp_path):
    cfg, _ = config(devcerts, "127.0.0.1:%d" % igtest.free_port(), tmp_path)
    for lst in cfg["listeners"]:
        lst["listen"] = "127.0.0.1:%d" % igtest.free_port()
    cfg["app_passwords"]["hint"] = "line one\tand a tab"
    path = tmp_path / "imapguard.yaml"
    text = igtest.to_yaml(cfg) + "\n"
    path.write_text(text)
    r = run([imapguard_bin, "-t", "-c", str(path)])
    assert r.returncode != 0
    line = [i for i, t in enumerate(text.split("\n")) if "hint:" in t][0] + 1
    assert re.search(r"%s:%d:\d+: invalid value '.*' for 'app_passwords.hint': expected 1 to "
                     r"200 characters of printable ASCII" % (re.escape(str(path)), line),
                     r.stderr), r.stderr


def test_ctl_stats_show_the_store(imapguard, imapguard_bin, devcerts, dovecot_master, ca,
                                  tmp_path):
    import shutil
    import tempfile
    sockdir = tempfile.mkdtemp(prefix="igap-", dir="/tmp")  # (socket paths stay short)
    try:
        cfg, store = config(devcerts, dovecot_master.address, tmp_path)
        sock = os.path.join(sockdir, "ctl.sock")
        cfg["admin"] = {"socket": sock}
        ig = imapguard(cfg)
        s = Setup(imapguard_bin, ig, store)
        pid, _ = s.add()
        s.add()
        assert s.apppass("revoke", pid).returncode == 0
        s.wait_log("event=apppass-revoked id=%s" % pid)

        def stats():
            r = run([imapguard_bin, "ctl", "-s", sock, "stats"])
            assert r.returncode == 0, r.stderr
            return dict(line.split("\t") for line in r.stdout.splitlines() if "\t" in line)
        st = stats()
        assert st["app_passwords_loaded"] == "1"
        assert st["app_passwords_active"] == "1"
        assert st["app_passwords_revoked"] == "1"
        assert st["app_password_verifications_outstanding"] == "0"
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
