"""The one stateful operator every aggregate runs in: decide, evolve, remember, and keep timers."""

from __future__ import annotations

import logging
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulLogic

from buyit.envelope import (DEAD_LETTERS, REPEATED, RESULTS, Envelope, command_envelope, commands_topic,
                            events_topic, fingerprint, to_wire)
from state.common import Aggregate, Expire, Rejection, Stamp, derived_id, type_name
from state.registry import AGGREGATES

log = logging.getLogger(__name__)

# How many recent command ids each aggregate remembers for idempotent retries.
RECENT_COMMANDS = 512

# How long an expiry asked for may go undecided before it is asked for again (a record lost on its way).
ASK_AGAIN_S = 30

Output = tuple[str, str, bytes]  # (topic, key, value)


@dataclass
class Slot:
    """An aggregate's state plus the recent commands it answered (id -> (fingerprint, result))."""

    aggregate: str
    key: str
    state: Any
    recent: OrderedDict = field(default_factory=OrderedDict)
    # The Expire asked for and not decided yet: (command id, deadline, when asked). Older snapshots lack it.
    asked: tuple[str, datetime, datetime] | None = None


def result_envelope(command: Envelope, rejection: Rejection | None, body: dict | None, now: str) -> Envelope:
    """The answer to the request that started `command`'s chain, keyed by that request's id."""
    payload: dict = {"ok": rejection is None, "status": 200 if rejection is None else rejection.status,
                     "commandType": command.type, "body": body}
    if rejection is not None:
        payload.update(error=rejection.code, message=rejection.message, details=rejection.details)
    return Envelope(event_id=derived_id(command.event_id, "result"),
                    type="CommandRejected" if rejection else "CommandSucceeded",
                    key=command.correlation_id, occurred_at=now, correlation_id=command.correlation_id,
                    causation_id=command.event_id, version=None, payload=payload,
                    requested_by=command.requested_by)


def dead_letter(reason: str, topic: str, key: str | None, value: bytes | None, error: str) -> Output:
    """A record we could not process, kept with why, so nothing is silently dropped."""
    import json
    body = {"reason": reason, "topic": topic, "key": key, "error": error[-4000:],
            "value": (value or b"").decode("utf-8", "replace")[:100_000],
            "at": datetime.now(UTC).isoformat()}
    return (DEAD_LETTERS, key or "", json.dumps(body).encode())


