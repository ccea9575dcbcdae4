"""Test helpers: waiting on conditions with a deadline, minting tokens, a tiny PNG."""

from __future__ import annotations

import base64
import time
from typing import Callable, TypeVar

T = TypeVar("T")

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def eventually(probe: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    """Call `probe` until it returns something truthy without raising; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except AssertionError as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what or probe}; last: {last!r}")
        time.sleep(interval)
