"""The YAML policy against real clients and the real Dovecot: per-user
plaintext bans, cleartext allowed only from a network (127.0.0.2 plays the
office), token-only groups, blocked accounts, allow_from, monitor mode
(global and per rule), the explain command, a SIGHUP reload that ends the
sessions of a user it denies, and `imapguard ctl kick`."""

import copy
import subprocess
import time

import pytest

import igtest
from igtest import ALICE, ALICE_PW, Raw, status, resp_code, capabilities, b64

BOB, BOB_PW = "bob@example.com", "bob-secret"
OFFICE = "127.0.0.2"
ELSEWHERE = "127.0.0.1"

POLICY = {
    "networks": {"office": [OFFICE + "/32", "2001:db8:20::/48"]},
    "defaults": {
        # The legacy-server case: cleartext still allowed, but only from
        # the office network.
        "require_tls": False,
        "allow_plaintext_from": ["office"],
    },
    "groups": {
        "modern-only": {
            "users": ["*@corp.example.com", BOB],
            "mechanisms": ["XOAUTH2", "OAUTHBEARER"],
            "login_command": False,
        },
        "office-only": {
            "users": ["user12"],
            "allow_from": ["office"],
        },
    },
    "users": {
        ALICE: {"require_tls": True},     # per-user plaintext ban
        "user11": {"deny": True},         # blocked at the proxy
    },
}


def policy_config(devcerts, dovecot, policy):
    cfg = igtest.base_config(devcerts, dovecot.address)
    cfg["policy"] = copy.deepcopy(policy)
    return cfg


@pytest.fixture(scope="module")
def ig(imapguard_mod, devcerts, dovecot):
    return imapguard_mod(policy_config(devcerts, dovecot, POLICY))


plain = igtest.plain_client


def tls(ig, ca, source=ELSEWHERE):
    return igtest.tls_client(ig, ca, source)


untouched = igtest.backend_untouched


# ---- cleartext only from the office ------------------------------------------

def test_cleartext_login_allowed_from_office(ig, dovecot):
    c = plain(ig, OFFICE)
    try:
        untagged, tagged = c.cmd("a", "CAPABILITY")
        caps = capabilities(untagged)
        assert "LOGINDISABLED" not in caps and "STARTTLS" in caps
        assert status(c.cmd("b", "LOGIN user12 pass12")[1]) == "OK"
        assert status(c.cmd("c", "SELECT INBOX")[1]) == "OK"
    finally:
        c.close()


