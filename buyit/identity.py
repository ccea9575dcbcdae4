"""The local token issuer: an RS256 key pair under the data directory, standing in for Auth0."""

from __future__ import annotations

import json
import os
import threading
import time
from functools import lru_cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from buyit.settings import Settings


@lru_cache(maxsize=4)
def _private_key(path: Path):
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        # Each maker writes its own file and links it in only if none is there yet: API replicas (or
        # threads) starting together all end up with the first key made, never each with their own.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _key_path(settings: Settings) -> Path:
    return settings.buyit_data_dir.resolve() / "identity" / "issuer.pem"


def jwks(settings: Settings) -> dict:
    """The public half of the local issuer's key, as a JSON Web Key Set."""
    public = _private_key(_key_path(settings)).public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk.update(kid=kid(settings), use="sig", alg="RS256")
    return {"keys": [jwk]}


def kid(settings: Settings) -> str:
    public = _private_key(_key_path(settings)).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    return hashlib.sha256(der).hexdigest()[:16]


def mint(settings: Settings, user_id: str, role: str, ttl_s: int = 3600, **extra) -> str:
    """A signed token for any user and role, as Auth0 would issue it."""
    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": user_id, "iat": now,
              "exp": now + ttl_s, settings.jwt_user_id_claim: user_id, settings.jwt_role_claim: role, **extra}
    return jwt.encode(claims, _private_key(_key_path(settings)), algorithm="RS256",
                      headers={"kid": kid(settings)})
