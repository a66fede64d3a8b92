"""The benchmark's ceiling: the least a Starlette app under uvicorn can do per request.

Routes returning constant, pre-encoded JSON bodies, so the req/s measured here is what the
framework, the server and the machine allow before any idp code runs. ``/ceiling`` is the small
constant JSON; ``/ceiling/N`` returns a body of exactly N bytes for each N listed in
``BENCH_CEILING_SIZES`` (comma-separated), so that an idp endpoint is also compared with a
ceiling that writes as many bytes as it does (the JWKS, with its certificates, is ~3 KB).
``scripts/bench`` serves it with the same uvicorn options as ``idp serve``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl

import asyncpg
import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BODY = b'{"status":"ok"}'


def constant_json(body: bytes) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return endpoint


def sized_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``{"pad":"xxx..."}``."""
    frame = b'{"pad":""}'
    return frame[:-2] + b"x" * max(0, size - len(frame)) + frame[-2:]


_KEY = RSAKey.generate_key(2048, private=True)


async def sign(request: Request) -> Response:
    """The least a token endpoint does: sign one RS256 JWT with a key parsed once."""
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1",
        "sub": "bench",
        "aud": "https://api.example",
        "client_id": "bench",
        "iat": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        "scope": "read",
    }
    token = jwt.encode({"alg": "RS256", "kid": "bench", "typ": "at+jwt"}, claims, _KEY)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 600, "scope": "read"}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


class Introspection:
    """The least an introspection does: verify one JWT, run one indexed SELECT. Needs
    BENCH_DATABASE_URL (idp's database) and BENCH_JWKS_URL (idp's keys) at start-up."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.keys: KeySet | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        database_url = os.environ.get("BENCH_DATABASE_URL")
        if database_url:
            # No reset query on release, as idp does: the fastest plain asyncpg set-up.
            self.pool = await asyncpg.create_pool(
                database_url, min_size=2, max_size=10, reset=_no_reset
            )
            async with httpx.AsyncClient() as client:
                jwks = (await client.get(os.environ["BENCH_JWKS_URL"])).json()
            self.keys = KeySet.import_key_set(jwks)
        yield
        if self.pool is not None:
            await self.pool.close()

    async def endpoint(self, request: Request) -> Response:
        assert self.pool is not None
        assert self.keys is not None
        form = dict(parse_qsl((await request.body()).decode()))
        decoded = jwt.decode(form["token"], self.keys, algorithms=["RS256"])
        revoked = await self.pool.fetchval(
            "SELECT 1 FROM revoked_access_tokens WHERE jti = $1", decoded.claims["jti"]
        )
        return JSONResponse({"active": revoked is None, **decoded.claims})


introspection = Introspection()
routes = [
    Route("/ceiling", constant_json(BODY), methods=["GET"]),
    Route("/ceiling/sign", sign, methods=["POST"]),
    Route("/ceiling/introspect", introspection.endpoint, methods=["POST"]),
]
for text in filter(None, os.environ.get("BENCH_CEILING_SIZES", "").split(",")):
    size = int(text)
    routes.append(Route(f"/ceiling/{size}", constant_json(sized_body(size)), methods=["GET"]))

app = Starlette(routes=routes, lifespan=introspection.lifespan)
