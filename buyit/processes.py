"""Start, watch and stop child processes by process id, leaving nothing behind."""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class ChildDied(RuntimeError):
    """A supervised process exited while we were waiting on it."""


class PortTaken(RuntimeError):
    """Something already listens where an embedded part would."""


def claim_port(port: int, what: str, setting: str) -> None:
    """Refuse to start `what` on a port already in use (another BuyIt, or a real server) with a clear message."""
    if port_open(port):
        raise PortTaken(f"port {port} for {what} is already in use (another `buyit up`?); stop it, "
                        f"or set {setting} to a free port")


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A pre-exec hook: the child gets SIGKILL when the supervisor dies, even by `kill -9`, so nothing is
    orphaned. Linux only (prctl); the data survives because every store syncs before it acknowledges."""
    libc = ctypes.CDLL(None, use_errno=True)

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before the hook ran
            os._exit(1)
    return hook


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until it holds, or fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except ChildDied:
            raise
        except Exception:  # not up yet: connection refused and friends
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path
    # How it was started, so `Supervisor.relaunch` can start it again the same way.
    argv: list[str] = field(default_factory=list)
    env: dict | None = None
    user: str | None = None
    cwd: Path | None = None

    @property
    def tier(self) -> str:
        """Children stopped together: every API process, every dataflow process, each store on its own."""
        return self.name.split("-")[0]


@dataclass
class Supervisor:
    """Owns every process it starts and ends them all: with `stop`, tier by tier in reverse order of
    start (API, dataflows, stores, broker) so nothing writes into a part already stopped; if the
    supervisor itself dies, the kernel kills its children (see `_die_with_parent`)."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict | None = None, user: str | None = None,
              cwd: Path | None = None) -> Child:
        child = self._launch(name, argv, env, user, cwd)
        self.children.append(child)
        return child

    def _launch(self, name: str, argv: list[str], env: dict | None, user: str | None, cwd: Path | None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **(env or {})}, user=user, cwd=cwd,
                                       start_new_session=True,
                                       preexec_fn=_die_with_parent(os.getpid()) if sys.platform == "linux" else None)
        return Child(name, process, log, list(argv), env, user, cwd)

    def check_alive(self) -> None:
        """Raise if a child has died, with the tail of its log."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                tail = child.log.read_text(errors="replace")[-3000:] if child.log.exists() else ""
                raise ChildDied(f"{child.name} exited with {code}:\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every child, one tier at a time: SIGTERM, then SIGKILL whatever outlives `timeout`."""
        tiers = [list(group) for _, group in itertools.groupby(reversed(self.children), key=lambda c: c.tier)]
        for tier in tiers:
            for child in tier:
                _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for child in tier:
                try:
                    child.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(child.process, signal.SIGKILL)
                    child.process.wait(5)
        for child in self.children:  # stragglers the group signal missed
            _signal_group(child.process, signal.SIGKILL)
        self.children.clear()

    def stop_one(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop one child (tests use SIGKILL to simulate a crash)."""
        for child in list(self.children):
            if child.name == name:
                _signal_group(child.process, sig)
                try:
                    child.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(child.process, signal.SIGKILL)
                    child.process.wait(5)
                self.children.remove(child)


    def kill(self, name: str) -> None:
        """`kill -9` one child and its process group (a crash, for fault-injection tests); it stays in
        `children`, dead, until `relaunch` starts it again."""
        for child in self.children:
            if child.name == name:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait(10)

    def relaunch(self, name: str) -> Child:
        """Start a child that has exited again, as it was started, in its place in the stop order.

        Like `start`, call it from a thread that lives as long as the child: the parent-death signal
        fires when the *thread* that forked the child exits, not only the process."""
        for index, child in enumerate(self.children):
            if child.name == name:
                if child.process.poll() is None:
                    raise RuntimeError(f"{name} is still running (pid {child.process.pid})")
                self.children[index] = self._launch(name, child.argv, child.env, child.user, child.cwd)
                return self.children[index]
        raise KeyError(f"no child named {name!r}")


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
