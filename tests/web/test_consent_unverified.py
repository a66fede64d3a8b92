"""The consent page for clients registered by programs (``Client.unverified``: RFC 7591
registration, Client ID Metadata Documents): always shown, marked unverified, naming the host
the request returns to. An operator's third-party client is not marked."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from idp.db import clients
from idp.db.clients import Client, Registration
from idp.oauth.registration import register
from idp.settings import Settings
from idp.web.consent import host_of
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, make_client, make_user
from tests.oauth.flow import Authorization, hidden_fields, query_of, sign_in

REDIRECT = "https://notes.example:8443/callback"
MARK = "Unverified application"


async def program_client(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    registration: Registration = "dynamic",
    first_party: bool = False,
) -> Client:
    """A public client as RFC 7591 registration would store it."""
    client, _ = register(
        name="Notes",
        redirect_uris=(REDIRECT,),
        grant_types=("authorization_code",),
        scopes=("openid", "email"),
        audiences=(),
        post_logout_redirect_uris=(),
        public=True,
        first_party=first_party,
        access_token_ttl=None,
        refresh_token_ttl=None,
        settings=settings,
        now=datetime.now(UTC),
    )
    return await clients.insert(pool, replace(client, registration=registration))


async def to_consent(app: Instance, auth: Authorization, email: str) -> httpx.Response:
    """/authorize, signing in if asked: the answer after it (a redirect)."""
    answer = await app.client.get(auth.url())
    assert answer.status_code == 303, answer.text
    if answer.headers["location"].startswith("/login"):
        answer = await sign_in(app.client, answer.headers["location"], email, PASSWORD)
        assert answer.status_code == 303, answer.text
    return answer


async def allow(app: Instance, consent_location: str) -> str:
    page = await app.client.get(consent_location)
    answer = await app.client.post(
        "/consent", data={**hidden_fields(page.text), "decision": "allow"}
    )
    assert answer.status_code == 303, answer.text
    location: str = answer.headers["location"]
    return location


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://notes.example/cb", "notes.example"),
        ("https://notes.example:8443/cb", "notes.example:8443"),
        ("http://127.0.0.1:53111/cb", "127.0.0.1:53111"),
        ("http://[::1]:53111/cb", "[::1]:53111"),
        ("com.example.notes:/cb", "com.example.notes"),
    ],
)
def test_consent_page_names_the_host_of_the_redirect_uri(uri: str, shown: str) -> None:
    assert host_of(uri) == shown


def text_of(page: httpx.Response) -> str:
    return " ".join(html.unescape(page.text).split())


@pytest.mark.parametrize("first_party", [False, True])
async def test_consent_page_marks_a_client_registered_by_a_program_and_shows_the_redirect_host(
    first_party: bool, app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await program_client(pool, settings, first_party=first_party)
    user = await make_user(pool)
    async with app_instance() as app:
        auth = Authorization(client.client_id, REDIRECT, scope="openid email")
        answer = await to_consent(app, auth, user.email)
        assert answer.headers["location"].startswith("/consent?request=")  # never first-party
        page = await app.client.get(answer.headers["location"])
    text = text_of(page)
    assert MARK in text
    assert "registered by a program, not by this site's operator" in text
    assert '<strong id="redirect-host">notes.example:8443</strong>' in page.text
    assert "described by a document" not in text  # only a metadata document's client


async def test_unverified_client_is_asked_again_despite_a_stored_consent(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await program_client(pool, settings)
    user = await make_user(pool)
    async with app_instance() as app:
        first = Authorization(client.client_id, REDIRECT, scope="openid email")
        answer = await to_consent(app, first, user.email)
        assert query_of(await allow(app, answer.headers["location"]))["state"] == first.state
        again = Authorization(client.client_id, REDIRECT, scope="openid email")
        answer = await to_consent(app, again, user.email)
        assert answer.headers["location"].startswith("/consent?request=")
        silent = await app.client.get(again.url(prompt="none"))
    assert silent.status_code == 303
    assert query_of(silent.headers["location"])["error"] == "consent_required"


async def test_operator_third_party_client_is_not_marked_and_its_consent_is_remembered(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
    )
    user = await make_user(pool)
    async with app_instance() as app:
        auth = Authorization(client.client_id, REDIRECT, scope="openid email")
        answer = await to_consent(app, auth, user.email)
        page = await app.client.get(answer.headers["location"])
        assert MARK not in text_of(page)
        assert '<strong id="redirect-host">notes.example:8443</strong>' in page.text
        await allow(app, answer.headers["location"])
        again = Authorization(client.client_id, REDIRECT, scope="openid email")
        answer = await to_consent(app, again, user.email)
    assert answer.headers["location"].startswith(REDIRECT)  # remembered: straight back
