#!/usr/bin/env python3
"""Side-by-side benchmark of imapguard, HAProxy 2.6 and nginx 1.22's mail
proxy in front of one private Dovecot (see bench/README.md).

Every proxy terminates TLS 1.3 (X25519, TLS_AES_256_GCM_SHA384, one ECDSA
P-256 certificate) and talks cleartext IMAP to the same Dovecot. Each mode
runs against each proxy in turn, each time on a freshly started proxy, with
ig_loadgen as the client; the proxy runs on one CPU, Dovecot and the load
generator on another. The figure of merit is work per CPU-second of the
proxy (utime+stime from /proc/PID/stat of all its processes).

    bench/run.py                       # everything (installs nothing)
    bench/run.py --modes full,noop --proxies imapguard,nginx --duration 5
    bench/run.py --smoke               # ~2 s: imapguard + Dovecot only

Peers come from bench/install-deps.sh (run it first). The binaries come
from a build directory (--build, default build/bench) or --imapguard and
--loadgen. Exit status: 0 when every run completed without error, 1
otherwise (the table is printed either way), 2 on a setup problem.
"""

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import selectors
import shutil
import statistics
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import igtest  # noqa: E402  (Dovecot fixture, process bookkeeping)

MODES = ("full", "resumed", "bulk", "noop", "idle")
PROXIES = ("imapguard", "haproxy", "nginx")

USER, PASSWORD = "user11", igtest.USERS["user11"]
SMALL_SIZE = 2 * 1024
BIG_SIZE = 10 * 1024 * 1024

TLS13_SUITE = "TLS_AES_256_GCM_SHA384"
GROUP = "X25519"

# The open files limit every process gets (set in main()).
NOFILE = 20000

# Dovecot tuned so that it is not what refuses the load: one long-lived
# login process (high-performance mode), imap processes reused and kept
# (warm_up() starts as many as the busy modes need, so that the first run
# does not pay for Dovecot forking them; not more, as every idle imap
# process wakes up for each new connection), limits far above the load,
# IDLE keep-alives rare. Appended to igtest's configuration
# (later settings win).
DOVECOT_EXTRA = """
# --- bench/run.py
default_process_limit = 20000
default_client_limit = 40000
default_vsz_limit = 1G
service imap-login {
  service_count = 0
  process_min_avail = 1
  client_limit = 40000
}
service imap {
  service_count = 0
  process_limit = 20000
  idle_kill = 1 hours
}
protocol imap {
  mail_max_userip_connections = 100000
  imap_idle_notify_interval = 30 mins
}
auth_debug = no
auth_verbose = no
"""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


# --------------------------------------------------------------------------
# /proc readings

def cpu_seconds(pids):
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tck


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_busy(cpu):
    """Busy time of one CPU (all processes, interrupts, and time stolen by
    the hypervisor) in seconds, from /proc/stat."""
    tck = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % cpu):
                v = [int(x) for x in line.split()[1:]]
                # user nice system idle iowait irq softirq steal
                return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck
    return 0.0


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def pinned(cpu, argv):
    return (["taskset", "-c", str(cpu)] + argv) if cpu is not None else argv


# --------------------------------------------------------------------------
# The proxies. Each: start(), stop(check), pids(), port(starttls) or None
# when the proxy cannot do that, describe().

