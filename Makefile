# mote: make test | check | size | bench | run | flash | deploy | repl  (see README.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MPY    := $(VENV)/bin/micropython

.PHONY: test test-cpython test-micropython check size bench-codec bench run flash deploy repl clean

$(VENV)/.test-stamp: requirements/test.txt
	@echo "setting up $(VENV) with the pinned host tooling (one-time)..."
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/test.txt
	@touch $@

$(VENV)/.tools-stamp: requirements/tools.txt $(VENV)/.test-stamp
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/tools.txt
	@touch $@

test: $(VENV)/.test-stamp
	@sh tools/ensure_mosquitto.sh
	$(PY) tools/runtests.py

test-cpython: $(VENV)/.test-stamp
	$(PY) tools/runtests.py --cpython-only

test-micropython: $(VENV)/.test-stamp
	$(PY) tools/runtests.py --micropython-only

check: $(VENV)/.tools-stamp
	$(VENV)/bin/ruff check lib firmware boards host_tests tools
	$(VENV)/bin/ruff format --check lib firmware boards host_tests tools
	$(PY) tools/typecheck.py

size: $(VENV)/.test-stamp
	$(PY) tools/size.py

bench-codec: $(VENV)/.test-stamp
	$(PY) tools/bench_codec.py
	$(MPY) tools/bench_codec.py

$(VENV)/.bench-stamp: requirements/bench.txt $(VENV)/.test-stamp
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/bench.txt
	@touch $@

# Offline: make bench BENCH_ARGS="--umqtt-src ../micropython-lib --mqtt-as-src ../micropython-mqtt"
bench: $(VENV)/.bench-stamp
	@sh tools/ensure_mosquitto.sh
	$(PY) tools/bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build
