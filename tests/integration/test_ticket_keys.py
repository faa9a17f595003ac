"""TLS session ticket keys shared by a fleet through tls.ticket_key_file.

Two imapguard processes read one key file: a ticket one issued resumes on
the other (openssl s_client -sess_out / -sess_in: "Reused"). `imapguard
ticket-key rotate` writes a new file, which the running processes pick up
without a reload (event=ticket-keys-loaded source=file): the previous key
still decrypts, so an old ticket resumes and a fresh one too; after a
second rotation the oldest ticket gives a full handshake. A SIGHUP keeps
the keys (tickets survive it), and a bad file is refused, at the check and
at a reload, while the keys in use stay. Every wait is on a log line, with
a deadline."""

import os
import re
import shutil
import stat
import subprocess

import pytest

import igtest

# The check runs every 5 s (SERVER_TK_CHECK_MS): a change is seen within
# that, plus the load of a busy ASan machine.
PICKUP_TIMEOUT = 20


def run(argv, timeout=30):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=env, text=True)


def ticket_key(binary, cmd, path):
    """Runs `imapguard ticket-key CMD PATH`; returns the encrypting key's
    name it printed."""
    r = run([binary, "ticket-key", cmd, path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LeakSanitizer" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr
    m = re.search(r": key ([0-9a-f]{8}) encrypts", r.stdout)
    assert m, r.stdout
    return m.group(1)


def loaded(ig):
    """(source, encrypt, decrypt) of every event=ticket-keys-loaded."""
    return re.findall(r"event=ticket-keys-loaded file=\S+ source=(\S+) encrypt=(\S+) "
                      r"decrypt=(\S+)", ig.log_text())


def wait_loaded(ig, enc, dec, source="file"):
    igtest.wait_until(lambda: (source, enc, dec) in loaded(ig), PICKUP_TIMEOUT,
                      "event=ticket-keys-loaded source=%s encrypt=%s decrypt=%s" %
                      (source, enc, dec))


def s_client(ig, ca, sess, mode, proto="-tls1_3"):
    """One session with openssl s_client (NOOP, LOGOUT), saving (mode
    "out") or offering (mode "in") the session in file sess. Returns "New"
    or "Reused"."""
    host, port = ig.addr("imaps")
    r = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-CAfile", ca,
         "-verify_return_error", "-servername", "localhost", "-crlf", "-ign_eof", proto,
         "-sess_" + mode, sess],
        input=b"a NOOP\nb LOGOUT\n", capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert re.search(r"^b OK", out, re.M), out + r.stderr.decode(errors="replace")
    m = re.search(r"^(New|Reused), TLSv1\.[23]", out, re.M)
    assert m, out
    if mode == "out":
        assert os.path.getsize(sess) > 0
    return m.group(1)


def new_ticket(ig, ca, tmp_path, name, proto="-tls1_3"):
    sess = str(tmp_path / (name + ".pem"))
    assert s_client(ig, ca, sess, "out", proto) == "New"
    return sess


def resumes(ig, ca, sess, proto="-tls1_3"):
    return s_client(ig, ca, sess, "in", proto) == "Reused"


@pytest.fixture
def keyfile(imapguard_bin, tmp_path):
    path = str(tmp_path / "ticket.keys")
    name = ticket_key(imapguard_bin, "new", path)
    return path, name


def with_keys(devcerts, dovecot, path):
    cfg = igtest.base_config(devcerts, dovecot.address, listeners=("imaps",))
    cfg["tls"]["ticket_key_file"] = path
    return cfg


@pytest.mark.parametrize("proto", ["-tls1_3", "-tls1_2"])
def test_fleet_resumes_each_others_tickets(imapguard, devcerts, dovecot, ca, tmp_path, keyfile,
                                           proto):
    path, k1 = keyfile
    a = imapguard(with_keys(devcerts, dovecot, path))
    b = imapguard(with_keys(devcerts, dovecot, path))
    for ig in (a, b):
        assert ("start", k1, "none") in loaded(ig)
    sess = new_ticket(a, ca, tmp_path, "a", proto)
    assert resumes(b, ca, sess, proto), "B did not resume A's ticket"
    sess = new_ticket(b, ca, tmp_path, "b", proto)
    assert resumes(a, ca, sess, proto), "A did not resume B's ticket"
    igtest.wait_until(lambda: "resumed=yes" in b.log_text(), 5, "resumed=yes on B")
    # Never a key byte in the log: only names.
    with open(path) as f:
        secret = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    for ig in (a, b):
        assert not any(s in ig.log_text() for s in secret)


def test_rotation_without_reload(imapguard_bin, imapguard, devcerts, dovecot, ca, tmp_path,
                                 keyfile):
    path, k1 = keyfile
    a = imapguard(with_keys(devcerts, dovecot, path))
    b = imapguard(with_keys(devcerts, dovecot, path))
    old = new_ticket(a, ca, tmp_path, "old")

    k2 = ticket_key(imapguard_bin, "rotate", path)
    for ig in (a, b):
        wait_loaded(ig, k2, k1)
        assert "event=reload" not in ig.log_text()
    assert resumes(a, ca, old), "the previous key no longer decrypts"
    assert resumes(b, ca, old)
    fresh = new_ticket(b, ca, tmp_path, "fresh")
    assert resumes(a, ca, fresh), "a ticket under the new key does not resume elsewhere"
    assert resumes(b, ca, fresh)

    k3 = ticket_key(imapguard_bin, "rotate", path)
    for ig in (a, b):
        wait_loaded(ig, k3, k2)
    assert not resumes(a, ca, old), "a ticket two rotations old still resumes"
    assert not resumes(b, ca, old)
    assert resumes(a, ca, fresh), "the key of one rotation ago no longer decrypts"
    assert resumes(b, ca, new_ticket(a, ca, tmp_path, "newest"))


def test_keys_outlive_session_timeout(imapguard, devcerts, dovecot, ca, tmp_path, keyfile):
    """mbedTLS replaces an encrypting key older than its lifetime
    (tls.session_timeout) with a random key of its own, which the rest of
    the fleet could not decrypt: the file's keys are installed again at
    half their lifetime. Past two lifetimes, the fleet still shares keys."""
    path, _ = keyfile
    cfg = with_keys(devcerts, dovecot, path)
    cfg["tls"]["session_timeout"] = "10s"
    a = imapguard(cfg)
    b = imapguard(cfg)
    what = "event=ticket-keys-refreshed"
    for ig in (a, b):
        igtest.wait_until(lambda: ig.log_text().count(what) >= 4, 40, "four refreshes")
    sess = new_ticket(a, ca, tmp_path, "late")
    assert resumes(b, ca, sess), "a process encrypts with a key of its own"


def test_sighup_keeps_tickets(imapguard, devcerts, dovecot, ca, tmp_path, keyfile):
    path, k1 = keyfile
    a = imapguard(with_keys(devcerts, dovecot, path))
    sess = new_ticket(a, ca, tmp_path, "s")
    a.reload()
    assert "event=ticket-keys-kept file=%s encrypt=%s decrypt=none" % (path, k1) in a.log_text()
    assert resumes(a, ca, sess), "a SIGHUP threw the ticket keys away"


def test_reload_with_a_rotated_file(imapguard_bin, imapguard, devcerts, dovecot, ca, tmp_path,
                                    keyfile):
    """A SIGHUP soon after a rotation reads the new file itself (the check
    has nothing left to do)."""
    path, k1 = keyfile
    a = imapguard(with_keys(devcerts, dovecot, path))
    sess = new_ticket(a, ca, tmp_path, "s")
    k2 = ticket_key(imapguard_bin, "rotate", path)
    a.reload()
    assert ("reload", k2, k1) in loaded(a) or ("file", k2, k1) in loaded(a)
    assert resumes(a, ca, sess)


def test_bad_file_refused_old_keys_stay(imapguard_bin, imapguard, devcerts, dovecot, ca,
                                        tmp_path, keyfile):
    path, k1 = keyfile
    a = imapguard(with_keys(devcerts, dovecot, path))
    sess = new_ticket(a, ca, tmp_path, "s")

    # Bad content, written in place: the check refuses it, once.
    with open(path, "a") as f:
        f.write("not base64!\n")
    what = "event=ticket-keys-refused file=%s" % path
    igtest.wait_until(lambda: what in a.log_text(), PICKUP_TIMEOUT, what)
    line = [ln for ln in a.log_text().splitlines() if what in ln][0]
    assert 'error="line 7, column 4: a blank inside a key"' in line, line
    assert "keeping=%s" % k1 in line
    assert resumes(a, ca, sess)
    # A reload reads it too and is refused: the running keys stay.
    a.reload(what="event=reload-failed")
    assert "tls.ticket_key_file" in a.log_text()
    assert resumes(a, ca, sess)
    assert a.log_text().count(what) == 1, "a refused file is logged once, not at every check"

    # Readable by others: refused too (a chmod changes the file's identity).
    good = str(tmp_path / "good.keys")
    k2 = ticket_key(imapguard_bin, "new", good)
    os.chmod(good, 0o644)
    os.rename(good, path)
    igtest.wait_until(lambda: a.log_text().count(what) == 2, PICKUP_TIMEOUT, "a second refusal")
    assert "mode 0644: other users can read it" in a.log_text()
    assert resumes(a, ca, sess)

    # Fixed: picked up.
    os.chmod(path, 0o600)
    wait_loaded(a, k2, "none")
    assert not resumes(a, ca, sess), "a key no longer in the file still decrypts"


def test_missing_file_keeps_keys(imapguard_bin, imapguard, devcerts, dovecot, ca, tmp_path,
                                 keyfile):
    path, k1 = keyfile
    a = imapguard(with_keys(devcerts, dovecot, path))
    sess = new_ticket(a, ca, tmp_path, "s")
    os.rename(path, path + ".away")
    what = "event=ticket-keys-refused file=%s error=\"No such file or directory\"" % path
    igtest.wait_until(lambda: what in a.log_text(), PICKUP_TIMEOUT, what)
    assert resumes(a, ca, sess)
    os.rename(path + ".away", path)
    assert resumes(a, ca, sess)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the proxy drops to nobody")
def test_user_must_read_the_file(imapguard_bin, imapguard, devcerts, dovecot):
    """With `user`, the file is read again as that user (on a change, on
    reload): a file only root can read fails the start; root:nogroup 0640
    works, and rotate keeps that owner, group and mode."""
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="igtk-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        path = os.path.join(d, "ticket.keys")
        k1 = ticket_key(imapguard_bin, "new", path)
        cfg = with_keys(devcerts, dovecot, path)
        cfg["user"] = "nobody"
        with pytest.raises(RuntimeError, match=r"event=start-failed reason=ticket-key-file .*"
                           r"make it readable by nobody"):
            imapguard(cfg)
        os.chown(path, 0, nobody.pw_gid)
        os.chmod(path, 0o640)
        a = imapguard(cfg)
        k2 = ticket_key(imapguard_bin, "rotate", path)
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, nobody.pw_gid, 0o640)
        wait_loaded(a, k2, k1)
        a.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_start_refuses_bad_file(imapguard_bin, devcerts, dovecot, tmp_path, keyfile):
    """-t (and the start) refuse a bad key file at file:line:col of the key."""
    path, _ = keyfile
    cfg = with_keys(devcerts, dovecot, path)
    cfg["listeners"][0]["listen"] = "127.0.0.1:%d" % igtest.free_port()
    cfg_path = str(tmp_path / "imapguard.yaml")
    text = igtest.to_yaml(cfg) + "\n"
    with open(cfg_path, "w") as f:
        f.write(text)
    r = run([imapguard_bin, "-t", "-c", cfg_path])
    assert r.returncode == 0, r.stderr
    line = [i for i, ln in enumerate(text.split("\n")) if "ticket_key_file:" in ln][0]
    col = text.split("\n")[line].index(path) + 1
    os.chmod(path, 0o640)
    assert run([imapguard_bin, "-t", "-c", cfg_path]).returncode == 0
    os.chmod(path, 0o604)
    r = run([imapguard_bin, "-t", "-c", cfg_path])
    assert r.returncode != 0
    # (A long path is shortened in the message.)
    where = re.escape("%s:%d:%d: cannot use '" % (cfg_path, line + 1, col))
    assert re.search(where + r"[^']+' for 'tls\.ticket_key_file': mode 0604: other users can "
                     r"read it", r.stderr), r.stderr
    os.chmod(path, 0o600)
    with open(path, "w") as f:
        f.write("QUFBQQ==\n")
    r = run([imapguard_bin, "-t", "-c", cfg_path])
    assert r.returncode != 0
    assert re.search(where + r"[^']+' for 'tls\.ticket_key_file': line 1, column 1: the key "
                     r"decodes to 4 bytes", r.stderr), r.stderr


