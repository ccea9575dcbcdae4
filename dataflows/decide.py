"""The decision dataflow: every `*.commands` topic in, events, saga commands and results out.

Each aggregate runs in its own keyed step. Every saga command goes out to its aggregate's command topic
and comes back in, so each aggregate decides exactly the sequence of records in its command topic's
partition. That is what makes a recovery safe: after a crash the commands read since the last snapshot
are decided again, in the same order as the first time, so they publish the same events (same ids, same
bytes, same versions) and give the same answers.

Passing a saga command to a later step inside the dataflow (a Bytewax exchange by key, no Kafka round
trip) was tried and taken out: where such a command lands among the records of its aggregate's own topic
depends on timing, so a replay after a crash decided in another order than the first run, whose events
and answers were already out (found by tests/faults: one event id published with two versions, a client
told 409 for units the replay reserved, views skipping an event).
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from buyit.envelope import Envelope, commands_topic, decode
from buyit.settings import get_settings
from dataflows.decider import dead_letter
from dataflows.kafka_io import Record, kafka_sink, kafka_source, keyed_sink_message
from dataflows.timers import TIMERS, Scheduled, TimerBucket
from state.registry import AGGREGATES

# Each record is routed by a chain of branches, one per aggregate, in this order: the busiest first (an add
# to a cart is decided by cart, inventory, cart), so most records pass one or two of them.
STAGES = ("cart", "inventory", "order", "payment", "ledger", "catalog", "user", "health")
assert set(STAGES) == set(AGGREGATES), "every aggregate needs a stage"
_COMMAND_TOPICS = {commands_topic(name): name for name in STAGES}


def parse(record: Record) -> tuple[str, tuple[str, Envelope]] | tuple[str, tuple]:
    """("ok", (aggregate, envelope)) or ("dead", output) for a record that cannot be decided."""
    if record.error:
        return ("dead", dead_letter("read_error", record.topic, record.key, record.value, record.error))
    aggregate = record.topic.removesuffix(".commands")
    if aggregate not in AGGREGATES:
        return ("dead", dead_letter("unknown_topic", record.topic, record.key, record.value, "no aggregate"))
    try:
        envelope = decode(record.value)
    except ValueError as err:
        return ("dead", dead_letter("undecodable", record.topic, record.key, record.value, str(err)))
    return ("ok", (aggregate, envelope))


def build_flow(source, sink, to_message=lambda routed: routed[1], logic=Scheduled) -> Dataflow:
    """Wire the deciders between `source` (Records) and `sink`. Outputs are (route key, (topic, key,
    value)), the route key being the aggregate that decided; `to_message` shapes them for the sink
    (by default: the bare (topic, key, value)). `logic`: the decision steps' (bench/timers.py compares
    `DeciderLogic`, whose every aggregate keeps its own Bytewax timer)."""
    flow = Dataflow("buyit_decide")
    records = op.input("read_commands", flow, source)
    parsed = op.map("parse", records, parse)
    branch = op.branch("split_poison", parsed, lambda p: p[0] == "ok")
    commands = op.map("unwrap", branch.trues, lambda p: p[1])  # (aggregate, envelope)
    written = [op.map("unwrap_poison", branch.falses, lambda p: (p[1][1], p[1]))]  # (route key, output)
    for name in STAGES:
        split = op.branch(f"pick_{name}", commands, lambda c, name=name: c[0] == name)
        keyed = op.key_on(f"key_{name}", split.trues, lambda c: c[1].key)  # (key, (aggregate, envelope))
        written.append(op.stateful(f"decide_{name}", keyed, logic))  # (key, (topic, key, value))
        commands = split.falses
    decided = op.branch("split_timers", op.merge("all_decided", *written), lambda kv: kv[1][0] != TIMERS)
    # (bucket, ("set" | "drop", ...)) -> (bucket, (topic, key, value)): the Expire and Retire commands due
    asked = op.stateful("timers", op.map("to_bucket", decided.falses, lambda kv: (kv[1][1], kv[1][2])), TimerBucket)
    outputs = op.merge("all_outputs", decided.trues, asked)
    op.output("write", op.map("to_message", outputs, to_message), sink)
    return flow


def kafka_flow() -> Dataflow:
    """The production flow: all command topics from Kafka, outputs back to Kafka."""
    clustered = get_settings().buyit_decide_processes > 1
    return build_flow(kafka_source(list(_COMMAND_TOPICS), clustered=clustered), kafka_sink(), keyed_sink_message)
