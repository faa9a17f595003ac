"""One loop per core (workers: N): the kernel spreads connections over the
workers' SO_REUSEPORT sockets, and whatever a worker learns or is told
reaches every worker. A connection's worker is read from its event=connect
log line (worker=N), so each test holds connections on two different
workers before it checks anything: a failure on worker A counts on worker
B, kick, reload and stats reach every worker, SIGTERM ends the sessions of
all of them, and a port in use still fails the start."""

import copy
import os
import re
import signal
import socket
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW, status, resp_code

WORKERS = 2


@pytest.fixture
def tmpdir_short():
    # Unix socket paths must stay short.
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="igwk-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def config(devcerts, dovecot, tmpdir, **rl):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["workers"] = WORKERS
    cfg["admin"] = {"socket": os.path.join(tmpdir, "ctl.sock")}
    if rl:
        cfg["ratelimit"] = rl
    return cfg


def worker_of(ig, c):
    """The worker that accepted c (from its event=connect line)."""
    port = c.sock.getsockname()[1]
    pat = re.compile(r"client=[0-9.]+:%d listener=\S+ event=connect tls=\S+ worker=(\d+)" % port)
    found = []

    def seen():
        m = pat.search(ig.log_text())
        if m:
            found.append(int(m.group(1)))
        return bool(m)
    igtest.wait_until(seen, igtest.IO_TIMEOUT, "event=connect of client port %d" % port)
    return found[0]


def one_per_worker(ig, ca, source=None, tries=64):
    """TLS clients, greeted, one on each worker (index = worker); the
    extra connections it took are closed."""
    got, extra = {}, []
    for _ in range(tries):
        c = igtest.tls_client(ig, ca, source)
        w = worker_of(ig, c)
        if w in got:
            extra.append(c)
        else:
            got[w] = c
        if len(got) == WORKERS:
            break
    for c in extra:
        c.close()
    assert len(got) == WORKERS, "after %d connections, only workers %s were seen" % (
        tries, sorted(got))
    return [got[w] for w in range(WORKERS)]


def ctl(ig, *args):
    return subprocess.run([ig.binary, "ctl", "-s", ig.config["admin"]["socket"]] + list(args),
                          capture_output=True, text=True, timeout=30)


def test_workers_auto_and_count(imapguard, devcerts, dovecot, tmpdir_short):
    cfg = config(devcerts, dovecot, tmpdir_short)
    ig = imapguard(cfg)
    assert "event=ready listeners=2 workers=%d " % WORKERS in ig.log_text()
    r = ctl(ig, "stats")
    assert r.returncode == 0 and "workers\t%d\n" % WORKERS in r.stdout, r.stdout
    cfg["workers"] = "auto"
    cfg["admin"] = {"socket": os.path.join(tmpdir_short, "ctl2.sock")}
    ig2 = imapguard(cfg)
    m = re.search(r"event=ready listeners=2 workers=(\d+) ", ig2.log_text())
    assert m and int(m.group(1)) == len(os.sched_getaffinity(0)), ig2.log_text()[-2000:]


