"""``idp serve --demo``: a demo user and a first-party demo client, so that a newcomer signs in
within a minute; the built-in ``/demo/start`` and ``/demo/callback`` pages play the client and
show the tokens.

The demo client is public, so PKCE is all that binds a code to the browser that asked for it
(RFC 7636 §1). It is built as apps should build it: ``/demo/start`` draws a random verifier (and
state and nonce), keeps them in a short-lived cookie that only the callback receives, and sends
only the S256 challenge to ``/authorize``; the callback exchanges the code with the verifier from
that cookie. Nothing is derived from ``state``, which travels in URLs.
"""

from __future__ import annotations

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
START_PATH = "/demo/start"
CALLBACK_PATH = "/demo/callback"
FLOW_TTL = 600  # seconds from /demo/start to the callback: time enough to sign in


@dataclass(frozen=True)
class DemoCredentials:
    email: str
    password: str
    authorization_url: str  # the demo's start page, which goes on to /authorize


@dataclass(frozen=True)
class DemoFlow:
    """One sign-in's secrets, as the client keeps them between /authorize and its callback."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> DemoFlow:
        # RFC 7636 §4.1: 32 random octets, base64url: 43 characters of [A-Za-z0-9_-].
        return cls(secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(32))

    def cookie_value(self) -> str:
        return f"{self.state}.{self.nonce}.{self.verifier}"

    @classmethod
    def from_cookie(cls, value: str | None) -> DemoFlow | None:
        parts = (value or "").split(".")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


def start_url(settings: Settings) -> str:
    return settings.issuer + START_PATH


def authorization_url(settings: Settings, flow: DemoFlow) -> str:
    query = {
        "response_type": "code",
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": settings.issuer + CALLBACK_PATH,
        "scope": DEMO_SCOPE,
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": s256(flow.verifier),
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
                email_verified=True,  # an operator's user, as with idp users add --verified
            )
            await clients.insert(connection, demo_client_row(settings, now))
    return DemoCredentials(DEMO_EMAIL, password, start_url(settings))


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
