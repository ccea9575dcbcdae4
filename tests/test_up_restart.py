"""`buyit up` as a user runs it: Apache Kafka on disk, SIGTERM leaves nothing behind, a restart keeps the state."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from buyit.identity import mint
from buyit.processes import free_port
from buyit.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PORTS = ("API", "KAFKA", "KAFKA_CONTROLLER", "PG", "REDIS", "STRIPE")
# Settings read from the environment that would make `buyit up` use something other than its embedded parts.
EXTERNAL = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "STRIPE_API_BASE", "STRIPE_API_KEY",
            "CLOUDINARY_URL", "JWT_JWKS_URL", "BUYIT_PUBLIC_URL")


def _ports() -> dict[str, str]:
    """A free port for every part `buyit up` starts."""
    chosen: set[int] = set()
    env = {}
    for name in PORTS:
        p = free_port()
        while p in chosen:
            p = free_port()
        chosen.add(p)
        env[f"BUYIT_{name}_PORT"] = str(p)
    return env


def _tails(log: Path, data: Path) -> str:
    """The end of `buyit up`'s output and of every process log, for failure messages."""
    parts = []
    for f in [log, *sorted((data / "logs").glob("*.log"))]:
        if f.exists():
            parts.append(f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}")
    return "\n".join(parts)


def _wait(probe, timeout: float, what: str, proc: subprocess.Popen, log: Path, data: Path):
    """Poll `probe` until it returns something truthy; fail early if `buyit up` exits."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"buyit up exited with {proc.returncode} while waiting for {what}\n{_tails(log, data)}")
        try:
            value = probe()
            if value:
                return value
            last = value
        except httpx.HTTPError as err:
            last = err
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}\n{_tails(log, data)}")


def _settled(http: httpx.Client, r: httpx.Response, deadline_s: float = 30) -> httpx.Response:
    """Follow a 202 (the answer took longer than the API waits) to the command's result."""
    deadline = time.monotonic() + deadline_s
    while r.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        r = http.get(r.headers["Location"])
    return r


class Up:
    """One `buyit up` subprocess in its own process group, and every process under it."""

    def __init__(self, env: dict, data: Path, log: Path):
        self.data, self.log = data, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "buyit.cli", "up"], env=env, cwd=data.parent,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.tree: list[psutil.Process] = []

    def record_tree(self) -> list[psutil.Process]:
        """Remember every descendant now (the supervisor puts each in its own session, so no group covers all)."""
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            if p.pid not in {t.pid for t in self.tree}:
                self.tree.append(p)
        return self.tree

    def healthy(self, url: str) -> None:
        _wait(lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200, 240, "GET /health = 200",
              self.proc, self.log, self.data)
        _wait(lambda: "BuyIt is up" in self.log.read_text(), 60, "buyit up to say it is up", self.proc, self.log,
              self.data)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"buyit up did not exit within {timeout:.0f}s of {signal.Signals(sig).name}\n"
                        f"{_tails(self.log, self.data)}")

    def kill(self) -> None:
        """Last resort: kill `buyit up`'s group and every descendant ever recorded (pid reuse is checked)."""
        if self.proc.poll() is None:
            try:
                self.record_tree()
            except psutil.Error:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for p in self.tree:
            try:
                p.kill()
            except psutil.Error:
                pass


def _nothing_left(tree: list[psutil.Process], data: Path, after: str, timeout: float = 10) -> None:
    """Every process `buyit up` had started is gone, and nothing else runs on its data directory."""
    gone, alive = psutil.wait_procs(tree, timeout=timeout)
    assert not alive, f"left running after {after}: {[(p.pid, p.name()) for p in alive]}"
    assert not _leftovers(data), _leftovers(data)


def _leftovers(data: Path) -> list[str]:
    """Processes that mention the data directory in their command line or run inside it."""
    found, mark = [], str(data)
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline, cwd = " ".join(p.info["cmdline"] or []), p.info["cwd"] or ""
        if p.pid != os.getpid() and (mark in cmdline or cwd.startswith(mark)):
            found.append(f"{p.pid} {cmdline[:200]}")
    return found


