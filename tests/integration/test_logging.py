"""Logs for operators (docs/LOGGING.md), against the real Dovecot: with
log.format json every line of a full session (a refused cleartext login,
STARTTLS, a successful login, SELECT, LOGOUT) is one JSON object with the
documented fields, and the session's close line sums it up (TLS version,
cipher, SNI, bytes each way, duration, backend); a hostile user name cannot
add fields; log.file is reopened on SIGUSR1 after logrotate's rename;
log.redact_users hides user names behind a stable keyed hash; no password
ever reaches the log."""

import json
import os
import re
import signal
import subprocess

import pytest

import igtest
from igtest import ALICE, ALICE_PW, USERS, Raw, status, resp_code

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"error", "warn", "info", "debug"}


class LogIg(igtest.Imapguard):
    """An Imapguard whose events are read from log.file when it is set
    (else from stderr), in either format; stderr keeps sanitizer output."""

    def events_path(self):
        return self.config.get("log", {}).get("file") or self.log_path


@pytest.fixture
def logig(request, imapguard_bin, devcerts, tmp_path):
    started = []

    def start(config):
        ig = LogIg(imapguard_bin, str(tmp_path), config, certs=devcerts)
        started.append(ig)
        return ig.start()

    def fin():
        for ig in started:
            if not ig.start_failed:
                ig.stop(check=True)
    request.addfinalizer(fin)
    return start


def json_lines(text):
    """Every line parsed (a line that is not one JSON object fails)."""
    out = []
    for line in text.splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


def check_common(ev):
    assert TIME_RE.match(ev["time"]), ev
    assert ev["level"] in LEVELS, ev
    assert isinstance(ev["event"], str) and ev["event"], ev
    if "sid" in ev:
        assert re.match(r"^[0-9a-f]{16}$", ev["sid"]), ev
        assert ev["client_ip"] == "127.0.0.1", ev
        assert isinstance(ev["client_port"], int) and 0 < ev["client_port"] < 65536, ev
        assert ev["listener"] in ("imaps", "imap"), ev


def session_events(events, sid):
    return [e for e in events if e.get("sid") == sid]


def wait_close(ig, pred, what):
    """Waits for a close line (JSON) that pred accepts; returns it."""
    found = []

    def seen():
        for e in json_lines(ig.events_text()):
            if e.get("event") == "close" and pred(e):
                found.append(e)
                return True
        return False
    igtest.wait_until(seen, igtest.IO_TIMEOUT, what)
    return found[0]


def starttls(c, ca):
    c.send("t STARTTLS\r\n")
    assert status(c.read_until_tagged("t")[1]) == "OK"
    c.starttls(igtest.client_context(ca))


def json_config(devcerts, dovecot, **log):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["log"] = dict({"format": "json"}, **log)
    return cfg


