"""Integration test harness for imapguard: a private real Dovecot, dev
certificates, an imapguard process, and small IMAP clients.

Everything a test starts lives in a private temporary directory, listens on
free loopback ports and runs in its own process group; every process is
killed at the end (fixture finalizers, and an atexit hook as a last resort).
Every wait is bounded.

Also usable as a script (used by scripts/demo.py and by hand):
    /usr/bin/python3 igtest.py dovecot-config DIR PORT   # write DIR/dovecot.conf
"""

import atexit
import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"

# Users of the private Dovecot. Dovecot folds names to lower case (%Lu).
USERS = {
    "alice@example.com": "alice-secret",
    "bob@example.com": "bob-secret",
    "user11": "pass11",
    "user12": "pass12",
}
ALICE = "alice@example.com"
ALICE_PW = USERS[ALICE]

# The master user of a Dovecot started with master=True (a master passdb,
# auth_master_user_separator = *): it logs in for any user, as
# "user*igmaster" with LOGIN or as authcid with an authzid in PLAIN, from
# loopback only (allow_real_nets: the proxy's own address, whatever client
# address an ID from a trusted network reports). Its file is private: mode
# 0640, group dovecot (the auth process reads it). MASTER_USER_ELSEWHERE
# has the same password but may connect only from 192.0.2.0/24: refused
# here, which shows that allow_real_nets is enforced.
MASTER_USER = "igmaster"
MASTER_USER_ELSEWHERE = "igmaster-elsewhere"
MASTER_PW = "igmaster-Secret-4e1b"
MASTER_SEPARATOR = "*"

# Dovecot refuses to give mail access to uid 0 and to its own internal
# users, so mail is owned by the stock "mail" user (uid/gid 8 on Debian).
MAIL_USER = "mail"

# Every wait in the harness is bounded by one of these (seconds).
START_TIMEOUT = 20.0
IO_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# Process bookkeeping: every process we start is killed at exit, by group.

_live = {}  # pid -> subprocess.Popen


def _kill_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent():
    """In the child, before exec: SIGKILL when the parent (pytest) dies,
    even by SIGKILL (a ctest timeout), when atexit never runs."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _rlimits_then(rlimits):
    """A preexec_fn: _die_with_parent, then setrlimit for each
    {resource.RLIMIT_X: (soft, hard)} (lowering only, no privilege needed)."""
    import resource

    def pre():
        _die_with_parent()
        for res, limits in (rlimits or {}).items():
            resource.setrlimit(res, limits)
    return pre


def spawn(argv, log_path, env=None, cwd=None, rlimits=None):
    """Start argv in a new session (own process group), output to log_path,
    with the given resource limits ({resource.RLIMIT_X: (soft, hard)})."""
    logf = open(log_path, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True,
                                preexec_fn=_rlimits_then(rlimits) if rlimits
                                else _die_with_parent)
    finally:
        logf.close()
    _live[proc.pid] = proc
    return proc


def reap(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal proc (only proc, not its group), wait up to timeout, then kill
    the whole group. Returns the exit code, or None if it had to be killed."""
    code = proc.poll()
    if code is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
    _kill_group(proc)
    if code is None:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    _live.pop(proc.pid, None)
    return code


@atexit.register
def _kill_all():
    for proc in list(_live.values()):
        _kill_group(proc)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
    _live.clear()


# --------------------------------------------------------------------------
# Ports and waiting

def read_text(path):
    """The file's text ("" while it does not exist): logs being written."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


_handed_ports = set()


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago on host (the kernel picks it),
    never one this process handed out before: the kernel may give the same
    free port to two calls in a row, and a test that asks for two ports
    (two listeners) must get two."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_ports:
            _handed_ports.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def in_threads(fn, n, timeout):
    """Runs fn(0) .. fn(n-1) in n threads at once; fails when one raised
    (naming each) or has not finished within timeout seconds."""
    import threading
    errors = []

    def run(i):
        try:
            fn(i)
        except Exception as e:  # reported below
            errors.append("%d: %r" % (i, e))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads still running after %ss" % timeout
    assert not errors, errors


def can_connect(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_hostport(s):
    """'127.0.0.1:143' / '[::1]:143' -> (host, port)."""
    m = re.fullmatch(r"\[(.*)\]:(\d+)", s) or re.fullmatch(r"(.*):(\d+)", s)
    assert m, s
    return m.group(1), int(m.group(2))


# A PROXY protocol v2 LOCAL header: "this connection is the proxy's own"
# (a health check); the receiver keeps the real addresses.
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


def read_greeting(host, port, timeout=2.0, send_first=b""):
    """Connect (sending send_first, e.g. PROXY_V2_LOCAL, first) and return
    the first line, or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            if send_first:
                s.sendall(send_first)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return None


