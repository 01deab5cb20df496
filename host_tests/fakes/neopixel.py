# Fake `neopixel` for host tests: records pixels and writes; `last` is the newest strip.
last = None


def reset_state():
    global last
    last = None


class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1):
        global last
        self.pin = pin
        self.n = n
        self.pixels = [(0, 0, 0)] * n
        self.writes = 0
        last = self

    def __setitem__(self, i, color):
        self.pixels[i] = tuple(color)

    def __getitem__(self, i):
        return self.pixels[i]

    def __len__(self):
        return self.n

    def write(self):
        self.writes += 1