def test_cleartext_refused_elsewhere_with_logindisabled(ig, dovecot):
    c = plain(ig, ELSEWHERE)
    try:
        caps = capabilities(c.cmd("a", "CAPABILITY")[0])
        assert "LOGINDISABLED" in caps
        assert not any(x.startswith("AUTH=") for x in caps)
        # Anybody without a rule of their own: cleartext only from the office.
        tagged = untouched(dovecot, lambda: c.cmd("b", "LOGIN carol@example.com pw")[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "PRIVACYREQUIRED"
        # user12 may only log in from the office at all: that check comes
        # first and answers like a wrong password.
        tagged = untouched(dovecot, lambda: c.cmd("c", "LOGIN user12 pass12")[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED"
    finally:
        c.close()


# ---- per-user plaintext ban --------------------------------------------------

def test_per_user_plaintext_ban(ig, ca, dovecot):
    c = plain(ig, OFFICE)
    try:
        tagged = untouched(dovecot, lambda: c.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "PRIVACYREQUIRED"
        # The same user in capitals is the same user.
        tagged = untouched(dovecot, lambda: c.cmd("b", "LOGIN ALICE@Example.COM %s" % ALICE_PW)[1])
        assert resp_code(tagged) == "PRIVACYREQUIRED"
    finally:
        c.close()
    t = tls(ig, ca, OFFICE)
    try:
        assert status(t.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
    finally:
        t.close()


# ---- token-only group ("block legacy authentication") ----------------------

def test_token_only_group_refuses_passwords(ig, ca, dovecot):
    t = tls(ig, ca)
    try:
        tagged = untouched(dovecot, lambda: t.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "CONTACTADMIN"
        ir = igtest.plain_ir(BOB, BOB_PW)
        tagged = untouched(dovecot, lambda: t.cmd("b", "AUTHENTICATE PLAIN " + ir)[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "CONTACTADMIN"
        # A pattern member, in any case.
        tagged = untouched(dovecot, lambda: t.cmd("c", "LOGIN Someone@CORP.example.com x")[1])
        assert resp_code(tagged) == "CONTACTADMIN"
        # The token reaches the backend (Dovecot checks it as a password).
        before = igtest.imap_login_successes(dovecot, BOB)
        tagged = t.cmd("d", "AUTHENTICATE XOAUTH2 " + igtest.xoauth2_ir(BOB, BOB_PW))[1]
        assert status(tagged) == "OK", tagged
        igtest.wait_until(lambda: igtest.imap_login_successes(dovecot, BOB) > before, 5,
                          "Dovecot logging bob's XOAUTH2 login")
    finally:
        t.close()


def test_token_only_capabilities_still_offer_tokens(ig, ca):
    t = tls(ig, ca)
    try:
        caps = capabilities(t.cmd("a", "CAPABILITY")[0])
        # Other users may still use passwords: nothing is hidden before the
        # user is known; XOAUTH2 must be there for bob.
        assert "AUTH=XOAUTH2" in caps and "AUTH=PLAIN" in caps
        assert "LOGINDISABLED" not in caps
    finally:
        t.close()


# ---- blocked account ---------------------------------------------------------

def test_denied_account(ig, ca, dovecot):
    t = tls(ig, ca)
    try:
        for tag, name in (("a", "user11"), ("b", "USER11")):
            tagged = untouched(dovecot, lambda: t.cmd(tag, "LOGIN %s pass11" % name)[1])
            assert status(tagged) == "NO" and resp_code(tagged) == "CONTACTADMIN"
        tagged = untouched(dovecot, lambda: t.cmd("c", "AUTHENTICATE PLAIN " +
                                                  igtest.plain_ir("user11", "pass11"))[1])
        assert resp_code(tagged) == "CONTACTADMIN"
    finally:
        t.close()
    assert "reason=account-blocked" in ig.log_text()


# ---- allow_from ----------------------------------------------------------------

def test_allow_from_refuses_elsewhere_like_a_wrong_password(ig, ca, dovecot):
    t = tls(ig, ca, ELSEWHERE)
    try:
        tagged = untouched(dovecot, lambda: t.cmd("a", "LOGIN user12 pass12")[1])
        # Indistinguishable from a wrong password: nothing about the rule.
        assert status(tagged) == "NO" and resp_code(tagged) == "AUTHENTICATIONFAILED"
    finally:
        t.close()
    t = tls(ig, ca, OFFICE)
    try:
        assert status(t.cmd("a", "LOGIN user12 pass12")[1]) == "OK"
    finally:
        t.close()
    assert "reason=address-not-allowed" in ig.log_text()


def test_decisions_are_logged_with_rule_and_facts(ig, ca):
    t = tls(ig, ca)
    try:
        t.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))
    finally:
        t.close()
    lines = [l for l in ig.log_text().splitlines()
             if "event=login-decision" in l and "user=" + BOB in l]
    assert lines
    line = lines[-1]
    for want in ("client=127.0.0.1:", "listener=imaps", "tls=yes", "mech=LOGIN-command",
                 "rule=group:modern-only", "verdict=deny", "reason=login-command-blocked"):
        assert want in line, (want, line)


# ---- explain -------------------------------------------------------------------

def run_explain(ig, *args):
    return subprocess.run([ig.binary, "explain", "-c", ig.config_path] + list(args),
                          capture_output=True, text=True, timeout=30)


def test_explain_what_if(ig):
    r = run_explain(ig, "--user", BOB, "--from", ELSEWHERE, "--listener", "imaps",
                    "--mechanism", "PLAIN")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "group:modern-only" in r.stdout and "mechanism-blocked" in r.stdout
    r = run_explain(ig, "--user", BOB, "--from", ELSEWHERE, "--listener", "imaps",
                    "--mechanism", "XOAUTH2")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_explain(ig, "--user", "user12", "--from", OFFICE, "--listener", "imap",
                    "--tls", "no")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_explain(ig, "--user", "user12", "--from", ELSEWHERE, "--listener", "imap",
                    "--tls", "no")
    assert r.returncode == 1 and "address-not-allowed" in r.stdout
    # The chain of rules considered is shown.
    r = run_explain(ig, "--user", ALICE, "--from", OFFICE, "--listener", "imap", "--tls", "no")
    assert r.returncode == 1
    assert "user:" + ALICE in r.stdout and "defaults" in r.stdout and "tls-required" in r.stdout


# ---- monitor mode ----------------------------------------------------------------

def test_global_monitor_mode_logs_and_allows(imapguard, devcerts, dovecot, ca):
    pol = copy.deepcopy(POLICY)
    pol["mode"] = "monitor"
    ig = imapguard(policy_config(devcerts, dovecot, pol))
    t = tls(ig, ca)
    try:
        assert status(t.cmd("a", "LOGIN user11 pass11")[1]) == "OK"
    finally:
        t.close()
    log = ig.log_text()
    assert "verdict=would-deny" in log and "reason=account-blocked" in log


def test_per_rule_monitor_mode(imapguard, devcerts, dovecot, ca):
    pol = copy.deepcopy(POLICY)
    pol["groups"]["modern-only"]["mode"] = "monitor"  # rolling out this ban
    ig = imapguard(policy_config(devcerts, dovecot, pol))
    t = tls(ig, ca)
    try:
        # The monitored rule only reports...
        assert status(t.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))[1]) == "OK"
    finally:
        t.close()
    t = tls(ig, ca)
    try:
        # ...while the rest is enforced.
        assert resp_code(t.cmd("a", "LOGIN user11 pass11")[1]) == "CONTACTADMIN"
    finally:
        t.close()
    lines = [l for l in ig.log_text().splitlines() if "verdict=would-deny" in l]
    assert lines and "rule=group:modern-only" in lines[0] and "mode=monitor" in lines[0]


# ---- reload ----------------------------------------------------------------------

def write_policy(ig, policy):
    cfg = copy.deepcopy(ig.config)
    cfg["policy"] = policy
    with open(ig.config_path, "w") as f:
        f.write(igtest.to_yaml(cfg) + "\n")


def test_reload_ends_sessions_of_a_denied_user(imapguard, devcerts, dovecot, ca):
    """An emergency deny reaches everything opened before the reload: the
    user's running sessions end with * BYE [UNAVAILABLE], a connection
    opened before the reload is judged by the new policy, other users'
    sessions go on; a broken file keeps the policy in force."""
    ig = imapguard(policy_config(devcerts, dovecot, {"defaults": {"require_tls": True}}))
    alice1, alice2, bob, early = tls(ig, ca), tls(ig, ca), tls(ig, ca), tls(ig, ca)
    try:
        assert status(alice1.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(alice1.cmd("b", "SELECT INBOX")[1]) == "OK"
        assert status(alice2.cmd("a", "AUTHENTICATE PLAIN " +
                                 igtest.plain_ir(ALICE, ALICE_PW))[1]) == "OK"
        assert status(bob.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))[1]) == "OK"
        assert status(early.cmd("a", "CAPABILITY")[1]) == "OK"  # pre-auth, opened now

        write_policy(ig, {"defaults": {"require_tls": True},
                          "users": {ALICE: {"deny": True}}})
        ig.reload()
        assert "revoked=2" in ig.log_text()

        for c in (alice1, alice2):
            data = c.expect_closed()
            assert b"* BYE [UNAVAILABLE]" in data, data
        assert ig.log_text().count("event=session-revoked by=reload verdict=deny") == 2
        # The connection opened before the reload gets the new policy.
        assert resp_code(early.cmd("b", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "CONTACTADMIN"
        # New connections too, and bob is untouched.
        t = tls(ig, ca)
        try:
            assert resp_code(t.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "CONTACTADMIN"
        finally:
            t.close()
        assert status(bob.cmd("c", "NOOP")[1]) == "OK"
        assert status(bob.cmd("d", "SELECT INBOX")[1]) == "OK"

        # A broken file is reported with its location; the policy in force stays.
        with open(ig.config_path) as f:
            text = f.read()
        with open(ig.config_path, "w") as f:
            f.write(text.replace("deny: true", "deny: true\n      denny: 1"))
        ig.reload(what="event=reload-failed")
        assert "imapguard.yaml:" in ig.log_text() and "denny" in ig.log_text()
        t = tls(ig, ca)
        try:
            assert resp_code(t.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "CONTACTADMIN"
        finally:
            t.close()
        assert status(bob.cmd("e", "NOOP")[1]) == "OK"
    finally:
        for c in (alice1, alice2, bob, early):
            c.close()


def test_reload_that_takes_away_an_address_or_mechanism(imapguard, devcerts, dovecot, ca):
    """Taking away the address a user logs in from, or the mechanism used,
    ends the sessions that used it; a monitored rule only logs."""
    ig = imapguard(policy_config(devcerts, dovecot, {"defaults": {"require_tls": True}}))
    from_office = tls(ig, ca, source=OFFICE)
    from_elsewhere = tls(ig, ca)
    by_plain = tls(ig, ca)
    watched = tls(ig, ca)
    try:
        assert status(from_office.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))[1]) == "OK"
        assert status(from_elsewhere.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))[1]) == "OK"
        assert status(by_plain.cmd("a", "AUTHENTICATE PLAIN " +
                                   igtest.plain_ir("user12", "pass12"))[1]) == "OK"
        assert status(watched.cmd("a", "LOGIN user11 pass11")[1]) == "OK"
        write_policy(ig, {
            "networks": {"office": [OFFICE + "/32"]},
            "defaults": {"require_tls": True},
            "users": {BOB: {"allow_from": ["office"]},
                      "user12": {"mechanisms": ["SCRAM-SHA-256"]},
                      "user11": {"deny": True, "mode": "monitor"}},
        })
        ig.reload()
        data = from_elsewhere.expect_closed()
        assert b"* BYE [UNAVAILABLE]" in data, data
        data = by_plain.expect_closed()
        assert b"* BYE [UNAVAILABLE]" in data, data
        assert status(from_office.cmd("b", "NOOP")[1]) == "OK"
        assert status(watched.cmd("b", "NOOP")[1]) == "OK"
        assert "event=session-revoked verdict=would-deny mode=monitor" in ig.log_text()
    finally:
        for c in (from_office, from_elsewhere, by_plain, watched):
            c.close()


def test_ctl_kick(imapguard, devcerts, dovecot, ca, tmp_path):
    """imapguard ctl kick USER ends that user's sessions (the name typed in
    any case) and nobody else's."""
    cfg = policy_config(devcerts, dovecot, {"defaults": {"require_tls": True}})
    sock = str(tmp_path / "ctl.sock")
    cfg["admin"] = {"socket": sock}
    ig = imapguard(cfg)
    a1, a2, b = tls(ig, ca), tls(ig, ca), tls(ig, ca)
    try:
        assert status(a1.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(a2.cmd("a", "LOGIN %s %s" % (ALICE, ALICE_PW))[1]) == "OK"
        assert status(b.cmd("a", "LOGIN %s %s" % (BOB, BOB_PW))[1]) == "OK"
        r = subprocess.run([ig.binary, "ctl", "-s", sock, "kick", ALICE.upper()],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok kicked 2 sessions" in r.stdout
        for c in (a1, a2):
            data = c.expect_closed()
            assert b"* BYE [UNAVAILABLE]" in data, data
        assert status(b.cmd("b", "NOOP")[1]) == "OK"
        r = subprocess.run([ig.binary, "ctl", "-s", sock, "kick", "nobody@example.com"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "ok kicked 0 sessions" in r.stdout, r.stdout
        assert ig.log_text().count("event=session-kicked by=ctl") == 2
    finally:
        for c in (a1, a2, b):
            c.close()


def test_capabilities_hide_mechanisms_no_rule_allows(imapguard, devcerts, dovecot, ca):
    pol = {"defaults": {"require_tls": True, "mechanisms": ["PLAIN", "XOAUTH2"]},
           "groups": {"scram-users": {"users": ["*@scram.example.com"],
                                      "mechanisms": ["SCRAM-SHA-256"]}}}
    ig = imapguard(policy_config(devcerts, dovecot, pol))
    t = tls(ig, ca)
    try:
        caps = capabilities(t.cmd("a", "CAPABILITY")[0])
        assert {"AUTH=PLAIN", "AUTH=XOAUTH2", "AUTH=SCRAM-SHA-256"} <= caps
        assert "AUTH=CRAM-MD5" not in caps and "AUTH=SCRAM-SHA-1" not in caps
        assert "AUTH=OAUTHBEARER" not in caps and "AUTH=LOGIN" not in caps
        tagged = untouched(dovecot, lambda: t.cmd("b", "AUTHENTICATE CRAM-MD5")[1])
        assert status(tagged) == "NO"
        # SCRAM is offered because one group may use it, but not to alice.
        tagged = untouched(dovecot, lambda: t.cmd(
            "c", "AUTHENTICATE SCRAM-SHA-256 " + b64("n,,n=%s,r=abcdefgh" % ALICE))[1])
        assert status(tagged) == "NO" and resp_code(tagged) == "CONTACTADMIN"
    finally:
        t.close()
