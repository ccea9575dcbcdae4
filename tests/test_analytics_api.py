"""/api/analytics/{name} in-process (no stack): who sees what, and what a bad request gets."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.sim.market_day import market_day
from tests.test_analytics_day import write_day


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The analytics routes over a small simulated day, with the local token issuer."""
    import os

    from buyit import settings as settings_module
    from buyit.identity import mint
    from ingest_api import auth, errors
    from ingest_api.routes import analytics
    data = tmp_path_factory.mktemp("data")
    write_day(data / "lake", market_day(carts=300).events, redeliver=0)
    before = os.environ.get("BUYIT_DATA_DIR")
    os.environ["BUYIT_DATA_DIR"] = str(data)
    settings_module.get_settings.cache_clear()
    auth._verifier.cache_clear()
    app = FastAPI()
    errors.install(app)
    app.include_router(analytics.named)

    def client(role=None, user_id=None):
        headers = {"Authorization": f"Bearer {mint(settings_module.get_settings(), user_id or role.lower(), role)}"
                   } if role else {}
        return TestClient(app, headers=headers)
    yield client
    if before is None:
        os.environ.pop("BUYIT_DATA_DIR")
    else:
        os.environ["BUYIT_DATA_DIR"] = before
    settings_module.get_settings.cache_clear()
    auth._verifier.cache_clear()


class TestWhoSeesWhat:
    def test_an_admin_sees_every_seller_and_may_pick_one(self, api):
        admin = api("ADMIN")
        every = admin.get("/api/analytics/sales-by-seller").json()
        assert every["name"] == "sales-by-seller" and len({r["sellerId"] for r in every["items"]}) > 1
        one = admin.get("/api/analytics/sales-by-seller", params={"sellerId": "seller-03"}).json()["items"]
        assert one and {r["sellerId"] for r in one} == {"seller-03"}

    def test_a_seller_sees_only_its_own_figures(self, api):
        seller = api("SELLER", "seller-03")
        mine = seller.get("/api/analytics/sales-by-product", params={"bucket": "hour"}).json()["items"]
        assert mine and {r["sellerId"] for r in mine} == {"seller-03"}
        assert seller.get("/api/analytics/sales-by-seller", params={"sellerId": "seller-04"}).status_code == 403
        assert api("SELLER", "seller-03").get("/api/analytics/refunds").status_code == 200

    def test_buyers_are_forbidden_and_strangers_unauthorized(self, api):
        refused = api("BUYER").get("/api/analytics/funnel")
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert api().get("/api/analytics/funnel").status_code == 401


class TestBadRequests:
    @pytest.mark.parametrize("params", [{"bucket": "week"}, {"since": "yesterday"}, {"limit": 0},
                                        {"since": "2025-03-02T00:00:00Z", "until": "2025-03-01T00:00:00Z"}],
                             ids=["bucket", "since", "limit", "range_backwards"])
    def test_malformed_parameters_are_422_in_the_error_shape(self, api, params):
        answer = api("ADMIN").get("/api/analytics/top-products", params=params)
        assert answer.status_code == 422 and answer.json()["error"] == "invalid" and answer.json()["message"]

    def test_an_unknown_query_is_404(self, api):
        answer = api("ADMIN").get("/api/analytics/sales-by-moon")
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
