# Fake `ntptime` for host tests: the module-level host and timeout that MicroPython's
# ntptime has, and settime() answering from a script: each entry is None (success: the
# clock is "set") or an exception to raise, e.g. OSError(110) for a server that is silent.
host = "pool.ntp.org"
timeout = 1
script = []  # results of the next settime() calls; empty: success
calls = []  # (host, timeout) per settime()
sets = 0
hook = None  # called first by settime(): tests advance a fake clock or look around


def reset_state():
    global host, timeout, sets, hook
    host = "pool.ntp.org"
    timeout = 1
    sets = 0
    hook = None
    del script[:]
    del calls[:]


def settime():
    global sets
    if hook is not None:
        hook()
    calls.append((host, timeout))
    if script:
        e = script.pop(0)
        if e is not None:
            raise e
    sets += 1
