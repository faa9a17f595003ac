"""Login attempts as an attacker drives them, against the real Dovecot:
password spraying through every mechanism that carries a password or token
(the LOGIN command, PLAIN, the LOGIN mechanism's second step, XOAUTH2,
OAUTHBEARER) feeds one count; start-and-cancel loops and abandoned attempts
that cost a backend connection count against the connection's error budget
and the address; the LOGIN mechanism still works step by step, with and
without SASL-IR, also against a backend that advertises neither SASL-IR nor
LITERAL+; an unknown command word never reaches the log."""

import os
import shutil
import tempfile

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, b64, status, resp_code, continuation_data

BOB, BOB_PW = "bob@example.com", "bob-secret"


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="igat-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def rl_config(devcerts, dovecot, **over):
    cfg = igtest.base_config(devcerts, dovecot.address)
    rl = {"tarpit": {"base": "0s", "max": "0s"}, "max_connection_failures": 100}
    rl.update(over)
    cfg["ratelimit"] = rl
    return cfg


tls = igtest.tls_client


def auth_login(c, tag, user, pw, ir=False):
    """AUTHENTICATE LOGIN step by step (optionally the user as SASL-IR).
    Returns the tagged line, or the continuation/untagged line that ended
    the exchange early."""
    if ir:
        c.send("%s AUTHENTICATE LOGIN %s\r\n" % (tag, b64(user)))
    else:
        c.send("%s AUTHENTICATE LOGIN\r\n" % tag)
        line = c.readline()
        if not line.startswith(b"+"):
            return line.decode().rstrip()
        assert continuation_data(line) == b64("Username:")
        c.send(b64(user) + "\r\n")
    line = c.readline()
    if not line.startswith(b"+"):
        return line.decode().rstrip()
    assert continuation_data(line) == b64("Password:")
    c.send(b64(pw) + "\r\n")
    return c.read_until_tagged(tag)[1]


def sasl_ir(c, tag, mech, ir):
    """AUTHENTICATE with an initial response; an error challenge (XOAUTH2,
    OAUTHBEARER: "+ <JSON>") is answered with the empty response. Returns
    the tagged line."""
    c.send("%s AUTHENTICATE %s %s\r\n" % (tag, mech, ir))
    while True:
        line = c.readline()
        if line.startswith(b"+"):
            c.send("\r\n")
        elif line.startswith(tag.encode() + b" "):
            return line.decode().rstrip()


# ---- the LOGIN mechanism -----------------------------------------------------

@pytest.mark.parametrize("ir", [False, True])
def test_authenticate_login_step_by_step(imapguard, devcerts, dovecot, ca, ir):
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))
    c = tls(ig, ca)
    try:
        assert status(auth_login(c, "a", ALICE, "wrong")) == "NO"
        assert status(auth_login(c, "b", ALICE, ALICE_PW, ir=ir)) == "OK"
        assert status(c.cmd("c", "SELECT INBOX")[1]) == "OK"
    finally:
        c.close()
    assert "Password" not in ig.log_text() and ALICE_PW not in ig.log_text()


def test_legacy_backend_without_sasl_ir_or_literal_plus(imapguard, devcerts, dovecot_legacy,
                                                        ca):
    """A backend that advertises neither SASL-IR nor LITERAL+: the proxy
    sends each SASL response after the backend's "+" and a password that
    needs a literal as a synchronizing one."""
    ig = imapguard(igtest.base_config(devcerts, dovecot_legacy.address))
    for how in ("login-mech", "login-mech-ir", "plain-ir", "login-literal"):
        c = tls(ig, ca)
        try:
            if how == "login-mech":
                tagged = auth_login(c, "a", BOB, BOB_PW)
            elif how == "login-mech-ir":
                tagged = auth_login(c, "a", BOB, BOB_PW, ir=True)
            elif how == "plain-ir":
                tagged = c.cmd("a", "AUTHENTICATE PLAIN " + igtest.plain_ir(BOB, BOB_PW))[1]
            else:
                # A non-ASCII byte in the password cannot be quoted: the
                # proxy must use {n} and wait for "+" (Dovecot says NO for
                # the wrong password, which proves the literal arrived).
                c.send(b"a LOGIN bob@example.com {7+}\r\nbob-s\xc3\xa9\r\n")
                tagged = c.read_until_tagged("a")[1]
                assert resp_code(tagged) == "AUTHENTICATIONFAILED", (how, tagged)
                continue
            assert status(tagged) == "OK", (how, tagged)
            assert status(c.cmd("b", "NOOP")[1]) == "OK"
        finally:
            c.close()


# ---- spraying through every mechanism ----------------------------------------

