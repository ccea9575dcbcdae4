"""One fault-injection run: the workload and the crashes together, then quiet, then the audit."""

from __future__ import annotations

import sys
from collections import Counter
import time
from dataclasses import dataclass

import psycopg

from tests.faults import audit
from tests.faults.chaos import Chaos, figures
from tests.faults.workload import Workload


@dataclass
class Report:
    seed: int
    seconds: float
    requests: int
    answered_2xx: int
    retried: int  # requests that needed more than one attempt
    chaos: Chaos
    answers: dict  # (kind, final status) -> how many
    settled: bool  # every hold released, expired or sold once the crashes stopped
    problems: dict[str, list[str]]

    def lines(self) -> list[str]:
        out = [f"seed {self.seed}: {self.requests} requests in {self.seconds:.0f}s ({self.answered_2xx} answered 2xx, "
               f"{self.retried} retried), {len(self.chaos.outages)} crashes, settled: {self.settled}"]
        by_kind: dict = {}
        for (kind, status), n in sorted(self.answers.items()):
            by_kind.setdefault(kind, []).append(f"{status}:{n}")
        out += [f"  requests {kind:9} {' '.join(v)}" for kind, v in by_kind.items()]
        for kind, f in figures(self.chaos).items():
            out.append(f"  {kind:17} kills {f['kills']}  recovered {f['recovered']}  "
                       f"time to recover median {_s(f['recover_s_median'])} max {_s(f['recover_s_max'])}")
        out += [f"  died on their own: {c}" for c in self.chaos.crashed]
        out += [f"  harness error: {e}" for e in self.chaos.errors]
        for check, problems in self.problems.items():
            out.append(f"  audit {check}: {'ok' if not problems else f'{len(problems)} problems'}")
            out += [f"    {p}" for p in problems[:10]]
        return out


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def settle(stack, timeout: float = 90) -> bool:
    """Wait until no unit is held any more (every hold sold, released or lapsed): the short TTLs end them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(stack.env["DATABASE_URL"], connect_timeout=3) as conn:
                held = conn.execute("SELECT coalesce(sum(reserved_quantity + allocated_quantity), 0) FROM stock"
                                    ).fetchone()[0]
            if held == 0:
                return True
        except psycopg.Error:
            pass
        time.sleep(0.5)
    return False


def say(line: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def run(stack, seed: int, chaos: Chaos, minutes: float | None = None, sellers: int = 2, buyers: int = 6) -> Report:
    """Shop while `chaos` crashes things: until it has done its kills, or for `minutes`."""
    began = time.monotonic()
    workload = Workload(stack, seed, sellers, buyers)
    workload.start()
    chaos.run(until=None if minutes is None else began + minutes * 60)
    say(f"crashes done after {time.monotonic() - began:.0f}s: {len(chaos.outages)}")
    workload.finish()
    say(f"shoppers done after {time.monotonic() - began:.0f}s: {len(workload.market.calls)} requests")
    chaos.revive_the_fallen()
    settled = settle(stack)
    chaos.revive_the_fallen()
    say(f"settled ({settled}) after {time.monotonic() - began:.0f}s; auditing")
    calls = workload.market.calls
    problems = audit.everything(stack, calls)
    problems["harness"] = workload.errors + chaos.errors
    return Report(seed, time.monotonic() - began, len(calls), sum(c.ok for c in calls),
                  sum(c.attempts > 1 for c in calls), chaos, Counter((c.kind, c.status) for c in calls), settled,
                  problems)
