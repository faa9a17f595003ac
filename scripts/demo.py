#!/usr/bin/python3
"""imapguard demo: a private Dovecot behind imapguard on loopback, and a
scripted client session printed exchange by exchange.

    /usr/bin/python3 scripts/demo.py --bin build/plain/imapguard [--run-dir demo-run]

scripts/demo.sh installs dependencies, builds, and runs this. Everything
started here is stopped on exit (normal, error or signal).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import igtest  # noqa: E402
from igtest import ALICE, ALICE_PW, USERS, Raw  # noqa: E402

BOB = "bob@example.com"
BOB_PW = USERS[BOB]
CAROL = "user12"

BOLD, DIM, RED, GREEN, RESET = ("\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[0m") \
    if sys.stdout.isatty() else ("",) * 5


def heading(text):
    print("\n%s== %s%s" % (BOLD, text, RESET))


class Shown:
    """A Raw connection that prints what goes each way."""

    def __init__(self, raw):
        self.raw = raw

    def _show(self, who, data):
        for line in data.decode("utf-8", "replace").splitlines():
            if len(line) > 160:
                line = line[:150] + " ...(%d bytes)" % len(line)
            print("  %s %s" % (who, line))

    def greeting(self):
        line = self.raw.readline()
        self._show("S:", line)
        return line

    def cmd(self, tag, text):
        self._show("C:", ("%s %s" % (tag, text)).encode())
        untagged, tagged = self.raw.cmd(tag, text)
        for r in untagged:
            self._show("S:", r)
        self._show("S:", tagged.encode())
        return untagged, tagged

    def send_literal_cmd(self, tag, head, literal):
        """'tag head {n}' + literal, waiting for the continuation."""
        self._show("C:", ("%s %s {%d}" % (tag, head, len(literal))).encode())
        self.raw.send("%s %s {%d}\r\n" % (tag, head, len(literal)))
        cont = self.raw.readline()
        self._show("S:", cont)
        if not cont.startswith(b"+"):
            return [], cont.decode().rstrip()
        self._show("C:", b"<%d bytes of message>" % len(literal))
        self.raw.send(literal + b"\r\n")
        untagged, tagged = self.raw.read_until_tagged(tag)
        for r in untagged:
            self._show("S:", r)
        self._show("S:", tagged.encode())
        return untagged, tagged

    def starttls(self, ctx):
        self.raw.starttls(ctx)
        print("  %s-- TLS handshake: %s, %s --%s" % (DIM, self.raw.sock.version(),
                                                    self.raw.sock.cipher()[0], RESET))

    def close(self):
        self.raw.close()


def check(cond, what):
    print("  %s%s%s %s" % (GREEN if cond else RED, "OK  " if cond else "FAIL", RESET, what))
    if not cond:
        raise SystemExit("demo: expectation failed: %s" % what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "plain", "imapguard"))
    ap.add_argument("--run-dir", default=os.path.join(TOP, "demo-run"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

    run_dir = os.path.abspath(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    # Dovecot's mail and login processes run as unprivileged users, which
    # may not traverse the checkout (e.g. under /root): its files live in /tmp.
    dv_dir = tempfile.mkdtemp(prefix="imapguard-demo-")
    dovecot = ig = None
    try:
        heading("Dev certificates -> %s/certs" % run_dir)
        certs = igtest.make_devcerts(TOP, os.path.join(run_dir, "certs"))
        print("  " + " ".join(sorted(os.listdir(certs))))
        ca = os.path.join(certs, "ca.pem")
        ctx = igtest.client_context(ca)

        heading("Private Dovecot (backend)")
        dovecot = igtest.Dovecot(dv_dir, master=True).start()
        print("  dovecot -F -c %s  listening on %s" % (dovecot.conf, dovecot.address))

        heading("imapguard")
        os.makedirs(os.path.join(run_dir, "imapguard"))
        config = igtest.base_config(certs, dovecot.address)
        # The JSON audit stream, the metrics endpoint, a group that may
        # only use tokens, and the rate limiter with thresholds a demo
        # reaches (production defaults: 10 failures, tarpit from 1 s).
        metrics_port = igtest.free_port()
        config["log"] = {"format": "json"}
        config["admin"] = {"listen": "127.0.0.1:%d" % metrics_port}
        config["policy"]["groups"] = {"modern-only": {
            "users": [BOB], "mechanisms": ["XOAUTH2", "OAUTHBEARER"], "login_command": False}}
        # App passwords for CAROL (user12): checked by imapguard, which
        # then logs in to Dovecot as its master user for her.
        secret_path = os.path.join(run_dir, "master.secret")
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(igtest.MASTER_PW + "\n")
        config["backend"]["master_login"] = {"user": igtest.MASTER_USER,
                                             "password_file": secret_path}
        config["app_passwords"] = {"store": os.path.join(run_dir, "app-passwords.db")}
        config["policy"]["groups"]["mfa"] = {"users": [CAROL], "credentials": "app_passwords"}
        config["ratelimit"] = {
            "enabled": True,
            "address": {"threshold": 3, "window": "10m", "block": "15m"},
            "user": {"threshold": 5, "window": "10m", "block": "15m"},
            "tarpit": {"base": "100ms", "max": "200ms"},
        }
        ig = igtest.Imapguard(args.bin, os.path.join(run_dir, "imapguard"), config).start()
        print("  %s -c %s" % (args.bin, ig.config_path))
        print("  implicit TLS on 127.0.0.1:%d, STARTTLS on 127.0.0.1:%d -> backend %s"
              % (ig.ports["imaps"], ig.ports["imap"], dovecot.address))
        print(DIM + "\n".join("    " + l for l in open(ig.config_path).read().splitlines()) + RESET)

        heading("1. Cleartext on the STARTTLS port: LOGIN is refused")
        c = Shown(Raw(*ig.addr("imap")))
        c.greeting()
        untagged, _ = c.cmd("a1", "CAPABILITY")
        caps = igtest.capabilities(untagged)
        check("STARTTLS" in caps and "LOGINDISABLED" in caps,
              "STARTTLS and LOGINDISABLED advertised in cleartext")
        check("AUTH=PLAIN" not in caps, "no AUTH=PLAIN in cleartext")
        _, tagged = c.cmd("a2", "LOGIN %s %s" % (ALICE, ALICE_PW))
        check(igtest.resp_code(tagged) == "PRIVACYREQUIRED", "LOGIN refused: NO [PRIVACYREQUIRED]")

        heading("2. STARTTLS, then LOGIN succeeds")
        _, tagged = c.cmd("a3", "STARTTLS")
        c.starttls(ctx)
        untagged, _ = c.cmd("a4", "CAPABILITY")
        caps = igtest.capabilities(untagged)
        check("STARTTLS" not in caps and "LOGINDISABLED" not in caps,
              "capabilities re-announced without STARTTLS/LOGINDISABLED")
        _, tagged = c.cmd("a5", "LOGIN %s %s" % (ALICE, ALICE_PW))
        check(igtest.status(tagged) == "OK", "login over STARTTLS, relayed to Dovecot")
        c.cmd("a6", "SELECT INBOX")
        c.cmd("a7", "LOGOUT")
        c.close()

        heading("3. Implicit TLS: a wrong password is refused")
        c = Shown(Raw(*ig.addr("imaps"), tls_ctx=ctx))
        c.greeting()
        _, tagged = c.cmd("b1", "LOGIN %s not-the-password" % ALICE)
        check(igtest.status(tagged) == "NO" and igtest.resp_code(tagged) == "AUTHENTICATIONFAILED",
              "wrong password: NO [AUTHENTICATIONFAILED]")
        c.close()

        heading("4. Implicit TLS: LOGIN, SELECT, APPEND, FETCH")
        c = Shown(Raw(*ig.addr("imaps"), tls_ctx=ctx))
        c.greeting()
        print("  %s-- TLS: %s, %s --%s" % (DIM, c.raw.sock.version(), c.raw.sock.cipher()[0], RESET))
        _, tagged = c.cmd("c1", "LOGIN %s %s" % (ALICE, ALICE_PW))
        check(igtest.status(tagged) == "OK", "login over implicit TLS")
        c.cmd("c2", "SELECT INBOX")
        msg = (b"From: alice@example.com\r\nTo: alice@example.com\r\n"
               b"Subject: hello through imapguard\r\n\r\nThis went through the proxy.\r\n")
        _, tagged = c.send_literal_cmd("c3", "APPEND INBOX", msg)
        uid = re.search(r"APPENDUID \d+ (\d+)", tagged).group(1)
        untagged, tagged = c.cmd("c4", "UID FETCH %s (BODY.PEEK[])" % uid)
        check(any(msg in r for r in untagged), "fetched message is byte-identical")
        c.cmd("c5", "LOGOUT")
        c.close()

        heading("5. A user whose group allows tokens only: LOGIN is refused")
        c = Shown(Raw(*ig.addr("imaps"), tls_ctx=ctx))
        c.greeting()
        _, tagged = c.cmd("d1", "LOGIN %s %s" % (BOB, BOB_PW))
        check(igtest.status(tagged) == "NO", "%s: LOGIN refused before the backend" % BOB)
        c.close()
        print("  %s$ imapguard explain -c imapguard.yaml --user %s --from 127.0.0.1 "
              "--listener imaps%s" % (DIM, BOB, RESET))
        out = subprocess.run([args.bin, "explain", "-c", ig.config_path, "--user", BOB,
                              "--from", "127.0.0.1", "--listener", "imaps"],
                             capture_output=True, text=True, timeout=30)
        for line in out.stdout.splitlines():
            print("    " + line)
        check(out.returncode == 1 and "modern-only" in out.stdout,
              "explain names the rule (group modern-only) and exits 1")

        heading("6. Wrong passwords for %s from 127.0.0.2 and 127.0.0.3: locked out "
                "there, not at home" % ALICE)

        def attempt(source, password, tag):
            c = Shown(Raw(*ig.addr("imaps"), tls_ctx=ctx, source=source))
            c.greeting()
            _, tagged = c.cmd(tag, "LOGIN %s %s" % (ALICE, password))
            c.close()
            return tagged

        print("  %s-- from 127.0.0.2 --%s" % (DIM, RESET))
        for i in range(3):
            tagged = attempt("127.0.0.2", "guess-%d" % i, "e%d" % i)
        tagged = attempt("127.0.0.2", ALICE_PW, "e9")
        check(igtest.resp_code(tagged) == "UNAVAILABLE",
              "after 3 failures 127.0.0.2 is blocked, even with the right password")
        print("  %s-- from 127.0.0.3 --%s" % (DIM, RESET))
        for i in range(2):
            attempt("127.0.0.3", "guess-%d" % (10 + i), "f%d" % i)
        tagged = attempt("127.0.0.4", ALICE_PW, "g1")
        check(igtest.resp_code(tagged) == "UNAVAILABLE",
              "5 failures from unknown addresses: %s refused from a new address (127.0.0.4)"
              % ALICE)
        print("  %s-- from 127.0.0.1, where %s logged in before --%s" % (DIM, ALICE, RESET))
        tagged = attempt("127.0.0.1", ALICE_PW, "h1")
        check(igtest.status(tagged) == "OK",
              "%s still logs in from her known address" % ALICE)

        heading("7. App passwords for %s: the account password no longer works, a "
                "revoked device is cut off" % CAROL)

        def apppass(*argv):
            print("  %s$ imapguard apppass -c imapguard.yaml %s%s" % (DIM, " ".join(argv), RESET))
            r = subprocess.run([args.bin, "apppass", "-c", ig.config_path] + list(argv),
                               capture_output=True, text=True, timeout=60)
            check(r.returncode == 0, "apppass %s" % argv[0])
            return r.stdout
        out = apppass("add", CAROL, "--label", "demo phone", "--quiet")
        pid, pw = out.split()
        print("    %s %s   (shown once; the store keeps an Argon2id hash)" % (pid, pw))
        igtest.wait_until(lambda: '"id":"%s"' % pid in ig.log_text().replace(" ", ""),
                          igtest.IO_TIMEOUT, "the proxy to load the new password")
        c = Shown(Raw(*ig.addr("imaps"), tls_ctx=ctx))
        c.greeting()
        _, tagged = c.cmd("k1", "LOGIN %s %s" % (CAROL, USERS[CAROL]))
        check(igtest.resp_code(tagged) == "AUTHENTICATIONFAILED",
              "the account password: refused before Dovecot sees it")
        c.close()
        c = Shown(Raw(*ig.addr("imaps"), tls_ctx=ctx))
        c.greeting()
        _, tagged = c.cmd("k2", "LOGIN %s %s" % (CAROL, pw))
        check(igtest.status(tagged) == "OK", "the app password logs in (as the master user, "
              "for %s)" % CAROL)
        c.cmd("k3", "SELECT INBOX")
        c.raw.send("k4 IDLE\r\n")
        print("  %sC: k4 IDLE%s" % (DIM, RESET))
        print("  %sS: %s%s" % (DIM, c.raw.readline().decode().rstrip(), RESET))
        apppass("revoke", pid)
        line = c.raw.readline().decode().rstrip()
        print("  %sS: %s%s" % (DIM, line, RESET))
        check(line.startswith("* BYE [UNAVAILABLE]"), "the idling session ended by the revocation")
        c.close()

        heading("8. Metrics (http://127.0.0.1:%d/metrics) and readiness" % metrics_port)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port,
                                    timeout=10) as r:
            metrics = r.read().decode()
        # (the series these sessions moved: zeros left out)
        shown = [l for l in metrics.splitlines() if not l.startswith("#") and re.match(
            r"imapguard_(login_attempts_total|login_refusals_total|ratelimit_blocks|"
            r"connections_total|relayed_bytes_total|tls_handshakes_total|"
            r"app_password_logins_total|account_password_logins_total|"
            r"app_password_sessions_ended_total)", l)
            and not l.endswith(" 0")]
        for line in shown:
            print("  " + line)
        check(any(l.startswith("imapguard_login_refusals_total") for l in shown),
              "refusals counted by reason")
        with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % metrics_port,
                                    timeout=10) as r:
            ready = r.status
        check(ready == 200, "/readyz: backend reachable, certificates valid")

        heading("9. The JSON audit stream: every login decision with its reason")
        lines = []
        for text in ig.log_text().splitlines():
            try:
                ev = json.loads(text)
            except ValueError:
                continue
            if ev.get("event") in ("login-decision", "login-refused", "login-result",
                                   "ratelimit-block", "login-credential", "apppass-issued",
                                   "apppass-revoked", "session-revoked"):
                lines.append(ev)
        for ev in lines:
            keep = {k: v for k, v in ev.items() if k in (
                "event", "client_ip", "user", "mech", "verdict", "result", "reason", "rule",
                "credential", "apppass_id", "id", "by",
                "code", "limit", "client_in", "client_out", "duration_ms", "tls_version")}
            print("  " + json.dumps(keep))
        check(any(ev.get("verdict") == "deny" for ev in lines), "denials in the audit stream")
        check(all(ALICE_PW not in json.dumps(ev) and pw not in json.dumps(ev) for ev in lines),
              "no password in any line")
        heading("Dovecot saw")
        for line in dovecot.log_text().splitlines():
            if re.search(r"imap-login: .*(Login|Disconnected|Aborted)", line) and "rip=" in line:
                print("  " + line)
        time.sleep(0.3)
        print("\n  (the whole log: %s)" % ig.log_path)
        code = ig.stop(check=False)
        ig = None
        print("\nimapguard stopped (exit %s). Demo complete." % code)
        return 0 if code == 0 else 1
    finally:
        if ig is not None:
            ig.stop(check=False)
        if dovecot is not None:
            if os.path.exists(dovecot.log_path):
                shutil.copy(dovecot.log_path, os.path.join(run_dir, "dovecot.log"))
            dovecot.stop()
        igtest._kill_all()
        shutil.rmtree(dv_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
