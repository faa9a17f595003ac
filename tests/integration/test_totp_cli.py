"""`imapguard totp` and `imapguard apppass add --totp`: the second factor
for issuing app passwords, with the real binary against a temporary
configuration and store (no Dovecot needed).

The codes are computed here, in Python (hmac, hashlib), from the secret in
the otpauth URI that enroll prints and the current time, per RFC 6238 (the
implementation is checked first against the RFC's own test vectors).
Nothing sleeps and then checks: a test that needs its codes to stay valid
for a while first waits, when the current 30-second step is about to end,
for the start of the next one, and asserts afterwards that the step did not
change under it.

Checked: enroll's URI (label, issuer, parameters, a 160-bit secret), the
same secret in base32 groups, the QR code (drawn, ANSI, left out), the
store row and its mode; add without --totp, with a wrong, malformed or
used code (exit 3 or 2, nothing stored), with the right one (0), the
previous step's code (drift) once, two concurrent adds with one code (one
wins); users not enrolled need no code and are refused one; --force;
remove and status; usage errors; a version 1 store upgraded in place; as
root, the store created as the proxy's user.
"""

import base64
import hashlib
import hmac
import os
import pwd
import re
import sqlite3
import stat
import struct
import subprocess
import tempfile
import time
import urllib.parse

import pytest

import igtest
from test_apppass_cli import base, run

PERIOD = 30
URI_RE = re.compile(r"^otpauth://totp/([^?]+)\?(.*)$")
PW_LINE = re.compile(r"^[2-9a-km-np-z]{5} [2-9a-km-np-z]{5}(-[2-9a-km-np-z]{5}){4}$")


def hotp(key, counter, digits=6):
    """RFC 4226 section 5.3 with HMAC-SHA1."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%0*d" % (digits, value % 10 ** digits)


def totp(key, step, digits=6):
    return hotp(key, step, digits)


def step_now():
    return int(time.time()) // PERIOD


def room(need):
    """Returns the current step once at least `need` seconds of it are
    left, waiting for the next step when fewer are (at most `need` s)."""
    left = PERIOD - time.time() % PERIOD
    if left < need:
        time.sleep(left + 0.05)
    return step_now()


def test_rfc6238_vectors():
    """The oracle of this file: RFC 6238 appendix B, SHA-1 (8 digits), and
    RFC 4226 appendix D (6 digits)."""
    key = b"12345678901234567890"
    for t, want in ((59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
                    (1234567890, "89005924"), (2000000000, "69279037"),
                    (20000000000, "65353130")):
        assert totp(key, t // PERIOD, 8) == want
    assert [hotp(key, i) for i in range(3)] == ["755224", "287082", "359152"]


@pytest.fixture
def setup(imapguard_bin, devcerts, tmp_path):
    """A configuration with app_passwords in tmp_path, and helpers running
    `imapguard totp|apppass -c CONFIG ARGS...`."""
    store = tmp_path / "lib" / "app-passwords.db"
    store.parent.mkdir()
    cfg = base(devcerts)
    cfg["app_passwords"] = {
        "store": str(store),
        "hash": {"memory": "12MiB", "iterations": 3, "parallelism": 1},
    }
    path = tmp_path / "imapguard.yaml"
    path.write_text(igtest.to_yaml(cfg) + "\n")

    class S:
        pass
    s = S()
    s.bin, s.config, s.store, s.cfg, s.tmp = imapguard_bin, str(path), store, cfg, tmp_path
    s.totp = lambda *args: run([imapguard_bin, "totp", "-c", str(path)] + list(args))
    s.ap = lambda *args: run([imapguard_bin, "apppass", "-c", str(path)] + list(args))
    return s


def fields(stdout):
    """enroll's "key: value" lines (up to the first blank line)."""
    out = {}
    for line in stdout.split("\n\n", 1)[0].splitlines():
        k, v = line.split(":", 1)
        out[k.strip()] = v.strip()
    return out


def enroll(s, user, *extra):
    """Enrols user; returns (secret bytes, enroll's output)."""
    r = s.totp("enroll", user, *extra)
    assert r.returncode == 0, r.stderr
    uri = fields(r.stdout)["uri"]
    m = URI_RE.match(uri)
    assert m, uri
    q = urllib.parse.parse_qs(m.group(2), strict_parsing=True)
    b32 = q["secret"][0]
    key = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    return key, r


