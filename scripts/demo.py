#!/usr/bin/python3
"""imapguard demo: a private Dovecot behind imapguard on loopback, and a
scripted client session printed exchange by exchange.

    /usr/bin/python3 scripts/demo.py --bin build/plain/imapguard [--run-dir demo-run]

scripts/demo.sh installs dependencies, builds, and runs this. Everything
started here is stopped on exit (normal, error or signal).
"""

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import igtest  # noqa: E402
from igtest import ALICE, ALICE_PW, Raw  # noqa: E402

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
        dovecot = igtest.Dovecot(dv_dir).start()
        print("  dovecot -F -c %s  listening on %s" % (dovecot.conf, dovecot.address))

        heading("imapguard")
        os.makedirs(os.path.join(run_dir, "imapguard"))
        ig = igtest.Imapguard(args.bin, os.path.join(run_dir, "imapguard"),
                              igtest.base_config(certs, dovecot.address)).start()
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

        time.sleep(0.3)
        heading("imapguard's log for these sessions (%s)" % ig.log_path)
        for line in ig.log_text().splitlines():
            print("  " + line)
        heading("Dovecot saw")
        for line in dovecot.log_text().splitlines():
            if re.search(r"imap-login: .*(Login|Disconnected|Aborted)", line) and "rip=" in line:
                print("  " + line)
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
