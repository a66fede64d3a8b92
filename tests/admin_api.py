"""Calling the management API in tests: an admin client's token, and the calls themselves."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from idp.settings import Settings
from tests.factories import PASSWORD, make_client
from tests.oauth.flow import REDIRECT, Authorization, query_of, sign_in

PREFIX = "/admin/v1"


async def client_token(http: httpx.AsyncClient, client_id: str, secret: str, **params: str) -> str:
    """A client_credentials token from the app's own /token."""
    answer = await http.post(
        "/token", data={"grant_type": "client_credentials", **params}, auth=(client_id, secret)
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def admin_token(
    http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, *, scope: str = "idp:admin"
) -> str:
    """A token of a new ``--admin`` client_credentials client, with ``scope``."""
    token, _ = await admin_caller(http, pool, settings, scope=scope)
    return token


async def admin_caller(
    http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, *, scope: str = "idp:admin"
) -> tuple[str, str]:
    """``admin_token``'s token and the actor the audit log records for it (``client:<id>``)."""
    client, secret = await make_client(pool, settings, name="deploy", scopes=(), admin=True)
    token = await client_token(http, client.client_id, secret, scope=scope)
    return token, f"client:{client.client_id}"


async def audit_of(pool: asyncpg.Pool, subject: object) -> list[tuple[str, str]]:
    """(actor, action) of every audit event about ``subject``, oldest first."""
    rows = await pool.fetch(
        "SELECT actor, action FROM audit_log WHERE subject = $1 ORDER BY id", str(subject)
    )
    return [(row["actor"], row["action"]) for row in rows]


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 body of an answer that must be a problem with ``status``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:idp:problem:")
    assert body["title"]
    assert body["detail"]
    return body


async def user_admin_token(
    http: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,
    email: str,
    *,
    scope: str = "idp:admin",
) -> str:
    """A token of ``email`` (a user with the factories' password), from the code flow of a new
    first-party ``--admin`` client, for the management API: ``scope`` and resource
    ``{issuer}/admin`` (RFC 8707) asked for at /authorize and at /token."""
    client, secret = await make_client(
        pool,
        settings,
        name="console",
        scopes=("openid",),
        admin=True,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        first_party=True,
    )
    http.cookies.clear()  # no one else's session: ``email`` signs in
    auth = Authorization(client.client_id, REDIRECT, scope=f"openid {scope}")
    answer = await http.get(auth.url(resource=settings.admin_audience))
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    if location.startswith("/login"):
        answer = await sign_in(http, location, email, PASSWORD)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
    assert location.startswith(REDIRECT), location
    code = query_of(location)["code"]
    exchanged = await http.post(
        "/token",
        auth=(client.client_id, secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": auth.verifier,
            "resource": settings.admin_audience,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    token: str = exchanged.json()["access_token"]
    return token