class Imapguard:
    name = "imapguard"

    def __init__(self, binary, d, certs, backend_port, cpu, log_level, workers=None,
                 crypto=None):
        self.binary, self.dir, self.cpu = binary, d, cpu
        self.ports = {"imaps": igtest.free_port(), "imap": igtest.free_port()}
        self.config = {
            "log_level": log_level,
            "listeners": [
                {"name": "imaps", "listen": "127.0.0.1:%d" % self.ports["imaps"],
                 "tls": "implicit", "max_sessions": 100000},
                {"name": "imap", "listen": "127.0.0.1:%d" % self.ports["imap"],
                 "tls": "starttls", "max_sessions": 100000},
            ],
            "tls": {"certificates": [{"cert": certs + "/server-ecdsa.pem",
                                      "key": certs + "/server-ecdsa.key"}],
                    "min_version": "1.3"},
            # The peers do not tell Dovecot the client's address either.
            "backend": {"address": "127.0.0.1:%d" % backend_port, "tls": "none",
                        "forward_client_address": "none"},
            "limits": {"max_sessions": 100000, "max_connections_per_address": 0,
                       "handshake_timeout": "60s", "idle_timeout": "24h",
                       # --idle-no-login holds sessions before login
                       "preauth_timeout": "1h", "preauth_lifetime": "2h"},
            # auto: one per CPU of its affinity, so one when pinned.
            "workers": workers or "auto",
            "policy": {"defaults": {"require_tls": True}},
            # On, as in production, but no threshold the load could reach.
            "ratelimit": {"enabled": True, **{k: {"threshold": 65535} for k in (
                "address", "spray_address", "user", "user_address", "user_circuit",
                "password_spray")}},
        }
        if crypto:
            self.config["tls"]["crypto"] = crypto
        self.conf_path = os.path.join(d, "imapguard.yaml")
        with open(self.conf_path, "w") as f:
            f.write(igtest.to_yaml(self.config) + "\n")
        self.log_path = os.path.join(d, "imapguard.log")
        self.proc = None

    def describe(self):
        out = subprocess.run([self.binary, "-V"], capture_output=True, text=True)
        v = (out.stdout or out.stderr).strip().splitlines()
        return v[0] if v and out.returncode == 0 else "imapguard " + self.binary

    def log_text(self):
        return igtest.read_text(self.log_path)

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        # As root, imapguard wants `user` or --allow-root (a benchmark run).
        root = ["--allow-root"] if os.geteuid() == 0 else []
        self.proc = igtest.spawn(pinned(self.cpu, [self.binary, "-c", self.conf_path] + root),
                                 self.log_path, env=env)

        def ready():
            if self.proc.poll() is not None:
                raise SetupError("imapguard exited with %s:\n%s"
                                 % (self.proc.returncode, self.log_text()[-3000:]))
            # "event=ready" is an info line (the bench logs at warn): the
            # cleartext greeting on the STARTTLS listener says the same, as
            # it is only sent once the start-up is over.
            g = igtest.read_greeting("127.0.0.1", self.ports["imap"])
            return g is not None and g.startswith(b"* OK")
        igtest.wait_until(ready, igtest.START_TIMEOUT, "imapguard's greeting")

    def pids(self):
        return [self.proc.pid]

    def port(self, starttls):
        return self.ports["imap" if starttls else "imaps"]

    def stop(self, check=False):
        if self.proc is None:
            return
        code = igtest.reap(self.proc, signal.SIGTERM, 15)
        self.proc = None
        if check:
            text = self.log_text()
            bad = [m for m in igtest.SANITIZER_MARKERS if m in text]
            if bad or code != 0:
                raise AssertionError("imapguard exit code %r, sanitizer %s; log tail:\n%s"
                                     % (code, bad, text[-4000:]))


