"""TLS record sizes and the record buffers of our mbedTLS build
(crypto/mbedtls_config.h: an 8 KiB output record, the input buffer released
while idle). mbedTLS never fragments an outgoing handshake message, so the
server's whole certificate chain must fit one output record: a long RSA-4096
chain still handshakes over TLS 1.2 and 1.3, and a chain too long for the
record is refused when the configuration is loaded, not at every handshake.
Data crosses in records of every size and in TCP segments cut inside a
record, with idle gaps between (the input buffer released and taken again).
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import igtest
from igtest import Raw, status, ALICE, ALICE_PW


def _openssl(cwd, *args):
    subprocess.run(["openssl"] + list(args), check=True, timeout=120, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rsa4096_chain(d):
    """root -> intermediate -> leaf (localhost, 127.0.0.1, 24 more names),
    all RSA-4096.
    Writes root.pem, chain.pem (leaf, intermediate, root: a long chain as
    some operators configure it) and leaf.key in d; returns d."""
    os.makedirs(d, exist_ok=True)
    _openssl(d, "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-keyout", "root.key",
             "-out", "root.pem", "-days", "30", "-subj", "/CN=imapguard long chain root",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl(d, "req", "-newkey", "rsa:4096", "-nodes", "-keyout", "int.key",
             "-out", "int.csr", "-subj", "/CN=imapguard long chain intermediate")
    with open(os.path.join(d, "int.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                "keyUsage=critical,keyCertSign,cRLSign\n")
    _openssl(d, "x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key",
             "-CAcreateserial", "-days", "30", "-extfile", "int.ext", "-out", "int.pem")
    _openssl(d, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096",
             "-out", "leaf.key")
    # A leaf with a few dozen names, as a mail provider's often has: the
    # chain comes to about 5 KB, more than a 4 KiB record.
    return _leaf(d, d, extra_names=24)


def _leaf(d, ca, extra_names=0):
    """A leaf for localhost and 127.0.0.1 (and extra_names more DNS names)
    with ca's leaf.key, signed by ca's intermediate; chain.pem in d is the
    leaf, the intermediate and the root. Returns d."""
    os.makedirs(d, exist_ok=True)
    if d != ca:
        shutil.copy(os.path.join(ca, "leaf.key"), os.path.join(d, "leaf.key"))
    _openssl(d, "req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    names = ["DNS:localhost", "IP:127.0.0.1"] + [
        "DNS:mail%04d.long-chain.imapguard.example" % i for i in range(extra_names)]
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "subjectAltName=%s\n" % ",".join(names))
    _openssl(d, "x509", "-req", "-in", "leaf.csr", "-CA", os.path.join(ca, "int.pem"),
             "-CAkey", os.path.join(ca, "int.key"), "-set_serial", str(1000 + extra_names),
             "-days", "30", "-extfile", "leaf.ext", "-out", "leaf.pem")
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for f in (os.path.join(d, "leaf.pem"), os.path.join(ca, "int.pem"),
                  os.path.join(ca, "root.pem")):
            with open(f) as inp:
                out.write(inp.read())
    return d


def _der_sizes(pem_path):
    with open(pem_path) as f:
        pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                          f.read(), re.S)
    return [len(ssl.PEM_cert_to_DER_cert(p)) for p in pems]


def _chain_config(devcerts, dovecot, chain_dir):
    cfg = igtest.base_config(devcerts, dovecot.address, listeners=("imaps", "imap"))
    cfg["tls"]["certificates"] = [{"cert": chain_dir + "/chain.pem",
                                   "key": chain_dir + "/leaf.key"}]
    return cfg


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory):
    return _rsa4096_chain(str(tmp_path_factory.mktemp("chain")))


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_long_rsa4096_chain_handshakes(imapguard, devcerts, dovecot, long_chain, version):
    """Three RSA-4096 certificates (the root included) in the server's
    Certificate message: more than 4 KiB, one record. The client trusts only
    the root, so it verifies through the intermediate imapguard sent, on the
    implicit TLS listener and after STARTTLS."""
    sizes = _der_sizes(long_chain + "/chain.pem")
    # TLS 1.3's Certificate message: header, context, list length, and for
    # each certificate its length, DER and (empty) extensions
    assert len(sizes) == 3 and 8 + sum(5 + n for n in sizes) > 4096, sizes
    ig = imapguard(_chain_config(devcerts, dovecot, long_chain))
    ctx = ssl.create_default_context(cafile=long_chain + "/root.pem")
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    ctx.set_ciphers("ECDHE+AESGCM")
    host, port = ig.addr("imaps")
    c = Raw(host, port, tls_ctx=ctx)
    try:
        assert c.sock.version() == version.replace("_", ".")
        assert c.readline().startswith(b"* OK")
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(c.cmd("b", "SELECT INBOX")[1]) == "OK"
    finally:
        c.close()
    host, port = ig.addr("imap")
    c = Raw(host, port)
    try:
        assert c.readline().startswith(b"* OK")
        assert status(c.cmd("s", "STARTTLS")[1]) == "OK"
        c.starttls(ctx)
        assert c.sock.version() == version.replace("_", ".")
        assert status(c.cmd("a", "NOOP")[1]) == "OK"
    finally:
        c.close()


def test_chain_too_long_for_a_record_refused_at_start(imapguard, devcerts, dovecot,
                                                      long_chain, tmp_path):
    """A chain whose Certificate message cannot fit one TLS record would
    fail every handshake: imapguard refuses it at start-up, naming the file
    and the sizes."""
    d = _leaf(str(tmp_path / "huge"), long_chain, extra_names=400)
    assert sum(_der_sizes(d + "/chain.pem")) > 16384
    with pytest.raises(RuntimeError) as e:
        imapguard(_chain_config(devcerts, dovecot, d))
    msg = str(e.value)
    assert "chain.pem" in msg and "certificate chain too long" in msg, msg
    assert re.search(r"needs a \d+-byte TLS Certificate message, more than the \d+ bytes",
                     msg), msg


@pytest.fixture(scope="module")
def big_message(dovecot):
    """A 300 KB message in alice's INBOX (APPENDed through Dovecot)."""
    body = igtest.make_message(300 * 1024, subject="records")
    c = Raw(*igtest.split_hostport(dovecot.address))
    try:
        assert c.readline().startswith(b"* OK")
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        c.send(b"b APPEND INBOX {%d}\r\n" % len(body))
        assert c.readline().startswith(b"+")
        c.send(body + b"\r\n")
        tagged = c.read_until_tagged("b")[1]
        assert status(tagged) == "OK", tagged
    finally:
        c.close()
    return body