# --------------------------------------------------------------------------
# Dev certificates

def make_devcerts(src, outdir):
    """Run $IMAPGUARD_SRC/certs/gen-dev-cert.sh OUTDIR when it exists, or make
    the same files with openssl: ca.pem, server-{ecdsa,rsa}.{pem,key} for
    localhost, 127.0.0.1 and ::1. Returns outdir."""
    os.makedirs(outdir, exist_ok=True)
    script = os.path.join(src or "", "certs", "gen-dev-cert.sh")
    if src and os.path.exists(script):
        subprocess.run(["bash", script, outdir], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
    else:
        _openssl_devcerts(outdir)
    for f in ("ca.pem", "server-ecdsa.pem", "server-ecdsa.key",
              "server-rsa.pem", "server-rsa.key"):
        assert os.path.exists(os.path.join(outdir, f)), f
    return outdir


def _openssl_devcerts(d):
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, timeout=60,
                       cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
        "-subj", "/CN=imapguard test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for kind, keyopt in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        run("req", *keyopt, "-nodes", "-keyout", "server-%s.key" % kind,
            "-out", "server-%s.csr" % kind, "-subj", "/CN=localhost")
        run("x509", "-req", "-in", "server-%s.csr" % kind, "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
            "-extfile", "ext.cnf", "-out", "server-%s.pem" % kind)


def client_context(ca):
    """A client TLS context that trusts only the dev CA."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# --------------------------------------------------------------------------
# Dovecot

def _write_master_passwd(d):
    """The master passdb's file: MASTER_USER with MASTER_PW, readable by
    the owner and Dovecot's group only. Returns its path."""
    import grp
    path = os.path.join(d, "master-passwd")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s:{PLAIN}%s::::::allow_real_nets=127.0.0.0/8,::1\n" % (MASTER_USER, MASTER_PW))
        f.write("%s:{PLAIN}%s::::::allow_real_nets=192.0.2.0/24\n"
                % (MASTER_USER_ELSEWHERE, MASTER_PW))
    try:
        os.chown(path, -1, grp.getgrnam("dovecot").gr_gid)
        os.chmod(path, 0o640)
    except KeyError:  # no dovecot group: the auth process runs as root then
        pass
    return path


