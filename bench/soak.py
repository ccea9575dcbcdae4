"""Soak: `buyit demo`'s shoppers against a durable private stack for a long while; does it hold up?

    python -m bench.soak [--minutes 30] [--report-every 60] [--seed 1] [--keep]
    python -m bench.soak --idle-seconds 60 [--settle 30] [--report-every 60] [--keep]

Soak: the simulated sellers and shoppers of `buyit demo` (buyit/demo.py `Shoppers`, one thread,
paying on localstripe) run against a private stack with the default durable Kafka for `--minutes`,
while a second thread GETs /health 4 times a second on a fixed beat (each probe is a command's
whole round trip: API -> Kafka -> decide -> results, plus a Postgres query). Every
`--report-every` seconds one row: the requests shoppers made in that interval by status class,
/health latency p50/p99 (failed probes are counted, with the time they took), and the CPU each
process of the stack used (its descendants, and the ones it already reaped, included) as % of
one core; `bench` is this process (shoppers and probe).

Verdict: the requests of the last 5 minutes over those of the first 5 (the last half over the
first half when `--minutes` is under 10) must be >= 0.90, and the worst interval's /health p99
must be <= 50 ms; exit status 1 when either fails (2 when a process of the stack dies).

Idle (`--idle-seconds N`): start the stack and send nothing; after `--settle` seconds (a stack
just started is not idle yet: the JVM is still compiling Kafka's hot paths, consumers are joining
their groups; that first row is shown but not judged), the CPU each process used, per interval and
over the whole N seconds. Goal: the stack under 5% of one core in total; exit status 1 above it.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import sys
import threading
import time

import httpx
import psutil

from bench._common import api_url, log_lines, percentile, private_stack, tree_cpu_seconds
from buyit.demo import Shoppers
from buyit.processes import ChildDied

MIN_RATIO, MAX_HEALTH_P99_MS, MAX_IDLE_PERCENT = 0.90, 50.0, 5.0
WINDOW_S = 5 * 60  # the verdict compares the first and the last 5 minutes of a run this long or longer
CLASSES = ("2xx", "4xx", "5xx", "err")
BENCH = "bench"


# --- what is measured ---

def cpu_seconds(stack) -> dict[str, float]:
    """CPU seconds (user+system) so far per process the stack started, with all its descendants, and of us.

    Unlike bench/_common.py's, this counts the children a process has already reaped (Postgres
    forks an autovacuum worker every minute and backends come and go); our own reaped children
    are the stack's processes themselves, so `bench` is this process alone.
    """
    out = {child.name.removeprefix("dataflow-"): tree_cpu_seconds(child.process.pid)
           for child in stack.supervisor.children}
    t = psutil.Process().cpu_times()
    out[BENCH] = t.user + t.system
    return out


def cpu_percent(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """% of one core per process between two `cpu_seconds` samples `seconds` apart."""
    return {k: 100 * (after[k] - before.get(k, 0.0)) / seconds for k in after}


def stack_total(percent: dict[str, float]) -> float:
    return sum(v for k, v in percent.items() if k != BENCH)


def requests_so_far(shoppers: Shoppers) -> dict[str, int]:
    # one key at a time: the shoppers' thread adds keys to its Counter while we read
    return {k: shoppers.counts[k] for k in CLASSES}


class HealthProbe:
    """A thread that GETs /health `per_second` times a second on a fixed beat; `take()` hands over the samples."""

    def __init__(self, url: str, per_second: float = 4.0, timeout: float = 10.0):
        self.url, self.period, self.timeout = url, 1 / per_second, timeout
        self._samples: list[tuple[float, bool]] = []  # (seconds, answered 200)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 5)

    def take(self) -> list[tuple[float, bool]]:
        """The samples since the last call."""
        with self._lock:
            taken, self._samples = self._samples, []
        return taken

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as http:
            beat = time.monotonic()
            while not self._stopping.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                sample = (time.perf_counter() - started, ok)
                with self._lock:
                    self._samples.append(sample)
                beat = max(beat + self.period, time.monotonic())  # a slow probe delays the next, never bunches them
                self._stopping.wait(beat - time.monotonic())


# --- printing ---

class Rows:
    """A plain table printed a row at a time: a label column, then right-aligned numbers."""

    def __init__(self, headers: list[str]):
        self.widths = [max(len(h), 8 if i == 0 else 6) for i, h in enumerate(headers)]
        self._print(headers)
        self._print(["-" * w for w in self.widths])

    def add(self, cells: list) -> None:
        self._print([c if isinstance(c, str) else "nan" if isinstance(c, float) and math.isnan(c)
                     else f"{c:.1f}" if isinstance(c, float) else str(c) for c in cells])

    def _print(self, cells: list[str]) -> None:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, self.widths))),
              flush=True)


def minutes_label(seconds: float) -> str:
    return f"{seconds / 60:.0f}" if abs(seconds / 60 - round(seconds / 60)) < 0.02 else f"{seconds / 60:.2f}"


def cpu_line(percent: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}%" for k, v in sorted(percent.items(), key=lambda kv: -kv[1]))


# --- the two modes ---

def soak(stack, minutes: float, report_every: float, seed: int) -> int:
    url = api_url(stack)
    shoppers = Shoppers(url, stack.settings, report_every_s=math.inf, seed=seed,
                        stripe_api_base=stack.env.get("STRIPE_API_BASE"))
    probe = HealthProbe(f"{url}/health")
    names = [c.name.removeprefix("dataflow-") for c in stack.supervisor.children] + [BENCH]
    duration = minutes * 60
    print(f"\nsoak: demo shoppers for {minutes:g} min, /health probed 4x/s; a row every {report_every:g} s "
          f"(requests and health in that interval; CPU as % of one core)", flush=True)
    rows = Rows(["min", "requests", *CLASSES, "health n", "p50 ms", "p99 ms", "failed",
                 *(f"{n} %" for n in names), "stack %"])
    timeline = [(0.0, 0)]  # (seconds since the start, requests so far), a sample a second
    p99s, all_health, failed_probes = [], [], 0
    cpu_start = cpu_seconds(stack)
    started = time.monotonic()
    shoppers.start()
    probe.start()
    try:
        end, last = started + duration, started
        next_report = min(started + report_every, end)
        counts0, cpu0 = requests_so_far(shoppers), cpu_start
        while True:
            time.sleep(max(0.0, min(1.0, next_report - time.monotonic())))
            stack.supervisor.check_alive()
            now, counts = time.monotonic(), requests_so_far(shoppers)
            timeline.append((now - started, sum(counts.values())))
            if now < next_report:
                continue
            cpu, samples = cpu_seconds(stack), probe.take()
            percent = cpu_percent(cpu0, cpu, now - last)
            latencies = sorted(s * 1000 for s, _ in samples)
            failed = sum(1 for _, ok in samples if not ok)
            p99s.append(percentile(latencies, 99))
            all_health += latencies
            failed_probes += failed
            done = {k: counts[k] - counts0[k] for k in CLASSES}
            rows.add([minutes_label(now - started), sum(done.values()), *done.values(), len(latencies),
                      percentile(latencies, 50), p99s[-1], failed, *(percent.get(n, 0.0) for n in names),
                      stack_total(percent)])
            if next_report >= end:
                break
            last, counts0, cpu0 = now, counts, cpu
            next_report = min(next_report + report_every, end)
        elapsed, whole = now - started, cpu_percent(cpu_start, cpu, now - started)  # up to the last row
    except ChildDied as died:
        print(f"\nFAIL: a process of the stack died: {died}", flush=True)
        return 2
    finally:
        shoppers.stop()
        probe.stop()
    return verdict(shoppers, timeline, elapsed, p99s, sorted(all_health), failed_probes, whole)


def verdict(shoppers: Shoppers, timeline: list[tuple[float, int]], elapsed: float, p99s: list[float],
            health: list[float], failed_probes: int, whole: dict[str, float]) -> int:
    def so_far(at: float) -> float:  # requests counted by `at` seconds, between the samples around it
        i = bisect.bisect_left(timeline, (at,))
        if i == 0 or i == len(timeline):
            return timeline[min(i, len(timeline) - 1)][1]
        (t0, n0), (t1, n1) = timeline[i - 1], timeline[i]
        return n0 + (n1 - n0) * (at - t0) / (t1 - t0)
    window = WINDOW_S if elapsed >= 2 * WINDOW_S else elapsed / 2
    first, last = round(so_far(window)), round(so_far(elapsed) - so_far(elapsed - window))
    ratio = last / first if first else float("nan")
    worst_p99 = max(p99s, default=float("nan"))
    c = shoppers.counts
    print(f"\nover {elapsed / 60:.1f} min: {sum(c[k] for k in CLASSES)} requests "
          f"(2xx {c['2xx']}, 4xx {c['4xx']}, 5xx {c['5xx']}, errors {c['err']}); checkouts {c['checkout']}, "
          f"paid {c['paid']}; fulfilment steps {c['fulfil']}")
    print(f"/health: {len(health)} probes, p50 {percentile(health, 50):.1f} ms, p99 {percentile(health, 99):.1f} ms, "
          f"max {max(health, default=float('nan')):.1f} ms, failed {failed_probes}")
    print(f"CPU over the run, % of one core: {cpu_line(whole)}; stack total {stack_total(whole):.1f}%")
    ratio_ok = ratio >= MIN_RATIO  # False for nan
    health_ok = worst_p99 <= MAX_HEALTH_P99_MS
    span = f"{window / 60:.0f} min" if window == WINDOW_S else f"half ({window / 60:.1f} min)"
    print(f"\nverdict: requests in the last {span} {last} / first {span} {first} = {ratio:.2f} "
          f"(>= {MIN_RATIO:.2f}) {'PASS' if ratio_ok else 'FAIL'}")
    print(f"verdict: /health p99, worst interval {worst_p99:.1f} ms (<= {MAX_HEALTH_P99_MS:.0f} ms) "
          f"{'PASS' if health_ok else 'FAIL'}")
    return 0 if ratio_ok and health_ok else 1


def idle(stack, seconds: float, report_every: float, settle: float) -> int:
    names = [c.name.removeprefix("dataflow-") for c in stack.supervisor.children] + [BENCH]
    print(f"\nidle: no requests; {settle:g} s to settle, then {seconds:g} s measured; CPU as % of one core, "
          f"a row every {report_every:g} s", flush=True)
    rows = Rows(["min", *(f"{n} %" for n in names), "stack %"])
    try:
        if settle > 0:  # shown, not judged
            cpu0, began = cpu_seconds(stack), time.monotonic()
            time.sleep(settle)
            stack.supervisor.check_alive()
            percent = cpu_percent(cpu0, cpu_seconds(stack), time.monotonic() - began)
            rows.add(["settling", *(percent.get(n, 0.0) for n in names), stack_total(percent)])
        cpu_start = cpu0 = cpu_seconds(stack)
        started = last = time.monotonic()
        end = started + seconds
        while (now := time.monotonic()) < end:
            time.sleep(min(report_every, end - now))
            stack.supervisor.check_alive()
            now, cpu = time.monotonic(), cpu_seconds(stack)
            percent = cpu_percent(cpu0, cpu, now - last)
            rows.add([minutes_label(now - started), *(percent.get(n, 0.0) for n in names), stack_total(percent)])
            last, cpu0 = now, cpu
    except ChildDied as died:
        print(f"\nFAIL: a process of the stack died: {died}", flush=True)
        return 2
    whole = cpu_percent(cpu_start, cpu_seconds(stack), time.monotonic() - started)
    total = stack_total(whole)
    print(f"\nCPU over {seconds:g} s idle, % of one core: {cpu_line(whole)}")
    print(f"verdict: idle stack total {total:.1f}% of one core (< {MAX_IDLE_PERCENT:.0f}%) "
          f"{'PASS' if total < MAX_IDLE_PERCENT else 'FAIL'}")
    return 0 if total < MAX_IDLE_PERCENT else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the shoppers shop (default 30)")
    ap.add_argument("--report-every", type=float, default=60.0, help="seconds per printed row (default 60)")
    ap.add_argument("--idle-seconds", type=float, default=None,
                    help="instead of shoppers: start the stack, stay idle this long, report CPU")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="idle mode: seconds after the start before measuring (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="the shoppers' random seed (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the stack's data dir (logs) afterwards")
    args = ap.parse_args(argv)
    if args.report_every <= 0 or args.minutes <= 0 or (args.idle_seconds is not None and args.idle_seconds <= 0):
        ap.error("--minutes, --report-every and --idle-seconds must be positive")
    if args.settle < 0:
        ap.error("--settle must not be negative")

    load_before = os.getloadavg()[0]
    with private_stack("soak", keep=args.keep) as stack:
        if args.idle_seconds is not None:
            code = idle(stack, args.idle_seconds, args.report_every, args.settle)
        else:
            code = soak(stack, args.minutes, args.report_every, args.seed)
        trouble = log_lines(stack, limit=5)
    print(f"1-min load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} CPUs)")
    if trouble:
        print("\nlog lines that look like trouble:")
        print("\n".join(trouble))
    return code


if __name__ == "__main__":
    sys.exit(main())
