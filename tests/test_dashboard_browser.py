"""The seller dashboard in a real browser (Debian's Chromium, driven by Playwright) against the test stack.

A stock change and a paid sale made through the API show on the page within two seconds; another
seller's products never do. A screenshot lands in `test-output/` (git-ignored).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from buyit.identity import mint
from tests.payments import pay
from tests.test_cart_api import add, listed_product
from tests.test_checkout_api import order_of

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parent.parent / "test-output"
LIVE_S = 2.0  # what "live" means for the page: an API change shows within this


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("NO BROWSER: Chromium is not installed (`make install` installs it with apt-get as root); "
                    "the dashboard's browser test did not run")
    return found


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the `playwright` package (the `test` extra)")
    path = _chromium()
    with sync_api.sync_playwright() as pw:
        # Debian's Chromium, not Playwright's download; no sandbox, since tests may run as root
        launched = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


def base_url(stack) -> str:
    return f"http://127.0.0.1:{stack.api_ports[0]}"


def cell(page, product_id: str, name: str):
    return page.locator(f'tr[data-product-id="{product_id}"] td.{name}')


def shows_within(page, product_id: str, name: str, text: str, since: float, limit: float = LIVE_S) -> float:
    """Wait until the cell reads `text`; how long after `since` it did. Fails past `limit`."""
    from playwright.sync_api import expect
    left = max(0.1, limit - (time.monotonic() - since))
    expect(cell(page, product_id, name)).to_have_text(text, timeout=left * 1000)
    return time.monotonic() - since


def test_a_seller_sees_its_stock_and_sales_live_and_nothing_else(stack, client, browser):
    from playwright.sync_api import expect
    seller, pid = listed_product(client, 10, price_cents=900)
    other, other_pid = listed_product(client, 4)
    token = mint(stack.settings, seller.user_id, "SELLER")
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{base_url(stack)}/dashboard#token={token}")
        expect(cell(page, pid, "available")).to_have_text("10", timeout=10_000)  # the stream's first snapshot
        assert "token=" not in page.url  # taken out of the address bar and history
        expect(page.locator("#status")).to_have_text("live")

        started = time.monotonic()
        assert seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 12}).status_code == 200
        stock_s = shows_within(page, pid, "available", "12", started)

        buyer = client("BUYER")
        assert add(buyer, pid, 3).status_code == 201
        answer = buyer.post("/api/cart/checkout").json()
        pay(stack, answer["clientSecret"])
        order_of(buyer, answer["orderId"], status="CONFIRMED")
        confirmed = time.monotonic()
        sale_s = shows_within(page, pid, "sold", "3", confirmed)
        expect(cell(page, pid, "available")).to_have_text("9")
        # the chart and pace follow from the window rows (fetched at once after a sale)
        expect(page.locator("#sales-chart")).to_have_attribute("data-total", "3", timeout=7000)
        expect(cell(page, pid, "pace")).not_to_have_text("–", timeout=7000)
        expect(cell(page, pid, "stockout")).to_contain_text("min", timeout=7000)

        # low stock: at or below the threshold (5) the row is flagged
        assert seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 4}).status_code == 200
        expect(page.locator(f'tr[data-product-id="{pid}"]')).to_have_class("low", timeout=LIVE_S * 1000)

        assert other.put("/api/inventory/stock", json={"productId": other_pid, "totalQuantity": 6}).status_code == 200
        page.wait_for_timeout(1000)  # time for a leak to show: the feed polls every 0.25 s
        assert page.locator(f'tr[data-product-id="{other_pid}"]').count() == 0
        assert page.locator("#stock tbody tr").count() == 1
        assert not any("token" in url for url in requests), requests  # the token rides in headers only

        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard-seller.png"), full_page=True)
        print(f"\nstock change on the page after {stock_s:.2f}s, sale after {sale_s:.2f}s")
    finally:
        page.close()


def test_an_admin_signs_in_by_pasting_and_picks_a_seller(stack, client, browser):
    from playwright.sync_api import expect
    seller, pid = listed_product(client, 8)
    page = browser.new_page()
    try:
        page.goto(f"{base_url(stack)}/dashboard")
        expect(page.locator("#sign-in")).to_be_visible()
        page.fill("#token", mint(stack.settings, "admin-dash", "ADMIN"))
        page.click("#sign-in-button")
        expect(page.locator("#seller-picker")).to_be_visible()
        page.select_option("#seller-picker", seller.user_id)
        expect(cell(page, pid, "available")).to_have_text("8", timeout=10_000)
        assert page.locator("#stock tbody tr").count() == 1  # that seller's products only
        expect(page.locator("#funnel-section")).to_be_visible()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard-admin.png"), full_page=True)
    finally:
        page.close()


def test_a_buyer_token_is_turned_away(stack, client, browser):
    from playwright.sync_api import expect
    page = browser.new_page()
    try:
        page.goto(f"{base_url(stack)}/dashboard#token={mint(stack.settings, 'buyer-dash', 'BUYER')}")
        expect(page.locator("#sign-in-error")).to_contain_text("SELLER or ADMIN")
    finally:
        page.close()
