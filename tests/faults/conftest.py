"""A private stack for fault injection: its parts are crashed, so no other test may share it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import test_settings

# Holds lapse within seconds, so expiries happen during the run and everything is settled soon after.
SHORT_TTLS = dict(buyit_soft_reservation_ttl_s=4, buyit_cart_ttl_s=6, buyit_hard_reservation_ttl_s=8)


@pytest.fixture(scope="module")
def crash_stack():
    from buyit.stack import Stack
    data = Path(tempfile.mkdtemp(prefix="buyit-faults-"))
    running = Stack(test_settings(data, **SHORT_TTLS)).start()
    yield running
    running.stop()
    kept = Path(tempfile.gettempdir()) / f"{data.name}-logs"
    shutil.copytree(data / "logs", kept, dirs_exist_ok=True)  # what each part said, for a failure's report
    print(f"\nthe crashed stack's logs: {kept}")
    shutil.rmtree(data, ignore_errors=True)