def db(s):
    return sqlite3.connect("file:%s?mode=ro" % s.store, uri=True)


def count_passwords(s, user):
    if not os.path.exists(s.store):
        return 0
    c = db(s)
    try:
        return c.execute("SELECT count(*) FROM app_passwords WHERE user = ?",
                         (user,)).fetchone()[0]
    finally:
        c.close()


def last_step(s, user):
    c = db(s)
    try:
        row = c.execute("SELECT last_step FROM totp WHERE user = ?", (user,)).fetchone()
    finally:
        c.close()
    return None if row is None else row[0]


def add(s, user, *extra):
    return s.ap("add", user, "--label", "phone", "--quiet", *extra)


def wrong_code(key, t):
    """A code that matches no step of the window around t."""
    window = {totp(key, t + d) for d in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


def test_enroll_prints_uri_secret_and_qr(setup):
    s = setup
    before = int(time.time())
    key, r = enroll(s, "Alice@Example.COM")
    f = fields(r.stdout)
    assert f["user"] == "alice@example.com"  # folded like the policy
    assert f["issuer"] == "imapguard"
    m = URI_RE.match(f["uri"])
    assert urllib.parse.unquote(m.group(1)) == "imapguard:alice@example.com"
    q = urllib.parse.parse_qs(m.group(2), strict_parsing=True)
    assert {k: v[0] for k, v in q.items() if k != "secret"} == {
        "issuer": "imapguard", "algorithm": "SHA1", "digits": "6", "period": "30"}
    assert len(key) == 20  # 160 bits
    # The same secret in groups of four, for typing.
    assert f["secret"].replace(" ", "") == q["secret"][0]
    assert re.fullmatch(r"([A-Z2-7]{4} )*[A-Z2-7]{1,4}", f["secret"]), f["secret"]
    # A QR code below (not a terminal: "plain", no escapes), then the advice.
    assert "\u2588" in r.stdout and "\u2580" in r.stdout and "\033[" not in r.stdout
    assert "shown only this once" in r.stdout
    assert "apppass add alice@example.com needs --totp CODE" in r.stdout
    assert q["secret"][0] not in r.stderr

    # The store: mode 0600, schema version 2, the secret as it was shown.
    assert stat.S_IMODE(os.stat(s.store).st_mode) == 0o600
    c = db(s)
    try:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 2
        row = c.execute("SELECT secret, created, last_step FROM totp WHERE user = ?",
                        ("alice@example.com",)).fetchone()
    finally:
        c.close()
    assert row[0] == key
    assert before <= row[1] <= int(time.time())
    assert row[2] == 0

    # The issuer, and the QR code's other forms.
    key2, r = enroll(s, "bob", "--issuer", "Example Mail", "--qr", "ansi")
    f = fields(r.stdout)
    assert f["issuer"] == "Example Mail"
    assert f["uri"].startswith("otpauth://totp/Example%20Mail:bob?")
    assert "&issuer=Example%20Mail&" in f["uri"]
    assert "\033[30;107m" in r.stdout
    _, r = enroll(s, "carol", "--qr", "none")
    assert "\u2588" not in r.stdout and "\u2580" not in r.stdout
    _, r = enroll(s, "dave", "--qr", "inverted")
    assert "\u2588" in r.stdout and "\033[" not in r.stdout


def test_add_needs_the_current_code_once(setup):
    s = setup
    key, _ = enroll(s, "alice")
    user = "alice"

    # No code, a malformed one, a wrong one: refused, nothing stored.
    r = add(s, user)
    assert r.returncode == 3, r.stderr
    assert "alice is enrolled for TOTP: add needs --totp CODE" in r.stderr
    assert "nothing was issued" in r.stderr and r.stdout == ""
    for bad in ("12345", "1234567", "12a456", ""):
        r = add(s, user, "--totp", bad)
        assert r.returncode == 2, (bad, r.stderr)
        assert "--totp takes the 6 digits" in r.stderr
    t = room(6)
    r = add(s, user, "--totp", wrong_code(key, t))
    assert r.returncode == 3, r.stderr
    assert "wrong TOTP code for alice" in r.stderr and r.stdout == ""
    assert count_passwords(s, user) == 0
    assert last_step(s, user) == 0

    # The right code: a password, and its step recorded.
    code = totp(key, t)
    r = add(s, user, "--totp", code)
    assert r.returncode == 0, r.stderr
    assert PW_LINE.match(r.stdout.strip()), r.stdout
    assert count_passwords(s, user) == 1
    assert last_step(s, user) == t

    # The same code again: refused as used, nothing more stored.
    r = add(s, user, "--totp", code)
    assert r.returncode == 3, r.stderr
    assert "that TOTP code was used already" in r.stderr
    # As typed by someone reading the app's display ("123 456"): the same.
    r = add(s, user, "--totp", code[:3] + " " + code[3:])
    assert r.returncode == 3 and "used already" in r.stderr, r.stderr
    # An earlier step's code is refused too, once a later one was used.
    r = add(s, user, "--totp", totp(key, t - 1))
    assert r.returncode == 3 and "used already" in r.stderr, r.stderr
    assert count_passwords(s, user) == 1
    assert step_now() == t, "the step changed during the test: too slow a machine"


def test_previous_step_is_accepted_once(setup):
    """One step of drift: the previous step's code works while unused, and
    so does the next step's; neither twice, and never two steps away."""
    s = setup
    key, _ = enroll(s, "bob")
    t = room(6)
    r = add(s, "bob", "--totp", totp(key, t - 2))
    assert r.returncode == 3 and "wrong TOTP code" in r.stderr, r.stderr
    r = add(s, "bob", "--totp", totp(key, t + 2))
    assert r.returncode == 3 and "wrong TOTP code" in r.stderr, r.stderr

    r = add(s, "bob", "--totp", totp(key, t - 1))
    assert r.returncode == 0, r.stderr
    assert last_step(s, "bob") == t - 1
    r = add(s, "bob", "--totp", totp(key, t - 1))
    assert r.returncode == 3 and "used already" in r.stderr, r.stderr
    # The next step's code (a device clock a little ahead) works once.
    r = add(s, "bob", "--totp", totp(key, t + 1))
    assert r.returncode == 0, r.stderr
    assert last_step(s, "bob") == t + 1
    # ... and then the current one is an earlier step: used.
    r = add(s, "bob", "--totp", totp(key, t))
    assert r.returncode == 3 and "used already" in r.stderr, r.stderr
    assert count_passwords(s, "bob") == 2
    assert step_now() == t, "the step changed during the test: too slow a machine"


def test_two_concurrent_adds_with_one_code(setup):
    """Two commands racing with the same code: exactly one password."""
    s = setup
    key, _ = enroll(s, "carol")
    t = room(6)
    code = totp(key, t)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    argv = [s.bin, "apppass", "-c", s.config, "add", "carol", "--label", "x", "--quiet",
            "--totp", code]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    loser = outs[[p.returncode for p in procs].index(3)]
    assert "used already" in loser[1], loser
    assert count_passwords(s, "carol") == 1
    assert step_now() == t, "the step changed during the test: too slow a machine"


def test_users_not_enrolled_need_no_code(setup):
    s = setup
    enroll(s, "alice")
    r = add(s, "dave")
    assert r.returncode == 0, r.stderr
    assert PW_LINE.match(r.stdout.strip())
    # A code for someone not enrolled: refused, so that nobody believes a
    # second factor was checked.
    r = add(s, "dave", "--totp", "123456")
    assert r.returncode == 2, r.stderr
    assert "dave is not enrolled for TOTP" in r.stderr
    assert count_passwords(s, "dave") == 1
    # --totp belongs to add only.
    r = s.ap("list", "--totp", "123456")
    assert r.returncode == 2 and "list takes at most one USER" in r.stderr


def test_force_replaces_the_secret(setup):
    s = setup
    key, _ = enroll(s, "erin")
    t = room(6)
    assert add(s, "erin", "--totp", totp(key, t)).returncode == 0

    # Enrolled: refused without --force, and the secret stays.
    r = s.totp("enroll", "erin")
    assert r.returncode == 2, r.stderr
    assert "erin is enrolled already: --force replaces the secret" in r.stderr
    assert r.stdout == ""
    c = db(s)
    try:
        assert c.execute("SELECT secret FROM totp WHERE user = 'erin'").fetchone()[0] == key
    finally:
        c.close()

    # --force: a new secret, no step used; the old one's codes stop working.
    key2, _ = enroll(s, "erin", "--force")
    assert key2 != key
    assert last_step(s, "erin") == 0
    old, new = totp(key, t + 1), totp(key2, t + 1)
    if old != new:
        r = add(s, "erin", "--totp", old)
        assert r.returncode == 3 and "wrong TOTP code" in r.stderr, r.stderr
    r = add(s, "erin", "--totp", new)
    assert r.returncode == 0, r.stderr
    assert count_passwords(s, "erin") == 2
    assert step_now() == t, "the step changed during the test: too slow a machine"


def test_remove_and_status(setup):
    s = setup
    # No store yet: nobody is enrolled, and nothing is created.
    r = s.totp("status")
    assert r.returncode == 0 and r.stdout.split() == ["USER", "ENROLLED", "LAST-CODE"]
    assert s.totp("status", "alice").returncode == 1
    r = s.totp("remove", "alice")
    assert r.returncode == 1 and "alice is not enrolled" in r.stderr
    assert not os.path.exists(s.store)

    key, _ = enroll(s, "alice")
    enroll(s, "frank@example.com")
    r = s.totp("status")
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    assert lines[0] == ["USER", "ENROLLED", "LAST-CODE"]
    assert [line[0] for line in lines[1:]] == ["alice", "frank@example.com"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line[1]) for line in lines[1:])
    assert all(line[2] == "-" for line in lines[1:])
    # After a code: the start of its step.
    t = room(3)
    assert add(s, "alice", "--totp", totp(key, t)).returncode == 0
    r = s.totp("status", "ALICE")
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1].split()
    assert row[0] == "alice"
    assert row[2] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t * PERIOD))
    # Nothing shows the secret but enroll.
    b32 = base64.b32encode(key).decode().rstrip("=")
    for out in (r.stdout, r.stderr, s.ap("list").stdout, s.totp("status").stdout):
        assert b32 not in out

    r = s.totp("remove", "alice")
    assert r.returncode == 0, r.stderr
    assert "removed the TOTP enrolment of alice" in r.stdout
    assert s.totp("status", "alice").returncode == 1
    assert s.totp("remove", "alice").returncode == 1
    # No code needed any more (and the passwords issued before stay).
    r = add(s, "alice")
    assert r.returncode == 0, r.stderr
    assert count_passwords(s, "alice") == 2
    r = s.totp("status")
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["frank@example.com"]


