#!/bin/sh
# Make sure a mosquitto binary exists for the broker tests: install it with apt-get when
# running as root, otherwise say what to install (the broker tests then print SKIP).
# Under CI=true a mosquitto that is still missing is an error: CI never skips broker tests.
case "$(printf %s "${CI:-}" | tr '[:upper:]' '[:lower:]')" in true|1|yes) ci=1 ;; *) ci= ;; esac
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing mosquitto and openssl with apt-get (one-time)..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto openssl >/dev/null
    exit $?
fi
if [ -n "$ci" ]; then
    echo "error: CI=true and mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto): the broker tests cannot run" >&2
    exit 1
fi
echo "mosquitto not found: install it (Debian/Ubuntu: sudo apt-get install mosquitto); broker tests will SKIP"
exit 0
