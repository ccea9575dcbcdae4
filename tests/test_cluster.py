"""Scale-out on the same engine: the cart and checkout API tests pass against 4 partitions, a
two-process Bytewax cluster for the decision dataflow and two API processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent


def test_cart_and_checkout_pass_against_a_two_process_cluster():
    report = Path(tempfile.mkdtemp(prefix="buyit-cluster-")) / "cluster.json"
    env = {**os.environ, "BUYIT_TEST_CLUSTER": "1", "BUYIT_TEST_CLUSTER_REPORT": str(report)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_cart_api.py", "tests/test_checkout_api.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail
    seen = json.loads(report.read_text())
    assert sorted(p for p in seen["processes"] if p.startswith("dataflow-decide")) == [
        "dataflow-decide-0", "dataflow-decide-1"], seen
    assert len(seen["apiPorts"]) == 2 and len(set(seen["apiPorts"])) == 2, seen
    assert seen["partitions"] == {"cart.commands": 4, "command.results": 4}, seen
