"""Tokens say how the user signed in (OIDC Core §2, RFC 8176, RFC 9068 §2.2.1): the ID token's
``amr`` and ``acr``, the access token's ``acr`` and ``auth_time``; a refresh keeps those of the
sign-in it came from; discovery lists the acr values."""

from __future__ import annotations

import base64
import json
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, enrol_totp, make_client, make_user
from tests.oauth.flow import Authorization, exchange_code, hidden_fields, query_of, refresh

REDIRECT = "https://app.example/callback"
SECRET = pyotp.random_base32(length=32)
MFA = ["pwd", "otp", "mfa"]
PASSKEY = ["hwk", "user", "mfa"]
MFA_ACR = "urn:idp:acr:mfa"


def claims_of(token: str) -> dict[str, Any]:
    """The payload, unverified: the signature is the business of other tests."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


async def code_for(http: httpx.AsyncClient, auth: Authorization, code: str | None) -> str:
    """/authorize → /login (→ /login/second-factor with ``code``) → the client's code."""
    started = await http.get(auth.url())
    page = await http.get(started.headers["location"])
    fields = {**hidden_fields(page.text), "email": "alice@example.com", "password": PASSWORD}
    answer = await http.post("/login", data=fields)
    if code is not None:
        assert answer.headers["location"] == "/login/second-factor", answer.text
        form = await http.get("/login/second-factor")
        answer = await http.post(
            "/login/second-factor", data={**hidden_fields(form.text), "code": code}
        )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(REDIRECT)
    return query_of(answer.headers["location"])["code"]


@pytest.fixture
async def client(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str]:
    registered, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email", "offline_access"),
        first_party=True,
    )
    return registered.client_id, secret


async def tokens(
    app_instance: InstanceFactory, client: tuple[str, str], code: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first tokens of a sign-in, and those of a refresh of them."""
    async with app_instance() as app:
        auth = Authorization(client[0], REDIRECT, scope="openid email offline_access")
        got = await code_for(app.client, auth, code)
        first = await exchange_code(app.client, *client, got, auth)
        assert first.status_code == 200, first.text
        refreshed = await refresh(app.client, client, first.json()["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        return first.json(), refreshed.json()


async def test_a_sign_in_with_an_authenticator_code_yields_mfa_tokens_and_refreshes_keep_them(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    kek: bytes,
    clock: FrozenClock,
    client: tuple[str, str],
) -> None:
    user = await make_user(pool, "alice@example.com")
    await enrol_totp(pool, kek, user.id, SECRET, clock.now())
    first, refreshed = await tokens(app_instance, client, pyotp.TOTP(SECRET).at(clock.now()))
    signed_in_at = int(clock.now().timestamp())
    for answer in (first, refreshed):
        id_token, access = claims_of(answer["id_token"]), claims_of(answer["access_token"])
        assert (id_token["amr"], id_token["acr"]) == (MFA, "urn:idp:acr:mfa")
        assert (access["acr"], access["auth_time"]) == ("urn:idp:acr:mfa", signed_in_at)
        assert id_token["auth_time"] == signed_in_at


async def test_a_password_only_sign_in_yields_pwd_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, client: tuple[str, str]
) -> None:
    await make_user(pool, "alice@example.com")
    first, refreshed = await tokens(app_instance, client, None)
    for answer in (first, refreshed):
        id_token, access = claims_of(answer["id_token"]), claims_of(answer["access_token"])
        assert (id_token["amr"], id_token["acr"]) == (["pwd"], "urn:idp:acr:pwd")
        assert access["acr"] == "urn:idp:acr:pwd"
        assert "auth_time" in access


async def test_codes_and_families_from_before_amr_was_kept_mean_a_password(
    app_instance: InstanceFactory, pool: asyncpg.Pool, client: tuple[str, str]
) -> None:
    await make_user(pool, "alice@example.com")
    async with app_instance() as app:
        auth = Authorization(client[0], REDIRECT, scope="openid email offline_access")
        got = await code_for(app.client, auth, None)
        await pool.execute("UPDATE authorization_codes SET amr = NULL")
        first = await exchange_code(app.client, *client, got, auth)
        assert claims_of(first.json()["id_token"])["amr"] == ["pwd"]
        await pool.execute("UPDATE refresh_families SET amr = NULL")
        refreshed = await refresh(app.client, client, first.json()["refresh_token"])
        assert claims_of(refreshed.json()["id_token"])["acr"] == "urn:idp:acr:pwd"


async def test_discovery_lists_the_acr_values_and_the_amr_and_acr_claims(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as app:
        metadata = (await app.client.get("/.well-known/openid-configuration")).json()
    assert metadata["acr_values_supported"] == ["urn:idp:acr:pwd", "urn:idp:acr:mfa", "phr"]
    assert {"amr", "acr"} <= set(metadata["claims_supported"])


@pytest.mark.parametrize(
    ("asked", "reported"),
    [
        ({}, "phr"),  # nothing asked: the class reached
        ({"acr_values": "urn:idp:acr:mfa"}, "urn:idp:acr:mfa"),
        ({"acr_values": "urn:idp:acr:pwd urn:idp:acr:mfa"}, "urn:idp:acr:mfa"),
        ({"acr_values": "phr urn:idp:acr:mfa"}, "phr"),
        ({"acr_values": "urn:example:unknown"}, "phr"),
        (
            {"claims": json.dumps({"id_token": {"acr": {"essential": True, "value": MFA_ACR}}})},
            MFA_ACR,
        ),
    ],
)
async def test_a_stronger_sign_in_reports_the_class_asked_for_and_refreshes_keep_it(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    client: tuple[str, str],
    asked: dict[str, str],
    reported: str,
) -> None:
    """OIDC Core §5.5.1.1: the acr of an essential request is one of its values; a passkey
    sign-in (``phr``) meets ``urn:idp:acr:mfa`` and reports it when that was asked (Keycloak
    does the same), so a relying party checking the value it asked for accepts it."""
    await make_user(pool, "alice@example.com")
    async with app_instance() as app:
        auth = Authorization(client[0], REDIRECT, scope="openid email offline_access")
        await code_for(app.client, auth, None)  # a session
        await pool.execute("UPDATE sessions SET amr = $1", PASSKEY)  # as a passkey signs in
        again = Authorization(client[0], REDIRECT, scope="openid email offline_access")
        answer = await app.client.get(again.url(**asked))
        assert answer.headers["location"].startswith(REDIRECT), answer.text
        got = query_of(answer.headers["location"])["code"]
        first = await exchange_code(app.client, *client, got, again)
        refreshed = await refresh(app.client, client, first.json()["refresh_token"])
    for tokens_of in (first.json(), refreshed.json()):
        id_token, access = claims_of(tokens_of["id_token"]), claims_of(tokens_of["access_token"])
        assert (id_token["amr"], id_token["acr"], access["acr"]) == (PASSKEY, reported, reported)
