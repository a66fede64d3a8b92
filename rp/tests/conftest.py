from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from idp_rp import TokenVerifier
from jwks_server import JwksServer, served

ISSUER = "https://idp.example"
AUDIENCE = "https://api.example"
METADATA = "https://api.example/.well-known/oauth-protected-resource"  # RFC 9728


class FrozenClock:
    def __init__(self) -> None:
        self._now = datetime.fromtimestamp(int(time.time()), UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def public(key: RSAKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def claims_at(clock: FrozenClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "client_id": "app",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "scope": "read write",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@asynccontextmanager
async def asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` over httpx's ASGI transport (no socket), at http://api.test."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying ``token`` (RFC 6750 §2.1)."""
    return {"Authorization": f"Bearer {token}"}


def mint(key: RSAKey, claims: dict[str, Any], **header: Any) -> str:
    protected = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **header}
    protected = {name: value for name, value in protected.items() if value is not None}
    alg = protected["alg"]
    return jws.serialize_compact(protected, json.dumps(claims).encode(), key, algorithms=[alg])


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="session")
def key() -> RSAKey:
    return new_key("k1")


@pytest.fixture(scope="session")
def other_key() -> RSAKey:
    return new_key("k2")


@pytest.fixture
def jwks(key: RSAKey) -> Iterator[JwksServer]:
    with served(JwksServer(keys=[public(key)])) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def verifier(jwks: JwksServer, clock: FrozenClock, http: httpx.AsyncClient) -> TokenVerifier:
    return TokenVerifier.from_jwks_uri(
        jwks.url,
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
        http=http,
        unknown_kid_refetches_per_minute=3,
    )
