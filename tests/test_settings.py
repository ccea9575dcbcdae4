"""Settings that put money at risk are refused before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from buyit.settings import Settings

LIVE = {"stripe_api_key": "sk_live_51abc"}


@pytest.mark.parametrize("overrides, refused", [
    pytest.param({}, None, id="test_key_with_default_secrets_is_fine"),
    pytest.param(LIVE, "CARRIER_WEBHOOK_SECRET and STRIPE_WEBHOOK_SECRET", id="live_key_with_both_defaults"),
    pytest.param({**LIVE, "stripe_webhook_secret": "whsec_real"}, "CARRIER_WEBHOOK_SECRET",
                 id="live_key_with_the_carrier_default"),
    pytest.param({**LIVE, "carrier_webhook_secret": "carrier_real"}, "STRIPE_WEBHOOK_SECRET",
                 id="live_key_with_the_stripe_default"),
    pytest.param({**LIVE, "stripe_webhook_secret": "whsec_real", "carrier_webhook_secret": "carrier_real"}, None,
                 id="live_key_with_real_secrets"),
    pytest.param({"stripe_api_key": "rk_live_51abc"}, "STRIPE_WEBHOOK_SECRET", id="a_restricted_live_key_too"),
])
def test_default_webhook_secrets_are_refused_with_a_live_key(overrides, refused):
    settings = Settings(_env_file=None, **overrides)
    if refused is None:
        settings.refuse_default_secrets()
    else:
        with pytest.raises(RuntimeError, match=refused):
            settings.refuse_default_secrets()


def test_buyit_up_refuses_to_start_and_starts_nothing(tmp_path):
    env = {**os.environ, "STRIPE_API_KEY": "sk_live_51abc", "BUYIT_DATA_DIR": str(tmp_path / "data")}
    env.pop("STRIPE_WEBHOOK_SECRET", None)
    run = subprocess.run([sys.executable, "-m", "buyit.cli", "up"], env=env, capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "STRIPE_WEBHOOK_SECRET" in run.stderr and "cannot start" in run.stderr, run.stderr
    assert not (tmp_path / "data").exists()  # nothing was started or written


def test_the_api_refuses_too(monkeypatch):
    from buyit.settings import get_settings
    from ingest_api.app import create_app
    monkeypatch.setenv("STRIPE_API_KEY", "sk_live_51abc")
    get_settings.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="STRIPE_WEBHOOK_SECRET"):
            create_app()
    finally:
        get_settings.cache_clear()