def dovecot_config(d, port, ssl_port=None, certs=None, haproxy=False, master=False):
    """Write a self-contained dovecot.conf for a private instance rooted at
    directory d, listening on 127.0.0.1:port (and on ssl_port with implicit
    TLS when certs is given). Returns the config path.

    Runs as root: the master stays root, imap-login runs as the stock
    dovenull user, auth as dovecot, and mail is owned by the "mail" user
    (uid/gid 8), admitted by first/last_valid_uid and _gid. Dovecot refuses
    uid 0 for mail even with first_valid_uid = 0 ("userdb returned 0 as
    uid"), so mail_uid = root is not an option. d is made 0755 so those
    users can traverse it; the passwd file is 0644 (auth reads it as
    dovecot); home/ belongs to mail.

    With haproxy, the plain listener requires a PROXY protocol header
    (v1 or v2) from loopback (haproxy = yes, haproxy_trusted_networks), as
    behind imapguard's backend.send_proxy_protocol.

    With master, a master passdb (master = yes, pass = yes: the user must
    exist in the normal passdb too) holds MASTER_USER in a private file,
    and auth_master_user_separator = * (backend.master_login of either
    style: "user*igmaster" with LOGIN, or AUTHENTICATE PLAIN with
    authzid=user, authcid=igmaster)."""
    import pwd
    mu = pwd.getpwnam(MAIL_USER)
    d = os.path.abspath(d)
    for sub in ("run", "state", "home"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    # Login processes (dovenull) and mail processes (mail) must traverse d.
    os.chmod(d, 0o755)
    os.chown(os.path.join(d, "home"), mu.pw_uid, mu.pw_gid)
    with open(os.path.join(d, "passwd"), "w") as f:
        for u, p in USERS.items():
            f.write("%s:{PLAIN}%s::::::\n" % (u, p))
    os.chmod(os.path.join(d, "passwd"), 0o644)  # auth runs as "dovecot"
    master_conf = ""
    if master:
        master_conf = ("auth_master_user_separator = %s\n"
                       "passdb {\n  driver = passwd-file\n"
                       "  args = scheme=PLAIN username_format=%%u %s\n"
                       "  master = yes\n  pass = yes\n}\n"
                       % (MASTER_SEPARATOR, _write_master_passwd(d)))
    ssl_conf = "ssl = no\n"
    listeners = ("  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n%s  }\n"
                 % (port, "    haproxy = yes\n" if haproxy else ""))
    if certs:
        ssl_conf = ("ssl = yes\nssl_cert = <%s/server-rsa.pem\n"
                    "ssl_key = <%s/server-rsa.key\nssl_min_protocol = TLSv1.2\n"
                    % (certs, certs))
    if ssl_port:
        listeners += ("  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n"
                      "    ssl = yes\n  }\n" % ssl_port)
    else:
        listeners += "  inet_listener imaps {\n    port = 0\n  }\n"
    conf = """\
# Private Dovecot for imapguard's integration tests (written by igtest.py).
base_dir = {d}/run
state_dir = {d}/state
instance_name = igtest-{port}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes

{ssl_conf}
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 xoauth2 oauthbearer
auth_failure_delay = 0
auth_verbose = yes
auth_debug = yes
auth_cache_size = 0
login_trusted_networks = 127.0.0.0/8 ::1
{haproxy_conf}verbose_proctitle = yes

{master_conf}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%Lu
}}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}

# Dovecot's own failure penalty (anvil, up to 15 s per address) would make
# wrong-password tests slow and hide imapguard's own throttling: a mode 0
# listener is not created, which turns the penalty off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
{listeners}  process_min_avail = 0
}}
protocol imap {{
  # tests open many sessions per user and address
  mail_max_userip_connections = 1000
  imap_idle_notify_interval = 2 secs
}}
""".format(d=d, port=port, uid=mu.pw_uid, gid=mu.pw_gid, ssl_conf=ssl_conf,
           listeners=listeners, master_conf=master_conf,
           haproxy_conf="haproxy_trusted_networks = 127.0.0.0/8 ::1\n" if haproxy else "")
    path = os.path.join(d, "dovecot.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


class Dovecot:
    """A running private Dovecot. Attributes: dir, conf, host, port,
    ssl_port (or None), log_path, proc. extra_conf is appended to the
    configuration (e.g. "imap_capability = IMAP4rev1 ID\n" makes a backend
    that advertises neither SASL-IR nor LITERAL+ before login). With
    haproxy, the plain port wants a PROXY header first; with master, a
    master passdb lets MASTER_USER log in for any user (dovecot_config)."""

    def __init__(self, d, certs=None, ssl_port=False, extra_conf="", haproxy=False,
                 master=False):
        self.dir = d
        self.host = "127.0.0.1"
        self.port = free_port()
        self.ssl_port = free_port() if ssl_port else None
        self.certs = certs
        self.haproxy = haproxy
        self.master = master
        self.conf = dovecot_config(d, self.port, self.ssl_port, certs, haproxy=haproxy,
                                   master=master)
        if extra_conf:
            with open(self.conf, "a") as f:
                f.write(extra_conf)
        self.log_path = os.path.join(d, "dovecot.log")
        self.proc = None

    def start(self):
        self.proc = spawn([DOVECOT, "-F", "-c", self.conf],
                          os.path.join(self.dir, "dovecot.stdout"))

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited with %s:\n%s" %
                                   (self.proc.returncode, self.all_output()))
            g = read_greeting(self.host, self.port,
                              send_first=PROXY_V2_LOCAL if self.haproxy else b"")
            return g is not None and g.startswith(b"* OK")
        try:
            wait_until(ready, START_TIMEOUT, "dovecot greeting on port %d" % self.port)
            if self.ssl_port:
                wait_until(lambda: can_connect(self.host, self.ssl_port),
                           START_TIMEOUT, "dovecot imaps port")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None:
            reap(self.proc, signal.SIGTERM, 10)
            self.proc = None

    def all_output(self):
        out = ""
        for name in ("dovecot.stdout", "dovecot.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out

    def log_text(self):
        return read_text(self.log_path)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)


# What Dovecot logs, with auth_debug = yes, for each authentication attempt
# it receives from imap-login (LOGIN and AUTHENTICATE alike): the auth
# process's "client in: AUTH" line.
_AUTH_RE = re.compile(r"auth: Debug: client in: AUTH\t")
# Each imap-login connection ends in exactly one of these lines: a
# successful login, or a disconnect before one.
_CONN_END_RE = re.compile(r"imap-login: (Info: )?(Login: |Disconnected|Aborted login)")


def imap_login_count(dovecot):
    """How many authentication attempts Dovecot has seen so far."""
    return len(_AUTH_RE.findall(dovecot.log_text()))


def backend_barrier(dovecot):
    """Sends one failing login straight to Dovecot under a fresh user name
    and waits until its auth process has logged it. Its log lines come in
    order, so every authentication attempt Dovecot received before this one
    is in the log by then: no sleeping to let the log catch up."""
    user = "barrier-%s" % secrets.token_hex(6)
    c = Raw(dovecot.host, dovecot.port)
    try:
        if dovecot.haproxy:
            c.send(PROXY_V2_LOCAL)
        c.readline()
        c.cmd("b", "LOGIN %s nothing" % user)
    finally:
        c.close()
    wait_until(lambda: ("(%s," % user) in dovecot.log_text(), IO_TIMEOUT,
               "Dovecot's auth log line for %s" % user)


def backend_untouched(dovecot, fn):
    """Runs fn and asserts that Dovecot received no authentication attempt
    meanwhile. Returns what fn returned."""
    before = imap_login_count(dovecot)
    out = fn()
    backend_barrier(dovecot)
    seen = imap_login_count(dovecot) - before - 1  # the barrier's own
    assert seen == 0, "the backend saw %d attempt(s)" % seen
    return out


def imap_login_successes(dovecot, user=None):
    lines = re.findall(r"imap-login: (?:Info: )?Login: user=<([^>]*)>", dovecot.log_text())
    return len([u for u in lines if user is None or u == user])


def imap_connection_count(dovecot):
    """How many pre-login connections to Dovecot have ended (logged in or
    disconnected). Lines are written when the connection ends, so compare
    counts only after the connections in question are closed (see
    settle_connections)."""
    return len(_CONN_END_RE.findall(dovecot.log_text()))


def quiet_connection_count(dovecot, quiet=0.6, timeout=8.0):
    """imap_connection_count once it has not changed for `quiet` seconds:
    connections closed just before are logged by then."""
    deadline = time.monotonic() + timeout
    last = imap_connection_count(dovecot)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        n = imap_connection_count(dovecot)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return n
    return last


# --------------------------------------------------------------------------
# imapguard

def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_./@-]+", s) and s not in ("true", "false", "null", "yes", "no"):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (no PyYAML needed)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                sub = to_yaml(v, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.append("\n".join(sub))
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def base_config(certs, backend, listeners=("imaps", "imap"), backend_tls="none"):
    """The usual config: an implicit-TLS listener "imaps" and a STARTTLS
    listener "imap" on free ports (filled in by Imapguard), both dev
    certificates, the given backend ("host:port"), require_tls."""
    kinds = {"imaps": "implicit", "imap": "starttls"}
    return {
        "log_level": "debug",
        "listeners": [{"name": n, "listen": "127.0.0.1:0", "tls": kinds[n]}
                      for n in listeners],
        "tls": {"certificates": [
            {"cert": certs + "/server-ecdsa.pem", "key": certs + "/server-ecdsa.key"},
            {"cert": certs + "/server-rsa.pem", "key": certs + "/server-rsa.key"},
        ]},
        "backend": {"address": backend, "tls": backend_tls},
        # A stop (SIGTERM) lets logged-in sessions go on for drain_timeout
        # (30 s by default): short here, so that stop() ends within its wait.
        "limits": {"max_line": 8192, "max_literal": 8192, "preauth_timeout": "60s",
                   "drain_timeout": "2s"},
        "policy": {"defaults": {"require_tls": True}},
        # The functional tests fail passwords on purpose, many times from
        # 127.0.0.1: the limiter (on by default) would rightly lock them
        # out. test_ratelimit.py turns it on and tests it.
        "ratelimit": {"enabled": False},
    }


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                     "runtime error:", "WARNING: AddressSanitizer")


