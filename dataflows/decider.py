"""The one stateful operator every aggregate runs in: decide, evolve, remember, and keep timers."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulLogic

from buyit.envelope import (DEAD_LETTERS, REPEATED, RESULTS, Envelope, command_envelope, commands_topic,
                            events_topic, fingerprint, to_wire)
from buyit.settings import get_settings
from dataflows.remembered import Remembered
from state.common import Aggregate, Expire, Rejection, Retire, Retired, Stamp, Tombstone, derived_id, type_name
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
    recent: Remembered = field(default_factory=lambda: Remembered(RECENT_COMMANDS))
    # The Expire (or Retire) asked for and not decided yet: (command id, when due, when asked).
    asked: tuple[str, datetime, datetime] | None = None
    # In the dataflow, the timer step keeps the deadline (dataflows/timers.py): the one it was last told, as
    # (due, "expire" or "retire"). False: a slot restored from an older build, which keeps its own timer.
    told: tuple[datetime, str] | None = None
    by_timer_step: bool = False


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

    # How long a finished aggregate stays live before it retires (`BUYIT_RETAIN_FINISHED_S`), and how long
    # its tombstone is kept after that (`BUYIT_FORGET_RETIRED_S`): then nothing at all is held for it.
    retain = timedelta(seconds=get_settings().buyit_retain_finished_s)
    forget = timedelta(seconds=get_settings().buyit_forget_retired_s)

    def __init__(self, resume: Slot | None, clock=lambda: datetime.now(UTC)):
        if resume is not None and not isinstance(resume.recent, Remembered):  # a snapshot of an older build
            resume.recent = Remembered.of(RECENT_COMMANDS, resume.recent.items())
        self.slot = resume
        self.clock = clock  # timers pass their own `now` in; a simulation passes a fake clock
        self._forgotten = False

    # --- Bytewax callbacks ---

    def on_item(self, value: tuple[str, Envelope]) -> tuple[list[Output], bool]:
        aggregate_name, envelope = value
        if self.slot is None:
            agg = AGGREGATES[aggregate_name]
            self.slot = Slot(aggregate=aggregate_name, key=envelope.key, state=agg.initial_state())
        if self.slot.asked is not None and self.slot.asked[0] == envelope.event_id:
            self.slot.asked = None
        outputs = self._handle(envelope)
        if self._forgotten or self.slot.state.version == 0:  # nothing (more) to hold: a probe, a refusal, or
            return outputs, StatefulLogic.DISCARD              # a tombstone whose time is up
        return outputs, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Output], bool]:
        """A deadline passed: ask for an `Expire` (or, for a finished aggregate, a `Retire`) through the
        aggregate's own command topic.

        Deciding here would put the expiry wherever the timer happened to fire among the commands; a
        replay would fire elsewhere, with another `now`, and decide differently. In the log, the expiry
        has a place and a `now` that every replay reads back.
        """
        timer = self._timer()
        if timer is None:
            return [], StatefulLogic.RETAIN
        due, kind = timer
        now = self.clock()
        # One id per firing, so two firings never share event ids: a firing re-asked after a crash carries
        # another `now`, and the version tells apart two firings in the same instant.
        label = "expire" if kind is Expire else "retire"
        command = kind(command_id=derived_id(self.slot.key, f"{label}/{now.isoformat()}/{self.slot.state.version}"),
                       now=now)
        self.slot.asked = (command.command_id, due, now)
        topic = commands_topic(self._aggregate.name)
        return [(topic, self.slot.key, command_envelope(command, self.slot.key).encode())], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        timer = self._timer() if self.slot is not None else None
        if timer is None:
            return None
        due, asked = timer[0], self.slot.asked
        if asked is not None and asked[1] == due:  # on its way: ask again only if lost
            return asked[2] + timedelta(seconds=ASK_AGAIN_S)
        return due

    def _timer(self) -> tuple[datetime, type] | None:
        """(when, Expire or Retire) of the earliest thing due, or None."""
        state, agg = self.slot.state, self._aggregate
        if isinstance(state, Tombstone):
            return state.retired_at + self.forget, Retire
        due = agg.deadline(state)
        finished = agg.finished(state)
        if finished is not None and (due is None or finished + self.retain < due):
            return finished + self.retain, Retire
        return (due, Expire) if due is not None else None

    def snapshot(self) -> Slot:
        return self.slot

    # --- deciding ---

    @property
    def _aggregate(self) -> Aggregate:
        return AGGREGATES[self.slot.aggregate]

    def _handle(self, envelope: Envelope) -> list[Output]:
        slot, agg = self.slot, self._aggregate
        if isinstance(slot.state, Tombstone):
            return self._after_retirement(envelope)
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
        if isinstance(command, Retire):
            return self._retire(envelope, command)
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

    def _retire(self, envelope: Envelope, command: Retire) -> list[Output]:
        """Retire the aggregate if it is ready to: its finished time plus `retain` has passed (its own timer),
        or it is settled (asked by its owner). Its events stay in the log and its rows in the views; what
        stays here is a `Tombstone`. Not ready (something happened since it was asked): nothing."""
        slot, agg = self.slot, self._aggregate
        finished = agg.finished(slot.state)
        ready = agg.settled(slot.state) if command.by_owner else (
            finished is not None and finished + self.retain <= command.now)
        if not ready:
            return self._publish(envelope, command, [], slot.state)
        retired = Retired(retired_at=command.now)
        state = agg.evolve(slot.state, retired)
        outputs = self._publish(envelope, command, [retired], state)
        slot.state, slot.asked = Tombstone(version=state.version, retired_at=command.now), None
        slot.recent.clear()
        return outputs

    def _after_retirement(self, envelope: Envelope) -> list[Output]:
        """A retired aggregate takes no more commands: its own timers' and owners' are let go (its own, once
        `forget` has passed, forgets it altogether), anything else is refused (a late duplicate of what it
        already did, a request long after it finished)."""
        if envelope.type in (type_name(Retire), type_name(Expire)):
            try:
                command = envelope.message()
            except ValueError:  # a malformed timer record: nothing to do for a tombstone either way
                return []
            if isinstance(command, Retire) and not command.by_owner:
                self._forgotten = command.now >= self.slot.state.retired_at + self.forget
            return []
        return [self._answer(envelope, Rejection(
            "invalid_transition", f"this {self._aggregate.name} is finished and no longer takes commands", 409,
            {"retiredAt": self.slot.state.retired_at.isoformat()}), None)]

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
        self.slot.recent.add(envelope.event_id, (fingerprint(envelope.payload), answer))
