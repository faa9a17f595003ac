#!/usr/bin/env python3
"""What an app password login costs, end to end (docs/APP_PASSWORDS.md).

Starts a private Dovecot with a master passdb and imapguard in front of it
(user12 under `credentials: both`, so one user can log in both ways), then
runs N sequential sessions of each kind over one reused TLS client context:
connect, TLS handshake, LOGIN, LOGOUT, once with the account password
(checked by Dovecot) and once with an app password (Argon2id at the proxy,
then the master login). Prints, for each kind, the median and 90th
percentile of the LOGIN round trip and the proxy's CPU time per session
(utime+stime of its process over the run, from /proc/PID/stat), and the
difference: what an app password adds to a login. Not a test.

    bench/apppass_login.py [--build build/rel] [--sessions 40] [--memory 19MiB]
                           [--iterations 2]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import igtest  # noqa: E402

USER = "user12"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sessions(ig, ca, password, n):
    ctx = igtest.client_context(ca)
    times = []
    for i in range(n):
        c = igtest.Raw(*ig.addr("imaps"), tls_ctx=ctx)
        assert c.readline().startswith(b"* OK")
        t0 = time.perf_counter()
        _, tagged = c.cmd("a", 'LOGIN "%s" "%s"' % (USER, password))
        times.append(time.perf_counter() - t0)
        assert igtest.status(tagged) == "OK", tagged
        c.cmd("b", "LOGOUT")
        c.close()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "rel"))
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--memory", default="19MiB")
    ap.add_argument("--iterations", type=int, default=2)
    args = ap.parse_args()
    binary = os.path.join(args.build, "imapguard")
    tmp = tempfile.mkdtemp(prefix="ig-apppass-bench-")
    os.chmod(tmp, 0o755)  # (Dovecot's unprivileged processes read under it)
    dv = ig = None
    try:
        certs = igtest.make_devcerts(SRC, os.path.join(tmp, "certs"))
        ca = os.path.join(certs, "ca.pem")
        dvdir = os.path.join(tmp, "dovecot")
        os.makedirs(dvdir)
        dv = igtest.Dovecot(dvdir, master=True).start()
        secret = os.path.join(tmp, "master.secret")
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(igtest.MASTER_PW + "\n")
        cfg = igtest.base_config(certs, dv.address)
        cfg["log_level"] = "info"
        cfg["workers"] = 1
        cfg["backend"]["master_login"] = {"user": igtest.MASTER_USER, "password_file": secret}
        cfg["app_passwords"] = {"store": os.path.join(tmp, "ap.db"),
                                "hash": {"memory": args.memory,
                                         "iterations": args.iterations}}
        cfg["policy"]["groups"] = {"m": {"users": [USER], "credentials": "both"}}
        igdir = os.path.join(tmp, "ig")
        os.makedirs(igdir)
        ig = igtest.Imapguard(binary, igdir, cfg).start()
        r = subprocess.run([binary, "apppass", "-c", ig.config_path, "add", USER, "--label",
                            "bench", "--quiet"], capture_output=True, text=True, check=True)
        pid, pw = r.stdout.split()
        igtest.wait_until(lambda: "event=apppass-issued id=%s" % pid in ig.log_text(), 10,
                          "the password loaded")
        results = {}
        for kind, secret_pw in (("account password", igtest.USERS[USER]),
                                ("app password", pw)):
            sessions(ig, ca, secret_pw, 3)  # warm-up
            c0 = cpu_seconds(ig.pid)
            t = sessions(ig, ca, secret_pw, args.sessions)
            cpu = (cpu_seconds(ig.pid) - c0) / args.sessions
            t.sort()
            results[kind] = (statistics.median(t), t[int(len(t) * 0.9)], cpu)
        print("Argon2id m=%s t=%d, %d sessions each, one worker, %d CPUs" % (
            args.memory, args.iterations, args.sessions, os.cpu_count()))
        print("%-18s %14s %14s %22s" % ("", "LOGIN p50 ms", "LOGIN p90 ms",
                                        "proxy CPU ms/session"))
        for kind, (p50, p90, cpu) in results.items():
            print("%-18s %14.1f %14.1f %22.1f" % (kind, p50 * 1000, p90 * 1000, cpu * 1000))
        a, b = results["account password"], results["app password"]
        print("%-18s %14.1f %14.1f %22.1f" % ("difference", (b[0] - a[0]) * 1000,
                                              (b[1] - a[1]) * 1000, (b[2] - a[2]) * 1000))
        return 0
    finally:
        if ig is not None:
            ig.stop(check=False)
        if dv is not None:
            dv.stop()
        igtest._kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
