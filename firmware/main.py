# main.py: imports the application and runs it. An optional first argument (host only,
# where sys.argv exists) names the config file; a device always reads /config.json.
import sys

import app

rc = app.run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
# A fatal configuration error: a non-zero status on the host. Not on a board, where
# SystemExit from main.py soft-resets, and the config would fail again: a crash loop.
if rc and sys.platform in ("linux", "darwin"):
    sys.exit(rc)
