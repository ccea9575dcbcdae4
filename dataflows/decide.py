"""The decision dataflow: every `*.commands` topic in, events, saga commands and results out."""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from buyit.envelope import Envelope, commands_topic, decode
from dataflows.decider import DeciderLogic, dead_letter
from dataflows.kafka_io import Record, kafka_sink, kafka_source, to_sink_message
from state.registry import AGGREGATES


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


def build_flow(source, sink, to_message=lambda output: output) -> Dataflow:
    """Wire the deciders between `source` (Records) and `sink` ((topic, key, value) outputs)."""
    flow = Dataflow("buyit_decide")
    records = op.input("read_commands", flow, source)
    parsed = op.map("parse", records, parse)
    branch = op.branch("split_poison", parsed, lambda p: p[0] == "ok")
    commands = op.map("unwrap", branch.trues, lambda p: p[1])
    poison = op.map("unwrap_poison", branch.falses, lambda p: p[1])
    keyed = op.key_on("key_by_aggregate", commands, lambda c: f"{c[0]}:{c[1].key}")  # (agg:id, (agg, env))
    decided = op.stateful("decide", keyed, DeciderLogic)  # (agg:id, output)
    outputs = op.merge("all_outputs", op.map("drop_key", decided, lambda kv: kv[1]), poison)
    op.output("write", op.map("to_message", outputs, to_message), sink)
    return flow


def kafka_flow() -> Dataflow:
    """The production flow: all command topics from Kafka, outputs back to Kafka."""
    topics = [commands_topic(name) for name in AGGREGATES]
    return build_flow(kafka_source(topics), kafka_sink(), to_sink_message)
