"""Chaos: shoppers shop for N minutes while the API, both dataflows, the broker and Postgres are killed
with `kill -9` at seeded moments and started again; then the audit of tests/faults.

    python -m bench.chaos [--minutes 20] [--seed 11] [--keep]

Prints the requests made, the kills per kind and how long each took to recover (until /health answers
and the projection writes again), and each audit check's result. Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import sys

from bench._common import private_stack
from tests.faults.chaos import Chaos
from tests.faults.conftest import SHORT_TTLS
from tests.faults.run import run, say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    args = parser.parse_args(argv)
    with private_stack("chaos", keep=args.keep, buyit_command_wait_s=10.0, **SHORT_TTLS) as stack:
        chaos = Chaos(stack, args.seed, kills_per_kind=None, gap_s=(1.0, 6.0), down_s=(0.0, 2.0),
                      on_outage=lambda o: say(f"{o.kind} killed at {o.at:.0f}s, recovered in "
                                              f"{'-' if o.recovered_s is None else f'{o.recovered_s:.1f}s'}"))
        report = run(stack, args.seed, chaos, minutes=args.minutes)
    print("\n".join(report.lines()))
    failed = any(report.problems.values()) or chaos.crashed or not report.settled
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