class Imapguard:
    """A running imapguard. Listener ports given as 0 in the config are
    replaced by free ports. Attributes: ports (name -> port), hosts,
    config_path, log_path, proc, certs (dir, if known), rlimits (resource
    limits the process starts with: {resource.RLIMIT_X: (soft, hard)})."""

    def __init__(self, binary, d, config, certs=None, rlimits=None):
        import copy
        self.binary = binary
        self.dir = d
        self.certs = certs
        self.rlimits = rlimits
        self.config = copy.deepcopy(config)
        self.ports = {}
        self.hosts = {}
        for lst in self.config.get("listeners", []):
            host, port = split_hostport(lst["listen"])
            if port == 0:
                port = free_port(host)  # never one handed out before
                lst["listen"] = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
            self.ports[lst["name"]] = port
            self.hosts[lst["name"]] = host
        self.config_path = os.path.join(d, "imapguard.yaml")
        with open(self.config_path, "w") as f:
            f.write(to_yaml(self.config) + "\n")
        self.log_path = os.path.join(d, "imapguard.log")
        self.proc = None
        self.exit_code = None
        self.start_failed = False

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        # Ready means everything that can fail has failed and the listeners
        # accept: the process says so once ("event=ready"), after listening.
        before = self.ready_count()
        self.proc = spawn(self.argv(), self.log_path, env=env, rlimits=self.rlimits)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("imapguard exited with %s:\n%s" %
                                   (self.proc.returncode, self.log_text()))
            return self.ready_count() > before
        try:
            wait_until(ready, START_TIMEOUT, "imapguard event=ready (listeners %s)" % self.ports)
        except Exception:
            self.exit_code = reap(self.proc, signal.SIGKILL, 5)
            self.proc = None
            self.start_failed = True
            raise
        return self

    def events_text(self):
        """The event lines: log.file when it is set, else stderr."""
        path = self.config.get("log", {}).get("file")
        return read_text(path) if path and path != "syslog" else self.log_text()

    def ready_count(self):
        """How many times the process said it is ready (either log format)."""
        t = self.events_text()
        return t.count(" event=ready ") + t.count('"event":"ready"')

    def argv(self):
        """The command line: root without `user` needs --allow-root (the
        tests run as root; test_privilege.py tests the drop)."""
        argv = [self.binary, "-c", self.config_path]
        if os.geteuid() == 0 and "user" not in self.config:
            argv.append("--allow-root")
        return argv

    def reload(self, config=None, what="event=reload-done", timeout=10):
        """Writes config (when given) as the new configuration, sends SIGHUP
        and waits for one more line containing what (None: does not wait)."""
        if config is not None:
            self.config = config
            with open(self.config_path, "w") as f:
                f.write(to_yaml(config) + "\n")
        n = self.log_text().count(what) if what else 0
        self.proc.send_signal(signal.SIGHUP)
        if what:
            wait_until(lambda: self.log_text().count(what) > n, timeout, what)

    @property
    def pid(self):
        return self.proc.pid

    def addr(self, name):
        return (self.hosts[name], self.ports[name])

    def log_text(self):
        return read_text(self.log_path)

    def rss_kb(self):
        """VmRSS of the imapguard process, in kB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def sanitizer_errors(self):
        text = self.log_text()
        return [m for m in SANITIZER_MARKERS if m in text]

    def stop(self, check=True):
        """SIGTERM, wait up to 10 s; with check, assert a clean exit (code 0,
        no sanitizer report). Idempotent."""
        if self.proc is not None:
            self.exit_code = reap(self.proc, signal.SIGTERM, 10)
            self.proc = None
        if check:
            errs = self.sanitizer_errors()
            assert not errs, "sanitizer report in imapguard log:\n" + self.log_text()[-6000:]
            assert self.exit_code == 0, ("imapguard did not exit 0 on SIGTERM (code %r); "
                                         "log tail:\n%s" % (self.exit_code, self.log_text()[-6000:]))
        return self.exit_code


# --------------------------------------------------------------------------
# A small raw IMAP client: exact control over bytes and their timing.

class Closed(Exception):
    pass


class Raw:
    """Line-oriented IMAP over a plain or TLS socket. Every read has a
    timeout. In plain mode, reads never consume bytes beyond the line
    asked for (recv one byte at a time), so a STARTTLS handshake can start
    exactly where the server's tagged OK ended."""

    def __init__(self, host, port, tls_ctx=None, server_hostname="localhost",
                 timeout=IO_TIMEOUT, source=None, session=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.tls = False
        if tls_ctx is not None:
            self.starttls(tls_ctx, server_hostname, session=session)

    def starttls(self, ctx, server_hostname="localhost", session=None):
        """TLS handshake on the socket; session (an ssl.SSLSession from an
        earlier connection) asks to resume it."""
        assert not self.buf, "unread bytes before the TLS handshake: %r" % self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname,
                                    session=session)
        self.tls = True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, n=65536):
        chunk = self.sock.recv(n if self.tls else 1)
        if not chunk:
            raise Closed("connection closed by peer; unread %r" % self.buf)
        self.buf += chunk

    def readline(self):
        """One line including CRLF (bytes)."""
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill(max(65536, n - len(self.buf)))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self):
        """One server response: a line, with literal data it announces
        inlined. Returns bytes."""
        line = self.readline()
        out = line
        while True:
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.read_exact(int(m.group(1)))
            line = self.readline()
            out += line

    def read_until_tagged(self, tag):
        """Responses up to and including the tagged one for tag. Returns
        (list of untagged/continuation responses, tagged line as str)."""
        if isinstance(tag, str):
            tag = tag.encode()
        others = []
        while True:
            r = self.read_response()
            if r.startswith(tag + b" "):
                return others, r.decode("utf-8", "replace").rstrip("\r\n")
            others.append(r)

    def cmd(self, tag, text):
        """Send 'tag text' and read to the tagged response: (untagged, tagged)."""
        self.send("%s %s\r\n" % (tag, text))
        return self.read_until_tagged(tag)

    def expect_closed(self, timeout=IO_TIMEOUT):
        """Read until EOF (or reset); returns whatever came. Fails on timeout."""
        self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, ssl.SSLEOFError):
            return data
        except socket.timeout:
            raise AssertionError("connection still open after %.0fs; got %r" % (timeout, data))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tls_client(ig, ca, source=None, ctx=None, session=None):
    """A Raw client on ig's implicit-TLS listener "imaps", its greeting read
    and checked; session resumes an earlier connection's TLS session."""
    c = Raw(*ig.addr("imaps"), tls_ctx=ctx or client_context(ca), source=source,
            session=session)
    greeting = c.readline()
    assert greeting.startswith(b"* OK"), greeting
    return c


