"""Issue 11: shoppers keep shopping while the API, both dataflows, the broker and Postgres are killed
with `kill -9` at seeded moments and started again; then the audit finds every answer applied once."""

from __future__ import annotations

import os

import pytest

from tests.faults.chaos import KINDS, Chaos
from tests.faults.run import run, say

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SEED = int(os.environ.get("BUYIT_FAULTS_SEED", "11"))


def test_every_answer_survives_crashes_of_every_part(crash_stack):
    chaos = Chaos(crash_stack, SEED, kills_per_kind=3, gap_s=(0.5, 2.5), down_s=(0.0, 1.5),
                  on_outage=lambda o: say(f"{o.kind} killed at {o.at:.0f}s, recovered in {o.recovered_s}"))
    report = run(crash_stack, SEED, chaos)
    print("\n".join(report.lines()))
    assert {k: sum(o.kind == k for o in chaos.outages) for k in KINDS} == {k: 3 for k in KINDS}, report.lines()
    assert all(o.recovered_s is not None for o in chaos.outages), report.lines()
    assert not chaos.crashed, report.lines()
    assert report.settled, report.lines()
    assert report.answered_2xx > 50, report.lines()
    assert {check: p for check, p in report.problems.items() if p} == {}, "\n".join(report.lines())