class Haproxy:
    name = "haproxy"

    def __init__(self, d, certs, backend_port, cpu):
        self.dir, self.cpu = d, cpu
        self.tls_port = igtest.free_port()
        pem = os.path.join(d, "haproxy.pem")  # HAProxy wants chain and key in one file
        with open(pem, "w") as out:
            for part in ("server-ecdsa.pem", "server-ecdsa.key"):
                with open(os.path.join(certs, part)) as f:
                    out.write(f.read())
        os.chmod(pem, 0o600)
        self.conf_path = os.path.join(d, "haproxy.cfg")
        with open(self.conf_path, "w") as f:
            f.write("""\
# HAProxy for bench/run.py: TCP mode, TLS terminated, cleartext to Dovecot.
global
    nbthread 1
    maxconn {maxconn}
    pidfile {d}/haproxy.pid
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-bind-ciphersuites {suite}
    ssl-default-bind-curves {group}

defaults
    mode tcp
    timeout connect 10s
    timeout client 24h
    timeout server 24h

frontend imaps
    bind 127.0.0.1:{port} ssl crt {pem}
    maxconn {maxconn}
    default_backend dovecot

backend dovecot
    server dovecot 127.0.0.1:{bport}
""".format(d=d, maxconn=NOFILE // 2 - 100, suite=TLS13_SUITE, group=GROUP, port=self.tls_port, pem=pem,
           bport=backend_port))
        self.log_path = os.path.join(d, "haproxy.log")
        self.proc = None

    def describe(self):
        out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True)
        return " ".join(out.stdout.split()[:3])

    def log_text(self):
        return igtest.read_text(self.log_path)

    def start(self):
        chk = subprocess.run(["haproxy", "-c", "-q", "-f", self.conf_path],
                             capture_output=True, text=True)
        if chk.returncode != 0:
            raise SetupError("haproxy -c: " + chk.stdout + chk.stderr)
        self.proc = igtest.spawn(pinned(self.cpu, ["haproxy", "-db", "-f", self.conf_path]),
                                 self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise SetupError("haproxy exited with %s:\n%s"
                                 % (self.proc.returncode, self.log_text()[-3000:]))
            return igtest.can_connect("127.0.0.1", self.tls_port)
        igtest.wait_until(ready, igtest.START_TIMEOUT, "haproxy listening")

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def port(self, starttls):
        return None if starttls else self.tls_port  # no IMAP STARTTLS in HAProxy

    def stop(self, check=False):
        if self.proc is not None:
            igtest.reap(self.proc, signal.SIGTERM, 15)
            self.proc = None


class Nginx:
    name = "nginx"
    MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"

    def __init__(self, d, certs, backend_port, cpu):
        self.dir, self.cpu = d, cpu
        self.tls_port = igtest.free_port()
        self.starttls_port = igtest.free_port()
        self.auth_port = igtest.free_port()
        self.conf_path = os.path.join(d, "nginx.conf")
        self.log_path = os.path.join(d, "nginx.log")
        for sub in ("tmp", "logs"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write("""\
# nginx for bench/run.py: the mail proxy, its auth_http served by this same
# nginx (every login is accepted and sent to Dovecot).
load_module {module};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/nginx.log warn;

events {{
    worker_connections {conns};
}}

http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{auth_port};
        location = /auth {{
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port {bport};
            return 200;
        }}
    }}
}}

mail {{
    auth_http 127.0.0.1:{auth_port}/auth;
    proxy_pass_error_message on;
    ssl_certificate {certs}/server-ecdsa.pem;
    ssl_certificate_key {certs}/server-ecdsa.key;
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve {group};
    ssl_conf_command Ciphersuites {suite};
    ssl_session_tickets on;
    server {{
        listen 127.0.0.1:{port} ssl;
        protocol imap;
    }}
    server {{
        listen 127.0.0.1:{sport};
        protocol imap;
        starttls only;
    }}
}}
""".format(module=self.MODULE, d=d, nofile=NOFILE, conns=NOFILE // 2, auth_port=self.auth_port, bport=backend_port,
           certs=certs, group=GROUP, suite=TLS13_SUITE, port=self.tls_port,
           sport=self.starttls_port))
        self.proc = None

    def describe(self):
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        return (out.stderr or out.stdout).strip().replace("nginx version: ", "") + " mail"

    def log_text(self):
        return igtest.read_text(self.log_path)

    def _argv(self, *extra):
        return ["nginx", "-e", self.log_path, "-p", self.dir, "-c", self.conf_path] + list(extra)

    def start(self):
        if not os.path.exists(self.MODULE):
            raise SetupError("%s missing: run bench/install-deps.sh" % self.MODULE)
        chk = subprocess.run(self._argv("-t", "-q"), capture_output=True, text=True)
        if chk.returncode != 0:
            raise SetupError("nginx -t: " + chk.stdout + chk.stderr)
        self.proc = igtest.spawn(pinned(self.cpu, self._argv()), self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise SetupError("nginx exited with %s:\n%s"
                                 % (self.proc.returncode, self.log_text()[-3000:]))
            return (children(self.proc.pid)
                    and igtest.can_connect("127.0.0.1", self.tls_port)
                    and igtest.can_connect("127.0.0.1", self.starttls_port))
        igtest.wait_until(ready, igtest.START_TIMEOUT, "nginx listening")

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)  # master and worker

    def port(self, starttls):
        return self.starttls_port if starttls else self.tls_port

    def stop(self, check=False):
        if self.proc is not None:
            igtest.reap(self.proc, signal.SIGQUIT, 15)  # graceful: master and worker
            self.proc = None


# --------------------------------------------------------------------------
# Dovecot with the bench mailbox

def start_dovecot(d):
    dv = igtest.Dovecot(d, extra_conf=DOVECOT_EXTRA).start()
    import imaplib
    m = imaplib.IMAP4(dv.host, dv.port)
    try:
        m.login(USER, PASSWORD)
        typ, data = m.select("INBOX")
        if int(data[0]) != 0:
            raise SetupError("the bench user's INBOX is not empty")
        for size, subject in ((SMALL_SIZE, "bench small"), (BIG_SIZE, "bench big")):
            typ, _ = m.append("INBOX", None, None, igtest.make_message(size, subject))
            if typ != "OK":
                raise SetupError("APPEND failed")
        typ, data = m.select("INBOX")
        if int(data[0]) != 2:
            raise SetupError("INBOX holds %s messages, expected 2" % data[0])
        m.logout()
    except BaseException:
        dv.stop()
        raise
    return dv


# --------------------------------------------------------------------------
# One run of the load generator

def run_loadgen(args, loadgen, proxy, mode, port, extra=()):
    """Runs one mode against proxy; returns the loadgen's JSON result with
    rss_kib_per_session added for idle, or a dict with "error"."""
    argv = [loadgen, mode, "--host", "127.0.0.1", "--port", str(port),
            "--user", USER, "--password", PASSWORD, "--label", proxy.name,
            "--timeout", str(args.timeout)]
    if args.starttls:
        argv.append("--starttls")
    for pid in proxy.pids():
        argv += ["--cpu-pid", str(pid)]
    argv += list(extra)
    if mode in ("full", "resumed"):
        argv += ["--clients", str(args.clients), "--duration", str(args.duration)]
    elif mode == "bulk":
        argv += ["--clients", str(args.bulk_clients)]
        argv += (["--count", str(args.bulk_count)] if args.bulk_count
                 else ["--duration", str(args.duration)])
    elif mode == "noop":
        argv += ["--clients", "1", "--duration", str(args.noop_duration or args.duration)]
    elif mode == "idle":
        argv += ["--clients", str(args.idle_sessions), "--hold", "0"]
        if args.idle_no_login:
            argv.append("--no-login")
    if args.ca:
        argv += ["--ca", args.ca, "--sni", "localhost"]

    pids = proxy.pids()
    rss0 = rss_kib(pids)
    # Whatever else ran on the proxy's CPU meanwhile (other jobs on the
    # machine), to tell a quiet run from a disturbed one.
    busy0, own0, t0 = cpu_busy(args.pin_cpu), cpu_seconds(pids), time.monotonic()
    log("%s %s: %s" % (proxy.name, mode, " ".join(argv[1:])))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=igtest._die_with_parent)
    igtest._live[proc.pid] = proc
    limit = time.monotonic() + args.run_timeout
    result, rss1, human = None, None, ""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    try:
        open_streams = 2
        while open_streams:
            left = limit - time.monotonic()
            if left <= 0:
                raise TimeoutError("ig_loadgen %s did not finish within %ss"
                                   % (mode, args.run_timeout))
            for key, _ in sel.select(min(left, 1.0)):
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    human += line
                    continue
                if line.startswith("established "):
                    # Every session is up: the proxy's memory now, then
                    # release the load generator (it logs out and reports).
                    rss1 = rss_kib(pids)
                    proc.send_signal(signal.SIGUSR1)
                elif line.startswith("{"):
                    result = json.loads(line)
        code = proc.wait(30)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        sel.close()
        igtest._live.pop(proc.pid, None)
    sys.stderr.write(human)
    try:
        other = (cpu_busy(args.pin_cpu) - busy0) - (cpu_seconds(pids) - own0)
        other_pct = max(0.0, 100.0 * other / (time.monotonic() - t0))
    except FileNotFoundError:
        other_pct = None
    if result is None:
        return {"error": "no result (exit %s): %s" % (code, human.strip()[-500:])}
    result["exit"] = code
    result["other_load_pct"] = other_pct
    if mode == "idle" and rss1 is not None and result.get("established"):
        result["rss_kib_before"] = rss0
        result["rss_kib_after"] = rss1
        result["rss_kib_per_session"] = (rss1 - rss0) / result["established"]
    return result


def warm_up(args, loadgen, px, port, sessions):
    """Has Dovecot start (and keep, idle_kill above) the imap processes the
    runs will need, through a proxy instance that is thrown away after: the
    first run of a mode would otherwise pay for the forks."""
    argv = [loadgen, "idle", "--host", "127.0.0.1", "--port", str(port), "--user", USER,
            "--password", PASSWORD, "--clients", str(sessions), "--hold", "0.1",
            "--no-idle", "--timeout", str(args.timeout)]
    if args.starttls:
        argv.append("--starttls")
    log("warm-up: %d sessions through %s" % (sessions, px.name))
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=args.run_timeout, preexec_fn=igtest._die_with_parent)
    if out.returncode != 0:
        raise SetupError("warm-up failed: " + out.stderr.strip()[-500:])


