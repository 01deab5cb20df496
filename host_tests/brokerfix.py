# pytest fixtures for the broker tests (CPython only), registered in conftest.py:
# a real mosquitto, the fault proxy, the fake broker, and MicroPython's binary.
# A failing test that used a broker gets mosquitto's log tail in its report.
import broker as _broker
import fakebroker as _fakebroker
import faultproxy as _faultproxy
import mpclient as _mpclient
import pytest

import support as _support


def _need_tools():
    reason = _broker.missing_tools()
    if reason:
        _support.missing_tool(reason)  # a skip; under CI=true a failure


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The test PKI (broker.Certs), made once per session with openssl."""
    _need_tools()
    return _broker.Certs(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="session")
def broker(certs, tmp_path_factory):
    """A running mosquitto shared by the session (no persistence). Do not stop it: use
    fresh_broker for tests that stop, restart or reconfigure the broker."""
    b = _broker.Broker(workdir=str(tmp_path_factory.mktemp("broker")), certs=certs)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(certs, tmp_path):
    """make(**Broker kwargs) -> a started Broker of this test's own (stopped afterwards)."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("certs", certs)
        kwargs.setdefault("workdir", str(tmp_path / ("broker%d" % len(made))))
        b = _broker.Broker(**kwargs)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def fresh_broker(broker_factory):
    """A mosquitto of this test's own, with persistence on: stop(), start(), restart()
    and kill() are fine, the ports stay the same."""
    return broker_factory(persistence=True)


@pytest.fixture
def proxy_factory():
    """make(target_port) -> a FaultProxy to 127.0.0.1:target_port (closed afterwards)."""
    made = []

    def make(target_port, **kwargs):
        p = _faultproxy.FaultProxy(target_port, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def proxy(broker, proxy_factory):
    """A FaultProxy in front of the session broker's plain listener."""
    return proxy_factory(broker.port)


@pytest.fixture
def fake_broker_factory():
    """make(script, **FakeBroker kwargs) -> a FakeBroker (closed afterwards)."""
    made = []

    def make(script=(), **kwargs):
        fb = _fakebroker.FakeBroker(script, **kwargs)
        made.append(fb)
        return fb

    yield make
    for fb in made:
        fb.close()


@pytest.fixture(scope="session")
def micropython_bin():
    """Path of the MicroPython unix port; skips when it is not installed (fails under
    CI=true)."""
    path = _mpclient.micropython_path()
    if not path:
        _support.missing_tool(_mpclient.missing_reason("micropython"))
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for name in ("fresh_broker", "broker"):
        b = getattr(item, "funcargs", {}).get(name)
        if isinstance(b, _broker.Broker):
            rep.sections.append(("mosquitto log (%s)" % name, b.log_tail(40)))
