"""Start, watch and stop child processes by process id, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
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


@dataclass
class Supervisor:
    """Owns every process it starts; `stop` ends them in reverse order, by process group."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict | None = None, user: str | None = None,
              cwd: Path | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **(env or {})}, user=user, cwd=cwd,
                                       start_new_session=True)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        """Raise if a child has died, with the tail of its log."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                tail = child.log.read_text(errors="replace")[-3000:] if child.log.exists() else ""
                raise ChildDied(f"{child.name} exited with {code}:\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
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


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
