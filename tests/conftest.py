"""The running system for integration tests: one stack per test session, stopped on exit."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from buyit.identity import mint
from buyit.processes import free_port
from buyit.settings import Settings


def pytest_configure(config):
    """A SIGTERM (CI's timeout, a kill) unwinds like Ctrl-C, so fixtures stop every process they started."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupt)


def test_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for a private stack: free ports, its own Kafka, short TTLs."""
    values = dict(buyit_data_dir=data_dir, buyit_kafka_port=free_port(), buyit_kafka_controller_port=free_port(),
                  buyit_pg_port=free_port(),
                  buyit_redis_port=free_port(), buyit_stripe_port=free_port(), buyit_api_port=free_port(),
                  buyit_command_wait_s=10.0, buyit_allow_private_image_urls=True)
    values.update(overrides)
    return Settings(**values)


# BUYIT_TEST_CLUSTER=1: the session's stack is scaled out (tests/test_cluster.py runs the cart and
# checkout tests so): 4 partitions per topic, the decision dataflow as a two-process Bytewax cluster,
# two API processes that the clients take turns on.
CLUSTER = dict(buyit_topic_partitions=4, buyit_decide_processes=2, buyit_api_processes=2)


@pytest.fixture(scope="session")
def stack():
    import os

    from buyit.stack import Stack
    data = Path(tempfile.mkdtemp(prefix="buyit-test-"))
    cluster = os.environ.get("BUYIT_TEST_CLUSTER") == "1"
    settings = test_settings(data, **(CLUSTER if cluster else {}))
    running = Stack(settings).start()
    if cluster:
        _report_cluster(running, os.environ.get("BUYIT_TEST_CLUSTER_REPORT"))
    yield running
    running.stop()
    shutil.rmtree(data, ignore_errors=True)


@contextmanager
def private_stack(name: str, **overrides):
    """A stack of a test module's own (`overrides` are settings), for tests that stop its parts or need
    other settings; stopped and its data removed on exit."""
    from buyit.stack import Stack
    data = Path(tempfile.mkdtemp(prefix=f"buyit-{name}-"))
    running = Stack(test_settings(data, **overrides)).start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def spare_stack():
    """A private stack with the default settings for tests that break its parts (tests/test_health.py stops
    them one by one, the NUL-token test of tests/test_malformed_input.py could crash a dataflow): shared by
    them, one start instead of one each, and never the session's `stack`. Each leaves it healthy."""
    with private_stack("spare") as running:
        yield running


@pytest.fixture(scope="module")
def short_ttl_stack():
    """A private stack whose reservations and carts expire in seconds."""
    with private_stack("ttl", buyit_soft_reservation_ttl_s=4, buyit_cart_ttl_s=3,
                       buyit_hard_reservation_ttl_s=4) as running:
        yield running


def _report_cluster(stack, path: str | None) -> None:
    """Write what the scaled-out stack runs, for tests/test_cluster.py to check it was one."""
    import json

    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    topics = admin.list_topics(timeout=10).topics
    report = {"processes": [c.name for c in stack.supervisor.children], "apiPorts": stack.api_ports,
              "partitions": {name: len(topics[name].partitions) for name in ("cart.commands", "command.results")}}
    if path:
        Path(path).write_text(json.dumps(report))


_turn = iter(range(1 << 62))


class Client:
    """An HTTP client for one caller (or anonymous), against the test stack."""

    def __init__(self, stack, user_id: str | None = None, role: str | None = None, token: str | None = None):
        self.user_id, self.role, self.stack = user_id, role, stack
        headers = {}
        if token is None and user_id is not None:
            token = mint(stack.settings, user_id, role)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        ports = stack.api_ports  # every API replica serves every client: they take turns
        port = ports[next(_turn) % len(ports)]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)

    def __getattr__(self, name):
        return getattr(self.http, name)


@pytest.fixture
def client(stack):
    """Make a client: `client()` anonymous, `client("SELLER")` a new user with that role."""
    made = []

    def make(role: str | None = None, user_id: str | None = None, token: str | None = None) -> Client:
        if role is not None and user_id is None:
            user_id = f"{role.lower()}-{uuid.uuid4().hex[:10]}"
        c = Client(stack, user_id, role, token)
        made.append(c)
        return c
    yield make
    for c in made:
        c.http.close()