class DeciderLogic(StatefulLogic):
    """Runs any `state/` decider for one key; see STYLE.md "One generic stateful operator"."""

    def __init__(self, resume: Slot | None, clock=lambda: datetime.now(UTC)):
        self.slot = resume
        self.clock = clock  # timers pass their own `now` in; a simulation passes a fake clock

    # --- Bytewax callbacks ---

    def on_item(self, value: tuple[str, Envelope]) -> tuple[list[Output], bool]:
        aggregate_name, envelope = value
        if self.slot is None:
            agg = AGGREGATES[aggregate_name]
            self.slot = Slot(aggregate=aggregate_name, key=envelope.key, state=agg.initial_state())
        if self.slot.asked is not None and self.slot.asked[0] == envelope.event_id:
            self.slot.asked = None
        return self._handle(envelope), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Output], bool]:
        """A deadline passed: ask for an `Expire` through the aggregate's own command topic.

        Deciding here would put the expiry wherever the timer happened to fire among the commands; a
        replay would fire elsewhere, with another `now`, and decide differently. In the log, the expiry
        has a place and a `now` that every replay reads back.
        """
        due = self._aggregate.deadline(self.slot.state)
        if due is None:
            return [], StatefulLogic.RETAIN
        now = self.clock()
        # One id per firing, so two firings never share event ids: a firing re-asked after a crash carries
        # another `now`, and the version tells apart two firings in the same instant.
        command = Expire(command_id=derived_id(self.slot.key, f"expire/{now.isoformat()}/{self.slot.state.version}"),
                         now=now)
        self.slot.asked = (command.command_id, due, now)
        topic = commands_topic(self._aggregate.name)
        return [(topic, self.slot.key, command_envelope(command, self.slot.key).encode())], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.slot is None:
            return None
        due = self._aggregate.deadline(self.slot.state)
        asked = self.slot.asked
        if due is not None and asked is not None and asked[1] == due:  # on its way: ask again only if lost
            return asked[2] + timedelta(seconds=ASK_AGAIN_S)
        return due

    def snapshot(self) -> Slot:
        return self.slot

    # --- deciding ---

    @property
    def _aggregate(self) -> Aggregate:
        return AGGREGATES[self.slot.aggregate]

    def _handle(self, envelope: Envelope) -> list[Output]:
        slot, agg = self.slot, self._aggregate
        remembered = slot.recent.get(envelope.event_id)
        if remembered is not None:
            fp, answer = remembered
            if fp == fingerprint(envelope.payload):  # a retry: answer again, decide nothing new
                # No answer the first time: a later step of its chain gives it (a cart add is answered once
                # inventory reserved or refused). Saying "ok" now would pre-empt that answer, and be wrong
                # when it is a refusal (found by tests/faults: an add told 201 whose units were refused); saying
                # nothing left the retry waiting out its whole wait. "A repeat" sends it to the first answer.
                return [answer] if answer else [self._repeated(envelope)]
            rejection = Rejection("idempotency_conflict",
                                  "this idempotency key was already used for a different request", 422)
            return [self._answer(envelope, rejection, None)]
        try:
            command = envelope.message()
        except ValueError as err:
            return [dead_letter("undecodable_command", commands_topic(agg.name), envelope.key,
                                envelope.encode(), str(err)),
                    self._answer(envelope, Rejection("invalid", f"malformed command: {err}", 422), None)]
        try:
            outcome = agg.decide(slot.state, command)
            if isinstance(outcome, Rejection):
                outputs = [self._answer(envelope, outcome, None)]
                self._remember(envelope, outputs[0])
                return outputs
            state = slot.state
            for event in outcome:
                state = agg.evolve(state, event)
            outputs = self._publish(envelope, command, outcome, state)
        except Exception:  # a bug in a decider: keep the state, keep the record, keep running
            log.exception("decider %s failed on %s", agg.name, envelope.type)
            return [dead_letter("decider_failed", commands_topic(agg.name), envelope.key, envelope.encode(),
                                traceback.format_exc()),
                    self._answer(envelope, Rejection("internal", "the request could not be processed", 500),
                                 None)]
        slot.state = state
        return outputs

    def _publish(self, envelope: Envelope, command, events: list, state) -> list[Output]:
        agg, out = self._aggregate, []
        version = state.version - len(events)
        for index, event in enumerate(events):
            version += 1
            event_env = Envelope(event_id=derived_id(envelope.event_id, f"event/{index}"),
                                 type=type_name(event), key=self.slot.key, occurred_at=command.now.isoformat(),
                                 correlation_id=envelope.correlation_id, causation_id=envelope.event_id,
                                 version=version, payload=to_wire(event))
            out.append((events_topic(agg.name), self.slot.key, event_env.encode()))
            stamp = Stamp(now=command.now, cause_id=event_env.event_id)
            for target, key, follow_up in agg.react(event, state, stamp):
                follow_env = command_envelope(follow_up, key, envelope.correlation_id, event_env.event_id,
                                              envelope.requested_by)
                out.append((commands_topic(target), key, follow_env.encode()))
        refusals = [r for e in events if (r := getattr(e, "rejection", lambda: None)()) is not None]
        answer = None
        if refusals:
            answer = self._answer(envelope, refusals[0], agg.view(state))
        elif (not events and envelope.causation_id is None) or any(type(e).settles for e in events):
            # a saga step that decides nothing (a redelivery, a no-op) is no answer to the request that
            # started the chain: in a cluster it could reach the caller before the step that answers
            answer = self._answer(envelope, None, agg.view(state))
        if answer:
            out.append(answer)
        self._remember(envelope, answer)
        return out

    def _answer(self, envelope: Envelope, rejection: Rejection | None, body: dict | None) -> Output:
        result = result_envelope(envelope, rejection, body, datetime.now(UTC).isoformat())
        return (RESULTS, envelope.correlation_id, result.encode())

    def _repeated(self, envelope: Envelope) -> Output:
        """Not an answer: "this request was taken already; its answer is (or will be) the first one's"."""
        result = result_envelope(envelope, None, None, datetime.now(UTC).isoformat())
        repeated = replace(result, event_id=derived_id(envelope.event_id, "repeated"), type=REPEATED)
        return (RESULTS, envelope.correlation_id, repeated.encode())

    def _remember(self, envelope: Envelope, answer: Output | None) -> None:
        recent = self.slot.recent
        recent[envelope.event_id] = (fingerprint(envelope.payload), answer)
        while len(recent) > RECENT_COMMANDS:
            recent.popitem(last=False)
