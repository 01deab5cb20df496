# boot.py: runs first on every reset. It must never fail, so it only sets what cannot
# go wrong and leaves everything else (config, network, sensors) to main.py.
import gc

gc.collect()