def plain_client(ig, source=None):
    """A Raw client on ig's STARTTLS listener "imap", its greeting read."""
    c = Raw(*ig.addr("imap"), source=source)
    greeting = c.readline()
    assert greeting.startswith(b"* OK"), greeting
    return c


def status(tagged):
    """'a OK [X] text' -> 'OK'."""
    return tagged.split(" ", 2)[1].upper()


def resp_code(line):
    """The response code atom in brackets, upper-cased, or None."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    m = re.match(r"\S+ \S+ \[([^\]\s]+)", line)
    return m.group(1).upper() if m else None


def capabilities(responses):
    """Capability set from '* CAPABILITY ...' untagged responses or an
    '[CAPABILITY ...]' response code anywhere in the given lines."""
    caps = set()
    for r in responses:
        if isinstance(r, bytes):
            r = r.decode("utf-8", "replace")
        m = re.match(r"\* CAPABILITY (.*)", r.rstrip("\r\n"), re.I)
        if m:
            caps |= set(m.group(1).upper().split())
        m = re.search(r"\[CAPABILITY ([^\]]*)\]", r, re.I)
        if m:
            caps |= set(m.group(1).upper().split())
    return caps


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_ir(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def xoauth2_ir(user, token):
    return b64("user=%s\x01auth=Bearer %s\x01\x01" % (user, token))


def oauthbearer_ir(user, token, host="localhost", port=993):
    return b64("n,a=%s,\x01host=%s\x01port=%d\x01auth=Bearer %s\x01\x01"
               % (user, host, port, token))


def cram_md5_response(user, password, challenge_b64):
    chal = base64.b64decode(challenge_b64)
    digest = hmac.new(password.encode(), chal, hashlib.md5).hexdigest()
    return b64("%s %s" % (user, digest))


class ScramClient:
    """Client side of SCRAM-SHA-* (RFC 5802 / RFC 7677), no channel binding."""

    def __init__(self, user, password, hashname="sha256"):
        self.user, self.password, self.h = user, password, hashname
        self.cnonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.cnonce)
        self.server_sig = None

    def first(self):
        return b64("n,," + self.bare)

    def final(self, server_first_b64):
        sf = base64.b64decode(server_first_b64).decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        nonce, salt, it = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.cnonce), "server nonce does not extend ours"
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(), salt, it)
        ckey = hmac.new(salted, b"Client Key", self.h).digest()
        skey = hmac.new(salted, b"Server Key", self.h).digest()
        stored = hashlib.new(self.h, ckey).digest()
        without_proof = "c=biws,r=" + nonce
        auth_msg = ",".join((self.bare, sf, without_proof)).encode()
        csig = hmac.new(stored, auth_msg, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(ckey, csig))
        self.server_sig = base64.b64encode(hmac.new(skey, auth_msg, self.h).digest()).decode()
        return b64(without_proof + ",p=" + base64.b64encode(proof).decode())

    def verify(self, server_final_b64):
        sf = base64.b64decode(server_final_b64).decode()
        return sf == "v=" + self.server_sig


def continuation_data(resp):
    """'+ abc\r\n' -> 'abc'."""
    if isinstance(resp, bytes):
        resp = resp.decode()
    assert resp.startswith("+"), "expected a continuation, got %r" % resp
    return resp[1:].strip()


def authenticate_scram(conn, tag, user, password, mech="SCRAM-SHA-256", ir=False):
    """Run AUTHENTICATE SCRAM-* step by step on a Raw connection. Returns
    (tagged line, server signature verified?)."""
    hashname = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}[mech]
    sc = ScramClient(user, password, hashname)
    if ir:
        conn.send("%s AUTHENTICATE %s %s\r\n" % (tag, mech, sc.first()))
    else:
        conn.send("%s AUTHENTICATE %s\r\n" % (tag, mech))
        assert continuation_data(conn.readline()) == ""
        conn.send(sc.first() + "\r\n")
    line = conn.readline()
    if not line.startswith(b"+"):
        return line.decode().rstrip(), False
    conn.send(sc.final(continuation_data(line)) + "\r\n")
    line = conn.readline()
    verified = False
    if line.startswith(b"+"):
        verified = sc.verify(continuation_data(line))
        conn.send("\r\n")
        line = conn.readline()
    else:
        m = re.search(rb"\[SASL ([^\]]*)\]", line)  # final data in the OK
        verified = bool(m) and sc.verify(m.group(1).decode())
    tagged = line.decode().rstrip()
    while not tagged.startswith(tag + " "):
        tagged = conn.readline().decode().rstrip()
    return tagged, verified


def authenticate_cram(conn, tag, user, password):
    conn.send("%s AUTHENTICATE CRAM-MD5\r\n" % tag)
    chal = continuation_data(conn.readline())
    conn.send(cram_md5_response(user, password, chal) + "\r\n")
    return conn.read_until_tagged(tag)[1]


def make_message(size, subject="test"):
    """An RFC 5322 message of about size bytes with CRLF line endings and
    varied content (so a byte swap or truncation shows)."""
    head = ("From: alice@example.com\r\nTo: alice@example.com\r\n"
            "Subject: %s\r\nMessage-ID: <%s@igtest>\r\n\r\n" % (subject, secrets.token_hex(8)))
    out = [head.encode()]
    n = len(head)
    i = 0
    while n < size:
        line = ("%08d %s\r\n" % (i, hashlib.sha256(str(i).encode()).hexdigest())).encode()
        out.append(line)
        n += len(line)
        i += 1
    return b"".join(out)


# --------------------------------------------------------------------------

def _main(argv):
    if len(argv) >= 4 and argv[1] == "dovecot-config":
        certs = argv[4] if len(argv) > 4 else None
        print(dovecot_config(argv[2], int(argv[3]), None, certs))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
