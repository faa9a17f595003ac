"""backend.master_login (issue 17, the backend half of app passwords).

The fixture: a real Dovecot with a master passdb (igtest.MASTER_USER,
auth_master_user_separator = *) takes both styles imapguard sends, byte
for byte as proxy/loginfmt.c formats them (test_loginfmt.c has the
formatting): LOGIN "user*master" "secret" (quoted, or a synchronizing
literal) and AUTHENTICATE PLAIN with authzid=user, authcid=master (SASL-IR
or after "+"); after our ID from a trusted network the user's session
carries the client's address.

imapguard: the password file refused at FILE:LINE:COL by `-t` (readable by
others, missing; a bad style; credentials app_passwords without a master
login); a reload whose file went bad is refused and the proxy keeps
serving; the secret is in no log line; `imapguard explain` prints the
credentials rule, and enforces it: under app_passwords the account
password is refused before the backend (LOGIN, PLAIN, the LOGIN mechanism),
monitor mode only logs, both lets it in and says so.
"""

import imaplib
import os
import re
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW, MASTER_PW, MASTER_USER, Raw, b64, status, resp_code

SECRET = "Proxy-master-Secret-93d2"


# ---- the fixture: Dovecot's master passdb, both styles --------------------------

def imap(dovecot):
    return imaplib.IMAP4(dovecot.host, dovecot.port, timeout=igtest.IO_TIMEOUT)


def master_logins(dovecot, user=ALICE):
    """How many times Dovecot's auth let the master user in as user."""
    return dovecot.log_text().count("Master user logging in as %s" % user)


def wait_more(fn, before, what):
    igtest.wait_until(lambda: fn() > before, igtest.IO_TIMEOUT, what)


def bye(m):
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def test_fixture_separator_login_selects_the_users_inbox(dovecot_master):
    before = master_logins(dovecot_master)
    m = imap(dovecot_master)
    try:
        typ, _ = m.login("%s*%s" % (ALICE, MASTER_USER), MASTER_PW)
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK", data
    finally:
        bye(m)
    # The session is the user's, opened by the master user.
    wait_more(lambda: master_logins(dovecot_master), before, "the master login in the log")


def test_fixture_authzid_plain_selects_the_users_inbox(dovecot_master):
    before = master_logins(dovecot_master)
    m = imap(dovecot_master)
    try:
        # imaplib sends AUTHENTICATE PLAIN and the response after "+".
        typ, _ = m.authenticate(
            "PLAIN", lambda _: ("%s\0%s\0%s" % (ALICE, MASTER_USER, MASTER_PW)).encode())
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK", data
    finally:
        bye(m)
    wait_more(lambda: master_logins(dovecot_master), before, "the master login in the log")


def test_fixture_refuses_a_wrong_master_password_or_address(dovecot_master):
    for login in (lambda m: m.login("%s*%s" % (ALICE, MASTER_USER), "wrong"),
                  lambda m: m.authenticate(
                      "PLAIN", lambda _: ("%s\0%s\0wrong" % (ALICE, MASTER_USER)).encode())):
        m = imap(dovecot_master)
        try:
            with pytest.raises(imaplib.IMAP4.error):
                login(m)
        finally:
            bye(m)
    # A master user whose allow_real_nets does not hold the proxy's address.
    m = imap(dovecot_master)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            m.login("%s*%s" % (ALICE, igtest.MASTER_USER_ELSEWHERE), MASTER_PW)
    finally:
        bye(m)
    # The master user is no mailbox user of its own (pass = yes: the target
    # must exist in the normal passdb).
    m = imap(dovecot_master)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            m.login("nobody-here@example.com*%s" % MASTER_USER, MASTER_PW)
    finally:
        bye(m)


def raw(dovecot):
    c = Raw(dovecot.host, dovecot.port)
    assert c.readline().startswith(b"* OK")
    return c


