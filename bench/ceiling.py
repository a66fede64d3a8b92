"""The benchmark's ceiling: the least a Starlette app under uvicorn can do per request.

Routes returning constant, pre-encoded JSON bodies, so the req/s measured here is what the
framework, the server and the machine allow before any idp code runs. ``/ceiling`` is the small
constant JSON; ``/ceiling/N`` returns a body of exactly N bytes for each N listed in
``BENCH_CEILING_SIZES`` (comma-separated), so that an idp endpoint is also compared with a
ceiling that writes as many bytes as it does (the JWKS, with its certificates, is ~3 KB).
``/ceiling/sign``, ``/ceiling/introspect`` and ``/ceiling/refresh`` are the least each grant or
lookup does (signatures, one statement on idp's own database). The refresh ceiling's statement is
an INSERT of the new token's hash into a table of its own, where idp's rotation is one UPDATE of
the family's row (``idp.db.refresh_tokens``): each is one write statement.
``bench/run.py`` serves it with the same uvicorn options as ``idp serve``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
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


ISSUER = "http://127.0.0.1"


def access_token(sub: str, client_id: str, scope: str) -> str:
    """One RS256 access token (RFC 9068), signed with a key parsed once."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": sub,
        "aud": "https://api.example",
        "client_id": client_id,
        "iat": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        "scope": scope,
    }
    return jwt.encode({"alg": "RS256", "kid": "bench", "typ": "at+jwt"}, claims, _KEY)


def id_token(sub: str, client_id: str, access: str) -> str:
    """One RS256 ID token (OIDC Core §2), with the at_hash of the access token beside it."""
    now = int(time.time())
    digest = hashlib.sha256(access.encode()).digest()
    claims = {
        "iss": ISSUER,
        "sub": sub,
        "aud": client_id,
        "iat": now,
        "exp": now + 600,
        "auth_time": now - 60,
        "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
        "email": "bench@example.com",
        "email_verified": True,
    }
    return jwt.encode({"alg": "RS256", "kid": "bench", "typ": "JWT"}, claims, _KEY)


async def sign(request: Request) -> Response:
    """The least a client_credentials grant does: sign one RS256 JWT."""
    token = access_token("bench", "bench", "read")
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 600, "scope": "read"}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


CREATE_TOKENS = """
CREATE TABLE IF NOT EXISTS bench_ceiling_tokens (
    token_hash  bytea PRIMARY KEY,
    created_at  timestamptz NOT NULL
)"""
INSERT_HASH = "INSERT INTO bench_ceiling_tokens (token_hash, created_at) VALUES ($1, now())"


class Database:
    """The routes on idp's database: introspection (verify one JWT, run one indexed SELECT) and
    refresh (two signatures, one INSERT; idp's rotation writes with one UPDATE instead). Needs
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
            async with self.pool.acquire() as connection, connection.transaction():
                # Both workers start at once: one creates the table, the other waits for it.
                await connection.execute("SELECT pg_advisory_xact_lock(8080)")
                await connection.execute(CREATE_TOKENS)
        yield
        if self.pool is not None:
            await self.pool.close()

    async def introspect(self, request: Request) -> Response:
        assert self.pool is not None
        assert self.keys is not None
        form = dict(parse_qsl((await request.body()).decode()))
        decoded = jwt.decode(form["token"], self.keys, algorithms=["RS256"])
        revoked = await self.pool.fetchval(
            "SELECT 1 FROM revoked_access_tokens WHERE jti = $1", decoded.claims["jti"]
        )
        return JSONResponse({"active": revoked is None, **decoded.claims})

    async def refresh(self, request: Request) -> Response:
        """What an OIDC refresh answers (OIDC Core §12.2): a new access token, a new ID token and
        a new refresh token, the latter's hash written by one INSERT (idp's rotation: one
        UPDATE of the family's row)."""
        assert self.pool is not None
        await request.body()
        refresh = secrets.token_urlsafe(32)
        await self.pool.execute(INSERT_HASH, hashlib.sha256(refresh.encode()).digest())
        access = access_token("bench-user", "bench-web", "openid email")
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 600,
            "scope": "openid email",
            "refresh_token": refresh,
            "id_token": id_token("bench-user", "bench-web", access),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})


database = Database()
routes = [
    Route("/ceiling", constant_json(BODY), methods=["GET"]),
    Route("/ceiling/sign", sign, methods=["POST"]),
    Route("/ceiling/introspect", database.introspect, methods=["POST"]),
    Route("/ceiling/refresh", database.refresh, methods=["POST"]),
]
for text in filter(None, os.environ.get("BENCH_CEILING_SIZES", "").split(",")):
    size = int(text)
    routes.append(Route(f"/ceiling/{size}", constant_json(sized_body(size)), methods=["GET"]))

app = Starlette(routes=routes, lifespan=database.lifespan)
