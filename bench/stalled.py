#!/usr/bin/env python3
"""A 100 MB FETCH and a 100 MB APPEND through imapguard while the reader
has stopped reading: how much does the proxy grow? (bench/README.md)

    bench/stalled.py [--build build/rel] [--size-mb 100]

FETCH: a TLS client logs in through imapguard and asks for a message of
--size-mb MB, then reads nothing until imapguard has stopped reading from
Dovecot (its read byte count, /proc/PID/io rchar, still for a second); then
it reads the whole message. APPEND: Dovecot's imap processes are stopped
(SIGSTOP) and the client sends a LITERAL+ APPEND of the same size until
imapguard stops reading from it; then Dovecot goes on (SIGCONT) and the
APPEND completes. Printed: imapguard's RSS after login, at each stall, and
its peak (VmHWM) over the whole run, in KiB. Exit 0 when both transfers
completed intact, 1 otherwise.
"""

import argparse
import os
import signal
import socket
import ssl
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, HERE)
import igtest  # noqa: E402
import run as bench  # noqa: E402  (the Imapguard runner, /proc readings)

USER, PASSWORD = bench.USER, bench.PASSWORD


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def rchar(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise KeyError("rchar")


def wait_still(pid, timeout=120.0, still=1.0, poke=None):
    """Waits until the proxy has read nothing for `still` seconds (poke()
    runs meanwhile, e.g. to keep writing); returns its rchar then."""
    deadline = time.monotonic() + timeout
    last, since = rchar(pid), time.monotonic()
    while time.monotonic() < deadline:
        if poke is not None:
            poke()
        time.sleep(0.05)
        now = rchar(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return now
    raise TimeoutError("imapguard kept reading for %ss" % timeout)


class Client:
    def __init__(self, port, ca):
        ctx = igtest.client_context(ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("closed by the proxy")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        got = 0
        while got < n:
            if not self.buf:
                self._fill()
            take = min(n - got, len(self.buf))
            self.buf = self.buf[take:]
            got += take
        return got

    def tagged(self, tag):
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                return ln

    def cmd(self, tag, text):
        self.s.sendall(tag + b" " + text + b"\r\n")
        ln = self.tagged(tag)
        if not ln.startswith(tag + b" OK"):
            raise RuntimeError("%s: %r" % (text[:40], ln))


def dovecot_imap_pids(dv):
    """Dovecot's imap processes (not imap-login): the ones serving sessions."""
    out = []
    for pid in bench.children(dv.proc.pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "imap":
                    out.append(pid)
        except FileNotFoundError:
            pass
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build", "bench"))
    ap.add_argument("--imapguard", help="imapguard binary (default BUILD/imapguard)")
    ap.add_argument("--size-mb", type=int, default=100)
    args = ap.parse_args(argv)
    binary = args.imapguard or os.path.join(args.build, "imapguard")
    if not os.access(binary, os.X_OK):
        print("stalled: no imapguard binary at %s" % binary, file=sys.stderr)
        return 2
    size = args.size_mb * 1024 * 1024
    root = tempfile.mkdtemp(prefix="igstalled-")
    os.chmod(root, 0o755)
    dv = ig = None
    ok = True
    try:
        certs = igtest.make_devcerts(SRC, os.path.join(root, "certs"))
        ca = os.path.join(certs, "ca.pem")
        dd = os.path.join(root, "dovecot")
        os.makedirs(dd)
        dv = igtest.Dovecot(dd, extra_conf=bench.DOVECOT_EXTRA).start()
        msg = igtest.make_message(size, "stalled")
        import imaplib
        m = imaplib.IMAP4(dv.host, dv.port)
        m.login(USER, PASSWORD)
        if m.append("INBOX", None, None, msg)[0] != "OK":
            raise RuntimeError("APPEND to Dovecot failed")
        m.logout()

        d = os.path.join(root, "imapguard")
        os.makedirs(d)
        ig = bench.Imapguard(binary, d, certs, dv.port, None, "warn")
        ig.start()
        pid = ig.pids()[0]

        c = Client(ig.port(False), ca)
        c.line()  # greeting
        c.cmd(b"a", b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        c.cmd(b"b", b"SELECT INBOX")
        rss_login = status_kib(pid, "VmRSS")

        # FETCH, the client reading nothing.
        c.s.sendall(b"c FETCH 1 BODY[]\r\n")
        wait_still(pid)
        rss_fetch_stall = status_kib(pid, "VmRSS")
        head = c.line()
        n = int(head[head.rindex(b"{") + 1:head.rindex(b"}")])
        got = c.exact(n)
        tail = c.tagged(b"c")
        fetch_ok = got == n and n >= size and tail.startswith(b"c OK")
        ok = ok and fetch_ok

        # APPEND, Dovecot reading nothing.
        stopped = dovecot_imap_pids(dv)
        for p in stopped:
            os.kill(p, signal.SIGSTOP)
        c.s.sendall(b"d APPEND INBOX {%d+}\r\n" % len(msg))
        c.s.setblocking(False)
        view = memoryview(msg)
        sent = [0]

        def push():
            while sent[0] < len(msg):
                try:
                    sent[0] += c.s.send(view[sent[0]:sent[0] + 65536])
                except (ssl.SSLWantWriteError, BlockingIOError):
                    return
        wait_still(pid, poke=push)
        rss_append_stall = status_kib(pid, "VmRSS")
        sent_at_stall = sent[0]
        for p in stopped:
            os.kill(p, signal.SIGCONT)
        c.s.setblocking(True)
        c.s.sendall(view[sent[0]:])
        c.s.sendall(b"\r\n")
        tail = c.tagged(b"d")
        append_ok = tail.startswith(b"d OK")
        ok = ok and append_ok
        c.s.sendall(b"e LOGOUT\r\n")
        hwm = status_kib(pid, "VmHWM")

        print("imapguard %s, %d MB each way through a stalled reader" % (binary, args.size_mb))
        print("| moment | imapguard RSS (KiB) |")
        print("|---|---|")
        print("| logged in, before the FETCH | %d |" % rss_login)
        print("| FETCH: client stopped reading, proxy stopped reading from Dovecot | %d |"
              % rss_fetch_stall)
        print("| APPEND: Dovecot stopped, proxy stopped reading from the client "
              "(%d MB sent by then) | %d |" % (sent_at_stall >> 20, rss_append_stall))
        print("| peak over the whole run (VmHWM) | %d |" % hwm)
        print("FETCH %s (%d bytes), APPEND %s" % ("complete" if fetch_ok else "FAILED", got,
                                                   "OK" if append_ok else "FAILED: %r" % tail))
    finally:
        if ig is not None:
            ig.stop()
        if dv is not None:
            dv.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