def test_sigterm_stops_everything_and_a_restart_keeps_the_state():
    tmp = Path(tempfile.mkdtemp(prefix="buyit-restart-"))
    data = tmp / "data"
    ports = _ports()
    env = {k: v for k, v in os.environ.items() if k.upper() not in EXTERNAL}
    env.update(ports, BUYIT_DATA_DIR=str(data))
    url = f"http://127.0.0.1:{ports['BUYIT_API_PORT']}"
    settings = Settings(buyit_data_dir=data)
    started: list[Up] = []
    try:
        # --- first run: list a product with 7 units ---
        first = Up(env, data, tmp / "up-1.log")
        started.append(first)
        first.healthy(url)
        seller_id = "restart-seller"
        seller = httpx.Client(base_url=url, timeout=30,
                              headers={"Authorization": f"Bearer {mint(settings, seller_id, 'SELLER')}"})
        product = {"sku": "RESTART-1", "name": "Survivor", "priceCents": 1234, "currency": "USD",
                   "status": "ACTIVE"}
        r = _settled(seller, seller.post("/api/catalog/products", json=product))
        assert r.status_code == 201, r.text
        pid = r.json()["productId"]
        _wait(lambda: seller.get(f"/api/inventory/stock/{pid}").status_code == 200, 30, "the stock record",
              first.proc, first.log, data)
        r = _settled(seller, seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 7}))
        assert r.status_code == 200, r.text
        _wait(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["totalQuantity"] == 7, 30,
              "stock 7 in the view", first.proc, first.log, data)
        # a cart holding 1 unit, and an order (another buyer's checkout) holding 2
        shopper = httpx.Client(base_url=url, timeout=30,
                               headers={"Authorization": f"Bearer {mint(settings, 'restart-shopper', 'BUYER')}"})
        orderer = httpx.Client(base_url=url, timeout=30,
                               headers={"Authorization": f"Bearer {mint(settings, 'restart-orderer', 'BUYER')}"})
        r = _settled(shopper, shopper.post("/api/cart/items", json={"productId": pid, "quantity": 1}))
        assert r.status_code == 201, r.text
        cart_id = r.json()["cartId"]
        r = _settled(orderer, orderer.post("/api/cart/items", json={"productId": pid, "quantity": 2}))
        assert r.status_code == 201, r.text
        r = _settled(orderer, orderer.post("/api/cart/checkout"))
        assert r.status_code == 201, r.text
        order_id = r.json()["orderId"]
        _wait(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["allocatedQuantity"] == 2, 30,
              "the order's units allocated in the view", first.proc, first.log, data)
        _wait(lambda: orderer.get(f"/api/orders/{order_id}").status_code == 200, 30, "the order in the view",
              first.proc, first.log, data)

        # --- SIGTERM: everything it started goes away ---
        tree = first.record_tree()
        assert len(tree) >= 8, [p.name() for p in tree]
        assert first.terminate() == 0, _tails(first.log, data)
        _nothing_left(tree, data, "SIGTERM")

        # --- second run over the same data: views and decision state are back ---
        second = Up(env, data, tmp / "up-2.log")
        started.append(second)
        second.healthy(url)
        r = seller.get(f"/api/catalog/products/{pid}")
        assert r.status_code == 200 and r.json()["status"] == "ACTIVE", r.text
        stock = seller.get(f"/api/inventory/stock/{pid}").json()
        assert stock["totalQuantity"] == 7 and stock["sellerId"] == seller_id, stock
        assert (stock["reservedQuantity"], stock["allocatedQuantity"], stock["availableQuantity"]) == (1, 2, 4), stock
        cart = shopper.get("/api/cart").json()
        assert cart["cartId"] == cart_id and [i["quantity"] for i in cart["items"]] == [1], cart
        r = orderer.get(f"/api/orders/{order_id}")
        assert r.status_code == 200 and r.json()["status"] == "PENDING", r.text
        # the deciders still hold the cart: adding again raises the same item
        r = _settled(shopper, shopper.post("/api/cart/items", json={"productId": pid, "quantity": 1}))
        assert r.status_code == 201 and r.json()["cartId"] == cart_id, r.text
        assert [i["quantity"] for i in r.json()["items"]] == [2], r.text
        stock = seller.get(f"/api/inventory/stock/{pid}").json()
        # The deciders answer from their own state, not the views: the SKU is still taken, the version still known.
        r = _settled(seller, seller.post("/api/catalog/products", json=product))
        assert r.status_code == 409 and r.json()["error"] == "sku_taken", r.text
        _wait(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["reservedQuantity"] == 2, 30,
              "the second unit reserved in the view", second.proc, second.log, data)
        stock = seller.get(f"/api/inventory/stock/{pid}").json()
        r = _settled(seller, seller.put("/api/inventory/stock", json={
            "productId": pid, "totalQuantity": 9, "expectedVersion": stock["version"]}))
        assert r.status_code == 200, r.text
        assert r.json()["totalQuantity"] == 9 and r.json()["version"] == stock["version"] + 1, r.json()
        r = _settled(seller, seller.put("/api/inventory/stock", json={
            "productId": pid, "totalQuantity": 3, "expectedVersion": stock["version"]}))
        assert r.status_code == 409 and r.json()["error"] == "version_conflict", r.text
        _wait(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["totalQuantity"] == 9, 30,
              "stock 9 in the view", second.proc, second.log, data)

        tree = second.record_tree()
        assert second.terminate() == 0, _tails(second.log, data)
        _nothing_left(tree, data, "SIGTERM")
        for http in (seller, shopper, orderer):
            http.close()
    finally:
        for up in started:
            up.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _fresh(prefix: str) -> tuple[Path, Path, dict, str]:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    data = tmp / "data"
    ports = _ports()
    env = {k: v for k, v in os.environ.items() if k.upper() not in EXTERNAL}
    env.update(ports, BUYIT_DATA_DIR=str(data))
    return tmp, data, env, f"http://127.0.0.1:{ports['BUYIT_API_PORT']}"