@pytest.mark.parametrize("shape", ["quoted", "literal", "plain-ir", "plain-continuation"])
def test_fixture_takes_the_bytes_loginfmt_sends(dovecot_master, shape):
    """What ig_loginfmt_master() writes (see test_loginfmt.c), sent as is,
    after our ID (as backend.c sends it from a trusted network): the user's
    session, carrying the client's address, while the master user's
    allow_real_nets still checks the proxy's own."""
    from_client = re.compile(r"Login: user=<%s>.*rip=192\.0\.2\.77" % re.escape(ALICE))

    def logins():
        return len(from_client.findall(dovecot_master.log_text()))
    before, before_master = logins(), master_logins(dovecot_master)
    c = raw(dovecot_master)
    try:
        _, tagged = c.cmd("ig.3", 'ID ("x-originating-ip" "192.0.2.77" '
                          '"x-originating-port" "40123" "x-session-id" "0123456789abcdef")')
        assert status(tagged) == "OK", tagged
        name = "%s*%s" % (ALICE, MASTER_USER)
        ir = b64("%s\0%s\0%s" % (ALICE, MASTER_USER, MASTER_PW))
        if shape == "quoted":
            c.send('a1 LOGIN "%s" "%s"\r\n' % (name, MASTER_PW))
        elif shape == "literal":
            c.send("a1 LOGIN {%d}\r\n" % len(name))
            assert c.readline().startswith(b"+")
            c.send('%s "%s"\r\n' % (name, MASTER_PW))
        elif shape == "plain-ir":
            c.send("a1 AUTHENTICATE PLAIN %s\r\n" % ir)
        else:
            c.send("a1 AUTHENTICATE PLAIN\r\n")
            assert c.readline().startswith(b"+")
            c.send(ir + "\r\n")
        _, tagged = c.read_until_tagged("a1")
        assert status(tagged) == "OK", tagged
        _, tagged = c.cmd("a2", "SELECT INBOX")
        assert status(tagged) == "OK", tagged
        c.cmd("a3", "LOGOUT")
    finally:
        c.close()
    wait_more(logins, before, "alice's login from 192.0.2.77 in Dovecot's log")
    assert master_logins(dovecot_master) > before_master


# ---- imapguard: the configuration -----------------------------------------------

def run(argv, timeout=30):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=env, text=True)


def write_secret(path, text=SECRET + "\n", mode=0o600):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(str(path), mode)


def master_config(devcerts, backend, secret_path, **master):
    cfg = igtest.base_config(devcerts, backend)
    ml = {"user": MASTER_USER, "password_file": str(secret_path)}
    ml.update(master)
    cfg["backend"]["master_login"] = ml
    return cfg


def check(imapguard_bin, tmp_path, cfg):
    """`imapguard -t` on cfg (listeners on free ports): (result, yaml text)."""
    for lst in cfg["listeners"]:
        lst["listen"] = "127.0.0.1:%d" % igtest.free_port()
    text = igtest.to_yaml(cfg) + "\n"
    path = tmp_path / "imapguard.yaml"
    path.write_text(text)
    return run([imapguard_bin, "-t", "-c", str(path)]), text, str(path)


def place(text, needle, after):
    """1-based line and column of the value following needle on the first
    line holding after...needle."""
    for i, line in enumerate(text.split("\n")):
        j = line.find(needle)
        if j >= 0 and after in line:
            return i + 1, j + len(needle) + 1
    raise AssertionError(needle)


def test_check_accepts_a_private_password_file(imapguard_bin, devcerts, tmp_path):
    secret = tmp_path / "master.secret"
    write_secret(secret)
    for style in ("separator", "authzid"):
        r, _, _ = check(imapguard_bin, tmp_path,
                        master_config(devcerts, "127.0.0.1:1143", secret, style=style))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "configuration OK" in r.stdout + r.stderr
        assert SECRET not in r.stdout + r.stderr


@pytest.mark.parametrize("case", ["world-readable", "group-readable", "missing"])
def test_check_refuses_the_password_file_at_line_col(imapguard_bin, devcerts, tmp_path, case):
    secret = tmp_path / "master.secret"
    if case == "world-readable":
        write_secret(secret, mode=0o644)
        why = "its mode 0644 lets other users read it; it holds the master password: " \
              "chmod 600 (the owner only)"
        verb = "cannot use"
    elif case == "group-readable":
        write_secret(secret, mode=0o640)
        why = "its mode 0640 lets other users read it"
        verb = "cannot use"
    else:
        why = "No such file or directory"
        verb = "cannot read"
    r, text, path = check(imapguard_bin, tmp_path,
                          master_config(devcerts, "127.0.0.1:1143", secret))
    assert r.returncode != 0, r.stdout
    line, col = place(text, "password_file: ", "password_file")
    # (The file's name is shown shortened when long.)
    assert "%s:%d:%d: %s '" % (path, line, col, verb) in r.stderr, r.stderr
    assert "' for 'backend.master_login.password_file': " + why in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_check_refuses_a_bad_style_at_line_col(imapguard_bin, devcerts, tmp_path):
    secret = tmp_path / "master.secret"
    write_secret(secret)
    r, text, path = check(imapguard_bin, tmp_path,
                          master_config(devcerts, "127.0.0.1:1143", secret, style="plain"))
    assert r.returncode != 0
    line, col = place(text, "style: ", "style")
    assert ("%s:%d:%d: invalid value 'plain' for 'backend.master_login.style': expected one "
            "of separator, authzid" % (path, line, col)) in r.stderr, r.stderr


