"""Issue 11: shoppers keep shopping while the API, both dataflows, the broker and Postgres are killed
with `kill -9` at seeded moments and started again; then the audit holds every answer against the log.

`BUYIT_FAULTS_SEED` picks another run (the crash plan and every actor's choices follow from it).
"""

from __future__ import annotations

import os

import pytest

from tests.faults.chaos import KINDS, Chaos
from tests.faults.run import Report, run, say

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SEED = int(os.environ.get("BUYIT_FAULTS_SEED", "11"))

# Checks a crash of the decision dataflow still breaks (see `test_every_answer_is_applied_exactly_once`).
REPLAY_ORDER_DEPENDENT = ("identical duplicates", "contiguous versions", "2xx applied once", "payments settled once",
                          "stock adds up", "views equal a rebuild")


@pytest.fixture(scope="module")
def report(crash_stack) -> Report:
    chaos = Chaos(crash_stack, SEED, kills_per_kind=3, gap_s=(0.5, 2.5), down_s=(0.0, 1.5),
                  on_outage=lambda o: say(f"{o.kind} killed at {o.at:.0f}s, recovered in {o.recovered_s}"))
    done = run(crash_stack, SEED, chaos)
    print("\n" + "\n".join(done.lines()))
    return done


def test_every_part_is_crashed_recovers_and_every_request_is_answered(report):
    chaos, lines = report.chaos, "\n".join(report.lines())
    assert {k: sum(o.kind == k for o in chaos.outages) for k in KINDS} == {k: 3 for k in KINDS}, lines
    assert all(o.recovered_s is not None for o in chaos.outages), lines
    assert not chaos.crashed and not chaos.errors, lines  # nothing died that we had not killed
    assert report.answered_2xx > 50, lines
    for check in ("harness", "every request answered", "ledger balanced"):
        assert report.problems[check] == [], lines


@pytest.mark.xfail(strict=False, reason=(
    "A crash of the decision dataflow re-decides the commands after its last snapshot in another interleaving "
    "of its input topics than the first time, while what it had already written stays in Kafka: the same event "
    "ids with other bytes, two events under one version, answers contradicting the log, views skipping an "
    "event (see the fault-injection report)"))
def test_every_answer_is_applied_exactly_once(report):
    assert report.settled, "\n".join(report.lines())
    failed = {check: problems for check, problems in report.problems.items() if problems}
    assert failed == {}, "\n".join(report.lines())
