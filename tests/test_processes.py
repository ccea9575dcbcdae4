"""The supervisor: children die with it even on `kill -9`, and stop tier by tier (API, dataflows, stores, broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from buyit.processes import Supervisor, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_children_die_with_the_supervisor_even_on_kill_9(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from buyit.processes import Supervisor
        s = Supervisor(Path({str(tmp_path)!r}))
        for name in ("kafka", "postgres", "api"):
            print(s.start(name, ["sleep", "1000"]).process.pid, flush=True)
        time.sleep(1000)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(owner.stdout.readline()) for _ in range(3)]
        children = [psutil.Process(pid) for pid in pids]
        assert all(c.is_running() for c in children)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"orphaned after kill -9 of their supervisor: {[c.pid for c in alive]}"
    finally:
        owner.kill()
        for pid in locals().get("pids", []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_stop_goes_tier_by_tier_in_reverse_order_of_start(tmp_path):
    """Each child logs when SIGTERM reaches it and lingers 0.3 s: a tier is only signalled once the one
    above it has exited, so the API is gone before the dataflows, and those before the stores."""
    stamps = tmp_path / "stamps"
    child = textwrap.dedent(f"""
        import signal, sys, time
        def bye(*_):
            with open({str(stamps)!r}, "a") as f:
                f.write(f"{{sys.argv[1]}} {{time.monotonic()}}\\n")
            time.sleep(0.3)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open({str(tmp_path)!r} + "/ready-" + sys.argv[1], "w").close()
        time.sleep(1000)
    """)
    s = Supervisor(tmp_path / "logs")
    names = ["kafka", "postgres", "valkey", "dataflow-decide-0", "dataflow-decide-1", "dataflow-project",
             "api", "api-2"]
    try:
        for name in names:
            s.start(name, [sys.executable, "-c", child, name])
        wait_for(lambda: all((tmp_path / f"ready-{n}").exists() for n in names), 30, "children ready")
        s.stop()
    finally:
        s.stop()
    order = [line.split() for line in stamps.read_text().splitlines()]
    when = {name: float(t) for name, t in order}
    tier = {"api": 0, "api-2": 0, "dataflow-project": 1, "dataflow-decide-1": 1, "dataflow-decide-0": 1,
            "valkey": 2, "postgres": 3, "kafka": 4}
    assert set(when) == set(names)
    for a in names:
        for b in names:
            if tier[a] < tier[b]:
                assert when[b] - when[a] >= 0.25, f"{b} was signalled before {a} had stopped: {order}"
            if tier[a] == tier[b]:
                assert abs(when[b] - when[a]) < 0.25, f"{a} and {b} should stop together: {order}"


def test_kill_then_relaunch_starts_the_child_again_in_its_place(tmp_path):
    """`kill` is a crash (SIGKILL to the group); `relaunch` starts the same command again, keeping the
    child's place in the stop order."""
    s = Supervisor(tmp_path)
    try:
        for name in ("kafka", "dataflow-decide", "api"):
            s.start(name, ["sleep", "1000"])
        before = s.children[1].process
        s.kill("dataflow-decide")
        assert before.poll() == -signal.SIGKILL
        again = s.relaunch("dataflow-decide")
        assert [c.name for c in s.children] == ["kafka", "dataflow-decide", "api"]
        assert s.children[1] is again and again.process.poll() is None and again.argv == ["sleep", "1000"]
        try:
            s.relaunch("api")
        except RuntimeError as err:
            assert "still running" in str(err)
        else:
            raise AssertionError("relaunched a running child")
    finally:
        s.stop(timeout=2)