def test_check_app_passwords_need_a_master_login_and_a_store(imapguard_bin, devcerts, tmp_path):
    cfg = igtest.base_config(devcerts, "127.0.0.1:1143")
    cfg["policy"]["groups"] = {"mfa": {"users": ["*@example.com"],
                                       "credentials": "app_passwords"}}
    r, text, path = check(imapguard_bin, tmp_path, cfg)
    assert r.returncode != 0
    line, col = place(text, "credentials: ", "credentials")
    assert ("%s:%d:%d: 'policy.groups.mfa.credentials' is app_passwords, which needs "
            "backend.master_login" % (path, line, col)) in r.stderr, r.stderr
    # With one: accepted.
    secret = tmp_path / "master.secret"
    write_secret(secret)
    cfg["backend"]["master_login"] = {"user": MASTER_USER, "password_file": str(secret)}
    r, text, path = check(imapguard_bin, tmp_path, cfg)
    assert r.returncode != 0
    line, col = place(text, "credentials: ", "credentials")
    assert ("%s:%d:%d: 'policy.groups.mfa.credentials' is app_passwords, which needs "
            "app_passwords.store" % (path, line, col)) in r.stderr, r.stderr
    # With a store too: accepted.
    cfg["app_passwords"] = {"store": str(tmp_path / "app-passwords.db")}
    r, _, _ = check(imapguard_bin, tmp_path, cfg)
    assert r.returncode == 0, r.stderr


# ---- imapguard: reloads -------------------------------------------------------------

def login_ok(ig, ca):
    c = igtest.tls_client(ig, ca)
    try:
        _, tagged = c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))
        assert status(tagged) == "OK", tagged
        _, tagged = c.cmd("b", "SELECT INBOX")
        assert status(tagged) == "OK", tagged
    finally:
        c.close()


def test_reload_with_a_bad_master_file_is_refused_and_serving_goes_on(
        imapguard, devcerts, dovecot_master, ca, tmp_path):
    secret = tmp_path / "master.secret"
    write_secret(secret)
    ig = imapguard(master_config(devcerts, dovecot_master.address, secret))
    login_ok(ig, ca)
    text = open(ig.config_path).read()
    line, col = place(text, "password_file: ", "password_file")
    where = "%s:%d:%d: " % (ig.config_path, line, col)

    # Readable by others: refused, the running generation stays.
    os.chmod(str(secret), 0o644)
    ig.reload(what="event=reload-failed")
    assert where + "cannot use" in ig.log_text()
    assert "its mode 0644 lets other users read it" in ig.log_text()
    login_ok(ig, ca)

    # Empty, then gone: the same.
    write_secret(secret, "")
    ig.reload(what="event=reload-failed")
    assert "it is empty (its first line is the master password)" in ig.log_text()
    os.unlink(str(secret))
    ig.reload(what="event=reload-failed")
    assert where + "cannot read" in ig.log_text()
    login_ok(ig, ca)

    # Good again, with a new secret: accepted.
    write_secret(secret, "Another-master-Secret-17\n")
    ig.reload(what="event=reload-done")
    login_ok(ig, ca)
    log = ig.log_text()
    assert log.count("event=reload-failed") == 3
    assert SECRET not in log and "Another-master-Secret-17" not in log


# ---- explain --------------------------------------------------------------------------

