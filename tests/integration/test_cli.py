"""Command line: --version, -t (validate: "configuration OK" or
FILE:LINE:COL errors, exit non-zero), and clean shutdown on SIGTERM and
SIGINT (exit 0, which under ASan/LSan also means no leak)."""

import os
import re
import signal
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW


def run(argv, timeout=30):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=env, text=True)


def write_config(tmp_path, cfg, name="imapguard.yaml"):
    text = igtest.to_yaml(cfg) + "\n"
    path = tmp_path / name
    path.write_text(text)
    return str(path), text


@pytest.fixture
def good_cfg(devcerts):
    cfg = igtest.base_config(devcerts, "127.0.0.1:%d" % igtest.free_port())
    for lst in cfg["listeners"]:
        lst["listen"] = "127.0.0.1:%d" % igtest.free_port()
    return cfg


def test_version(imapguard_bin):
    r = run([imapguard_bin, "--version"])
    assert r.returncode == 0
    assert re.match(r"imapguard \d+\.\d+", r.stdout), r.stdout


def test_check_good_config(imapguard_bin, good_cfg, tmp_path):
    path, _ = write_config(tmp_path, good_cfg)
    r = run([imapguard_bin, "-t", "-c", path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout + r.stderr
    assert "AddressSanitizer" not in r.stderr and "LeakSanitizer" not in r.stderr


def _line_col_of(text, needle):
    for i, line in enumerate(text.split("\n")):
        j = line.find(needle)
        if j >= 0:
            return i + 1, j + 1
    raise AssertionError(needle)


def test_check_typo_key_reports_file_line_col(imapguard_bin, good_cfg, tmp_path):
    limits = good_cfg["limits"]
    good_cfg["limits"] = {("max_lien" if k == "max_line" else k): v for k, v in limits.items()}
    path, text = write_config(tmp_path, good_cfg)
    line, col = _line_col_of(text, "max_lien")
    r = run([imapguard_bin, "-t", "-c", path])
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "configuration OK" not in out
    m = re.search(re.escape(path) + r":(\d+):(\d+): (.+)", out)
    assert m, "no FILE:LINE:COL: message in %r" % out
    assert int(m.group(1)) == line, (m.group(0), line)
    assert int(m.group(2)) == col, (m.group(0), col)
    assert "max_lien" in m.group(3)


def test_check_bad_value_reports_line(imapguard_bin, good_cfg, tmp_path):
    good_cfg["backend"]["tls"] = "sometimes"
    path, text = write_config(tmp_path, good_cfg)
    line, _ = _line_col_of(text, "tls: sometimes")
    r = run([imapguard_bin, "-t", "-c", path])
    out = r.stdout + r.stderr
    assert r.returncode != 0
    m = re.search(re.escape(path) + r":(\d+):(\d+): ", out)
    assert m and int(m.group(1)) == line, out


def test_check_yaml_syntax_error(imapguard_bin, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("log_level: debug\nlisteners:\n  - name: [unclosed\n")
    r = run([imapguard_bin, "-t", "-c", str(path)])
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert re.search(re.escape(str(path)) + r":\d+:\d+: ", out), out


def test_check_missing_certificate(imapguard_bin, good_cfg, tmp_path):
    """-t loads certificates too."""
    good_cfg["tls"]["certificates"][0]["cert"] = str(tmp_path / "nope.pem")
    path, _ = write_config(tmp_path, good_cfg)
    r = run([imapguard_bin, "-t", "-c", path])
    assert r.returncode != 0
    assert "configuration OK" not in r.stdout + r.stderr


def test_check_missing_file(imapguard_bin, tmp_path):
    r = run([imapguard_bin, "-t", "-c", str(tmp_path / "absent.yaml")])
    assert r.returncode != 0


def test_no_arguments_is_usage_error(imapguard_bin):
    r = run([imapguard_bin])
    assert r.returncode != 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_clean_shutdown_with_live_sessions(imapguard, devcerts, dovecot, ca, sig):
    """A signal while a logged-in session and a pre-auth session are open:
    exit 0, no sanitizer report."""
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))
    a = igtest.Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    b = igtest.Raw(*ig.addr("imap"))
    try:
        a.readline()
        b.readline()
        assert igtest.status(a.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        ig.proc.send_signal(sig)
        code = ig.proc.wait(10)
    finally:
        a.close()
        b.close()
    ig.stop(check=False)
    assert code == 0, ig.log_text()[-4000:]
    assert not ig.sanitizer_errors(), ig.log_text()[-4000:]


def test_log_never_shows_password(imapguard, devcerts, dovecot, ca):
    """Logs at debug level carry no password, in LOGIN or AUTHENTICATE."""
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))
    c = igtest.Raw(*ig.addr("imaps"), tls_ctx=igtest.client_context(ca))
    try:
        c.readline()
        c.cmd("a", "LOGIN %s wrong-Pa55word-x" % ALICE)
        c.cmd("b", "AUTHENTICATE PLAIN " + igtest.plain_ir(ALICE, "Sekrit-Pl41n"))
        c.cmd("c", "LOGIN %s %s" % (ALICE, ALICE_PW))
    finally:
        c.close()
    ig.stop()
    log = ig.log_text()
    for secret in ("wrong-Pa55word-x", "Sekrit-Pl41n", ALICE_PW,
                   igtest.plain_ir(ALICE, "Sekrit-Pl41n")):
        assert secret not in log, "secret %r in the log" % secret
    assert ALICE in log.lower(), "the user name should be logged"


def test_stop_during_startup_is_clean(imapguard_bin, good_cfg, tmp_path):
    """A SIGTERM that arrives while imapguard is still starting (limiter
    state not loaded, listeners not open) waits for the handlers: the
    process exits 0 and saves its limiter state, five times in a row."""
    state = str(tmp_path / "rl.state")
    good_cfg["ratelimit"] = {"enabled": True, "state_file": state}
    path, _ = write_config(tmp_path, good_cfg)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    for i in range(5):
        log = str(tmp_path / ("run%d.log" % i))
        proc = igtest.spawn([imapguard_bin, "-c", path, "--allow-root"], log, env=env)
        try:
            # "event=start" is logged once the stop signals are held back,
            # before the limiter, the state file and the listeners.
            igtest.wait_until(lambda: " event=start " in open(log).read(),
                              igtest.START_TIMEOUT, "event=start")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(igtest.START_TIMEOUT)
        finally:
            igtest.reap(proc, signal.SIGKILL, 5)
        text = open(log).read()
        assert code == 0, "run %d exited %r:\n%s" % (i, code, text)
        assert "event=ratelimit-state-saved" in text, text
        assert text.index(" event=ready ") < text.index(" event=shutdown "), text
