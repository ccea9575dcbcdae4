"""A client that behaves like a careful storefront during outages: it retries a request that got no
answer (connection refused, reset, timed out) or a 503 with the same `Idempotency-Key`, and follows a
202 to the command's result, until a deadline. What it finally heard is recorded as a `Call`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import httpx

RETRY_STATUSES = (502, 503, 504)  # the API (or what stands in front of it) could not record the request
POLL_S = 0.3


@dataclass
class Call:
    """One request as the client saw it, through retries, to its final answer."""

    kind: str  # product, stock, add, change, remove, checkout, capture, decline
    actor: str
    method: str
    path: str
    key: str | None  # the Idempotency-Key every attempt carried
    status: int = 0  # the final answer; 0: none before the deadline
    body: dict = field(default_factory=dict)
    attempts: int = 0
    seen: list[int] = field(default_factory=list)  # every status on the way (-1: no answer at all)
    started: float = 0.0
    finished: float = 0.0
    extra: dict = field(default_factory=dict)  # what the audit needs beyond the answer (ids sent, amounts)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Caller:
    """One user's HTTP client against one API port."""

    def __init__(self, base_url: str, user_id: str, token: str | None, deadline_s: float = 150):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.user_id, self.deadline_s = user_id, deadline_s
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(20, connect=2))

    def close(self) -> None:
        self.http.close()

    def call(self, kind: str, method: str, path: str, json: dict | None = None, keyed: bool = True,
             content: bytes | None = None, headers: dict | None = None, redo_on_202: bool = False,
             **extra) -> Call:
        """Send until answered; `redo_on_202`: ask again with the same key instead of polling (checkout
        answers its order on a retry)."""
        key = uuid.uuid4().hex if keyed else None
        record = Call(kind, self.user_id, method, path, key, started=time.monotonic(), extra=extra)
        headers = {**(headers or {}), **({"Idempotency-Key": key} if key else {})}
        deadline = record.started + self.deadline_s
        while time.monotonic() < deadline:
            record.attempts += 1
            r = self._attempt(method, path, json, content, headers)
            record.seen.append(r.status_code if r is not None else -1)
            if r is not None and r.status_code == 202 and not redo_on_202:
                r = self._follow(r, deadline, record)
            if r is None or r.status_code in RETRY_STATUSES or (r.status_code == 202 and redo_on_202):
                time.sleep(POLL_S)
                continue
            record.status, record.body = r.status_code, _json(r)
            break
        record.finished = time.monotonic()
        return record

    def _attempt(self, method, path, json, content, headers) -> httpx.Response | None:
        try:
            return self.http.request(method, path, json=json, content=content, headers=headers)
        except httpx.TransportError:  # refused, reset, timed out: the API is down or restarting
            return None

    def _follow(self, r: httpx.Response, deadline: float, record: Call) -> httpx.Response | None:
        """Poll the 202's `Location` until the command is decided (None: ask the API again later)."""
        location = r.headers.get("Location")
        while location and time.monotonic() < deadline:
            time.sleep(POLL_S)
            polled = self._attempt("GET", location, None, None, {})
            record.seen.append(polled.status_code if polled is not None else -1)
            if polled is not None and polled.status_code not in (202, *RETRY_STATUSES):
                return polled
        return None


def _json(r: httpx.Response) -> dict:
    try:
        body = r.json()
    except ValueError:
        return {"text": r.text[:500]}
    return body if isinstance(body, dict) else {"items": body}
