# pytest set-up for CPython: lib/ and host_tests/ on sys.path. MicroPython uses mprun.py.
# Under CI=true every tool the suite needs (both MicroPython VMs, mosquitto, openssl) must
# be installed: a missing one stops the run at once with the reason, never a quiet SKIP.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (os.path.join(ROOT, "lib"), HERE, ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)
pytest_plugins = ["brokerfix"]


def pytest_sessionstart(session):
    import mpclient
    import pytest

    if not mpclient.in_ci():
        return
    missing = mpclient.missing_tools()
    if missing:
        pytest.exit(
            "CI=true, and tests that need these tools would not run: " + "; ".join(missing),
            returncode=3,
        )
