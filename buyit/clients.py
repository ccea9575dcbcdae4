"""librdkafka settings every BuyIt producer and consumer shares."""

# Small records on loopback: without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold a request
# back for up to 40 ms. Kafka long-polls, so the default fetch wait costs no latency (a fetch returns
# as soon as one record is there, fetch.min.bytes=1) and an idle consumer sleeps in the broker.
# After a broker restart librdkafka backs off reconnecting up to 10 s by default; a second is plenty on a LAN
# and makes a restarted broker's clients (API, dataflows) recover in its start time, not ten seconds more.
COMMON = {"socket.nagle.disable": True, "log_level": 3, "reconnect.backoff.max.ms": 1000}

# acks=all: a record is acknowledged once the in-sync replicas hold it (on one node: the leader's log).
PRODUCER = {**COMMON, "linger.ms": 1, "acks": "all", "enable.idempotence": False}

# A fetch returns as soon as one record is there; an idle one waits a second in the broker, not the default
# half second: every idle fetch costs the broker a request, and nothing else (a close waits out at most one).
CONSUMER = {**COMMON, "enable.auto.commit": False, "enable.partition.eof": False, "fetch.error.backoff.ms": 10,
            "fetch.wait.max.ms": 1000}

# How long a thread that serves a client blocks in poll(): poll() returns as soon as a record or a delivery
# report is there, so this only bounds how late the thread notices it should stop or that a timer is due
# (an idle stack's threads wake twice a second, not twenty or forty times).
IDLE_POLL_S = 0.5


def producer_config(brokers: list[str], **overrides) -> dict:
    """A producer's configuration for `brokers`."""
    return {"bootstrap.servers": ",".join(brokers), **PRODUCER, **overrides}


def consumer_config(brokers: list[str], group: str, **overrides) -> dict:
    """An assign-based consumer's configuration (the group id only names it; offsets are ours)."""
    return {"bootstrap.servers": ",".join(brokers), "group.id": group, **CONSUMER, **overrides}
