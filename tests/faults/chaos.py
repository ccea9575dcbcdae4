"""The harness's fault injector: `kill -9` one part of a running stack at a seeded moment, start it again,
and time how long until the system answers end to end again."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import psycopg

# What a crash is injected into: the API, the decision and projection dataflows, the broker, Postgres.
KINDS = ("api", "dataflow-decide", "dataflow-project", "kafka", "postgres")


@dataclass
class Outage:
    kind: str
    at: float  # seconds since the run began
    down_s: float  # how long it was left dead
    listening_s: float  # kill -> the restarted process listens (or, for a dataflow, is started)
    recovered_s: float | None  # kill -> /health answers 200 and the projection writes views again


@dataclass
class Chaos:
    """Crashes `kinds` in a seeded order until `stop` (or `kills_per_kind` of each), `together` different
    kinds at a time (2: two parts die in the same instant, and the outages are half as many)."""

    stack: object
    seed: int
    kills_per_kind: int | None = 3  # None: keep going until stopped
    gap_s: tuple[float, float] = (1.0, 5.0)  # calm between a recovery and the next crash
    down_s: tuple[float, float] = (0.0, 3.0)
    kinds: tuple[str, ...] = KINDS
    together: int = 1
    recover_timeout_s: float = 120
    outages: list[Outage] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)  # children found dead that we had not killed
    errors: list[str] = field(default_factory=list)
    on_outage: object = None  # called with each Outage (progress for a long run)

    def __post_init__(self):
        self.rng = random.Random(f"chaos/{self.seed}")
        self.began = time.monotonic()

    def run(self, until: float | None = None) -> None:
        """Crash, restart, wait for recovery, over and over, until the plan is done or `until` (monotonic).

        Runs on the caller's thread, on purpose: a child's parent-death signal fires when the *thread*
        that started it exits, so a process restarted from a short-lived thread dies with that thread."""
        try:
            for group in self._schedule():
                if until is not None and time.monotonic() + self.gap_s[1] > until:
                    return
                time.sleep(self.rng.uniform(*self.gap_s))
                for outage in self.crash(*group):
                    self.outages.append(outage)
                    if self.on_outage:
                        self.on_outage(outage)
                self.revive_the_fallen()
        except Exception as err:  # reported with the audit, not lost
            self.errors.append(f"{type(err).__name__}: {err}")

    def _schedule(self):
        """Groups of up to `together` different kinds: `kills_per_kind` of each kind in a seeded order;
        without it, round after round of every kind, each round in a seeded order (so a short run still
        crashes every kind)."""
        if self.kills_per_kind is not None:
            plan = [k for k in self.kinds for _ in range(self.kills_per_kind)]
            self.rng.shuffle(plan)
            while plan:
                group: list[str] = []
                for kind in list(plan):
                    if kind not in group and len(group) < self.together:
                        group.append(kind)
                        plan.remove(kind)
                yield tuple(group)
            return
        while True:
            order = self.rng.sample(self.kinds, len(self.kinds))
            yield from (tuple(order[i:i + self.together]) for i in range(0, len(order), self.together))

    def crash(self, *kinds: str) -> list[Outage]:
        """Kill `kinds` in the same instant, start them again (the broker and Postgres first), and time it."""
        down = self.rng.uniform(*self.down_s)
        killed, since = time.monotonic(), datetime.now(UTC)
        self.stack.restart(*sorted(kinds, key=lambda k: k not in ("kafka", "postgres")), down_s=down)
        listening = time.monotonic() - killed
        recovered = self.wait_recovered(since)
        return [Outage(kind, killed - self.began, down, listening, None if recovered is None else recovered - killed)
                for kind in kinds]

    def wait_recovered(self, since: datetime) -> float | None:
        """When /health (a command's round trip) answers 200 and the projection has recorded an answer
        given after `since`; None if not within the timeout."""
        url = f"http://127.0.0.1:{self.stack.settings.buyit_api_port}/health"
        deadline = time.monotonic() + self.recover_timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=10).status_code == 200 and _answers_recorded_since(self.stack, since):
                    return time.monotonic()
            except (httpx.HTTPError, psycopg.Error):
                pass
            time.sleep(0.2)
        return None

    def revive_the_fallen(self) -> None:
        """A part that died on its own (not killed here) is a finding: note it, and start it again so the
        run can go on."""
        for child in list(self.stack.supervisor.children):
            if child.process.poll() is not None:
                self.crashed.append(f"{child.name} exited with {child.process.returncode} "
                                    f"at {time.monotonic() - self.began:.0f}s")
                self.stack.supervisor.relaunch(child.name)


def _answers_recorded_since(stack, since: datetime) -> bool:
    with psycopg.connect(stack.env["DATABASE_URL"], connect_timeout=3) as conn:
        row = conn.execute("SELECT max(answered_at) FROM command_results").fetchone()
    return row[0] is not None and row[0] >= since


def figures(chaos: Chaos) -> dict:
    """Kills, recoveries and time to recover per kind."""
    out = {}
    for kind in chaos.kinds:
        mine = [o for o in chaos.outages if o.kind == kind]
        times = sorted(o.recovered_s for o in mine if o.recovered_s is not None)
        out[kind] = {"kills": len(mine), "recovered": len(times),
                     "recover_s_median": times[len(times) // 2] if times else None,
                     "recover_s_max": times[-1] if times else None}
    return out
