"""`imapguard apppass`: the real binary issuing, listing and revoking app
passwords against a temporary configuration and store (no Dovecot needed).

Checked: the printed password's shape (five groups of five symbols of the
alphabet, the id first) and that it verifies against the stored Argon2id
hash (libargon2 through ctypes) with the configured parameters; --quiet's
one line; the store file's mode 0600; list's columns and that no listing
ever shows a secret; user names folded like the policy; options anywhere;
revoke and revoke --all; exit statuses 0, 1 and 2 with their messages;
and, as root with `user:` in the configuration, the store created by and
for that user.
"""

import calendar
import ctypes
import ctypes.util
import os
import pwd
import re
import sqlite3
import stat
import subprocess
import tempfile
import time

import pytest

import igtest

PW_RE = re.compile(r"^([2-9a-km-np-z]{5})-([2-9a-km-np-z]{5})-([2-9a-km-np-z]{5})"
                   r"-([2-9a-km-np-z]{5})-([2-9a-km-np-z]{5})$")
HEAD = ["ID", "USER", "CREATED", "EXPIRES", "LAST-USED", "LAST-ADDRESS", "FROM", "REVOKED",
        "LABEL"]


def run(argv, timeout=60):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, text=True)
    for marker in igtest.SANITIZER_MARKERS:
        assert marker not in r.stderr, r.stderr
    return r


def base(devcerts):
    """igtest's usual configuration with free listen ports (the loader
    refuses port 0; nothing is started here)."""
    cfg = igtest.base_config(devcerts, "127.0.0.1:%d" % igtest.free_port())
    for lst in cfg["listeners"]:
        lst["listen"] = "127.0.0.1:%d" % igtest.free_port()
    return cfg


@pytest.fixture
def setup(imapguard_bin, devcerts, tmp_path):
    """A configuration with app_passwords in tmp_path; returns a helper
    running `imapguard apppass -c CONFIG ARGS...`."""
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
    s.ap = lambda *args: run([imapguard_bin, "apppass", "-c", str(path)] + list(args))
    return s


def rows(stdout):
    """list's output as dicts (the label is the rest of the line)."""
    lines = stdout.splitlines()
    assert lines[0].split() == HEAD, lines[0]
    out = []
    for line in lines[1:]:
        parts = line.split(None, len(HEAD) - 1)
        out.append(dict(zip(HEAD, parts)))
    return out


def add_quiet(s, user, label, *extra):
    r = s.ap("add", user, "--label", label, "--quiet", *extra)
    assert r.returncode == 0, r.stderr
    ident, password = r.stdout.split()
    return ident, password


_argon2 = None


def argon2_verify(phc, secret):
    """libargon2's own argon2id_verify: True on a match."""
    global _argon2
    if _argon2 is None:
        name = ctypes.util.find_library("argon2") or "libargon2.so.1"
        _argon2 = ctypes.CDLL(name)
        _argon2.argon2id_verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        _argon2.argon2id_verify.restype = ctypes.c_int
    s = secret.encode()
    return _argon2.argon2id_verify(phc.encode(), s, len(s)) == 0


def stored(s, ident):
    db = sqlite3.connect("file:%s?mode=ro" % s.store, uri=True)
    try:
        row = db.execute("SELECT user, label, hash, expires, networks FROM app_passwords "
                         "WHERE id = ?", (ident,)).fetchone()
    finally:
        db.close()
    return row