def test_failure_on_one_worker_counts_on_another(imapguard, devcerts, dovecot, ca,
                                                 tmpdir_short):
    """The limiter is the process's: ten failures from one address, half on
    each worker, lock the address on both. (A limiter per worker would see
    five on each and lock nothing.)"""
    ig = imapguard(config(devcerts, dovecot, tmpdir_short,
                          user_address={"threshold": 0}, user={"threshold": 0},
                          tarpit={"base": "10ms", "max": "50ms"},
                          max_connection_failures=100))
    src = "127.0.0.7"
    conns = one_per_worker(ig, ca, src)
    for i in range(10):
        tagged = conns[i % WORKERS].cmd("a%d" % i, "LOGIN %s wrong-%d" % (ALICE, i))[1]
        assert resp_code(tagged) == "AUTHENTICATIONFAILED", (i, tagged)
    # Locked on both workers, the right password included.
    for w, c in enumerate(conns):
        tagged = igtest.backend_untouched(
            dovecot, lambda: c.cmd("ok%d" % w, "LOGIN %s %s" % (ALICE, ALICE_PW))[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "UNAVAILABLE", (w, tagged)
    log = ig.log_text()
    assert log.count("event=ratelimit-block limit=address") == 1, log[-3000:]
    for c in conns:
        c.close()


def test_kick_reload_and_stats_reach_every_worker(imapguard, devcerts, dovecot, ca,
                                                  tmpdir_short):
    ig = imapguard(config(devcerts, dovecot, tmpdir_short))
    cfg = copy.deepcopy(ig.config)  # (with the ports it was given)
    conns = one_per_worker(ig, ca)
    for i, c in enumerate(conns):
        assert status(c.cmd("l%d" % i, "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    # (The extra connections one_per_worker closed may take a moment to go.)
    igtest.wait_until(lambda: "sessions\t%d\n" % WORKERS in ctl(ig, "stats").stdout,
                      igtest.IO_TIMEOUT, "ctl stats: sessions %d" % WORKERS)
    r = ctl(ig, "kick", ALICE)
    assert r.returncode == 0 and "ok kicked %d sessions" % WORKERS in r.stdout, r.stdout
    for c in conns:
        assert b"* BYE [UNAVAILABLE]" in c.expect_closed()

    # A reload that denies alice ends her sessions on every worker, and
    # every worker judges new logins by the new policy.
    conns = one_per_worker(ig, ca)
    for i, c in enumerate(conns):
        assert status(c.cmd("m%d" % i, "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    cfg["policy"]["users"] = {ALICE: {"deny": True}}
    ig.reload(cfg)
    assert re.search(r"event=reload-done sessions=\d+ revoked=%d" % WORKERS, ig.log_text())
    for c in conns:
        assert b"* BYE" in c.expect_closed()
    conns = one_per_worker(ig, ca)
    for i, c in enumerate(conns):
        tagged = igtest.backend_untouched(
            dovecot, lambda: c.cmd("n%d" % i, "LOGIN %s %s" % (ALICE, ALICE_PW))[1])
        assert status(tagged) == "NO", (i, tagged)
        c.close()


def test_sigterm_ends_sessions_on_every_worker(imapguard, devcerts, dovecot, ca, tmpdir_short):
    """Not logged in yet, each is told "* BYE" at once (the drain does not
    wait for them); the process exits 0."""
    ig = imapguard(config(devcerts, dovecot, tmpdir_short))
    conns = one_per_worker(ig, ca)
    # The extra connections one_per_worker closed are gone first, so that
    # the drain counts exactly ours.
    igtest.wait_until(lambda: "sessions\t%d\n" % WORKERS in ctl(ig, "stats").stdout,
                      igtest.IO_TIMEOUT, "ctl stats: sessions %d" % WORKERS)
    ig.proc.send_signal(signal.SIGTERM)
    for c in conns:
        assert b"* BYE [UNAVAILABLE] Server shutting down" in c.expect_closed()
        c.close()
    assert ig.proc.wait(igtest.IO_TIMEOUT) == 0
    log = ig.log_text()
    assert re.search(r"event=drain-start reason=SIGTERM sessions=%d ended_now=%d "
                     % (WORKERS, WORKERS), log), log[-3000:]
    # (all-ended, or timeout when a client closes its side only after
    # drain_timeout: our side lingers until it does)
    assert re.search(r"event=shutdown reason=(all-ended|timeout) sessions=\d+ workers=%d"
                     % WORKERS, log)
    assert "event=stopped" in log


def test_port_in_use_fails_the_start(imapguard, devcerts, dovecot, tmpdir_short):
    """SO_REUSEPORT must not let a second process share our port, nor us
    share somebody else's: a port in use fails the start as it does with
    one worker, whether its holder uses SO_REUSEPORT or not."""
    ig = imapguard(config(devcerts, dovecot, tmpdir_short))
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(8)
    try:
        for taken in (ig.ports["imaps"], holder.getsockname()[1]):
            cfg = config(devcerts, dovecot, tmpdir_short)
            cfg["admin"] = {"socket": os.path.join(tmpdir_short, "other.sock")}
            cfg["listeners"][0]["listen"] = "127.0.0.1:%d" % taken
            with pytest.raises(RuntimeError) as e:
                imapguard(cfg)
            assert "event=start-failed listener=imaps" in str(e.value), str(e.value)[-2000:]
            assert "address already in use" in str(e.value)
    finally:
        holder.close()
