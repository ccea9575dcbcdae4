"""Bearer-token checks: RS256 only, against the configured JWKS, issuer and audience."""

from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import Annotated

import jwt
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from buyit import identity
from buyit.settings import Settings, get_settings
from ingest_api.errors import forbidden, unauthorized
from state.common import ADMIN, BUYER, ROLES, SELLER, Actor

ALGORITHMS = ["RS256"]  # pinned: never "none", never HS256 keyed with a public key
VERIFIED_TOKENS = 50_000  # tokens whose signature was checked, kept until they expire
# Auth0 ids look like "auth0|abc123"; anything printable up to 128 characters, no control characters.
_USER_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


class Verifier:
    """Turns a bearer token into an Actor, or refuses it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # token -> (actor, exp): a buyer sends the same token with every request, and checking an RS256
        # signature again and again was a tenth of the API's time. Keyed by the whole token, so a forged
        # one never matches; an entry is dropped once its token expires.
        self._verified: dict[str, tuple[Actor, float]] = {}
        self.fetches_keys = bool(settings.jwt_jwks_url)
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

    def remembered(self, token: str) -> Actor | None:
        """The actor of a token verified before and not yet expired."""
        known = self._verified.get(token)
        if known is None:
            return None
        if known[1] <= time.time():
            self._verified.pop(token, None)
            return None
        return known[0]

    def actor(self, token: str) -> Actor:
        """Verify `token` (signature, issuer, audience, expiry) and name its caller."""
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
        actor = Actor(user_id=user_id, role=role)
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (actor, float(claims["exp"]))
        return actor


@lru_cache
def _verifier() -> Verifier:
    return Verifier(get_settings())


async def current_actor(request: Request) -> Actor:
    """The verified caller. Async, so a request never waits for a worker thread; only a JWKS fetch
    (a remote issuer's keys, cached by PyJWT) runs in one, off the event loop."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    verifier = _verifier()
    actor = verifier.remembered(token)
    if actor is not None:
        return actor
    if verifier.fetches_keys:
        return await run_in_threadpool(verifier.actor, token)
    return verifier.actor(token)


async def optional_actor(request: Request) -> Actor | None:
    """The caller if a bearer token came (and checks out); None when none came."""
    if not request.headers.get("authorization"):
        return None
    return await current_actor(request)


def roles(*allowed: str):
    """A dependency that lets only callers with one of `allowed` roles through."""
    async def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in allowed:
            raise forbidden(f"this needs one of the roles {', '.join(allowed)}")
        return actor
    dependency.allowed_roles = allowed
    return dependency


def _calls(dependant) -> list:
    out = []
    for dep in getattr(dependant, "dependencies", ()):
        out += [dep.call, *_calls(dep)]
    return out


async def caller_first(request: Request) -> None:
    """Raise the 401 or 403 the request's route would answer its caller, before anyone looks at its input
    (see errors.install). Routes that check the caller themselves (optional tokens, webhooks) are left be."""
    calls = _calls(getattr(request.scope.get("route"), "dependant", None))
    if current_actor not in calls:
        return
    actor = await current_actor(request)
    for call in calls:
        if actor.role not in getattr(call, "allowed_roles", ROLES):
            raise forbidden(f"this needs one of the roles {', '.join(call.allowed_roles)}")


Caller = Annotated[Actor, Depends(current_actor)]
SellerOrAdmin = Annotated[Actor, Depends(roles(SELLER, ADMIN))]
BuyerOrAdmin = Annotated[Actor, Depends(roles(BUYER, ADMIN))]
AdminOnly = Annotated[Actor, Depends(roles(ADMIN))]
