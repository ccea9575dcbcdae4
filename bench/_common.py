"""What the benchmarks share: a private stack, tokens, percentiles, plain tables, CPU accounting."""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import psutil

from buyit.identity import mint
from buyit.processes import free_port
from buyit.settings import Settings


def bench_settings(data_dir: Path, **overrides) -> Settings:
    """Like tests/conftest.py `test_settings`: free ports, its own Kafka; command wait left at its default."""
    values = dict(buyit_data_dir=data_dir, buyit_kafka_port=free_port(), buyit_kafka_controller_port=free_port(),
                  buyit_pg_port=free_port(),
                  buyit_redis_port=free_port(), buyit_stripe_port=free_port(), buyit_api_port=free_port())
    values.update(overrides)
    return Settings(**values)


@contextlib.contextmanager
def private_stack(prefix: str, keep: bool = False, services_only: bool = False, **overrides) -> Iterator:
    """Start a private stack (its own Kafka) under a temporary data dir; always stop it. `services_only`:
    the broker and stores without dataflows or API."""
    from buyit.stack import Stack
    data = Path(tempfile.mkdtemp(prefix=f"buyit-bench-{prefix}-"))
    stack = Stack(bench_settings(data, **overrides), api=not services_only, dataflows=not services_only)
    started = time.monotonic()
    print(f"starting a private stack in {data} ...", file=sys.stderr, flush=True)

    def terminated(signum, frame):  # `timeout`, kill: unwind so the stack below is stopped too
        raise SystemExit(128 + signum)
    previous = {sig: signal.signal(sig, terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        stack.start()
        print(f"stack up in {time.monotonic() - started:.1f}s"
              + ("" if services_only else f" (API on :{stack.settings.buyit_api_port})"), file=sys.stderr, flush=True)
        yield stack
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if keep:
            print(f"kept {data} (logs in {data / 'logs'})", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


def api_url(stack) -> str:
    return f"http://127.0.0.1:{stack.settings.buyit_api_port}"


def token(stack, role: str, user_id: str | None = None) -> tuple[str, str]:
    user_id = user_id or f"bench-{role.lower()}-{uuid.uuid4().hex[:10]}"
    return user_id, mint(stack.settings, user_id, role)


def wait_until(probe, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        time.sleep(interval)


def create_product(http: httpx.Client, sku: str, units: int | None = None) -> str:
    """An ACTIVE product of the seller `http` speaks for; its stock set to `units` if given. Returns its id."""
    r = http.post("/api/catalog/products", json={"sku": sku, "name": f"Bench {sku}", "priceCents": 1000,
                                                 "currency": "USD", "status": "ACTIVE"})
    if r.status_code != 201:
        raise RuntimeError(f"creating the product: {r.status_code} {r.text}")
    pid = r.json()["productId"]
    wait_until(lambda: http.get(f"/api/inventory/stock/{pid}").status_code == 200, 20, "stock created")
    if units is not None:
        r = http.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": units})
        if r.status_code != 200:
            raise RuntimeError(f"setting stock: {r.status_code} {r.text}")
        wait_until(lambda: http.get(f"/api/inventory/availability/{pid}").json()["availableQuantity"] == units,
                   20, "availability listed")
    return pid


# --- figures ---

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(seconds: list[float]) -> dict:
    v = sorted(s * 1000 for s in seconds)
    return {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95), "p99": percentile(v, 99),
            "mean": (sum(v) / len(v)) if v else float("nan"), "max": v[-1] if v else float("nan")}


def table(headers: list[str], rows: list[list]) -> str:
    """A short plain-text table; floats with one decimal."""
    def fmt(x):
        if isinstance(x, float):
            return "nan" if math.isnan(x) else f"{x:.1f}"
        return str(x)
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda cols: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


# --- CPU accounting, per started process (with its descendants) ---

def cpu_seconds(stack) -> dict[str, float]:
    """user+system CPU seconds so far of each child the stack started (descendants included) and of us."""
    out: dict[str, float] = {}
    for child in stack.supervisor.children:
        total = 0.0
        try:
            root = psutil.Process(child.process.pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        except psutil.Error:
            pass
        out[child.name] = total
    t = psutil.Process().cpu_times()
    out["bench client (this process)"] = t.user + t.system
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def log_lines(stack, patterns=("ERROR", "Error", "error", "Traceback", "WARNING", "Exception", "timed out"),
              limit: int = 20, ignore=("overcommit",)) -> list[str]:
    """Lines of the stack's logs that look like trouble (at most `limit` per file)."""
    found = []
    for log in sorted((stack.data / "logs").glob("*.log")):
        hits = [line for line in log.read_text(errors="replace").splitlines()
                if any(p in line for p in patterns) and not any(x in line for x in ignore)]
        if hits:
            found.append(f"{log.name}: {len(hits)} matching lines; first ones:")
            found.extend(f"  {line[:300]}" for line in hits[:limit])
    return found


def tree_cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process and its descendants, the children it already reaped
    included (Postgres' short-lived workers)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total
