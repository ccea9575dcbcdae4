"""Issue 3's vertical slice through the real broker, dataflows, Postgres and API."""

from __future__ import annotations

import concurrent.futures

import socket

import httpx
import pytest

from tests.helpers import PNG, eventually

pytestmark = pytest.mark.integration


def new_product(seller, **overrides) -> dict:
    body = {"sku": f"SKU-{overrides.pop('n', 1)}", "name": "Walnut desk", "description": "Solid walnut",
            "category": "furniture", "priceCents": 25000, "currency": "USD", "status": "ACTIVE"}
    body.update(overrides)
    r = seller.post("/api/catalog/products", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def stock_of(seller, product_id) -> dict:
    return eventually(lambda: (r := seller.get(f"/api/inventory/stock/{product_id}")).status_code == 200
                      and r.json(), what="stock view")


class TestSellerJourney:
    def test_register_upload_create_stock_and_browse(self, client):
        seller = client("SELLER")
        r = seller.post("/api/users/me", json={"email": "s@example.com"})
        assert r.status_code == 201, r.text
        assert r.json()["payableAccountId"] == f"SELLER_PAYABLE_{seller.user_id}"
        assert seller.post("/api/users/me").status_code == 201  # idempotent

        upload = seller.post("/api/catalog/images/upload", files={"file": ("desk.png", PNG, "image/png")})
        assert upload.status_code == 201, upload.text
        image = upload.json()

        product = new_product(seller, imagePublicIds=[image["publicId"]], name=f"Desk {seller.user_id}")
        assert product["sellerId"] == seller.user_id
        assert product["imageUrls"] == [image["url"]]

        stock = stock_of(seller, product["productId"])
        assert stock["totalQuantity"] == 0 and stock["availableQuantity"] == 0
        r = seller.put("/api/inventory/stock", json={"productId": product["productId"], "totalQuantity": 7,
                                                     "expectedVersion": stock["version"]})
        assert r.status_code == 200, r.text
        assert r.json()["availableQuantity"] == 7

        buyer = client("BUYER")

        def listed():
            page = buyer.get("/api/catalog/products/browse", params={"q": seller.user_id}).json()
            return [p for p in page["items"] if p["productId"] == product["productId"] and
                    p["availableQuantity"] == 7]
        [seen] = eventually(listed, what="product browsable with stock")
        assert seen["imageUrls"] == [image["url"]]
        assert buyer.get(f"/api/inventory/availability/{product['productId']}").json() == {
            "productId": product["productId"], "availableQuantity": 7, "inStock": True}
        account = eventually(lambda: (r := seller.get(f"/api/ledger/accounts/SELLER_PAYABLE_{seller.user_id}"))
                             .status_code == 200 and r.json(), what="payable account")
        assert account["balanceCents"] == 0

    def test_image_is_served(self, client):
        seller = client("SELLER")
        image = seller.post("/api/catalog/images/upload", files={"file": ("a.png", PNG, "image/png")}).json()
        path = "/" + image["url"].split("/", 3)[3]
        r = client().get(path)
        assert r.status_code == 200 and r.content == PNG

    def test_non_images_and_oversize_are_refused(self, client, stack):
        seller = client("SELLER")
        r = seller.post("/api/catalog/images/upload", files={"file": ("x.png", b"not an image", "image/png")})
        assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
        big = PNG + b"\0" * stack.settings.buyit_max_image_bytes
        r = seller.post("/api/catalog/images/upload", files={"file": ("x.png", big, "image/png")})
        assert r.status_code == 413

    def test_bodies_over_the_limit_are_refused_as_they_arrive(self, client, stack):
        """Not after the whole body was spooled: by its declared length, or as a chunked body passes the limit."""
        seller = client("SELLER")
        limit = stack.settings.buyit_max_image_bytes + 64 * 1024
        r = seller.post("/api/catalog/products", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large", r.text
        # A chunked upload sent slowly: once past the limit, the answer must come while the body is still
        # arriving (a server that spools first would wait for the end, which never comes).
        port = int(str(seller.base_url).rsplit(":", 1)[1].strip("/"))
        token = seller.headers["Authorization"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"POST /api/catalog/images/upload HTTP/1.1\r\nHost: x\r\nAuthorization: " + token.encode()
                         + b"\r\nContent-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n")

            def chunk(data: bytes) -> None:
                conn.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
            chunk(b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                  b"Content-Type: image/png\r\n\r\n" + PNG)
            sent = 0
            while sent <= limit + 65536:
                chunk(b"\0" * 65536)
                sent += 65536
            conn.settimeout(5)
            answer = conn.recv(4096)  # the body has not ended: only a refusal can be here
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert seller.get("/health").status_code == 200

    def test_upload_from_url(self, client, stack):
        seller = client("SELLER")
        first = seller.post("/api/catalog/images/upload", files={"file": ("a.png", PNG, "image/png")}).json()
        r = seller.post("/api/catalog/images/upload-url", json={"url": first["url"]})
        assert r.status_code == 201, r.text
        assert r.json()["publicId"] != first["publicId"]
        assert seller.post("/api/catalog/images/upload-url", json={"url": "file:///etc/passwd"}).status_code == 422

    def test_sku_is_unique_per_seller(self, client):
        seller, other = client("SELLER"), client("SELLER")
        new_product(seller, n=5)
        r = seller.post("/api/catalog/products", json={"sku": "SKU-5", "name": "x", "priceCents": 1,
                                                        "currency": "USD"})
        assert r.status_code == 409 and r.json()["error"] == "sku_taken"
        new_product(other, n=5)  # another seller may use the same SKU

    def test_update_product_and_browse_filters(self, client):
        seller = client("SELLER")
        p = new_product(seller, category=f"cat-{seller.user_id}", priceCents=1000)
        r = seller.put(f"/api/catalog/products/{p['productId']}", json={"priceCents": 1500, "name": "Renamed"})
        assert r.status_code == 200 and r.json()["priceCents"] == 1500
        cat = f"cat-{seller.user_id}"
        anon = client()
        eventually(lambda: anon.get("/api/catalog/products/browse",
                                    params={"category": cat, "minPriceCents": 1400}).json()["items"],
                   what="filtered browse")
        assert anon.get("/api/catalog/products/browse",
                        params={"category": cat, "maxPriceCents": 1400}).json()["items"] == []

    def test_browse_paginates(self, client):
        seller = client("SELLER")
        cat = f"page-{seller.user_id}"
        for n in range(5):
            new_product(seller, n=n, category=cat)
        anon = client()
        eventually(lambda: len(anon.get("/api/catalog/products/browse",
                                        params={"category": cat, "limit": 10}).json()["items"]) == 5)
        seen, cursor = [], None
        while True:
            page = anon.get("/api/catalog/products/browse",
                            params={"category": cat, "limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            seen += [p["productId"] for p in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == 5 == len(set(seen))

    def test_drafts_are_hidden_from_others(self, client):
        seller = client("SELLER")
        p = new_product(seller, status="DRAFT")
        eventually(lambda: seller.get(f"/api/catalog/products/{p['productId']}").status_code == 200)
        assert client().get(f"/api/catalog/products/{p['productId']}").status_code == 404
        assert client("SELLER").get(f"/api/catalog/products/{p['productId']}").status_code == 404
        listing = eventually(lambda: seller.get(f"/api/catalog/products/by-seller/{seller.user_id}").json()["items"])
        assert [x["productId"] for x in listing] == [p["productId"]]


class TestStockConcurrency:
    def test_fifty_concurrent_versioned_updates_have_no_lost_update(self, client):
        seller = client("SELLER")
        p = new_product(seller)
        start = stock_of(seller, p["productId"])
        version = start["version"]

        def update(n):
            return seller.put("/api/inventory/stock", json={"productId": p["productId"], "totalQuantity": n + 1,
                                                            "expectedVersion": version})
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(update, range(50)))
        codes = sorted(a.status_code for a in answers)
        assert codes.count(200) == 1 and codes.count(409) == 49, codes
        winner = next(a.json() for a in answers if a.status_code == 200)
        for a in answers:
            if a.status_code == 409:
                assert a.json()["error"] == "version_conflict"
                assert a.json()["currentVersion"] == winner["version"]
        final = eventually(lambda: (s := stock_of(seller, p["productId"]))["version"] == winner["version"] and s)
        assert final["totalQuantity"] == winner["totalQuantity"]

    def test_chained_versions_all_win(self, client):
        seller = client("SELLER")
        p = new_product(seller)
        version = stock_of(seller, p["productId"])["version"]
        for n in range(10):
            r = seller.put("/api/inventory/stock", json={"productId": p["productId"], "totalQuantity": n,
                                                         "expectedVersion": version})
            assert r.status_code == 200, r.text
            version = r.json()["version"]


class TestAccess:
    def test_other_sellers_cannot_touch_stock_or_products(self, client):
        seller, other = client("SELLER"), client("SELLER")
        p = new_product(seller)
        stock_of(seller, p["productId"])
        assert other.get(f"/api/inventory/stock/{p['productId']}").status_code == 403
        r = other.put("/api/inventory/stock", json={"productId": p["productId"], "totalQuantity": 3})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert other.put(f"/api/catalog/products/{p['productId']}", json={"name": "mine"}).status_code == 403
        assert other.get(f"/api/catalog/products/by-seller/{seller.user_id}").status_code == 403
        assert client("ADMIN").get(f"/api/inventory/stock/{p['productId']}").status_code == 200

    def test_buyers_cannot_create_products_or_set_stock(self, client):
        buyer = client("BUYER")
        r = buyer.post("/api/catalog/products", json={"sku": "x", "name": "x", "priceCents": 1, "currency": "USD"})
        assert r.status_code == 403
        assert buyer.put("/api/inventory/stock", json={"productId": "x", "totalQuantity": 1}).status_code == 403

    def test_unknown_things_are_404(self, client):
        seller = client("SELLER")
        assert seller.get("/api/inventory/stock/nope").status_code == 404
        assert client().get("/api/catalog/products/nope").status_code == 404
        r = seller.put("/api/inventory/stock", json={"productId": "nope", "totalQuantity": 1})
        assert r.status_code == 404


def test_image_urls_on_private_hosts_are_refused_by_default():
    """Server-side request forgery: unless allowed (tests, demos), private and loopback hosts are refused."""
    import asyncio

    from ingest_api.errors import ApiError
    from ingest_api.images import fetch
    for url in ("http://127.0.0.1:1/x.png", "http://[::1]:1/x.png", "http://localhost:1/x"):
        try:
            asyncio.run(fetch(url, 1000))
        except ApiError as err:
            assert err.status == 422 and "public" in err.message, url
        else:
            raise AssertionError(f"{url} was fetched")



class TestStockDashboard:
    def test_stream_pushes_stock_changes(self, client):
        import json
        import threading
        seller = client("SELLER")
        p = new_product(seller, n=300)
        stock_of(seller, p["productId"])
        seen: list[dict] = []
        done = threading.Event()

        def listen():
            with seller.stream("GET", "/api/inventory/stream", timeout=20) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if seen[-1]["totalQuantity"] == 9:
                            done.set()
                            return
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        eventually(lambda: seen, what="the current stock first")
        assert seller.put("/api/inventory/stock", json={"productId": p["productId"], "totalQuantity": 9}).status_code == 200
        assert done.wait(15), seen
        assert seen[0]["productId"] == p["productId"] and seen[-1]["availableQuantity"] == 9

    def test_stream_access(self, client):
        seller = client("SELLER")
        assert seller.get("/api/inventory/stream", params={"sellerId": "someone-else"}).status_code == 403
        assert client("ADMIN").get("/api/inventory/stream").status_code == 422
        assert client("BUYER").get("/api/inventory/stream").status_code == 403

    def test_a_seller_s_streams_share_one_feed_and_are_capped(self, client):
        """Five dashboards of one seller all see a change; a sixth is refused (429) until one closes."""
        import json
        import threading

        from ingest_api.stock_feed import STREAMS_PER_SELLER
        seller = client("SELLER")
        p = new_product(seller, n=301)
        stock_of(seller, p["productId"])
        seen = [[] for _ in range(STREAMS_PER_SELLER)]
        opened, stop = threading.Barrier(STREAMS_PER_SELLER + 1), threading.Event()

        def listen(mine: list):
            http = httpx.Client(base_url=str(seller.base_url), headers=dict(seller.headers), timeout=30)
            with http.stream("GET", "/api/inventory/stream") as response:
                assert response.status_code == 200
                opened.wait(10)
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        mine.append(json.loads(line[6:]))
                    if stop.is_set() or (mine and mine[-1]["totalQuantity"] == 7):
                        return
        threads = [threading.Thread(target=listen, args=(s,), daemon=True) for s in seen]
        for t in threads:
            t.start()
        opened.wait(10)
        refused = seller.get("/api/inventory/stream")
        assert refused.status_code == 429 and refused.json()["error"] == "too_many_streams", refused.text
        assert refused.headers["Retry-After"]
        assert seller.put("/api/inventory/stock", json={"productId": p["productId"], "totalQuantity": 7}).status_code == 200
        for t in threads:
            t.join(15)
        assert all(s and s[-1]["totalQuantity"] == 7 for s in seen), seen
        # all closed: a new one is welcome again
        assert eventually(lambda: _opens(seller), what="a stream opens after the others closed")


def _opens(seller) -> bool:
    with seller.stream("GET", "/api/inventory/stream", timeout=10) as response:
        return response.status_code == 200
