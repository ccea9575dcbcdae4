"""The projection dataflow: event topics in, Postgres views (and caches) out.

It folds each aggregate's events with the same `evolve` the deciders use and
writes the resulting rows, so started from offset 0 into a fresh schema it
rebuilds the live views exactly (a replay, dataflows/replay.py); it never decides anything.
Each fold also names the facts its event adds to the per-minute windows
(`state/analytics.py`), windowed on event time by `dataflows/windows.py` into the
`sales_minutes` and `cart_funnel_minutes` tables and the `analytics.windows` topic.
"""

from __future__ import annotations

from dataclasses import replace

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic

import msgspec

from buyit.envelope import REPEATED, RESULTS, events_topic, read_event
from dataflows.decider import dead_letter
from dataflows.kafka_io import Record, kafka_sink, kafka_source, keyed_sink_message
from dataflows.windows import per_minute
from sinks.facts import Derived, sale_rows
from sinks.lake import keyed as lake_item
from sinks.views import answer_row, rows, stale_row, window_record, window_rows
from state.analytics import LATE, event_time, facts_of
from state.cart import view as cart_view
from state.common import Retired, Tombstone
from state.registry import AGGREGATES


def parse(record: Record):
    """("ok", (aggregate, envelope, event, fresh)), ("answer", row or None) for a command's result, or
    ("dead", output). `fresh` is False for what a replay reads before its `--since` point: it is folded
    (the state needs it), but neither its rows nor its answer are written."""
    if record.error:
        return ("dead", dead_letter("read_error", record.topic, record.key, record.value, record.error))
    if record.topic == RESULTS:
        try:
            result = msgspec.json.decode(record.value)
            if not isinstance(result.get("correlationId"), str):
                raise ValueError("a result names the command it answers (correlationId)")
            return ("answer", answer_row(result) if record.fresh and result.get("type") != REPEATED else None)
        except (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            return ("dead", dead_letter("undecodable_result", record.topic, record.key, record.value, str(err)))
    aggregate = record.topic.removesuffix(".events")
    try:
        envelope, event = read_event(record.value)
        return ("ok", (aggregate, envelope, event, record.fresh))
    except ValueError as err:
        return ("dead", dead_letter("undecodable_event", record.topic, record.key, record.value, str(err)))


def fold(held, item):
    """Apply an event once, in version order; duplicates and replays are skipped.

    Returns the new state and its outputs: ("view", (aggregate, state)) when it changed (and the event is
    fresh: a replay before its `--since` point folds without writing), ("fact", Fact) for each thing it
    adds to the per-minute windows, ("lake", Derived) for the `sales` rows of a fresh confirmation
    (sinks/facts.py), and ("dead", letter) with ("stale", Row) for what must not pass silently: a gap in the
    versions (applied, but reported: an event is missing from the log), an event `evolve` refuses
    (reported and skipped, so one bad event freezes one aggregate's views, never the whole projection), or
    an event after the aggregate retired. The `stale_aggregates` row marks the aggregate's views as suspect."""
    aggregate, envelope, event, fresh = item
    agg = AGGREGATES[aggregate]
    state = held if held is not None else agg.initial_state()
    if envelope.version is not None and envelope.version <= state.version:
        return state, []
    if isinstance(state, Tombstone):  # the decider takes no command for it any more: this cannot be
        return state, _suspect(aggregate, envelope, "after_retirement",
                               f"version {envelope.version} after retirement at {state.version}")
    if isinstance(event, Retired):  # finished: its rows stay as they are, and only its version is held here
        return Tombstone(version=envelope.version or state.version + 1, retired_at=event.retired_at), []
    try:
        folded = agg.evolve(state, event)
    except Exception as err:  # a bug or a broken invariant: keep what we have, say so, go on
        return state, _suspect(aggregate, envelope, "projection_failed", f"{type(err).__name__}: {err}")
    outputs = []
    if envelope.version is not None and envelope.version > state.version + 1:
        outputs.extend(_suspect(aggregate, envelope, "version_gap", f"version {envelope.version} after {state.version}"))
        folded = replace(folded, version=envelope.version)  # in step with the log again: replays are skipped
    facts = [("fact", f) for f in facts_of(aggregate, state, folded, event, event_time(envelope.occurred_at))]
    sold = sale_rows(envelope, event, folded) if aggregate == "order" and fresh else []
    lake = [("lake", Derived(tuple(sold)))] if sold else []
    views = [("view", (aggregate, folded))] if fresh else []
    return folded, [*views, *facts, *lake, *outputs]


class Folded(StatefulLogic):
    """`fold` as Bytewax's stateful logic for one aggregate. Unlike `stateful_map`, its snapshot hands
    the state over as it is, not deep-copied: states are frozen and `evolve` makes new ones, so the copy
    only cost time (one copy per aggregate touched in an epoch)."""

    def __init__(self, resume):
        self.state = resume

    def on_item(self, value) -> tuple[list, bool]:
        self.state, outputs = fold(self.state, value)
        return [outputs], StatefulLogic.RETAIN

    def snapshot(self):
        return self.state


def _suspect(aggregate: str, envelope, reason: str, error: str) -> list:
    """A dead letter for the event, and the aggregate marked stale from its version on."""
    return [("dead", dead_letter(reason, f"{aggregate}.events", envelope.key, envelope.encode(), error)),
            ("stale", stale_row(aggregate, envelope.key, envelope.version, reason, error, envelope.occurred_at))]


def keyed_views(kv):
    """A fold's outputs, each view output carrying its aggregate's key: ("view", (agg:id, (agg, state)))."""
    key, outputs = kv
    return [("view", (key, o[1])) if o[0] == "view" else o for o in outputs]


def latest_states(batch: list) -> list:
    """The newest state of each aggregate in a batch, at its last place: rows and cart views are made once
    per aggregate and batch, not once per event (the older ones would be no-ops at the sinks anyway).

    A buyer's cart aggregate moves on to a new cart (a new row) when the old one ends: the old cart's
    last state is kept too, or its final row (COMPLETED, EXPIRED) would never be written."""
    newest: dict = {}
    for _, (key, changed) in batch:
        ident = (key, getattr(changed[1], "cart_id", None))
        newest.pop(ident, None)
        newest[ident] = changed
    return list(newest.values())


def build_flow(source, view_sink, dead_sink, cart_sink, to_message=lambda output: output,
               lake_sink=None, windows_sink=None) -> Dataflow:
    """Events from `source` (Records) in; view rows (window rows too), dead letters, the cart cache, the lake
    and, with `windows_sink`, settled and late window figures as `analytics.windows` records out."""
    flow = Dataflow("buyit_project")
    records = op.input("read_events", flow, source)
    parsed = op.map("parse", records, parse)
    branch = op.branch("split_poison", parsed, lambda p: p[0] != "dead")
    kinds = op.branch("split_answers", branch.trues, lambda p: p[0] == "answer")
    answers = op.map("answer_rows", kinds.trues, lambda p: [p[1]] if p[1] is not None else [])
    events = op.map("unwrap", kinds.falses, lambda p: p[1])
    keyed = op.key_on("key_by_aggregate", events, lambda e: f"{e[0]}:{e[1].key}")  # (agg:id, item)
    folded = op.stateful("fold", keyed, Folded)  # (agg:id, [("view", (agg, state)) | ("dead", letter)])
    outputs = op.flat_map("outputs", folded, keyed_views)
    derived = op.branch("split_lake", outputs, lambda o: o[0] == "lake")
    if lake_sink is not None:  # every fresh event as read, duplicates included (the readers dedupe), and the sales
        fresh = op.filter("fresh_for_lake", events, lambda e: e[3])
        raw = op.map("to_lake", fresh, lambda e: lake_item(f"{e[0]}.events", (e[1], e[2])))  # (topic, (envelope, event))
        sold = op.map("sold_to_lake", derived.trues, lambda o: lake_item("order.events", o[1]))  # (topic, Derived)
        op.output("write_lake", op.merge("lake_items", raw, sold), lake_sink)
    counted = op.branch("split_facts", derived.falses, lambda o: o[0] == "fact")
    facts = op.map("unwrap_fact", counted.trues, lambda o: o[1])
    figures = per_minute(facts)  # WindowFigures
    split = op.branch("split_fold", counted.falses, lambda o: o[0] == "view")
    refused = op.branch("split_stale", split.falses, lambda o: o[0] == "stale")
    stale = op.map("stale_rows", refused.trues, lambda o: [o[1]])
    changed = op.flat_map_batch("changed", split.trues, latest_states)  # (agg, state)
    figure_rows = op.map("window_rows", figures, window_rows)
    view_rows = op.merge("views_windows_answers", op.map("to_rows", changed, lambda c: rows(*c)), figure_rows,
                         answers, stale)
    op.output("write_views", view_rows, view_sink)
    if windows_sink is not None:  # the topic carries settled figures: a closed window, or a late part
        settled = op.filter("settled", figures, lambda f: f.closed or f.part == LATE)
        op.output("write_windows", op.map("to_window_record", settled, lambda f: to_message(window_record(f))),
                  windows_sink)
    carts = op.filter_map("carts", changed, lambda c: cart_view(c[1]) if c[0] == "cart" else None)
    op.output("write_cart_cache", carts, cart_sink)
    poison = op.merge("all_poison", op.map("unwrap_poison", branch.falses, lambda p: p[1]),
                      op.map("unwrap_refused", refused.falses, lambda o: o[1]))
    op.output("write_dead_letters", op.map("to_message", poison, to_message), dead_sink)
    return flow


def kafka_flow() -> Dataflow:
    from buyit.settings import get_settings
    from sinks.cart_cache import CartCacheSink
    from sinks.lake import LakeSink, lake_dir
    from sinks.postgres import PostgresViewSink
    settings = get_settings()
    topics = [events_topic(name) for name in AGGREGATES] + [RESULTS]  # answers too: any API replica reads them
    views = PostgresViewSink(settings.database_url, rows_to_dead_letters(), settings.buyit_command_results_ttl_s)
    return build_flow(kafka_source(topics, batched=True), views,
                      kafka_sink(), CartCacheSink(settings.redis_url), lambda o: keyed_sink_message((o[1], o)),
                      LakeSink(lake_dir(settings.buyit_data_dir)), kafka_sink())


def rows_to_dead_letters():
    """Send view rows Postgres refused to `dead.letters`, so a poison event never stops the projection."""
    import json

    from confluent_kafka import Producer

    from buyit.settings import get_settings
    from buyit.clients import producer_config
    producer = Producer(producer_config(get_settings().brokers))

    def reject(rows, error: str) -> None:
        body = json.dumps({"reason": "view_rows_refused", "error": error[-2000:],
                           "rows": [{"table": r.table, "key": [str(r.values[k]) for k in r.key]} for r in rows]},
                          default=str)
        producer.produce("dead.letters", body.encode(errors="replace"))
        producer.flush(10)
    return reject
