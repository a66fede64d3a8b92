"""Calling the management API in tests: an admin client's token, and the calls themselves."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from idp.settings import Settings
from tests.factories import make_client

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
    client, secret = await make_client(pool, settings, name="deploy", scopes=(), admin=True)
    return await client_token(http, client.client_id, secret, scope=scope)


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