# --------------------------------------------------------------------------
# The table

# mode -> (row title, key in the result, format, higher is better)
ROWS = [
    ("full", "full sessions / CPU-s", "units_per_cpu_s", "%.0f", True),
    ("resumed", "resumed sessions / CPU-s", "units_per_cpu_s", "%.0f", True),
    ("resumed", "  resumed handshakes %", "resumed_pct", "%.0f%%", None),
    ("bulk", "bulk MiB / CPU-s", "mib_per_cpu_s", "%.0f", True),
    ("noop", "NOOP round trips / CPU-s", "units_per_cpu_s", "%.0f", True),
    ("noop", "NOOP p50 latency (us)", "p50_us", "%.0f", False),
    ("noop", "  p90 / p99 (us)", None, None, None),
    ("idle", "idle RSS per session (KiB)", "rss_kib_per_session", "%.1f", False),
]


# The figure that picks the median run of a mode when runs are repeated.
MEDIAN_KEY = {"full": "units_per_cpu_s", "resumed": "units_per_cpu_s",
              "bulk": "mib_per_cpu_s", "noop": "units_per_cpu_s",
              "idle": "rss_kib_per_session"}


def median_run(mode, rs):
    """The run whose figure is the median (a failed run counts as the
    worst): one real run, so that its figures stay consistent together."""
    if len(rs) == 1:
        return rs[0]
    bad = [r for r in rs if "error" in r or r.get("errors")]
    if bad:
        return bad[0]
    key = MEDIAN_KEY[mode]
    ordered = sorted(rs, key=lambda r: r.get(key) or 0)
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["repeats"] = [r.get(key) for r in rs]
    return out


