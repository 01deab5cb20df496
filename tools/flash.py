"""Write stock MicroPython to an ESP32 board with esptool: erase the flash, then write
the firmware image at the board's offset (0x1000 on the ESP32, 0x0 on the S3 and C3).

Usage: python tools/flash.py --board esp32 --port /dev/ttyUSB0 --firmware ESP32_GENERIC.bin
       [--baud 460800] [--no-erase] [--dry-run]
BOARD, PORT and FIRMWARE may also come from the environment (as make passes them).

Flashing changes what is on the board, so it first forgets tools/deploy.py's record of
what was deployed to that port: the next `make deploy` copies everything.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy  # noqa: E402  (tools/deploy.py: where the per-port deploy record lives)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# board folder -> (esptool chip name, offset of the MicroPython image). The offsets are
# where each chip's ROM looks for the second-stage bootloader, which the stock images
# start with: 0x1000 on the original ESP32, 0x0 on the newer chips.
CHIPS = {
    "esp32": ("esp32", 0x1000),
    "esp32s3": ("esp32s3", 0x0),
    "esp32c3": ("esp32c3", 0x0),
}
IMAGES = "https://micropython.org/download/ (ESP32_GENERIC, ESP32_GENERIC_S3, ESP32_GENERIC_C3)"


def fail(msg):
    print("flash: error:", msg, file=sys.stderr)
    sys.exit(2)


def commands(board, port, firmware, baud, erase=True, python=sys.executable):
    """The esptool command lines for this board, in order."""
    chip, offset = CHIPS[board]
    base = [python, "-m", "esptool", "--chip", chip, "--port", port]
    out = []
    if erase:
        out.append(base + ["erase-flash"])
    out.append(base + ["--baud", str(baud), "write-flash", "-z", "0x%x" % offset, firmware])
    return out


def check(args):
    """Fail with a clear message for anything missing; returns nothing."""
    if not args.board:
        fail("no board: pass --board or BOARD= (one of %s)" % ", ".join(sorted(CHIPS)))
    if args.board not in CHIPS:
        if args.board == "host":
            fail("the host board runs on this PC: use `make run`, there is nothing to flash")
        fail("unknown board %r (one of %s)" % (args.board, ", ".join(sorted(CHIPS))))
    if not args.port:
        fail("no serial port: pass --port or PORT= (e.g. /dev/ttyUSB0, /dev/ttyACM0, COM3)")
    if not args.dry_run and "://" not in args.port and not os.path.exists(args.port):
        fail(
            "serial port %s does not exist (board plugged in? try `ls /dev/ttyUSB* "
            "/dev/ttyACM*`; on Linux you may need to be in the dialout group)" % args.port
        )
    if not args.firmware:
        fail(
            "no firmware image: pass --firmware or FIRMWARE= (a MicroPython .bin from %s)" % IMAGES
        )
    if not os.path.isfile(args.firmware):
        fail("firmware image %s not found (download one from %s)" % (args.firmware, IMAGES))
    if not args.firmware.endswith(".bin"):
        fail(
            "firmware image %s is not a .bin (want the MicroPython .bin for %s)"
            % (args.firmware, args.board)
        )


def main(argv=None):
    env = os.environ
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default=env.get("BOARD") or None)
    ap.add_argument("--port", default=env.get("PORT") or None)
    ap.add_argument("--firmware", default=env.get("FIRMWARE") or None)
    ap.add_argument("--baud", type=int, default=int(env.get("BAUD") or 460800))
    ap.add_argument("--no-erase", action="store_true", help="skip erase-flash")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    check(args)
    chip, offset = CHIPS[args.board]
    print(
        "flash: %s (%s): MicroPython %s at 0x%x on %s"
        % (args.board, chip, args.firmware, offset, args.port)
    )
    if args.dry_run:
        print("flash: would forget what was deployed to %s" % args.port)
    else:
        for path in deploy.forget_port(args.port):
            print(
                "flash: forgot the deploy record %s: the next make deploy copies everything"
                % os.path.relpath(path)
            )
    for cmd in commands(args.board, args.port, args.firmware, args.baud, not args.no_erase):
        print("flash: +", " ".join(cmd), flush=True)
        if args.dry_run:
            continue
        rc = subprocess.call(cmd)
        if rc != 0:
            fail(
                "esptool failed (exit %d): hold BOOT while pressing EN to enter the "
                "bootloader, or try --baud 115200" % rc
            )
    if not args.dry_run:
        print("flash: done. Next: make deploy BOARD=%s PORT=%s" % (args.board, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