def test_explain_prints_the_credentials_rule(imapguard_bin, devcerts, tmp_path):
    secret = tmp_path / "master.secret"
    write_secret(secret)
    cfg = master_config(devcerts, "127.0.0.1:1143", secret, style="authzid")
    cfg["app_passwords"] = {"store": str(tmp_path / "app-passwords.db")}
    cfg["policy"]["groups"] = {
        "mfa": {"users": ["*@example.com"], "credentials": "app_passwords"},
        "migrating": {"users": ["*@old.example"], "credentials": "both"},
    }
    cfg["policy"]["users"] = {"printer@example.com": {"credentials": "both"}}
    _, _, path = check(imapguard_bin, tmp_path, cfg)

    def explain(user):
        r = run([imapguard_bin, "explain", "-c", path, "--user", user, "--from", "192.0.2.9",
                 "--listener", "imaps"])
        assert r.returncode == 0, r.stdout + r.stderr
        assert SECRET not in r.stdout + r.stderr
        return r.stdout

    out = explain(ALICE)
    assert re.search(r"^  credentials +app_passwords +from group:mfa$", out, re.M), out
    assert ("credentials: app_passwords (group mfa): the account password is refused; only "
            "an app password logs in\n") in out
    out = explain("Printer@Example.com")
    assert ("credentials: both (user printer@example.com): an app password or the account "
            "password logs in") in out
    out = explain("joe@old.example")
    assert "credentials: both (group migrating)" in out
    out = explain("user11")
    assert re.search(r"^  credentials +password +from defaults$", out, re.M), out
    assert ("credentials: password (defaults): the account password logs in, checked by the "
            "backend; app passwords are not accepted") in out


# ---- the credentials rule, enforced -----------------------------------------------------

def credentials_config(devcerts, backend, secret, groups):
    cfg = master_config(devcerts, backend, secret)
    cfg["app_passwords"] = {"store": str(secret) + ".db"}
    cfg["policy"]["groups"] = groups
    return cfg


def test_app_passwords_refuse_the_account_password_before_the_backend(
        imapguard, devcerts, dovecot_master, ca, tmp_path):
    """credentials: app_passwords: the right account password, by LOGIN, by
    AUTHENTICATE PLAIN (SASL-IR) and by AUTHENTICATE LOGIN, gets the same
    tagged NO [AUTHENTICATIONFAILED] as a wrong one, and Dovecot never sees
    it; a user outside the group logs in as before. Monitor mode logs the
    refusal and lets the backend decide. `both` lets the account password in
    and logs which credential was used."""
    secret = tmp_path / "master.secret"
    write_secret(secret)
    ig = imapguard(credentials_config(devcerts, dovecot_master.address, secret, {
        "mfa": {"users": [ALICE], "credentials": "app_passwords"},
        "watch": {"users": ["user11"], "credentials": "app_passwords", "mode": "monitor"},
        "migrating": {"users": ["user12"], "credentials": "both"},
    }))
    seen = igtest.imap_login_count(dovecot_master)
    alice_in = igtest.imap_login_successes(dovecot_master, ALICE)
    c = igtest.tls_client(ig, ca)
    try:
        _, tagged = c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED", tagged
        _, tagged = c.cmd("b", "AUTHENTICATE PLAIN %s" % b64("\0%s\0%s" % (ALICE, ALICE_PW)))
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED", tagged
    finally:
        c.close()
    c = igtest.tls_client(ig, ca)
    try:
        c.send("c AUTHENTICATE LOGIN\r\n")
        assert c.readline().startswith(b"+")
        c.send(b64(ALICE) + "\r\n")
        assert c.readline().startswith(b"+")
        c.send(b64(ALICE_PW) + "\r\n")
        tagged = c.read_response().decode()
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED", tagged
    finally:
        c.close()
    log = ig.log_text()
    assert log.count("reason=app-password-required") == 3, log
    assert ALICE_PW not in log
    # Not one of them reached the backend (a barrier: later logins do).
    login_ok_as(ig, ca, "user12", igtest.USERS["user12"])
    assert "event=login-credential credential=password" in ig.log_text()
    login_ok_as(ig, ca, "user11", igtest.USERS["user11"])
    assert "verdict=would-deny mode=monitor" in ig.log_text()
    assert igtest.imap_login_count(dovecot_master) == seen + 2
    assert igtest.imap_login_successes(dovecot_master, ALICE) == alice_in


def login_ok_as(ig, ca, user, pw):
    c = igtest.tls_client(ig, ca)
    try:
        _, tagged = c.cmd("a", "LOGIN %s %s" % (user, pw))
        assert status(tagged) == "OK", tagged
    finally:
        c.close()