def fmt(v, f):
    return "-" if v is None else (f % v)


def pooled_figure(mode, rs):
    """A proxy's figure over all its runs of a mode: the work of every run
    over the CPU time of every run (not for idle or noop latency)."""
    ok = [r for r in rs if "error" not in r and r.get("proxy_cpu_s")]
    cpu = sum(r["proxy_cpu_s"] for r in ok)
    if mode in ("idle",) or not ok or cpu <= 0:
        return None
    work = sum(r.get("mib", 0) if mode == "bulk" else r.get("units", 0) for r in ok)
    return work / cpu


def rounds(runs, proxies, modes):
    """Every run's figure in the order the rounds ran, and imapguard's ratio
    to each peer within each round (the same minutes of the machine) with
    the median of those ratios: on a machine whose speed drifts between
    runs, that median says more than the ratio of two medians."""
    lines = []
    for mode in modes:
        key = MEDIAN_KEY[mode]
        title, better = next((t, hb) for m, t, k, _, hb in ROWS if m == mode and k is not None)
        figs = {p: [r.get(key) if "error" not in r else None
                    for r in runs.get((p, mode), [])] for p in proxies}
        if not any(figs.values()):
            continue
        parts = ["%s %s" % (p, ", ".join(fmt(v, "%.1f" if mode == "idle" else "%.0f")
                                          for v in figs[p]))
                 for p in proxies if figs[p]]
        pooled = {p: pooled_figure(mode, runs.get((p, mode), [])) for p in proxies}
        if all(pooled.get(p) for p in proxies if figs[p]) and pooled.get("imapguard"):
            parts.append("pooled " + ", ".join("%s %.0f" % (p, pooled[p])
                                               for p in proxies if figs[p]))
            for p in proxies:
                if p != "imapguard" and figs[p] and pooled.get(p):
                    parts.append("pooled imapguard / %s %.2fx" % (p, pooled["imapguard"] /
                                                                 pooled[p]))
        mine = figs.get("imapguard") or []
        for p in proxies:
            if p == "imapguard" or not figs[p] or not mine:
                continue
            ratios = [a / b for a, b in zip(mine, figs[p]) if a and b]
            if ratios:
                parts.append("imapguard / %s %s (median %.2fx%s)" % (
                    p, ", ".join("%.2f" % x for x in ratios),
                    statistics.median(ratios), "" if better else ", lower is better"))
        lines.append("  %s: %s" % (title.strip(), "; ".join(parts)))
    return lines


def table(results, proxies, modes):
    peers = [p for p in proxies if p != "imapguard"]
    head = ["", *proxies]
    if "imapguard" in proxies:
        head += ["imapguard / %s" % p for p in peers]
    rows = [head]
    for mode, title, key, f, better in ROWS:
        if mode not in modes:
            continue
        row = [title]
        vals = {}
        for p in proxies:
            r = results.get((p, mode))
            if r is None:
                row.append("n/a")
                continue
            if "error" in r:
                row.append("failed")
                continue
            if key is None:  # p90/p99
                row.append("%.0f / %.0f" % (r.get("p90_us", 0), r.get("p99_us", 0)))
                continue
            v = r.get(key)
            vals[p] = v
            cell = fmt(v, f)
            if r.get("errors"):
                cell += " (%d err)" % r["errors"]
            row.append(cell)
        if "imapguard" in proxies:
            for p in peers:
                a, b = vals.get("imapguard"), vals.get(p)
                if better is None or not a or not b:
                    row.append("")
                else:
                    row.append("%.2fx%s" % (a / b, "" if better else " (lower is better)"))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine_line():
    model, cores = "?", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "%s, %s cores, %s" % (model, cores, platform.release())


# --------------------------------------------------------------------------

