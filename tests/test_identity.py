"""Tokens: only RS256 tokens from the configured issuer, for the configured audience, unexpired."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from buyit.identity import _key_path, _private_key, kid, mint

pytestmark = pytest.mark.integration


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(settings, **overrides) -> dict:
    now = int(time.time())
    base = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "u1", "user_id": "u1",
            "account_type": "SELLER", "iat": now, "exp": now + 600}
    base.update(overrides)
    return base


def bad_tokens(settings) -> dict[str, str]:
    key = _private_key(_key_path(settings))
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = mint(settings, "u1", "SELLER")
    head, body, sig = good.split(".")
    tampered_body = _b64({**json.loads(base64.urlsafe_b64decode(body + "==")), "account_type": "ADMIN"})
    import hmac, hashlib
    hs_head = _b64({"alg": "HS256", "typ": "JWT", "kid": kid(settings)})
    hs_body = _b64(claims(settings))
    hs_sig = base64.urlsafe_b64encode(hmac.new(public_pem, f"{hs_head}.{hs_body}".encode(),
                                               hashlib.sha256).digest()).rstrip(b"=").decode()
    return {
        "expired": jwt.encode(claims(settings, exp=int(time.time()) - 10), key, "RS256",
                              headers={"kid": kid(settings)}),
        "wrong_issuer": jwt.encode(claims(settings, iss="https://evil/"), key, "RS256",
                                   headers={"kid": kid(settings)}),
        "wrong_audience": jwt.encode(claims(settings, aud="other"), key, "RS256", headers={"kid": kid(settings)}),
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims(settings))}.",
        "hs256_with_public_key": f"{hs_head}.{hs_body}.{hs_sig}",
        "tampered_claims": f"{head}.{tampered_body}.{sig}",
        "foreign_key": jwt.encode(claims(settings), stranger, "RS256", headers={"kid": kid(settings)}),
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("case", ["expired", "wrong_issuer", "wrong_audience", "alg_none", "hs256_with_public_key",
                                  "tampered_claims", "foreign_key", "garbage"])
def test_bad_tokens_are_401(stack, client, case):
    token = bad_tokens(stack.settings)[case]
    r = client(token=token).post("/api/users/me")
    assert r.status_code == 401, (case, r.text)
    assert r.json()["error"] == "unauthorized"


def test_no_token_is_401(client):
    assert client().post("/api/users/me").status_code == 401
    assert client().put("/api/inventory/stock", json={"productId": "x", "totalQuantity": 1}).status_code == 401


def test_good_token_passes_and_jwks_is_served(stack, client):
    assert client("SELLER").post("/api/users/me").status_code == 201
    keys = client().get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["kid"] == kid(stack.settings) and keys[0]["alg"] == "RS256"


def test_makers_racing_for_a_fresh_issuer_key_all_end_up_with_the_same_one(tmp_path):
    """Two API replicas (or the fault suite's shopper threads) may mint before any key exists: they must
    not trip over each other's file, nor each keep a key of its own."""
    import threading

    from buyit.identity import _private_key
    path = tmp_path / "identity" / "issuer.pem"
    barrier, keys, errors = threading.Barrier(8), [], []

    def make():
        barrier.wait()
        try:
            keys.append(_private_key.__wrapped__(path))
        except Exception as err:  # noqa: BLE001 - what the race used to raise
            errors.append(err)
    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    numbers = {k.private_numbers().d for k in keys}
    assert len(keys) == 8 and len(numbers) == 1
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
