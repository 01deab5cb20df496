# main.py: imports the application and runs it. An optional first argument (host only,
# where sys.argv exists) names the config file; a device always reads /config.json.
import sys

import app

app.run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