def find_binary(explicit, build, name):
    if explicit:
        path = explicit
    else:
        cands = [os.path.join(build, name), os.path.join(build, "bench", name)]
        path = next((c for c in cands if os.path.exists(c)), cands[0])
    if not os.access(path, os.X_OK):
        raise SetupError("%s not found at %s (build it, or give its path)" % (name, path))
    return path


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build", "bench"),
                    help="build directory with imapguard and bench/ig_loadgen")
    ap.add_argument("--imapguard", help="imapguard binary (default: BUILD/imapguard)")
    ap.add_argument("--loadgen", help="ig_loadgen binary (default: BUILD/bench/ig_loadgen)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of %s"
                    % ",".join(MODES))
    ap.add_argument("--proxies", default=",".join(PROXIES), help="comma-separated subset of %s"
                    % ",".join(PROXIES))
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    ap.add_argument("--noop-duration", type=float, help="seconds for noop (default --duration)")
    ap.add_argument("--clients", type=int, default=50, help="full/resumed clients (default 50)")
    ap.add_argument("--bulk-clients", type=int, default=4, help="bulk clients (default 4)")
    ap.add_argument("--bulk-count", type=int, help="bulk: this many FETCHes instead of a duration")
    ap.add_argument("--idle-sessions", type=int, default=1000, help="idle sessions (default 1000)")
    ap.add_argument("--idle-no-login", action="store_true",
                    help="idle sessions stay not authenticated after the greeting (handshake "
                    "done, no backend connection): the proxy's cost alone, e.g. "
                    "--proxies imapguard --modes idle --idle-sessions 100000")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each mode this many times per proxy and show the median run "
                    "(default 1)")
    ap.add_argument("--interleave", action="store_true",
                    help="start the proxies once, side by side, and alternate their --repeat "
                    "runs (A B, B A, ...) instead of a fresh proxy for each run; the rounds "
                    "line adds each proxy's figure pooled over all its runs (not for idle)")
    ap.add_argument("--starttls", action="store_true",
                    help="STARTTLS on cleartext listeners instead of implicit TLS "
                    "(HAProxy cannot: skipped)")
    ap.add_argument("--proxy-cpu", default="0", help="CPU for the proxy under test (default 0)")
    ap.add_argument("--other-cpu", default="1",
                    help="CPU for Dovecot, the load generator and this script (default 1)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    ap.add_argument("--ig-log-level", default="warn",
                    help="imapguard log_level (default warn: the peers log no line per session)")
    ap.add_argument("--timeout", type=float, default=30.0, help="loadgen per-step timeout")
    ap.add_argument("--run-timeout", type=float, default=600.0, help="limit per loadgen run")
    ap.add_argument("--verify", action="store_true",
                    help="loadgen verifies the certificate against the dev CA")
    ap.add_argument("--json", help="also write every result to this file (JSON lines)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--scaling", action="store_true",
                    help="instead of the table: imapguard's handshakes per second with 1, 2, "
                    "... workers (up to the CPUs this process may use), nothing pinned, "
                    "clients that only handshake and log out (no backend work)")
    ap.add_argument("--ig-crypto", choices=("auto", "openssl", "mbedtls"),
                    help="imapguard's tls.crypto (default: its default, auto); --scaling "
                    "with mbedtls makes the proxy's handshakes dearer than the load "
                    "generator's, so that the proxy, not the client, is what saturates")
    ap.add_argument("--smoke", action="store_true",
                    help="a short check for the test suite: imapguard and Dovecot only, every "
                    "mode for about a second; non-zero exit on any failure")
    args = ap.parse_args(argv)
    # In this order whatever was asked: idle last, as its thousands of
    # Dovecot processes would slow the others down.
    wanted = [m for m in args.modes.split(",") if m]
    args.modes = [m for m in MODES if m in wanted]
    args.proxies = [p for p in args.proxies.split(",") if p]
    for m in wanted:
        if m not in MODES:
            ap.error("unknown mode %s" % m)
    for p in args.proxies:
        if p not in PROXIES:
            ap.error("unknown proxy %s" % p)
    if args.smoke:
        args.proxies = ["imapguard"]
        args.duration = 1.0
        args.clients = 8
        args.bulk_clients = 2
        args.bulk_count = 3
        args.idle_sessions = 20
        args.noop_duration = 0.5
        args.verify = True
        args.run_timeout = 120.0
        args.no_pin = True  # beside other tests: no figures, so no pinning
    return args


def find_binaries(args):
    """(imapguard, ig_loadgen), or None after saying which is missing."""
    try:
        return (find_binary(args.imapguard, args.build, "imapguard"),
                find_binary(args.loadgen, args.build, "ig_loadgen"))
    except SetupError as e:
        log(str(e))
        return None


