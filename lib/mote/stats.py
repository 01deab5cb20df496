# mote.stats: MQTTClient.stats(), imported on first use so that the names of its counters
# cost RAM only in programs that ask for them.


def stats(c):
    """The client's counters in one dict (allocates)."""
    s = c._s
    n = c._n  # the order of mote.client's _N_* constants
    host, port = c._servers[c._srv]
    return {
        "connected": c.is_connected(),
        "reconnects": c.reconnects,
        "connect_failures": n[0],
        "connections_lost": n[1],
        "protocol_errors": n[2],
        "retransmissions": s._n[2],  # the order of mote.session's _N_* constants
        "oversize_dropped": s.dropped,
        "qos2_duplicates_suppressed": s._n[4],
        "qos2_deferred": s._n[5],
        "qos0_dropped_offline": n[5],
        "qos2_abandoned": s._n[3],
        "subscriptions_refused": n[6],
        "poison_dropped": n[7],
        "published": n[3],
        "received": n[4],
        "outbox_pending": s.pending(),
        "outbox_bytes_free": outbox_free(s),
        "ping_rtt_ms": c._rtt_ms,
        "server": "%s:%d" % (host, port or (8883 if c.ssl else 1883)),
    }


def outbox_free(s):
    """Bytes of a Session's outbox a new packet could use now (the larger free run)."""
    if not s._count:
        return len(s._ob)
    t = s._s_off[s._first]
    last = (s._first + s._count - 1) % s.max_inflight
    h = s._s_off[last] + s._s_len[last]
    if s._s_off[last] >= t:
        return max(len(s._ob) - h, t)
    return t - h
