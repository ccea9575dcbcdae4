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


# Checks of bugs found and still open (each has its xfail test below).
OPEN = ("order-dependent views equal a rebuild",)


@pytest.fixture(scope="module")
def report(crash_stack) -> Report:
    # Two parts die in the same instant: 15 kills in 8 outages, which keeps `make test` under 10 minutes
    # (and a broker dying with Postgres, or the API with a dataflow, is a case of its own).
    chaos = Chaos(crash_stack, SEED, kills_per_kind=3, together=2, gap_s=(0.2, 0.8), down_s=(0.0, 0.5),
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


def test_every_answer_is_applied_exactly_once(report):
    assert report.settled, "\n".join(report.lines())
    failed = {check: problems for check, problems in report.problems.items()
              if problems and check not in OPEN}
    assert failed == {}, "\n".join(report.lines())


@pytest.mark.xfail(strict=False, reason=(
    "open: views that depend on the order the projection reads its topics in. After crashes of the projection "
    "a minute's window sums may differ from a rebuild by a fact (cart_funnel_minutes.paid 32 live, 33 rebuilt, "
    "seed 11): the on-time/late split and the fact-count version guard of window rows follow arrival order. "
    "(A two-currency seller's payable account row, the other case seen, now takes the earliest posting's "
    "currency whatever the read order.)"))
def test_the_order_dependent_views_equal_a_rebuild(report):
    assert report.problems["order-dependent views equal a rebuild"] == [], "\n".join(report.lines())


def test_every_accepted_request_is_answered_in_the_end(report):
    """A cart add or change whose units came back after its cart moved on was never answered (the cart ignored
    the confirmation; seen once in seven runs of seed 11): it is now answered 409 cart_changed."""
    assert report.problems["every accepted request answered"] == [], "\n".join(report.lines())