def test_ticket_key_command(imapguard_bin, tmp_path):
    path = str(tmp_path / "k")
    k1 = ticket_key(imapguard_bin, "new", path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    r = run([imapguard_bin, "ticket-key", "new", path])
    assert r.returncode == 1 and "exists already" in r.stderr, r.stderr
    # rotate keeps the mode (640: a group that runs imapguard reads it).
    os.chmod(path, 0o640)
    ino = os.stat(path).st_ino
    r = run([imapguard_bin, "ticket-key", "rotate", path])
    assert r.returncode == 0, r.stderr
    m = re.search(r"key ([0-9a-f]{8}) encrypts, key %s decrypts\n" % k1, r.stdout)
    assert m, r.stdout
    k2 = m.group(1)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_ino != ino  # replaced by rename
    r = run([imapguard_bin, "ticket-key", "rotate", path])
    assert re.search(r"encrypts, key %s decrypts, key %s dropped" % (k2, k1), r.stdout), r.stdout
    with open(path) as f:
        text = f.read()
    assert len([ln for ln in text.splitlines() if ln and not ln.startswith("#")]) == 2
    assert os.listdir(str(tmp_path)) == ["k"], "a temporary file was left behind"
    # Through a symbolic link: the file it points to is replaced, the link stays.
    link = str(tmp_path / "link")
    os.symlink("k", link)
    r = run([imapguard_bin, "ticket-key", "rotate", link])
    assert r.returncode == 0, r.stderr
    assert os.path.islink(link) and os.readlink(link) == "k"
    assert sorted(os.listdir(str(tmp_path))) == ["k", "link"]
    os.unlink(link)
    # Refused files are not rotated.
    os.chmod(path, 0o644)
    r = run([imapguard_bin, "ticket-key", "rotate", path])
    assert r.returncode == 1 and "mode 0644" in r.stderr, r.stderr
    assert run([imapguard_bin, "ticket-key", "rotate"]).returncode == 2
    assert run([imapguard_bin, "ticket-key", "frobnicate", path]).returncode == 2
    assert shutil.which("openssl")
