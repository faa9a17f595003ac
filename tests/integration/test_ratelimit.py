"""Brute-force and password-spraying defence against the real Dovecot:
failures are learned from Dovecot's NO; refused attempts are answered
NO [UNAVAILABLE] without the backend seeing them; an address that failed 10
times is locked; spraying 20 user names from one address is stopped; one
password across many users and addresses is stopped; a user's known address
stays usable under attack (no lockout DoS); blocks expire, survive reload
and restart, and `imapguard ctl` lists and lifts them; a connection is
dropped after repeated failures; failures are answered with a growing delay.
Each test runs its own proxy on its own client addresses (127.0.0.x)."""

import copy
import os
import signal
import subprocess
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code

BOB, BOB_PW = "bob@example.com", "bob-secret"


def rl_config(devcerts, dovecot, tmpdir, **over):
    cfg = igtest.base_config(devcerts, dovecot.address)
    rl = {
        "tarpit": {"base": "50ms", "max": "200ms"},
        "max_connection_failures": 100,
    }
    rl.update(over)
    cfg["ratelimit"] = rl
    cfg["admin"] = {"socket": os.path.join(tmpdir, "ctl.sock")}
    return cfg


@pytest.fixture
def tmpdir_short():
    # Unix socket paths must stay short.
    import tempfile
    import shutil
    d = tempfile.mkdtemp(prefix="igrl-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_on_by_default(imapguard, devcerts, dovecot):
    cfg = igtest.base_config(devcerts, dovecot.address)
    del cfg["ratelimit"]
    ig = imapguard(cfg)
    assert "event=ratelimit state=enabled max_keys=100000" in ig.log_text()


tls = igtest.tls_client


def login(ig, ca, source, user, pw):
    c = tls(ig, ca, source)
    try:
        return c.cmd("a", "LOGIN %s %s" % (user, pw))[1]
    finally:
        c.close()


untouched = igtest.backend_untouched


def log_stamp(log, needle):
    """The time (seconds) of the first log line containing needle."""
    import datetime
    for line in log.splitlines():
        if needle in line:
            t = datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")
            return t.timestamp()
    raise AssertionError("no %r in the log" % needle)


def ctl(ig, *args):
    sock = ig.config["admin"]["socket"]
    return subprocess.run([ig.binary, "ctl", "-s", sock] + list(args),
                          capture_output=True, text=True, timeout=30)


def test_ten_failures_lock_the_address(imapguard, devcerts, dovecot, ca, tmpdir_short):
    ig = imapguard(rl_config(devcerts, dovecot, tmpdir_short,
                             user_address={"threshold": 0}, user={"threshold": 0}))
    src = "127.0.0.3"
    for i in range(10):
        tagged = login(ig, ca, src, ALICE, "wrong-%d" % i)
        assert resp_code(tagged) == "AUTHENTICATIONFAILED", (i, tagged)
    # Locked: even the right password is refused, and Dovecot never sees it.
    tagged = untouched(dovecot, lambda: login(ig, ca, src, ALICE, ALICE_PW))
    assert status(tagged) == "NO" and resp_code(tagged) == "UNAVAILABLE", tagged
    assert "minutes" in tagged or "seconds" in tagged
    # Other addresses are not affected.
    assert status(login(ig, ca, "127.0.0.4", ALICE, ALICE_PW)) == "OK"
    log = ig.log_text()
    assert "event=ratelimit-block limit=address" in log
    assert "reason=ratelimit limit=address" in log
    # The operator sees the block and can lift it.
    r = ctl(ig, "list")
    assert r.returncode == 0 and "address\t127.0.0.3\t" in r.stdout, r.stdout + r.stderr
    r = ctl(ig, "lift", "address", "127.0.0.3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "event=ratelimit-lifted limit=address" in ig.log_text()
    assert status(login(ig, ca, src, ALICE, ALICE_PW)) == "OK"
    r = ctl(ig, "lift", "address", "127.0.0.3")
    assert r.returncode == 1


def test_spraying_user_names_from_one_address(imapguard, devcerts, dovecot, ca, tmpdir_short):
    # The plain per-address count is raised so that only the distinct-user
    # (spraying) limit can fire here.
    ig = imapguard(rl_config(devcerts, dovecot, tmpdir_short, address={"threshold": 100}))
    src = "127.0.0.5"
    before = igtest.imap_login_count(dovecot)
    answers = [login(ig, ca, src, "victim%d@example.com" % i, "pw-%d" % i) for i in range(20)]
    seen = igtest.imap_login_count(dovecot) - before
    assert [resp_code(a) for a in answers[:10]] == ["AUTHENTICATIONFAILED"] * 10
    assert all(resp_code(a) == "UNAVAILABLE" for a in answers[10:]), answers[10:]
    assert seen == 10, "the backend saw %d attempts" % seen
    assert "limit=spray-address" in ig.log_text()


def test_one_password_across_many_users_and_addresses(imapguard, devcerts, dovecot, ca,
                                                       tmpdir_short):
    ig = imapguard(rl_config(devcerts, dovecot, tmpdir_short))
    # Alice has a known address; she logs in there first.
    assert status(login(ig, ca, "127.0.1.100", ALICE, ALICE_PW)) == "OK"
    for i in range(10):
        tagged = login(ig, ca, "127.0.1.%d" % (i + 1), "target%d@example.com" % i, "Winter2026!")
        assert resp_code(tagged) == "AUTHENTICATIONFAILED"
    # The sprayed password is now refused from addresses not known for the user...
    tagged = untouched(dovecot, lambda: login(ig, ca, "127.0.1.50", BOB, "Winter2026!"))
    assert resp_code(tagged) == "UNAVAILABLE"
    assert "limit=password-spray" in ig.log_text()
    # ...but another password still works, and a user's known address is spared.
    assert status(login(ig, ca, "127.0.1.51", BOB, BOB_PW)) == "OK"
    tagged = login(ig, ca, "127.0.1.100", ALICE, "Winter2026!")
    assert resp_code(tagged) == "AUTHENTICATIONFAILED"


def test_known_address_survives_attack_on_user(imapguard, devcerts, dovecot, ca, tmpdir_short):
    ig = imapguard(rl_config(devcerts, dovecot, tmpdir_short))
    home = "127.0.0.6"
    assert status(login(ig, ca, home, ALICE, ALICE_PW)) == "OK"
    # An attacker fails against alice from several other addresses.
    for src in ("127.0.0.7", "127.0.0.8", "127.0.0.9"):
        for i in range(5):
            login(ig, ca, src, ALICE, "guess-%s-%d" % (src, i))
    assert "event=ratelimit-block limit=user" in ig.log_text()
    # Alice is refused from an address never used by her...
    tagged = untouched(dovecot, lambda: login(ig, ca, "127.0.0.10", ALICE, ALICE_PW))
    assert resp_code(tagged) == "UNAVAILABLE"
    # ...but not from where she logged in recently.
    assert status(login(ig, ca, home, ALICE, ALICE_PW)) == "OK"


def test_lock_expires(imapguard, devcerts, dovecot, ca, tmpdir_short):
    ig = imapguard(rl_config(devcerts, dovecot, tmpdir_short,
                             address={"threshold": 3, "block": "2s"},
                             user_address={"threshold": 0}))
    src = "127.0.0.11"
    for i in range(3):
        login(ig, ca, src, BOB, "nope-%d" % i)
    assert resp_code(login(ig, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    # The block ends by itself (2 s): poll under a deadline, no fixed sleep.
    igtest.wait_until(lambda: status(login(ig, ca, src, BOB, BOB_PW)) == "OK", 15,
                      "the 2 s block to expire", interval=0.2)


def test_block_survives_reload_and_restart(imapguard, devcerts, dovecot, ca, tmpdir_short):
    state = os.path.join(tmpdir_short, "rl.state")
    cfg = rl_config(devcerts, dovecot, tmpdir_short, address={"threshold": 3},
                    user_address={"threshold": 0}, state_file=state)
    ig = imapguard(cfg)
    src = "127.0.0.12"
    for i in range(3):
        login(ig, ca, src, BOB, "nope-%d" % i)
    assert resp_code(login(ig, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    ig.proc.send_signal(signal.SIGHUP)
    igtest.wait_until(lambda: "event=reload-done" in ig.log_text(), 10, "reload")
    assert resp_code(login(ig, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    ig.stop()
    assert os.path.exists(state)
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    ig2 = imapguard(cfg)
    assert "event=ratelimit-state-loaded" in ig2.log_text()
    assert resp_code(login(ig2, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    assert status(login(ig2, ca, "127.0.0.13", BOB, BOB_PW)) == "OK"


def test_disconnect_after_repeated_failures_with_growing_delay(imapguard, devcerts, dovecot,
                                                                ca, tmpdir_short):
    ig = imapguard(rl_config(devcerts, dovecot, tmpdir_short, max_connection_failures=3,
                             tarpit={"base": "300ms", "max": "2s"}))
    c = tls(ig, ca, "127.0.0.14")
    try:
        times = []
        for i in range(3):
            t0 = time.monotonic()
            tagged = c.cmd("a%d" % i, "LOGIN %s bad%d" % (BOB, i))[1]
            times.append(time.monotonic() - t0)
            assert resp_code(tagged) == "AUTHENTICATIONFAILED"
        # The answer to later failures is held back longer (tarpit).
        assert times[1] >= 0.25 and times[2] >= 0.55, times
        data = c.expect_closed()
        assert b"* BYE" in data
    finally:
        c.close()
    assert "reason=too-many-failures" in ig.log_text()


def test_oversized_state_file_is_refused_unread(imapguard, devcerts, dovecot, ca, tmpdir_short):
    """A state file larger than any the limiter writes (a sparse gigabyte
    here) is refused from its size, without reading it: the proxy starts at
    once, empty, says why, and its next save replaces the file."""
    state = os.path.join(tmpdir_short, "rl.state")
    with open(state, "wb") as f:
        f.truncate(1 << 30)
    cfg = rl_config(devcerts, dovecot, tmpdir_short, max_keys=1000, max_known=100,
                    address={"threshold": 3}, user_address={"threshold": 0},
                    state_file=state)
    ig = imapguard(cfg)
    log = ig.log_text()
    assert "event=ratelimit-state-ignored file=%s reason=too-large bytes=%d" % (
        state, 1 << 30) in log, log
    assert "event=ratelimit-state-loaded" not in log
    # From the start line to the verdict on the file: no gigabyte read.
    took = log_stamp(log, " event=ratelimit-state-ignored ") - log_stamp(log, " event=start ")
    assert took < 2.0, "judging the state file took %.1f s" % took
    # The limiter works from empty.
    src = "127.0.0.15"
    for i in range(3):
        login(ig, ca, src, BOB, "nope-%d" % i)
    assert resp_code(login(ig, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    ig.stop()
    assert os.path.getsize(state) < 1 << 20


@pytest.fixture
def unmanaged(imapguard_bin, devcerts, tmpdir_short):
    """Instances a test crashes or expects to be refused: made, not started;
    the test starts them. At the end they are stopped (killed if need be)
    without the clean-exit check."""
    made = []

    def make(cfg, name):
        d = os.path.join(tmpdir_short, name)
        os.mkdir(d)
        ig = igtest.Imapguard(imapguard_bin, d, cfg, certs=devcerts)
        made.append(ig)
        return ig
    yield make
    for ig in made:
        ig.stop(check=False)


def stats(ig):
    r = ctl(ig, "stats")
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)


def test_block_survives_a_crash(imapguard, unmanaged, devcerts, dovecot, ca, tmpdir_short):
    """Blocks reach the state file within state_sync of their start, not
    only at a clean shutdown: after kill -9 and a restart on the same file,
    the locked address is still refused without Dovecot seeing it."""
    state = os.path.join(tmpdir_short, "rl.state")
    cfg = rl_config(devcerts, dovecot, tmpdir_short, address={"threshold": 3},
                    user_address={"threshold": 0}, state_file=state, state_sync="200ms")
    ig = unmanaged(cfg, "crashing").start()
    src = "127.0.0.16"
    for i in range(3):
        login(ig, ca, src, BOB, "nope-%d" % i)
    assert resp_code(login(ig, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    # Nothing changes the limiter from here on: wait for a save that has
    # every change so far (the save runs off the event loop).
    changes = int(stats(ig)["ratelimit_changes"])
    assert changes >= 3
    igtest.wait_until(lambda: int(stats(ig)["ratelimit_state_saved_changes"]) >= changes,
                      10, "the state file to hold %d changes" % changes)
    assert "event=ratelimit-state-saved file=%s" % state in ig.log_text()
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    ig.proc.kill()
    assert ig.proc.wait(10) == -signal.SIGKILL
    ig.stop(check=False)
    assert "event=shutdown" not in ig.log_text()

    ig2 = imapguard(cfg)
    assert "event=ratelimit-state-loaded file=%s" % state in ig2.log_text()
    tagged = untouched(dovecot, lambda: login(ig2, ca, src, BOB, BOB_PW))
    assert status(tagged) == "NO" and resp_code(tagged) == "UNAVAILABLE", tagged
    assert status(login(ig2, ca, "127.0.0.17", BOB, BOB_PW)) == "OK"
    ig2.stop()


def second_config(cfg, **over):
    cfg2 = copy.deepcopy(cfg)
    cfg2["ratelimit"].update(over)
    return cfg2


def test_second_instance_on_the_same_admin_socket_is_refused(imapguard, unmanaged, devcerts,
                                                              dovecot, tmpdir_short):
    """Another instance (other ports) configured with a running instance's
    admin.socket refuses to start and leaves the socket alone: the first
    stays reachable by `imapguard ctl`, also after the second is gone."""
    cfg = rl_config(devcerts, dovecot, tmpdir_short,
                    state_file=os.path.join(tmpdir_short, "one.state"))
    ig = imapguard(cfg)
    sock = cfg["admin"]["socket"]
    inode = os.stat(sock).st_ino
    ig2 = unmanaged(second_config(cfg, state_file=os.path.join(tmpdir_short, "two.state")),
                    "second")
    with pytest.raises(RuntimeError):
        ig2.start()
    assert ig2.exit_code not in (0, None), ig2.exit_code
    log2 = ig2.log_text()
    assert "event=start-failed reason=admin-socket-in-use path=%s" % sock in log2, log2
    assert " event=ready " not in log2
    assert not igtest.can_connect(*ig2.addr("imaps"))
    assert os.stat(sock).st_ino == inode
    assert stats(ig)["sessions"] == "0"
    ig.stop()


def test_second_instance_on_the_same_state_file_is_refused(imapguard, unmanaged, devcerts,
                                                            dovecot, ca, tmpdir_short):
    """Another instance with the same ratelimit.state_file and its own
    admin socket refuses to start, naming the holder: two writers would
    overwrite each other's blocks. The first keeps saving its state."""
    state = os.path.join(tmpdir_short, "rl.state")
    cfg = rl_config(devcerts, dovecot, tmpdir_short, state_file=state,
                    address={"threshold": 3}, user_address={"threshold": 0})
    ig = imapguard(cfg)
    cfg2 = copy.deepcopy(cfg)
    cfg2["admin"]["socket"] = os.path.join(tmpdir_short, "ctl2.sock")
    ig2 = unmanaged(cfg2, "second")
    with pytest.raises(RuntimeError):
        ig2.start()
    assert ig2.exit_code not in (0, None), ig2.exit_code
    log2 = ig2.log_text()
    assert ("event=start-failed reason=state-file-in-use file=%s lock=%s.lock holder_pid=%d"
            % (state, state, ig.pid)) in log2, log2
    assert " event=ready " not in log2
    assert not os.path.exists(cfg2["admin"]["socket"])
    # The first instance is untouched and still owns the file.
    src = "127.0.0.18"
    for i in range(3):
        login(ig, ca, src, BOB, "nope-%d" % i)
    ig.stop()
    ig3 = imapguard(cfg2)
    assert "event=ratelimit-state-loaded file=%s" % state in ig3.log_text()
    assert resp_code(login(ig3, ca, src, BOB, BOB_PW)) == "UNAVAILABLE"
    ig3.stop()


def test_stale_admin_socket_is_replaced(imapguard, devcerts, dovecot, tmpdir_short):
    """A socket file nobody listens on (left by a crash) is replaced."""
    import socket
    cfg = rl_config(devcerts, dovecot, tmpdir_short)
    sock = cfg["admin"]["socket"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)
    s.close()
    assert os.path.exists(sock)
    ig = imapguard(cfg)
    assert "event=admin-socket path=%s" % sock in ig.log_text()
    assert stats(ig)["sessions"] == "0"


def test_failing_saves_are_logged_sparingly(imapguard, devcerts, dovecot, ca, tmpdir_short):
    """A state file that cannot be written (here its temporary name is taken
    by a directory) does not stop the proxy: the first failure is logged,
    the retries at every state_sync are counted but not logged again within
    a minute, and the next good save says it recovered."""
    state = os.path.join(tmpdir_short, "rl.state")
    cfg = rl_config(devcerts, dovecot, tmpdir_short, state_file=state, state_sync="100ms")
    ig = imapguard(cfg)
    os.mkdir(state + ".tmp")
    login(ig, ca, "127.0.0.19", BOB, "nope")
    igtest.wait_until(lambda: int(stats(ig)["ratelimit_state_save_failures"]) >= 3, 10,
                      "three failed saves")
    log = ig.log_text()
    assert log.count("event=ratelimit-state-save-failed") == 1, log
    assert "event=ratelimit-state-save-failed file=%s error=\"I/O error: " % state in log
    assert status(login(ig, ca, "127.0.0.20", BOB, BOB_PW)) == "OK"
    os.rmdir(state + ".tmp")
    igtest.wait_until(lambda: "event=ratelimit-state-save-recovered" in ig.log_text(), 10,
                      "a good save")
    assert stats(ig)["ratelimit_state_save_failures"] == "0"
    ig.stop()
    assert "trigger=shutdown" in ig.log_text()
    assert not os.path.exists(state + ".tmp")
