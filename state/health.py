"""A no-op aggregate: `Ping` proves commands flow end to end (API, broker, decider, results)."""

from dataclasses import dataclass

from state.common import Aggregate, Command, Event, Rejection, message


@message
class Ping(Command):
    pass


@dataclass(frozen=True)
class Health:
    version: int = 0


def decide(state: Health, command: Command) -> list[Event] | Rejection:
    return []


AGGREGATE = Aggregate("health", Health, decide, lambda state, event: state, lambda state: {"status": "ok"})
