"""Builders and checks shared by the tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.db import clients, second_factors, users
from idp.db.clients import Client
from idp.db.users import User
from idp.keys.keyring import Keyring
from idp.mail.message import Mail
from idp.mail.outbox import Outbox
from idp.mfa.totp import TotpSeal, step_at
from idp.oauth.registration import register
from idp.passwords import Passwords
from idp.settings import Settings

SUBPROCESS_TIMEOUT = 120.0
PASSWORD = "correct horse battery"  # make_user's default
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3, computed here independently of the code under test."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def keyset(jwks_body: bytes) -> KeySet:
    return KeySet.import_key_set(json.loads(jwks_body))


def kids(jwks_body: bytes) -> set[str]:
    return {key["kid"] for key in json.loads(jwks_body)["keys"]}


def sign_token(keyring: Keyring, now: datetime, ttl: timedelta, **claims: Any) -> str:
    issued = int(now.timestamp())
    body = {"iss": "http://idp.test", "sub": "tester", "iat": issued}
    body["exp"] = issued + int(ttl.total_seconds())
    body.update(claims)
    return keyring.sign(body)


def verify(token: str, jwks_body: bytes, algorithms: list[str]) -> dict[str, Any]:
    """Verify the signature against a JWKS the way a relying service does: by kid, pinned algs."""
    return jwt.decode(token, keyset(jwks_body), algorithms=algorithms).claims


def assert_security_headers(response: httpx.Response) -> None:
    """What every HTML page of idp carries (see idp.web.security.HTML_HEADERS)."""
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


async def run_command(
    command: Sequence[str],
    env: dict[str, str],
    *,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run ``command`` without blocking the event loop; ``stdin`` None means /dev/null."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT):
            stdout, stderr = await process.communicate(stdin)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


def environ_without_idp() -> dict[str, str]:
    """This process's environment less every IDP_* variable, for a subprocess to start from."""
    return {name: value for name, value in os.environ.items() if not name.startswith("IDP_")}


async def make_client(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    name: str = "app",
    grant_types: Sequence[str] = ("client_credentials",),
    redirect_uris: Sequence[str] = (),
    scopes: Sequence[str] = ("read", "write"),
    audiences: Sequence[str] = (),
    public: bool = False,
    first_party: bool = False,
    access_token_ttl: timedelta | None = None,
    post_logout_redirect_uris: Sequence[str] = (),
    introspect_audiences: Sequence[str] = (),
    admin: bool = False,
) -> tuple[Client, str]:
    """A registered client and its secret ("" for a public client)."""
    client, secret = register(
        name=name,
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        scopes=scopes,
        audiences=audiences,
        post_logout_redirect_uris=post_logout_redirect_uris,
        public=public,
        first_party=first_party,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=None,
        settings=settings,
        now=datetime.now(UTC),
        introspect_audiences=introspect_audiences,
        admin=admin,
    )
    return await clients.insert(pool, client), secret or ""


async def make_user(
    pool: asyncpg.Pool,
    email: str = "alice@example.com",
    password: str = PASSWORD,
    *,
    name: str | None = "Alice",
    roles: Sequence[str] = (),
) -> User:
    hashed = Passwords("test").hash_sync(password)
    return await users.insert(
        pool, email=email, name=name, password_hash=hashed, roles=list(roles), now=datetime.now(UTC)
    )


async def queued_mail(pool: asyncpg.Pool, outbox: Outbox) -> list[Mail]:
    """Every mail waiting in the outbox, oldest first, opened with the app's seal (give it
    ``instance.state["mailing"].outbox``): the mail idp would send, read without a mail server."""
    rows = await pool.fetch(
        "SELECT recipient, template, sealed FROM mail_outbox WHERE sealed IS NOT NULL ORDER BY id"
    )
    return [outbox.seal.unseal(row["recipient"], row["template"], row["sealed"]) for row in rows]


async def enrol_totp(
    pool: asyncpg.Pool, kek: bytes, user_id: uuid.UUID, secret: str, now: datetime
) -> None:
    """An authenticator app with ``secret``, confirmed long ago (its last used step far in the
    past), as /account/security leaves it: for tests of what a second factor changes."""
    sealed = TotpSeal(kek).seal(user_id, secret)
    assert await second_factors.begin_totp(pool, user_id, sealed, now)
    assert await second_factors.confirm_totp(pool, user_id, step_at(now) - 100, now)