def test_spraying_counts_every_mechanism(imapguard, devcerts, dovecot, ca, tmpdir_short):
    """One password sprayed over six users with six different mechanisms and
    addresses: the limiter counts them all as one password, so the next user
    is refused without Dovecot seeing the attempt."""
    ig = imapguard(rl_config(devcerts, dovecot, password_spray={"threshold": 6}))
    pw = "Summer2026!"
    tries = [
        ("login-cmd", lambda c: c.cmd("a", "LOGIN spray1@example.com %s" % pw)[1]),
        ("plain", lambda c: c.cmd("a", "AUTHENTICATE PLAIN " +
                                  igtest.plain_ir("spray2@example.com", pw))[1]),
        ("login-mech", lambda c: auth_login(c, "a", "spray3@example.com", pw)),
        ("login-mech-ir", lambda c: auth_login(c, "a", "spray4@example.com", pw, ir=True)),
        ("xoauth2", lambda c: sasl_ir(c, "a", "XOAUTH2",
                                      igtest.xoauth2_ir("spray5@example.com", pw))),
        ("oauthbearer", lambda c: sasl_ir(c, "a", "OAUTHBEARER",
                                          igtest.oauthbearer_ir("spray6@example.com", pw))),
    ]
    for i, (how, fn) in enumerate(tries):
        c = tls(ig, ca, "127.0.2.%d" % (i + 1))
        try:
            tagged = fn(c)
        finally:
            c.close()
        assert status(tagged) == "NO" and resp_code(tagged) != "UNAVAILABLE", (how, tagged)
    assert "event=ratelimit-block limit=password-spray" in ig.log_text()

    # The same password is now refused before the backend, through the LOGIN
    # mechanism's second step too; another password still gets through.
    def sprayed():
        c = tls(ig, ca, "127.0.2.50")
        try:
            return auth_login(c, "a", BOB, pw)
        finally:
            c.close()
    tagged = igtest.backend_untouched(dovecot, sprayed)
    assert resp_code(tagged) == "UNAVAILABLE", tagged
    c = tls(ig, ca, "127.0.2.51")
    try:
        assert status(auth_login(c, "a", BOB, BOB_PW)) == "OK"
    finally:
        c.close()
    assert pw not in ig.log_text()


# ---- start-and-cancel loops ----------------------------------------------------

def test_cancel_loop_spends_the_error_budget(imapguard, devcerts, dovecot, ca):
    """AUTHENTICATE CRAM-MD5 then "*" costs a backend connection each time:
    the connection is closed once its error budget is spent."""
    cfg = rl_config(devcerts, dovecot, address={"threshold": 0})
    cfg["limits"]["max_errors"] = 5
    ig = imapguard(cfg)
    before = igtest.imap_connection_count(dovecot)
    c = tls(ig, ca, "127.0.3.1")
    try:
        for i in range(20):
            c.send("c%d AUTHENTICATE CRAM-MD5\r\n" % i)
            line = c.readline()
            if not line.startswith(b"+"):
                break
            c.send("*\r\n")
            tagged = c.read_until_tagged("c%d" % i)[1]
            assert status(tagged) == "BAD", tagged
        data = line + c.expect_closed()
        assert b"* BYE [CLIENTBUG]" in data, data
    finally:
        c.close()
    # Cancels c0..c4 are answered BAD; the sixth error (c5) ends it: BAD, BYE.
    assert i == 6, "closed after %d cancels" % i
    assert "event=login-cancelled mech=CRAM-MD5 cost=backend-connection" in ig.log_text()
    assert "reason=too-many-errors" in ig.log_text()
    igtest.backend_barrier(dovecot)
    # Six cancelled attempts, six backend connections (and the barrier's).
    assert igtest.quiet_connection_count(dovecot) - before <= 7


def test_cancels_and_aborts_count_against_the_address(imapguard, devcerts, dovecot, ca):
    """Cancelled and abandoned attempts that reached the backend count as
    failures of the address: once it is blocked, new attempts are refused
    without a backend connection."""
    ig = imapguard(rl_config(devcerts, dovecot, address={"threshold": 4}))
    src = "127.0.3.2"
    for i in range(4):
        c = tls(ig, ca, src)
        try:
            c.send("a AUTHENTICATE CRAM-MD5\r\n")
            assert c.readline().startswith(b"+")
            if i % 2 == 0:
                c.send("*\r\n")
                assert status(c.read_until_tagged("a")[1]) == "BAD"
                c.close()
            else:
                c.close()  # walk away in the middle of the exchange
                igtest.wait_until(lambda: ig.log_text().count("event=login-aborted") >= i // 2 + 1,
                                  igtest.IO_TIMEOUT, "the abort to be counted")
        finally:
            c.close()
    assert "event=ratelimit-block limit=address" in ig.log_text()

    def again():
        c = tls(ig, ca, src)
        try:
            return c.cmd("a", "AUTHENTICATE CRAM-MD5")[1]
        finally:
            c.close()
    tagged = igtest.backend_untouched(dovecot, again)
    assert resp_code(tagged) == "UNAVAILABLE", tagged
    # Another address is not affected.
    c = tls(ig, ca, "127.0.3.3")
    try:
        assert status(igtest.authenticate_cram(c, "a", BOB, BOB_PW)) == "OK"
    finally:
        c.close()


def test_cancel_before_the_backend_is_an_error(imapguard, devcerts, dovecot, ca):
    """A cancel that cost nothing (PLAIN, before the initial response) is
    still a BAD answer: it counts towards max_errors."""
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["limits"]["max_errors"] = 3
    ig = imapguard(cfg)
    c = tls(ig, ca)
    try:
        for i in range(3):
            c.send("p%d AUTHENTICATE PLAIN\r\n" % i)
            assert c.readline().startswith(b"+")
            c.send("*\r\n")
            assert status(c.read_until_tagged("p%d" % i)[1]) == "BAD"
        c.send("p9 AUTHENTICATE PLAIN\r\n")
        assert c.readline().startswith(b"+")
        c.send("*\r\n")
        data = c.expect_closed()
        assert b"* BYE [CLIENTBUG]" in data, data
    finally:
        c.close()


# ---- logs --------------------------------------------------------------------

def test_unknown_command_words_never_logged(imapguard, devcerts, dovecot, ca):
    """A password typed where a command belongs is not logged, even at debug."""
    ig = imapguard(igtest.base_config(devcerts, dovecot.address))  # log_level: debug
    c = tls(ig, ca)
    try:
        _, tagged = c.cmd("a", "Zq9-secret x")
        assert status(tagged) == "BAD"
        assert status(c.cmd("b", "NOOP")[1]) == "OK"
    finally:
        c.close()
    log = ig.log_text()
    assert "Zq9" not in log, log
    assert "event=command result=unknown name_len=10" in log
