# Benchmark helpers shared by the MicroPython-side scenario scripts (bsync.py, basync.py).
# Runs on the MicroPython unix port only; the CPython orchestrator is tools/bench/run.py.
import gc
import json
import sys
from time import ticks_diff, ticks_us

# Same topic (16 bytes) and payload (32 bytes) for every client and scenario.
TOPIC = b"mote/bench/topic"
PAYLOAD = b"0123456789abcdef0123456789ABCDEF"
HOST = "127.0.0.1"


def args():
    """The scenario's parameters: one JSON object, the last command-line argument."""
    return json.loads(sys.argv[-1])


def result(d):
    """Hand one result object to the orchestrator (one line on stdout)."""
    print("RESULT " + json.dumps(d))


def ready(tag="READY"):
    """Tell the orchestrator the client is subscribed and the flood may start."""
    print(tag)


def mark(cfg):
    """With cfg["marks"]: let the orchestrator read this process's TCP counters (`ss -ti`)
    now; it answers on stdin. Called just before and just after the measured interval."""
    if cfg.get("marks"):
        print("MARK")
        sys.stdin.readline()


def wait_go(cfg):
    """With cfg["backlog"]: block until the orchestrator says the flood is buffered."""
    if cfg.get("backlog"):
        sys.stdin.readline()


def elapsed_us(t0):
    return ticks_diff(ticks_us(), t0)


def percentile(sorted_list, p):
    if not sorted_list:
        return None
    i = (len(sorted_list) - 1) * p // 100
    return sorted_list[i]


def is_end(msg):
    # The flood's last message starts with b"END" (payload of the same length).
    return msg[0] == 69 and msg[1] == 78 and msg[2] == 68


class Counter:
    """Counts received messages until the end marker: first/last arrival times, and
    gc.mem_alloc() when the count reaches each of mark_at."""

    def __init__(self):
        self.n = 0
        self.end = False
        self.t_first = 0
        self.t_last = 0
        self.marks = [0, 0, 0, 0]
        self.mark_at = (-1, -1, -1, -1)
        self.first_at = 1  # t_first is taken when n reaches this (a new round: n + 1)

    def count(self, msg):
        if is_end(msg):
            self.end = True
            return
        self.n += 1
        if self.n == self.first_at:
            self.t_first = ticks_us()
        self.t_last = ticks_us()
        n = self.n
        if n == self.mark_at[0]:
            self.marks[0] = gc.mem_alloc()
        elif n == self.mark_at[1]:
            self.marks[1] = gc.mem_alloc()
        elif n == self.mark_at[2]:
            self.marks[2] = gc.mem_alloc()

    def cb(self, topic, msg):
        self.count(msg)