ERRORS = [
    # (arguments after "totp -c CONFIG", text expected on stderr)
    ([], "no command"),
    (["frobnicate"], "unknown command (enroll, remove or status)"),
    (["enroll"], "enroll takes one USER"),
    (["enroll", "a", "b"], "enroll takes one USER"),
    (["enroll", "a", "--issuer", "Ex:ample"], "--issuer takes 1 to 64 bytes"),
    (["enroll", "a", "--issuer", ""], "--issuer takes 1 to 64 bytes"),
    (["enroll", "a", "--issuer", "x" * 65], "--issuer takes 1 to 64 bytes"),
    (["enroll", "a", "--qr", "sixel"], "--qr takes auto, ansi, plain, inverted or none"),
    (["enroll", "a:b"], "cannot go into an otpauth URI"),
    (["enroll", "a\rb"], "invalid user name"),
    (["remove"], "remove takes one USER"),
    (["remove", "a", "--force"], "remove takes one USER and no option but -c"),
    (["status", "a", "b"], "status takes at most one USER"),
    (["status", "--issuer", "x"], "status takes at most one USER"),
    (["enroll", "a", "--bogus"], "usage: imapguard totp"),
]


@pytest.mark.parametrize("args,text", ERRORS)
def test_usage_errors(setup, args, text):
    r = setup.totp(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert text in r.stderr, r.stderr
    assert "otpauth" not in r.stdout


def test_config_errors(setup, imapguard_bin):
    s = setup
    r = run([imapguard_bin, "totp", "status"])
    assert r.returncode == 2 and "-c FILE is required" in r.stderr
    cfg = dict(s.cfg)
    del cfg["app_passwords"]
    plain = s.tmp / "plain.yaml"
    plain.write_text(igtest.to_yaml(cfg) + "\n")
    r = run([imapguard_bin, "totp", "-c", str(plain), "enroll", "alice"])
    assert r.returncode == 2 and "has no app_passwords.store" in r.stderr
    assert r.stdout == ""
    # The usage text of the program names the command.
    r = run([imapguard_bin, "--help"])
    assert "imapguard totp -c FILE enroll USER" in r.stdout + r.stderr


V1_SCHEMA = """
CREATE TABLE app_passwords (
  id TEXT PRIMARY KEY NOT NULL, user TEXT NOT NULL, label TEXT NOT NULL,
  hash TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL DEFAULT 0,
  networks TEXT NOT NULL DEFAULT '', revoked INTEGER NOT NULL DEFAULT 0,
  last_used INTEGER NOT NULL DEFAULT 0, last_address TEXT NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;
CREATE INDEX app_passwords_by_user ON app_passwords (user, created);
CREATE TABLE store_state (one INTEGER PRIMARY KEY CHECK (one = 1),
                          generation INTEGER NOT NULL) STRICT;
INSERT INTO store_state VALUES (1, 0);
CREATE TRIGGER app_passwords_added AFTER INSERT ON app_passwords
  BEGIN UPDATE store_state SET generation = generation + 1; END;
CREATE TRIGGER app_passwords_removed AFTER DELETE ON app_passwords
  BEGIN UPDATE store_state SET generation = generation + 1; END;
CREATE TRIGGER app_passwords_changed
  AFTER UPDATE OF id, user, hash, expires, networks, revoked ON app_passwords
  BEGIN UPDATE store_state SET generation = generation + 1; END;
PRAGMA user_version = 1;
"""


def test_version_1_store_is_upgraded(setup):
    """A store written before TOTP existed: its passwords stay, and the
    first command that opens it adds the enrolments."""
    s = setup
    c = sqlite3.connect(str(s.store))
    try:
        c.execute("PRAGMA journal_mode = WAL")
        c.executescript(V1_SCHEMA)
        c.execute("INSERT INTO app_passwords (id, user, label, hash, created) VALUES "
                  "('k7dq2', 'alice', 'old phone', "
                  "'$argon2id$v=19$m=12288,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                  "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g', 100)")
        c.commit()
    finally:
        c.close()
    os.chmod(s.store, 0o600)
    r = s.ap("list")
    assert r.returncode == 0, r.stderr
    assert "k7dq2" in r.stdout and "old phone" in r.stdout
    c = db(s)
    try:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 2
        assert c.execute("SELECT generation FROM store_state").fetchone()[0] == 1
    finally:
        c.close()
    key, _ = enroll(s, "alice")
    t = room(3)
    assert add(s, "alice", "--totp", totp(key, t)).returncode == 0
    assert count_passwords(s, "alice") == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the drop to `user`)")
def test_root_enrolls_as_the_proxy_user(imapguard_bin, devcerts):
    """Started as root with `user: nobody`, enroll becomes nobody before it
    creates the store: the file is nobody's, mode 0600."""
    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="igtotp-")
    try:
        os.chmod(top, 0o755)
        lib = os.path.join(top, "lib")
        os.mkdir(lib, 0o700)
        os.chown(lib, nobody.pw_uid, nobody.pw_gid)
        cfg = base(devcerts)
        cfg["user"] = "nobody"
        cfg["app_passwords"] = {"store": lib + "/ap.db"}
        path = os.path.join(top, "imapguard.yaml")
        with open(path, "w") as f:
            f.write(igtest.to_yaml(cfg) + "\n")
        r = run([imapguard_bin, "totp", "-c", path, "enroll", "alice", "--qr", "none"])
        assert r.returncode == 0, r.stderr
        st = os.stat(lib + "/ap.db")
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, 0o600)
        r = run([imapguard_bin, "totp", "-c", path, "status"])
        assert r.returncode == 0 and "alice" in r.stdout, r.stderr
    finally:
        subprocess.run(["rm", "-rf", top])