def test_json_full_session(logig, devcerts, dovecot, ca):
    ig = logig(json_config(devcerts, dovecot))
    c = igtest.plain_client(ig)
    tagged = c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]
    assert resp_code(tagged) == "PRIVACYREQUIRED"
    starttls(c, ca)
    assert status(c.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    assert status(c.cmd("c", "SELECT INBOX")[1]) == "OK"
    c.send("d LOGOUT\r\n")
    c.read_until_tagged("d")
    c.close()
    close = wait_close(ig, lambda e: e.get("user") == ALICE, "the session's close line")

    text = ig.events_text()
    assert ALICE_PW not in text
    events = json_lines(text)
    for e in events:
        check_common(e)
    assert any(e["event"] == "start" for e in events)
    ses = session_events(events, close["sid"])
    names = [e["event"] for e in ses]
    for want in ("connect", "login-decision", "tls", "login-result", "relay-start", "close"):
        assert want in names, names

    deny = [e for e in ses if e["event"] == "login-decision" and e["verdict"] == "deny"]
    assert len(deny) == 1, ses
    d = deny[0]
    assert d["mech"] == "LOGIN-command" and d["code"] == "PRIVACYREQUIRED", d
    assert d["reason"] and d["rule"] and d["tls"] == "no", d
    allow = [e for e in ses if e["event"] == "login-decision" and e["verdict"] == "allow"]
    assert len(allow) == 1, ses
    assert allow[0]["mech"] == "LOGIN-command" and allow[0]["tls"] == "yes", allow
    assert allow[0]["reason"] and allow[0]["rule"], allow
    result = [e for e in ses if e["event"] == "login-result"][0]
    assert result["result"] == "ok" and isinstance(result["ms"], int), result

    # The close line sums the session up.
    assert close["listener"] == "imap" and close["reason"] and close["state"], close
    assert close["tls_version"] in ("TLSv1.2", "TLSv1.3"), close
    assert close["cipher"] and close["cipher"] != "-", close
    assert close["sni"] == "localhost", close
    assert close["alpn"] == "-", close
    assert close["backend"] == dovecot.address, close
    for k in ("client_in", "client_out", "backend_in", "backend_out", "duration_ms"):
        assert isinstance(close[k], int) and close[k] >= 0, (k, close)
    assert close["client_in"] > 0 and close["client_out"] > 0, close
    assert close["backend_in"] > 0 and close["backend_out"] > 0, close


def test_json_hostile_user_name(logig, devcerts, dovecot, ca):
    """A name with spaces, quotes and '=' stays one string value, in both
    formats (before, the text format printed it raw: it could add fields)."""
    ig = logig(json_config(devcerts, dovecot))
    c = igtest.tls_client(ig, ca)
    tagged = c.cmd("a", 'LOGIN "x y\\"z event=forged level=error" "nopass"')[1]
    assert status(tagged) == "NO", tagged
    c.send("b LOGOUT\r\n")
    c.read_until_tagged("b")
    c.close()
    wait_close(ig, lambda e: True, "the close line")
    events = json_lines(ig.events_text())
    tried = [e for e in events if e.get("event") == "login-result"]
    assert tried and tried[0]["result"] == "fail", events
    assert tried[0]["user"] == "x y\\x22z event=forged level=error", tried
    assert not any(e.get("event") == "forged" for e in events)
    assert all(e["level"] in LEVELS for e in events)


def test_text_user_name_cannot_add_fields(imapguard, igconfig, ca):
    ig = imapguard(igconfig)
    c = igtest.tls_client(ig, ca)
    tagged = c.cmd("a", 'LOGIN "x event=forged" "nopass"')[1]
    assert status(tagged) == "NO", tagged
    c.close()
    igtest.wait_until(lambda: "event=close" in ig.log_text(), igtest.IO_TIMEOUT, "close")
    text = ig.log_text()
    assert 'user="x event=forged"' in text
    assert " user=x event=forged" not in text


def test_log_file_reopen_on_sigusr1(logig, devcerts, dovecot, ca, tmp_path):
    path = str(tmp_path / "logs" / "imapguard.log")
    os.makedirs(os.path.dirname(path))
    ig = logig(json_config(devcerts, dovecot, file=path))
    assert os.path.exists(path)

    def session():
        c = igtest.tls_client(ig, ca)
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        c.send("b LOGOUT\r\n")
        c.read_until_tagged("b")
        c.close()

    session()
    first = wait_close(ig, lambda e: True, "the first close line")
    os.rename(path, path + ".1")
    ig.proc.send_signal(signal.SIGUSR1)
    igtest.wait_until(lambda: os.path.exists(path) and '"event":"log-reopened"' in
                      igtest.read_text(path), igtest.IO_TIMEOUT, "a new log file")
    session()
    second = wait_close(ig, lambda e: e["sid"] != first["sid"], "the second close line")

    old = json_lines(igtest.read_text(path + ".1"))
    new = json_lines(igtest.read_text(path))
    assert any(e.get("sid") == first["sid"] for e in old)
    assert not any(e.get("sid") == second["sid"] for e in old)
    assert any(e.get("sid") == second["sid"] for e in new)
    assert not any(e.get("sid") == first["sid"] for e in new)
    assert new[0]["event"] == "log-reopened" and new[0]["file"] == path, new[0]
    for e in old + new:
        check_common(e)
    # Nothing but sanitizer output would go to stderr.
    assert ALICE_PW not in igtest.read_text(path) + igtest.read_text(path + ".1")


def test_redact_users(logig, devcerts, dovecot, ca, tmp_path):
    cfg = json_config(devcerts, dovecot, redact_users=True)
    # A user rule's name holds the user name: redacted too.
    cfg["policy"]["users"] = {ALICE: {"require_tls": True}}
    sock = str(tmp_path / "ctl.sock")
    cfg["admin"] = {"socket": sock}
    ig = logig(cfg)
    for i in range(2):
        c = igtest.tls_client(ig, ca)
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        c.send("b LOGOUT\r\n")
        c.read_until_tagged("b")
        c.close()
    c = igtest.tls_client(ig, ca)
    bob = "bob@example.com"
    assert status(c.cmd("a", "LOGIN %s wrong-password" % bob)[1]) == "NO"
    c.close()
    r = subprocess.run([ig.binary, "ctl", "-s", sock, "kick", bob],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok kicked 0 sessions" in r.stdout, r.stdout + r.stderr
    igtest.wait_until(lambda: sum(1 for e in json_lines(ig.events_text())
                                  if e.get("event") == "close") >= 3,
                      igtest.IO_TIMEOUT, "three close lines")
    text = ig.events_text()
    for name in (ALICE, "alice", bob, "bob"):
        assert name not in text, name
    for pw in USERS.values():
        assert pw not in text
    events = json_lines(text)
    # Alice's two sessions end with the same token; Bob's failed attempt
    # carries another one.
    tokens = [e["user"] for e in events if e.get("event") == "close" and "user" in e]
    assert len(tokens) == 2 and tokens[0] == tokens[1], tokens
    bob_tok = [e["user"] for e in events if e.get("event") == "login-result" and
               e["result"] == "fail"]
    assert len(bob_tok) == 1 and bob_tok[0] != tokens[0], bob_tok
    for t in tokens + bob_tok:
        assert re.match(r"^h:[0-9a-f]{16}$", t), t
    assert all(re.match(r"^h:[0-9a-f]{16}$", e["user"]) for e in events if "user" in e)
    rules = [e["rule"] for e in events if e.get("event") == "login-decision"]
    assert "user:" + tokens[0] in rules, rules
    kick = [e for e in events if e.get("event") == "kick"]
    assert len(kick) == 1 and kick[0]["user"] == bob_tok[0], kick


def test_reload_switches_format_and_redaction(logig, devcerts, dovecot, ca):
    """SIGHUP applies log.format and log.redact_users at once."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    ig = logig(cfg)
    new = dict(ig.config, log={"format": "json", "redact_users": True})
    ig.reload(new, what='"event":"reload-done"')
    c = igtest.tls_client(ig, ca)
    assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    c.send("b LOGOUT\r\n")
    c.read_until_tagged("b")
    c.close()
    igtest.wait_until(lambda: '"event":"close"' in ig.log_text(), igtest.IO_TIMEOUT, "close")
    text = ig.log_text()
    before, after = text.split('"event":"reload-done"', 1)
    assert " info event=ready " in before
    assert ALICE not in after and ALICE_PW not in text
    tail = after.split("\n", 1)[1]
    events = json_lines(tail)
    close = [e for e in events if e["event"] == "close"][0]
    assert re.match(r"^h:[0-9a-f]{16}$", close["user"]), close
