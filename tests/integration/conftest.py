"""pytest fixtures for imapguard's integration tests (see igtest.py).

Fixtures:
  devcerts          directory with ca.pem, server-{ecdsa,rsa}.{pem,key}
  ca                path of the dev CA; client_ctx: an ssl context trusting it
  dovecot           a private plaintext Dovecot (module scope)
  dovecot_legacy    a private plaintext Dovecot without SASL-IR and LITERAL+
  dovecot_tls       a private Dovecot with ssl = yes: .port offers STARTTLS,
                    .ssl_port implicit TLS (module scope)
  dovecot_master    a private plaintext Dovecot with a master passdb
                    (igtest.MASTER_USER, auth_master_user_separator = *)
  igconfig          base_config(devcerts, dovecot.address), a fresh dict
  imapguard         factory: imapguard(config_dict, **kw) -> started
                    Imapguard (kw: igtest.Imapguard's, e.g. rlimits), stopped
                    at test end with a clean-exit check
  imapguard_mod     the same factory, with module scope
  ig                imapguard_mod(igtest.base_config(...)) for the module
On a failing test, the tails of the Dovecot and imapguard logs are attached
to the report.
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import igtest  # noqa: E402

_ROOT = None


def _root():
    """A private temp root for this pytest process, removed at the end
    unless IGTEST_KEEP is set."""
    global _ROOT
    if _ROOT is None:
        _ROOT = tempfile.mkdtemp(prefix="igt-")
        os.chmod(_ROOT, 0o755)
    return _ROOT


def _mkdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir=_root())
    os.chmod(d, 0o755)
    return d


def pytest_sessionfinish(session, exitstatus):
    igtest._kill_all()
    if _ROOT and not os.environ.get("IGTEST_KEEP"):
        shutil.rmtree(_ROOT, ignore_errors=True)


# Objects with log_text() that a failing test should show.
_watched = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call", "teardown"):
        for name, obj in list(_watched):
            text = obj.log_text()
            if text:
                rep.sections.append((name + " log (tail)", text[-8000:]))


def _watch(name, obj):
    entry = (name, obj)
    _watched.append(entry)
    return lambda: _watched.remove(entry) if entry in _watched else None


@pytest.fixture(scope="session")
def src_dir():
    return os.environ.get("IMAPGUARD_SRC",
                          os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


@pytest.fixture(scope="session")
def imapguard_bin():
    b = os.environ.get("IMAPGUARD_BIN")
    if not b:
        pytest.skip("IMAPGUARD_BIN not set (run through ctest)")
    assert os.access(b, os.X_OK), "IMAPGUARD_BIN %s is not executable" % b
    return b


@pytest.fixture(scope="session")
def devcerts(src_dir):
    return igtest.make_devcerts(src_dir, os.path.join(_mkdir("certs-"), "certs"))


@pytest.fixture(scope="session")
def ca(devcerts):
    return os.path.join(devcerts, "ca.pem")


@pytest.fixture
def client_ctx(ca):
    return igtest.client_context(ca)


def _dovecot(request, **kw):
    dv = igtest.Dovecot(_mkdir("dovecot-"), **kw).start()
    unwatch = _watch("dovecot", dv)

    def fin():
        unwatch()
        dv.stop()
    request.addfinalizer(fin)
    return dv


@pytest.fixture(scope="module")
def dovecot(request):
    return _dovecot(request)


@pytest.fixture(scope="module")
def dovecot_legacy(request):
    """A private Dovecot that advertises neither SASL-IR nor LITERAL+ before
    login, like many older servers."""
    return _dovecot(request, extra_conf="imap_capability = IMAP4rev1 ID IDLE\n")


@pytest.fixture(scope="module")
def dovecot_master(request):
    """A private Dovecot where igtest.MASTER_USER logs in for any user
    (backend.master_login, both styles)."""
    return _dovecot(request, master=True)


@pytest.fixture(scope="module")
def dovecot_tls(request, devcerts):
    return _dovecot(request, certs=devcerts, ssl_port=True)


@pytest.fixture
def igconfig(devcerts, dovecot):
    return igtest.base_config(devcerts, dovecot.address)


def _factory(request, binary, devcerts):
    started = []

    def start(config, **kw):
        ig = igtest.Imapguard(binary, _mkdir("imapguard-"), config, certs=devcerts, **kw)
        started.append((ig, _watch("imapguard", ig)))
        return ig.start()

    def fin():
        errors = []
        for ig, unwatch in started:
            if ig.start_failed:  # already reported by the test itself
                unwatch()
                continue
            try:
                ig.stop(check=True)
            except AssertionError as e:
                errors.append(str(e))
            finally:
                unwatch()
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)
    request.addfinalizer(fin)
    return start


@pytest.fixture(scope="module")
def ig(imapguard_mod, devcerts, dovecot):
    """One imapguard for the module with the usual config in front of the
    module's Dovecot (a test file may override this fixture)."""
    return imapguard_mod(igtest.base_config(devcerts, dovecot.address))


@pytest.fixture
def imapguard(request, imapguard_bin, devcerts):
    return _factory(request, imapguard_bin, devcerts)


@pytest.fixture(scope="module")
def imapguard_mod(request, imapguard_bin, devcerts):
    return _factory(request, imapguard_bin, devcerts)
