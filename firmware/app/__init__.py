# app: the mote sensor-node application (layer: firmware). run() boots and runs it.
VERSION = "0.1.0"


def run(config_path="config.json"):
    """Boot the node: config, board, hardware (app.setup), then the loop (app.node). A
    config that cannot work is reported and run returns (to the REPL on a device) instead
    of crash-looping, and run returns 1 (0 after Ctrl-C); on the host a Reboot or
    DeepSleep starts the node afresh in the same process.

    The order saves heap: what boot needs only once (the config validator, the hardware
    builder) comes and goes first, then the loop's code is loaded, then the large buffers
    (offline ring, client outbox) are made, into a heap that boot has not cut up."""
    import gc

    import hal
    from app.log import log
    from mote.compat import sleep_ms

    while True:
        from app import setup

        booted = setup.boot(config_path)
        if booted is None:
            hal.unload("app.setup")
            return 1
        cfg, raw, problems, hw, trial = booted
        # app.setup goes before mote and the node's code are loaded and the client's
        # buffers made: they would land around it and leave a hole when it goes.
        kw = setup.client_args(cfg)
        booted = setup = None
        hal.unload("app.setup")
        gc.collect()  # what boot freed is reused by the code loaded next, not left as holes
        from app import node as node_mod

        node = node_mod.Node(
            cfg,
            raw,
            problems,
            hw,
            make_client=lambda c, client_id, kw=kw: _client(client_id, kw),
            config_path=config_path,
            sensor_error=hal.SensorError,
        )
        node.trial = trial
        cfg = raw = problems = hw = kw = None
        try:
            node.run()
        except hal.Reboot:
            log("host: reboot, starting afresh")
        except hal.DeepSleep as e:
            log("host: sleeping", e.ms, "ms as a device would")
            sleep_ms(e.ms)
        except KeyboardInterrupt:
            log("stopped")
            node.shutdown()
            return 0
        node = None


def _client(client_id, kw):
    from mote import MQTTClient

    return MQTTClient(client_id, **kw)
