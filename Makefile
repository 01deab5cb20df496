# mote: make test | check | size | bench | run | flash | deploy | repl  (see README.md)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MPY    := $(VENV)/bin/micropython

.PHONY: test test-cpython test-micropython test-micropython32 check size bench-codec bench memory run flash deploy repl clean

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

# the 32-bit VM alone (../shared/micropython32/micropython, or MOTE_MICROPYTHON32=path)
test-micropython32: $(VENV)/.test-stamp
	$(PY) tools/runtests.py --micropython32-only

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

# RAM on the 32-bit VM -> docs/memory.md (about 10 minutes; MEMORY_ARGS="--node-seconds 10"
# for a quick look). Offline: MEMORY_ARGS="--umqtt-src DIR --mqtt-as-src DIR", as for bench;
# the frozen rows: MEMORY_ARGS="--frozen-src <micropython source>" (docs/firmware.md).
memory: $(VENV)/.test-stamp
	@sh tools/ensure_mosquitto.sh
	$(PY) tools/memory.py $(MEMORY_ARGS)

# make run [MQTT_HOST=127.0.0.1] [MQTT_PORT=1883] [INTERVAL=5] [RUN_ARGS="--config c.json"]:
# the node on this PC. A broker with a login: MQTT_USER=... MQTT_PASSWORD=... (the node's
# account; MOTE_USER/MOTE_PASSWORD for the watcher). make puts variables given on its
# command line in the environment, where run_host.py reads them: no password in argv.
run: $(VENV)/.test-stamp
	$(PY) tools/run_host.py --host $(or $(MQTT_HOST),127.0.0.1) --port $(or $(MQTT_PORT),1883) $(if $(INTERVAL),--interval $(INTERVAL)) $(RUN_ARGS)

# make flash BOARD=esp32 PORT=/dev/ttyUSB0 FIRMWARE=ESP32_GENERIC-....bin
flash: $(VENV)/.tools-stamp
	$(PY) tools/flash.py --board "$(BOARD)" --port "$(PORT)" --firmware "$(FIRMWARE)"

# make deploy BOARD=esp32 PORT=/dev/ttyUSB0 [CONFIG=config.json] [FORCE=1: copy everything]
# [LINES=1: keep line numbers] [DEPLOY_ARGS=--dry-run]. LINES counts only from make's command
# line: make itself may define LINES (the terminal's height).
DEPLOY_LINES := $(if $(filter command line,$(origin LINES)),$(filter-out 0,$(LINES)))
deploy: $(VENV)/.tools-stamp
	$(PY) tools/deploy.py --board "$(BOARD)" --port "$(PORT)" --config "$(or $(CONFIG),config.json)" $(if $(filter-out 0,$(FORCE)),--force) $(if $(DEPLOY_LINES),--lines) $(DEPLOY_ARGS)

# make repl PORT=/dev/ttyUSB0 (Ctrl-] leaves)
repl: $(VENV)/.tools-stamp
	@test -n "$(PORT)" || { echo "repl: error: no serial port: make repl PORT=/dev/ttyUSB0"; exit 2; }
	@test -e "$(PORT)" || { echo "repl: error: serial port $(PORT) does not exist (board plugged in? ls /dev/ttyUSB* /dev/ttyACM*)"; exit 2; }
	@echo "repl: + $(VENV)/bin/mpremote connect $(PORT) repl   (Ctrl-] leaves)"
	$(VENV)/bin/mpremote connect $(PORT) repl

clean:
	rm -rf $(VENV) build