def test_kill_9_orphans_nothing_a_restart_recovers_and_a_closed_terminal_stops_cleanly():
    """`kill -9` of `buyit up` takes every child with it (parent-death signal); the next start takes over
    the stale Postgres lock and Kafka's log; SIGHUP (a closed terminal) stops everything like SIGTERM."""
    tmp, data, env, url = _fresh("buyit-kill9-")
    settings = Settings(buyit_data_dir=data)
    started: list[Up] = []
    try:
        first = Up(env, data, tmp / "up-1.log")
        started.append(first)
        first.healthy(url)
        seller = httpx.Client(base_url=url, timeout=30,
                              headers={"Authorization": f"Bearer {mint(settings, 'kill9-seller', 'SELLER')}"})
        r = _settled(seller, seller.post("/api/catalog/products", json={
            "sku": "KILL9-1", "name": "Survivor", "priceCents": 500, "currency": "USD", "status": "ACTIVE"}))
        assert r.status_code == 201, r.text
        pid = r.json()["productId"]
        _wait(lambda: seller.get(f"/api/catalog/products/{pid}").status_code == 200, 30, "the product view",
              first.proc, first.log, data)
        tree = first.record_tree()
        assert len(tree) >= 7, [p.name() for p in tree]
        assert first.terminate(signal.SIGKILL, timeout=10) == -signal.SIGKILL
        _nothing_left(tree, data, "kill -9", timeout=15)

        second = Up(env, data, tmp / "up-2.log")
        started.append(second)
        second.healthy(url)
        r = seller.get(f"/api/catalog/products/{pid}")
        assert r.status_code == 200 and r.json()["sku"] == "KILL9-1", r.text
        tree = second.record_tree()
        assert second.terminate(signal.SIGHUP) == 0, _tails(second.log, data)
        _nothing_left(tree, data, "SIGHUP")
        seller.close()
    finally:
        for up in started:
            up.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_port_already_taken_is_refused_clearly_and_nothing_is_left():
    import socket
    tmp, data, env, url = _fresh("buyit-taken-")
    taken = int(env["BUYIT_PG_PORT"])
    up = None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            up = Up(env, data, tmp / "up.log")
            try:
                code = up.proc.wait(120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"buyit up kept running with its Postgres port taken\n{_tails(up.log, data)}")
            out = up.log.read_text()
            assert code == 1, out
            assert f"port {taken} for Postgres is already in use" in out and "BUYIT_PG_PORT" in out, out
            assert "Traceback" not in out, out
            assert not _leftovers(data), _leftovers(data)
        finally:
            if up:
                up.kill()
            shutil.rmtree(tmp, ignore_errors=True)
