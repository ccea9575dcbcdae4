"""Bearer-token checks: RS256 only, against the configured JWKS, issuer and audience."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

import jwt
from fastapi import Depends, Request

from buyit import identity
from buyit.settings import Settings, get_settings
from ingest_api.errors import forbidden, unauthorized
from state.common import ADMIN, BUYER, ROLES, SELLER, Actor

ALGORITHMS = ["RS256"]  # pinned: never "none", never HS256 keyed with a public key
# Auth0 ids look like "auth0|abc123"; anything printable up to 128 characters, no control characters.
_USER_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


class Verifier:
    """Turns a bearer token into an Actor, or refuses it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        if settings.jwt_jwks_url:
            self._client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300)
            self._local = None
        else:  # the embedded issuer: read its keys directly instead of fetching our own endpoint
            self._client = None
            self._local = jwt.PyJWKSet.from_dict(identity.jwks(settings))

    def _key(self, token: str):
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._local.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.InvalidTokenError("unknown signing key")

    def actor(self, token: str) -> Actor:
        s = self.settings
        try:
            claims = jwt.decode(token, self._key(token), algorithms=ALGORITHMS, audience=s.jwt_audience,
                                issuer=s.jwt_issuer, options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, ValueError) as err:
            raise unauthorized(f"invalid token: {err}") from err
        user_id = claims.get(s.jwt_user_id_claim) or claims.get("sub")
        if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
            raise unauthorized("the token names no usable user id")
        role = claims.get(s.jwt_role_claim)
        if role not in ROLES:
            raise forbidden("the token carries no known account type")
        return Actor(user_id=user_id, role=role)


@lru_cache
def _verifier() -> Verifier:
    return Verifier(get_settings())


def current_actor(request: Request) -> Actor:
    """The verified caller (a sync dependency: a JWKS fetch blocks a worker thread, not the loop)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    return _verifier().actor(token.strip())


def optional_actor(request: Request) -> Actor | None:
    """The caller if a bearer token came (and checks out); None when none came."""
    if not request.headers.get("authorization"):
        return None
    return current_actor(request)


def roles(*allowed: str):
    """A dependency that lets only callers with one of `allowed` roles through."""
    def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in allowed:
            raise forbidden(f"this needs one of the roles {', '.join(allowed)}")
        return actor
    return dependency


Caller = Annotated[Actor, Depends(current_actor)]
SellerOrAdmin = Annotated[Actor, Depends(roles(SELLER, ADMIN))]
BuyerOrAdmin = Annotated[Actor, Depends(roles(BUYER, ADMIN))]
AdminOnly = Annotated[Actor, Depends(roles(ADMIN))]