def test_add_prints_a_password_once(setup):
    s = setup
    before = int(time.time())
    r = s.ap("add", "alice@example.com", "--label", "iPhone 15", "--expires", "90d",
             "--from", "10.0.0.0/8", "--from", "2001:db8::/32,192.0.2.7")
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    m = PW_RE.match(fields["password"])
    assert m, r.stdout
    assert fields["id"] == m.group(1)
    assert fields["user"] == "alice@example.com"
    assert fields["label"] == "iPhone 15"
    assert fields["from"] == "10.0.0.0/8,2001:db8::/32,192.0.2.7/32"
    assert "only this once" in r.stdout
    assert fields["password"] not in r.stderr
    # Expires in 90 days (to the second, allowing for the run's time).
    exp = calendar.timegm(time.strptime(fields["expires"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before + 90 * 86400 - 2 <= exp <= int(time.time()) + 90 * 86400 + 2

    # The store: mode 0600; the row; a hash with the configured parameters
    # that verifies the secret (the four groups after the id) and nothing else.
    st = os.stat(s.store)
    assert stat.S_IMODE(st.st_mode) == 0o600
    for sfx in ("-wal", "-shm"):
        if os.path.exists(str(s.store) + sfx):
            assert stat.S_IMODE(os.stat(str(s.store) + sfx).st_mode) == 0o600
    user, label, phc, expires, nets = stored(s, m.group(1))
    assert (user, label, nets) == ("alice@example.com", "iPhone 15",
                                   "10.0.0.0/8,2001:db8::/32,192.0.2.7/32")
    assert abs(expires - exp) <= 1
    assert phc.startswith("$argon2id$v=19$m=12288,t=3,p=1$"), phc
    secret = "".join(m.group(i) for i in range(2, 6))
    assert argon2_verify(phc, secret)
    assert not argon2_verify(phc, fields["password"].replace("-", ""))
    assert not argon2_verify(phc, secret[:-1] + ("2" if secret[-1] != "2" else "3"))
    # The password is nowhere in the file.
    with open(s.store, "rb") as f:
        data = f.read()
    if os.path.exists(str(s.store) + "-wal"):
        with open(str(s.store) + "-wal", "rb") as f:
            data += f.read()
    assert secret.encode() not in data


def test_quiet_is_one_line(setup):
    r = setup.ap("add", "bob", "--label", "laptop", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and r.stdout.endswith("\n")
    ident, password = r.stdout.split(" ")
    password = password.rstrip("\n")
    m = PW_RE.match(password)
    assert m and m.group(1) == ident, r.stdout
    assert r.stderr == "" or "warning" in r.stderr
    # Many passwords: all different, every one well formed.
    seen = {password}
    for _ in range(5):
        i, p = add_quiet(setup, "bob", "more")
        assert PW_RE.match(p) and p.startswith(i + "-") and p not in seen
        seen.add(p)


def test_list_and_revoke(setup):
    s = setup
    a1, p1 = add_quiet(s, "Alice@Example.COM", "Alice's phone")  # folded, like the policy
    a2, p2 = add_quiet(s, "alice@example.com", "laptop", "--from", "192.0.2.0/24")
    b1, p3 = add_quiet(s, "bob", "tablet", "--expires", "12h")

    r = s.ap("list")
    assert r.returncode == 0, r.stderr
    got = rows(r.stdout)
    # By user, then creation time (then id: these may share a second).
    assert {x["ID"] for x in got[:2]} == {a1, a2} and got[2]["ID"] == b1
    by = {x["ID"]: x for x in got}
    assert by[a1]["USER"] == "alice@example.com"
    assert by[a1]["LABEL"] == "Alice's phone"
    assert by[a1]["EXPIRES"] == "never" and by[a1]["FROM"] == "anywhere"
    assert by[a2]["FROM"] == "192.0.2.0/24"
    assert by[b1]["EXPIRES"] != "never" and by[b1]["USER"] == "bob"
    assert all(x["LAST-USED"] == "-" and x["LAST-ADDRESS"] == "-" and x["REVOKED"] == "-"
               for x in got)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", by[a1]["CREATED"])
    for p in (p1, p2, p3):
        assert p not in r.stdout and p.replace("-", "")[5:] not in r.stdout

    r = s.ap("list", "ALICE@example.com")
    assert r.returncode == 0
    assert sorted(x["ID"] for x in rows(r.stdout)) == sorted([a1, a2])

    # Revoke one (the id in capitals is the same id), then it again.
    r = s.ap("revoke", a1.upper())
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("revoked %s at " % a1)
    r = s.ap("revoke", a1)
    assert r.returncode == 0 and r.stdout.startswith("already revoked: %s" % a1)
    got = {x["ID"]: x for x in rows(s.ap("list").stdout)}
    assert got[a1]["REVOKED"] != "-" and got[a2]["REVOKED"] == "-"

    # Revoke all of a user's: the rest of alice's, not bob's.
    r = s.ap("revoke", "--all", "alice@example.com")
    assert r.returncode == 0, r.stderr
    assert "revoked 1 app password of alice@example.com" in r.stdout
    got = {x["ID"]: x for x in rows(s.ap("list").stdout)}
    assert got[a2]["REVOKED"] != "-" and got[b1]["REVOKED"] == "-"
    r = s.ap("revoke", "--all", "alice@example.com")
    assert r.returncode == 0 and "revoked 0 app passwords" in r.stdout

    # Not found: exit 1.
    for args in (["revoke", "zzzzz"], ["revoke", "--all", "carol"], ["list", "carol"]):
        r = s.ap(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "no app password" in r.stderr
    # Stored revocations are in the file for the proxy.
    db = sqlite3.connect("file:%s?mode=ro" % s.store, uri=True)
    assert db.execute("SELECT count(*) FROM app_passwords WHERE revoked != 0").fetchone()[0] == 2
    db.close()


def test_options_anywhere(setup):
    s = setup
    r = run([s.bin, "apppass", "add", "dave", "--label", "x", "-c", s.config, "--quiet"])
    assert r.returncode == 0, r.stderr
    ident = r.stdout.split()[0]
    r = run([s.bin, "apppass", "list", "dave", "--config", s.config])
    assert r.returncode == 0 and rows(r.stdout)[0]["ID"] == ident
    r = run([s.bin, "apppass", "revoke", ident, "-c", s.config])
    assert r.returncode == 0, r.stderr
    # "--" ends the options: a user whose name starts with '-'.
    r = run([s.bin, "apppass", "-c", s.config, "add", "--label", "y", "--", "-odd"])
    assert r.returncode == 0, r.stderr
    assert "user:      -odd" in r.stdout


def test_empty_and_missing_store(setup):
    s = setup
    # Before the first add there is no file: list and revoke see nothing
    # (and create nothing).
    r = s.ap("list")
    assert r.returncode == 0 and r.stdout.splitlines() == [r.stdout.splitlines()[0]]
    assert s.ap("list", "alice").returncode == 1
    assert s.ap("revoke", "k7dq2").returncode == 1
    assert not os.path.exists(s.store)


ERRORS = [
    # (arguments after "apppass -c CONFIG", text expected on stderr)
    (["add", "alice"], "add needs --label"),
    (["add", "alice", "--label", ""], "--label takes 1 to 64 bytes"),
    (["add", "alice", "--label", "x" * 65], "--label takes 1 to 64 bytes"),
    (["add", "alice", "--label", "a\nb"], "--label takes 1 to 64 bytes"),
    (["add", "alice", "bob", "--label", "x"], "add takes one USER"),
    (["add", "alice", "--label", "x", "--expires", "90"], "--expires 90: expected never"),
    (["add", "alice", "--label", "x", "--expires", "3651d"], "--expires 3651d"),
    (["add", "alice", "--label", "x", "--expires", "0d"], "--expires 0d"),
    (["add", "alice", "--label", "x", "--from", "10.0.0.1/8"], "--from 10.0.0.1/8: not an"),
    (["add", "alice", "--label", "x", "--from", "example.com"], "--from example.com"),
    (["add", "alice", "--label", "x", "--from", ","], "--from needs a network"),
    (["add", "a\rb", "--label", "x"], "invalid user name"),
    (["list", "a", "b"], "list takes at most one USER"),
    (["list", "--label", "x"], "list takes at most one USER"),
    (["revoke"], "revoke takes one ID"),
    (["revoke", "k7dq0"], "'k7dq0' is not an app password id"),
    (["revoke", "k7dq22"], "is not an app password id"),
    (["revoke", "--all"], "revoke --all takes one USER"),
    (["frobnicate"], "unknown command"),
    ([], "no command"),
    (["add", "alice", "--label", "x", "--bogus"], "usage: imapguard apppass"),
]


@pytest.mark.parametrize("args,text", ERRORS)
def test_usage_errors(setup, args, text):
    r = setup.ap(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert text in r.stderr, r.stderr
    assert r.stdout == ""
    assert not os.path.exists(setup.store)


def test_config_errors(setup, imapguard_bin):
    s = setup
    # No -c at all.
    r = run([imapguard_bin, "apppass", "list"])
    assert r.returncode == 2 and "-c FILE is required" in r.stderr
    # A configuration without app_passwords.
    cfg = dict(s.cfg)
    del cfg["app_passwords"]
    plain = s.tmp / "plain.yaml"
    plain.write_text(igtest.to_yaml(cfg) + "\n")
    r = run([imapguard_bin, "apppass", "-c", str(plain), "list"])
    assert r.returncode == 2
    assert "has no app_passwords.store" in r.stderr
    # An invalid value: the loader's FILE:LINE:COL message.
    cfg["app_passwords"] = {"store": str(s.store), "hash": {"memory": "2MiB"}}
    bad = s.tmp / "bad.yaml"
    bad.write_text(igtest.to_yaml(cfg) + "\n")
    r = run([imapguard_bin, "apppass", "-c", str(bad), "add", "x", "--label", "y"])
    assert r.returncode == 2
    assert re.search(re.escape(str(bad)) + r":\d+:\d+: 'app_passwords.hash.memory' must be "
                     r"between 7MiB and 1GiB", r.stderr), r.stderr
    # The same file passes -t once fixed (the section is part of the config).
    cfg["app_passwords"]["hash"]["memory"] = "19MiB"
    bad.write_text(igtest.to_yaml(cfg) + "\n")
    r = run([imapguard_bin, "-t", "-c", str(bad)])
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stderr
    # The store's directory must exist.
    cfg["app_passwords"]["store"] = str(s.tmp / "nodir" / "ap.db")
    bad.write_text(igtest.to_yaml(cfg) + "\n")
    r = run([imapguard_bin, "apppass", "-c", str(bad), "list"])
    assert r.returncode == 2 and "nodir" in r.stderr


def test_store_errors(setup):
    s = setup
    add_quiet(s, "alice", "phone")
    # Readable by others: refused, with the fix in the message.
    os.chmod(s.store, 0o644)
    r = s.ap("list")
    assert r.returncode == 2
    assert "mode 0644" in r.stderr and "chmod 600" in r.stderr
    os.chmod(s.store, 0o600)
    assert s.ap("list").returncode == 0
    # Not a database.
    other = s.tmp / "lib" / "junk.db"
    other.write_bytes(b"not a database at all " * 10)
    os.chmod(other, 0o600)
    cfg = dict(s.cfg)
    cfg["app_passwords"] = {"store": str(other)}
    path = s.tmp / "junk.yaml"
    path.write_text(igtest.to_yaml(cfg) + "\n")
    r = run([s.bin, "apppass", "-c", str(path), "add", "x", "--label", "y"])
    assert r.returncode == 2, r.stdout
    assert str(other) in r.stderr
    assert r.stdout == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the drop to `user`)")
def test_root_works_as_the_proxy_user(imapguard_bin, devcerts):
    """Started as root with `user: nobody`, the command becomes nobody
    before it touches the store: the file is nobody's, mode 0600."""
    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="igap-")
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
        r = run([imapguard_bin, "apppass", "-c", path, "add", "alice", "--label", "x",
                 "--quiet"])
        assert r.returncode == 0, r.stderr
        st = os.stat(lib + "/ap.db")
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, 0o600)
        r = run([imapguard_bin, "apppass", "-c", path, "list"])
        assert r.returncode == 0 and len(rows(r.stdout)) == 1
    finally:
        subprocess.run(["rm", "-rf", top])
