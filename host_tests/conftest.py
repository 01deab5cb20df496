# pytest set-up for CPython: lib/ and host_tests/ on sys.path. MicroPython uses mprun.py.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (os.path.join(ROOT, "lib"), HERE, ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)
pytest_plugins = ["brokerfix"]
