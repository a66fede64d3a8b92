"""``idp serve --demo``: a demo user and a first-party demo client, so that a newcomer signs in
within a minute; the built-in ``/demo/callback`` plays the client and shows the tokens.

The demo client is public (PKCE, no secret). Its code verifier is derived from the ``state`` of
the printed URL with a key derived from the key-encryption key, so every worker process can
finish the exchange without shared memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import asyncpg

from idp.db import clients, users
from idp.db.clients import Client
from idp.oauth.pkce import s256
from idp.passwords import Passwords
from idp.settings import Settings

DEMO_CLIENT_ID = "idp-demo"
DEMO_EMAIL = "demo@example.com"
DEMO_SCOPE = "openid profile email roles"
CALLBACK_PATH = "/demo/callback"


@dataclass(frozen=True)
class DemoCredentials:
    email: str
    password: str
    authorization_url: str


def code_verifier(settings: Settings, state: str) -> str:
    assert settings.key_encryption_key is not None
    key = hmac.new(settings.key_encryption_key, b"idp demo", hashlib.sha256).digest()
    return hmac.new(key, state.encode(), hashlib.sha256).hexdigest()  # 64 chars: RFC 7636 ok


def authorization_url(settings: Settings) -> str:
    state = secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": settings.issuer + CALLBACK_PATH,
        "scope": DEMO_SCOPE,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": s256(code_verifier(settings, state)),
        "code_challenge_method": "S256",
    }
    return f"{settings.issuer}/authorize?{urlencode(query)}"


async def seed(pool: asyncpg.Pool, settings: Settings, now: datetime) -> DemoCredentials | None:
    """Seed an empty database; on a database seeded before, give the demo user a new password
    (it was printed only once). None when the database holds other users or clients."""
    password = secrets.token_urlsafe(12)
    hashed = Passwords(settings.argon2_profile).hash_sync(password)
    async with pool.acquire() as connection, connection.transaction():
        demo_user = await users.by_email(connection, DEMO_EMAIL)
        demo_client = await clients.by_id(connection, DEMO_CLIENT_ID)
        if demo_user is not None and demo_client is not None:
            await users.set_password_hash(connection, demo_user.id, hashed, now)
            # The issuer may have changed (another --port): follow it.
            await connection.execute(
                "UPDATE clients SET redirect_uris = $2 WHERE client_id = $1",
                DEMO_CLIENT_ID,
                [settings.issuer + CALLBACK_PATH],
            )
        else:
            others = await connection.fetchval(
                "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM clients)"
            )
            if others:
                return None
            await users.insert(
                connection,
                email=DEMO_EMAIL,
                name="Demo User",
                password_hash=hashed,
                roles=["demo"],
                now=now,
            )
            await clients.insert(connection, demo_client_row(settings, now))
    return DemoCredentials(DEMO_EMAIL, password, authorization_url(settings))


def demo_client_row(settings: Settings, now: datetime) -> Client:
    return Client(
        client_id=DEMO_CLIENT_ID,
        name="idp demo",
        secret_hash=None,
        redirect_uris=(settings.issuer + CALLBACK_PATH,),
        grant_types=("authorization_code",),
        scopes=tuple(DEMO_SCOPE.split()),
        audiences=(),
        post_logout_redirect_uris=(),
        first_party=True,
        access_token_ttl=None,
        refresh_token_ttl=None,
        disabled=False,
        created_at=now,
    )