def _fetch_last(c, tag):
    c.send(b"%s FETCH * BODY.PEEK[]\r\n" % tag)
    line = c.readline()
    m = re.search(rb"\{(\d+)\}\r\n$", line)
    assert m, line
    data = c.read_exact(int(m.group(1)))
    untagged, tagged = c.read_until_tagged(tag.decode())
    assert status(tagged) == "OK", tagged
    return data


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_records_both_ways(ig, ca, big_message, version):
    """Downstream: a 300 KB FETCH arrives in full (records of the proxy's
    size), several times with idle gaps between. Upstream: one command per
    record, several commands in one record. The answers are all right and
    complete."""
    ctx = igtest.client_context(ca)
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    host, port = ig.addr("imaps")
    c = Raw(host, port, tls_ctx=ctx)
    try:
        assert c.readline().startswith(b"* OK")
        assert status(c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(c.cmd("b", "SELECT INBOX")[1]) == "OK"
        assert _fetch_last(c, b"c") == big_message
        # One command per record, an answer before the next.
        for i in range(3):
            tag = "n%d" % i
            c.send(("%s NOOP\r\n" % tag).encode())
            assert status(c.read_until_tagged(tag)[1]) == "OK"
        # Several commands in one record (one write), the answers in order.
        c.send(b"p1 NOOP\r\np2 CHECK\r\np3 NOOP\r\n")
        for tag in ("p1", "p2", "p3"):
            assert status(c.read_until_tagged(tag)[1]) == "OK"
        # Idle gaps between fetches of the big message.
        for i in range(3):
            assert _fetch_last(c, b"f%d" % i) == big_message
        assert status(c.cmd("z", "LOGOUT")[1]) == "OK"
    finally:
        c.close()


def test_record_split_across_segments(ig, ca):
    """A TLS record cut in two TCP segments with a pause between them: the
    proxy keeps the first part (its input buffer is not released with a
    partial record in it) and answers when the rest arrives."""
    ctx = igtest.client_context(ca)
    host, port = ig.addr("imaps")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.create_connection((host, port), timeout=igtest.IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pump_out():
        data = outgoing.read()
        if data:
            sock.sendall(data)

    def read_line():
        buf = b""
        deadline = time.monotonic() + igtest.IO_TIMEOUT
        while not buf.endswith(b"\r\n"):
            assert time.monotonic() < deadline, buf
            try:
                buf += tls.read(1)
                continue
            except ssl.SSLWantReadError:
                pass
            pump_out()
            data = sock.recv(65536)
            if not data:
                raise igtest.Closed()
            incoming.write(data)
        return buf

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump_out()
                data = sock.recv(65536)
                assert data
                incoming.write(data)
        pump_out()
        assert read_line().startswith(b"* OK")
        for i in range(3):
            tls.write(b"h%d NOOP\r\n" % i)
            record = outgoing.read()
            assert len(record) > 20
            cut = 3 + i * 7  # in the header, in the payload, in the tag
            sock.sendall(record[:cut])
            # The proxy cannot answer half a record: nothing comes back.
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(1)
            sock.settimeout(igtest.IO_TIMEOUT)
            sock.sendall(record[cut:])
            line = read_line()
            while not line.startswith(b"h%d " % i):
                line = read_line()
            assert line.startswith(b"h%d OK" % i), line
    finally:
        sock.close()