def scaling_main(args):
    """imapguard with 1..N workers (N: the CPUs this process may use), the
    proxy, the load generator and Dovecot on every CPU: full handshakes
    with --no-login, so that only the proxy's work grows with the load."""
    bins = find_binaries(args)
    if bins is None:
        return 2
    imapguard_bin, loadgen = bins
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ncpu = len(os.sched_getaffinity(0))
    args.pin_cpu = 0
    args.ca = None
    root = tempfile.mkdtemp(prefix="igbench-")
    os.chmod(root, 0o755)
    rows = []
    try:
        certs = igtest.make_devcerts(SRC, os.path.join(root, "certs"))
        dd = os.path.join(root, "dovecot")
        os.makedirs(dd)
        dv = start_dovecot(dd)
        try:
            for rep in range(args.repeat):
                for workers in range(1, ncpu + 1):
                    d = os.path.join(root, "imapguard-%d-%d" % (workers, rep))
                    os.makedirs(d)
                    px = Imapguard(imapguard_bin, d, certs, dv.port, None, args.ig_log_level,
                                   workers=workers, crypto=args.ig_crypto)
                    px.start()
                    try:
                        r = run_loadgen(args, loadgen, px, "full", px.port(False),
                                        extra=["--no-login"])
                    finally:
                        px.stop()
                    r["workers"] = workers
                    rows.append(r)
        finally:
            dv.stop()
            igtest._kill_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print("imapguard scaling, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip())
    print("machine: %s" % machine_line())
    print("TLS 1.3 full handshakes, %s, %s, ECDSA P-256; %d clients, %gs per run; each client "
          "connects, handshakes, reads the greeting, logs out (no backend work); nothing "
          "pinned: the load generator shares the CPUs; imapguard's tls.crypto: %s"
          % (GROUP, TLS13_SUITE, args.clients, args.duration, args.ig_crypto or "auto"))
    print()
    print("| workers | handshakes/s | proxy CPU (cores) | handshakes per proxy CPU-second | errors |")
    print("|---|---|---|---|---|")
    base = None
    for workers in range(1, ncpu + 1):
        rs = [r for r in rows if r["workers"] == workers and "error" not in r]
        if not rs:
            print("| %d | failed | | | |" % workers)
            continue
        r = sorted(rs, key=lambda x: x.get("units_per_s", 0))[len(rs) // 2]
        ups = r.get("units_per_s", 0)
        base = base or ups
        cores = r.get("proxy_cpu_s", 0) / r["wall_s"] if r.get("wall_s") else 0
        print("| %d | %.0f (%.2fx) | %.2f | %.0f | %d |" % (
            workers, ups, ups / base if base else 0, cores, r.get("units_per_cpu_s", 0),
            r.get("errors", 0)))
    return 0 if rows and all("error" not in r and not r.get("errors") for r in rows) else 1


def main(argv):
    args = parse_args(argv)
    if args.scaling:
        return scaling_main(args)
    bins = find_binaries(args)
    if bins is None:
        return 2
    imapguard_bin, loadgen = bins
    for p in args.proxies:
        if p != "imapguard" and shutil.which(p) is None:
            log("%s is not installed: run bench/install-deps.sh" % p)
            return 2

    # Enough descriptors for thousands of sessions everywhere (children
    # inherit the limit).
    global NOFILE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, 1 << 20))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # Per process: the proxy holds two descriptors per logged-in session
    # (client, backend), one per session that has not logged in; the load
    # generator one per session.
    if NOFILE < (1 if args.idle_no_login else 4) * args.idle_sessions + 1000:
        log("open files limit %d: too low for %d idle sessions" % (NOFILE, args.idle_sessions))
        return 2

    proxy_cpu = other_cpu = None
    allowed = os.sched_getaffinity(0)
    if not args.no_pin and len(allowed) > 1:
        proxy_cpu, other_cpu = int(args.proxy_cpu), int(args.other_cpu)
        if proxy_cpu not in allowed or other_cpu not in allowed or proxy_cpu == other_cpu:
            log("--proxy-cpu %d and --other-cpu %d must be two of the CPUs this process may "
                "use (%s), or --no-pin" % (proxy_cpu, other_cpu, sorted(allowed)))
            return 2
        # Dovecot and the load generator are started by this process and
        # inherit its CPU; the proxies are started under taskset.
        os.sched_setaffinity(0, {other_cpu})
    args.pin_cpu = proxy_cpu if proxy_cpu is not None else 0

    # Termination signals unwind through the finally blocks below.
    def on_signal(signo, _frame):
        raise KeyboardInterrupt("signal %d" % signo)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    root = tempfile.mkdtemp(prefix="igbench-")
    os.chmod(root, 0o755)
    results = {}
    runs = {}  # (proxy, mode) -> every result
    described = {}
    failures = []
    dv = None
    try:
        certs = igtest.make_devcerts(SRC, os.path.join(root, "certs"))
        args.ca = os.path.join(certs, "ca.pem") if args.verify else None
        dd = os.path.join(root, "dovecot")
        os.makedirs(dd)
        dv = start_dovecot(dd)
        log("Dovecot on 127.0.0.1:%d, %s with a %d B and a %d B message"
            % (dv.port, USER, SMALL_SIZE, BIG_SIZE))

        def make(name, n):
            d = os.path.join(root, "%s-%d" % (name, n))
            os.makedirs(d)
            if name == "imapguard":
                return Imapguard(imapguard_bin, d, certs, dv.port, proxy_cpu, args.ig_log_level)
            if name == "haproxy":
                return Haproxy(d, certs, dv.port, proxy_cpu)
            return Nginx(d, certs, dv.port, proxy_cpu)

        n = 0
        first = next((p for p in args.proxies
                      if p != "haproxy" or not args.starttls), None)
        if first is not None:
            px = make(first, 0)
            px.start()
            try:
                need = max(args.clients, args.bulk_clients, 1)
                warm_up(args, loadgen, px, px.port(args.starttls), need + 8)
            finally:
                px.stop()
        def record(name, mode, rep, r):
            runs.setdefault((name, mode), []).append(r)
            if "error" in r or r.get("errors") or r.get("exit"):
                failures.append("%s %s: %s" % (name, mode, r.get("error")
                                               or r.get("first_error") or
                                               "exit %s" % r.get("exit")))
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(dict(r, proxy=name, mode=mode, repeat=rep)) + "\n")

        def measured(px, mode, port):
            r = run_loadgen(args, loadgen, px, mode, port)
            if r.get("proxy_cpu_s", 0) < 0:
                r.setdefault("error", "a proxy process went away during the run")
            return r

        for mode in args.modes:
            if args.interleave and mode != "idle":
                # Every proxy started once, side by side (pinned to the
                # same CPU, idle while another is measured), and the runs
                # alternate A B, B A, ...: each pair of runs shares the same
                # minute of the machine, and a trend cancels out.
                live = []
                for name in args.proxies:
                    n += 1
                    px = make(name, n)
                    described.setdefault(name, px.describe())
                    if px.port(args.starttls) is None:
                        log("%s: no STARTTLS, skipped" % name)
                        continue
                    live.append((name, px))
                try:
                    for _, px in live:
                        px.start()
                    # Each proxy's first sessions (allocations, learning the
                    # backend) stay out of the figures: a one-second run of
                    # the mode, not counted.
                    short = copy.copy(args)
                    short.duration = short.noop_duration = min(1.0, args.duration)
                    short.bulk_count = 1 if args.bulk_count else None
                    for _, px in live:
                        run_loadgen(short, loadgen, px, mode, px.port(args.starttls))
                    for rep in range(args.repeat):
                        order = live if rep % 2 == 0 else list(reversed(live))
                        for name, px in order:
                            record(name, mode, rep, measured(px, mode, px.port(args.starttls)))
                finally:
                    for _, px in live:
                        px.stop(check=args.smoke)
                continue
            # Repeats go round the proxies, so that a disturbance on the
            # machine is spread over all of them rather than hitting one.
            for rep in range(args.repeat):
                for name in args.proxies:
                    n += 1
                    px = make(name, n)
                    described.setdefault(name, px.describe())
                    port = px.port(args.starttls)
                    if port is None:
                        if rep == 0:
                            log("%s: no STARTTLS, skipped" % name)
                        continue
                    px.start()
                    try:
                        r = measured(px, mode, port)
                    finally:
                        px.stop(check=args.smoke)
                    record(name, mode, rep, r)
        for key, rs in runs.items():
            results[key] = median_run(key[1], rs)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    except (SetupError, TimeoutError) as e:
        log("setup failed: %s" % e)
        return 2
    finally:
        if dv is not None:
            dv.stop()
        igtest._kill_all()
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print("imapguard benchmark, %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip())
    print("machine: %s" % machine_line())
    print("proxies: %s" % "; ".join("%s (%s)" % (k, v) for k, v in described.items()))
    print("TLS 1.3, %s, %s, ECDSA P-256 certificate; %s; proxy on CPU %s, Dovecot and "
          "load generator on CPU %s" % (GROUP, TLS13_SUITE,
                                        "STARTTLS" if args.starttls else "implicit TLS",
                                        proxy_cpu if proxy_cpu is not None else "any",
                                        other_cpu if other_cpu is not None else "any"))
    print("full/resumed: %d clients, %gs; bulk: %d clients; noop: 1 client; idle: %d sessions%s"
          % (args.clients, args.duration, args.bulk_clients, args.idle_sessions,
             "; median of %d runs each" % args.repeat if args.repeat > 1 else ""))
    print()
    print(table(results, args.proxies, args.modes))
    if args.repeat > 1:
        print()
        print("every run, round by round:")
        for line in rounds(runs, args.proxies, args.modes):
            print(line)
    loads = [(r.get("other_load_pct"), p, m) for (p, m), rs in runs.items() for r in rs
             if r.get("other_load_pct") is not None]
    if loads:
        top = max(loads)
        print()
        print("other load on the proxy's CPU %s during the runs (busy time not the proxy's, "
              "as %% of wall time): at most %.0f%% (%s %s)%s"
              % (args.pin_cpu, top[0], top[1], top[2],
                 "" if top[0] < 10 else " -- the machine was not quiet"))
    if failures:
        print()
        print("failures:")
        for f in failures:
            print("  " + f)
    if args.smoke:
        checks = []
        for mode in args.modes:
            r = results.get(("imapguard", mode), {})
            if not r.get("units"):
                checks.append("%s: no unit completed" % mode)
        if checks:
            print("smoke: " + "; ".join(checks))
            return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
