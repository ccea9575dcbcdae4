"""Settings, read from the environment and a `.env` file (names as in api.md)."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the system; an unset external URL means "start the embedded one"."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    stripe_api_key: str = "sk_test_buyit"
    stripe_api_base: str | None = None
    stripe_webhook_secret: str = "whsec_buyit_local"
    cloudinary_url: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "https://buyit.local/"
    jwt_audience: str = "buyit-api"
    jwt_user_id_claim: str = "user_id"
    jwt_role_claim: str = "account_type"
    carrier_webhook_secret: str = "carrier_buyit_local"
    # signs list cursors so a tampered one is a 422; not a security boundary, so the default is no risk
    buyit_cursor_secret: str = "cursor_buyit_local"

    buyit_data_dir: Path = Path(".buyit")
    buyit_kafka_port: int = 9092
    buyit_api_port: int = 8000
    buyit_public_url: str | None = None
    buyit_topic_partitions: int = 1
    # processes a replay splits the aggregates between (each reads the whole log, so more stop paying)
    buyit_replay_processes: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 4)), ge=1)
    buyit_soft_reservation_ttl_s: int = 900
    buyit_hard_reservation_ttl_s: int = 1800
    buyit_cart_ttl_s: int = 900
    buyit_platform_fee_bps: int = 1000
    buyit_low_stock_threshold: int = 5
    buyit_command_wait_s: float = 5.0
    buyit_command_results_ttl_s: int = 86_400  # how long GET /api/commands/{id} can answer
    buyit_retain_finished_s: int = 3_600  # how long a finished order (delivered, cancelled) stays in live state
    buyit_forget_retired_s: int = 7 * 86_400  # how long the decision dataflow keeps a retired one's tombstone
    buyit_stripe_patience_s: float = 300.0  # how long the payments worker retries Stripe before giving up a call
    buyit_snapshot_interval_s: int = 1
    buyit_max_image_bytes: int = 5 * 1024 * 1024
    buyit_allow_private_image_urls: bool = False  # tests and demos fetch images from this machine
    buyit_workers: int = 1
    buyit_decide_processes: int = 1  # >1: the decision dataflow runs as a Bytewax cluster of that many processes
    buyit_api_processes: int = 1
    buyit_kafka_controller_port: int = 9093
    buyit_kafka_home: Path = Path(__file__).resolve().parent.parent / ".kafka"  # `make install` fills libs/
    buyit_pg_port: int = Field(default=5433)
    buyit_redis_port: int = 6380
    buyit_stripe_port: int = 8420

    def refuse_default_secrets(self) -> None:
        """Raise RuntimeError when real money is at stake (a Stripe key that is not a test key) while a
        webhook secret still has its built-in default, which anyone can read here and forge events with."""
        if self.stripe_api_key.startswith("sk_test"):
            return
        defaults = {name.upper() for name in ("stripe_webhook_secret", "carrier_webhook_secret")
                    if getattr(self, name) == type(self).model_fields[name].default}
        if defaults:
            raise RuntimeError(f"{' and '.join(sorted(defaults))} still have their built-in defaults, with a live "
                               "Stripe key: set them to the secrets Stripe and your carrier gave you")

    @property
    def brokers(self) -> list[str]:
        """Bootstrap servers as a list; the embedded broker's address when none is set."""
        servers = self.kafka_bootstrap_servers or f"127.0.0.1:{self.buyit_kafka_port}"
        return [s.strip() for s in servers.split(",") if s.strip()]

    @property
    def public_url(self) -> str:
        """The URL clients reach the API at (used to build image and poll links)."""
        return self.buyit_public_url or f"http://127.0.0.1:{self.buyit_api_port}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
